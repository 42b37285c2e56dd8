//! `/keys`: HQ admins issue, list, rotate and revoke their tenant's API keys.

use axum::extract::State;
use axum::http::StatusCode;
use imark_core::audit::AdminChange;
use imark_core::auth::Role;
use imark_core::keys::{self, ApiKeyView, IssuedKey, KeyScope};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::extract::{Caller, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_key, list_keys))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(rotate_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "store", "name": "POS 1", "store_id": "01938d2e-7c1a-7d33-9a41-2f0c6b1e5a10"}))]
pub struct IssueKey {
    /// `hq_admin`, `store` or `auditor`.
    pub role: Role,
    /// A label: which till, person or system holds the key.
    pub name: String,
    /// Required for `store` keys: the store the key acts for.
    #[serde(default)]
    pub store_id: Option<Uuid>,
    /// For `auditor` keys: the stores it may read; absent or `null` for the whole tenant.
    #[serde(default)]
    pub store_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    /// Only the keys of this store.
    pub store_id: Option<Uuid>,
    /// Include revoked keys; `false` by default.
    pub include_revoked: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Newest first.
    pub items: Vec<ApiKeyView>,
}

/// Issues an API key (HQ admin). The key is shown once, in this answer.
#[utoipa::path(post, path = "/keys", tag = "keys", security(("bearer" = [])),
    request_body = IssueKey,
    responses(
        (status = 201, description = "The new key, shown once", body = IssuedKey),
        Unauthorized,
        Forbidden,
        Unprocessable, BadRequest, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn issue_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<IssueKey>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let scope = scope(&body)?;
    let created_by = format!("key:{}", caller.api_key_id.unwrap_or_default());
    let tenant_id = caller.tenant()?;
    let change = AdminChange::begin(&state.db).await?;
    let issued = keys::issue(
        change.db(),
        &state.hasher,
        tenant_id,
        scope,
        &body.name,
        &created_by,
    )
    .await?;
    change
        .commit(
            &caller,
            tenant_id,
            "key.issued",
            issued.key.store_id,
            &issued.key,
        )
        .await?;
    tracing::info!(key.id = %issued.key.id, role = issued.key.role.as_str(), "key issued");
    Ok((StatusCode::CREATED, Json(issued)))
}

fn scope(body: &IssueKey) -> Result<KeyScope, ApiError> {
    let invalid =
        |field: &str, message: &str| ApiError::from(imark_core::Error::invalid(field, message));
    match (body.role, body.store_id, &body.store_ids) {
        (Role::HqAdmin, None, None) => Ok(KeyScope::HqAdmin),
        (Role::Store, Some(id), None) => Ok(KeyScope::Store(id)),
        (Role::Store, None, _) => Err(invalid("store_id", "a store key needs store_id")),
        (Role::Auditor, None, ids) => Ok(KeyScope::Auditor(ids.clone())),
        (Role::Platform, _, _) => Err(invalid("role", "platform keys come from configuration")),
        (_, Some(_), _) => Err(invalid("store_id", "only store keys take store_id")),
        (_, _, Some(_)) => Err(invalid("store_ids", "only auditor keys take store_ids")),
    }
}

/// Lists the tenant's keys, without their secrets (HQ admin).
#[utoipa::path(get, path = "/keys", tag = "keys", security(("bearer" = [])),
    params(KeyListQuery),
    responses(
        (status = 200, description = "The keys", body = KeyList),
        Unauthorized,
        Forbidden, BadRequest,
    ))]
async fn list_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<KeyListQuery>,
) -> Result<Json<KeyList>, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let items = keys::list(
        &state.db,
        caller.tenant()?,
        query.store_id,
        query.include_revoked.unwrap_or(false),
    )
    .await?;
    Ok(Json(KeyList { items }))
}

/// One key, without its secret (HQ admin).
#[utoipa::path(get, path = "/keys/{key_id}", tag = "keys", security(("bearer" = [])),
    params(("key_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The key", body = ApiKeyView),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest,
    ))]
async fn get_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ApiKeyView>, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    Ok(Json(keys::get(&state.db, caller.tenant()?, id).await?))
}

/// Revokes a key; its tokens stop working at once (HQ admin). Revoking twice is harmless.
#[utoipa::path(delete, path = "/keys/{key_id}", tag = "keys", security(("bearer" = [])),
    params(("key_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyView),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest,
    ))]
async fn revoke_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ApiKeyView>, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let tenant_id = caller.tenant()?;
    let change = AdminChange::begin(&state.db).await?;
    let key = keys::revoke(change.db(), tenant_id, id).await?;
    change
        .commit(&caller, tenant_id, "key.revoked", key.store_id, &key)
        .await?;
    tracing::info!(key.id = %key.id, "key revoked");
    Ok(Json(key))
}

/// Replaces a key with a new one of the same scope and revokes the old one (HQ admin).
#[utoipa::path(post, path = "/keys/{key_id}/rotate", tag = "keys", security(("bearer" = [])),
    params(("key_id" = Uuid, Path)),
    responses(
        (status = 201, description = "The new key, shown once", body = IssuedKey),
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict, BadRequest,
    ))]
async fn rotate_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let created_by = format!("key:{}", caller.api_key_id.unwrap_or_default());
    let tenant_id = caller.tenant()?;
    let change = AdminChange::begin(&state.db).await?;
    let issued = keys::rotate(change.db(), &state.hasher, tenant_id, id, &created_by).await?;
    let details = serde_json::json!({ "replaced": id, "key": issued.key });
    change
        .commit(
            &caller,
            tenant_id,
            "key.rotated",
            issued.key.store_id,
            &details,
        )
        .await?;
    tracing::info!(key.id = %id, replaced_by = %issued.key.id, "key rotated");
    Ok((StatusCode::CREATED, Json(issued)))
}
