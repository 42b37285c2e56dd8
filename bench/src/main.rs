//! `imark-bench`: drives `POST /document` through the whole stack (JWT, Redis, Postgres, the ЧЗ
//! emulator answering at once) at fixed rates and concurrencies, beside two anchors measured in
//! the same run on the same machine: (a) the ЧЗ client calling the emulator directly and (b)
//! `pgbench` committing single-row inserts. Then the API's memory over a long run at a steady
//! rate, and failover when the current host stops answering. See `docs/BENCHMARKS.md`.

mod load;
mod monitor;
mod pgbench;
mod report;
mod stack;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use truemark::client::{CdnHost, Endpoint, TrueApiClient, TrueApiKey, TrueApiTimeouts};
use truemark_sandbox::{DEFAULT_API_KEY, Fault, FaultTarget};

use crate::load::{Ids, Target};
use crate::monitor::Monitor;
use crate::report::{Failover, LoadRow, Memory, Report};
use crate::stack::{Settings, Stack};

/// Benchmarks iMark's `POST /document` against its two anchors.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Seconds of the long run at --sustained-rate, over which the API's memory is sampled
    /// every second (600 for the documented run; a few dozen for a smoke run).
    #[arg(long, default_value_t = 600)]
    duration: u64,

    /// Seconds of each measured step (one rate, one concurrency, one pgbench client count).
    #[arg(long, default_value_t = 20)]
    step_seconds: u64,

    /// Open-loop rates, documents a second.
    #[arg(long, value_delimiter = ',', default_value = "100,250,500,750")]
    rates: Vec<u32>,

    /// Closed-loop concurrencies, which are also pgbench's client counts.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    concurrencies: Vec<usize>,

    /// Rate of the long run, documents a second.
    #[arg(long, default_value_t = 500)]
    sustained_rate: u32,

    /// Rate during the failover measurement, documents a second.
    #[arg(long, default_value_t = 200)]
    failover_rate: u32,

    /// Stores of the benchmark tenant, each with its own key and token; documents go round-robin.
    #[arg(long, default_value_t = 20)]
    stores: usize,

    /// Where `imark-api` was built.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,

    /// A Postgres URL with the right to create databases.
    #[arg(
        long,
        env = "IMARK_BENCH_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,

    /// The database the run creates afresh (dropped first if it exists).
    #[arg(long, default_value = "imark_bench")]
    database: String,

    #[arg(
        long,
        env = "IMARK_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,

    /// The pgbench executable.
    #[arg(long, default_value = "pgbench")]
    pgbench: String,

    /// Where the results (Markdown and JSON) and the API's log go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    truemark::tls::install_crypto_provider();
    std::fs::create_dir_all(&cli.out_dir)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let settings = Settings {
        bin_dir: cli.bin_dir.clone(),
        admin_url: cli.admin_url.clone(),
        database: cli.database.clone(),
        redis_url: cli.redis_url.clone(),
        stores: cli.stores,
        log_file: cli.out_dir.join(format!("imark-api-{stamp}.log")),
    };
    let mut report = Report::new(&cli.admin_url, cli.step_seconds, cli.duration, cli.stores).await;

    progress("starting the emulator and the API, onboarding the tenant");
    let stack = Stack::start(&settings).await?;
    let outcome = run(&cli, &stack, &mut report).await;
    stack.stop().await;
    outcome?;

    report.finish();
    let markdown = report.markdown();
    let base = cli.out_dir.join(format!("results-{stamp}"));
    std::fs::write(base.with_extension("md"), &markdown)?;
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    print(&markdown);
    progress(&format!("results in {}.md and .json", base.display()));
    Ok(())
}

