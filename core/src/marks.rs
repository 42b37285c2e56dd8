//! The mark base: what a tenant knows of each of its marks, keyed by КИ. The POS integrations'
//! own endpoints (`create_stamp`, `unique_product_stamp`) and the offline package read and
//! change it here; documents change it in their own transaction.

use chrono::{DateTime, Utc};
use entities::marks;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use truemark::code::{Cis, MarkingCode};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ids::utc;
use crate::principal::StoreScope;

/// The most codes one bulk request may add.
pub const MAX_BULK: usize = 1000;

/// A mark's status in the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarkStatus {
    /// Known here and not sold (received, checked, or returned).
    Available,
    /// Sold by this organisation.
    Sold,
}

impl MarkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Sold => "sold",
        }
    }

    fn from_stored(value: &str) -> Self {
        if value == "sold" {
            Self::Sold
        } else {
            Self::Available
        }
    }
}

/// A mark as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MarkView {
    pub cis: String,
    pub status: MarkStatus,
    pub gtin: Option<String>,
    /// The last object ЧЗ answered for this mark.
    #[schema(value_type = Option<Object>)]
    pub truemark_state: Option<Value>,
    pub truemark_checked_at: Option<DateTime<Utc>>,
    /// The store that last changed it.
    pub store_id: Option<Uuid>,
    /// iMark's id of the document that last changed it.
    pub document_id: Option<Uuid>,
    pub sold_at: Option<DateTime<Utc>>,
    /// For a pack sold by the unit (a keg): its units, and how many are sold.
    pub inner_unit_count: Option<i64>,
    pub sold_units: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The outcome of adding one scanned code.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddedMark {
    pub input: String,
    pub cis: Option<String>,
    /// `added`, `existing`, or `refused` (the code could not be normalised).
    pub result: String,
    /// For a refused code: the machine code and the cashier's message.
    pub error: Option<String>,
    pub message: Option<String>,
}

/// Who acts on the base: the tenant, and the store of a store key. A store reads every mark of
/// its tenant (a mark sold by one store must not be sold by another), but changes by hand only
/// the marks it changed last.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub tenant_id: Uuid,
    pub store_id: Option<Uuid>,
}

/// Adds scanned codes as available marks; codes already known are left as they are.
pub async fn add<C: ConnectionTrait>(
    db: &C,
    actor: Actor,
    codes: &[String],
) -> Result<Vec<AddedMark>> {
    if codes.is_empty() || codes.len() > MAX_BULK {
        return Err(Error::invalid(
            "codes",
            format!("must hold 1 to {MAX_BULK} codes"),
        ));
    }
    let mut results = Vec::with_capacity(codes.len());
    for input in codes {
        let parsed = if input.chars().count() > 2048 {
            Err(None)
        } else {
            MarkingCode::parse(input).map_err(Some)
        };
        let code = match parsed {
            Ok(code) => code,
            Err(error) => {
                results.push(AddedMark {
                    input: input.clone(),
                    cis: None,
                    result: "refused".to_owned(),
                    error: Some(
                        error
                            .as_ref()
                            .map_or("malformed_code", |e| e.code())
                            .to_owned(),
                    ),
                    message: error.as_ref().map(|e| e.cashier_message().to_owned()),
                });
                continue;
            }
        };
        let inserted = db
            .execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "INSERT INTO marks (tenant_id, cis, status, gtin, store_id) \
                 VALUES ($1, $2, 'available', $3, $4) ON CONFLICT DO NOTHING",
                [
                    actor.tenant_id.into(),
                    code.cis().as_str().into(),
                    code.gtin().as_str().into(),
                    actor.store_id.into(),
                ],
            ))
            .await?
            .rows_affected();
        results.push(AddedMark {
            input: input.clone(),
            cis: Some(code.cis().as_str().to_owned()),
            result: if inserted == 1 { "added" } else { "existing" }.to_owned(),
            error: None,
            message: None,
        });
    }
    Ok(results)
}

/// One mark, by КИ (a full code is cut to its КИ).
pub async fn get<C: ConnectionTrait>(db: &C, actor: Actor, cis: &str) -> Result<MarkView> {
    let cis = parse_cis(cis)?;
    let reader = Actor {
        store_id: None,
        ..actor
    };
    find(db, reader, &cis)
        .await?
        .map(view)
        .ok_or(Error::NotFound("mark"))
}

/// Sets a mark's status by hand, e.g. to correct the base after a sale made elsewhere.
pub async fn set_status<C: ConnectionTrait>(
    db: &C,
    actor: Actor,
    cis: &str,
    status: MarkStatus,
) -> Result<MarkView> {
    let cis = parse_cis(cis)?;
    if find(db, actor, &cis).await?.is_none() {
        return Err(Error::NotFound("mark"));
    }
    marks::Entity::update_many()
        .col_expr(marks::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            marks::Column::SoldUnits,
            match status {
                MarkStatus::Available => Expr::value(0_i64),
                MarkStatus::Sold => Expr::cust("COALESCE(inner_unit_count, 0)"),
            },
        )
        .col_expr(marks::Column::UpdatedAt, Expr::current_timestamp())
        // The mark no longer stands as that document left it: voiding it changes nothing now.
        .col_expr(marks::Column::DocumentId, Expr::value(Option::<Uuid>::None))
        .col_expr(
            marks::Column::SoldAt,
            if status == MarkStatus::Sold {
                Expr::current_timestamp()
            } else {
                Expr::col(marks::Column::SoldAt)
            },
        )
        .filter(marks::Column::TenantId.eq(actor.tenant_id))
        .filter(marks::Column::Cis.eq(cis.as_str()))
        .filter(store_filter(actor))
        .exec(db)
        .await?;
    get(db, actor, cis.as_str()).await
}

