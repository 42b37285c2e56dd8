//! Typed, layered configuration: built-in defaults, then an optional TOML file, then `IMARK_*`
//! environment variables. Loading fails fast, naming the variable to set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Deserialize;

/// The environment variable that names an optional TOML file with the same keys, lower-cased and
/// without the `IMARK_` prefix.
pub const CONFIG_FILE_VAR: &str = "IMARK_CONFIG_FILE";

/// The shortest secret accepted for the platform key, JWT signing keys and the API-key pepper.
const MIN_SECRET_LEN: usize = 32;

/// Everything iMark's processes need to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Prefix of every Redis key, so that environments can share one Redis.
    pub redis_prefix: String,
    pub listen_addr: SocketAddr,
    /// Where Prometheus metrics are served at `/metrics`; `None` serves none.
    pub metrics_addr: Option<SocketAddr>,
    /// The platform operator's bootstrap key, exchanged at `/token` like any API key.
    pub platform_key: SecretString,
    /// JWT signing keys by `kid`; the first signs, all verify.
    pub jwt_keys: Vec<NamedSecret>,
    pub jwt_ttl: Duration,
    /// Master keys that encrypt ЧЗ keys at rest, by key id; the first encrypts, all decrypt.
    pub master_keys: Vec<NamedSecret>,
    /// The secret that keys the hash of every stored API key.
    pub api_key_pepper: SecretString,
    pub log_format: LogFormat,
    pub migrate_on_start: bool,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in.
    pub body_read_timeout: Duration,
    /// Requests per API key; `None` when rate limiting is switched off.
    pub rate_limit: Option<RateLimit>,
    /// Requests per tenant, all its keys together; `None` when rate limiting is switched off.
    pub tenant_rate_limit: Option<RateLimit>,
    /// How many whole months of evidence (audit records and ЧЗ exchanges) are kept before their
    /// month is dropped.
    pub evidence_retention_months: u32,
    pub truemark: TruemarkSettings,
}

/// A token bucket per caller: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained; may be a fraction (0.5 is one request every 2 s).
    pub per_second: f64,
    /// Requests accepted at once from a full bucket.
    pub burst: u32,
}

impl RateLimit {
    /// The time one request's token takes to come back.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// How iMark talks to ЧЗ: time limits, host blocks and refresh intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruemarkSettings {
    /// One `codes/check` attempt on one host.
    pub check_timeout: Duration,
    /// One `cdn/info` call.
    pub list_timeout: Duration,
    /// One `cdn/health/check` call.
    pub health_timeout: Duration,
    /// The single attempt made for a tenant in no-check mode.
    pub no_check_timeout: Duration,
    /// Everything ЧЗ may take for one document: attempts, failover and one rediscovery.
    pub document_budget: Duration,
    /// How long a failed host is skipped.
    pub block_time: Duration,
    /// How often each CDN list is rediscovered.
    pub refresh_interval: Duration,
    /// How often the listed hosts are health-checked and ranked.
    pub health_interval: Duration,
    /// How often a list with tenants in no-check mode is refreshed.
    pub accelerated_interval: Duration,
    /// Hosts tried for the production discovery URL when discovery itself fails.
    pub fallback_hosts: Vec<String>,
    /// Whether tenants may point iMark at plain-http or private addresses (an emulator on the
    /// LAN). Off in production: ЧЗ keys then travel only over https to public addresses.
    pub allow_local_urls: bool,
}

/// A secret with a public identifier, such as a JWT `kid` or a master key id.
#[derive(Clone)]
pub struct NamedSecret {
    pub id: String,
    pub secret: SecretSlice<u8>,
}

impl std::fmt::Debug for NamedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedSecret")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that is missing or malformed; the message names the variable to set.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("configuration could not be read: {0}")]
    Source(#[from] config::ConfigError),
}

/// The raw layered values, before validation. Every field is optional here so that the error for
/// a missing one can name its environment variable.
#[derive(Deserialize, Default)]
struct RawConfig {
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    listen_addr: Option<String>,
    metrics_addr: Option<String>,
    platform_key: Option<String>,
    jwt_keys: Option<String>,
    jwt_ttl_seconds: Option<u64>,
    master_keys: Option<String>,
    api_key_pepper: Option<String>,
    log_format: Option<String>,
    migrate_on_start: Option<bool>,
    body_limit_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    rate_limit_enabled: Option<bool>,
    rate_limit_per_second: Option<f64>,
    rate_limit_burst: Option<u32>,
    rate_limit_tenant_per_second: Option<f64>,
    rate_limit_tenant_burst: Option<u32>,
    evidence_retention_months: Option<u32>,
    truemark_check_timeout_ms: Option<u64>,
    truemark_list_timeout_ms: Option<u64>,
    truemark_health_timeout_ms: Option<u64>,
    truemark_no_check_timeout_ms: Option<u64>,
    truemark_document_budget_ms: Option<u64>,
    cdn_block_seconds: Option<u64>,
    cdn_refresh_seconds: Option<u64>,
    cdn_health_seconds: Option<u64>,
    cdn_accelerated_seconds: Option<u64>,
    cdn_fallback_hosts: Option<String>,
    truemark_allow_local_urls: Option<bool>,
}

