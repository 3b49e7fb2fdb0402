//! The grants that act for a person: `authorization_code` (RFC 6749 §4.1.3
//! with RFC 7636) and `refresh_token` (§6, rotated, with reuse detection
//! as RFC 9700 §4.14.2 describes).
//!
//! Each redeemed code starts a *grant*: the family of the refresh tokens
//! and access tokens that descend from it. Replaying the code, or
//! presenting a retired refresh token, revokes the whole family: its
//! refresh tokens stop working and its access tokens read inactive.

use super::access_token::{self, Audience};
use super::authorize::{OFFLINE_ACCESS, s256, valid_verifier};
use super::clients::{Client, GrantType};
use super::endpoints::TokenResponse;
use super::{AuthServer, OAuthError, Request};
use crate::clock::{Clock, span};
use crate::crypto::{SECRET_LEN_256_BITS, constant_time_eq, fingerprint, public_id, random_base62};
use crate::domain::scope::Scopes;
use crate::store::grants::{self, GrantRow, RefreshRow};
use crate::store::{DbConn, StoreError};
use diesel::Connection;

/// Idle and absolute lifetimes of refresh tokens.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    pub idle: std::time::Duration,
    pub absolute: std::time::Duration,
}

/// Revokes a grant and everything minted in it.
pub fn revoke_grant(conn: &mut DbConn, clock: &dyn Clock, grant_id: &str, reason: &str) -> Result<(), StoreError> {
    let Some(grant) = grants::find_grant(conn, grant_id)? else {
        return Ok(());
    };
    grants::revoke_grant(conn, &grant, clock.now().naive_utc())?;
    let mut event = crate::audit::AuditEvent::new(crate::audit::Actor::System, "grant.revoked", Some(&grant.client_id));
    event.details = serde_json::json!({ "grant": grant.id, "user": grant.user_id, "reason": reason });
    crate::audit::record(conn, clock, event)
}

/// The tokens of one answer, signed but not yet recorded: the signatures
/// are made before the transaction that records them, so no write lock is
/// held while a key signs.
struct Issued {
    response: TokenResponse,
    jti: String,
    expires_at: chrono::NaiveDateTime,
    refresh: Option<RefreshRow>,
}

impl Issued {
    /// In one transaction whose first statement writes (so SQLite takes
    /// its write lock at once rather than upgrade a read): `spend` (the
    /// code or refresh token; false if another request spent it first),
    /// then the access token recorded in `grant_id` and the refresh token
    /// stored; or nothing. The answer, or `None` when it was spent.
    fn commit(
        self,
        conn: &mut DbConn,
        grant_id: &str,
        spend: impl FnOnce(&mut DbConn) -> Result<bool, StoreError>,
    ) -> Result<Option<TokenResponse>, StoreError> {
        let committed = conn.transaction::<_, Redeem, _>(|conn| {
            if !spend(conn)? {
                return Err(Redeem::Spent);
            }
            grants::add_grant_token(conn, &self.jti, grant_id, self.expires_at)?;
            if let Some(row) = &self.refresh {
                grants::insert_refresh(conn, row)?;
            }
            Ok(())
        });
        match committed {
            Ok(()) => Ok(Some(self.response)),
            Err(Redeem::Spent) => Ok(None),
            Err(Redeem::Store(e)) => Err(e),
        }
    }
}

/// What a grant still holds now: its audience, if the client may still
/// get tokens for it, and its scope cut to what the client may ask for
/// there now and what the person may do now (only an admin holds
/// `admin`). Read at every redemption and refresh, so an admin's narrowing
/// of a client, or a person's demotion, reaches the grants already made.
/// A person who is disabled (or gone) holds nothing.
pub(super) fn held_now(
    conn: &mut DbConn,
    server: &AuthServer,
    client: &Client,
    user_id: &str,
    audience: &str,
    scope: &Scopes,
) -> Result<(Audience, Scopes), OAuthError> {
    let person = match server.cache.user(conn, user_id)? {
        Some(u) if !u.disabled => crate::accounts::User::from(u),
        _ => return Err(disabled_person()),
    };
    let audience = access_token::resolve_audience(conn, server, client, Some(audience))?;
    let mut held = scope.intersection(&super::authorize::grantable(client, &audience));
    if person.role != crate::accounts::Role::Admin {
        held = held.without(crate::domain::permissions::Permission::Admin.as_str());
    }
    Ok((audience, held))
}

