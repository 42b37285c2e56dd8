//! What a busy or hostile client meets: per-key rate limits, body limits and slow clients.
//! Deterministic: a bucket refilled once in 1000 s, and the server's own reaction awaited.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use imark_tests::{Response, TestApp};
use uuid::Uuid;

/// Only a server that never reacts trips this; it bounds a failing test, it times nothing.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The client timeouts tests configure, far below the built-in defaults (hyper's 30 s for
/// headers, the 10 s fallback for bodies)...
const CLIENT_TIMEOUT_MS: &str = "200";
/// ...and the guard of those tests: shorter than any built-in default, so that a setting that
/// is not wired fails the test, yet far longer than the configured 200 ms.
const SHORT_GUARD: Duration = Duration::from_secs(5);

/// An app whose buckets hold three requests and refill once in 1000 s.
async fn tight_app() -> TestApp {
    TestApp::spawn_with(|vars| {
        vars.insert("IMARK_RATE_LIMIT_PER_SECOND".into(), "0.001".into());
        vars.insert("IMARK_RATE_LIMIT_BURST".into(), "3".into());
    })
    .await
}

fn assert_rate_limited(response: &Response) {
    assert_eq!(response.status, 429, "{}", response.text);
    assert_eq!(response.content_type(), "application/problem+json");
    assert_eq!(response.code(), "rate_limited");
    assert_eq!(response.json()["status"], 429);
    let retry_after: u64 = response
        .headers
        .get("retry-after")
        .expect("a 429 says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The bucket refills one request in 1000 s.
    assert!((999..=1001).contains(&retry_after), "{retry_after}");
}

/// Signs `claims` with the app's own signing key, as the server would, but with chosen claims.
fn sign(app: &TestApp, claims: &Value) -> String {
    let key = &app.config.jwt_keys[0];
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.id.clone());
    let secret = EncodingKey::from_secret(key.secret.expose_secret()).unwrap();
    jsonwebtoken::encode(&header, claims, &secret).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// An API key of the right shape that was never issued.
fn made_up_key() -> String {
    format!("imk_st_{}", Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_key_over_its_burst_is_refused_with_retry_after_and_its_neighbour_is_not() {
    let app = tight_app().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let store = app.create_store(&hq, "s1").await;
    let body = json!({"role": "store", "name": "pos", "store_id": store});
    let (_, first_key) = app.issue_key(&hq, &body).await;
    let (_, second_key) = app.issue_key(&hq, &body).await;
    let first = app.token(&first_key).await;
    let second = app.token(&second_key).await;

    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(app.get("/me", &first).await);
    }
    let neighbour = app.get("/me", &second).await;

    for answer in &answers[..3] {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_rate_limited(&answers[3]);
    assert_eq!(neighbour.status, 200, "{}", neighbour.text);
}

#[tokio::test]
async fn token_exchanges_and_strangers_have_buckets_of_their_own_and_probes_none() {
    let app = tight_app().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let exchange = || {
        app.send(
            app.http
                .post(app.url("/token"))
                .header("X-API-Key", hq_key.as_str()),
        )
    };

    let mut exchanges = Vec::new();
    for _ in 0..5 {
        exchanges.push(exchange().await);
    }
    let mut strangers = Vec::new();
    for _ in 0..4 {
        strangers.push(app.send(app.http.get(app.url("/me"))).await);
    }
    let mut probes = Vec::new();
    for _ in 0..10 {
        probes.push(app.send(app.http.get(app.url("/readyz"))).await);
    }
    let forged = app.get("/me", "a.forged.token").await;

    for answer in &exchanges[..3] {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    for answer in &exchanges[3..] {
        assert_rate_limited(answer);
    }
    for answer in &strangers[..3] {
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    assert_rate_limited(&strangers[3]);
    assert!(probes.iter().all(|p| p.status == 200));
    // A token that does not verify opens no bucket and takes from none: it is refused as such.
    assert_eq!(forged.status, 401, "{}", forged.text);
    assert_eq!(forged.code(), "invalid_token");
}

#[tokio::test]
async fn at_token_each_presented_key_has_its_own_bucket_whatever_else_the_request_carries() {
    let app = tight_app().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let exchange = |key: String| {
        app.send(
            app.http
                .post(app.url("/token"))
                .header("X-API-Key", key.as_str()),
        )
    };

    // A flood of made-up keys, each once: every one is looked up and refused as unknown.
    let mut made_up = Vec::new();
    for _ in 0..8 {
        made_up.push(exchange(made_up_key()).await);
    }
    // The real key's first exchange after the flood is not held up by it.
    let real = exchange(hq_key.clone()).await;
    // One made-up key again and again, with a token that does not verify beside it: the key
    // still counts, so the junk token buys no way past its bucket.
    let repeated = made_up_key();
    let mut with_junk_token = Vec::new();
    for _ in 0..4 {
        with_junk_token.push(
            app.send(
                app.http
                    .post(app.url("/token"))
                    .header("X-API-Key", repeated.as_str())
                    .bearer_auth("a.junk.token"),
            )
            .await,
        );
    }
    // An X-API-Key counts only at /token: elsewhere made-up keys are strangers.
    let mut elsewhere = Vec::new();
    for _ in 0..4 {
        elsewhere.push(
            app.send(
                app.http
                    .get(app.url("/me"))
                    .header("X-API-Key", made_up_key()),
            )
            .await,
        );
    }

    for answer in &made_up {
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    assert_eq!(real.status, 200, "{}", real.text);
    for answer in &with_junk_token[..3] {
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    assert_rate_limited(&with_junk_token[3]);
    for answer in &elsewhere[..3] {
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    assert_rate_limited(&elsewhere[3]);
}

#[tokio::test]
async fn garbage_tokens_do_not_turn_an_expired_token_into_a_429() {
    let app = tight_app().await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    let mut claims = claims_of(&hq);
    let past = Utc::now().timestamp() - 60;
    claims["iat"] = json!(past - 900);
    claims["exp"] = json!(past);
    let expired = sign(&app, &claims);

    let mut garbage = Vec::new();
    for n in 0..10 {
        garbage.push(app.get("/me", &format!("garbage.{n}.token")).await);
    }
    let mut tills = Vec::new();
    for _ in 0..5 {
        tills.push(app.get("/me", &expired).await);
    }

    assert!(garbage.iter().all(|g| g.status == 401));
    for till in &tills {
        assert_eq!(till.status, 401, "{}", till.text);
        assert_eq!(till.code(), "token_expired");
    }
}

#[tokio::test]
async fn a_tenant_has_a_bucket_beside_its_keys() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_RATE_LIMIT_BURST".into(), "1000".into());
        vars.insert("IMARK_RATE_LIMIT_TENANT_PER_SECOND".into(), "0.001".into());
        vars.insert("IMARK_RATE_LIMIT_TENANT_BURST".into(), "6".into());
    })
    .await;
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let (_, other_key) = app.create_tenant("Другая сеть").await;
    let hq = app.token(&hq_key).await;
    let (_, second_key) = app
        .issue_key(&hq, &json!({"role": "hq_admin", "name": "second"}))
        .await;
    let second = app.token(&second_key).await;
    let other = app.token(&other_key).await;

    let mut answers = Vec::new();
    for n in 0..10 {
        let token = if n % 2 == 0 { &hq } else { &second };
        answers.push(app.get("/me", token).await);
    }
    let neighbour = app.get("/me", &other).await;

    // One request went to issuing the second key; each key stays far below its own burst.
    for answer in &answers[..5] {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    for answer in &answers[5..] {
        assert_rate_limited(answer);
    }
    assert_eq!(neighbour.status, 200, "{}", neighbour.text);
}

#[tokio::test]
async fn rate_limiting_can_be_switched_off() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_RATE_LIMIT_ENABLED".into(), "false".into());
        vars.insert("IMARK_RATE_LIMIT_BURST".into(), "1".into());
    })
    .await;

    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(app.send(app.http.get(app.url("/me"))).await);
    }

    assert!(answers.iter().all(|a| a.status == 401));
}

/// A store's token and a JSON body for `POST /stores` as its HQ.
async fn hq_token(app: &TestApp) -> String {
    let (_, hq_key) = app.create_tenant("Сеть").await;
    app.token(&hq_key).await
}

/// What the server sent back on a raw connection, read until it closed the connection or the
/// declared body was complete.
struct RawAnswer {
    head: String,
    body: String,
}

impl RawAnswer {
    fn status(&self) -> Option<u16> {
        self.head.split(' ').nth(1).and_then(|s| s.parse().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    read_answer_within(stream, HANG_GUARD).await
}

async fn read_answer_within(stream: &mut TcpStream, guard: Duration) -> RawAnswer {
    let mut bytes = Vec::new();
    let mut buffer = [0_u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&bytes);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(usize::MAX);
                if body.len() >= length {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(guard, read)
        .await
        .expect("the server reacts");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    RawAnswer {
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_or_without_a_declared_length() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_BODY_LIMIT_BYTES".into(), "2048".into());
    })
    .await;
    let hq = hq_token(&app).await;
    let big = json!({"code": "s1", "name": "x".repeat(4096)}).to_string();

    let declared = app
        .send(
            app.http
                .post(app.url("/stores"))
                .bearer_auth(&hq)
                .header("Content-Type", "application/json")
                .body(big.clone()),
        )
        .await;
    let mut stream = connect(&app).await;
    let mut request = format!(
        "POST /stores HTTP/1.1\r\nHost: imark\r\nAuthorization: Bearer {hq}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let chunked = read_answer(&mut stream).await;

    assert_eq!(declared.status, 413, "{}", declared.text);
    assert_eq!(declared.code(), "payload_too_large");
    assert_eq!(chunked.status(), Some(413), "{}", chunked.head);
    assert!(
        chunked
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    );
    assert_eq!(chunked.json()["code"], "payload_too_large");
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert(
            "IMARK_HEADER_READ_TIMEOUT_MS".into(),
            CLIENT_TIMEOUT_MS.into(),
        );
    })
    .await;
    let mut stream = connect(&app).await;

    stream
        .write_all(b"POST /document HTTP/1.1\r\nHost: imark\r\nContent-Type: appl")
        .await
        .unwrap();
    let answer = read_answer_within(&mut stream, SHORT_GUARD).await;
    let probe = app.send(app.http.get(app.url("/healthz"))).await;

    // The connection was closed on the server's initiative, with no request handled.
    assert!(
        answer.head.is_empty() || answer.status() == Some(408),
        "{}",
        answer.head
    );
    assert_eq!(probe.status, 200, "the server serves others meanwhile");
}

#[tokio::test]
async fn a_body_that_trickles_in_is_answered_408_in_the_error_shape() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert(
            "IMARK_BODY_READ_TIMEOUT_MS".into(),
            CLIENT_TIMEOUT_MS.into(),
        );
    })
    .await;
    let hq = hq_token(&app).await;
    let mut stream = connect(&app).await;

    let body = json!({"code": "s1", "name": "Тверская"}).to_string();
    let head = format!(
        "POST /stores HTTP/1.1\r\nHost: imark\r\nAuthorization: Bearer {hq}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let answer = read_answer_within(&mut stream, SHORT_GUARD).await;
    let stores = app.get("/stores", &hq).await;

    assert_eq!(answer.status(), Some(408), "{}", answer.head);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    );
    assert_eq!(answer.json()["code"], "body_timeout");
    assert_eq!(stores.json()["items"].as_array().map(Vec::len), Some(0));
}
