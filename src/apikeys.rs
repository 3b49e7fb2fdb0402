//! API keys: `sk_test_`, `sk_live_`, `rk_test_`, `rk_live_`.
//!
//! Format: prefix + 30 base62 characters from the OS CSPRNG (≈178 bits) +
//! a 6-character base62 CRC32 of prefix and random part, so a mangled key
//! (or one whose `test`/`live` was edited) is refused before any database
//! lookup. Stored as HMAC-SHA256 under a key derived from the master key;
//! shown once; displayed as prefix + last four characters.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::config::Environment;
use crate::crypto::{MasterKey, Secret, public_id, random_base62};
use crate::store::api_keys::{self, ApiKeyRow};
use crate::store::{DbConn, StoreError};

pub const RANDOM_LEN: usize = 30;
pub const CHECKSUM_LEN: usize = 6;
pub const MAX_NAME_LEN: usize = 100;
pub const MAX_RESTRICTIONS: usize = 50;
pub const MAX_ROTATION_OVERLAP_SECS: u64 = 30 * 24 * 3600;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }

    /// The mode a server environment accepts.
    pub fn of(environment: Environment) -> Self {
        match environment {
            Environment::Sandbox => Self::Test,
            Environment::Production => Self::Live,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Secret,
    Restricted,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Restricted => "restricted",
        }
    }

    fn letters(self) -> &'static str {
        match self {
            Self::Secret => "sk",
            Self::Restricted => "rk",
        }
    }
}

pub const PERMISSIONS: [&str; 4] = ["read", "write", "delete", "admin"];

fn base62_u32(mut n: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn checksum(body: &str) -> String {
    base62_u32(crc32fast::hash(body.as_bytes()))
}

/// Why a presented key was refused before any lookup; `Display` is the
/// message for the caller and never repeats the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the API key is empty")]
    Empty,
    #[error("the API key has surrounding whitespace or a trailing newline; send it without them")]
    Whitespace,
    #[error("the API key is wrapped in quotes; send it without them")]
    Quoted,
    #[error("the API key does not start with sk_test_, sk_live_, rk_test_ or rk_live_")]
    Prefix,
    #[error("the API key has the wrong length or characters; it may be truncated")]
    Shape,
    #[error("the API key's checksum does not match: a character was changed or mistyped")]
    Checksum,
}

/// A key that passed the offline checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub key_type: KeyType,
    pub mode: Mode,
}

/// Checks a presented key without touching the database.
pub fn parse(raw: &str) -> Result<ParsedKey, Malformed> {
    if raw.is_empty() {
        return Err(Malformed::Empty);
    }
    if raw.trim() != raw {
        return Err(Malformed::Whitespace);
    }
    if raw.starts_with(['"', '\'']) || raw.ends_with(['"', '\'']) {
        return Err(Malformed::Quoted);
    }
    let (key_type, mode, rest) = [
        (KeyType::Secret, Mode::Test, "sk_test_"),
        (KeyType::Secret, Mode::Live, "sk_live_"),
        (KeyType::Restricted, Mode::Test, "rk_test_"),
        (KeyType::Restricted, Mode::Live, "rk_live_"),
    ]
    .into_iter()
    .find_map(|(t, m, p)| raw.strip_prefix(p).map(|rest| (t, m, rest)))
    .ok_or(Malformed::Prefix)?;
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::Shape);
    }
    let (body, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    if checksum(body) != sum {
        return Err(Malformed::Checksum);
    }
    Ok(ParsedKey { key_type, mode })
}

/// A publishable SDK token: `sdk_test_`/`sdk_live_`, with the same random
/// part and checksum as keys.
pub fn generate_sdk_token(mode: Mode) -> String {
    let body = format!("sdk_{}_{}", mode.as_str(), random_base62(RANDOM_LEN));
    format!("{body}{}", checksum(&body))
}

