//! Fills a [`Report`] from the audit log: the period's document records (each with the whole
//! answer the cashier got), the `void` records, the tenant chain's `mode` records and the ЧЗ
//! exchanges that have their own record — all within the caller's scope and read in one
//! snapshot, so that what the report counts is what its integrity part verified.

use chrono::{DateTime, Utc};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, FromQueryResult, IsolationLevel, Statement,
    TransactionTrait as _, Value as SqlValue,
};
use serde_json::Value;
use uuid::Uuid;

use super::model::{
    Count, CriterionCount, DocumentRef, ExchangeSummary, HostStats, Integrity, NoCheckPeriod,
    Report, StoreRef, Totals, TruemarkStats, WarnedSale,
};
use crate::error::{Error, Result};
use crate::ids::utc;
use crate::principal::{Principal, StoreScope};
use crate::{audit, stores, tenants};

/// Which stores a report covers: one, or every store the caller may read (`None`: the whole
/// tenant).
struct Coverage {
    tenant_id: Uuid,
    stores: Option<Vec<Uuid>>,
}

impl Coverage {
    /// The SQL condition on `column` and its values, numbered after the period's `$1..$3`.
    fn condition(&self, column: &str) -> (String, Vec<SqlValue>) {
        match &self.stores {
            None => (String::new(), Vec::new()),
            Some(ids) => (
                format!(" AND {column} = ANY($4::uuid[])"),
                vec![ids.clone().into()],
            ),
        }
    }
}

