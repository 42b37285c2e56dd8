//! CRPT's acceptance catalogue, case by case: each row's code goes through the True API
//! client to the emulator and comes back with the state and the outcome the row describes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

mod common;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::*;
use futures::future::join_all;
use serde_json::Value;
use truemark::client::{HostFailure, Outcome, TrueApiClient};
use truemark::wire::{CodesCheckAnswer, parse_wire_instant};
use truemark_sandbox::fixture::{Behaviour, FieldValue, FixtureCase};
use truemark_sandbox::{Fixture, Sandbox};

#[tokio::test]
async fn every_acceptance_case_comes_back_as_its_row_describes() {
    let fixture = Fixture::acceptance().unwrap();
    let sandbox = start_sandbox_with(fixture.clone()).await;
    let client = client();

    for case in fixture.cases() {
        sandbox.control().activate_case(&case.case).unwrap();

        match expected_behaviour(case) {
            Some(Behaviour::HttpStatus(status)) => {
                expect_status_on_every_host(&client, &sandbox, case, status).await;
            }
            Some(Behaviour::Delay(delay)) if delay > client.timeouts().codes_check => {
                expect_timeout_on_every_host(&client, &sandbox, case).await;
            }
            Some(Behaviour::Delay(_)) | None => {
                expect_fields(&client, &sandbox, case).await;
            }
        }
    }

    sandbox.shutdown().await;
}

#[tokio::test]
async fn case_5_21_is_an_emergency_declared_with_203() {
    let sandbox = start_sandbox().await;

    let exchange = client()
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code_of("5.21")]))
        .await;

    assert_eq!(exchange.outcome, Outcome::Emergency { status: 203 });
    sandbox.shutdown().await;
}

