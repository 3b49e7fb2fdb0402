//! A person's side of the authorization code flow over plain HTTP: a
//! cookie-keeping client that follows the server's pages by hand (sign in,
//! read the consent form, approve or deny), and the `oauth2` crate as the
//! third-party app.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenUrl,
};
use tessera::audit::Actor;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};

use super::oauth::TestClient;
use super::{Site, TestApp};

pub const REDIRECT_URI: &str = "https://app.example.com/callback";

pub type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The values of `<input type="hidden" name=… value=…>` fields, unescaped.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for tag in html.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if !tag.contains("type=\"hidden\"") {
            continue;
        }
        let attr = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            let end = tag[start..].find('"')? + start;
            Some(unescape(&tag[start..end]))
        };
        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
            out.push((n, v));
        }
    }
    out
}

/// Undoes HTML escaping: named entities askama writes and numeric ones.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no field {name}"))
}

/// The `Location` of a redirect, asserting there is one.
pub fn location(res: &reqwest::blocking::Response) -> String {
    assert!(res.status().is_redirection(), "expected a redirect, got {}", res.status());
    res.headers()["location"].to_str().unwrap().to_string()
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

pub fn param(url: &str, name: &str) -> Option<String> {
    query_of(url).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A person with a browser: a cookie jar of its own. The flows take any
/// `Site`: a `TestApp`, or one instance of a fleet (the jar, like a
/// browser's, sends one host's cookies to each of its ports).
pub struct Person {
    pub http: reqwest::blocking::Client,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
    pub email: String,
    pub password: String,
}

impl Person {
    pub fn new(email: &str, password: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::blocking::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Self { http, jar, email: email.into(), password: password.into() }
    }

    pub fn get(&self, url: &str) -> reqwest::blocking::Response {
        self.http.get(url).header("accept", "text/html").send().unwrap()
    }

    pub fn post(&self, url: &str, form: &[(String, String)]) -> reqwest::blocking::Response {
        self.http.post(url).form(form).send().unwrap()
    }

    /// Fetches the sign-in page at `login_url` and submits it.
    pub fn submit_login(&self, app: &impl Site, login_url: &str, password: &str) -> reqwest::blocking::Response {
        let page = self.get(login_url);
        assert_eq!(page.status(), 200);
        let mut fields = hidden_fields(&page.text().unwrap());
        fields.push(("email".into(), self.email.clone()));
        fields.push(("password".into(), password.into()));
        self.post(&app.url("/login"), &fields)
    }

    /// Signs in directly (not from a flow).
    pub fn sign_in(&self, app: &impl Site) {
        let res = self.submit_login(app, &app.url("/login"), &self.password.clone());
        assert_eq!(res.status(), 302, "sign-in failed");
    }

    /// The value of the session cookie the browser holds.
    pub fn session_cookie(&self, app: &impl Site) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&app.base_url().parse().unwrap())?;
        header.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix("tessera_session=")).map(str::to_string)
    }

    /// Follows an authorization URL: signs in if asked, and returns the
    /// consent page's form fields, or the redirect back to the client if
    /// no page was shown.
    pub fn open_authorize(&self, app: &impl Site, url: &str) -> Result<Vec<(String, String)>, String> {
        let mut res = self.get(url);
        if res.status() == 302 {
            let next = location(&res);
            if !next.starts_with("/login") {
                return Err(next);
            }
            let signed_in = self.submit_login(app, &app.url(&next), &self.password.clone());
            let back = location(&signed_in);
            assert!(back.starts_with("/oauth/authorize?"), "{back}");
            res = self.get(&app.url(&back));
            if res.status() == 302 {
                return Err(location(&res));
            }
        }
        assert_eq!(res.status(), 200, "consent page expected");
        Ok(hidden_fields(&res.text().unwrap()))
    }

    /// Submits the consent form; the redirect back to the client.
    pub fn decide(&self, app: &impl Site, mut fields: Vec<(String, String)>, decision: &str) -> String {
        fields.push(("decision".into(), decision.into()));
        let res = self.post(&app.url("/oauth/consent"), &fields);
        location(&res)
    }

    /// The whole front channel: authorize URL → (sign in) → approve → code.
    pub fn approve(&self, app: &impl Site, url: &str) -> String {
        let back = match self.open_authorize(app, url) {
            Ok(fields) => self.decide(app, fields, "approve"),
            Err(back) => back,
        };
        param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
    }
}

