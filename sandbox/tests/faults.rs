//! Every fault the emulator acts out ends in the client outcome PROTOCOL.md §4 assigns to it,
//! on each endpoint where the fault applies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

mod common;

use common::*;
use std::time::Duration;
use truemark::client::{Endpoint, HostFailure, Outcome, OutcomeKind, Refusal, TrueApiClient};
use truemark_sandbox::{Fault, FaultTarget, Sandbox, Service};

/// The outcome kind of one call to `endpoint` (on host 0, or on the discovery service).
async fn call(client: &TrueApiClient, sandbox: &Sandbox, endpoint: Endpoint) -> Outcome<()> {
    let key = key();
    match endpoint {
        Endpoint::CdnInfo => client
            .cdn_info(&base(sandbox), &key)
            .await
            .outcome
            .map(drop),
        Endpoint::HealthCheck => client
            .health_check(&host(sandbox, 0), &key)
            .await
            .outcome
            .map(drop),
        Endpoint::CodesCheck => client
            .check_codes(&host(sandbox, 0), &key, &request(&[&code_of("5.2")]))
            .await
            .outcome
            .map(drop),
    }
}

fn target(endpoint: Endpoint) -> FaultTarget {
    match endpoint {
        Endpoint::CdnInfo => FaultTarget::discovery(),
        Endpoint::HealthCheck | Endpoint::CodesCheck => FaultTarget::host(0).only(endpoint),
    }
}

const ENDPOINTS: [Endpoint; 3] = [
    Endpoint::CdnInfo,
    Endpoint::HealthCheck,
    Endpoint::CodesCheck,
];

