//! OAuth clients: registration, secrets and their rotation.
//!
//! Secrets are server-generated (43 base62 characters, 256 bits) and shown
//! once; the database keeps their SHA-256 fingerprint and a copy sealed
//! under the master key, because verifying an HMAC the client signs with
//! it (a `client_secret_jwt` assertion, or a JWT on `/v1`) needs the key
//! itself.

use chrono::{DateTime, Utc};
use diesel::Connection;
use jsonwebtoken::jwk::JwkSet;
use serde::Serialize;

use super::client_secrets::new_secret;
pub use super::client_secrets::{
    LiveSecret, live_secrets, live_secrets_cached, matches_one, rotate_secret, secret_matches,
};
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{MasterKey, Secret, public_id};
use crate::domain::page::{Page, PageError, PageOf};
use crate::domain::permissions::Permissions;
use crate::domain::principal::Principal;
use crate::domain::scope::Scopes;
pub use crate::jwt::keys::SigningAlg;
use crate::store::cache::Caches;
use crate::store::clients::{self, ClientRow};
use crate::store::{DbConn, StoreError, grants};

pub const MAX_CLIENT_NAME_LEN: usize = 100;
pub const MAX_REDIRECT_URIS: usize = 20;
pub use crate::uri::MAX_REDIRECT_URI_LEN;
pub const MAX_AUDIENCES: usize = 20;
/// How long an old secret keeps working after a rotation, unless told.
pub const DEFAULT_SECRET_OVERLAP_SECS: u64 = 24 * 3600;
pub const MAX_SECRET_OVERLAP_SECS: u64 = 30 * 24 * 3600;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
        pub enum $name {
            $(#[value(name = $text)] $variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// How a client authenticates at the token, introspection and
    /// revocation endpoints (RFC 8414 names).
    AuthMethod {
        ClientSecretBasic = "client_secret_basic",
        ClientSecretPost = "client_secret_post",
        ClientSecretJwt = "client_secret_jwt",
        PrivateKeyJwt = "private_key_jwt",
        None = "none",
    }
}

string_enum! {
    /// The grants a client may use.
    GrantType {
        AuthorizationCode = "authorization_code",
        ClientCredentials = "client_credentials",
        RefreshToken = "refresh_token",
    }
}

impl AuthMethod {
    /// Whether the client holds a server-generated secret.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A field that is not acceptable (400), named as the API names it
    /// (`name`, `scope`, `grant_types`, `jwks`, …).
    #[error("invalid client: {message}")]
    Invalid { field: &'static str, message: String },
    /// A redirect or post-logout redirect URI is not acceptable (RFC 7591
    /// tells this apart as `invalid_redirect_uri`).
    #[error("invalid client: {message}")]
    InvalidRedirectUri { field: &'static str, message: String },
    #[error("no client with this id")]
    UnknownClient,
    #[error("no user with this email")]
    UnknownOwner,
    #[error("this client has no secret: it authenticates with {0}")]
    NoSecret(&'static str),
    /// The caller may not give a client this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller's credential may not do this at all (403 with its code):
    /// a delegated credential changing a client.
    #[error(transparent)]
    Denied(#[from] crate::domain::principal::AuthError),
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::UnknownClient,
            other => Self::Store(other),
        }
    }
}

/// A registered client, as operators and the dashboard see it: no secret.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: &'static str,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scope: Scopes,
    /// Resource servers (by identifier) it may get tokens for, besides the
    /// server's default audience.
    pub audiences: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    pub owner_id: Option<String>,
    pub disabled: bool,
    /// Whether the code flow must use PKCE (always, for a public client).
    pub require_pkce: bool,
    /// The algorithm of its ID tokens; `None` is the server's default,
    /// RS256.
    #[serde(rename = "id_token_signed_response_alg", skip_serializing_if = "Option::is_none")]
    pub id_token_alg: Option<SigningAlg>,
    /// Where RP-initiated logout may send the person (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.client_type == "public"
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// What a person's consent to this client covers: the app as the
    /// consent page showed it — its name and owner, where codes and
    /// sign-outs may send the person, what it may ask for. A change of any
    /// of these forgets every consent given to it (`update`).
    fn consent_terms(&self) -> impl PartialEq + std::fmt::Debug + use<> {
        let set = |items: &[String]| items.iter().cloned().collect::<std::collections::BTreeSet<String>>();
        (
            self.name.clone(),
            self.owner_id.clone(),
            set(&self.redirect_uris),
            set(&self.post_logout_redirect_uris),
            self.scope.iter().map(str::to_string).collect::<std::collections::BTreeSet<String>>(),
            set(&self.audiences),
        )
    }

    /// A digest of `consent_terms`: what a consent page's form is bound
    /// to, so that an approval given to a page counts only for the client
    /// as that page showed it.
    pub fn consent_digest(&self) -> String {
        crate::crypto::fingerprint(&format!("{:?}", self.consent_terms()))
    }

    /// The client's JWKS for `private_key_jwt`.
    pub fn jwk_set(&self) -> Option<JwkSet> {
        self.jwks.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    fn from_row(row: ClientRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("client {}: unreadable {what}", row.id));
        let grant_types = row
            .grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("grant type")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            redirect_uris: serde_json::from_str(&row.redirect_uris).map_err(|_| corrupt("redirect URIs"))?,
            grant_types,
            scope: Scopes::from_stored(&row.scopes),
            audiences: row.audiences.split(' ').filter(|a| !a.is_empty()).map(str::to_string).collect(),
            token_endpoint_auth_method: AuthMethod::parse(&row.auth_method).ok_or_else(|| corrupt("auth method"))?,
            jwks: row.jwks.as_deref().map(serde_json::from_str).transpose().map_err(|_| corrupt("JWKS"))?,
            client_type: if row.client_type == "public" { "public" } else { "confidential" },
            require_pkce: row.require_pkce || row.client_type == "public",
            id_token_alg: match row.id_token_alg.as_deref() {
                None => None,
                Some(a) => Some(SigningAlg::parse(a).ok_or_else(|| corrupt("ID token algorithm"))?),
            },
            post_logout_redirect_uris: serde_json::from_str(&row.post_logout_redirect_uris)
                .map_err(|_| corrupt("post-logout redirect URIs"))?,
            client_id: row.id,
            name: row.name,
            owner_id: row.owner_id,
            disabled: row.disabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// What registration asks for; `validate` turns it into a row.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    /// Empty: confidential clients get `client_credentials`, plus
    /// `authorization_code` and `refresh_token` when they have redirect
    /// URIs; public clients get `authorization_code` and `refresh_token`.
    pub grant_types: Vec<GrantType>,
    pub scope: String,
    pub audiences: Vec<String>,
    /// Default: `client_secret_basic`, or `none` for a public client.
    pub auth_method: Option<AuthMethod>,
    /// A JWK Set (JSON), required for `private_key_jwt`.
    pub jwks: Option<String>,
    pub owner_id: Option<String>,
    /// `None`: required. `Some(false)` only for a confidential client.
    pub require_pkce: Option<bool>,
    /// `id_token_signed_response_alg`; `None` is RS256.
    pub id_token_alg: Option<SigningAlg>,
    pub post_logout_redirect_uris: Vec<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ClientError {
    ClientError::Invalid { field, message: message.into() }
}

fn invalid_redirect(field: &'static str, message: impl Into<String>) -> ClientError {
    ClientError::InvalidRedirectUri { field, message: message.into() }
}

pub use crate::uri::{check_absolute_uri, split_uri};

/// Keys usable for `private_key_jwt`: RSA, EC P-256 or Ed25519, public only.
/// The most keys a client's JWKS may hold.
pub const MAX_JWKS_KEYS: usize = 10;

fn check_jwks(text: &str) -> Result<String, ClientError> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| invalid("jwks", format!("the JWKS is not a JWK Set: {e}")))?;
    if set.keys.is_empty() {
        return Err(invalid("jwks", "the JWKS has no keys"));
    }
    // Each assertion is checked against the key its `kid` names, or every
    // key: a few keys, each named apart, keep that cheap.
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(invalid("jwks", format!("the JWKS has more than {MAX_JWKS_KEYS} keys")));
    }
    if set.keys.len() > 1 {
        let mut kids: Vec<Option<&str>> = set.keys.iter().map(|k| k.common.key_id.as_deref()).collect();
        kids.sort();
        kids.dedup();
        if kids.len() != set.keys.len() || kids.contains(&None) {
            return Err(invalid("jwks", "each key of a JWKS with several keys needs a kid of its own"));
        }
    }
    for key in &set.keys {
        super::assertion::pinned_algorithm(key).map_err(|e| invalid("jwks", e))?;
    }
    serde_json::to_string(&set).map_err(|e| invalid("jwks", e.to_string()))
}

impl NewClient {
    fn validate(self, id: String, now: DateTime<Utc>) -> Result<ClientRow, ClientError> {
        let name = crate::names::check(&self.name, MAX_CLIENT_NAME_LEN)
            .map_err(|e| invalid("name", format!("the name: {e}")))?;
        if self.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(invalid_redirect("redirect_uris", format!("more than {MAX_REDIRECT_URIS} redirect URIs")));
        }
        self.redirect_uris
            .iter()
            .try_for_each(|u| crate::uri::check_redirect_uri(u).map_err(|e| invalid_redirect("redirect_uris", e)))?;
        let mut grants = self.grant_types.clone();
        if grants.is_empty() {
            if !self.public {
                grants.push(GrantType::ClientCredentials);
            }
            if self.public || !self.redirect_uris.is_empty() {
                grants.extend([GrantType::AuthorizationCode, GrantType::RefreshToken]);
            }
        }
        grants.sort_by_key(|g| g.as_str());
        grants.dedup();
        let method =
            self.auth_method.unwrap_or(if self.public { AuthMethod::None } else { AuthMethod::ClientSecretBasic });
        if self.public {
            if method != AuthMethod::None {
                return Err(invalid(
                    "token_endpoint_auth_method",
                    "a public client has no credentials: its auth method is none",
                ));
            }
            if grants.contains(&GrantType::ClientCredentials) {
                return Err(invalid("grant_types", "a public client cannot use the client_credentials grant"));
            }
        } else if method == AuthMethod::None {
            return Err(invalid(
                "token_endpoint_auth_method",
                "a confidential client must authenticate; use --public for a client without credentials",
            ));
        }
        let require_pkce = self.require_pkce.unwrap_or(true);
        if self.public && !require_pkce {
            return Err(invalid(
                "require_pkce",
                "a public client must use PKCE: only a confidential client may make it optional",
            ));
        }
        if self.post_logout_redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(invalid_redirect(
                "post_logout_redirect_uris",
                format!("more than {MAX_REDIRECT_URIS} post-logout redirect URIs"),
            ));
        }
        for uri in &self.post_logout_redirect_uris {
            crate::uri::check_redirect_uri(uri).map_err(|why| {
                invalid_redirect("post_logout_redirect_uris", format!("post-logout redirect URI: {why}"))
            })?;
        }
        if !self.post_logout_redirect_uris.is_empty() && !grants.contains(&GrantType::AuthorizationCode) {
            return Err(invalid(
                "post_logout_redirect_uris",
                "post-logout redirect URIs are for clients that sign people in (the authorization_code grant)",
            ));
        }
        if grants.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(invalid_redirect(
                "redirect_uris",
                "the authorization_code grant needs at least one redirect URI",
            ));
        }
        let jwks = match (method, self.jwks) {
            (AuthMethod::PrivateKeyJwt, Some(text)) => Some(check_jwks(&text)?),
            (AuthMethod::PrivateKeyJwt, None) => {
                return Err(invalid("jwks", "private_key_jwt needs the client's JWKS"));
            }
            (_, Some(_)) => return Err(invalid("jwks", "a JWKS is only used with private_key_jwt")),
            (_, None) => None,
        };
        let scope = Scopes::parse(&self.scope).map_err(|e| invalid("scope", format!("scope: {e}")))?;
        if self.audiences.len() > MAX_AUDIENCES {
            return Err(invalid("audiences", format!("more than {MAX_AUDIENCES} audiences")));
        }
        for aud in &self.audiences {
            check_absolute_uri(aud).map_err(|why| invalid("audiences", format!("audience {aud:?} {why}")))?;
        }
        Ok(ClientRow {
            id,
            name: name.to_string(),
            client_type: if self.public { "public" } else { "confidential" }.to_string(),
            redirect_uris: serde_json::to_string(&self.redirect_uris)
                .map_err(|e| invalid("redirect_uris", e.to_string()))?,
            grant_types: grants.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(" "),
            scopes: scope.to_string(),
            audiences: self.audiences.join(" "),
            auth_method: method.as_str().to_string(),
            jwks,
            owner_id: self.owner_id,
            disabled: false,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
            require_pkce,
            id_token_alg: self.id_token_alg.map(|a| a.as_str().to_string()),
            post_logout_redirect_uris: serde_json::to_string(&self.post_logout_redirect_uris)
                .map_err(|e| invalid("post_logout_redirect_uris", e.to_string()))?,
        })
    }
}

