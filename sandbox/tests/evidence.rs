//! The exchange records the client returns are evidence: complete enough to prove a check was
//! tried, and free of the API key whatever the outcome.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

mod common;

use chrono::Utc;
use common::*;
use serde_json::Value;
use truemark::client::{Endpoint, HostFailure, Outcome, TrueApiClient};
use truemark_sandbox::{Fault, FaultTarget, Sandbox, Service};

#[tokio::test]
async fn no_record_of_any_outcome_holds_the_api_key() {
    let sandbox = start_sandbox().await;
    let client = impatient_client();
    let faults = [
        None,
        Some(Fault::NotProcessed {
            code: 7,
            description: None,
        }),
        Some(Fault::HttpStatus {
            status: 203,
            retry_after_secs: None,
        }),
        Some(Fault::HttpStatus {
            status: 401,
            retry_after_secs: None,
        }),
        Some(Fault::HttpStatus {
            status: 429,
            retry_after_secs: Some(1),
        }),
        Some(Fault::HttpStatus {
            status: 504,
            retry_after_secs: None,
        }),
        Some(Fault::CrossBorderOutage { status: 500 }),
        Some(Fault::MalformedBody { body: None }),
        Some(Fault::NeverAnswer),
    ];
    let mut evidence = Vec::new();

    for fault in &faults {
        set_or_clear(&sandbox, fault.as_ref());
        evidence.extend(every_call(&client, &sandbox).await);
    }
    sandbox
        .control()
        .refuse_connections(Service::Host(0))
        .await
        .unwrap();
    sandbox
        .control()
        .refuse_connections(Service::Discovery)
        .await
        .unwrap();
    evidence.extend(every_call(&client, &sandbox).await);

    assert_eq!(evidence.len(), (faults.len() + 1) * 3);
    for text in &evidence {
        assert!(!text.contains(API_KEY), "the key leaked into: {text}");
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_record_keeps_both_bodies_exactly_as_they_travelled() {
    let sandbox = start_sandbox().await;
    let check = request(&[&code_of("5.22")]);
    let started = Utc::now();

    let exchange = client()
        .check_codes(&host(&sandbox, 0), &key(), &check)
        .await;

    let record = &exchange.record;
    assert_eq!(record.endpoint, Endpoint::CodesCheck);
    assert_eq!(record.method, "POST");
    assert_eq!(
        record.url,
        host(&sandbox, 0).endpoint_url(Endpoint::CodesCheck)
    );
    assert_eq!(record.origin(), host(&sandbox, 0).to_string());
    assert!(record.started_at >= started && record.started_at <= Utc::now());
    assert_eq!(record.http_status, Some(200));
    assert_eq!(record.error, None);

    let sent = record.request_body.as_ref().unwrap();
    assert_eq!(sent.text, check.to_json_text());
    assert!(
        sent.text.contains("\\\""),
        "the quote in the 5.22 serial travels escaped"
    );

    let received = record.answer_body.as_ref().unwrap();
    assert!(!received.truncated);
    assert_eq!(received.len, received.text.len());
    let answer = exchange.outcome.answer().unwrap();
    let received_json: Value = serde_json::from_str(&received.text).unwrap();
    assert_eq!(&received_json["codes"][0], answer.codes[0].raw());
    assert_eq!(received_json["reqTimestamp"], answer.req_timestamp.unwrap());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_failed_call_is_recorded_with_its_error_and_no_status() {
    let sandbox = start_sandbox().await;
    sandbox
        .control()
        .refuse_connections(Service::Host(2))
        .await
        .unwrap();

    let exchange = client().health_check(&host(&sandbox, 2), &key()).await;

    assert!(matches!(
        exchange.outcome,
        Outcome::HostFailure(HostFailure::Connect { .. })
    ));
    assert_eq!(exchange.record.http_status, None);
    assert_eq!(exchange.record.answer_body, None);
    assert_eq!(exchange.record.request_body, None);
    assert!(
        exchange
            .record
            .error
            .as_deref()
            .is_some_and(|error| !error.is_empty())
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_server_error_keeps_the_body_the_host_sent() {
    let sandbox = start_sandbox().await;
    sandbox
        .control()
        .set_fault(
            FaultTarget::host(0),
            &Fault::CrossBorderOutage { status: 500 },
        )
        .unwrap();

    let exchange = client()
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code_of("5.2")]))
        .await;

    assert_eq!(exchange.record.http_status, Some(500));
    let body = &exchange.record.answer_body.as_ref().unwrap().text;
    assert!(body.contains("5000"), "{body}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_record_serialises_for_storage() {
    let sandbox = start_sandbox().await;

    let exchange = client().health_check(&host(&sandbox, 1), &key()).await;

    let stored = serde_json::to_value(&exchange.record).unwrap();
    assert_eq!(stored["endpoint"], "health_check");
    assert_eq!(stored["method"], "GET");
    assert_eq!(stored["http_status"], 200);
    assert!(stored["duration_ms"].is_u64());
    assert!(
        stored["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v4/true-api/cdn/health/check")
    );
    sandbox.shutdown().await;
}

fn set_or_clear(sandbox: &Sandbox, fault: Option<&Fault>) {
    let control = sandbox.control();
    for target in [FaultTarget::discovery(), FaultTarget::host(0)] {
        match fault {
            Some(fault) => control.set_fault(target, fault).unwrap(),
            None => control.clear_fault(target).unwrap(),
        }
    }
}

/// The Debug text of each endpoint's exchange with the serialised record appended.
async fn every_call(client: &TrueApiClient, sandbox: &Sandbox) -> Vec<String> {
    let key = key();
    let host = host(sandbox, 0);
    let list = client.cdn_info(&base(sandbox), &key).await;
    let health = client.health_check(&host, &key).await;
    let check = client
        .check_codes(&host, &key, &request(&[&code_of("5.2")]))
        .await;

    vec![
        format!("{list:?} {}", serde_json::to_string(&list.record).unwrap()),
        format!(
            "{health:?} {}",
            serde_json::to_string(&health.record).unwrap()
        ),
        format!(
            "{check:?} {}",
            serde_json::to_string(&check.record).unwrap()
        ),
    ]
}
