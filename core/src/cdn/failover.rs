//! Request-time failover: the current host first, then host by host in ranking order, blocking
//! each failed host for every replica; one rediscovery when all have failed; the no-check mode
//! of ПП 1944 when nothing answers.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::time::Instant;
use truemark::client::{
    CdnHost, Exchange, ExchangeRecord, Outcome, OutcomeKind, Refusal, TrueApiClient, TrueApiKey,
    TrueApiTimeouts,
};
use truemark::wire::{CodesCheckAnswer, CodesCheckRequest};
use uuid::Uuid;

use super::{CdnGroup, cache, refresh, store};
use crate::cache::Cache;
use crate::config::TruemarkSettings;
use crate::error::{Error, Result};
use crate::modes::{self, Mode, Reason};

/// What ЧЗ said about a document's codes, as far as iMark could get an answer.
#[derive(Debug, Clone)]
pub enum CheckVerdict {
    /// ЧЗ answered (`code == 0`): decide per code; tag 1260 comes from this answer.
    Answered(CodesCheckAnswer),
    /// ЧЗ answered but refused to decide (`code != 0`).
    Refused(Refusal),
    /// ГИС МТ declared an emergency (203/418, or the cross-border service down on several
    /// hosts): the sale proceeds without a check and without tag 1260.
    Emergency,
    /// No host answered within the budget: the tenant is in no-check mode.
    NoAnswer,
    /// ЧЗ refused the tenant's key: a configuration error, not an outage.
    Unauthorized,
}

/// The result of one document's check, with every exchange made for it.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub verdict: CheckVerdict,
    /// The tenant's mode after this check.
    pub mode: Mode,
    /// The host that gave the verdict, if any did.
    pub host: Option<CdnHost>,
    /// Every exchange, in order: attempts, retries, rediscovery. Evidence, all of it.
    pub exchanges: Vec<ExchangeRecord>,
}

/// A check that failed on iMark's side (the database), with the exchanges made before it: the
/// caller keeps them as evidence.
#[derive(Debug)]
pub struct CheckFailure {
    pub error: Error,
    pub exchanges: Vec<ExchangeRecord>,
}

/// The failover engine shared by every request of a process.
#[derive(Debug, Clone)]
pub struct Failover {
    db: DatabaseConnection,
    cache: Cache,
    client: TrueApiClient,
    /// A client for the rediscovery made inside a request, with short list and health limits.
    urgent: TrueApiClient,
    settings: TruemarkSettings,
}

impl Failover {
    pub fn new(db: DatabaseConnection, cache: Cache, settings: TruemarkSettings) -> Result<Self> {
        let timeouts = TrueApiTimeouts {
            codes_check: settings.check_timeout,
            cdn_info: settings.list_timeout,
            health_check: settings.health_timeout,
            ..TrueApiTimeouts::default()
        };
        let urgent_timeouts = TrueApiTimeouts {
            cdn_info: settings.check_timeout,
            health_check: settings.check_timeout,
            ..timeouts
        };
        Ok(Self {
            client: TrueApiClient::new(timeouts).map_err(Error::internal)?,
            urgent: TrueApiClient::new(urgent_timeouts).map_err(Error::internal)?,
            db,
            cache,
            settings,
        })
    }

    pub fn client(&self) -> &TrueApiClient {
        &self.client
    }

    pub fn settings(&self) -> &TruemarkSettings {
        &self.settings
    }

    /// Checks one document's codes for `tenant_id` on `group`, within the document budget.
    ///
    /// Only a database failure is an error; every ЧЗ failure is a verdict, and every exchange
    /// is returned for evidence.
    pub async fn check(
        &self,
        tenant_id: Uuid,
        group: &CdnGroup,
        key: &TrueApiKey,
        request: &CodesCheckRequest,
    ) -> Result<CheckRun, CheckFailure> {
        let deadline = Instant::now() + self.settings.document_budget;
        let mut run = Attempts::default();
        let checked = match modes::current(&self.db, tenant_id, group).await {
            Ok(Mode::NoCheck) => {
                self.check_without_mode(tenant_id, group, key, request, &mut run)
                    .await
            }
            Ok(Mode::Online) => {
                self.check_online(tenant_id, group, key, request, deadline, &mut run)
                    .await
            }
            Err(error) => Err(error),
        };
        crate::metrics::check_finished(run.tried.len(), checked.as_ref().ok().map(|r| &r.verdict));
        // Whatever failed after ЧЗ was asked, the exchanges go back to the caller as evidence.
        checked.map_err(|error| CheckFailure {
            error,
            exchanges: std::mem::take(&mut run.exchanges),
        })
    }

