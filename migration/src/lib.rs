//! iMark's database migrations, run by the same migrator at start-up, by `imark-api migrate` and
//! in tests.

pub use sea_orm_migration::prelude::*;

mod m20261203_000001_tenancy;
mod m20261203_000002_cdn;
mod m20261203_000003_job_runs;
mod m20261203_000004_documents;
mod m20261203_000005_partial_sale;

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
        ]
    }
}
