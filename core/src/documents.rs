//! The main job: a POS sends its sale, return or check, and iMark answers within the ЧЗ time
//! budget with a verdict per item and the tag 1260 to print.
//!
//! One document's way: parse and normalise every code → one `codes/check` for all of them
//! through the failover engine → lock the marks in the base → apply the policy → write the
//! document, its items, the mark changes and the evidence in one transaction → answer.

mod decide;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entities::documents;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait as _, DatabaseConnection, DatabaseTransaction,
    EntityTrait as _, FromQueryResult, QueryFilter as _, QuerySelect as _, Statement,
    TransactionTrait as _,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use truemark::client::TrueApiKey;
use truemark::code::MarkingCode;
use truemark::tag1260::Tag1260;
use truemark::wire::{CheckedCode, CodeStatus, CodesCheckRequest};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit;
use crate::cache::Cache;
use crate::cdn::{CdnGroup, CheckRun, CheckVerdict, Failover};
use crate::credentials;
use crate::crypto::MasterKeys;
use crate::error::{Error, Result, is_unique_violation};
use crate::evidence::{self, ExchangeRow};
use crate::modes::Mode;
use crate::policy::{self, Action, Criterion, TenantPolicies};

/// The most items one document may carry.
pub const MAX_ITEMS: usize = 500;

/// What the POS is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A sale: items not blocked are recorded sold at once.
    Sale,
    /// A return: sold items become available again.
    Return,
    /// A check only: nothing changes.
    Check,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sale => "sale",
            Self::Return => "return",
            Self::Check => "check",
        }
    }
}

/// An item's or a document's verdict; a document's is the worst of its items'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Warn,
    Block,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Warn => "warn",
            Self::Block => "block",
        }
    }
}

/// A document as the POS sends it, already parsed.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentRequest {
    /// The POS's own id of the document: the idempotency key within the store.
    pub id: String,
    pub kind: Kind,
    pub fiscal_drive_number: String,
    pub items: Vec<ItemRequest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemRequest {
    /// The code as scanned.
    pub code: String,
    /// The selling price in kopecks.
    pub price: Option<u64>,
    /// Units sold from a pack sold by the unit (a pour from a keg, in the pack's units); 1 when
    /// absent.
    pub quantity: Option<u32>,
}

/// Why an item got its verdict.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasonView {
    pub criterion: Criterion,
    pub action: Action,
    /// For the cashier, in Russian.
    pub message: String,
}

/// The answer for one item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemAnswer {
    /// The item's place in the request, from 0.
    pub position: usize,
    /// The code as scanned.
    pub input: String,
    /// The canonical marking code (with 0x1D separators and its crypto tail); `null` when the
    /// input could not be normalised.
    pub code: Option<String>,
    /// The identification code (КИ), the key of the mark base.
    pub cis: Option<String>,
    pub verdict: Verdict,
    pub reasons: Vec<ReasonView>,
    /// The mark's status in the base before and after this document (`null`: not in the base).
    pub mark_status_before: Option<String>,
    pub mark_status_after: Option<String>,
    /// For a pack sold by the unit (a keg, `innerUnitCount` in ЧЗ): the units left after this
    /// item. The pack stays available until none are left.
    #[serde(default)]
    pub units_left: Option<i64>,
    /// Whether the decision came from what iMark knew, without a ЧЗ answer.
    pub offline: bool,
    /// ЧЗ's object for this code, as received.
    #[schema(value_type = Option<Object>)]
    pub truemark_response: Option<Value>,
}

/// Fiscal tag 1260 for every item of the receipt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "1262": "030", "1263": "21.11.2023", "1264": "1944",
    "1265": "UUID=f7b51a1b-75f0-4c3b-8843-52daa4765dea&Time=1773524146442",
    "tlv_hex": "ec04..."
}))]
pub struct Tag1260View {
    #[serde(rename = "1262")]
    pub foiv_id: String,
    #[serde(rename = "1263")]
    pub document_date: String,
    #[serde(rename = "1264")]
    pub document_number: String,
    #[serde(rename = "1265")]
    pub value: String,
    /// The whole tag 1260 (STLV with 1262..1265) as hex, for drivers that take raw bytes.
    pub tlv_hex: String,
}

