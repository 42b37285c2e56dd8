//! The tamper-evident audit log, its verification, its filters and exports, and the compliance
//! reports, through the real HTTP API against the ЧЗ emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use chrono::{Duration, Utc};
use futures::StreamExt as _;
use sea_orm::{ConnectionTrait as _, FromQueryResult, Statement};
use serde_json::{Value, json};
use truemark_sandbox::{DEFAULT_API_KEY, Fixture, Sandbox, SandboxConfig};
use uuid::Uuid;

use imark_tests::TestApp;

/// 5.10: a tobacco pack at its MRP, sold.
const ALLOWED: &str = "04601653035829H;dV)bFABVUdGVz";
const ALLOWED_PRICE: u64 = 9900;
/// 5.7: expired.
const EXPIRED: &str = "0104670540176099215<pGKy\u{1d}93dGVz";
const EXPIRED_CIS: &str = "0104670540176099215<pGKy";
/// 5.12: unknown to ЧЗ.
const UNKNOWN: &str = "04601653035829H;vE)bFABBUdGVz";

/// A tenant with two stores, each with a POS token, an HQ token, against one emulator.
struct Chain {
    app: TestApp,
    _sandbox: Sandbox,
    hq: String,
    stores: Vec<(Uuid, String)>,
}

async fn chain() -> Chain {
    let app = TestApp::spawn().await;
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (_, hq_key) = app.create_tenant("Сеть «Ромашка»").await;
    let hq = app.token(&hq_key).await;
    app.point_at_sandbox(&hq, &sandbox, "test").await;
    let mut stores = Vec::new();
    for code in ["msk-1", "spb-2"] {
        let id = app.create_store(&hq, code).await;
        let (_, token) = app.issue_store_token(&hq, id, "pos").await;
        stores.push((id, token));
    }
    Chain {
        app,
        _sandbox: sandbox,
        hq,
        stores,
    }
}

impl Chain {
    async fn sell(&self, store: usize, id: &str, code: &str, price: Option<u64>) -> Value {
        let mut item = json!({"code": code});
        if let Some(price) = price {
            item["price"] = json!(price);
        }
        let body = json!({
            "id": id,
            "type": "sale",
            "fiscal_drive_number": "7281440500012345",
            "items": [item]
        });
        let response = self
            .app
            .post("/document", &self.stores[store].1, &body)
            .await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    }

    /// A day's trade in store 0: an allowed sale, a blocked one, an unknown code, and an
    /// expired item sold under a `warn` policy.
    async fn trade(&self) {
        self.sell(0, "d1", ALLOWED, Some(ALLOWED_PRICE)).await;
        self.sell(0, "d2", EXPIRED, None).await;
        self.sell(0, "d3", UNKNOWN, None).await;
        let policy = json!({"preset": "law", "overrides": {"expired": "warn"}});
        assert_eq!(self.app.put("/policy", &self.hq, &policy).await.status, 200);
        self.sell(0, "d4", EXPIRED, None).await;
    }

    async fn audit(&self, token: &str, query: &str) -> Vec<Value> {
        let response = self.app.get(&format!("/audit?{query}"), token).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()["items"].as_array().unwrap().clone()
    }

    async fn verify(&self, token: &str, query: &str) -> Value {
        let response = self.app.get(&format!("/audit/verify?{query}"), token).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    }

    /// Runs `sql` as someone with direct database access who switched the triggers off.
    async fn tamper(&self, sql: &str) {
        self.app
            .db
            .execute_unprepared(&format!(
                "BEGIN; SET LOCAL session_replication_role = replica; {sql}; COMMIT;"
            ))
            .await
            .unwrap();
    }

    fn store(&self, i: usize) -> Uuid {
        self.stores[i].0
    }
}

fn broken(verification: &Value) -> Value {
    assert_eq!(verification["ok"], false, "{verification:#}");
    let chains = verification["chains"].as_array().unwrap();
    chains.iter().find(|c| c["ok"] == false).unwrap()["broken"].clone()
}

#[derive(FromQueryResult)]
struct Seq {
    seq: i64,
}

async fn seq_of_document(app: &TestApp, store: Uuid, pos_id: &str) -> i64 {
    Seq::find_by_statement(Statement::from_sql_and_values(
        app.db.get_database_backend(),
        "SELECT r.seq FROM audit_records r JOIN documents d ON d.id = r.document_id \
         WHERE r.kind = 'document' AND r.chain = $1 AND d.pos_document_id = $2",
        [store.into(), pos_id.into()],
    ))
    .one(&app.db)
    .await
    .unwrap()
    .unwrap()
    .seq
}

