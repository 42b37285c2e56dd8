//! The main job through the real HTTP API, against the ЧЗ emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::{Value, json};
use truemark::client::Endpoint;
use truemark_sandbox::{Fault, FaultTarget, Fixture, Sandbox, SandboxConfig};
use uuid::Uuid;

use imark_tests::{Response, TestApp};

const GS: char = '\u{1d}';

/// A store's POS, with its tenant's HQ, against its own emulator.
struct Pos {
    app: TestApp,
    sandbox: Sandbox,
    hq: String,
    store: String,
    store_id: Uuid,
}

async fn pos() -> Pos {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_TRUEMARK_CHECK_TIMEOUT_MS".into(), "400".into());
        vars.insert("IMARK_TRUEMARK_NO_CHECK_TIMEOUT_MS".into(), "300".into());
    })
    .await;
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store_id = app.create_store(&hq, "s1").await;
    app.point_at_sandbox(&hq, &sandbox, "test").await;
    let (_, store) = app.issue_store_token(&hq, store_id, "pos").await;
    Pos {
        app,
        sandbox,
        hq,
        store,
        store_id,
    }
}

impl Pos {
    async fn send(&self, id: &str, kind: &str, items: Value) -> Response {
        let body = json!({
            "id": id,
            "type": kind,
            "fiscal_drive_number": "7281440500012345",
            "items": items
        });
        self.app.post("/document", &self.store, &body).await
    }

    async fn sale(&self, id: &str, code: &str) -> Value {
        let response = self.send(id, "sale", json!([{"code": code}])).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    }

    fn code_checks(&self) -> u64 {
        self.sandbox.control().stats().total(Endpoint::CodesCheck)
    }
}

fn gs(code: &str) -> String {
    code.replace("<GS>", &GS.to_string())
}

/// The acceptance catalogue's rows: (case, code, price, expected sale verdict).
fn acceptance_cases() -> Vec<(String, String, Option<u64>, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/crpt-acceptance-cases.tsv"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("case\t") && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (
                cols[0].to_owned(),
                gs(cols[1]),
                cols[4].parse().ok(),
                cols[5].to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_acceptance_case_gets_its_sale_verdict() {
    for (case, code, price, expected) in acceptance_cases() {
        let pos = pos().await;
        if case == "514" {
            pos.sandbox.control().activate_case("514").unwrap();
        }
        let mut item = json!({"code": code});
        if let Some(price) = price {
            item["price"] = json!(price);
        }

        let response = pos
            .send(&format!("case-{case}"), "sale", json!([item]))
            .await;

        assert_eq!(response.status, 200, "case {case}: {}", response.text);
        let answer = response.json();
        let verdict = answer["verdict"].as_str().unwrap();
        let has_tag = !answer["tag1260"].is_null();
        if expected == "block" {
            assert_eq!(verdict, "block", "case {case}: {answer}");
        } else if expected == "allow" {
            assert_eq!(verdict, "allow", "case {case}: {answer}");
            assert!(has_tag, "case {case}: an answered sale carries tag 1260");
        } else {
            assert!(
                expected.starts_with("allow") && expected.contains("no tag 1260"),
                "{expected}"
            );
            assert_eq!(verdict, "allow", "case {case}: {answer}");
            assert!(!has_tag, "case {case}: {answer}");
            assert_eq!(answer["mode"], "no_check", "case {case}");
            assert!(answer["tag1260_absent_reason"].is_string());
        }
    }
}

#[tokio::test]
async fn an_allowed_sale_answers_with_tag_1260_and_the_raw_truemark_answer() {
    let pos = pos().await;

    let answer = pos.sale("d1", "04601653035829H;dV)bFABVUdGVz").await;

    let req_id = answer["req_id"].as_str().unwrap();
    let req_timestamp = answer["req_timestamp"].as_i64().unwrap();
    assert_eq!(answer["truemark_response"]["reqId"], req_id);
    assert_eq!(answer["tag1260"]["1262"], "030");
    assert_eq!(answer["tag1260"]["1263"], "21.11.2023");
    assert_eq!(answer["tag1260"]["1264"], "1944");
    assert_eq!(
        answer["tag1260"]["1265"],
        format!("UUID={req_id}&Time={req_timestamp}")
    );
    assert!(answer["tag1260"]["tlv_hex"].as_str().unwrap().len() > 20);
    let item = &answer["items"][0];
    assert_eq!(item["cis"], "04601653035829H;dV)bF");
    assert_eq!(item["mark_status_before"], "available");
    assert_eq!(item["mark_status_after"], "sold");
    assert_eq!(
        item["truemark_response"]["cis"],
        "04601653035829H;dV)bFABVUdGVz"
    );
}

#[tokio::test]
async fn a_second_sale_of_a_sold_mark_is_blocked_and_a_return_makes_it_sellable() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";

    let first = pos.sale("s1", code).await;
    let again = pos.sale("s2", code).await;
    let returned = pos
        .send("r1", "return", json!([{"code": code}]))
        .await
        .json();
    let after_return = pos.sale("s3", code).await;

    assert_eq!(first["verdict"], "allow");
    assert_eq!(again["verdict"], "block");
    assert_eq!(
        again["items"][0]["reasons"][0]["criterion"],
        "sold_here_before"
    );
    assert!(
        again["items"][0]["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("продан")
    );
    assert_eq!(returned["verdict"], "allow");
    assert_eq!(returned["items"][0]["mark_status_after"], "available");
    assert_eq!(after_return["verdict"], "allow");
}

#[tokio::test]
async fn a_return_of_a_mark_never_sold_here_is_suspect() {
    let pos = pos().await;

    let answer = pos
        .send(
            "r1",
            "return",
            json!([{"code": "04601653035829H;dV)bFABVUdGVz"}]),
        )
        .await
        .json();

    assert_eq!(answer["verdict"], "warn");
    assert_eq!(
        answer["items"][0]["reasons"][0]["criterion"],
        "return_not_sold_here"
    );
    assert_eq!(answer["items"][0]["mark_status_after"], "available");
}

#[tokio::test]
async fn a_check_changes_nothing() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";

    let check = pos
        .send("c1", "check", json!([{"code": code}]))
        .await
        .json();
    let sale = pos.sale("s1", code).await;

    assert_eq!(check["items"][0]["mark_status_after"], "available");
    assert_eq!(sale["verdict"], "allow");
}

