//! People: users, their passwords and roles. Emails are compared
//! case-insensitively (stored lower-cased); passwords are argon2id PHC
//! strings with the OWASP parameters (m = 19 MiB, t = 2, p = 1).

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use diesel::Connection;

use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{SECRET_LEN_256_BITS, Secret, public_id, random_base62};
pub use crate::domain::user::{Role, User};
use crate::store::users::{self, UserRow};
use crate::store::{DbConn, StoreError, grants, sessions};

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_NAME_LEN: usize = 200;
pub const MIN_PASSWORD_CHARS: usize = 8;
/// argon2 accepts any length; a cap keeps a request from buying seconds of
/// CPU with a megabyte of password.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The account made on first start when no admin exists.
pub const FIRST_ADMIN_EMAIL: &str = "admin@localhost";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid email: {0}")]
    InvalidEmail(&'static str),
    #[error("invalid name: {0}")]
    InvalidName(crate::names::NameError),
    #[error("invalid password: {0}")]
    InvalidPassword(String),
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("no user with this email")]
    UnknownUser,
    #[error(transparent)]
    Store(StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::EmailTaken,
            StoreError::NotFound => Self::UnknownUser,
            other => Self::Store(other),
        }
    }
}

/// A syntactically plausible, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AccountError::InvalidEmail("it is empty"));
        }
        if text.len() > MAX_EMAIL_LEN {
            return Err(AccountError::InvalidEmail("it is longer than 254 characters"));
        }
        if text.chars().any(|c| c.is_whitespace() || crate::names::is_hidden(c)) {
            return Err(AccountError::InvalidEmail("it contains spaces, control or invisible characters"));
        }
        match text.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {
                Ok(Self(text.to_lowercase()))
            }
            _ => Err(AccountError::InvalidEmail("expected local@domain")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password a person chose, checked for length; never printed.
#[derive(Clone)]
pub struct Password(Secret);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(AccountError::InvalidPassword(format!("longer than {MAX_PASSWORD_BYTES} bytes")));
        }
        if text.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AccountError::InvalidPassword(format!("shorter than {MIN_PASSWORD_CHARS} characters")));
        }
        Ok(Self(Secret::new(text)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// argon2id with the crate's defaults, which are OWASP's parameters.
    pub fn hash(&self) -> Result<String, AccountError> {
        Argon2::default()
            .hash_password(self.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hashing(e.to_string()))
    }
}

/// Checks a password against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            role: row.role,
            id: row.id,
            email: row.email,
            name: row.display_name,
            disabled: row.disabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        }
    }
}

/// What creating a user takes, already parsed.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub name: String,
    pub password: Password,
    pub role: Role,
}

/// A person's name: what the consent page and the dashboard show, so it
/// passes the one rule every shown name passes (`names::check`).
pub fn parse_name(name: &str) -> Result<String, AccountError> {
    crate::names::check(name, MAX_NAME_LEN).map(str::to_string).map_err(AccountError::InvalidName)
}

impl NewUser {
    pub fn parse(email: &str, name: &str, password: &str, role: Role) -> Result<Self, AccountError> {
        Ok(Self { email: Email::parse(email)?, name: parse_name(name)?, password: Password::parse(password)?, role })
    }
}

/// Creates a user (argon2 runs here: call it from a blocking context).
pub fn create_user(conn: &mut DbConn, clock: &dyn Clock, new: NewUser, actor: Actor) -> Result<User, AccountError> {
    let now = clock.now().naive_utc();
    let row = UserRow {
        id: public_id("usr"),
        email: new.email.as_str().to_string(),
        display_name: new.name,
        password_hash: new.password.hash()?,
        role: new.role,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &row)?;
    let mut event = AuditEvent::new(actor, "user.created", Some(&row.id));
    event.details = serde_json::json!({ "role": row.role });
    audit::record(conn, clock, event)?;
    Ok(row.into())
}

pub fn list_users(conn: &mut DbConn) -> Result<Vec<User>, AccountError> {
    Ok(users::list(conn)?.into_iter().map(User::from).collect())
}

fn find_by_email(conn: &mut DbConn, email: &Email) -> Result<UserRow, AccountError> {
    users::find_by_email(conn, email.as_str())?.ok_or(AccountError::UnknownUser)
}

/// Gives the user with `email` a new password (`tessera user
/// set-password`); see `change_password`.
pub fn set_password(
    conn: &mut DbConn,
    clock: &dyn Clock,
    email: &Email,
    password: &Password,
    actor: Actor,
) -> Result<User, AccountError> {
    let row = find_by_email(conn, email)?;
    change_password(conn, clock, &row.id, password, None, actor)
}

