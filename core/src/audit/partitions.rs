//! The monthly partitions of the evidence tables (`audit_records`, `truemark_exchanges`):
//! made ahead of time, and dropped whole once older than the retention period, after the last
//! record of every chain in them is kept as an anchor.

use chrono::{DateTime, Datelike as _, Months, NaiveDate, Utc};
use sea_orm::TransactionSession as _;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, TransactionTrait};

use crate::error::{Error, Result};

/// Months made ahead of the current one.
const AHEAD: u32 = 3;

/// The first day of `at`'s month.
fn month_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
        .with_day(1)
        .unwrap_or_else(|| at.date_naive())
}

fn partition_name(table: &str, month: NaiveDate) -> String {
    format!("{table}_y{:04}m{:02}", month.year(), month.month())
}

/// Makes the partitions of the previous month through `AHEAD` months after `now`'s; returns how
/// many were new.
pub async fn ensure<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<i32> {
    let month = month_of(now);
    let from = month.checked_sub_months(Months::new(1)).unwrap_or(month);
    let to = month
        .checked_add_months(Months::new(AHEAD + 1))
        .unwrap_or(month);
    #[derive(FromQueryResult)]
    struct Made {
        made: i32,
    }
    let made = Made::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT evidence_ensure_partitions($1, $2) AS made",
        [from.into(), to.into()],
    ))
    .one(db)
    .await?
    .map_or(0, |m| m.made);
    Ok(made)
}

/// Whether the month of `at` still has its exchanges partition (retention has not dropped it).
pub async fn exchanges_month_kept<C: ConnectionTrait>(db: &C, at: DateTime<Utc>) -> Result<bool> {
    exists(db, &partition_name("truemark_exchanges", month_of(at))).await
}

async fn exists<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool> {
    #[derive(FromQueryResult)]
    struct Exists {
        exists: bool,
    }
    Ok(Exists::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT to_regclass($1) IS NOT NULL AS exists",
        [table.into()],
    ))
    .one(db)
    .await?
    .is_some_and(|e| e.exists))
}

/// The monthly partitions of `audit_records`, oldest first.
async fn months<C: ConnectionTrait>(db: &C) -> Result<Vec<NaiveDate>> {
    #[derive(FromQueryResult)]
    struct Child {
        name: String,
    }
    let children = Child::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT c.relname AS name FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'audit_records'::regclass",
    ))
    .all(db)
    .await?;
    let mut months: Vec<NaiveDate> = children
        .iter()
        .filter_map(|c| {
            let rest = c.name.strip_prefix("audit_records_y")?;
            let (year, month) = rest.split_once('m')?;
            NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
        })
        .collect();
    months.sort_unstable();
    Ok(months)
}

/// Drops every month that ended more than `retention_months` before `now`'s month, oldest first.
/// Each month goes in one transaction: the anchors of its chains are kept, then its partitions
/// of both evidence tables are dropped. Returns the months dropped.
pub async fn apply_retention<C>(
    db: &C,
    now: DateTime<Utc>,
    retention_months: u32,
) -> Result<Vec<NaiveDate>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let cutoff = month_of(now)
        .checked_sub_months(Months::new(retention_months))
        .ok_or_else(|| Error::internal(anyhow::anyhow!("retention reaches before year 0")))?;
    let mut dropped = Vec::new();
    for month in months(db).await? {
        if month >= cutoff {
            break;
        }
        let records = partition_name("audit_records", month);
        let exchanges = partition_name("truemark_exchanges", month);
        let txn = db.begin().await?;
        // Replicas dropping at once queue here; the later ones find the month gone.
        // Dropping a partition locks its parent; a long report must not stall every append
        // behind it, so the drop gives up and waits for the next run instead.
        txn.execute_unprepared(
            "SET LOCAL lock_timeout = '5s'; \
             SELECT pg_advisory_xact_lock(hashtext('imark:evidence-partitions'))",
        )
        .await?;
        if !exists(&txn, &records).await? {
            continue;
        }
        txn.execute_unprepared(&format!(
            "INSERT INTO audit_anchors (tenant_id, chain, seq, hash, at, month) \
             SELECT DISTINCT ON (tenant_id, chain) tenant_id, chain, seq, hash, at, '{month}'::date \
             FROM {records} ORDER BY tenant_id, chain, seq DESC \
             ON CONFLICT DO NOTHING"
        ))
        .await?;
        txn.execute_unprepared(&format!(
            "DROP TABLE {records}; DROP TABLE IF EXISTS {exchanges}"
        ))
        .await?;
        txn.commit().await?;
        tracing::info!(%month, "evidence month dropped after its retention period");
        dropped.push(month);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn partitions_are_named_by_month() {
        let at = DateTime::parse_from_rfc3339("2026-02-28T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            partition_name("audit_records", month_of(at)),
            "audit_records_y2026m02"
        );
    }
}
