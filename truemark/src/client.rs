//! The True API client: the CDN list, host health and code checks.
//!
//! Every call returns an [`Exchange`]: one classified [`Outcome`] (PROTOCOL.md §4) for the
//! caller to act on, and an [`ExchangeRecord`] to keep as evidence that the check was tried.
//! The client never retries and never fails over by itself: those are decisions of the
//! failover engine, which sees every outcome.
//!
//! One client serves every tenant: the key travels with each call, and the connection pool is
//! shared. Cloning is cheap.

mod key;
mod outcome;
mod record;
mod urls;

pub use key::{InvalidTrueApiKey, TrueApiKey};
pub use outcome::{HostFailure, Outcome, OutcomeKind, Refusal};
pub use record::{ExchangeRecord, RECORDED_BODY_LIMIT, RecordedBody};
pub use urls::{BaseUrl, CdnHost, Endpoint, InvalidServiceUrl};

use crate::wire::{
    CdnHostEntry, CdnInfoAnswer, CodesCheckAnswer, CodesCheckRequest, HealthCheckAnswer,
};
use chrono::Utc;
use outcome::{ReceivedAnswer, ServiceAnswer, classify_answer};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Response};
use std::error::Error as _;
use std::time::{Duration, Instant};
use url::Url;

/// The most of an answer the client reads: 8 MiB. A longer 200 answer is a malformed body;
/// the limit keeps a misbehaving host from filling memory.
pub const ANSWER_READ_LIMIT: usize = 8 * 1024 * 1024;

const API_KEY_HEADER: &str = "X-API-KEY";
const USER_AGENT: &str = concat!("imark-truemark/", env!("CARGO_PKG_VERSION"));

/// How long each kind of call may take, from the first byte sent to the last byte received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrueApiTimeouts {
    /// One `codes/check` attempt. Default 1.5 s: ПП 1944 falls back to the offline path when
    /// ГИС МТ gives no answer within that time.
    pub codes_check: Duration,
    /// The CDN list. Default 5 s.
    pub cdn_info: Duration,
    /// One health check. Default 5 s.
    pub health_check: Duration,
    /// Opening a connection (TCP and TLS), within the limits above. Default 1 s, so a dead
    /// host costs less than a whole check attempt.
    pub connect: Duration,
}

impl Default for TrueApiTimeouts {
    fn default() -> Self {
        Self {
            codes_check: Duration::from_millis(1500),
            cdn_info: Duration::from_secs(5),
            health_check: Duration::from_secs(5),
            connect: Duration::from_secs(1),
        }
    }
}

/// The HTTP stack could not be set up (no usable TLS configuration, for one).
#[derive(Debug, thiserror::Error)]
#[error("the True API client could not be built")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// A True API call's classified outcome and its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange<T> {
    pub outcome: Outcome<T>,
    pub record: ExchangeRecord,
}

impl<T> Exchange<T> {
    /// Converts the answer, keeping the record and every other outcome.
    pub fn map<U>(self, convert: impl FnOnce(T) -> U) -> Exchange<U> {
        Exchange {
            outcome: self.outcome.map(convert),
            record: self.record,
        }
    }
}

/// The CDN hosts a discovery answer listed, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CdnList {
    /// The usable hosts in the order listed, each once.
    pub hosts: Vec<CdnHost>,
    /// Entries with no host or an unusable address, kept for the logs.
    pub unusable: Vec<CdnHostEntry>,
}

impl CdnList {
    fn from_answer(answer: CdnInfoAnswer) -> Self {
        let mut list = Self {
            hosts: Vec::new(),
            unusable: Vec::new(),
        };
        for entry in answer.hosts.unwrap_or_default() {
            match entry.host.as_deref().map(str::parse::<CdnHost>) {
                Some(Ok(host)) if !list.hosts.contains(&host) => list.hosts.push(host),
                Some(Ok(_duplicate)) => {}
                Some(Err(_)) | None => list.unusable.push(entry),
            }
        }
        list
    }
}

/// The True API client. See the module documentation.
#[derive(Debug, Clone)]
pub struct TrueApiClient {
    http: reqwest::Client,
    timeouts: TrueApiTimeouts,
}

