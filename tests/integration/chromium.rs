//! The authorization code flow in a real headless Chromium, driven through
//! chromedriver (WebDriver) with fantoccini: type the password, click
//! Approve, land on the redirect URI with a code, exchange it with the
//! `oauth2` crate. Skipped, saying so, where chromium or chromedriver is
//! missing — except under CI (`CI` set), where that fails the test
//! (`.ci/run` installs both and sets `CI`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use oauth2::TokenResponse;
use serde_json::json;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};

use crate::both_backends;
use crate::support::browser::{authorization_url, code, oauth2_http, param};
use crate::support::{Backend, TestApp, in_ci};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    /// The browser chromedriver is to start.
    chromium: PathBuf,
}

impl Driver {
    fn start() -> Option<Self> {
        Self::start_with(Path::new(CHROMIUM), Path::new(CHROMEDRIVER), in_ci())
    }

    /// `start` with the paths and the CI flag passed in, so the skip rule
    /// can be tested: missing programs skip the test loudly, or fail it
    /// under CI, where a skip would let the suite pass untested.
    fn start_with(chromium: &Path, chromedriver: &Path, ci: bool) -> Option<Self> {
        if !chromium.exists() || !chromedriver.exists() {
            let (chromium, chromedriver) = (chromium.display(), chromedriver.display());
            assert!(!ci, "{chromium} or {chromedriver} is missing: under CI (CI is set) the Chromium test must run");
            crate::support::skipped("the browser tests", &format!("{chromium} or {chromedriver} is missing"));
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(chromedriver)
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
        Some(Self { child, url: format!("http://127.0.0.1:{port}"), chromium: chromium.to_path_buf() })
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
                "binary": driver.chromium,
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

/// The panic message of a caught panic.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Under CI a missing browser or database fails the test instead of
/// skipping it, so CI cannot go green without running them. (The skip
/// itself is not exercised here: its `SKIPPED:` line, written past the
/// capture, would trip `.ci/run`'s second guard; the next test runs it in
/// a child process.)
#[test]
fn under_ci_a_missing_browser_or_database_fails_instead_of_skipping() {
    let nowhere = Path::new("/nonexistent/chromium");
    let failed = std::panic::catch_unwind(|| Driver::start_with(nowhere, Path::new(CHROMEDRIVER), true).is_some())
        .expect_err("under CI a missing browser must fail the test");
    assert!(panic_text(failed).contains("/nonexistent/chromium or /usr/bin/chromedriver is missing: under CI"));

    for url in [None, Some(String::new())] {
        let failed = std::panic::catch_unwind(|| Backend::postgres_from(url, true).is_some())
            .expect_err("under CI a missing database must fail the test");
        assert!(panic_text(failed).contains("TESSERA_TEST_POSTGRES_URL is not set: under CI"));
    }
    let url = "postgres://postgres@127.0.0.1:5432/postgres".to_string();
    assert!(matches!(Backend::postgres_from(Some(url), true), Some(Backend::Postgres(_))));
}

/// `test` alone in a child run of this test binary, without
/// `TESSERA_TEST_POSTGRES_URL` and with `CI` as given, plus `env`:
/// whether it passed, and its whole output.
fn run_alone(test: &str, ci: Option<&str>, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--test-threads=1"]).env_remove(crate::support::POSTGRES_ENV).env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run the test binary");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The same through `both_backends!`, end to end: this test binary run on
/// one PostgreSQL test without `TESSERA_TEST_POSTGRES_URL` skips it and
/// passes, but fails it under CI.
#[test]
fn under_ci_a_postgres_test_without_a_database_fails_the_run() {
    let run = |ci| run_alone("store::postgres::the_first_admin_is_made_once", ci, &[]);
    let (passed, output) = run(None);
    assert!(passed, "{output}");
    assert!(output.contains("SKIPPED: the PostgreSQL half") && output.contains("1 passed"), "{output}");
    let (passed, output) = run(Some("true"));
    assert!(!passed, "{output}");
    assert!(
        output.contains("TESSERA_TEST_POSTGRES_URL is not set: under CI") && output.contains("1 failed"),
        "{output}"
    );
}

/// A Redis test with nothing answering where it looks: its `SKIPPED:` line
/// shows in a plain run's output (past the capture of a passing test),
/// and under CI the test fails instead.
#[test]
fn a_redis_test_without_redis_says_skipped_or_fails_under_ci() {
    let nowhere = [(crate::support::redis::REDIS_ENV, "redis://127.0.0.1:1")];
    let run = |ci| run_alone("shared_limits::a_silent_redis_is_given_up_on_and_replaced", ci, &nowhere);
    let (passed, output) = run(None);
    assert!(passed, "{output}");
    assert!(
        output.contains("SKIPPED: the Redis tests (nothing answers at redis://127.0.0.1:1")
            && output.contains("1 passed"),
        "{output}"
    );
    let (passed, output) = run(Some("true"));
    assert!(
        !passed && output.contains("CI needs Redis at redis://127.0.0.1:1") && output.contains("1 failed"),
        "{output}"
    );
}