#[tokio::test]
async fn every_document_its_exchanges_and_the_admin_changes_form_a_chain_that_verifies() {
    let chain = chain().await;
    chain.trade().await;

    let records = chain
        .audit(&chain.hq, &format!("store_id={}&limit=500", chain.store(0)))
        .await;
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "document").count(), 4);
    // The first check also found and ranked the hosts; each later one is a single call.
    assert!(kinds.iter().filter(|k| **k == "exchange").count() >= 4);
    assert!(kinds.contains(&"admin"), "the store's creation and key");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["seq"], json!(i + 1), "one gapless chain, in order");
        if i > 0 {
            assert_eq!(record["prev_hash"], records[i - 1]["hash"]);
        }
    }

    let verification = chain.verify(&chain.hq, "").await;
    assert_eq!(verification["ok"], true, "{verification:#}");
    let chains = verification["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 3, "two stores and the tenant's own chain");
    let store0 = chains
        .iter()
        .find(|c| c["store_id"] == json!(chain.store(0)))
        .unwrap();
    assert_eq!(store0["records"], json!(records.len()));
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_evidence() {
    let chain = chain().await;
    chain.sell(0, "d1", ALLOWED, Some(ALLOWED_PRICE)).await;
    for sql in [
        "UPDATE audit_records SET verdict = 'allow'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
        "UPDATE truemark_exchanges SET answer_body = '{}'",
        "DELETE FROM truemark_exchanges",
        "TRUNCATE audit_records_default",
        "TRUNCATE truemark_exchanges_default",
        &format!("TRUNCATE {}", month_partition("audit_records")),
        &format!("TRUNCATE {}", month_partition("truemark_exchanges")),
        "TRUNCATE audit_anchors",
        "TRUNCATE mode_transitions",
        "TRUNCATE audit_heads",
        "DELETE FROM audit_heads",
        "UPDATE audit_heads SET seq = seq - 1",
        "UPDATE audit_heads SET hash = sha256(hash)",
    ] {
        let error = chain.app.db.execute_unprepared(sql).await.expect_err(sql);
        assert!(
            error.to_string().contains("append-only") || error.to_string().contains("advance"),
            "{sql}: {error}"
        );
    }
    let verified = chain.verify(&chain.hq, "").await;
    assert_eq!(verified["ok"], true, "{verified:#}");
}

/// This month's partition of `table`.
fn month_partition(table: &str) -> String {
    format!("{table}_{}", Utc::now().format("y%Ym%m"))
}

/// The time of a store's record `seq`, one microsecond later: the end of a period that closes
/// right after it.
async fn just_after(app: &TestApp, store: Uuid, seq: i64) -> String {
    #[derive(FromQueryResult)]
    struct At {
        at: chrono::DateTime<Utc>,
    }
    let at = At::find_by_statement(Statement::from_sql_and_values(
        app.db.get_database_backend(),
        "SELECT at FROM audit_records WHERE chain = $1 AND seq = $2",
        [store.into(), seq.into()],
    ))
    .one(&app.db)
    .await
    .unwrap()
    .unwrap()
    .at;
    urlencode(
        &(at + Duration::microseconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

#[tokio::test]
async fn a_closed_period_is_tied_to_the_records_after_it() {
    let chain = chain().await;
    chain.trade().await;
    let store = chain.store(0);
    let seq = seq_of_document(&chain.app, store, "d2").await;
    let period = format!(
        "store_id={store}&to={}",
        just_after(&chain.app, store, seq).await
    );
    let intact = chain.verify(&chain.hq, &period).await;
    assert_eq!(intact["ok"], true, "{intact:#}");
    assert_eq!(intact["chains"][0]["last_seq"], seq);

    // The record right after the period goes: the period's own records are intact, but
    // nothing continues them any more.
    chain
        .tamper(&format!(
            "DELETE FROM audit_records WHERE chain = '{store}' AND seq = {}",
            seq + 1
        ))
        .await;
    let cut = broken(&chain.verify(&chain.hq, &period).await);
    assert_eq!(cut["problem"], "missing_records", "{cut:#}");
}

#[tokio::test]
async fn a_period_emptied_in_the_database_does_not_verify_as_empty() {
    let chain = chain().await;
    chain.trade().await;
    let store = chain.store(0);
    let seq = seq_of_document(&chain.app, store, "d2").await;
    let to = just_after(&chain.app, store, seq).await;
    let from = just_after(&chain.app, store, seq - 1).await;
    let period = format!("store_id={store}&from={from}&to={to}");
    let intact = chain.verify(&chain.hq, &period).await;
    assert_eq!(intact["chains"][0]["records"], 1, "{intact:#}");

    chain
        .tamper(&format!(
            "DELETE FROM audit_records WHERE chain = '{store}' AND seq = {seq}"
        ))
        .await;
    let emptied = broken(&chain.verify(&chain.hq, &period).await);
    assert_eq!(emptied["problem"], "missing_records", "{emptied:#}");
}

#[tokio::test]
async fn a_record_slipped_in_under_a_used_number_is_named() {
    let chain = chain().await;
    chain.trade().await;
    let store = chain.store(0);
    let seq = seq_of_document(&chain.app, store, "d3").await;
    chain
        .tamper(&format!(
            "INSERT INTO audit_records SELECT gen_random_uuid(), tenant_id, chain, seq, at, kind, \
                 store_id, document_id, exchange_id, actor, action, 'allow', mode, req_id, cis, \
                 criteria, replace(content, '\"block\"', '\"allow\"'), prev_hash, hash \
             FROM audit_records WHERE chain = '{store}' AND seq = {seq}"
        ))
        .await;
    let slipped = broken(&chain.verify(&chain.hq, "").await);
    assert!(
        ["duplicate_record", "hash_mismatch"].contains(&slipped["problem"].as_str().unwrap()),
        "{slipped:#}"
    );
    assert_eq!(slipped["seq"], seq);
}

#[tokio::test]
async fn verification_names_a_record_altered_in_the_database() {
    let chain = chain().await;
    chain.trade().await;
    let seq = seq_of_document(&chain.app, chain.store(0), "d2").await;
    chain
        .tamper(&format!(
            "UPDATE audit_records SET content = replace(content, '\"block\"', '\"allow\"') \
             WHERE chain = '{}' AND seq = {seq}",
            chain.store(0)
        ))
        .await;

    let broken = broken(
        &chain
            .verify(&chain.hq, &format!("store_id={}", chain.store(0)))
            .await,
    );
    assert_eq!(broken["problem"], "hash_mismatch");
    assert_eq!(broken["seq"], seq);
    // The other store's chain is untouched.
    let other = chain
        .verify(&chain.hq, &format!("store_id={}", chain.store(1)))
        .await;
    assert_eq!(other["ok"], true);
}

#[tokio::test]
async fn verification_names_a_column_edited_to_disagree_with_its_record() {
    let chain = chain().await;
    chain.trade().await;
    let seq = seq_of_document(&chain.app, chain.store(0), "d2").await;
    chain
        .tamper(&format!(
            "UPDATE audit_records SET verdict = 'allow' WHERE chain = '{}' AND seq = {seq}",
            chain.store(0)
        ))
        .await;
    let broken = broken(&chain.verify(&chain.hq, "").await);
    assert_eq!(broken["problem"], "column_mismatch");
    assert_eq!(broken["seq"], seq);
}

#[tokio::test]
async fn verification_names_a_deleted_record_and_a_cut_tail() {
    let chain = chain().await;
    chain.trade().await;
    let seq = seq_of_document(&chain.app, chain.store(0), "d2").await;
    chain
        .tamper(&format!(
            "DELETE FROM audit_records WHERE chain = '{}' AND seq = {seq}",
            chain.store(0)
        ))
        .await;
    let broken_link = broken(&chain.verify(&chain.hq, "").await);
    assert_eq!(broken_link["problem"], "missing_records");
    assert_eq!(broken_link["seq"], seq + 1, "the record after the gap");

    // The newest record gone too: a period that reaches now notices.
    let fresh = self::chain().await;
    fresh.trade().await;
    let last = seq_of_document(&fresh.app, fresh.store(0), "d4").await;
    fresh
        .tamper(&format!(
            "DELETE FROM audit_records WHERE chain = '{}' AND seq = {last}",
            fresh.store(0)
        ))
        .await;
    let broken_tail = broken(&fresh.verify(&fresh.hq, "").await);
    assert_eq!(broken_tail["problem"], "tail_missing");
}

#[tokio::test]
async fn verification_names_reordered_records() {
    let chain = chain().await;
    chain.trade().await;
    let a = seq_of_document(&chain.app, chain.store(0), "d2").await;
    let b = seq_of_document(&chain.app, chain.store(0), "d3").await;
    // Swap the two records' places, hashes and all.
    chain
        .tamper(&format!(
            "UPDATE audit_records SET seq = CASE seq WHEN {a} THEN {b} ELSE {a} END \
             WHERE chain = '{store}' AND seq IN ({a}, {b})",
            store = chain.store(0)
        ))
        .await;
    let broken = broken(&chain.verify(&chain.hq, "").await);
    assert_eq!(broken["problem"], "prev_hash_mismatch");
    assert_eq!(broken["seq"], a);
}

#[tokio::test]
async fn verification_names_an_exchange_altered_or_removed_behind_its_record() {
    let chain = chain().await;
    chain.trade().await;
    chain
        .tamper(&format!(
            "UPDATE truemark_exchanges SET answer_body = replace(answer_body, 'false', 'true') \
             WHERE store_id = '{}'",
            chain.store(0)
        ))
        .await;
    let broken_link = broken(&chain.verify(&chain.hq, "").await);
    assert_eq!(broken_link["problem"], "exchange_altered");

    let fresh = self::chain().await;
    fresh.trade().await;
    fresh.tamper("DELETE FROM truemark_exchanges").await;
    let broken_link = broken(&fresh.verify(&fresh.hq, "").await);
    assert_eq!(broken_link["problem"], "exchange_missing");
}

#[tokio::test]
async fn every_filter_narrows_the_log_and_the_cursor_walks_it_whole() {
    let chain = chain().await;
    chain.trade().await;
    chain.sell(1, "other", ALLOWED, Some(ALLOWED_PRICE)).await;
    let hq = &chain.hq;
    let store0 = chain.store(0);

    let documents = chain
        .audit(hq, &format!("store_id={store0}&kind=document"))
        .await;
    assert_eq!(documents.len(), 4);
    assert!(documents.iter().all(|r| r["store_id"] == json!(store0)));

    let blocked = chain
        .audit(
            hq,
            &format!("store_id={store0}&kind=document&verdict=block"),
        )
        .await;
    let ids: Vec<&str> = blocked
        .iter()
        .map(|r| r["body"]["pos_document_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d2", "d3"]);

    let expired = chain.audit(hq, "criterion=expired").await;
    let ids: Vec<&str> = expired
        .iter()
        .map(|r| r["body"]["pos_document_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d2", "d4"]);
    let warned = chain.audit(hq, "criterion=expired&verdict=warn").await;
    assert_eq!(warned.len(), 1);

    // By КИ, given as the КИ or as the whole scanned code.
    let by_cis = chain
        .audit(hq, &format!("kind=document&cis={}", urlencode(EXPIRED_CIS)))
        .await;
    assert_eq!(by_cis.len(), 2);
    let by_code = chain
        .audit(hq, &format!("kind=document&cis={}", urlencode(EXPIRED)))
        .await;
    assert_eq!(by_code.len(), 2);

    let online = chain.audit(hq, "kind=document&mode=online").await;
    assert_eq!(online.len(), 5);
    assert!(chain.audit(hq, "mode=no_check").await.is_empty());

    let req_id = documents[0]["req_id"].as_str().unwrap().to_owned();
    let by_req = chain.audit(hq, &format!("req_id={req_id}")).await;
    assert!(by_req.len() >= 2, "the document and its exchange");
    assert!(by_req.iter().all(|r| r["req_id"] == json!(req_id)));

    let document_id = documents[0]["document_id"].as_str().unwrap().to_owned();
    let by_document = chain.audit(hq, &format!("document_id={document_id}")).await;
    let (last, before) = by_document.split_last().unwrap();
    assert_eq!(last["kind"], "document", "its exchanges come first");
    assert!(!before.is_empty());
    assert!(before.iter().all(|r| r["kind"] == "exchange"));

    // A period: nothing before the first record, everything up to now.
    let first_at = documents[0]["at"].as_str().unwrap().to_owned();
    let before = chain
        .audit(hq, &format!("kind=document&to={}", urlencode(&first_at)))
        .await;
    assert!(before.is_empty());
    let since = chain
        .audit(hq, &format!("kind=document&from={}", urlencode(&first_at)))
        .await;
    assert_eq!(since.len(), 5);

    // Pages of 2 walk the whole log once, in order.
    let everything = chain.audit(hq, "limit=500").await;
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_owned(),
        };
        let page = chain.app.get(&format!("/audit?{query}"), hq).await.json();
        walked.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let all: Vec<Value> = everything.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(walked, all);
}

#[tokio::test]
async fn broken_audit_parameters_get_a_precise_400() {
    let chain = chain().await;
    for query in [
        "verdict=maybe",
        "criterion=bad_luck",
        "mode=sometimes",
        "kind=rumour",
        "from=yesterday",
        "store_id=42",
        "limit=0",
        "limit=501",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
        "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
        "from=-200000-01-01T00:00:00Z",
        "to=%2B200000-01-01T00:00:00Z",
        "req_id=a%00b",
        "cis=%00",
        "cis=",
        "req_id=%20",
    ] {
        let response = chain.app.get(&format!("/audit?{query}"), &chain.hq).await;
        assert_eq!(response.status, 400, "{query}: {}", response.text);
        assert_eq!(response.content_type(), "application/problem+json");
    }
    for path in [
        "/audit/verify?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
        "/reports?from=2026-12-01T00:00:00Z",
        "/reports?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z&format=docx",
        "/audit/export?format=xml",
        "/audit/records/not-a-uuid",
        "/reports?from=-200000-01-01T00:00:00Z&to=2026-12-02T00:00:00Z",
        "/audit/verify?to=%2B200000-01-01T00:00:00Z",
        "/reports?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
        "/reports?from=2026-12-01T00:00:00Z&to=2026-12-01T00:00:00Z",
        // A misspelt or foreign parameter would silently widen what is read.
        "/audit?verdikt=block",
        "/audit?format=json",
        "/audit/export?limit=5",
        "/audit/export?store=x",
        "/audit/verify?store=x",
    ] {
        let response = chain.app.get(path, &chain.hq).await;
        assert_eq!(response.status, 400, "{path}: {}", response.text);
        assert_eq!(response.content_type(), "application/problem+json");
    }
}

#[tokio::test]
async fn a_record_opens_to_the_raw_exchange_and_the_answer_the_cashier_got() {
    let chain = chain().await;
    let answer = chain.sell(0, "d1", ALLOWED, Some(ALLOWED_PRICE)).await;
    let records = chain.audit(&chain.hq, "kind=document").await;
    let id = records[0]["id"].as_str().unwrap();

    let detail = chain
        .app
        .get(&format!("/audit/records/{id}"), &chain.hq)
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let detail = detail.json();
    assert_eq!(detail["body"]["answer"], answer, "every word the POS got");
    let exchanges = detail["exchanges"].as_array().unwrap();
    let checks: Vec<&Value> = exchanges
        .iter()
        .filter(|e| e["endpoint"] == "codes_check")
        .collect();
    assert_eq!(checks.len(), 1, "{exchanges:#?}");
    assert!(
        checks[0]["answer_body"]
            .as_str()
            .unwrap()
            .contains(answer["req_id"].as_str().unwrap())
    );
    assert!(
        checks[0]["request_body"]
            .as_str()
            .unwrap()
            .contains("codes")
    );
}

#[tokio::test]
async fn admin_changes_are_logged_with_who_made_them_and_no_secret() {
    let chain = chain().await;
    let (key_id, key) = chain
        .app
        .issue_key(&chain.hq, &json!({"role": "auditor", "name": "ревизор"}))
        .await;
    assert_eq!(
        chain
            .app
            .delete(&format!("/keys/{key_id}"), &chain.hq)
            .await
            .status,
        200
    );
    let store = chain.store(1);
    let disabled = chain
        .app
        .patch(
            &format!("/stores/{store}"),
            &chain.hq,
            &json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);

    let admin = chain.audit(&chain.hq, "kind=admin&limit=500").await;
    let actions: Vec<&str> = admin
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "tenant.created",
        "truemark.key_set",
        "store.created",
        "key.issued",
        "key.revoked",
        "store.updated",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let tenant_created = admin
        .iter()
        .find(|r| r["action"] == "tenant.created")
        .unwrap();
    assert_eq!(tenant_created["actor"], "platform");
    let revoked = admin.iter().find(|r| r["action"] == "key.revoked").unwrap();
    assert!(
        revoked["actor"].as_str().unwrap().starts_with("hq_admin:"),
        "{revoked}"
    );
    assert_eq!(revoked["body"]["id"], json!(key_id));
    let disabled = admin
        .iter()
        .find(|r| r["action"] == "store.updated")
        .unwrap();
    assert_eq!(
        disabled["store_id"],
        json!(store),
        "in the store's own chain"
    );

    let text = serde_json::to_string(&admin).unwrap();
    assert!(!text.contains(&key), "an issued key never reaches the log");
    assert!(!text.contains(DEFAULT_API_KEY), "nor does the ЧЗ key");
}

#[tokio::test]
async fn hand_edits_of_the_mark_base_are_logged_and_found_by_their_mark() {
    let chain = chain().await;
    chain.sell(0, "d1", EXPIRED, None).await;
    let store = &chain.stores[0].1;
    // A sold mark made sellable again by hand is exactly what an auditor must be able to find.
    let body = json!({"cis": EXPIRED_CIS, "status": "available"});
    let response = chain.app.put("/unique_product_stamp", store, &body).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let added = json!({"codes": [UNKNOWN, "not a code"]});
    let response = chain.app.post("/create_stamp", &chain.hq, &added).await;
    assert_eq!(response.status, 200, "{}", response.text);

    let cis = urlencode(EXPIRED_CIS);
    let records = chain
        .audit(&chain.hq, &format!("cis={cis}&kind=admin"))
        .await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["action"], "mark.status_set");
    assert_eq!(records[0]["store_id"], json!(chain.store(0)));
    assert!(records[0]["actor"].as_str().unwrap().starts_with("store:"));
    assert_eq!(records[0]["body"]["status"], "available");

    let bulk = chain.audit(&chain.hq, "kind=admin").await;
    let bulk = bulk.iter().find(|r| r["action"] == "marks.added").unwrap();
    assert_eq!(
        bulk["store_id"],
        Value::Null,
        "an HQ change is the tenant's"
    );
    assert_eq!(
        bulk["cis"].as_array().unwrap().len(),
        1,
        "only what was added"
    );

    let removed = chain
        .app
        .delete(&format!("/unique_product_stamp/{cis}"), store)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let records = chain
        .audit(&chain.hq, &format!("cis={cis}&kind=admin"))
        .await;
    assert_eq!(records.last().unwrap()["action"], "mark.removed");
    assert_eq!(chain.verify(&chain.hq, "").await["ok"], true);
}

#[tokio::test]
async fn each_role_sees_only_its_own_stores_and_no_tenant_sees_another() {
    let chain = chain().await;
    chain.sell(0, "a", ALLOWED, Some(ALLOWED_PRICE)).await;
    chain.sell(1, "b", ALLOWED, Some(ALLOWED_PRICE)).await;
    let (store0, store1) = (chain.store(0), chain.store(1));
    let (_, auditor_key) = chain
        .app
        .issue_key(
            &chain.hq,
            &json!({"role": "auditor", "name": "a", "store_ids": [store1]}),
        )
        .await;
    let auditor = chain.app.token(&auditor_key).await;
    let pos0 = chain.stores[0].1.clone();

    // A store sees its own chain only.
    let own = chain.audit(&pos0, "limit=500").await;
    assert!(!own.is_empty());
    assert!(own.iter().all(|r| r["store_id"] == json!(store0)));
    for path in [
        format!("/audit?store_id={store1}"),
        format!("/audit/export?store_id={store1}"),
    ] {
        assert_eq!(chain.app.get(&path, &pos0).await.status, 404, "{path}");
    }
    let chains = chain.verify(&pos0, "").await["chains"].clone();
    assert_eq!(chains.as_array().unwrap().len(), 1);
    assert_eq!(chains[0]["store_id"], json!(store0));

    // A limited auditor sees its store, not the other, nor the tenant's own chain.
    let seen = chain.audit(&auditor, "limit=500").await;
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|r| r["store_id"] == json!(store1)));
    let other_record = own[0]["id"].as_str().unwrap();
    assert_eq!(
        chain
            .app
            .get(&format!("/audit/records/{other_record}"), &auditor)
            .await
            .status,
        404
    );
    let period = "from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    assert_eq!(
        chain
            .app
            .get(&format!("/reports?store_id={store0}&{period}"), &auditor)
            .await
            .status,
        404
    );
    let report = chain.app.get(&format!("/reports?{period}"), &auditor).await;
    assert_eq!(
        report.json()["totals"]["documents"],
        1,
        "its one store only"
    );
    let export = chain.app.get("/audit/export?format=json", &auditor).await;
    let exported: Vec<Value> = serde_json::from_str(&export.text).unwrap();
    assert!(exported.iter().all(|r| r["store_id"] == json!(store1)));

    // Another tenant sees nothing of this one.
    let (_, stranger_key) = chain.app.create_tenant("Другая сеть").await;
    let stranger = chain.app.token(&stranger_key).await;
    let theirs = chain.audit(&stranger, "limit=500").await;
    assert!(
        theirs
            .iter()
            .all(|r| r["kind"] == "admin" && r["store_id"].is_null())
    );
    assert_eq!(
        chain
            .app
            .get(&format!("/audit?store_id={store0}"), &stranger)
            .await
            .status,
        404
    );
    assert_eq!(
        chain
            .app
            .get(&format!("/audit/records/{other_record}"), &stranger)
            .await
            .status,
        404
    );
    assert_eq!(
        chain
            .app
            .get(&format!("/reports?store_id={store0}&{period}"), &stranger)
            .await
            .status,
        404
    );
    assert_eq!(
        chain
            .app
            .get(&format!("/audit/verify?store_id={store0}"), &stranger)
            .await
            .status,
        404
    );
    let verified = chain.verify(&stranger, "").await;
    assert!(
        verified["chains"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["store_id"] != store0.to_string()),
        "{verified}"
    );

    // The platform operator has no tenant's log.
    let platform = chain.app.platform_token().await;
    assert_eq!(chain.app.get("/audit", &platform).await.status, 403);
}

