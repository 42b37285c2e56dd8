//! Liveness and readiness probes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// How long readiness waits for Redis before calling it unavailable: well inside the probe's
/// own time limit (2 s in deploy/k8s), so that a Redis that hangs rather than refuses makes the
/// replica degraded, not unready.
const REDIS_PING_LIMIT: Duration = Duration::from_millis(1000);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
}

/// Whether the replica can serve, and how each dependency answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` (both answer), `degraded` (Redis does not answer: documents are still checked, with
    /// rankings, blocks and leases read from Postgres) or `unavailable` (Postgres does not
    /// answer: nothing can be served).
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `ok` or `unavailable`.
    pub postgres: &'static str,
    /// `ok` or `unavailable`.
    pub redis: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Whether this replica should get traffic.
///
/// It should while Postgres answers. Without Redis it still serves, degraded (`status:
/// degraded`, `redis: unavailable`), so that a Redis outage does not take every replica out of
/// its load balancer.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready: Postgres answers. `status` is `ok`, or `degraded` \
        while Redis does not answer", body = Readiness),
    (status = 503, description = "Not ready: Postgres does not answer", body = Readiness),
))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let redis_ping = async {
        match tokio::time::timeout(REDIS_PING_LIMIT, state.cache.ping()).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {REDIS_PING_LIMIT:?}")),
        }
    };
    let (postgres, redis) = tokio::join!(state.db.ping(), redis_ping);
    if let Err(e) = &postgres {
        tracing::warn!(error.message = %e, "postgres is not reachable");
    }
    if let Err(e) = &redis {
        tracing::warn!(error.message = %e, "redis is not reachable; serving degraded");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let (status, overall) = match (postgres.is_ok(), redis.is_ok()) {
        (true, true) => (StatusCode::OK, "ok"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    (
        status,
        Json(Readiness {
            status: overall,
            postgres: word(postgres.is_ok()),
            redis: word(redis.is_ok()),
        }),
    )
}