#[tokio::test]
async fn a_voided_sale_restores_its_marks() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";
    pos.sale("s1", code).await;

    let voided = pos.app.delete("/document/s1", &pos.store).await;
    let again = pos.app.delete("/document/s1", &pos.store).await;
    let resale = pos.sale("s2", code).await;
    let missing = pos.app.delete("/document/nope", &pos.store).await;

    assert_eq!(voided.status, 200, "{}", voided.text);
    assert!(voided.json()["voided_at"].is_string());
    assert_eq!(again.status, 200);
    assert_eq!(resale["verdict"], "allow");
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_same_document_again_is_answered_from_storage_without_asking_truemark() {
    let pos = pos().await;
    let items = json!([{"code": "04601653035829H;dV)bFABVUdGVz", "price": 9900}]);

    let first = pos.send("d1", "sale", items.clone()).await;
    let calls = pos.code_checks();
    let replay = pos.send("d1", "sale", items).await;
    let changed = pos
        .send(
            "d1",
            "sale",
            json!([{"code": "04601653035829H;dV)bFABVUdGVz", "price": 9800}]),
        )
        .await;

    assert_eq!(first.status, 200);
    assert_eq!(replay.status, 200);
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replay.json(), first.json());
    assert_eq!(pos.code_checks(), calls, "no second ЧЗ call");
    assert_eq!(replay.json()["items"][0]["mark_status_after"], "sold");
    assert_eq!(changed.status, 409);
    assert_eq!(changed.code(), "document_id_reused");
}

