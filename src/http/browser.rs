//! What a person's browser sees: sign-in, sign-out, the authorization
//! endpoint and the consent page. Each handler reads the request, calls
//! one service (`sessions::Sessions`, `oauth::authorize`) and renders an
//! askama page or a redirect; the rules live in those services.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::pages::{error_page, render};
use crate::accounts::MAX_PASSWORD_BYTES;
use crate::crypto::{Secret, constant_time_eq, random_base62};
use crate::oauth::authorize::{self, AuthorizeError, ConsentOutcome, ConsentQuestion, Decision};
use crate::oauth::{OAuthError, Params, TooManyParams};
use crate::sessions::{SessionPolicy, Sessions, SignIn, SignInAttempt, SignOut};
use crate::uri::next::LocalPath;

pub const SESSION_COOKIE: &str = "tessera_session";
/// Double-submit cookie against login CSRF (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "tessera_login";

/// The session services, configured from the application state.
pub(super) fn sessions(state: &AppState) -> Sessions {
    Sessions {
        db: state.db.clone(),
        clock: state.clock.clone(),
        policy: SessionPolicy {
            idle: state.config.session_idle_ttl,
            absolute: state.config.session_ttl,
            max_failures: state.config.login_max_failures,
        },
        master: state.master_key.clone(),
        hashes: state.hashes.clone(),
        failures: state.failure_audit.clone(),
    }
}

fn cookie(state: &AppState, name: &'static str, value: String, max_age: std::time::Duration) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .finish()
}

/// The removal of the session cookie.
pub(super) fn expired_session_cookie(state: &AppState) -> Cookie<'static> {
    expired_cookie(state, SESSION_COOKIE)
}

fn expired_cookie(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(state, name, String::new(), std::time::Duration::ZERO);
    c.make_removal();
    c
}

pub(super) fn peer_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let trusted = req.app_data::<web::Data<AppState>>().map(|s| s.config.trusted_proxies.clone()).unwrap_or_default();
    super::client_ip(req, &trusted)
}

pub(super) fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_string())
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, location)).finish()
}

fn server_error_page(e: impl Into<OAuthError>) -> HttpResponse {
    let e = e.into();
    error_page(e.status, "Something went wrong", &e.description)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
}

/// The login form with a fresh double-submit token.
fn login_form(state: &AppState, status: StatusCode, next: &str, email: &str, error: Option<&str>) -> HttpResponse {
    let csrf = random_base62(32);
    let mut res = render(status, &LoginPage { next, email, error, csrf: &csrf });
    let _ = res.add_cookie(&cookie(state, LOGIN_CSRF_COOKIE, csrf, std::time::Duration::from_secs(3600)));
    res
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// An email to pre-fill (OpenID Connect `login_hint`).
    login_hint: Option<String>,
    /// `login`: show the form even over a live session (the application
    /// asked for a fresh sign-in).
    prompt: Option<String>,
}

