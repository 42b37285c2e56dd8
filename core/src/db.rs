//! The Postgres connection pool and the migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbErr,
    TransactionTrait as _,
};
use secrecy::{ExposeSecret, SecretString};

/// Opens a pool to `url`. Statement logging is off: statements carry values that must not reach
/// a log.
pub async fn connect(url: &SecretString) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.expose_secret().to_owned());
    options
        .max_connections(32)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// An arbitrary key of the advisory lock that serialises migrations across processes.
const MIGRATION_LOCK: i64 = 0x1_3A7C_0DE5;

/// Brings the schema up to date, with the evidence tables' partitions of the coming months;
/// safe to run on every start and from several processes at once: they queue on an advisory
/// lock, and each finds the work done by the one before it.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await?;
    crate::audit::partitions::ensure(db, chrono::Utc::now())
        .await
        .map_err(|e| DbErr::Custom(format!("making the evidence partitions: {e:#}")))?;
    Ok(())
}