    async fn check_online(
        &self,
        tenant_id: Uuid,
        group: &CdnGroup,
        key: &TrueApiKey,
        request: &CodesCheckRequest,
        deadline: Instant,
        run: &mut Attempts,
    ) -> Result<CheckRun> {
        let mut rediscovered = false;
        loop {
            let candidates = self.candidates(group, &run.tried).await?;
            if candidates.is_empty() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if rediscovered {
                    break;
                }
                if remaining < self.settings.check_timeout * 2 {
                    // No time to rediscover within this document: do it beside it, so that
                    // the next document finds the new hosts.
                    self.refresh_in_background(group, key);
                    break;
                }
                rediscovered = true;
                let report = refresh(
                    &self.db,
                    &self.cache,
                    &self.urgent,
                    group,
                    key,
                    true,
                    &self.settings.fallback_hosts,
                )
                .await?;
                run.exchanges.extend(report.exchanges);
                // A host that just passed its health check is tried again, block or not:
                // otherwise a group whose hosts were all blocked stays unchecked for the whole
                // block time while ЧЗ answers. Hosts tried in this document stay skipped.
                let fresh: Vec<CdnHost> = report
                    .ranking
                    .into_iter()
                    .filter(|h| !run.tried.contains(h))
                    .collect();
                self.unblock(group, &fresh).await;
                continue;
            }
            for host in candidates {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                let limit = remaining.min(self.settings.check_timeout);
                let outcome = self.attempt(&host, key, request, limit, run).await;
                if let Some(done) = self.settle(tenant_id, group, &host, outcome, run).await? {
                    return Ok(done);
                }
            }
            if deadline <= Instant::now() {
                break;
            }
        }

