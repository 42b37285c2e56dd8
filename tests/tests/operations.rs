//! Probes, the published contract and the request id.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use imark_tests::TestApp;

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml"))
            .expect("openapi.yaml is committed at the repository root");

    let generated = imark_api::openapi::yaml();

    assert!(
        committed == generated,
        "openapi.yaml is stale: regenerate it with `cargo run -p imark-api -- openapi > openapi.yaml`"
    );
}

#[tokio::test]
async fn the_server_publishes_its_openapi_document() {
    let app = TestApp::spawn().await;

    let response = app.send(app.http.get(app.url("/openapi.yaml"))).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.text, imark_api::openapi::yaml());
    assert!(response.text.starts_with("openapi: 3.1"));
}

#[tokio::test]
async fn liveness_and_readiness_report_ok_with_postgres_and_redis_up() {
    let app = TestApp::spawn().await;

    let alive = app.send(app.http.get(app.url("/healthz"))).await;
    let ready = app.send(app.http.get(app.url("/readyz"))).await;

    assert_eq!(alive.status, 200);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["postgres"], "ok");
    assert_eq!(ready.json()["redis"], "ok");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_an_incoming_one_is_kept() {
    let app = TestApp::spawn().await;

    let fresh = app.send(app.http.get(app.url("/healthz"))).await;
    let kept = app
        .send(
            app.http
                .get(app.url("/nowhere"))
                .header("x-request-id", "pos-42-retry-1"),
        )
        .await;

    assert!(fresh.headers.get("x-request-id").is_some());
    assert_eq!(kept.headers.get("x-request-id").unwrap(), "pos-42-retry-1");
}

#[tokio::test]
async fn several_processes_may_migrate_one_database_at_once() {
    let app = TestApp::spawn().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
    )
    .await
    .unwrap();

    let runs = futures::future::join_all((0..4).map(|_| async {
        let db = imark_core::db::connect(&app.config.database_url)
            .await
            .unwrap();
        imark_core::db::migrate(&db).await
    }))
    .await;

    for run in runs {
        assert!(run.is_ok(), "{run:?}");
    }
    let stores = app.get("/stores", &app.platform_token().await).await;
    assert_eq!(
        stores.status, 403,
        "the schema works after the race: {}",
        stores.text
    );
}

#[tokio::test]
async fn interactive_documentation_is_served_from_the_same_document() {
    let app = TestApp::spawn().await;

    let page = app.send(app.http.get(app.url("/docs/"))).await;
    let json = app.send(app.http.get(app.url("/openapi.json"))).await;

    assert_eq!(page.status, 200);
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    assert_eq!(json.status, 200);
    let generated = imark_api::api_router().split_for_parts().1;
    assert_eq!(json.json(), serde_json::to_value(generated).unwrap());
    assert!(json.json()["paths"]["/document"]["post"].is_object());
}

#[tokio::test]
async fn every_migration_reverts_and_applies_again() {
    use migration::{Migrator, MigratorTrait as _};
    use sea_orm::ConnectionTrait as _;
    let app = TestApp::spawn().await;
    let applied = Migrator::get_applied_migrations(&app.db)
        .await
        .unwrap()
        .len();

    Migrator::down(&app.db, None).await.unwrap();
    let left = Migrator::get_applied_migrations(&app.db).await.unwrap();
    Migrator::up(&app.db, None).await.unwrap();

    assert!(left.is_empty(), "every migration reverted");
    assert_eq!(
        Migrator::get_applied_migrations(&app.db)
            .await
            .unwrap()
            .len(),
        applied
    );
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT count(*) AS n FROM pg_proc \
             WHERE proname IN ('audit_append', 'audit_append_all')",
        ))
        .await
        .unwrap()
        .unwrap();
    let functions: i64 = row.try_get("", "n").unwrap();
    // The one-record function stays beside the batch one for pods of the previous release.
    assert_eq!(functions, 2, "both append functions after the round trip");
}