/// Registers a client. The secret, if the method uses one, is returned
/// here and never again.
pub fn create(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    new: NewClient,
    actor: Actor,
) -> Result<(Client, Option<Secret>), ClientError> {
    let now = clock.now();
    let row = new.validate(public_id("cl"), now)?;
    publish_id_token_key(conn, clock, master, &row)?;
    let method = AuthMethod::parse(&row.auth_method).unwrap_or(AuthMethod::None);
    let secret = method.uses_secret().then(|| new_secret(master, &row.id, method, now));
    clients::insert(conn, &row, secret.as_ref().map(|(r, _)| r))?;
    let mut event = AuditEvent::new(actor, "client.created", Some(&row.id));
    event.details = serde_json::json!({ "auth_method": row.auth_method, "grant_types": row.grant_types });
    audit::record(conn, clock, event)?;
    Ok((Client::from_row(row)?, secret.map(|(_, s)| s)))
}

pub fn find(conn: &mut DbConn, client_id: &str) -> Result<Option<Client>, ClientError> {
    Ok(clients::find(conn, client_id)?.map(Client::from_row).transpose()?)
}

/// `find`, from memory when the database has not changed (the hot paths).
pub fn find_cached(
    conn: &mut DbConn,
    server: &super::AuthServer,
    client_id: &str,
) -> Result<Option<Client>, ClientError> {
    Ok(server.cache.client(conn, client_id)?.map(Client::from_row).transpose()?)
}

