//! What an admin does from the dashboard that the operator does at the
//! CLI: reset a person's password, register resource servers and rotate
//! their secrets, list and rotate signing keys. Each function checks that
//! the caller is an admin (effective `admin`), then calls the same service
//! the CLI calls.

use crate::accounts::{self, AccountError, Password, User};
use crate::audit::{self, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{MasterKey, Secret, random_base62};
use crate::domain::page::{Page, PageError, PageOf};
use crate::domain::principal::{AuthError, Principal};
use crate::jwt::keys::{self, RotationPolicy, SigningAlg, SigningKeyError, SigningKeyInfo};
use crate::oauth::registration::{self, InitialAccessToken, InitialTokenError};
use crate::oauth::resources::{self, NewResource, ResourceError, ResourceServer};
use crate::store::{DbConn, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Denied(#[from] AuthError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    People(#[from] crate::people::PeopleError),
    #[error(transparent)]
    Registration(#[from] InitialTokenError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        Self::Account(e.into())
    }
}

/// Characters of a generated password: 24 base62 characters, ≈143 bits.
pub const RESET_PASSWORD_LEN: usize = 24;

/// Gives user `id` a new random password, returned once; their sessions
/// end (a reset means the old password may be known to someone else).
pub fn reset_password(
    conn: &mut DbConn,
    clock: &dyn Clock,
    hashes: &crate::sessions::HashGate,
    principal: &Principal,
    id: &str,
) -> Result<(User, Secret), AdminError> {
    let principal = principal.first_party("reset passwords")?;
    principal.require_admin("reset passwords")?;
    let user = accounts::find_user(conn, id)?.ok_or(AccountError::UnknownUser)?;
    let raw = random_base62(RESET_PASSWORD_LEN);
    let password = Password::parse(&raw)?;
    let _permit = hashes.try_acquire().ok_or(crate::people::PeopleError::Busy)?;
    let user = accounts::change_password(conn, clock, &user.id, &password, None, principal.actor())?;
    Ok((user, Secret::new(raw)))
}

pub fn list_resources(conn: &mut DbConn, principal: &Principal) -> Result<Vec<ResourceServer>, AdminError> {
    principal.require_admin("see resource servers")?;
    Ok(resources::list(conn)?)
}

/// Registers a resource server; its secret is returned once.
pub fn create_resource(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    new: NewResource<'_>,
) -> Result<(ResourceServer, Secret), AdminError> {
    let principal = principal.first_party("register resource servers")?;
    principal.require_admin("register resource servers")?;
    Ok(resources::create(conn, clock, master, new, principal.actor())?)
}

/// Replaces a resource server's secret at once; the new one is returned once.
pub fn rotate_resource_secret(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    id: &str,
) -> Result<(ResourceServer, Secret), AdminError> {
    let principal = principal.first_party("rotate resource-server secrets")?;
    principal.require_admin("rotate resource-server secrets")?;
    Ok(resources::rotate_secret(conn, clock, master, id, principal.actor())?)
}

pub fn list_signing_keys(conn: &mut DbConn, principal: &Principal) -> Result<Vec<SigningKeyInfo>, AdminError> {
    principal.require_admin("see signing keys")?;
    Ok(keys::list(conn)?)
}

/// Stages a new signing key of `alg` (published now, signing after the
/// pre-publication delay), as `tessera signing-key rotate` does.
pub fn rotate_signing_key(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    policy: &RotationPolicy,
    principal: &Principal,
    alg: SigningAlg,
) -> Result<SigningKeyInfo, AdminError> {
    let principal = principal.first_party("rotate signing keys")?;
    principal.require_admin("rotate signing keys")?;
    let key = keys::rotate(conn, clock, master, policy, alg, false)?;
    let mut event = AuditEvent::new(principal.actor(), "signing_key.rotated", Some(&key.kid));
    event.details = serde_json::json!({ "alg": key.algorithm });
    audit::record(conn, clock, event)?;
    Ok(key)
}

/// One page of everyone (admins).
pub fn list_users(conn: &mut DbConn, principal: &Principal, page: &Page) -> Result<PageOf<User>, AdminError> {
    principal.require_admin("list users")?;
    Ok(crate::people::list(conn, principal, page)?)
}

/// One page of every client (admins).
pub fn list_clients(
    conn: &mut DbConn,
    principal: &Principal,
    page: &Page,
) -> Result<PageOf<crate::oauth::clients::Client>, AdminError> {
    principal.require_admin("list every client")?;
    crate::oauth::clients::list_visible(conn, principal, page).map_err(|e| match e {
        crate::oauth::clients::ClientError::Store(s) => s.into(),
        crate::oauth::clients::ClientError::Page(p) => AdminError::Page(p),
        other => AdminError::Account(AccountError::Store(StoreError::Internal(other.to_string()))),
    })
}

/// Every initial access token for dynamic client registration.
pub fn list_initial_tokens(conn: &mut DbConn, principal: &Principal) -> Result<Vec<InitialAccessToken>, AdminError> {
    principal.require_admin("see initial access tokens")?;
    Ok(registration::list_initial_tokens(conn)?)
}

/// Makes an initial access token; the token is returned once.
pub fn create_initial_token(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    expires_in: Option<u64>,
    max_uses: Option<i64>,
) -> Result<(InitialAccessToken, Secret), AdminError> {
    let principal = principal.first_party("make initial access tokens")?;
    principal.require_admin("make initial access tokens")?;
    Ok(registration::create_initial_token(conn, clock, expires_in, max_uses, principal.actor())?)
}

pub fn revoke_initial_token(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    id: &str,
) -> Result<(), AdminError> {
    let principal = principal.first_party("revoke initial access tokens")?;
    principal.require_admin("revoke initial access tokens")?;
    Ok(registration::revoke_initial_token(conn, clock, id, principal.actor())?)
}
