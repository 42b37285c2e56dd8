//! Per-request samples and what a step's samples add up to.

use std::time::Duration;

use serde::Serialize;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer from ЧЗ: for iMark a 200 carrying tag 1260, for the direct client `Answered`.
    Good,
    /// iMark answered 200 without tag 1260 (no-check mode, no answer from ЧЗ).
    Degraded,
    /// Anything else: an HTTP error, a transport error, a timeout.
    Failed,
}

/// One request: when it was sent (from the start of its step) and how long its answer took.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub sent_at: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
}

/// A step's requests summed up. Latencies are in milliseconds, over every answered request.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: usize,
    pub good: usize,
    pub degraded: usize,
    pub failed: usize,
    /// Requests the generator did not send because too many were in flight.
    pub not_sent: u64,
    pub seconds: f64,
    /// Good answers per second.
    pub throughput: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(samples: &[Sample], seconds: f64, not_sent: u64) -> Self {
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        latencies.sort_unstable();
        let count = |outcome| samples.iter().filter(|s| s.outcome == outcome).count();
        let good = count(Outcome::Good);
        let total: Duration = latencies.iter().sum();
        let mean_ms = if latencies.is_empty() {
            0.0
        } else {
            ms(total) / latencies.len() as f64
        };
        Self {
            requests: samples.len(),
            good,
            degraded: count(Outcome::Degraded),
            failed: count(Outcome::Failed),
            not_sent,
            seconds,
            throughput: good as f64 / seconds.max(f64::EPSILON),
            mean_ms,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            p999_ms: percentile(&latencies, 0.999),
            max_ms: latencies.last().copied().map_or(0.0, ms),
        }
    }
}

/// The nearest-rank percentile of sorted `latencies`, in milliseconds.
pub fn percentile(latencies: &[Duration], quantile: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let rank = (quantile * latencies.len() as f64).ceil() as usize;
    let index = rank.clamp(1, latencies.len()) - 1;
    latencies.get(index).copied().map_or(0.0, ms)
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