/// Removes a mark from the base.
pub async fn remove<C: ConnectionTrait>(db: &C, actor: Actor, cis: &str) -> Result<Cis> {
    let cis = parse_cis(cis)?;
    if find(db, actor, &cis).await?.is_none() {
        return Err(Error::NotFound("mark"));
    }
    marks::Entity::delete_many()
        .filter(marks::Column::TenantId.eq(actor.tenant_id))
        .filter(marks::Column::Cis.eq(cis.as_str()))
        .filter(store_filter(actor))
        .exec(db)
        .await?;
    Ok(cis)
}

/// A page of marks, by КИ.
#[derive(Debug, Clone)]
pub struct MarkQuery {
    pub status: Option<MarkStatus>,
    pub store_id: Option<Uuid>,
    pub after_cis: Option<String>,
    pub limit: u64,
}

pub async fn list(
    db: &DatabaseConnection,
    actor: Actor,
    scope: &StoreScope,
    query: MarkQuery,
) -> Result<Vec<MarkView>> {
    let mut select = marks::Entity::find()
        .filter(marks::Column::TenantId.eq(actor.tenant_id))
        .order_by_asc(marks::Column::Cis)
        .limit(query.limit);
    if let StoreScope::Only(ids) = scope {
        select = select.filter(marks::Column::StoreId.is_in(ids.clone()));
    }
    if let Some(status) = query.status {
        select = select.filter(marks::Column::Status.eq(status.as_str()));
    }
    if let Some(store) = query.store_id {
        select = select.filter(marks::Column::StoreId.eq(store));
    }
    if let Some(after) = query.after_cis {
        select = select.filter(marks::Column::Cis.gt(after));
    }
    Ok(select.all(db).await?.into_iter().map(view).collect())
}

/// A change of the offline package.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfflineChange {
    pub cis: String,
    /// `sold` (sold here), `blocked` (ЧЗ reported a ban) or `clear` (drop it from the lists).
    pub state: String,
    pub changed_at: DateTime<Utc>,
}

/// The marks changed after `after` (a `(time, КИ)` position), oldest first.
pub async fn changes(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<OfflineChange>> {
    let mut select = marks::Entity::find()
        .filter(marks::Column::TenantId.eq(tenant_id))
        .order_by_asc(marks::Column::UpdatedAt)
        .order_by_asc(marks::Column::Cis)
        .limit(limit);
    if let Some((at, cis)) = after {
        select = select.filter(Expr::cust_with_values(
            "(updated_at, cis) > ($1, $2)",
            [sea_orm::Value::from(at), sea_orm::Value::from(cis)],
        ));
    }
    Ok(select
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let blocked = row
                .truemark_state
                .as_ref()
                .and_then(|s| s.get("isBlocked"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let state = match (row.status.as_str(), blocked) {
                (_, true) => "blocked",
                ("sold", false) => "sold",
                _ => "clear",
            };
            OfflineChange {
                cis: row.cis,
                state: state.to_owned(),
                changed_at: utc(row.updated_at),
            }
        })
        .collect())
}

/// A store changes only the marks it changed last; the tenant's HQ changes any.
fn store_filter(actor: Actor) -> sea_orm::Condition {
    match actor.store_id {
        Some(store) => sea_orm::Condition::all().add(marks::Column::StoreId.eq(store)),
        None => sea_orm::Condition::all(),
    }
}

fn parse_cis(raw: &str) -> Result<Cis> {
    Cis::parse(raw).map_err(|e| Error::invalid("cis", e.cashier_message()))
}

async fn find<C: ConnectionTrait>(db: &C, actor: Actor, cis: &Cis) -> Result<Option<marks::Model>> {
    let mut select = marks::Entity::find()
        .filter(marks::Column::TenantId.eq(actor.tenant_id))
        .filter(marks::Column::Cis.eq(cis.as_str()));
    if let Some(store) = actor.store_id {
        select = select.filter(marks::Column::StoreId.eq(store));
    }
    Ok(select.one(db).await?)
}

fn view(row: marks::Model) -> MarkView {
    MarkView {
        cis: row.cis,
        status: MarkStatus::from_stored(&row.status),
        gtin: row.gtin,
        truemark_state: row.truemark_state,
        truemark_checked_at: row.truemark_checked_at.map(utc),
        store_id: row.store_id,
        document_id: row.document_id,
        sold_at: row.sold_at.map(utc),
        inner_unit_count: row.inner_unit_count,
        sold_units: row.sold_units,
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    }
}
