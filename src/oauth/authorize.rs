//! The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207): the
//! checks, in the order that decides whether an error may be redirected,
//! then consent and the authorization code.
//!
//! 1. `client_id` and `redirect_uri` — until both are trusted, errors are
//!    shown on a page and never redirected.
//! 2. Everything else — errors go back to the registered redirect URI with
//!    `error`, `error_description`, `state` and `iss`.

use std::sync::Arc;

use base64::Engine;

use super::access_token::{self, Audience};
use super::clients::{self, Client, GrantType, split_uri};
use super::{AuthServer, OAuthError, Params};
use crate::crypto::{SECRET_LEN_256_BITS, constant_time_eq, fingerprint, random_base62};
use crate::domain::scope::Scopes;
use crate::sessions::{self, Session, SessionError, SessionPolicy, Sessions};
use crate::store::grants::{self, CodeRow};
use crate::store::{DbConn, StoreError, users};

/// Authorization codes live this long.
pub const CODE_TTL_SECS: i64 = 60;
/// The scope that asks for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";
pub const MAX_STATE_LEN: usize = 2048;

/// `prompt` (OpenID Connect Core §3.1.2.1): a space-separated set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Never show a page: `login_required` / `consent_required` instead.
    pub none: bool,
    /// Sign in again, even with a live session.
    pub login: bool,
    /// Always show the consent page.
    pub consent: bool,
}

impl Prompt {
    /// The values this server acts on, for discovery.
    pub const SUPPORTED: [&str; 3] = ["none", "login", "consent"];

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut prompt = Self::default();
        for value in text.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                other => {
                    return Err(format!("prompt {} is not supported (none, login, consent)", super::printable(other)));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values".into());
        }
        Ok(prompt)
    }
}

/// The internal parameter the sign-in round trip adds to an authorization
/// request that asked for a fresh sign-in (`prompt=login`, or `max_age`
/// passed): a sign-in at or after this Unix time satisfies it. Its value is
/// `<time>.<MAC>`, the MAC over the time and the rest of the request under
/// the master key (`auth_after_mark`): anything else is ignored, so nobody
/// at the browser can add one to skip the sign-in the request demands.
pub const AUTH_AFTER: &str = "auth_after";

/// The value of `AUTH_AFTER` for a request of `pairs` (its own
/// `auth_after` left out) and a sign-in at or after `time`.
fn auth_after_mark(master: &crate::crypto::MasterKey, pairs: &[(String, String)], time: i64) -> String {
    let rest: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != AUTH_AFTER).cloned().collect();
    let tag = master.mac("tessera auth_after v1", format!("{time}\n{}", canonical_params(&rest)).as_bytes());
    format!("{time}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..16]))
}

/// The time a genuine `AUTH_AFTER` mark carries; `None` for any other value.
fn auth_after_of(master: &crate::crypto::MasterKey, params: &Params) -> Option<i64> {
    let given = params.get(AUTH_AFTER)?;
    let time: i64 = given.split_once('.')?.0.parse().ok()?;
    let expected = auth_after_mark(master, params.pairs(), time);
    crate::crypto::constant_time_eq(expected.as_bytes(), given.as_bytes()).then_some(time)
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub scope: Scopes,
    pub audience: String,
    /// The S256 challenge; `None` only for a client whose PKCE policy is
    /// `optional` and that sent none.
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    /// OpenID Connect: echoed in the ID token.
    pub nonce: Option<String>,
    /// OpenID Connect: the longest ago, in seconds, the person may have
    /// signed in.
    pub max_age: Option<i64>,
    /// OpenID Connect: the email to pre-fill on the sign-in page.
    pub login_hint: Option<String>,
    /// See `AUTH_AFTER`.
    pub auth_after: Option<i64>,
    /// The parameters as received, for the consent form to send back.
    pub params: Vec<(String, String)>,
    /// A client that registered itself: its redirect URI is whatever its
    /// registrant chose, so an error is shown here rather than sent there
    /// (RFC 9700 §4.11.2); only a person's own decision on the consent
    /// page sends them to it.
    pub self_registered: bool,
}

/// An error to send back to the client's redirect URI.
#[derive(Debug, Clone)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    pub error: &'static str,
    pub description: String,
    pub state: Option<String>,
}

impl ErrorRedirect {
    /// The redirect; or, for a self-registered client (`untrusted`), a
    /// page saying what went wrong, which sends nobody anywhere.
    pub fn or_page(self, untrusted: bool) -> AuthorizeError {
        if !untrusted {
            return AuthorizeError::Redirect(self);
        }
        AuthorizeError::Page {
            status: 400,
            message: format!(
                "This request from an application that registered itself cannot continue ({}: {}), and you were not sent back to it.",
                self.error, self.description
            ),
        }
    }

