//! The platform operator's tasks on the command line (`imark-api tenant …`, `keys …`, `demo`):
//! onboarding a tenant without going through HTTP, re-sealing every stored ЧЗ key under a new
//! master key, and making keys in the format the configuration expects. The binary only parses
//! arguments and prints what these functions return.

pub mod demo;

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use entities::tenants as tenant_rows;
use entities::truemark_credentials as credential_rows;
use rand::RngCore as _;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, TransactionTrait as _,
};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use uuid::Uuid;

use crate::audit::{self, Entry};
use crate::credentials;
use crate::crypto::{ApiKeyHasher, MasterKeys, Sealed, random_token};
use crate::error::{Error, Result};
use crate::ids;
use crate::keys::IssuedKey;
use crate::principal::Principal;
use crate::stores::{self, NewStore, Store};
use crate::tenants::{self, Tenant};

/// The advisory lock that serialises tenant creation from the command line, so that two
/// operators onboarding the same ИНН at once end with one tenant.
const TENANT_CREATE_LOCK: i64 = 0x1_3A7C_7E4A;

/// A tenant to onboard from the command line. Unlike `POST /tenants`, the ИНН is required: it is
/// what tells an organisation that is already onboarded.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub inn: String,
    pub first_store: Option<FirstStore>,
}

/// A store created together with the tenant.
#[derive(Debug, Clone)]
pub struct FirstStore {
    pub code: String,
    pub name: String,
}

/// A tenant onboarded from the command line: its first HQ key is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub hq_key: IssuedKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<Store>,
}

/// Creates a tenant, its first HQ admin key and optionally its first store, all or nothing,
/// through the same functions as `POST /tenants` and `POST /stores`, with the same audit records
/// (by `platform`).
///
/// Errors: `Invalid` for a bad name, ИНН or store field; `Conflict` (`tenant_exists`) when a
/// tenant with this ИНН exists already.
pub async fn create_tenant(
    db: &DatabaseConnection,
    hasher: &ApiKeyHasher,
    new: NewTenant,
) -> Result<CreatedTenant> {
    let inn = ids::inn("inn", Some(&new.inn))?
        .ok_or_else(|| Error::invalid("inn", "must be 10 or 12 digits"))?;

    let txn = db.begin().await?;
    txn.execute_unprepared(&format!(
        "SELECT pg_advisory_xact_lock({TENANT_CREATE_LOCK})"
    ))
    .await?;
    if let Some(existing) = tenant_rows::Entity::find()
        .filter(tenant_rows::Column::Inn.eq(inn.as_str()))
        .one(&txn)
        .await?
    {
        return Err(Error::conflict(
            "tenant_exists",
            format!(
                "tenant {} («{}») already has ИНН {inn}; use it, or issue it another HQ key with \
                 POST /tenants/{}/keys",
                existing.id, existing.name, existing.id
            ),
        ));
    }
    let onboarded = tenants::create(&txn, hasher, &new.name, Some(&inn)).await?;
    let tenant_id = onboarded.tenant.id;
    let details = serde_json::json!({ "tenant": onboarded.tenant, "hq_key": onboarded.hq_key.key });
    record(&txn, tenant_id, "tenant.created", None, &details).await?;
    let store = match new.first_store {
        Some(first) => {
            let store = NewStore {
                code: first.code,
                name: first.name,
                ..NewStore::default()
            };
            let store = stores::create(&txn, tenant_id, store).await?;
            record(&txn, tenant_id, "store.created", Some(store.id), &store).await?;
            Some(store)
        }
        None => None,
    };
    txn.commit().await?;

    Ok(CreatedTenant {
        tenant: onboarded.tenant,
        hq_key: onboarded.hq_key,
        store,
    })
}

/// Appends the audit record of a change the platform operator made from the command line, in the
/// change's own transaction, as the API does for the same change.
pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    action: &str,
    store_id: Option<Uuid>,
    details: &impl Serialize,
) -> Result<()> {
    let details = serde_json::to_value(details).map_err(Error::internal)?;
    let entry = Entry::admin(&Principal::platform(), action, store_id, details);
    audit::append(db, tenant_id, entry).await?;
    Ok(())
}

