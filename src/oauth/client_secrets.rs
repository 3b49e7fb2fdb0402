//! Client secrets: server-generated (43 base62 characters, 256 bits),
//! shown once, stored as SHA-256 fingerprints, and a copy sealed under the
//! master key (every method that uses a secret: `client_secret_basic`,
//! `client_secret_post` and `client_secret_jwt`), because verifying an HMAC
//! signed with it (a client assertion, or a client-signed JWT on `/v1`)
//! needs the secret itself. A secret issued before every secret was sealed
//! has no sealed copy: it authenticates, but signs no JWT until rotated.
//! Rotation keeps at most two live: the new one, and the newest old one
//! until its overlap ends.

use chrono::{DateTime, Utc};

use super::clients::{AuthMethod, ClientError, MAX_SECRET_OVERLAP_SECS, find};
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::crypto::{MasterKey, SECRET_LEN_256_BITS, Secret, constant_time_eq, fingerprint, public_id, random_base62};
use crate::store::cache::Caches;
use crate::store::clients::{self, ClientSecretRow};
use crate::store::{DbConn, StoreError};

fn seal_context(secret_id: &str) -> String {
    format!("client_secret:{secret_id}")
}

/// A fresh secret row for `client_id`, and the secret itself.
pub(super) fn new_secret(
    master: &MasterKey,
    client_id: &str,
    method: AuthMethod,
    now: DateTime<Utc>,
) -> (ClientSecretRow, Secret) {
    let secret = Secret::new(random_base62(SECRET_LEN_256_BITS));
    let id = public_id("csec");
    let sealed = method.uses_secret().then(|| master.seal(&seal_context(&id), secret.expose().as_bytes()));
    let row = ClientSecretRow {
        fingerprint: fingerprint(secret.expose()),
        sealed,
        id,
        client_id: client_id.to_string(),
        created_at: now.naive_utc(),
        expires_at: None,
    };
    (row, secret)
}

/// Issues a new secret; the newest old one keeps working for
/// `expire_old_in` (0 ends it now), any older one ends now.
pub fn rotate_secret(
    conn: &mut DbConn,
    clock: &dyn Clock,
    master: &MasterKey,
    client_id: &str,
    expire_old_in: std::time::Duration,
    actor: Actor,
) -> Result<Secret, ClientError> {
    if expire_old_in.as_secs() > MAX_SECRET_OVERLAP_SECS {
        return Err(ClientError::Invalid {
            field: "expire_old_in",
            message: format!("the old secret may live at most {MAX_SECRET_OVERLAP_SECS} seconds"),
        });
    }
    let client = find(conn, client_id)?.ok_or(ClientError::UnknownClient)?;
    let method = client.token_endpoint_auth_method;
    if !method.uses_secret() {
        return Err(ClientError::NoSecret(method.as_str()));
    }
    let now = clock.now();
    let (row, secret) = new_secret(master, client_id, method, now);
    let old_until = now + chrono::Duration::from_std(expire_old_in).unwrap_or(chrono::Duration::zero());
    clients::rotate_secret(conn, &row, now.naive_utc(), old_until.naive_utc())?;
    let mut event = AuditEvent::new(actor, "client.secret_rotated", Some(client_id));
    event.details = serde_json::json!({ "old_secret_expires_at": old_until.to_rfc3339() });
    audit::record(conn, clock, event)?;
    Ok(secret)
}

/// A live secret of the client, for checking what a caller presents.
pub struct LiveSecret {
    pub fingerprint: String,
    sealed: Option<String>,
    id: String,
}

impl LiveSecret {
    /// A secret as stored: its fingerprint and, if sealed, the secret
    /// sealed under the master key.
    pub fn new(id: String, fingerprint: String, sealed: Option<String>) -> Self {
        Self { fingerprint, sealed, id }
    }

    /// The secret itself, for HMAC (HS256) verification; `None` for a
    /// secret issued before every client secret was sealed.
    pub fn open(&self, master: &MasterKey) -> Option<Vec<u8>> {
        let sealed = self.sealed.as_deref()?;
        master.open(&seal_context(&self.id), sealed).ok()
    }
}

/// Whether `secret` is one of the client's live secrets. Every live
/// secret is compared in constant time, so timing says nothing of which
/// matched.
pub fn secret_matches(conn: &mut DbConn, clock: &dyn Clock, client_id: &str, secret: &str) -> Result<bool, StoreError> {
    Ok(matches_one(&live_secrets(conn, clock, client_id)?, secret))
}

/// Whether `secret` is one of `live`, each compared in constant time.
pub fn matches_one(live: &[LiveSecret], secret: &str) -> bool {
    let presented = fingerprint(secret);
    live.iter().fold(false, |m, s| m | constant_time_eq(presented.as_bytes(), s.fingerprint.as_bytes()))
}

fn live(rows: Vec<ClientSecretRow>) -> Vec<LiveSecret> {
    rows.into_iter().map(|r| LiveSecret { fingerprint: r.fingerprint, sealed: r.sealed, id: r.id }).collect()
}

pub fn live_secrets(conn: &mut DbConn, clock: &dyn Clock, client_id: &str) -> Result<Vec<LiveSecret>, StoreError> {
    Ok(live(clients::live_secrets(conn, client_id, clock.now().naive_utc())?))
}

/// `live_secrets`, from memory when the database has not changed.
pub fn live_secrets_cached(
    conn: &mut DbConn,
    cache: &Caches,
    clock: &dyn Clock,
    client_id: &str,
) -> Result<Vec<LiveSecret>, StoreError> {
    Ok(live(cache.live_secrets(conn, client_id, clock.now().naive_utc())?))
}