/// iMark's answer to a document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "receipt-2",
    "document_id": "01a23d08-9d1f-7c36-b1a0-5e2f8c0d4a11",
    "type": "sale",
    "verdict": "block",
    "mode": "online",
    "items": [{
        "position": 0,
        "input": "04601653035829H;dV)bFABVUdGVz",
        "code": "04601653035829H;dV)bFABVUdGVz",
        "cis": "04601653035829H;dV)bF",
        "verdict": "block",
        "reasons": [{
            "criterion": "sold_here_before",
            "action": "block",
            "message": "Этот экземпляр уже продан в вашей сети. Продажа запрещена."
        }],
        "mark_status_before": "sold",
        "mark_status_after": "sold",
        "units_left": null,
        "offline": false,
        "truemark_response": {
            "cis": "04601653035829H;dV)bFABVUdGVz", "found": true, "valid": true,
            "verified": true, "utilised": true, "realizable": true, "sold": false,
            "isBlocked": false, "errorCode": 0, "groupIds": [3], "gtin": "04601653035829",
            "packageType": "UNIT", "mrp": 9900, "smp": 9000, "printView": "04601653035829H;dV)bF"
        }
    }],
    "truemark_response": {
        "code": 0, "description": "ok", "codes": ["…"],
        "reqId": "ff4c721e-8e5d-4916-a312-7d8ff4a730f0", "reqTimestamp": 1796320304222_i64
    },
    "req_id": "ff4c721e-8e5d-4916-a312-7d8ff4a730f0",
    "req_timestamp": 1796320304222_i64,
    "tag1260": {
        "1262": "030", "1263": "21.11.2023", "1264": "1944",
        "1265": "UUID=ff4c721e-8e5d-4916-a312-7d8ff4a730f0&Time=1796320304222",
        "tlv_hex": "EC045D00EE040300303330EF040A0032312E31312E32303233F004040031393434F1043C00555549443D66663463373231652D386535642D343931362D613331322D3764386666346137333066302654696D653D31373936333230333034323232"
    },
    "tag1260_absent_reason": null,
    "created_at": "2026-12-03T17:51:44.221Z",
    "voided_at": null
}))]
pub struct DocumentAnswer {
    /// The POS's document id.
    pub id: String,
    /// iMark's id of the document.
    pub document_id: Uuid,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub verdict: Verdict,
    pub mode: Mode,
    pub items: Vec<ItemAnswer>,
    /// ЧЗ's answer as received; `null` when none came.
    #[schema(value_type = Option<Object>)]
    pub truemark_response: Option<Value>,
    pub req_id: Option<String>,
    /// Milliseconds since the epoch, exactly as ЧЗ sent it.
    pub req_timestamp: Option<i64>,
    pub tag1260: Option<Tag1260View>,
    /// Why `tag1260` is `null`: `no_check_mode`, `emergency`, `truemark_refused`,
    /// `no_codes_checked` or `answer_without_request_id`.
    pub tag1260_absent_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
}

/// What a document needs from the rest of iMark.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub db: &'a DatabaseConnection,
    pub cache: &'a Cache,
    pub failover: &'a Failover,
    pub master_keys: &'a MasterKeys,
    pub tenant_id: Uuid,
    pub store_id: Uuid,
    /// Who sends the document, as the audit log names it (`store:<key id>`).
    pub actor: String,
}

/// The outcome of `process`: the answer, and whether it is a stored one replayed.
#[derive(Debug, Clone)]
pub struct Processed {
    pub answer: DocumentAnswer,
    pub replayed: bool,
}

/// Checks a document and records it. The same POS id with the same body returns the stored
/// answer without asking ЧЗ again; with another body it is a 409.
pub async fn process(ctx: &Context<'_>, request: DocumentRequest) -> Result<Processed> {
    validate(&request)?;
    let hash = request_hash(&request);
    if let Some(stored) = stored(ctx, &request.id, &hash).await? {
        return Ok(Processed {
            answer: stored,
            replayed: true,
        });
    }

    let codes: Vec<Result<MarkingCode, truemark::code::CodeError>> = request
        .items
        .iter()
        .map(|item| MarkingCode::parse(&item.code))
        .collect();
    // Everything that can fail before ЧЗ is asked is loaded first: after the answer, only the
    // one write is left, and its failure spools the evidence.
    let policies = policy::load(ctx.db, ctx.tenant_id).await?;
    let run = check(ctx, &request, &codes).await?;

    let document_id = Uuid::now_v7();
    let evidence: Vec<ExchangeRow> = run
        .as_ref()
        .map(|run| {
            run.exchanges
                .iter()
                .map(|r| ExchangeRow::new(r, ctx.tenant_id, Some(ctx.store_id), Some(document_id)))
                .collect()
        })
        .unwrap_or_default();

    let written = write(
        ctx,
        &request,
        &hash,
        document_id,
        &codes,
        run.as_ref(),
        &policies,
        &evidence,
    )
    .await;
    match written {
        Ok(answer) => {
            crate::metrics::document(&answer);
            Ok(Processed {
                answer,
                replayed: false,
            })
        }
        Err(WriteError::Duplicate) => {
            // The same document arrived twice at once; the first one written answers both. This
            // copy's exchanges are kept too, linked to no document.
            if let Some(run) = &run {
                keep_unlinked(ctx, &run.exchanges).await;
            }
            match stored(ctx, &request.id, &hash).await? {
                Some(answer) => Ok(Processed {
                    answer,
                    replayed: true,
                }),
                None => Err(Error::conflict(
                    "document_in_progress",
                    "retry the document",
                )),
            }
        }
        Err(WriteError::Failed(error)) => {
            // ЧЗ has answered: its evidence must survive the failed write. The document was not
            // recorded, so the POS may send it again under the same id.
            evidence::spool(ctx.cache, &evidence).await;
            Err(match error {
                Error::Internal(source) => Error::Unavailable(source),
                other => other,
            })
        }
    }
}

