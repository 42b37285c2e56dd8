//! Leases in Redis: the first owner to claim a key holds it until it expires. Nobody releases a
//! lease: a finished run keeps it, so a late duplicate of the same run finds it taken.

use std::time::Duration;

use crate::cache::Cache;

/// `SET key owner NX PX ttl`, except that the owner already holding the key keeps it, so an
/// owner's retry is let through. One script, so the check and the set cannot interleave with
/// another replica's.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return 1
end
return 0
";

/// Whether `owner` holds `key` (under the cache's prefix already) after this call.
pub(super) async fn claim(
    cache: &Cache,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let held: i64 = redis::cmd("EVAL")
        .arg(CLAIM)
        .arg(1)
        .arg(key)
        .arg(owner)
        .arg(ttl_ms)
        .query_async(&mut cache.connection())
        .await?;
    Ok(held == 1)
}
