//! The worker's jobs against the ЧЗ emulator, real Postgres and Redis: several replicas at once,
//! failures, recovery and shutdown. Deterministic, no sleeps: the tests wait on the emulator's
//! counters and on the runners' reports.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use imark_core::cache::Cache;
use imark_core::cdn::CdnGroup;
use imark_core::crypto::MasterKeys;
use imark_core::jobs::{self, Job, JobRun, JobRunner, Outcome, RunReport, Tick};
use imark_core::modes::{self, Mode, Reason};
use imark_worker::{Worker, WorkerOptions};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use truemark_sandbox::{Fault, FaultTarget, Fixture, Sandbox, SandboxConfig};
use uuid::Uuid;

use imark_tests::TestApp;

/// Longer than any run here; only a broken test waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// The API with the longest intervals the settings allow, so that no scheduled tick fires, and
/// no tick ends, while a test runs.
async fn spawn_app() -> TestApp {
    TestApp::spawn_with(|vars| {
        for (var, seconds) in [
            ("IMARK_CDN_REFRESH_SECONDS", "604800"),
            ("IMARK_CDN_HEALTH_SECONDS", "86400"),
            ("IMARK_CDN_ACCELERATED_SECONDS", "3600"),
        ] {
            vars.insert(var.to_owned(), seconds.to_owned());
        }
    })
    .await
}

async fn start_sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        host_ports: vec![0; 2],
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// A tenant whose ЧЗ settings point at `sandbox` for `region`, and the group that makes.
async fn configure(app: &TestApp, sandbox: &Sandbox, region: &str) -> (Uuid, CdnGroup) {
    let (tenant, hq_key) = app.create_tenant(&format!("Сеть {region}")).await;
    let hq = app.token(&hq_key).await;
    app.point_at_sandbox(&hq, sandbox, region).await;
    let group = CdnGroup::new(sandbox.discovery_url().as_str().parse().unwrap(), region);
    (tenant, group)
}

struct World {
    app: TestApp,
    sandbox: Sandbox,
    tenant: Uuid,
    group: CdnGroup,
}

async fn world() -> World {
    let app = spawn_app().await;
    let sandbox = start_sandbox().await;
    let (tenant, group) = configure(&app, &sandbox, "test").await;
    World {
        app,
        sandbox,
        tenant,
        group,
    }
}

/// A runner with connections of its own, as another replica would have.
async fn replica(app: &TestApp) -> JobRunner {
    let db = imark_core::db::connect(&app.config.database_url)
        .await
        .unwrap();
    let cache = Cache::connect(&app.config.redis_url, app.config.redis_prefix.clone())
        .await
        .unwrap();
    let master = MasterKeys::new(app.config.master_keys.clone());
    JobRunner::new(db, cache, master, app.config.truemark.clone()).unwrap()
}

/// Production's options, with retries quick enough for a test.
fn options() -> WorkerOptions {
    WorkerOptions {
        retries: 2,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        poll_interval: Duration::from_millis(100),
        ..WorkerOptions::default()
    }
}

fn current(app: &TestApp, job: Job) -> Tick {
    Tick::current(job.interval(&app.config.truemark), Utc::now())
}

/// Serves `worker` until the returned sender is used or dropped.
fn serve(worker: Worker) -> (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(worker.serve(async {
        let _ = stopped.await;
    }));
    (stop, serving)
}

async fn stop(worker: (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)) {
    let (stop, serving) = worker;
    stop.send(()).unwrap();
    patiently(serving).await.unwrap().unwrap();
}

async fn patiently<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("the awaited event happens")
}

/// Reports from any of `receivers` until `done` says enough.
async fn reports_until(
    receivers: &mut [broadcast::Receiver<RunReport>],
    mut done: impl FnMut(&[RunReport]) -> bool,
) -> Vec<RunReport> {
    let mut seen = Vec::new();
    patiently(async {
        while !done(&seen) {
            let next =
                futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.recv())));
            seen.push(next.await.0.unwrap());
        }
    })
    .await;
    seen
}

