use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "truemark_exchanges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub store_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub endpoint: String,
    pub method: String,
    pub url: String,
    pub started_at: DateTimeWithTimeZone,
    pub duration_ms: i32,
    pub http_status: Option<i32>,
    pub outcome: Option<String>,
    pub req_id: Option<String>,
    pub request_body: Option<String>,
    pub answer_body: Option<String>,
    pub error: Option<String>,
    pub recorded_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
