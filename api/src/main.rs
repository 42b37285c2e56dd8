//! `imark-api`: serve the HTTP API, migrate the database, or print the OpenAPI document.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imark_core::config::Config;
use imark_core::{db, shutdown, telemetry};

#[derive(Parser)]
#[command(name = "imark-api", version, about = "iMark's HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        #[allow(clippy::print_stdout, reason = "the document is this command's output")]
        {
            print!("{}", imark_api::openapi::yaml());
        }
        return ExitCode::SUCCESS;
    }

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            #[allow(
                clippy::print_stderr,
                reason = "logging is not set up without a config"
            )]
            {
                eprintln!("imark-api: {e}");
            }
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate(&config).await,
        _ => serve(config).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.message = format!("{e:#}"), "imark-api failed");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = db::connect(&config.database_url).await?;
    db::migrate(&db).await?;
    tracing::info!("database is up to date");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    imark_api::run(config, listener, shutdown::signal()).await
}