/// Sets `fault` on each endpoint in turn and checks the client's outcome there.
async fn expect_on_every_endpoint(fault: Fault, expected: Outcome<()>) {
    let sandbox = start_sandbox().await;
    let client = client();

    for endpoint in ENDPOINTS {
        sandbox
            .control()
            .set_fault(target(endpoint), &fault)
            .unwrap();

        let outcome = call(&client, &sandbox, endpoint).await;

        assert_eq!(outcome, expected, "{fault:?} on {endpoint}");
        sandbox.control().clear_fault(target(endpoint)).unwrap();
        assert_eq!(
            call(&client, &sandbox, endpoint).await,
            Outcome::Answered(())
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_healthy_emulator_answers_every_endpoint() {
    let sandbox = start_sandbox().await;
    let client = client();

    for endpoint in ENDPOINTS {
        assert_eq!(
            call(&client, &sandbox, endpoint).await,
            Outcome::Answered(()),
            "{endpoint}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_host_failures() {
    for status in [500, 502, 503, 504] {
        let fault = Fault::HttpStatus {
            status,
            retry_after_secs: None,
        };

        expect_on_every_endpoint(
            fault,
            Outcome::HostFailure(HostFailure::ServerError { status }),
        )
        .await;
    }
}

#[tokio::test]
async fn the_5000_answer_is_flagged_as_the_cross_border_outage() {
    let fault = Fault::CrossBorderOutage { status: 500 };

    expect_on_every_endpoint(
        fault,
        Outcome::HostFailure(HostFailure::CrossBorderServiceDown { status: 500 }),
    )
    .await;
}

#[tokio::test]
async fn the_cross_border_flag_is_what_callers_count() {
    let sandbox = start_sandbox().await;
    sandbox
        .control()
        .set_fault(
            FaultTarget::every_host(),
            &Fault::CrossBorderOutage { status: 503 },
        )
        .unwrap();

    let outcome = call(&client(), &sandbox, Endpoint::CodesCheck).await;

    let Outcome::HostFailure(failure) = outcome else {
        panic!("a host failure expected, got {outcome:?}");
    };
    assert!(failure.is_cross_border_outage());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn statuses_203_and_418_declare_an_emergency() {
    for status in [203, 418] {
        let fault = Fault::HttpStatus {
            status,
            retry_after_secs: None,
        };

        expect_on_every_endpoint(fault, Outcome::Emergency { status }).await;
    }
}

#[tokio::test]
async fn status_429_rate_limits_with_the_wait_the_host_names() {
    let with_wait = Fault::HttpStatus {
        status: 429,
        retry_after_secs: Some(3),
    };
    let without_wait = Fault::HttpStatus {
        status: 429,
        retry_after_secs: None,
    };

    expect_on_every_endpoint(
        with_wait,
        Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        },
    )
    .await;
    expect_on_every_endpoint(without_wait, Outcome::RateLimited { retry_after: None }).await;
}

#[tokio::test]
async fn a_nonzero_code_is_a_refusal_with_its_description() {
    let fault = Fault::NotProcessed {
        code: 3,
        description: Some("ГИС МТ занята".to_owned()),
    };

    expect_on_every_endpoint(
        fault,
        Outcome::Refused(Refusal {
            code: 3,
            description: Some("ГИС МТ занята".to_owned()),
            error_message: None,
        }),
    )
    .await;
}

#[tokio::test]
async fn a_malformed_body_is_a_host_failure() {
    for body in [
        None,
        Some("<html>502 Bad Gateway</html>".to_owned()),
        Some(String::new()),
    ] {
        let sandbox = start_sandbox().await;
        let client = client();

        for endpoint in ENDPOINTS {
            let fault = Fault::MalformedBody { body: body.clone() };
            sandbox
                .control()
                .set_fault(target(endpoint), &fault)
                .unwrap();

            let outcome = call(&client, &sandbox, endpoint).await;

            assert!(
                matches!(
                    outcome,
                    Outcome::HostFailure(HostFailure::MalformedBody { .. })
                ),
                "{body:?} on {endpoint}: {outcome:?}"
            );
        }
        sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn a_401_fault_is_unauthorized() {
    let fault = Fault::HttpStatus {
        status: 401,
        retry_after_secs: None,
    };

    expect_on_every_endpoint(fault, Outcome::Unauthorized).await;
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_everywhere() {
    let sandbox = start_sandbox().await;
    let client = client();
    let wrong = wrong_key();

    let list = client.cdn_info(&base(&sandbox), &wrong).await;
    let health = client.health_check(&host(&sandbox, 0), &wrong).await;
    let check = client
        .check_codes(&host(&sandbox, 0), &wrong, &request(&[&code_of("5.2")]))
        .await;

    assert_eq!(list.outcome.kind(), OutcomeKind::Unauthorized);
    assert_eq!(health.outcome.kind(), OutcomeKind::Unauthorized);
    assert_eq!(check.outcome.kind(), OutcomeKind::Unauthorized);
    assert_eq!(check.record.http_status, Some(401));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure_until_connections_are_accepted() {
    let sandbox = start_sandbox().await;
    let client = client();

    for (service, endpoint) in [
        (Service::Discovery, Endpoint::CdnInfo),
        (Service::Host(0), Endpoint::HealthCheck),
        (Service::Host(0), Endpoint::CodesCheck),
    ] {
        sandbox.control().refuse_connections(service).await.unwrap();

        let refused = call(&client, &sandbox, endpoint).await;

        assert!(
            matches!(refused, Outcome::HostFailure(HostFailure::Connect { .. })),
            "{endpoint}: {refused:?}"
        );
        sandbox.control().accept_connections(service).await.unwrap();
        assert_eq!(
            call(&client, &sandbox, endpoint).await,
            Outcome::Answered(())
        );
    }
    let stats = sandbox.control().stats();
    assert_eq!(stats.cdn_info, 1, "refused calls never arrive");
    assert_eq!(stats.host_calls(0, Endpoint::CodesCheck), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_host_that_never_answers_times_out_after_the_request_arrived() {
    let sandbox = start_sandbox().await;
    let client = impatient_client();
    sandbox
        .control()
        .set_fault(
            FaultTarget::host(0).only(Endpoint::CodesCheck),
            &Fault::NeverAnswer,
        )
        .unwrap();

    let check = request(&[&code_of("5.2")]);
    let host = host(&sandbox, 0);
    let key = key();
    let (exchange, _) = tokio::join!(
        client.check_codes(&host, &key, &check),
        sandbox
            .control()
            .wait_for_host_calls(0, Endpoint::CodesCheck, 1),
    );

    assert_eq!(exchange.outcome, Outcome::TimedOut { after: SHORT_LIMIT });
    assert_eq!(exchange.record.http_status, None);
    assert!(exchange.record.error.is_some());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn never_answering_times_out_on_every_endpoint() {
    let sandbox = start_sandbox().await;
    let client = impatient_client();

    for endpoint in ENDPOINTS {
        sandbox
            .control()
            .set_fault(target(endpoint), &Fault::NeverAnswer)
            .unwrap();

        let outcome = call(&client, &sandbox, endpoint).await;

        assert_eq!(
            outcome,
            Outcome::TimedOut { after: SHORT_LIMIT },
            "{endpoint}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_delay_beyond_the_limit_times_out() {
    let sandbox = start_sandbox().await;
    let client = impatient_client();
    let an_hour = Fault::Delay { ms: 3_600_000 };

    for endpoint in ENDPOINTS {
        sandbox
            .control()
            .set_fault(target(endpoint), &an_hour)
            .unwrap();

        let outcome = call(&client, &sandbox, endpoint).await;

        assert_eq!(
            outcome,
            Outcome::TimedOut { after: SHORT_LIMIT },
            "{endpoint}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_delay_within_the_limit_is_still_answered() {
    let sandbox = start_sandbox().await;
    let client = client();
    let slight = Fault::Delay { ms: 10 };

    for endpoint in ENDPOINTS {
        sandbox
            .control()
            .set_fault(target(endpoint), &slight)
            .unwrap();

        assert_eq!(
            call(&client, &sandbox, endpoint).await,
            Outcome::Answered(()),
            "{endpoint}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_delayed_health_check_reports_its_delay_as_average_time() {
    let sandbox = start_sandbox().await;
    sandbox
        .control()
        .set_fault(
            FaultTarget::host(0).only(Endpoint::HealthCheck),
            &Fault::Delay { ms: 25 },
        )
        .unwrap();

    let exchange = client().health_check(&host(&sandbox, 0), &key()).await;

    let health = exchange.outcome.answer().expect("answered");
    assert_eq!(health.avg_time(), Some(Duration::from_millis(25)));
    assert!(exchange.record.duration >= Duration::from_millis(25));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_fault_on_one_endpoint_leaves_the_other_alone() {
    let sandbox = start_sandbox().await;
    let client = client();
    let fault = Fault::HttpStatus {
        status: 503,
        retry_after_secs: None,
    };
    sandbox
        .control()
        .set_fault(FaultTarget::host(0).only(Endpoint::CodesCheck), &fault)
        .unwrap();

    let health = call(&client, &sandbox, Endpoint::HealthCheck).await;
    let check = call(&client, &sandbox, Endpoint::CodesCheck).await;

    assert_eq!(health, Outcome::Answered(()));
    assert_eq!(
        check,
        Outcome::HostFailure(HostFailure::ServerError { status: 503 })
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_fault_on_every_host_fails_every_host() {
    let sandbox = start_sandbox().await;
    let client = client();
    let fault = Fault::HttpStatus {
        status: 502,
        retry_after_secs: None,
    };
    sandbox
        .control()
        .set_fault(FaultTarget::every_host(), &fault)
        .unwrap();

    for host in hosts(&sandbox) {
        let health = client.health_check(&host, &key()).await;

        assert_eq!(
            health.outcome.kind(),
            OutcomeKind::HostFailure,
            "{host}: {:?}",
            health.outcome
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_fixture_row_can_fail_one_host_only() {
    let fixture = truemark_sandbox::Fixture::parse(
        "case\tcode\tstate\nx\tCODE-X\thttp=502 on host 1\n",
        "inline",
    )
    .unwrap();
    let sandbox = start_sandbox_with(fixture).await;
    let client = client();
    let check = request(&["CODE-X"]);

    let on_host_0 = client.check_codes(&host(&sandbox, 0), &key(), &check).await;
    let on_host_1 = client.check_codes(&host(&sandbox, 1), &key(), &check).await;

    assert_eq!(on_host_0.outcome.kind(), OutcomeKind::Answered);
    assert_eq!(
        on_host_1.outcome,
        Outcome::HostFailure(HostFailure::ServerError { status: 502 })
    );
    sandbox.shutdown().await;
}
