//! iMark's database migrations, run by the same migrator at start-up, by `imark-api migrate` and
//! in tests.

pub use sea_orm_migration::prelude::*;

/// A migration written as SQL: `UP` applies it, `DOWN` reverts it.
macro_rules! sql_migration {
    ($up:expr, $down:expr) => {
        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared($up).await?;
                Ok(())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared($down).await?;
                Ok(())
            }
        }
    };
}

mod m20261203_000001_tenancy;
mod m20261203_000002_cdn;
mod m20261203_000003_job_runs;
mod m20261203_000004_documents;
mod m20261203_000005_partial_sale;
mod m20261203_000006_audit;
mod m20261204_000007_audit_append_all;
mod m20261204_000008_units_applied;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261203_000001_tenancy::Migration),
            Box::new(m20261203_000002_cdn::Migration),
            Box::new(m20261203_000003_job_runs::Migration),
            Box::new(m20261203_000004_documents::Migration),
            Box::new(m20261203_000005_partial_sale::Migration),
            Box::new(m20261203_000006_audit::Migration),
            Box::new(m20261204_000007_audit_append_all::Migration),
            Box::new(m20261204_000008_units_applied::Migration),
        ]
    }
}
