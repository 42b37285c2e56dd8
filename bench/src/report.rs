//! The results: what was measured, whether each target holds, as JSON and as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use sea_orm::{ConnectionTrait as _, Database, Statement};
use serde::Serialize;

use crate::monitor::RssSample;
use crate::pgbench::PgbenchResult;
use crate::stats::{self, Outcome, Sample, Summary};

/// The p99 iMark may add over anchor (a) at 500 documents a second.
const ADDED_P99_LIMIT_MS: f64 = 5.0;
/// The rate at which the added latency is judged.
const TARGET_RATE: u64 = 500;
/// How much of anchor (b)'s throughput iMark must sustain.
const THROUGHPUT_SHARE: f64 = 0.5;
/// The most the resident set may grow over the long run (after its first minute), as a share
/// of its mean, for memory to count as flat.
const MEMORY_GROWTH_LIMIT: f64 = 0.05;

#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    pub machine: Machine,
    pub step_seconds: u64,
    pub long_run_seconds: u64,
    pub stores: usize,
    pub current_host: String,
    pub direct_open: Vec<LoadRow>,
    pub direct_closed: Vec<LoadRow>,
    pub api_open: Vec<LoadRow>,
    pub api_closed: Vec<LoadRow>,
    pub pgbench: Vec<PgbenchResult>,
    pub sustained: Option<LoadRow>,
    pub memory: Option<Memory>,
    pub failover: Option<Failover>,
    pub rss_end_kib: u64,
    pub load_average_after: String,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_total: String,
    pub kernel: String,
    pub postgres: String,
    pub load_average_before: String,
}

/// One step: a rate (open loop) or a concurrency (closed loop), and CPU per good answer.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    /// Documents a second (open loop) or clients (closed loop).
    pub load: u64,
    pub summary: Summary,
    /// CPU milliseconds of the API process per good answer.
    pub api_cpu_ms_per_doc: Option<f64>,
    /// CPU milliseconds of Postgres per good answer.
    pub postgres_cpu_ms_per_doc: Option<f64>,
}

impl LoadRow {
    pub fn of(load: u64, summary: Summary, cpu: Option<(Duration, Duration)>) -> Self {
        let per_doc = |d: Duration| stats::ms(d) / summary.good.max(1) as f64;
        Self {
            load,
            api_cpu_ms_per_doc: cpu.map(|(api, _)| per_doc(api)),
            postgres_cpu_ms_per_doc: cpu.map(|(_, pg)| per_doc(pg)),
            summary,
        }
    }
}

/// The API's resident set over the long run.
#[derive(Debug, Serialize)]
pub struct Memory {
    /// Each minute's mean, MiB.
    pub per_minute_mib: Vec<f64>,
    pub first_mib: f64,
    pub last_mib: f64,
    pub peak_mib: f64,
    /// Least-squares growth over the run after its first minute, MiB.
    pub growth_mib: f64,
    pub mean_mib: f64,
    pub samples: Vec<RssSample>,
}

impl Memory {
    pub fn of(samples: &[RssSample], from_s: f64) -> Self {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mut per_minute_mib = Vec::new();
        for minute in samples.chunks(60) {
            let sum: f64 = minute.iter().map(|s| mib(s.rss_kib)).sum();
            per_minute_mib.push(sum / minute.len().max(1) as f64);
        }
        let settled: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.at_s - from_s >= 60.0 || samples.len() < 120)
            .map(|s| (s.at_s, mib(s.rss_kib)))
            .collect();
        let n = settled.len().max(1) as f64;
        let mean_t = settled.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_mib = settled.iter().map(|p| p.1).sum::<f64>() / n;
        let covariance: f64 = settled
            .iter()
            .map(|(t, m)| (t - mean_t) * (m - mean_mib))
            .sum();
        let variance: f64 = settled.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
        let slope = if variance > 0.0 {
            covariance / variance
        } else {
            0.0
        };
        let span = match (settled.first(), settled.last()) {
            (Some(first), Some(last)) => last.0 - first.0,
            _ => 0.0,
        };
        Self {
            per_minute_mib,
            first_mib: samples.first().map_or(0.0, |s| mib(s.rss_kib)),
            last_mib: samples.last().map_or(0.0, |s| mib(s.rss_kib)),
            peak_mib: samples.iter().map(|s| mib(s.rss_kib)).fold(0.0, f64::max),
            growth_mib: slope * span,
            mean_mib,
            samples: samples.to_vec(),
        }
    }

    fn flat(&self) -> bool {
        self.growth_mib <= self.mean_mib * MEMORY_GROWTH_LIMIT
    }
}