/// Whether `client` may act now: not disabled, and its owner, if it has
/// one, not disabled either. A disabled person's clients stop with her
/// (they authenticate nowhere, their tokens and JWTs read inactive, their
/// bound keys stop) and start again if she is enabled again: checked at
/// every use, so there is nothing to undo.
pub fn usable(conn: &mut DbConn, cache: &Caches, client: &Client) -> Result<bool, StoreError> {
    if client.disabled {
        return Ok(false);
    }
    match &client.owner_id {
        None => Ok(true),
        Some(owner) => Ok(cache.user(conn, owner)?.is_some_and(|u| !u.disabled)),
    }
}

pub fn list_owned(conn: &mut DbConn, owner_id: &str) -> Result<Vec<Client>, ClientError> {
    Ok(clients::list_by_owner(conn, owner_id)?.into_iter().map(Client::from_row).collect::<Result<_, _>>()?)
}

pub fn list(conn: &mut DbConn) -> Result<Vec<Client>, ClientError> {
    Ok(clients::list(conn)?.into_iter().map(Client::from_row).collect::<Result<_, _>>()?)
}

/// Changes to a client; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub scope: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub require_pkce: Option<bool>,
    pub id_token_alg: Option<SigningAlg>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
}

/// A client's ID tokens are signed with the server's active key of its
/// algorithm: made now if there is none, so that it is in the JWKS before
/// the first ID token (relying parties cache the JWKS).
fn publish_id_token_key(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    row: &ClientRow,
) -> Result<(), ClientError> {
    if let Some(alg) = row.id_token_alg.as_deref().and_then(SigningAlg::parse) {
        crate::jwt::keys::ensure_active(conn, clock, master, alg).map_err(|e| match e {
            crate::jwt::keys::SigningKeyError::Store(s) => ClientError::Store(s),
            other => ClientError::Store(StoreError::Internal(other.to_string())),
        })?;
    }
    Ok(())
}