fn count(reports: &[RunReport], job: Job, group: &CdnGroup, outcome: Outcome) -> usize {
    reports
        .iter()
        .filter(|r| r.job == job && r.group == *group && r.outcome == outcome)
        .count()
}

/// The recorded last run of `job` for `group`, or of the job's tick when `group` is `None`.
async fn recorded(app: &TestApp, job: Job, group: Option<&CdnGroup>) -> JobRun {
    jobs::last_runs(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|run| {
            run.job == job
                && run.base_url.as_deref() == group.map(CdnGroup::base_key)
                && run.region.as_deref() == group.map(CdnGroup::region)
        })
        .expect("the run is recorded")
}

/// How many runs of `job` wait in its Redis queue: `[queued now, queued for later]`.
async fn waiting(app: &TestApp, job: Job) -> [u64; 2] {
    let cache = Cache::connect(&app.config.redis_url, app.config.redis_prefix.clone())
        .await
        .unwrap();
    let queue = cache.key(&format!("queue:{job}"));
    let mut redis = cache.connection();
    let now: u64 = redis::cmd("LLEN")
        .arg(format!("{queue}:active"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let later: u64 = redis::cmd("ZCARD")
        .arg(format!("{queue}:scheduled"))
        .query_async(&mut redis)
        .await
        .unwrap();
    [now, later]
}

// Two threads, so that the replicas really race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_running_the_same_tick_refresh_each_group_once() {
    let w = world().await;
    let (a, b) = (replica(&w.app).await, replica(&w.app).await);
    let tick = current(&w.app, Job::Discover);

    let (first, second) = tokio::join!(
        a.run_tick(Job::Discover, tick),
        b.run_tick(Job::Discover, tick)
    );
    let (first, second) = (first.unwrap(), second.unwrap());

    assert!(
        first.is_some() != second.is_some(),
        "exactly one replica fans out the tick"
    );
    let reports = first.or(second).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Outcome::Ok, "{}", reports[0].detail);
    assert_eq!(w.sandbox.control().stats().cdn_info, 1);
    let run = recorded(&w.app, Job::Discover, Some(&w.group)).await;
    assert_eq!(run.run_count, 1);
    assert_eq!(run.outcome, Some(Outcome::Ok));
    assert!(run.last_finished_at >= Some(run.last_started_at));
    assert_eq!(run.last_tick, tick.at());
    assert_eq!(recorded(&w.app, Job::Discover, None).await.run_count, 1);
}

// Two threads, so that the replicas really race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_run_claimed_by_two_owners_at_once_runs_once_and_only_its_owner_may_retry_it() {
    let w = world().await;
    let (a, b) = (replica(&w.app).await, replica(&w.app).await);
    let tick = current(&w.app, Job::Discover);

    let (first, second) = tokio::join!(
        a.run(Job::Discover, &w.group, tick, "task-a"),
        b.run(Job::Discover, &w.group, tick, "task-b")
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let calls_at_once = w.sandbox.control().stats().cdn_info;
    let (winner, owner, loser) = if first.is_some() {
        (&a, "task-a", &b)
    } else {
        (&b, "task-b", &a)
    };
    let retry = winner
        .run(Job::Discover, &w.group, tick, owner)
        .await
        .unwrap();
    let intruder = loser
        .run(Job::Discover, &w.group, tick, "task-c")
        .await
        .unwrap();

    assert!(first.is_some() != second.is_some());
    assert_eq!(calls_at_once, 1);
    assert!(retry.is_some(), "the owner's retry runs");
    assert!(intruder.is_none());
    assert_eq!(w.sandbox.control().stats().cdn_info, 2);
    assert_eq!(
        recorded(&w.app, Job::Discover, Some(&w.group))
            .await
            .run_count,
        2
    );
}

