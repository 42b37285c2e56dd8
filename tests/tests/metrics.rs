//! Prometheus metrics end to end: the API and the worker started with `IMARK_METRICS_ADDR`,
//! real documents and job runs against the ЧЗ emulator, and `/metrics` scraped over HTTP.
//!
//! The recorder is global to the process, and nextest runs each test in a process of its own;
//! values are still compared as "at least" where another exchange of the same test may add to
//! them (the first check's rediscovery, the worker's catch-up ticks).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use imark_core::cdn::CdnGroup;
use imark_core::metrics;
use imark_core::modes::{self, Mode, Reason};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use truemark::client::Endpoint;
use truemark_sandbox::{Fault, FaultTarget, Fixture, Sandbox, SandboxConfig};
use uuid::Uuid;

use imark_tests::TestApp;

/// A valid tobacco pack of the acceptance catalogue, sold at its maximum retail price.
const CODE: &str = "04601653035829H;dV)bFABVUdGVz";

/// Longer than anything here takes; only a broken test waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// An address on the loopback that nothing listens on right now.
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The API with metrics on `metrics`, a tenant and a store configured for a two-host emulator,
/// and the store's token.
struct World {
    app: TestApp,
    sandbox: Sandbox,
    tenant: Uuid,
    store: String,
    metrics: SocketAddr,
}

async fn world() -> World {
    let metrics = free_address();
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_METRICS_ADDR".into(), metrics.to_string());
        vars.insert("IMARK_TRUEMARK_CHECK_TIMEOUT_MS".into(), "400".into());
    })
    .await;
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        host_ports: vec![0; 2],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (tenant, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store_id = app.create_store(&hq, "s1").await;
    app.point_at_sandbox(&hq, &sandbox, "test").await;
    let (_, store) = app.issue_store_token(&hq, store_id, "pos").await;
    World {
        app,
        sandbox,
        tenant,
        store,
        metrics,
    }
}

impl World {
    async fn sale(&self, id: &str) -> Value {
        let body = json!({
            "id": id,
            "type": "sale",
            "fiscal_drive_number": "7281440500012345",
            "items": [{"code": CODE, "price": 9900}]
        });
        let response = self.app.post("/document", &self.store, &body).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    }

    fn group(&self) -> CdnGroup {
        CdnGroup::new(
            self.sandbox.discovery_url().as_str().parse().unwrap(),
            "test",
        )
    }

    /// The emulator's index of the host that has answered a code check so far.
    fn checking_host(&self) -> usize {
        let stats = self.sandbox.control().stats();
        (0..2)
            .find(|&i| stats.host_calls(i, Endpoint::CodesCheck) > 0)
            .expect("a host checked the codes")
    }
}

async fn scrape(http: &reqwest::Client, address: SocketAddr, path: &str) -> (u16, String) {
    let response = http
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .expect("the metrics listener answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// One sample line of the text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a numeric value"),
            }
        })
        .collect()
}

/// `a="x",b="y\"z"` → pairs; values may hold commas, braces and escaped quotes.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "a label value is quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        labels.push((key, value));
    }
    labels
}

/// The sum of every series of `name` that carries all of `labels`; `None` when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

