//! Resource servers (audiences): the APIs that accept Tessera's tokens.
//!
//! Each has an identifier (the `aud` of its tokens), the scopes it defines
//! and the algorithm its tokens are signed with. Each gets a secret, shown
//! once, to call introspection with; for an HS256 resource server it is
//! also the key that signs and verifies its tokens, so the server keeps a
//! copy sealed under the master key. That secret never appears in the JWKS.
//!
//! The server's own API is the default audience: it is not a row, signs
//! RS256, and allows whatever scopes the client is allowed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::clients::check_absolute_uri;
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{MasterKey, SECRET_LEN_256_BITS, Secret, constant_time_eq, fingerprint, public_id, random_base62};
use crate::domain::scope::Scopes;
use crate::jwt::keys::SigningAlg;
use crate::store::resources::{self, ResourceServerRow};
use crate::store::{DbConn, StoreError};

pub const MAX_IDENTIFIER_LEN: usize = 512;

/// How tokens for a resource server are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TokenAlg {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "HS256")]
    Hs256,
}

impl TokenAlg {
    pub const ALL: [TokenAlg; 4] = [Self::Rs256, Self::Es256, Self::EdDsa, Self::Hs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// The server key type that signs, or `None` for HS256 (the resource
    /// server's own secret).
    pub fn asymmetric(self) -> Option<SigningAlg> {
        match self {
            Self::Rs256 => Some(SigningAlg::Rs256),
            Self::Es256 => Some(SigningAlg::Es256),
            Self::EdDsa => Some(SigningAlg::EdDsa),
            Self::Hs256 => None,
        }
    }
}

impl Serialize for TokenAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A field that is not acceptable: `identifier`, `name` or `scope`.
    #[error("invalid resource server: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("a resource server with this identifier exists")]
    IdentifierTaken,
    #[error("no resource server with this id or identifier")]
    Unknown,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ResourceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::IdentifierTaken,
            StoreError::NotFound => Self::Unknown,
            other => Self::Store(other),
        }
    }
}

/// A resource server as operators see it: no secret.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceServer {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub scope: Scopes,
    pub algorithm: TokenAlg,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&ResourceServerRow> for ResourceServer {
    type Error = StoreError;

    fn try_from(row: &ResourceServerRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id.clone(),
            identifier: row.identifier.clone(),
            name: row.name.clone(),
            scope: Scopes::from_stored(&row.scopes),
            algorithm: TokenAlg::parse(&row.algorithm)
                .ok_or_else(|| StoreError::Internal(format!("resource server {}: unknown algorithm", row.id)))?,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn seal_context(id: &str) -> String {
    format!("resource_secret:{id}")
}

fn new_secret(master: &MasterKey, id: &str, alg: TokenAlg) -> (Secret, String, Option<String>) {
    let secret = Secret::new(random_base62(SECRET_LEN_256_BITS));
    let sealed = (alg == TokenAlg::Hs256).then(|| master.seal(&seal_context(id), secret.expose().as_bytes()));
    let print = fingerprint(secret.expose());
    (secret, print, sealed)
}

/// What registering a resource server asks for.
#[derive(Debug, Clone)]
pub struct NewResource<'a> {
    pub identifier: &'a str,
    pub name: &'a str,
    pub alg: TokenAlg,
    /// Space-separated.
    pub scope: &'a str,
}

/// Registers a resource server; its secret is returned here and never again.
pub fn create(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    new: NewResource<'_>,
    actor: Actor,
) -> Result<(ResourceServer, Secret), ResourceError> {
    let NewResource { identifier, name, alg, scope } = new;
    let invalid = |field, message: String| ResourceError::Invalid { field, message };
    if identifier.len() > MAX_IDENTIFIER_LEN {
        return Err(invalid("identifier", format!("the identifier is longer than {MAX_IDENTIFIER_LEN} characters")));
    }
    check_absolute_uri(identifier)
        .map_err(|why| invalid("identifier", format!("the identifier {identifier:?} {why}")))?;
    let name = crate::names::check(name, 100).map_err(|e| invalid("name", format!("the name: {e}")))?;
    let scope = Scopes::parse(scope).map_err(|e| invalid("scope", format!("scope: {e}")))?;
    let id = public_id("rs");
    let (secret, print, sealed) = new_secret(master, &id, alg);
    let now = clock.now().naive_utc();
    let row = ResourceServerRow {
        id,
        identifier: identifier.to_string(),
        name: name.to_string(),
        scopes: scope.to_string(),
        algorithm: alg.as_str().to_string(),
        secret_fingerprint: print,
        secret_sealed: sealed,
        created_at: now,
        updated_at: now,
    };
    resources::insert(conn, &row)?;
    audit::record(conn, clock, AuditEvent::new(actor, "resource_server.created", Some(&row.id)))?;
    Ok((ResourceServer::try_from(&row)?, secret))
}

pub fn list(conn: &mut DbConn) -> Result<Vec<ResourceServer>, ResourceError> {
    Ok(resources::list(conn)?.iter().map(ResourceServer::try_from).collect::<Result<_, _>>()?)
}

/// By id (`rs_…`) or identifier.
pub fn find_row(conn: &mut DbConn, id_or_identifier: &str) -> Result<Option<ResourceServerRow>, StoreError> {
    match resources::find(conn, id_or_identifier)? {
        Some(row) => Ok(Some(row)),
        None => resources::find_by_identifier(conn, id_or_identifier),
    }
}

/// Replaces the secret at once: HS256 tokens signed with the old one no
/// longer verify at the server (the resource server must switch too).
pub fn rotate_secret(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    id_or_identifier: &str,
    actor: Actor,
) -> Result<(ResourceServer, Secret), ResourceError> {
    let row = find_row(conn, id_or_identifier)?.ok_or(ResourceError::Unknown)?;
    let server = ResourceServer::try_from(&row)?;
    let (secret, print, sealed) = new_secret(master, &row.id, server.algorithm);
    resources::set_secret(conn, &row.id, &print, sealed.as_deref(), clock.now().naive_utc())?;
    audit::record(conn, clock, AuditEvent::new(actor, "resource_server.secret_rotated", Some(&row.id)))?;
    Ok((server, secret))
}

/// The HMAC key of an HS256 resource server.
pub fn hmac_key(master: &MasterKey, row: &ResourceServerRow) -> Option<Vec<u8>> {
    master.open(&seal_context(&row.id), row.secret_sealed.as_deref()?).ok()
}

/// Checks a resource server's credentials (for introspection).
pub fn authenticate(
    conn: &mut DbConn,
    cache: &crate::store::cache::Caches,
    id: &str,
    secret: &str,
) -> Result<Option<ResourceServer>, StoreError> {
    let Some(row) = cache.resource(conn, id)? else {
        return Ok(None);
    };
    if !constant_time_eq(fingerprint(secret).as_bytes(), row.secret_fingerprint.as_bytes()) {
        return Ok(None);
    }
    Ok(Some(ResourceServer::try_from(&row)?))
}
