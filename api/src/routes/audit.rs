//! `/audit` and `/reports`: the tamper-evident log and the compliance reports built on it. HQ
//! admins and auditors read their tenant (a limited auditor only its stores); a store reads
//! itself.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike as _, Utc};
use imark_core::audit::export::Format;
use imark_core::audit::{self, Filter, Kind, Position, Record, RecordDetail, Verification};
use imark_core::auth::Role;
use imark_core::documents::Verdict;
use imark_core::modes::Mode;
use imark_core::policy::Criterion;
use imark_core::principal::Principal;
use imark_core::reports::{self, model::Report, render};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::tenants::{decode_cursor, encode_cursor, page_limit};
use crate::error::ApiError;
use crate::error::responses::{BadRequest, Forbidden, NotFound, Unauthorized};
use crate::extract::{Caller, Json, Path, Query};
use crate::state::AppState;

const READERS: &[Role] = &[Role::HqAdmin, Role::Auditor, Role::Store];

/// The earliest time any query here accepts: 0001-01-01T00:00:00Z.
fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Records an export reads from the database at a time.
const EXPORT_PAGE: u64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_records))
        .routes(routes!(verify))
        .routes(routes!(export))
        .routes(routes!(get_record))
        .routes(routes!(report))
}

/// A query of records: the filters every listing shares, and the endpoint's own parameters.
/// One struct per endpoint, so that an unknown or misspelt parameter is refused rather than
/// silently widening the result.
macro_rules! record_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Only this store's chain.
            pub store_id: Option<Uuid>,
            /// From this time, inclusive (RFC 3339).
            pub from: Option<DateTime<Utc>>,
            /// Until this time, exclusive (RFC 3339).
            pub to: Option<DateTime<Utc>>,
            pub kind: Option<Kind>,
            /// Records that speak of this КИ; a whole marking code is cut to its КИ.
            pub cis: Option<String>,
            /// Documents with this overall verdict.
            pub verdict: Option<Verdict>,
            /// Documents where this criterion fired on an item.
            pub criterion: Option<Criterion>,
            /// Documents decided in this mode, or mode changes into it.
            pub mode: Option<Mode>,
            /// Records carrying this ЧЗ `reqId`.
            pub req_id: Option<String>,
            pub document_id: Option<Uuid>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            fn filter(&self) -> Result<Filter, ApiError> {
                check_period(self.from, self.to)?;
                check_text("cis", self.cis.as_deref())?;
                check_text("req_id", self.req_id.as_deref())?;
                Ok(Filter {
                    store_id: self.store_id,
                    from: self.from,
                    to: self.to,
                    kind: self.kind,
                    cis: self.cis.clone(),
                    verdict: self.verdict.map(|v| v.as_str().to_owned()),
                    criterion: self.criterion.map(Criterion::name),
                    mode: self.mode.map(|m| m.as_str().to_owned()),
                    req_id: self.req_id.clone(),
                    document_id: self.document_id,
                })
            }
        }
    };
}

record_query!(
    /// `GET /audit`: the filters and a page.
    ListQuery {
        /// At most this many records, 1 to 500; 100 by default.
        limit: Option<u64>,
        /// `next_cursor` of the previous page.
        cursor: Option<String>,
    }
);

record_query!(
    /// `GET /audit/export`: the filters and the file's format.
    ExportQuery {
        /// `csv` (the default) or `json`.
        format: Option<ExportFormat>,
        /// The CSV separator: `semicolon` (the default, what Excel expects in Russian locales)
        /// or `comma`.
        separator: Option<render::Separator>,
    }
);

/// Refuses a time Postgres cannot hold.
fn check_year(name: &str, at: DateTime<Utc>) -> Result<(), ApiError> {
    if (1..=9999).contains(&at.year()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name} must fall in the years 1 to 9999"),
        ))
    }
}