impl TestApp {
    /// A confidential web app with the code and refresh grants.
    pub fn web_client(&self, scope: &str) -> TestClient {
        self.create_client(NewClient {
            name: "Photo Printer".into(),
            redirect_uris: vec![REDIRECT_URI.into(), "https://app.example.com/other".into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scope: scope.into(),
            auth_method: Some(AuthMethod::ClientSecretBasic),
            ..NewClient::default()
        })
    }

    /// The admin made at first start, as a person with a browser.
    pub fn admin(&self) -> Person {
        let (email, password) = self.first_admin.clone().expect("first admin");
        Person::new(&email, &password)
    }

    /// Another person.
    pub fn person(&self, email: &str) -> Person {
        let password = "correct horse battery";
        let new = tessera::accounts::NewUser::parse(email, "Bea", password, tessera::accounts::Role::Member).unwrap();
        tessera::accounts::create_user(&mut self.conn(), &self.clock, new, Actor::Cli).unwrap();
        Person::new(email, password)
    }

    /// The oauth2 crate's client for `client`, redirecting to `REDIRECT_URI`.
    pub fn oauth2_client(&self, client: &TestClient) -> OAuthClient {
        self.oauth2_client_to(client, REDIRECT_URI)
    }

    /// The same, redirecting to `redirect_uri`.
    pub fn oauth2_client_to(&self, client: &TestClient, redirect_uri: &str) -> OAuthClient {
        let mut c = BasicClient::new(ClientId::new(client.id.clone()))
            .set_auth_uri(AuthUrl::new(self.url("/oauth/authorize")).unwrap())
            .set_token_uri(TokenUrl::new(self.token_endpoint()).unwrap())
            .set_redirect_uri(RedirectUrl::new(redirect_uri.into()).unwrap());
        if let Some(secret) = &client.secret {
            c = c.set_client_secret(ClientSecret::new(secret.clone()));
        }
        c
    }
}

/// An authorization URL built by the oauth2 crate, with PKCE.
pub fn authorization_url(oauth: &OAuthClient, scopes: &[&str]) -> (String, CsrfToken, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = oauth.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new(s.to_string()));
    }
    let (url, state) = req.url();
    (url.to_string(), state, verifier)
}

pub fn oauth2_http() -> oauth2::reqwest::blocking::Client {
    oauth2::reqwest::blocking::ClientBuilder::new().redirect(oauth2::reqwest::redirect::Policy::none()).build().unwrap()
}

pub fn code(value: String) -> AuthorizationCode {
    AuthorizationCode::new(value)
}

/// The `error` and `error_description` the token endpoint refused a
/// request with; panics on a success or on anything but an OAuth answer.
pub fn refusal<T: std::fmt::Debug, E: std::error::Error + 'static>(
    result: Result<T, oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>>,
) -> (String, String) {
    match result {
        Err(oauth2::RequestTokenError::ServerResponse(e)) => {
            (e.error().to_string(), e.error_description().cloned().unwrap_or_default())
        }
        other => panic!("expected the token endpoint's refusal, got {other:?}"),
    }
}

/// The `csrf_token` of the first form on `html` that posts to a dashboard
/// page (the header's sign-out form carries a token of its own).
pub fn dashboard_csrf(html: &str) -> String {
    html.split("<form")
        .skip(1)
        .find(|form| form.contains("action=\"/dashboard"))
        .map(|form| field(&hidden_fields(form.split("</form>").next().unwrap_or("")), "csrf_token").to_string())
        .expect("a dashboard form with a csrf_token")
}

/// The text of every element that carries `data-secret`, unescaped.
pub fn secrets_in(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in html.split("data-secret").skip(1) {
        let Some(start) = part.find('>') else { continue };
        let text = &part[start + 1..];
        let end = text.find('<').unwrap_or(text.len());
        out.push(unescape(text[..end].trim()));
    }
    out
}

impl Person {
    /// A dashboard page's HTML, asserting it answered 200.
    pub fn page(&self, app: &TestApp, path: &str) -> String {
        let res = self.get(&app.url(path));
        assert_eq!(res.status(), 200, "GET {path}");
        res.text().unwrap()
    }

    /// This session's dashboard CSRF token, read from a page.
    pub fn csrf(&self, app: &TestApp) -> String {
        dashboard_csrf(&self.page(app, "/dashboard/api-keys"))
    }

    /// Posts a form of `(name, value)` pairs (repeated names allowed).
    pub fn submit(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
        let pairs: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.post(&app.url(path), &pairs)
    }
}

/// chromedriver on a free port with a fresh Chromium profile, killed on
/// drop; for the dashboard's browser test. Missing programs skip the test
/// loudly, or fail it under CI (as `chromium.rs` does).
pub struct Chromium {
    child: std::process::Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Chromium {
    pub const BINARY: &str = "/usr/bin/chromium";
    pub const DRIVER: &str = "/usr/bin/chromedriver";

    pub fn start() -> Option<Self> {
        use std::time::{Duration, Instant};
        if !std::path::Path::new(Self::BINARY).exists() || !std::path::Path::new(Self::DRIVER).exists() {
            assert!(
                !super::in_ci(),
                "{} or {} is missing: under CI the browser test must run",
                Self::BINARY,
                Self::DRIVER
            );
            super::skipped("the browser tests", "chromium or chromedriver is missing");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(Self::DRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, url: format!("http://127.0.0.1:{port}"), profile: tempfile::tempdir().unwrap() })
    }

    /// A headless browser session, 1280 px wide so the screenshots show
    /// the pages as a laptop does.
    pub async fn session(&self) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": Self::BINARY,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        fantoccini::ClientBuilder::native().capabilities(caps).connect(&self.url).await.expect("a Chromium session")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/screenshots/`, where the browser tests leave their pictures.
pub fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

/// Saves a full-page PNG of the browser's current page as `<name>.png`.
pub async fn save_screenshot(browser: &fantoccini::Client, name: &str) -> Result<std::path::PathBuf, String> {
    // Grow the window to the page's height so the picture shows all of it.
    let height = browser
        .execute("return Math.ceil(document.documentElement.scrollHeight);", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(1000)
        .clamp(600, 4000);
    let _ = browser.set_window_size(1280, height as u32 + 120).await;
    let _ = browser.execute("window.scrollTo(0, 0);", vec![]).await;
    let png = browser.screenshot().await.map_err(|e| e.to_string())?;
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).map_err(|e| e.to_string())?;
    Ok(path)
}