/// Gives user `id` a new password. Whoever knew the old one keeps nothing
/// it opened: every session of hers ends but `keep` (the one she changed
/// it in, if she did it herself in the dashboard), and every grant she
/// gave an app is revoked (its refresh tokens stop, its access tokens read
/// inactive). argon2 runs first, then one transaction: never a new
/// password with the old sessions alive.
pub fn change_password(
    conn: &mut DbConn,
    clock: &dyn Clock,
    id: &str,
    password: &Password,
    keep: Option<&str>,
    actor: Actor,
) -> Result<User, AccountError> {
    let hash = password.hash()?;
    let now = clock.now().naive_utc();
    conn.transaction::<_, StoreError, _>(|conn| {
        users::set_password_hash(conn, id, &hash, now)?;
        let sessions_ended = sessions::delete_for_user_except(conn, id, keep)?;
        // The codes first (see `delete_unused_codes_of`), then the grants.
        grants::delete_unused_codes_of(conn, id)?;
        let grants_revoked = grants::revoke_for_user(conn, id, now)?;
        let mut event = AuditEvent::new(actor, "user.password_changed", Some(id));
        event.details = serde_json::json!({ "sessions_ended": sessions_ended, "grants_revoked": grants_revoked });
        audit::record(conn, clock, event)
    })?;
    find_user(conn, id)?.ok_or(AccountError::UnknownUser)
}

/// Disables a user by email (`tessera user disable`); see `disable_user_id`.
pub fn disable_user(conn: &mut DbConn, clock: &dyn Clock, email: &Email, actor: Actor) -> Result<User, AccountError> {
    let row = find_by_email(conn, email)?;
    disable_user_id(conn, clock, &row.id, actor)
}

pub fn find_user(conn: &mut DbConn, id: &str) -> Result<Option<User>, AccountError> {
    Ok(users::find_by_id(conn, id)?.map(User::from))
}

/// Renames a user; `UnknownUser` when no user has this id.
pub fn rename_user(
    conn: &mut DbConn,
    clock: &dyn Clock,
    id: &str,
    name: &str,
    actor: Actor,
) -> Result<User, AccountError> {
    let name = parse_name(name)?;
    users::set_display_name(conn, id, &name, clock.now().naive_utc())?;
    audit::record(conn, clock, AuditEvent::new(actor, "user.renamed", Some(id)))?;
    find_user(conn, id)?.ok_or(AccountError::UnknownUser)
}

/// Disables a user by id (`DELETE /v1/users/{id}`, and the CLI through
/// `disable_user`): they can no longer sign in, their sessions end and
/// their grant families are revoked, so their refresh tokens stop working
/// and their access tokens read inactive. Tokens are also checked against
/// `disabled` at every use, so nothing minted later slips through either.
/// One transaction: a user is never left disabled with live sessions.
pub fn disable_user_id(conn: &mut DbConn, clock: &dyn Clock, id: &str, actor: Actor) -> Result<User, AccountError> {
    let now = clock.now().naive_utc();
    conn.transaction(|conn| {
        users::set_disabled(conn, id, true, now)?;
        let sessions_ended = sessions::delete_for_user(conn, id)?;
        grants::delete_unused_codes_of(conn, id)?;
        let grants_revoked = grants::revoke_for_user(conn, id, now)?;
        let mut event = AuditEvent::new(actor, "user.disabled", Some(id));
        event.details = serde_json::json!({ "sessions_ended": sessions_ended, "grants_revoked": grants_revoked });
        audit::record(conn, clock, event)
    })?;
    find_user(conn, id)?.ok_or(AccountError::UnknownUser)
}

/// The admin made on first start, with the one copy of its password.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    pub user: User,
    pub password: Secret,
}

/// Creates `admin@localhost` with a random 256-bit password when no enabled
/// admin exists; `None` otherwise. Two instances starting at once on an
/// empty database cannot both create it: the unique email decides.
pub fn ensure_first_admin(conn: &mut DbConn, clock: &dyn Clock) -> Result<Option<FirstAdmin>, AccountError> {
    if users::count_enabled_admins(conn)? > 0 {
        return Ok(None);
    }
    let password = random_base62(SECRET_LEN_256_BITS);
    let new = NewUser::parse(FIRST_ADMIN_EMAIL, "Administrator", &password, Role::Admin)?;
    match create_user(conn, clock, new, Actor::System) {
        Ok(user) => Ok(Some(FirstAdmin { user, password: Secret::new(password) })),
        // Someone else created it (another instance), or a disabled
        // admin@localhost exists: leave it to the operator.
        Err(AccountError::EmailTaken) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "no-at-sign", "@x", "x@", "a b@c", &format!("{}@x", "a".repeat(260))] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(Password::parse("").is_err());
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(Password::parse(&"x".repeat(MAX_PASSWORD_BYTES)).is_ok());
    }

    #[test]
    fn hashes_are_argon2id_phc_and_verify() {
        let p = Password::parse("correct horse").unwrap();
        let phc = p.hash().unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
    }
}
