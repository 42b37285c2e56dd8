//! CDN failover and the no-check mode, against the ЧЗ emulator: deterministic, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use imark_core::cache::Cache;
use imark_core::cdn::{self, CdnGroup, CheckVerdict, Failover};
use imark_core::config::TruemarkSettings;
use imark_core::modes::{self, Mode};
use truemark::client::{CdnHost, Endpoint, TrueApiKey};
use truemark::wire::CodesCheckRequest;
use truemark_sandbox::{
    DEFAULT_API_KEY, Fault, FaultTarget, Fixture, Sandbox, SandboxConfig, Service,
};
use uuid::Uuid;

use imark_tests::TestApp;

/// A valid code from the acceptance catalogue (case 5.10, a tobacco pack).
const CODE: &str = "04601653035829H;dV)bFABVUdGVz";

struct World {
    app: TestApp,
    sandbox: Sandbox,
    cache: Cache,
    failover: Failover,
    group: CdnGroup,
    tenant: Uuid,
    key: TrueApiKey,
}

async fn world(hosts: usize) -> World {
    let app = TestApp::spawn().await;
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        host_ports: vec![0; hosts],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (tenant, _) = app.create_tenant("Сеть").await;
    let cache = Cache::connect(&app.config.redis_url, app.config.redis_prefix.clone())
        .await
        .unwrap();
    let settings = TruemarkSettings {
        check_timeout: Duration::from_millis(400),
        no_check_timeout: Duration::from_millis(300),
        ..app.config.truemark.clone()
    };
    let failover = Failover::new(app.db.clone(), cache.clone(), settings).unwrap();
    let group = CdnGroup::new(sandbox.discovery_url().as_str().parse().unwrap(), "test");
    World {
        app,
        sandbox,
        cache,
        failover,
        group,
        tenant,
        key: TrueApiKey::new(DEFAULT_API_KEY).unwrap(),
    }
}

impl World {
    async fn refresh(&self) -> cdn::RefreshReport {
        cdn::refresh(
            &self.app.db,
            &self.cache,
            self.failover.client(),
            &self.group,
            &self.key,
            true,
            &[],
        )
        .await
        .unwrap()
    }

    async fn check(&self) -> cdn::CheckRun {
        let request = CodesCheckRequest::new(vec![CODE.to_owned()], "7281440500012345");
        self.failover
            .check(self.tenant, &self.group, &self.key, &request)
            .await
            .unwrap()
    }

    /// The emulator's index of `host`.
    fn index_of(&self, host: &CdnHost) -> usize {
        let urls: Vec<CdnHost> = self
            .sandbox
            .host_urls()
            .into_iter()
            .map(|u| u.as_str().parse().unwrap())
            .collect();
        urls.iter().position(|h| h == host).unwrap()
    }

    fn code_checks(&self, index: usize) -> u64 {
        self.sandbox
            .control()
            .stats()
            .host_calls(index, Endpoint::CodesCheck)
    }

    async fn mode(&self) -> Mode {
        modes::current(&self.app.db, self.tenant, &self.group)
            .await
            .unwrap()
    }
}

fn answered(run: &cdn::CheckRun) -> bool {
    matches!(run.verdict, CheckVerdict::Answered(_))
}

#[tokio::test]
async fn a_refresh_lists_checks_and_ranks_every_host() {
    let w = world(3).await;

    let report = w.refresh().await;
    let rows = cdn::hosts(&w.app.db, &w.group).await.unwrap();

    assert!(report.discovered);
    assert_eq!(report.listed.len(), 3);
    assert_eq!(report.ranking.len(), 3);
    assert_eq!(rows.iter().filter(|r| r.is_current).count(), 1);
    assert_eq!(rows[0].rank, Some(1));
    assert!(rows[0].is_current);
    assert!(
        rows.iter()
            .all(|r| r.measured_latency_ms.is_some() && r.last_checked_at.is_some())
    );
}

#[tokio::test]
async fn one_dead_host_does_not_stop_the_others_being_ranked() {
    let w = world(3).await;
    w.sandbox
        .control()
        .refuse_connections(Service::Host(1))
        .await
        .unwrap();

    let report = w.refresh().await;
    let dead: CdnHost = w.sandbox.host_urls()[1].as_str().parse().unwrap();

    assert_eq!(report.ranking.len(), 2);
    assert!(!report.ranking.contains(&dead));
    assert_eq!(report.health.iter().filter(|h| !h.healthy).count(), 1);
}

