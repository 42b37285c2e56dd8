//! The periodic jobs on ЧЗ's CDN groups: discovery, health ranking, and the accelerated refresh
//! that brings tenants in no-check mode back online.
//!
//! A job's ticks are the multiples of its interval since the Unix epoch, so every replica's
//! scheduler fires the same ticks without talking to the others. Each tick fans out one run per
//! group. Redis leases keyed by job, group and tick let one replica fan out each tick and one
//! replica run each group's share; a Postgres advisory lock keeps two jobs from refreshing the
//! same group at once (a 6-hour tick is also a 5-minute one). Every run is recorded in
//! `job_runs` and logged.
//!
//! This module decides and records; `imark-worker` schedules the ticks and queues the runs.

mod lease;
mod runs;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait as _,
};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast;
use truemark::client::{BaseUrl, Endpoint, TrueApiClient, TrueApiKey, TrueApiTimeouts};
use uuid::Uuid;

use crate::cache::Cache;
use crate::cdn::{self, CdnGroup, RefreshReport};
use crate::config::TruemarkSettings;
use crate::credentials;
use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::modes;

pub use runs::{JobRun, last_runs};

/// The longest detail kept for a run: enough for a status and a reason.
const DETAIL_MAX_CHARS: usize = 200;

/// A periodic job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Lists each group's hosts again, then checks and ranks them.
    Discover,
    /// Checks and ranks the listed hosts, without asking for the list.
    Rank,
    /// The accelerated refresh of the groups with tenants in no-check mode.
    Recover,
}

impl Job {
    pub const ALL: [Self; 3] = [Self::Discover, Self::Rank, Self::Recover];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discover => "discover",
            Self::Rank => "rank",
            Self::Recover => "recover",
        }
    }

    /// How far apart the job's ticks are.
    pub fn interval(self, settings: &TruemarkSettings) -> Duration {
        match self {
            Self::Discover => settings.refresh_interval,
            Self::Rank => settings.health_interval,
            Self::Recover => settings.accelerated_interval,
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Job {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|job| job.as_str() == value)
            .ok_or_else(|| Error::invalid("job", "must be discover, rank or recover"))
    }
}

/// One firing of a job's schedule: the start of a period of the job's interval, counted in
/// whole periods from the Unix epoch, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tick(i64);

impl Tick {
    pub fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    /// The tick of the period `now` falls in: the latest tick at or before `now`.
    pub fn current(interval: Duration, now: DateTime<Utc>) -> Self {
        let period = period_seconds(interval);
        Self(now.timestamp().div_euclid(period) * period)
    }

    /// The first tick after `now`.
    pub fn next(interval: Duration, now: DateTime<Utc>) -> Self {
        Self::current(interval, now).following(interval)
    }

    /// The tick one interval after this one.
    pub fn following(self, interval: Duration) -> Self {
        Self(self.0.saturating_add(period_seconds(interval)))
    }

    pub fn at(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }

    /// Whether a newer tick has come and gone since this one: its runs are superseded.
    fn is_over(self, interval: Duration, now: DateTime<Utc>) -> bool {
        now.timestamp() >= self.0.saturating_add(2 * period_seconds(interval))
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.at().format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

fn period_seconds(interval: Duration) -> i64 {
    i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    /// There was nothing to do (no host listed yet, no tenant left in no-check mode).
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn from_stored(value: &str) -> Option<Self> {
        [Self::Ok, Self::Failed, Self::Skipped]
            .into_iter()
            .find(|o| o.as_str() == value)
    }
}

/// What one group's run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub job: Job,
    pub group: CdnGroup,
    pub tick: Tick,
    pub outcome: Outcome,
    pub detail: String,
    /// Whether trying again soon may succeed: ЧЗ did not answer, or Postgres or Redis failed.
    /// A missing key or a recovery with no healthy host yet is not retried: the next tick is.
    pub retryable: bool,
    pub duration: Duration,
}

/// A group's share of a tick, as queued between replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRun {
    pub job: Job,
    pub base_url: String,
    pub region: String,
    pub tick: Tick,
}

impl GroupRun {
    pub fn new(job: Job, group: &CdnGroup, tick: Tick) -> Self {
        Self {
            job,
            base_url: group.base_key().to_owned(),
            region: group.region().to_owned(),
            tick,
        }
    }

