//! Each group's ranking and host blocks in Redis, shared by every replica. Every function
//! returns Redis errors to the caller, which then falls back to Postgres.

use std::time::Duration;

use redis::AsyncCommands as _;
use truemark::client::CdnHost;

use super::CdnGroup;
use crate::cache::Cache;

/// A cached ranking outlives several refresh intervals, so a lost refresh never empties it.
const RANKING_TTL: Duration = Duration::from_secs(24 * 3600);

fn ranking_key(cache: &Cache, group: &CdnGroup) -> String {
    cache.key(&format!("cdn:{}:ranking", group.digest()))
}

fn block_key(cache: &Cache, group: &CdnGroup, host: &CdnHost) -> String {
    cache.key(&format!("cdn:{}:block:{host}", group.digest()))
}

/// The cached ranking, fastest first; `None` when nothing is cached.
pub(super) async fn ranking(
    cache: &Cache,
    group: &CdnGroup,
) -> redis::RedisResult<Option<Vec<CdnHost>>> {
    let text: Option<String> = cache.connection().get(ranking_key(cache, group)).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

pub(super) async fn put_ranking(
    cache: &Cache,
    group: &CdnGroup,
    ranking: &[CdnHost],
) -> redis::RedisResult<()> {
    let text = serde_json::to_string(ranking).unwrap_or_else(|_| "[]".to_owned());
    cache
        .connection()
        .set_ex(ranking_key(cache, group), text, RANKING_TTL.as_secs())
        .await
}

/// Which of `hosts` are blocked, in the same order.
pub(super) async fn blocked(
    cache: &Cache,
    group: &CdnGroup,
    hosts: &[CdnHost],
) -> redis::RedisResult<Vec<bool>> {
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = hosts.iter().map(|h| block_key(cache, group, h)).collect();
    // MGET even for one key: the typed helper would send GET and answer a scalar.
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(keys)
        .query_async(&mut cache.connection())
        .await?;
    Ok(values.into_iter().map(|v| v.is_some()).collect())
}

pub(super) async fn block(
    cache: &Cache,
    group: &CdnGroup,
    host: &CdnHost,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    cache
        .connection()
        .pset_ex(block_key(cache, group, host), "1", millis)
        .await
}

pub(super) async fn unblock(
    cache: &Cache,
    group: &CdnGroup,
    hosts: &[CdnHost],
) -> redis::RedisResult<()> {
    if hosts.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = hosts.iter().map(|h| block_key(cache, group, h)).collect();
    redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut cache.connection())
        .await
}

/// Claims the right to refresh `group` for `gap`; `false` when a replica claimed it already.
pub(super) async fn claim_refresh(
    cache: &Cache,
    group: &CdnGroup,
    gap: Duration,
) -> redis::RedisResult<bool> {
    let claimed: Option<String> = redis::cmd("SET")
        .arg(cache.key(&format!("cdn:{}:refreshing", group.digest())))
        .arg("1")
        .arg("NX")
        .arg("PX")
        .arg(u64::try_from(gap.as_millis()).unwrap_or(u64::MAX))
        .query_async(&mut cache.connection())
        .await?;
    Ok(claimed.is_some())
}