fn validate(request: &DocumentRequest) -> Result<()> {
    if !is_document_id(&request.id) {
        return Err(Error::invalid(
            "id",
            "must be 1 to 128 printable characters, without spaces at either end",
        ));
    }
    let fdn = &request.fiscal_drive_number;
    if fdn.is_empty() || fdn.len() > 32 || !fdn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "fiscal_drive_number",
            "must be the ФН serial: digits only",
        ));
    }
    if request.items.is_empty() || request.items.len() > MAX_ITEMS {
        return Err(Error::invalid(
            "items",
            format!("must hold 1 to {MAX_ITEMS} items"),
        ));
    }
    for (i, item) in request.items.iter().enumerate() {
        let field = || format!("items[{i}].code");
        if item.code.chars().count() > 2048 {
            return Err(Error::invalid(field(), "is longer than 2048 characters"));
        }
        // A NUL byte cannot be kept as evidence (Postgres text refuses it), and no scanner
        // sends one inside a real code.
        if item.code.contains('\0') {
            return Err(Error::invalid(field(), "contains a NUL character"));
        }
        if item.quantity == Some(0) {
            return Err(Error::invalid(
                format!("items[{i}].quantity"),
                "must be at least 1",
            ));
        }
    }
    Ok(())
}

/// Whether `id` can be a POS document id: what `POST /document` accepts.
fn is_document_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= 128
        && id.trim() == id
        && !id.chars().any(char::is_control)
}

fn request_hash(request: &DocumentRequest) -> Vec<u8> {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Sha256::digest(canonical).to_vec()
}

/// The stored answer for the POS id, if the document was processed before.
async fn stored(ctx: &Context<'_>, pos_id: &str, hash: &[u8]) -> Result<Option<DocumentAnswer>> {
    let Some(row) = documents::Entity::find()
        .filter(documents::Column::TenantId.eq(ctx.tenant_id))
        .filter(documents::Column::StoreId.eq(ctx.store_id))
        .filter(documents::Column::PosDocumentId.eq(pos_id))
        .one(ctx.db)
        .await?
    else {
        return Ok(None);
    };
    if row.request_hash != hash {
        return Err(Error::conflict(
            "document_id_reused",
            "this document id was already used with another body",
        ));
    }
    let mut answer: DocumentAnswer = serde_json::from_value(row.answer).map_err(Error::internal)?;
    answer.voided_at = row.voided_at.map(crate::ids::utc);
    Ok(Some(answer))
}

/// Asks ЧЗ about every code that could be normalised, once, through the failover engine.
async fn check(
    ctx: &Context<'_>,
    request: &DocumentRequest,
    codes: &[Result<MarkingCode, truemark::code::CodeError>],
) -> Result<Option<CheckRun>> {
    let mut full: Vec<String> = Vec::new();
    for code in codes.iter().flatten() {
        if !full.iter().any(|f| f == code.full()) {
            full.push(code.full().to_owned());
        }
    }
    if full.is_empty() {
        return Ok(None);
    }
    let credentials = credentials::effective(ctx.db, ctx.master_keys, ctx.tenant_id, ctx.store_id)
        .await?
        .ok_or_else(|| {
            Error::conflict(
                "truemark_not_configured",
                "no ЧЗ key is set for this store or its tenant (PUT /truemark)",
            )
        })?;
    let base = credentials
        .base_url
        .as_str()
        .parse()
        .map_err(Error::internal)?;
    let group = CdnGroup::new(base, credentials.region.clone());
    let key = TrueApiKey::new(secrecy::ExposeSecret::expose_secret(&credentials.api_key))
        .map_err(Error::internal)?;
    let check = CodesCheckRequest::new(full, request.fiscal_drive_number.clone());
    let run = match ctx
        .failover
        .check(ctx.tenant_id, &group, &key, &check)
        .await
    {
        Ok(run) => run,
        Err(failure) => {
            keep_unlinked(ctx, &failure.exchanges).await;
            return Err(failure.error);
        }
    };
    if matches!(run.verdict, CheckVerdict::Unauthorized) {
        keep_unlinked(ctx, &run.exchanges).await;
        return Err(Error::conflict(
            "truemark_key_rejected",
            "ЧЗ refused the ЧЗ key of this store or tenant; the HQ must renew it (PUT /truemark)",
        ));
    }
    Ok(Some(run))
}

/// Keeps exchanges that belong to no recorded document: written now, or spooled.
async fn keep_unlinked(ctx: &Context<'_>, exchanges: &[truemark::client::ExchangeRecord]) {
    let rows: Vec<ExchangeRow> = exchanges
        .iter()
        .map(|r| ExchangeRow::new(r, ctx.tenant_id, Some(ctx.store_id), None))
        .collect();
    if evidence::write(ctx.db, &rows).await.is_err() {
        evidence::spool(ctx.cache, &rows).await;
    }
}

enum WriteError {
    Duplicate,
    Failed(Error),
}

impl From<Error> for WriteError {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

impl From<sea_orm::DbErr> for WriteError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Failed(error.into())
    }
}

#[derive(Debug, Clone, FromQueryResult)]
struct MarkRow {
    cis: String,
    status: String,
    truemark_state: Option<Value>,
    inner_unit_count: Option<i64>,
    sold_units: i64,
    /// Whether this organisation ever sold the mark: ЧЗ's earlier "sold" then speaks of that
    /// sale, which a return may have undone.
    sold_here_ever: bool,
}

