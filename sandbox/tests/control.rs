//! The controls, in process and over the HTTP control API: discovery list changes, added
//! hosts, code states, counters, and the control API's own errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use truemark::client::{CdnHost, Endpoint, HostFailure, Outcome, OutcomeKind};
use truemark_sandbox::{Fault, FaultTarget, Sandbox, Service};

/// A plain HTTP client for the control API.
fn http() -> reqwest::Client {
    truemark::tls::install_crypto_provider();
    reqwest::Client::new()
}

fn control_url(sandbox: &Sandbox, path: &str) -> String {
    format!(
        "{}{}",
        sandbox.control_url().as_str().trim_end_matches('/'),
        path
    )
}

async fn listed_hosts(sandbox: &Sandbox) -> Vec<String> {
    let exchange = client().cdn_info(&base(sandbox), &key()).await;
    let list = exchange
        .outcome
        .answer()
        .expect("the list is answered")
        .clone();
    list.hosts.iter().map(ToString::to_string).collect()
}

fn urls(sandbox: &Sandbox) -> Vec<String> {
    hosts(sandbox).iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn discovery_lists_every_host_by_default() {
    let sandbox = start_sandbox().await;

    let listed = listed_hosts(&sandbox).await;

    assert_eq!(listed.len(), 3);
    assert_eq!(listed, urls(&sandbox));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_discovery_list_can_drop_and_replace_hosts() {
    let sandbox = start_sandbox().await;
    let all = urls(&sandbox);
    let replacement = "https://cdn11.crpt.ru".to_owned();

    sandbox
        .control()
        .set_discovery_hosts(vec![all[2].clone(), replacement.clone()]);
    let changed = listed_hosts(&sandbox).await;
    sandbox.control().reset_discovery_hosts();
    let restored = listed_hosts(&sandbox).await;

    assert_eq!(changed, [all[2].clone(), replacement]);
    assert_eq!(restored, all);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_listed_host_that_is_down_fails_its_health_check() {
    let sandbox = start_sandbox().await;
    sandbox
        .control()
        .refuse_connections(Service::Host(1))
        .await
        .unwrap();
    let client = client();

    let listed: Vec<CdnHost> = listed_hosts(&sandbox)
        .await
        .iter()
        .map(|url| url.parse().unwrap())
        .collect();
    let mut kinds = Vec::new();
    for host in &listed {
        kinds.push(client.health_check(host, &key()).await.outcome.kind());
    }

    assert_eq!(
        kinds,
        [
            OutcomeKind::Answered,
            OutcomeKind::HostFailure,
            OutcomeKind::Answered
        ]
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_added_host_is_listed_and_answers() {
    let sandbox = start_sandbox().await;

    let (index, url) = sandbox.control().add_host().await.unwrap();
    let host: CdnHost = CdnHost::try_from(url).unwrap();
    let check = client()
        .check_codes(&host, &key(), &request(&[&code_of("5.5")]))
        .await;

    assert_eq!(index, 3);
    assert!(listed_hosts(&sandbox).await.contains(&host.to_string()));
    assert_eq!(
        check.outcome.answer().unwrap().codes[0].status().sold,
        Some(true)
    );
    assert_eq!(
        sandbox
            .control()
            .stats()
            .host_calls(3, Endpoint::CodesCheck),
        1
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn calls_are_counted_per_host_and_endpoint_until_reset() {
    let sandbox = start_sandbox().await;
    let client = client();
    let check = request(&[&code_of("5.2")]);

    client.cdn_info(&base(&sandbox), &key()).await;
    client.health_check(&host(&sandbox, 0), &key()).await;
    client.health_check(&host(&sandbox, 1), &key()).await;
    client.check_codes(&host(&sandbox, 1), &key(), &check).await;
    client
        .check_codes(&host(&sandbox, 1), &wrong_key(), &check)
        .await;
    let counted = sandbox.control().stats();
    sandbox.control().reset_stats();
    let after_reset = sandbox.control().stats();

    assert_eq!(counted.cdn_info, 1);
    assert_eq!(counted.host_calls(0, Endpoint::HealthCheck), 1);
    assert_eq!(counted.host_calls(0, Endpoint::CodesCheck), 0);
    assert_eq!(counted.host_calls(1, Endpoint::HealthCheck), 1);
    assert_eq!(
        counted.host_calls(1, Endpoint::CodesCheck),
        2,
        "unauthorised calls count too"
    );
    assert_eq!(counted.total(Endpoint::HealthCheck), 2);
    assert_eq!(after_reset.total(Endpoint::CodesCheck), 0);
    assert_eq!(after_reset.hosts.len(), 3);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_code_state_set_at_run_time_answers_before_the_fixture() {
    let sandbox = start_sandbox().await;
    let code = code_of("5.2");
    let client = client();

    sandbox
        .control()
        .set_code_state(&code, "isBlocked=true ogvs=[\"FNS\"]")
        .unwrap();
    let overridden = client
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code]))
        .await;
    assert!(sandbox.control().clear_code_state(&code));
    let restored = client
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code]))
        .await;

    let overridden = overridden.outcome.answer().unwrap().codes[0]
        .status()
        .clone();
    let restored = restored.outcome.answer().unwrap().codes[0].status().clone();
    assert_eq!(overridden.is_blocked, Some(true));
    assert_eq!(overridden.ogvs, Some(vec!["FNS".to_owned()]));
    assert_eq!(restored.is_blocked, Some(false));
    assert_eq!(restored.realizable, Some(false));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_code_state_can_make_a_request_fail() {
    let sandbox = start_sandbox().await;
    sandbox
        .control()
        .set_code_state(UNKNOWN_CODE, "http=418")
        .unwrap();

    let exchange = client()
        .check_codes(&host(&sandbox, 2), &key(), &request(&[UNKNOWN_CODE]))
        .await;

    assert_eq!(exchange.outcome, Outcome::Emergency { status: 418 });
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_code_state_is_refused() {
    let sandbox = start_sandbox().await;

    let refused = sandbox.control().set_code_state("x", "found=perhaps");

    assert!(refused.is_err());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn reset_restores_the_state_at_start() {
    let sandbox = start_sandbox().await;
    let control = sandbox.control();
    control
        .set_fault(FaultTarget::every_host(), &Fault::NeverAnswer)
        .unwrap();
    control.refuse_connections(Service::Host(0)).await.unwrap();
    control.set_discovery_hosts(vec![]);
    control.activate_case("514").unwrap();

    control.reset().await.unwrap();

    let state = control.state().await;
    assert!(
        state
            .hosts
            .iter()
            .all(|host| host.faults.is_empty() && host.accepting_connections)
    );
    assert_eq!(state.listed_hosts, urls(&sandbox));
    let answer = client()
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code_of("5.1")]))
        .await;
    assert_eq!(
        answer.outcome.answer().unwrap().codes[0].status().utilised,
        Some(false)
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn faults_are_set_and_cleared_over_http() {
    let sandbox = start_sandbox().await;
    let http = http();
    let client = client();
    let check = request(&[&code_of("5.2")]);

    let set = http
        .put(control_url(
            &sandbox,
            "/control/hosts/0/fault?endpoint=codes_check",
        ))
        .json(&json!({"kind": "http_status", "status": 504}))
        .send()
        .await
        .unwrap();
    let failed = client.check_codes(&host(&sandbox, 0), &key(), &check).await;
    let cleared = http
        .delete(control_url(&sandbox, "/control/hosts/0/fault"))
        .send()
        .await
        .unwrap();
    let answered = client.check_codes(&host(&sandbox, 0), &key(), &check).await;

    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        failed.outcome,
        Outcome::HostFailure(HostFailure::ServerError { status: 504 })
    );
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(answered.outcome.kind(), OutcomeKind::Answered);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn connections_are_refused_and_accepted_over_http() {
    let sandbox = start_sandbox().await;
    let http = http();
    let client = client();

    let refuse = http
        .put(control_url(&sandbox, "/control/discovery/connections"))
        .json(&json!({"accept": false}))
        .send()
        .await
        .unwrap();
    let refused = client.cdn_info(&base(&sandbox), &key()).await;
    http.put(control_url(&sandbox, "/control/discovery/connections"))
        .json(&json!({"accept": true}))
        .send()
        .await
        .unwrap();
    let accepted = client.cdn_info(&base(&sandbox), &key()).await;

    assert_eq!(refuse.status(), StatusCode::NO_CONTENT);
    assert!(matches!(
        refused.outcome,
        Outcome::HostFailure(HostFailure::Connect { .. })
    ));
    assert_eq!(accepted.outcome.kind(), OutcomeKind::Answered);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_discovery_list_and_hosts_change_over_http() {
    let sandbox = start_sandbox().await;
    let http = http();

    let added: Value = http
        .post(control_url(&sandbox, "/control/hosts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.put(control_url(&sandbox, "/control/discovery/hosts"))
        .json(&json!({"hosts": [added["url"]]}))
        .send()
        .await
        .unwrap();
    let only_added = listed_hosts(&sandbox).await;
    http.delete(control_url(&sandbox, "/control/discovery/hosts"))
        .send()
        .await
        .unwrap();
    let every_host = listed_hosts(&sandbox).await;

    assert_eq!(added["index"], 3);
    assert_eq!(only_added, [added["url"].as_str().unwrap()]);
    assert_eq!(every_host.len(), 4);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn cases_and_code_states_change_over_http() {
    let sandbox = start_sandbox().await;
    let http = http();
    let client = client();
    let code = code_of("5.1");

    let activated = http
        .post(control_url(&sandbox, "/control/cases/514/activate"))
        .send()
        .await
        .unwrap();
    let cases: Value = http
        .get(control_url(&sandbox, "/control/cases"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let set = http
        .put(control_url(&sandbox, "/control/codes"))
        .json(&json!({"code": code, "state": "sold=true"}))
        .send()
        .await
        .unwrap();
    let sold = client
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code]))
        .await;
    http.delete(control_url(&sandbox, "/control/codes"))
        .send()
        .await
        .unwrap();
    let default_row = client
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code]))
        .await;

    assert_eq!(activated.status(), StatusCode::NO_CONTENT);
    let case_514 = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["case"] == "514")
        .unwrap();
    assert_eq!(case_514["active"], true);
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sold.outcome.answer().unwrap().codes[0].status().sold,
        Some(true)
    );
    assert_eq!(
        default_row.outcome.answer().unwrap().codes[0]
            .status()
            .utilised,
        Some(false),
        "clearing every state also re-activates the first row of each code"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn stats_and_state_read_over_http() {
    let sandbox = start_sandbox().await;
    let http = http();
    client().health_check(&host(&sandbox, 2), &key()).await;
    sandbox
        .control()
        .set_fault(
            FaultTarget::host(1).only(Endpoint::HealthCheck),
            &Fault::Delay { ms: 5 },
        )
        .unwrap();

    let stats: Value = http
        .get(control_url(&sandbox, "/control/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state: Value = http
        .get(control_url(&sandbox, "/control/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reset = http
        .delete(control_url(&sandbox, "/control/stats"))
        .send()
        .await
        .unwrap();

    assert_eq!(stats["hosts"][2]["health_check"], 1);
    assert_eq!(
        state["hosts"][1]["faults"]["health_check"],
        json!({"kind": "delay", "ms": 5})
    );
    assert_eq!(state["hosts"][0]["accepting_connections"], true);
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sandbox.control().stats().total(Endpoint::HealthCheck), 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_control_api_refuses_what_it_cannot_do() {
    let sandbox = start_sandbox().await;
    let http = http();
    let fault = json!({"kind": "http_status", "status": 500});

    let no_host = http
        .put(control_url(&sandbox, "/control/hosts/9/fault"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    let wrong_endpoint = http
        .put(control_url(
            &sandbox,
            "/control/hosts/0/fault?endpoint=cdn_info",
        ))
        .json(&fault)
        .send()
        .await
        .unwrap();
    let invalid_fault = http
        .put(control_url(&sandbox, "/control/discovery/fault"))
        .json(&json!({"kind": "not_processed", "code": 0}))
        .send()
        .await
        .unwrap();
    let broken_json = http
        .put(control_url(&sandbox, "/control/hosts/0/fault"))
        .body("{\"kind\":")
        .send()
        .await
        .unwrap();
    let no_case = http
        .post(control_url(&sandbox, "/control/cases/9.99/activate"))
        .send()
        .await
        .unwrap();
    let no_code_state = http
        .delete(control_url(&sandbox, "/control/codes"))
        .json(&json!({"code": UNKNOWN_CODE}))
        .send()
        .await
        .unwrap();

    assert_eq!(no_host.status(), StatusCode::NOT_FOUND);
    assert_eq!(wrong_endpoint.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid_fault.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(broken_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(no_case.status(), StatusCode::NOT_FOUND);
    assert_eq!(no_code_state.status(), StatusCode::NOT_FOUND);
    let error: Value = no_case.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("9.99"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn hostile_requests_get_answers_not_crashes() {
    let sandbox = start_sandbox().await;
    let http = http();
    let check_url = host(&sandbox, 0).endpoint_url(Endpoint::CodesCheck);

    let mut statuses = Vec::new();
    for body in [
        "",
        "null",
        "{\"codes\": 5}",
        "{\"codes\": []}",
        "\u{0}\u{ff}",
    ] {
        let answer = http
            .post(check_url.clone())
            .header("X-API-KEY", API_KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        statuses.push(answer.status());
    }
    let still_answering = client()
        .check_codes(&host(&sandbox, 0), &key(), &request(&[&code_of("5.2")]))
        .await;

    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    assert_eq!(still_answering.outcome.kind(), OutcomeKind::Answered);
    sandbox.shutdown().await;
}