#[tokio::test]
async fn of_two_stores_selling_one_mark_at_once_exactly_one_wins() {
    let pos = pos().await;
    let other_store = pos.app.create_store(&pos.hq, "s2").await;
    let (_, other) = pos
        .app
        .issue_store_token(&pos.hq, other_store, "pos2")
        .await;
    let code = "04601653035829H;dV)bFABVUdGVz";
    // The group's hosts are discovered once before the race.
    pos.send("warm-up", "check", json!([{"code": code}])).await;
    let body = |id: &str| json!({"id": id, "type": "sale", "fiscal_drive_number": "1", "items": [{"code": code}]});

    let tokens: Vec<&String> = (0..10)
        .map(|i| if i % 2 == 0 { &pos.store } else { &other })
        .collect();
    let bodies: Vec<Value> = (0..tokens.len())
        .map(|i| body(&format!("race-{i}")))
        .collect();
    let answers = futures::future::join_all(
        tokens
            .iter()
            .zip(&bodies)
            .map(|(t, b)| pos.app.post("/document", t, b)),
    )
    .await;

    let verdicts: Vec<String> = answers
        .iter()
        .map(|a| a.json()["verdict"].as_str().unwrap_or("error").to_owned())
        .collect();
    assert_eq!(
        verdicts.iter().filter(|v| *v == "allow").count(),
        1,
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts.iter().filter(|v| *v == "block").count(),
        9,
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn a_code_that_cannot_be_normalised_blocks_only_its_item() {
    let pos = pos().await;

    let answer = pos
        .send(
            "d1",
            "sale",
            json!([{"code": "4607038046435"}, {"code": "04601653035829H;dV)bFABVUdGVz"}]),
        )
        .await
        .json();

    assert_eq!(answer["verdict"], "block");
    assert_eq!(answer["items"][0]["verdict"], "block");
    assert_eq!(
        answer["items"][0]["reasons"][0]["criterion"],
        "code_not_normalised"
    );
    assert!(answer["items"][0]["code"].is_null());
    assert_eq!(answer["items"][1]["verdict"], "allow");
    assert!(!answer["tag1260"].is_null());
}

#[tokio::test]
async fn every_scanner_artefact_is_checked_under_its_canonical_code() {
    let pos = pos().await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/scanner-artefacts.tsv"
    ))
    .unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("input\t"))
        .map(|l| l.split('\t').map(gs).collect())
        .collect();

    for (i, row) in rows.iter().enumerate() {
        let answer = pos
            .send(&format!("artefact-{i}"), "check", json!([{"code": row[0]}]))
            .await;
        assert_eq!(answer.status, 200, "{:?}: {}", row[0], answer.text);
        let item = &answer.json()["items"][0];
        if row[3].is_empty() {
            assert_eq!(item["cis"], row[1], "{:?}", row[0]);
            assert_eq!(item["code"], row[2], "{:?}", row[0]);
            assert_eq!(item["input"], row[0]);
        } else {
            assert_eq!(
                item["reasons"][0]["criterion"], "code_not_normalised",
                "{:?}",
                row[0]
            );
            assert_eq!(item["verdict"], "block");
        }
    }
}

#[tokio::test]
async fn the_policy_turns_a_block_into_a_warning_and_strict_blocks_unchecked_sales() {
    let pos = pos().await;
    let expired = gs("0104670540176099215<pGKy<GS>93dGVz");

    let put = pos
        .app
        .put(
            "/policy",
            &pos.hq,
            &json!({"preset": "law", "overrides": {"expired": "warn"}}),
        )
        .await;
    let warned = pos.sale("d1", &expired).await;
    pos.app
        .put("/policy", &pos.hq, &json!({"preset": "strict"}))
        .await;
    pos.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 203,
                retry_after_secs: None,
            },
        )
        .unwrap();
    let unchecked = pos.sale("d2", "04601653035829H;dV)bFABVUdGVz").await;
    let store_view = pos.app.get("/policy", &pos.store).await.json();

    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["effective"]["expired"], "warn");
    assert_eq!(warned["verdict"], "warn");
    assert_eq!(unchecked["verdict"], "block");
    assert_eq!(
        unchecked["items"][0]["reasons"][0]["criterion"],
        "check_unavailable"
    );
    assert_eq!(store_view["preset"], "strict");
}

#[tokio::test]
async fn in_no_check_mode_a_mark_sold_here_still_blocks_and_no_tag_is_given() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";
    pos.sale("s1", code).await;
    pos.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 203,
                retry_after_secs: None,
            },
        )
        .unwrap();

    let resale = pos.sale("s2", code).await;
    let fresh = pos.sale("s3", "04601653035829H;vE)bFABBUdGVz").await;

    assert_eq!(resale["mode"], "no_check");
    assert_eq!(resale["verdict"], "block");
    assert_eq!(resale["items"][0]["offline"], true);
    assert!(resale["tag1260"].is_null());
    assert_eq!(fresh["verdict"], "allow");
    assert!(fresh["tag1260"].is_null());
    assert_eq!(fresh["tag1260_absent_reason"], "emergency");
}