    pub fn url(&self, issuer: &str) -> String {
        let mut pairs = vec![("error", self.error), ("error_description", self.description.as_str())];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", issuer));
        redirect_with(&self.redirect_uri, &pairs)
    }
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted (or the server
    /// failed): a page, never a redirect.
    Page {
        status: u16,
        message: String,
    },
    Redirect(ErrorRedirect),
}

impl From<SessionError> for AuthorizeError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for AuthorizeError {
    fn from(e: StoreError) -> Self {
        let e = OAuthError::from(e);
        Self::Page { status: e.status.as_u16(), message: e.description.into_owned() }
    }
}

/// `uri` with `pairs` added to its query.
pub fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// RFC 3986 comparison: scheme and host case-insensitive, the rest exact.
pub fn redirect_uri_matches(registered: &str, given: &str) -> bool {
    let (s1, a1, r1) = split_uri(registered);
    let (s2, a2, r2) = split_uri(given);
    s1 == s2 && a1 == a2 && r1 == r2 && !s1.is_empty()
}

/// RFC 7636 §4.2: 43 characters of base64url (S256 of a verifier).
fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: 43–128 unreserved characters.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// BASE64URL(SHA256(verifier)).
pub fn s256(verifier: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The scopes a client may be granted for an audience in a user flow: its
/// own scopes (within what a resource server defines), plus
/// `offline_access` when it may use refresh tokens.
pub fn grantable(client: &Client, audience: &Audience) -> Scopes {
    let mut allowed = access_token::allowed_scopes(client, audience);
    if client.allows_grant(GrantType::RefreshToken) {
        allowed = allowed.union(&Scopes::from_stored(OFFLINE_ACCESS));
    }
    allowed
}

/// Checks an authorization request in the order that keeps redirects safe.
pub fn validate(conn: &mut DbConn, server: &AuthServer, params: &Params) -> Result<AuthorizeRequest, AuthorizeError> {
    let page = |message: &str| AuthorizeError::Page { status: 400, message: message.to_string() };
    for name in ["client_id", "redirect_uri"] {
        if params.repeated().iter().any(|r| r == name) {
            return Err(page(&format!("The {name} parameter appears more than once.")));
        }
    }
    let Some(client_id) = params.get("client_id") else {
        return Err(page("The request names no application (client_id is missing)."));
    };
    let client = match clients::find(conn, client_id) {
        Ok(Some(c)) if clients::usable(conn, &server.cache, &c)? => c,
        Ok(_) => return Err(page("The application that sent you here is not registered or is disabled.")),
        Err(clients::ClientError::Store(e)) => return Err(e.into()),
        Err(_) => return Err(page("The application that sent you here is not usable.")),
    };
    let (redirect_uri, given) = match params.get("redirect_uri") {
        Some(given) => match client.redirect_uris.iter().find(|r| redirect_uri_matches(r, given)) {
            Some(_) => (given.to_string(), true),
            None => {
                return Err(page(
                    "The redirect URI is not registered for this application, so you were not sent back to it.",
                ));
            }
        },
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            [] => return Err(page("This application has no registered redirect URI.")),
            _ => return Err(page("The request names no redirect URI, and the application has several.")),
        },
    };
    let state = params.get("state").map(str::to_string);
    let self_registered = super::registration::is_self_registered(conn, &client.client_id)?;
    let fail = |error: &'static str, description: &str| {
        let state = state.clone().filter(|s| s.len() <= MAX_STATE_LEN);
        ErrorRedirect { redirect_uri: redirect_uri.clone(), error, description: description.to_string(), state }
            .or_page(self_registered)
    };
    if let Some(name) = params.repeated().first() {
        return Err(fail(
            "invalid_request",
            &format!("the parameter {} appears more than once", super::printable(name)),
        ));
    }
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(fail("invalid_request", "state is longer than 2048 characters"));
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return Err(fail("invalid_request", "response_type is missing")),
        Some(_) => return Err(fail("unsupported_response_type", "only response_type=code is supported")),
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail("unauthorized_client", "this client may not use the authorization code grant"));
    }
    let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, Some(_)) => {
            return Err(fail("invalid_request", "code_challenge_method was sent without code_challenge"));
        }
        (None, None) if client.require_pkce => {
            return Err(fail("invalid_request", "PKCE is required: code_challenge is missing"));
        }
        (None, None) => None,
        (Some(_), Some(m)) if m != "S256" => {
            return Err(fail("invalid_request", "code_challenge_method must be S256"));
        }
        (Some(_), None) => {
            return Err(fail("invalid_request", "code_challenge_method is missing (plain is not accepted; use S256)"));
        }
        (Some(c), Some(_)) if !valid_challenge(c) => {
            return Err(fail("invalid_request", "code_challenge must be 43 base64url characters (S256)"));
        }
        (Some(c), Some(_)) => Some(c.to_string()),
    };
    let prompt = match params.get("prompt").map(Prompt::parse).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(why) => return Err(fail("invalid_request", &why)),
    };
    let nonce = params.get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.is_empty() || n.len() > super::id_token::MAX_NONCE_LEN) {
        return Err(fail("invalid_request", "nonce must be 1 to 512 characters"));
    }
    let max_age = match params.get("max_age").map(str::parse::<u32>).transpose() {
        Ok(m) => m.map(i64::from),
        Err(_) => return Err(fail("invalid_request", "max_age must be a number of seconds")),
    };
    let auth_after = auth_after_of(server.keys.master(), params);
    let login_hint = params.get("login_hint").filter(|h| h.len() <= 254 && !h.contains(char::is_control));
    for unsupported in ["request", "request_uri"] {
        if params.get(unsupported).is_some() {
            let error = if unsupported == "request" { "request_not_supported" } else { "request_uri_not_supported" };
            return Err(fail(error, &format!("the {unsupported} parameter is not supported")));
        }
    }
    let requested_audience = match (params.get("resource"), params.get("audience")) {
        (Some(r), Some(a)) if r != a => return Err(fail("invalid_target", "resource and audience differ")),
        (r, a) => r.or(a),
    };
    let audience = access_token::resolve_audience(conn, server, &client, requested_audience)
        .map_err(|e| redirect_or_page(e, &fail))?;
    let requested = match params.get("scope").map(Scopes::parse).transpose() {
        Ok(s) => s,
        Err(e) => return Err(fail("invalid_scope", &e)),
    };

    let scope = access_token::choose_scope(&grantable(&client, &audience), requested)
        .map_err(|e| redirect_or_page(e, &fail))?;
    // Without PKCE, only the nonce ties an ID token to the browser that
    // asked for it (code injection, RFC 9700 §4.5.3.2).
    if code_challenge.is_none() && scope.contains(super::id_token::OPENID) && nonce.is_none() {
        return Err(fail("invalid_request", "an OpenID Connect request without PKCE needs a nonce"));
    }
    Ok(AuthorizeRequest {
        client,
        redirect_uri,
        redirect_uri_given: given,
        state,
        scope,
        audience: audience.identifier,
        code_challenge,
        prompt,
        nonce,
        max_age,
        login_hint: login_hint.map(str::to_string),
        auth_after,
        params: params.pairs().to_vec(),
        self_registered,
    })
}

