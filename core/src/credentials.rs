//! ЧЗ credentials: the tenant's True API key, discovery URL and region, with optional per-store
//! overrides for franchisees that are legal entities of their own. Keys are sealed at rest and
//! never leave iMark except towards ЧЗ.

use chrono::{DateTime, NaiveDate, Utc};
use entities::truemark_credentials as credentials;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ColumnTrait as _, Condition, ConnectionTrait, DatabaseConnection, EntityTrait as _,
    FromQueryResult as _, QueryFilter as _, QueryOrder as _, Statement,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use truemark::client::BaseUrl;
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crypto::{MasterKeys, Sealed};
use crate::error::{Error, Result};
use crate::ids::utc;

/// ЧЗ's production discovery URL.
pub const DEFAULT_BASE_URL: &str = "https://cdn.crpt.ru";
/// The region of a tenant that names none.
pub const DEFAULT_REGION: &str = "default";

/// Settings to store for the tenant, or for one store when `store_id` is set.
#[derive(Debug)]
pub struct NewCredentials {
    pub store_id: Option<Uuid>,
    pub api_key: SecretString,
    pub base_url: Option<String>,
    pub region: Option<String>,
    pub key_expires_on: Option<NaiveDate>,
}

/// Stored settings as they may be shown: the key masked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialsView {
    pub base_url: String,
    pub region: String,
    /// The key's last four characters, e.g. `••••7f3a`.
    pub api_key_masked: String,
    pub key_expires_on: Option<NaiveDate>,
    pub updated_at: DateTime<Utc>,
}

/// Where the settings in force for a store come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Tenant,
    Store,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EffectiveView {
    pub source: Source,
    #[serde(flatten)]
    pub settings: CredentialsView,
}

/// The tenant's settings, a store's override and what is in force for that store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsView {
    pub tenant: Option<CredentialsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<Uuid>,
    pub store_override: Option<CredentialsView>,
    /// What a check for this store uses; `null` when nothing is configured.
    pub effective: Option<EffectiveView>,
}

/// The credentials a check uses, with the key opened.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub base_url: Url,
    pub region: String,
    pub api_key: SecretString,
    pub key_expires_on: Option<NaiveDate>,
}

/// Stores (or replaces) the tenant's settings or a store's override. `allow_local` admits
/// plain-http and private, loopback and link-local addresses (an emulator on the LAN); without
/// it, ЧЗ keys travel only over https to public addresses.
pub async fn put<C: ConnectionTrait>(
    db: &C,
    master: &MasterKeys,
    tenant_id: Uuid,
    new: NewCredentials,
    allow_local: bool,
) -> Result<CredentialsView> {
    let api_key = api_key(&new.api_key)?;
    let base_url = base_url(new.base_url.as_deref(), allow_local)?;
    let region = region(new.region.as_deref())?;
    let sealed = master
        .seal(api_key, &context(tenant_id, new.store_id))
        .map_err(Error::internal)?;
    let last4: String = {
        let chars: Vec<char> = api_key.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };

    // One statement, so that concurrent PUTs and DELETEs of the same scope never interleave.
    let conflict = match new.store_id {
        None => "(tenant_id) WHERE store_id IS NULL",
        Some(_) => "(tenant_id, store_id) WHERE store_id IS NOT NULL",
    };
    let saved = credentials::Model::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "INSERT INTO truemark_credentials (id, tenant_id, store_id, base_url, region, \
                 key_ciphertext, key_nonce, master_key_id, key_last4, key_expires_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT {conflict} DO UPDATE SET base_url = EXCLUDED.base_url, \
                 region = EXCLUDED.region, key_ciphertext = EXCLUDED.key_ciphertext, \
                 key_nonce = EXCLUDED.key_nonce, master_key_id = EXCLUDED.master_key_id, \
                 key_last4 = EXCLUDED.key_last4, key_expires_on = EXCLUDED.key_expires_on, \
                 updated_at = now() \
             RETURNING *"
        ),
        [
            Uuid::now_v7().into(),
            tenant_id.into(),
            new.store_id.into(),
            base_url.to_string().into(),
            region.into(),
            sealed.ciphertext.into(),
            sealed.nonce.into(),
            sealed.key_id.into(),
            last4.into(),
            new.key_expires_on.into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or_else(|| Error::internal(anyhow::anyhow!("the upsert returned no row")))?;
    Ok(view(&saved))
}

/// Removes the tenant's settings or a store's override; removing what is absent is a 404.
pub async fn delete<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
) -> Result<()> {
    let mut query =
        credentials::Entity::delete_many().filter(credentials::Column::TenantId.eq(tenant_id));
    query = match store_id {
        Some(id) => query.filter(credentials::Column::StoreId.eq(id)),
        None => query.filter(credentials::Column::StoreId.is_null()),
    };
    if query.exec(db).await?.rows_affected == 0 {
        return Err(Error::NotFound("ЧЗ settings"));
    }
    Ok(())
}

/// The settings view for the tenant, and for `store_id` when given.
pub async fn settings(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
) -> Result<SettingsView> {
    let tenant = find(db, tenant_id, None).await?.as_ref().map(view);
    let store_override = match store_id {
        Some(id) => find(db, tenant_id, Some(id)).await?.as_ref().map(view),
        None => None,
    };
    let effective = match (&store_override, &tenant) {
        (Some(settings), _) => Some(EffectiveView {
            source: Source::Store,
            settings: settings.clone(),
        }),
        (None, Some(settings)) => Some(EffectiveView {
            source: Source::Tenant,
            settings: settings.clone(),
        }),
        (None, None) => None,
    };
    Ok(SettingsView {
        tenant,
        store_id,
        store_override,
        effective,
    })
}

