//! The control API: the controls of [`SandboxControl`] as JSON over HTTP, on their own port.
//! `sandbox/README.md` documents every route with an example.

use super::{ControlError, FaultTarget, SandboxControl};
use crate::fault::Fault;
use crate::world::Service;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tower_http::trace::TraceLayer;
use truemark::client::Endpoint;

/// The control API's routes, all below `/control`.
pub(crate) fn control_router(control: SandboxControl) -> Router {
    Router::new()
        .route("/control/state", get(state))
        .route("/control/reset", post(reset))
        .route("/control/stats", get(stats).delete(reset_stats))
        .route("/control/hosts", post(add_host))
        .route(
            "/control/hosts/fault",
            put(set_every_host_fault).delete(clear_every_host_fault),
        )
        .route(
            "/control/hosts/{index}/fault",
            put(set_host_fault).delete(clear_host_fault),
        )
        .route("/control/hosts/{index}/connections", put(switch_host))
        .route(
            "/control/discovery/fault",
            put(set_discovery_fault).delete(clear_discovery_fault),
        )
        .route("/control/discovery/connections", put(switch_discovery))
        .route(
            "/control/discovery/hosts",
            put(set_discovery_hosts).delete(reset_discovery_hosts),
        )
        .route("/control/cases", get(cases))
        .route("/control/cases/{case}/activate", post(activate_case))
        .route(
            "/control/codes",
            put(set_code_state).delete(clear_code_states),
        )
        .layer(TraceLayer::new_for_http())
        .with_state(control)
}

type Control = State<SandboxControl>;
type Outcome = Result<Response, ControlError>;

/// `?endpoint=health_check|codes_check|cdn_info` narrows a fault to one endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointQuery {
    endpoint: Option<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsBody {
    accept: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoveryHostsBody {
    hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeStateBody {
    code: String,
    state: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

async fn state(State(control): Control) -> Response {
    Json(control.state().await).into_response()
}

async fn reset(State(control): Control) -> Outcome {
    control.reset().await?;
    Ok(done())
}

async fn stats(State(control): Control) -> Response {
    Json(control.stats()).into_response()
}

async fn reset_stats(State(control): Control) -> Response {
    control.reset_stats();
    done()
}

async fn add_host(State(control): Control) -> Outcome {
    let (index, url) = control.add_host().await?;
    let body = json!({"index": index, "url": url.as_str().trim_end_matches('/')});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn set_every_host_fault(
    State(control): Control,
    query: Result<Query<EndpointQuery>, QueryRejection>,
    body: Bytes,
) -> Outcome {
    set_fault(&control, FaultTarget::every_host(), query, &body)
}

async fn clear_every_host_fault(
    State(control): Control,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Outcome {
    clear_fault(&control, FaultTarget::every_host(), query)
}

async fn set_host_fault(
    State(control): Control,
    Path(index): Path<usize>,
    query: Result<Query<EndpointQuery>, QueryRejection>,
    body: Bytes,
) -> Outcome {
    set_fault(&control, FaultTarget::host(index), query, &body)
}

async fn clear_host_fault(
    State(control): Control,
    Path(index): Path<usize>,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Outcome {
    clear_fault(&control, FaultTarget::host(index), query)
}

async fn set_discovery_fault(
    State(control): Control,
    query: Result<Query<EndpointQuery>, QueryRejection>,
    body: Bytes,
) -> Outcome {
    set_fault(&control, FaultTarget::discovery(), query, &body)
}

async fn clear_discovery_fault(
    State(control): Control,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Outcome {
    clear_fault(&control, FaultTarget::discovery(), query)
}

async fn switch_host(State(control): Control, Path(index): Path<usize>, body: Bytes) -> Outcome {
    switch_connections(&control, Service::Host(index), &body).await
}

async fn switch_discovery(State(control): Control, body: Bytes) -> Outcome {
    switch_connections(&control, Service::Discovery, &body).await
}

async fn set_discovery_hosts(State(control): Control, body: Bytes) -> Outcome {
    let DiscoveryHostsBody { hosts } = parse_body(&body)?;
    control.set_discovery_hosts(hosts);
    Ok(done())
}

async fn reset_discovery_hosts(State(control): Control) -> Response {
    control.reset_discovery_hosts();
    done()
}

async fn cases(State(control): Control) -> Response {
    Json(control.cases()).into_response()
}

async fn activate_case(State(control): Control, Path(case): Path<String>) -> Outcome {
    control.activate_case(&case)?;
    Ok(done())
}

async fn set_code_state(State(control): Control, body: Bytes) -> Outcome {
    let CodeStateBody { code, state } = parse_body(&body)?;
    control.set_code_state(&code, &state)?;
    Ok(done())
}

/// With `{"code": …}`, clears that code's run-time state; with no body, every run-time state
/// and every activated alternate.
async fn clear_code_states(State(control): Control, body: Bytes) -> Outcome {
    if body.iter().all(u8::is_ascii_whitespace) {
        control.reset_codes();
        return Ok(done());
    }
    let CodeBody { code } = parse_body(&body)?;
    if control.clear_code_state(&code) {
        Ok(done())
    } else {
        Err(ControlError::NoSuchCodeState(code))
    }
}

fn set_fault(
    control: &SandboxControl,
    target: FaultTarget,
    query: Result<Query<EndpointQuery>, QueryRejection>,
    body: &[u8],
) -> Outcome {
    let target = narrowed(target, query)?;
    let fault: Fault = parse_body(body)?;
    control.set_fault(target, &fault)?;
    Ok(done())
}

fn clear_fault(
    control: &SandboxControl,
    target: FaultTarget,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Outcome {
    control.clear_fault(narrowed(target, query)?)?;
    Ok(done())
}

async fn switch_connections(control: &SandboxControl, service: Service, body: &[u8]) -> Outcome {
    let ConnectionsBody { accept } = parse_body(body)?;
    if accept {
        control.accept_connections(service).await?;
    } else {
        control.refuse_connections(service).await?;
    }
    Ok(done())
}

fn narrowed(
    target: FaultTarget,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Result<FaultTarget, ControlError> {
    let Query(query) =
        query.map_err(|rejection| ControlError::BadRequest(rejection.body_text()))?;
    Ok(match query.endpoint {
        Some(endpoint) => target.only(endpoint),
        None => target,
    })
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|error| ControlError::BadRequest(format!("invalid JSON body: {error}")))
}

fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::NoSuchHost(_) | Self::NoSuchCase(_) | Self::NoSuchCodeState(_) => {
                StatusCode::NOT_FOUND
            }
            Self::EndpointNotServed { .. } | Self::InvalidFault(_) | Self::InvalidState(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Listen { .. } => {
                tracing::error!(error.message = %self, "control request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}
