//! `imark-api`: serve the HTTP API, migrate the database, print the OpenAPI document, or do the
//! platform operator's tasks (tenants, keys, the demo tenant).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use imark_core::admin::{self, KeyKind, demo};
use imark_core::auth::TokenKeys;
use imark_core::config::Config;
use imark_core::crypto::{ApiKeyHasher, MasterKeys};
use imark_core::{db, shutdown, telemetry};
use sea_orm::DatabaseConnection;
use serde::Serialize;

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
    /// Onboard tenants (the platform operator).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Make new configured keys, and re-seal stored ЧЗ keys under a new master key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make (or reuse) a demo tenant on the ЧЗ emulator and print requests to try.
    Demo(DemoArgs),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and its first HQ admin key (shown once), optionally with a first store.
    Create {
        /// The organisation's name.
        #[arg(long)]
        name: String,
        /// The organisation's ИНН: 10 or 12 digits. Another tenant with it is refused.
        #[arg(long)]
        inn: String,
        /// The first store's code, unique within the tenant.
        #[arg(long, requires = "store_name")]
        store_code: Option<String>,
        /// The first store's name.
        #[arg(long, requires = "store_code")]
        store_name: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-seal every stored ЧЗ key under the first key of IMARK_MASTER_KEYS.
    RotateMaster {
        /// ЧЗ keys re-sealed per transaction.
        #[arg(long, default_value_t = 100)]
        batch_size: u64,
        #[arg(long)]
        json: bool,
    },
    /// Print a new JWT signing key for IMARK_JWT_KEYS, with how to roll it out.
    NewSigningKey {
        /// The key's id (`kid`); a dated one by default.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a new master key for IMARK_MASTER_KEYS, with how to roll it out.
    NewMasterKey {
        /// The key's id; a dated one by default.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct DemoArgs {
    /// The ЧЗ discovery URL of the demo tenant: the emulator's.
    #[arg(long, alias = "sandbox-url", default_value = "http://127.0.0.1:8480")]
    truemark_url: String,
    /// The ЧЗ key the emulator accepts.
    #[arg(long, default_value = "sandbox-api-key")]
    truemark_key: String,
    /// The region of the demo tenant's CDN list.
    #[arg(long, default_value = "local")]
    region: String,
    /// The API's URL in the printed requests; by default the configured listen address.
    #[arg(long)]
    api_url: Option<String>,
    /// Where the demo's ids and keys are kept between runs (private; never commit it).
    #[arg(long, default_value = "imark-demo.local.toml")]
    state_file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    match &command {
        Command::Openapi => {
            #[allow(clippy::print_stdout, reason = "the document is this command's output")]
            {
                print!("{}", imark_api::openapi::yaml());
            }
            return ExitCode::SUCCESS;
        }
        Command::Keys(KeysCommand::NewSigningKey { id, json }) => {
            let key = admin::new_key(KeyKind::Signing, id.as_deref());
            return finish(key.map_err(Into::into), *json, admin::NewKey::text);
        }
        Command::Keys(KeysCommand::NewMasterKey { id, json }) => {
            let key = admin::new_key(KeyKind::Master, id.as_deref());
            return finish(key.map_err(Into::into), *json, admin::NewKey::text);
        }
        _ => {}
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

    match command {
        Command::Tenant(TenantCommand::Create {
            name,
            inn,
            store_code,
            store_name,
            json,
        }) => {
            let first_store = store_code
                .zip(store_name)
                .map(|(code, name)| admin::FirstStore { code, name });
            let new = admin::NewTenant {
                name,
                inn,
                first_store,
            };
            let created = async {
                let db = connect(&config).await?;
                let hasher = ApiKeyHasher::new(config.api_key_pepper.clone());
                Ok(admin::create_tenant(&db, &hasher, new).await?)
            };
            finish(created.await, json, admin::CreatedTenant::text)
        }
        Command::Keys(KeysCommand::RotateMaster { batch_size, json }) => {
            let resealed = async {
                let db = connect(&config).await?;
                let master = MasterKeys::new(config.master_keys.clone());
                Ok(admin::reseal_credentials(&db, &master, batch_size).await?)
            };
            finish(resealed.await, json, admin::Resealing::text)
        }
        Command::Demo(args) => {
            let json = args.json;
            finish(run_demo(&config, args).await, json, demo::Demo::text)
        }
        server => run_server(&server, config).await,
    }
}

/// Serves or migrates with logging set up, and reports a failure in the log.
async fn run_server(command: &Command, config: Config) -> ExitCode {
    telemetry::init(config.log_format);
    let outcome = match command {
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

/// Prints an operator command's result on stdout, as text or JSON, or its error on stderr.
fn finish<T: Serialize>(
    outcome: anyhow::Result<T>,
    json: bool,
    text: impl FnOnce(&T) -> String,
) -> ExitCode {
    #[allow(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "an operator command's output is its answer; logging is not set up"
    )]
    match outcome.and_then(|value| {
        if json {
            Ok(serde_json::to_string_pretty(&value)? + "\n")
        } else {
            Ok(text(&value))
        }
    }) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("imark-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_demo(config: &Config, args: DemoArgs) -> anyhow::Result<demo::Demo> {
    let db = connect(config).await?;
    let hasher = ApiKeyHasher::new(config.api_key_pepper.clone());
    let master = MasterKeys::new(config.master_keys.clone());
    let tokens = TokenKeys::new(&config.jwt_keys, config.jwt_ttl).context("IMARK_JWT_KEYS")?;
    let services = demo::Services {
        db: &db,
        hasher: &hasher,
        master: &master,
        tokens: &tokens,
        platform_key: &config.platform_key,
    };
    let settings = demo::DemoSettings {
        truemark_url: args.truemark_url,
        truemark_key: args.truemark_key.into(),
        region: args.region,
        api_url: args.api_url.unwrap_or_else(|| api_url(config)),
        allow_local_urls: config.truemark.allow_local_urls,
        state_file: args.state_file,
    };
    Ok(demo::run(services, &settings).await?)
}

/// The API's URL as a client on this machine reaches it.
fn api_url(config: &Config) -> String {
    let mut addr = config.listen_addr;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    format!("http://{addr}")
}

/// Connects to Postgres and migrates it when the configuration says so, like the server.
async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let db = db::connect(&config.database_url)
        .await
        .context("connecting to Postgres (IMARK_DATABASE_URL)")?;
    if config.migrate_on_start {
        db::migrate(&db).await.context("migrating the database")?;
    }
    Ok(db)
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