/// The credentials in force for a store (its override, else the tenant's), with the key opened.
pub async fn effective(
    db: &DatabaseConnection,
    master: &MasterKeys,
    tenant_id: Uuid,
    store_id: Uuid,
) -> Result<Option<Credentials>> {
    // The store's own row wins over the tenant's; both are read in one round trip, since this
    // runs for every document.
    let Some(model) = credentials::Entity::find()
        .filter(credentials::Column::TenantId.eq(tenant_id))
        .filter(
            Condition::any()
                .add(credentials::Column::StoreId.eq(store_id))
                .add(credentials::Column::StoreId.is_null()),
        )
        .order_by_asc(Expr::col(credentials::Column::StoreId).is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let api_key = open(master, &model)?;
    let base_url = Url::parse(&model.base_url).map_err(Error::internal)?;
    Ok(Some(Credentials {
        base_url,
        region: model.region,
        api_key,
        key_expires_on: model.key_expires_on,
    }))
}

async fn find(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
) -> Result<Option<credentials::Model>> {
    let mut query = credentials::Entity::find().filter(credentials::Column::TenantId.eq(tenant_id));
    query = match store_id {
        Some(id) => query.filter(credentials::Column::StoreId.eq(id)),
        None => query.filter(credentials::Column::StoreId.is_null()),
    };
    Ok(query.one(db).await?)
}

/// What a sealed key is bound to: a key copied to another tenant's or store's row won't open.
pub(crate) fn context(tenant_id: Uuid, store_id: Option<Uuid>) -> Vec<u8> {
    let mut context = tenant_id.as_bytes().to_vec();
    context.extend_from_slice(store_id.unwrap_or_default().as_bytes());
    context
}

fn view(model: &credentials::Model) -> CredentialsView {
    CredentialsView {
        base_url: model.base_url.clone(),
        region: model.region.clone(),
        api_key_masked: format!("••••{}", model.key_last4),
        key_expires_on: model.key_expires_on,
        updated_at: utc(model.updated_at),
    }
}

fn api_key(key: &SecretString) -> Result<&str> {
    let key = key.expose_secret().trim();
    if key.len() < 8 || key.len() > 512 {
        return Err(Error::invalid("api_key", "must be 8 to 512 characters"));
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            "api_key",
            "must not contain spaces or control characters",
        ));
    }
    Ok(key)
}

fn base_url(value: Option<&str>, allow_local: bool) -> Result<BaseUrl> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_BASE_URL);
    let url: BaseUrl = value
        .parse()
        .map_err(|e: truemark::client::InvalidServiceUrl| {
            Error::invalid("base_url", e.to_string())
        })?;
    if !allow_local {
        if url.as_url().scheme() != "https" {
            return Err(Error::invalid("base_url", "must use https"));
        }
        if is_local(url.as_url()) {
            return Err(Error::invalid(
                "base_url",
                "must not name a loopback, private or link-local address",
            ));
        }
    }
    Ok(url)
}

/// Whether `url` names this machine or a private network by address or by `localhost`. Names
/// that merely resolve to such addresses are not caught here.
fn is_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1])
        }
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    }
}

fn region(value: Option<&str>) -> Result<String> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_REGION);
    let valid = value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(Error::invalid(
            "region",
            "must be 1 to 32 characters from a-z, 0-9 and '-'",
        ));
    }
    Ok(value.to_owned())
}

/// The ЧЗ keys that may refresh `group`, best first: keys of active tenants and stores
/// configured for that discovery URL and region, those not known to have expired first, the
/// most recently set first. A refresh tries them in turn while ЧЗ refuses them.
pub async fn keys_for_group(
    db: &DatabaseConnection,
    master: &MasterKeys,
    group: &crate::cdn::CdnGroup,
) -> Result<Vec<SecretString>> {
    let mut rows = credentials::Entity::find()
        .filter(credentials::Column::BaseUrl.eq(group.base_key()))
        .filter(credentials::Column::Region.eq(group.region()))
        .filter(Expr::cust(
            "tenant_id IN (SELECT id FROM tenants WHERE status = 'active')",
        ))
        .filter(Expr::cust(
            "(store_id IS NULL OR store_id IN (SELECT id FROM stores WHERE status = 'active'))",
        ))
        .all(db)
        .await?;
    let today = Utc::now().date_naive();
    rows.sort_by_key(|r| {
        (
            r.key_expires_on.is_some_and(|d| d < today),
            std::cmp::Reverse(r.updated_at),
        )
    });
    let mut keys: Vec<SecretString> = Vec::new();
    for row in &rows {
        if let Ok(key) = open(master, row)
            && !keys
                .iter()
                .any(|k| k.expose_secret() == key.expose_secret())
        {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn open(master: &MasterKeys, model: &credentials::Model) -> Result<SecretString> {
    let sealed = Sealed {
        key_id: model.master_key_id.clone(),
        nonce: model.key_nonce.clone(),
        ciphertext: model.key_ciphertext.clone(),
    };
    master
        .open(&sealed, &context(model.tenant_id, model.store_id))
        .map_err(Error::internal)
}
