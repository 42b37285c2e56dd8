//! iMark's background jobs: apalis around [`imark_core::jobs`].
//!
//! Each job (discover, rank, recover) has two apalis workers in every replica:
//!
//! - a scheduler (`apalis-cron` with [`Every`]) firing at the multiples of the job's interval
//!   since the Unix epoch, the same instants on every replica. On each tick it fans out one run
//!   per CDN group into the job's Redis queue: a lease on the tick lets one replica do it, and
//!   the queue drops a run it already holds for that tick;
//! - a queue worker (`apalis-redis`) taking those runs, any replica any run, a few at once. Each
//!   run takes a lease on its job, group and tick, so it happens once. A run that failed in a
//!   way worth retrying is retried with exponential backoff; its last try ends it for good.
//!
//! On start, each job's current tick is fired at once: a replica that starts after a tick was
//! missed catches up, and the leases refuse ticks another replica has run. On shutdown no run
//! and no retry starts, and running ones finish.

mod schedule;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff as _};
use apalis::layers::retry::{HasherRng, RetryPolicy};
use apalis::prelude::*;
use apalis_core::backend::Vacuum as _;
use apalis_cron::{CronScheduler, Tick as CronTick};
use apalis_redis::RedisStorage;
use chrono::Utc;
use imark_core::cache::Cache;
use imark_core::config::{Config, TruemarkSettings};
use imark_core::crypto::MasterKeys;
use imark_core::db;
use imark_core::jobs::{GroupRun, Job, JobRunner, Outcome, Tick};
use tokio::sync::Notify;
use uuid::Uuid;

pub use schedule::Every;

/// How long finished runs stay in Redis for inspection before the scheduler sweeps them.
const KEEP_FINISHED: Duration = Duration::from_secs(3600);

/// How the queue workers run; the defaults are production's.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Tries after the first, for a run that failed in a way worth retrying.
    pub retries: usize,
    /// The wait before the first retry; each next one doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Runs of one job at once in this process.
    pub concurrency: usize,
    /// How often an idle queue worker looks for runs.
    pub poll_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            retries: 2,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Connects, then runs the jobs until `shutdown` completes and the running runs have finished.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let worker = Worker::connect(&config, WorkerOptions::default()).await?;
    let _metrics = match config.metrics_addr {
        Some(addr) => Some(
            imark_core::metrics::Exporter::bind(addr)
                .await?
                .header_read_timeout(config.header_read_timeout)
                .spawn(),
        ),
        None => None,
    };
    worker.serve(shutdown).await
}

/// One process' jobs, connected and ready to serve.
#[derive(Debug, Clone)]
pub struct Worker {
    runner: JobRunner,
    queues: Queues,
    options: WorkerOptions,
    /// Tells this process' apalis workers from every other's: apalis-redis refuses a worker
    /// name it has seen in the last minutes, even one of a worker that stopped cleanly.
    instance: String,
    /// Months of evidence kept before their partitions are dropped.
    retention_months: u32,
}

