//! Anchor (b): `pgbench` committing one single-row insert per transaction on the same Postgres,
//! the most a service that commits its evidence before it answers could ever do.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sea_orm::{ConnectionTrait as _, Database};
use serde::Serialize;
use tokio::process::Command;

use crate::stats;

/// The table the anchor writes: about the shape of one evidence row.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS bench_insert ( \
    id bigserial PRIMARY KEY, \
    at timestamptz NOT NULL DEFAULT now(), \
    payload text NOT NULL)";

/// One transaction: one row of half a kilobyte, committed.
const SCRIPT: &str = "INSERT INTO bench_insert (payload) VALUES (repeat('x', 512));\n";

/// What `pgbench` did at one client count.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchResult {
    pub clients: usize,
    pub tps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// Runs `pgbench` with `clients` connections for `duration` against `database_url`, writing its
/// per-transaction log under `work_dir` for the percentiles.
pub async fn run(
    pgbench: &str,
    database_url: &str,
    clients: usize,
    duration: Duration,
    work_dir: &Path,
) -> anyhow::Result<PgbenchResult> {
    let db = Database::connect(database_url).await?;
    db.execute_unprepared(TABLE).await?;
    db.close().await?;

    let script = work_dir.join("insert.sql");
    std::fs::write(&script, SCRIPT)?;
    let prefix = work_dir.join(format!("pgbench-{clients}"));
    let threads = clients.clamp(1, 2);
    let output = Command::new(pgbench)
        .args(["-n", "-M", "prepared", "-l", "--log-prefix"])
        .arg(&prefix)
        .arg("-f")
        .arg(&script)
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .arg(database_url)
        .output()
        .await
        .with_context(|| format!("running {pgbench} (install postgresql-contrib)"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps = stdout
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|tps| tps.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench's output: {stdout}"))?;

    let mut latencies = transaction_latencies(work_dir, &prefix)?;
    latencies.sort_unstable();
    Ok(PgbenchResult {
        clients,
        tps,
        p50_ms: stats::percentile(&latencies, 0.50),
        p99_ms: stats::percentile(&latencies, 0.99),
        p999_ms: stats::percentile(&latencies, 0.999),
    })
}

/// Every transaction's latency from the logs `pgbench -l` wrote (one file per thread:
/// `client transaction latency_us script epoch_s epoch_us`), which are then removed.
fn transaction_latencies(work_dir: &Path, prefix: &Path) -> anyhow::Result<Vec<Duration>> {
    let stem = prefix
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(work_dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!("{stem}.")) {
            continue;
        }
        let log = std::fs::read_to_string(entry.path())?;
        latencies.extend(
            log.lines()
                .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
                .map(Duration::from_micros),
        );
        std::fs::remove_file(entry.path())?;
    }
    Ok(latencies)
}