#[tokio::test]
async fn the_report_counts_what_the_log_holds_in_every_format() {
    let chain = chain().await;
    chain.trade().await;
    let store0 = chain.store(0);
    let from = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let period = format!("from={}&to={}", urlencode(&from), urlencode(&to));

    let report = chain
        .app
        .get(&format!("/reports?store_id={store0}&{period}"), &chain.hq)
        .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let report = report.json();
    let documents = chain
        .audit(&chain.hq, &format!("store_id={store0}&kind=document"))
        .await;
    assert_eq!(report["totals"]["documents"], json!(documents.len()));
    let count = |verdict: &str| documents.iter().filter(|r| r["verdict"] == verdict).count();
    let by_verdict: Vec<(String, u64)> = report["totals"]["documents_by_verdict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    for (verdict, n) in &by_verdict {
        assert_eq!(*n as usize, count(verdict), "{verdict}");
    }
    assert_eq!(count("block"), 2);
    let expired = report["totals"]["by_criterion"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion"] == "expired")
        .unwrap();
    assert_eq!(expired["blocked"], 1);
    assert_eq!(expired["warned"], 1);
    let warned = report["warned_and_sold"].as_array().unwrap();
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0]["pos_document_id"], "d4");
    assert_eq!(warned[0]["cis"], EXPIRED_CIS);
    let exchanges = chain
        .audit(&chain.hq, &format!("store_id={store0}&kind=exchange"))
        .await;
    assert_eq!(report["truemark"]["exchanges"], json!(exchanges.len()));
    assert_eq!(report["store"]["id"], json!(store0));

    // CSV: UTF-8 with a BOM, `;` by default, `,` on request, the same totals.
    for (separator, byte) in [("", b';'), ("&separator=comma", b',')] {
        let csv = chain
            .app
            .http
            .get(chain.app.url(&format!(
                "/reports?store_id={store0}&{period}&format=csv{separator}"
            )))
            .bearer_auth(&chain.hq)
            .send()
            .await
            .unwrap();
        assert_eq!(csv.status(), 200);
        assert!(
            csv.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let bytes = csv.bytes().await.unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "Excel needs the BOM");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(byte)
            .flexible(true)
            .has_headers(false)
            .from_reader(&bytes[3..]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let totals = rows
            .iter()
            .find(|r| &r[0] == "totals" && &r[1] == "1")
            .unwrap();
        assert_eq!(totals[2].parse::<usize>().unwrap(), documents.len());
        let blocked = rows
            .iter()
            .find(|r| &r[0] == "documents_by_verdict" && &r[2] == "block")
            .unwrap();
        assert_eq!(&blocked[3], "2");
    }

    // PDF: a real document whose text a parser reads back.
    let pdf = chain
        .app
        .http
        .get(
            chain
                .app
                .url(&format!("/reports?store_id={store0}&{period}&format=pdf")),
        )
        .bearer_auth(&chain.hq)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = pdf_extract::extract_text_from_mem(&bytes).unwrap();
    assert!(text.contains("Ромашка"), "the tenant's name");
    assert!(text.contains(EXPIRED_CIS), "the warned item");
}

