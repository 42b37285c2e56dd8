//! Access tokens: only genuine, current tokens of live keys get in.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use imark_tests::TestApp;

/// Signs `claims` with the app's own signing key, as the server would, but with chosen claims.
fn sign(app: &TestApp, claims: &Value, kid: Option<&str>) -> String {
    let key = &app.config.jwt_keys[0];
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.unwrap_or(&key.id).to_owned());
    let secret = EncodingKey::from_secret(key.secret.expose_secret()).unwrap();
    jsonwebtoken::encode(&header, claims, &secret).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn hq_token(app: &TestApp) -> String {
    let (_, key) = app.create_tenant("Сеть").await;
    app.token(&key).await
}

#[tokio::test]
async fn a_genuine_token_is_accepted_and_carries_tenant_store_and_role() {
    let app = TestApp::spawn().await;
    let hq = hq_token(&app).await;
    let store = app.create_store(&hq, "s1").await;
    let (_, token) = app.issue_store_token(&hq, store, "pos").await;

    let claims = claims_of(&token);

    assert_eq!(claims["role"], "store");
    assert_eq!(claims["store_id"], store.to_string());
    assert!(claims["tenant_id"].is_string());
    assert_eq!(app.get("/me", &token).await.status, 200);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn().await;
    let mut claims = claims_of(&hq_token(&app).await);
    let past = Utc::now().timestamp() - 60;
    claims["iat"] = json!(past - 900);
    claims["exp"] = json!(past);

    let response = app.get("/me", &sign(&app, &claims, None)).await;

    assert_eq!(response.status, 401);
    assert_eq!(response.code(), "token_expired");
    assert!(response.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = TestApp::spawn().await;
    let token = hq_token(&app).await;
    let mut claims = claims_of(&token);
    claims["role"] = json!("platform");
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);

    let response = app.get("/tenants", &tampered).await;

    assert_eq!(response.status, 401);
    assert_eq!(response.code(), "invalid_token");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = TestApp::spawn().await;
    let claims = claims_of(&hq_token(&app).await);
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"test1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());

    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let response = app.get("/me", &token).await;
        assert_eq!(response.status, 401, "{token}");
    }
}