    /// The group, parsed again from its queued form.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the queued discovery URL is not one.
    pub fn group(&self) -> Result<CdnGroup> {
        let base = self
            .base_url
            .parse::<BaseUrl>()
            .map_err(|_| Error::invalid("base_url", "must be a discovery URL"))?;
        Ok(CdnGroup::new(base, self.region.clone()))
    }

    /// A name equal for the same job, group and tick on every replica; the group part is
    /// [`CdnGroup::digest`].
    pub fn key(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.base_url.as_bytes());
        hash.update([0]);
        hash.update(self.region.as_bytes());
        let group = hex::encode(&hash.finalize()[..12]);
        format!("{}:{group}:{}", self.job, self.tick.unix())
    }
}

/// Runs the jobs of one process. Cheap to clone; clones share the ЧЗ client.
#[derive(Debug, Clone)]
pub struct JobRunner {
    db: DatabaseConnection,
    cache: Cache,
    master: MasterKeys,
    client: TrueApiClient,
    settings: TruemarkSettings,
    reports: broadcast::Sender<RunReport>,
}

impl JobRunner {
    /// The database the runner works on.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The Redis connection the runner works with.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// A runner calling ЧЗ with the list and health time limits of `settings`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the HTTP client cannot be built.
    pub fn new(
        db: DatabaseConnection,
        cache: Cache,
        master: MasterKeys,
        settings: TruemarkSettings,
    ) -> Result<Self> {
        let timeouts = TrueApiTimeouts {
            codes_check: settings.check_timeout,
            cdn_info: settings.list_timeout,
            health_check: settings.health_timeout,
            ..TrueApiTimeouts::default()
        };
        let client = TrueApiClient::new(timeouts).map_err(Error::internal)?;
        let (reports, _) = broadcast::channel(64);
        Ok(Self {
            db,
            cache,
            master,
            client,
            settings,
            reports,
        })
    }

    pub fn settings(&self) -> &TruemarkSettings {
        &self.settings
    }

