//! `/policy`: what each ground for refusing a sale does, for the tenant, a store or a product
//! group. HQ admins set it; a store reads the policy in force for itself.

use std::collections::BTreeMap;

use axum::extract::State;
use imark_core::audit::AdminChange;
use imark_core::auth::Role;
use imark_core::policy::{self, Action, Criterion, PolicyView, Preset, Scope};
use imark_core::stores;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::responses::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::extract::{Caller, Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PolicyScope {
    /// A store of the tenant; absent for the tenant's own policy. A store's token reads its own.
    pub store_id: Option<Uuid>,
    /// A ЧЗ product group id (3 tobacco, 8 milk, 15 beer, 16 НСП …); absent for every group.
    pub product_group: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "preset": "law",
    "overrides": {"expired": "warn", "not_owner": "warn"}
}))]
pub struct PutPolicy {
    /// `law` (the default: prohibitions block, a sale without a check is allowed), `strict`
    /// (anything but a clean answer blocks) or `allow_all` (only warn).
    pub preset: Preset,
    /// Criteria whose action differs from the preset's.
    #[serde(default)]
    pub overrides: BTreeMap<Criterion, Action>,
}

/// The policy in force at a scope (HQ admin; a store reads its own).
#[utoipa::path(get, path = "/policy", tag = "policy", security(("bearer" = [])),
    params(PolicyScope),
    responses(
        (status = 200, description = "The policy, with every criterion's action", body = PolicyView),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ))]
async fn get_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<PolicyScope>,
) -> Result<Json<PolicyView>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    let tenant_id = caller.tenant()?;
    let store_id = match (caller.role, caller.store_id, query.store_id) {
        (Role::Store, Some(own), None) => Some(own),
        (Role::Store, Some(own), Some(asked)) if asked == own => Some(own),
        (Role::Store, _, _) => return Err(ApiError::not_found("store not found")),
        (_, _, asked) => asked,
    };
    if let Some(store_id) = store_id
        && !stores::exists(&state.db, tenant_id, store_id).await?
    {
        return Err(ApiError::not_found("store not found"));
    }
    let scope = Scope {
        store_id,
        product_group: query.product_group,
    };
    Ok(Json(policy::get(&state.db, tenant_id, scope).await?))
}

/// Sets the policy at a scope, replacing what was there (HQ admin).
#[utoipa::path(put, path = "/policy", tag = "policy", security(("bearer" = [])),
    params(PolicyScope),
    request_body = PutPolicy,
    responses(
        (status = 200, description = "The stored policy", body = PolicyView),
        BadRequest, Unauthorized, Forbidden, NotFound, Unprocessable, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn put_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<PolicyScope>,
    Json(body): Json<PutPolicy>,
) -> Result<Json<PolicyView>, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let tenant_id = caller.tenant()?;
    if let Some(store_id) = query.store_id
        && !stores::exists(&state.db, tenant_id, store_id).await?
    {
        return Err(ApiError::not_found("store not found"));
    }
    let scope = Scope {
        store_id: query.store_id,
        product_group: query.product_group,
    };
    let change = AdminChange::begin(&state.db).await?;
    let view = policy::put(change.db(), tenant_id, scope, body.preset, body.overrides).await?;
    let details = serde_json::json!({ "product_group": query.product_group, "policy": view });
    change
        .commit(&caller, tenant_id, "policy.set", query.store_id, &details)
        .await?;
    tracing::info!(preset = body.preset.as_str(), "policy stored");
    Ok(Json(view))
}