/// The mode of a well-formed SDK token.
pub fn parse_sdk_token(raw: &str) -> Option<Mode> {
    let (mode, rest) = match raw.strip_prefix("sdk_test_") {
        Some(rest) => (Mode::Test, rest),
        None => (Mode::Live, raw.strip_prefix("sdk_live_")?),
    };
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (body, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    (checksum(body) == sum).then_some(mode)
}

/// A new raw key of `key_type` and `mode`.
fn generate(key_type: KeyType, mode: Mode) -> (String, String) {
    let prefix = format!("{}_{}_", key_type.letters(), mode.as_str());
    let body = format!("{prefix}{}", random_base62(RANDOM_LEN));
    let key = format!("{body}{}", checksum(&body));
    (prefix, key)
}

/// HMAC-SHA256 of a key under a key derived from the master key, in hex.
pub fn fingerprint(master: &MasterKey, key: &str) -> String {
    crate::crypto::hex(&master.mac("tessera api key v1", key.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid API key request: {0}")]
    Invalid(String),
    #[error("no API key with this id")]
    Unknown,
    #[error("the API key is revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An allowed endpoint: a method (or `*`) and a path pattern whose `*`
/// matches one segment, or anything when it ends the pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EndpointRule {
    pub method: String,
    pub path: String,
}

impl EndpointRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (method, path) =
            text.trim().split_once(' ').ok_or_else(|| format!("endpoint {text:?}: expected \"METHOD /path\""))?;
        let method = method.to_ascii_uppercase();
        let ok_method = method == "*" || ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str());
        let path = path.trim();
        if !ok_method || !path.starts_with('/') || path.len() > 200 || path.chars().any(char::is_whitespace) {
            return Err(format!("endpoint {text:?}: expected \"METHOD /path\", e.g. \"GET /v1/users/*\""));
        }
        Ok(Self { method, path: path.to_string() })
    }

    pub fn allows(&self, method: &str, path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let pattern: Vec<&str> = self.path.trim_end_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        for (i, part) in pattern.iter().enumerate() {
            if *part == "*" && i == pattern.len() - 1 {
                return actual.len() > i;
            }
            match actual.get(i) {
                Some(a) if *part == "*" || part == a => {}
                _ => return false,
            }
        }
        actual.len() == pattern.len()
    }
}

/// Where a key may be used from and on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Restrictions {
    pub ips: Vec<String>,
    pub referrers: Vec<String>,
    pub endpoints: Vec<EndpointRule>,
}

fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}

impl Restrictions {
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        self.ips.is_empty()
            || ip.is_some_and(|ip| self.ips.iter().filter_map(|n| parse_net(n).ok()).any(|n| n.contains(&ip)))
    }

    /// `referrer` is an origin or URL; a rule is an origin, or
    /// `*.example.com` for any subdomain.
    pub fn allows_referrer(&self, referrer: Option<&str>) -> bool {
        if self.referrers.is_empty() {
            return true;
        }
        let Some(referrer) = referrer else { return false };
        let host = referrer.split("://").nth(1).unwrap_or(referrer).split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h).to_ascii_lowercase();
        self.referrers.iter().any(|rule| {
            let rule = rule.to_ascii_lowercase();
            let rule_host = rule.split("://").nth(1).unwrap_or(&rule).trim_end_matches('/');
            match rule_host.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => rule_host.rsplit_once(':').map_or(rule_host, |(h, _)| h) == host,
            }
        })
    }

    pub fn allows_endpoint(&self, method: &str, path: &str) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|e| e.allows(method, path))
    }
}

/// A key as its owner sees it: never the key itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub client_id: Option<String>,
    pub prefix: String,
    pub last4: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub permissions: Vec<String>,
    pub restrictions: Restrictions,
    pub rate_limit: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rotated_from: Option<String>,
}

impl ApiKey {
    /// The display form, `sk_live_…a1b2`.
    pub fn display(&self) -> String {
        format!("{}…{}", self.prefix, self.last4)
    }

    fn from_row(row: ApiKeyRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("api key {}: unreadable {what}", row.id));
        let list = |text: &str, what: &str| serde_json::from_str::<Vec<String>>(text).map_err(|_| corrupt(what));
        let endpoints = list(&row.allowed_endpoints, "endpoints")?
            .iter()
            .map(|e| EndpointRule::parse(e).map_err(|_| corrupt("endpoint")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            restrictions: Restrictions {
                ips: list(&row.allowed_ips, "ips")?,
                referrers: list(&row.allowed_referrers, "referrers")?,
                endpoints,
            },
            mode: if row.mode == "live" { Mode::Live } else { Mode::Test },
            key_type: if row.key_type == "restricted" { KeyType::Restricted } else { KeyType::Secret },
            permissions: row.permissions.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect(),
            id: row.id,
            name: row.name,
            owner_id: row.owner_id,
            client_id: row.client_id,
            prefix: row.prefix,
            last4: row.last4,
            rate_limit: row.rate_limit,
            created_at: row.created_at.and_utc(),
            last_used: row.last_used_at.map(|t| t.and_utc()),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
            rotated_from: row.rotated_from,
        })
    }
}