/// Decides every item against the locked marks and writes the whole document in one
/// transaction.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument a distinct input"
)]
async fn write(
    ctx: &Context<'_>,
    request: &DocumentRequest,
    hash: &[u8],
    document_id: Uuid,
    codes: &[Result<MarkingCode, truemark::code::CodeError>],
    run: Option<&CheckRun>,
    policies: &TenantPolicies,
    evidence: &[ExchangeRow],
) -> Result<DocumentAnswer, WriteError> {
    let now = Utc::now();
    let answer = run.and_then(|r| match &r.verdict {
        CheckVerdict::Answered(answer) => Some(answer),
        _ => None,
    });
    let mode = run.map_or(Mode::Online, |r| r.mode);

    let txn = ctx.db.begin().await?;
    let mut marks = lock_marks(&txn, ctx.tenant_id, ctx.store_id, codes).await?;

    // Items are decided and applied in order, each seeing what the ones before it did: the same
    // mark twice on one receipt is sold once, and pours from one keg add up.
    let mut items = Vec::with_capacity(codes.len());
    let mut applied = Vec::with_capacity(codes.len());
    let mut changes: BTreeMap<String, MarkChange> = BTreeMap::new();
    for (position, (item, code)) in request.items.iter().zip(codes).enumerate() {
        let (mut decided, inner) = decide_item(
            position,
            item,
            code,
            run,
            answer,
            &marks,
            request.kind,
            policies,
            ctx.store_id,
            now,
        );
        let units = i64::from(item.quantity.unwrap_or(1));
        applied.push(apply(
            request.kind,
            &mut decided,
            inner,
            units,
            &mut marks,
            &mut changes,
        ));
        items.push(decided);
    }
    update_marks(&txn, ctx, document_id, &changes).await?;
    let verdict = items
        .iter()
        .map(|i| i.verdict)
        .max()
        .unwrap_or(Verdict::Allow);

    let (tag1260, absent) = tag(run, answer);
    let document = DocumentAnswer {
        id: request.id.clone(),
        document_id,
        kind: request.kind,
        verdict,
        mode,
        items,
        truemark_response: answer.map(raw_answer),
        req_id: answer.and_then(|a| a.req_id.clone()),
        req_timestamp: answer.and_then(|a| a.req_timestamp),
        tag1260,
        tag1260_absent_reason: absent.map(str::to_owned),
        created_at: now,
        voided_at: None,
    };

    insert_document(&txn, ctx, request, hash, &document, &applied).await?;
    // The exchanges' records and the document's go to the store's chain in one call.
    let mut entries = evidence::insert(&txn, evidence).await?;
    entries.push(document_entry(ctx, request, hash, &document, evidence)?);
    audit::append_all(&txn, ctx.tenant_id, entries).await?;
    txn.commit().await?;
    Ok(document)
}

/// The audit record of a decided document: what the POS asked, and every word of the answer the
/// cashier got.
fn document_entry(
    ctx: &Context<'_>,
    request: &DocumentRequest,
    hash: &[u8],
    document: &DocumentAnswer,
    evidence: &[ExchangeRow],
) -> Result<audit::Entry> {
    let mut cis: Vec<String> = document
        .items
        .iter()
        .filter_map(|i| i.cis.clone())
        .collect();
    cis.sort();
    cis.dedup();
    let mut criteria: Vec<String> = document
        .items
        .iter()
        .flat_map(|i| i.reasons.iter().map(|r| r.criterion.name()))
        .collect();
    criteria.sort();
    criteria.dedup();
    let body = serde_json::json!({
        "pos_document_id": request.id,
        "fiscal_drive_number": request.fiscal_drive_number,
        "request_sha256": hex::encode(hash),
        "exchanges": evidence.iter().map(|e| e.id).collect::<Vec<_>>(),
        "answer": document,
    });
    let mut entry = audit::Entry::of(audit::Kind::Document, Some(ctx.store_id), body)
        .with_document(document.document_id);
    entry.actor = Some(ctx.actor.clone());
    entry.verdict = Some(document.verdict.as_str().to_owned());
    entry.mode = Some(document.mode.as_str().to_owned());
    entry.req_id.clone_from(&document.req_id);
    entry.cis = cis;
    entry.criteria = criteria;
    Ok(entry)
}

/// Adds every normalised КИ to the base as available when new and locks them all, in a fixed
/// order, so that two stores selling one mark at once are served one after the other. One
/// statement does both: a mark already in the base meets the conflict arm, whose no-op update
/// locks the row as `FOR UPDATE` would and returns it.
async fn lock_marks(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    store_id: Uuid,
    codes: &[Result<MarkingCode, truemark::code::CodeError>],
) -> Result<BTreeMap<String, MarkRow>, WriteError> {
    let mut cis: Vec<String> = codes
        .iter()
        .filter_map(|c| c.as_ref().ok().map(|c| c.cis().as_str().to_owned()))
        .collect();
    cis.sort();
    cis.dedup();
    if cis.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = MarkRow::find_by_statement(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "INSERT INTO marks AS m (tenant_id, cis, status, store_id) \
         SELECT $1, input.cis, 'available', $3 FROM unnest($2::text[]) AS input (cis) \
         ORDER BY input.cis \
         ON CONFLICT (tenant_id, cis) DO UPDATE SET tenant_id = m.tenant_id \
         RETURNING m.cis, m.status, m.truemark_state, m.inner_unit_count, m.sold_units, \
             m.sold_at IS NOT NULL AS sold_here_ever",
        [tenant_id.into(), cis.into(), store_id.into()],
    ))
    .all(txn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.cis.clone(), r)).collect())
}