#[tokio::test]
async fn a_token_of_another_algorithm_is_refused() {
    let app = TestApp::spawn().await;
    let claims = claims_of(&hq_token(&app).await);
    let key = &app.config.jwt_keys[0];
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some(key.id.clone());
    let secret = EncodingKey::from_secret(key.secret.expose_secret()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims, &secret).unwrap();

    let response = app.get("/me", &token).await;

    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn a_token_with_an_unknown_kid_is_refused() {
    let app = TestApp::spawn().await;
    let claims = claims_of(&hq_token(&app).await);

    let response = app.get("/me", &sign(&app, &claims, Some("retired"))).await;

    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn garbage_and_missing_authorization_are_refused_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let cases = [
        None,
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer not.a.jwt"),
        Some("Basic Zm9vOmJhcg=="),
        Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.e30"),
    ];

    for header in cases {
        let mut request = app.http.get(app.url("/me"));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = app.send(request).await;
        assert_eq!(response.status, 401, "{header:?}");
        assert_eq!(response.content_type(), "application/problem+json");
        assert!(["missing_token", "invalid_token"].contains(&response.code().as_str()));
    }
}

#[tokio::test]
async fn a_revoked_key_and_its_live_tokens_are_refused_at_once() {
    let app = TestApp::spawn().await;
    let hq = hq_token(&app).await;
    let store = app.create_store(&hq, "s1").await;
    let (key_id, key) = app
        .issue_key(
            &hq,
            &json!({"role": "store", "name": "pos", "store_id": store}),
        )
        .await;
    let live = app.token(&key).await;

    let revoked = app.delete(&format!("/keys/{key_id}"), &hq).await;
    let with_token = app.get("/me", &live).await;
    let exchange = app
        .send(app.http.get(app.url("/token")).header("X-API-Key", &key))
        .await;

    assert_eq!(revoked.status, 200);
    assert!(revoked.json()["revoked_at"].is_string());
    assert_eq!(with_token.status, 401);
    assert_eq!(with_token.code(), "key_revoked");
    assert_eq!(exchange.status, 401);
    assert_eq!(exchange.code(), "invalid_api_key");
}

#[tokio::test]
async fn a_rotated_key_is_replaced_and_the_old_one_stops() {
    let app = TestApp::spawn().await;
    let hq = hq_token(&app).await;
    let store = app.create_store(&hq, "s1").await;
    let (old_id, old_token) = app.issue_store_token(&hq, store, "pos").await;

    let rotated = app
        .post(&format!("/keys/{old_id}/rotate"), &hq, &json!({}))
        .await;
    let new_key = rotated.json()["api_key"].as_str().unwrap().to_owned();
    let rotate_again = app
        .post(&format!("/keys/{old_id}/rotate"), &hq, &json!({}))
        .await;
    let old_view = app.get(&format!("/keys/{old_id}"), &hq).await.json();

    assert_eq!(rotated.status, 201, "{}", rotated.text);
    assert_eq!(rotated.json()["store_id"], store.to_string());
    assert_eq!(app.get("/me", &old_token).await.status, 401);
    assert_eq!(
        app.get("/me", &app.token(&new_key).await).await.json()["role"],
        "store"
    );
    assert_eq!(rotate_again.status, 409);
    assert_eq!(old_view["replaced_by"], rotated.json()["id"]);
}

#[tokio::test]
async fn disabling_a_store_or_a_tenant_stops_its_tokens() {
    let app = TestApp::spawn().await;
    let platform = app.platform_token().await;
    let (tenant_id, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store = app.create_store(&hq, "s1").await;
    let (_, store_token) = app.issue_store_token(&hq, store, "pos").await;

    app.patch(
        &format!("/stores/{store}"),
        &hq,
        &json!({"status": "disabled"}),
    )
    .await;
    let store_after = app.get("/me", &store_token).await;
    app.patch(
        &format!("/tenants/{tenant_id}"),
        &platform,
        &json!({"status": "disabled"}),
    )
    .await;
    let hq_after = app.get("/me", &hq).await;

    assert_eq!(store_after.status, 401);
    assert_eq!(store_after.code(), "store_disabled");
    assert_eq!(hq_after.status, 401);
    assert_eq!(hq_after.code(), "tenant_disabled");
}

#[tokio::test]
async fn a_token_survives_a_signing_key_rotation_of_the_server() {
    let app = TestApp::spawn().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let old_token = app.token(&hq_key).await;
    let old_keys = app.config.jwt_keys.clone();
    let old_entry = format!(
        "{}:{}",
        old_keys[0].id,
        String::from_utf8(old_keys[0].secret.expose_secret().to_vec()).unwrap()
    );

    // A second server on the same database, signing with a new key and still trusting the old.
    let config = {
        let mut config = app.config.clone();
        let rotated = imark_core::config::Config::load(
            None,
            config::Environment::with_prefix("IMARK").source(Some(
                [
                    ("IMARK_DATABASE_URL", "postgres://unused"),
                    ("IMARK_REDIS_URL", "redis://unused"),
                    (
                        "IMARK_PLATFORM_KEY",
                        "unused-unused-unused-unused-unused-unused",
                    ),
                    (
                        "IMARK_MASTER_KEYS",
                        "m:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                    ),
                    (
                        "IMARK_API_KEY_PEPPER",
                        "unused-unused-unused-unused-unused-unused",
                    ),
                    (
                        "IMARK_JWT_KEYS",
                        &format!("next:{}, {old_entry}", "n".repeat(40)),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            )),
        )
        .unwrap();
        config.jwt_keys = rotated.jwt_keys;
        config
    };
    let server = imark_api::Server::build(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));

    let old_on_new = app
        .http
        .get(format!("{address}/me"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    let new_token = app
        .http
        .get(format!("{address}/token"))
        .header("X-API-Key", &hq_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_on_old = app.get("/me", &new_token).await;

    assert_eq!(old_on_new.status(), 200);
    assert_eq!(claims_header_kid(&new_token), "next");
    assert_eq!(
        new_on_old.status, 401,
        "the old server does not know the new kid"
    );
}

fn claims_header_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}
