//! The tamper-evident audit log. Every store's records form one hash chain, and each tenant has
//! one more (the nil chain) for what concerns no single store: mode changes and tenant-wide
//! admin actions. A record is hashed as `SHA-256(previous hash ‖ id ‖ seq ‖ µs since the epoch ‖
//! content)`, where `content` is the record's JSON exactly as stored; Postgres appends it (the
//! `audit_append_all` function) under the chain's head row, and refuses updates and deletes.
//!
//! [`verify`] recomputes a chain over a period and names the first broken link: an altered,
//! missing or reordered record, a column that disagrees with the hashed content, or a ЧЗ
//! exchange whose stored bytes no longer match the digest its record holds.

pub mod export;
pub mod partitions;

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound as _, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, Value as SqlValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::evidence::ExchangeRow;
use crate::principal::{Principal, StoreScope};

/// The chain of what concerns a whole tenant rather than one store.
pub const TENANT_CHAIN: Uuid = Uuid::nil();

/// The hash a chain's first record points back to.
const GENESIS: [u8; 32] = [0; 32];

/// What a record speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RecordKind)]
pub enum Kind {
    /// A POS document decided: what was asked, and the answer the cashier got.
    Document,
    /// A sale voided after its receipt failed.
    Void,
    /// One exchange with ЧЗ, by the digest of its stored bytes.
    Exchange,
    /// The tenant's check mode changed (online ↔ no-check), with the exchanges that caused it.
    Mode,
    /// An administrative change: keys, stores, policies, ЧЗ keys, tenants.
    Admin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Void => "void",
            Self::Exchange => "exchange",
            Self::Mode => "mode",
            Self::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "document" => Self::Document,
            "void" => Self::Void,
            "exchange" => Self::Exchange,
            "mode" => Self::Mode,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

/// One record to append. The searchable fields are hashed with the body, so a query column
/// edited in place no longer matches what was signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub store_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub exchange_id: Option<Uuid>,
    /// Who did it: `<role>:<key id>`, `platform`, or `system`.
    pub actor: Option<String>,
    /// For admin records, what was done (`key.issued`, `store.updated`, ...).
    pub action: Option<String>,
    pub verdict: Option<String>,
    pub mode: Option<String>,
    pub req_id: Option<String>,
    #[serde(default)]
    pub cis: Vec<String>,
    #[serde(default)]
    pub criteria: Vec<String>,
    pub body: Value,
}

impl Entry {
    fn new(kind: Kind, store_id: Option<Uuid>, body: Value) -> Self {
        Self {
            kind,
            store_id,
            document_id: None,
            exchange_id: None,
            actor: None,
            action: None,
            verdict: None,
            mode: None,
            req_id: None,
            cis: Vec::new(),
            criteria: Vec::new(),
            body,
        }
    }

    /// The record of one ЧЗ exchange: its metadata and the digest of its stored row.
    pub fn exchange(row: &ExchangeRow) -> Self {
        let mut entry = Self::new(
            Kind::Exchange,
            row.store_id,
            serde_json::json!({
                "digest": hex::encode(exchange_digest(row)),
                "endpoint": row.endpoint,
                "url": row.url,
                "started_at": row.started_at.trunc_subsecs(6),
                "duration_ms": row.duration_ms,
                "http_status": row.http_status,
                "error": row.error,
            }),
        );
        entry.document_id = row.document_id;
        entry.exchange_id = Some(row.id);
        entry.req_id.clone_from(&row.req_id);
        entry.actor = Some("system".to_owned());
        entry
    }

    /// An administrative change by `principal`.
    pub fn admin(
        principal: &Principal,
        action: &str,
        store_id: Option<Uuid>,
        details: Value,
    ) -> Self {
        let mut entry = Self::new(Kind::Admin, store_id, details);
        entry.actor = Some(actor(principal));
        entry.action = Some(action.to_owned());
        entry
    }

    pub fn with_document(mut self, document_id: Uuid) -> Self {
        self.document_id = Some(document_id);
        self
    }

    /// A record of `kind` with `body`, about `store_id` (or the whole tenant).
    pub fn of(kind: Kind, store_id: Option<Uuid>, body: Value) -> Self {
        Self::new(kind, store_id, body)
    }
}

/// An administrative change and its audit record, committed together: the change is kept
/// exactly when its record is.
pub struct AdminChange {
    txn: sea_orm::DatabaseTransaction,
    cis: Vec<String>,
}

impl AdminChange {
    pub async fn begin(db: &sea_orm::DatabaseConnection) -> Result<Self> {
        Ok(Self {
            txn: sea_orm::TransactionTrait::begin(db).await?,
            cis: Vec::new(),
        })
    }

