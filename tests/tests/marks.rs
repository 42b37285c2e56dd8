//! The mark base endpoints and the offline package.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use serde_json::{Value, json};

use imark_tests::TestApp;

const PACK: &str = "04601653035829H;dV)bFABVUdGVz";
const PACK_CIS: &str = "04601653035829H;dV)bF";
const SHOE: &str = "0104670540176099215'W9Um\u{1d}93dGVz";
const SHOE_CIS: &str = "0104670540176099215'W9Um";

struct Chain {
    app: TestApp,
    hq: String,
    store: String,
    other_store: String,
}

async fn chain() -> Chain {
    let app = TestApp::spawn().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let mut tokens = Vec::new();
    for code in ["s1", "s2"] {
        let store = app.create_store(&hq, code).await;
        let (_, token) = app.issue_store_token(&hq, store, "pos").await;
        tokens.push(token);
    }
    let other_store = tokens.pop().unwrap();
    let store = tokens.pop().unwrap();
    Chain {
        app,
        hq,
        store,
        other_store,
    }
}

fn encode(cis: &str) -> String {
    url::form_urlencoded::byte_serialize(cis.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[tokio::test]
async fn bulk_creation_adds_new_marks_keeps_known_ones_and_explains_refusals() {
    let c = chain().await;

    let first = c
        .app
        .post(
            "/create_stamp",
            &c.store,
            &json!({"codes": [PACK, SHOE, "4607038046435", ""]}),
        )
        .await;
    let again = c
        .app
        .post("/create_stamp", &c.hq, &json!({"codes": [PACK]}))
        .await;

    assert_eq!(first.status, 200, "{}", first.text);
    let body = first.json();
    assert_eq!(body["added"], 2);
    assert_eq!(body["refused"], 2);
    assert_eq!(body["items"][0]["cis"], PACK_CIS);
    assert_eq!(body["items"][1]["cis"], SHOE_CIS);
    assert_eq!(body["items"][2]["error"], "not_a_marking_code");
    assert_eq!(body["items"][3]["error"], "empty_code");
    assert!(body["items"][2]["message"].is_string());
    assert_eq!(again.json()["existing"], 1);
}

#[tokio::test]
async fn one_mark_is_added_read_changed_and_removed_by_its_cis() {
    let c = chain().await;

    let added = c
        .app
        .post("/unique_product_stamp", &c.store, &json!({"code": SHOE}))
        .await;
    let added_again = c
        .app
        .post("/unique_product_stamp", &c.store, &json!({"code": SHOE}))
        .await;
    let path = format!("/unique_product_stamp/{}", encode(SHOE_CIS));
    let read = c.app.get(&path, &c.store).await;
    let read_by_full_code = c
        .app
        .get(&format!("/unique_product_stamp/{}", encode(SHOE)), &c.hq)
        .await;
    let sold = c
        .app
        .put(
            "/unique_product_stamp",
            &c.store,
            &json!({"cis": SHOE_CIS, "status": "sold"}),
        )
        .await;
    let removed = c.app.delete(&path, &c.store).await;
    let gone = c.app.get(&path, &c.store).await;

    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["status"], "available");
    assert_eq!(added_again.status, 200);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json()["cis"], SHOE_CIS);
    assert_eq!(read_by_full_code.json()["cis"], SHOE_CIS);
    assert_eq!(sold.json()["status"], "sold");
    assert!(sold.json()["sold_at"].is_string());
    assert_eq!(removed.status, 204);
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_store_reads_its_tenants_marks_but_changes_only_its_own() {
    let c = chain().await;
    c.app
        .post("/unique_product_stamp", &c.store, &json!({"code": PACK}))
        .await;
    let path = format!("/unique_product_stamp/{}", encode(PACK_CIS));

    let read = c.app.get(&path, &c.other_store).await;
    let change = c
        .app
        .put(
            "/unique_product_stamp",
            &c.other_store,
            &json!({"cis": PACK_CIS, "status": "sold"}),
        )
        .await;
    let delete = c.app.delete(&path, &c.other_store).await;
    let (_, foreign_key) = c.app.create_tenant("Чужие").await;
    let foreign = c.app.token(&foreign_key).await;
    let foreign_read = c.app.get(&path, &foreign).await;
    let foreign_list = c.app.get("/unique_product_stamp", &foreign).await.json();

    assert_eq!(read.status, 200);
    assert_eq!(change.status, 404);
    assert_eq!(delete.status, 404);
    assert_eq!(foreign_read.status, 404);
    assert_eq!(foreign_list["items"], json!([]));
}

#[tokio::test]
async fn the_mark_list_pages_and_filters() {
    let c = chain().await;
    c.app
        .post(
            "/create_stamp",
            &c.hq,
            &json!({"codes": [PACK, SHOE, "04601653035829H;vE)bFABBUdGVz"]}),
        )
        .await;
    c.app
        .put(
            "/unique_product_stamp",
            &c.hq,
            &json!({"cis": PACK, "status": "sold"}),
        )
        .await;

    let first = c
        .app
        .get("/unique_product_stamp?limit=2", &c.hq)
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = c
        .app
        .get(
            &format!("/unique_product_stamp?limit=2&cursor={cursor}"),
            &c.hq,
        )
        .await
        .json();
    let sold = c
        .app
        .get("/unique_product_stamp?status=sold", &c.hq)
        .await
        .json();
    let bad = c.app.get("/unique_product_stamp?status=lost", &c.hq).await;

    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(sold["items"].as_array().unwrap().len(), 1);
    assert_eq!(sold["items"][0]["cis"], PACK_CIS);
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn broken_marks_are_refused_precisely() {
    let c = chain().await;

    let not_code = c
        .app
        .post(
            "/unique_product_stamp",
            &c.store,
            &json!({"code": "(01)04670540176099(21)5'W9Um"}),
        )
        .await;
    let bad_cis = c.app.get("/unique_product_stamp/%D0%B9", &c.store).await;
    let too_many = c
        .app
        .post(
            "/create_stamp",
            &c.store,
            &json!({"codes": vec![PACK; 1001]}),
        )
        .await;
    let bad_status = c
        .app
        .put(
            "/unique_product_stamp",
            &c.store,
            &json!({"cis": PACK, "status": "stolen"}),
        )
        .await;
    let auditor_write = {
        let (_, key) = c
            .app
            .issue_key(&c.hq, &json!({"role": "auditor", "name": "a"}))
            .await;
        let auditor = c.app.token(&key).await;
        c.app
            .post("/create_stamp", &auditor, &json!({"codes": [PACK]}))
            .await
    };

    assert_eq!(not_code.status, 422, "{}", not_code.text);
    assert_eq!(not_code.json()["errors"][0]["field"], "code");
    assert_eq!(bad_cis.status, 422, "{}", bad_cis.text);
    assert_eq!(too_many.status, 422);
    assert_eq!(bad_status.status, 422);
    assert_eq!(auditor_write.status, 403);
}

#[tokio::test]
async fn the_offline_package_is_incremental_and_repeats_only_recent_states() {
    let c = chain().await;
    c.app
        .post("/create_stamp", &c.hq, &json!({"codes": [PACK, SHOE]}))
        .await;
    c.app
        .put(
            "/unique_product_stamp",
            &c.hq,
            &json!({"cis": PACK, "status": "sold"}),
        )
        .await;

    let first_page = c.app.get("/codes/offline?limit=1", &c.store).await.json();
    let page_cursor = first_page["next_cursor"].as_str().unwrap().to_owned();
    let second_page = c
        .app
        .get(
            &format!("/codes/offline?limit=1&cursor={page_cursor}"),
            &c.store,
        )
        .await
        .json();
    let cursor = second_page["next_cursor"].as_str().unwrap().to_owned();
    c.app
        .put(
            "/unique_product_stamp",
            &c.hq,
            &json!({"cis": PACK, "status": "available"}),
        )
        .await;
    let delta = c
        .app
        .get(&format!("/codes/offline?cursor={cursor}"), &c.store)
        .await
        .json();
    let by_hq = c.app.get("/codes/offline", &c.hq).await;
    let forged = c.app.get("/codes/offline?cursor=eHl6", &c.store).await;

    let states = |page: &Value| -> Vec<(String, String)> {
        page["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cis"].as_str().unwrap().to_owned(),
                    c["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(first_page["mode"], "online");
    assert!(first_page["generated_at"].is_string());
    assert_eq!(first_page["has_more"], true);
    assert_eq!(second_page["has_more"], false);
    let mut all = states(&first_page);
    all.extend(states(&second_page));
    assert!(
        all.contains(&(SHOE_CIS.to_owned(), "clear".to_owned())),
        "{all:?}"
    );
    assert!(
        all.contains(&(PACK_CIS.to_owned(), "sold".to_owned())),
        "{all:?}"
    );
    // After catching up, the next poll brings the new state (and may repeat recent ones).
    let last = states(&delta);
    let pack_now: Vec<&(String, String)> = last.iter().filter(|(cis, _)| cis == PACK_CIS).collect();
    assert_eq!(pack_now.last().unwrap().1, "clear", "{last:?}");
    assert_eq!(by_hq.status, 403);
    assert_eq!(forged.status, 400);
}