impl CreatedTenant {
    /// The human-readable report of `imark-api tenant create`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let t = &self.tenant;
        let _ = writeln!(out, "Tenant created.");
        let _ = writeln!(out, "  id:    {}", t.id);
        let _ = writeln!(out, "  name:  {}", t.name);
        let _ = writeln!(out, "  ИНН:   {}", t.inn.as_deref().unwrap_or("—"));
        if let Some(store) = &self.store {
            let _ = writeln!(
                out,
                "  store: {} «{}» ({})",
                store.code, store.name, store.id
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Its first HQ admin key ({}). It is shown only now: iMark keeps only its hash.",
            self.hq_key.key.id
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "    {}", self.hq_key.api_key);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Hand it to the tenant's HQ admin; it is exchanged for a token at GET /token \
             (header X-API-Key)."
        );
        out
    }
}

/// What `imark-api keys rotate-master` did.
#[derive(Debug, Clone, Serialize)]
pub struct Resealing {
    /// The master key every stored ЧЗ key is now sealed under.
    pub master_key_id: String,
    /// ЧЗ keys re-sealed by this run; 0 when every key was already under the first master key.
    pub resealed: u64,
    /// Transactions committed, one per batch.
    pub batches: u64,
}

impl Resealing {
    pub fn text(&self) -> String {
        format!(
            "Re-sealed {} ЧЗ key(s) under master key `{}` in {} batch(es). Every stored ЧЗ key now \
             opens with `{}` alone: the other keys can be removed from IMARK_MASTER_KEYS once \
             every API and worker process runs with `{}` first.\n",
            self.resealed, self.master_key_id, self.batches, self.master_key_id, self.master_key_id
        )
    }
}