/// One call to make: where, what, and how long it may take.
struct Call {
    endpoint: Endpoint,
    url: Url,
    body: Option<String>,
    limit: Duration,
}

impl TrueApiClient {
    /// Builds a client, installing the TLS crypto provider first if nobody has.
    ///
    /// Redirects are never followed: the key travels in a custom header that an HTTP client
    /// would forward to wherever a redirect points, so a redirect is reported instead, as a
    /// [`HostFailure::UnexpectedStatus`].
    ///
    /// # Errors
    /// When the HTTP stack cannot be set up.
    pub fn new(timeouts: TrueApiTimeouts) -> Result<Self, ClientBuildError> {
        crate::tls::install_crypto_provider();

        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self { http, timeouts })
    }

    /// The limits this client applies.
    pub fn timeouts(&self) -> &TrueApiTimeouts {
        &self.timeouts
    }

    /// `GET {base}/api/v4/true-api/cdn/info`: the CDN hosts to check codes on.
    pub async fn cdn_info(&self, base: &BaseUrl, key: &TrueApiKey) -> Exchange<CdnList> {
        let call = Call {
            endpoint: Endpoint::CdnInfo,
            url: base.cdn_info_url(),
            body: None,
            limit: self.timeouts.cdn_info,
        };
        self.exchange::<CdnInfoAnswer>(call, key)
            .await
            .map(CdnList::from_answer)
    }

    /// `GET {host}/api/v4/true-api/cdn/health/check`: whether `host` is up, and how fast.
    ///
    /// The host's own `avgTimeMs` is in the answer; the round trip we measured is the
    /// record's `duration`.
    pub async fn health_check(
        &self,
        host: &CdnHost,
        key: &TrueApiKey,
    ) -> Exchange<HealthCheckAnswer> {
        let call = Call {
            endpoint: Endpoint::HealthCheck,
            url: host.endpoint_url(Endpoint::HealthCheck),
            body: None,
            limit: self.timeouts.health_check,
        };
        self.exchange(call, key).await
    }

    /// `POST {host}/api/v4/true-api/codes/check` within the configured per-attempt limit.
    pub async fn check_codes(
        &self,
        host: &CdnHost,
        key: &TrueApiKey,
        request: &CodesCheckRequest,
    ) -> Exchange<CodesCheckAnswer> {
        self.check_codes_within(host, key, request, self.timeouts.codes_check)
            .await
    }

    /// [`Self::check_codes`] with an explicit limit, for a caller that shares one time budget
    /// between several hosts.
    pub async fn check_codes_within(
        &self,
        host: &CdnHost,
        key: &TrueApiKey,
        request: &CodesCheckRequest,
        limit: Duration,
    ) -> Exchange<CodesCheckAnswer> {
        let call = Call {
            endpoint: Endpoint::CodesCheck,
            url: host.endpoint_url(Endpoint::CodesCheck),
            body: Some(request.to_json_text()),
            limit,
        };
        self.exchange(call, key).await
    }

    async fn exchange<T: ServiceAnswer>(&self, call: Call, key: &TrueApiKey) -> Exchange<T> {
        let started_at = Utc::now();
        let clock = Instant::now();
        let mut received = None;

        let attempt = tokio::time::timeout(call.limit, self.send(&call, key, &mut received)).await;
        let duration = clock.elapsed();

        let (outcome, error) = match (attempt, &received) {
            (Err(_elapsed), _) => (
                Outcome::TimedOut { after: call.limit },
                Some(format!(
                    "no complete answer within {} ms",
                    call.limit.as_millis()
                )),
            ),
            (Ok(Err(failure)), _) => (
                classify_transport_error(&failure, self.timeouts.connect),
                Some(error_chain(&failure)),
            ),
            (Ok(Ok(())), Some(answer)) => (classify_answer(answer, Utc::now()), None),
            // `send` records the answer before it can return `Ok`; this arm only completes the
            // match.
            (Ok(Ok(())), None) => (
                Outcome::HostFailure(HostFailure::Transport {
                    reason: "no answer was recorded".to_owned(),
                }),
                None,
            ),
        };

        let record = ExchangeRecord {
            endpoint: call.endpoint,
            method: call.endpoint.method(),
            url: call.url,
            started_at,
            duration,
            http_status: received.as_ref().map(|answer| answer.status),
            request_body: call
                .body
                .as_deref()
                .map(str::as_bytes)
                .map(RecordedBody::from_bytes),
            answer_body: received
                .as_ref()
                .map(|answer| RecordedBody::from_bytes(&answer.body)),
            error,
        };
        log_exchange(&record, outcome.kind());
        Exchange { outcome, record }
    }

    /// Sends the call and reads the answer into `received` as it arrives, so that whatever
    /// came before a timeout is still there for the record.
    async fn send(
        &self,
        call: &Call,
        key: &TrueApiKey,
        received: &mut Option<ReceivedAnswer>,
    ) -> Result<(), reqwest::Error> {
        let mut request = self
            .http
            .request(http_method(call.endpoint), call.url.clone())
            .header(API_KEY_HEADER, key.header_value())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }

        let mut response = request.send().await?;
        let answer = received.insert(answer_head(&response));
        while let Some(chunk) = response.chunk().await? {
            let room = ANSWER_READ_LIMIT - answer.body.len();
            if chunk.len() > room {
                answer.body.extend_from_slice(&chunk[..room]);
                answer.oversized = true;
                break;
            }
            answer.body.extend_from_slice(&chunk);
        }
        Ok(())
    }
}