impl Config {
    /// Loads the configuration from the process environment (and the file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        let file = std::env::var_os(CONFIG_FILE_VAR).map(PathBuf::from);
        Self::load(
            file,
            config::Environment::with_prefix("IMARK").try_parsing(true),
        )
    }

    /// Loads the configuration from an optional file and an environment source; tests pass a
    /// source built from a map instead of the process environment.
    pub fn load(
        file: Option<PathBuf>,
        environment: config::Environment,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            let name = path.to_string_lossy().into_owned();
            builder = builder.add_source(config::File::with_name(&name).required(true));
        }
        let raw: RawConfig = builder.add_source(environment).build()?.try_deserialize()?;
        raw.validate()
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        Ok(Config {
            database_url: required(
                self.database_url,
                "IMARK_DATABASE_URL",
                "the Postgres URL, e.g. postgres://imark@127.0.0.1:5432/imark",
            )?
            .into(),
            redis_url: required(
                self.redis_url,
                "IMARK_REDIS_URL",
                "the Redis URL, e.g. redis://127.0.0.1:6379",
            )?
            .into(),
            redis_prefix: redis_prefix(self.redis_prefix)?,
            listen_addr: listen_addr(self.listen_addr)?,
            metrics_addr: metrics_addr(self.metrics_addr.as_deref())?,
            platform_key: long_secret(
                self.platform_key,
                "IMARK_PLATFORM_KEY",
                "the platform operator's bootstrap key (at least 32 characters)",
            )?,
            jwt_keys: named_secrets(
                self.jwt_keys,
                "IMARK_JWT_KEYS",
                "JWT signing keys as `kid:secret[,kid:secret…]`, the first one signing",
                SecretEncoding::Text,
            )?,
            jwt_ttl: seconds(
                self.jwt_ttl_seconds,
                900,
                "IMARK_JWT_TTL_SECONDS",
                60..=86_400,
            )?,
            master_keys: named_secrets(
                self.master_keys,
                "IMARK_MASTER_KEYS",
                "master keys as `id:base64-of-32-bytes[,…]`, the first one encrypting",
                SecretEncoding::Aes256Base64,
            )?,
            api_key_pepper: long_secret(
                self.api_key_pepper,
                "IMARK_API_KEY_PEPPER",
                "the secret that keys API key hashes (at least 32 characters)",
            )?,
            log_format: log_format(self.log_format.as_deref())?,
            migrate_on_start: self.migrate_on_start.unwrap_or(true),
            body_limit_bytes: body_limit(self.body_limit_bytes)?,
            request_timeout: seconds(
                self.request_timeout_seconds,
                30,
                "IMARK_REQUEST_TIMEOUT_SECONDS",
                1..=600,
            )?,
            header_read_timeout: client_millis(
                self.header_read_timeout_ms,
                "IMARK_HEADER_READ_TIMEOUT_MS",
            )?,
            body_read_timeout: client_millis(
                self.body_read_timeout_ms,
                "IMARK_BODY_READ_TIMEOUT_MS",
            )?,
            rate_limit: rate_limit(
                self.rate_limit_enabled,
                (
                    self.rate_limit_per_second,
                    20.0,
                    "IMARK_RATE_LIMIT_PER_SECOND",
                ),
                (self.rate_limit_burst, 60, "IMARK_RATE_LIMIT_BURST"),
            )?,
            tenant_rate_limit: rate_limit(
                self.rate_limit_enabled,
                (
                    self.rate_limit_tenant_per_second,
                    200.0,
                    "IMARK_RATE_LIMIT_TENANT_PER_SECOND",
                ),
                (
                    self.rate_limit_tenant_burst,
                    600,
                    "IMARK_RATE_LIMIT_TENANT_BURST",
                ),
            )?,
            evidence_retention_months: retention(self.evidence_retention_months)?,
            truemark: TruemarkSettings {
                check_timeout: millis(
                    self.truemark_check_timeout_ms,
                    1500,
                    "IMARK_TRUEMARK_CHECK_TIMEOUT_MS",
                )?,
                list_timeout: millis(
                    self.truemark_list_timeout_ms,
                    5000,
                    "IMARK_TRUEMARK_LIST_TIMEOUT_MS",
                )?,
                health_timeout: millis(
                    self.truemark_health_timeout_ms,
                    5000,
                    "IMARK_TRUEMARK_HEALTH_TIMEOUT_MS",
                )?,
                no_check_timeout: millis(
                    self.truemark_no_check_timeout_ms,
                    500,
                    "IMARK_TRUEMARK_NO_CHECK_TIMEOUT_MS",
                )?,
                document_budget: millis(
                    self.truemark_document_budget_ms,
                    5000,
                    "IMARK_TRUEMARK_DOCUMENT_BUDGET_MS",
                )?,
                block_time: seconds(
                    self.cdn_block_seconds,
                    900,
                    "IMARK_CDN_BLOCK_SECONDS",
                    1..=86_400,
                )?,
                refresh_interval: seconds(
                    self.cdn_refresh_seconds,
                    6 * 3600,
                    "IMARK_CDN_REFRESH_SECONDS",
                    60..=7 * 86_400,
                )?,
                health_interval: seconds(
                    self.cdn_health_seconds,
                    300,
                    "IMARK_CDN_HEALTH_SECONDS",
                    10..=86_400,
                )?,
                accelerated_interval: seconds(
                    self.cdn_accelerated_seconds,
                    60,
                    "IMARK_CDN_ACCELERATED_SECONDS",
                    5..=3600,
                )?,
                fallback_hosts: fallback_hosts(self.cdn_fallback_hosts.as_deref()),
                allow_local_urls: self.truemark_allow_local_urls.unwrap_or(false),
            },
        })
    }
}

