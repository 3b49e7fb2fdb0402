//! What a person's browser sees: sign-in, sign-out, the authorization
//! endpoint and the consent page. Pages are askama templates; every rule
//! lives in `sessions` and `oauth::authorize`.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::pages::{error_page, render};
use crate::crypto::{constant_time_eq, random_base62};
use crate::oauth::authorize::{self, AuthorizeError, AuthorizeRequest, ErrorRedirect, Prompt};
use crate::oauth::next::LocalPath;
use crate::oauth::{AuthServer, Params, TooManyParams};
use crate::sessions::{self, Session, SessionPolicy, SignIn};
use crate::store::{DbConn, StoreError, users};

pub const SESSION_COOKIE: &str = "tessera_session";
/// Double-submit cookie against login CSRF (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "tessera_login";

fn policy(state: &AppState) -> SessionPolicy {
    SessionPolicy {
        idle: state.config.session_idle_ttl,
        absolute: state.config.session_ttl,
        max_failures: state.config.login_max_failures,
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

fn expired_cookie(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(state, name, String::new(), std::time::Duration::ZERO);
    c.make_removal();
    c
}

fn peer_ip(req: &HttpRequest) -> Option<String> {
    let trusted = req.app_data::<web::Data<AppState>>().map(|s| s.config.trusted_proxies.clone()).unwrap_or_default();
    super::client_ip(req, &trusted).map(|ip| ip.to_string())
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, location)).finish()
}

fn server_error_page(e: StoreError) -> HttpResponse {
    let e = crate::oauth::OAuthError::from(e);
    error_page(e.status, "Something went wrong", &e.description)
}

/// The live session of the request, if any.
async fn current_session(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, StoreError> {
    let Some(value) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let clock = state.clock.clone();
    let policy = policy(state);
    state.db.run(move |conn| sessions::resolve(conn, clock.as_ref(), &policy, &value)).await
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
}

/// `GET /login`.
pub async fn login_page(state: web::Data<AppState>, req: HttpRequest, query: web::Query<NextQuery>) -> HttpResponse {
    let next = LocalPath::parse_or_root(query.next.as_deref());
    match current_session(&state, &req).await {
        Ok(Some(_)) if !next.is_root() => redirect(next.as_str()),
        Ok(_) => login_form(&state, StatusCode::OK, next.as_str(), "", None),
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
    if form.email.len() > 254 || form.password.len() > crate::accounts::MAX_PASSWORD_BYTES {
        return login_form(&state, StatusCode::UNAUTHORIZED, next, "", Some("Wrong email or password."));
    }
    let old = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let (clock, policy, ip) = (state.clock.clone(), policy(&state), peer_ip(&req));
    let (email, password) = (form.email.clone(), form.password);
    let outcome = state
        .db
        .run(move |conn| {
            if let Some(old) = old
                && let Some(session) = sessions::resolve(conn, clock.as_ref(), &policy, &old)?
            {
                sessions::end(conn, clock.as_ref(), &session, ip.as_deref())?;
            }
            sessions::sign_in(conn, clock.as_ref(), &policy, &email, &password, ip.as_deref())
        })
        .await;
    match outcome {
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
    let session = match current_session(&state, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let mut res = redirect("/");
            let _ = res.add_removal_cookie(&expired_cookie(&state, SESSION_COOKIE));
            return res;
        }
        Err(e) => return server_error_page(e),
    };
    let expected = authorize::csrf_token(&state.master_key, &session.id, "logout");
    if !constant_time_eq(expected.as_bytes(), form.csrf_token.as_bytes()) {
        return error_page(StatusCode::BAD_REQUEST, "Sign-out refused", "The sign-out form expired; please try again.");
    }
    let (clock, ip) = (state.clock.clone(), peer_ip(&req));
    if let Err(e) = state.db.run(move |conn| sessions::end(conn, clock.as_ref(), &session, ip.as_deref())).await {
        return server_error_page(e);
    }
    let mut res = redirect("/");
    let _ = res.add_removal_cookie(&expired_cookie(&state, SESSION_COOKIE));
    res
}

/// The logout form's token for a signed-in page.
pub fn logout_token(state: &AppState, session: &Session) -> String {
    authorize::csrf_token(&state.master_key, &session.id, "logout")
}

struct ScopeLine {
    scope: String,
    description: String,
}

/// What a scope lets an application do, in plain words.
fn describe_scope(scope: &str) -> String {
    match scope {
        authorize::OFFLINE_ACCESS => "Keep access while you are away (stay connected until you revoke it)".into(),
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
    scopes: Vec<ScopeLine>,
    already: String,
    params: &'a [(String, String)],
    csrf: &'a str,
    redirect_host: &'a str,
}

/// What the authorization endpoint decided.
enum Outcome {
    Error(AuthorizeError),
    /// Back to the client (a code, or an error such as `login_required`).
    Redirect(String),
    Login,
    Consent {
        request: Box<AuthorizeRequest>,
        needed: Vec<String>,
        owner: String,
        session: Session,
    },
}

/// Validates the request, then sends the person on: to sign in, to the
/// consent page, or back to the client with a code.
fn decide(
    conn: &mut DbConn,
    server: &AuthServer,
    policy: &SessionPolicy,
    params: &Params,
    cookie: Option<&str>,
) -> Result<Outcome, StoreError> {
    let request = match authorize::validate(conn, server, params) {
        Ok(r) => r,
        Err(e) => return Ok(Outcome::Error(e)),
    };
    let refuse = |error: &'static str, description: &str| {
        Outcome::Redirect(
            ErrorRedirect {
                redirect_uri: request.redirect_uri.clone(),
                error,
                description: description.to_string(),
                state: request.state.clone(),
            }
            .url(&server.issuer),
        )
    };
    let session = match cookie {
        Some(c) => sessions::resolve(conn, server.clock.as_ref(), policy, c)?,
        None => None,
    };
    let Some(session) = session else {
        return Ok(match request.prompt {
            Prompt::None => refuse("login_required", "the person is not signed in"),
            _ => Outcome::Login,
        });
    };
    let needed = authorize::needs_consent(conn, &request, &session.user.id)?;
    if needed.is_empty() {
        return Ok(Outcome::Redirect(authorize::issue_code(conn, server, &request, &session.user.id)?));
    }
    if request.prompt == Prompt::None {
        return Ok(refuse("consent_required", "the person has not approved these scopes for this application"));
    }
    let owner = match &request.client.owner_id {
        Some(id) => users::find_by_id(conn, id)?.map_or("an unknown owner".to_string(), |u| u.display_name),
        None => "the operator of this server".to_string(),
    };
    Ok(Outcome::Consent { request: Box::new(request), needed, owner, session })
}

async fn authorize_with(state: web::Data<AppState>, req: HttpRequest, params: Params) -> HttpResponse {
    let (server, policy) = (state.oauth.clone(), policy(&state));
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let login_next = format!("/oauth/authorize?{}", authorize::canonical_params(params.pairs()));
    let outcome = state.db.run(move |conn| decide(conn, &server, &policy, &params, cookie.as_deref())).await;
    match outcome {
        Err(e) => server_error_page(e),
        Ok(Outcome::Error(AuthorizeError::Page { status, message })) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            error_page(status, "This request cannot continue", &message)
        }
        Ok(Outcome::Error(AuthorizeError::Redirect(e))) => redirect(&e.url(&state.issuer)),
        Ok(Outcome::Redirect(url)) => redirect(&url),
        Ok(Outcome::Login) => {
            let query = form_urlencoded::Serializer::new(String::new()).append_pair("next", &login_next).finish();
            redirect(&format!("/login?{query}"))
        }
        Ok(Outcome::Consent { request, needed, owner, session }) => {
            let csrf =
                authorize::csrf_token(&state.master_key, &session.id, &authorize::canonical_params(&request.params));
            let already: Vec<&str> = request.scope.iter().filter(|s| !needed.iter().any(|n| n == s)).collect();
            let (_, host, _) = crate::oauth::clients::split_uri(&request.redirect_uri);
            let page = ConsentPage {
                client_name: &request.client.name,
                owner: &owner,
                user_email: &session.user.email,
                scopes: needed.iter().map(|s| ScopeLine { scope: s.clone(), description: describe_scope(s) }).collect(),
                already: already.join(", "),
                params: &request.params,
                csrf: &csrf,
                redirect_host: if host.is_empty() { &request.redirect_uri } else { &host },
            };
            render(StatusCode::OK, &page)
        }
    }
}

/// `GET /oauth/authorize`.
pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match Params::parse_lenient(req.query_string().as_bytes()) {
        Ok(params) => authorize_with(state, req, params).await,
        Err(e) => too_many_params(e),
    }
}

