use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub base_url: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub region: String,
    pub last_tick: DateTimeWithTimeZone,
    pub last_started_at: DateTimeWithTimeZone,
    pub last_finished_at: Option<DateTimeWithTimeZone>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub duration_ms: Option<i32>,
    pub run_count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