#[tokio::test]
async fn a_rank_waits_for_the_discovery_running_on_its_group() {
    let w = world().await;
    let (a, b) = (replica(&w.app).await, replica(&w.app).await);
    let (group, discover, rank) = (
        w.group.clone(),
        current(&w.app, Job::Discover),
        current(&w.app, Job::Rank),
    );
    w.sandbox
        .control()
        .set_fault(FaultTarget::discovery(), &Fault::Delay { ms: 300 })
        .unwrap();

    let discovering =
        tokio::spawn(async move { a.run(Job::Discover, &group, discover, "task-a").await });
    // The discovery holds the group from before its first call to ЧЗ until it is recorded.
    patiently(w.sandbox.control().wait_for_stats(|s| s.cdn_info >= 1)).await;
    let ranked = b
        .run(Job::Rank, &w.group, rank, "task-b")
        .await
        .unwrap()
        .unwrap();
    let discovered = discovering.await.unwrap().unwrap().unwrap();

    assert_eq!(discovered.outcome, Outcome::Ok, "{}", discovered.detail);
    assert_eq!(
        ranked.outcome,
        Outcome::Ok,
        "the rank saw the hosts the discovery listed: {}",
        ranked.detail
    );
    assert!(
        ranked.detail.starts_with("2 of 2 hosts healthy"),
        "{}",
        ranked.detail
    );
}

// Two threads, so that the replicas really race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_instances_at_once_never_double_process_a_refresh() {
    let w = world().await;
    let a = Worker::connect(&w.app.config, options()).await.unwrap();
    let b = Worker::connect(&w.app.config, options()).await.unwrap();
    let mut receivers = [a.runner().subscribe(), b.runner().subscribe()];
    let tick = current(&w.app, Job::Discover);

    // Each instance fires its current ticks as it starts; firing the same tick again on both is
    // what two schedulers do when it comes.
    let (serving_a, serving_b) = (serve(a.clone()), serve(b.clone()));
    let (fired_a, fired_b) = tokio::join!(a.fire(Job::Discover, tick), b.fire(Job::Discover, tick));
    fired_a.unwrap();
    fired_b.unwrap();
    let reports = reports_until(&mut receivers, |seen| {
        count(seen, Job::Discover, &w.group, Outcome::Ok) == 1
    })
    .await;
    tokio::join!(stop(serving_a), stop(serving_b));

    assert_eq!(reports.iter().filter(|r| r.job == Job::Discover).count(), 1);
    assert_eq!(w.sandbox.control().stats().cdn_info, 1);
    let run = recorded(&w.app, Job::Discover, Some(&w.group)).await;
    assert_eq!(run.run_count, 1);
    assert_eq!(run.outcome, Some(Outcome::Ok));
    assert_eq!(recorded(&w.app, Job::Discover, None).await.run_count, 1);
    assert_eq!(
        waiting(&w.app, Job::Discover).await,
        [0, 0],
        "no copy left to run"
    );
}

#[tokio::test]
async fn a_group_whose_discovery_fails_is_retried_then_recorded_failed_without_stopping_the_others()
{
    let app = spawn_app().await;
    let (healthy, broken) = (start_sandbox().await, start_sandbox().await);
    let (_, good) = configure(&app, &healthy, "a").await;
    let (_, bad) = configure(&app, &broken, "b").await;
    let refusal = Fault::HttpStatus {
        status: 503,
        retry_after_secs: None,
    };
    broken
        .control()
        .set_fault(FaultTarget::discovery(), &refusal)
        .unwrap();
    let worker = Worker::connect(&app.config, options()).await.unwrap();
    let mut receivers = [worker.runner().subscribe()];

    // The discover tick is fired as the worker starts.
    let serving = serve(worker);
    let reports = reports_until(&mut receivers, |seen| {
        count(seen, Job::Discover, &good, Outcome::Ok) == 1
            && count(seen, Job::Discover, &bad, Outcome::Failed) == 3
    })
    .await;
    stop(serving).await;

    assert!(
        reports
            .iter()
            .filter(|r| r.job == Job::Discover && r.group == bad)
            .all(|r| r.retryable)
    );
    assert_eq!(
        broken.control().stats().cdn_info,
        3,
        "one try and two retries"
    );
    let failed = recorded(&app, Job::Discover, Some(&bad)).await;
    assert_eq!(failed.outcome, Some(Outcome::Failed));
    assert_eq!(failed.run_count, 3);
    assert!(
        failed.detail.as_deref().unwrap().contains("HTTP 503"),
        "{:?}",
        failed.detail
    );
    assert_eq!(healthy.control().stats().cdn_info, 1);
    let ok = recorded(&app, Job::Discover, Some(&good)).await;
    assert_eq!(ok.outcome, Some(Outcome::Ok));
    assert_eq!(ok.run_count, 1);
    assert_eq!(
        waiting(&app, Job::Discover).await,
        [0, 0],
        "the failed run ended instead of being queued again"
    );
}

