use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cdn_hosts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub base_url: String,
    pub region: String,
    pub host_url: String,
    pub is_current: bool,
    pub rank: Option<i32>,
    pub unavailable_until: Option<DateTimeWithTimeZone>,
    pub server_avg_time_ms: Option<i32>,
    pub measured_latency_ms: Option<i32>,
    pub last_checked_at: Option<DateTimeWithTimeZone>,
    pub last_outcome: Option<String>,
    pub consecutive_failures: i32,
    pub first_seen_at: DateTimeWithTimeZone,
    pub last_seen_at: DateTimeWithTimeZone,
    pub retired_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
