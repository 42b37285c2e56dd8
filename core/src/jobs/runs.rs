//! `job_runs`: the last run of each job for each group, and of each job's tick.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entities::job_runs;
use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, EntityTrait as _, QueryOrder as _, Statement,
};
use serde::Serialize;

use super::{Job, Outcome, Tick};
use crate::cdn::CdnGroup;
use crate::error::Result;
use crate::ids::utc;

/// The last run of a job, for one group or for the job's tick.
#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub job: Job,
    /// The group's discovery URL; `None` for the job's tick (its fan-out).
    pub base_url: Option<String>,
    pub region: Option<String>,
    pub last_tick: DateTime<Utc>,
    pub last_started_at: DateTime<Utc>,
    /// Earlier than `last_started_at`, or `None`, while a run is in progress.
    pub last_finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub detail: Option<String>,
    pub duration_ms: Option<i32>,
    /// Finished runs, retries included.
    pub run_count: i64,
}

/// Every job's last runs, by job, then discovery URL and region (the tick first).
pub async fn last_runs(db: &DatabaseConnection) -> Result<Vec<JobRun>> {
    let rows = job_runs::Entity::find()
        .order_by_asc(job_runs::Column::Job)
        .order_by_asc(job_runs::Column::BaseUrl)
        .order_by_asc(job_runs::Column::Region)
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(view).collect())
}

/// The tick's row has an empty discovery URL and region.
fn scope(group: Option<&CdnGroup>) -> (String, String) {
    group.map_or_else(
        || (String::new(), String::new()),
        |g| (g.base_key().to_owned(), g.region().to_owned()),
    )
}

pub(super) async fn started(
    db: &DatabaseConnection,
    job: Job,
    group: Option<&CdnGroup>,
    tick: Tick,
) -> Result<()> {
    let (base_url, region) = scope(group);
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO job_runs (job, base_url, region, last_tick, last_started_at) \
         VALUES ($1, $2, $3, $4, now()) \
         ON CONFLICT (job, base_url, region) \
         DO UPDATE SET last_tick = EXCLUDED.last_tick, last_started_at = now()",
        [
            job.as_str().into(),
            base_url.into(),
            region.into(),
            tick.at().into(),
        ],
    ))
    .await?;
    Ok(())
}

pub(super) async fn finished(
    db: &DatabaseConnection,
    job: Job,
    group: Option<&CdnGroup>,
    outcome: Outcome,
    detail: &str,
    duration: Duration,
) -> Result<()> {
    let (base_url, region) = scope(group);
    let duration_ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE job_runs SET last_finished_at = now(), outcome = $4, detail = $5, \
             duration_ms = $6, run_count = run_count + 1 \
         WHERE job = $1 AND base_url = $2 AND region = $3",
        [
            job.as_str().into(),
            base_url.into(),
            region.into(),
            outcome.as_str().into(),
            detail.into(),
            duration_ms.into(),
        ],
    ))
    .await?;
    Ok(())
}

fn view(row: job_runs::Model) -> Option<JobRun> {
    let job = row.job.parse().ok()?;
    let tick_row = row.base_url.is_empty() && row.region.is_empty();
    Some(JobRun {
        job,
        base_url: (!tick_row).then_some(row.base_url),
        region: (!tick_row).then_some(row.region),
        last_tick: utc(row.last_tick),
        last_started_at: utc(row.last_started_at),
        last_finished_at: row.last_finished_at.map(utc),
        outcome: row.outcome.as_deref().and_then(Outcome::from_stored),
        detail: row.detail,
        duration_ms: row.duration_ms,
        run_count: row.run_count,
    })
}