fn http_method(endpoint: Endpoint) -> Method {
    match endpoint {
        Endpoint::CdnInfo | Endpoint::HealthCheck => Method::GET,
        Endpoint::CodesCheck => Method::POST,
    }
}

fn answer_head(response: &Response) -> ReceivedAnswer {
    ReceivedAnswer {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: Vec::new(),
        oversized: false,
    }
}

/// An expired limit is a timeout, also while connecting; other failures before a connection
/// exists are connect failures, and the rest broke an open connection. The call's own limit
/// is enforced around reqwest, so the only timeout reqwest itself reports is `connect_limit`.
fn classify_transport_error<T>(failure: &reqwest::Error, connect_limit: Duration) -> Outcome<T> {
    let reason = error_chain(failure);
    if failure.is_timeout() {
        Outcome::TimedOut {
            after: connect_limit,
        }
    } else if failure.is_connect() {
        Outcome::HostFailure(HostFailure::Connect { reason })
    } else {
        Outcome::HostFailure(HostFailure::Transport { reason })
    }
}

/// The error with its causes, `outer: inner: root`; reqwest's own text names only the URL.
fn error_chain(failure: &reqwest::Error) -> String {
    let mut text = failure.to_string();
    let mut cause = failure.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn log_exchange(record: &ExchangeRecord, outcome: OutcomeKind) {
    tracing::debug!(
        endpoint = record.endpoint.as_str(),
        cdn.host = %record.origin(),
        http.status = record.http_status,
        duration_ms = u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
        outcome = outcome.as_str(),
        error.message = record.error.as_deref(),
        "true api exchange"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CdnHostEntry;

    #[test]
    fn the_cdn_list_keeps_usable_hosts_once_in_order() {
        let answer = CdnInfoAnswer {
            code: Some(0),
            hosts: Some(vec![
                CdnHostEntry::new("https://cdn02.crpt.ru"),
                CdnHostEntry::new("not a url"),
                CdnHostEntry::new("https://cdn01.crpt.ru/"),
                CdnHostEntry::new("https://cdn02.crpt.ru/"),
                CdnHostEntry::default(),
            ]),
            ..CdnInfoAnswer::default()
        };

        let list = CdnList::from_answer(answer);

        let hosts: Vec<String> = list.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["https://cdn02.crpt.ru", "https://cdn01.crpt.ru"]);
        assert_eq!(list.unusable.len(), 2);
    }

    #[test]
    fn the_default_limits_follow_the_protocol() {
        let timeouts = TrueApiTimeouts::default();

        assert_eq!(timeouts.codes_check, Duration::from_millis(1500));
        assert_eq!(timeouts.cdn_info, Duration::from_secs(5));
        assert_eq!(timeouts.health_check, Duration::from_secs(5));
    }
}
