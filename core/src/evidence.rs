//! Evidence of every ЧЗ exchange. Exchanges are written with the document they belong to, in
//! its transaction; when that write fails after ЧЗ has answered, they are spooled to Redis (or,
//! failing that, to the error log) and written later, so no answer is ever lost.

use redis::AsyncCommands as _;
use sea_orm::TransactionSession as _;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, TransactionTrait};
use serde::{Deserialize, Serialize};
use truemark::client::ExchangeRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Entry};
use crate::cache::Cache;
use crate::error::Result;

const SPOOL: &str = "evidence:spool";
/// Spooled rows that Postgres refused for good, kept for a person to look at.
const DEAD: &str = "evidence:refused";

/// One exchange as stored, with whom it concerns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, FromQueryResult, ToSchema)]
pub struct ExchangeRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub store_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub endpoint: String,
    pub method: String,
    pub url: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: i32,
    pub http_status: Option<i32>,
    pub req_id: Option<String>,
    pub request_body: Option<String>,
    pub answer_body: Option<String>,
    pub error: Option<String>,
}

impl ExchangeRow {
    pub fn new(
        record: &ExchangeRecord,
        tenant_id: Uuid,
        store_id: Option<Uuid>,
        document_id: Option<Uuid>,
    ) -> Self {
        let answer_body = record.answer_body.as_ref().map(|b| b.text.clone());
        let req_id = answer_body
            .as_deref()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .and_then(|v| v.get("reqId").and_then(|id| id.as_str()).map(str::to_owned));
        Self {
            id: Uuid::now_v7(),
            tenant_id,
            store_id,
            document_id,
            endpoint: record.endpoint.as_str().to_owned(),
            method: record.method.to_owned(),
            url: record.url.to_string(),
            started_at: record.started_at,
            duration_ms: i32::try_from(record.duration.as_millis()).unwrap_or(i32::MAX),
            http_status: record.http_status.map(i32::from),
            req_id,
            request_body: record.request_body.as_ref().map(|b| b.text.clone()),
            answer_body,
            error: record.error.clone(),
        }
    }
}

/// Writes `rows`, each with its record in the audit chain of its store (or tenant); idempotent,
/// so a spooled row written twice is stored and recorded once.
pub async fn write<C>(db: &C, rows: &[ExchangeRow]) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    for row in rows {
        let txn = db.begin().await?;
        let entries = insert(&txn, std::slice::from_ref(row)).await?;
        audit::append_all(&txn, row.tenant_id, entries).await?;
        txn.commit().await?;
    }
    Ok(())
}

/// Inserts `rows` in one statement inside the caller's transaction `txn` (a document's), and
/// returns the audit entries of the rows that were new, for the caller to append with its own
/// record: they commit or roll back together.
pub async fn insert<C: ConnectionTrait>(txn: &C, rows: &[ExchangeRow]) -> Result<Vec<Entry>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(rows.len() * 14);
    let mut tuples = Vec::with_capacity(rows.len());
    for row in rows {
        let columns = [
            row.id.into(),
            row.tenant_id.into(),
            row.store_id.into(),
            row.document_id.into(),
            row.endpoint.clone().into(),
            row.method.clone().into(),
            row.url.clone().into(),
            row.started_at.into(),
            row.duration_ms.into(),
            row.http_status.into(),
            row.req_id.clone().into(),
            row.request_body.clone().into(),
            row.answer_body.clone().into(),
            row.error.clone().into(),
        ];
        tuples.push(format!(
            "({})",
            crate::db::bind_row(&mut values, columns, &[])
        ));
    }
    #[derive(FromQueryResult)]
    struct Inserted {
        id: Uuid,
    }
    let inserted = Inserted::find_by_statement(Statement::from_sql_and_values(
        txn.get_database_backend(),
        format!(
            "INSERT INTO truemark_exchanges ({COLUMNS}) VALUES {} \
             ON CONFLICT (id, started_at) DO NOTHING RETURNING id",
            tuples.join(", ")
        ),
        values,
    ))
    .all(txn)
    .await?;
    Ok(rows
        .iter()
        .filter(|row| inserted.iter().any(|new| new.id == row.id))
        .map(Entry::exchange)
        .collect())
}

const COLUMNS: &str = "id, tenant_id, store_id, document_id, endpoint, method, url, started_at, \
     duration_ms, http_status, req_id, request_body, answer_body, error";

/// One stored exchange of the tenant.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<ExchangeRow>> {
    Ok(
        ExchangeRow::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("SELECT {COLUMNS} FROM truemark_exchanges WHERE id = $1 AND tenant_id = $2"),
            [id.into(), tenant_id.into()],
        ))
        .one(db)
        .await?,
    )
}

/// The tenant's exchanges among `ids`, by id.
pub async fn find_many<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    ids: Vec<Uuid>,
) -> Result<std::collections::HashMap<Uuid, ExchangeRow>> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows = ExchangeRow::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "SELECT {COLUMNS} FROM truemark_exchanges WHERE id = ANY($1::uuid[]) AND tenant_id = $2"
        ),
        [ids.into(), tenant_id.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// Keeps `rows` for a later write after the database refused them. Never fails: when Redis is
/// unreachable too, the rows go to the error log, the last place they can be recovered from.
pub async fn spool(cache: &Cache, rows: &[ExchangeRow]) {
    for row in rows {
        let text = match serde_json::to_string(row) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error.message = %e, "evidence could not be serialised");
                continue;
            }
        };
        let pushed: redis::RedisResult<()> =
            cache.connection().rpush(cache.key(SPOOL), &text).await;
        if let Err(e) = pushed {
            tracing::error!(
                error.message = %e,
                evidence = %text,
                "evidence kept in this log only: Redis and Postgres refused it"
            );
        }
    }
}

/// Writes spooled evidence to Postgres, oldest first; returns how many rows were written. A row
/// leaves the spool only after its write succeeded.
pub async fn drain<C>(db: &C, cache: &Cache, max: usize) -> Result<usize>
where
    C: ConnectionTrait + TransactionTrait,
{
    let key = cache.key(SPOOL);
    let mut written = 0;
    while written < max {
        let head: Option<String> = cache
            .connection()
            .lindex(&key, 0)
            .await
            .map_err(|e| crate::Error::Unavailable(e.into()))?;
        let Some(text) = head else { break };
        match serde_json::from_str::<ExchangeRow>(&text) {
            Ok(row) => match write(db, std::slice::from_ref(&row)).await {
                Ok(()) => {}
                Err(crate::Error::Internal(e)) => {
                    // Postgres refuses this row for good (not for want of a connection): it
                    // moves aside, so the rows behind it are not held up forever.
                    tracing::error!(error.message = %e, evidence = %text, "evidence set aside");
                    let _: () = cache
                        .connection()
                        .rpush(cache.key(DEAD), &text)
                        .await
                        .map_err(|e| crate::Error::Unavailable(e.into()))?;
                }
                Err(other) => return Err(other),
            },
            Err(e) => {
                tracing::error!(error.message = %e, evidence = %text, "unreadable spooled evidence");
            }
        }
        let _: () = cache
            .connection()
            .lrem(&key, 1, &text)
            .await
            .map_err(|e| crate::Error::Unavailable(e.into()))?;
        written += 1;
    }
    Ok(written)
}
