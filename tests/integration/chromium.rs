//! The authorization code flow in a real headless Chromium, driven through
//! chromedriver (WebDriver) with fantoccini: type the password, click
//! Approve, land on the redirect URI with a code, exchange it with the
//! `oauth2` crate. Skipped, saying so, where chromium or chromedriver is
//! missing (`.ci/run` installs both).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use oauth2::TokenResponse;
use serde_json::json;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};

use crate::both_backends;
use crate::support::browser::{authorization_url, code, oauth2_http, param};
use crate::support::{Backend, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED: the Chromium test ({CHROMIUM} or {CHROMEDRIVER} is missing)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, url: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_signs_in_approves_and_lands_with_a_code(backend: Backend) {
    let Some(driver) = Driver::start() else { return };
    let app = TestApp::start(backend);
    // The redirect URI is a page of the test server itself, so the browser
    // really lands somewhere (a 404 page whose URL carries the code).
    let redirect = app.url("/callback");
    let client = app.create_client(NewClient {
        name: "Photo Printer".into(),
        redirect_uris: vec![redirect.clone()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: "read".into(),
        auth_method: Some(AuthMethod::ClientSecretBasic),
        ..NewClient::default()
    });
    let oauth = app.oauth2_client_to(&client, &redirect);
    let (url, state, verifier) = authorization_url(&oauth, &["read"]);
    let (email, password) = app.first_admin.clone().unwrap();
    let profile = tempfile::tempdir().unwrap();

    let landed = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let browser =
            ClientBuilder::native().capabilities(caps).connect(&driver.url).await.expect("a Chromium session");
        let result = async {
            browser.goto(&url).await?;
            // Not signed in: the sign-in page.
            assert!(browser.current_url().await?.path().starts_with("/login"));
            browser.find(Locator::Css("input[name=email]")).await?.send_keys(&email).await?;
            browser.find(Locator::Css("input[name=password]")).await?.send_keys(&password).await?;
            browser.find(Locator::Css("button[type=submit]")).await?.click().await?;
            // The consent page names the app and the scope.
            let approve = browser.wait().for_element(Locator::Id("approve")).await?;
            let text = browser.find(Locator::Css("main")).await?.text().await?;
            assert!(text.contains("Photo Printer") && text.contains("Read your data"), "{text}");
            approve.click().await?;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let now = browser.current_url().await?.to_string();
                if now.starts_with(&redirect) || Instant::now() > deadline {
                    return Ok::<_, fantoccini::error::CmdError>(now);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        .await;
        let _ = browser.close().await;
        result.expect("the browser flow")
    });

    assert!(landed.starts_with(&redirect), "landed on {landed}");
    assert_eq!(param(&landed, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(param(&landed, "iss").as_deref(), Some(app.issuer().as_str()));
    let code_value = param(&landed, "code").expect("a code");
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    assert!(!token.access_token().secret().is_empty());
}

both_backends!(chromium_signs_in_approves_and_lands_with_a_code);