#[allow(clippy::too_many_arguments, reason = "the inputs of one decision")]
fn decide_item(
    position: usize,
    item: &ItemRequest,
    code: &Result<MarkingCode, truemark::code::CodeError>,
    run: Option<&CheckRun>,
    answer: Option<&truemark::wire::CodesCheckAnswer>,
    marks: &BTreeMap<String, MarkRow>,
    kind: Kind,
    policies: &TenantPolicies,
    store_id: Uuid,
    now: DateTime<Utc>,
) -> (ItemAnswer, Option<i64>) {
    let code = match code {
        Ok(code) => code,
        Err(error) => {
            let rules = policies.rules(store_id, None);
            let action = rules.action(Criterion::CodeNotNormalised);
            let answer = ItemAnswer {
                position,
                input: item.code.clone(),
                code: None,
                cis: None,
                verdict: verdict_of(action),
                reasons: vec![ReasonView {
                    criterion: Criterion::CodeNotNormalised,
                    action,
                    message: error.cashier_message().to_owned(),
                }],
                mark_status_before: None,
                mark_status_after: None,
                units_left: None,
                offline: false,
                truemark_response: None,
            };
            return (answer, None);
        }
    };
    let mark = marks.get(code.cis().as_str());
    let checked = answer.and_then(|a| find_code(&a.codes, code));
    let earlier = mark
        .and_then(|m| m.truemark_state.clone())
        .and_then(|v| serde_json::from_value::<CodeStatus>(v).ok());
    let mut criteria = Vec::new();
    let mut offline = false;
    match (run.map(|r| &r.verdict), checked) {
        (Some(CheckVerdict::Answered(_)), Some(state)) => {
            criteria.extend(decide::from_truemark(state.status(), kind, item.price, now));
            if decide::unreadable(state.malformed_fields()) {
                criteria.push(Criterion::TruemarkRefused);
            }
        }
        (Some(CheckVerdict::Answered(_) | CheckVerdict::Refused(_)), _) => {
            criteria.push(Criterion::TruemarkRefused);
        }
        _ => {
            offline = true;
            criteria.push(Criterion::CheckUnavailable);
            if let Some(earlier) = &earlier {
                let sold_elsewhere = !mark.is_some_and(|m| m.sold_here_ever);
                criteria.extend(decide::from_earlier_state(earlier, kind, sold_elsewhere));
            }
        }
    }
    // A pack sold by the unit (a keg) is known by its inner units, from ЧЗ or from the base.
    let inner = checked
        .and_then(|c| c.status().inner_unit_count.as_ref())
        .and_then(serde_json::Number::as_i64)
        .filter(|n| *n > 0)
        .or_else(|| mark.and_then(|m| m.inner_unit_count));
    match inner {
        Some(inner) => criteria.extend(decide::from_partial_pack(
            mark.map_or(0, |m| m.sold_units),
            inner,
            i64::from(item.quantity.unwrap_or(1)),
            kind,
        )),
        None => criteria.extend(decide::from_mark_base(
            mark.map(|m| m.status.as_str()),
            kind,
        )),
    }

    // The product group comes from this answer, or from one seen before when ЧЗ is silent.
    let group = checked
        .map(|c| c.status())
        .or(earlier.as_ref())
        .and_then(|state| state.group_ids.as_ref())
        .and_then(|g| g.first())
        .and_then(|g| i32::try_from(*g).ok());
    let rules = policies.rules(store_id, group);
    let reasons: Vec<ReasonView> = criteria
        .into_iter()
        .map(|criterion| (criterion, rules.action(criterion)))
        .filter(|(_, action)| *action != Action::Ignore)
        .map(|(criterion, action)| ReasonView {
            criterion,
            action,
            message: criterion.message().to_owned(),
        })
        .collect();
    let verdict = reasons
        .iter()
        .map(|r| verdict_of(r.action))
        .max()
        .unwrap_or(Verdict::Allow);
    let answer = ItemAnswer {
        position,
        input: item.code.clone(),
        code: Some(code.full().to_owned()),
        cis: Some(code.cis().as_str().to_owned()),
        verdict,
        reasons,
        mark_status_before: mark.map(|m| m.status.clone()),
        mark_status_after: mark.map(|m| m.status.clone()),
        units_left: inner.map(|inner| inner - mark.map_or(0, |m| m.sold_units)),
        offline,
        truemark_response: checked.map(|c| {
            let mut raw = c.raw().clone();
            storable(&mut raw);
            raw
        }),
    };
    (answer, inner)
}