    /// Gives the change up: nothing of it is kept, and nothing is recorded.
    pub async fn rollback(self) -> Result<()> {
        sea_orm::TransactionSession::rollback(self.txn).await?;
        Ok(())
    }

    /// Names the marks the change concerns, so that the log finds it by КИ.
    pub fn concerning(&mut self, cis: impl IntoIterator<Item = String>) {
        self.cis.extend(cis);
        self.cis.sort();
        self.cis.dedup();
    }

    /// Where the change is made.
    pub fn db(&self) -> &sea_orm::DatabaseTransaction {
        &self.txn
    }

    /// Records `action` by `principal` on `tenant_id` (and `store_id`, whose chain then holds
    /// it), with `details` — never a secret — and commits.
    pub async fn commit(
        self,
        principal: &Principal,
        tenant_id: Uuid,
        action: &str,
        store_id: Option<Uuid>,
        details: &impl Serialize,
    ) -> Result<()> {
        let details = serde_json::to_value(details).map_err(Error::internal)?;
        let mut entry = Entry::admin(principal, action, store_id, details);
        entry.cis = self.cis;
        append(&self.txn, tenant_id, entry).await?;
        sea_orm::TransactionSession::commit(self.txn).await?;
        Ok(())
    }
}

/// How a caller is named in the log.
pub fn actor(principal: &Principal) -> String {
    match principal.api_key_id {
        Some(id) => format!("{}:{id}", principal.role.as_str()),
        None => principal.role.as_str().to_owned(),
    }
}

/// What is hashed: the entry with the tenant and chain it belongs to.
#[derive(Serialize, Deserialize)]
struct Content {
    tenant_id: Uuid,
    chain: Uuid,
    #[serde(flatten)]
    entry: Entry,
}

/// Where an appended record landed.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Appended {
    pub seq: i64,
    pub at: DateTime<chrono::FixedOffset>,
    pub hash: Vec<u8>,
}

/// Appends `entry` to its chain (its store's, or the tenant's), inside the caller's transaction
/// when it has one: the record exists exactly when what it records does.
pub async fn append<C: ConnectionTrait>(db: &C, tenant_id: Uuid, entry: Entry) -> Result<Appended> {
    let chain = entry.store_id.unwrap_or(TENANT_CHAIN);
    append_to(db, tenant_id, chain, vec![entry]).await
}

/// Appends `entries`, in order, as [`append`] does, with one call per run of consecutive
/// entries of one chain (a document's exchanges and the document make one run). Returns where
/// the last landed, or `None` when there was nothing to append.
pub async fn append_all<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    entries: Vec<Entry>,
) -> Result<Option<Appended>> {
    let mut last = None;
    let mut run: Vec<Entry> = Vec::new();
    let mut entries = entries.into_iter().peekable();
    while let Some(entry) = entries.next() {
        let chain = entry.store_id.unwrap_or(TENANT_CHAIN);
        run.push(entry);
        let next_chain = entries
            .peek()
            .map(|next| next.store_id.unwrap_or(TENANT_CHAIN));
        if next_chain != Some(chain) {
            last = Some(append_to(db, tenant_id, chain, std::mem::take(&mut run)).await?);
        }
    }
    Ok(last)
}

/// Appends `entries` to `chain` in one call of `audit_append_all`, under one lock of its head.
async fn append_to<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    entries: Vec<Entry>,
) -> Result<Appended> {
    let mut records = Vec::with_capacity(entries.len());
    let mut contents = Vec::with_capacity(entries.len());
    for entry in entries {
        records.push(serde_json::json!({
            "id": Uuid::now_v7(),
            "kind": entry.kind.as_str(),
            "store_id": entry.store_id,
            "document_id": entry.document_id,
            "exchange_id": entry.exchange_id,
            "actor": entry.actor,
            "action": entry.action,
            "verdict": entry.verdict,
            "mode": entry.mode,
            "req_id": entry.req_id,
            "cis": entry.cis,
            "criteria": entry.criteria,
        }));
        let content = Content {
            tenant_id,
            chain,
            entry,
        };
        contents.push(serde_json::to_string(&content).map_err(Error::internal)?);
    }
    Appended::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT seq, at, hash FROM audit_append_all($1, $2, $3, $4::text[])",
        [
            tenant_id.into(),
            chain.into(),
            Value::Array(records).into(),
            contents.into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or_else(|| Error::internal(anyhow::anyhow!("audit_append_all returned no row")))
}

/// The digest of an exchange as stored: every column, each length-prefixed, so no two rows
/// share one. Times count to the microsecond, as Postgres keeps them.
pub fn exchange_digest(row: &ExchangeRow) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut field = |value: Option<&[u8]>| match value {
        None => hasher.update([0]),
        Some(bytes) => {
            hasher.update([1]);
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        }
    };
    let id = row.id.as_bytes().to_vec();
    let tenant = row.tenant_id.as_bytes().to_vec();
    let store = row.store_id.map(|s| s.as_bytes().to_vec());
    let document = row.document_id.map(|d| d.as_bytes().to_vec());
    let started = row.started_at.timestamp_micros().to_be_bytes();
    let duration = row.duration_ms.to_be_bytes();
    let status = row.http_status.map(i32::to_be_bytes);
    field(Some(&id));
    field(Some(&tenant));
    field(store.as_deref());
    field(document.as_deref());
    field(Some(row.endpoint.as_bytes()));
    field(Some(row.method.as_bytes()));
    field(Some(row.url.as_bytes()));
    field(Some(&started));
    field(Some(&duration));
    field(status.as_ref().map(<[u8; 4]>::as_slice));
    field(row.req_id.as_deref().map(str::as_bytes));
    field(row.request_body.as_deref().map(str::as_bytes));
    field(row.answer_body.as_deref().map(str::as_bytes));
    field(row.error.as_deref().map(str::as_bytes));
    hasher.finalize().into()
}

