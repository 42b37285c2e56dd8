//! The True API as the emulator serves it: the discovery service and the CDN hosts.
//!
//! Every request goes through the same steps: it is counted, the service's fault (if any) is
//! acted out, the key is checked, and only then is it answered.

use crate::answers::checked_code;
use crate::fault::{Fault, FaultEffect, json_answer, status_answer};
use crate::stats::CallSite;
use crate::world::{CheckPlan, Service, World};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use truemark::client::Endpoint;
use truemark::wire::{
    CdnHostEntry, CdnInfoAnswer, CodesCheckAnswer, CodesCheckRequest, HealthCheckAnswer,
};

/// `avgTimeMs` of a host with no delay set on its health check.
const NOMINAL_AVG_TIME_MS: u64 = 1;

/// The discovery service: `GET /api/v4/true-api/cdn/info`.
pub(crate) fn discovery_router(world: Arc<World>) -> Router {
    Router::new()
        .route(Endpoint::CdnInfo.path(), get(cdn_info))
        .fallback(no_such_endpoint)
        .layer(TraceLayer::new_for_http())
        .with_state(world)
}

/// One CDN host: its health check and code check.
pub(crate) fn host_router(world: Arc<World>, index: usize) -> Router {
    Router::new()
        .route(Endpoint::HealthCheck.path(), get(health_check))
        .route(Endpoint::CodesCheck.path(), post(codes_check))
        .fallback(no_such_endpoint)
        .layer(TraceLayer::new_for_http())
        .with_state(HostContext { world, index })
}

#[derive(Debug, Clone)]
struct HostContext {
    world: Arc<World>,
    index: usize,
}

async fn cdn_info(State(world): State<Arc<World>>, headers: HeaderMap) -> Response {
    if let Some(answer) = admit(&world, Service::Discovery, Endpoint::CdnInfo, &headers).await {
        return answer;
    }

    let hosts = world
        .listed_hosts()
        .into_iter()
        .map(CdnHostEntry::new)
        .collect();
    json_ok(&CdnInfoAnswer {
        code: Some(0),
        description: Some("ok".to_owned()),
        hosts: Some(hosts),
        ..CdnInfoAnswer::default()
    })
}

async fn health_check(State(host): State<HostContext>, headers: HeaderMap) -> Response {
    let service = Service::Host(host.index);
    if let Some(answer) = admit(&host.world, service, Endpoint::HealthCheck, &headers).await {
        return answer;
    }

    // A host made slow on purpose says so, as a real slow host's average would.
    let avg_time_ms = match host.world.fault(service, Endpoint::HealthCheck) {
        Some(Fault::Delay { ms }) => ms,
        _ => NOMINAL_AVG_TIME_MS,
    };
    json_ok(&HealthCheckAnswer {
        code: Some(0),
        description: Some("ok".to_owned()),
        avg_time_ms: Some(avg_time_ms.into()),
        ..HealthCheckAnswer::default()
    })
}

async fn codes_check(State(host): State<HostContext>, headers: HeaderMap, body: Bytes) -> Response {
    let service = Service::Host(host.index);
    if let Some(answer) = admit(&host.world, service, Endpoint::CodesCheck, &headers).await {
        return answer;
    }
    let request = match serde_json::from_slice::<CodesCheckRequest>(&body) {
        Ok(request) if !request.codes.is_empty() => request,
        Ok(_) => return bad_request("`codes` is empty"),
        Err(error) => return bad_request(&format!("not a codes/check request: {error}")),
    };

    let plan = host.world.plan_check(&request.codes, host.index);
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = plan.status {
        return status_answer(status, None);
    }
    answer_codes(&host.world, &plan)
}

/// Counts the request, acts out the service's fault and checks the key. Returns the answer
/// that ends the request there, if one does.
async fn admit(
    world: &World,
    service: Service,
    endpoint: Endpoint,
    headers: &HeaderMap,
) -> Option<Response> {
    world.calls.count(match service {
        Service::Discovery => CallSite::Discovery,
        Service::Host(index) => CallSite::Host(index, endpoint),
    });

    if let Some(fault) = world.fault(service, endpoint) {
        match fault.effect() {
            FaultEffect::Hang => return std::future::pending().await,
            FaultEffect::Wait(delay) => tokio::time::sleep(delay).await,
            FaultEffect::Answer(answer) => return Some(answer),
        }
    }
    if !world.is_authorised(headers) {
        let body = json!({"error_message": "X-API-KEY отсутствует, неверен или просрочен"});
        return Some(json_answer(StatusCode::UNAUTHORIZED, body.to_string()));
    }
    None
}

fn answer_codes(world: &World, plan: &CheckPlan) -> Response {
    let now = Utc::now();
    let codes: Result<Vec<_>, _> = plan
        .codes
        .iter()
        .map(|(code, script)| checked_code(code, script.as_ref(), world.unknown_codes, now))
        .collect();
    let codes = match codes {
        Ok(codes) => codes,
        Err(error) => return internal_error(&error),
    };

    json_ok(&CodesCheckAnswer {
        code: Some(0),
        description: Some("ok".to_owned()),
        codes,
        req_id: Some(uuid::Uuid::new_v4().to_string()),
        req_timestamp: Some(now.timestamp_millis()),
        ..CodesCheckAnswer::default()
    })
}

fn json_ok<T: Serialize>(answer: &T) -> Response {
    match serde_json::to_string(answer) {
        Ok(body) => json_answer(StatusCode::OK, body),
        Err(error) => internal_error(&error),
    }
}

fn bad_request(reason: &str) -> Response {
    let body = json!({"error_message": reason});
    json_answer(StatusCode::BAD_REQUEST, body.to_string())
}

fn internal_error(error: &serde_json::Error) -> Response {
    tracing::error!(error.message = %error, "answer could not be built");
    let body = json!({"error_message": "sandbox error"});
    json_answer(StatusCode::INTERNAL_SERVER_ERROR, body.to_string())
}

async fn no_such_endpoint() -> Response {
    let body = json!({"error_message": "no such endpoint"});
    json_answer(StatusCode::NOT_FOUND, body.to_string())
}