    /// The report of every group run this runner finishes from now on, for observers in the
    /// same process. A receiver that falls more than 64 reports behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<RunReport> {
        self.reports.subscribe()
    }

    /// The groups a tick of `job` covers: every group some tenant or store is configured for;
    /// for `recover`, only those with tenants in no-check mode.
    pub async fn groups(&self, job: Job) -> Result<Vec<CdnGroup>> {
        let groups = cdn::groups_in_use(&self.db).await?;
        if job != Job::Recover {
            return Ok(groups);
        }
        let mut waiting = Vec::new();
        for group in groups {
            if !modes::tenants_without_checks(&self.db, &group)
                .await?
                .is_empty()
            {
                waiting.push(group);
            }
        }
        Ok(waiting)
    }

    /// Fans out `tick` of `job`: the first caller on any replica hands one [`GroupRun`] per
    /// group to `enqueue` and records the tick; every other caller, and any caller once the tick
    /// is over, gets `None` and does nothing.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis or Postgres fail or `enqueue` does.
    pub async fn fan_out<T, F, Fut>(&self, job: Job, tick: Tick, enqueue: F) -> Result<Option<T>>
    where
        F: FnOnce(Vec<GroupRun>) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let interval = job.interval(&self.settings);
        if tick.is_over(interval, Utc::now()) {
            tracing::debug!(job = job.as_str(), tick = %tick, "tick is over");
            return Ok(None);
        }
        let key = self.cache.key(&format!("jobs:{job}:tick:{}", tick.unix()));
        let owner = Uuid::new_v4().to_string();
        if !self.claim(&key, &owner, interval).await? {
            tracing::debug!(job = job.as_str(), tick = %tick, "tick fanned out elsewhere");
            return Ok(None);
        }

        let started = Instant::now();
        runs::started(&self.db, job, None, tick).await?;
        let groups = self.groups(job).await?;
        let queued: Vec<GroupRun> = groups
            .iter()
            .map(|group| GroupRun::new(job, group, tick))
            .collect();
        let count = queued.len();
        let result = enqueue(queued).await;
        let (outcome, detail) = match &result {
            Ok(_) => (Outcome::Ok, format!("{count} groups")),
            Err(_) => {
                crate::metrics::job_failure(job, "fan_out");
                (Outcome::Failed, format!("{count} groups not handed over"))
            }
        };
        runs::finished(&self.db, job, None, outcome, &detail, started.elapsed()).await?;
        let duration_ms = millis(started.elapsed());
        // Most ticks of the accelerated refresh cover no group: those are not worth a line.
        if count == 0 && result.is_ok() {
            tracing::debug!(
                job = job.as_str(),
                tick = %tick,
                groups = count,
                duration_ms,
                "job tick"
            );
        } else {
            tracing::info!(
                job = job.as_str(),
                tick = %tick,
                groups = count,
                outcome = outcome.as_str(),
                duration_ms,
                "job tick"
            );
        }
        result.map(Some).map_err(Error::Unavailable)
    }

    /// Runs `job` for `group` at `tick`, unless someone else owns that run or the tick is over
    /// (`None`). `owner` names the caller across its retries: the same owner may run again (a
    /// retry), any other owner of the same job, group and tick gets `None` until the tick is over.
    ///
    /// ЧЗ failing is a report with [`Outcome::Failed`], not an error.
    ///
    /// # Errors
    /// When Postgres or Redis fail around the run (the lease, the group lock, the record); the
    /// caller may retry with the same `owner`.
    pub async fn run(
        &self,
        job: Job,
        group: &CdnGroup,
        tick: Tick,
        owner: &str,
    ) -> Result<Option<RunReport>> {
        let interval = job.interval(&self.settings);
        if tick.is_over(interval, Utc::now()) {
            tracing::info!(
                job = job.as_str(),
                cdn.group = %group,
                tick = %tick,
                "run superseded by a newer tick"
            );
            return Ok(None);
        }
        let key = self
            .cache
            .key(&format!("jobs:{job}:{}:{}", group.digest(), tick.unix()));
        if !self.claim(&key, owner, interval).await? {
            tracing::debug!(
                job = job.as_str(),
                cdn.group = %group,
                tick = %tick,
                "run owned elsewhere"
            );
            return Ok(None);
        }

        let lock = self.lock_group(group).await?;
        runs::started(&self.db, job, Some(group), tick).await?;
        let started = Instant::now();
        let verdict = match self.attempt(job, group).await {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::error!(
                    job = job.as_str(),
                    cdn.group = %group,
                    error.message = format!("{:#}", anyhow::Error::from(e)),
                    "job run failed"
                );
                Verdict::failed("internal error (see the worker's log)".to_owned(), true)
            }
        };
        let duration = started.elapsed();
        runs::finished(
            &self.db,
            job,
            Some(group),
            verdict.outcome,
            &verdict.detail,
            duration,
        )
        .await?;
        lock.commit().await?;

        let report = RunReport {
            job,
            group: group.clone(),
            tick,
            outcome: verdict.outcome,
            detail: verdict.detail,
            retryable: verdict.retryable,
            duration,
        };
        log(&report);
        crate::metrics::job_run(&report);
        // Nobody listening is the usual case, not an error.
        let _ = self.reports.send(report.clone());
        Ok(Some(report))
    }

    /// Runs `tick` of `job` now in this process: the fan-out, then every group's run at once.
    /// `None` when another caller has the tick. The worker's scheduler queues the same runs
    /// through Redis instead, for any replica to take.
    ///
    /// # Errors
    /// As [`Self::fan_out`] and [`Self::run`].
    pub async fn run_tick(&self, job: Job, tick: Tick) -> Result<Option<Vec<RunReport>>> {
        let owner = Uuid::new_v4().to_string();
        self.fan_out(job, tick, |queued| async move {
            let runs = queued.iter().map(|queued| async {
                let group = queued.group()?;
                self.run(job, &group, tick, &owner).await
            });
            let reports: Result<Vec<Option<RunReport>>> =
                join_all(runs).await.into_iter().collect();
            Ok(reports?.into_iter().flatten().collect())
        })
        .await
    }

    async fn claim(&self, key: &str, owner: &str, interval: Duration) -> Result<bool> {
        // The lease outlives the tick's whole window (see `Tick::is_over`), so a late duplicate
        // never finds it gone.
        lease::claim(&self.cache, key, owner, interval.saturating_mul(2))
            .await
            .map_err(|e| Error::Unavailable(e.into()))
    }

    /// Serialises the runs of every job on `group`, across replicas, until the returned
    /// transaction ends. Waiting is bounded by the longest a run may take.
    async fn lock_group(&self, group: &CdnGroup) -> Result<DatabaseTransaction> {
        let wait =
            self.settings.list_timeout + self.settings.health_timeout + Duration::from_secs(15);
        let txn = self.db.begin().await?;
        let backend = txn.get_database_backend();
        txn.execute_raw(Statement::from_string(
            backend,
            format!("SET LOCAL lock_timeout = {}", wait.as_millis()),
        ))
        .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [group_lock_id(group).into()],
        ))
        .await?;
        Ok(txn)
    }

    /// The refresh itself: one try, no retry.
    async fn attempt(&self, job: Job, group: &CdnGroup) -> Result<Verdict> {
        let waiting = if job == Job::Recover {
            let waiting = modes::tenants_without_checks(&self.db, group).await?.len();
            if waiting == 0 {
                return Ok(Verdict::skipped("no tenant is in no-check mode".to_owned()));
            }
            waiting
        } else {
            0
        };
        let keys = credentials::keys_for_group(&self.db, &self.master, group).await?;
        if keys.is_empty() {
            if !cdn::groups_in_use(&self.db).await?.contains(group) {
                return Ok(Verdict::skipped(
                    "no tenant uses this group any more".to_owned(),
                ));
            }
            return Ok(Verdict::failed(
                "no ЧЗ key of this group can be opened".to_owned(),
                false,
            ));
        }

        let fallback = &self.settings.fallback_hosts;
        let (db, cache, client) = (&self.db, &self.cache, &self.client);
        // One tenant's refused key must not stop the group's refresh: the next key is tried.
        for secret in &keys {
            let Ok(key) = TrueApiKey::new(secret.expose_secret()) else {
                continue;
            };
            let verdict = match job {
                Job::Discover => {
                    let report =
                        cdn::refresh(db, cache, client, group, &key, true, fallback).await?;
                    (!report.key_rejected).then(|| Verdict::discovered(&report))
                }
                Job::Rank => {
                    let report =
                        cdn::refresh(db, cache, client, group, &key, false, fallback).await?;
                    (!report.key_rejected).then(|| Verdict::ranked(&report))
                }
                Job::Recover => {
                    let (report, back) =
                        cdn::recover(db, cache, client, group, &key, fallback).await?;
                    (!report.key_rejected).then(|| Verdict::recovered(&report, waiting, back.len()))
                }
            };
            if let Some(verdict) = verdict {
                return Ok(verdict);
            }
        }
        Ok(Verdict::failed(
            format!("ЧЗ refused every key of this group ({} tried)", keys.len()),
            false,
        ))
    }
}