#[tokio::test]
async fn the_recover_job_brings_no_check_tenants_back_once_a_healthy_host_appears() {
    let w = world().await;
    let runner = replica(&w.app).await;
    let discover = current(&w.app, Job::Discover);
    runner.run_tick(Job::Discover, discover).await.unwrap();
    let interval = Job::Recover.interval(&w.app.config.truemark);
    let first = current(&w.app, Job::Recover);
    let (second, third) = (
        first.following(interval),
        first.following(interval).following(interval),
    );

    let nobody_waits = runner.run_tick(Job::Recover, first).await.unwrap().unwrap();
    modes::switch(
        &w.app.db,
        w.tenant,
        &w.group,
        Mode::NoCheck,
        Reason::NoHostAnswered,
        &[],
    )
    .await
    .unwrap();
    let every_host = FaultTarget::every_host();
    let unavailable = Fault::HttpStatus {
        status: 503,
        retry_after_secs: None,
    };
    w.sandbox
        .control()
        .set_fault(every_host, &unavailable)
        .unwrap();
    let still_down = runner
        .run_tick(Job::Recover, second)
        .await
        .unwrap()
        .unwrap();
    let mode_while_down = modes::current(&w.app.db, w.tenant, &w.group).await.unwrap();
    w.sandbox.control().clear_fault(every_host).unwrap();
    let back = runner.run_tick(Job::Recover, third).await.unwrap().unwrap();

    assert!(
        nobody_waits.is_empty(),
        "no group has tenants in no-check mode"
    );
    assert_eq!(still_down.len(), 1);
    assert_eq!(still_down[0].outcome, Outcome::Failed);
    assert_eq!(mode_while_down, Mode::NoCheck);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].outcome, Outcome::Ok, "{}", back[0].detail);
    assert_eq!(
        modes::current(&w.app.db, w.tenant, &w.group).await.unwrap(),
        Mode::Online
    );
    let transitions = modes::transitions(&w.app.db, w.tenant).await.unwrap();
    let last = transitions.last().unwrap();
    assert_eq!(
        (last.from, last.to, last.reason.as_str()),
        (Mode::NoCheck, Mode::Online, "recovered")
    );
    let run = recorded(&w.app, Job::Recover, Some(&w.group)).await;
    assert_eq!(run.outcome, Some(Outcome::Ok));
    assert_eq!(run.run_count, 2);
}

#[tokio::test]
async fn on_shutdown_the_worker_lets_its_running_refresh_finish_and_returns() {
    let w = world().await;
    w.sandbox
        .control()
        .set_fault(FaultTarget::discovery(), &Fault::Delay { ms: 300 })
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();

    let running = tokio::spawn(imark_worker::run(w.app.config.clone(), async {
        let _ = stopped.await;
    }));
    // The discover tick fired at start is now held by the emulator.
    patiently(w.sandbox.control().wait_for_stats(|s| s.cdn_info >= 1)).await;
    stop.send(()).unwrap();
    let result = patiently(running).await.unwrap();

    assert!(result.is_ok(), "{result:?}");
    let run = recorded(&w.app, Job::Discover, Some(&w.group)).await;
    assert_eq!(run.outcome, Some(Outcome::Ok), "{:?}", run.detail);
    assert_eq!(run.run_count, 1);
    assert!(run.last_finished_at >= Some(run.last_started_at));
}