/// Applies `changes` with the same rules as registration.
pub fn update(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    client_id: &str,
    changes: ClientChanges,
    actor: Actor,
) -> Result<Client, ClientError> {
    let client = find(conn, client_id)?.ok_or(ClientError::UnknownClient)?;
    let merged = NewClient {
        name: changes.name.unwrap_or(client.name.clone()),
        public: client.is_public(),
        redirect_uris: changes.redirect_uris.unwrap_or(client.redirect_uris.clone()),
        grant_types: client.grant_types.clone(),
        scope: changes.scope.unwrap_or(client.scope.to_string()),
        audiences: changes.audiences.unwrap_or(client.audiences.clone()),
        auth_method: Some(client.token_endpoint_auth_method),
        jwks: client.jwks.as_ref().map(|j| j.to_string()),
        owner_id: client.owner_id.clone(),
        require_pkce: Some(changes.require_pkce.unwrap_or(client.require_pkce)),
        id_token_alg: changes.id_token_alg.or(client.id_token_alg),
        post_logout_redirect_uris: changes
            .post_logout_redirect_uris
            .unwrap_or(client.post_logout_redirect_uris.clone()),
    };
    let row = merged.validate(client.client_id.clone(), clock.now())?;
    let terms_changed = Client::from_row(row.clone())?.consent_terms() != client.consent_terms();
    publish_id_token_key(conn, clock, master, &row)?;
    // One transaction: consents given to the client as it was never
    // outlive the change, whoever makes it (`/v1`, the dashboard, RFC 7592).
    conn.transaction(|conn| {
        clients::update(conn, &row)?;
        let forgotten = if terms_changed { grants::forget_consents_to(conn, client_id)? } else { 0 };
        let mut event = AuditEvent::new(actor, "client.updated", Some(client_id));
        event.details = serde_json::json!({ "consents_forgotten": forgotten });
        audit::record(conn, clock, event)
    })?;
    find(conn, client_id)?.ok_or(ClientError::UnknownClient)
}

