//! Tenants: the organisations that use iMark, created by the platform operator.

use chrono::{DateTime, Utc};
use entities::tenants;
use sea_orm::TransactionSession as _;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait as _,
    QueryOrder as _, QuerySelect as _, TransactionTrait,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crypto::ApiKeyHasher;
use crate::error::{Error, Result};
use crate::ids::{self, Status, utc};
use crate::keys::{self, IssuedKey, KeyScope};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    /// The organisation's taxpayer number (ИНН), if given.
    pub inn: Option<String>,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new tenant with its first HQ admin key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OnboardedTenant {
    pub tenant: Tenant,
    pub hq_key: IssuedKey,
}

#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the ИНН.
    pub inn: Option<Option<String>>,
    pub status: Option<Status>,
}

/// Creates a tenant and its first HQ admin key in one transaction (a savepoint when `db` is the
/// caller's transaction).
pub async fn create<C: TransactionTrait>(
    db: &C,
    hasher: &ApiKeyHasher,
    name: &str,
    inn: Option<&str>,
) -> Result<OnboardedTenant> {
    let name = ids::text("name", name, 200)?;
    let inn = ids::inn("inn", inn)?;

    let txn = db.begin().await?;
    let tenant = tenants::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        inn: Set(inn),
        status: Set(Status::Active.as_str().to_owned()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let hq_key = keys::issue_in(
        &txn,
        hasher,
        tenant.id,
        KeyScope::HqAdmin,
        "first HQ key",
        "platform",
    )
    .await?;
    txn.commit().await?;

    Ok(OnboardedTenant {
        tenant: view(tenant),
        hq_key,
    })
}

/// All tenants, oldest first.
pub async fn list(db: &DatabaseConnection, limit: u64, offset: u64) -> Result<Vec<Tenant>> {
    let rows = tenants::Entity::find()
        .order_by_asc(tenants::Column::CreatedAt)
        .order_by_asc(tenants::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(view).collect())
}

pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<Tenant> {
    find(db, id).await.map(view)
}

/// Changes a tenant's name, ИНН or status. Disabling a tenant stops every token of its keys.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    changes: TenantChanges,
) -> Result<Tenant> {
    let mut model: tenants::ActiveModel = find(db, id).await?.into();
    if let Some(name) = changes.name {
        model.name = Set(ids::text("name", &name, 200)?);
    }
    if let Some(inn) = changes.inn {
        model.inn = Set(ids::inn("inn", inn.as_deref())?);
    }
    if let Some(status) = changes.status {
        model.status = Set(status.as_str().to_owned());
    }
    model.updated_at = Set(Utc::now().into());
    Ok(view(model.update(db).await?))
}

/// Issues one more HQ admin key, e.g. when the first one was lost.
pub async fn issue_hq_key<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    hasher: &ApiKeyHasher,
    id: Uuid,
    name: &str,
) -> Result<IssuedKey> {
    find(db, id).await?;
    keys::issue(db, hasher, id, KeyScope::HqAdmin, name, "platform").await
}

async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<tenants::Model> {
    tenants::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("tenant"))
}

fn view(model: tenants::Model) -> Tenant {
    Tenant {
        id: model.id,
        name: model.name,
        inn: model.inn,
        status: Status::from_stored(&model.status),
        created_at: utc(model.created_at),
        updated_at: utc(model.updated_at),
    }
}
