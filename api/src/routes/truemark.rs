//! `/truemark`: the tenant's ЧЗ credentials and per-store overrides. The key goes in and never
//! comes out: answers show it masked.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use imark_core::audit::AdminChange;
use imark_core::auth::Role;
use imark_core::credentials::{self, CredentialsView, NewCredentials, SettingsView};
use imark_core::principal::Principal;
use imark_core::stores;
use secrecy::SecretString;
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
    OpenApiRouter::new().routes(routes!(put_settings, get_settings, delete_settings))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "api_key": "3f2a9c1e-5b7d-4e8f-a1c2-9d0e7f6b5a43",
    "base_url": "https://cdn.crpt.ru",
    "region": "msk",
    "key_expires_on": "2027-06-30"
}))]
pub struct PutSettings {
    /// The ЧЗ "token for cash registers" of the organisation (or of the store's legal entity).
    #[schema(value_type = String)]
    pub api_key: SecretString,
    /// ЧЗ's discovery URL; `https://cdn.crpt.ru` when absent. The sandbox URL or any other
    /// http(s) URL is allowed.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The region whose CDN list this tenant uses; `default` when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// The key's expiry date, if known.
    #[serde(default)]
    pub key_expires_on: Option<NaiveDate>,
    /// Set (here or as the `store_id` query parameter) to store an override for this store
    /// instead of the tenant's settings.
    #[serde(default)]
    pub store_id: Option<Uuid>,
}

impl std::fmt::Debug for PutSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSettings")
            .field("base_url", &self.base_url)
            .field("region", &self.region)
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StoreParam {
    /// A store of the tenant. A store's own token may omit it.
    pub store_id: Option<Uuid>,
}

/// Sets the tenant's ЧЗ credentials, or a store's override (HQ admin).
#[utoipa::path(put, path = "/truemark", tag = "truemark", security(("bearer" = [])),
    params(StoreParam),
    request_body = PutSettings,
    responses(
        (status = 200, description = "Stored; the key is shown masked", body = CredentialsView),
        Unauthorized,
        Forbidden,
        NotFound,
        Unprocessable, BadRequest, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn put_settings(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<StoreParam>,
    Json(mut body): Json<PutSettings>,
) -> Result<Json<CredentialsView>, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let tenant_id = caller.tenant()?;
    body.store_id = match (query.store_id, body.store_id) {
        (Some(asked), Some(said)) if asked != said => {
            return Err(imark_core::Error::invalid(
                "store_id",
                "the query and the body name different stores",
            )
            .into());
        }
        (asked, said) => asked.or(said),
    };
    if let Some(store_id) = body.store_id {
        require_store(&state, tenant_id, store_id).await?;
    }
    let new = NewCredentials {
        store_id: body.store_id,
        api_key: body.api_key,
        base_url: body.base_url,
        region: body.region,
        key_expires_on: body.key_expires_on,
    };
    let allow_local = state.failover.settings().allow_local_urls;
    let store_id = new.store_id;
    let change = AdminChange::begin(&state.db).await?;
    let view =
        credentials::put(change.db(), &state.master_keys, tenant_id, new, allow_local).await?;
    change
        .commit(&caller, tenant_id, "truemark.key_set", store_id, &view)
        .await?;
    tracing::info!(store.override = ?body.store_id, "ЧЗ settings stored");
    Ok(Json(view))
}

/// The tenant's ЧЗ settings, a store's override and the settings in force for that store
/// (HQ admin; a store reads its own).
#[utoipa::path(get, path = "/truemark", tag = "truemark", security(("bearer" = [])),
    params(StoreParam),
    responses(
        (status = 200, description = "The settings", body = SettingsView),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest,
    ))]
async fn get_settings(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<StoreParam>,
) -> Result<Json<SettingsView>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    let tenant_id = caller.tenant()?;
    let store_id = store_for(&caller, query.store_id)?;
    if let Some(store_id) = store_id {
        require_store(&state, tenant_id, store_id).await?;
    }
    Ok(Json(
        credentials::settings(&state.db, tenant_id, store_id).await?,
    ))
}

/// Removes the tenant's settings, or a store's override so the tenant's apply again (HQ admin).
#[utoipa::path(delete, path = "/truemark", tag = "truemark", security(("bearer" = [])),
    params(StoreParam),
    responses(
        (status = 204, description = "Removed"),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest,
    ))]
async fn delete_settings(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<StoreParam>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let tenant_id = caller.tenant()?;
    let change = AdminChange::begin(&state.db).await?;
    credentials::delete(change.db(), tenant_id, query.store_id).await?;
    let details = serde_json::json!({ "store_id": query.store_id });
    change
        .commit(
            &caller,
            tenant_id,
            "truemark.key_removed",
            query.store_id,
            &details,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The store whose settings the caller asks for: a store's token reads only its own.
fn store_for(caller: &Principal, asked: Option<Uuid>) -> Result<Option<Uuid>, ApiError> {
    match (caller.role, caller.store_id, asked) {
        (Role::Store, Some(own), None) => Ok(Some(own)),
        (Role::Store, Some(own), Some(asked)) if asked == own => Ok(Some(own)),
        (Role::Store, _, _) => Err(ApiError::not_found("store not found")),
        (_, _, asked) => Ok(asked),
    }
}

async fn require_store(state: &AppState, tenant_id: Uuid, store_id: Uuid) -> Result<(), ApiError> {
    if stores::exists(&state.db, tenant_id, store_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("store not found"))
    }
}