pub fn disable(conn: &mut DbConn, clock: &dyn Clock, client_id: &str, actor: Actor) -> Result<(), ClientError> {
    clients::set_disabled(conn, client_id, true, clock.now().naive_utc())?;
    audit::record(conn, clock, AuditEvent::new(actor, "client.disabled", Some(client_id)))?;
    Ok(())
}

/// The scopes anyone's client may ask for: the `/v1` permissions a member
/// holds and the user-flow scopes. Anything else (`admin`, a resource
/// server's `payments:refund`) only an admin can put on a client.
pub const SELF_SERVICE_SCOPES: [&str; 7] = ["read", "write", "delete", "offline_access", "openid", "profile", "email"];

/// A client's secret signs `/v1` JWTs with the client's scope: whoever
/// registers a client, changes its scope or learns its secret must hold
/// every `/v1` permission that scope carries.
fn check_scope_within_caller(principal: &Principal, scope: &Scopes) -> Result<(), ClientError> {
    if principal.is_admin() {
        return Ok(());
    }
    match Permissions::from_scope(scope).missing_from(principal.permissions).iter().next() {
        None => Ok(()),
        Some(p) => Err(ClientError::Forbidden(format!(
            "This client's scope carries the {p} permission, which your credential lacks"
        ))),
    }
}

/// Only an admin widens access: a non-admin may not add audiences, nor
/// scopes beyond `SELF_SERVICE_SCOPES`.
fn check_rights(principal: &Principal, added_audiences: &[String], added_scope: &Scopes) -> Result<(), ClientError> {
    if principal.is_admin() {
        return Ok(());
    }
    if let Some(aud) = added_audiences.first() {
        return Err(ClientError::Forbidden(format!(
            "Only an admin may give a client an audience ({aud}); ask an admin to add it"
        )));
    }
    if let Some(scope) = added_scope.iter().find(|s| !SELF_SERVICE_SCOPES.contains(s)) {
        return Err(ClientError::Forbidden(format!(
            "Only an admin may give a client the scope {scope}; yours may ask for {}",
            SELF_SERVICE_SCOPES.join(", ")
        )));
    }
    Ok(())
}

fn parse_scope(text: &str) -> Result<Scopes, ClientError> {
    Scopes::parse(text).map_err(|e| invalid("scope", format!("scope: {e}")))
}

/// Registers a client owned by `principal`'s user.
pub fn register(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    mut new: NewClient,
) -> Result<(Client, Option<Secret>), ClientError> {
    let principal = principal.first_party("register clients")?;
    let scope = parse_scope(&new.scope)?;
    check_rights(&principal, &new.audiences, &scope)?;
    check_scope_within_caller(&principal, &scope)?;
    new.owner_id = Some(principal.user.id.clone());
    create(conn, clock, master, new, principal.actor())
}

