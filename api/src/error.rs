//! The one error shape of the API: `application/problem+json` with a stable machine-readable
//! `code`. Internal details are logged, never returned.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imark_core::Error as CoreError;
use serde::Serialize;
use utoipa::ToSchema;

const BEARER_CHALLENGE: &str = "Bearer realm=\"imark\"";
const BASIC_CHALLENGE: &str = "Basic realm=\"imark\", charset=\"UTF-8\"";

/// An error response body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:imark:problem:validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "code": "validation_failed",
    "detail": "name: must not be empty",
    "errors": [{"field": "name", "message": "must not be empty"}]
}))]
pub struct Problem {
    /// `urn:imark:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status text.
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code; `docs/integration.md` says what a POS does with each.
    /// 400 `malformed_json`, `invalid_parameter`, `malformed_request`; 401 `missing_token`,
    /// `invalid_token`, `token_expired`, `key_revoked`, `store_disabled`, `tenant_disabled`,
    /// `missing_api_key`, `invalid_api_key`; 403 `forbidden`; 404 `not_found`,
    /// `route_not_found`; 405 `method_not_allowed`; 408 `body_timeout`; 409
    /// `document_id_reused`, `document_in_progress`, `truemark_not_configured`,
    /// `truemark_key_rejected`, `not_a_sale`, `store_code_taken`, `key_revoked`,
    /// `concurrent_update`; 413 `payload_too_large`; 415 `unsupported_media_type`; 422
    /// `invalid_body`, `validation_failed`; 429 `rate_limited`; 500 `internal`; 503 `unavailable`,
    /// `timeout`.
    pub code: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// The fields at fault, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<&'static str>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            challenge: (status == StatusCode::UNAUTHORIZED).then_some(BEARER_CHALLENGE),
            source: None,
        }
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// A 401 of `/token`, which takes an API key, not a bearer token.
    pub fn unauthorized_key(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            challenge: Some(BASIC_CHALLENGE),
            ..Self::unauthorized(code, detail)
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "route_not_found", "no such endpoint")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            CoreError::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            CoreError::Invalid { field, message } => {
                let mut e = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    format!("{field}: {message}"),
                );
                e.errors.push(FieldError { field, message });
                e
            }
            CoreError::Unauthorized(code) => Self::unauthorized(code, unauthorized_detail(code)),
            CoreError::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "your role may not do this",
            ),
            CoreError::Unavailable(source) => Self {
                source: Some(source),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a dependency is unavailable; retry shortly",
                )
            },
            CoreError::Internal(source) => Self {
                source: Some(source),
                ..Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            },
        }
    }
}

fn unauthorized_detail(code: &str) -> &'static str {
    match code {
        "invalid_api_key" => "the API key is not valid",
        "key_revoked" => "the API key behind this token has been revoked",
        "tenant_disabled" => "the tenant is disabled",
        "store_disabled" => "the store is disabled",
        _ => "the credentials are not valid",
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_parameter", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_parameter", rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Log once, here, at the level of whose fault it was.
        if self.status.is_server_error() {
            let cause = self.source.as_ref().map(|e| format!("{e:#}"));
            tracing::error!(
                error.code = self.code,
                error.message = cause,
                "request failed"
            );
        } else {
            tracing::debug!(error.code = self.code, error.detail = %self.detail, "request refused");
        }

        let body = Problem {
            kind: format!("urn:imark:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail,
            errors: self.errors,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The documented error answers, one type per status, for the OpenAPI document.
pub mod responses {
    use utoipa::IntoResponses;

    use super::Problem;

    /// 400: a malformed path, query or JSON body.
    #[derive(IntoResponses)]
    #[response(
        status = 400,
        description = "Malformed request: bad JSON, path or query parameter",
        content_type = "application/problem+json"
    )]
    pub struct BadRequest(pub Problem);

    /// 401: missing, invalid, expired or revoked credentials.
    #[derive(IntoResponses)]
    #[response(
        status = 401,
        description = "Missing, invalid, expired or revoked credentials; get a new token",
        content_type = "application/problem+json"
    )]
    pub struct Unauthorized(pub Problem);

    /// 403: the caller's role may not do this.
    #[derive(IntoResponses)]
    #[response(
        status = 403,
        description = "The caller's role may not do this",
        content_type = "application/problem+json"
    )]
    pub struct Forbidden(pub Problem);

    /// 404: no such resource for this caller.
    #[derive(IntoResponses)]
    #[response(
        status = 404,
        description = "No such resource for this caller (other tenants' ids look the same)",
        content_type = "application/problem+json"
    )]
    pub struct NotFound(pub Problem);

    /// 413: the body is larger than the server accepts.
    #[derive(IntoResponses)]
    #[response(
        status = 413,
        description = "The body is larger than the server accepts",
        content_type = "application/problem+json"
    )]
    pub struct PayloadTooLarge(pub Problem);

    /// 429: the caller's API key, or all of its tenant's keys together, sent too many
    /// requests; every rate-limited operation answers it.
    #[derive(IntoResponses)]
    #[response(
        status = 429,
        description = "Too many requests from this API key, or from all of its tenant's keys \
            together (`rate_limited`); send it again after the seconds in `Retry-After`",
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before sending the request again"))
    )]
    pub struct TooManyRequests(pub Problem);

    /// 415: the body is not sent as JSON.
    #[derive(IntoResponses)]
    #[response(
        status = 415,
        description = "The body is not sent as `application/json`",
        content_type = "application/problem+json"
    )]
    pub struct UnsupportedMediaType(pub Problem);

    /// 503: a dependency failed; the request may be sent again as it was.
    #[derive(IntoResponses)]
    #[response(
        status = 503,
        description = "A dependency failed or the request took too long; send it again as it was",
        content_type = "application/problem+json"
    )]
    pub struct Unavailable(pub Problem);

    /// 409: the request conflicts with the current state.
    #[derive(IntoResponses)]
    #[response(
        status = 409,
        description = "Conflicts with the current state",
        content_type = "application/problem+json"
    )]
    pub struct Conflict(pub Problem);

    /// 422: a well-formed body that breaks a rule.
    #[derive(IntoResponses)]
    #[response(
        status = 422,
        description = "The body has the wrong shape (`invalid_body`) or breaks a rule \
            (`validation_failed`, with the fields at fault)",
        content_type = "application/problem+json"
    )]
    pub struct Unprocessable(pub Problem);
}