/// What the documents did while the current host stopped answering.
#[derive(Debug, Serialize)]
pub struct Failover {
    pub rate: u32,
    pub host: String,
    pub baseline_p50_ms: f64,
    /// From the fault to the first good answer to a document sent after it.
    pub first_good_ms: Option<f64>,
    /// From the fault to the start of the first second after which the median latency (of
    /// that second, and of everything sent after it) is within 10% of the baseline.
    pub steady_ms: Option<f64>,
    /// Documents sent after the fault that got no tag 1260, or an error.
    pub degraded: usize,
    pub failed: usize,
    /// p50 of each half second after the fault (ms), by send time.
    pub windows_p50_ms: Vec<f64>,
}

impl Failover {
    pub fn of(samples: &[Sample], fault_at: Duration, rate: u32, host: String) -> Self {
        let before: Vec<Duration> = samples
            .iter()
            .filter(|s| s.sent_at + s.latency < fault_at && s.sent_at >= Duration::from_secs(1))
            .map(|s| s.latency)
            .collect();
        let baseline = median(before);
        let after: Vec<&Sample> = samples.iter().filter(|s| s.sent_at >= fault_at).collect();
        let first_good_ms = after
            .iter()
            .filter(|s| s.outcome == Outcome::Good)
            .map(|s| stats::ms(s.sent_at + s.latency - fault_at))
            .reduce(f64::min);

        let window = |from: Duration, to: Duration| -> Vec<Duration> {
            after
                .iter()
                .filter(|s| s.sent_at >= fault_at + from && s.sent_at < fault_at + to)
                .map(|s| s.latency)
                .collect()
        };
        let end = after
            .last()
            .map_or(Duration::ZERO, |s| s.sent_at - fault_at);
        let limit = baseline.mul_f64(1.1);
        let mut steady_ms = None;
        let mut from = Duration::ZERO;
        while from + Duration::from_secs(1) <= end {
            let second = window(from, from + Duration::from_secs(1));
            let rest = window(from, end + Duration::from_secs(1));
            if !second.is_empty() && median(second) <= limit && median(rest) <= limit {
                steady_ms = Some(stats::ms(from));
                break;
            }
            from += Duration::from_millis(100);
        }
        let half = Duration::from_millis(500);
        let windows_p50_ms = (0..)
            .map(|i| half * i)
            .take_while(|from| *from <= end)
            .map(|from| stats::ms(median(window(from, from + half))))
            .collect();
        Self {
            rate,
            host,
            baseline_p50_ms: stats::ms(baseline),
            first_good_ms,
            steady_ms,
            degraded: after
                .iter()
                .filter(|s| s.outcome == Outcome::Degraded)
                .count(),
            failed: after
                .iter()
                .filter(|s| s.outcome == Outcome::Failed)
                .count(),
            windows_p50_ms,
        }
    }
}

