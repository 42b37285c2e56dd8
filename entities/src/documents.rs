use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub store_id: Uuid,
    pub pos_document_id: String,
    pub kind: String,
    pub fiscal_drive_number: String,
    pub request_hash: Vec<u8>,
    pub verdict: String,
    pub mode: String,
    pub req_id: Option<String>,
    pub answer: Json,
    pub voided_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
