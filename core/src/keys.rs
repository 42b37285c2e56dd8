//! API keys: issued, rotated and revoked by HQ admins (the first HQ key by the platform), shown
//! once at creation, stored only as keyed hashes, and exchanged at `/token` for access tokens.

use chrono::{DateTime, Utc};
use entities::{api_key_stores, api_keys, stores};
use sea_orm::TransactionSession as _;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DatabaseConnection,
    EntityTrait as _, FromQueryResult, QueryFilter as _, QueryOrder as _, Statement,
    TransactionTrait,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Role;
use crate::crypto::{ApiKeyHasher, random_token};
use crate::error::{Error, Result};
use crate::ids::{self, utc};
use crate::principal::Principal;

/// Random bytes in a key: 256 bits.
const KEY_BYTES: usize = 32;
/// How many leading characters of a key are kept in clear to tell keys apart.
const VISIBLE_PREFIX_LEN: usize = 12;

/// What an issued key may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    HqAdmin,
    Store(Uuid),
    /// An auditor of the whole tenant (`None`) or of the listed stores.
    Auditor(Option<Vec<Uuid>>),
}

impl KeyScope {
    fn role(&self) -> Role {
        match self {
            Self::HqAdmin => Role::HqAdmin,
            Self::Store(_) => Role::Store,
            Self::Auditor(_) => Role::Auditor,
        }
    }
}

/// An API key as it is shown after creation: everything but the secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub role: Role,
    pub name: String,
    /// The key's first characters, to tell keys apart; never enough to use it.
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<Uuid>,
    /// For auditor keys: the stores covered, or `null` for the whole tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_ids: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key that replaced this one when it was rotated.
    pub replaced_by: Option<Uuid>,
}

/// A newly issued key: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedKey {
    /// The secret API key. Store it now: iMark keeps only its hash.
    pub api_key: String,
    #[serde(flatten)]
    pub key: ApiKeyView,
}

/// Generates a fresh key for `role`, e.g. `imk_st_…`.
fn generate(role: Role) -> String {
    let tag = match role {
        Role::Platform => "pl",
        Role::HqAdmin => "hq",
        Role::Store => "st",
        Role::Auditor => "au",
    };
    format!("imk_{tag}_{}", random_token(KEY_BYTES))
}

/// Issues a key within `tenant_id`, all or nothing. Store ids must belong to the tenant; a
/// disabled store gets no new keys.
pub async fn issue<C: TransactionTrait>(
    db: &C,
    hasher: &ApiKeyHasher,
    tenant_id: Uuid,
    scope: KeyScope,
    name: &str,
    created_by: &str,
) -> Result<IssuedKey> {
    let txn = db.begin().await?;
    let issued = issue_in(&txn, hasher, tenant_id, scope, name, created_by).await?;
    txn.commit().await?;
    Ok(issued)
}

