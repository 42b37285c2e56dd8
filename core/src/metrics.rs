//! Prometheus metrics: every name iMark records, the one-line helpers that record them, and the
//! listener that serves them at `/metrics` on an address of its own (`IMARK_METRICS_ADDR`).
//!
//! The recorder is process-global. [`install`] puts it in place once; later calls return the
//! same handle. Without it every helper here is a no-op, so the call sites need no guard.
//!
//! Labels are bounded: enums of the domain (kind, verdict, mode, criterion, action, job,
//! outcome), the matched route template, the status code, and the ЧЗ host. No tenant, store or
//! key ever becomes a label.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use truemark::client::{ExchangeRecord, OutcomeKind};

use crate::cdn::CheckVerdict;
use crate::documents::DocumentAnswer;
use crate::jobs::{self, Job, RunReport};

/// Documents checked and recorded, by `kind`, `verdict` and `mode`. Replays are not counted.
pub const DOCUMENTS: &str = "imark_documents_total";
/// Items of those documents, by `verdict`.
pub const DOCUMENT_ITEMS: &str = "imark_document_items_total";
/// Criteria that fired on an item and were not ignored, by `criterion` and `action`.
pub const CRITERIA: &str = "imark_criteria_total";
/// One True API call from the first byte sent to the outcome, by `host` and `endpoint`.
pub const TRUEMARK_DURATION: &str = "imark_truemark_request_duration_seconds";
/// True API calls that got no answer to decide from, by `host`, `endpoint` and `outcome`.
pub const TRUEMARK_ERRORS: &str = "imark_truemark_errors_total";
/// Document checks that moved past their first host, by the check's final `verdict`.
pub const FAILOVERS: &str = "imark_truemark_failovers_total";
/// Tenants with at least one ЧЗ list in no-check mode, counted from Postgres by the worker.
pub const TENANTS_NO_CHECK: &str = "imark_tenants_no_check";
/// Finished job runs, one per group, by `job` and `outcome` (`ok`, `failed`, `skipped`).
pub const JOB_RUNS: &str = "imark_job_runs_total";
/// How long a job run took, by `job`.
pub const JOB_DURATION: &str = "imark_job_run_duration_seconds";
/// Job failures, by `job` and `stage`: `run` (the run's own outcome), `record` (Postgres or
/// Redis failed around it) or `fan_out` (a tick's runs were not queued).
pub const JOB_FAILURES: &str = "imark_job_failures_total";
/// An API request from its arrival to its answer, by `method`, `route` (the matched template,
/// `unmatched` otherwise) and `status`.
pub const HTTP_DURATION: &str = "imark_http_request_duration_seconds";

/// Every metric name above, for dashboards and their tests.
pub const NAMES: [&str; 11] = [
    DOCUMENTS,
    DOCUMENT_ITEMS,
    CRITERIA,
    TRUEMARK_DURATION,
    TRUEMARK_ERRORS,
    FAILOVERS,
    TENANTS_NO_CHECK,
    JOB_RUNS,
    JOB_DURATION,
    JOB_FAILURES,
    HTTP_DURATION,
];

/// Histogram bounds in seconds. 1.5 s is ПП 1944's limit for one ЧЗ attempt.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram buckets are compacted while nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How often the worker counts the tenants in no-check mode.
pub const MODES_COUNT_INTERVAL: Duration = Duration::from_secs(30);

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The recorder could not be installed, or the metrics address could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("the metrics recorder could not be installed: {0}")]
    Install(String),
    #[error("IMARK_METRICS_ADDR {addr} could not be bound")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Installs the Prometheus recorder for this process, once; later calls return the same handle.
///
/// # Errors
/// When another recorder was installed first, by something other than this function.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(MetricsError::Install)
}

/// Whether [`install`] has put the recorder in place in this process.
pub fn is_installed() -> bool {
    matches!(HANDLE.get(), Some(Ok(_)))
}

/// The metrics listener, bound and not yet serving.
#[derive(Debug)]
pub struct Exporter {
    listener: TcpListener,
    handle: PrometheusHandle,
    header_read_timeout: Duration,
}

/// How long a scraper may take to send a request's headers (or keep a connection idle) unless
/// [`Exporter::header_read_timeout`] says otherwise: `IMARK_HEADER_READ_TIMEOUT_MS`'s default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Exporter {
    /// Installs the recorder (once per process) and binds `addr`.
    ///
    /// # Errors
    /// When the recorder cannot be installed or the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let handle = install()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(Self {
            listener,
            handle,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        })
    }

    /// Disconnects a client that has not sent a request's headers within `timeout`, or keeps
    /// a connection idle that long, as the API's own listener does.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The address bound, with the port the system chose for port 0.
    ///
    /// # Errors
    /// When the socket cannot tell.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `/metrics` in a task of its own until the returned guard is dropped.
    pub fn spawn(self) -> Serving {
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(addr = %addr, "metrics listening");
        }
        Serving(tokio::spawn(serve(
            self.listener,
            self.handle,
            self.header_read_timeout,
        )))
    }
}

