//! The demo tenant of a development machine (`imark-api demo`): a tenant, a store, the tenant's
//! ЧЗ key pointing at the emulator, a store key and a store token, with ready-to-paste requests
//! whose verdicts are known from CRPT's acceptance catalogue.
//!
//! Running it again reuses everything: the ids and keys are kept in a private state file, and
//! the tenant and store are found in the database by their demo ИНН and code when that file is
//! gone. A lost key is then issued anew and the demo keys it replaces are revoked, so that a
//! demo tenant never collects live keys nobody holds. Its inputs (the ЧЗ URL and key, the state
//! file) are checked before anything is made, so that a bad one loses no keys.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use entities::stores as store_rows;
use entities::tenants as tenant_rows;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    TransactionTrait as _,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{CreatedTenant, FirstStore, NewTenant, create_tenant, record};
use crate::auth::{Role, TokenKeys};
use crate::credentials::{self, NewCredentials};
use crate::crypto::{ApiKeyHasher, MasterKeys};
use crate::error::{Error, Result};
use crate::keys::{self, KeyScope};
use crate::principal::Principal;
use crate::stores::{self, NewStore};
use crate::tenants;

/// The demo tenant's name.
pub const TENANT_NAME: &str = "Демо-сеть iMark";
/// The demo tenant's ИНН: ten zeros, which no organisation has.
pub const TENANT_INN: &str = "0000000000";
pub const STORE_CODE: &str = "demo-001";
pub const STORE_NAME: &str = "Демо-магазин, Тверская, 14";
const HQ_KEY_NAME: &str = "demo HQ";
/// The name `tenants::create` gives a tenant's first HQ key: the demo's first HQ key.
const FIRST_HQ_KEY_NAME: &str = "first HQ key";
/// Who issued the keys the demo makes.
const ISSUER: &str = "platform";
const STORE_KEY_NAME: &str = "demo POS";
const FISCAL_DRIVE_NUMBER: &str = "7281440500012345";
/// Case 5.10 of the acceptance catalogue: a tobacco pack at its maximum retail price.
const PACK: &str = "04601653035829H;dV)bFABVUdGVz";
/// Case 5.5: a mark already withdrawn from circulation.
const SOLD_MARK: &str = "0104670540176099215NN*cM\u{1d}93dGVz";

/// What the demo talks to.
#[derive(Debug, Clone, Copy)]
pub struct Services<'a> {
    pub db: &'a DatabaseConnection,
    pub hasher: &'a ApiKeyHasher,
    pub master: &'a MasterKeys,
    pub tokens: &'a TokenKeys,
    pub platform_key: &'a SecretString,
}

/// Where the demo points.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// The ЧЗ discovery URL, normally the emulator's.
    pub truemark_url: String,
    pub truemark_key: SecretString,
    pub region: String,
    /// The API's base URL, for the printed requests.
    pub api_url: String,
    /// Whether the configuration lets tenants use plain-http and local ЧЗ URLs.
    pub allow_local_urls: bool,
    /// The private file that keeps the demo's ids and keys between runs.
    pub state_file: PathBuf,
}

/// The ids and keys kept between runs.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct DemoState {
    pub tenant_id: Option<Uuid>,
    pub store_id: Option<Uuid>,
    pub hq_key: Option<String>,
    pub store_key: Option<String>,
}

impl std::fmt::Debug for DemoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoState")
            .field("tenant_id", &self.tenant_id)
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