/// The lock id of `group` among Postgres' advisory locks.
fn group_lock_id(group: &CdnGroup) -> i64 {
    let hash = Sha256::digest(format!("imark:cdn-group:{}", group.digest()));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(bytes)
}

/// How a run went, before it is recorded.
struct Verdict {
    outcome: Outcome,
    detail: String,
    retryable: bool,
}

impl Verdict {
    fn new(outcome: Outcome, mut detail: String, retryable: bool) -> Self {
        if let Some((end, _)) = detail.char_indices().nth(DETAIL_MAX_CHARS) {
            detail.truncate(end);
        }
        Self {
            outcome,
            detail,
            retryable,
        }
    }

    fn ok(detail: String) -> Self {
        Self::new(Outcome::Ok, detail, false)
    }

    fn failed(detail: String, retryable: bool) -> Self {
        Self::new(Outcome::Failed, detail, retryable)
    }

    fn skipped(detail: String) -> Self {
        Self::new(Outcome::Skipped, detail, false)
    }

    fn discovered(report: &RefreshReport) -> Self {
        let checked = format!(
            "{} hosts listed, {} healthy, current {}",
            report.listed.len(),
            report.ranking.len(),
            current(report)
        );
        if report.discovered {
            Self::ok(checked)
        } else {
            Self::failed(
                format!(
                    "discovery failed ({}); {checked}",
                    discovery_failure(report)
                ),
                true,
            )
        }
    }