fn median(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort_unstable();
    latencies
        .get(latencies.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// One target of the issue and whether it holds.
#[derive(Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub holds: bool,
}

impl Report {
    pub async fn new(
        admin_url: &str,
        step_seconds: u64,
        long_run_seconds: u64,
        stores: usize,
    ) -> Self {
        Self {
            started_at: chrono::Utc::now().to_rfc3339(),
            machine: Machine {
                cpus: std::thread::available_parallelism().map_or(0, usize::from),
                memory_total: proc_line("/proc/meminfo", "MemTotal:"),
                kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                postgres: postgres_version(admin_url).await.unwrap_or_default(),
                load_average_before: load_average(),
            },
            step_seconds,
            long_run_seconds,
            stores,
            current_host: String::new(),
            direct_open: Vec::new(),
            direct_closed: Vec::new(),
            api_open: Vec::new(),
            api_closed: Vec::new(),
            pgbench: Vec::new(),
            sustained: None,
            memory: None,
            failover: None,
            rss_end_kib: 0,
            load_average_after: String::new(),
            targets: Vec::new(),
        }
    }

    /// Judges the targets.
    pub fn finish(&mut self) {
        self.load_average_after = load_average();
        let at = |rows: &[LoadRow]| rows.iter().find(|r| r.load == TARGET_RATE).cloned();
        if let (Some(api), Some(direct)) = (at(&self.api_open), at(&self.direct_open)) {
            let added = api.summary.p99_ms - direct.summary.p99_ms;
            let kept_up = api.summary.good as f64 >= 0.99 * api.summary.requests as f64
                && api.summary.not_sent == 0;
            self.targets.push(Target {
                target: format!("p99 added over (a) at {TARGET_RATE}/s ≤ {ADDED_P99_LIMIT_MS} ms"),
                measured: format!(
                    "{added:.2} ms ({:.2} − {:.2}); {} of {} good",
                    api.summary.p99_ms,
                    direct.summary.p99_ms,
                    api.summary.good,
                    api.summary.requests
                ),
                holds: added <= ADDED_P99_LIMIT_MS && kept_up,
            });
        }
        let best_api = self
            .api_closed
            .iter()
            .map(|r| r.summary.throughput)
            .fold(0.0, f64::max);
        let best_pg = self.pgbench.iter().map(|r| r.tps).fold(0.0, f64::max);
        if best_pg > 0.0 {
            self.targets.push(Target {
                target: format!("throughput ≥ {THROUGHPUT_SHARE} × (b)"),
                measured: format!(
                    "{best_api:.0} documents/s vs {best_pg:.0} inserts/s = {:.2}",
                    best_api / best_pg
                ),
                holds: best_api >= THROUGHPUT_SHARE * best_pg,
            });
        }
        if let Some(memory) = &self.memory {
            self.targets.push(Target {
                target: format!(
                    "memory flat over {} s (growth after the first minute ≤ {:.0}% of mean)",
                    self.long_run_seconds,
                    MEMORY_GROWTH_LIMIT * 100.0
                ),
                measured: format!(
                    "{:+.1} MiB on {:.1} MiB mean (first {:.1}, last {:.1}, peak {:.1})",
                    memory.growth_mib,
                    memory.mean_mib,
                    memory.first_mib,
                    memory.last_mib,
                    memory.peak_mib
                ),
                holds: memory.flat(),
            });
        }
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# iMark benchmark, {}\n", self.started_at);
        let _ = writeln!(
            md,
            "{} CPUs, {} memory, kernel {}, {}; load average before {}, after {}. \
             Steps of {} s, long run {} s, {} stores; current ЧЗ host {}.\n",
            m.cpus,
            m.memory_total,
            m.kernel,
            m.postgres,
            m.load_average_before,
            self.load_average_after,
            self.step_seconds,
            self.long_run_seconds,
            self.stores,
            self.current_host
        );
        let _ = writeln!(
            md,
            "## Targets\n\n| target | measured | holds |\n|---|---|---|"
        );
        for t in &self.targets {
            let holds = if t.holds { "yes" } else { "**no**" };
            let _ = writeln!(md, "| {} | {} | {holds} |", t.target, t.measured);
        }
        let _ = writeln!(md, "\n## Open loop (fixed rate)\n");
        load_table(&mut md, "rate/s", &self.api_open, &self.direct_open);
        let _ = writeln!(md, "\n## Closed loop (fixed concurrency)\n");
        load_table(&mut md, "clients", &self.api_closed, &self.direct_closed);
        let _ = writeln!(
            md,
            "\n## Anchor (b): pgbench, one single-row INSERT per transaction\n\n\
             | clients | tps | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|"
        );
        for r in &self.pgbench {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                r.clients, r.tps, r.p50_ms, r.p99_ms, r.p999_ms
            );
        }
        if let Some(row) = &self.sustained {
            let _ = writeln!(md, "\n## Long run at {}/s\n", row.load);
            load_table(&mut md, "rate/s", std::slice::from_ref(row), &[]);
        }
        if let Some(memory) = &self.memory {
            let minutes: Vec<String> = memory
                .per_minute_mib
                .iter()
                .map(|m| format!("{m:.1}"))
                .collect();
            let _ = writeln!(
                md,
                "\nAPI resident set (VmRSS), mean of each minute, MiB: {}. First {:.1}, last {:.1}, \
                 peak {:.1}; least-squares growth after the first minute {:+.1} MiB.",
                minutes.join(" → "),
                memory.first_mib,
                memory.last_mib,
                memory.peak_mib,
                memory.growth_mib
            );
        }
        if let Some(f) = &self.failover {
            let opt = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
            let windows: Vec<String> = f.windows_p50_ms.iter().map(|w| format!("{w:.1}")).collect();
            let _ = writeln!(
                md,
                "\n## Failover at {}/s: {} never answers\n\n\
                 | baseline p50 | first good answer | steady state (p50 within 10%) | degraded | failed |\n\
                 |---|---|---|---|---|\n| {:.2} ms | {} | {} | {} | {} |\n\n\
                 p50 of each half second after the fault, ms: {}",
                f.rate,
                f.host,
                f.baseline_p50_ms,
                opt(f.first_good_ms),
                opt(f.steady_ms),
                f.degraded,
                f.failed,
                windows.join(" ")
            );
        }
        md
    }
}

