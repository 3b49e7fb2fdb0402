//! Bounded in-memory copies of what the hot paths read (authenticating a
//! client, an API key or a token), kept fresh by the `feed`: each is the
//! store's own query, answered from memory while the database has not
//! changed. Misses are kept too (`None`, `false`), so a flood of unknown
//! keys is answered from memory; every cache has a fixed capacity, so the
//! flood cannot grow it.
//!
//! Use these only where the same work writes nothing before reading: a
//! write is seen by the caches only once the pool has read the version
//! after it (`Db::run`).

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;

use super::api_keys::{self, ApiKeyRow};
use super::clients::{self, ClientRow, ClientSecretRow};
use super::feed::{Cached, Feed, Kind};
use super::grants::{self, GrantRow};
use super::resources::{self, ResourceServerRow};
use super::users::{self, UserRow};
use super::{DbConn, StoreError, tokens};

/// Entries per cache: API keys, clients, users, grants and revoked tokens
/// each; a little memory per entry, a bound on all of it.
const CAPACITY: u64 = 50_000;
/// A floor under the feed: no entry outlives this, whatever happens.
const TTL: Duration = Duration::from_secs(60);

pub struct Caches {
    feed: Arc<Feed>,
    api_keys: Cached<Option<ApiKeyRow>>,
    users: Cached<Option<UserRow>>,
    clients: Cached<Option<ClientRow>>,
    secrets: Cached<Arc<Vec<ClientSecretRow>>>,
    resources: Cached<Arc<Vec<ResourceServerRow>>>,
    grants: Cached<Option<GrantRow>>,
    revoked: Cached<bool>,
}

impl Caches {
    pub fn new(feed: Arc<Feed>) -> Self {
        Self {
            feed,
            api_keys: Cached::new("api_keys", &[Kind::ApiKeys], CAPACITY, TTL),
            users: Cached::new("users", &[Kind::Users], CAPACITY, TTL),
            clients: Cached::new("clients", &[Kind::Clients], CAPACITY, TTL),
            secrets: Cached::new("secrets", &[Kind::Clients], CAPACITY, TTL),
            resources: Cached::new("resources", &[Kind::ResourceServers], 1, TTL),
            grants: Cached::new("grants", &[Kind::Grants], CAPACITY, TTL),
            revoked: Cached::new("revoked", &[Kind::RevokedTokens], CAPACITY, TTL),
        }
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// `api_keys::find_by_fingerprint`.
    pub fn api_key(&self, conn: &mut DbConn, fingerprint: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        self.api_keys.get_or_load(&self.feed, fingerprint, || api_keys::find_by_fingerprint(conn, fingerprint))
    }

    /// `users::find_by_id`.
    pub fn user(&self, conn: &mut DbConn, id: &str) -> Result<Option<UserRow>, StoreError> {
        self.users.get_or_load(&self.feed, id, || users::find_by_id(conn, id))
    }

    /// `clients::find`.
    pub fn client(&self, conn: &mut DbConn, id: &str) -> Result<Option<ClientRow>, StoreError> {
        self.clients.get_or_load(&self.feed, id, || clients::find(conn, id))
    }

    /// `clients::live_secrets`: every secret is kept, and those live at
    /// `now` are chosen here.
    pub fn live_secrets(
        &self,
        conn: &mut DbConn,
        client_id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<ClientSecretRow>, StoreError> {
        let all = self.secrets.get_or_load(&self.feed, client_id, || {
            clients::live_secrets(conn, client_id, chrono::DateTime::UNIX_EPOCH.naive_utc()).map(Arc::new)
        })?;
        Ok(all.iter().filter(|s| s.expires_at.is_none_or(|t| t > now)).cloned().collect())
    }

    /// `resources::list`.
    pub fn resources(&self, conn: &mut DbConn) -> Result<Arc<Vec<ResourceServerRow>>, StoreError> {
        self.resources.get_or_load(&self.feed, "", || resources::list(conn).map(Arc::new))
    }

    /// `resources::find`.
    pub fn resource(&self, conn: &mut DbConn, id: &str) -> Result<Option<ResourceServerRow>, StoreError> {
        Ok(self.resources(conn)?.iter().find(|r| r.id == id).cloned())
    }

    /// `resources::find_by_identifier`.
    pub fn resource_for(&self, conn: &mut DbConn, identifier: &str) -> Result<Option<ResourceServerRow>, StoreError> {
        Ok(self.resources(conn)?.iter().find(|r| r.identifier == identifier).cloned())
    }

    /// `grants::find_grant`.
    pub fn grant(&self, conn: &mut DbConn, id: &str) -> Result<Option<GrantRow>, StoreError> {
        self.grants.get_or_load(&self.feed, id, || grants::find_grant(conn, id))
    }

    /// `tokens::is_revoked`.
    pub fn is_revoked(&self, conn: &mut DbConn, jti: &str) -> Result<bool, StoreError> {
        self.revoked.get_or_load(&self.feed, jti, || tokens::is_revoked(conn, jti))
    }
}