/// What creating a key asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub owner_id: String,
    pub client_id: Option<String>,
    pub name: String,
    pub key_type: KeyType,
    pub mode: Mode,
    /// Empty: all four for a secret key; a restricted key must name its own.
    pub permissions: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub allowed_referrers: Vec<String>,
    pub allowed_endpoints: Vec<String>,
    pub expires_in: Option<u64>,
    pub rate_limit: Option<u32>,
}

fn invalid(m: impl Into<String>) -> KeyError {
    KeyError::Invalid(m.into())
}

impl NewKey {
    fn validate(&self) -> Result<(Vec<String>, Restrictions), KeyError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(invalid(format!("the name must be 1 to {MAX_NAME_LEN} printable characters")));
        }
        let mut permissions: Vec<String> = Vec::new();
        for p in self.permissions.iter().flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
            if !PERMISSIONS.contains(&p) {
                return Err(invalid(format!("unknown permission {p:?}; use read, write, delete or admin")));
            }
            if !permissions.iter().any(|x| x == p) {
                permissions.push(p.to_string());
            }
        }
        if permissions.is_empty() {
            if self.key_type == KeyType::Restricted {
                return Err(invalid("a restricted key must name its permissions"));
            }
            permissions = PERMISSIONS.iter().map(|p| p.to_string()).collect();
        }
        permissions.sort_by_key(|p| PERMISSIONS.iter().position(|x| x == p));
        let too_many = |what: &str| invalid(format!("more than {MAX_RESTRICTIONS} {what}"));
        if self.allowed_ips.len() > MAX_RESTRICTIONS {
            return Err(too_many("IP rules"));
        }
        if self.allowed_referrers.len() > MAX_RESTRICTIONS {
            return Err(too_many("referrers"));
        }
        if self.allowed_endpoints.len() > MAX_RESTRICTIONS {
            return Err(too_many("endpoints"));
        }
        let ips = self
            .allowed_ips
            .iter()
            .map(|ip| parse_net(ip).map(|n| n.to_string()))
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        for r in &self.allowed_referrers {
            if r.len() > 253 || r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(format!("referrer {r:?} is not an origin or *.domain")));
            }
        }
        let endpoints =
            self.allowed_endpoints.iter().map(|e| EndpointRule::parse(e)).collect::<Result<_, _>>().map_err(invalid)?;
        if self.expires_in.is_some_and(|s| s == 0 || s > 10 * 365 * 24 * 3600) {
            return Err(invalid("expires_in must be between 1 second and 10 years"));
        }
        if self.rate_limit.is_some_and(|r| r == 0) {
            return Err(invalid("a rate limit must be at least 1 request per second"));
        }
        Ok((permissions, Restrictions { ips, referrers: self.allowed_referrers.clone(), endpoints }))
    }
}