#[tokio::test]
async fn every_exchange_is_stored_with_its_document() {
    let pos = pos().await;

    let answer = pos.sale("d1", "04601653035829H;dV)bFABVUdGVz").await;
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        &pos.app.db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT endpoint, req_id, answer_body FROM truemark_exchanges \
                 WHERE document_id = '{}' ORDER BY started_at",
                answer["document_id"].as_str().unwrap()
            ),
        ),
    )
    .await
    .unwrap();

    let endpoints: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "endpoint").unwrap())
        .collect();
    assert!(
        endpoints.contains(&"codes_check".to_owned()),
        "{endpoints:?}"
    );
    let checked = rows
        .iter()
        .find(|r| r.try_get::<String>("", "endpoint").unwrap() == "codes_check")
        .unwrap();
    assert_eq!(
        checked
            .try_get::<Option<String>>("", "req_id")
            .unwrap()
            .as_deref(),
        answer["req_id"].as_str()
    );
}

#[tokio::test]
async fn a_failure_after_the_truemark_answer_loses_no_evidence() {
    let pos = pos().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &pos.app.db,
        "CREATE FUNCTION refuse_doomed() RETURNS trigger AS $$ BEGIN \
           IF NEW.pos_document_id = 'doomed' THEN RAISE EXCEPTION 'disk full'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_doomed BEFORE INSERT ON documents \
           FOR EACH ROW EXECUTE FUNCTION refuse_doomed();",
    )
    .await
    .unwrap();
    let calls_before = pos.code_checks();

    let failed = pos
        .send(
            "doomed",
            "sale",
            json!([{"code": "04601653035829H;dV)bFABVUdGVz"}]),
        )
        .await;
    let cache = imark_core::cache::Cache::connect(
        &pos.app.config.redis_url,
        pos.app.config.redis_prefix.clone(),
    )
    .await
    .unwrap();
    let drained = imark_core::evidence::drain(&pos.app.db, &cache, 100)
        .await
        .unwrap();
    let stored: i64 = sea_orm::ConnectionTrait::query_one_raw(
        &pos.app.db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM truemark_exchanges WHERE endpoint = 'codes_check'",
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .try_get("", "n")
    .unwrap();

    assert_eq!(failed.status, 503, "{}", failed.text);
    assert!(
        !failed.text.contains("disk full"),
        "no internal text in the answer"
    );
    assert!(pos.code_checks() > calls_before, "ЧЗ did answer");
    assert!(drained >= 1);
    assert_eq!(stored as u64, pos.code_checks() - calls_before);
}

#[tokio::test]
async fn only_a_store_sends_documents_and_it_sees_only_its_own() {
    let pos = pos().await;
    pos.sale("mine", "04601653035829H;dV)bFABVUdGVz").await;
    let other_store = pos.app.create_store(&pos.hq, "s2").await;
    let (_, other) = pos
        .app
        .issue_store_token(&pos.hq, other_store, "pos2")
        .await;
    let (_, foreign_hq) = pos.app.create_tenant("Чужая сеть").await;
    let foreign = pos.app.token(&foreign_hq).await;
    let body =
        json!({"id": "x", "type": "check", "fiscal_drive_number": "1", "items": [{"code": "a"}]});

    let by_hq = pos.app.post("/document", &pos.hq, &body).await;
    let by_foreign = pos.app.post("/document", &foreign, &body).await;
    let read_other = pos.app.get("/document/mine", &other).await;
    let void_other = pos.app.delete("/document/mine", &other).await;
    let read_own = pos.app.get("/document/mine", &pos.store).await;

    assert_eq!(by_hq.status, 403);
    assert_eq!(by_foreign.status, 403);
    assert_eq!(read_other.status, 404);
    assert_eq!(void_other.status, 404);
    assert_eq!(read_own.status, 200);
    let _ = pos.store_id;
}

