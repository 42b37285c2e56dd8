//! What a document gets when a dependency fails under it: Redis stopped and started again,
//! Postgres cut mid-document, ЧЗ failing on the current host, and many stores racing for a few
//! marks. Real Postgres and Redis; only ЧЗ is emulated. Deterministic: every step waits on the
//! reaction it needs, never on the clock.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::HashMap;

use imark_core::cache::Cache;
use redis::AsyncCommands as _;
use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DbBackend, Statement, TransactionTrait as _,
};
use serde_json::json;
use truemark::client::Endpoint;
use truemark_sandbox::{
    Fault, FaultTarget, Fixture, Sandbox, SandboxConfig, Service, UnknownCodes,
};

use imark_tests::{CuttableProxy, PrivateRedis, Response, TestApp};

/// A valid tobacco pack of the acceptance catalogue (case 5.10).
const CODE: &str = "04601653035829H;dV)bFABVUdGVz";

/// A tenant with stores, each with its POS token, against its own emulator.
struct Chain {
    app: TestApp,
    sandbox: Sandbox,
    stores: Vec<String>,
}

async fn chain(
    adjust: impl FnOnce(&mut HashMap<String, String>),
    stores: usize,
    unknown_codes: UnknownCodes,
) -> Chain {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("IMARK_TRUEMARK_CHECK_TIMEOUT_MS".into(), "400".into());
        vars.insert("IMARK_TRUEMARK_NO_CHECK_TIMEOUT_MS".into(), "300".into());
        adjust(vars);
    })
    .await;
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        unknown_codes,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (_, hq_key) = app.create_tenant("Сеть").await;
    let hq = app.token(&hq_key).await;
    app.point_at_sandbox(&hq, &sandbox, "test").await;
    let mut tokens = Vec::new();
    for n in 0..stores {
        let store = app.create_store(&hq, &format!("s{n}")).await;
        let (_, token) = app.issue_store_token(&hq, store, "pos").await;
        tokens.push(token);
    }
    Chain {
        app,
        sandbox,
        stores: tokens,
    }
}

impl Chain {
    async fn sale(&self, store: usize, id: &str, code: &str) -> Response {
        let body = json!({
            "id": id,
            "type": "sale",
            "fiscal_drive_number": "7281440500012345",
            "items": [{"code": code}]
        });
        self.app.post("/document", &self.stores[store], &body).await
    }

    fn code_checks(&self) -> u64 {
        self.sandbox.control().stats().total(Endpoint::CodesCheck)
    }

    /// The emulator host that answered the most code checks: the current one after a sale.
    fn busiest_host(&self) -> usize {
        let stats = self.sandbox.control().stats();
        (0..self.sandbox.host_urls().len())
            .max_by_key(|&h| stats.host_calls(h, Endpoint::CodesCheck))
            .unwrap()
    }

    async fn readiness(&self) -> Response {
        self.app
            .send(self.app.http.get(self.app.url("/readyz")))
            .await
    }
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
}

async fn exchanges_of(db: &DatabaseConnection, document_id: &str) -> i64 {
    count(
        db,
        &format!(
            "SELECT count(*) AS n FROM truemark_exchanges \
             WHERE document_id = '{document_id}' AND endpoint = 'codes_check'"
        ),
    )
    .await
}