#[tokio::test]
async fn a_report_counts_what_the_log_holds_not_what_the_tables_were_edited_to_say() {
    let chain = chain().await;
    chain.trade().await;
    let store0 = chain.store(0);
    let from = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let query = format!(
        "/reports?store_id={store0}&from={}&to={}",
        urlencode(&from),
        urlencode(&to)
    );
    let report = async |chain: &Chain| {
        let response = chain.app.get(&query, &chain.hq).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    };

    let before = report(&chain).await;
    assert_eq!(before["integrity"]["ok"], true, "{:#}", before["integrity"]);
    let newest = chain
        .audit(&chain.hq, &format!("store_id={store0}&limit=500"))
        .await;
    let newest = newest.last().unwrap();
    let seal = &before["integrity"]["chains"][0];
    assert_eq!(seal["last_seq"], newest["seq"]);
    assert_eq!(seal["last_hash"], newest["hash"]);

    // Plain SQL, no trigger switched off: the operational tables are rewritten and forged rows
    // are slipped in beside the evidence.
    #[derive(FromQueryResult)]
    struct Id {
        id: Uuid,
    }
    let db = &chain.app.db;
    let edited = Id::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "UPDATE documents SET verdict = 'allow', \
             answer = jsonb_set(answer, '{verdict}', '\"allow\"') \
         WHERE pos_document_id = 'd2' RETURNING id",
    ))
    .one(db)
    .await
    .unwrap()
    .unwrap()
    .id;
    let voided = Id::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "UPDATE documents SET voided_at = now() WHERE pos_document_id = 'd4' RETURNING id",
    ))
    .one(db)
    .await
    .unwrap()
    .unwrap()
    .id;
    let tenant: Uuid = chain.app.get("/me", &chain.hq).await.json()["tenant_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE documents SET created_at = created_at - interval '10 days' \
             WHERE pos_document_id = 'd3'; \
         UPDATE document_items SET verdict = 'allow'; \
         INSERT INTO truemark_exchanges (id, tenant_id, store_id, document_id, endpoint, method, \
             url, started_at, duration_ms, http_status) \
         SELECT gen_random_uuid(), tenant_id, store_id, document_id, endpoint, method, \
             'https://forged.example/api/v4/true-api/codes/check', started_at, 5, 503 \
         FROM truemark_exchanges WHERE store_id = '{store0}' LIMIT 1; \
         INSERT INTO mode_transitions (id, tenant_id, base_url, region, from_mode, to_mode, \
             reason, exchanges) \
         VALUES (gen_random_uuid(), '{tenant}', 'x', 'test', 'online', 'no_check', 'forged', \
             '[]')"
    ))
    .await
    .unwrap();

    let after = report(&chain).await;
    for part in [
        "totals",
        "sales_without_tag1260",
        "warned_and_sold",
        "no_check_periods",
    ] {
        assert_eq!(
            after[part], before[part],
            "{part} still says what the log holds"
        );
    }
    assert_eq!(
        after["truemark"]["exchanges"], before["truemark"]["exchanges"],
        "an exchange without its record is not counted"
    );
    let integrity = &after["integrity"];
    assert_eq!(integrity["ok"], false, "{integrity:#}");
    let mut unmatched = vec![edited, voided];
    unmatched.sort();
    assert_eq!(integrity["documents_unmatched"], json!(unmatched));
    assert_eq!(integrity["exchanges_unrecorded"], 1);

    // Nor does a document's record open to the forged exchange.
    let record = chain
        .audit(&chain.hq, &format!("document_id={edited}&kind=document"))
        .await;
    let detail = chain
        .app
        .get(
            &format!("/audit/records/{}", record[0]["id"].as_str().unwrap()),
            &chain.hq,
        )
        .await
        .json();
    assert!(!detail["exchanges"].as_array().unwrap().is_empty());
    assert!(!detail.to_string().contains("forged.example"), "{detail:#}");
}

