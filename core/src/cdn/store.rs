//! `cdn_hosts` in Postgres: the truth about every host of every group.

use chrono::{DateTime, Utc};
use entities::{cdn_hosts, truemark_credentials};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait as _, DatabaseConnection, EntityTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, Statement, TransactionTrait as _,
};
use truemark::client::{BaseUrl, CdnHost};
use uuid::Uuid;

use super::CdnGroup;
use super::refresh::HostHealth;
use crate::error::Result;
use crate::ids::utc;

/// A host as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub host: String,
    pub is_current: bool,
    pub rank: Option<i32>,
    pub unavailable_until: Option<DateTime<Utc>>,
    pub server_avg_time_ms: Option<i32>,
    pub measured_latency_ms: Option<i32>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub consecutive_failures: i32,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Every host ever listed for `group`, ranked ones first by rank, then by address.
pub async fn hosts(db: &DatabaseConnection, group: &CdnGroup) -> Result<Vec<HostRow>> {
    let rows = of_group(group)
        .order_by_asc(Expr::cust("rank IS NULL"))
        .order_by_asc(cdn_hosts::Column::Rank)
        .order_by_asc(cdn_hosts::Column::HostUrl)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(row).collect())
}

/// The ranked hosts of `group`, fastest first.
pub(super) async fn ranking(db: &DatabaseConnection, group: &CdnGroup) -> Result<Vec<CdnHost>> {
    let rows = of_group(group)
        .filter(cdn_hosts::Column::Rank.is_not_null())
        .filter(cdn_hosts::Column::RetiredAt.is_null())
        .order_by_asc(cdn_hosts::Column::Rank)
        .all(db)
        .await?;
    Ok(addresses(rows))
}

/// The listed (not retired) hosts of `group`.
pub(super) async fn listed(db: &DatabaseConnection, group: &CdnGroup) -> Result<Vec<CdnHost>> {
    let rows = of_group(group)
        .filter(cdn_hosts::Column::RetiredAt.is_null())
        .order_by_asc(cdn_hosts::Column::HostUrl)
        .all(db)
        .await?;
    Ok(addresses(rows))
}

/// The hosts of `group` blocked until a time still to come.
pub(super) async fn blocked(db: &DatabaseConnection, group: &CdnGroup) -> Result<Vec<CdnHost>> {
    let rows = of_group(group)
        .filter(cdn_hosts::Column::UnavailableUntil.gt(Utc::now()))
        .all(db)
        .await?;
    Ok(addresses(rows))
}

/// Records a discovery answer: listed hosts are upserted and seen now; hosts no longer listed
/// are retired and lose their rank.
pub(super) async fn record_listing(
    db: &DatabaseConnection,
    group: &CdnGroup,
    listed: &[CdnHost],
) -> Result<()> {
    let txn = db.begin().await?;
    if !listed.is_empty() {
        let rows = listed.iter().map(|host| cdn_hosts::ActiveModel {
            id: Set(Uuid::now_v7()),
            base_url: Set(group.base_key().to_owned()),
            region: Set(group.region().to_owned()),
            host_url: Set(host.to_string()),
            ..Default::default()
        });
        cdn_hosts::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    cdn_hosts::Column::BaseUrl,
                    cdn_hosts::Column::Region,
                    cdn_hosts::Column::HostUrl,
                ])
                .value(cdn_hosts::Column::LastSeenAt, Expr::current_timestamp())
                .value(cdn_hosts::Column::RetiredAt, Expr::null())
                .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    let names: Vec<String> = listed.iter().map(ToString::to_string).collect();
    cdn_hosts::Entity::update_many()
        .col_expr(cdn_hosts::Column::RetiredAt, Expr::current_timestamp())
        .col_expr(cdn_hosts::Column::Rank, Expr::null())
        .col_expr(cdn_hosts::Column::IsCurrent, Expr::value(false))
        .filter(cdn_hosts::Column::BaseUrl.eq(group.base_key()))
        .filter(cdn_hosts::Column::Region.eq(group.region()))
        .filter(cdn_hosts::Column::RetiredAt.is_null())
        .filter(cdn_hosts::Column::HostUrl.is_not_in(names))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Stores health results and the ranking they give: `ranked` fastest first, the first current.
