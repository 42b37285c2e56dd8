//! A newcomer's path, end to end: platform → tenant → HQ key → store → store key → store token →
//! the store reads its own ЧЗ settings.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use serde_json::json;

use imark_tests::TestApp;

#[tokio::test]
async fn a_store_is_onboarded_and_reads_its_effective_truemark_settings() {
    let app = TestApp::spawn().await;

    let (tenant_id, hq_key) = app.create_tenant("ООО «Ромашка»").await;
    let hq = app.token(&hq_key).await;
    let store_id = app.create_store(&hq, "msk-001").await;
    let put = app
        .put(
            "/truemark",
            &hq,
            &json!({"api_key": "3f2a9c1e-5b7d-4e8f-a1c2-9d0e7f6b5a43", "region": "msk"}),
        )
        .await;
    let (_, store_key) = app
        .issue_key(
            &hq,
            &json!({"role": "store", "name": "POS 1", "store_id": store_id}),
        )
        .await;
    let store = app.token(&store_key).await;
    let me = app.get("/me", &store).await.json();
    let settings = app.get("/truemark", &store).await;

    assert_eq!(put.status, 200, "{}", put.text);
    assert!(hq_key.starts_with("imk_hq_") && store_key.starts_with("imk_st_"));
    assert_eq!(me["role"], "store");
    assert_eq!(me["tenant_id"], tenant_id.to_string());
    assert_eq!(me["store_id"], store_id.to_string());
    assert_eq!(settings.status, 200, "{}", settings.text);
    let effective = &settings.json()["effective"];
    assert_eq!(effective["source"], "tenant");
    assert_eq!(effective["base_url"], "https://cdn.crpt.ru");
    assert_eq!(effective["region"], "msk");
    assert_eq!(effective["api_key_masked"], "••••5a43");
}

#[tokio::test]
async fn a_store_override_takes_precedence_over_the_tenant_settings() {
    let app = TestApp::spawn().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let franchisee = app.create_store(&hq, "franchise-1").await;
    let own = app.create_store(&hq, "own-1").await;
    app.put("/truemark", &hq, &json!({"api_key": "tenant-key-0001"}))
        .await;

    let put = app
        .put(
            "/truemark",
            &hq,
            &json!({
                "api_key": "franchisee-key-0002",
                "base_url": "https://markirovka.sandbox.crptech.ru",
                "key_expires_on": "2027-06-30",
                "store_id": franchisee
            }),
        )
        .await;
    let franchisee_view = app
        .get(&format!("/truemark?store_id={franchisee}"), &hq)
        .await
        .json();
    let own_view = app
        .get(&format!("/truemark?store_id={own}"), &hq)
        .await
        .json();

    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(franchisee_view["effective"]["source"], "store");
    assert_eq!(
        franchisee_view["effective"]["base_url"],
        "https://markirovka.sandbox.crptech.ru"
    );
    assert_eq!(franchisee_view["effective"]["key_expires_on"], "2027-06-30");
    assert_eq!(franchisee_view["tenant"]["api_key_masked"], "••••0001");
    assert_eq!(own_view["effective"]["source"], "tenant");
    assert_eq!(own_view["store_override"], serde_json::Value::Null);
}

#[tokio::test]
async fn removing_a_store_override_restores_the_tenant_settings() {
    let app = TestApp::spawn().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store = app.create_store(&hq, "s1").await;
    app.put("/truemark", &hq, &json!({"api_key": "tenant-key-0001"}))
        .await;
    app.put(
        "/truemark",
        &hq,
        &json!({"api_key": "store-key-0002", "store_id": store}),
    )
    .await;

    let deleted = app
        .delete(&format!("/truemark?store_id={store}"), &hq)
        .await;
    let again = app
        .delete(&format!("/truemark?store_id={store}"), &hq)
        .await;
    let view = app
        .get(&format!("/truemark?store_id={store}"), &hq)
        .await
        .json();

    assert_eq!(deleted.status, 204);
    assert_eq!(again.status, 404);
    assert_eq!(view["effective"]["source"], "tenant");
}

#[tokio::test]
async fn the_stored_truemark_key_opens_to_the_key_that_was_put() {
    use secrecy::ExposeSecret as _;
    let app = TestApp::spawn().await;
    let (tenant_id, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store = app.create_store(&hq, "s1").await;
    app.put(
        "/truemark",
        &hq,
        &json!({"api_key": "  chz-key-with-spaces-trimmed  "}),
    )
    .await;

    let master = imark_core::crypto::MasterKeys::new(app.config.master_keys.clone());
    let credentials = imark_core::credentials::effective(&app.db, &master, tenant_id, store)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        credentials.api_key.expose_secret(),
        "chz-key-with-spaces-trimmed"
    );
    assert_eq!(credentials.base_url.as_str(), "https://cdn.crpt.ru/");
    assert_eq!(credentials.region, "default");
}

#[tokio::test]
async fn basic_authentication_and_post_exchange_a_key_like_the_header() {
    use base64::Engine as _;
    let app = TestApp::spawn().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let encode = |s: String| base64::engine::general_purpose::STANDARD.encode(s);

    let as_user = app
        .send(app.http.post(app.url("/token")).header(
            "Authorization",
            format!("Basic {}", encode(format!("{hq_key}:"))),
        ))
        .await;
    let as_password = app
        .send(app.http.get(app.url("/token")).header(
            "Authorization",
            format!("Basic {}", encode(format!(":{hq_key}"))),
        ))
        .await;

    for response in [as_user, as_password] {
        assert_eq!(response.status, 200, "{}", response.text);
        let body = response.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        let me = app.get("/me", body["access_token"].as_str().unwrap()).await;
        assert_eq!(me.json()["role"], "hq_admin");
    }
}

#[tokio::test]
async fn key_use_is_recorded() {
    let app = TestApp::spawn().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;

    let keys = app.get("/keys", &hq).await.json();

    let first = &keys["items"][0];
    assert!(first["last_used_at"].is_string(), "{keys}");
    assert_eq!(first["prefix"].as_str().unwrap(), &hq_key[..12]);
    assert!(first.get("api_key").is_none());
}