fn link_hash(prev: &[u8], id: Uuid, seq: i64, at: DateTime<Utc>, content: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(id.as_bytes());
    hasher.update(seq.to_be_bytes());
    hasher.update(at.timestamp_micros().to_be_bytes());
    hasher.update(content.as_bytes());
    hasher.finalize().into()
}

/// A stored record, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Record {
    pub id: Uuid,
    /// The store whose chain holds the record; `null` for the tenant's own chain.
    pub store_id: Option<Uuid>,
    /// The record's place in its chain, from 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: Kind,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub document_id: Option<Uuid>,
    pub exchange_id: Option<Uuid>,
    pub verdict: Option<String>,
    pub mode: Option<String>,
    pub req_id: Option<String>,
    pub cis: Vec<String>,
    pub criteria: Vec<String>,
    /// What the record says, as hashed.
    #[schema(value_type = Object)]
    pub body: Value,
    /// SHA-256 of this record, hex.
    pub hash: String,
    /// SHA-256 of the record before it in the chain, hex.
    pub prev_hash: String,
}

#[derive(Debug, Clone, FromQueryResult)]
struct Row {
    id: Uuid,
    tenant_id: Uuid,
    chain: Uuid,
    seq: i64,
    at: DateTime<chrono::FixedOffset>,
    kind: String,
    store_id: Option<Uuid>,
    document_id: Option<Uuid>,
    exchange_id: Option<Uuid>,
    actor: Option<String>,
    action: Option<String>,
    verdict: Option<String>,
    mode: Option<String>,
    req_id: Option<String>,
    cis: Vec<String>,
    criteria: Vec<String>,
    content: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

const COLUMNS: &str = "id, tenant_id, chain, seq, at, kind, store_id, document_id, exchange_id, \
     actor, action, verdict, mode, req_id, cis, criteria, content, prev_hash, hash";

impl Row {
    fn at(&self) -> DateTime<Utc> {
        self.at.with_timezone(&Utc)
    }

    /// The hashed content, when it parses and agrees with every query column.
    fn content(&self) -> Option<Content> {
        let content: Content = serde_json::from_str(&self.content).ok()?;
        let entry = &content.entry;
        let agrees = content.tenant_id == self.tenant_id
            && content.chain == self.chain
            && entry.kind.as_str() == self.kind
            && entry.store_id == self.store_id
            && entry.document_id == self.document_id
            && entry.exchange_id == self.exchange_id
            && entry.actor == self.actor
            && entry.action == self.action
            && entry.verdict == self.verdict
            && entry.mode == self.mode
            && entry.req_id == self.req_id
            && entry.cis == self.cis
            && entry.criteria == self.criteria;
        agrees.then_some(content)
    }

