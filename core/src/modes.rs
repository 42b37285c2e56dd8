//! The check mode of each tenant on each ЧЗ list: online, or the no-check mode of ПП 1944 in which
//! sales go ahead without a check and without tag 1260. Every change is kept as evidence with the
//! exchanges that caused it: they justify the sales made meanwhile.

use entities::{mode_transitions, truemark_modes};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait as _, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, Statement, TransactionTrait as _,
};
use serde::{Deserialize, Serialize};
use truemark::client::ExchangeRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit;
use crate::cdn::CdnGroup;
use crate::error::{Error, Result};
use crate::ids::utc;

/// Whether a tenant's checks reach ЧЗ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Online,
    /// ГИС МТ is unreachable or has declared an emergency: sales proceed without a check.
    NoCheck,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::NoCheck => "no_check",
        }
    }

    fn from_stored(value: &str) -> Self {
        if value == "no_check" {
            Self::NoCheck
        } else {
            Self::Online
        }
    }
}

/// Why a mode changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Every host failed or timed out, also after rediscovery.
    NoHostAnswered,
    /// ГИС МТ answered 203 or 418.
    Emergency,
    /// The cross-border check service was reported down by more than one host.
    CrossBorderServiceDown,
    /// A check or a refresh got an answer again.
    Recovered,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHostAnswered => "no_host_answered",
            Self::Emergency => "emergency",
            Self::CrossBorderServiceDown => "cross_border_service_down",
            Self::Recovered => "recovered",
        }
    }
}

/// A recorded change of mode.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub base_url: String,
    pub region: String,
    pub from: Mode,
    pub to: Mode,
    pub reason: String,
    pub exchanges: serde_json::Value,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The tenant's current mode on `group`; online when it never changed.
pub async fn current(db: &DatabaseConnection, tenant_id: Uuid, group: &CdnGroup) -> Result<Mode> {
    let row = truemark_modes::Entity::find_by_id((
        tenant_id,
        group.base_key().to_owned(),
        group.region().to_owned(),
    ))
    .one(db)
    .await?;
    Ok(row.map_or(Mode::Online, |r| Mode::from_stored(&r.mode)))
}

/// Moves the tenant to `to` unless it is there already, recording the transition and its
/// exchanges in the same transaction. Returns whether the mode changed: concurrent callers
/// (replicas, workers) flip it exactly once.
pub async fn switch(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    group: &CdnGroup,
    to: Mode,
    reason: Reason,
    exchanges: &[ExchangeRecord],
) -> Result<bool> {
    let from = match to {
        Mode::Online => Mode::NoCheck,
        Mode::NoCheck => Mode::Online,
    };
    let txn = db.begin().await?;
    // The row is created online when missing, then flipped only if it holds the other mode;
    // the row lock serialises concurrent switches.
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO truemark_modes (tenant_id, base_url, region, mode, reason) \
         VALUES ($1, $2, $3, 'online', 'initial') ON CONFLICT DO NOTHING",
        [
            tenant_id.into(),
            group.base_key().into(),
            group.region().into(),
        ],
    ))
    .await?;
    let flipped = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE truemark_modes SET mode = $4, reason = $5, since = now() \
             WHERE tenant_id = $1 AND base_url = $2 AND region = $3 AND mode = $6",
            [
                tenant_id.into(),
                group.base_key().into(),
                group.region().into(),
                to.as_str().into(),
                reason.as_str().into(),
                from.as_str().into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    if flipped {
        let evidence = serde_json::to_value(exchanges).map_err(Error::internal)?;
        let transition_id = Uuid::now_v7();
        let mut entry = audit::Entry::of(
            audit::Kind::Mode,
            None,
            serde_json::json!({
                "transition_id": transition_id,
                "base_url": group.base_key(),
                "region": group.region(),
                "from": from.as_str(),
                "to": to.as_str(),
                "reason": reason.as_str(),
                "exchanges": evidence,
            }),
        );
        entry.actor = Some("system".to_owned());
        entry.mode = Some(to.as_str().to_owned());
        audit::append(&txn, tenant_id, entry).await?;
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO mode_transitions \
             (id, tenant_id, base_url, region, from_mode, to_mode, reason, exchanges) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                transition_id.into(),
                tenant_id.into(),
                group.base_key().into(),
                group.region().into(),
                from.as_str().into(),
                to.as_str().into(),
                reason.as_str().into(),
                evidence.into(),
            ],
        ))
        .await?;
    }
    txn.commit().await?;
    if flipped {
        tracing::warn!(
            tenant.id = %tenant_id,
            cdn.region = group.region(),
            mode.from = from.as_str(),
            mode.to = to.as_str(),
            reason = reason.as_str(),
            "check mode changed"
        );
    }
    Ok(flipped)
}

/// The tenants in no-check mode on `group`.
pub async fn tenants_without_checks(
    db: &DatabaseConnection,
    group: &CdnGroup,
) -> Result<Vec<Uuid>> {
    let rows = truemark_modes::Entity::find()
        .filter(truemark_modes::Column::BaseUrl.eq(group.base_key()))
        .filter(truemark_modes::Column::Region.eq(group.region()))
        .filter(truemark_modes::Column::Mode.eq(Mode::NoCheck.as_str()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.tenant_id).collect())
}

/// A tenant's transitions, oldest first.
pub async fn transitions(db: &DatabaseConnection, tenant_id: Uuid) -> Result<Vec<Transition>> {
    let rows = mode_transitions::Entity::find()
        .filter(mode_transitions::Column::TenantId.eq(tenant_id))
        .order_by_asc(mode_transitions::Column::At)
        .order_by_asc(mode_transitions::Column::Id)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Transition {
            id: r.id,
            tenant_id: r.tenant_id,
            base_url: r.base_url,
            region: r.region,
            from: Mode::from_stored(&r.from_mode),
            to: Mode::from_stored(&r.to_mode),
            reason: r.reason,
            exchanges: r.exchanges,
            at: utc(r.at),
        })
        .collect())
}
