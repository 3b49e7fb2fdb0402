//! The typed configuration, read once at start from an optional TOML file
//! and the environment (the environment wins), then handed down. No other
//! module reads environment variables.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::domain::Environment;
pub use crate::store::DatabaseUrl;

/// One setting: its key in the TOML file and its environment variable.
struct Setting {
    key: &'static str,
    env: &'static str,
}

macro_rules! settings {
    ($($name:ident = $key:literal, $env:literal;)*) => {
        $(const $name: Setting = Setting { key: $key, env: $env };)*
        const ALL: &[Setting] = &[$($name),*];
    };
}

settings! {
    BIND = "bind", "TESSERA_BIND";
    ISSUER = "issuer", "TESSERA_ISSUER";
    DATABASE_URL = "database_url", "TESSERA_DATABASE_URL";
    DATABASE_POOL_SIZE = "database_pool_size", "TESSERA_DATABASE_POOL_SIZE";
    DATABASE_CONNECT_TIMEOUT = "database_connect_timeout", "TESSERA_DATABASE_CONNECT_TIMEOUT";
    ENVIRONMENT = "environment", "TESSERA_ENVIRONMENT";
    MASTER_KEY = "master_key", "TESSERA_MASTER_KEY";
    MASTER_KEY_FILE = "master_key_file", "TESSERA_MASTER_KEY_FILE";
    LOG_FORMAT = "log_format", "TESSERA_LOG_FORMAT";
    LOG_LEVEL = "log_level", "TESSERA_LOG_LEVEL";
    WORKERS = "workers", "TESSERA_WORKERS";
    BODY_LIMIT = "body_limit", "TESSERA_BODY_LIMIT";
    SHUTDOWN_TIMEOUT = "shutdown_timeout", "TESSERA_SHUTDOWN_TIMEOUT";
    PURGE_INTERVAL = "purge_interval", "TESSERA_PURGE_INTERVAL";
    AUDIT_RETENTION_DAYS = "audit_retention_days", "TESSERA_AUDIT_RETENTION_DAYS";
    ACCESS_TOKEN_TTL = "access_token_ttl", "TESSERA_ACCESS_TOKEN_TTL";
    SIGNING_KEY_PREPUBLISH = "signing_key_prepublish", "TESSERA_SIGNING_KEY_PREPUBLISH";
    DEFAULT_AUDIENCE = "default_audience", "TESSERA_DEFAULT_AUDIENCE";
    SESSION_IDLE_TTL = "session_idle_ttl", "TESSERA_SESSION_IDLE_TTL";
    SESSION_TTL = "session_ttl", "TESSERA_SESSION_TTL";
    LOGIN_MAX_FAILURES = "login_max_failures", "TESSERA_LOGIN_MAX_FAILURES";
    REFRESH_TOKEN_IDLE_TTL = "refresh_token_idle_ttl", "TESSERA_REFRESH_TOKEN_IDLE_TTL";
    REFRESH_TOKEN_TTL = "refresh_token_ttl", "TESSERA_REFRESH_TOKEN_TTL";
    API_RATE_LIMIT = "api_rate_limit", "TESSERA_API_RATE_LIMIT";
    API_RATE_LIMIT_MAX = "api_rate_limit_max", "TESSERA_API_RATE_LIMIT_MAX";
    IP_RATE_LIMIT = "ip_rate_limit", "TESSERA_IP_RATE_LIMIT";
    TRUSTED_PROXIES = "trusted_proxies", "TESSERA_TRUSTED_PROXIES";
    REGISTRATION = "registration", "TESSERA_REGISTRATION";
    REGISTRATION_SCOPES = "registration_scopes", "TESSERA_REGISTRATION_SCOPES";
    REGISTRATION_RATE_LIMIT = "registration_rate_limit", "TESSERA_REGISTRATION_RATE_LIMIT";
    SIGNIN_RATE_LIMIT = "signin_rate_limit", "TESSERA_SIGNIN_RATE_LIMIT";
    PASSWORD_HASH_CONCURRENCY = "password_hash_concurrency", "TESSERA_PASSWORD_HASH_CONCURRENCY";
    AUDIT_FAILURES_PER_IP = "audit_failures_per_ip", "TESSERA_AUDIT_FAILURES_PER_IP";
    AUDIT_FAILURES_PER_MINUTE = "audit_failures_per_minute", "TESSERA_AUDIT_FAILURES_PER_MINUTE";
    REDIS_URL = "redis_url", "TESSERA_REDIS_URL";
    METRICS_BIND = "metrics_bind", "TESSERA_METRICS_BIND";
}

