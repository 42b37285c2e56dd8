//! The load: open loop at a fixed rate, or closed loop at a fixed concurrency, against iMark's
//! `POST /document` or straight against an emulator host with the ЧЗ client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use truemark::client::{CdnHost, Outcome as TrueOutcome, TrueApiClient, TrueApiKey};
use truemark::wire::CodesCheckRequest;

use crate::stats::{Outcome, Sample, Summary};

/// The fiscal drive every benchmark document names.
pub const FISCAL_DRIVE: &str = "7281440500012345";

/// The most requests in flight in an open-loop step; past it the generator skips requests
/// and counts them as not sent, rather than queueing without bound.
const MAX_IN_FLIGHT: usize = 2000;

/// The `n`-th distinct marking code: a GS1 code with GTIN, a 13-character serial and the
/// emulator's crypto tail. The emulator answers codes it does not know as valid goods.
pub fn code(n: u64) -> String {
    format!("010467054017609921B{n:012}\u{1d}93dGVz")
}

/// What a request goes to.
#[derive(Debug)]
pub enum Target {
    /// iMark's `POST /document`, a one-item sale of a new mark, round-robin over store tokens.
    Api {
        http: reqwest::Client,
        url: String,
        tokens: Vec<String>,
    },
    /// `codes/check` of one code on one emulator host, as a till would call it alone.
    Direct {
        client: TrueApiClient,
        host: CdnHost,
        key: TrueApiKey,
    },
}

impl Target {
    async fn send(&self, n: u64) -> Outcome {
        match self {
            Self::Api { http, url, tokens } => {
                let token = tokens
                    .get(usize::try_from(n).unwrap_or(0) % tokens.len().max(1))
                    .map_or("", String::as_str);
                let body = serde_json::json!({
                    "id": format!("bench-{n}"),
                    "type": "sale",
                    "fiscal_drive_number": FISCAL_DRIVE,
                    "items": [{"code": code(n)}],
                });
                let Ok(response) = http.post(url).bearer_auth(token).json(&body).send().await
                else {
                    return Outcome::Failed;
                };
                let ok = response.status().is_success();
                match response.text().await {
                    Ok(text) if ok && text.contains("\"tag1260\":{") => Outcome::Good,
                    Ok(_) if ok => Outcome::Degraded,
                    _ => Outcome::Failed,
                }
            }
            Self::Direct { client, host, key } => {
                let request = CodesCheckRequest::new(vec![code(n)], FISCAL_DRIVE);
                match client.check_codes(host, key, &request).await.outcome {
                    TrueOutcome::Answered(_) => Outcome::Good,
                    _ => Outcome::Failed,
                }
            }
        }
    }
}

/// Numbers the requests of a whole run, so every document and code is new.
#[derive(Debug, Clone, Default)]
pub struct Ids(Arc<AtomicU64>);

impl Ids {
    pub fn starting_at(first: u64) -> Self {
        Self(Arc::new(AtomicU64::new(first)))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The samples of a step and its summary.
#[derive(Debug)]
pub struct Step {
    pub samples: Vec<Sample>,
    pub summary: Summary,
}

/// Sends `rate` requests a second for `duration`, each at its own time whatever the answers
/// before it are doing, and waits for every answer. Latency is measured from the moment each
/// request is sent.
pub async fn open_loop(target: &Arc<Target>, ids: &Ids, rate: u32, duration: Duration) -> Step {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let (done, mut answers) = mpsc::unbounded_channel();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut not_sent = 0;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(at.into()).await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            not_sent += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (target, done, in_flight, n) = (
            Arc::clone(target),
            done.clone(),
            Arc::clone(&in_flight),
            ids.next(),
        );
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = target.send(n).await;
            let _ = done.send(Sample {
                sent_at: sent.duration_since(start),
                latency: sent.elapsed(),
                outcome,
            });
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(done);
    let mut samples = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while let Some(sample) = answers.recv().await {
        samples.push(sample);
    }
    samples.sort_by_key(|s| s.sent_at);
    let summary = Summary::of(&samples, duration.as_secs_f64(), not_sent);
    Step { samples, summary }
}

/// `concurrency` clients, each sending its next request as soon as the last is answered,
/// for `duration`.
pub async fn closed_loop(
    target: &Arc<Target>,
    ids: &Ids,
    concurrency: usize,
    duration: Duration,
) -> Step {
    let start = Instant::now();
    let deadline = start + duration;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (target, ids) = (Arc::clone(target), ids.clone());
        clients.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = target.send(ids.next()).await;
                samples.push(Sample {
                    sent_at: sent.duration_since(start),
                    latency: sent.elapsed(),
                    outcome,
                });
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(joined) = clients.join_next().await {
        samples.extend(joined.unwrap_or_default());
    }
    samples.sort_by_key(|s| s.sent_at);
    let elapsed = start.elapsed().as_secs_f64();
    let summary = Summary::of(&samples, elapsed, 0);
    Step { samples, summary }
}
