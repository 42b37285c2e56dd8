//! `/token`: an API key in, a short-lived access token out.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use imark_core::keys;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::error::responses::Unauthorized;
use crate::extract::Json;
use crate::state::AppState;

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_token, post_token))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkzOGQ…",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub struct TokenResponse {
    /// Send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Exchanges an API key for an access token.
///
/// The key goes in the `X-API-Key` header, or in HTTP Basic credentials as the user name with an
/// empty password (or as the password with an empty user name). A revoked key, or a key of a disabled tenant or store, is refused.
#[utoipa::path(get, path = "/token", tag = "auth",
    security(("api_key" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A new access token", body = TokenResponse),
        Unauthorized,
    ))]
async fn get_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TokenResponse>, ApiError> {
    exchange(&state, &headers).await
}

/// Exchanges an API key for an access token; the same as `GET /token`.
#[utoipa::path(post, path = "/token", tag = "auth",
    security(("api_key" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A new access token", body = TokenResponse),
        Unauthorized,
    ))]
async fn post_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TokenResponse>, ApiError> {
    exchange(&state, &headers).await
}

async fn exchange(state: &AppState, headers: &HeaderMap) -> Result<Json<TokenResponse>, ApiError> {
    let key = presented_key(headers)?;
    let principal = keys::authenticate(&state.db, &state.hasher, &state.platform_key, &key)
        .await
        .map_err(|e| match e {
            imark_core::Error::Unauthorized(_) => {
                ApiError::unauthorized_key("invalid_api_key", "the API key is not valid")
            }
            other => other.into(),
        })?;
    let subject = principal
        .api_key_id
        .map_or_else(|| "platform".to_owned(), |id| id.to_string());
    let issued = state
        .tokens
        .issue(
            subject,
            principal.role,
            principal.tenant_id,
            principal.store_id,
        )
        .map_err(|e| imark_core::Error::internal(anyhow::anyhow!(e)))?;
    tracing::info!(role = principal.role.as_str(), "token issued");
    Ok(Json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in.as_secs(),
    }))
}

/// The API key from `X-API-Key` or from HTTP Basic credentials.
pub(crate) fn presented_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::unauthorized_key(
            "missing_api_key",
            "send the API key in the X-API-Key header or as HTTP Basic credentials",
        )
    };
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let key = value.to_str().map_err(|_| missing())?.trim();
        return if key.is_empty() {
            Err(missing())
        } else {
            Ok(key.to_owned())
        };
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = BASE64.decode(encoded.trim()).map_err(|_| missing())?;
    let decoded = String::from_utf8(decoded).map_err(|_| missing())?;
    // The key is the user name with an empty password, or the password with an empty user name.
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    let key = match (user.trim(), password.trim()) {
        (key, "") | ("", key) if !key.is_empty() => key,
        _ => return Err(missing()),
    };
    Ok(key.to_owned())
}