/// A client error becomes a redirect; a server error stays a page.
fn redirect_or_page(e: OAuthError, fail: &dyn Fn(&'static str, &str) -> AuthorizeError) -> AuthorizeError {
    if e.status.is_server_error() {
        AuthorizeError::Page { status: e.status.as_u16(), message: e.description.into_owned() }
    } else {
        fail(e.error, &e.description)
    }
}

/// How an audience is kept in `consents`: the server's own API as the
/// empty string — rows from before audiences were recorded all meant it,
/// and it stays the same API if `TESSERA_DEFAULT_AUDIENCE` changes.
fn consent_audience<'a>(server: &AuthServer, audience: &'a str) -> &'a str {
    if audience == server.default_audience { "" } else { audience }
}

/// The requested scopes the person has not granted this client for this
/// audience yet (all of them with `prompt=consent`).
pub fn needs_consent(
    conn: &mut DbConn,
    server: &AuthServer,
    req: &AuthorizeRequest,
    user_id: &str,
) -> Result<Vec<String>, StoreError> {
    if req.prompt.consent {
        return Ok(req.scope.iter().map(str::to_string).collect());
    }
    let audience = consent_audience(server, &req.audience);
    let granted = grants::consented_scopes(conn, user_id, &req.client.client_id, audience)?;
    Ok(req.scope.iter().filter(|s| !granted.iter().any(|g| g == s)).map(str::to_string).collect())
}

/// Remembers that the person granted the requested scopes for the
/// request's audience.
pub fn record_consent(
    conn: &mut DbConn,
    server: &AuthServer,
    req: &AuthorizeRequest,
    user_id: &str,
) -> Result<(), StoreError> {
    let scopes: Vec<&str> = req.scope.iter().collect();
    let audience = consent_audience(server, &req.audience);
    grants::add_consent(conn, user_id, &req.client.client_id, audience, &scopes, server.clock.now().naive_utc())
}