fn verdict_of(action: Action) -> Verdict {
    match action {
        Action::Ignore => Verdict::Allow,
        Action::Warn => Verdict::Warn,
        Action::Block => Verdict::Block,
    }
}

/// ЧЗ's object for `code`: matched by the code as sent, else by its КИ.
fn find_code<'a>(codes: &'a [CheckedCode], code: &MarkingCode) -> Option<&'a CheckedCode> {
    codes
        .iter()
        .find(|c| c.status().cis.as_deref() == Some(code.full()))
        .or_else(|| {
            codes.iter().find(|c| {
                c.status().cis.as_deref() == Some(code.cis().as_str())
                    || c.status().print_view.as_deref() == Some(code.cis().as_str())
            })
        })
}

/// What a document does to one mark, gathered over its items and written once.
#[derive(Debug, Default)]
struct MarkChange {
    /// ЧЗ's object for the mark, when ЧЗ answered.
    truemark_state: Option<Value>,
    /// The new status, sold units and inner unit count, when an item changed them.
    status: Option<(&'static str, i64, Option<i64>)>,
    /// Whether any change sold units of the mark (its `sold_at` becomes now).
    sold_now: bool,
}

/// Applies one decided item to its mark in `marks`, which the next items see, and notes the
/// change in `changes`: a sale not blocked sells the mark (a pack sold by the unit once its last
/// unit is sold), a return not blocked makes a sold mark available; a blocked item, a check and
/// a pour from an empty keg change only the ЧЗ state kept. Returns what a void undoes: `None`
/// when the item sold or returned nothing (a whole mark already sold, let through by a `warn`,
/// becomes this sale's all the same), else the units it moved of a pack sold by the unit
/// (`None` inside for a whole mark).
fn apply(
    kind: Kind,
    item: &mut ItemAnswer,
    inner: Option<i64>,
    units: i64,
    marks: &mut BTreeMap<String, MarkRow>,
    changes: &mut BTreeMap<String, MarkChange>,
) -> Option<Option<i64>> {
    let cis = item.cis.clone()?;
    let mark = marks.get_mut(&cis)?;
    let sold = mark.status == "sold";
    let after = match (kind, item.verdict, inner) {
        (_, Verdict::Block, _) | (Kind::Check, _, _) => None,
        (Kind::Sale, _, None) => Some(("sold", mark.sold_units)),
        (Kind::Sale, _, Some(inner)) if mark.sold_units < inner => {
            let sold_units = mark.sold_units.saturating_add(units).min(inner);
            Some((
                if sold_units >= inner {
                    "sold"
                } else {
                    "available"
                },
                sold_units,
            ))
        }
        (Kind::Sale, _, _) => None,
        (Kind::Return, _, None) if sold => Some(("available", 0)),
        (Kind::Return, _, Some(_)) if mark.sold_units > 0 => {
            Some(("available", mark.sold_units.saturating_sub(units).max(0)))
        }
        (Kind::Return, _, _) => None,
    };
    // The units of a pack this item moved: sold by a sale, taken back by a return.
    let moved = after.and_then(|(_, sold_units)| {
        inner.map(|_| {
            sold_units
                .abs_diff(mark.sold_units)
                .try_into()
                .unwrap_or(i64::MAX)
        })
    });
    // A whole mark sold again (let through by a `warn`) becomes this sale's, so that voiding the
    // first sale leaves it sold; but this sale did not sell it, so voiding it does nothing.
    let effective = after.is_some() && !(kind == Kind::Sale && inner.is_none() && sold);

    if item.truemark_response.is_some() || after.is_some() {
        let change = changes.entry(cis).or_default();
        if let Some(state) = &item.truemark_response {
            change.truemark_state = Some(state.clone());
        }
        if let Some((status, sold_units)) = after {
            change.status = Some((status, sold_units, inner));
            change.sold_now |= status == "sold" || sold_units > 0;
        }
    }
    if let Some((status, sold_units)) = after {
        mark.status = status.to_owned();
        mark.sold_units = sold_units;
        mark.inner_unit_count = inner.or(mark.inner_unit_count);
        item.mark_status_after = Some(status.to_owned());
    }
    item.units_left = inner.map(|inner| inner - mark.sold_units);
    effective.then_some(moved)
}

/// Writes every mark's change of a document in one `UPDATE`: ЧЗ's state where ЧЗ answered, and
/// the new status, units, store and document where an item changed them.
async fn update_marks(
    txn: &DatabaseTransaction,
    ctx: &Context<'_>,
    document_id: Uuid,
    changes: &BTreeMap<String, MarkChange>,
) -> Result<(), WriteError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut values: Vec<sea_orm::Value> = vec![
        ctx.tenant_id.into(),
        ctx.store_id.into(),
        document_id.into(),
    ];
    let mut rows = Vec::with_capacity(changes.len());
    for (cis, change) in changes {
        let gtin = change
            .truemark_state
            .as_ref()
            .and_then(|state| state.get("gtin"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (status, sold_units, inner) = match change.status {
            Some((status, sold_units, inner)) => (Some(status), Some(sold_units), inner),
            None => (None, None, None),
        };
        let row = [
            cis.clone().into(),
            change.truemark_state.is_some().into(),
            change.truemark_state.clone().into(),
            gtin.into(),
            status.map(str::to_owned).into(),
            sold_units.into(),
            inner.into(),
            change.sold_now.into(),
        ];
        let casts = [
            "text", "bool", "jsonb", "text", "text", "bigint", "bigint", "bool",
        ];
        rows.push(format!(
            "({})",
            crate::db::bind_row(&mut values, row, &casts)
        ));
    }
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        format!(
            "UPDATE marks AS m SET \
                 truemark_state = CASE WHEN v.checked THEN v.state ELSE m.truemark_state END, \
                 truemark_checked_at = CASE WHEN v.checked THEN now() \
                     ELSE m.truemark_checked_at END, \
                 gtin = COALESCE(v.gtin, m.gtin), \
                 status = COALESCE(v.status, m.status), \
                 sold_units = CASE WHEN v.status IS NULL THEN m.sold_units ELSE v.sold_units END, \
                 inner_unit_count = CASE WHEN v.status IS NULL THEN m.inner_unit_count \
                     ELSE v.inner_units END, \
                 store_id = CASE WHEN v.status IS NULL THEN m.store_id ELSE $2 END, \
                 document_id = CASE WHEN v.status IS NULL THEN m.document_id ELSE $3 END, \
                 sold_at = CASE WHEN v.sold_now THEN now() ELSE m.sold_at END, \
                 updated_at = CASE WHEN v.status IS NULL THEN now() ELSE clock_timestamp() END \
             FROM (VALUES {}) AS v (cis, checked, state, gtin, status, sold_units, inner_units, \
                 sold_now) \
             WHERE m.tenant_id = $1 AND m.cis = v.cis",
            rows.join(", ")
        ),
        values,
    ))
    .await?;
    Ok(())
}