/// Refuses a period Postgres cannot hold or that ends before it starts.
fn check_period(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    if let Some(from) = from {
        check_year("from", from)?;
    }
    if let Some(to) = to {
        check_year("to", to)?;
    }
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "from must be before to",
        ));
    }
    Ok(())
}

/// Refuses text that cannot be a КИ or a `reqId`: empty (a filter that would match nothing by
/// mistake), too long, or with a NUL, which Postgres text cannot hold.
fn check_text(name: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(text) if text.trim().is_empty() || text.len() > 512 || text.contains('\0') => {
            Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{name} must be 1 to 512 bytes, without NUL"),
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordList {
    /// Records oldest first.
    pub items: Vec<Record>,
    /// Pass it as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Lists audit records, oldest first, with filters and a cursor (HQ admin, auditor, store).
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordList),
        BadRequest, Unauthorized, Forbidden,
    ))]
async fn list_records(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<RecordList>, ApiError> {
    caller.require(READERS)?;
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_position).transpose()?;
    let items = audit::list(&state.db, &caller, &query.filter()?, after, limit).await?;
    let next_cursor = match items.last() {
        Some(last) if items.len() as u64 == limit => Some(encode_position(last)),
        _ => None,
    };
    Ok(Json(RecordList { items, next_cursor }))
}

fn encode_position(record: &Record) -> String {
    encode_cursor(&format!("{}.{}", record.at.timestamp_micros(), record.id))
}

fn decode_position(cursor: &str) -> Result<Position, ApiError> {
    let invalid = || ApiError::bad_request("invalid_parameter", "cursor is not valid");
    let text = decode_cursor(cursor)?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|at| (1..=9999).contains(&at.year()))
        .ok_or_else(invalid)?;
    let id = id.parse().map_err(|_| invalid())?;
    Ok(Position { at, id })
}

/// One audit record with the raw ЧЗ exchanges it rests on (HQ admin, auditor, store).
#[utoipa::path(get, path = "/audit/records/{record_id}", tag = "audit", security(("bearer" = [])),
    params(("record_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The record and its exchanges", body = RecordDetail),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ))]
async fn get_record(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RecordDetail>, ApiError> {
    caller.require(READERS)?;
    Ok(Json(audit::get(&state.db, &caller, id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Only this store's chain; without it, every chain the caller may read.
    pub store_id: Option<Uuid>,
    /// From this time, inclusive; the chain's start by default (every record, however dated).
    pub from: Option<DateTime<Utc>>,
    /// Until this time, exclusive; now by default.
    pub to: Option<DateTime<Utc>>,
}

/// Recomputes the hash chains over a period and names the first broken link of each (HQ admin,
/// auditor, store).
#[utoipa::path(get, path = "/audit/verify", tag = "audit", security(("bearer" = [])),
    params(VerifyQuery),
    responses(
        (status = 200, description = "Each chain's verification", body = Verification),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ))]
async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<VerifyQuery>,
) -> Result<Json<Verification>, ApiError> {
    caller.require(READERS)?;
    check_period(query.from, query.to)?;
    // Without bounds the whole chain is read: from the first year Postgres and the API accept,
    // so that no record hides before an arbitrary start.
    let from = query.from.unwrap_or_else(earliest);
    let to = query
        .to
        .unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(1));
    check_period(Some(from), Some(to))?;
    Ok(Json(
        audit::verify_in_snapshot(&state.db, &caller, query.store_id, from, to).await?,
    ))
}

/// How an export or a report is written.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
}

/// Exports every record that passes the filters, oldest first, as one streamed file: CSV (UTF-8
/// with a BOM) or a JSON array (HQ admin, auditor, store).
#[utoipa::path(get, path = "/audit/export", tag = "audit", security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "The records, streamed", content(
            (String = "text/csv"),
            (Vec<Record> = "application/json"),
        )),
        BadRequest, Unauthorized, Forbidden,
    ))]