        modes::switch(
            &self.db,
            tenant_id,
            group,
            Mode::NoCheck,
            Reason::NoHostAnswered,
            &run.exchanges,
        )
        .await?;
        Ok(run.finish(CheckVerdict::NoAnswer, Mode::NoCheck, None))
    }

    /// One attempt on `host`; a 429 is retried once on the same host.
    async fn attempt(
        &self,
        host: &CdnHost,
        key: &TrueApiKey,
        request: &CodesCheckRequest,
        limit: Duration,
        run: &mut Attempts,
    ) -> Outcome<CodesCheckAnswer> {
        run.tried.insert(host.clone());
        let started = Instant::now();
        let Exchange { outcome, record } = self
            .client
            .check_codes_within(host, key, request, limit)
            .await;
        crate::metrics::truemark_exchange(&record, outcome.kind());
        run.exchanges.push(record);
        if !matches!(outcome, Outcome::RateLimited { .. }) {
            return outcome;
        }
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return outcome;
        }
        let Exchange { outcome, record } = self
            .client
            .check_codes_within(host, key, request, left)
            .await;
        crate::metrics::truemark_exchange(&record, outcome.kind());
        run.exchanges.push(record);
        outcome
    }

    /// Acts on one attempt's outcome: returns the run's result when it is final, or blocks the
    /// host and returns `None` to go on with the next one.
    async fn settle(
        &self,
        tenant_id: Uuid,
        group: &CdnGroup,
        host: &CdnHost,
        outcome: Outcome<CodesCheckAnswer>,
        run: &mut Attempts,
    ) -> Result<Option<CheckRun>> {
        let verdict = match outcome {
            Outcome::Answered(answer) => {
                self.remember_current(group, host).await;
                CheckVerdict::Answered(answer)
            }
            Outcome::Refused(refusal) => CheckVerdict::Refused(refusal),
            Outcome::Unauthorized => CheckVerdict::Unauthorized,
            Outcome::Emergency { .. } => {
                let exchanges = std::mem::take(&mut run.exchanges);
                modes::switch(
                    &self.db,
                    tenant_id,
                    group,
                    Mode::NoCheck,
                    Reason::Emergency,
                    &exchanges,
                )
                .await?;
                run.exchanges = exchanges;
                return Ok(Some(run.finish_at(
                    CheckVerdict::Emergency,
                    Mode::NoCheck,
                    host,
                )));
            }
            Outcome::HostFailure(failure) if failure.is_cross_border_outage() => {
                run.cross_border_outages += 1;
                self.block(group, host, "cross_border_service_down").await;
                if run.cross_border_outages < 2 {
                    return Ok(None);
                }
                modes::switch(
                    &self.db,
                    tenant_id,
                    group,
                    Mode::NoCheck,
                    Reason::CrossBorderServiceDown,
                    &run.exchanges,
                )
                .await?;
                return Ok(Some(run.finish_at(
                    CheckVerdict::Emergency,
                    Mode::NoCheck,
                    host,
                )));
            }
            other => {
                self.block(group, host, other.kind().as_str()).await;
                return Ok(None);
            }
        };
        Ok(Some(run.finish_at(verdict, Mode::Online, host)))
    }

    /// A tenant in no-check mode gets one short attempt on the best known host. An answer ends
    /// the no-check mode at once; anything else leaves it in place.
    async fn check_without_mode(
        &self,
        tenant_id: Uuid,
        group: &CdnGroup,
        key: &TrueApiKey,
        request: &CodesCheckRequest,
        run: &mut Attempts,
    ) -> Result<CheckRun> {
        let mut hosts = self.candidates(group, &HashSet::new()).await?;
        if hosts.is_empty() {
            hosts = self.ranking(group).await?;
        }
        if hosts.is_empty() {
            hosts = store::listed(&self.db, group).await?;
        }
        let Some(host) = hosts.into_iter().next() else {
            return Ok(run.finish(CheckVerdict::NoAnswer, Mode::NoCheck, None));
        };
        let Exchange { outcome, record } = self
            .client
            .check_codes_within(&host, key, request, self.settings.no_check_timeout)
            .await;
        crate::metrics::truemark_exchange(&record, outcome.kind());
        run.exchanges.push(record);
        // Any answer, a refusal to decide included, shows ЧЗ is reachable again.
        let kind = outcome.kind();
        let answered = match outcome {
            Outcome::Answered(answer) => Some(CheckVerdict::Answered(answer)),
            Outcome::Refused(refusal) => Some(CheckVerdict::Refused(refusal)),
            _ => None,
        };
        if let Some(verdict) = answered {
            modes::switch(
                &self.db,
                tenant_id,
                group,
                Mode::Online,
                Reason::Recovered,
                &run.exchanges,
            )
            .await?;
            self.unblock(group, std::slice::from_ref(&host)).await;
            self.remember_current(group, &host).await;
            return Ok(run.finish_at(verdict, Mode::Online, &host));
        }
        let verdict = match kind {
            OutcomeKind::Unauthorized => CheckVerdict::Unauthorized,
            OutcomeKind::Emergency => CheckVerdict::Emergency,
            _ => CheckVerdict::NoAnswer,
        };
        Ok(run.finish_at(verdict, Mode::NoCheck, &host))
    }

    /// The ranked hosts not blocked and not yet tried, fastest first. The ranking comes from
    /// Redis, or from Postgres when Redis is unreachable or empty; blocks likewise.
    async fn candidates(&self, group: &CdnGroup, tried: &HashSet<CdnHost>) -> Result<Vec<CdnHost>> {
        let ranking: Vec<CdnHost> = self
            .ranking(group)
            .await?
            .into_iter()
            .filter(|h| !tried.contains(h))
            .collect();
        let blocked: Vec<bool> = match cache::blocked(&self.cache, group, &ranking).await {
            Ok(flags) => flags,
            Err(e) => {
                tracing::warn!(error.message = %e, "host blocks read from Postgres");
                let blocked = store::blocked(&self.db, group).await?;
                ranking.iter().map(|h| blocked.contains(h)).collect()
            }
        };
        Ok(ranking
            .into_iter()
            .zip(blocked)
            .filter_map(|(host, blocked)| (!blocked).then_some(host))
            .collect())
    }

    async fn ranking(&self, group: &CdnGroup) -> Result<Vec<CdnHost>> {
        match cache::ranking(&self.cache, group).await {
            Ok(Some(ranking)) if !ranking.is_empty() => return Ok(ranking),
            Ok(_) => {}
            Err(e) => tracing::warn!(error.message = %e, "ranking read from Postgres"),
        }
        let ranking = store::ranking(&self.db, group).await?;
        if !ranking.is_empty()
            && let Err(e) = cache::put_ranking(&self.cache, group, &ranking).await
        {
            tracing::debug!(error.message = %e, "ranking not cached");
        }
        Ok(ranking)
    }

    /// Blocks `host` for every replica. Bookkeeping failures are logged: they must not stop
    /// the check itself.
    async fn block(&self, group: &CdnGroup, host: &CdnHost, outcome: &str) {
        let until = Utc::now()
            + chrono::Duration::from_std(self.settings.block_time).unwrap_or(chrono::Duration::MAX);
        tracing::warn!(cdn.host = %host, outcome, "CDN host blocked");
        if let Err(e) = cache::block(&self.cache, group, host, self.settings.block_time).await {
            tracing::warn!(cdn.host = %host, error.message = %e, "host block not cached");
        }
        if let Err(e) = store::block(&self.db, group, host, until, outcome).await {
            tracing::warn!(cdn.host = %host, error.message = %e, "host block not stored");
        }
    }

    /// Lifts the blocks of `hosts`, which have just shown they serve. Bookkeeping failures are
    /// logged.
    async fn unblock(&self, group: &CdnGroup, hosts: &[CdnHost]) {
        if hosts.is_empty() {
            return;
        }
        if let Err(e) = cache::unblock(&self.cache, group, hosts).await {
            tracing::warn!(error.message = %e, "host blocks not lifted in Redis");
        }
        if let Err(e) = store::unblock(&self.db, group, hosts).await {
            tracing::warn!(error.message = %e, "host blocks not lifted in Postgres");
        }
    }

    /// Rediscovers `group` outside the current request, at most once per
    /// [`BACKGROUND_REFRESH_GAP`] across every replica.
    fn refresh_in_background(&self, group: &CdnGroup, key: &TrueApiKey) {
        let (db, cache, client) = (self.db.clone(), self.cache.clone(), self.client.clone());
        let (group, key) = (group.clone(), key.clone());
        let fallback = self.settings.fallback_hosts.clone();
        tokio::spawn(async move {
            if !cache::claim_refresh(&cache, &group, BACKGROUND_REFRESH_GAP)
                .await
                .unwrap_or(true)
            {
                return;
            }
            if let Err(e) = refresh(&db, &cache, &client, &group, &key, true, &fallback).await {
                tracing::warn!(cdn.group = %group, error.message = %e, "background refresh failed");
            }
        });
    }

    /// Makes the host that answered current when it was not: the ranking's first place.
    async fn remember_current(&self, group: &CdnGroup, host: &CdnHost) {
        let ranking = match self.ranking(group).await {
            Ok(ranking) => ranking,
            Err(_) => return,
        };
        if ranking.first() == Some(host) {
            return;
        }
        let mut reordered = vec![host.clone()];
        reordered.extend(ranking.into_iter().filter(|h| h != host));
        if let Err(e) = cache::put_ranking(&self.cache, group, &reordered).await {
            tracing::debug!(error.message = %e, "ranking not cached");
        }
        if let Err(e) = store::make_current(&self.db, group, host).await {
            tracing::warn!(cdn.host = %host, error.message = %e, "current host not stored");
        }
    }
}

/// The least time between two background refreshes of one group.
const BACKGROUND_REFRESH_GAP: Duration = Duration::from_secs(30);

/// The bookkeeping of one document's attempts.
#[derive(Debug, Default)]
struct Attempts {
    tried: HashSet<CdnHost>,
    exchanges: Vec<ExchangeRecord>,
    cross_border_outages: u32,
}

impl Attempts {
    fn finish(&mut self, verdict: CheckVerdict, mode: Mode, host: Option<CdnHost>) -> CheckRun {
        CheckRun {
            verdict,
            mode,
            host,
            exchanges: std::mem::take(&mut self.exchanges),
        }
    }

    fn finish_at(&mut self, verdict: CheckVerdict, mode: Mode, host: &CdnHost) -> CheckRun {
        CheckRun {
            verdict,
            mode,
            host: Some(host.clone()),
            exchanges: std::mem::take(&mut self.exchanges),
        }
    }
}
