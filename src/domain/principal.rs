//! Who is calling: a `Principal` — the person a credential acts for,
//! which credential, and its *effective* permissions (what it was
//! granted, cut down to what its owner may do now) — and the checks every
//! service makes of it. How a request's credential becomes one is
//! `crate::identity`'s.
//!
//! A credential is either **first-party** — the person's own hand: an API
//! key, a dashboard session (and the CLI's operator, who makes no
//! `Principal`) — or **delegated**: an app acting for the person, with an
//! access token it was given or a JWT it signed itself. Only a first-party
//! principal changes credentials: `Principal::first_party` is the one check,
//! and `FirstParty::actor` the only way a principal's change is audited, so
//! a service that writes cannot be reached with a delegated credential
//! without failing to compile or failing that check.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::actor::Actor;
use super::modes::Mode;
use super::permissions::{Permission, Permissions};
use super::restrictions::Restrictions;
use super::user::User;

/// The public label of a session (by its id, the cookie's fingerprint):
/// what the audit log shows of it, at sign-in, sign-out and on every change
/// made in it. Not the id itself, which is the session's lookup key.
pub fn session_label(session_id: &str) -> String {
    format!("ses_{}", &crate::crypto::fingerprint(session_id)[..16])
}

/// What an API key caller is bound by when it makes or copies a key: the
/// key's own grant, restrictions, expiry and rate limit.
#[derive(Debug, Clone)]
pub struct KeyBounds {
    pub permissions: Permissions,
    pub restrictions: Restrictions,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<i64>,
}

/// Which credential authenticated the call. `Session` is a person signed
/// in to the dashboard; its `session_id` is the session's fingerprint,
/// never the cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey { id: String, client_id: Option<String> },
    AccessToken { client_id: String },
    ClientJwt { client_id: String },
    Session { session_id: String },
}

impl Credential {
    /// The kind, as `/v1/me` and the audit log name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => "api_key",
            Self::AccessToken { .. } => "access_token",
            Self::ClientJwt { .. } => "client_jwt",
            Self::Session { .. } => "session",
        }
    }

    /// The app a delegated credential acts for; `None` for the person's
    /// own (first-party) credentials.
    pub fn delegated_to(&self) -> Option<&str> {
        match self {
            Self::AccessToken { client_id } | Self::ClientJwt { client_id } => Some(client_id),
            Self::ApiKey { .. } | Self::Session { .. } => None,
        }
    }

    /// What the audit log records of it: its kind and a public id — the
    /// key's id, the app's client id, or a label derived from the session
    /// (`ses_…`, never the session's own id, which is its lookup key).
    pub fn audit_label(&self) -> String {
        match self {
            Self::ApiKey { id, .. } => format!("api_key:{id}"),
            Self::AccessToken { client_id } => format!("access_token:{client_id}"),
            Self::ClientJwt { client_id } => format!("client_jwt:{client_id}"),
            Self::Session { session_id } => format!("session:{}", session_label(session_id)),
        }
    }
}

/// An authenticated caller of `/v1`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
    /// Effective: granted ∩ what the owner may do now.
    pub permissions: Permissions,
    /// The key's mode, for API keys.
    pub mode: Option<Mode>,
    /// The credential's own requests-per-second limit (API keys).
    pub rate_limit: Option<i64>,
    /// The API key's own bounds, for API-key callers: what a key it
    /// creates or rotates must stay within.
    pub key: Option<Box<KeyBounds>>,
}

/// A principal whose credential is the person's own (an API key or a
/// dashboard session), made only by `Principal::first_party`: what every
/// service that creates, changes, rotates, revokes or widens a credential
/// takes.
#[derive(Debug, Clone, Copy)]
pub struct FirstParty<'a>(&'a Principal);

impl std::ops::Deref for FirstParty<'_> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        self.0
    }
}