/// A setting that could not be used, named the way the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: &Setting, message: impl Into<String>) -> Self {
        Self { setting: setting.env.to_string(), message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Where the shared rate limits live (`TESSERA_REDIS_URL`). `Display`
/// never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("redis://").ok_or_else(|| {
            if text.starts_with("rediss://") {
                "rediss:// (TLS) is not supported: reach Redis over a private network or a TLS tunnel".to_string()
            } else {
                "expected redis://[:PASSWORD@]HOST[:PORT][/DB]".to_string()
            }
        })?;
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("malformed Redis URL".into());
        }
        Ok(Self(text.to_string()))
    }

    /// The URL itself, password included: for the client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::uri::redact_password(&self.0))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// The `iss` of every token; `None` means `http://` + the bound address.
    pub issuer: Option<String>,
    pub database_url: DatabaseUrl,
    pub database_pool_size: u32,
    /// How long start-up waits for the database, and how long a request
    /// waits for a connection before answering 503.
    pub database_connect_timeout: Duration,
    pub environment: Environment,
    /// Raw `TESSERA_MASTER_KEY`; see `master_key_path` for the fallback.
    pub master_key: Option<crate::crypto::Secret>,
    pub master_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `tessera=debug,info`.
    pub log_level: String,
    pub workers: Option<usize>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    pub shutdown_timeout: Duration,
    /// How often the background purge deletes rows that can no longer
    /// matter (expired codes, sessions, …); zero turns it off.
    pub purge_interval: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// How often API keys' uses noted in memory are written (`last_used`,
    /// usage counters). Not read from the environment: tests lengthen it
    /// to see that no request writes them.
    pub key_usage_flush_interval: Duration,
    /// Lifetime of access tokens; also how long a retired signing key
    /// stays in the JWKS.
    pub access_token_ttl: Duration,
    /// How long a rotated-in signing key is published before it signs.
    pub signing_key_prepublish: Duration,
    /// The `aud` of tokens whose request names no resource; `None` means
    /// the server's own API, `<issuer>/v1`.
    pub default_audience: Option<String>,
    /// A browser session ends after this long without a request…
    pub session_idle_ttl: Duration,
    /// …and after this long in any case.
    pub session_ttl: Duration,
    /// Failed sign-ins per account in the throttle window before 429; an
    /// IP gets four times as many.
    pub login_max_failures: u32,
    /// A refresh token unused this long expires…
    pub refresh_token_idle_ttl: Duration,
    /// …and its whole family this long after the authorization.
    pub refresh_token_ttl: Duration,
    /// Requests per second per API key without a limit of its own.
    pub api_rate_limit: u32,
    /// The most requests per second any API key gets: a key's own
    /// `rate_limit` above it (or a default above it) is capped to it.
    pub api_rate_limit_max: u32,
    /// Failed `/v1` authentications per second per IP.
    pub ip_rate_limit: u32,
    /// Peers whose `X-Forwarded-For` is believed (IPs or CIDRs); empty:
    /// the socket address is the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Who may register clients at `POST /oauth/register` (RFC 7591).
    pub registration: crate::oauth::registration::RegistrationMode,
    /// The scopes a self-registered client may have (and gets when it asks
    /// for none); never `admin`.
    pub registration_scopes: crate::domain::scope::Scopes,
    /// Registrations per minute per IP.
    pub registration_rate_limit: u32,
    /// Sign-in attempts per minute per IP (an IPv6 /64 is one), counted
    /// before the password is checked.
    pub signin_rate_limit: u32,
    /// Password hashes (argon2, 19 MiB and tens of milliseconds each) in
    /// flight at once; beyond it sign-in answers 503 with `Retry-After`
    /// rather than queue (default: twice the cores).
    pub password_hash_concurrency: usize,
    /// Failed authentications audited per client address per minute, and
    /// in all per minute (per instance); the rest are counted
    /// (`audit::FailureSample`).
    pub audit_failures_per_ip: u32,
    pub audit_failures_per_minute: u32,
    /// With it, the rate limits are counted in Redis across every instance
    /// (`http::ratelimit`); without it, each instance counts its own.
    pub redis_url: Option<RedisUrl>,
    /// Where `GET /metrics` listens (Prometheus text); `None`: nowhere.
    pub metrics_bind: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("issuer", &self.issuer)
            .field("database_url", &self.database_url)
            .field("environment", &self.environment)
            .field("master_key", &self.master_key.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            issuer: None,
            database_url: DatabaseUrl::Sqlite(PathBuf::from("./tessera.db")),
            database_pool_size: 10,
            database_connect_timeout: Duration::from_secs(5),
            environment: Environment::Sandbox,
            master_key: None,
            master_key_file: None,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            workers: None,
            body_limit: 64 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            purge_interval: Duration::from_secs(3600),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            key_usage_flush_interval: Duration::from_secs(2),
            access_token_ttl: Duration::from_secs(15 * 60),
            signing_key_prepublish: Duration::from_secs(60 * 60),
            default_audience: None,
            session_idle_ttl: Duration::from_secs(30 * 60),
            session_ttl: Duration::from_secs(12 * 3600),
            login_max_failures: 5,
            refresh_token_idle_ttl: Duration::from_secs(14 * 24 * 3600),
            refresh_token_ttl: Duration::from_secs(90 * 24 * 3600),
            api_rate_limit: 100,
            api_rate_limit_max: 1000,
            ip_rate_limit: 20,
            trusted_proxies: Vec::new(),
            registration: crate::oauth::registration::RegistrationMode::Closed,
            registration_scopes: crate::domain::scope::Scopes::from_stored(
                crate::oauth::registration::DEFAULT_REGISTRATION_SCOPES,
            ),
            registration_rate_limit: 10,
            signin_rate_limit: 30,
            password_hash_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            audit_failures_per_ip: 20,
            audit_failures_per_minute: 120,
            redis_url: None,
            metrics_bind: None,
        }
    }
}

