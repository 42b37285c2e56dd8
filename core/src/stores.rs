//! Stores: a tenant's POS locations, managed by its HQ admins.

use chrono::{DateTime, Utc};
use entities::stores;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DatabaseConnection,
    EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result, is_unique_violation};
use crate::ids::{self, Status, utc};
use crate::principal::StoreScope;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Store {
    pub id: Uuid,
    /// The tenant's own code for the store, unique within the tenant.
    pub code: String,
    pub name: String,
    pub address: Option<String>,
    /// The store's own taxpayer number when it is a separate legal entity (a franchisee).
    pub inn: Option<String>,
    pub kpp: Option<String>,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct NewStore {
    pub code: String,
    pub name: String,
    pub address: Option<String>,
    pub inn: Option<String>,
    pub kpp: Option<String>,
}

/// Changes to a store; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct StoreChanges {
    pub name: Option<String>,
    pub address: Option<Option<String>>,
    pub inn: Option<Option<String>>,
    pub kpp: Option<Option<String>>,
    pub status: Option<Status>,
}

/// Lists stores ordered by code, after `after_code`.
#[derive(Debug, Clone)]
pub struct StoreQuery {
    pub status: Option<Status>,
    pub after_code: Option<String>,
    pub limit: u64,
}

/// Creates a store; `db` may be a transaction of the caller's.
pub async fn create<C: ConnectionTrait>(db: &C, tenant_id: Uuid, new: NewStore) -> Result<Store> {
    let code = ids::text("code", &new.code, 64)?;
    let model = stores::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        code: Set(code.clone()),
        name: Set(ids::text("name", &new.name, 200)?),
        address: Set(ids::optional_text("address", new.address.as_deref(), 500)?),
        inn: Set(ids::inn("inn", new.inn.as_deref())?),
        kpp: Set(ids::kpp("kpp", new.kpp.as_deref())?),
        status: Set(Status::Active.as_str().to_owned()),
        ..Default::default()
    };
    match model.insert(db).await {
        Ok(model) => Ok(view(model)),
        Err(e) if is_unique_violation(&e) => Err(Error::conflict(
            "store_code_taken",
            format!("the tenant already has a store with code `{code}`"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The stores of the tenant that `scope` may see.
pub async fn list(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    scope: &StoreScope,
    query: StoreQuery,
) -> Result<Vec<Store>> {
    let mut select = stores::Entity::find()
        .filter(stores::Column::TenantId.eq(tenant_id))
        .order_by_asc(stores::Column::Code)
        .limit(query.limit);
    if let StoreScope::Only(ids) = scope {
        select = select.filter(stores::Column::Id.is_in(ids.clone()));
    }
    if let Some(status) = query.status {
        select = select.filter(stores::Column::Status.eq(status.as_str()));
    }
    if let Some(after) = query.after_code {
        select = select.filter(stores::Column::Code.gt(after));
    }
    Ok(select.all(db).await?.into_iter().map(view).collect())
}

/// One store of the tenant, if `scope` may see it; any other id is "not found".
pub async fn get(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    scope: &StoreScope,
    id: Uuid,
) -> Result<Store> {
    if !scope.allows(id) {
        return Err(Error::NotFound("store"));
    }
    find(db, tenant_id, id).await.map(view)
}

/// Changes a store. Disabling it stops every token of its keys at once.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    id: Uuid,
    changes: StoreChanges,
) -> Result<Store> {
    let mut model: stores::ActiveModel = find(db, tenant_id, id).await?.into();
    if let Some(name) = changes.name {
        model.name = Set(ids::text("name", &name, 200)?);
    }
    if let Some(address) = changes.address {
        model.address = Set(ids::optional_text("address", address.as_deref(), 500)?);
    }
    if let Some(inn) = changes.inn {
        model.inn = Set(ids::inn("inn", inn.as_deref())?);
    }
    if let Some(kpp) = changes.kpp {
        model.kpp = Set(ids::kpp("kpp", kpp.as_deref())?);
    }
    if let Some(status) = changes.status {
        model.status = Set(status.as_str().to_owned());
    }
    model.updated_at = Set(Utc::now().into());
    Ok(view(model.update(db).await?))
}

/// Whether the tenant has store `id` (of any status).
pub async fn exists(db: &DatabaseConnection, tenant_id: Uuid, id: Uuid) -> Result<bool> {
    match find(db, tenant_id, id).await {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn find<C: ConnectionTrait>(db: &C, tenant_id: Uuid, id: Uuid) -> Result<stores::Model> {
    stores::Entity::find_by_id(id)
        .filter(stores::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("store"))
}

fn view(model: stores::Model) -> Store {
    Store {
        id: model.id,
        code: model.code,
        name: model.name,
        address: model.address,
        inn: model.inn,
        kpp: model.kpp,
        status: Status::from_stored(&model.status),
        created_at: utc(model.created_at),
        updated_at: utc(model.updated_at),
    }
}