fn tag(
    run: Option<&CheckRun>,
    answer: Option<&truemark::wire::CodesCheckAnswer>,
) -> (Option<Tag1260View>, Option<&'static str>) {
    let Some(run) = run else {
        return (None, Some("no_codes_checked"));
    };
    match (&run.verdict, answer) {
        (CheckVerdict::Answered(_), Some(answer)) => {
            let tag = answer
                .req_id
                .as_deref()
                .zip(answer.req_timestamp)
                .and_then(|(id, at)| Tag1260::permissive(id, at).ok());
            match tag {
                Some(tag) => (
                    Some(Tag1260View {
                        foiv_id: tag.foiv_id().to_owned(),
                        document_date: tag.document_date().to_owned(),
                        document_number: tag.document_number().to_owned(),
                        value: tag.value().to_owned(),
                        tlv_hex: tag.tlv_hex(),
                    }),
                    None,
                ),
                None => (None, Some("answer_without_request_id")),
            }
        }
        (CheckVerdict::Refused(_), _) => (None, Some("truemark_refused")),
        (CheckVerdict::Emergency, _) => (None, Some("emergency")),
        _ => (None, Some("no_check_mode")),
    }
}

fn raw_answer(answer: &truemark::wire::CodesCheckAnswer) -> Value {
    let mut value = serde_json::to_value(answer).unwrap_or(Value::Null);
    storable(&mut value);
    value
}

/// Makes a ЧЗ value safe to keep in a jsonb column: NUL characters become U+FFFD (Postgres
/// refuses them), and numbers so large that Postgres' exact decimal would not read back as a
/// float become their text. The raw exchange keeps the answer exactly as it came.
fn storable(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', "\u{fffd}"),
        Value::Number(number) if number.as_f64().is_some_and(|f| f.abs() > STORABLE_FLOAT) => {
            *value = Value::String(number.to_string());
        }
        Value::Array(items) => items.iter_mut().for_each(storable),
        Value::Object(fields) => fields.values_mut().for_each(storable),
        _ => {}
    }
}

/// The largest magnitude of a float kept as a number; beyond it, a number is kept as text.
const STORABLE_FLOAT: f64 = 1e300;

