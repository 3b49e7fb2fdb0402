//! Consents, grants (token families), authorization codes and refresh
//! tokens. Single use is enforced by conditional updates
//! (`… WHERE used_at IS NULL`), so of two concurrent redemptions exactly
//! one changes a row.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{authorization_codes, consents, grant_access_tokens, grants, refresh_tokens, revoked_tokens};
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = grants)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub audience: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// What the grant's ID tokens say (OpenID Connect): the authorization
    /// request's nonce, when the person signed in, and their session.
    pub nonce: Option<String>,
    pub auth_time: Option<NaiveDateTime>,
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = authorization_codes)]
pub struct CodeRow {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub code_challenge: String,
    pub scope: String,
    pub audience: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub grant_id: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: Option<NaiveDateTime>,
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    pub id: String,
    pub grant_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

/// The scopes `user_id` has granted `client_id` for `audience` (the empty
/// string is the server's own API).
pub fn consented_scopes(
    conn: &mut DbConn,
    user_id: &str,
    client_id: &str,
    audience: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(consents::table
        .filter(consents::user_id.eq(user_id))
        .filter(consents::client_id.eq(client_id))
        .filter(consents::audience.eq(audience))
        .select(consents::scope)
        .load(conn)?)
}

/// Forgets every consent given to `client_id`: each person is asked again.
pub fn forget_consents_to(conn: &mut DbConn, client_id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(consents::table.filter(consents::client_id.eq(client_id))).execute(conn)?)
}