/// Issues a code for the request made in `session` and returns the URL to
/// send the person back to, with `code`, `state` and `iss`.
pub fn issue_code(
    conn: &mut DbConn,
    server: &AuthServer,
    req: &AuthorizeRequest,
    session: &Session,
) -> Result<String, StoreError> {
    let user_id = session.user.id.as_str();
    let code = random_base62(SECRET_LEN_256_BITS);
    let now = server.clock.now();
    grants::insert_code(
        conn,
        &CodeRow {
            id: fingerprint(&code),
            client_id: req.client.client_id.clone(),
            user_id: user_id.to_string(),
            redirect_uri: req.redirect_uri.clone(),
            redirect_uri_given: req.redirect_uri_given,
            code_challenge: req.code_challenge.clone().unwrap_or_default(),
            scope: req.scope.to_string(),
            audience: req.audience.clone(),
            created_at: now.naive_utc(),
            expires_at: (now + chrono::Duration::seconds(CODE_TTL_SECS)).naive_utc(),
            used_at: None,
            grant_id: None,
            nonce: req.nonce.clone(),
            auth_time: Some(session.signed_in_at.naive_utc()),
            sid: Some(super::id_token::session_sid(server.keys.master(), &session.id)),
        },
    )?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &req.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &server.issuer));
    Ok(redirect_with(&req.redirect_uri, &pairs))
}

/// The parameters of an authorization request in a canonical form, for
/// binding a CSRF token to them (form fields of the consent page excluded).
pub fn canonical_params(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> =
        pairs.iter().filter(|(k, _)| k != "csrf_token" && k != "decision").collect();
    sorted.sort();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in sorted {
        out.append_pair(k, v);
    }
    out.finish()
}

/// What the authorization endpoint decided for a browser.
#[derive(Debug)]
pub enum Decision {
    /// Back to the client: a code, or an error such as `login_required`.
    Redirect(String),
    /// To the sign-in page, which sends the person back to `next` (this
    /// request); `fresh` asks for a sign-in even over a live session.
    SignIn { next: String, login_hint: Option<String>, fresh: bool },
    /// The consent page.
    Consent(Box<ConsentQuestion>),
}

/// What the consent page asks, and the token its form carries.
#[derive(Debug)]
pub struct ConsentQuestion {
    pub request: AuthorizeRequest,
    /// The scopes not granted yet (all of them with `prompt=consent`).
    pub needed: Vec<String>,
    /// The requested scopes granted before.
    pub already: Vec<String>,
    /// The client's owner, in words.
    pub owner: String,
    pub user_email: String,
    /// Whether the audience is the server's own API.
    pub default_audience: bool,
    /// Binds the form to this session and this exact request.
    pub csrf: String,
}

/// `GET`/`POST /oauth/authorize` for the browser with session `cookie`:
/// validates the request, then sends the person on — to sign in, to the
/// consent page, or back to the client with a code.
pub async fn authorize(
    sessions: &Sessions,
    server: Arc<AuthServer>,
    params: Params,
    cookie: Option<String>,
) -> Result<Decision, AuthorizeError> {
    let policy = sessions.policy;
    sessions.db.run(move |conn| decide(conn, &server, &policy, &params, cookie.as_deref())).await
}