async fn insert_document(
    txn: &DatabaseTransaction,
    ctx: &Context<'_>,
    request: &DocumentRequest,
    hash: &[u8],
    document: &DocumentAnswer,
    applied: &[Option<Option<i64>>],
) -> Result<(), WriteError> {
    let answer = serde_json::to_value(document).map_err(Error::internal)?;
    let mut values: Vec<sea_orm::Value> = vec![
        document.document_id.into(),
        ctx.tenant_id.into(),
        ctx.store_id.into(),
        request.id.clone().into(),
        request.kind.as_str().into(),
        request.fiscal_drive_number.clone().into(),
        hash.to_vec().into(),
        document.verdict.as_str().into(),
        document.mode.as_str().into(),
        document.req_id.clone().into(),
        answer.into(),
        document.created_at.into(),
    ];
    // The document and all its items in one statement: `$1` is the document's id.
    let mut rows = Vec::with_capacity(document.items.len());
    for item in &document.items {
        let criteria: Vec<Criterion> = item.reasons.iter().map(|r| r.criterion).collect();
        let criteria = serde_json::to_value(criteria).map_err(Error::internal)?;
        let quantity = request
            .items
            .get(item.position)
            .and_then(|r| r.quantity)
            .map(i64::from);
        let row = [
            i32::try_from(item.position).unwrap_or(i32::MAX).into(),
            item.cis.clone().into(),
            item.verdict.as_str().into(),
            criteria.into(),
            item.mark_status_before.clone().into(),
            item.mark_status_after.clone().into(),
            applied
                .get(item.position)
                .is_some_and(Option::is_some)
                .into(),
            quantity.into(),
            applied
                .get(item.position)
                .copied()
                .flatten()
                .flatten()
                .into(),
        ];
        rows.push(format!(
            "($1, {})",
            crate::db::bind_row(&mut values, row, &[])
        ));
    }
    if rows.is_empty() {
        // `validate` lets no document without items this far.
        return Err(Error::internal(anyhow::anyhow!("a document without items")).into());
    }
    let inserted = txn
        .execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "WITH document AS (\
                     INSERT INTO documents (id, tenant_id, store_id, pos_document_id, kind, \
                         fiscal_drive_number, request_hash, verdict, mode, req_id, answer, \
                         created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)) \
                 INSERT INTO document_items (document_id, position, cis, verdict, criteria, \
                     status_before, status_after, applied, quantity, units_applied) \
                 VALUES {}",
                rows.join(", ")
            ),
            values,
        ))
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(WriteError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Voids a sale whose receipt failed to print: its sold marks become available again. Voiding
/// twice changes nothing more.
pub async fn void(ctx: &Context<'_>, pos_id: &str) -> Result<DocumentAnswer> {
    if !is_document_id(pos_id) {
        return Err(Error::NotFound("document"));
    }
    let txn = ctx.db.begin().await?;
    let backend = txn.get_database_backend();
    let row = documents::Entity::find()
        .filter(documents::Column::TenantId.eq(ctx.tenant_id))
        .filter(documents::Column::StoreId.eq(ctx.store_id))
        .filter(documents::Column::PosDocumentId.eq(pos_id))
        // Two voids of one sale at once: the second waits, then finds it voided.
        .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("document"))?;
    if row.kind != "sale" {
        return Err(Error::conflict("not_a_sale", "only a sale can be voided"));
    }
    if row.voided_at.is_none() {
        // The sale's marks are locked in КИ order first, as a sale locks them, so that a void
        // and a sale of the same marks never wait for each other in a circle.
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM marks WHERE tenant_id = $1 AND cis IN \
                 (SELECT cis FROM document_items WHERE document_id = $2 AND cis IS NOT NULL) \
             ORDER BY cis FOR UPDATE",
            [ctx.tenant_id.into(), row.id.into()],
        ))
        .await?;
        // A whole mark comes back if this sale is still the last thing that happened to it; a
        // pack sold by the unit gets back the units this sale took, summed over its items
        // (one keg poured twice on one receipt), whatever happened to it since.
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE marks SET status = 'available', updated_at = now() \
             WHERE tenant_id = $1 AND document_id = $2 AND status = 'sold' \
               AND inner_unit_count IS NULL AND cis IN \
                 (SELECT cis FROM document_items WHERE document_id = $2 AND applied \
                      AND cis IS NOT NULL)",
            [ctx.tenant_id.into(), row.id.into()],
        ))
        .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE marks m SET status = 'available', updated_at = now(), \
                 sold_units = GREATEST(0, m.sold_units - i.units) \
             FROM (SELECT cis, sum(units_applied) AS units \
                   FROM document_items WHERE document_id = $2 AND applied \
                       AND units_applied IS NOT NULL \
                   GROUP BY cis) AS i \
             WHERE m.tenant_id = $1 AND m.cis = i.cis AND m.inner_unit_count IS NOT NULL",
            [ctx.tenant_id.into(), row.id.into()],
        ))
        .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE documents SET voided_at = now() WHERE id = $1",
            [row.id.into()],
        ))
        .await?;
        let mut entry = audit::Entry::of(
            audit::Kind::Void,
            Some(ctx.store_id),
            serde_json::json!({ "pos_document_id": row.pos_document_id }),
        )
        .with_document(row.id);
        entry.actor = Some(ctx.actor.clone());
        audit::append(&txn, ctx.tenant_id, entry).await?;
    }
    txn.commit().await?;
    let hash = row.request_hash.clone();
    stored(ctx, pos_id, &hash)
        .await?
        .ok_or(Error::NotFound("document"))
}

/// The stored answer of a document of the store, by the POS's id.
pub async fn find(ctx: &Context<'_>, pos_id: &str) -> Result<DocumentAnswer> {
    if !is_document_id(pos_id) {
        return Err(Error::NotFound("document"));
    }
    let row = documents::Entity::find()
        .filter(documents::Column::TenantId.eq(ctx.tenant_id))
        .filter(documents::Column::StoreId.eq(ctx.store_id))
        .filter(documents::Column::PosDocumentId.eq(pos_id))
        .one(ctx.db)
        .await?
        .ok_or(Error::NotFound("document"))?;
    let mut answer: DocumentAnswer = serde_json::from_value(row.answer).map_err(Error::internal)?;
    answer.voided_at = row.voided_at.map(crate::ids::utc);
    Ok(answer)
}
