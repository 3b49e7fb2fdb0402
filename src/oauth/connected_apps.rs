//! The apps a person has let in: what they consented to, per app and
//! audience, and the way to take it back. Revoking an app forgets the
//! consent (the next authorization asks again) and revokes every token
//! family of that app for that person (refresh tokens stop, access tokens
//! read inactive).

use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::Serialize;

use super::clients;
use super::user_grants;
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::Clock;
use crate::store::{DbConn, StoreError, grants, users};

/// One app the person has granted access to, for one audience.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    /// The owner's email, if the app has an owner.
    pub owner: Option<String>,
    /// The server's own API when empty.
    pub audience: String,
    pub scopes: Vec<String>,
    pub granted_at: DateTime<Utc>,
    /// When tokens were last issued to it for this person.
    pub last_used: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectedAppError {
    /// The person has not granted this app anything.
    #[error("this app has no access to revoke")]
    NotConnected,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ConnectedAppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The apps `user_id` has consented to, one entry per app and audience.
pub fn list(conn: &mut DbConn, user_id: &str) -> Result<Vec<ConnectedApp>, ConnectedAppError> {
    let mut apps: Vec<ConnectedApp> = Vec::new();
    for (client_id, audience, scope, granted_at) in grants::consents_of(conn, user_id)? {
        if let Some(app) = apps.iter_mut().find(|a| a.client_id == client_id && a.audience == audience) {
            app.scopes.push(scope);
            app.granted_at = app.granted_at.min(granted_at.and_utc());
            continue;
        }
        let client = match clients::find(conn, &client_id) {
            Ok(c) => c,
            Err(clients::ClientError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(StoreError::Internal(e.to_string()).into()),
        };
        let owner = match client.as_ref().and_then(|c| c.owner_id.clone()) {
            Some(id) => users::find_by_id(conn, &id)?.map(|u| u.email),
            None => None,
        };
        apps.push(ConnectedApp {
            name: client.map(|c| c.name).unwrap_or_else(|| client_id.clone()),
            last_used: grants::last_issued(conn, user_id, &client_id)?.map(|t| t.and_utc()),
            client_id,
            owner,
            audience,
            scopes: vec![scope],
            granted_at: granted_at.and_utc(),
        });
    }
    Ok(apps)
}

/// Takes back everything `user_id` gave `client_id`: the consent, for every
/// audience, and every live token family. Audited as `consent.revoked`,
/// by `actor` (the person, in her dashboard session).
pub fn revoke(
    conn: &mut DbConn,
    clock: &dyn Clock,
    user_id: &str,
    client_id: &str,
    actor: Actor,
) -> Result<usize, ConnectedAppError> {
    crate::pause::point("consent:revoking", client_id);
    // One transaction: a failure halfway must not leave the consent gone
    // and a family live, nor a revocation unaudited.
    conn.transaction(|conn| {
        let forgotten = grants::delete_consents(conn, user_id, client_id)?;
        // The codes first: deleting them waits for a redemption in flight
        // (it holds the code's row), so that the grants read next include
        // the one that redemption made. Read before, a grant committed in
        // between would outlive the revocation. A code not yet redeemed
        // is gone, and can start no family after.
        grants::delete_unused_codes(conn, user_id, client_id)?;
        let families = grants::live_grants_of(conn, user_id, client_id)?;
        if forgotten == 0 && families.is_empty() {
            return Err(ConnectedAppError::NotConnected);
        }
        for grant in &families {
            user_grants::revoke_grant(conn, clock, &grant.id, "access revoked by the person")?;
        }
        let mut event = AuditEvent::new(actor, "consent.revoked", Some(client_id));
        event.details = serde_json::json!({ "families": families.len() });
        audit::record(conn, clock, event)?;
        Ok(families.len())
    })
}