fn load_table(md: &mut String, what: &str, api: &[LoadRow], direct: &[LoadRow]) {
    let _ = writeln!(
        md,
        "| {what} | docs/s | p50 ms | p99 ms | p99.9 ms | max ms | good/sent | not sent | \
         (a) checks/s | (a) p50 | (a) p99 | (a) p99.9 | added p50 | added p99 | added p99.9 | \
         API CPU ms/doc | PG CPU ms/doc |\n|{}",
        "---|".repeat(17)
    );
    for row in api {
        let s = &row.summary;
        let anchor = direct
            .iter()
            .find(|d| d.load == row.load)
            .map(|d| &d.summary);
        let a =
            |f: fn(&Summary) -> f64| anchor.map_or("–".to_owned(), |d| format!("{:.2}", f(d)));
        let added = |f: fn(&Summary) -> f64| {
            anchor.map_or("–".to_owned(), |d| format!("{:+.2}", f(s) - f(d)))
        };
        let cpu = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.load,
            s.throughput,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.max_ms,
            s.good,
            s.requests,
            s.not_sent,
            anchor.map_or("–".to_owned(), |d| format!("{:.0}", d.throughput)),
            a(|d| d.p50_ms),
            a(|d| d.p99_ms),
            a(|d| d.p999_ms),
            added(|d| d.p50_ms),
            added(|d| d.p99_ms),
            added(|d| d.p999_ms),
            cpu(row.api_cpu_ms_per_doc),
            cpu(row.postgres_cpu_ms_per_doc),
        );
    }
}

fn proc_line(path: &str, prefix: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn postgres_version(admin_url: &str) -> anyhow::Result<String> {
    let db = Database::connect(admin_url).await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT 'PostgreSQL ' || current_setting('server_version') AS v",
        ))
        .await?;
    let version = row.map(|r| r.try_get::<String>("", "v")).transpose()?;
    db.close().await?;
    Ok(version.unwrap_or_default())
}