#[tokio::test]
async fn broken_documents_are_refused_precisely() {
    let pos = pos().await;
    let cases = [
        (
            json!({"id": "", "type": "sale", "fiscal_drive_number": "1", "items": [{"code": "a"}]}),
            422,
        ),
        (
            json!({"id": "a", "type": "sell", "fiscal_drive_number": "1", "items": [{"code": "a"}]}),
            422,
        ),
        (
            json!({"id": "a", "type": "sale", "fiscal_drive_number": "ФН", "items": [{"code": "a"}]}),
            422,
        ),
        (
            json!({"id": "a", "type": "sale", "fiscal_drive_number": "1", "items": []}),
            422,
        ),
        (
            json!({"id": "a", "type": "sale", "fiscal_drive_number": "1", "items": [{"code": 5}]}),
            422,
        ),
        (
            json!({"id": "a", "type": "sale", "fiscal_drive_number": "1", "items": [{"code": "a", "price": -1}]}),
            422,
        ),
        (
            json!({"id": "a", "type": "sale", "fiscal_drive_number": "1", "items": [{"code": "a", "quantity": 0}]}),
            422,
        ),
        (
            json!({"id": "a", "type": "sale", "items": [{"code": "a"}]}),
            422,
        ),
    ];

    for (body, status) in cases {
        let response = pos.app.post("/document", &pos.store, &body).await;
        assert_eq!(response.status, status, "{body}: {}", response.text);
        assert_eq!(response.content_type(), "application/problem+json");
    }
    assert_eq!(pos.code_checks(), 0);
}

#[tokio::test]
async fn each_action_of_a_criterion_gives_its_verdict() {
    let pos = pos().await;
    let cases = [
        ("expired", gs("0104670540176099215<pGKy<GS>93dGVz")),
        (
            "blocked_by_authority",
            gs("0104602220006549215opFcmK<GS>93dGVz"),
        ),
        ("not_applied", gs("0104670540176099215'W9Um<GS>93dGVz")),
    ];

    for (n, (criterion, code)) in cases.iter().enumerate() {
        for (action, verdict) in [("block", "block"), ("warn", "warn"), ("ignore", "allow")] {
            let policy = json!({"preset": "law", "overrides": {*criterion: action}});
            assert_eq!(pos.app.put("/policy", &pos.hq, &policy).await.status, 200);

            let answer = pos
                .send(&format!("{n}-{action}"), "check", json!([{"code": code}]))
                .await
                .json();

            assert_eq!(
                answer["verdict"], verdict,
                "{criterion} → {action}: {answer}"
            );
            let named = answer["items"][0]["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["criterion"] == *criterion && r["action"] == action);
            assert_eq!(named, action != "ignore", "{criterion} → {action}");
        }
    }
}

#[tokio::test]
async fn a_keg_stays_available_until_its_volume_is_poured_and_each_pour_gets_its_tag() {
    let pos = pos().await;
    let keg = format!("0104607001771230215KEG0001{GS}93abcd");
    pos.sandbox
        .control()
        .set_code_state(&keg, "groupIds=[15] innerUnitCount=3000 packageType=UNIT")
        .unwrap();
    let pour = |id: &'static str, litres: u32| {
        let keg = keg.clone();
        let pos = &pos;
        async move {
            pos.send(id, "sale", json!([{"code": keg, "quantity": litres}]))
                .await
                .json()
        }
    };

    let first = pour("pour-1", 1000).await;
    let second = pour("pour-2", 1500).await;
    let too_much = pour("pour-3", 600).await;
    let last = pour("pour-4", 500).await;
    let after_empty = pour("pour-5", 1).await;
    pos.app.delete("/document/pour-4", &pos.store).await;
    let after_void = pour("pour-6", 500).await;

    assert_eq!(first["verdict"], "allow", "{first}");
    assert_eq!(first["items"][0]["mark_status_after"], "available");
    assert_eq!(first["items"][0]["units_left"], 2000);
    assert_eq!(second["items"][0]["units_left"], 500);
    assert_ne!(
        first["tag1260"]["1265"], second["tag1260"]["1265"],
        "each pour its own tag"
    );
    assert_eq!(too_much["verdict"], "block");
    assert_eq!(
        too_much["items"][0]["reasons"][0]["criterion"],
        "not_enough_left"
    );
    assert_eq!(too_much["items"][0]["units_left"], 500);
    assert_eq!(last["verdict"], "allow");
    assert_eq!(last["items"][0]["mark_status_after"], "sold");
    assert_eq!(last["items"][0]["units_left"], 0);
    assert_eq!(
        after_empty["items"][0]["reasons"][0]["criterion"],
        "sold_here_before"
    );
    assert_eq!(
        after_void["verdict"], "allow",
        "the voided pour's volume came back"
    );
}