    fn view(self) -> Record {
        let body = serde_json::from_str::<Content>(&self.content)
            .map(|c| c.entry.body)
            .unwrap_or(Value::Null);
        Record {
            id: self.id,
            store_id: (self.chain != TENANT_CHAIN).then_some(self.chain),
            seq: self.seq,
            at: self.at(),
            kind: Kind::parse(&self.kind).unwrap_or(Kind::Admin),
            actor: self.actor,
            action: self.action,
            document_id: self.document_id,
            exchange_id: self.exchange_id,
            verdict: self.verdict,
            mode: self.mode,
            req_id: self.req_id,
            cis: self.cis,
            criteria: self.criteria,
            body,
            hash: hex::encode(&self.hash),
            prev_hash: hex::encode(&self.prev_hash),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

/// Why a link of a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The record's bytes no longer give its hash: it was altered.
    HashMismatch,
    /// The record does not point at the one before it: something between was removed or the
    /// order changed.
    PrevHashMismatch,
    /// Records are missing before this one.
    MissingRecords,
    /// A query column (verdict, КИ, ...) disagrees with the hashed content.
    ColumnMismatch,
    /// The ЧЗ exchange the record speaks of was altered.
    ExchangeAltered,
    /// The ЧЗ exchange the record speaks of is gone.
    ExchangeMissing,
    /// The chain's newest records are gone.
    TailMissing,
    /// A record's number comes twice: one of the two was slipped in.
    DuplicateRecord,
    /// A record is dated before the one it follows, or outside where its number puts it.
    OutOfOrder,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrokenLink {
    /// The first record that does not verify (for `tail_missing`, the last one that does).
    pub record_id: Option<Uuid>,
    pub seq: i64,
    pub at: Option<DateTime<Utc>>,
    pub problem: Problem,
    pub detail: String,
}

/// The verification of one chain over a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainVerification {
    /// The store of the chain; `null` for the tenant's own chain.
    pub store_id: Option<Uuid>,
    pub records: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// SHA-256 of the period's last verified record, hex: kept outside iMark (a report, a
    /// regulator's file), it proves later that nothing up to it was rewritten.
    pub last_hash: Option<String>,
    pub ok: bool,
    pub broken: Option<BrokenLink>,
}

const VERIFY_PAGE: u64 = 2000;

/// The last record checked so far: the link the next one must continue.
#[derive(Debug, Clone)]
struct Link {
    seq: i64,
    hash: Vec<u8>,
    at: Option<DateTime<Utc>>,
}

impl Link {
    const GENESIS: Self = Self {
        seq: 0,
        hash: Vec::new(),
        at: None,
    };

    fn genesis() -> Self {
        Self {
            hash: GENESIS.to_vec(),
            ..Self::GENESIS
        }
    }
}

fn broken(row: &Row, problem: Problem, detail: String) -> BrokenLink {
    BrokenLink {
        record_id: Some(row.id),
        seq: row.seq,
        at: Some(row.at()),
        problem,
        detail,
    }
}

/// Recomputes one chain from `from` (inclusive) to `to` (exclusive) and stops at the first
/// broken link. The period is tied to the rest of the chain on both sides: its first record
/// must continue the one before it (or the anchor retention left), and its last must be
/// continued by the next record, or be the chain's head.
pub async fn verify_chain<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<ChainVerification> {
    let mut result = ChainVerification {
        store_id: (chain != TENANT_CHAIN).then_some(chain),
        records: 0,
        first_seq: None,
        last_seq: None,
        last_hash: None,
        ok: true,
        broken: None,
    };
    let mut last: Option<Link> = None;
    // Every record's number is above the start's, so its time and id only need to be valid.
    let mut after: (i64, DateTime<Utc>, Uuid) = (i64::MIN, from, Uuid::nil());
    loop {
        let page = Row::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT {COLUMNS} FROM audit_records \
                 WHERE tenant_id = $1 AND chain = $2 AND at >= $3 AND at < $4 \
                   AND (seq, at, id) > ($5, $6, $7) \
                 ORDER BY seq, at, id LIMIT $8"
            ),
            [
                tenant_id.into(),
                chain.into(),
                from.into(),
                to.into(),
                after.0.into(),
                after.1.into(),
                after.2.into(),
                VERIFY_PAGE.into(),
            ],
        ))
        .all(db)
        .await?;
        let last_page = (page.len() as u64) < VERIFY_PAGE;
        let exchanges = exchanges_of(db, tenant_id, &page).await?;
        for row in page {
            let previous = match last.take() {
                Some(link) => link,
                None => {
                    result.first_seq = Some(row.seq);
                    predecessor(db, tenant_id, chain, row.seq).await?
                }
            };
            let problem = match check_link(&row, &previous) {
                Some(problem) => Some(problem),
                None => check_exchange(db, &row, &exchanges).await?,
            };
            if let Some((problem, detail)) = problem {
                result.ok = false;
                result.broken = Some(broken(&row, problem, detail));
                return Ok(result);
            }
            result.records += 1;
            result.last_seq = Some(row.seq);
            result.last_hash = Some(hex::encode(&row.hash));
            after = (row.seq, row.at(), row.id);
            last = Some(Link {
                seq: row.seq,
                at: Some(row.at()),
                hash: row.hash,
            });
        }
        if last_page {
            break;
        }
    }
    if let Some((problem, detail, record)) =
        check_continuation(db, tenant_id, chain, from, to, last).await?
    {
        result.ok = false;
        result.broken = Some(match record {
            Some(row) => broken(&row, problem, detail),
            None => BrokenLink {
                record_id: None,
                seq: result.last_seq.unwrap_or(0),
                at: None,
                problem,
                detail,
            },
        });
    }
    Ok(result)
}

