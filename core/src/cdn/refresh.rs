//! Discovery and health: list a group's hosts, check each one independently, rank the healthy
//! ones by the latency we measured, and make the fastest current.

use std::time::Duration;

use futures::future::join_all;
use truemark::client::{CdnHost, Exchange, ExchangeRecord, Outcome, TrueApiClient, TrueApiKey};

use super::{CdnGroup, cache, store};
use crate::cache::Cache;
use crate::error::Result;
use sea_orm::DatabaseConnection;

/// The health of one host, as one check found it.
#[derive(Debug, Clone)]
pub struct HostHealth {
    pub host: CdnHost,
    pub healthy: bool,
    /// The host's own `avgTimeMs`.
    pub server_avg_time_ms: Option<i32>,
    /// The round trip we measured.
    pub measured_latency_ms: Option<i32>,
    pub outcome: truemark::client::OutcomeKind,
}

/// What a refresh found.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    /// Whether discovery answered with a list (else the known or fallback hosts were checked).
    pub discovered: bool,
    pub listed: Vec<CdnHost>,
    pub health: Vec<HostHealth>,
    /// The healthy hosts, fastest first; the first is current.
    pub ranking: Vec<CdnHost>,
    /// Every exchange made, for evidence.
    pub exchanges: Vec<ExchangeRecord>,
    /// ЧЗ refused the key (401): nothing was changed, and another key should be tried.
    pub key_rejected: bool,
}

impl RefreshReport {
    pub fn current(&self) -> Option<&CdnHost> {
        self.ranking.first()
    }
}

/// Refreshes `group`: discovery when `discover` is set, then a health check of every listed
/// host in parallel, then the ranking, stored in Postgres and (best effort) Redis.
///
/// When discovery fails, the hosts already known are checked; for ЧЗ's production discovery
/// URL with no known hosts, the static `fallback` list is.
pub async fn refresh(
    db: &DatabaseConnection,
    cache: &Cache,
    client: &TrueApiClient,
    group: &CdnGroup,
    key: &TrueApiKey,
    discover: bool,
    fallback: &[String],
) -> Result<RefreshReport> {
    let mut exchanges = Vec::new();
    let mut discovered = false;
    if discover {
        let Exchange { outcome, record } = client.cdn_info(group.base(), key).await;
        crate::metrics::truemark_exchange(&record, outcome.kind());
        exchanges.push(record);
        if matches!(outcome, Outcome::Unauthorized) {
            return Ok(RefreshReport::rejected(exchanges));
        }
        match outcome {
            Outcome::Answered(list) if !list.hosts.is_empty() => {
                store::record_listing(db, group, &list.hosts).await?;
                discovered = true;
            }
            other => {
                tracing::warn!(cdn.group = %group, outcome = other.kind().as_str(), "discovery failed");
            }
        }
    }

    let mut listed = store::listed(db, group).await?;
    if listed.is_empty() && is_production(group) {
        listed = fallback.iter().filter_map(|h| h.parse().ok()).collect();
        store::record_listing(db, group, &listed).await?;
    }

    let checks = listed.iter().map(|host| check_one(client, host, key));
    let (health, records): (Vec<HostHealth>, Vec<ExchangeRecord>) =
        join_all(checks).await.into_iter().unzip();
    exchanges.extend(records);

    // A key that ЧЗ refuses makes every host look dead; that says nothing about the hosts.
    if !health.is_empty()
        && health
            .iter()
            .all(|h| h.outcome == truemark::client::OutcomeKind::Unauthorized)
    {
        return Ok(RefreshReport::rejected(exchanges));
    }
    let ranking = rank(&health);
    store::record_health(db, group, &health, &ranking).await?;
    if let Err(e) = cache::put_ranking(cache, group, &ranking).await {
        tracing::warn!(cdn.group = %group, error.message = %e, "ranking not cached");
    }
    tracing::info!(
        cdn.group = %group,
        listed = listed.len(),
        healthy = ranking.len(),
        current = ranking.first().map(ToString::to_string),
        "CDN refreshed"
    );
    Ok(RefreshReport {
        discovered,
        listed,
        health,
        ranking,
        exchanges,
        key_rejected: false,
    })
}

impl RefreshReport {
    fn rejected(exchanges: Vec<ExchangeRecord>) -> Self {
        Self {
            discovered: false,
            listed: Vec::new(),
            health: Vec::new(),
            ranking: Vec::new(),
            exchanges,
            key_rejected: true,
        }
    }
}

fn is_production(group: &CdnGroup) -> bool {
    group.base_key() == crate::credentials::DEFAULT_BASE_URL
}

async fn check_one(
    client: &TrueApiClient,
    host: &CdnHost,
    key: &TrueApiKey,
) -> (HostHealth, ExchangeRecord) {
    let Exchange { outcome, record } = client.health_check(host, key).await;
    crate::metrics::truemark_exchange(&record, outcome.kind());
    let millis = |d: Duration| i32::try_from(d.as_millis()).ok();
    let health = HostHealth {
        host: host.clone(),
        healthy: matches!(outcome, Outcome::Answered(_)),
        server_avg_time_ms: outcome.answer().and_then(|a| a.avg_time()).and_then(millis),
        measured_latency_ms: millis(record.duration),
        outcome: outcome.kind(),
    };
    (health, record)
}

/// The healthy hosts by measured latency, then by the server's own average, then by address.
fn rank(health: &[HostHealth]) -> Vec<CdnHost> {
    let mut healthy: Vec<&HostHealth> = health.iter().filter(|h| h.healthy).collect();
    healthy.sort_by(|a, b| {
        (a.measured_latency_ms, a.server_avg_time_ms, &a.host).cmp(&(
            b.measured_latency_ms,
            b.server_avg_time_ms,
            &b.host,
        ))
    });
    healthy.into_iter().map(|h| h.host.clone()).collect()
}

/// The accelerated refresh of a group with tenants in no-check mode: rediscover and rank, and
/// when a healthy host appears, bring every such tenant back online with the refresh's
/// exchanges as the evidence of recovery. Returns the tenants brought back.
///
/// The healthy hosts' blocks are lifted: they were set while ЧЗ was out of reach, and keeping
/// them would keep the recovered tenants from reaching ЧЗ until they expire.
pub async fn recover(
    db: &DatabaseConnection,
    cache: &Cache,
    client: &TrueApiClient,
    group: &CdnGroup,
    key: &TrueApiKey,
    fallback: &[String],
) -> Result<(RefreshReport, Vec<uuid::Uuid>)> {
    let report = refresh(db, cache, client, group, key, true, fallback).await?;
    let mut recovered = Vec::new();
    if report.current().is_some() {
        store::unblock(db, group, &report.ranking).await?;
        if let Err(e) = cache::unblock(cache, group, &report.ranking).await {
            tracing::warn!(cdn.group = %group, error.message = %e, "host blocks not lifted in Redis");
        }
        for tenant in crate::modes::tenants_without_checks(db, group).await? {
            let flipped = crate::modes::switch(
                db,
                tenant,
                group,
                crate::modes::Mode::Online,
                crate::modes::Reason::Recovered,
                &report.exchanges,
            )
            .await?;
            if flipped {
                recovered.push(tenant);
            }
        }
    }
    Ok((report, recovered))
}
