//! iMark's background jobs: a thin shell around `imark-core`.
//!
//! The jobs themselves (CDN discovery, health ranking, the accelerated refresh in no-check mode)
//! arrive with the CDN work; until then the worker only proves its configuration and
//! connections and stops cleanly.

use std::future::Future;

use anyhow::Context as _;
use imark_core::cache::Cache;
use imark_core::config::Config;
use imark_core::db;

/// Connects to Postgres and Redis, then runs until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let db = db::connect(&config.database_url)
        .await
        .context("connecting to Postgres (IMARK_DATABASE_URL)")?;
    let cache = Cache::connect(&config.redis_url, config.redis_prefix.clone())
        .await
        .context("connecting to Redis (IMARK_REDIS_URL)")?;
    db.ping().await.context("pinging Postgres")?;
    cache.ping().await.context("pinging Redis")?;
    tracing::info!("worker started");

    // TODO(#4): register the CDN discovery, health-ranking and accelerated-refresh jobs here.
    shutdown.await;

    tracing::info!("worker stopped");
    Ok(())
}
