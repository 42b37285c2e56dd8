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

/// Binds one row of a multi-row `VALUES` list: appends `row` to `values` and returns the row's
/// placeholders, `$n, $n+1, …`, the one at position i cast with `casts[i]` where given (as a
/// `VALUES` list outside an `INSERT` needs for its first row).
pub fn bind_row<const N: usize>(
    values: &mut Vec<sea_orm::Value>,
    row: [sea_orm::Value; N],
    casts: &[&str],
) -> String {
    let first = values.len() + 1;
    values.extend(row);
    (0..N)
        .map(|i| match casts.get(i) {
            Some(cast) => format!("${}::{cast}", first + i),
            None => format!("${}", first + i),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_row_numbers_its_placeholders_after_the_values_before_it() {
        let mut values: Vec<sea_orm::Value> = vec![1_i32.into()];

        let plain = bind_row(&mut values, [2_i32.into(), "x".into()], &[]);
        let cast = bind_row(
            &mut values,
            [true.into(), 3_i64.into()],
            &["bool", "bigint"],
        );

        assert_eq!(plain, "$2, $3");
        assert_eq!(cast, "$4::bool, $5::bigint");
        assert_eq!(values.len(), 5);
    }
}