async fn export(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    caller.tenant()?;
    let filter = query.filter()?;
    // Everything that can be refused is refused before the first byte: after it, the status
    // is sent.
    if let Some(store) = filter.store_id {
        audit::check_store(&state.db, &caller, store).await?;
    }
    let format = match query.format.unwrap_or_default() {
        ExportFormat::Csv => Format::Csv(query.separator.unwrap_or_default()),
        ExportFormat::Json => Format::Json,
    };
    let body = Body::from_stream(export_stream(state, caller, filter, format));
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit.{}\"", format.extension()),
            ),
        ],
        body,
    )
        .into_response())
}

/// Where an export stands between two pages.
enum Step {
    Start,
    After(Option<Position>),
    Done,
}

/// The export, one page of records per chunk. A failure after the first chunk can only cut the
/// body short (the status is sent): it is logged, and the client sees an incomplete file.
fn export_stream(
    state: AppState,
    caller: Principal,
    filter: Filter,
    format: Format,
) -> impl futures::Stream<Item = Result<Bytes, imark_core::Error>> {
    futures::stream::try_unfold(Step::Start, move |step| {
        let (state, caller, filter) = (state.clone(), caller.clone(), filter.clone());
        async move {
            let after = match step {
                Step::Done => return Ok(None),
                Step::Start => return Ok(Some((Bytes::from(format.start()?), Step::After(None)))),
                Step::After(after) => after,
            };
            let records = audit::list(&state.db, &caller, &filter, after, EXPORT_PAGE)
                .await
                .inspect_err(|e| tracing::error!(error.message = %e, "audit export cut short"))?;
            let Some(last) = records.last() else {
                return Ok(Some((Bytes::from(format.end()), Step::Done)));
            };
            let next = Position {
                at: last.at,
                id: last.id,
            };
            let chunk = format.page(&records, after.is_none())?;
            Ok(Some((Bytes::from(chunk), Step::After(Some(next)))))
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The store reported on; without it, every store the caller may read.
    pub store_id: Option<Uuid>,
    /// Start of the period, inclusive (RFC 3339).
    pub from: DateTime<Utc>,
    /// End of the period, exclusive (RFC 3339).
    pub to: DateTime<Utc>,
    /// `json` (the default), `csv` or `pdf`.
    pub format: Option<ReportFormat>,
    /// The CSV separator: `semicolon` (the default) or `comma`.
    pub separator: Option<render::Separator>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    #[default]
    Json,
    Csv,
    Pdf,
}

/// The compliance report of a store (or the tenant) over a period: totals by verdict and
/// criterion, no-check periods with the exchanges behind them, sales without tag 1260,
/// warned-and-sold items, ЧЗ latency and failovers (HQ admin, auditor, store).
#[utoipa::path(get, path = "/reports", tag = "audit", security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The report", content(
            (Report = "application/json"),
            (String = "text/csv"),
            (String = "application/pdf"),
        )),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ))]
async fn report(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    check_period(Some(query.from), Some(query.to))?;
    let report = reports::build(&state.db, &caller, query.store_id, query.from, query.to).await?;
    let name = format!(
        "imark-report-{}-{}",
        query.from.format("%Y%m%d"),
        query.to.format("%Y%m%d")
    );
    let (content_type, extension, bytes) = match query.format.unwrap_or_default() {
        ReportFormat::Json => return Ok(Json(report).into_response()),
        ReportFormat::Csv => (
            "text/csv; charset=utf-8",
            "csv",
            render::csv(
                &report,
                render::CsvOptions {
                    separator: query.separator.unwrap_or_default(),
                },
            ),
        ),
        // Laying out pages is CPU work of up to a second for a long report: off the runtime.
        ReportFormat::Pdf => (
            "application/pdf",
            "pdf",
            tokio::task::spawn_blocking(move || render::pdf(&report))
                .await
                .map_err(imark_core::Error::internal)?,
        ),
    };
    let bytes = bytes.map_err(imark_core::Error::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{extension}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