/// Client `client_id` if `principal` may see it (its own, or any for an
/// admin); any other reads as unknown.
pub fn find_visible(conn: &mut DbConn, principal: &Principal, client_id: &str) -> Result<Client, ClientError> {
    match find(conn, client_id)? {
        Some(c) if principal.may_manage(c.owner_id.as_deref()) => Ok(c),
        _ => Err(ClientError::UnknownClient),
    }
}

/// The caller's clients; every client for an admin.
/// One page of the clients `principal` may see — its own, or every client
/// for an admin — oldest first. `starting_after` must name one of them,
/// else `PageError::UnknownCursor` (the same for an unknown id and for
/// another owner's client, so a cursor never tells whether an id exists).
pub fn list_visible(conn: &mut DbConn, principal: &Principal, page: &Page) -> Result<PageOf<Client>, ClientError> {
    let owner = if principal.is_admin() { None } else { Some(principal.user.id.as_str()) };
    let after = match page.starting_after() {
        None => None,
        Some(id) => match clients::find(conn, id)? {
            Some(row) if owner.is_none() || row.owner_id.as_deref() == owner => Some((row.created_at, row.id)),
            _ => return Err(PageError::UnknownCursor.into()),
        },
    };
    let rows = clients::page(conn, owner, after.as_ref().map(|(at, id)| (*at, id.as_str())), page.fetch())?;
    Ok(PageOf::from_rows(rows, page, Client::from_row)?)
}

/// Updates a client the caller may see; what it adds must be the
/// caller's to give.
pub fn update_visible(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    client_id: &str,
    changes: ClientChanges,
) -> Result<Client, ClientError> {
    let principal = principal.first_party("change clients")?;
    let client = find_visible(conn, &principal, client_id)?;
    let added_audiences: Vec<String> =
        changes.audiences.iter().flatten().filter(|a| !client.audiences.contains(a)).cloned().collect();
    let added_scope = match &changes.scope {
        Some(text) => {
            let asked = parse_scope(text)?;
            let added = asked.missing_from(&client.scope);
            parse_scope(&added)?
        }
        None => Scopes::default(),
    };
    check_rights(&principal, &added_audiences, &added_scope)?;
    // Changing a client (where its codes go, what it is called) is as
    // much as rotating its secret: only for a caller holding every `/v1`
    // permission its scope carries, now and after the change.
    check_scope_within_caller(&principal, &client.scope)?;
    if let Some(text) = &changes.scope {
        check_scope_within_caller(&principal, &parse_scope(text)?)?;
    }
    update(conn, clock, master, client_id, changes, principal.actor())
}

/// Rotates the secret of a client the caller may see.
pub fn rotate_secret_visible(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    principal: &Principal,
    client_id: &str,
    expire_old_in: std::time::Duration,
) -> Result<Secret, ClientError> {
    let principal = principal.first_party("rotate client secrets")?;
    let client = find_visible(conn, &principal, client_id)?;
    check_scope_within_caller(&principal, &client.scope)?;
    rotate_secret(conn, clock, master, client_id, expire_old_in, principal.actor())
}

/// Disables a client the caller may see.
pub fn disable_visible(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    client_id: &str,
) -> Result<(), ClientError> {
    let principal = principal.first_party("disable clients")?;
    find_visible(conn, &principal, client_id)?;
    disable(conn, clock, client_id, principal.actor())
}

/// Deletes a client the caller may see, for good: its tokens stop (they
/// name a client that no longer exists), its keys are revoked, and its id
/// is never reused. Audited as `client.deleted`, with the keys revoked.
pub fn delete_visible(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    client_id: &str,
) -> Result<(), ClientError> {
    let principal = principal.first_party("delete clients")?;
    find_visible(conn, &principal, client_id)?;
    delete(conn, clock, client_id, principal.actor())
}

/// Deletes a client for good (see `delete_visible`), audited as
/// `client.deleted` with the keys it revoked.
pub fn delete(conn: &mut DbConn, clock: &dyn Clock, client_id: &str, actor: Actor) -> Result<(), ClientError> {
    let revoked = clients::delete(conn, client_id, clock.now().naive_utc())?;
    let mut event = AuditEvent::new(actor, "client.deleted", Some(client_id));
    event.details = serde_json::json!({ "api_keys_revoked": revoked });
    audit::record(conn, clock, event)?;
    Ok(())
}