#[tokio::test]
async fn voids_of_one_pour_at_once_give_its_volume_back_once() {
    let pos = pos().await;
    let keg = format!("0104607001771230215KEG0002{GS}93abcd");
    pos.sandbox
        .control()
        .set_code_state(&keg, "groupIds=[15] innerUnitCount=3000 packageType=UNIT")
        .unwrap();
    for (id, litres) in [("pour-1", 1000), ("pour-2", 500)] {
        let poured = pos
            .send(id, "sale", json!([{"code": keg, "quantity": litres}]))
            .await;
        assert_eq!(poured.json()["verdict"], "allow", "{}", poured.text);
    }

    let voids =
        futures::future::join_all((0..8).map(|_| pos.app.delete("/document/pour-2", &pos.store)))
            .await;

    for void in &voids {
        assert_eq!(void.status, 200, "{}", void.text);
    }
    let sold_units = sold_units(&pos, "0104607001771230215KEG0002").await;
    assert_eq!(sold_units, 1000, "only the first pour is still sold");
    let records = pos.app.get("/audit?kind=void", &pos.hq).await;
    assert_eq!(records.status, 200, "{}", records.text);
    let voids = records.json()["items"].as_array().unwrap().len();
    assert_eq!(voids, 1, "one void recorded");
}

/// The units a keg holds as sold, from the mark base.
async fn sold_units(pos: &Pos, cis_prefix: &str) -> i64 {
    let row = pos
        .app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT sold_units FROM marks WHERE cis LIKE $1",
            [format!("{cis_prefix}%").into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "sold_units").unwrap()
}

#[tokio::test]
async fn a_void_gives_back_what_its_pours_took_however_many_and_however_short() {
    let pos = pos().await;
    let keg = format!("0104607001771230215KEG0003{GS}93abcd");
    pos.sandbox
        .control()
        .set_code_state(&keg, "groupIds=[15] innerUnitCount=3000 packageType=UNIT")
        .unwrap();
    let policy = json!({"preset": "law", "overrides": {"not_enough_left": "warn"}});
    assert_eq!(pos.app.put("/policy", &pos.hq, &policy).await.status, 200);
    let first = pos
        .send("pour-1", "sale", json!([{"code": keg, "quantity": 2500}]))
        .await;
    assert_eq!(first.json()["verdict"], "allow", "{}", first.text);

    // Two pours of the keg on one receipt; the second asks for 400 where 200 are left, is let
    // through by the warning and takes the 200.
    let both = pos
        .send(
            "pour-2",
            "sale",
            json!([{"code": keg, "quantity": 300}, {"code": keg, "quantity": 400}]),
        )
        .await
        .json();
    let emptied = sold_units(&pos, "0104607001771230215KEG0003").await;
    let void = pos.app.delete("/document/pour-2", &pos.store).await;
    let after_void = sold_units(&pos, "0104607001771230215KEG0003").await;

    assert_eq!(both["verdict"], "warn", "{both}");
    assert_eq!(both["items"][1]["units_left"], 0, "{both}");
    assert_eq!(emptied, 3000);
    assert_eq!(void.status, 200, "{}", void.text);
    assert_eq!(
        after_void, 2500,
        "the 300 and the 200 taken come back, no more"
    );
}

/// Sells one mark twice, the second time let through by a `warn`, voids `voided`, and returns
/// the void's answer and the mark's status after it.
async fn sold_twice_then_void(voided: &str) -> (Response, String) {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";
    let policy = json!({"preset": "law", "overrides": {"sold_here_before": "warn"}});
    assert_eq!(pos.app.put("/policy", &pos.hq, &policy).await.status, 200);
    pos.sale("s1", code).await;
    let again = pos.sale("s2", code).await;
    assert_eq!(again["verdict"], "warn", "{again}");

    let void = pos
        .app
        .delete(&format!("/document/{voided}"), &pos.store)
        .await;

    let row = pos
        .app
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT status FROM marks",
        ))
        .await
        .unwrap()
        .unwrap();
    (void, row.try_get("", "status").unwrap())
}