/// The demo, ready to use.
#[derive(Clone, Serialize)]
pub struct Demo {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub store_id: Uuid,
    pub store_code: String,
    pub hq_key: String,
    pub store_key: String,
    /// A store token, valid `token_expires_in` seconds.
    pub store_token: String,
    pub token_expires_in: u64,
    pub truemark_url: String,
    pub region: String,
    pub api_url: String,
    pub state_file: PathBuf,
    /// What this run made or set (`tenant`, `hq_key`, `store`, `truemark_key`, `store_key`);
    /// empty when everything was reused.
    pub created: Vec<&'static str>,
    /// The shell lines that set `API` and `STORE` for the requests.
    pub shell_setup: Vec<String>,
    pub requests: Vec<DemoRequest>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("tenant_id", &self.tenant_id)
            .field("store_id", &self.store_id)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A request a store's POS sends, with the verdict it gets.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRequest {
    pub title: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub body: Value,
    /// The document's verdict on the first send; sending the same body again replays it.
    pub expected_verdict: &'static str,
    /// The request as a shell command, using `$API` and `$STORE`.
    pub curl: String,
    /// A `jq` filter that shows the answer's point.
    pub jq: &'static str,
}

/// Loads the state file, makes sure the demo exists ([`ensure`]) and keeps the new state.
///
/// Errors: `Invalid` when the state file cannot be read or written; nothing is made then.
pub async fn run(services: Services<'_>, settings: &DemoSettings) -> Result<Demo> {
    let state = load_state(&settings.state_file)?;
    check_writable(&settings.state_file)?;
    let (demo, state) = ensure(services, settings, &state).await?;
    save_state(&settings.state_file, &state)?;
    Ok(demo)
}

/// Makes sure the demo tenant, its store, ЧЗ key and store key exist, reusing what `state` (and
/// else the database) knows, and returns the demo with the state to keep.
///
/// Errors: `Invalid` when the ЧЗ URL, key or region is refused (plain http needs
/// `IMARK_TRUEMARK_ALLOW_LOCAL_URLS=true`) or the demo tenant or store was disabled; these are
/// found before anything is made.
pub async fn ensure(
    services: Services<'_>,
    settings: &DemoSettings,
    state: &DemoState,
) -> Result<(Demo, DemoState)> {
    let db = services.db;
    let existing = find_tenant(db, state.tenant_id).await?;
    if let Some(tenant_id) = existing {
        find_store(db, tenant_id).await?;
    }
    check_truemark_settings(services, settings, existing).await?;
    let mut created = Vec::new();

    let (tenant_id, mut hq_key, mut store_id) = match existing {
        Some(tenant_id) => (tenant_id, None, None),
        None => {
            let CreatedTenant {
                tenant,
                hq_key,
                store,
            } = create_tenant(
                db,
                services.hasher,
                NewTenant {
                    name: TENANT_NAME.to_owned(),
                    inn: TENANT_INN.to_owned(),
                    first_store: Some(FirstStore {
                        code: STORE_CODE.to_owned(),
                        name: STORE_NAME.to_owned(),
                    }),
                },
            )
            .await?;
            created.extend(["tenant", "hq_key", "store"]);
            (tenant.id, Some(hq_key.api_key), store.map(|s| s.id))
        }
    };

    if hq_key.is_none() {
        hq_key = match live_key(services, state.hq_key.as_deref(), tenant_id, None).await? {
            Some(key) => Some(key),
            None => {
                let replaced = demo_keys(db, tenant_id, None).await?;
                let txn = db.begin().await?;
                let issued =
                    tenants::issue_hq_key(&txn, services.hasher, tenant_id, HQ_KEY_NAME).await?;
                record(&txn, tenant_id, "key.issued", None, &issued.key).await?;
                revoke_all(&txn, tenant_id, &replaced).await?;
                txn.commit().await?;
                created.push("hq_key");
                Some(issued.api_key)
            }
        };
    }
    let hq_key = hq_key.unwrap_or_default();

    let store_id = match store_id.take() {
        Some(id) => id,
        None => match find_store(db, tenant_id).await? {
            Some(id) => id,
            None => {
                let new = NewStore {
                    code: STORE_CODE.to_owned(),
                    name: STORE_NAME.to_owned(),
                    ..NewStore::default()
                };
                let txn = db.begin().await?;
                let store = stores::create(&txn, tenant_id, new).await?;
                record(&txn, tenant_id, "store.created", Some(store.id), &store).await?;
                txn.commit().await?;
                created.push("store");
                store.id
            }
        },
    };

    if !truemark_set(db, tenant_id, settings).await? {
        let txn = db.begin().await?;
        let new = NewCredentials {
            store_id: None,
            api_key: settings.truemark_key.clone(),
            base_url: Some(settings.truemark_url.clone()),
            region: Some(settings.region.clone()),
            key_expires_on: None,
        };
        let view = credentials::put(
            &txn,
            services.master,
            tenant_id,
            new,
            settings.allow_local_urls,
        )
        .await?;
        record(&txn, tenant_id, "truemark.key_set", None, &view).await?;
        txn.commit().await?;
        created.push("truemark_key");
    }

    let store_key = match live_key(
        services,
        state.store_key.as_deref(),
        tenant_id,
        Some(store_id),
    )
    .await?
    {
        Some(key) => key,
        None => {
            let replaced = demo_keys(db, tenant_id, Some(store_id)).await?;
            let txn = db.begin().await?;
            let issued = keys::issue(
                &txn,
                services.hasher,
                tenant_id,
                KeyScope::Store(store_id),
                STORE_KEY_NAME,
                ISSUER,
            )
            .await?;
            record(&txn, tenant_id, "key.issued", Some(store_id), &issued.key).await?;
            revoke_all(&txn, tenant_id, &replaced).await?;
            txn.commit().await?;
            created.push("store_key");
            issued.api_key
        }
    };

    let principal =
        keys::authenticate(db, services.hasher, services.platform_key, &store_key).await?;
    let token = store_token(services.tokens, &principal)?;

    let demo = Demo {
        tenant_id,
        tenant_name: TENANT_NAME.to_owned(),
        store_id,
        store_code: STORE_CODE.to_owned(),
        shell_setup: shell_setup(&settings.api_url, &token, &store_key),
        hq_key: hq_key.clone(),
        store_key: store_key.clone(),
        store_token: token,
        token_expires_in: services.tokens.ttl().as_secs(),
        truemark_url: settings.truemark_url.clone(),
        region: settings.region.clone(),
        api_url: settings.api_url.clone(),
        state_file: settings.state_file.clone(),
        created,
        requests: requests(),
    };
    let state = DemoState {
        tenant_id: Some(tenant_id),
        store_id: Some(store_id),
        hq_key: Some(hq_key),
        store_key: Some(store_key),
    };
    Ok((demo, state))
}

