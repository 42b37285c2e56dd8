//! Secrets stay secret: no ЧЗ key or API key in a response, a log line or a database column.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use imark_core::config::LogFormat;
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::json;

use imark_tests::{LogCapture, TestApp};

const CHZ_KEY: &str = "5c3e7a10-9b2d-4f6e-8a1c-d4e5f6a7b8c9";

#[tokio::test]
async fn no_secret_reaches_a_response_a_log_line_or_a_plain_column() {
    let logs = LogCapture::install(LogFormat::Json);
    let app = TestApp::spawn().await;
    let (tenant_id, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store = app.create_store(&hq, "s1").await;
    let (_, store_key) = app
        .issue_key(
            &hq,
            &json!({"role": "store", "name": "pos", "store_id": store}),
        )
        .await;
    let store_token = app.token(&store_key).await;

    let mut answers = vec![
        app.put("/truemark", &hq, &json!({"api_key": CHZ_KEY}))
            .await,
        app.put(
            "/truemark",
            &hq,
            &json!({"api_key": CHZ_KEY, "store_id": store}),
        )
        .await,
        app.put(
            "/truemark",
            &hq,
            &json!({"api_key": CHZ_KEY, "region": "Bad Region"}),
        )
        .await,
        app.put(
            "/truemark",
            &hq,
            &json!({"api_key": CHZ_KEY, "surprise": 1}),
        )
        .await,
        app.get("/truemark", &store_token).await,
        app.get(&format!("/truemark?store_id={store}"), &hq).await,
        app.get("/keys?include_revoked=true", &hq).await,
        app.get("/me", &store_token).await,
    ];
    answers.push(
        app.send(
            app.http
                .get(app.url("/token"))
                .header("X-API-Key", format!("{hq_key}x")),
        )
        .await,
    );

    let secrets = [
        CHZ_KEY,
        hq_key.as_str(),
        store_key.as_str(),
        app.platform_key(),
    ];
    for answer in &answers {
        for secret in secrets {
            assert!(
                !answer.text.contains(secret),
                "a response leaked a secret: {}",
                answer.text
            );
        }
    }
    assert_eq!(answers[0].json()["api_key_masked"], "••••b8c9");
    let captured = logs.contents();
    assert!(
        captured.contains("ЧЗ settings stored"),
        "the capture saw the request logs"
    );
    for secret in secrets {
        assert!(!captured.contains(secret), "a log line leaked a secret");
    }
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            format!(
                "SELECT (SELECT string_agg(encode(key_ciphertext, 'escape') || base_url || key_last4, ',') \
                   FROM truemark_credentials WHERE tenant_id = '{tenant_id}') AS chz, \
                 (SELECT string_agg(encode(key_hash, 'hex') || prefix, ',') FROM api_keys) AS keys"
            ),
        ))
        .await
        .unwrap();
    let chz: String = rows[0].try_get("", "chz").unwrap();
    let keys: String = rows[0].try_get("", "keys").unwrap();
    assert!(!chz.contains(CHZ_KEY) && !chz.contains(&CHZ_KEY[..20]));
    assert!(!keys.contains(&hq_key) && !keys.contains(&store_key));
}