#[tokio::test]
async fn each_fault_on_the_current_host_moves_traffic_to_the_next_host() {
    let faults = [
        (
            "http 500",
            Fault::HttpStatus {
                status: 500,
                retry_after_secs: None,
            },
        ),
        (
            "http 502",
            Fault::HttpStatus {
                status: 502,
                retry_after_secs: None,
            },
        ),
        (
            "http 503",
            Fault::HttpStatus {
                status: 503,
                retry_after_secs: None,
            },
        ),
        (
            "http 504",
            Fault::HttpStatus {
                status: 504,
                retry_after_secs: None,
            },
        ),
        (
            "http 429",
            Fault::HttpStatus {
                status: 429,
                retry_after_secs: None,
            },
        ),
        ("never answers", Fault::NeverAnswer),
        ("slower than the attempt limit", Fault::Delay { ms: 5_000 }),
        ("malformed body", Fault::MalformedBody { body: None }),
        (
            "cross-border service down once",
            Fault::CrossBorderOutage { status: 500 },
        ),
    ];
    for (name, fault) in faults {
        let w = world(3).await;
        let current = w.refresh().await.current().cloned().unwrap();
        let dead = w.index_of(&current);
        w.sandbox
            .control()
            .set_fault(FaultTarget::host(dead).only(Endpoint::CodesCheck), &fault)
            .unwrap();

        let run = w.check().await;

        assert!(answered(&run), "{name}: {:?}", run.verdict);
        assert_ne!(run.host.as_ref(), Some(&current), "{name}");
        let retries = if name == "http 429" { 2 } else { 1 };
        assert_eq!(w.code_checks(dead), retries, "{name}");
        assert_eq!(run.exchanges.len() as u64, retries + 1, "{name}");
        assert_eq!(w.mode().await, Mode::Online, "{name}");
    }
}

#[tokio::test]
async fn refused_connections_on_the_current_host_move_traffic_to_the_next_host() {
    let w = world(3).await;
    let current = w.refresh().await.current().cloned().unwrap();
    let dead = w.index_of(&current);
    w.sandbox
        .control()
        .refuse_connections(Service::Host(dead))
        .await
        .unwrap();

    let run = w.check().await;

    assert!(answered(&run), "{:?}", run.verdict);
    assert_ne!(run.host.as_ref(), Some(&current));
    assert_eq!(run.exchanges.len(), 2);
}

#[tokio::test]
async fn after_a_host_dies_the_next_checks_go_straight_to_the_new_current_host() {
    let w = world(3).await;
    let current = w.refresh().await.current().cloned().unwrap();
    let dead = w.index_of(&current);
    w.sandbox
        .control()
        .set_fault(FaultTarget::host(dead), &Fault::NeverAnswer)
        .unwrap();

    let first = w.check().await;
    let second = w.check().await;
    let third = w.check().await;

    assert!(answered(&first) && answered(&second) && answered(&third));
    assert_eq!(
        first.exchanges.len(),
        2,
        "the first check pays one attempt limit"
    );
    assert_eq!(second.exchanges.len(), 1);
    assert_eq!(third.exchanges.len(), 1);
    assert_eq!(second.host, first.host);
    assert_eq!(
        w.code_checks(dead),
        1,
        "the dead host is skipped while blocked"
    );
    let rows = cdn::hosts(&w.app.db, &w.group).await.unwrap();
    let dead_row = rows.iter().find(|r| r.host == current.to_string()).unwrap();
    assert!(dead_row.unavailable_until.is_some());
    assert!(!dead_row.is_current);
    assert_eq!(rows.iter().filter(|r| r.is_current).count(), 1);
}

#[tokio::test]
async fn a_blocked_host_is_tried_again_once_its_block_expires() {
    let w = world(2).await;
    let current = w.refresh().await.current().cloned().unwrap();
    let dead = w.index_of(&current);
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::host(dead),
            &Fault::HttpStatus {
                status: 503,
                retry_after_secs: None,
            },
        )
        .unwrap();
    w.check().await;
    w.sandbox
        .control()
        .clear_fault(FaultTarget::host(dead))
        .unwrap();
    let other = 1 - dead;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::host(other),
            &Fault::HttpStatus {
                status: 503,
                retry_after_secs: None,
            },
        )
        .unwrap();

    // The block expires: what Redis' expiry and the stored time do on their own, done now.
    let mut redis = w.cache.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(w.cache.key("cdn:*:block:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut redis)
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &w.app.db,
        "UPDATE cdn_hosts SET unavailable_until = now() - interval '1 second'",
    )
    .await
    .unwrap();
    let run = w.check().await;

    assert!(answered(&run), "{:?}", run.verdict);
    assert_eq!(run.host.as_ref(), Some(&current));
    assert_eq!(w.code_checks(dead), 2);
}