/// Too many parameters: a page, since nothing in the request is trusted
/// yet to redirect to.
fn too_many_params(e: TooManyParams) -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "This request cannot continue", &format!("Refused: {e}."))
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

/// `POST /oauth/consent`: Approve or Deny, with a CSRF token bound to the
/// session and to the exact authorization request.
pub async fn consent(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let refused = |message: &str| error_page(StatusCode::BAD_REQUEST, "Consent not recorded", message);
    if !super::is_form(&req) {
        return refused("The request must be a form.");
    }
    let Ok(params) = Params::parse_lenient(&body) else {
        return refused("The consent form has too many fields. Start again from the application.");
    };
    let session = match current_session(&state, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => return refused("Your session has ended. Start again from the application."),
        Err(e) => return server_error_page(e),
    };
    let expected = authorize::csrf_token(&state.master_key, &session.id, &authorize::canonical_params(params.pairs()));
    let given = params.get("csrf_token").unwrap_or("");
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) || !params.repeated().is_empty() {
        return refused("The consent form expired or did not come from this page. Start again from the application.");
    }
    let decision = params.get("decision").map(str::to_string);
    let server = state.oauth.clone();
    let user_id = session.user.id.clone();
    let outcome = state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            let request = match authorize::validate(conn, &server, &params) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            match decision.as_deref() {
                Some("approve") => {
                    authorize::record_consent(conn, &server, &request, &user_id)?;
                    Ok(Ok(Some(authorize::issue_code(conn, &server, &request, &user_id)?)))
                }
                Some("deny") => Ok(Ok(Some(
                    ErrorRedirect {
                        redirect_uri: request.redirect_uri.clone(),
                        error: "access_denied",
                        description: "the person denied the request".into(),
                        state: request.state.clone(),
                    }
                    .url(&server.issuer),
                ))),
                _ => Ok(Ok(None)),
            }
        })
        .await;
    match outcome {
        Ok(Ok(Some(url))) => redirect(&url),
        Ok(Ok(None)) => refused("Choose Approve or Deny."),
        Ok(Err(AuthorizeError::Redirect(e))) => redirect(&e.url(&state.issuer)),
        Ok(Err(AuthorizeError::Page { status, message })) => error_page(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            "This request cannot continue",
            &message,
        ),
        Err(e) => server_error_page(e),
    }
}

/// The signed-in person on the index page: email and logout token.
pub async fn signed_in(state: &AppState, req: &HttpRequest) -> Option<(String, String)> {
    let session = current_session(state, req).await.ok().flatten()?;
    Some((session.user.email.clone(), logout_token(state, &session)))
}
