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

#[tokio::test]
async fn out_of_range_offsets_and_forged_cursors_are_a_400() {
    let app = TestApp::spawn().await;
    let platform = app.platform_token().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    let offset = app
        .get("/tenants?offset=18446744073709551615", &platform)
        .await;
    let huge = app
        .get("/tenants?offset=9223372036854775808", &platform)
        .await;
    let nul = app.get("/stores?cursor=AA", &hq).await;
    let empty = app.get("/stores?cursor=", &hq).await;

    assert_problem(&offset, 400, "invalid_parameter");
    assert_problem(&huge, 400, "invalid_parameter");
    assert_problem(&nul, 400, "invalid_parameter");
    assert_problem(&empty, 400, "invalid_parameter");
}

#[tokio::test]
async fn a_body_that_is_not_utf8_or_has_a_lone_surrogate_is_malformed_json() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    let not_utf8 = app
        .send(
            app.http
                .post(app.url("/stores"))
                .bearer_auth(&hq)
                .header("Content-Type", "application/json")
                .body(b"{\"code\": \"\xff\xfe\", \"name\": \"x\"}".to_vec()),
        )
        .await;
    let surrogate = raw(
        &app,
        Method::POST,
        "/stores",
        &hq,
        r#"{"code": "\ud800", "name": "x"}"#,
    )
    .await;

    assert_problem(&not_utf8, 400, "malformed_json");
    assert_problem(&surrogate, 400, "malformed_json");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /stores HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {hq}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0_u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);

    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test]
async fn duplicate_auditor_stores_are_merged_and_nothing_is_half_written() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let store = app.create_store(&hq, "s1").await;

    let issued = app
        .post(
            "/keys",
            &hq,
            &json!({"role": "auditor", "name": "a", "store_ids": [store, store]}),
        )
        .await;
    let missing = uuid::Uuid::now_v7();
    let refused = app
        .post(
            "/keys",
            &hq,
            &json!({"role": "auditor", "name": "b", "store_ids": [store, missing]}),
        )
        .await;
    let keys = app.get("/keys", &hq).await.json();

    assert_eq!(issued.status, 201, "{}", issued.text);
    assert_eq!(issued.json()["store_ids"], json!([store]));
    assert_problem(&refused, 422, "validation_failed");
    let names: Vec<&str> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"b"), "{names:?}");
}

#[tokio::test]
async fn concurrent_puts_and_deletes_of_truemark_settings_never_fail_the_server() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let body = json!({"api_key": "concurrent-key-1"});

    let puts = (0..10).map(|_| app.put("/truemark", &hq, &body));
    let deletes = (0..10).map(|_| app.delete("/truemark", &hq));
    let (puts, deletes) = tokio::join!(
        futures::future::join_all(puts),
        futures::future::join_all(deletes)
    );

    assert!(
        puts.iter().all(|r| r.status == 200),
        "{:?}",
        puts.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(deletes.iter().all(|r| r.status == 204 || r.status == 404));
}

#[tokio::test]
async fn a_store_override_may_be_named_in_the_query() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;
    let store = app.create_store(&hq, "s1").await;
    app.put("/truemark", &hq, &json!({"api_key": "tenant-key-0001"}))
        .await;

    let put = app
        .put(
            &format!("/truemark?store_id={store}"),
            &hq,
            &json!({"api_key": "store-key-0002"}),
        )
        .await;
    let clash = app
        .put(
            &format!("/truemark?store_id={store}"),
            &hq,
            &json!({"api_key": "store-key-0003", "store_id": uuid::Uuid::now_v7()}),
        )
        .await;
    let view = app
        .get(&format!("/truemark?store_id={store}"), &hq)
        .await
        .json();

    assert_eq!(put.status, 200);
    assert_problem(&clash, 422, "validation_failed");
    assert_eq!(view["tenant"]["api_key_masked"], "••••0001");
    assert_eq!(view["store_override"]["api_key_masked"], "••••0002");
}

#[tokio::test]
async fn truemark_urls_must_be_public_https_unless_local_ones_are_allowed() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_TRUEMARK_ALLOW_LOCAL_URLS".into(), "false".into());
    })
    .await;
    let (_, key) = app.create_tenant("Сеть").await;
    let hq = app.token(&key).await;

    for url in [
        "http://cdn.crpt.ru",
        "https://127.0.0.1:8480",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5",
        "https://0x7f000001/",
        "https://[::1]:8080",
        "https://localhost",
        "https://api.localhost",
    ] {
        let response = app
            .put(
                "/truemark",
                &hq,
                &json!({"api_key": "valid-key-123", "base_url": url}),
            )
            .await;
        assert_problem(&response, 422, "validation_failed");
    }
    let sandbox = app
        .put(
            "/truemark",
            &hq,
            &json!({"api_key": "valid-key-123", "base_url": "https://markirovka.sandbox.crptech.ru"}),
        )
        .await;
    assert_eq!(sandbox.status, 200, "{}", sandbox.text);
}

#[tokio::test]
async fn answers_are_never_cached() {
    let app = TestApp::spawn().await;
    let (_, key) = app.create_tenant("Сеть").await;

    let token = app
        .send(app.http.get(app.url("/token")).header("X-API-Key", &key))
        .await;
    let refused = app.send(app.http.get(app.url("/token"))).await;

    assert_eq!(token.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(refused.headers.get("cache-control").unwrap(), "no-store");
    assert!(
        refused
            .headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Basic"),
        "/token asks for an API key, not a bearer token"
    );
}