#[tokio::test]
async fn a_mark_sold_twice_under_a_warning_stays_sold_whichever_sale_is_voided() {
    let (void_first, after_first) = sold_twice_then_void("s1").await;
    let (void_second, after_second) = sold_twice_then_void("s2").await;

    assert_eq!(void_first.status, 200, "{}", void_first.text);
    assert_eq!(after_first, "sold", "the second sale, printed, holds it");
    assert_eq!(void_second.status, 200, "{}", void_second.text);
    assert_eq!(
        after_second, "sold",
        "the first sale, printed, still holds it"
    );
}

#[tokio::test]
async fn a_mark_set_by_hand_after_its_sale_stays_as_set_when_the_sale_is_voided() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";
    let sale = pos.sale("s1", code).await;
    let cis = sale["items"][0]["cis"].as_str().unwrap().to_owned();
    let by_hand = json!({"cis": cis, "status": "sold"});
    let set = pos
        .app
        .put("/unique_product_stamp", &pos.hq, &by_hand)
        .await;
    assert_eq!(set.status, 200, "{}", set.text);

    let void = pos.app.delete("/document/s1", &pos.store).await;
    let resale = pos.send("s2", "sale", json!([{"code": code}])).await.json();

    assert_eq!(void.status, 200, "{}", void.text);
    assert_eq!(resale["verdict"], "block", "{resale}");
    assert_eq!(
        resale["items"][0]["reasons"][0]["criterion"],
        "sold_here_before"
    );
}

