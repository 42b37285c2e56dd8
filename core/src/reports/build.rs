//! Fills a [`Report`] from the database: documents, their items' verdicts and the policy actions
//! recorded in each answer, mode transitions and ЧЗ exchanges, all within the caller's scope.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, FromQueryResult, Statement, Value as SqlValue};
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
    Ok(Report {
        tenant_id,
        tenant_name: tenant.name,
        store,
        from,
        to,
        generated_at: Utc::now(),
        totals: totals(db, &coverage, from, to).await?,
        no_check_periods: no_check_periods(db, tenant_id, from, to).await?,
        sales_without_tag1260: sales_without_tag(db, &coverage, from, to).await?,
        warned_and_sold: warned_and_sold(db, &coverage, from, to).await?,
        truemark: truemark(db, &coverage, from, to).await?,
        integrity: integrity(db, principal, store_id, &coverage, from, to).await?,
    })
}

/// Verifies the chains the report covers and matches the period's documents, on which every
/// total rests, against the answers their audit records hold.
async fn integrity(
    db: &DatabaseConnection,
    principal: &Principal,
    store_id: Option<Uuid>,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Integrity> {
    let verification = audit::verify(db, principal, store_id, from, to).await?;
    #[derive(FromQueryResult)]
    struct Unmatched {
        id: Uuid,
    }
    let (documents_cond, extra) = coverage.condition("d.store_id");
    let (records_cond, _) = coverage.condition("a.chain");
    let unmatched = Unmatched::find_by_statement(statement(
        db,
        format!(
            "SELECT id FROM ( \
                 SELECT d.id FROM documents d \
                 WHERE d.tenant_id = $1 AND d.created_at >= $2 AND d.created_at < $3{documents_cond} \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM audit_records a \
                       WHERE a.tenant_id = d.tenant_id AND a.document_id = d.id \
                         AND a.chain = d.store_id AND a.kind = 'document' \
                         AND a.content::jsonb -> 'body' -> 'answer' = d.answer) \
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
        extra,
    ))
    .all(db)
    .await?;
    Ok(Integrity {
        ok: verification.ok && unmatched.is_empty(),
        chains: verification.chains,
        documents_unmatched: unmatched.into_iter().map(|u| u.id).collect(),
    })
}

fn statement(
    db: &DatabaseConnection,
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

async fn totals(
    db: &DatabaseConnection,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Totals> {
    let (cond, extra) = coverage.condition("d.store_id");
    let base = format!(
        "FROM documents d WHERE d.tenant_id = $1 AND d.created_at >= $2 AND d.created_at < $3{cond}"
    );
    let by = |column: &str| {
        format!("SELECT {column} AS key, count(*) AS count {base} GROUP BY 1 ORDER BY 2 DESC, 1")
    };
    let documents_by_verdict = counts(
        Counted::find_by_statement(statement(
            db,
            by("d.verdict"),
            coverage,
            from,
            to,
            extra.clone(),
        ))
        .all(db)
        .await?,
    );
    let documents_by_mode = counts(
        Counted::find_by_statement(statement(
            db,
            by("d.mode"),
            coverage,
            from,
            to,
            extra.clone(),
        ))
        .all(db)
        .await?,
    );
    let items_by_verdict = counts(
        Counted::find_by_statement(statement(
            db,
            format!(
                "SELECT i.verdict AS key, count(*) AS count {} \
                 GROUP BY 1 ORDER BY 2 DESC, 1",
                base.replace(
                    "FROM documents d",
                    "FROM documents d JOIN document_items i ON i.document_id = d.id"
                )
            ),
            coverage,
            from,
            to,
            extra.clone(),
        ))
        .all(db)
        .await?,
    );

    #[derive(FromQueryResult)]
    struct Fired {
        criterion: String,
        blocked: i64,
        warned: i64,
    }
    let fired = Fired::find_by_statement(statement(
        db,
        format!(
            "SELECT r->>'criterion' AS criterion, \
                 count(*) FILTER (WHERE r->>'action' = 'block') AS blocked, \
                 count(*) FILTER (WHERE r->>'action' = 'warn') AS warned \
             {} GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1",
            base.replace(
                "FROM documents d",
                "FROM documents d \
                 CROSS JOIN LATERAL jsonb_array_elements(d.answer->'items') i \
                 CROSS JOIN LATERAL jsonb_array_elements(i->'reasons') r"
            )
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
/// opened it.
async fn no_check_periods(
    db: &DatabaseConnection,
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
        "SELECT * FROM ( \
             SELECT t.base_url, t.region, t.reason, t.exchanges, t.at AS started_at, \
                 (SELECT min(o.at) FROM mode_transitions o \
                  WHERE o.tenant_id = t.tenant_id AND o.base_url = t.base_url \
                    AND o.region = t.region AND o.to_mode = 'online' AND o.at > t.at) AS ended_at \
             FROM mode_transitions t \
             WHERE t.tenant_id = $1 AND t.to_mode = 'no_check' AND t.at < $3 \
         ) p WHERE p.ended_at IS NULL OR p.ended_at > $2 \
         ORDER BY p.started_at",
        [tenant_id.into(), from.into(), to.into()],
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
    created_at: DateTime<chrono::FixedOffset>,
    kind: String,
    mode: String,
    verdict: String,
    items: i64,
}

async fn sales_without_tag(
    db: &DatabaseConnection,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DocumentRef>> {
    let (cond, extra) = coverage.condition("d.store_id");
    let rows = DocumentRow::find_by_statement(statement(
        db,
        format!(
            "SELECT d.id, d.store_id, d.pos_document_id, d.created_at, d.kind, d.mode, d.verdict, \
                 jsonb_array_length(d.answer->'items')::bigint AS items \
             FROM documents d \
             WHERE d.tenant_id = $1 AND d.created_at >= $2 AND d.created_at < $3{cond} \
               AND d.kind = 'sale' AND d.verdict <> 'block' AND d.voided_at IS NULL \
               AND coalesce(d.answer->'tag1260', 'null'::jsonb) = 'null'::jsonb \
             ORDER BY d.created_at, d.id"
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
            at: utc(r.created_at),
            kind: r.kind,
            mode: r.mode,
            verdict: r.verdict,
            items: u64::try_from(r.items).unwrap_or(0),
        })
        .collect())
}

async fn warned_and_sold(
    db: &DatabaseConnection,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<WarnedSale>> {
    #[derive(FromQueryResult)]
    struct Row {
        id: Uuid,
        store_id: Uuid,
        pos_document_id: String,
        created_at: DateTime<chrono::FixedOffset>,
        position: i32,
        cis: Option<String>,
        criteria: Vec<String>,
    }
    let (cond, extra) = coverage.condition("d.store_id");
    let rows = Row::find_by_statement(statement(
        db,
        format!(
            "SELECT d.id, d.store_id, d.pos_document_id, d.created_at, \
                 (i->>'position')::int AS position, i->>'cis' AS cis, \
                 ARRAY(SELECT r->>'criterion' FROM jsonb_array_elements(i->'reasons') r \
                       WHERE r->>'action' = 'warn') AS criteria \
             FROM documents d CROSS JOIN LATERAL jsonb_array_elements(d.answer->'items') i \
             WHERE d.tenant_id = $1 AND d.created_at >= $2 AND d.created_at < $3{cond} \
               AND d.kind = 'sale' AND d.voided_at IS NULL AND i->>'verdict' = 'warn' \
             ORDER BY d.created_at, d.id, 5"
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
            at: utc(r.created_at),
            position: r.position,
            cis: r.cis,
            criteria: r.criteria,
        })
        .collect())
}

async fn truemark(
    db: &DatabaseConnection,
    coverage: &Coverage,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<TruemarkStats> {
    let (cond, extra) = coverage.condition("e.store_id");
    let scope = format!(
        "FROM truemark_exchanges e \
         WHERE e.tenant_id = $1 AND e.started_at >= $2 AND e.started_at < $3{cond}"
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
