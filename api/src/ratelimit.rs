//! Token buckets per caller and per tenant, so that one runaway till, integration or tenant
//! cannot crowd out the rest.
//!
//! A caller is who its credentials say, never its peer address (behind a load balancer every
//! caller shares one). A verified access token counts against its API key (`sub`) and against
//! its tenant; only its signature is checked here, which costs an HMAC and no database (the
//! key's state is checked by the `Caller` extractor as before). A bearer token that does not
//! verify (forged, expired, signed by a dropped key) opens no bucket and takes from none: it is
//! answered `401` by the extractor after the same HMAC, so nobody flooding garbage tokens can
//! turn another till's `401 token_expired` into a `429`.
//!
//! At `/token` only the API key counts, since it is all that route reads: every presented key
//! has a bucket of its own, by its keyed hash, whatever else the request carries. A key nobody
//! issued costs one indexed look-up and opens a bucket that the sweep drops once it is full
//! again: a flood of distinct made-up keys is not limited here (nothing tells its sender apart
//! behind a load balancer; limit it by address at the gateway), but it can never refuse a real
//! key's first exchange. A request with no credentials at all takes from one shared bucket of
//! strangers.
//!
//! Buckets live in this process: every API replica limits on its own.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use imark_core::auth::TokenKeys;
use imark_core::config::RateLimit;
use imark_core::crypto::ApiKeyHasher;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use utoipa::IntoResponses;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::responses::TooManyRequests;
use crate::extract;
use crate::routes::token;
use crate::state::AppState;

/// How often buckets of quiet callers are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Whose bucket a request takes its token from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The API key (or `platform`) of a verified access token.
    Key(String),
    /// An API key presented for exchange, by the first half of its keyed hash.
    Presented([u8; 16]),
    /// Requests with no credentials.
    Strangers,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(id) => write!(f, "Key({id})"),
            // Half a keyed hash identifies nothing outside this process; still not logged.
            Self::Presented(_) => f.write_str("Presented"),
            Self::Strangers => f.write_str("Strangers"),
        }
    }
}

/// Keys are chosen by the middleware below, not by `tower_governor`'s layer; this only names
/// the key type of a limiter.
#[derive(Debug, Clone, Copy)]
struct Chosen;

impl KeyExtractor for Chosen {
    type Key = Bucket;

    fn extract<T>(&self, _request: &axum::http::Request<T>) -> Result<Bucket, GovernorError> {
        Err(GovernorError::UnableToExtractKey)
    }
}

#[derive(Debug, Clone, Copy)]
struct ChosenTenant;

impl KeyExtractor for ChosenTenant {
    type Key = Uuid;

    fn extract<T>(&self, _request: &axum::http::Request<T>) -> Result<Uuid, GovernorError> {
        Err(GovernorError::UnableToExtractKey)
    }
}

/// Takes one request from a bucket; `Err` holds how long until the bucket has one again.
type Check<K> = Box<dyn Fn(&K) -> Result<(), Duration> + Send + Sync>;

/// The limiters and what they need to choose a bucket.
struct Limits {
    keys: Check<Bucket>,
    tenants: Check<Uuid>,
    tokens: Arc<TokenKeys>,
    hasher: ApiKeyHasher,
}

/// Builds a limiter of `rate` keyed by `extractor`'s key type, swept while the returned check
/// lives; `None` when `rate` is unusable (configuration validation keeps it above zero).
fn limiter<E>(rate: RateLimit, extractor: E) -> Option<Check<E::Key>>
where
    E: KeyExtractor + Send + Sync + 'static,
    E::Key: Send + Sync + 'static,
{
    let config = GovernorConfigBuilder::default()
        .period(rate.period())
        .burst_size(rate.burst)
        .key_extractor(extractor)
        .finish()?;
    let limiter = config.limiter().clone();
    // Buckets of callers gone quiet are forgotten, so that the map cannot grow for good; the
    // sweep ends with the server.
    let weak = Arc::downgrade(&limiter);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_INTERVAL);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(limiter) = weak.upgrade() else {
                return;
            };
            limiter.retain_recent();
        }
    });
    Some(Box::new(move |key: &E::Key| {
        // A refused request can always go once one period has passed; the exact wait needs the
        // limiter's clock, and the period is never shorter than it.
        limiter
            .check_key(key)
            .map_err(|refused| refused.quota().replenish_interval())
    }))
}

/// Limits every route of `router` (and only those): a caller whose bucket, or whose tenant's
/// bucket, is empty is answered `429 rate_limited` with `Retry-After`.
pub fn limit(
    router: OpenApiRouter<AppState>,
    per_key: RateLimit,
    per_tenant: RateLimit,
    tokens: Arc<TokenKeys>,
    hasher: ApiKeyHasher,
) -> OpenApiRouter<AppState> {
    let (Some(keys), Some(tenants)) = (limiter(per_key, Chosen), limiter(per_tenant, ChosenTenant))
    else {
        return router;
    };
    let limits = Arc::new(Limits {
        keys,
        tenants,
        tokens,
        hasher,
    });
    router.layer(middleware::from_fn_with_state(limits, check))
}

async fn check(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    match limits.take(&request) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many_requests(wait),
    }
}

impl Limits {
    /// Takes the request's token from its buckets; `Err` holds the wait of the first one empty.
    fn take(&self, request: &Request) -> Result<(), Duration> {
        let headers = request.headers();
        if request.uri().path() == "/token" {
            return match token::presented_key(headers) {
                Ok(key) => {
                    let digest = self.hasher.digest(&key);
                    let mut half = [0_u8; 16];
                    half.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
                    (self.keys)(&Bucket::Presented(half))
                }
                Err(_) => (self.keys)(&Bucket::Strangers),
            };
        }
        let Some(bearer) = extract::bearer(headers) else {
            return (self.keys)(&Bucket::Strangers);
        };
        // A token that does not verify takes from no bucket (see the module's documentation).
        let Ok(claims) = self.tokens.verify(bearer) else {
            return Ok(());
        };
        // The key's own bucket first: a runaway key is refused without touching its tenant's.
        (self.keys)(&Bucket::Key(claims.sub))?;
        match claims.tenant_id {
            Some(tenant) => (self.tenants)(&tenant),
            None => Ok(()),
        }
    }
}

fn too_many_requests(wait: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests from this API key or its tenant; retry after the time in Retry-After",
    )
    .into_response();
    // Whole seconds, rounded up: a client retrying on the dot must not be refused again.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// Adds the 429 answer to every operation of `document`: every route it describes is limited.
pub fn document(document: &mut Document) {
    let answers = <TooManyRequests as IntoResponses>::responses();
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation.responses.responses.extend(answers.clone());
        }
    }
}
