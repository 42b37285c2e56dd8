//! Extractors that turn raw requests into domain values, refusing with the one error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imark_core::auth::Role;
use imark_core::keys;
use imark_core::principal::Principal;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a request body may take to arrive once the headers are in, unless the server put
/// its configured [`BodyReadTimeout`] in the request's extensions.
const BODY_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The configured time a body may take to arrive (`IMARK_BODY_READ_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub std::time::Duration);

/// A JSON body. A body that is not JSON at all is a 400 (`malformed_json`), JSON of the wrong
/// shape a 422 (`invalid_body`), another content type a 415 and an oversized body a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `Content-Type: application/json`",
            ));
        }
        let limit = request
            .extensions()
            .get::<BodyReadTimeout>()
            .map_or(BODY_READ_LIMIT, |t| t.0);
        let read = tokio::time::timeout(limit, Bytes::from_request(request, state));
        let bytes = read
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the body did not arrive in time",
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the body is larger than this server accepts",
                    )
                } else {
                    ApiError::bad_request("malformed_request", rejection.body_text())
                }
            })?;
        // Syntax first (UTF-8, escapes, structure), so that broken JSON is never reported as a
        // wrong shape; the shape is then read from the parsed value.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        })?;
        serde_json::from_value(value).map(Json).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the body does not match the expected shape: {e}"),
            )
        })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|mime| {
            mime.eq_ignore_ascii_case("application/json")
                || (mime.len() > 5 && mime.to_ascii_lowercase().ends_with("+json"))
        })
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; an id that does not parse is a 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters; unknown or malformed ones are a 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The authenticated caller, from `Authorization: Bearer <token>`.
///
/// The token's signature and expiry are checked, then its API key is looked up as it is now, so
/// a revoked key or a disabled tenant or store is refused at once.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let claims = state.tokens.verify(token).map_err(|e| {
            tracing::debug!(reason = %e, "token refused");
            match e {
                imark_core::auth::TokenError::Expired => {
                    ApiError::unauthorized("token_expired", "the token has expired; get a new one")
                }
                _ => ApiError::unauthorized("invalid_token", "the token is not valid"),
            }
        })?;

        let principal = match (claims.role, claims.api_key_id()) {
            (Role::Platform, None) if claims.sub == "platform" => Principal::platform(),
            (_, Some(key_id)) => keys::resolve(&state.db, key_id).await?,
            _ => {
                return Err(ApiError::unauthorized(
                    "invalid_token",
                    "the token is not valid",
                ));
            }
        };
        // The token must still describe the key it was issued for.
        if principal.role != claims.role
            || principal.tenant_id != claims.tenant_id
            || principal.store_id != claims.store_id
        {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the token is not valid",
            ));
        }

        let span = tracing::Span::current();
        span.record("role", principal.role.as_str());
        if let Some(tenant) = principal.tenant_id {
            span.record("tenant.id", tracing::field::display(tenant));
        }
        if let Some(store) = principal.store_id {
            span.record("store.id", tracing::field::display(store));
        }
        Ok(Self(principal))
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    bearer(&parts.headers).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "send `Authorization: Bearer <token>`; get a token at /token",
        )
    })
}

/// The token of `Authorization: Bearer <token>`, unverified.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
