//! The last run of each background job, per CDN group: what operators look at to know that
//! discovery, ranking and recovery are running and how they went.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
-- One row per job and (base URL, region); base_url and region are empty for the job's tick
-- itself (the fan-out of one run per group). Rows are updated in place, never deleted.
CREATE TABLE job_runs (
    job               text NOT NULL,
    base_url          text NOT NULL,
    region            text NOT NULL,
    -- the scheduled time the last run belongs to
    last_tick         timestamptz NOT NULL,
    last_started_at   timestamptz NOT NULL,
    -- earlier than last_started_at (or null) while a run is in progress
    last_finished_at  timestamptz,
    outcome           text CHECK (outcome IN ('ok', 'failed', 'skipped')),
    detail            text,
    duration_ms       integer,
    -- finished runs, retries included
    run_count         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (job, base_url, region)
);
"#;

const DOWN: &str = r#"
DROP TABLE job_runs;
"#;

sql_migration!(UP, DOWN);
