use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "marks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub cis: String,
    pub status: String,
    pub gtin: Option<String>,
    pub truemark_state: Option<Json>,
    pub truemark_checked_at: Option<DateTimeWithTimeZone>,
    pub store_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub sold_at: Option<DateTimeWithTimeZone>,
    pub inner_unit_count: Option<i64>,
    pub sold_units: i64,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