fn to_json(list: &[impl Serialize]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn row_for(
    master: &MasterKey,
    new: &NewKey,
    permissions: &[String],
    restrictions: &Restrictions,
    now: DateTime<Utc>,
) -> (ApiKeyRow, Secret) {
    let (prefix, key) = generate(new.key_type, new.mode);
    let endpoints: Vec<String> = restrictions.endpoints.iter().map(|e| format!("{} {}", e.method, e.path)).collect();
    let row = ApiKeyRow {
        id: public_id("key"),
        owner_id: new.owner_id.clone(),
        client_id: new.client_id.clone(),
        name: new.name.trim().to_string(),
        key_type: new.key_type.as_str().into(),
        mode: new.mode.as_str().into(),
        prefix,
        last4: key[key.len() - 4..].to_string(),
        fingerprint: fingerprint(master, &key),
        permissions: permissions.join(" "),
        allowed_ips: to_json(&restrictions.ips),
        allowed_referrers: to_json(&restrictions.referrers),
        allowed_endpoints: to_json(&endpoints),
        rate_limit: new.rate_limit.map(i64::from),
        created_at: now.naive_utc(),
        expires_at: new.expires_in.map(|s| (now + chrono::Duration::seconds(s as i64)).naive_utc()),
        last_used_at: None,
        revoked_at: None,
        rotated_from: None,
    };
    (row, Secret::new(key))
}

/// Creates a key; the raw key is returned here and never again.
pub fn create(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    new: NewKey,
    actor: Actor,
) -> Result<(ApiKey, Secret), KeyError> {
    let (permissions, restrictions) = new.validate()?;
    let (row, key) = row_for(master, &new, &permissions, &restrictions, clock.now());
    api_keys::insert(conn, &row)?;
    let mut event = AuditEvent::new(actor, "api_key.created", Some(&row.id));
    event.details = serde_json::json!({ "mode": row.mode, "type": row.key_type, "owner": row.owner_id });
    audit::record(conn, clock, event)?;
    Ok((ApiKey::from_row(row)?, key))
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<ApiKey>, KeyError> {
    Ok(api_keys::find(conn, id)?.map(ApiKey::from_row).transpose()?)
}

pub fn list(conn: &mut DbConn, owner_id: Option<&str>) -> Result<Vec<ApiKey>, KeyError> {
    Ok(api_keys::list(conn, owner_id)?.into_iter().map(ApiKey::from_row).collect::<Result<_, _>>()?)
}

pub fn revoke(conn: &mut DbConn, clock: &dyn Clock, id: &str, actor: Actor) -> Result<ApiKey, KeyError> {
    api_keys::find(conn, id)?.ok_or(KeyError::Unknown)?;
    if !api_keys::revoke(conn, id, clock.now().naive_utc())? {
        return Err(KeyError::Revoked);
    }
    audit::record(conn, clock, AuditEvent::new(actor, "api_key.revoked", Some(id)))?;
    find(conn, id)?.ok_or(KeyError::Unknown)
}

/// A successor with the same settings; the old key works for
/// `expire_old_in` more seconds (0 ends it now).
pub fn rotate(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    id: &str,
    expire_old_in: u64,
    actor: Actor,
) -> Result<(ApiKey, Secret), KeyError> {
    if expire_old_in > MAX_ROTATION_OVERLAP_SECS {
        return Err(invalid(format!("expire_old_in must be 0 to {MAX_ROTATION_OVERLAP_SECS} seconds")));
    }
    let old_row = api_keys::find(conn, id)?.ok_or(KeyError::Unknown)?;
    if old_row.revoked_at.is_some() {
        return Err(KeyError::Revoked);
    }
    let old = ApiKey::from_row(old_row.clone())?;
    let now = clock.now();
    let new = NewKey {
        owner_id: old.owner_id.clone(),
        client_id: old.client_id.clone(),
        name: old.name.clone(),
        key_type: old.key_type,
        mode: old.mode,
        permissions: old.permissions.clone(),
        allowed_ips: vec![],
        allowed_referrers: vec![],
        allowed_endpoints: vec![],
        expires_in: None,
        rate_limit: old.rate_limit.and_then(|r| u32::try_from(r).ok()),
    };
    let (mut row, key) = row_for(master, &new, &old.permissions, &old.restrictions, now);
    row.expires_at = old_row.expires_at.filter(|e| *e > now.naive_utc());
    row.rotated_from = Some(old.id.clone());
    let old_end = (now + chrono::Duration::seconds(expire_old_in as i64)).naive_utc();
    api_keys::rotate(conn, &old_row, &row, old_end)?;
    let mut event = AuditEvent::new(actor, "api_key.rotated", Some(&old.id));
    event.details = serde_json::json!({ "new_key": row.id, "old_expires_in": expire_old_in });
    audit::record(conn, clock, event)?;
    Ok((ApiKey::from_row(row)?, key))
}

/// Remembers which keys were used, so `last_used` can be written in
/// batches off the request path, at most once a minute per key.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    inner: std::sync::Mutex<Usage>,
}

/// When each key was last noted, and the keys not yet written.
type Usage = (std::collections::HashMap<String, DateTime<Utc>>, Vec<String>);

impl UsageRecorder {
    /// Notes a use of key `id` at `now`; cheap, in memory.
    pub fn note(&self, id: &str, now: DateTime<Utc>) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (last, pending) = &mut *guard;
        if last.get(id).is_none_or(|t| now - *t >= chrono::Duration::seconds(60)) {
            if last.len() > 100_000 {
                last.clear();
            }
            last.insert(id.to_string(), now);
            pending.push(id.to_string());
        }
    }

    /// The keys used since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// Writes what was noted; called by a background task.
    pub fn flush(&self, conn: &mut DbConn, clock: &dyn Clock) -> Result<usize, StoreError> {
        let ids = self.take();
        if !ids.is_empty() {
            api_keys::touch(conn, &ids, clock.now().naive_utc())?;
        }
        Ok(ids.len())
    }
}

/// Why a key is refused, as `/v1/keys/verify` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Refusal {
    NotFound,
    Revoked,
    Expired,
    WrongEnvironment,
}