/// The report on `store_id` (or everything the caller may read) from `from` to `to`.
pub async fn build(
    db: &DatabaseConnection,
    principal: &Principal,
    store_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Report> {
    if from >= to {
        return Err(Error::invalid("from", "must be before `to`"));
    }
    let tenant_id = principal.tenant()?;
    let tenant = tenants::get(db, tenant_id).await?;
    let scope = principal.store_scope();
    let (store, coverage) = match store_id {
        Some(id) => {
            let store = stores::get(db, tenant_id, &scope, id).await?;
            (
                Some(StoreRef {
                    id: store.id,
                    name: store.name,
                }),
                Coverage {
                    tenant_id,
                    stores: Some(vec![id]),
                },
            )
        }
        None => (
            None,
            Coverage {
                tenant_id,
                stores: match scope {
                    StoreScope::All => None,
                    StoreScope::Only(ids) => Some(ids),
                },
            },
        ),
    };
    // One snapshot for every part: records committed meanwhile are neither half counted nor
    // taken for a broken chain.
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let report = Report {
        tenant_id,
        tenant_name: tenant.name,
        store,
        from,
        to,
        generated_at: Utc::now(),
        totals: totals(&txn, &coverage, from, to).await?,
        no_check_periods: no_check_periods(&txn, tenant_id, from, to).await?,
        sales_without_tag1260: sales_without_tag(&txn, &coverage, from, to).await?,
        warned_and_sold: warned_and_sold(&txn, &coverage, from, to).await?,
        truemark: truemark(&txn, &coverage, from, to).await?,
        integrity: integrity(&txn, principal, store_id, &coverage, from, to).await?,
    };
    txn.commit().await?;
    Ok(report)
}

/// The period's documents as their audit records hold them, as `docs (id, store_id, at,
/// answer, voided)`: a sale is voided when its store's chain also holds a `void` record for it.
fn with_documents(cond: &str) -> String {
    format!(
        "WITH docs AS ( \
             SELECT a.document_id AS id, a.chain AS store_id, a.at, \
                 a.content::jsonb -> 'body' -> 'answer' AS answer, \
                 EXISTS (SELECT 1 FROM audit_records v \
                         WHERE v.tenant_id = a.tenant_id AND v.chain = a.chain \
                           AND v.kind = 'void' AND v.document_id = a.document_id) AS voided \
             FROM audit_records a \
             WHERE a.tenant_id = $1 AND a.kind = 'document' AND a.at >= $2 AND a.at < $3{cond} \
         ) "
    )
}

/// Verifies the chains the report rests on — those it covers, and the tenant's own, which holds
/// the no-check periods — and matches the operational tables against the log: documents whose
/// stored answer differs from their record (or that have none), and ЧЗ exchanges without their
/// record, which the report leaves out.
async fn integrity<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    store_id: Option<Uuid>,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Integrity> {
    let mut verification = audit::verify(db, principal, store_id, from, to).await?;
    if !verification
        .chains
        .iter()
        .any(|chain| chain.store_id.is_none())
    {
        verification.chains.push(
            audit::verify_chain(db, coverage.tenant_id, audit::TENANT_CHAIN, from, to).await?,
        );
    }
    let chains_ok = verification.chains.iter().all(|chain| chain.ok);

    #[derive(FromQueryResult)]
    struct Unmatched {
        id: Uuid,
    }
    let (documents_cond, extra) = coverage.condition("d.store_id");
    let (records_cond, _) = coverage.condition("a.chain");
    // Months retention dropped keep their documents but no longer their records.
    let kept = "(SELECT coalesce(max(m.month) + interval '1 month', '-infinity') \
                FROM audit_anchors m WHERE m.tenant_id = $1)";
    let unmatched = Unmatched::find_by_statement(statement(
        db,
        format!(
            "SELECT id FROM ( \
                 SELECT d.id FROM documents d \
                 WHERE d.tenant_id = $1 AND d.created_at >= $2 AND d.created_at < $3{documents_cond} \
                   AND d.created_at >= {kept} \
                   AND (1 <> ( \
                       SELECT count(*) FROM audit_records a \
                       WHERE a.tenant_id = d.tenant_id AND a.document_id = d.id \
                         AND a.kind = 'document' AND a.chain = d.store_id \
                         AND a.verdict = d.verdict AND a.mode = d.mode \
                         AND a.content::jsonb -> 'body' -> 'answer' = d.answer) \
                     OR (d.voided_at IS NOT NULL) <> EXISTS ( \
                       SELECT 1 FROM audit_records v \
                       WHERE v.tenant_id = d.tenant_id AND v.document_id = d.id \
                         AND v.kind = 'void' AND v.chain = d.store_id)) \
                 UNION \
                 SELECT a.document_id FROM audit_records a \
                 WHERE a.tenant_id = $1 AND a.at >= $2 AND a.at < $3{records_cond} \
                   AND a.kind = 'document' \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM documents d \
                       WHERE d.id = a.document_id AND d.tenant_id = a.tenant_id) \
             ) unmatched ORDER BY id LIMIT 1000"
        ),
        coverage,
        from,
        to,
        extra.clone(),
    ))
    .all(db)
    .await?;

    #[derive(FromQueryResult)]
    struct Unrecorded {
        count: i64,
    }
    let (exchanges_cond, _) = coverage.condition("e.store_id");
    let unrecorded = Unrecorded::find_by_statement(statement(
        db,
        format!(
            "SELECT count(*) AS count FROM truemark_exchanges e \
             WHERE e.tenant_id = $1 AND e.started_at >= $2 AND e.started_at < $3{exchanges_cond} \
               AND NOT {RECORDED}"
        ),
        coverage,
        from,
        to,
        extra,
    ))
    .one(db)
    .await?
    .map_or(0, |u| u.count);
    let exchanges_unrecorded = u64::try_from(unrecorded).unwrap_or(0);
    Ok(Integrity {
        ok: chains_ok && unmatched.is_empty() && exchanges_unrecorded == 0,
        chains: verification.chains,
        documents_unmatched: unmatched.into_iter().map(|u| u.id).collect(),
        exchanges_unrecorded,
    })
}

/// The condition that exchange `e` has its own audit record, which holds its digest.
const RECORDED: &str = "EXISTS (SELECT 1 FROM audit_records x \
     WHERE x.tenant_id = e.tenant_id AND x.kind = 'exchange' AND x.exchange_id = e.id)";

fn statement<C: ConnectionTrait>(
    db: &C,
    sql: String,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    extra: Vec<SqlValue>,
) -> Statement {
    let mut values: Vec<SqlValue> = vec![coverage.tenant_id.into(), from.into(), to.into()];
    values.extend(extra);
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

#[derive(FromQueryResult)]
struct Counted {
    key: String,
    count: i64,
}

fn counts(rows: Vec<Counted>) -> Vec<Count> {
    rows.into_iter()
        .map(|r| Count {
            key: r.key,
            count: u64::try_from(r.count).unwrap_or(0),
        })
        .collect()
}

async fn totals<C: ConnectionTrait>(
    db: &C,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Totals> {
    let (cond, extra) = coverage.condition("a.chain");
    let docs = with_documents(&cond);
    let count_by = async |select: &str, from_clause: &str| -> Result<Vec<Count>> {
        Ok(counts(
            Counted::find_by_statement(statement(
                db,
                format!(
                    "{docs}SELECT {select} AS key, count(*) AS count FROM {from_clause} \
                     GROUP BY 1 ORDER BY 2 DESC, 1"
                ),
                coverage,
                from,
                to,
                extra.clone(),
            ))
            .all(db)
            .await?,
        ))
    };
    let items = "docs d CROSS JOIN LATERAL jsonb_array_elements(d.answer -> 'items') i";
    let documents_by_verdict = count_by("d.answer ->> 'verdict'", "docs d").await?;
    let documents_by_mode = count_by("d.answer ->> 'mode'", "docs d").await?;
    let items_by_verdict = count_by("i ->> 'verdict'", items).await?;

    #[derive(FromQueryResult)]
    struct Fired {
        criterion: String,
        blocked: i64,
        warned: i64,
    }
    let fired = Fired::find_by_statement(statement(
        db,
        format!(
            "{docs}SELECT r ->> 'criterion' AS criterion, \
                 count(*) FILTER (WHERE r ->> 'action' = 'block') AS blocked, \
                 count(*) FILTER (WHERE r ->> 'action' = 'warn') AS warned \
             FROM {items} CROSS JOIN LATERAL jsonb_array_elements(i -> 'reasons') r \
             GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1"
        ),
        coverage,
        from,
        to,
        extra,
    ))
    .all(db)
    .await?;

    let documents = documents_by_verdict.iter().map(|c| c.count).sum();
    let items = items_by_verdict.iter().map(|c| c.count).sum();
    Ok(Totals {
        documents,
        items,
        documents_by_verdict,
        items_by_verdict,
        by_criterion: fired
            .into_iter()
            .map(|f| CriterionCount {
                criterion: f.criterion,
                blocked: u64::try_from(f.blocked).unwrap_or(0),
                warned: u64::try_from(f.warned).unwrap_or(0),
            })
            .collect(),
        documents_by_mode,
    })
}

/// The tenant's no-check periods that overlap the report's period, each with the exchanges that
/// opened it, from the `mode` records of the tenant's chain.
async fn no_check_periods<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<NoCheckPeriod>> {
    #[derive(FromQueryResult)]
    struct Period {
        base_url: String,
        region: String,
        reason: String,
        exchanges: Value,
        started_at: DateTime<chrono::FixedOffset>,
        ended_at: Option<DateTime<chrono::FixedOffset>>,
    }
    let periods = Period::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "WITH modes AS ( \
             SELECT a.at, a.mode, a.content::jsonb -> 'body' AS body FROM audit_records a \
             WHERE a.tenant_id = $1 AND a.chain = $4 AND a.kind = 'mode' AND a.at < $3 \
         ) \
         SELECT * FROM ( \
             SELECT t.body ->> 'base_url' AS base_url, t.body ->> 'region' AS region, \
                 t.body ->> 'reason' AS reason, t.body -> 'exchanges' AS exchanges, \
                 t.at AS started_at, \
                 (SELECT min(o.at) FROM audit_records o \
                  WHERE o.tenant_id = $1 AND o.chain = $4 AND o.kind = 'mode' \
                    AND o.mode = 'online' AND o.at > t.at \
                    AND o.content::jsonb -> 'body' ->> 'base_url' = t.body ->> 'base_url' \
                    AND o.content::jsonb -> 'body' ->> 'region' = t.body ->> 'region') AS ended_at \
             FROM modes t WHERE t.mode = 'no_check' \
         ) p WHERE p.ended_at IS NULL OR p.ended_at > $2 \
         ORDER BY p.started_at",
        [
            tenant_id.into(),
            from.into(),
            to.into(),
            audit::TENANT_CHAIN.into(),
        ],
    ))
    .all(db)
    .await?;
    Ok(periods
        .into_iter()
        .map(|p| NoCheckPeriod {
            base_url: p.base_url,
            region: p.region,
            started_at: utc(p.started_at),
            ended_at: p.ended_at.map(utc),
            reason: p.reason,
            exchanges: p
                .exchanges
                .as_array()
                .map(|list| list.iter().map(exchange_summary).collect())
                .unwrap_or_default(),
        })
        .collect())
}

/// A transition's exchange as it was kept (the client's record, serialised).
fn exchange_summary(value: &Value) -> ExchangeSummary {
    ExchangeSummary {
        url: value
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        started_at: value
            .get("started_at")
            .and_then(|v| serde_json::from_value(v.clone()).ok()),
        http_status: value
            .get("http_status")
            .and_then(Value::as_i64)
            .and_then(|s| i32::try_from(s).ok()),
        duration_ms: value.get("duration_ms").and_then(Value::as_i64),
        error: value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

#[derive(FromQueryResult)]
struct DocumentRow {
    id: Uuid,
    store_id: Uuid,
    pos_document_id: String,
    at: DateTime<chrono::FixedOffset>,
    kind: String,
    mode: String,
    verdict: String,
    items: i64,
}

async fn sales_without_tag<C: ConnectionTrait>(
    db: &C,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DocumentRef>> {
    let (cond, extra) = coverage.condition("a.chain");
    let rows = DocumentRow::find_by_statement(statement(
        db,
        format!(
            "{docs}SELECT d.id, d.store_id, d.answer ->> 'id' AS pos_document_id, d.at, \
                 d.answer ->> 'type' AS kind, d.answer ->> 'mode' AS mode, \
                 d.answer ->> 'verdict' AS verdict, \
                 jsonb_array_length(d.answer -> 'items')::bigint AS items \
             FROM docs d \
             WHERE d.answer ->> 'type' = 'sale' AND NOT d.voided \
               AND EXISTS (SELECT 1 FROM jsonb_array_elements(d.answer -> 'items') i \
                           WHERE i ->> 'verdict' <> 'block') \
               AND coalesce(d.answer -> 'tag1260', 'null'::jsonb) = 'null'::jsonb \
             ORDER BY d.at, d.id",
            docs = with_documents(&cond)
        ),
        coverage,
        from,
        to,
        extra,
    ))
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DocumentRef {
            document_id: r.id,
            store_id: r.store_id,
            pos_document_id: r.pos_document_id,
            at: utc(r.at),
            kind: r.kind,
            mode: r.mode,
            verdict: r.verdict,
            items: u64::try_from(r.items).unwrap_or(0),
        })
        .collect())
}

async fn warned_and_sold<C: ConnectionTrait>(
    db: &C,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<WarnedSale>> {
    #[derive(FromQueryResult)]
    struct Row {
        id: Uuid,
        store_id: Uuid,
        pos_document_id: String,
        at: DateTime<chrono::FixedOffset>,
        position: i32,
        cis: Option<String>,
        criteria: Vec<String>,
    }
    let (cond, extra) = coverage.condition("a.chain");
    // A sale's items that were not blocked are sold, whatever the others got; unless voided.
    let rows = Row::find_by_statement(statement(
        db,
        format!(
            "{docs}SELECT d.id, d.store_id, d.answer ->> 'id' AS pos_document_id, d.at, \
                 (i ->> 'position')::int AS position, i ->> 'cis' AS cis, \
                 ARRAY(SELECT r ->> 'criterion' FROM jsonb_array_elements(i -> 'reasons') r \
                       WHERE r ->> 'action' = 'warn') AS criteria \
             FROM docs d CROSS JOIN LATERAL jsonb_array_elements(d.answer -> 'items') i \
             WHERE d.answer ->> 'type' = 'sale' AND NOT d.voided AND i ->> 'verdict' = 'warn' \
             ORDER BY d.at, d.id, 5",
            docs = with_documents(&cond)
        ),
        coverage,
        from,
        to,
        extra,
    ))
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| WarnedSale {
            document_id: r.id,
            store_id: r.store_id,
            pos_document_id: r.pos_document_id,
            at: utc(r.at),
            position: r.position,
            cis: r.cis,
            criteria: r.criteria,
        })
        .collect())
}

async fn truemark<C: ConnectionTrait>(
    db: &C,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<TruemarkStats> {
    let (cond, extra) = coverage.condition("e.store_id");
    // Only exchanges with their own record count: a row slipped into the table is left out
    // (and counted as unrecorded in the integrity part).
    let scope = format!(
        "FROM truemark_exchanges e \
         WHERE e.tenant_id = $1 AND e.started_at >= $2 AND e.started_at < $3{cond} \
           AND {RECORDED}"
    );
    // A usable answer is a complete HTTP answer below 500; everything else failed.
    let failed = "e.error IS NOT NULL OR e.http_status IS NULL OR e.http_status >= 500";

    #[derive(FromQueryResult)]
    struct Overall {
        exchanges: i64,
        failed: i64,
        p50: Option<f64>,
        p95: Option<f64>,
        p99: Option<f64>,
        max: Option<i32>,
    }
    let overall = Overall::find_by_statement(statement(
        db,
        format!(
            "SELECT count(*) AS exchanges, count(*) FILTER (WHERE {failed}) AS failed, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50, \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95, \
                 percentile_cont(0.99) WITHIN GROUP (ORDER BY e.duration_ms) AS p99, \
                 max(e.duration_ms) AS max {scope}"
        ),
        coverage,
        from,
        to,
        extra.clone(),
    ))
    .one(db)
    .await?
    .ok_or_else(|| Error::internal(anyhow::anyhow!("an aggregate returned no row")))?;

    #[derive(FromQueryResult)]
    struct Host {
        host: String,
        exchanges: i64,
        failed: i64,
        p50: Option<f64>,
        p95: Option<f64>,
    }
    let hosts = Host::find_by_statement(statement(
        db,
        format!(
            "SELECT coalesce(substring(e.url FROM '^[a-z]+://([^/]+)'), e.url) AS host, \
                 count(*) AS exchanges, count(*) FILTER (WHERE {failed}) AS failed, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50, \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95 \
             {scope} GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
        coverage,
        from,
        to,
        extra.clone(),
    ))
    .all(db)
    .await?;

    #[derive(FromQueryResult)]
    struct Failovers {
        failovers: i64,
    }
    let failovers = Failovers::find_by_statement(statement(
        db,
        format!(
            "SELECT count(*) AS failovers FROM ( \
                 SELECT e.document_id {scope} AND e.document_id IS NOT NULL \
                   AND e.endpoint = 'codes_check' \
                 GROUP BY e.document_id \
                 HAVING count(DISTINCT substring(e.url FROM '^[a-z]+://([^/]+)')) > 1) f"
        ),
        coverage,
        from,
        to,
        extra,
    ))
    .one(db)
    .await?
    .map_or(0, |f| f.failovers);

    Ok(TruemarkStats {
        exchanges: u64::try_from(overall.exchanges).unwrap_or(0),
        failed: u64::try_from(overall.failed).unwrap_or(0),
        latency_p50_ms: overall.p50,
        latency_p95_ms: overall.p95,
        latency_p99_ms: overall.p99,
        latency_max_ms: overall.max.map(i64::from),
        failovers: u64::try_from(failovers).unwrap_or(0),
        hosts: hosts
            .into_iter()
            .map(|h| HostStats {
                host: h.host,
                exchanges: u64::try_from(h.exchanges).unwrap_or(0),
                failed: u64::try_from(h.failed).unwrap_or(0),
                latency_p50_ms: h.p50,
                latency_p95_ms: h.p95,
            })
            .collect(),
    })
}