/// `GET /login`.
pub async fn login_page(state: web::Data<AppState>, req: HttpRequest, query: web::Query<NextQuery>) -> HttpResponse {
    let next = LocalPath::parse_or_root(query.next.as_deref());
    let hint = query.login_hint.as_deref().filter(|h| h.len() <= 254).unwrap_or("");
    let fresh = query.prompt.as_deref() == Some("login");
    match sessions(&state).current(session_cookie(&req)).await {
        Ok(Some(_)) if !next.is_root() && !fresh => redirect(next.as_str()),
        Ok(_) => login_form(&state, StatusCode::OK, next.as_str(), hint, None),
        Err(e) => server_error_page(e),
    }
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /login`: a new session on success (the old one, if any, ends).
pub async fn login(state: web::Data<AppState>, req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let form = form.into_inner();
    let next = LocalPath::parse_or_root(form.next.as_deref());
    let next = next.as_str();
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf_token.as_bytes()) {
        return login_form(
            &state,
            StatusCode::BAD_REQUEST,
            next,
            &form.email,
            Some("The sign-in form expired or came from another site. Please try again."),
        );
    }
    if form.email.len() > 254 || form.password.len() > MAX_PASSWORD_BYTES {
        return login_form(&state, StatusCode::UNAUTHORIZED, next, "", Some("Wrong email or password."));
    }
    // Attempts per IP, before argon2 runs: across the fleet with Redis,
    // refused while the shared limiter is unreachable.
    if let Err(e) = state.limits.check_signin(peer_ip(&req)).await {
        let status = e.kind.status();
        let message = if status == StatusCode::TOO_MANY_REQUESTS {
            "Too many sign-in attempts from your network. Please wait a moment and try again."
        } else {
            "Signing in is unavailable for a moment. Please try again shortly."
        };
        let mut res = login_form(&state, status, next, &form.email, Some(message));
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(e.retry_after.unwrap_or(1)));
        return res;
    }
    let attempt = SignInAttempt {
        email: form.email.clone(),
        password: Secret::new(form.password),
        ip: peer_ip(&req),
        previous: session_cookie(&req),
    };
    match sessions(&state).sign_in(attempt).await {
        Ok(SignIn::Success { session, .. }) => {
            let mut res = redirect(next);
            let _ =
                res.add_cookie(&cookie(&state, SESSION_COOKIE, session.expose().to_string(), state.config.session_ttl));
            let _ = res.add_removal_cookie(&expired_cookie(&state, LOGIN_CSRF_COOKIE));
            res
        }
        Ok(SignIn::Invalid) => {
            login_form(&state, StatusCode::UNAUTHORIZED, next, &form.email, Some("Wrong email or password."))
        }
        Ok(SignIn::Busy { retry_after }) => {
            let message = "The server is checking as many passwords as it can right now. Please try again in a moment.";
            let mut res = login_form(&state, StatusCode::SERVICE_UNAVAILABLE, next, &form.email, Some(message));
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            res
        }
        Ok(SignIn::Throttled { retry_after }) => {
            let minutes = retry_after.div_ceil(60);
            let message = format!(
                "Too many failed sign-ins. For your safety, signing in is paused: try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut res = login_form(&state, StatusCode::TOO_MANY_REQUESTS, next, &form.email, Some(&message));
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            res
        }
        Err(e) => server_error_page(e),
    }
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout`: ends the session server-side and clears the cookie.
pub async fn logout(state: web::Data<AppState>, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    match sessions(&state).sign_out(session_cookie(&req), &form.csrf_token, peer_ip(&req)).await {
        Ok(SignOut::Refused) => {
            error_page(StatusCode::BAD_REQUEST, "Sign-out refused", "The sign-out form expired; please try again.")
        }
        Ok(SignOut::Done) => {
            let mut res = redirect("/");
            let _ = res.add_removal_cookie(&expired_cookie(&state, SESSION_COOKIE));
            res
        }
        // No live session: nothing to end, and no cookie to clear (a
        // cross-site POST arrives without it under SameSite=Lax; clearing
        // the browser's cookie would sign the person out without their
        // form).
        Ok(SignOut::NoSession) => redirect("/"),
        Err(e) => server_error_page(e),
    }
}

struct ScopeLine {
    scope: String,
    description: String,
}

/// What a scope lets an application do, in plain words.
fn describe_scope(scope: &str) -> String {
    match scope {
        authorize::OFFLINE_ACCESS => "Keep access while you are away (stay connected until you revoke it)".into(),
        "openid" => "Sign you in with your Tessera account (your user id)".into(),
        "profile" => "See your name".into(),
        "email" => "See your email address".into(),
        "read" => "Read your data".into(),
        "write" => "Create and change your data".into(),
        "delete" => "Delete your data".into(),
        "admin" => "Administer your account, including other people's data you manage".into(),
        other => match other.rsplit_once(':') {
            Some((thing, "read")) => format!("Read your {thing}"),
            Some((thing, "write")) => format!("Create and change your {thing}"),
            Some((thing, "delete")) => format!("Delete your {thing}"),
            _ => format!("Use the permission “{other}”"),
        },
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    owner: &'a str,
    user_email: &'a str,
    /// The API the application asks to reach (the token's audience).
    audience: &'a str,
    default_audience: bool,
    scopes: Vec<ScopeLine>,
    already: String,
    params: &'a [(String, String)],
    csrf: &'a str,
    redirect_host: &'a str,
}

fn consent_page(question: &ConsentQuestion) -> HttpResponse {
    let request = &question.request;
    let (_, host, _) = crate::oauth::clients::split_uri(&request.redirect_uri);
    let page = ConsentPage {
        client_name: &request.client.name,
        owner: &question.owner,
        user_email: &question.user_email,
        audience: &request.audience,
        default_audience: question.default_audience,
        scopes: question
            .needed
            .iter()
            .map(|s| ScopeLine { scope: s.clone(), description: describe_scope(s) })
            .collect(),
        already: question.already.join(", "),
        params: &request.params,
        csrf: &question.csrf,
        redirect_host: if host.is_empty() { &request.redirect_uri } else { &host },
    };
    render(StatusCode::OK, &page)
}

/// An error of the authorization endpoint: a page while the client or its
/// redirect URI is not trusted, else a redirect to the client.
fn authorize_error(state: &AppState, e: AuthorizeError) -> HttpResponse {
    match e {
        AuthorizeError::Page { status, message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            error_page(status, "This request cannot continue", &message)
        }
        AuthorizeError::Redirect(e) => redirect(&e.url(&state.issuer)),
    }
}

/// Too many parameters: a page, since nothing in the request is trusted
/// yet to redirect to.
fn too_many_params(e: TooManyParams) -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "This request cannot continue", &format!("Refused: {e}."))
}

