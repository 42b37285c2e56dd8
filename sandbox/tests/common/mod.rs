//! What every integration test needs: an emulator, a client pointed at it, and a key.

#![allow(
    dead_code,
    reason = "each test binary uses its own share of these helpers"
)]
#![allow(
    clippy::expect_used,
    reason = "a helper that cannot do its job fails the test"
)]

use std::time::Duration;
use truemark::client::{BaseUrl, CdnHost, TrueApiClient, TrueApiKey, TrueApiTimeouts};
use truemark::wire::CodesCheckRequest;
use truemark_sandbox::{Fixture, Sandbox, SandboxConfig};

/// The key the test emulators accept. Distinctive, so a search for it in evidence is
/// meaningful.
pub const API_KEY: &str = "test-key-7f3a9c2e-never-in-evidence";

/// A fiscal drive serial for requests.
pub const FISCAL_DRIVE: &str = "7380440800000001";

/// A limit short enough to keep timeout tests fast, long enough for loopback answers.
pub const SHORT_LIMIT: Duration = Duration::from_millis(200);

/// A code that no fixture names.
pub const UNKNOWN_CODE: &str = "0104600000000000215unkno\u{1d}93abcd";

/// An emulator with the acceptance catalogue and three hosts.
pub async fn start_sandbox() -> Sandbox {
    start_sandbox_with(Fixture::acceptance().expect("the shipped fixture loads")).await
}

pub async fn start_sandbox_with(fixture: Fixture) -> Sandbox {
    Sandbox::start(SandboxConfig {
        api_keys: vec![API_KEY.to_owned()],
        fixture,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

/// A client with the protocol's default limits.
pub fn client() -> TrueApiClient {
    TrueApiClient::new(TrueApiTimeouts::default()).expect("the client builds")
}

/// A client that gives up after [`SHORT_LIMIT`] on every call.
pub fn impatient_client() -> TrueApiClient {
    TrueApiClient::new(TrueApiTimeouts {
        codes_check: SHORT_LIMIT,
        cdn_info: SHORT_LIMIT,
        health_check: SHORT_LIMIT,
        connect: SHORT_LIMIT,
    })
    .expect("the client builds")
}

pub fn key() -> TrueApiKey {
    TrueApiKey::new(API_KEY).expect("a valid key")
}

pub fn wrong_key() -> TrueApiKey {
    TrueApiKey::new("a-key-the-sandbox-never-issued").expect("a valid key")
}

pub fn host(sandbox: &Sandbox, index: usize) -> CdnHost {
    let url = sandbox.host_urls()[index].clone();
    CdnHost::try_from(url).expect("sandbox hosts are valid CDN hosts")
}

pub fn hosts(sandbox: &Sandbox) -> Vec<CdnHost> {
    (0..sandbox.host_urls().len())
        .map(|index| host(sandbox, index))
        .collect()
}

pub fn base(sandbox: &Sandbox) -> BaseUrl {
    BaseUrl::try_from(sandbox.discovery_url()).expect("the discovery URL is a valid base")
}

pub fn request(codes: &[&str]) -> CodesCheckRequest {
    CodesCheckRequest::new(
        codes.iter().map(|code| (*code).to_owned()).collect(),
        FISCAL_DRIVE,
    )
}

/// The code of an acceptance case.
pub fn code_of(case: &str) -> String {
    Fixture::acceptance()
        .expect("the shipped fixture loads")
        .case(case)
        .unwrap_or_else(|| panic!("no case {case}"))
        .code
        .clone()
}
