//! What a compliance report says, independent of the format it is rendered in.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A per-store (or whole-tenant) account of one period: what was checked, what ЧЗ answered, and
/// every sale that went ahead without a check or against a warning.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    /// The store reported on; absent when the report covers the whole tenant.
    pub store: Option<StoreRef>,
    /// Start of the period, inclusive.
    pub from: DateTime<Utc>,
    /// End of the period, exclusive.
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub totals: Totals,
    /// Periods of the lawful no-check mode that overlap the report's period, with the ЧЗ exchanges
    /// that justified switching into it.
    pub no_check_periods: Vec<NoCheckPeriod>,
    /// Sales that were let through without a `reqId`/`reqTimestamp` for fiscal tag 1260.
    pub sales_without_tag1260: Vec<DocumentRef>,
    /// Items sold although a criterion under a `warn` policy flagged them.
    pub warned_and_sold: Vec<WarnedSale>,
    pub truemark: TruemarkStats,
    /// Whether the records this report is built from are intact.
    pub integrity: Integrity,
}

/// The report's own check of its evidence. Everything the report counts comes from the audit
/// records of the period: the document records (with the whole answer the cashier got), the
/// `void` records, the tenant chain's `mode` records, and ЧЗ exchanges that have their own
/// record. Here those chains are verified over the period, and the operational tables are
/// matched against them. The last hash of each chain seals the report: a later copy of the log
/// that still holds it cannot have been rewritten before it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Integrity {
    /// Every chain verified and every document agrees with its audit record.
    pub ok: bool,
    pub chains: Vec<crate::audit::ChainVerification>,
    /// Documents whose stored answer, verdict, mode or voiding differs from what their audit
    /// records hold, or that have no record (or more than one); and records whose document is
    /// gone. At most 1000 are
    /// listed. The report itself counts what the records say.
    pub documents_unmatched: Vec<Uuid>,
    /// ЧЗ exchanges of the period stored without their audit record; the report leaves them
    /// out.
    pub exchanges_unrecorded: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Totals {
    /// Documents decided in the period (voided ones included).
    pub documents: u64,
    /// Items in those documents.
    pub items: u64,
    /// Documents by their overall verdict (`allow`, `warn`, `block`), largest first.
    pub documents_by_verdict: Vec<Count>,
    /// Items by their own verdict, largest first.
    pub items_by_verdict: Vec<Count>,
    /// How often each criterion fired on an item, by the action the policy took.
    pub by_criterion: Vec<CriterionCount>,
    /// Documents by the mode they were decided in (`online`, `no_check`).
    pub documents_by_mode: Vec<Count>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CriterionCount {
    /// The criterion's name, as in a document's answer (`not_found`, `expired`, ...).
    pub criterion: String,
    /// Items the criterion blocked.
    pub blocked: u64,
    /// Items the criterion flagged with a warning.
    pub warned: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoCheckPeriod {
    pub base_url: String,
    pub region: String,
    pub started_at: DateTime<Utc>,
    /// When the tenant went back online; absent while the period is still open.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why iMark switched into the no-check mode.
    pub reason: String,
    /// The failed exchanges that justified the switch.
    pub exchanges: Vec<ExchangeSummary>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExchangeSummary {
    pub url: String,
    pub started_at: Option<DateTime<Utc>>,
    pub http_status: Option<i32>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentRef {
    pub document_id: Uuid,
    pub store_id: Uuid,
    pub pos_document_id: String,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub mode: String,
    pub verdict: String,
    pub items: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WarnedSale {
    pub document_id: Uuid,
    pub store_id: Uuid,
    pub pos_document_id: String,
    pub at: DateTime<Utc>,
    pub position: i32,
    pub cis: Option<String>,
    /// The criteria that warned.
    pub criteria: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct TruemarkStats {
    /// Exchanges with ЧЗ in the period.
    pub exchanges: u64,
    /// Exchanges that did not bring a usable answer (transport errors, 5xx, timeouts).
    pub failed: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<i64>,
    /// Documents whose check went to more than one host.
    pub failovers: u64,
    /// Per ЧЗ host, busiest first.
    pub hosts: Vec<HostStats>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostStats {
    pub host: String,
    pub exchanges: u64,
    pub failed: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}