/// What follows the period must continue it: the next record points at the period's last, or,
/// when nothing follows, the period's last is the chain's head. A period left without any
/// record is tied the same way through the first record after it.
async fn check_continuation<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    last: Option<Link>,
) -> Result<Option<(Problem, String, Option<Row>)>> {
    let next = match &last {
        Some(link) => record_at_seq(db, tenant_id, chain, link.seq + 1).await?,
        None => first_record_from(db, tenant_id, chain, to).await?,
    };
    if let Some(next) = next {
        let previous = match last {
            Some(link) => link,
            None => {
                let link = predecessor(db, tenant_id, chain, next.seq).await?;
                // The record before the next one must lie before the period, or it would have
                // been read in it.
                if link.at.is_some_and(|at| at >= from) {
                    return Ok(Some((
                        Problem::OutOfOrder,
                        format!(
                            "record #{} is dated inside the period but was not found in it",
                            link.seq
                        ),
                        None,
                    )));
                }
                link
            }
        };
        if next.at() < to {
            return Ok(Some((
                Problem::OutOfOrder,
                format!(
                    "record #{} follows the period's last record but is dated inside the period",
                    next.seq
                ),
                Some(next),
            )));
        }
        return Ok(
            check_link(&next, &previous).map(|(problem, detail)| (problem, detail, Some(next)))
        );
    }
    // Nothing follows: what was read last must be the chain's head.
    let Some(head) = head(db, tenant_id, chain).await? else {
        return Ok(last.map(|link| {
            (
                Problem::TailMissing,
                format!("the chain's head is gone; its records run to #{}", link.seq),
                None,
            )
        }));
    };
    if let Some(link) = &last
        && head.seq > link.seq
    {
        let gone = if head.seq == link.seq + 1 {
            format!("record #{}, the chain's last, is gone", head.seq)
        } else {
            format!(
                "records #{} to #{} at the end of the chain are gone",
                link.seq + 1,
                head.seq
            )
        };
        // Later records still there mean a gap after the period; none, a cut end.
        return Ok(Some(
            if later_record_exists(db, tenant_id, chain, link.seq).await? {
                (
                    Problem::MissingRecords,
                    format!(
                        "record #{}, the one after the period, is gone",
                        link.seq + 1
                    ),
                    None,
                )
            } else {
                (Problem::TailMissing, gone, None)
            },
        ));
    }
    let last = match last {
        Some(link) => link,
        None if head.seq == 0 => return Ok(None),
        // The whole period is empty and so is everything after it: the head's own record (or
        // its anchor) must still be there and agree with it.
        None => predecessor(db, tenant_id, chain, head.seq + 1).await?,
    };
    if last.seq != head.seq || last.hash != head.hash {
        let detail = if last.hash.is_empty() || last.seq < head.seq {
            format!("the chain's newest record #{} is gone", head.seq)
        } else {
            format!(
                "record #{} does not match the chain's head as it was written",
                last.seq
            )
        };
        return Ok(Some((Problem::TailMissing, detail, None)));
    }
    Ok(None)
}

async fn record_at_seq<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    seq: i64,
) -> Result<Option<Row>> {
    Ok(Row::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "SELECT {COLUMNS} FROM audit_records WHERE tenant_id = $1 AND chain = $2 AND seq = $3 \
             ORDER BY at, id LIMIT 1"
        ),
        [tenant_id.into(), chain.into(), seq.into()],
    ))
    .one(db)
    .await?)
}

async fn later_record_exists<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    seq: i64,
) -> Result<bool> {
    #[derive(FromQueryResult)]
    struct Exists {
        exists: bool,
    }
    Ok(Exists::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT EXISTS (SELECT 1 FROM audit_records \
             WHERE tenant_id = $1 AND chain = $2 AND seq > $3) AS exists",
        [tenant_id.into(), chain.into(), seq.into()],
    ))
    .one(db)
    .await?
    .is_some_and(|e| e.exists))
}

async fn first_record_from<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<Row>> {
    Ok(Row::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "SELECT {COLUMNS} FROM audit_records WHERE tenant_id = $1 AND chain = $2 AND at >= $3 \
             ORDER BY seq, at, id LIMIT 1"
        ),
        [tenant_id.into(), chain.into(), at.into()],
    ))
    .one(db)
    .await?)
}

#[derive(Debug, FromQueryResult)]
struct Head {
    seq: i64,
    hash: Vec<u8>,
}