#[tokio::test]
async fn checks_go_on_while_redis_is_down_and_readiness_stays_ready_but_degraded() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let chain = chain(
        |vars| {
            vars.insert("IMARK_REDIS_URL".into(), url);
        },
        1,
        UnknownCodes::Valid,
    )
    .await;
    let before = chain.sale(0, "before", CODE).await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(chain.readiness().await.status, 200);

    redis.kill().await;
    let down = chain.readiness().await;
    let mut during = Vec::new();
    for n in 0..3 {
        during.push(chain.sale(0, &format!("during-{n}"), &pack(n)).await);
    }
    redis.restart().await;
    let ready = chain.readiness().await;
    let after = chain.sale(0, "after", &pack(7)).await;

    // Postgres is the truth: without Redis the replica keeps serving, so it stays in its load
    // balancer and says it is degraded.
    assert_eq!(down.status, 200, "{}", down.text);
    assert_eq!(down.json()["status"], "degraded", "{}", down.text);
    assert_eq!(down.json()["redis"], "unavailable");
    assert_eq!(down.json()["postgres"], "ok");
    for answer in &during {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json()["verdict"], "allow", "{}", answer.text);
        assert_eq!(answer.json()["mode"], "online", "{}", answer.text);
        let document = answer.json()["document_id"].as_str().unwrap().to_owned();
        assert!(exchanges_of(&chain.app.db, &document).await >= 1);
    }
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json()["status"], "ok", "{}", ready.text);
    assert_eq!(ready.json()["redis"], "ok");
    assert_eq!(after.status, 200, "{}", after.text);
}

/// A tobacco pack code of the same shape as [`CODE`], one per `n`.
fn pack(n: usize) -> String {
    let serial: String = format!("{n:0>7}");
    format!("04601653035829{serial}ABVUdGVz")
}

/// The test database's URL with the host and port of `address`.
fn via(url: &str, address: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let (host, port) = address.rsplit_once(':').unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_port(Some(port.parse().unwrap())).unwrap();
    url.to_string()
}

/// Waits until a session of this database waits for a lock: the document's write, held.
async fn wait_for_a_lock_wait(db: &DatabaseConnection) {
    let sql = "SELECT count(*) AS n FROM pg_stat_activity \
               WHERE datname = current_database() AND wait_event_type = 'Lock'";
    while count(db, sql).await == 0 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_database_lost_mid_document_answers_503_keeps_the_evidence_and_recovers() {
    let admin = std::env::var("IMARK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let upstream = {
        let url = url::Url::parse(&admin).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
    };
    let proxy = CuttableProxy::start(upstream.clone()).await;
    let proxied = format!("127.0.0.1:{}", proxy.port());
    let chain = chain(
        |vars| {
            let direct = vars["IMARK_DATABASE_URL"].clone();
            vars.insert("IMARK_DATABASE_URL".into(), via(&direct, &proxied));
        },
        1,
        UnknownCodes::Valid,
    )
    .await;
    let database_url =
        secrecy::ExposeSecret::expose_secret(&chain.app.config.database_url).to_owned();
    let direct = imark_core::db::connect(&via(&database_url, &upstream).into())
        .await
        .unwrap();
    let warm = chain.sale(0, "warm-up", &pack(1)).await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    let checks_before = chain.code_checks();

    // Hold every write to `documents`, so that the document stops after ЧЗ has answered, then
    // cut the database under it.
    let holder = direct.begin().await.unwrap();
    holder
        .execute_unprepared("LOCK TABLE documents IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let (lost, ()) = tokio::join!(chain.sale(0, "lost", CODE), async {
        wait_for_a_lock_wait(&direct).await;
        proxy.cut().await;
    });
    let while_cut = chain.readiness().await;
    holder.rollback().await.unwrap();
    proxy.restore();

    let stored = count(
        &direct,
        "SELECT count(*) AS n FROM documents WHERE pos_document_id = 'lost'",
    )
    .await;
    let sold = count(
        &direct,
        "SELECT count(*) AS n FROM marks WHERE status = 'sold'",
    )
    .await;
    let cache = Cache::connect(
        &chain.app.config.redis_url,
        chain.app.config.redis_prefix.clone(),
    )
    .await
    .unwrap();
    let spooled: usize = cache
        .connection()
        .llen(cache.key("evidence:spool"))
        .await
        .unwrap();
    let drained = imark_core::evidence::drain(&direct, &cache, 100)
        .await
        .unwrap();
    let kept = count(
        &direct,
        "SELECT count(*) AS n FROM truemark_exchanges \
         WHERE endpoint = 'codes_check' AND document_id IS NOT NULL AND req_id IS NOT NULL",
    )
    .await;
    let again = chain.sale(0, "lost", CODE).await;
    let ready = chain.readiness().await;

    assert_eq!(lost.status, 503, "{}", lost.text);
    assert_eq!(lost.content_type(), "application/problem+json");
    assert_eq!(lost.code(), "unavailable");
    assert_eq!(while_cut.status, 503, "{}", while_cut.text);
    assert_eq!(
        while_cut.json()["status"],
        "unavailable",
        "{}",
        while_cut.text
    );
    assert_eq!(while_cut.json()["postgres"], "unavailable");
    assert_eq!(while_cut.json()["redis"], "ok");
    assert_eq!(stored, 0, "no half-written document");
    assert_eq!(
        sold, 1,
        "the mark base is as before: only the warm-up's mark is sold"
    );
    assert_eq!(
        chain.code_checks(),
        checks_before + 2,
        "ЧЗ answered both sends"
    );
    assert_eq!(spooled, 1, "the lost document's exchange was spooled");
    assert_eq!(drained, 1);
    assert_eq!(kept, 2, "the warm-up's answer and the lost document's");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["verdict"], "allow");
    assert_eq!(ready.status, 200, "{}", ready.text);
}