#[tokio::test]
async fn when_every_host_dies_rediscovery_finds_the_new_hosts_within_the_request() {
    let w = world(2).await;
    w.refresh().await;
    let control = w.sandbox.control();
    for host in 0..2 {
        control
            .refuse_connections(Service::Host(host))
            .await
            .unwrap();
    }
    let (_, new_host) = control.add_host().await.unwrap();
    control.set_discovery_hosts(vec![new_host.to_string()]);

    let run = w.check().await;

    assert!(answered(&run), "{:?}", run.verdict);
    assert_eq!(
        run.host.as_ref().map(ToString::to_string),
        Some(new_host.as_str().trim_end_matches('/').to_owned())
    );
    assert_eq!(
        control.stats().cdn_info,
        2,
        "one refresh before, one rediscovery within"
    );
    assert!(
        run.exchanges
            .iter()
            .any(|e| e.endpoint == Endpoint::CdnInfo)
    );
    let rows = cdn::hosts(&w.app.db, &w.group).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.retired_at.is_some()).count(), 2);
    assert_eq!(w.mode().await, Mode::Online);
}

#[tokio::test]
async fn when_nothing_answers_the_tenant_enters_no_check_mode_with_its_evidence() {
    let w = world(2).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 504,
                retry_after_secs: None,
            },
        )
        .unwrap();
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::discovery(),
            &Fault::HttpStatus {
                status: 503,
                retry_after_secs: None,
            },
        )
        .unwrap();

    let run = w.check().await;
    let transitions = modes::transitions(&w.app.db, w.tenant).await.unwrap();

    assert!(
        matches!(run.verdict, CheckVerdict::NoAnswer),
        "{:?}",
        run.verdict
    );
    assert_eq!(run.mode, Mode::NoCheck);
    assert_eq!(w.mode().await, Mode::NoCheck);
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].from, Mode::Online);
    assert_eq!(transitions[0].to, Mode::NoCheck);
    assert_eq!(transitions[0].reason, "no_host_answered");
    let evidence = transitions[0].exchanges.as_array().unwrap();
    assert!(evidence.iter().filter(|e| e["http_status"] == 504).count() >= 2);
    assert!(
        evidence.iter().any(|e| e["endpoint"] == "cdn_info"),
        "the rediscovery is evidence too"
    );
}

#[tokio::test]
async fn the_accelerated_refresh_brings_the_tenant_back_and_both_transitions_are_kept() {
    let w = world(2).await;
    w.refresh().await;
    let control = w.sandbox.control();
    control.set_discovery_hosts(Vec::new());
    control
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 502,
                retry_after_secs: None,
            },
        )
        .unwrap();
    w.check().await;
    let offline = w.check().await;

    control.clear_fault(FaultTarget::every_host()).unwrap();
    control.reset_discovery_hosts();
    let (report, recovered) = cdn::recover(
        &w.app.db,
        &w.cache,
        w.failover.client(),
        &w.group,
        &w.key,
        &[],
    )
    .await
    .unwrap();
    let online = w.check().await;
    let transitions = modes::transitions(&w.app.db, w.tenant).await.unwrap();

    assert_eq!(offline.mode, Mode::NoCheck);
    assert_eq!(
        offline.exchanges.len(),
        1,
        "in no-check mode one short attempt is made"
    );
    assert_eq!(report.ranking.len(), 2);
    assert_eq!(recovered, vec![w.tenant]);
    assert_eq!(online.mode, Mode::Online);
    assert!(answered(&online));
    let steps: Vec<(Mode, Mode, &str)> = transitions
        .iter()
        .map(|t| (t.from, t.to, t.reason.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (Mode::Online, Mode::NoCheck, "no_host_answered"),
            (Mode::NoCheck, Mode::Online, "recovered"),
        ]
    );
    assert!(!transitions[1].exchanges.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_emergency_answer_means_no_check_mode_at_once() {
    let w = world(3).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 203,
                retry_after_secs: None,
            },
        )
        .unwrap();

    let run = w.check().await;

    assert!(
        matches!(run.verdict, CheckVerdict::Emergency),
        "{:?}",
        run.verdict
    );
    assert_eq!(run.exchanges.len(), 1, "an emergency is not a host failure");
    assert_eq!(w.mode().await, Mode::NoCheck);
    let transitions = modes::transitions(&w.app.db, w.tenant).await.unwrap();
    assert_eq!(transitions[0].reason, "emergency");
}

#[tokio::test]
async fn a_cross_border_outage_on_two_hosts_is_treated_as_an_emergency() {
    let w = world(3).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::CrossBorderOutage { status: 500 },
        )
        .unwrap();

    let run = w.check().await;

    assert!(
        matches!(run.verdict, CheckVerdict::Emergency),
        "{:?}",
        run.verdict
    );
    assert_eq!(run.exchanges.len(), 2);
    assert_eq!(w.mode().await, Mode::NoCheck);
}