impl Worker {
    /// Connects to Postgres and Redis and, when the configuration says so, migrates the
    /// database.
    ///
    /// # Errors
    /// When a connection, the migrations or the ЧЗ client fail.
    pub async fn connect(config: &Config, options: WorkerOptions) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url)
            .await
            .context("connecting to Postgres (IMARK_DATABASE_URL)")?;
        let cache = Cache::connect(&config.redis_url, config.redis_prefix.clone())
            .await
            .context("connecting to Redis (IMARK_REDIS_URL)")?;
        db.ping().await.context("pinging Postgres")?;
        cache.ping().await.context("pinging Redis")?;
        if config.migrate_on_start {
            db::migrate(&db).await.context("migrating the database")?;
        }

        let queues = Queues::new(&cache, &config.truemark);
        let master = MasterKeys::new(config.master_keys.clone());
        let runner = JobRunner::new(db, cache, master, config.truemark.clone())
            .context("building the job runner")?;
        Ok(Self {
            runner,
            queues,
            options,
            instance: instance_name(),
            retention_months: config.evidence_retention_months,
        })
    }

    pub fn runner(&self) -> &JobRunner {
        &self.runner
    }

    /// Fans out `tick` of `job` now into the job's queue: what the scheduler does when the
    /// tick comes. Returns how many group runs were queued, or `None` when the tick was
    /// already fanned out (by any replica) or is over.
    ///
    /// # Errors
    /// When Postgres or Redis fail.
    pub async fn fire(&self, job: Job, tick: Tick) -> anyhow::Result<Option<usize>> {
        let mut queue = self.queues.get(job);
        let queued = self
            .runner
            .fan_out(job, tick, |runs| async {
                let count = runs.len();
                for run in runs {
                    let key = run.key();
                    let task = TaskBuilder::new(run).idempotency_key(key).build();
                    queue.push_task(task).await?;
                }
                Ok(count)
            })
            .await?;
        if queued.is_some()
            && let Err(e) = queue.vacuum_before(KEEP_FINISHED).await
        {
            tracing::warn!(job = job.as_str(), error.message = %e, "finished runs not swept");
        }
        Ok(queued)
    }

    /// Runs every job's scheduler and queue worker until `shutdown` completes, then lets the
    /// running runs finish. Each job's current tick is fired first.
    ///
    /// # Errors
    /// When an apalis worker stops on an error of its backend (Redis unreachable for longer
    /// than the connection's retries).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        for job in Job::ALL {
            let tick = Tick::current(job.interval(self.runner.settings()), Utc::now());
            if let Err(e) = self.fire(job, tick).await {
                tracing::warn!(
                    job = job.as_str(),
                    error.message = format!("{e:#}"),
                    "catch-up tick not fired"
                );
            }
        }

        // A worker whose backend failed (Redis gone for longer than the connection's retries)
        // stops the others and the process, for its supervisor to restart it: apalis would
        // otherwise run on without that job until the next signal.
        let failed = Arc::new(Notify::new());
        let on_failure = Arc::clone(&failed);
        let mut monitor = Monitor::new().should_restart(move |worker, error| {
            tracing::error!(
                worker.name = worker.name(),
                error.message = %error,
                "job worker failed"
            );
            on_failure.notify_one();
            false
        });
        for job in Job::ALL {
            monitor = self.schedule(monitor, job);
            monitor = self.consume(monitor, job)?;
        }
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let counter = imark_core::metrics::is_installed()
            .then(|| tokio::spawn(count_modes(self.runner.db().clone(), stopping.clone())));
        let maintainer = tokio::spawn(maintain_evidence(
            self.runner.db().clone(),
            self.retention_months,
            stopping.clone(),
        ));
        let drainer = tokio::spawn(drain_evidence(
            self.runner.db().clone(),
            self.runner.cache().clone(),
            stopping,
        ));
        tracing::info!(worker.instance = %self.instance, "worker started");
        let served = monitor
            .run_with_signal(async move {
                tokio::select! {
                    () = shutdown => {}
                    () = failed.notified() => {}
                }
                let _ = stop.send(true);
                Ok(())
            })
            .await
            .context("running the job workers");
        if let Err(e) = maintainer.await {
            tracing::error!(error.message = %e, "the evidence maintenance ended abnormally");
        }
        if let Err(e) = drainer.await {
            tracing::error!(error.message = %e, "the evidence drain ended abnormally");
        }
        if let Some(counter) = counter
            && let Err(e) = counter.await
        {
            tracing::error!(error.message = %e, "the mode count ended abnormally");
        }
        served?;
        tracing::info!(worker.instance = %self.instance, "worker stopped");
        Ok(())
    }

    /// The scheduler of `job`: fires its ticks.
    fn schedule(&self, monitor: Monitor, job: Job) -> Monitor {
        let name = format!(
            "{}-{}",
            self.queues.name(job).replace(":queue:", ":ticks:"),
            self.instance
        );
        let interval = job.interval(self.runner.settings());
        let ticks = Ticks {
            worker: self.clone(),
            job,
        };
        monitor.register(move |_| {
            WorkerBuilder::new(name.clone())
                .backend(CronScheduler::new(Every::new(interval)))
                .data(ticks.clone())
                .build(on_tick)
        })
    }

    /// The queue worker of `job`: runs the queued group runs, retrying with backoff.
    fn consume(&self, monitor: Monitor, job: Job) -> anyhow::Result<Monitor> {
        let name = format!("{}-{}", self.queues.name(job), self.instance);
        let backoff = ExponentialBackoffMaker::new(
            self.options.first_backoff,
            self.options.max_backoff,
            0.5,
            HasherRng::default(),
        )
        .context("the retry backoff")?
        .make_backoff();
        let policy = RetryPolicy::retries(self.options.retries).with_backoff(backoff);
        let runs = Runs {
            runner: self.runner.clone(),
            retries: self.options.retries,
        };
        let queue = self.queues.get(job);
        let (concurrency, poll) = (self.options.concurrency, self.options.poll_interval);
        Ok(monitor.register(move |_| {
            WorkerBuilder::new(name.clone())
                // Without a poll interval an idle apalis-redis worker looks again only at its
                // next heartbeat, 30 s later.
                .backend(queue.clone().poll_with_interval(poll))
                .data(runs.clone())
                .concurrency(concurrency)
                .retry(policy.clone())
                .build(on_run)
        }))
    }
}

/// What a scheduler needs on each tick.
#[derive(Debug, Clone)]
struct Ticks {
    worker: Worker,
    job: Job,
}

/// Fans out a tick; a tick that could not be fanned out is lost, and the next one comes.
async fn on_tick(tick: CronTick<Utc>, ticks: Data<Ticks>) -> Result<(), BoxDynError> {
    let tick = Tick::from_unix(i64::try_from(tick.get_timestamp())?);
    if let Err(e) = ticks.worker.fire(ticks.job, tick).await {
        tracing::error!(
            job = ticks.job.as_str(),
            tick = %tick,
            error.message = format!("{e:#}"),
            "tick not fanned out"
        );
        return Err(e.into());
    }
    Ok(())
}