#[tokio::test]
async fn each_truemark_fault_on_the_current_host_still_gets_a_lawful_answer_with_evidence() {
    let host_faults = [
        Fault::HttpStatus {
            status: 500,
            retry_after_secs: None,
        },
        Fault::HttpStatus {
            status: 502,
            retry_after_secs: None,
        },
        Fault::HttpStatus {
            status: 503,
            retry_after_secs: None,
        },
        Fault::HttpStatus {
            status: 504,
            retry_after_secs: None,
        },
        Fault::HttpStatus {
            status: 429,
            retry_after_secs: Some(1),
        },
        Fault::NeverAnswer,
        Fault::Delay { ms: 5_000 },
        Fault::MalformedBody { body: None },
        Fault::MalformedBody {
            body: Some("<html>bad gateway</html>".into()),
        },
        Fault::CrossBorderOutage { status: 500 },
    ];
    for fault in host_faults {
        let chain = chain(|_| {}, 1, UnknownCodes::Valid).await;
        let warm = chain.sale(0, "warm-up", &pack(1)).await;
        assert_eq!(warm.status, 200, "{}", warm.text);
        let current = chain.busiest_host();
        chain
            .sandbox
            .control()
            .set_fault(
                FaultTarget::host(current).only(Endpoint::CodesCheck),
                &fault,
            )
            .unwrap();
        let checks_before = chain.code_checks();

        let answer = chain.sale(0, "faulted", CODE).await;

        let name = format!("{fault:?}");
        assert_eq!(answer.status, 200, "{name}: {}", answer.text);
        let body = answer.json();
        assert_eq!(body["mode"], "online", "{name}: {body}");
        assert_eq!(body["verdict"], "allow", "{name}: {body}");
        assert!(body["tag1260"].is_object(), "{name}: {body}");
        let document = body["document_id"].as_str().unwrap();
        let exchanges = exchanges_of(&chain.app.db, document).await;
        assert!(exchanges >= 2, "{name}: the failed attempt is evidence too");
        assert_eq!(
            exchanges as u64,
            chain.code_checks() - checks_before,
            "{name}: every attempt ЧЗ saw is kept"
        );
    }
}