/// The running metrics listener; dropping it stops it.
#[derive(Debug)]
pub struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve(listener: TcpListener, handle: PrometheusHandle, header_read_timeout: Duration) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let upkeep = handle.clone();
    let _upkeep = Serving(tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    }));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error.message = %e, "metrics connection not accepted");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answer = scrape(&request, &handle);
                async move { Ok::<_, Infallible>(answer) }
            });
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error.message = %e, "metrics connection ended");
            }
        });
    }
}

fn scrape(request: &Request<Incoming>, handle: &PrometheusHandle) -> Response<String> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, handle.render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A recorded document: its kind, verdict and mode, each item's verdict, each reason.
pub fn document(answer: &DocumentAnswer) {
    metrics::counter!(
        DOCUMENTS,
        "kind" => label(&answer.kind),
        "verdict" => label(&answer.verdict),
        "mode" => answer.mode.as_str(),
    )
    .increment(1);
    for item in &answer.items {
        metrics::counter!(DOCUMENT_ITEMS, "verdict" => label(&item.verdict)).increment(1);
        for reason in &item.reasons {
            metrics::counter!(
                CRITERIA,
                "criterion" => label(&reason.criterion),
                "action" => label(&reason.action),
            )
            .increment(1);
        }
    }
}

/// One True API call, as its record and outcome tell.
pub fn truemark_exchange(record: &ExchangeRecord, outcome: OutcomeKind) {
    let host = record.url.host_str().unwrap_or("unknown").to_owned();
    let endpoint = record.endpoint.as_str();
    metrics::histogram!(TRUEMARK_DURATION, "host" => host.clone(), "endpoint" => endpoint)
        .record(record.duration.as_secs_f64());
    if !matches!(outcome, OutcomeKind::Answered | OutcomeKind::Refused) {
        metrics::counter!(
            TRUEMARK_ERRORS,
            "host" => host,
            "endpoint" => endpoint,
            "outcome" => outcome.as_str(),
        )
        .increment(1);
    }
}

/// A document check that ended after trying `hosts_tried` hosts, with `verdict` if it ended in
/// one; counted as a failover when it tried more than one.
pub fn check_finished(hosts_tried: usize, verdict: Option<&CheckVerdict>) {
    if hosts_tried < 2 {
        return;
    }
    let verdict = match verdict {
        Some(CheckVerdict::Answered(_)) => "answered",
        Some(CheckVerdict::Refused(_)) => "refused",
        Some(CheckVerdict::Emergency) => "emergency",
        Some(CheckVerdict::NoAnswer) => "no_answer",
        Some(CheckVerdict::Unauthorized) => "unauthorized",
        None => "error",
    };
    metrics::counter!(FAILOVERS, "verdict" => verdict).increment(1);
}

/// A finished job run.
pub fn job_run(report: &RunReport) {
    let job = report.job.as_str();
    metrics::counter!(JOB_RUNS, "job" => job, "outcome" => report.outcome.as_str()).increment(1);
    metrics::histogram!(JOB_DURATION, "job" => job).record(report.duration.as_secs_f64());
    if report.outcome == jobs::Outcome::Failed {
        job_failure(report.job, "run");
    }
}

/// A job failure outside a run's own outcome: `record` or `fan_out` (see [`JOB_FAILURES`]).
pub fn job_failure(job: Job, stage: &'static str) {
    metrics::counter!(JOB_FAILURES, "job" => job.as_str(), "stage" => stage).increment(1);
}

/// An answered API request. `route` is the matched route template (or `unmatched`); a method
/// other than the standard ones is counted as `other`, so clients cannot mint label values.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    metrics::histogram!(
        HTTP_DURATION,
        "method" => method_label(method),
        "route" => route.to_owned(),
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
}

/// Counts the tenants with a ЧЗ list in no-check mode and sets [`TENANTS_NO_CHECK`]. Every
/// worker replica counts the same table, so the gauge agrees across them (take their `max`).
///
/// # Errors
/// When Postgres fails.
pub async fn count_tenants_without_checks(db: &DatabaseConnection) -> crate::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(DISTINCT tenant_id) AS n FROM truemark_modes WHERE mode = 'no_check'",
        ))
        .await?;
    let count: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    let count = u64::try_from(count).unwrap_or_default();
    // Exact: a tenant count is far below 2^53.
    metrics::gauge!(TENANTS_NO_CHECK).set(count as f64);
    Ok(count)
}

/// `method` if it is one of the methods the API knows, `other` otherwise.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// A domain enum's wire name (its serde `snake_case` form), used as a label value.
fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_prefixed_and_listed_once() {
        for name in NAMES {
            assert!(name.starts_with("imark_"), "{name}");
            assert_eq!(NAMES.iter().filter(|n| **n == name).count(), 1, "{name}");
        }
    }

    #[test]
    fn installing_twice_returns_the_same_recorder() {
        let first = install().unwrap();
        let second = install().unwrap();

        metrics::counter!("imark_test_total").increment(2);

        assert!(first.render().contains("imark_test_total 2"));
        assert!(second.render().contains("imark_test_total 2"));
    }

    #[test]
    fn domain_enums_label_by_their_wire_names() {
        assert_eq!(
            label(&crate::policy::Criterion::SoldHereBefore),
            "sold_here_before"
        );
        assert_eq!(label(&crate::documents::Verdict::Block), "block");
    }
}