/// Re-seals every stored ЧЗ key that is not sealed under the first configured master key, in
/// transactions of at most `batch_size` keys. Running it again re-seals nothing.
///
/// First every key to re-seal is opened without writing anything: when one does not open
/// (sealed under a master key that is no longer configured, or damaged), the error names the
/// keys and nothing changes. `updated_at` is left alone: re-sealing is not a new setting.
pub async fn reseal_credentials(
    db: &DatabaseConnection,
    master: &MasterKeys,
    batch_size: u64,
) -> Result<Resealing> {
    let current = master
        .current_id()
        .ok_or_else(|| Error::invalid("IMARK_MASTER_KEYS", "no master key is configured"))?
        .to_owned();
    let batch_size = batch_size.clamp(1, 10_000);

    check_all_open(db, master, &current, batch_size).await?;

    let mut resealed = 0;
    let mut batches = 0;
    loop {
        let txn = db.begin().await?;
        let rows = credential_rows::Entity::find()
            .filter(credential_rows::Column::MasterKeyId.ne(current.as_str()))
            .order_by_asc(credential_rows::Column::Id)
            .limit(batch_size)
            .lock_exclusive()
            .all(&txn)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let context = credentials::context(row.tenant_id, row.store_id);
            let key = master
                .open(&sealed_of(row), &context)
                .map_err(|e| unopenable(1, &e.to_string()))?;
            let sealed = master
                .seal(key.expose_secret(), &context)
                .map_err(Error::internal)?;
            credential_rows::Entity::update_many()
                .col_expr(
                    credential_rows::Column::KeyCiphertext,
                    Expr::value(sealed.ciphertext),
                )
                .col_expr(credential_rows::Column::KeyNonce, Expr::value(sealed.nonce))
                .col_expr(
                    credential_rows::Column::MasterKeyId,
                    Expr::value(sealed.key_id),
                )
                .filter(credential_rows::Column::Id.eq(row.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        resealed += rows.len() as u64;
        batches += 1;
    }

    Ok(Resealing {
        master_key_id: current,
        resealed,
        batches,
    })
}

/// Opens every ЧЗ key not sealed under `current`, page by page, and fails naming the master key
/// ids of those that do not open.
async fn check_all_open(
    db: &DatabaseConnection,
    master: &MasterKeys,
    current: &str,
    page: u64,
) -> Result<()> {
    let mut failed: Vec<(String, u64)> = Vec::new();
    let mut after = None;
    loop {
        let mut query = credential_rows::Entity::find()
            .filter(credential_rows::Column::MasterKeyId.ne(current))
            .order_by_asc(credential_rows::Column::Id)
            .limit(page);
        if let Some(after) = after {
            query = query.filter(credential_rows::Column::Id.gt(after));
        }
        let rows = query.all(db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in &rows {
            let context = credentials::context(row.tenant_id, row.store_id);
            if master.open(&sealed_of(row), &context).is_err() {
                match failed.iter_mut().find(|(id, _)| *id == row.master_key_id) {
                    Some((_, count)) => *count += 1,
                    None => failed.push((row.master_key_id.clone(), 1)),
                }
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let total = failed.iter().map(|(_, n)| n).sum();
    let ids = failed
        .iter()
        .map(|(id, n)| format!("`{id}` ({n})"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(unopenable(total, &format!("sealed under {ids}")))
}

fn unopenable(count: u64, detail: &str) -> Error {
    Error::invalid(
        "IMARK_MASTER_KEYS",
        format!(
            "{count} stored ЧЗ key(s) do not open with the configured master keys ({detail}); \
             nothing was re-sealed. Configure the new key first and the old ones after it, then \
             run this again"
        ),
    )
}

fn sealed_of(row: &credential_rows::Model) -> Sealed {
    Sealed {
        key_id: row.master_key_id.clone(),
        nonce: row.key_nonce.clone(),
        ciphertext: row.key_ciphertext.clone(),
    }
}

/// Which kind of configured key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A JWT signing key for `IMARK_JWT_KEYS`.
    Signing,
    /// An AES-256-GCM master key for `IMARK_MASTER_KEYS`.
    Master,
}

/// A fresh key, as one entry of its configuration variable.
#[derive(Clone, Serialize)]
pub struct NewKey {
    /// The variable the entry goes into.
    pub variable: &'static str,
    pub id: String,
    pub secret: String,
    /// `id:secret`, ready to put first in `variable`.
    pub entry: String,
    /// How to roll it out.
    pub procedure: Vec<String>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("variable", &self.variable)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Makes a random key of `kind` with the id `id`, or a dated one: a signing secret of 256 random
/// bits as 43 URL-safe characters, or a master key of 32 random bytes in standard base64.
///
/// Errors: `Invalid` when `id` is not 1 to 32 characters from `a-z A-Z 0-9 - _`.
pub fn new_key(kind: KeyKind, id: Option<&str>) -> Result<NewKey> {
    let prefix = match kind {
        KeyKind::Signing => "jwt",
        KeyKind::Master => "master",
    };
    let id = match id {
        Some(id) => id.trim().to_owned(),
        None => format!(
            "{prefix}-{}-{:04x}",
            chrono::Utc::now().format("%Y%m%d"),
            rand::random::<u16>()
        ),
    };
    let id_ok = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Err(Error::invalid(
            "id",
            "must be 1 to 32 characters from a-z, A-Z, 0-9, '-' and '_'",
        ));
    }

    let (variable, secret, procedure) = match kind {
        KeyKind::Signing => (
            "IMARK_JWT_KEYS",
            random_token(32),
            vec![
                "Put the entry first in IMARK_JWT_KEYS on every API process \
                 (IMARK_JWT_KEYS=<entry>,<the current keys>) and restart them: new tokens are \
                 signed with it, tokens signed with the old keys keep verifying."
                    .to_owned(),
                "Wait one token lifetime (IMARK_JWT_TTL_SECONDS, 900 s by default): by then every \
                 token signed with an old key has expired."
                    .to_owned(),
                "Remove the old keys from IMARK_JWT_KEYS and restart. Nothing stored needs \
                 re-signing: tokens are short-lived and API keys do not depend on this key."
                    .to_owned(),
            ],
        ),
        KeyKind::Master => {
            let mut bytes = [0_u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            (
                "IMARK_MASTER_KEYS",
                BASE64.encode(bytes),
                vec![
                    "Put the entry first in IMARK_MASTER_KEYS on every API and worker process \
                     (IMARK_MASTER_KEYS=<entry>,<the current keys>) and restart them: new ЧЗ keys \
                     are sealed with it, the old ones still open."
                        .to_owned(),
                    "Run `imark-api keys rotate-master` with that configuration: it re-seals \
                     every stored ЧЗ key under the new key and says how many; running it again \
                     is harmless and should report 0."
                        .to_owned(),
                    "Remove the old keys from IMARK_MASTER_KEYS and restart. Keep a copy of them \
                     until a backup taken before the rotation is no longer needed."
                        .to_owned(),
                ],
            )
        }
    };
    Ok(NewKey {
        variable,
        entry: format!("{id}:{secret}"),
        id,
        secret,
        procedure,
    })
}

impl NewKey {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "A new key for {} (keep it secret; it is not stored anywhere):",
            self.variable
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "    {}", self.entry);
        let _ = writeln!(out);
        let _ = writeln!(out, "To roll it out:");
        for (n, step) in self.procedure.iter().enumerate() {
            let _ = writeln!(out, "  {}. {step}", n + 1);
        }
        out
    }
}