/// Signs an access token in `grant` (and makes a refresh token when the
/// grant holds `offline_access` and the client may refresh; and an ID
/// token with `openid`). Reads only.
fn tokens_for(
    conn: &mut DbConn,
    server: &AuthServer,
    client: &Client,
    grant: &GrantRow,
    audience: &Audience,
    scope: &Scopes,
    refresh: Option<&RefreshPolicy>,
) -> Result<Issued, OAuthError> {
    let minted = access_token::mint(conn, server, &client.client_id, &grant.user_id, audience, scope, Some(&grant.id))?;
    let expires_at = chrono::DateTime::from_timestamp(minted.claims.exp, 0).unwrap_or_default().naive_utc();
    let (refresh_token, refresh) = match refresh.map(|policy| new_refresh_token(server, grant, policy)) {
        Some((token, row)) => (Some(token), Some(row)),
        None => (None, None),
    };
    let id_token = super::id_token::mint(conn, server, client, grant, scope, &minted.token)?;
    Ok(Issued {
        jti: minted.claims.jti.clone(),
        expires_at,
        refresh,
        response: TokenResponse {
            access_token: minted.token,
            token_type: "Bearer",
            expires_in: minted.expires_in,
            scope: minted.claims.scope,
            refresh_token,
            id_token,
        },
    })
}

fn new_refresh_token(server: &AuthServer, grant: &GrantRow, policy: &RefreshPolicy) -> (String, RefreshRow) {
    let token = random_base62(SECRET_LEN_256_BITS);
    let now = server.clock.now();
    let idle_end = (now + span(policy.idle)).naive_utc();
    let row = RefreshRow {
        id: fingerprint(&token),
        grant_id: grant.id.clone(),
        created_at: now.naive_utc(),
        expires_at: idle_end.min(grant.expires_at),
        used_at: None,
    };
    (token, row)
}

/// Why a grant's transaction did not commit.
enum Redeem {
    /// The code or refresh token was used by another request meanwhile.
    Spent,
    Store(StoreError),
}

