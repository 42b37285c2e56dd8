//! An emulator of Честный ЗНАК's True API for rehearsing every answer and every fault.
//!
//! It serves the discovery endpoint (`cdn/info`) and several CDN hosts, each on its own port
//! with its own health check and code check, exactly as `docs/PROTOCOL.md` describes them.
//! Per-code answers come from a fixture (see [`fixture`]); faults, listeners, the discovery
//! list and code states change at run time through [`SandboxControl`], in process or over
//! the HTTP control API on a separate port.
//!
//! # What a code answers
//! - A code is looked up exactly as sent (case, spaces and 0x1D bytes included).
//! - A code named in the fixture answers with its row's fields over the defaults of a valid,
//!   verified, found code in circulation, owned by the caller, with `cis` the code itself and
//!   `gtin`, `printView` and `groupIds` read off the code.
//! - Several rows may name the same code. The first row answers by default; a later row
//!   answers once activated by its case id ([`SandboxControl::activate_case`], or
//!   `POST /control/cases/{case}/activate`). The acceptance catalogue relies on this: case 5.1
//!   (`utilised=false`) and case 514 (`delay=1800ms`) share a code.
//! - A state set at run time ([`SandboxControl::set_code_state`]) answers before any row.
//! - Any other code answers `found=false errorCode=10`, or, with [`UnknownCodes::Valid`], as a
//!   valid code in circulation.
//!
//! # Keys
//! Every endpoint answers 401 unless `X-API-KEY` is one of the configured keys.
//!
//! # In tests
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use truemark_sandbox::{Fault, FaultTarget, Fixture, Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::start(SandboxConfig {
//!     fixture: Fixture::acceptance()?,
//!     ..SandboxConfig::default()
//! })
//! .await?;
//! let gateway_timeout = Fault::HttpStatus { status: 504, retry_after_secs: None };
//! sandbox.control().set_fault(FaultTarget::host(0), &gateway_timeout)?;
//! // … point a client at sandbox.discovery_url() …
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod answers;
mod api;
mod codebook;
mod control;
mod fault;
pub mod fixture;
mod listener;
mod stats;
mod world;

pub use answers::UnknownCodes;
pub use codebook::{CaseView, OverrideView};
pub use control::{ControlError, FaultTarget, SandboxControl, SandboxState, ServiceView};
pub use fault::{Fault, InvalidFault};
pub use fixture::Fixture;
pub use stats::{CallStats, HostCalls};
pub use world::Service;

use listener::SwitchableListener;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;
use url::Url;
use world::World;

/// The key the emulator accepts when none is configured.
pub const DEFAULT_API_KEY: &str = "sandbox-api-key";

/// How to start an emulator. The default binds every service to a free port on 127.0.0.1,
/// starts three hosts, accepts [`DEFAULT_API_KEY`] and has an empty fixture (every code
/// unknown).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The address every service listens on.
    pub bind: IpAddr,
    /// The host name in the URLs the emulator hands out (the discovery list included). By
    /// default the bind address, or the loopback address when binding to all interfaces.
    pub advertised_host: Option<String>,
    /// 0 picks a free port.
    pub discovery_port: u16,
    /// One port per host, 0 for a free one; the length is the number of hosts.
    pub host_ports: Vec<u16>,
    /// 0 picks a free port.
    pub control_port: u16,
    /// The `X-API-KEY` values accepted.
    pub api_keys: Vec<String>,
    pub fixture: Fixture,
    pub unknown_codes: UnknownCodes,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertised_host: None,
            discovery_port: 0,
            host_ports: vec![0; 3],
            control_port: 0,
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            fixture: Fixture::default(),
            unknown_codes: UnknownCodes::default(),
        }
    }
}

/// Why the emulator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the {service} cannot listen on {addr}")]
    Listen {
        service: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a host name to put in URLs")]
    AdvertisedHost(String),
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// A running emulator. Dropping it stops every listener; [`Sandbox::shutdown`] also waits
/// until they are closed.
#[derive(Debug)]
pub struct Sandbox {
    control: SandboxControl,
    control_listener: SwitchableListener,
    shutdown: watch::Sender<bool>,
}

impl Sandbox {
    /// Starts every listener and returns once all of them accept connections.
    ///
    /// # Errors
    /// When a port cannot be bound or the advertised host is not a host name.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let advertised = config
            .advertised_host
            .clone()
            .unwrap_or_else(|| default_advertised_host(config.bind));
        let url_base = control::url_base(&advertised)
            .ok_or_else(|| SandboxError::AdvertisedHost(advertised.clone()))?;
        let (shutdown, shutdown_signal) = watch::channel(false);
        let world = Arc::new(World::new(
            config.api_keys,
            config.unknown_codes,
            config.fixture,
        ));

        let discovery = listen(
            "discovery service",
            SocketAddr::new(config.bind, config.discovery_port),
            api::discovery_router(Arc::clone(&world)),
            &shutdown_signal,
        )
        .await?;
        let control = SandboxControl::new(
            world,
            discovery,
            config.bind,
            url_base,
            shutdown_signal.clone(),
        );
        for port in config.host_ports {
            control.add_host_on(port).await?;
        }
        let control_listener = listen(
            "control API",
            SocketAddr::new(config.bind, config.control_port),
            control::control_router(control.clone()),
            &shutdown_signal,
        )
        .await?;

        let sandbox = Self {
            control,
            control_listener,
            shutdown,
        };
        tracing::info!(
            discovery.url = %sandbox.discovery_url(),
            control.url = %sandbox.control_url(),
            "sandbox listening"
        );
        Ok(sandbox)
    }

    /// Starts the emulator, runs it until `signal` completes, then shuts it down.
    ///
    /// # Errors
    /// As [`Sandbox::start`].
    pub async fn run_until(
        config: SandboxConfig,
        signal: impl Future<Output = ()>,
    ) -> Result<(), SandboxError> {
        let sandbox = Self::start(config).await?;
        signal.await;
        sandbox.shutdown().await;
        Ok(())
    }

    /// The controls: faults, listeners, discovery list, code states, counters.
    pub fn control(&self) -> &SandboxControl {
        &self.control
    }

    /// The discovery base URL, to configure as a tenant's ЧЗ URL.
    pub fn discovery_url(&self) -> Url {
        self.control.discovery_url()
    }

    /// Every host's base URL, by index.
    pub fn host_urls(&self) -> Vec<Url> {
        self.control.host_urls()
    }

    /// The control API's base URL.
    pub fn control_url(&self) -> Url {
        let mut url = self.control.discovery_url();
        // Same scheme and host as every other service; only the port differs.
        let _ = url.set_port(Some(self.control_listener.addr().port()));
        url
    }

    /// Stops every listener, dropping requests in progress, and waits until all are closed.
    pub async fn shutdown(self) {
        // Receivers may all be gone already; then everything has stopped.
        let _ = self.shutdown.send(true);
        self.control_listener.close().await;
        self.control.close_all().await;
        tracing::info!("sandbox stopped");
    }
}

fn default_advertised_host(bind: IpAddr) -> String {
    match bind {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
        ip => ip.to_string(),
    }
}

async fn listen(
    service: &'static str,
    addr: SocketAddr,
    router: axum::Router,
    shutdown: &watch::Receiver<bool>,
) -> Result<SwitchableListener, SandboxError> {
    SwitchableListener::start(addr, router, shutdown.clone())
        .await
        .map_err(|source| SandboxError::Listen {
            service,
            addr,
            source,
        })
}