#[tokio::test]
async fn a_wrong_key_is_a_configuration_error_without_failover_or_no_check_mode() {
    let mut w = world(3).await;
    w.refresh().await;
    w.key = TrueApiKey::new("not-the-tenants-key").unwrap();

    let run = w.check().await;
    let total: u64 = (0..3).map(|i| w.code_checks(i)).sum();

    assert!(
        matches!(run.verdict, CheckVerdict::Unauthorized),
        "{:?}",
        run.verdict
    );
    assert_eq!(total, 1);
    assert_eq!(w.mode().await, Mode::Online);
    let rows = cdn::hosts(&w.app.db, &w.group).await.unwrap();
    assert!(rows.iter().all(|r| r.unavailable_until.is_none()));
}

#[tokio::test]
async fn a_refusal_to_decide_is_an_answer_not_a_host_failure() {
    let w = world(3).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::NotProcessed {
                code: 1,
                description: Some("ошибка".into()),
            },
        )
        .unwrap();

    let run = w.check().await;

    assert!(
        matches!(run.verdict, CheckVerdict::Refused(_)),
        "{:?}",
        run.verdict
    );
    assert_eq!(run.exchanges.len(), 1);
    assert_eq!(w.mode().await, Mode::Online);
}

#[tokio::test]
async fn a_flushed_redis_is_rebuilt_from_postgres_and_checks_go_on() {
    let w = world(3).await;
    let current = w.refresh().await.current().cloned().unwrap();
    let mut redis = w.cache.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(w.cache.key("*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut redis)
        .await
        .unwrap();

    let run = w.check().await;
    let rebuilt: Option<String> = redis::cmd("GET")
        .arg(w.cache.key(&format!("cdn:{}:ranking", w.group.digest())))
        .query_async(&mut redis)
        .await
        .unwrap();

    assert!(answered(&run));
    assert_eq!(run.host.as_ref(), Some(&current));
    assert!(rebuilt.is_some_and(|r| r.contains(&current.to_string())));
}

#[tokio::test]
async fn concurrent_failures_flip_the_mode_exactly_once() {
    let w = world(2).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 203,
                retry_after_secs: None,
            },
        )
        .unwrap();

    let runs = futures::future::join_all((0..8).map(|_| w.check())).await;
    let transitions = modes::transitions(&w.app.db, w.tenant).await.unwrap();

    assert!(runs.iter().all(|r| r.mode == Mode::NoCheck));
    assert_eq!(transitions.len(), 1);
}

#[tokio::test]
async fn hosts_blocked_by_one_tenant_are_tried_again_for_another_once_they_prove_healthy() {
    let w = world(3).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host().only(Endpoint::CodesCheck),
            &Fault::HttpStatus {
                status: 504,
                retry_after_secs: None,
            },
        )
        .unwrap();
    let failed = w.check().await;
    w.sandbox
        .control()
        .clear_fault(FaultTarget::every_host())
        .unwrap();
    let (other, _) = w.app.create_tenant("Другая сеть").await;

    let request = CodesCheckRequest::new(vec![CODE.to_owned()], "7281440500012345");
    let run = w
        .failover
        .check(other, &w.group, &w.key, &request)
        .await
        .unwrap();

    assert!(matches!(failed.verdict, CheckVerdict::NoAnswer));
    assert!(answered(&run), "{:?}", run.verdict);
    assert_eq!(run.mode, Mode::Online);
    assert!(
        run.exchanges
            .iter()
            .any(|e| e.endpoint == Endpoint::CdnInfo)
    );
}

#[tokio::test]
async fn an_answer_in_no_check_mode_lifts_the_block_of_the_host_that_gave_it() {
    let w = world(1).await;
    w.refresh().await;
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::HttpStatus {
                status: 503,
                retry_after_secs: None,
            },
        )
        .unwrap();
    w.sandbox
        .control()
        .set_fault(
            FaultTarget::discovery(),
            &Fault::HttpStatus {
                status: 503,
                retry_after_secs: None,
            },
        )
        .unwrap();
    w.check().await;
    w.sandbox
        .control()
        .clear_fault(FaultTarget::every_host())
        .unwrap();

    let back = w.check().await;
    let after = w.check().await;

    assert_eq!(back.mode, Mode::Online);
    assert!(answered(&back));
    assert!(answered(&after), "{:?}", after.verdict);
    assert_eq!(
        after.exchanges.len(),
        1,
        "the host answers straight away, unblocked"
    );
}

#[tokio::test]
async fn a_refused_key_leaves_the_ranking_as_it_was() {
    let mut w = world(3).await;
    let before = w.refresh().await.ranking;
    w.key = TrueApiKey::new("another-tenants-wrong-key").unwrap();

    let report = w.refresh().await;
    let rows = cdn::hosts(&w.app.db, &w.group).await.unwrap();

    assert!(report.key_rejected);
    assert_eq!(
        rows.iter().filter(|r| r.rank.is_some()).count(),
        before.len()
    );
    assert_eq!(rows.iter().filter(|r| r.is_current).count(), 1);
}
