//! SDK tokens (`sdk_test_…`/`sdk_live_…`): publishable, safe in a browser.
//! They open short-lived sessions (`POST /v1/api/sdk/session`) that the
//! owner's back end reads with its API key; they authenticate nothing else.
//! Created, listed and revoked by their owner (or an admin).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::apikeys::{self, Mode};
use crate::audit::{self, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{MasterKey, public_id};
use crate::domain::Environment;
use crate::domain::page::{Page, PageError, PageOf};
use crate::domain::principal::Principal;
use crate::store::sdk::{self, SdkSessionRow, SdkTokenRow};
use crate::store::{DbConn, StoreError};

/// How long an SDK session lives.
pub const SESSION_TTL_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Missing, malformed, unknown or revoked (401).
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("This SDK token's mode does not match this server's environment")]
    WrongEnvironment,
    #[error("no such SDK token")]
    UnknownToken,
    #[error("the SDK token is already revoked")]
    Revoked,
    /// Unknown, expired, or not the caller's.
    #[error("no such SDK session (or it has expired)")]
    UnknownSession,
    /// A delegated credential making or revoking an SDK token.
    #[error(transparent)]
    Denied(#[from] crate::domain::principal::AuthError),
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An SDK token as its owner sees it: never the token itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SdkToken {
    pub id: String,
    pub owner_id: String,
    pub mode: Mode,
    pub last4: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<SdkTokenRow> for SdkToken {
    fn from(row: SdkTokenRow) -> Self {
        Self {
            id: row.id,
            owner_id: row.owner_id,
            mode: row.mode,
            last4: row.last4,
            created_at: row.created_at.and_utc(),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
        }
    }
}

/// A session opened with an SDK token.
#[derive(Debug, Clone, Serialize)]
pub struct SdkSession {
    pub session_id: String,
    pub sdk_token_id: String,
    pub owner: String,
    pub origin: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<SdkSessionRow> for SdkSession {
    fn from(row: SdkSessionRow) -> Self {
        Self {
            session_id: row.id,
            sdk_token_id: row.token_id,
            owner: row.owner_id,
            origin: row.origin,
            ip: row.ip,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.and_utc(),
        }
    }
}

/// A publishable token for the caller, in its key's mode (or the server's);
/// the raw token is returned here and never again.
pub fn create_token(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    environment: Environment,
    principal: &Principal,
) -> Result<(SdkToken, String), SdkError> {
    let principal = principal.first_party("create SDK tokens")?;
    let mode = principal.mode.unwrap_or(Mode::of(environment));
    let raw = apikeys::generate_sdk_token(mode);
    let row = SdkTokenRow {
        id: public_id("sdk"),
        owner_id: principal.user.id.clone(),
        mode,
        fingerprint: apikeys::fingerprint(master, &raw),
        last4: raw[raw.len() - 4..].to_string(),
        created_at: clock.now().naive_utc(),
        revoked_at: None,
    };
    sdk::insert_token(conn, &row)?;
    audit::record(conn, clock, AuditEvent::new(principal.actor(), "sdk_token.created", Some(&row.id)))?;
    Ok((SdkToken::from(row), raw))
}

/// The caller's SDK tokens.
/// One page of the caller's own SDK tokens, oldest first.
/// `starting_after` must name one of them, else `PageError::UnknownCursor`
/// (the same for an unknown id and another owner's token).
pub fn list_tokens(conn: &mut DbConn, principal: &Principal, page: &Page) -> Result<PageOf<SdkToken>, SdkError> {
    let owner = principal.user.id.as_str();
    let after = match page.starting_after() {
        None => None,
        Some(id) => match sdk::find_token(conn, id)? {
            Some(row) if row.owner_id == owner => Some((row.created_at, row.id)),
            _ => return Err(PageError::UnknownCursor.into()),
        },
    };
    let rows = sdk::page_of_owner(conn, owner, after.as_ref().map(|(at, id)| (*at, id.as_str())), page.fetch())?;
    PageOf::from_rows(rows, page, |row| Ok(SdkToken::from(row)))
}

/// Revokes an SDK token the caller owns (or any, for an admin).
pub fn revoke_token(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    id: &str,
) -> Result<SdkToken, SdkError> {
    let principal = principal.first_party("revoke SDK tokens")?;
    match sdk::find_token(conn, id)? {
        Some(t) if principal.may_manage(Some(&t.owner_id)) => {}
        _ => return Err(SdkError::UnknownToken),
    }
    if !sdk::revoke_token(conn, id, clock.now().naive_utc())? {
        return Err(SdkError::Revoked);
    }
    audit::record(conn, clock, AuditEvent::new(principal.actor(), "sdk_token.revoked", Some(id)))?;
    sdk::find_token(conn, id)?.map(SdkToken::from).ok_or(SdkError::UnknownToken)
}

/// The live token a raw value names, checked offline first (format,
/// checksum, mode) and then by fingerprint.
pub fn authenticate(
    conn: &mut DbConn,
    master: &MasterKey,
    environment: Environment,
    raw: &str,
) -> Result<SdkToken, SdkError> {
    let Some(mode) = apikeys::parse_sdk_token(raw) else {
        return Err(SdkError::InvalidToken("X-SDK-TOKEN is missing or is not an SDK token (sdk_test_… or sdk_live_…)"));
    };
    if mode != Mode::of(environment) {
        return Err(SdkError::WrongEnvironment);
    }
    let token = match sdk::find_token_by_fingerprint(conn, &apikeys::fingerprint(master, raw))? {
        Some(t) if t.revoked_at.is_none() => SdkToken::from(t),
        _ => return Err(SdkError::InvalidToken("The SDK token is unknown or revoked")),
    };
    // A disabled owner's tokens stop with the owner.
    match crate::store::users::find_by_id(conn, &token.owner_id)? {
        Some(u) if !u.disabled => Ok(token),
        _ => Err(SdkError::InvalidToken("The SDK token is unknown or revoked")),
    }
}

/// Opens a session for `token` (from `authenticate`).
pub fn open_session(
    conn: &mut DbConn,
    clock: &dyn Clock,
    token: &SdkToken,
    origin: Option<String>,
    ip: Option<String>,
) -> Result<SdkSession, SdkError> {
    let now = clock.now();
    let row = SdkSessionRow {
        id: public_id("sess"),
        token_id: token.id.clone(),
        owner_id: token.owner_id.clone(),
        origin: origin.map(|o| o.chars().take(256).collect()),
        ip,
        created_at: now.naive_utc(),
        expires_at: (now + chrono::Duration::seconds(SESSION_TTL_SECS)).naive_utc(),
    };
    sdk::insert_session(conn, &row)?;
    Ok(SdkSession::from(row))
}

/// A live session the caller may read (its own, or any for an admin).
pub fn read_session(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    id: &str,
) -> Result<SdkSession, SdkError> {
    match sdk::find_session(conn, id)? {
        Some(s) if principal.may_manage(Some(&s.owner_id)) && s.expires_at > clock.now().naive_utc() => {
            Ok(SdkSession::from(s))
        }
        _ => Err(SdkError::UnknownSession),
    }
}