async fn authorize_with(state: web::Data<AppState>, req: HttpRequest, params: Params) -> HttpResponse {
    match authorize::authorize(&sessions(&state), state.oauth.clone(), params, session_cookie(&req)).await {
        Ok(Decision::Redirect(url)) => redirect(&url),
        Ok(Decision::SignIn { next, login_hint, fresh }) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("next", &next);
            if let Some(hint) = &login_hint {
                query.append_pair("login_hint", hint);
            }
            if fresh {
                query.append_pair("prompt", "login");
            }
            redirect(&format!("/login?{}", query.finish()))
        }
        Ok(Decision::Consent(question)) => consent_page(&question),
        Err(e) => authorize_error(&state, e),
    }
}

/// `GET /oauth/authorize`.
pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match Params::parse_lenient(req.query_string().as_bytes()) {
        Ok(params) => authorize_with(state, req, params).await,
        Err(e) => too_many_params(e),
    }
}

/// `POST /oauth/authorize`: the same parameters in a form body.
pub async fn authorize_post(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    if !super::is_form(&req) {
        return error_page(StatusCode::BAD_REQUEST, "Bad request", "The request must be a form.");
    }
    match Params::parse_lenient(&body) {
        Ok(params) => authorize_with(state, req, params).await,
        Err(e) => too_many_params(e),
    }
}

/// `POST /oauth/consent`: Approve or Deny.
pub async fn consent(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let refused = |message: &str| error_page(StatusCode::BAD_REQUEST, "Consent not recorded", message);
    if !super::is_form(&req) {
        return refused("The request must be a form.");
    }
    let Ok(params) = Params::parse_lenient(&body) else {
        return refused("The consent form has too many fields. Start again from the application.");
    };
    match authorize::consent(&sessions(&state), state.oauth.clone(), params, session_cookie(&req)).await {
        Ok(ConsentOutcome::Redirect(url)) => redirect(&url),
        Ok(ConsentOutcome::Refused(message)) => refused(message),
        Err(e) => authorize_error(&state, e),
    }
}

/// The signed-in person on the index page: email and logout token.
pub async fn signed_in(state: &AppState, req: &HttpRequest) -> Option<(String, String)> {
    let sessions = sessions(state);
    let session = sessions.current(session_cookie(req)).await.ok().flatten()?;
    Some((session.user.email.clone(), sessions.logout_token(&session)))
}