fn retention(months: Option<u32>) -> Result<u32, ConfigError> {
    match months.unwrap_or(60) {
        months @ 1..=1200 => Ok(months),
        months => Err(ConfigError::Invalid {
            var: "IMARK_EVIDENCE_RETENTION_MONTHS",
            reason: format!("{months} is outside 1..=1200 months"),
        }),
    }
}

fn millis(value: Option<u64>, default: u64, var: &'static str) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if !(50..=60_000).contains(&value) {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("{value} is outside 50..=60000 milliseconds"),
        });
    }
    Ok(Duration::from_millis(value))
}

/// How long a client may take to send headers or a body: 10 s unless set, 100 ms to 10 min.
fn client_millis(value: Option<u64>, var: &'static str) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(10_000);
    if !(100..=600_000).contains(&value) {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("{value} is outside 100..=600000 milliseconds"),
        });
    }
    Ok(Duration::from_millis(value))
}

/// Requests per second and burst of a bucket, each with its default and variable. Absent or 0
/// takes the default (per key 20 per second, bursts of 60: a busy store's tills sharing one key
/// stay well below it; per tenant 200 and 600); `IMARK_RATE_LIMIT_ENABLED=false` switches
/// limiting off.
fn rate_limit(
    enabled: Option<bool>,
    (per_second, default_rate, rate_var): (Option<f64>, f64, &'static str),
    (burst, default_burst, burst_var): (Option<u32>, u32, &'static str),
) -> Result<Option<RateLimit>, ConfigError> {
    if enabled == Some(false) {
        return Ok(None);
    }
    let per_second = match per_second {
        None | Some(0.0) => default_rate,
        Some(value) if value.is_finite() && (0.001..=100_000.0).contains(&value) => value,
        Some(value) => {
            return Err(ConfigError::Invalid {
                var: rate_var,
                reason: format!("{value} is outside 0.001..=100000 requests per second"),
            });
        }
    };
    let burst = match burst {
        None | Some(0) => default_burst,
        Some(value) if value <= 100_000 => value,
        Some(value) => {
            return Err(ConfigError::Invalid {
                var: burst_var,
                reason: format!("{value} is outside 1..=100000 requests"),
            });
        }
    };
    Ok(Some(RateLimit { per_second, burst }))
}

/// The static production hosts `cdn01` … `cdn11`, unless a comma-separated list (possibly empty)
/// replaces them.
fn fallback_hosts(value: Option<&str>) -> Vec<String> {
    match value {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        None => (1..=11)
            .map(|n| format!("https://cdn{n:02}.crpt.ru"))
            .collect(),
    }
}

fn required(
    value: Option<String>,
    var: &'static str,
    hint: &'static str,
) -> Result<String, ConfigError> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { var, hint }),
    }
}