async fn head<C: ConnectionTrait>(db: &C, tenant_id: Uuid, chain: Uuid) -> Result<Option<Head>> {
    Ok(Head::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 AND chain = $2",
        [tenant_id.into(), chain.into()],
    ))
    .one(db)
    .await?)
}

/// The link a record at `seq` must continue: the record before it, the anchor retention left
/// for it, or the chain's start. An empty hash when neither is there.
async fn predecessor<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    chain: Uuid,
    seq: i64,
) -> Result<Link> {
    if seq <= 1 {
        return Ok(Link::genesis());
    }
    #[derive(FromQueryResult)]
    struct Found {
        hash: Vec<u8>,
        at: DateTime<chrono::FixedOffset>,
    }
    // A record still there is preferred to its anchor; both hold the same hash.
    let found = Found::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT hash, at FROM ( \
             SELECT hash, at, 0 AS source FROM audit_records \
             WHERE tenant_id = $1 AND chain = $2 AND seq = $3 \
             UNION ALL \
             SELECT hash, at, 1 AS source FROM audit_anchors \
             WHERE tenant_id = $1 AND chain = $2 AND seq = $3 \
         ) links ORDER BY source, at LIMIT 1",
        [tenant_id.into(), chain.into(), (seq - 1).into()],
    ))
    .one(db)
    .await?;
    Ok(match found {
        Some(found) => Link {
            seq: seq - 1,
            hash: found.hash,
            at: Some(found.at.with_timezone(&Utc)),
        },
        None => Link {
            seq: seq - 1,
            ..Link::GENESIS
        },
    })
}

/// Whether `row` continues `previous` and still gives its own hash.
fn check_link(row: &Row, previous: &Link) -> Option<(Problem, String)> {
    let seq = row.seq;
    if seq <= previous.seq {
        return Some((
            Problem::DuplicateRecord,
            format!("record #{seq} comes again after record #{}", previous.seq),
        ));
    }
    if seq > previous.seq + 1 {
        let missing = if seq == previous.seq + 2 {
            format!("record #{} is missing", previous.seq + 1)
        } else {
            format!("records #{} to #{} are missing", previous.seq + 1, seq - 1)
        };
        return Some((Problem::MissingRecords, missing));
    }
    if previous.hash.is_empty() {
        return Some((
            Problem::MissingRecords,
            format!(
                "record #{} is gone, and no anchor stands for it",
                previous.seq
            ),
        ));
    }
    if row.prev_hash != previous.hash {
        return Some((
            Problem::PrevHashMismatch,
            format!(
                "record #{seq} does not point at record #{} as it is stored",
                previous.seq
            ),
        ));
    }
    if previous.at.is_some_and(|at| row.at() < at) {
        return Some((
            Problem::OutOfOrder,
            format!("record #{seq} is dated before record #{}", previous.seq),
        ));
    }
    if link_hash(&row.prev_hash, row.id, seq, row.at(), &row.content).as_slice() != row.hash {
        return Some((
            Problem::HashMismatch,
            format!("record #{seq} was changed after it was written"),
        ));
    }
    if row.content().is_none() {
        return Some((
            Problem::ColumnMismatch,
            format!("record #{seq}'s columns disagree with its hashed content"),
        ));
    }
    None
}

/// The stored exchanges the exchange records of `page` speak of, fetched at once.
async fn exchanges_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    page: &[Row],
) -> Result<HashMap<Uuid, ExchangeRow>> {
    let ids: Vec<Uuid> = page
        .iter()
        .filter(|row| row.kind == Kind::Exchange.as_str())
        .filter_map(|row| row.exchange_id)
        .collect();
    crate::evidence::find_many(db, tenant_id, ids).await
}

/// For an exchange record, whether the exchange is still stored as its digest says.
async fn check_exchange<C: ConnectionTrait>(
    db: &C,
    row: &Row,
    stored: &HashMap<Uuid, ExchangeRow>,
) -> Result<Option<(Problem, String)>> {
    let Some(content) = row.content() else {
        return Ok(None);
    };
    let entry = content.entry;
    let (Kind::Exchange, Some(id)) = (entry.kind, entry.exchange_id) else {
        return Ok(None);
    };
    let digest = entry.body.get("digest").and_then(Value::as_str);
    if let Some(exchange) = stored.get(&id) {
        if digest != Some(hex::encode(exchange_digest(exchange)).as_str()) {
            return Ok(Some((
                Problem::ExchangeAltered,
                format!(
                    "exchange {id} of record #{} was changed after it was written",
                    row.seq
                ),
            )));
        }
        return Ok(None);
    }
    let started = entry
        .body
        .get("started_at")
        .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok());
    // Retention drops a month's exchanges with its records; only then may one be absent.
    let dropped = match started {
        Some(started) => !partitions::exchanges_month_kept(db, started).await?,
        None => false,
    };
    Ok((!dropped).then(|| {
        (
            Problem::ExchangeMissing,
            format!("exchange {id} of record #{} is gone", row.seq),
        )
    }))
}