/// Refuses the ЧЗ URL, key and region by the rules `PUT /truemark` applies, before anything is
/// made: they are tried in a transaction that is always rolled back (for a demo tenant that does
/// not exist yet, only the checks that precede the write count).
async fn check_truemark_settings(
    services: Services<'_>,
    settings: &DemoSettings,
    tenant_id: Option<Uuid>,
) -> Result<()> {
    if !settings.allow_local_urls && !settings.truemark_url.starts_with("https://") {
        return Err(Error::invalid(
            "truemark_url",
            "a plain-http ЧЗ URL such as the emulator's needs IMARK_TRUEMARK_ALLOW_LOCAL_URLS=true",
        ));
    }
    let new = NewCredentials {
        store_id: None,
        api_key: settings.truemark_key.clone(),
        base_url: Some(settings.truemark_url.clone()),
        region: Some(settings.region.clone()),
        key_expires_on: None,
    };
    let txn = services.db.begin().await?;
    let tried = credentials::put(
        &txn,
        services.master,
        tenant_id.unwrap_or_else(Uuid::nil),
        new,
        settings.allow_local_urls,
    )
    .await;
    txn.rollback().await?;
    match tried {
        Err(Error::Invalid { field, message }) => {
            let field = if field == "base_url" {
                "truemark_url".to_owned()
            } else {
                field
            };
            Err(Error::Invalid { field, message })
        }
        Err(e) if tenant_id.is_some() => Err(e),
        // No tenant to write for yet: the write itself was bound to fail.
        Ok(_) | Err(_) => Ok(()),
    }
}