fn long_secret(
    value: Option<String>,
    var: &'static str,
    hint: &'static str,
) -> Result<SecretString, ConfigError> {
    let value = required(value, var, hint)?;
    if value.chars().count() < MIN_SECRET_LEN {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("it must be at least {MIN_SECRET_LEN} characters long"),
        });
    }
    Ok(value.into())
}

fn redis_prefix(value: Option<String>) -> Result<String, ConfigError> {
    let prefix = value.unwrap_or_else(|| "imark".to_owned());
    let valid = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ConfigError::Invalid {
            var: "IMARK_REDIS_PREFIX",
            reason: "use 1 to 64 characters from a-z, A-Z, 0-9, '-', '_' and '.'".to_owned(),
        });
    }
    Ok(prefix)
}

fn listen_addr(value: Option<String>) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or_else(|| "0.0.0.0:8080".to_owned());
    value.parse().map_err(|_| ConfigError::Invalid {
        var: "IMARK_LISTEN_ADDR",
        reason: format!("`{value}` is not an address like 0.0.0.0:8080"),
    })
}

fn metrics_addr(value: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| ConfigError::Invalid {
            var: "IMARK_METRICS_ADDR",
            reason: format!("`{value}` is not an address like 0.0.0.0:9090"),
        }),
    }
}

fn seconds(
    value: Option<u64>,
    default: u64,
    var: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        return Err(ConfigError::Invalid {
            var,
            reason: format!(
                "{value} is outside {}..={} seconds",
                range.start(),
                range.end()
            ),
        });
    }
    Ok(Duration::from_secs(value))
}

fn body_limit(value: Option<usize>) -> Result<usize, ConfigError> {
    let value = value.unwrap_or(1024 * 1024);
    if !(1024..=64 * 1024 * 1024).contains(&value) {
        return Err(ConfigError::Invalid {
            var: "IMARK_BODY_LIMIT_BYTES",
            reason: format!("{value} is outside 1 KiB..64 MiB"),
        });
    }
    Ok(value)
}

fn log_format(value: Option<&str>) -> Result<LogFormat, ConfigError> {
    match value.map(str::trim) {
        None | Some("" | "text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError::Invalid {
            var: "IMARK_LOG_FORMAT",
            reason: format!("`{other}` is neither `text` nor `json`"),
        }),
    }
}

#[derive(Clone, Copy)]
enum SecretEncoding {
    /// Any text of at least [`MIN_SECRET_LEN`] characters, used as bytes.
    Text,
    /// Standard base64 of exactly 32 bytes: an AES-256 key.
    Aes256Base64,
}