fn decide(
    conn: &mut DbConn,
    server: &AuthServer,
    policy: &SessionPolicy,
    params: &Params,
    cookie: Option<&str>,
) -> Result<Decision, AuthorizeError> {
    let request = validate(conn, server, params)?;
    let refuse = |error: &'static str, description: &str| {
        let refusal = ErrorRedirect {
            redirect_uri: request.redirect_uri.clone(),
            error,
            description: description.to_string(),
            state: request.state.clone(),
        };
        match refusal.or_page(request.self_registered) {
            AuthorizeError::Redirect(e) => Ok(Decision::Redirect(e.url(&server.issuer))),
            page => Err(page),
        }
    };
    let session = match cookie {
        Some(c) => sessions::resolve(conn, server.clock.as_ref(), policy, c)?,
        None => None,
    };
    let now = server.clock.now().timestamp();
    let stale = |s: &Session| {
        let signed_in = s.signed_in_at.timestamp();
        match request.auth_after {
            // Back from the sign-in this request asked for.
            Some(after) => signed_in < after,
            None => request.prompt.login || request.max_age.is_some_and(|m| now - signed_in > m),
        }
    };
    let session = match session {
        Some(s) if !stale(&s) => s,
        found => {
            if request.prompt.none {
                return refuse("login_required", "the person must sign in");
            }
            let mut pairs: Vec<(String, String)> =
                params.pairs().iter().filter(|(k, _)| k != AUTH_AFTER).cloned().collect();
            // A sign-in over a live session must happen after now.
            let fresh = found.is_some() || request.prompt.login || request.max_age.is_some();
            if fresh {
                let mark = auth_after_mark(server.keys.master(), &pairs, now);
                pairs.push((AUTH_AFTER.to_string(), mark));
            }
            return Ok(Decision::SignIn {
                next: format!("{}?{}", super::AUTHORIZE_PATH, canonical_params(&pairs)),
                login_hint: request.login_hint.clone(),
                fresh,
            });
        }
    };
    let needed = needs_consent(conn, server, &request, &session.user.id)?;
    if needed.is_empty() {
        return Ok(Decision::Redirect(issue_code(conn, server, &request, &session)?));
    }
    if request.prompt.none {
        return refuse("consent_required", "the person has not approved these scopes for this application");
    }
    // A person is named by her email, which she cannot make read like
    // anything else (no spaces, nothing invisible): never by the name she
    // chose, which could say "the operator of this server".
    let owner = match &request.client.owner_id {
        Some(id) => users::find_by_id(conn, id)?.map_or("an account that no longer exists".to_string(), |u| {
            format!("{}, a person with an account on this server", u.email)
        }),
        None if super::registration::is_self_registered(conn, &request.client.client_id)? => {
            "itself: it is self-registered, and the operator of this server does not vouch for it".to_string()
        }
        None => "the operator of this server".to_string(),
    };
    let already = request.scope.iter().filter(|s| !needed.iter().any(|n| n == s)).map(str::to_string).collect();
    Ok(Decision::Consent(Box::new(ConsentQuestion {
        csrf: consent_token(server, &session, &request),
        default_audience: request.audience == server.default_audience,
        request,
        needed,
        already,
        owner,
        user_email: session.user.email,
    })))
}

const FORM_EXPIRED: &str = "The consent form expired, did not come from this page, or the application changed since. Start again from the application.";

/// The consent form's token: bound to the session, the exact request
/// (`canonical_params` leaves out the form's own fields), and what the
/// page said of the client (`Client::consent_digest`).
fn consent_token(server: &AuthServer, session: &Session, request: &AuthorizeRequest) -> String {
    let purpose = format!("{}\n{}", canonical_params(&request.params), request.client.consent_digest());
    crate::crypto::csrf_token(server.keys.master(), &session.id, &purpose)
}

/// What became of a consent form.
#[derive(Debug)]
pub enum ConsentOutcome {
    /// Back to the client: a code (approved) or `access_denied`.
    Redirect(String),
    /// Nothing recorded, for this reason (for the person).
    Refused(&'static str),
}

/// `POST /oauth/consent`: Approve or Deny, accepted only with the CSRF
/// token made for this session and this exact request. Approving records
/// the consent and issues a code; denying sends `access_denied`.
pub async fn consent(
    sessions: &Sessions,
    server: Arc<AuthServer>,
    params: Params,
    cookie: Option<String>,
) -> Result<ConsentOutcome, AuthorizeError> {
    let Some(session) = sessions.current(cookie).await? else {
        return Ok(ConsentOutcome::Refused("Your session has ended. Start again from the application."));
    };
    if !params.repeated().is_empty() {
        return Ok(ConsentOutcome::Refused(FORM_EXPIRED));
    }
    let approve = match params.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => return Ok(ConsentOutcome::Refused("Choose Approve or Deny.")),
    };
    sessions
        .db
        .run(move |conn| {
            let request = validate(conn, &server, &params)?;
            // Made for this session, this request, and the client as the
            // page showed it: changed since, the approval counts for nothing.
            let expected = consent_token(&server, &session, &request);
            let given = params.get("csrf_token").unwrap_or("");
            if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                return Ok(ConsentOutcome::Refused(FORM_EXPIRED));
            }
            if !approve {
                let denied = ErrorRedirect {
                    redirect_uri: request.redirect_uri.clone(),
                    error: "access_denied",
                    description: "the person denied the request".into(),
                    state: request.state.clone(),
                };
                return Ok(ConsentOutcome::Redirect(denied.url(&server.issuer)));
            }
            record_consent(conn, &server, &request, &session.user.id)?;
            Ok(ConsentOutcome::Redirect(issue_code(conn, &server, &request, &session)?))
        })
        .await
}