impl Config {
    /// Reads the optional TOML file, then the environment (`env` is passed in
    /// so that tests need not touch the process environment).
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut values: HashMap<&'static str, String> = HashMap::new();
        if let Some(path) = file {
            let setting = Setting { key: "--config", env: "--config" };
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(&setting, format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::new(&setting, format!("{} is not valid TOML: {}", path.display(), e.message()))
            })?;
            for (key, value) in table {
                let setting = ALL.iter().find(|s| s.key == key).ok_or_else(|| {
                    ConfigError::new(&setting, format!("unknown setting `{key}` in {}", path.display()))
                })?;
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    other => {
                        return Err(ConfigError::new(
                            setting,
                            format!("expected a string or an integer, got {}", other.type_str()),
                        ));
                    }
                };
                values.insert(setting.env, text);
            }
        }
        for setting in ALL {
            if let Some(value) = env.get(setting.env) {
                values.insert(setting.env, value.clone());
            }
        }
        Self::from_values(&values)
    }

    fn from_values(values: &HashMap<&'static str, String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let get = |s: &Setting| values.get(s.env).map(|v| v.trim()).filter(|v| !v.is_empty());

        if let Some(v) = get(&BIND) {
            v.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| ConfigError::new(&BIND, format!("`{v}` is not a HOST:PORT address")))?;
            config.bind = v.to_string();
        }
        if let Some(v) = get(&ISSUER) {
            config.issuer = Some(parse_issuer(v).map_err(|m| ConfigError::new(&ISSUER, m))?);
        }
        if let Some(v) = get(&DATABASE_URL) {
            config.database_url = DatabaseUrl::parse(v).map_err(|m| ConfigError::new(&DATABASE_URL, m))?;
        }
        if let Some(v) = get(&DATABASE_POOL_SIZE) {
            config.database_pool_size = parse_number(&DATABASE_POOL_SIZE, v, 1, 1000)?;
        }
        if let Some(v) = get(&DATABASE_CONNECT_TIMEOUT) {
            config.database_connect_timeout = Duration::from_secs(parse_number(&DATABASE_CONNECT_TIMEOUT, v, 1, 3600)?);
        }
        if let Some(v) = get(&ENVIRONMENT) {
            config.environment = match v {
                "sandbox" => Environment::Sandbox,
                "production" => Environment::Production,
                _ => {
                    return Err(ConfigError::new(
                        &ENVIRONMENT,
                        format!("unknown environment `{v}`; expected `sandbox` or `production`"),
                    ));
                }
            };
        }
        if let Some(v) = get(&MASTER_KEY) {
            // Checked here so a bad key stops the start, but kept raw: the
            // key itself is built where it is used.
            crate::crypto::MasterKey::parse(v).map_err(|e| ConfigError::new(&MASTER_KEY, e.to_string()))?;
            config.master_key = Some(crate::crypto::Secret::new(v));
        }
        if let Some(v) = get(&MASTER_KEY_FILE) {
            config.master_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get(&LOG_FORMAT) {
            config.log_format = match v {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        &LOG_FORMAT,
                        format!("unknown log format `{v}`; expected `pretty` or `json`"),
                    ));
                }
            };
        }
        if let Some(v) = get(&LOG_LEVEL) {
            tracing_subscriber::EnvFilter::try_new(v)
                .map_err(|e| ConfigError::new(&LOG_LEVEL, format!("`{v}` is not a log filter: {e}")))?;
            config.log_level = v.to_string();
        }
        if let Some(v) = get(&WORKERS) {
            config.workers = Some(parse_number(&WORKERS, v, 1, 1024)?);
        }
        if let Some(v) = get(&BODY_LIMIT) {
            config.body_limit = parse_number(&BODY_LIMIT, v, 1024, 64 * 1024 * 1024)?;
        }
        if let Some(v) = get(&SHUTDOWN_TIMEOUT) {
            config.shutdown_timeout = Duration::from_secs(parse_number(&SHUTDOWN_TIMEOUT, v, 0, 3600)?);
        }
        if let Some(v) = get(&PURGE_INTERVAL) {
            config.purge_interval = Duration::from_secs(parse_number(&PURGE_INTERVAL, v, 0, 7 * 24 * 3600)?);
        }
        if let Some(v) = get(&AUDIT_RETENTION_DAYS) {
            let days: u64 = parse_number(&AUDIT_RETENTION_DAYS, v, 1, 36_500)?;
            config.audit_retention = Duration::from_secs(days * 24 * 3600);
        }
        if let Some(v) = get(&ACCESS_TOKEN_TTL) {
            config.access_token_ttl = Duration::from_secs(parse_number(&ACCESS_TOKEN_TTL, v, 10, 24 * 3600)?);
        }
        if let Some(v) = get(&SIGNING_KEY_PREPUBLISH) {
            config.signing_key_prepublish =
                Duration::from_secs(parse_number(&SIGNING_KEY_PREPUBLISH, v, 0, 30 * 24 * 3600)?);
        }
        if let Some(v) = get(&DEFAULT_AUDIENCE) {
            crate::uri::check_absolute_uri(v)
                .map_err(|why| ConfigError::new(&DEFAULT_AUDIENCE, format!("`{v}` {why}")))?;
            config.default_audience = Some(v.to_string());
        }
        let days = |n: u64| n * 24 * 3600;
        if let Some(v) = get(&SESSION_IDLE_TTL) {
            config.session_idle_ttl = Duration::from_secs(parse_number(&SESSION_IDLE_TTL, v, 60, days(30))?);
        }
        if let Some(v) = get(&SESSION_TTL) {
            config.session_ttl = Duration::from_secs(parse_number(&SESSION_TTL, v, 60, days(90))?);
        }
        if let Some(v) = get(&LOGIN_MAX_FAILURES) {
            config.login_max_failures = parse_number(&LOGIN_MAX_FAILURES, v, 1, 1000)?;
        }
        if let Some(v) = get(&REFRESH_TOKEN_IDLE_TTL) {
            config.refresh_token_idle_ttl =
                Duration::from_secs(parse_number(&REFRESH_TOKEN_IDLE_TTL, v, 60, days(365))?);
        }
        if let Some(v) = get(&REFRESH_TOKEN_TTL) {
            config.refresh_token_ttl = Duration::from_secs(parse_number(&REFRESH_TOKEN_TTL, v, 60, days(3650))?);
        }
        if let Some(v) = get(&API_RATE_LIMIT) {
            config.api_rate_limit = parse_number(&API_RATE_LIMIT, v, 1, 1_000_000)?;
        }
        if let Some(v) = get(&API_RATE_LIMIT_MAX) {
            config.api_rate_limit_max = parse_number(&API_RATE_LIMIT_MAX, v, 1, 1_000_000)?;
        }
        if let Some(v) = get(&TRUSTED_PROXIES) {
            config.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| ConfigError::new(&TRUSTED_PROXIES, format!("`{p}` is not an IP address or CIDR")))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get(&IP_RATE_LIMIT) {
            config.ip_rate_limit = parse_number(&IP_RATE_LIMIT, v, 1, 1_000_000)?;
        }
        if let Some(v) = get(&REGISTRATION) {
            config.registration = crate::oauth::registration::RegistrationMode::parse(v).ok_or_else(|| {
                ConfigError::new(&REGISTRATION, format!("unknown policy `{v}`; expected `closed`, `token` or `open`"))
            })?;
        }
        if let Some(v) = get(&REGISTRATION_SCOPES) {
            let scopes =
                crate::domain::scope::Scopes::parse(v).map_err(|e| ConfigError::new(&REGISTRATION_SCOPES, e))?;
            if scopes.iter().any(crate::oauth::registration::is_admin_scope) {
                return Err(ConfigError::new(
                    &REGISTRATION_SCOPES,
                    "a self-registered client never gets an admin scope",
                ));
            }
            config.registration_scopes = scopes;
        }
        if let Some(v) = get(&REGISTRATION_RATE_LIMIT) {
            config.registration_rate_limit = parse_number(&REGISTRATION_RATE_LIMIT, v, 1, 1_000_000)?;
        }
        if let Some(v) = get(&SIGNIN_RATE_LIMIT) {
            config.signin_rate_limit = parse_number(&SIGNIN_RATE_LIMIT, v, 1, 1_000_000)?;
        }
        if let Some(v) = get(&PASSWORD_HASH_CONCURRENCY) {
            config.password_hash_concurrency = parse_number(&PASSWORD_HASH_CONCURRENCY, v, 1, 1024)?;
        }
        if let Some(v) = get(&AUDIT_FAILURES_PER_IP) {
            config.audit_failures_per_ip = parse_number(&AUDIT_FAILURES_PER_IP, v, 0, 1_000_000)?;
        }
        if let Some(v) = get(&AUDIT_FAILURES_PER_MINUTE) {
            config.audit_failures_per_minute = parse_number(&AUDIT_FAILURES_PER_MINUTE, v, 0, 1_000_000)?;
        }
        if let Some(v) = get(&REDIS_URL) {
            config.redis_url = Some(RedisUrl::parse(v).map_err(|m| ConfigError::new(&REDIS_URL, m))?);
        }
        if let Some(v) = get(&METRICS_BIND) {
            v.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| ConfigError::new(&METRICS_BIND, format!("`{v}` is not a HOST:PORT address")))?;
            config.metrics_bind = Some(v.to_string());
        }
        Ok(config)
    }

    /// The audience of token requests that name none.
    /// What the background purge keeps (`purge::purge`).
    pub fn purge_policy(&self) -> crate::purge::PurgePolicy {
        crate::purge::PurgePolicy {
            session_idle: self.session_idle_ttl,
            access_token_ttl: self.access_token_ttl,
            audit_retention: self.audit_retention,
            batch_size: crate::purge::DEFAULT_BATCH_SIZE,
        }
    }

    pub fn default_audience_for(&self, issuer: &str) -> String {
        self.default_audience.clone().unwrap_or_else(|| format!("{}/v1", issuer.trim_end_matches('/')))
    }

    pub fn rotation_policy(&self) -> crate::jwt::keys::RotationPolicy {
        crate::jwt::keys::RotationPolicy {
            prepublish: self.signing_key_prepublish,
            token_lifetime: self.access_token_ttl,
        }
    }

    /// Where the generated master key lives when `TESSERA_MASTER_KEY` is not
    /// set: `TESSERA_MASTER_KEY_FILE`, else beside the SQLite database, else
    /// (PostgreSQL) in the working directory.
    pub fn master_key_path(&self) -> PathBuf {
        if let Some(path) = &self.master_key_file {
            return path.clone();
        }
        match &self.database_url {
            DatabaseUrl::Sqlite(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".master-key");
                db.with_file_name(name)
            }
            DatabaseUrl::Postgres(_) => PathBuf::from("tessera.master-key"),
        }
    }

    /// The issuer for a server bound to `addr`.
    pub fn issuer_for(&self, addr: SocketAddr) -> String {
        self.issuer.clone().unwrap_or_else(|| format!("http://{addr}"))
    }
}

