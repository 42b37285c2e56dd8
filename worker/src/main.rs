//! `imark-worker`: runs iMark's background jobs until SIGINT or SIGTERM.

use std::process::ExitCode;

use imark_core::config::Config;
use imark_core::{shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            #[allow(
                clippy::print_stderr,
                reason = "logging is not set up without a config"
            )]
            {
                eprintln!("imark-worker: {e}");
            }
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    match imark_worker::run(config, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.message = format!("{e:#}"), "imark-worker failed");
            ExitCode::FAILURE
        }
    }
}
