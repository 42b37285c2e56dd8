//! A token bucket per caller, so that one runaway till or integration cannot crowd out the
//! rest of the chain.
//!
//! A caller is who its credentials say, never its peer address (behind a load balancer every
//! caller shares one): a verified access token counts against its API key (`sub`), an API key
//! presented to `/token` against its keyed hash, and a request with neither (or with a token
//! that does not verify) against one shared bucket of strangers. Only a token's signature is
//! checked here, which costs an HMAC and no database: the key's state is checked by the
//! `Caller` extractor as before. Forged tokens therefore never open buckets of their own.

use std::sync::Arc;

use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use imark_core::auth::TokenKeys;
use imark_core::config::RateLimit;
use imark_core::crypto::ApiKeyHasher;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use utoipa::IntoResponses;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::error::responses::TooManyRequests;
use crate::extract;
use crate::routes::token;
use crate::state::AppState;

/// How often buckets of quiet callers are dropped.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Whose bucket a request takes its token from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The API key (or `platform`) of a verified access token.
    Key(String),
    /// An API key presented for exchange, by the first half of its keyed hash.
    Presented([u8; 16]),
    /// No credentials, or credentials that do not verify.
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

/// Finds a request's [`Bucket`] from its headers.
#[derive(Debug, Clone)]
pub struct CallerBucket {
    tokens: Arc<TokenKeys>,
    hasher: ApiKeyHasher,
}

impl KeyExtractor for CallerBucket {
    type Key = Bucket;

    fn extract<T>(&self, request: &Request<T>) -> Result<Bucket, GovernorError> {
        let headers = request.headers();
        if let Some(token) = extract::bearer(headers) {
            return Ok(self
                .tokens
                .verify(token)
                .map_or(Bucket::Strangers, |claims| Bucket::Key(claims.sub)));
        }
        if let Ok(key) = token::presented_key(headers) {
            let digest = self.hasher.digest(&key);
            let mut half = [0_u8; 16];
            half.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
            return Ok(Bucket::Presented(half));
        }
        Ok(Bucket::Strangers)
    }
}

/// Limits every route of `router` (and only those): a caller whose bucket is empty is answered
/// `429 rate_limited` with `Retry-After`.
pub fn limit(
    router: OpenApiRouter<AppState>,
    limit: RateLimit,
    tokens: Arc<TokenKeys>,
    hasher: ApiKeyHasher,
) -> OpenApiRouter<AppState> {
    let Some(config) = GovernorConfigBuilder::default()
        .period(limit.period())
        .burst_size(limit.burst)
        .key_extractor(CallerBucket { tokens, hasher })
        .finish()
    else {
        // Configuration validation keeps the rate and the burst above zero.
        return router;
    };
    let config = Arc::new(config);
    // Buckets of callers gone quiet are forgotten, so that made-up keys cannot grow the map
    // for good; the sweep ends with the server.
    let limiter = Arc::downgrade(config.limiter());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_INTERVAL);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(limiter) = limiter.upgrade() else {
                return;
            };
            limiter.retain_recent();
        }
    });
    router.layer(GovernorLayer::new(config).error_handler(|error| too_many_requests(&error)))
}

fn too_many_requests(error: &GovernorError) -> Response {
    match error {
        &GovernorError::TooManyRequests { wait_time, .. } => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this API key; retry after the time in Retry-After",
            )
            .into_response();
            // The limiter rounds the wait down to whole seconds; a client retrying on the dot
            // would be refused again.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait_time + 1));
            response
        }
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
        .into_response(),
    }
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
