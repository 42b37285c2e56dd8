use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "document_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub document_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub cis: Option<String>,
    pub verdict: String,
    pub criteria: Json,
    pub status_before: Option<String>,
    pub status_after: Option<String>,
    pub applied: bool,
    pub quantity: Option<i64>,
    /// The units of a pack sold by the unit this item moved; what a void gives back.
    pub units_applied: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
