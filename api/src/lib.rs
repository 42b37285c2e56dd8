//! iMark's HTTP API: a thin axum shell around `imark-core`.

pub mod error;
pub mod extract;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use imark_core::auth::TokenKeys;
use imark_core::cache::Cache;
use imark_core::cdn::Failover;
use imark_core::config::Config;
use imark_core::crypto::{ApiKeyHasher, MasterKeys};
use imark_core::db;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long accepting waits after the listener failed.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How long a stopping server waits for requests in flight.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Every documented route, with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    routes(|limited| limited)
}

/// The routes, with `limit` applied to all but the probes: a rate limit must never take a
/// replica out of its load balancer.
fn routes(
    limit: impl FnOnce(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let mut limited = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::token::router())
        .merge(routes::me::router())
        .merge(routes::tenants::router())
        .merge(routes::stores::router())
        .merge(routes::keys::router())
        .merge(routes::truemark::router())
        .merge(routes::documents::router())
        .merge(routes::marks::router())
        .merge(routes::policy::router())
        .merge(routes::audit::router());
    ratelimit::document(limited.get_openapi_mut());
    limit(limited).merge(routes::health::router())
}

/// The whole application: routes, the error fallbacks and the middleware stack.
pub fn app(state: AppState, config: &Config) -> Router {
    let (body_limit, request_timeout) = (config.body_limit_bytes, config.request_timeout);
    let body_read = extract::BodyReadTimeout(config.body_read_timeout);
    let (routes, document) = match (config.rate_limit, config.tenant_rate_limit) {
        (Some(rate), Some(tenant)) => {
            let (tokens, hasher) = (state.tokens.clone(), state.hasher.clone());
            routes(|limited| ratelimit::limit(limited, rate, tenant, tokens, hasher))
        }
        _ => api_router(),
    }
    .split_for_parts();
    routes
        .route("/openapi.yaml", axum::routing::get(openapi::serve_yaml))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(
            move |mut request: Request, next: Next| {
                request.extensions_mut().insert(body_read);
                guard(request, next, request_timeout, body_limit)
            },
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred",
            )
            .into_response()
        }))
        .layer(middleware::from_fn(record_metrics))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            header::COOKIE,
        ]))
}

fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.route = route,
        request_id,
        role = tracing::field::Empty,
        tenant.id = tracing::field::Empty,
        store.id = tracing::field::Empty,
    )
}

/// Records the request's latency by method, matched route and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    imark_core::metrics::http_request(method.as_str(), &route, status, started.elapsed());
    response
}

/// Refuses a body declared larger than `body_limit` before reading it, answers 503 in the one
/// error shape when a request outlives `limit`, and keeps every answer out of caches: they
/// carry keys, tokens and verdicts.
async fn guard(request: Request, next: Next, limit: Duration, body_limit: usize) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut response = if declared.is_some_and(|n| n > body_limit as u64) {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than this server accepts",
        )
        .into_response()
    } else {
        match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took too long; retry it",
            )
            .into_response(),
        }
    };
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

impl AppState {
    /// Connects to Postgres and Redis and prepares the keys, as configured.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url)
            .await
            .context("connecting to Postgres (IMARK_DATABASE_URL)")?;
        if config.migrate_on_start {
            db::migrate(&db).await.context("migrating the database")?;
        }
        let cache = Cache::connect(&config.redis_url, config.redis_prefix.clone())
            .await
            .context("connecting to Redis (IMARK_REDIS_URL)")?;
        let tokens = TokenKeys::new(&config.jwt_keys, config.jwt_ttl).context("IMARK_JWT_KEYS")?;
        Ok(Self {
            tokens: Arc::new(tokens),
            hasher: ApiKeyHasher::new(config.api_key_pepper.clone()),
            master_keys: MasterKeys::new(config.master_keys.clone()),
            platform_key: config.platform_key.clone(),
            failover: Failover::new(db.clone(), cache.clone(), config.truemark.clone())?,
            db,
            cache,
        })
    }
}

/// The API, connected and migrated, ready to serve.
#[derive(Debug)]
pub struct Server {
    app: Router,
    metrics: Option<imark_core::metrics::Exporter>,
    header_read_timeout: Duration,
}

impl Server {
    /// Connects to Postgres and Redis, migrates when configured, and builds the routes.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let state = AppState::connect(config).await?;
        let app = app(state, config);
        let metrics = match config.metrics_addr {
            Some(addr) => Some(
                imark_core::metrics::Exporter::bind(addr)
                    .await?
                    .header_read_timeout(config.header_read_timeout),
            ),
            None => None,
        };
        Ok(Self {
            app,
            metrics,
            header_read_timeout: config.header_read_timeout,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight requests for at
    /// most [`DRAIN_LIMIT`]: a client that never finishes its request cannot hold the process.
    /// A client that does not send a request's headers within the header read timeout is
    /// disconnected, and so is a keep-alive connection idle for that long.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "listening");
        let _metrics = self.metrics.map(imark_core::metrics::Exporter::spawn);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: give connections time to close.
                        tracing::warn!(error.message = %e, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                        continue;
                    }
                },
            };
            let service = TowerToHyperService::new(self.app.clone());
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let mut stopped = stopped.clone();
            connections.spawn(async move {
                let mut connection = std::pin::pin!(connection);
                let closed = tokio::select! {
                    closed = connection.as_mut() => closed,
                    () = async { drop(stopped.wait_for(|stop| *stop).await) } => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = closed {
                    tracing::debug!(error.message = %e, "connection closed with an error");
                }
            });
        }

        drop(listener);
        let _ = stopping.send(true);
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                limit_s = DRAIN_LIMIT.as_secs(),
                "requests still open after the drain limit; closing"
            );
        }
        Ok(())
    }
}

/// Builds the API from `config` and serves it on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Server::build(&config)
        .await?
        .serve(listener, shutdown)
        .await
}