/// The live keys the demo issued earlier: the HQ keys of the tenant (`store_id` `None`) or the
/// keys of its demo store.
async fn demo_keys(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
) -> Result<Vec<keys::ApiKeyView>> {
    let (role, names) = match store_id {
        None => (Role::HqAdmin, &[HQ_KEY_NAME, FIRST_HQ_KEY_NAME][..]),
        Some(_) => (Role::Store, &[STORE_KEY_NAME][..]),
    };
    Ok(keys::list(db, tenant_id, store_id, false)
        .await?
        .into_iter()
        .filter(|key| {
            key.role == role
                && key.store_id == store_id
                && key.created_by == ISSUER
                && names.contains(&key.name.as_str())
        })
        .collect())
}

/// Revokes `replaced`, each with its audit record, in the transaction that issued their
/// replacement.
async fn revoke_all<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    replaced: &[keys::ApiKeyView],
) -> Result<()> {
    for key in replaced {
        let revoked = keys::revoke(txn, tenant_id, key.id).await?;
        record(txn, tenant_id, "key.revoked", revoked.store_id, &revoked).await?;
    }
    Ok(())
}

/// The demo tenant: the one the state names if it is still the demo tenant, else the one with
/// the demo ИНН. A disabled demo tenant is an error, not a reason to make another.
async fn find_tenant(db: &DatabaseConnection, remembered: Option<Uuid>) -> Result<Option<Uuid>> {
    let mut found = None;
    if let Some(id) = remembered {
        found = tenant_rows::Entity::find_by_id(id)
            .filter(tenant_rows::Column::Inn.eq(TENANT_INN))
            .one(db)
            .await?;
    }
    if found.is_none() {
        found = tenant_rows::Entity::find()
            .filter(tenant_rows::Column::Inn.eq(TENANT_INN))
            .one(db)
            .await?;
    }
    match found {
        Some(tenant) if tenant.status != "active" => Err(Error::invalid(
            "tenant",
            format!(
                "the demo tenant {} is disabled; enable it with PATCH /tenants/{}",
                tenant.id, tenant.id
            ),
        )),
        Some(tenant) => Ok(Some(tenant.id)),
        None => Ok(None),
    }
}

/// Whether the tenant's ЧЗ settings already name this URL, region and key (told by its last four
/// characters), so that a rerun does not set them again.
async fn truemark_set(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    settings: &DemoSettings,
) -> Result<bool> {
    let Some(current) = credentials::settings(db, tenant_id, None).await?.tenant else {
        return Ok(false);
    };
    let key = settings.truemark_key.expose_secret();
    let last4: String = key
        .chars()
        .skip(key.chars().count().saturating_sub(4))
        .collect();
    Ok(
        current.base_url.trim_end_matches('/') == settings.truemark_url.trim_end_matches('/')
            && current.region == settings.region
            && current.api_key_masked.ends_with(&last4),
    )
}

async fn find_store(db: &DatabaseConnection, tenant_id: Uuid) -> Result<Option<Uuid>> {
    let store = store_rows::Entity::find()
        .filter(store_rows::Column::TenantId.eq(tenant_id))
        .filter(store_rows::Column::Code.eq(STORE_CODE))
        .one(db)
        .await?;
    match store {
        Some(store) if store.status != "active" => Err(Error::invalid(
            "store",
            format!(
                "the demo store {} is disabled; enable it with PATCH /stores/{}",
                store.id, store.id
            ),
        )),
        Some(store) => Ok(Some(store.id)),
        None => Ok(None),
    }
}

