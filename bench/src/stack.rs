//! The stack under load: the ЧЗ emulator (in this process), a fresh database, and the release
//! `imark-api` as a process of its own, with a tenant, its stores and their tokens.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::{ConnectionTrait as _, Database};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use truemark_sandbox::{DEFAULT_API_KEY, Fixture, Sandbox, SandboxConfig, UnknownCodes};
use uuid::Uuid;

/// How long the API may take to answer `/readyz` after it starts (it migrates first).
const READY_LIMIT: Duration = Duration::from_secs(120);

/// Where the stack's parts are.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bin_dir: PathBuf,
    pub admin_url: String,
    pub database: String,
    pub redis_url: String,
    pub stores: usize,
    pub log_file: PathBuf,
}

/// The running stack; dropping it stops the API.
#[derive(Debug)]
pub struct Stack {
    pub sandbox: Sandbox,
    pub api: Child,
    pub api_pid: u32,
    pub api_url: String,
    pub database_url: String,
    pub http: reqwest::Client,
    /// One store token per store.
    pub tokens: Vec<String>,
}

impl Stack {
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let sandbox = Sandbox::start(SandboxConfig {
            fixture: Fixture::acceptance()?,
            unknown_codes: UnknownCodes::Valid,
            ..SandboxConfig::default()
        })
        .await?;
        let database_url = fresh_database(&settings.admin_url, &settings.database).await?;

        let port = free_port()?;
        let api_url = format!("http://127.0.0.1:{port}");
        let platform_key = format!("imk_pl_{}", Uuid::new_v4().simple());
        let (api, api_pid) = spawn_api(settings, &database_url, port, &platform_key)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        wait_ready(&http, &api_url).await?;

        let mut stack = Self {
            sandbox,
            api,
            api_pid,
            api_url,
            database_url,
            http,
            tokens: Vec::new(),
        };
        stack.tokens = stack.onboard(&platform_key, settings.stores).await?;
        Ok(stack)
    }

    /// A tenant on the emulator with `stores` stores, each with a store key; their tokens.
    async fn onboard(&self, platform_key: &str, stores: usize) -> anyhow::Result<Vec<String>> {
        let platform = self.token(platform_key).await?;
        let tenant = self
            .call("POST", "/tenants", &platform, json!({"name": "Бенчмарк"}))
            .await?;
        let hq_key = text(&tenant["hq_key"]["api_key"])?;
        let hq = self.token(&hq_key).await?;
        let discovery = self.sandbox.discovery_url().to_string();
        self.call(
            "PUT",
            "/truemark",
            &hq,
            json!({"api_key": DEFAULT_API_KEY, "base_url": discovery.trim_end_matches('/'), "region": "bench"}),
        )
        .await?;
        let mut tokens = Vec::with_capacity(stores);
        for i in 0..stores {
            let code = format!("bench-{i:03}");
            let store = self
                .call(
                    "POST",
                    "/stores",
                    &hq,
                    json!({"code": code, "name": format!("Магазин {i}")}),
                )
                .await?;
            let store_id = text(&store["id"])?;
            let key = self
                .call(
                    "POST",
                    "/keys",
                    &hq,
                    json!({"role": "store", "name": format!("POS {i}"), "store_id": store_id}),
                )
                .await?;
            tokens.push(self.token(&text(&key["api_key"])?).await?);
        }
        Ok(tokens)
    }

    async fn token(&self, api_key: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}/token", self.api_url))
            .header("X-API-Key", api_key)
            .send()
            .await?;
        let body: Value = response.error_for_status()?.json().await?;
        text(&body["access_token"])
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let response = self
            .http
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Stops the API and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.api.start_kill();
        let _ = self.api.wait().await;
        self.sandbox.shutdown().await;
    }
}

fn text(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a string, got {value}"))
}

/// Drops and creates `name`; the URL of the new database.
async fn fresh_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = Database::connect(admin_url)
        .await
        .context("connecting to the Postgres admin URL")?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut url = url_of(admin_url)?;
    url.set_path(name);
    Ok(url.to_string())
}

fn url_of(text: &str) -> anyhow::Result<reqwest::Url> {
    reqwest::Url::parse(text).with_context(|| format!("{text:?} is not a URL"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the release API with fresh secrets, rate limiting off and day-long tokens.
fn spawn_api(
    settings: &Settings,
    database_url: &str,
    port: u16,
    platform_key: &str,
) -> anyhow::Result<(Child, u32)> {
    let binary = settings.bin_dir.join("imark-api");
    if !binary.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release`",
            binary.display()
        );
    }
    let log = std::fs::File::create(&settings.log_file)
        .with_context(|| format!("creating {}", settings.log_file.display()))?;
    let secret = || format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let master = BASE64.encode([Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat());
    let mut command = Command::new(binary_path(&binary));
    // Nothing of the caller's own iMark configuration may leak into the measured process.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IMARK_") {
            command.env_remove(name);
        }
    }
    command
        .arg("serve")
        .env("IMARK_DATABASE_URL", database_url)
        .env("IMARK_REDIS_URL", &settings.redis_url)
        .env(
            "IMARK_REDIS_PREFIX",
            format!("{}_{}", settings.database, Uuid::new_v4().simple()),
        )
        .env("IMARK_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("IMARK_PLATFORM_KEY", platform_key)
        .env("IMARK_JWT_KEYS", format!("bench:{}", secret()))
        .env("IMARK_JWT_TTL_SECONDS", "86400")
        .env("IMARK_MASTER_KEYS", format!("bench:{master}"))
        .env("IMARK_API_KEY_PEPPER", secret())
        .env("IMARK_TRUEMARK_ALLOW_LOCAL_URLS", "true")
        .env("IMARK_RATE_LIMIT_ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let child = command.spawn().context("starting imark-api")?;
    let pid = child.id().context("imark-api exited at once")?;
    Ok((child, pid))
}

fn binary_path(binary: &Path) -> PathBuf {
    std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf())
}

async fn wait_ready(http: &reqwest::Client, api_url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < READY_LIMIT {
        let ready = http.get(format!("{api_url}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "the API did not become ready within {} s",
        READY_LIMIT.as_secs()
    )
}