#[tokio::test]
async fn refused_connections_on_the_current_host_fail_over_with_evidence() {
    let chain = chain(|_| {}, 1, UnknownCodes::Valid).await;
    let warm = chain.sale(0, "warm-up", &pack(1)).await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    let current = chain.busiest_host();
    chain
        .sandbox
        .control()
        .refuse_connections(Service::Host(current))
        .await
        .unwrap();

    let answer = chain.sale(0, "refused", CODE).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["mode"], "online");
    assert!(answer.json()["tag1260"].is_object());
    let document = answer.json()["document_id"].as_str().unwrap().to_owned();
    // The refused attempt is an exchange too, though ЧЗ never saw it.
    assert_eq!(exchanges_of(&chain.app.db, &document).await, 2);
}

#[tokio::test]
async fn when_no_truemark_host_answers_the_sale_goes_ahead_without_a_check_and_says_why() {
    let cases = [
        (Fault::NeverAnswer, "no_check_mode"),
        (
            Fault::HttpStatus {
                status: 203,
                retry_after_secs: None,
            },
            "emergency",
        ),
    ];
    for (fault, reason) in cases {
        let chain = chain(|_| {}, 1, UnknownCodes::Valid).await;
        let warm = chain.sale(0, "warm-up", &pack(1)).await;
        assert_eq!(warm.status, 200, "{}", warm.text);
        let control = chain.sandbox.control();
        control
            .set_fault(FaultTarget::every_host(), &fault)
            .unwrap();
        control
            .set_fault(FaultTarget::discovery(), &Fault::NeverAnswer)
            .unwrap();

        let answer = chain.sale(0, "unchecked", CODE).await;

        assert_eq!(answer.status, 200, "{reason}: {}", answer.text);
        let body = answer.json();
        assert_eq!(body["mode"], "no_check", "{reason}: {body}");
        assert_eq!(body["verdict"], "allow", "{reason}: {body}");
        assert!(body["tag1260"].is_null(), "{reason}: {body}");
        assert_eq!(body["tag1260_absent_reason"], reason, "{body}");
        let document = body["document_id"].as_str().unwrap();
        assert!(exchanges_of(&chain.app.db, document).await >= 1, "{reason}");
    }
}

#[tokio::test]
async fn hundreds_of_concurrent_sales_of_five_marks_sell_each_exactly_once() {
    let chain = chain(
        |vars| {
            // The emulator answers 200 checks at once; a slow answer is not what is tested.
            vars.insert("IMARK_TRUEMARK_CHECK_TIMEOUT_MS".into(), "10000".into());
            vars.insert("IMARK_TRUEMARK_DOCUMENT_BUDGET_MS".into(), "20000".into());
        },
        4,
        UnknownCodes::Valid,
    )
    .await;
    let warm = chain.sale(0, "warm-up", &pack(99)).await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    let marks: Vec<String> = (0..5).map(pack).collect();

    let sales = (0..200).map(|n| {
        let chain = &chain;
        let mark = &marks[n % marks.len()];
        async move {
            (
                mark.clone(),
                chain.sale(n % 4, &format!("race-{n}"), mark).await,
            )
        }
    });
    let answers = futures::future::join_all(sales).await;

    let mut allowed: HashMap<String, usize> = HashMap::new();
    for (mark, answer) in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text);
        let verdict = answer.json()["verdict"].as_str().unwrap().to_owned();
        assert!(verdict == "allow" || verdict == "block", "{verdict}");
        if verdict == "allow" {
            *allowed.entry(mark.clone()).or_default() += 1;
        }
    }
    for mark in &marks {
        assert_eq!(allowed.get(mark), Some(&1), "{mark}: {allowed:?}");
    }
    let sold = count(
        &chain.app.db,
        "SELECT count(*) AS n FROM marks WHERE status = 'sold'",
    )
    .await;
    let sold_items = count(
        &chain.app.db,
        "SELECT count(*) AS n FROM document_items i JOIN documents d ON d.id = i.document_id \
         WHERE d.pos_document_id LIKE 'race-%' AND i.applied",
    )
    .await;
    assert_eq!(sold, 6, "the five marks and the warm-up's");
    assert_eq!(sold_items, 5, "each mark was recorded sold by one document");
}