#[tokio::test]
async fn a_warned_item_beside_a_blocked_one_is_reported_sold() {
    let chain = chain().await;
    let policy = json!({"preset": "law", "overrides": {"not_found": "warn"}});
    assert_eq!(
        chain.app.put("/policy", &chain.hq, &policy).await.status,
        200
    );
    // The cashier takes the blocked item off the receipt and sells the rest.
    let body = json!({
        "id": "mix",
        "type": "sale",
        "fiscal_drive_number": "7281440500012345",
        "items": [{"code": UNKNOWN}, {"code": EXPIRED}]
    });
    let answer = chain.app.post("/document", &chain.stores[0].1, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = answer.json();
    assert_eq!(answer["verdict"], "block");
    assert_eq!(answer["items"][0]["verdict"], "warn");
    assert_eq!(answer["items"][0]["mark_status_after"], "sold");

    let from = urlencode(&(Utc::now() - Duration::hours(1)).to_rfc3339());
    let to = urlencode(&(Utc::now() + Duration::hours(1)).to_rfc3339());
    let report = chain
        .app
        .get(&format!("/reports?from={from}&to={to}"), &chain.hq)
        .await
        .json();
    let warned = report["warned_and_sold"].as_array().unwrap();
    assert_eq!(warned.len(), 1, "{report:#}");
    assert_eq!(warned[0]["pos_document_id"], "mix");
    assert_eq!(warned[0]["position"], 0);
}

#[tokio::test]
async fn a_record_slipped_in_before_1970_does_not_escape_verification() {
    let chain = chain().await;
    chain.trade().await;
    let store = chain.store(0);
    let seq = seq_of_document(&chain.app, store, "d2").await;
    // INSERT is open to the service's role; only the chain tells such a record apart.
    chain
        .app
        .db
        .execute_unprepared(&format!(
            "INSERT INTO audit_records SELECT gen_random_uuid(), tenant_id, chain, seq, \
                 '1969-07-20T20:17:00Z', kind, store_id, document_id, exchange_id, actor, action, \
                 verdict, mode, req_id, cis, criteria, content, prev_hash, hash \
             FROM audit_records WHERE chain = '{store}' AND seq = {seq}"
        ))
        .await
        .unwrap();
    let slipped = broken(&chain.verify(&chain.hq, "").await);
    assert_eq!(slipped["seq"], seq, "{slipped:#}");
}

#[tokio::test]
async fn a_large_export_streams_in_flat_memory() {
    let chain = chain().await;
    let store = chain.store(0);
    let tenant: Uuid = chain.app.get("/me", &chain.hq).await.json()["tenant_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // 60 000 records of 2 KB each, written straight into the table: the export reads them
    // without verifying, so their hashes need not link.
    let records = 60_000;
    chain
        .app
        .db
        .execute_unprepared(&format!(
            "INSERT INTO audit_records (id, tenant_id, chain, seq, at, kind, store_id, actor, \
                 action, content, prev_hash, hash) \
             SELECT gen_random_uuid(), '{tenant}', '{store}', 1000 + n, \
                 now() + n * interval '1 microsecond', 'admin', '{store}', 'system', 'bulk', \
                 format('{{\"tenant_id\":\"{tenant}\",\"chain\":\"{store}\",\"kind\":\"admin\",\
                 \"store_id\":\"{store}\",\"document_id\":null,\"exchange_id\":null,\
                 \"actor\":\"system\",\"action\":\"bulk\",\"verdict\":null,\"mode\":null,\
                 \"req_id\":null,\"cis\":[],\"criteria\":[],\"body\":{{\"n\":%s,\"pad\":\"%s\"}}}}', \
                 n, repeat('x', 2000)), '\\x00', '\\x00' \
             FROM generate_series(1, {records}) n"
        ))
        .await
        .unwrap();

    let before = peak_rss_kb();
    let response = chain
        .app
        .http
        .get(chain.app.url(&format!("/audit/export?store_id={store}")))
        .bearer_auth(&chain.hq)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let (mut bytes, mut lines) = (0_usize, 0_usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let grown_mb = (peak_rss_kb() - before) / 1024;
    assert!(lines > records, "every record and the header came: {lines}");
    assert!(bytes > 120 << 20, "the export is large: {bytes} bytes");
    assert!(
        grown_mb < 48,
        "a {} MB export grew the peak memory by {grown_mb} MB",
        bytes >> 20
    );
}

/// The process' peak resident memory, from the kernel.
fn peak_rss_kb() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn retention_drops_old_months_and_the_chain_still_verifies_from_its_anchors() {
    let chain = chain().await;
    chain.trade().await;
    let last_before = seq_of_document(&chain.app, chain.store(0), "d4").await;

    // Five years and two months later, every month up to this one is past retention.
    let later = Utc::now() + Duration::days(62 * 31);
    let dropped = imark_core::audit::partitions::apply_retention(&chain.app.db, later, 60)
        .await
        .unwrap();
    assert!(!dropped.is_empty());
    assert!(chain.audit(&chain.hq, "kind=document").await.is_empty());

    // Trade goes on; the chain continues from the anchor and verifies.
    chain.sell(0, "after", ALLOWED, Some(ALLOWED_PRICE)).await;
    let records = chain
        .audit(&chain.hq, &format!("store_id={}", chain.store(0)))
        .await;
    assert!(records[0]["seq"].as_i64().unwrap() > last_before);
    let verification = chain.verify(&chain.hq, "").await;
    assert_eq!(verification["ok"], true, "{verification:#}");
    // This month's rows now sit in the default partition; making the months around now again
    // skips this one and makes the rest.
    imark_core::audit::partitions::ensure(&chain.app.db, Utc::now())
        .await
        .unwrap();

    // An anchor is evidence too: a forged one no longer links.
    chain
        .tamper("UPDATE audit_anchors SET hash = sha256(hash)")
        .await;
    let store0 = chain
        .verify(&chain.hq, &format!("store_id={}", chain.store(0)))
        .await;
    assert_eq!(broken(&store0)["problem"], "prev_hash_mismatch");
    // A chain that retention took whole now ends at a forged anchor.
    let store1 = chain
        .verify(&chain.hq, &format!("store_id={}", chain.store(1)))
        .await;
    assert_eq!(broken(&store1)["problem"], "tail_missing");
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn a_voided_sale_is_recorded_after_its_document() {
    let chain = chain().await;
    chain.sell(0, "v1", ALLOWED, Some(ALLOWED_PRICE)).await;
    let voided = chain.app.delete("/document/v1", &chain.stores[0].1).await;
    assert_eq!(voided.status, 200, "{}", voided.text);
    let records = chain
        .audit(&chain.hq, &format!("store_id={}&kind=void", chain.store(0)))
        .await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["body"]["pos_document_id"], "v1");
    assert!(
        records[0]["actor"].as_str().unwrap().starts_with("store:"),
        "the store key that voided it"
    );
    // Voiding again changes nothing, and records nothing more.
    chain.app.delete("/document/v1", &chain.stores[0].1).await;
    let again = chain.audit(&chain.hq, "kind=void").await;
    assert_eq!(again.len(), 1);
    assert_eq!(chain.verify(&chain.hq, "").await["ok"], true);
}