#[tokio::test]
async fn case_504_is_a_host_failure_on_every_host() {
    let sandbox = start_sandbox().await;
    let client = client();
    let check = request(&[&code_of("504")]);

    for host in hosts(&sandbox) {
        let exchange = client.check_codes(&host, &key(), &check).await;

        assert_eq!(
            exchange.outcome,
            Outcome::HostFailure(HostFailure::ServerError { status: 504 }),
            "{host}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn case_514_times_out_within_the_default_one_and_a_half_seconds() {
    let sandbox = start_sandbox().await;
    sandbox.control().activate_case("514").unwrap();
    let client = client();

    let exchange = client
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code_of("514")]))
        .await;

    assert_eq!(
        exchange.outcome,
        Outcome::TimedOut {
            after: client.timeouts().codes_check
        }
    );
    assert_eq!(exchange.record.http_status, None);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn case_5_1_is_the_default_of_the_code_it_shares_with_case_514() {
    let sandbox = start_sandbox().await;

    let answer = answered(&client(), &sandbox, &code_of("5.1")).await;

    assert_eq!(answer.codes[0].status().utilised, Some(false));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn cases_5_7_and_5_14_differ_only_in_the_case_of_the_tail() {
    let sandbox = start_sandbox().await;
    let client = client();

    let expired = answered(&client, &sandbox, &code_of("5.7")).await;
    let forged = answered(&client, &sandbox, &code_of("5.14")).await;

    let expired = expired.codes[0].status();
    let forged = forged.codes[0].status();
    assert!(expired.expire_date.is_some());
    assert_eq!(expired.verified, Some(true));
    assert_eq!(forged.verified, Some(false));
    assert_eq!(forged.error_code, Some(6));
    assert_eq!(forged.expire_date, None);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_code_missing_from_the_fixture_is_not_found() {
    let sandbox = start_sandbox().await;

    let answer = answered(&client(), &sandbox, UNKNOWN_CODE).await;

    let status = answer.codes[0].status();
    assert_eq!(status.found, Some(false));
    assert_eq!(status.error_code, Some(10));
    assert_eq!(status.cis.as_deref(), Some(UNKNOWN_CODE));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_receipt_of_several_codes_is_answered_in_order() {
    let sandbox = start_sandbox().await;
    let codes = [code_of("5.2"), code_of("5.6"), UNKNOWN_CODE.to_owned()];
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();

    let exchange = client()
        .check_codes(&host(&sandbox, 1), &key(), &request(&codes))
        .await;

    let answer = exchange.outcome.answer().expect("answered");
    let answered: Vec<Option<&str>> = answer
        .codes
        .iter()
        .map(|code| code.status().cis.as_deref())
        .collect();
    assert_eq!(
        answered,
        codes.iter().copied().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(answer.codes[1].status().ogvs, Some(vec!["RPN".to_owned()]));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn each_answer_carries_a_fresh_request_id_and_timestamp() {
    let sandbox = start_sandbox().await;
    let client = client();
    let before = Utc::now().timestamp_millis();

    let first = answered(&client, &sandbox, &code_of("5.2")).await;
    let second = answered(&client, &sandbox, &code_of("5.2")).await;

    let after = Utc::now().timestamp_millis();
    let first_id = first.req_id.as_deref().unwrap();
    assert!(uuid::Uuid::parse_str(first_id).is_ok(), "{first_id}");
    assert_ne!(first.req_id, second.req_id);
    for answer in [&first, &second] {
        let timestamp = answer.req_timestamp.unwrap();
        assert!((before..=after).contains(&timestamp), "{timestamp}");
    }
    sandbox.shutdown().await;
}

/// The behaviour a row asks of every host, if any. The catalogue scopes none to one host.
fn expected_behaviour(case: &FixtureCase) -> Option<Behaviour> {
    case.script
        .behaviours()
        .iter()
        .find(|scoped| scoped.hosts == truemark_sandbox::fixture::HostScope::Every)
        .map(|scoped| scoped.behaviour)
}

async fn expect_status_on_every_host(
    client: &TrueApiClient,
    sandbox: &Sandbox,
    case: &FixtureCase,
    status: u16,
) {
    let check = request(&[&case.code]);
    for host in hosts(sandbox) {
        let outcome = client.check_codes(&host, &key(), &check).await.outcome;

        let expected = match status {
            203 | 418 => Outcome::Emergency { status },
            _ => Outcome::HostFailure(HostFailure::ServerError { status }),
        };
        assert_eq!(outcome, expected, "case {} on {host}", case.case);
    }
}

async fn expect_timeout_on_every_host(
    client: &TrueApiClient,
    sandbox: &Sandbox,
    case: &FixtureCase,
) {
    let check = request(&[&case.code]);
    let key = key();
    let hosts = hosts(sandbox);

    // All hosts at once: one time limit instead of one per host.
    let exchanges = join_all(
        hosts
            .iter()
            .map(|host| client.check_codes(host, &key, &check)),
    )
    .await;

    for exchange in exchanges {
        assert_eq!(
            exchange.outcome,
            Outcome::TimedOut {
                after: client.timeouts().codes_check
            },
            "case {} on {}",
            case.case,
            exchange.record.url
        );
    }
}

async fn expect_fields(client: &TrueApiClient, sandbox: &Sandbox, case: &FixtureCase) {
    let day_before = Utc::now().date_naive();
    let answer = answered(client, sandbox, &case.code).await;
    let day_after = Utc::now().date_naive();

    let [code] = answer.codes.as_slice() else {
        panic!("case {}: one code expected", case.case);
    };
    assert_eq!(code.status().cis.as_deref(), Some(case.code.as_str()));
    for (field, value) in case.script.fields() {
        let reported = &code.raw()[field];
        match value {
            FieldValue::Json(expected) => {
                assert_eq!(reported, expected, "case {}: {field}", case.case);
            }
            FieldValue::DaysFromToday(days) => {
                let date = reported_date(reported);
                let allowed = [shift(day_before, *days), shift(day_after, *days)];
                assert!(
                    allowed.contains(&date),
                    "case {}: {field} {date}",
                    case.case
                );
            }
        }
    }
}

async fn answered(client: &TrueApiClient, sandbox: &Sandbox, code: &str) -> CodesCheckAnswer {
    let exchange = client
        .check_codes(&host(sandbox, 0), &key(), &request(&[code]))
        .await;
    match exchange.outcome {
        Outcome::Answered(answer) => answer,
        other => panic!("{code:?} was not answered: {other:?}"),
    }
}

fn reported_date(reported: &Value) -> NaiveDate {
    let text = reported.as_str().expect("a date is text");
    let instant: DateTime<Utc> = parse_wire_instant(text).unwrap();
    instant.date_naive()
}

fn shift(day: NaiveDate, days: i64) -> NaiveDate {
    day + TimeDelta::days(days)
}
