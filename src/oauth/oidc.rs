//! The OpenID Connect endpoints besides the token endpoint: UserInfo
//! (Core §5.3) and RP-initiated logout (OpenID Connect RP-Initiated
//! Logout 1.0).

use std::sync::Arc;

use super::clients::{self, Client};
use super::id_token::{self, IdClaims, OPENID, PersonClaims};
use super::{AuthServer, OAuthError, Params, access_token};
use crate::domain::scope::Scopes;
use crate::sessions::{self, Session, SessionPolicy};
use crate::store::{Db, DbConn};

/// Why a UserInfo request is refused (RFC 6750 §3.1).
#[derive(Debug)]
pub enum UserInfoError {
    /// No token was sent: `WWW-Authenticate: Bearer` alone.
    NoToken,
    /// 401 `invalid_token`.
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`: a good token without `openid`.
    InsufficientScope,
    Server(OAuthError),
}

impl From<OAuthError> for UserInfoError {
    fn from(e: OAuthError) -> Self {
        Self::Server(e)
    }
}

impl From<crate::store::StoreError> for UserInfoError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Server(e.into())
    }
}

/// The claims about the person an access token acts for, as its scopes
/// release them. The token must be live, for this server's own API (not a
/// resource server's), and a person's (not a client's own).
pub fn userinfo(conn: &mut DbConn, server: &AuthServer, token: Option<&str>) -> Result<PersonClaims, UserInfoError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(UserInfoError::NoToken);
    };
    let invalid = || UserInfoError::InvalidToken("The access token is invalid, expired or revoked");
    let resource_signed =
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid).is_some_and(|k| k.starts_with("rs_"));
    let claims = match access_token::active(conn, server, token)? {
        Some(c) if !resource_signed && c.aud == server.default_audience => c,
        _ => return Err(invalid()),
    };
    let scope = Scopes::from_stored(claims.scope.as_deref().unwrap_or(""));
    if !scope.contains(OPENID) {
        return Err(UserInfoError::InsufficientScope);
    }
    if claims.gid.is_none() {
        return Err(UserInfoError::InvalidToken("The access token does not act for a person"));
    }
    id_token::person_claims(conn, &claims.sub, &scope)?.ok_or_else(invalid)
}

/// `GET`/`POST /oauth/userinfo`, as the HTTP layer calls it.
pub async fn serve_userinfo(
    db: &Db,
    server: Arc<AuthServer>,
    token: Option<String>,
) -> Result<PersonClaims, UserInfoError> {
    match db.run(move |conn| userinfo(conn, &server, token.as_deref()).map_err(Wrapped)).await {
        Ok(claims) => Ok(claims),
        Err(Wrapped(e)) => Err(e),
    }
}

/// Carries a `UserInfoError` through `Db::run` (whose error type must come
/// from a storage error).
struct Wrapped(UserInfoError);

impl From<crate::store::StoreError> for Wrapped {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

/// A checked RP-initiated logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The client the request comes from (named by `client_id` or the
    /// hint's `aud`).
    pub client: Option<Client>,
    pub hint: Option<IdClaims>,
    /// Where to send the person afterwards, `state` included; only ever a
    /// URI registered for `client`.
    pub redirect: Option<String>,
    /// The parameters as received, for the confirmation form.
    pub params: Vec<(String, String)>,
}

/// What the logout endpoint does for a browser.
#[derive(Debug)]
pub enum LogoutDecision {
    /// Go to `redirect`, or show that the person is signed out (with
    /// `link`, the checked post-logout URI, to follow by hand when nothing
    /// vouches enough for a redirect); `ended` says whether a session was
    /// ended here (only then is the cookie cleared: a cross-site POST
    /// arrives without it, and must not sign the person out behind the
    /// server's back).
    SignedOut { redirect: Option<String>, link: Option<String>, ended: bool },
    /// Ask the person first: the hint is missing or names another session.
    Confirm { request: Box<LogoutRequest>, csrf: String, user_email: String },
    /// Nothing is trusted enough to redirect to: a page.
    Refuse(String),
}

/// Checks a logout request: the hint, the client, and the post-logout
/// redirect URI (an exact match among the client's registered ones).
pub fn check_logout(conn: &mut DbConn, server: &AuthServer, params: &Params) -> Result<LogoutRequest, LogoutRefusal> {
    if let Some(name) = params.repeated().first() {
        return Err(LogoutRefusal::Page(format!("The parameter {} appears more than once.", super::printable(name))));
    }
    let hint = match params.get("id_token_hint") {
        None => None,
        Some(text) => match id_token::verify_hint(conn, server, text)? {
            Some(claims) => Some(claims),
            None => return Err(LogoutRefusal::Page("The id_token_hint is not an ID token this server issued.".into())),
        },
    };
    let client_id = match (params.get("client_id"), &hint) {
        (Some(given), Some(h)) if given != h.aud => {
            return Err(LogoutRefusal::Page("client_id differs from the audience of the id_token_hint.".into()));
        }
        (Some(given), _) => Some(given.to_string()),
        (None, Some(h)) => Some(h.aud.clone()),
        (None, None) => None,
    };
    let client = match client_id {
        None => None,
        Some(id) => match clients::find(conn, &id) {
            Ok(Some(c)) if clients::usable(conn, &server.cache, &c)? => Some(c),
            Ok(_) => return Err(LogoutRefusal::Page("The application is not registered or is disabled.".into())),
            Err(clients::ClientError::Store(e)) => return Err(LogoutRefusal::Server(e.into())),
            Err(e) => return Err(LogoutRefusal::Server(OAuthError::server_error(&e))),
        },
    };
    let state = params.get("state").filter(|s| s.len() <= super::authorize::MAX_STATE_LEN);
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client) = &client else {
                return Err(LogoutRefusal::Page(
                    "A post_logout_redirect_uri needs client_id or id_token_hint to say whose it is.".into(),
                ));
            };
            if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
                return Err(LogoutRefusal::Page(
                    "The post-logout redirect URI is not registered for this application, so you were not sent to it."
                        .into(),
                ));
            }
            Some(match state {
                Some(state) => super::authorize::redirect_with(uri, &[("state", state)]),
                None => uri.to_string(),
            })
        }
    };
    Ok(LogoutRequest { client, hint, redirect, params: params.pairs().to_vec() })
}

/// Why a logout request is refused.
#[derive(Debug)]
pub enum LogoutRefusal {
    Page(String),
    Server(OAuthError),
}

impl From<OAuthError> for LogoutRefusal {
    fn from(e: OAuthError) -> Self {
        Self::Server(e)
    }
}

impl From<crate::store::StoreError> for LogoutRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Server(e.into())
    }
}

/// The CSRF token of the logout confirmation: bound to the session and to
/// the exact request (`canonical_params` leaves out the form's own
/// `csrf_token` and `decision`).
fn confirm_token(server: &AuthServer, session: &Session, params: &[(String, String)]) -> String {
    let purpose = format!("end_session\n{}", super::authorize::canonical_params(params));
    crate::crypto::csrf_token(server.keys.master(), &session.id, &purpose)
}

/// `GET`/`POST /oauth/logout`. Without `decision=logout` (the
/// confirmation form's button): signs out at once when the hint names this
/// session and its person, else asks. With it: signs out only with the
/// form's token made for this session and this exact request.
pub fn logout(
    conn: &mut DbConn,
    server: &AuthServer,
    policy: &SessionPolicy,
    params: &Params,
    cookie: Option<&str>,
    ip: Option<&str>,
) -> Result<LogoutDecision, LogoutRefusal> {
    let request = match check_logout(conn, server, params) {
        Ok(r) => r,
        Err(LogoutRefusal::Page(message)) => return Ok(LogoutDecision::Refuse(message)),
        Err(e) => return Err(e),
    };
    let session = match cookie {
        Some(c) => sessions::resolve(conn, server.clock.as_ref(), policy, c)?,
        None => None,
    };
    // A hint older than a session can live names no session that still
    // exists: it may be a link made long ago and passed around, and is
    // never enough to send anyone anywhere.
    let oldest = server.clock.now().timestamp().saturating_sub(policy.absolute.as_secs() as i64);
    let fresh_hint = request.hint.as_ref().filter(|h| h.iat >= oldest);
    let Some(session) = session else {
        // Nothing to end. Only a fresh, verified hint vouches for the
        // redirect (RP-Initiated Logout §3), and only for a client no
        // person owns (the operator's): anyone who can sign in could mint
        // a hint for a client of their own, or a self-registered one, and
        // bounce visitors off this origin to a URI they registered (RFC
        // 9700 §4.11.2). Otherwise the page shows the URI as a link.
        let operators = match &request.client {
            Some(client) => {
                client.owner_id.is_none() && !super::registration::is_self_registered(conn, &client.client_id)?
            }
            None => false,
        };
        return Ok(if fresh_hint.is_some() && operators {
            LogoutDecision::SignedOut { redirect: request.redirect, link: None, ended: false }
        } else {
            LogoutDecision::SignedOut { redirect: None, link: request.redirect, ended: false }
        });
    };
    let confirmed = if params.get("decision") == Some("logout") {
        let expected = confirm_token(server, &session, params.pairs());
        let given = params.get("csrf_token").unwrap_or("");
        if !crate::crypto::constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Ok(LogoutDecision::Refuse(
                "The sign-out form expired or did not come from this page. Start again from the application.".into(),
            ));
        }
        true
    } else {
        let sid = id_token::session_sid(server.keys.master(), &session.id);
        fresh_hint.is_some_and(|h| h.person.sub == session.user.id && h.sid.as_deref() == Some(&sid))
    };
    if !confirmed {
        return Ok(LogoutDecision::Confirm {
            csrf: confirm_token(server, &session, params.pairs()),
            user_email: session.user.email.clone(),
            request: Box::new(request),
        });
    }
    sessions::end(conn, server.clock.as_ref(), &session, ip)?;
    Ok(LogoutDecision::SignedOut { redirect: request.redirect, link: None, ended: true })
}

/// `/oauth/logout`, as the HTTP layer calls it.
pub async fn serve_logout(
    db: &Db,
    server: Arc<AuthServer>,
    policy: SessionPolicy,
    params: Params,
    cookie: Option<String>,
    ip: Option<String>,
) -> Result<LogoutDecision, LogoutRefusal> {
    db.run(move |conn| logout(conn, &server, &policy, &params, cookie.as_deref(), ip.as_deref())).await
}
