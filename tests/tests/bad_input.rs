//! Broken and hostile requests get a precise 4xx in the one error shape, never a 5xx, and change
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use reqwest::Method;
use serde_json::json;

use imark_tests::{Response, TestApp};

fn assert_problem(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.content_type(), "application/problem+json");
    let body = response.json();
    assert_eq!(body["code"], code, "{}", response.text);
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("urn:imark:problem:{code}"));
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

async fn raw(app: &TestApp, method: Method, path: &str, token: &str, body: &str) -> Response {
    app.send(
        app.http
            .request(method, app.url(path))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    for body in [
        "{",
        "{\"code\": }",
        "not json",
        "",
        "\u{0}",
        "[1,2",
        "{\"code\":\"a\",}",
    ] {
        let response = raw(&app, Method::POST, "/stores", &hq, body).await;
        assert_problem(&response, 400, "malformed_json");
    }
    let listed = app.get("/stores", &hq).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn wrong_types_missing_and_unknown_fields_are_a_422() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let bodies = [
        json!({"code": 1, "name": "x"}),
        json!({"name": "x"}),
        json!({"code": "x"}),
        json!({"code": "x", "name": "x", "surprise": true}),
        json!([{"code": "x", "name": "x"}]),
        json!("just a string"),
        json!({"code": "x", "name": ["x"]}),
    ];

    for body in &bodies {
        let response = app.post("/stores", &hq, body).await;
        assert_problem(&response, 422, "invalid_body");
    }
    let listed = app.get("/stores", &hq).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn domain_rules_are_a_422_that_names_the_field() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let cases = [
        ("/stores", json!({"code": "  ", "name": "x"}), "code"),
        (
            "/stores",
            json!({"code": "x", "name": "x", "inn": "12345"}),
            "inn",
        ),
        (
            "/stores",
            json!({"code": "x", "name": "x", "kpp": "abc"}),
            "kpp",
        ),
        (
            "/stores",
            json!({"code": "x".repeat(65), "name": "x"}),
            "code",
        ),
        ("/stores", json!({"code": "a\u{7}b", "name": "x"}), "code"),
        ("/keys", json!({"role": "store", "name": "x"}), "store_id"),
        (
            "/keys",
            json!({"role": "auditor", "name": "x", "store_ids": []}),
            "store_ids",
        ),
        ("/keys", json!({"role": "platform", "name": "x"}), "role"),
        ("/keys", json!({"role": "hq_admin", "name": ""}), "name"),
    ];

    for (path, body, field) in cases {
        let response = app.post(path, &hq, &body).await;
        assert_problem(&response, 422, "validation_failed");
        assert_eq!(response.json()["errors"][0]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn invalid_truemark_settings_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let cases = [
        (json!({"api_key": "short"}), "api_key"),
        (json!({"api_key": "has a space inside"}), "api_key"),
        (
            json!({"api_key": "valid-key-123", "base_url": "ftp://cdn.crpt.ru"}),
            "base_url",
        ),
        (
            json!({"api_key": "valid-key-123", "base_url": "not a url"}),
            "base_url",
        ),
        (
            json!({"api_key": "valid-key-123", "base_url": "https://u:p@cdn.crpt.ru"}),
            "base_url",
        ),
        (
            json!({"api_key": "valid-key-123", "region": "Москва"}),
            "region",
        ),
    ];

    for (body, field) in cases {
        let response = app.put("/truemark", &hq, &body).await;
        assert_problem(&response, 422, "validation_failed");
        assert_eq!(response.json()["errors"][0]["field"], field);
    }
    let bad_date = app
        .put(
            "/truemark",
            &hq,
            &json!({"api_key": "valid-key-123", "key_expires_on": "31.12.2027"}),
        )
        .await;
    assert_problem(&bad_date, 422, "invalid_body");
    assert_eq!(
        app.get("/truemark", &hq).await.json()["tenant"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_BODY_LIMIT_BYTES".into(), "4096".into());
    })
    .await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let body = json!({"code": "x", "name": "x", "address": "й".repeat(10_000)}).to_string();

    let response = raw(&app, Method::POST, "/stores", &hq, &body).await;

    assert_problem(&response, 413, "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    let response = app
        .send(
            app.http
                .post(app.url("/stores"))
                .bearer_auth(&hq)
                .header("Content-Type", "text/plain")
                .body(r#"{"code":"x","name":"x"}"#),
        )
        .await;

    assert_problem(&response, 415, "unsupported_media_type");
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_a_400() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    for path in [
        "/stores/not-a-uuid",
        "/keys/%00",
        "/stores?limit=0",
        "/stores?limit=abc",
        "/stores?limit=100000",
        "/stores?status=sleeping",
        "/stores?cursor=%%%",
        "/stores?surprise=1",
        "/keys?include_revoked=maybe",
        "/truemark?store_id=42",
    ] {
        let response = app.get(path, &hq).await;
        assert_problem(&response, 400, "invalid_parameter");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_answered_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    let unknown = app.get("/nowhere", &hq).await;
    let wrong_method = app
        .request(Method::PUT, "/stores", Some(&hq), Some(&json!({})))
        .await;

    assert_problem(&unknown, 404, "route_not_found");
    assert_problem(&wrong_method, 405, "method_not_allowed");
}

#[tokio::test]
async fn a_duplicate_store_code_is_a_409() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    app.create_store(&hq, "msk-1").await;

    let response = app
        .post("/stores", &hq, &json!({"code": "msk-1", "name": "again"}))
        .await;

    assert_problem(&response, 409, "store_code_taken");
}

#[tokio::test]
async fn serial_characters_survive_in_names_and_codes() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let tricky = r#"' " < > % ; ( ) * ! / = & \ -- DROP TABLE stores;"#;

    let created = app
        .post("/stores", &hq, &json!({"code": tricky, "name": tricky}))
        .await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let read = app.get(&format!("/stores/{id}"), &hq).await.json();

    assert_eq!(created.status, 201);
    assert_eq!(read["code"], tricky);
    assert_eq!(read["name"], tricky);
}

#[tokio::test]
async fn the_store_list_pages_by_cursor() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    for code in ["c", "a", "e", "b", "d"] {
        app.create_store(&hq, code).await;
    }

    let mut seen = Vec::new();
    let mut path = "/stores?limit=2".to_owned();
    loop {
        let page = app.get(&path, &hq).await.json();
        for store in page["items"].as_array().unwrap() {
            seen.push(store["code"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/stores?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
}