impl From<diesel::result::Error> for Redeem {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<StoreError> for Redeem {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A code or refresh token of a person whose account is disabled: their
/// grants were revoked when it was, and nothing new is minted for them.
fn disabled_person() -> OAuthError {
    OAuthError::invalid_grant("the account this grant acts for is disabled")
}

/// `grant_type=authorization_code`.
pub fn authorization_code(
    conn: &mut DbConn,
    server: &AuthServer,
    policy: &RefreshPolicy,
    client: &Client,
    request: &Request,
) -> Result<TokenResponse, OAuthError> {
    let code = request.params.require("code")?;
    let verifier = request.params.get("code_verifier");
    if verifier.is_some_and(|v| !valid_verifier(v)) {
        return Err(OAuthError::invalid_request("code_verifier must be 43 to 128 unreserved characters"));
    }
    let now = server.clock.now();
    let Some(row) = grants::find_code(conn, &fingerprint(code))? else {
        return Err(OAuthError::invalid_grant("the authorization code is unknown"));
    };
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
    }
    if row.used_at.is_some() {
        if let Some(grant_id) = &row.grant_id {
            revoke_grant(conn, server.clock.as_ref(), grant_id, "authorization code replayed")?;
        }
        return Err(OAuthError::invalid_grant(
            "the authorization code was already used; the tokens issued for it are revoked",
        ));
    }
    if now.naive_utc() >= row.expires_at {
        return Err(OAuthError::invalid_grant("the authorization code has expired"));
    }
    crate::pause::point("code:found", &client.client_id);
    match request.params.get("redirect_uri") {
        Some(given) if given != row.redirect_uri => {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's"));
        }
        None if row.redirect_uri_given => {
            return Err(OAuthError::invalid_grant("redirect_uri is required: the authorization request had one"));
        }
        _ => {}
    }
    check_pkce(client, &row, verifier)?;
    // What the person approved, as far as the client and the person may
    // still have it: the client may have been narrowed since the consent.
    let (audience, scope) =
        held_now(conn, server, client, &row.user_id, &row.audience, &Scopes::from_stored(&row.scope))?;
    if scope.is_empty() && !row.scope.is_empty() {
        return Err(OAuthError::invalid_grant(
            "the client may no longer have any of the scopes this code was issued for",
        ));
    }
    let grant = GrantRow {
        id: public_id("grt"),
        client_id: client.client_id.clone(),
        user_id: row.user_id.clone(),
        scope: scope.to_string(),
        audience: row.audience.clone(),
        created_at: now.naive_utc(),
        expires_at: (now + span(policy.absolute)).naive_utc(),
        revoked_at: None,
        nonce: row.nonce.clone(),
        auth_time: row.auth_time,
        sid: row.sid.clone(),
    };
    let refresh = (client.allows_grant(GrantType::RefreshToken) && scope.contains(OFFLINE_ACCESS)).then_some(policy);
    let issued = tokens_for(conn, server, client, &grant, &audience, &scope, refresh)?;
    let redeemed = issued.commit(conn, &grant.id, |conn| {
        grants::insert_grant(conn, &grant)?;
        let spent = grants::use_code(conn, &row.id, now.naive_utc(), &grant.id)?;
        if spent {
            // Holding the code's row, the transaction still open.
            crate::pause::point("code:redeeming", &client.client_id);
        }
        Ok(spent)
    })?;
    match redeemed {
        Some(response) => Ok(response),
        None => {
            // Another request redeemed it a moment ago: a replay all the
            // same. This one's tokens were never recorded nor given out.
            if let Some(other) = grants::find_code(conn, &row.id)?.and_then(|r| r.grant_id) {
                revoke_grant(conn, server.clock.as_ref(), &other, "authorization code replayed")?;
            }
            Err(OAuthError::invalid_grant(
                "the authorization code was already used; the tokens issued for it are revoked",
            ))
        }
    }
}

/// PKCE at redemption, with downgrade protection (RFC 9700 §2.1.1): a code
/// issued with a challenge needs its verifier; a code issued without one
/// refuses a verifier, and is only redeemable by a client whose policy
/// still lets it skip PKCE.
fn check_pkce(client: &Client, row: &grants::CodeRow, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (row.code_challenge.as_str(), verifier) {
        ("", None) if client.require_pkce => {
            Err(OAuthError::invalid_grant("this client must use PKCE, and the code was issued without it"))
        }
        ("", None) => Ok(()),
        ("", Some(_)) => Err(OAuthError::invalid_grant(
            "the code was issued without a code_challenge, so a code_verifier is refused",
        )),
        (_, None) => Err(OAuthError::invalid_request(
            "code_verifier is missing: the code was issued with a code_challenge (PKCE)",
        )),
        (challenge, Some(v)) if constant_time_eq(s256(v).as_bytes(), challenge.as_bytes()) => Ok(()),
        (_, Some(_)) => Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge")),
    }
}

/// A refresh token's row and grant, if the token is known.
pub fn find_refresh(conn: &mut DbConn, token: &str) -> Result<Option<(RefreshRow, GrantRow)>, StoreError> {
    let Some(row) = grants::find_refresh(conn, &fingerprint(token))? else {
        return Ok(None);
    };
    Ok(grants::find_grant(conn, &row.grant_id)?.map(|g| (row, g)))
}

/// Whether a refresh token can be used now.
pub fn refresh_is_live(row: &RefreshRow, grant: &GrantRow, now: chrono::NaiveDateTime) -> bool {
    row.used_at.is_none() && grant.revoked_at.is_none() && now < row.expires_at && now < grant.expires_at
}

/// `grant_type=refresh_token`. Of two requests with the same token,
/// exactly one gets new tokens; the other is a reuse and revokes the
/// family (the server cannot tell a race from a theft).
pub fn refresh_token(
    conn: &mut DbConn,
    server: &AuthServer,
    policy: &RefreshPolicy,
    client: &Client,
    request: &Request,
) -> Result<TokenResponse, OAuthError> {
    let token = request.params.require("refresh_token")?;
    let requested = request.params.get("scope").map(Scopes::parse).transpose().map_err(OAuthError::invalid_scope)?;
    let Some((row, grant)) = find_refresh(conn, token)? else {
        return Err(OAuthError::invalid_grant("the refresh token is unknown"));
    };
    if grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    let reuse = || OAuthError::invalid_grant("the refresh token was already used; its whole family is revoked");
    if row.used_at.is_some() {
        revoke_grant(conn, server.clock.as_ref(), &grant.id, "refresh token reused")?;
        return Err(reuse());
    }
    let now = server.clock.now().naive_utc();
    if grant.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant("the refresh token has been revoked"));
    }
    if now >= row.expires_at || now >= grant.expires_at {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    crate::pause::point("refresh:found", &client.client_id);
    // The grant as the client and the person may still hold it.
    let stored = Scopes::from_stored(&grant.scope);
    let (audience, granted) = held_now(conn, server, client, &grant.user_id, &grant.audience, &stored)?;
    if !granted.contains(OFFLINE_ACCESS) {
        return Err(OAuthError::invalid_grant(
            "this client may no longer keep access while the person is away (offline_access)",
        ));
    }
    let scope = match requested {
        None => granted.clone(),
        Some(asked) if asked.is_subset(&granted) => asked,
        Some(asked) => {
            return Err(OAuthError::invalid_scope(format!(
                "a refresh may only narrow the scope; not granted: {}",
                asked.missing_from(&granted)
            )));
        }
    };
    // The new refresh token keeps the grant's full scope (RFC 6749 §6);
    // the access token carries the narrowed one.
    let issued = tokens_for(conn, server, client, &grant, &audience, &scope, Some(policy))?;
    // A grant narrowed since is narrowed for good: widening the client
    // again later gives the old grant nothing back.
    let narrowed = (granted != stored).then(|| granted.to_string());
    let spend = |conn: &mut DbConn| {
        if let Some(scope) = &narrowed {
            grants::narrow_grant(conn, &grant.id, scope)?;
        }
        let spent = grants::use_refresh(conn, &row.id, now)?;
        if spent {
            crate::pause::point("refresh:redeeming", &client.client_id);
        }
        Ok(spent)
    };
    match issued.commit(conn, &grant.id, spend)? {
        Some(response) => Ok(response),
        None => {
            revoke_grant(conn, server.clock.as_ref(), &grant.id, "refresh token reused concurrently")?;
            Err(reuse())
        }
    }
}