#[tokio::test]
async fn the_same_mark_twice_on_one_receipt_is_sold_once() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";

    let answer = pos
        .send("d1", "sale", json!([{"code": code}, {"code": code}]))
        .await
        .json();

    assert_eq!(answer["items"][0]["verdict"], "allow");
    assert_eq!(answer["items"][1]["verdict"], "block");
    assert_eq!(
        answer["items"][1]["reasons"][0]["criterion"],
        "sold_here_before"
    );
    // Both items are stored with the document, in order, and only the first changed the mark.
    let stored = pos
        .app
        .db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT i.position, i.verdict, i.applied, i.criteria::text AS criteria \
             FROM document_items i JOIN documents d ON d.id = i.document_id \
             WHERE d.pos_document_id = $1 ORDER BY i.position",
            ["d1".into()],
        ))
        .await
        .unwrap();
    let stored: Vec<(i32, String, bool, String)> = stored
        .iter()
        .map(|row| {
            (
                row.try_get("", "position").unwrap(),
                row.try_get("", "verdict").unwrap(),
                row.try_get("", "applied").unwrap(),
                row.try_get("", "criteria").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            (0, "allow".to_owned(), true, "[]".to_owned()),
            (
                1,
                "block".to_owned(),
                false,
                r#"["sold_here_before"]"#.to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn one_odd_field_in_the_answer_costs_only_that_field() {
    let pos = pos().await;
    let code = "04601653035829H;dV)bFABVUdGVz";
    let body = json!({
        "code": 0, "description": "ok", "reqId": "0f0e3c7a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
        "reqTimestamp": 1773524146442_i64,
        "codes": [{"cis": code, "found": true, "valid": true, "verified": true, "utilised": true,
                   "realizable": true, "sold": false, "isBlocked": false, "errorCode": 0,
                   "groupIds": [3], "mrp": "9900", "producerInn": 7731376812_i64}]
    });
    pos.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host().only(Endpoint::CodesCheck),
            &Fault::MalformedBody {
                body: Some(body.to_string()),
            },
        )
        .unwrap();

    let answer = pos.sale("d1", code).await;

    assert_eq!(answer["mode"], "online");
    assert_eq!(
        answer["tag1260"]["1265"],
        "UUID=0f0e3c7a-1b2c-4d5e-8f90-a1b2c3d4e5f6&Time=1773524146442"
    );
    assert_eq!(answer["verdict"], "warn", "{answer}");
    assert_eq!(
        answer["items"][0]["reasons"][0]["criterion"],
        "truemark_refused"
    );
    assert_eq!(
        answer["items"][0]["truemark_response"]["mrp"], "9900",
        "kept as sent"
    );
}

#[tokio::test]
async fn a_returned_mark_may_be_sold_again_while_truemark_is_down() {
    let pos = pos().await;
    let code = "04601653035829H;vE)bFABBUdGVz";
    let control = pos.sandbox.control();
    control.set_code_state(code, "groupIds=[3]").unwrap();
    pos.sale("s1", code).await;
    control
        .set_code_state(code, "groupIds=[3] sold=true realizable=false")
        .unwrap();
    let returned = pos
        .send("r1", "return", json!([{"code": code}]))
        .await
        .json();
    let emergency = Fault::HttpStatus {
        status: 203,
        retry_after_secs: None,
    };
    control
        .set_fault(FaultTarget::every_host(), &emergency)
        .unwrap();

    let resale = pos.sale("s2", code).await;

    assert_eq!(returned["items"][0]["mark_status_after"], "available");
    assert_eq!(resale["mode"], "no_check");
    assert_eq!(resale["verdict"], "allow", "{resale}");
}

#[tokio::test]
async fn a_nul_in_a_code_or_a_document_id_is_refused_not_stored() {
    let pos = pos().await;

    let nul_code = pos
        .send(
            "d1",
            "sale",
            json!([{"code": "0104670540176099215LnOjv\u{0}93dGVz"}]),
        )
        .await;
    let read = pos.app.get("/document/%00", &pos.store).await;
    let void = pos.app.delete("/document/%00", &pos.store).await;
    let padded = pos.send(" d2 ", "sale", json!([{"code": "x"}])).await;

    assert_eq!(nul_code.status, 422, "{}", nul_code.text);
    assert_eq!(read.status, 404);
    assert_eq!(void.status, 404);
    assert_eq!(padded.status, 422);
}

#[tokio::test]
async fn a_huge_number_in_an_answer_never_makes_the_mark_base_unreadable() {
    let pos = pos().await;
    let code = format!("0104600000000077215ODDTY9{GS}93wxyz");
    let body = json!({
        "code": 0, "description": "ok",
        "reqId": "00000000-0000-0000-0000-000000000001", "reqTimestamp": 1700000000000_i64,
        "codes": [{"cis": code, "found": true, "valid": true, "verified": true, "utilised": true,
                   "realizable": true, "groupIds": [15], "productWeight": 1.797_693_134_862_315_7e308}]
    });
    pos.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host().only(Endpoint::CodesCheck),
            &Fault::MalformedBody {
                body: Some(body.to_string()),
            },
        )
        .unwrap();

    let sale = pos.sale("d1", &code).await;
    pos.sandbox
        .control()
        .clear_fault(FaultTarget::every_host())
        .unwrap();
    let listed = pos.app.get("/unique_product_stamp", &pos.hq).await;
    let offline = pos.app.get("/codes/offline", &pos.store).await;
    let again = pos.send("d2", "check", json!([{"code": code}])).await;

    assert_eq!(sale["verdict"], "allow", "{sale}");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(offline.status, 200, "{}", offline.text);
    assert_eq!(again.status, 200, "{}", again.text);
}

#[tokio::test]
async fn a_receipt_of_the_most_items_allowed_is_decided_and_stored_whole() {
    let pos = pos().await;
    let items: Vec<Value> = (0..imark_core::documents::MAX_ITEMS)
        .map(|n| json!({"code": format!("010460000000007721{n:07}{GS}93wxyz")}))
        .collect();
    let mut too_many = items.clone();
    too_many.push(json!({"code": format!("0104600000000077219999999{GS}93wxyz")}));

    let refused = pos.send("big-1", "sale", Value::Array(too_many)).await;
    let answer = pos.send("big-2", "sale", Value::Array(items)).await;

    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(answer.status, 200, "{}", answer.text);
    let decided = answer.json()["items"].as_array().unwrap().len();
    assert_eq!(decided, imark_core::documents::MAX_ITEMS);
    let stored = pos
        .app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n, count(DISTINCT i.cis) AS marks FROM document_items i \
             JOIN documents d ON d.id = i.document_id WHERE d.pos_document_id = $1",
            ["big-2".into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let (rows, marks): (i64, i64) = (
        stored.try_get("", "n").unwrap(),
        stored.try_get("", "marks").unwrap(),
    );
    let most = i64::try_from(imark_core::documents::MAX_ITEMS).unwrap();
    assert_eq!((rows, marks), (most, most));
}
