//! `truemark-sandbox`: the True API emulator as a standalone server. See `sandbox/README.md`.

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;
use truemark_sandbox::{DEFAULT_API_KEY, Fixture, Sandbox, SandboxConfig, UnknownCodes};

/// An emulator of Честный ЗНАК's True API (discovery, CDN hosts, code checks) with a control
/// API for faults.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Fixture file (TSV); repeat for several. Without one, the built-in acceptance catalogue
    /// (fixtures/crpt-acceptance-cases.tsv) is used.
    #[arg(
        long = "fixture",
        value_name = "PATH",
        env = "SANDBOX_FIXTURES",
        value_delimiter = ','
    )]
    fixtures: Vec<PathBuf>,

    /// Load the built-in acceptance catalogue before the fixture files.
    #[arg(long)]
    with_acceptance: bool,

    /// Number of CDN hosts.
    #[arg(long, default_value_t = 3, env = "SANDBOX_HOSTS")]
    hosts: u16,

    /// Address every service listens on.
    #[arg(long, default_value = "127.0.0.1", env = "SANDBOX_BIND")]
    bind: IpAddr,

    /// Host name put in the URLs the emulator hands out, when the bind address is not the
    /// one clients reach (in a container, say).
    #[arg(long, env = "SANDBOX_ADVERTISED_HOST")]
    advertised_host: Option<String>,

    /// Port of the discovery service (0: any free port).
    #[arg(long, default_value_t = 8480, env = "SANDBOX_DISCOVERY_PORT")]
    discovery_port: u16,

    /// Port of the first host; host N listens on this port + N (0: any free ports).
    #[arg(long, default_value_t = 8481, env = "SANDBOX_HOST_PORT")]
    host_port: u16,

    /// Port of the control API (0: any free port).
    #[arg(long, default_value_t = 8490, env = "SANDBOX_CONTROL_PORT")]
    control_port: u16,

    /// Accepted X-API-KEY; repeat for several.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "SANDBOX_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        default_value = DEFAULT_API_KEY
    )]
    api_keys: Vec<String>,

    /// What codes missing from the fixtures answer.
    #[arg(long, value_enum, default_value_t = UnknownCodesArg::NotFound, env = "SANDBOX_UNKNOWN_CODES")]
    unknown_codes: UnknownCodesArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum UnknownCodesArg {
    /// found=false errorCode=10, as ЧЗ answers for a code it does not know.
    NotFound,
    /// A valid, verified code in circulation.
    Valid,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let cli = Cli::parse();
    let config = sandbox_config(&cli)?;
    Sandbox::run_until(config, shutdown_signal()).await?;
    Ok(())
}

fn sandbox_config(cli: &Cli) -> anyhow::Result<SandboxConfig> {
    let host_ports = (0..cli.hosts)
        .map(|index| match cli.host_port {
            0 => Ok(0),
            first => first
                .checked_add(index)
                .context("--host-port plus --hosts runs past port 65535"),
        })
        .collect::<anyhow::Result<Vec<u16>>>()?;

    Ok(SandboxConfig {
        bind: cli.bind,
        advertised_host: cli.advertised_host.clone(),
        discovery_port: cli.discovery_port,
        host_ports,
        control_port: cli.control_port,
        api_keys: cli.api_keys.clone(),
        fixture: load_fixtures(cli)?,
        unknown_codes: match cli.unknown_codes {
            UnknownCodesArg::NotFound => UnknownCodes::NotFound,
            UnknownCodesArg::Valid => UnknownCodes::Valid,
        },
    })
}

fn load_fixtures(cli: &Cli) -> anyhow::Result<Fixture> {
    let mut fixture = if cli.with_acceptance || cli.fixtures.is_empty() {
        Fixture::acceptance()?
    } else {
        Fixture::default()
    };
    for path in &cli.fixtures {
        fixture = fixture.merge(Fixture::load(path)?)?;
    }
    tracing::info!(cases = fixture.cases().len(), "fixtures loaded");
    Ok(fixture)
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error.message = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error.message = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