#[tokio::test]
async fn documents_and_their_requests_are_counted_on_the_metrics_listener() {
    let w = world().await;
    let allowed = w.sale("m1").await;
    let blocked = w.sale("m2").await;
    assert_eq!(allowed["verdict"], "allow", "{allowed}");
    assert_eq!(blocked["verdict"], "block", "{blocked}");
    let replay = w.sale("m2").await;
    assert_eq!(replay["verdict"], "block");

    let (status, text) = scrape(&w.app.http, w.metrics, "/metrics").await;

    assert_eq!(status, 200);
    let samples = parse(&text);
    let sale = |verdict| [("kind", "sale"), ("verdict", verdict), ("mode", "online")];
    assert_eq!(
        value(&samples, metrics::DOCUMENTS, &sale("allow")),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, metrics::DOCUMENTS, &sale("block")),
        Some(1.0),
        "a replayed answer is not counted again"
    );
    assert_eq!(
        value(&samples, metrics::DOCUMENT_ITEMS, &[("verdict", "allow")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, metrics::DOCUMENT_ITEMS, &[("verdict", "block")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            metrics::CRITERIA,
            &[("criterion", "sold_here_before"), ("action", "block")]
        ),
        Some(1.0)
    );

    let route = [
        ("method", "POST"),
        ("route", "/document"),
        ("status", "200"),
    ];
    let count = format!("{}_count", metrics::HTTP_DURATION);
    let bucket = format!("{}_bucket", metrics::HTTP_DURATION);
    assert_eq!(value(&samples, &count, &route), Some(3.0));
    let mut all_under_a_minute = route.to_vec();
    all_under_a_minute.push(("le", "+Inf"));
    assert_eq!(value(&samples, &bucket, &all_under_a_minute), Some(3.0));
    assert_eq!(
        value(
            &samples,
            &count,
            &[("route", "/stores"), ("method", "POST"), ("status", "201")]
        ),
        Some(1.0)
    );

    let checks = format!("{}_count", metrics::TRUEMARK_DURATION);
    let codes_check = [("host", "127.0.0.1"), ("endpoint", "codes_check")];
    assert_eq!(value(&samples, &checks, &codes_check), Some(2.0));
    assert_eq!(value(&samples, metrics::TRUEMARK_ERRORS, &[]), None);
    assert_eq!(value(&samples, metrics::FAILOVERS, &[]), None);
    for sample in &samples {
        for (_, label) in &sample.labels {
            assert!(
                !label.contains(&w.tenant.to_string()),
                "no tenant id is a label: {sample:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_check_that_moves_past_a_failed_host_counts_a_failover_and_the_error() {
    let w = world().await;
    w.sale("f1").await;
    let dead = w.checking_host();
    let fault = Fault::HttpStatus {
        status: 500,
        retry_after_secs: None,
    };
    w.sandbox
        .control()
        .set_fault(FaultTarget::host(dead).only(Endpoint::CodesCheck), &fault)
        .unwrap();

    let answer = w.sale("f2").await;

    assert_eq!(answer["mode"], "online", "{answer}");
    let (_, text) = scrape(&w.app.http, w.metrics, "/metrics").await;
    let samples = parse(&text);
    assert_eq!(
        value(&samples, metrics::FAILOVERS, &[("verdict", "answered")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            metrics::TRUEMARK_ERRORS,
            &[
                ("host", "127.0.0.1"),
                ("endpoint", "codes_check"),
                ("outcome", "host_failure")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_metrics_listener_serves_only_its_one_path() {
    let w = world().await;

    let (not_found, _) = scrape(&w.app.http, w.metrics, "/healthz").await;
    let refused = w
        .app
        .http
        .post(format!("http://{}/metrics", w.metrics))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();

    assert_eq!(not_found, 404);
    assert_eq!(refused, 405);
}

/// The API alone with metrics on `metrics`, and any settings `more` adds.
async fn app_with_metrics(more: &[(&str, &str)]) -> (TestApp, SocketAddr) {
    let metrics = free_address();
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_METRICS_ADDR".into(), metrics.to_string());
        for (name, value) in more {
            vars.insert((*name).into(), (*value).into());
        }
    })
    .await;
    (app, metrics)
}

#[tokio::test]
async fn made_up_methods_and_raw_paths_mint_no_label_values() {
    let (app, address) = app_with_metrics(&[]).await;
    for method in ["MFOO1", "MFOO2", "GET"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.send(app.http.request(method, app.url("/me"))).await;
    }
    app.send(app.http.get(app.url("/audit/records/raw-path-1234")))
        .await;
    app.send(app.http.get(app.url("/no-such-route-5678"))).await;

    let (status, text) = scrape(&app.http, address, "/metrics").await;

    assert_eq!(status, 200);
    let samples = parse(&text);
    let count = format!("{}_count", metrics::HTTP_DURATION);
    let requests: Vec<&Sample> = samples.iter().filter(|s| s.name == count).collect();
    let label = |sample: &Sample, name: &str| {
        sample
            .labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let others: f64 = requests
        .iter()
        .filter(|s| label(s, "method") == "other")
        .map(|s| s.value)
        .sum();
    assert_eq!(others, 2.0, "{text}");
    for sample in &requests {
        let method = label(sample, "method");
        assert!(
            [
                "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"
            ]
            .contains(&method.as_str()),
            "{sample:?}"
        );
        let route = label(sample, "route");
        assert!(
            !route.contains("1234") && !route.contains("5678"),
            "a route is its template, never the raw path: {sample:?}"
        );
        assert!(route == "unmatched" || route.starts_with('/'), "{sample:?}");
        assert!(label(sample, "status").parse::<u16>().is_ok(), "{sample:?}");
    }
    assert!(
        requests
            .iter()
            .any(|s| label(s, "route").starts_with("/audit/records/{")),
        "{text}"
    );
    assert!(requests.iter().any(|s| label(s, "route") == "unmatched"));
}

#[tokio::test]
async fn the_metrics_listener_disconnects_a_client_that_stalls_in_its_headers() {
    // 200 ms, far below hyper's own default of 30 s; the guard of 5 s is below it too, so the
    // test fails if the listener ignores the setting.
    let (app, address) = app_with_metrics(&[("IMARK_HEADER_READ_TIMEOUT_MS", "200")]).await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();

    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: imark\r\nAccept: te")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the metrics listener closes a stalled connection");
    let (status, _) = scrape(&app.http, address, "/metrics").await;

    // Closed on the server's initiative with no request handled (or a bare 408).
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        closed.is_err() || answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(status, 200, "the listener serves others meanwhile");
}

#[tokio::test]
async fn the_worker_reports_its_job_runs_and_the_tenants_in_no_check_mode() {
    let w = world().await;
    modes::switch(
        &w.app.db,
        w.tenant,
        &w.group(),
        Mode::NoCheck,
        Reason::NoHostAnswered,
        &[],
    )
    .await
    .unwrap();
    // Every host fails, so that no recovery brings the tenant back while the test looks.
    let fault = Fault::HttpStatus {
        status: 500,
        retry_after_secs: None,
    };
    w.sandbox
        .control()
        .set_fault(FaultTarget::every_host(), &fault)
        .unwrap();
    let mut config = w.app.config.clone();
    let worker_metrics = free_address();
    config.metrics_addr = Some(worker_metrics);
    // The API installed the recorder in this process already: the worker's install reuses it.
    let worker = tokio::spawn(imark_worker::run(config, std::future::pending()));

    let started = Instant::now();
    let samples = loop {
        assert!(
            started.elapsed() < PATIENCE,
            "the worker's metrics never came"
        );
        if let Ok(response) = w
            .app
            .http
            .get(format!("http://{worker_metrics}/metrics"))
            .send()
            .await
        {
            let samples = parse(&response.text().await.unwrap());
            let runs = value(&samples, metrics::JOB_RUNS, &[("job", "discover")]);
            if value(&samples, metrics::TENANTS_NO_CHECK, &[]).is_some() && runs.is_some() {
                break samples;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(value(&samples, metrics::TENANTS_NO_CHECK, &[]), Some(1.0));
    let health_errors = value(
        &samples,
        metrics::TRUEMARK_ERRORS,
        &[("endpoint", "health_check"), ("outcome", "host_failure")],
    );
    assert!(
        health_errors.unwrap_or_default() >= 2.0,
        "{health_errors:?}"
    );
    let duration = format!("{}_count", metrics::JOB_DURATION);
    assert!(value(&samples, &duration, &[("job", "discover")]).is_some());
    // Its graceful stop is worker.rs' subject; here it only has to go.
    worker.abort();
}