/// The verification of every chain a caller may read, over a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Whether every chain verified.
    pub ok: bool,
    /// One entry per chain: every store in scope (a store with no records verifies empty),
    /// and the tenant's own chain for a caller who reads the whole tenant.
    pub chains: Vec<ChainVerification>,
}

/// [`verify`] in one read-only snapshot: records committed while it reads are neither half seen
/// nor taken for a broken link.
pub async fn verify_in_snapshot(
    db: &sea_orm::DatabaseConnection,
    principal: &Principal,
    store_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Verification> {
    let txn = sea_orm::TransactionTrait::begin_with_config(
        db,
        Some(sea_orm::IsolationLevel::RepeatableRead),
        Some(sea_orm::AccessMode::ReadOnly),
    )
    .await?;
    let verification = verify(&txn, principal, store_id, from, to).await?;
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(verification)
}

/// Verifies the chain of `store_id` (or of every store the caller may read, and the tenant's
/// own chain when it may read the whole tenant).
pub async fn verify<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    store_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Verification> {
    let tenant_id = principal.tenant()?;
    let chains = chains_in_scope(db, tenant_id, &principal.store_scope(), store_id).await?;
    let mut results = Vec::with_capacity(chains.len());
    for chain in chains {
        results.push(verify_chain(db, tenant_id, chain, from, to).await?);
    }
    Ok(Verification {
        from,
        to,
        ok: results.iter().all(|c| c.ok),
        chains: results,
    })
}

/// Refuses, as not found, a store the caller may not read (or that is not its tenant's).
pub async fn check_store<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    store_id: Uuid,
) -> Result<()> {
    chains_in_scope(
        db,
        principal.tenant()?,
        &principal.store_scope(),
        Some(store_id),
    )
    .await?;
    Ok(())
}

/// The chains the caller may read, narrowed to `store_id` when given: taken from the tenant's
/// stores, never from the chains' own (and so removable) bookkeeping.
pub(crate) async fn chains_in_scope<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    scope: &StoreScope,
    store_id: Option<Uuid>,
) -> Result<Vec<Uuid>> {
    #[derive(FromQueryResult)]
    struct Store {
        id: Uuid,
    }
    let stores = Store::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT id FROM stores WHERE tenant_id = $1 ORDER BY id",
        [tenant_id.into()],
    ))
    .all(db)
    .await?;
    let mut chains: Vec<Uuid> = stores
        .into_iter()
        .map(|s| s.id)
        .filter(|&id| scope.allows(id) && store_id.is_none_or(|wanted| wanted == id))
        .collect();
    match store_id {
        Some(_) if chains.is_empty() => return Err(Error::NotFound("store")),
        Some(_) => {}
        None => {
            if matches!(scope, StoreScope::All) {
                chains.insert(0, TENANT_CHAIN);
            }
        }
    }
    Ok(chains)
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What to list. Every filter narrows; none widens past the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub store_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub kind: Option<Kind>,
    pub cis: Option<String>,
    pub verdict: Option<String>,
    pub criterion: Option<String>,
    pub mode: Option<String>,
    pub req_id: Option<String>,
    pub document_id: Option<Uuid>,
}