/// `key` when it is still a live key of this tenant (an HQ key when `store_id` is `None`, else
/// a key of that store).
async fn live_key(
    services: Services<'_>,
    key: Option<&str>,
    tenant_id: Uuid,
    store_id: Option<Uuid>,
) -> Result<Option<String>> {
    let Some(key) = key else { return Ok(None) };
    let principal =
        match keys::authenticate(services.db, services.hasher, services.platform_key, key).await {
            Ok(principal) => principal,
            Err(Error::Unauthorized(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
    let role = if store_id.is_some() {
        Role::Store
    } else {
        Role::HqAdmin
    };
    let fits = principal.role == role
        && principal.tenant_id == Some(tenant_id)
        && principal.store_id == store_id;
    Ok(fits.then(|| key.to_owned()))
}

fn store_token(tokens: &TokenKeys, principal: &Principal) -> Result<String> {
    let subject = principal
        .api_key_id
        .map(|id| id.to_string())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a store key has an id")))?;
    tokens
        .issue(
            subject,
            principal.role,
            principal.tenant_id,
            principal.store_id,
        )
        .map(|issued| issued.access_token)
        .map_err(|e| Error::internal(anyhow::anyhow!(e)))
}

fn shell_setup(api_url: &str, token: &str, store_key: &str) -> Vec<String> {
    vec![
        format!("API={}", shell_quote(api_url)),
        format!("STORE={}", shell_quote(token)),
        format!(
            "# the token lasts 15 minutes by default; a fresh one: STORE=$(curl -s \"$API/token\" \
             -H {} | jq -r .access_token)",
            shell_quote(&format!("X-API-Key: {store_key}"))
        ),
    ]
}

/// A document as the POS sends it, its fields in the order a reader expects.
#[derive(Serialize)]
struct Document {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    fiscal_drive_number: &'static str,
    items: [Value; 1],
}

/// A sale that passes, a sale that is blocked, and the return of what was sold.
fn requests() -> Vec<DemoRequest> {
    let request = |title, document: Document, expected_verdict, jq| {
        let text = serde_json::to_string(&document).unwrap_or_default();
        DemoRequest {
            title,
            method: "POST",
            path: "/document",
            curl: format!(
                "curl -s \"$API/document\" -H \"Authorization: Bearer $STORE\" \
                 -H 'Content-Type: application/json' -d {}",
                shell_quote(&text)
            ),
            body: serde_json::to_value(&document).unwrap_or_default(),
            expected_verdict,
            jq,
        }
    };
    let document = |id, kind, item| Document {
        id,
        kind,
        fiscal_drive_number: FISCAL_DRIVE_NUMBER,
        items: [item],
    };
    vec![
        request(
            "A tobacco pack sold at its maximum retail price: allowed, with fiscal tag 1260",
            document("demo-sale-1", "sale", json!({"code": PACK, "price": 9900})),
            "allow",
            "{verdict, tag1260}",
        ),
        request(
            "A pack ЧЗ reports as already sold: blocked, with the reason for the cashier",
            document("demo-sale-2", "sale", json!({"code": SOLD_MARK})),
            "block",
            "{verdict, reasons: .items[0].reasons}",
        ),
        request(
            "The customer returns the first pack: the mark is available again",
            document("demo-return-1", "return", json!({"code": PACK})),
            "allow",
            "{verdict, item: .items[0] | {mark_status_before, mark_status_after}}",
        ),
    ]
}

/// `value` in single quotes for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Demo {
    /// The human-readable report of `imark-api demo`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let made = if self.created.is_empty() {
            "everything was there already and is reused".to_owned()
        } else {
            format!("made now: {}", self.created.join(", "))
        };
        let _ = writeln!(out, "The demo tenant is ready ({made}).");
        let _ = writeln!(
            out,
            "  tenant     {} ({})",
            self.tenant_name, self.tenant_id
        );
        let _ = writeln!(out, "  store      {} ({})", self.store_code, self.store_id);
        let _ = writeln!(
            out,
            "  ЧЗ         {} (region {})",
            self.truemark_url, self.region
        );
        let _ = writeln!(out, "  HQ key     {}", self.hq_key);
        let _ = writeln!(out, "  store key  {}", self.store_key);
        let _ = writeln!(
            out,
            "The ids and keys are kept in {} (private, reused next time).",
            self.state_file.display()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Paste into a shell (curl and jq):");
        let _ = writeln!(out);
        for line in &self.shell_setup {
            let _ = writeln!(out, "{line}");
        }
        for (n, request) in self.requests.iter().enumerate() {
            let _ = writeln!(out);
            let _ = writeln!(out, "# {}. {}", n + 1, request.title);
            let _ = writeln!(out, "{} | jq {}", request.curl, shell_quote(request.jq));
        }
        out
    }
}

/// The state kept by an earlier run; nothing when the file does not exist.
///
/// Errors: `Invalid` when the file cannot be read or is not the demo's.
pub fn load_state(path: &Path) -> Result<DemoState> {
    if !path.exists() {
        return Ok(DemoState::default());
    }
    let unreadable = |e: config::ConfigError| {
        Error::invalid(
            "state_file",
            format!("{} is not a demo state file: {e}", path.display()),
        )
    };
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .map_err(unreadable)?
        .try_deserialize()
        .map_err(unreadable)
}

/// Writes `state` to `path`, readable by its owner only, replacing the file at once.
pub fn save_state(path: &Path, state: &DemoState) -> Result<()> {
    let mut text = String::from(
        "# The demo tenant of `imark-api demo` (scripts/run.sh). It holds API keys: keep it \
         private.\n",
    );
    let fields = [
        ("tenant_id", state.tenant_id.map(|id| id.to_string())),
        ("store_id", state.store_id.map(|id| id.to_string())),
        ("hq_key", state.hq_key.clone()),
        ("store_key", state.store_key.clone()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            // A JSON string of these characters is also a TOML basic string.
            let quoted = serde_json::to_string(&value).map_err(Error::internal)?;
            let _ = writeln!(text, "{name} = {quoted}");
        }
    }

    let temporary = temporary_path(path);
    let written = private_file(&temporary)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        std::fs::remove_file(&temporary).ok();
    }
    written.map_err(|e| unwritable(path, &e))
}