impl FirstParty<'_> {
    /// Who acted, for the audit log: the person and the credential.
    pub fn actor(&self) -> Actor {
        Actor::User { id: self.0.user.id.clone(), credential: Some(self.0.credential.audit_label()) }
    }
}

/// Why a request is refused. `Display` never holds the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable credential: 401.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: Cow<'static, str> },
    /// A valid credential that may not do this: 403.
    #[error("{message}")]
    Forbidden { code: &'static str, message: Cow<'static, str> },
}

/// The code of a refusal to a delegated credential of a change only the
/// person's own credentials may make.
pub const DELEGATED_CREDENTIAL: &str = "delegated_credential";

impl AuthError {
    pub fn unauthenticated(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unauthenticated { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }

    /// An admin-only action attempted by anyone else.
    pub fn admin_only(what: &str) -> Self {
        Self::forbidden("forbidden", format!("Only an admin may {what}"))
    }
}

impl Principal {
    /// The person behind a live browser session (the dashboard). They act
    /// for themselves with everything their role allows now; the dashboard
    /// calls the same services as `/v1` with this principal.
    pub fn for_session(user: User, session_id: String) -> Self {
        Self {
            permissions: Permissions::of_user(&user),
            user,
            credential: Credential::Session { session_id },
            mode: None,
            rate_limit: None,
            key: None,
        }
    }

    /// Admin on `/v1`: an admin user whose credential carries `admin`
    /// (effective permissions already require both).
    pub fn is_admin(&self) -> bool {
        self.permissions.contains(Permission::Admin)
    }

    /// Whether this caller may see and manage what `owner_id` owns.
    pub fn may_manage(&self, owner_id: Option<&str>) -> bool {
        owner_id == Some(self.user.id.as_str()) || self.is_admin()
    }

    /// The app this caller's credential is delegated to, if it is one.
    pub fn delegated_to(&self) -> Option<&str> {
        self.credential.delegated_to()
    }

    /// The one rule of delegation: only the person's own credentials (an
    /// API key, a dashboard session) create, change, rotate, revoke or
    /// widen a credential — clients, API keys, SDK tokens, users, resource
    /// servers, registration tokens. An app's access token or its signed
    /// JWT acts within what the person consented to and reads; it never
    /// turns itself into a lasting credential, nor touches another app's.
    /// Revoking is refused too: it only narrows, but an app the person let
    /// read must not be able to cut her other apps and keys off; an app
    /// ends its own tokens at `/oauth/revoke`.
    pub fn first_party(&self, what: &str) -> Result<FirstParty<'_>, AuthError> {
        match self.credential.delegated_to() {
            None => Ok(FirstParty(self)),
            Some(client_id) => Err(AuthError::forbidden(
                DELEGATED_CREDENTIAL,
                format!(
                    "A credential an app holds for a person (the {} of {client_id}) cannot {what}; \
                     use an API key or the dashboard",
                    match self.credential {
                        Credential::ClientJwt { .. } => "signed JWT",
                        _ => "access token",
                    }
                ),
            )),
        }
    }

    /// The permission a request with `method` needs.
    pub fn require_method(&self, method: &str) -> Result<(), AuthError> {
        if self.permissions.allows_method(method) {
            return Ok(());
        }
        Err(AuthError::forbidden(
            "insufficient_scope",
            format!("This credential lacks the {} permission this request needs", Permission::for_method(method)),
        ))
    }

    pub fn require_admin(&self, what: &str) -> Result<(), AuthError> {
        if self.is_admin() { Ok(()) } else { Err(AuthError::admin_only(what)) }
    }

    /// The bucket this caller's requests count against.
    pub fn rate_limit_bucket(&self) -> String {
        match &self.credential {
            Credential::ApiKey { id, .. } => id.clone(),
            Credential::AccessToken { client_id } => format!("token:{client_id}:{}", self.user.id),
            Credential::ClientJwt { client_id } => format!("client-jwt:{client_id}"),
            Credential::Session { session_id } => format!("session:{session_id}"),
        }
    }
}