pub(super) async fn record_health(
    db: &DatabaseConnection,
    group: &CdnGroup,
    results: &[HostHealth],
    ranked: &[CdnHost],
) -> Result<()> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE cdn_hosts SET rank = NULL, is_current = false WHERE base_url = $1 AND region = $2",
        [group.base_key().into(), group.region().into()],
    ))
    .await?;
    for result in results {
        let rank = ranked
            .iter()
            .position(|h| *h == result.host)
            .and_then(|i| i32::try_from(i + 1).ok());
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE cdn_hosts SET rank = $4, is_current = COALESCE($4 = 1, false), \
                 server_avg_time_ms = $5, measured_latency_ms = $6, last_checked_at = now(), \
                 last_outcome = $7, \
                 consecutive_failures = CASE WHEN $8 THEN 0 ELSE consecutive_failures + 1 END \
             WHERE base_url = $1 AND region = $2 AND host_url = $3",
            [
                group.base_key().into(),
                group.region().into(),
                result.host.to_string().into(),
                rank.into(),
                result.server_avg_time_ms.into(),
                result.measured_latency_ms.into(),
                result.outcome.as_str().into(),
                result.healthy.into(),
            ],
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Blocks `host` until `until` after a failure, counting the failure.
pub(super) async fn block(
    db: &DatabaseConnection,
    group: &CdnGroup,
    host: &CdnHost,
    until: DateTime<Utc>,
    outcome: &str,
) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE cdn_hosts SET unavailable_until = $4, last_outcome = $5, \
             consecutive_failures = consecutive_failures + 1, is_current = false \
         WHERE base_url = $1 AND region = $2 AND host_url = $3",
        [
            group.base_key().into(),
            group.region().into(),
            host.to_string().into(),
            until.into(),
            outcome.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Makes `host`, which just answered, the current host of `group`.
pub(super) async fn make_current(
    db: &DatabaseConnection,
    group: &CdnGroup,
    host: &CdnHost,
) -> Result<()> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE cdn_hosts SET is_current = false \
         WHERE base_url = $1 AND region = $2 AND is_current AND host_url <> $3",
        [
            group.base_key().into(),
            group.region().into(),
            host.to_string().into(),
        ],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE cdn_hosts SET is_current = true, consecutive_failures = 0, last_outcome = 'answered' \
         WHERE base_url = $1 AND region = $2 AND host_url = $3",
        [group.base_key().into(), group.region().into(), host.to_string().into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Every (discovery URL, region) some tenant or store is configured for.
pub async fn groups_in_use(db: &DatabaseConnection) -> Result<Vec<CdnGroup>> {
    let rows: Vec<(String, String)> = truemark_credentials::Entity::find()
        .select_only()
        .column(truemark_credentials::Column::BaseUrl)
        .column(truemark_credentials::Column::Region)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(base, region)| {
            base.parse::<BaseUrl>()
                .ok()
                .map(|base| CdnGroup::new(base, region))
        })
        .collect())
}

fn row(model: cdn_hosts::Model) -> HostRow {
    HostRow {
        host: model.host_url,
        is_current: model.is_current,
        rank: model.rank,
        unavailable_until: model.unavailable_until.map(utc),
        server_avg_time_ms: model.server_avg_time_ms,
        measured_latency_ms: model.measured_latency_ms,
        last_checked_at: model.last_checked_at.map(utc),
        last_outcome: model.last_outcome,
        consecutive_failures: model.consecutive_failures,
        first_seen_at: utc(model.first_seen_at),
        last_seen_at: utc(model.last_seen_at),
        retired_at: model.retired_at.map(utc),
    }
}

/// Lifts the blocks of `hosts`, which a health check has just found serving again.
pub(super) async fn unblock(
    db: &DatabaseConnection,
    group: &CdnGroup,
    hosts: &[CdnHost],
) -> Result<()> {
    let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    cdn_hosts::Entity::update_many()
        .col_expr(cdn_hosts::Column::UnavailableUntil, Expr::null())
        .filter(cdn_hosts::Column::BaseUrl.eq(group.base_key()))
        .filter(cdn_hosts::Column::Region.eq(group.region()))
        .filter(cdn_hosts::Column::HostUrl.is_in(names))
        .exec(db)
        .await?;
    Ok(())
}

/// Every stored host of `group`.
fn of_group(group: &CdnGroup) -> sea_orm::Select<cdn_hosts::Entity> {
    cdn_hosts::Entity::find()
        .filter(cdn_hosts::Column::BaseUrl.eq(group.base_key()))
        .filter(cdn_hosts::Column::Region.eq(group.region()))
}

/// The hosts' addresses; a stored address that no longer parses is left out.
fn addresses(rows: Vec<cdn_hosts::Model>) -> Vec<CdnHost> {
    rows.into_iter()
        .filter_map(|r| r.host_url.parse().ok())
        .collect()
}