/// Fails unless the state file can be written where it is named, so that keys made afterwards
/// are not lost for want of a place to keep them.
///
/// Errors: `Invalid` naming the file.
pub fn check_writable(path: &Path) -> Result<()> {
    let temporary = temporary_path(path);
    let probe = private_file(&temporary).map(drop);
    std::fs::remove_file(&temporary).ok();
    let existing = if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
    } else {
        Ok(())
    };
    probe.and(existing).map_err(|e| unwritable(path, &e))
}

/// The file the state is written to before it replaces `path` at once: beside it, hidden, and
/// ending like it, so that whatever keeps `*.local.toml` out of git and out of images keeps
/// this one out too (it holds the same keys).
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "imark-demo.local.toml".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".tmp-{name}"))
}

/// A new or truncated file readable by its owner only.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn unwritable(path: &Path, e: &std::io::Error) -> Error {
    Error::invalid(
        "state_file",
        format!("{} could not be written: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn the_state_file_round_trips_and_a_missing_one_is_empty() {
        let path = std::env::temp_dir().join(format!("imark-demo-{}.toml", Uuid::new_v4()));
        let state = DemoState {
            tenant_id: Some(Uuid::new_v4()),
            store_id: Some(Uuid::new_v4()),
            hq_key: Some("imk_hq_abc-DEF_123".to_owned()),
            store_key: Some("imk_st_xyz".to_owned()),
        };

        let missing = load_state(&path);
        save_state(&path, &state).ok();
        let loaded = load_state(&path);
        std::fs::remove_file(&path).ok();

        assert!(missing.is_ok_and(|s| s.tenant_id.is_none()));
        let loaded = loaded.unwrap_or_default();
        assert_eq!(loaded.tenant_id, state.tenant_id);
        assert_eq!(loaded.hq_key, state.hq_key);
        assert_eq!(loaded.store_key, state.store_key);
    }
}