/// The key a raw value names, if it is usable in `environment` now.
/// Checks: format and checksum (offline), then lookup by fingerprint,
/// revocation, expiry and mode.
pub fn authenticate(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    environment: Environment,
    raw: &str,
) -> Result<Result<ApiKey, Refusal>, StoreError> {
    let Ok(parsed) = parse(raw) else {
        return Ok(Err(Refusal::NotFound));
    };
    let Some(row) = api_keys::find_by_fingerprint(conn, &fingerprint(master, raw))? else {
        return Ok(Err(Refusal::NotFound));
    };
    let key = ApiKey::from_row(row)?;
    if key.revoked_at.is_some() {
        return Ok(Err(Refusal::Revoked));
    }
    if key.expires_at.is_some_and(|e| e <= clock.now()) {
        return Ok(Err(Refusal::Expired));
    }
    if parsed.mode != Mode::of(environment) {
        return Ok(Err(Refusal::WrongEnvironment));
    }
    Ok(Ok(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_mangling_is_caught_offline() {
        for (t, m, p) in [
            (KeyType::Secret, Mode::Test, "sk_test_"),
            (KeyType::Secret, Mode::Live, "sk_live_"),
            (KeyType::Restricted, Mode::Test, "rk_test_"),
            (KeyType::Restricted, Mode::Live, "rk_live_"),
        ] {
            let (prefix, key) = generate(t, m);
            assert_eq!(prefix, p);
            assert_eq!(key.len(), p.len() + RANDOM_LEN + CHECKSUM_LEN);
            assert_eq!(parse(&key), Ok(ParsedKey { key_type: t, mode: m }));
        }
        let (_, key) = generate(KeyType::Secret, Mode::Live);
        // Every single-character change in the random part is caught.
        let bytes = key.as_bytes();
        for i in 8..8 + RANDOM_LEN {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
            assert_eq!(parse(std::str::from_utf8(&changed).unwrap()), Err(Malformed::Checksum), "position {i}");
        }
        assert_eq!(parse(&key.replacen("live", "test", 1)), Err(Malformed::Checksum));
        assert_eq!(parse(&format!("{key}\n")), Err(Malformed::Whitespace));
        assert_eq!(parse(&format!(" {key}")), Err(Malformed::Whitespace));
        assert_eq!(parse(&format!("\"{key}\"")), Err(Malformed::Quoted));
        assert_eq!(parse("pk_live_abc"), Err(Malformed::Prefix));
        assert_eq!(parse(&key[..key.len() - 1]), Err(Malformed::Shape));
        assert_eq!(parse(""), Err(Malformed::Empty));
        assert!(!Malformed::Checksum.to_string().contains(&key));
    }

    #[test]
    fn restrictions_match_ips_referrers_and_endpoints() {
        let r = Restrictions {
            ips: vec!["10.0.0.0/8".into(), "2001:db8::/32".into(), "192.0.2.7/32".into()],
            referrers: vec!["https://app.example.com".into(), "*.example.org".into()],
            endpoints: vec![
                EndpointRule::parse("GET /v1/users/*").unwrap(),
                EndpointRule::parse("* /v1/ping").unwrap(),
            ],
        };
        assert!(r.allows_ip(Some("10.1.2.3".parse().unwrap())));
        assert!(r.allows_ip(Some("2001:db8::1".parse().unwrap())));
        assert!(r.allows_ip(Some("192.0.2.7".parse().unwrap())));
        assert!(!r.allows_ip(Some("192.0.2.8".parse().unwrap())));
        assert!(!r.allows_ip(None));
        assert!(r.allows_referrer(Some("https://app.example.com/page")));
        assert!(r.allows_referrer(Some("https://a.b.example.org")));
        assert!(!r.allows_referrer(Some("https://example.org")));
        assert!(!r.allows_referrer(Some("https://app.example.com.evil.net")));
        assert!(!r.allows_referrer(None));
        assert!(r.allows_endpoint("GET", "/v1/users/usr_1"));
        assert!(!r.allows_endpoint("DELETE", "/v1/users/usr_1"));
        assert!(!r.allows_endpoint("GET", "/v1/users"));
        assert!(!r.allows_endpoint("GET", "/v1/clients/x"));
        assert!(r.allows_endpoint("POST", "/v1/ping"));
        assert!(Restrictions::default().allows_ip(None));
        assert!(EndpointRule::parse("FETCH /x").is_err());
        assert!(EndpointRule::parse("GET x").is_err());
    }
}