/// What a queue worker needs for each run.
#[derive(Debug, Clone)]
struct Runs {
    runner: JobRunner,
    retries: usize,
}

/// Runs one group's share of a tick. The task id owns the run's lease, so a retry of this task
/// runs again while a duplicate of it elsewhere does not.
async fn on_run(
    run: GroupRun,
    runs: Data<Runs>,
    id: TaskId,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let group = run.group().map_err(AbortError::new)?;
    let owner = id.to_string();
    let failure: BoxDynError = match runs.runner.run(run.job, &group, run.tick, &owner).await {
        Ok(Some(report)) if report.outcome == Outcome::Failed => {
            if !report.retryable {
                return Err(AbortError::new(report.detail).into());
            }
            report.detail.into()
        }
        Ok(_) => return Ok(()),
        Err(e) => {
            imark_core::metrics::job_failure(run.job, "record");
            tracing::error!(
                job = run.job.as_str(),
                cdn.group = %group,
                error.message = format!("{:#}", anyhow::Error::from(e)),
                "job run not recorded"
            );
            "Postgres or Redis failed around the run".into()
        }
    };
    // The last try ends the task: apalis-redis would queue a plainly failed task again, up to
    // 25 times, on top of the retries here.
    if attempt.current() > runs.retries {
        Err(AbortError::new(failure).into())
    } else {
        Err(failure)
    }
}

/// The Redis queue of each job's group runs.
#[derive(Debug, Clone)]
struct Queues {
    discover: RedisStorage<GroupRun>,
    rank: RedisStorage<GroupRun>,
    recover: RedisStorage<GroupRun>,
}

impl Queues {
    fn new(cache: &Cache, settings: &TruemarkSettings) -> Self {
        let queue = |job: Job| {
            let config = apalis_redis::Config::default()
                .queue(cache.key(&format!("queue:{job}")))
                // A run pushed again for the same tick (by another replica) is dropped while
                // the tick's window lasts.
                .idempotency_ttl(Some(job.interval(settings).saturating_mul(2)));
            RedisStorage::new(cache.connection()).with_config(config)
        };
        Self {
            discover: queue(Job::Discover),
            rank: queue(Job::Rank),
            recover: queue(Job::Recover),
        }
    }

    fn get(&self, job: Job) -> RedisStorage<GroupRun> {
        match job {
            Job::Discover => self.discover.clone(),
            Job::Rank => self.rank.clone(),
            Job::Recover => self.recover.clone(),
        }
    }

    fn name(&self, job: Job) -> String {
        self.get(job).get_config().queue.to_string()
    }
}

/// `{host}-{pid}-{random}`: unique to this process and to this `Worker` within it.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// How often the evidence tables get their coming months' partitions and lose the months past
/// retention.
const EVIDENCE_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// Keeps the evidence tables' monthly partitions made ahead and drops the months past
/// `retention_months`, until `stopping` turns true.
async fn maintain_evidence(
    db: sea_orm::DatabaseConnection,
    retention_months: u32,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(EVIDENCE_MAINTENANCE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopping.changed() => return,
        }
        let now = Utc::now();
        if let Err(e) = imark_core::audit::partitions::ensure(&db, now).await {
            tracing::warn!(error.message = %e, "evidence partitions not made");
        }
        match imark_core::audit::partitions::apply_retention(&db, now, retention_months).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(months = dropped.len(), "evidence past retention dropped");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error.message = %e, "evidence retention not applied"),
        }
    }
}

/// How often spooled evidence is written to Postgres.
const EVIDENCE_DRAIN_INTERVAL: Duration = Duration::from_secs(30);

/// Writes the ЧЗ evidence that a failed document write left in Redis, until `stopping` turns
/// true. Several replicas may drain at once: a row is written idempotently before it leaves the
/// spool.
async fn drain_evidence(
    db: sea_orm::DatabaseConnection,
    cache: Cache,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(EVIDENCE_DRAIN_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopping.changed() => return,
        }
        match imark_core::evidence::drain(&db, &cache, 1000).await {
            Ok(0) => {}
            Ok(written) => tracing::info!(written, "spooled evidence written"),
            Err(e) => tracing::warn!(error.message = %e, "spooled evidence not written yet"),
        }
    }
}

/// Keeps the gauge of tenants in no-check mode current, until `stopping` turns true. Counted
/// from Postgres, so every replica reports the same number whichever replica switched a mode.
async fn count_modes(
    db: sea_orm::DatabaseConnection,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(imark_core::metrics::MODES_COUNT_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopping.changed() => return,
        }
        if let Err(e) = imark_core::metrics::count_tenants_without_checks(&db).await {
            tracing::warn!(error.message = %e, "tenants in no-check mode not counted");
        }
    }
}
