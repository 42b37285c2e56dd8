//! `/tenants`: the platform operator onboards organisations.

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use imark_core::audit::AdminChange;
use imark_core::auth::Role;
use imark_core::ids::Status;
use imark_core::keys::IssuedKey;
use imark_core::tenants::{self, OnboardedTenant, Tenant, TenantChanges};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::nullable;
use crate::error::ApiError;
use crate::error::responses::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::extract::{Caller, Json, Path, Query};
use crate::state::AppState;

/// The largest `offset` accepted: far beyond any real list, well inside what SQL takes.
const MAX_OFFSET: u64 = 1_000_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant))
        .routes(routes!(issue_hq_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "ООО «Ромашка»", "inn": "7701234567"}))]
pub struct CreateTenant {
    /// The organisation's name, 1 to 200 characters.
    pub name: String,
    /// The organisation's ИНН: 10 or 12 digits.
    #[serde(default)]
    pub inn: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default)]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub inn: Option<Option<String>>,
    /// `disabled` stops every token of the tenant's keys at once.
    #[serde(default)]
    pub status: Option<Status>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHqKey {
    /// A label for the key, e.g. who holds it.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many items, 1 to 500; 100 by default.
    pub limit: Option<u64>,
    /// Skip this many items.
    pub offset: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub items: Vec<Tenant>,
}

/// Creates a tenant and its first HQ admin key (platform operator).
///
/// The key is shown once, in this answer.
#[utoipa::path(post, path = "/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created, with the first HQ key", body = OnboardedTenant),
        Unauthorized,
        Forbidden,
        Unprocessable, BadRequest, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn create_tenant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateTenant>,
) -> Result<(StatusCode, Json<OnboardedTenant>), ApiError> {
    caller.require(&[Role::Platform])?;
    let change = AdminChange::begin(&state.db).await?;
    let onboarded =
        tenants::create(change.db(), &state.hasher, &body.name, body.inn.as_deref()).await?;
    let details = serde_json::json!({ "tenant": onboarded.tenant, "hq_key": onboarded.hq_key.key });
    change
        .commit(
            &caller,
            onboarded.tenant.id,
            "tenant.created",
            None,
            &details,
        )
        .await?;
    tracing::info!(tenant.id = %onboarded.tenant.id, "tenant created");
    Ok((StatusCode::CREATED, Json(onboarded)))
}

/// Lists tenants, oldest first (platform operator).
#[utoipa::path(get, path = "/tenants", tag = "tenants", security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, description = "The tenants", body = TenantList),
        Unauthorized,
        Forbidden, BadRequest,
    ))]
async fn list_tenants(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(page): Query<Page>,
) -> Result<Json<TenantList>, ApiError> {
    caller.require(&[Role::Platform])?;
    let limit = page_limit(page.limit)?;
    let offset = match page.offset.unwrap_or(0) {
        offset @ 0..=MAX_OFFSET => offset,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("offset must be between 0 and {MAX_OFFSET}"),
            ));
        }
    };
    let items = tenants::list(&state.db, limit, offset).await?;
    Ok(Json(TenantList { items }))
}

/// One tenant (platform operator).
#[utoipa::path(get, path = "/tenants/{tenant_id}", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest,
    ))]
async fn get_tenant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<Tenant>, ApiError> {
    caller.require(&[Role::Platform])?;
    Ok(Json(tenants::get(&state.db, id).await?))
}

/// Renames, re-numbers, disables or re-enables a tenant (platform operator).
#[utoipa::path(patch, path = "/tenants/{tenant_id}", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        Unauthorized,
        Forbidden,
        NotFound,
        Unprocessable, BadRequest, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn update_tenant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateTenant>,
) -> Result<Json<Tenant>, ApiError> {
    caller.require(&[Role::Platform])?;
    let changes = TenantChanges {
        name: body.name,
        inn: body.inn,
        status: body.status,
    };
    let change = AdminChange::begin(&state.db).await?;
    let tenant = tenants::update(change.db(), id, changes).await?;
    change
        .commit(&caller, id, "tenant.updated", None, &tenant)
        .await?;
    Ok(Json(tenant))
}

/// Issues another HQ admin key for a tenant, e.g. when the first was lost (platform operator).
#[utoipa::path(post, path = "/tenants/{tenant_id}/keys", tag = "tenants",
    security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    request_body = NewHqKey,
    responses(
        (status = 201, description = "The new key, shown once", body = IssuedKey),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
    ))]
async fn issue_hq_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<NewHqKey>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    caller.require(&[Role::Platform])?;
    let name = body.name.as_deref().unwrap_or("HQ key");
    let change = AdminChange::begin(&state.db).await?;
    let issued = tenants::issue_hq_key(change.db(), &state.hasher, id, name).await?;
    change
        .commit(&caller, id, "key.issued", None, &issued.key)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Decodes an opaque cursor made by [`encode_cursor`]; anything else is a 400.
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|text| !text.is_empty() && !text.chars().any(char::is_control))
        .ok_or_else(|| ApiError::bad_request("invalid_parameter", "cursor is not valid"))
}

/// An opaque cursor for a position in a list.
pub(crate) fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// Checks a page size: 1 to 500, 100 when absent.
pub(crate) fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit.unwrap_or(100) {
        limit @ 1..=500 => Ok(limit),
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            "limit must be between 1 and 500",
        )),
    }
}
