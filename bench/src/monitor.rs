//! The API process as the kernel sees it: resident memory every second, CPU time on demand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One memory reading.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RssSample {
    /// Seconds since the monitor started.
    pub at_s: f64,
    pub rss_kib: u64,
}

/// Samples the resident set of `pid` every second until dropped.
#[derive(Debug)]
pub struct Monitor {
    pid: u32,
    started: Instant,
    samples: Arc<Mutex<Vec<RssSample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    pub fn start(pid: u32) -> Self {
        let started = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(rss_kib) = rss_kib(pid) else { break };
                let sample = RssSample {
                    at_s: started.elapsed().as_secs_f64(),
                    rss_kib,
                };
                if let Ok(mut samples) = sink.lock() {
                    samples.push(sample);
                }
            }
        });
        Self {
            pid,
            started,
            samples,
            task,
        }
    }

    /// Seconds since the monitor started.
    pub fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The readings taken between `from_s` and `to_s`.
    pub fn between(&self, from_s: f64, to_s: f64) -> Vec<RssSample> {
        self.samples.lock().map_or_else(
            |_| Vec::new(),
            |samples| {
                samples
                    .iter()
                    .filter(|s| s.at_s >= from_s && s.at_s <= to_s)
                    .copied()
                    .collect()
            },
        )
    }

    /// The resident set now, in KiB.
    pub fn rss_now(&self) -> u64 {
        rss_kib(self.pid).unwrap_or(0)
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_time(self.pid).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// `utime + stime` of `/proc/<pid>/stat`, at the usual 100 ticks a second.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let total = ticks(11)? + ticks(12)?;
    Some(Duration::from_millis(total * 10))
}

/// CPU time of every process whose command line starts with `postgres` (the server and its
/// backends), for the share of the database in a step.
pub fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                cmd.starts_with(b"postgres") || cmd.starts_with(b"/usr/lib/postgresql")
            })
        })
        .filter_map(cpu_time)
        .sum()
}