/// [`issue`] inside the caller's transaction.
pub async fn issue_in<C: ConnectionTrait>(
    db: &C,
    hasher: &ApiKeyHasher,
    tenant_id: Uuid,
    scope: KeyScope,
    name: &str,
    created_by: &str,
) -> Result<IssuedKey> {
    let name = ids::text("name", name, 200)?;
    let scope = match scope {
        KeyScope::Auditor(Some(mut ids)) => {
            ids.sort_unstable();
            ids.dedup();
            KeyScope::Auditor(Some(ids))
        }
        other => other,
    };
    check_scope(db, tenant_id, &scope).await?;

    let role = scope.role();
    let secret = generate(role);
    let (store_id, store_ids) = match &scope {
        KeyScope::HqAdmin => (None, None),
        KeyScope::Store(id) => (Some(*id), None),
        KeyScope::Auditor(ids) => (None, ids.clone()),
    };
    let model = api_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        store_id: Set(store_id),
        role: Set(role.as_str().to_owned()),
        name: Set(name),
        prefix: Set(secret.chars().take(VISIBLE_PREFIX_LEN).collect()),
        key_hash: Set(hasher.digest(&secret)),
        all_stores: Set(matches!(scope, KeyScope::Auditor(None))),
        created_by: Set(created_by.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await?;

    if let Some(ids) = &store_ids {
        let grants = ids.iter().map(|store_id| api_key_stores::ActiveModel {
            api_key_id: Set(model.id),
            tenant_id: Set(tenant_id),
            store_id: Set(*store_id),
        });
        api_key_stores::Entity::insert_many(grants).exec(db).await?;
    }

    Ok(IssuedKey {
        api_key: secret,
        key: view(model, store_ids),
    })
}

async fn check_scope<C: ConnectionTrait>(db: &C, tenant_id: Uuid, scope: &KeyScope) -> Result<()> {
    let (field, wanted): (&str, Vec<Uuid>) = match scope {
        KeyScope::HqAdmin | KeyScope::Auditor(None) => return Ok(()),
        KeyScope::Store(id) => ("store_id", vec![*id]),
        KeyScope::Auditor(Some(ids)) if ids.is_empty() => {
            return Err(Error::invalid(
                "store_ids",
                "must name at least one store, or be null",
            ));
        }
        KeyScope::Auditor(Some(ids)) => ("store_ids", ids.clone()),
    };
    let found = stores::Entity::find()
        .filter(stores::Column::TenantId.eq(tenant_id))
        .filter(stores::Column::Id.is_in(wanted.clone()))
        .all(db)
        .await?;
    for id in &wanted {
        match found.iter().find(|s| s.id == *id) {
            None => {
                return Err(Error::invalid(
                    field,
                    format!("no store {id} in this tenant"),
                ));
            }
            Some(store) if store.status != "active" => {
                return Err(Error::invalid(field, format!("store {id} is disabled")));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The keys of a tenant, newest first, optionally only those of one store.
pub async fn list(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
    include_revoked: bool,
) -> Result<Vec<ApiKeyView>> {
    let mut query = api_keys::Entity::find()
        .filter(api_keys::Column::TenantId.eq(tenant_id))
        .order_by_desc(api_keys::Column::CreatedAt)
        .order_by_desc(api_keys::Column::Id);
    if let Some(store_id) = store_id {
        query = query.filter(api_keys::Column::StoreId.eq(store_id));
    }
    if !include_revoked {
        query = query.filter(api_keys::Column::RevokedAt.is_null());
    }
    let keys = query.all(db).await?;

    let key_ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
    let grants = api_key_stores::Entity::find()
        .filter(api_key_stores::Column::ApiKeyId.is_in(key_ids))
        .all(db)
        .await?;
    Ok(keys
        .into_iter()
        .map(|key| {
            let store_ids = grants_of(&key, &grants);
            view(key, store_ids)
        })
        .collect())
}

/// One key of the tenant.
pub async fn get<C: ConnectionTrait>(db: &C, tenant_id: Uuid, id: Uuid) -> Result<ApiKeyView> {
    let key = find(db, tenant_id, id).await?;
    let grants = api_key_stores::Entity::find()
        .filter(api_key_stores::Column::ApiKeyId.eq(id))
        .all(db)
        .await?;
    let store_ids = grants_of(&key, &grants);
    Ok(view(key, store_ids))
}

/// Revokes a key: its tokens stop working at once. Revoking a revoked key changes nothing.
pub async fn revoke<C: ConnectionTrait>(db: &C, tenant_id: Uuid, id: Uuid) -> Result<ApiKeyView> {
    find(db, tenant_id, id).await?;
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::current_timestamp())
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::TenantId.eq(tenant_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    get(db, tenant_id, id).await
}

/// Replaces a key with a new one of the same scope and revokes the old one, atomically.
pub async fn rotate<C: TransactionTrait>(
    db: &C,
    hasher: &ApiKeyHasher,
    tenant_id: Uuid,
    id: Uuid,
    created_by: &str,
) -> Result<IssuedKey> {
    let txn = db.begin().await?;
    let old = get(&txn, tenant_id, id).await?;
    if old.revoked_at.is_some() {
        return Err(Error::conflict(
            "key_revoked",
            "a revoked key cannot be rotated",
        ));
    }
    let scope = match (old.role, old.store_id) {
        (Role::Store, Some(store_id)) => KeyScope::Store(store_id),
        (Role::Auditor, _) => KeyScope::Auditor(old.store_ids.clone()),
        (Role::HqAdmin, None) => KeyScope::HqAdmin,
        (role, store) => {
            return Err(Error::internal(anyhow::anyhow!(
                "key {id} has role {} with store {store:?}",
                role.as_str()
            )));
        }
    };
    let issued = issue_in(&txn, hasher, tenant_id, scope, &old.name, created_by).await?;

    let revoked = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::current_timestamp())
        .col_expr(api_keys::Column::ReplacedBy, Expr::value(issued.key.id))
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected != 1 {
        // Another request revoked or rotated it meanwhile; keep exactly one successor.
        return Err(Error::conflict(
            "key_revoked",
            "the key was revoked meanwhile",
        ));
    }
    txn.commit().await?;
    Ok(issued)
}

async fn find<C: ConnectionTrait>(db: &C, tenant_id: Uuid, id: Uuid) -> Result<api_keys::Model> {
    api_keys::Entity::find_by_id(id)
        .filter(api_keys::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("key"))
}

fn grants_of(key: &api_keys::Model, grants: &[api_key_stores::Model]) -> Option<Vec<Uuid>> {
    if key.role != Role::Auditor.as_str() || key.all_stores {
        return None;
    }
    Some(
        grants
            .iter()
            .filter(|g| g.api_key_id == key.id)
            .map(|g| g.store_id)
            .collect(),
    )
}

fn view(key: api_keys::Model, store_ids: Option<Vec<Uuid>>) -> ApiKeyView {
    ApiKeyView {
        id: key.id,
        role: Role::from_stored(&key.role).unwrap_or(Role::Store),
        name: key.name,
        prefix: key.prefix,
        store_id: key.store_id,
        store_ids,
        created_at: utc(key.created_at),
        created_by: key.created_by,
        last_used_at: key.last_used_at.map(utc),
        revoked_at: key.revoked_at.map(utc),
        replaced_by: key.replaced_by,
    }
}

/// Finds who presents `key`: the platform operator or a live key of an active tenant and store.
/// Records the key's use. Any failure is the same 401, so a caller learns nothing about keys.
pub async fn authenticate(
    db: &DatabaseConnection,
    hasher: &ApiKeyHasher,
    platform_key: &secrecy::SecretString,
    key: &str,
) -> Result<Principal> {
    if hasher.matches(key, platform_key) {
        return Ok(Principal::platform());
    }
    let Some(row) = api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hasher.digest(key)))
        .one(db)
        .await?
    else {
        return Err(Error::Unauthorized("invalid_api_key"));
    };
    let principal = resolve(db, row.id).await?;
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::LastUsedAt, Expr::current_timestamp())
        .filter(api_keys::Column::Id.eq(row.id))
        .exec(db)
        .await?;
    Ok(principal)
}

/// Loads the caller behind API key `id` as it is now: refused when the key is revoked or its
/// tenant or store is disabled. Called on every authenticated request, so revocation is
/// immediate.
pub async fn resolve(db: &DatabaseConnection, id: Uuid) -> Result<Principal> {
    // The key with its tenant's and store's status in one round trip: this runs before every
    // authenticated request.
    let key = KeyStatus::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT k.id, k.tenant_id, k.store_id, k.role, k.all_stores, \
             k.revoked_at IS NOT NULL AS revoked, t.status AS tenant_status, \
             s.status AS store_status \
         FROM api_keys k \
         LEFT JOIN tenants t ON t.id = k.tenant_id \
         LEFT JOIN stores s ON s.id = k.store_id \
         WHERE k.id = $1",
        [id.into()],
    ))
    .one(db)
    .await?
    .ok_or(Error::Unauthorized("invalid_token"))?;
    if key.revoked {
        return Err(Error::Unauthorized("key_revoked"));
    }
    match key.tenant_status.as_deref() {
        None => return Err(Error::Unauthorized("invalid_token")),
        Some("active") => {}
        Some(_) => return Err(Error::Unauthorized("tenant_disabled")),
    }
    if key.store_id.is_some() {
        match key.store_status.as_deref() {
            None => return Err(Error::Unauthorized("invalid_token")),
            Some("active") => {}
            Some(_) => return Err(Error::Unauthorized("store_disabled")),
        }
    }
    let role = Role::from_stored(&key.role).ok_or(Error::Unauthorized("invalid_token"))?;
    let auditor_stores = if role == Role::Auditor && !key.all_stores {
        let grants = api_key_stores::Entity::find()
            .filter(api_key_stores::Column::ApiKeyId.eq(key.id))
            .all(db)
            .await?;
        Some(grants.into_iter().map(|g| g.store_id).collect())
    } else {
        None
    };
    Ok(Principal {
        role,
        api_key_id: Some(key.id),
        tenant_id: Some(key.tenant_id),
        store_id: key.store_id,
        auditor_stores,
    })
}

/// What `resolve` reads of a key, its tenant and its store.
#[derive(Debug, FromQueryResult)]
struct KeyStatus {
    id: Uuid,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
    role: String,
    all_stores: bool,
    revoked: bool,
    tenant_status: Option<String>,
    store_status: Option<String>,
}