fn named_secrets(
    value: Option<String>,
    var: &'static str,
    hint: &'static str,
    encoding: SecretEncoding,
) -> Result<Vec<NamedSecret>, ConfigError> {
    let value = SecretString::from(required(value, var, hint)?);
    let invalid = |reason: String| ConfigError::Invalid { var, reason };
    let mut secrets: Vec<NamedSecret> = Vec::new();
    for entry in value.expose_secret().split(',').map(str::trim) {
        let (id, secret) = entry
            .split_once(':')
            .ok_or_else(|| invalid("each entry must be `id:secret`".to_owned()))?;
        let id_ok = !id.is_empty()
            && id.len() <= 32
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(invalid(
                "an id must be 1 to 32 characters from a-z, A-Z, 0-9, '-' and '_'".to_owned(),
            ));
        }
        if secrets.iter().any(|s| s.id == id) {
            return Err(invalid(format!("the id `{id}` appears twice")));
        }
        let bytes = match encoding {
            SecretEncoding::Text if secret.chars().count() >= MIN_SECRET_LEN => {
                secret.as_bytes().to_vec()
            }
            SecretEncoding::Text => {
                return Err(invalid(format!(
                    "the secret of `{id}` must be at least {MIN_SECRET_LEN} characters long"
                )));
            }
            SecretEncoding::Aes256Base64 => match BASE64.decode(secret) {
                Ok(bytes) if bytes.len() == 32 => bytes,
                _ => {
                    return Err(invalid(format!(
                        "the key of `{id}` must be standard base64 of exactly 32 bytes"
                    )));
                }
            },
        };
        secrets.push(NamedSecret {
            id: id.to_owned(),
            secret: SecretSlice::from(bytes),
        });
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn complete() -> HashMap<String, String> {
        HashMap::from([
            ("IMARK_DATABASE_URL", "postgres://u:hunter2@localhost/imark"),
            ("IMARK_REDIS_URL", "redis://127.0.0.1:6379"),
            (
                "IMARK_PLATFORM_KEY",
                "platform-key-platform-key-platform-key",
            ),
            (
                "IMARK_JWT_KEYS",
                "k2:0123456789abcdef0123456789abcdef,k1:abcdefabcdefabcdefabcdefabcdefab",
            ),
            (
                "IMARK_MASTER_KEYS",
                "m1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("IMARK_API_KEY_PEPPER", "pepper-pepper-pepper-pepper-pepper"),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn load(vars: HashMap<String, String>) -> Result<Config, ConfigError> {
        let env = config::Environment::with_prefix("IMARK")
            .try_parsing(true)
            .source(Some(vars));
        Config::load(None, env)
    }

    #[test]
    fn a_complete_environment_loads_with_defaults() {
        let config = load(complete()).unwrap();

        assert_eq!(config.listen_addr.port(), 8080);
        assert_eq!(config.jwt_ttl, Duration::from_secs(900));
        assert_eq!(config.jwt_keys[0].id, "k2");
        assert_eq!(config.master_keys[0].secret.expose_secret().len(), 32);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.metrics_addr, None);
    }

    #[test]
    fn a_metrics_address_is_parsed_or_refused_by_name() {
        let mut vars = complete();
        vars.insert("IMARK_METRICS_ADDR".into(), "0.0.0.0:9090".into());
        assert_eq!(load(vars).unwrap().metrics_addr.unwrap().port(), 9090);

        let mut vars = complete();
        vars.insert("IMARK_METRICS_ADDR".into(), "metrics".into());
        let error = load(vars).unwrap_err().to_string();
        assert!(
            error.starts_with("IMARK_METRICS_ADDR is invalid"),
            "{error}"
        );
    }

    #[test]
    fn the_rate_limit_has_a_default_for_zero_and_can_be_switched_off() {
        assert_eq!(
            load(complete()).unwrap().rate_limit,
            Some(RateLimit {
                per_second: 20.0,
                burst: 60
            })
        );

        let mut vars = complete();
        vars.insert("IMARK_RATE_LIMIT_PER_SECOND".into(), "0".into());
        vars.insert("IMARK_RATE_LIMIT_BURST".into(), "0".into());
        assert_eq!(load(vars).unwrap().rate_limit.unwrap().burst, 60);

        let mut vars = complete();
        vars.insert("IMARK_RATE_LIMIT_PER_SECOND".into(), "0.5".into());
        vars.insert("IMARK_RATE_LIMIT_BURST".into(), "3".into());
        let limit = load(vars).unwrap().rate_limit.unwrap();
        assert_eq!((limit.period(), limit.burst), (Duration::from_secs(2), 3));

        let mut vars = complete();
        vars.insert("IMARK_RATE_LIMIT_ENABLED".into(), "false".into());
        let config = load(vars).unwrap();
        assert_eq!((config.rate_limit, config.tenant_rate_limit), (None, None));

        let mut vars = complete();
        vars.insert("IMARK_RATE_LIMIT_TENANT_PER_SECOND".into(), "5".into());
        vars.insert("IMARK_RATE_LIMIT_TENANT_BURST".into(), "7".into());
        assert_eq!(
            load(vars).unwrap().tenant_rate_limit,
            Some(RateLimit {
                per_second: 5.0,
                burst: 7
            })
        );
        assert_eq!(
            load(complete()).unwrap().tenant_rate_limit.unwrap().burst,
            600
        );

        let mut vars = complete();
        vars.insert("IMARK_RATE_LIMIT_PER_SECOND".into(), "-1".into());
        let error = load(vars).unwrap_err().to_string();
        assert!(
            error.starts_with("IMARK_RATE_LIMIT_PER_SECOND is invalid"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_setting_names_its_variable() {
        for var in [
            "IMARK_DATABASE_URL",
            "IMARK_JWT_KEYS",
            "IMARK_MASTER_KEYS",
            "IMARK_PLATFORM_KEY",
        ] {
            let mut vars = complete();
            vars.remove(var);

            let error = load(vars).unwrap_err().to_string();

            assert!(error.starts_with(&format!("{var} is not set")), "{error}");
        }
    }

    #[test]
    fn a_short_master_key_is_refused_by_name() {
        let mut vars = complete();
        vars.insert("IMARK_MASTER_KEYS".into(), "m1:c2hvcnQ=".into());

        let error = load(vars).unwrap_err().to_string();

        assert!(error.starts_with("IMARK_MASTER_KEYS is invalid"), "{error}");
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let config = load(complete()).unwrap();

        let debug = format!("{config:?}");

        for secret in [
            "hunter2",
            "platform-key-platform",
            "0123456789abcdef",
            "pepper-pepper",
            "AAECAwQF",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }
}