    fn ranked(report: &RefreshReport) -> Self {
        if report.listed.is_empty() {
            return Self::skipped("no hosts listed yet".to_owned());
        }
        let checked = format!(
            "{} of {} hosts healthy, current {}",
            report.ranking.len(),
            report.listed.len(),
            current(report)
        );
        if report.ranking.is_empty() {
            Self::failed(checked, true)
        } else {
            Self::ok(checked)
        }
    }

    fn recovered(report: &RefreshReport, waiting: usize, back: usize) -> Self {
        match report.current() {
            Some(host) => Self::ok(format!("{back} tenants back online via {host}")),
            // The next accelerated tick is the retry.
            None => Self::failed(
                format!(
                    "no healthy host among {}; {waiting} tenants stay in no-check mode",
                    report.listed.len()
                ),
                false,
            ),
        }
    }
}

fn current(report: &RefreshReport) -> String {
    report
        .current()
        .map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// Why discovery gave no list, from its exchange.
fn discovery_failure(report: &RefreshReport) -> String {
    let record = report
        .exchanges
        .iter()
        .find(|r| r.endpoint == Endpoint::CdnInfo);
    match record {
        Some(r) => match (&r.error, r.http_status) {
            (Some(error), _) => error.clone(),
            (None, Some(200)) => "no usable host in the answer".to_owned(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "no answer".to_owned(),
        },
        None => "not attempted".to_owned(),
    }
}

fn log(report: &RunReport) {
    let duration_ms = millis(report.duration);
    if report.outcome == Outcome::Failed {
        tracing::warn!(
            job = report.job.as_str(),
            cdn.group = %report.group,
            tick = %report.tick,
            outcome = report.outcome.as_str(),
            duration_ms,
            detail = %report.detail,
            "job run"
        );
    } else {
        tracing::info!(
            job = report.job.as_str(),
            cdn.group = %report.group,
            tick = %report.tick,
            outcome = report.outcome.as_str(),
            duration_ms,
            detail = %report.detail,
            "job run"
        );
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn ticks_are_multiples_of_the_interval_since_the_epoch() {
        let six_hours = Duration::from_secs(6 * 3600);
        let now = at("2026-12-03T13:45:10Z");

        assert_eq!(
            Tick::current(six_hours, now).at(),
            at("2026-12-03T12:00:00Z")
        );
        assert_eq!(Tick::next(six_hours, now).at(), at("2026-12-03T18:00:00Z"));
        assert_eq!(
            Tick::next(Duration::from_secs(90), now).at(),
            at("2026-12-03T13:46:30Z")
        );
    }

    #[test]
    fn a_tick_that_is_due_now_is_current_and_the_next_one_comes_an_interval_later() {
        let minute = Duration::from_secs(60);
        let now = at("2026-12-03T13:45:00Z");

        assert_eq!(Tick::current(minute, now).at(), now);
        assert_eq!(Tick::next(minute, now).at(), at("2026-12-03T13:46:00Z"));
    }

    #[test]
    fn a_tick_is_over_once_the_next_tick_has_passed_too() {
        let minute = Duration::from_secs(60);
        let tick = Tick::current(minute, at("2026-12-03T13:45:00Z"));

        assert!(!tick.is_over(minute, at("2026-12-03T13:46:59Z")));
        assert!(tick.is_over(minute, at("2026-12-03T13:47:00Z")));
    }

    #[test]
    fn jobs_read_back_from_their_names() {
        for job in Job::ALL {
            assert_eq!(job.as_str().parse::<Job>().unwrap(), job);
        }
        assert!("refresh".parse::<Job>().is_err());
    }

    #[test]
    fn a_group_run_has_the_same_key_on_every_replica() {
        let group = CdnGroup::new("https://cdn.crpt.ru".parse().unwrap(), "msk");
        let tick = Tick::from_unix(1_800_000_000);
        let run = GroupRun::new(Job::Discover, &group, tick);
        let queued: GroupRun = serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();

        assert_eq!(queued, run);
        assert_eq!(queued.key(), run.key());
        assert_eq!(run.key(), format!("discover:{}:1800000000", group.digest()));
        assert_eq!(queued.group().unwrap(), group);
    }
}
