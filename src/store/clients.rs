//! The `clients` and `client_secrets` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{client_secrets, clients};
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub client_type: String,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub audiences: String,
    pub auth_method: String,
    pub jwks: Option<String>,
    pub owner_id: Option<String>,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub require_pkce: bool,
    pub id_token_alg: Option<String>,
    /// JSON array of exact URIs.
    pub post_logout_redirect_uris: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = client_secrets)]
pub struct ClientSecretRow {
    pub id: String,
    pub client_id: String,
    pub fingerprint: String,
    pub sealed: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

/// Inserts a client and its first secret in one transaction.
pub fn insert(conn: &mut DbConn, client: &ClientRow, secret: Option<&ClientSecretRow>) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::insert_into(clients::table).values(client).execute(conn)?;
        if let Some(secret) = secret {
            diesel::insert_into(client_secrets::table).values(secret).execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(clients::table.find(id).select(ClientRow::as_select()).first(conn).optional()?)
}

/// Every client, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<ClientRow>, StoreError> {
    Ok(clients::table
        .order((clients::created_at.asc(), clients::id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?)
}

/// Writes the editable fields of `row` (not its id, type, method, owner
/// or creation time).
pub fn update(conn: &mut DbConn, row: &ClientRow) -> Result<(), StoreError> {
    let n = diesel::update(clients::table.find(&row.id))
        .set((
            clients::name.eq(&row.name),
            clients::redirect_uris.eq(&row.redirect_uris),
            clients::scopes.eq(&row.scopes),
            clients::audiences.eq(&row.audiences),
            clients::require_pkce.eq(row.require_pkce),
            clients::id_token_alg.eq(&row.id_token_alg),
            clients::post_logout_redirect_uris.eq(&row.post_logout_redirect_uris),
            clients::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Clients of one owner, oldest first.
pub fn list_by_owner(conn: &mut DbConn, owner_id: &str) -> Result<Vec<ClientRow>, StoreError> {
    Ok(clients::table
        .filter(clients::owner_id.eq(owner_id))
        .order((clients::created_at.asc(), clients::id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?)
}

/// One page of clients (of one owner when given), oldest first (by
/// `created_at`, then `id`): up to `fetch` after the client whose
/// `(created_at, id)` is `after`. Keyset, not OFFSET.
pub fn page(
    conn: &mut DbConn,
    owner_id: Option<&str>,
    after: Option<(NaiveDateTime, &str)>,
    fetch: i64,
) -> Result<Vec<ClientRow>, StoreError> {
    let mut query = clients::table.into_boxed();
    if let Some(owner) = owner_id {
        query = query.filter(clients::owner_id.eq(owner.to_string()));
    }
    if let Some((at, id)) = after {
        query =
            query.filter(clients::created_at.gt(at).or(clients::created_at.eq(at).and(clients::id.gt(id.to_string()))));
    }
    Ok(query
        .order((clients::created_at.asc(), clients::id.asc()))
        .limit(fetch)
        .select(ClientRow::as_select())
        .load(conn)?)
}

/// `NotFound` when no client has this id.
pub fn set_disabled(conn: &mut DbConn, id: &str, disabled: bool, now: NaiveDateTime) -> Result<(), StoreError> {
    let n = diesel::update(clients::table.find(id))
        .set((clients::disabled.eq(disabled), clients::updated_at.eq(now)))
        .execute(conn)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// The secrets of a client that are live at `now`, newest first.
pub fn live_secrets(
    conn: &mut DbConn,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<ClientSecretRow>, StoreError> {
    Ok(client_secrets::table
        .filter(client_secrets::client_id.eq(client_id))
        .filter(client_secrets::expires_at.is_null().or(client_secrets::expires_at.gt(now)))
        .order((client_secrets::created_at.desc(), client_secrets::id.desc()))
        .select(ClientSecretRow::as_select())
        .load(conn)?)
}

/// Adds `secret` and makes it the only live secret besides `keep_until`
/// for the one that was newest: older ones end now, the previous newest
/// ends at `old_expires_at` (sooner if it already ended sooner). One
/// transaction, so a client never has three live secrets.
pub fn rotate_secret(
    conn: &mut DbConn,
    secret: &ClientSecretRow,
    now: NaiveDateTime,
    old_expires_at: NaiveDateTime,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        let live = client_secrets::table
            .filter(client_secrets::client_id.eq(&secret.client_id))
            .filter(client_secrets::expires_at.is_null().or(client_secrets::expires_at.gt(now)))
            .order((client_secrets::created_at.desc(), client_secrets::id.desc()))
            .select(ClientSecretRow::as_select())
            .load(conn)?;
        for (i, old) in live.iter().enumerate() {
            let end = if i == 0 { old_expires_at } else { now };
            let end = old.expires_at.map_or(end, |e| e.min(end));
            diesel::update(client_secrets::table.find(&old.id))
                .set(client_secrets::expires_at.eq(end))
                .execute(conn)?;
        }
        diesel::insert_into(client_secrets::table).values(secret).execute(conn)?;
        diesel::update(clients::table.find(&secret.client_id))
            .set(clients::updated_at.eq(secret.created_at))
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Deletes a client and everything that hangs on it, in one transaction:
/// its token families (grants, their refresh tokens and access-token
/// records), codes, consents, secrets and used assertions. Keys bound to
/// it are revoked (and unbound, as the foreign key requires) — never left
/// live without their client. The ids of the keys it revoked.
pub fn delete(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<Vec<String>, StoreError> {
    use super::schema::{
        api_keys, authorization_codes, consents, grant_access_tokens, grants, refresh_tokens, used_assertions,
    };
    let revoked = conn.transaction(|conn| {
        let bound: Vec<String> = api_keys::table
            .filter(api_keys::client_id.eq(id))
            .filter(api_keys::revoked_at.is_null())
            .select(api_keys::id)
            .load(conn)?;
        diesel::update(api_keys::table.filter(api_keys::client_id.eq(id)).filter(api_keys::revoked_at.is_null()))
            .set(api_keys::revoked_at.eq(now))
            .execute(conn)?;
        diesel::update(api_keys::table.filter(api_keys::client_id.eq(id)))
            .set(api_keys::client_id.eq(None::<String>))
            .execute(conn)?;
        let families = grants::table.filter(grants::client_id.eq(id)).select(grants::id);
        diesel::delete(grant_access_tokens::table.filter(grant_access_tokens::grant_id.eq_any(families)))
            .execute(conn)?;
        let families = grants::table.filter(grants::client_id.eq(id)).select(grants::id);
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::grant_id.eq_any(families))).execute(conn)?;
        diesel::delete(authorization_codes::table.filter(authorization_codes::client_id.eq(id))).execute(conn)?;
        diesel::delete(grants::table.filter(grants::client_id.eq(id))).execute(conn)?;
        diesel::delete(consents::table.filter(consents::client_id.eq(id))).execute(conn)?;
        diesel::delete(client_secrets::table.filter(client_secrets::client_id.eq(id))).execute(conn)?;
        diesel::delete(used_assertions::table.filter(used_assertions::client_id.eq(id))).execute(conn)?;
        diesel::delete(clients::table.find(id)).execute(conn)?;
        Ok::<_, diesel::result::Error>(bound)
    })?;
    Ok(revoked)
}
