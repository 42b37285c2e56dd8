//! `/stores`: a tenant's POS locations. HQ admins manage them; auditors and stores read the ones
//! they cover.

use axum::extract::State;
use axum::http::StatusCode;
use imark_core::audit::AdminChange;
use imark_core::auth::Role;
use imark_core::ids::Status;
use imark_core::stores::{self, NewStore, Store, StoreChanges, StoreQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::nullable;
use super::tenants::{decode_cursor, encode_cursor, page_limit};
use crate::error::ApiError;
use crate::error::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::extract::{Caller, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_store, list_stores))
        .routes(routes!(get_store, update_store))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "code": "msk-014",
    "name": "Магазин на Тверской, 14",
    "address": "Москва, ул. Тверская, 14",
    "inn": "7712345678",
    "kpp": "771201001"
}))]
pub struct CreateStore {
    /// The tenant's own code for the store, unique within the tenant; 1 to 64 characters.
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub address: Option<String>,
    /// The store's ИНН when it is a legal entity of its own (a franchisee).
    #[serde(default)]
    pub inn: Option<String>,
    #[serde(default)]
    pub kpp: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStore {
    #[serde(default)]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub inn: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub kpp: Option<Option<String>>,
    /// `disabled` stops every token of the store's keys at once.
    #[serde(default)]
    pub status: Option<Status>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StoreListQuery {
    pub status: Option<Status>,
    /// At most this many stores, 1 to 500; 100 by default.
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreList {
    /// Stores ordered by code.
    pub items: Vec<Store>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Creates a store (HQ admin).
#[utoipa::path(post, path = "/stores", tag = "stores", security(("bearer" = [])),
    request_body = CreateStore,
    responses(
        (status = 201, description = "The store", body = Store),
        Unauthorized,
        Forbidden,
        Conflict,
        Unprocessable, BadRequest, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn create_store(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateStore>,
) -> Result<(StatusCode, Json<Store>), ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let new = NewStore {
        code: body.code,
        name: body.name,
        address: body.address,
        inn: body.inn,
        kpp: body.kpp,
    };
    let tenant_id = caller.tenant()?;
    let change = AdminChange::begin(&state.db).await?;
    let store = stores::create(change.db(), tenant_id, new).await?;
    change
        .commit(&caller, tenant_id, "store.created", Some(store.id), &store)
        .await?;
    tracing::info!(store.id = %store.id, "store created");
    Ok((StatusCode::CREATED, Json(store)))
}

/// Lists the stores the caller covers, by code (HQ admin, auditor, store).
#[utoipa::path(get, path = "/stores", tag = "stores", security(("bearer" = [])),
    params(StoreListQuery),
    responses(
        (status = 200, description = "A page of stores", body = StoreList),
        BadRequest,
        Unauthorized,
        Forbidden,
    ))]
async fn list_stores(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<StoreListQuery>,
) -> Result<Json<StoreList>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Auditor, Role::Store])?;
    let limit = page_limit(query.limit)?;
    let after_code = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let items = stores::list(
        &state.db,
        caller.tenant()?,
        &caller.store_scope(),
        StoreQuery {
            status: query.status,
            after_code,
            limit,
        },
    )
    .await?;
    let next_cursor = match items.last() {
        Some(last) if items.len() as u64 == limit => Some(encode_cursor(&last.code)),
        _ => None,
    };
    Ok(Json(StoreList { items, next_cursor }))
}

/// One store the caller covers (HQ admin, auditor, store).
#[utoipa::path(get, path = "/stores/{store_id}", tag = "stores", security(("bearer" = [])),
    params(("store_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The store", body = Store),
        Unauthorized,
        Forbidden,
        NotFound, BadRequest,
    ))]
async fn get_store(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<Store>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Auditor, Role::Store])?;
    let store = stores::get(&state.db, caller.tenant()?, &caller.store_scope(), id).await?;
    Ok(Json(store))
}

/// Changes a store; `"status": "disabled"` disables it and stops its keys' tokens (HQ admin).
#[utoipa::path(patch, path = "/stores/{store_id}", tag = "stores", security(("bearer" = [])),
    params(("store_id" = Uuid, Path)),
    request_body = UpdateStore,
    responses(
        (status = 200, description = "The store", body = Store),
        Unauthorized,
        Forbidden,
        NotFound,
        Unprocessable, BadRequest, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn update_store(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateStore>,
) -> Result<Json<Store>, ApiError> {
    caller.require(&[Role::HqAdmin])?;
    let changes = StoreChanges {
        name: body.name,
        address: body.address,
        inn: body.inn,
        kpp: body.kpp,
        status: body.status,
    };
    let tenant_id = caller.tenant()?;
    let change = AdminChange::begin(&state.db).await?;
    let store = stores::update(change.db(), tenant_id, id, changes).await?;
    change
        .commit(&caller, tenant_id, "store.updated", Some(store.id), &store)
        .await?;
    tracing::info!(store.id = %store.id, status = store.status.as_str(), "store updated");
    Ok(Json(store))
}
