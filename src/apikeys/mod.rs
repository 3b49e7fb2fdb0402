//! API keys: `sk_test_`, `sk_live_`, `rk_test_`, `rk_live_` — created
//! (shown once), listed, revoked, rotated and verified, with the rules of
//! who may do which to whom. `/v1`, the dashboard and the CLI call these
//! functions; none of them re-implements a rule.
//!
//! The rules:
//! - a caller sees and manages its own keys; an admin anyone's; any other
//!   key reads as unknown, so existence never leaks;
//! - a key never holds a permission its creator's credential lacks, nor one
//!   its owner's role lacks; at use, its permissions are intersected with
//!   what the owner may do then (`permissions::effective`);
//! - a key may be bound only to a client its owner owns, unless an admin
//!   binds it;
//! - rotation needs every permission of the rotated key; an expired or
//!   revoked key cannot be rotated; the successor never outlives the
//!   original unless its expiry is set anew.

mod format;
pub mod usage;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use self::format::{
    CHECKSUM_LEN, Malformed, ParsedKey, RANDOM_LEN, fingerprint, generate, generate_sdk_token, parse, parse_sdk_token,
};
pub use self::usage::UsageRecorder;
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{MasterKey, Secret, public_id};
use crate::domain::Environment;
use crate::domain::page::{Page, PageError, PageOf};
use crate::domain::permissions::{Permission, Permissions, UnknownPermission};
use crate::domain::principal::{FirstParty, KeyBounds, Principal};
pub use crate::domain::{EndpointRule, KeyType, Mode, Restrictions};
use crate::oauth::clients;
use crate::store::api_keys::{self, ApiKeyRow};
use crate::store::cache::Caches;
use crate::store::{DbConn, StoreError, users};

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_RESTRICTIONS: usize = 50;
pub const MAX_ROTATION_OVERLAP_SECS: u64 = 30 * 24 * 3600;
pub const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// A request field that is not acceptable (400), named as the API
    /// names it (`name`, `permissions`, `allowed_ips`, `expires_in`, …).
    #[error("invalid API key request: {message}")]
    Invalid { field: &'static str, message: String },
    /// Unknown, or not the caller's to see.
    #[error("no API key with this id")]
    Unknown,
    #[error("the API key is revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    /// A key rotating itself without its client's live secret (401).
    #[error("X-CLIENT-SECRET is missing or is not the secret of the key's client")]
    InvalidClientSecret,
    /// The caller's credential may not do this (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error(transparent)]
    Page(#[from] crate::domain::page::PageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UnknownPermission> for ApiKeyError {
    fn from(e: UnknownPermission) -> Self {
        invalid("permissions", e.to_string())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiKeyError {
    ApiKeyError::Invalid { field, message: message.into() }
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiKeyError {
    ApiKeyError::Forbidden { code, message: message.into() }
}

fn deny(e: crate::domain::principal::AuthError) -> ApiKeyError {
    match e {
        crate::domain::principal::AuthError::Forbidden { code, message } => forbidden(code, message),
        crate::domain::principal::AuthError::Unauthenticated { code, message } => forbidden(code, message),
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
    /// As granted; at use they are cut to what the owner may do then.
    pub permissions: Permissions,
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

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
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
            mode: row.mode,
            key_type: row.key_type,
            permissions: Permissions::from_stored(&row.permissions),
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

/// What creating a key asks for, as received (the CLI, `/v1`, the
/// dashboard); `validate` parses it once into typed values.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub owner_id: String,
    pub client_id: Option<String>,
    pub name: String,
    pub key_type: KeyType,
    pub mode: Mode,
    /// Each exactly `read`, `write`, `delete` or `admin`. Empty: a secret
    /// key gets what its creator may grant; a restricted key must name its
    /// own.
    pub permissions: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub allowed_referrers: Vec<String>,
    pub allowed_endpoints: Vec<String>,
    pub expires_in: Option<u64>,
    pub rate_limit: Option<u32>,
}

/// A request that passed `validate`.
struct ValidKey {
    /// `None`: the default (what the creator may grant).
    permissions: Option<Permissions>,
    restrictions: Restrictions,
}

fn check_expires_in(secs: Option<u64>) -> Result<(), ApiKeyError> {
    if secs.is_some_and(|s| s == 0 || s > MAX_EXPIRES_IN_SECS) {
        return Err(invalid("expires_in", "expires_in must be between 1 second and 10 years"));
    }
    Ok(())
}

impl NewKey {
    fn validate(&self) -> Result<ValidKey, ApiKeyError> {
        crate::names::check(&self.name, MAX_NAME_LEN).map_err(|e| invalid("name", format!("the name: {e}")))?;
        let permissions = Permissions::parse_list(&self.permissions)?;
        let permissions = if permissions.is_empty() {
            if self.key_type == KeyType::Restricted {
                return Err(invalid("permissions", "a restricted key must name its permissions"));
            }
            None
        } else {
            Some(permissions)
        };
        let too_many = |field, what: &str| invalid(field, format!("more than {MAX_RESTRICTIONS} {what}"));
        if self.allowed_ips.len() > MAX_RESTRICTIONS {
            return Err(too_many("allowed_ips", "IP rules"));
        }
        if self.allowed_referrers.len() > MAX_RESTRICTIONS {
            return Err(too_many("allowed_referrers", "referrers"));
        }
        if self.allowed_endpoints.len() > MAX_RESTRICTIONS {
            return Err(too_many("allowed_endpoints", "endpoints"));
        }
        let restrictions = Restrictions::parse(&self.allowed_ips, &self.allowed_referrers, &self.allowed_endpoints)
            .map_err(|bad| invalid(bad.field, bad.message))?;
        check_expires_in(self.expires_in)?;
        if self.rate_limit.is_some_and(|r| r == 0) {
            return Err(invalid("rate_limit", "a rate limit must be at least 1 request per second"));
        }
        Ok(ValidKey { permissions, restrictions })
    }
}

fn to_json(list: &[impl Serialize]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// A new row and its raw key.
fn row_for(
    master: &MasterKey,
    new: &NewKey,
    permissions: Permissions,
    restrictions: &Restrictions,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (ApiKeyRow, Secret) {
    let (prefix, key) = format::generate(new.key_type, new.mode);
    let endpoints: Vec<String> = restrictions.endpoints.iter().map(|e| format!("{} {}", e.method, e.path)).collect();
    let row = ApiKeyRow {
        id: public_id("key"),
        owner_id: new.owner_id.clone(),
        client_id: new.client_id.clone(),
        name: new.name.trim().to_string(),
        key_type: new.key_type,
        mode: new.mode,
        prefix,
        last4: key[key.len() - 4..].to_string(),
        fingerprint: fingerprint(master, &key),
        permissions: permissions.to_string(),
        allowed_ips: to_json(&restrictions.ips),
        allowed_referrers: to_json(&restrictions.referrers),
        allowed_endpoints: to_json(&endpoints),
        rate_limit: new.rate_limit.map(i64::from),
        created_at: now.naive_utc(),
        expires_at: expires_at.map(|e| e.naive_utc()),
        last_used_at: None,
        revoked_at: None,
        rotated_from: None,
    };
    (row, Secret::new(key))
}

/// Who is creating or rotating a key: a `/v1` or dashboard caller, whose
/// own permissions bound what it may grant, or the operator at the CLI.
#[derive(Clone)]
enum Granter<'a> {
    /// A first-party caller: a delegated one never makes or copies a key.
    Principal(FirstParty<'a>),
    /// The operator at the CLI, recorded as this actor.
    Operator(Actor),
}

impl Granter<'_> {
    fn actor(&self) -> Actor {
        match self {
            Self::Principal(p) => p.actor(),
            Self::Operator(actor) => actor.clone(),
        }
    }

    fn is_admin(&self) -> bool {
        match self {
            Self::Principal(p) => p.is_admin(),
            Self::Operator(_) => true,
        }
    }

    /// What this granter may put on a key: `admin` stands for every
    /// permission (an effective `admin` means an admin user).
    fn may_grant(&self) -> Permissions {
        match self {
            Self::Principal(p) if !p.is_admin() => p.permissions,
            _ => Permissions::ALL,
        }
    }

    /// The key behind a `/v1` caller, if it is one: what a key it makes
    /// must stay within.
    fn key(&self) -> Option<&KeyBounds> {
        match self {
            Self::Principal(p) => p.key.as_deref(),
            Self::Operator(_) => None,
        }
    }

    /// A key made or copied by this granter stays within the granter's own
    /// key: its restrictions, expiry and rate limit (its permissions are
    /// `check_grant`'s).
    fn check_bounds(
        &self,
        restrictions: &Restrictions,
        expires_at: Option<DateTime<Utc>>,
        rate_limit: Option<i64>,
    ) -> Result<(), ApiKeyError> {
        let Some(own) = self.key() else { return Ok(()) };
        let beyond =
            |what: &str| forbidden("insufficient_scope", format!("A key cannot make a key {what} than itself"));
        if !restrictions.within(&own.restrictions) {
            return Err(beyond("with fewer IP, referrer or endpoint restrictions"));
        }
        if let Some(own_end) = own.expires_at
            && expires_at.is_none_or(|e| e > own_end)
        {
            return Err(beyond("that outlives it"));
        }
        if let Some(own_limit) = own.rate_limit
            && rate_limit.is_none_or(|r| r > own_limit)
        {
            return Err(beyond("with a higher rate limit"));
        }
        Ok(())
    }

    fn check_grant(&self, wanted: Permissions) -> Result<(), ApiKeyError> {
        match wanted.missing_from(self.may_grant()).iter().next() {
            None => Ok(()),
            Some(p) => Err(forbidden(
                "insufficient_scope",
                format!("You cannot grant the {p} permission, which your credential lacks"),
            )),
        }
    }
}

/// Creates a key for the operator (CLI); the raw key is returned here and
/// never again.
pub fn create(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    new: NewKey,
    actor: Actor,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    create_with(conn, clock, master, Granter::Operator(actor), new)
}

/// Creates a key for a `/v1` or dashboard caller.
pub fn create_as(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    new: NewKey,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    let principal = principal.first_party("create API keys").map_err(deny)?;
    create_with(conn, clock, master, Granter::Principal(principal), new)
}

fn create_with(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    granter: Granter<'_>,
    new: NewKey,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    if let Granter::Principal(p) = granter
        && new.owner_id != p.user.id
        && !p.is_admin()
    {
        return Err(forbidden("forbidden", "Only an admin may create keys for another user"));
    }
    let valid = new.validate()?;
    let owner = users::find_by_id(conn, &new.owner_id)?.ok_or_else(|| invalid("owner_id", "no such owner"))?;
    if owner.disabled {
        return Err(invalid("owner_id", "the owner is disabled"));
    }
    let owner_may = Permissions::of_role(owner.role);
    let permissions = match valid.permissions {
        Some(p) => p,
        None => granter.may_grant().intersection(owner_may),
    };
    granter.check_grant(permissions)?;
    if let Some(p) = permissions.missing_from(owner_may).iter().next() {
        return Err(invalid("permissions", format!("the owner's role cannot hold the {p} permission")));
    }
    if let Some(id) = &new.client_id {
        check_client_binding(conn, &granter, &new.owner_id, id)?;
    }
    let now = clock.now();
    // What the request leaves open, a key-made key takes from its maker.
    let own = granter.key();
    let restrictions = match own {
        Some(k) => valid.restrictions.inherit(&k.restrictions),
        None => valid.restrictions,
    };
    let expires_at =
        new.expires_in.map(|s| now + chrono::Duration::seconds(s as i64)).or(own.and_then(|k| k.expires_at));
    let mut new = new;
    if new.rate_limit.is_none() {
        new.rate_limit = own.and_then(|k| k.rate_limit).and_then(|r| u32::try_from(r).ok());
    }
    granter.check_bounds(&restrictions, expires_at, new.rate_limit.map(i64::from))?;
    let (row, key) = row_for(master, &new, permissions, &restrictions, expires_at, now);
    api_keys::insert(conn, &row)?;
    let mut event = AuditEvent::new(granter.actor(), "api_key.created", Some(&row.id));
    event.details = serde_json::json!({ "mode": row.mode, "type": row.key_type, "owner": row.owner_id });
    audit::record(conn, clock, event)?;
    Ok((ApiKey::from_row(row)?, key))
}

/// A key may be bound only to a client its owner owns (an admin may bind
/// any); anything else reads as an unknown client, so nothing leaks.
fn check_client_binding(
    conn: &mut DbConn,
    granter: &Granter<'_>,
    owner_id: &str,
    client_id: &str,
) -> Result<(), ApiKeyError> {
    let client = match clients::find(conn, client_id) {
        Ok(c) => c,
        Err(clients::ClientError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(StoreError::Internal(e.to_string()).into()),
    };
    match client {
        Some(c) if c.owner_id.as_deref() == Some(owner_id) || granter.is_admin() => Ok(()),
        _ => Err(invalid("client_id", format!("no client {client_id} owned by the key's owner"))),
    }
}

/// Any key: for the operator.
pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<ApiKey>, ApiKeyError> {
    Ok(api_keys::find(conn, id)?.map(ApiKey::from_row).transpose()?)
}

/// Key `id` if `principal` may see it (its own, or any for an admin).
pub fn find_as(conn: &mut DbConn, principal: &Principal, id: &str) -> Result<ApiKey, ApiKeyError> {
    match find(conn, id)? {
        Some(k) if principal.may_manage(Some(&k.owner_id)) => Ok(k),
        _ => Err(ApiKeyError::Unknown),
    }
}

/// One page of the keys of `owner_id` (default: the caller's own), oldest
/// first; another owner's keys only for an admin. `starting_after` must
/// name a key of that owner, else `PageError::UnknownCursor`.
pub fn list_as(
    conn: &mut DbConn,
    principal: &Principal,
    owner_id: Option<&str>,
    page: &Page,
) -> Result<PageOf<ApiKey>, ApiKeyError> {
    let owner = owner_id.unwrap_or(&principal.user.id);
    if !principal.may_manage(Some(owner)) {
        return Err(forbidden("forbidden", "Only an admin may list another user's keys"));
    }
    // The cursor must be a key of this very list: another owner's key, or
    // none, is the same error, so a cursor never tells whether an id exists.
    let after = match page.starting_after() {
        None => None,
        Some(id) => match api_keys::find(conn, id)? {
            Some(row) if row.owner_id == owner => Some((row.created_at, row.id)),
            _ => return Err(PageError::UnknownCursor.into()),
        },
    };
    let rows = api_keys::page_of_owner(conn, owner, after.as_ref().map(|(at, id)| (*at, id.as_str())), page.fetch())?;
    Ok(PageOf::from_rows(rows, page, ApiKey::from_row)?)
}

/// Every key (of one owner): for the operator.
pub fn list(conn: &mut DbConn, owner_id: Option<&str>) -> Result<Vec<ApiKey>, ApiKeyError> {
    Ok(api_keys::list(conn, owner_id)?.into_iter().map(ApiKey::from_row).collect::<Result<_, _>>()?)
}

/// Revokes key `id`, which `principal` must be able to see; at once.
pub fn revoke_as(conn: &mut DbConn, clock: &dyn Clock, principal: &Principal, id: &str) -> Result<ApiKey, ApiKeyError> {
    let principal = principal.first_party("revoke API keys").map_err(deny)?;
    find_as(conn, &principal, id)?;
    revoke(conn, clock, id, principal.actor())
}

/// Revokes any key: for the operator.
pub fn revoke(conn: &mut DbConn, clock: &dyn Clock, id: &str, actor: Actor) -> Result<ApiKey, ApiKeyError> {
    api_keys::find(conn, id)?.ok_or(ApiKeyError::Unknown)?;
    if !api_keys::revoke(conn, id, clock.now().naive_utc())? {
        return Err(ApiKeyError::Revoked);
    }
    audit::record(conn, clock, AuditEvent::new(actor, "api_key.revoked", Some(id)))?;
    api_keys::find(conn, id)?.map(ApiKey::from_row).transpose()?.ok_or(ApiKeyError::Unknown)
}

/// How a rotation goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rotation {
    /// Seconds the old key keeps working (0 ends it now).
    pub expire_old_in: u64,
    /// A new lifetime for the successor; without it the successor expires
    /// when the original would have.
    pub expires_in: Option<u64>,
}

/// Rotates key `id`, which `principal` must be able to see and whose
/// every permission it must hold.
pub fn rotate_as(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    id: &str,
    rotation: Rotation,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    let principal = principal.first_party("rotate API keys").map_err(deny)?;
    find_as(conn, &principal, id)?;
    rotate_key(conn, clock, master, Granter::Principal(principal), id, rotation)
}

/// Rotates any key for the operator (CLI); the successor keeps the
/// original's expiry.
pub fn rotate(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    id: &str,
    expire_old_in: u64,
    actor: Actor,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    rotate_key(conn, clock, master, Granter::Operator(actor), id, Rotation { expire_old_in, expires_in: None })
}

/// A successor with the same settings (name, mode, type, permissions,
/// restrictions, client binding, rate limit); the old key works for
/// `expire_old_in` more seconds.
fn rotate_key(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    granter: Granter<'_>,
    id: &str,
    rotation: Rotation,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    if rotation.expire_old_in > MAX_ROTATION_OVERLAP_SECS {
        return Err(invalid(
            "expire_old_in",
            format!("expire_old_in must be 0 to {MAX_ROTATION_OVERLAP_SECS} seconds"),
        ));
    }
    check_expires_in(rotation.expires_in)?;
    let old_row = api_keys::find(conn, id)?.ok_or(ApiKeyError::Unknown)?;
    let old = ApiKey::from_row(old_row.clone())?;
    let now = clock.now();
    if old.revoked_at.is_some() {
        return Err(ApiKeyError::Revoked);
    }
    if old.is_expired(now) {
        return Err(ApiKeyError::Expired);
    }
    // Rotating hands out a fresh copy of the key: only to whoever could
    // have created it.
    granter.check_grant(old.permissions)?;
    let new = NewKey {
        owner_id: old.owner_id.clone(),
        client_id: old.client_id.clone(),
        name: old.name.clone(),
        key_type: old.key_type,
        mode: old.mode,
        permissions: vec![],
        allowed_ips: vec![],
        allowed_referrers: vec![],
        allowed_endpoints: vec![],
        expires_in: None,
        rate_limit: old.rate_limit.and_then(|r| u32::try_from(r).ok()),
    };
    let expires_at = match rotation.expires_in {
        Some(secs) => Some(now + chrono::Duration::seconds(secs as i64)),
        None => old.expires_at,
    };
    granter.check_bounds(&old.restrictions, expires_at, old.rate_limit)?;
    let (mut row, key) = row_for(master, &new, old.permissions, &old.restrictions, expires_at, now);
    row.rotated_from = Some(old.id.clone());
    let old_end = (now + chrono::Duration::seconds(rotation.expire_old_in as i64)).naive_utc();
    // The old key never outlives its own expiry.
    let old_end = old_row.expires_at.map_or(old_end, |e| e.min(old_end));
    if !api_keys::rotate(conn, &old_row, &row, old_end, now.naive_utc())? {
        // Revoked (or expired) since it was read.
        return Err(ApiKeyError::Revoked);
    }
    let mut event = AuditEvent::new(granter.actor(), "api_key.rotated", Some(&old.id));
    event.details = serde_json::json!({ "new_key": row.id, "old_expires_in": rotation.expire_old_in });
    audit::record(conn, clock, event)?;
    Ok((ApiKey::from_row(row)?, key))
}

/// Rotates the API key that authenticates this call
/// (`/v1/api/me/api-key/rotate`): it must be bound to a client, and the
/// call must prove the client too, with one of its live secrets.
pub fn rotate_own(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    client_secret: &str,
    rotation: Rotation,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    let principal = principal.first_party("rotate API keys").map_err(deny)?;
    let crate::domain::principal::Credential::ApiKey { id, client_id: Some(client_id) } = &principal.credential else {
        return Err(forbidden(
            "forbidden",
            "Only an API key bound to a client (X-API-KEY with X-CLIENT-ID) can rotate itself",
        ));
    };
    let client_live = matches!(clients::find(conn, client_id), Ok(Some(c)) if !c.disabled);
    if !client_live || client_secret.is_empty() || !clients::secret_matches(conn, clock, client_id, client_secret)? {
        return Err(ApiKeyError::InvalidClientSecret);
    }
    rotate_key(conn, clock, master, Granter::Principal(principal), id, rotation)
}

/// Rotates the newest live key bound to `client_id` (admins).
pub fn rotate_client_key(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    client_id: &str,
    rotation: Rotation,
) -> Result<(ApiKey, Secret), ApiKeyError> {
    let principal = principal.first_party("rotate API keys").map_err(deny)?;
    if !principal.is_admin() {
        return Err(forbidden("forbidden", "Only an admin may rotate a client's key"));
    }
    let now = clock.now();
    let newest = list(conn, None)?
        .into_iter()
        .rev()
        .find(|k| k.client_id.as_deref() == Some(client_id) && k.revoked_at.is_none() && !k.is_expired(now));
    let Some(old) = newest else {
        return Err(ApiKeyError::Unknown);
    };
    rotate_key(conn, clock, master, Granter::Principal(principal), &old.id, rotation)
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

/// Why `authenticate` found no usable key.
#[derive(Debug, thiserror::Error)]
pub enum KeyRefused {
    #[error("the API key is refused: {0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refusal> for KeyRefused {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

/// The key a raw value names, if it is usable in `environment` now.
/// Checks: format and checksum (offline), then lookup by fingerprint,
/// revocation, expiry and mode.
pub fn authenticate(
    conn: &mut DbConn,
    cache: &Caches,
    clock: &dyn Clock,
    master: &MasterKey,
    environment: Environment,
    raw: &str,
) -> Result<ApiKey, KeyRefused> {
    let parsed = parse(raw).map_err(|_| Refusal::NotFound)?;
    // The mode is read from the key itself, before any lookup: a server
    // must not tell whether a key of the other environment exists.
    if parsed.mode != Mode::of(environment) {
        return Err(Refusal::WrongEnvironment.into());
    }
    let row = cache.api_key(conn, &fingerprint(master, raw))?.ok_or(Refusal::NotFound)?;
    let key = ApiKey::from_row(row)?;
    if key.revoked_at.is_some() {
        return Err(Refusal::Revoked.into());
    }
    if key.is_expired(clock.now()) {
        return Err(Refusal::Expired.into());
    }
    Ok(key)
}

/// What a microservice asks `/v1/keys/verify` about a key its own caller
/// presented.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub key: String,
    pub ip: Option<std::net::IpAddr>,
    pub referrer: Option<String>,
    /// The method and path the key is being used for, if any.
    pub endpoint: Option<(String, String)>,
    /// Permissions the use needs (parsed: exactly the four names).
    pub permissions: Permissions,
    /// The `X-CLIENT-ID` the key came with; a key bound to a client is
    /// valid only with it.
    pub client_id: Option<String>,
}

/// The answer of `/v1/keys/verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub valid: bool,
    /// VALID, NOT_FOUND, REVOKED, EXPIRED, WRONG_ENVIRONMENT, FORBIDDEN,
    /// INSUFFICIENT_PERMISSIONS or RATE_LIMITED.
    pub code: &'static str,
    pub key_id: Option<String>,
    pub owner: Option<String>,
    pub mode: Option<Mode>,
    /// The key's effective permissions (cut to what its owner may do now).
    pub permissions: Option<Permissions>,
    pub ratelimit: Option<serde_json::Value>,
    /// For the HTTP layer's rate limiter: the key and its own limit (a
    /// `VALID` verdict counts against it).
    #[serde(skip)]
    pub limit: Option<(String, Option<i64>)>,
}

impl Verdict {
    fn refused(code: &'static str) -> Self {
        Self {
            valid: false,
            code,
            key_id: None,
            owner: None,
            mode: None,
            permissions: None,
            ratelimit: None,
            limit: None,
        }
    }

    /// A valid key turned away by its rate limit.
    pub fn rate_limited(mut self) -> Self {
        self.valid = false;
        self.code = "RATE_LIMITED";
        self
    }
}

/// Verifies a key for `principal`. A key the verifying credential may not
/// see (not its own, unless admin) is `NOT_FOUND`, and so is any refusal
/// for a non-admin: without the key, a refusal would tell that a key
/// exists. A `VALID` verdict still goes through the key's rate limit.
pub fn verify(
    conn: &mut DbConn,
    cache: &Caches,
    clock: &dyn Clock,
    master: &MasterKey,
    environment: Environment,
    principal: &Principal,
    request: &VerifyRequest,
) -> Result<Verdict, ApiKeyError> {
    let refusal_code = |r: Refusal| match r {
        Refusal::NotFound => "NOT_FOUND",
        Refusal::Revoked => "REVOKED",
        Refusal::Expired => "EXPIRED",
        Refusal::WrongEnvironment => "WRONG_ENVIRONMENT",
    };
    let key = match authenticate(conn, cache, clock, master, environment, &request.key) {
        Ok(k) if principal.may_manage(Some(&k.owner_id)) => k,
        Ok(_) => return Ok(Verdict::refused("NOT_FOUND")),
        Err(KeyRefused::Store(e)) => return Err(e.into()),
        Err(KeyRefused::Refused(r)) if principal.is_admin() => return Ok(Verdict::refused(refusal_code(r))),
        Err(KeyRefused::Refused(_)) => return Ok(Verdict::refused("NOT_FOUND")),
    };
    let owner = cache.user(conn, &key.owner_id)?.map(crate::accounts::User::from);
    let Some(owner) = owner.filter(|o| !o.disabled) else {
        // A disabled owner's keys do not work; say so only to an admin.
        return Ok(Verdict::refused(if principal.is_admin() { "REVOKED" } else { "NOT_FOUND" }));
    };
    // A key bound to a client stops with it (disabled, or its owner
    // disabled), as when it is used on `/v1`.
    if let Some(bound) = &key.client_id {
        let usable = match clients::find(conn, bound) {
            Ok(Some(client)) => clients::usable(conn, cache, &client)?,
            Ok(None) => false,
            Err(clients::ClientError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(StoreError::Internal(e.to_string()).into()),
        };
        if !usable {
            return Ok(Verdict::refused(if principal.is_admin() { "REVOKED" } else { "NOT_FOUND" }));
        }
    }
    let effective = crate::domain::permissions::effective(key.permissions, &owner);
    let r = &key.restrictions;
    let client_ok = key.client_id.is_none() || key.client_id == request.client_id;
    let code = if !client_ok || !r.allows_ip(request.ip) || !r.allows_referrer(request.referrer.as_deref()) {
        "FORBIDDEN"
    } else if let Some((m, p)) = &request.endpoint
        && !r.allows_endpoint(m, p)
    {
        "FORBIDDEN"
    } else if !effective.contains(Permission::Admin) && !request.permissions.is_subset(effective) {
        "INSUFFICIENT_PERMISSIONS"
    } else {
        "VALID"
    };
    Ok(Verdict {
        valid: code == "VALID",
        code,
        key_id: Some(key.id.clone()),
        owner: Some(key.owner_id.clone()),
        mode: Some(key.mode),
        permissions: Some(effective),
        ratelimit: Some(serde_json::json!({ "limit": key.rate_limit })),
        limit: Some((key.id.clone(), key.rate_limit)),
    })
}

/// A key's usage as its page shows it: requests per day for the last
/// `usage::DAYS_KEPT` days by outcome, and its last uses, newest first.
#[derive(Debug, Clone)]
pub struct KeyUsage {
    pub days: Vec<usage::DayCount>,
    pub recent: Vec<usage::Use>,
}

/// Key `id` and its usage, if `principal` may see the key (its own, or any
/// for an admin); any other reads as unknown.
pub fn find_with_usage(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    id: &str,
) -> Result<(ApiKey, KeyUsage), ApiKeyError> {
    let key = find_as(conn, principal, id)?;
    let today = clock.now().date_naive();
    let days = usage::daily_counts(conn, &key.id, usage::DAYS_KEPT, today)?;
    let recent = usage::recent_uses(conn, &key.id, usage::RECENT_PER_KEY)?;
    Ok((key, KeyUsage { days, recent }))
}