pub fn add_consent(
    conn: &mut DbConn,
    user_id: &str,
    client_id: &str,
    audience: &str,
    scopes: &[&str],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let have = consented_scopes(conn, user_id, client_id, audience)?;
    for scope in scopes.iter().filter(|s| !have.iter().any(|h| h == *s)) {
        let inserted = diesel::insert_into(consents::table)
            .values((
                consents::user_id.eq(user_id),
                consents::client_id.eq(client_id),
                consents::audience.eq(audience),
                consents::scope.eq(scope),
                consents::granted_at.eq(now),
            ))
            .execute(conn);
        match inserted.map_err(StoreError::from) {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn insert_code(conn: &mut DbConn, row: &CodeRow) -> Result<(), StoreError> {
    diesel::insert_into(authorization_codes::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_code(conn: &mut DbConn, id: &str) -> Result<Option<CodeRow>, StoreError> {
    Ok(authorization_codes::table.find(id).select(CodeRow::as_select()).first(conn).optional()?)
}

/// Marks a code used by `grant_id`; false when it was used already.
pub fn use_code(conn: &mut DbConn, id: &str, now: NaiveDateTime, grant_id: &str) -> Result<bool, StoreError> {
    let n = diesel::update(authorization_codes::table.find(id).filter(authorization_codes::used_at.is_null()))
        .set((authorization_codes::used_at.eq(now), authorization_codes::grant_id.eq(grant_id)))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn insert_grant(conn: &mut DbConn, row: &GrantRow) -> Result<(), StoreError> {
    diesel::insert_into(grants::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_grant(conn: &mut DbConn, id: &str) -> Result<Option<GrantRow>, StoreError> {
    Ok(grants::table.find(id).select(GrantRow::as_select()).first(conn).optional()?)
}

pub fn add_grant_token(
    conn: &mut DbConn,
    jti: &str,
    grant_id: &str,
    expires_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::insert_into(grant_access_tokens::table)
        .values((
            grant_access_tokens::jti.eq(jti),
            grant_access_tokens::grant_id.eq(grant_id),
            grant_access_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Revokes a grant: marks it, and puts every access token recorded in it
/// that may still be alive into `revoked_tokens`. One transaction. The mark
/// is what counts: a token names its grant (`gid`) and is checked against
/// it, which also covers a token recorded after this ran; the list covers
/// tokens minted before tokens named their grant.
pub fn revoke_grant(conn: &mut DbConn, grant: &GrantRow, now: NaiveDateTime) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::update(grants::table.find(&grant.id).filter(grants::revoked_at.is_null()))
            .set(grants::revoked_at.eq(now))
            .execute(conn)?;
        let live: Vec<(String, NaiveDateTime)> = grant_access_tokens::table
            .filter(grant_access_tokens::grant_id.eq(&grant.id))
            .filter(grant_access_tokens::expires_at.gt(now))
            .select((grant_access_tokens::jti, grant_access_tokens::expires_at))
            .load(conn)?;
        for (jti, expires_at) in live {
            let already: bool =
                diesel::select(diesel::dsl::exists(revoked_tokens::table.find(&jti))).get_result(conn)?;
            if !already {
                diesel::insert_into(revoked_tokens::table)
                    .values((
                        revoked_tokens::jti.eq(&jti),
                        revoked_tokens::client_id.eq(&grant.client_id),
                        revoked_tokens::revoked_at.eq(now),
                        revoked_tokens::expires_at.eq(expires_at),
                    ))
                    .execute(conn)?;
            }
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Revokes every grant of `user_id` that is not revoked yet; how many.
/// Their tokens read inactive from then on (they are checked against
/// their grant), and their refresh tokens stop working.
pub fn revoke_for_user(conn: &mut DbConn, user_id: &str, now: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::update(grants::table.filter(grants::user_id.eq(user_id)).filter(grants::revoked_at.is_null()))
        .set(grants::revoked_at.eq(now))
        .execute(conn)?)
}

pub fn insert_refresh(conn: &mut DbConn, row: &RefreshRow) -> Result<(), StoreError> {
    diesel::insert_into(refresh_tokens::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_refresh(conn: &mut DbConn, id: &str) -> Result<Option<RefreshRow>, StoreError> {
    Ok(refresh_tokens::table.find(id).select(RefreshRow::as_select()).first(conn).optional()?)
}

/// Gives grant `id` a narrower scope (what its client and person may
/// still hold, re-checked at a refresh).
pub fn narrow_grant(conn: &mut DbConn, id: &str, scope: &str) -> Result<(), StoreError> {
    diesel::update(grants::table.find(id)).set(grants::scope.eq(scope)).execute(conn)?;
    Ok(())
}

/// Retires a refresh token; false when it was retired already.
pub fn use_refresh(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    let n = diesel::update(refresh_tokens::table.find(id).filter(refresh_tokens::used_at.is_null()))
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// Every consent row of `user_id`: (client, audience, scope, granted at).
pub fn consents_of(
    conn: &mut DbConn,
    user_id: &str,
) -> Result<Vec<(String, String, String, NaiveDateTime)>, StoreError> {
    Ok(consents::table
        .filter(consents::user_id.eq(user_id))
        .order((consents::client_id.asc(), consents::audience.asc(), consents::scope.asc()))
        .select((consents::client_id, consents::audience, consents::scope, consents::granted_at))
        .load(conn)?)
}

/// Forgets what `user_id` granted `client_id`, for every audience.
pub fn delete_consents(conn: &mut DbConn, user_id: &str, client_id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(consents::table.filter(consents::user_id.eq(user_id)).filter(consents::client_id.eq(client_id)))
        .execute(conn)?)
}

/// The unrevoked grants (token families) of `user_id` with `client_id`.
pub fn live_grants_of(conn: &mut DbConn, user_id: &str, client_id: &str) -> Result<Vec<GrantRow>, StoreError> {
    Ok(grants::table
        .filter(grants::user_id.eq(user_id))
        .filter(grants::client_id.eq(client_id))
        .filter(grants::revoked_at.is_null())
        .select(GrantRow::as_select())
        .load(conn)?)
}

/// When `client_id` last had tokens issued for `user_id`: the newest grant
/// or refresh token of theirs.
pub fn last_issued(conn: &mut DbConn, user_id: &str, client_id: &str) -> Result<Option<NaiveDateTime>, StoreError> {
    let mine = grants::table.filter(grants::user_id.eq(user_id)).filter(grants::client_id.eq(client_id));
    let granted: Option<NaiveDateTime> = mine.select(diesel::dsl::max(grants::created_at)).first(conn)?;
    let refreshed: Option<NaiveDateTime> = refresh_tokens::table
        .filter(refresh_tokens::grant_id.eq_any(mine.select(grants::id)))
        .select(diesel::dsl::max(refresh_tokens::created_at))
        .first(conn)?;
    Ok(granted.max(refreshed))
}

/// Deletes every authorization code of `user_id` not redeemed yet: after
/// her password changes, no code issued under the old one may start a
/// family. Run before reading or revoking her grants: on PostgreSQL it
/// waits for a redemption in flight (which holds its code's row), so the
/// grant that redemption made is there to be revoked.
pub fn delete_unused_codes_of(conn: &mut DbConn, user_id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        authorization_codes::table
            .filter(authorization_codes::user_id.eq(user_id))
            .filter(authorization_codes::used_at.is_null()),
    )
    .execute(conn)?)
}

/// Deletes the authorization codes `client_id` holds for `user_id` that
/// were never redeemed: after the person takes their consent back, no code
/// from before may start a new token family.
pub fn delete_unused_codes(conn: &mut DbConn, user_id: &str, client_id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        authorization_codes::table
            .filter(authorization_codes::user_id.eq(user_id))
            .filter(authorization_codes::client_id.eq(client_id))
            .filter(authorization_codes::used_at.is_null()),
    )
    .execute(conn)?)
}