/// A position in the (time, id) order of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// The records of the caller's scope that pass `filter`, after `after`, oldest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    filter: &Filter,
    after: Option<Position>,
    limit: u64,
) -> Result<Vec<Record>> {
    let tenant_id = principal.tenant()?;
    let mut sql = format!("SELECT {COLUMNS} FROM audit_records WHERE tenant_id = $1");
    let mut values: Vec<SqlValue> = vec![tenant_id.into()];
    let mut push = |sql: &mut String, clause: &str, value: SqlValue| {
        values.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", values.len())));
    };
    let scope = principal.store_scope();
    if let Some(store) = filter.store_id {
        // A store of another tenant or outside the caller's stores is not found, as everywhere.
        chains_in_scope(db, tenant_id, &scope, Some(store)).await?;
        push(&mut sql, " AND chain = ?", store.into());
    }
    match scope {
        StoreScope::All => {}
        StoreScope::Only(ids) => push(&mut sql, " AND chain = ANY(?::uuid[])", ids.into()),
    }
    if let Some(from) = filter.from {
        push(&mut sql, " AND at >= ?", from.into());
    }
    if let Some(to) = filter.to {
        push(&mut sql, " AND at < ?", to.into());
    }
    if let Some(kind) = filter.kind {
        push(&mut sql, " AND kind = ?", kind.as_str().into());
    }
    if let Some(code) = &filter.cis {
        // A whole marking code is cut to its КИ; anything else is looked up as given.
        let cis = truemark::code::Cis::parse(code)
            .map_or_else(|_| code.trim().to_owned(), |cis| cis.as_str().to_owned());
        push(&mut sql, " AND cis @> ARRAY[?::text]", cis.into());
    }
    if let Some(verdict) = &filter.verdict {
        push(&mut sql, " AND verdict = ?", verdict.clone().into());
    }
    if let Some(criterion) = &filter.criterion {
        push(
            &mut sql,
            " AND criteria @> ARRAY[?::text]",
            criterion.clone().into(),
        );
    }
    if let Some(mode) = &filter.mode {
        push(&mut sql, " AND mode = ?", mode.clone().into());
    }
    if let Some(req_id) = &filter.req_id {
        push(&mut sql, " AND req_id = ?", req_id.clone().into());
    }
    if let Some(document) = filter.document_id {
        push(&mut sql, " AND document_id = ?", document.into());
    }
    if let Some(after) = after {
        values.push(after.at.into());
        let at = values.len();
        values.push(after.id.into());
        sql.push_str(&format!(" AND (at, id) > (${at}, ${})", values.len()));
    }
    values.push(limit.into());
    sql.push_str(&format!(" ORDER BY at, id LIMIT ${}", values.len()));
    let rows = Row::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        values,
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(Row::view).collect())
}

/// One record with what it rests on: the raw ЧЗ exchanges it speaks of.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordDetail {
    #[serde(flatten)]
    pub record: Record,
    /// The ЧЗ exchanges of the record: its own for an exchange record, the document's for a
    /// document record; each as sent and received.
    pub exchanges: Vec<ExchangeRow>,
}

/// One record of the caller's scope, by id.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    id: Uuid,
) -> Result<RecordDetail> {
    let tenant_id = principal.tenant()?;
    let row = Row::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!("SELECT {COLUMNS} FROM audit_records WHERE id = $1 AND tenant_id = $2"),
        [id.into(), tenant_id.into()],
    ))
    .one(db)
    .await?
    .ok_or(Error::NotFound("audit record"))?;
    let visible = match principal.store_scope() {
        StoreScope::All => true,
        StoreScope::Only(ids) => ids.contains(&row.chain),
    };
    if !visible {
        return Err(Error::NotFound("audit record"));
    }
    // The exchanges the record itself names: a row added to the table later is not among them.
    let ids: Vec<Uuid> = match Kind::parse(&row.kind) {
        Some(Kind::Exchange) => row.exchange_id.into_iter().collect(),
        Some(Kind::Document) => serde_json::from_str::<Content>(&row.content)
            .ok()
            .and_then(|c| c.entry.body.get("exchanges").cloned())
            .and_then(|ids| serde_json::from_value(ids).ok())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut exchanges: Vec<ExchangeRow> = crate::evidence::find_many(db, tenant_id, ids)
        .await?
        .into_values()
        .collect();
    exchanges.sort_by_key(|e| (e.started_at, e.id));
    Ok(RecordDetail {
        record: row.view(),
        exchanges,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn a_link_hash_covers_every_part() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let id = Uuid::nil();
        let base = link_hash(&GENESIS, id, 1, at, "{}");
        assert_ne!(base, link_hash(&[1; 32], id, 1, at, "{}"));
        assert_ne!(base, link_hash(&GENESIS, Uuid::max(), 1, at, "{}"));
        assert_ne!(base, link_hash(&GENESIS, id, 2, at, "{}"));
        assert_ne!(
            base,
            link_hash(
                &GENESIS,
                id,
                1,
                at + chrono::Duration::microseconds(1),
                "{}"
            )
        );
        assert_ne!(base, link_hash(&GENESIS, id, 1, at, "{ }"));
    }

    #[test]
    fn an_exchange_digest_tells_absent_from_empty() {
        let row = ExchangeRow {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            store_id: None,
            document_id: None,
            endpoint: "codes_check".into(),
            method: "POST".into(),
            url: "https://example.test/api/v4/true-api/codes/check".into(),
            started_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            duration_ms: 12,
            http_status: Some(200),
            req_id: None,
            request_body: None,
            answer_body: Some(String::new()),
            error: None,
        };
        let mut empty_error = row.clone();
        empty_error.error = Some(String::new());
        assert_ne!(exchange_digest(&row), exchange_digest(&empty_error));
        let mut finer = row.clone();
        finer.started_at += chrono::Duration::nanoseconds(300);
        assert_eq!(
            exchange_digest(&row),
            exchange_digest(&finer),
            "Postgres keeps microseconds"
        );
    }
}