fn parse_number<T>(setting: &Setting, text: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match text.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(ConfigError::new(setting, format!("`{text}` is not a whole number from {min} to {max}"))),
    }
}

/// An issuer is an http(s) URL with no query or fragment (RFC 8414 §2); a
/// trailing slash is dropped so that `iss` comparisons are exact.
fn parse_issuer(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("the issuer must start with https:// or http://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the issuer names no host".into());
    }
    if text.contains(['?', '#']) || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the issuer must not have a query, a fragment or spaces".into());
    }
    Ok(text.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.database_url, DatabaseUrl::Sqlite("./tessera.db".into()));
        assert_eq!(c.environment, Environment::Sandbox);
        assert_eq!(c.issuer_for("127.0.0.1:8080".parse().unwrap()), "http://127.0.0.1:8080");
        assert_eq!(c.master_key_path(), PathBuf::from("./tessera.db.master-key"));
    }

    #[test]
    fn purge_settings_parse_and_zero_turns_the_purge_off() {
        let c = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.purge_interval, Duration::from_secs(3600));
        assert_eq!(c.audit_retention, Duration::from_secs(90 * 24 * 3600));
        let c = Config::load(None, &env(&[("TESSERA_PURGE_INTERVAL", "0"), ("TESSERA_AUDIT_RETENTION_DAYS", "7")]))
            .unwrap();
        assert!(c.purge_interval.is_zero());
        assert_eq!(c.audit_retention, Duration::from_secs(7 * 24 * 3600));
        for (name, value) in [("TESSERA_PURGE_INTERVAL", "-1"), ("TESSERA_AUDIT_RETENTION_DAYS", "0")] {
            let err = Config::load(None, &env(&[(name, value)])).unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (name, value) in [
            ("TESSERA_ENVIRONMENT", "prod"),
            ("TESSERA_DATABASE_URL", "mysql://x"),
            ("TESSERA_BIND", "nowhere"),
            ("TESSERA_ISSUER", "ftp://x"),
            ("TESSERA_LOG_FORMAT", "xml"),
            ("TESSERA_MASTER_KEY", "tooshort"),
            ("TESSERA_DATABASE_POOL_SIZE", "0"),
            ("TESSERA_REGISTRATION", "anyone"),
            ("TESSERA_REGISTRATION_SCOPES", "read admin"),
            ("TESSERA_REGISTRATION_SCOPES", "payments:admin"),
            ("TESSERA_REGISTRATION_RATE_LIMIT", "0"),
            ("TESSERA_SIGNIN_RATE_LIMIT", "0"),
            ("TESSERA_REDIS_URL", "http://localhost:6379"),
            ("TESSERA_REDIS_URL", "rediss://cache:6380"),
            ("TESSERA_METRICS_BIND", "nowhere"),
        ] {
            let err = Config::load(None, &env(&[(name, value)])).unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "environment = \"production\"\nbind = \"127.0.0.1:9999\"\n").unwrap();
        let c = Config::load(Some(&path), &env(&[("TESSERA_BIND", "127.0.0.1:7777")])).unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert_eq!(c.bind, "127.0.0.1:7777");
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        assert!(Config::load(Some(&path), &HashMap::new()).unwrap_err().message.contains("colour"));
    }

    #[test]
    fn postgres_passwords_are_not_displayed() {
        let url = DatabaseUrl::parse("postgres://tess:s3cret@db:5432/tessera").unwrap();
        assert_eq!(url.to_string(), "postgres://tess:***@db:5432/tessera");
        assert!(!format!("{url:?}").contains("s3cret"));
        let redis = RedisUrl::parse("redis://:s3cret@cache:6379/2").unwrap();
        assert_eq!(redis.to_string(), "redis://:***@cache:6379/2");
        assert!(!format!("{redis:?}").contains("s3cret"));
        assert_eq!(redis.expose(), "redis://:s3cret@cache:6379/2");
        // A password with the characters that end an authority.
        for secret in ["Ab3/xY+q", "a?b#c", "p@ss/w"] {
            let shown = crate::uri::redact_password(&format!("redis://:{secret}@cache:6379/0"));
            assert_eq!(shown, "redis://:***@cache:6379/0", "{secret}");
            let shown = crate::uri::redact_password(&format!("postgres://tess:{secret}@db/tessera"));
            assert_eq!(shown, "postgres://tess:***@db/tessera", "{secret}");
        }
    }
}