async fn run(cli: &Cli, stack: &Stack, report: &mut Report) -> anyhow::Result<()> {
    let step = Duration::from_secs(cli.step_seconds);
    let monitor = Monitor::start(stack.api_pid);
    let ids = Ids::starting_at(1);
    let api = Arc::new(Target::Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        url: format!("{}/document", stack.api_url),
        tokens: stack.tokens.clone(),
    });

    progress("warming up");
    let warm = load::open_loop(&api, &ids, 100, Duration::from_secs(5)).await;
    if warm.summary.good == 0 {
        anyhow::bail!("no document was answered during the warm-up; see the API's log");
    }
    let host = current_host(stack, &api, &ids).await?;
    report.current_host = host.1.to_string();
    let direct = Arc::new(Target::Direct {
        client: TrueApiClient::new(TrueApiTimeouts::default())?,
        host: host.1.clone(),
        key: TrueApiKey::new(DEFAULT_API_KEY)?,
    });
    load::open_loop(&direct, &ids, 100, Duration::from_secs(2)).await;

    for &rate in &cli.rates {
        progress(&format!("anchor (a) at {rate}/s"));
        let done = load::open_loop(&direct, &ids, rate, step).await;
        report
            .direct_open
            .push(LoadRow::of(rate.into(), done.summary, None));
    }
    for &clients in &cli.concurrencies {
        progress(&format!("anchor (a) with {clients} clients"));
        let done = load::closed_loop(&direct, &ids, clients, step).await;
        report
            .direct_closed
            .push(LoadRow::of(clients as u64, done.summary, None));
    }
    for &rate in &cli.rates {
        progress(&format!("iMark at {rate}/s"));
        let cpu = Cpu::start(&monitor);
        let done = load::open_loop(&api, &ids, rate, step).await;
        let spent = cpu.spent(&monitor);
        report
            .api_open
            .push(LoadRow::of(rate.into(), done.summary, Some(spent)));
    }
    for &clients in &cli.concurrencies {
        progress(&format!("iMark with {clients} clients"));
        let cpu = Cpu::start(&monitor);
        let done = load::closed_loop(&api, &ids, clients, step).await;
        let spent = cpu.spent(&monitor);
        report
            .api_closed
            .push(LoadRow::of(clients as u64, done.summary, Some(spent)));
    }
    for &clients in &cli.concurrencies {
        progress(&format!("anchor (b): pgbench with {clients} clients"));
        let result = pgbench::run(
            &cli.pgbench,
            &stack.database_url,
            clients,
            step,
            &cli.out_dir,
        )
        .await?;
        report.pgbench.push(result);
    }

    progress(&format!(
        "long run: {}/s for {} s, sampling the API's memory",
        cli.sustained_rate, cli.duration
    ));
    let from = monitor.now_s();
    let cpu = Cpu::start(&monitor);
    let done = load::open_loop(
        &api,
        &ids,
        cli.sustained_rate,
        Duration::from_secs(cli.duration),
    )
    .await;
    let spent = cpu.spent(&monitor);
    report.sustained = Some(LoadRow::of(
        cli.sustained_rate.into(),
        done.summary,
        Some(spent),
    ));
    report.memory = Some(Memory::of(&monitor.between(from, monitor.now_s()), from));

    progress("failover: the current host stops answering");
    report.failover = Some(failover(cli, stack, &api, &ids, host).await?);
    report.rss_end_kib = monitor.rss_now();
    Ok(())
}

/// The index and URL of the host iMark checks codes on now: the one a few documents went to.
async fn current_host(
    stack: &Stack,
    api: &Arc<Target>,
    ids: &Ids,
) -> anyhow::Result<(usize, CdnHost)> {
    let control = stack.sandbox.control();
    control.reset_stats();
    load::closed_loop(api, ids, 1, Duration::from_millis(300)).await;
    let stats = control.stats();
    let urls = control.host_urls();
    let index = (0..urls.len())
        .max_by_key(|&i| stats.host_calls(i, Endpoint::CodesCheck))
        .context("the emulator has no hosts")?;
    let url = urls.get(index).context("no such host")?;
    Ok((index, url.as_str().parse()?))
}

/// Load at `--failover-rate`; after five seconds the current host stops answering (it reads
/// each request and never answers, health checks included). Measures how long until the first
/// good answer and until the median latency is back within 10% of before.
async fn failover(
    cli: &Cli,
    stack: &Stack,
    api: &Arc<Target>,
    ids: &Ids,
    host: (usize, CdnHost),
) -> anyhow::Result<Failover> {
    const BEFORE: Duration = Duration::from_secs(5);
    const AFTER: Duration = Duration::from_secs(25);
    let (api, ids, rate) = (Arc::clone(api), ids.clone(), cli.failover_rate);
    let started = Instant::now();
    let load = tokio::spawn(async move { load::open_loop(&api, &ids, rate, BEFORE + AFTER).await });
    tokio::time::sleep_until((started + BEFORE).into()).await;
    let control = stack.sandbox.control();
    control.set_fault(FaultTarget::host(host.0), &Fault::NeverAnswer)?;
    let fault_at = started.elapsed();
    let step = load.await?;
    control.clear_fault(FaultTarget::host(host.0))?;
    Ok(Failover::of(
        &step.samples,
        fault_at,
        rate,
        host.1.to_string(),
    ))
}

/// CPU spent by the API and by Postgres over a step.
struct Cpu {
    api: Duration,
    postgres: Duration,
}

impl Cpu {
    fn start(monitor: &Monitor) -> Self {
        Self {
            api: monitor.cpu(),
            postgres: monitor::postgres_cpu(),
        }
    }

    fn spent(&self, monitor: &Monitor) -> (Duration, Duration) {
        (
            monitor.cpu().saturating_sub(self.api),
            monitor::postgres_cpu().saturating_sub(self.postgres),
        )
    }
}

#[allow(
    clippy::print_stderr,
    reason = "a command-line tool reports its progress"
)]
fn progress(what: &str) {
    eprintln!("[imark-bench] {what}");
}

#[allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]
fn print(markdown: &str) {
    println!("{markdown}");
}
