//! Rate limits shared through Redis (`TESSERA_REDIS_URL`): two instances
//! count as one, and an unreachable Redis fails open for API keys and
//! closed for sign-in and registration, with `/readyz` saying so. Needs
//! the Redis on 127.0.0.1:6379 (or `TESSERA_TEST_REDIS_URL`).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use crate::support::browser::hidden_fields;
use crate::support::proxy::TcpProxy;
use crate::support::redis::{redis, through};
use crate::support::served::{Served, tessera};
use crate::support::{Backend, TestApp, http_client};

/// An issuer no other test (nor an earlier run) shares: the instances of
/// one issuer share their buckets, so each test is a fleet of its own.
/// The longest any answer may take while Redis is cut or silent: twelve
/// times `REDIS_TIMEOUT` (250 ms), so a loaded machine cannot turn CI red,
/// while a request that waits for Redis (seconds, or forever) still does.
/// Each test prints what it measured.
const WAITED_AT_MOST: Duration = Duration::from_secs(3);

fn fresh_issuer() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("http://fleet-{}-{nanos}.test", std::process::id())
}

/// One sign-in attempt at `base` by a browser of its own.
fn sign_in(base: &str, email: &str, password: &str) -> Response {
    let browser = http_client();
    let page = browser.get(format!("{base}/login")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let mut fields = hidden_fields(&page.text().unwrap());
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), password.into()));
    browser.post(format!("{base}/login")).form(&fields).send().unwrap()
}

fn register(http: &Client, base: &str) -> Response {
    let body = json!({ "client_name": "app", "redirect_uris": ["https://app.example/cb"] });
    http.post(format!("{base}/oauth/register")).json(&body).send().unwrap()
}

fn me(http: &Client, base: &str, key: &str) -> Response {
    http.get(format!("{base}/v1/me")).bearer_auth(key).send().unwrap()
}

fn retry_after(res: &Response) -> u64 {
    res.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

/// Two instances of one issuer over one database, limits in Redis: what
/// one spends, the other cannot spend again.
#[test]
fn two_instances_share_every_limit_through_redis() {
    let Some((url, _)) = redis() else { return };
    let issuer = fresh_issuer();
    let configure = {
        let (url, issuer) = (url.clone(), issuer.clone());
        move |c: &mut tessera::config::Config| {
            c.redis_url = Some(tessera::config::RedisUrl::parse(&url).unwrap());
            c.issuer = Some(issuer);
            c.api_rate_limit = 1;
            c.signin_rate_limit = 2;
            c.registration_rate_limit = 1;
            c.registration = tessera::oauth::registration::RegistrationMode::Open;
        }
    };
    let a = TestApp::builder(Backend::Sqlite).with_config(configure.clone()).start();
    // B on A's database and master key, as a second instance is.
    let shared = a.config.clone();
    let b = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| {
            *c = shared;
        })
        .start();
    assert_ne!(a.base_url, b.base_url);
    let (admin, password) = a.first_admin.clone().unwrap();

    // Sign-in: 2 a minute per IP, spent on A then B; the third, on A,
    // waits (even with the right password), as would a fourth on B.
    assert_eq!(sign_in(&a.base_url, &admin, "wrong password").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&b.base_url, &admin, "wrong password").status(), StatusCode::UNAUTHORIZED);
    for base in [&a.base_url, &b.base_url] {
        let res = sign_in(base, &admin, &password);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{base}");
        let wait = retry_after(&res);
        assert!((1..=30).contains(&wait), "one attempt comes back every 30 s: {wait}");
        assert!(res.text().unwrap().contains("Too many sign-in attempts"));
    }

    // Registration: 1 a minute per IP, spent on B.
    assert_eq!(register(&b.client, &b.base_url).status(), StatusCode::CREATED);
    let res = register(&a.client, &a.base_url);
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&res) >= 1);
    assert_eq!(res.json::<Value>().unwrap()["error"], "rate_limit_exceeded");

    // An API key at 1 a second, called on A and B in turn: across both,
    // never more than one call per second of the run (each instance alone
    // would allow one each at once).
    let key = a.root_key();
    let started = Instant::now();
    let mut allowed = 0;
    let mut refused_on_b = None;
    for i in 0..6 {
        let (app, base) = if i % 2 == 0 { (&a, &a.base_url) } else { (&b, &b.base_url) };
        let res = me(&app.client, base, &key);
        match res.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(res.headers()["ratelimit-limit"], "1");
                assert_eq!(res.headers()["ratelimit-remaining"], "0");
                assert_eq!(retry_after(&res), 1);
                if i % 2 == 1 {
                    refused_on_b.get_or_insert(res.json::<Value>().unwrap());
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
    let seconds = started.elapsed().as_secs();
    eprintln!("{allowed} of 6 calls allowed in {} ms at 1 a second", started.elapsed().as_millis());
    assert!(allowed <= 1 + seconds, "{allowed} calls allowed in {seconds} s at 1 a second");
    let refused = refused_on_b.expect("B refused a call A had spent the budget of");
    assert_eq!(refused["code"], "rate_limit_exceeded", "{refused}");
}

/// Redis cut under a running server (a proxy in front of it), then back.
#[test]
fn an_unreachable_redis_fails_open_for_keys_and_closed_for_sign_in() {
    let Some((url, addr)) = redis() else { return };
    let proxy = TcpProxy::start(addr);
    let dir = tempfile::tempdir().unwrap();
    let with_env = |mut cmd: std::process::Command| {
        cmd.env("TESSERA_DATABASE_URL", format!("sqlite://{}", dir.path().join("t.db").display()))
            .env("TESSERA_MASTER_KEY_FILE", dir.path().join("master-key"))
            .env("TESSERA_ISSUER", fresh_issuer())
            .env("TESSERA_REDIS_URL", through(&url, proxy.addr))
            .env("TESSERA_API_RATE_LIMIT", "1")
            .env("TESSERA_REGISTRATION", "open")
            .env("TESSERA_LOG_LEVEL", "warn");
        cmd
    };
    let mut served = Served::start(with_env(tessera(dir.path())));
    let base = served.wait_listening();
    let password = served.admin_password();
    let out = with_env(tessera(dir.path()))
        .args(["key", "create", "--owner", "admin@localhost", "--name", "k", "--mode", "test", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["key"].as_str().unwrap().to_string();
    let http = http_client();
    let ready = || http.get(format!("{base}/readyz")).send().unwrap();

    let body: Value = ready().json().unwrap();
    assert_eq!(body, json!({ "status": "ok", "database": "ok", "redis": "ok" }));
    assert_eq!(me(&http, &base, &key).status(), StatusCode::OK);
    assert_eq!(me(&http, &base, &key).status(), StatusCode::TOO_MANY_REQUESTS, "1 a second, counted in Redis");

    proxy.cut();
    // Every answer comes at once: a check waits for Redis at most
    // REDIS_TIMEOUT (250 ms), then not at all for a second. Printed, and
    // held to the generous WAITED_AT_MOST.
    let fast = |what: &str, res: Response, took: Duration| {
        eprintln!("{what} answered in {} ms with Redis cut", took.as_millis());
        assert!(took < WAITED_AT_MOST, "{what} took {took:?}");
        res
    };
    let timed = |f: &dyn Fn() -> Response| {
        let at = Instant::now();
        let res = f();
        (res, at.elapsed())
    };
    // API keys: open, beyond their limit.
    for _ in 0..3 {
        let (res, took) = timed(&|| me(&http, &base, &key));
        assert_eq!(fast("a key's call", res, took).status(), StatusCode::OK, "fails open for API keys");
    }
    // Sign-in: closed, even with the right password; the form comes back.
    let (res, took) = timed(&|| sign_in(&base, "admin@localhost", &password));
    let res = fast("sign-in", res, took);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after(&res) >= 1);
    let page = res.text().unwrap();
    assert!(page.contains("Signing in is unavailable") && page.contains("name=\"password\""), "{page}");
    // Registration: closed.
    let (res, took) = timed(&|| register(&http, &base));
    let res = fast("registration", res, took);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after(&res) >= 1);
    assert_eq!(res.json::<Value>().unwrap()["error"], "temporarily_unavailable");
    // Ready, degraded.
    let (res, took) = timed(&ready);
    let res = fast("/readyz", res, took);
    assert_eq!(res.status(), StatusCode::OK, "degraded, not down: the instance serves");
    assert_eq!(res.json::<Value>().unwrap(), json!({ "status": "degraded", "database": "ok", "redis": "unreachable" }));

    proxy.restore();
    let start = Instant::now();
    while ready().json::<Value>().unwrap()["redis"] != "ok" {
        assert!(start.elapsed() < Duration::from_secs(10), "Redis never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("Redis back in use {} ms after it returned", start.elapsed().as_millis());
    assert_eq!(sign_in(&base, "admin@localhost", &password).status(), StatusCode::FOUND, "sign-in works again");
    // The key's limit is counted in Redis again.
    let statuses: Vec<_> = (0..3).map(|_| me(&http, &base, &key).status()).collect();
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");

    // Many failed checks, one log line.
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
    let lines = stderr.matches("Redis is unreachable").count();
    assert_eq!(lines, 1, "the outage is logged once a minute at most: {stderr}");
    assert!(stderr.contains("Redis answers again"), "{stderr}");
}

/// Redis gone silent (no reset: a host gone, a black-holed route): no
/// request waits on it for more than a moment, and once it answers again
/// the limits are counted there again, on a fresh connection (what was
/// lost in the silence would otherwise shift every answer that follows).
#[test]
fn a_silent_redis_is_given_up_on_and_replaced() {
    let Some((url, addr)) = redis() else { return };
    let proxy = TcpProxy::start(addr);
    let redis_url = through(&url, proxy.addr);
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| {
            c.redis_url = Some(tessera::config::RedisUrl::parse(&redis_url).unwrap());
            c.issuer = Some(fresh_issuer());
            c.api_rate_limit = 1;
        })
        .start();
    let key = app.root_key();
    let ready = || app.get("/readyz").json::<Value>().unwrap();
    assert_eq!(ready()["redis"], "ok");
    assert_eq!(me(&app.client, &app.base_url, &key).status(), StatusCode::OK);
    assert_eq!(me(&app.client, &app.base_url, &key).status(), StatusCode::TOO_MANY_REQUESTS);

    proxy.black_hole();
    let mut slowest = Duration::ZERO;
    for _ in 0..4 {
        let at = Instant::now();
        assert_eq!(me(&app.client, &app.base_url, &key).status(), StatusCode::OK, "fails open");
        slowest = slowest.max(at.elapsed());
    }
    let at = Instant::now();
    assert_eq!(ready()["status"], "degraded");
    slowest = slowest.max(at.elapsed());
    eprintln!("slowest answer while Redis was silent: {} ms", slowest.as_millis());
    assert!(slowest < WAITED_AT_MOST, "a silent Redis held a request {slowest:?}");

    proxy.restore();
    let start = Instant::now();
    while ready()["redis"] != "ok" {
        assert!(start.elapsed() < Duration::from_secs(10), "Redis never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let statuses: Vec<_> = (0..3).map(|_| me(&app.client, &app.base_url, &key).status()).collect();
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "counted in Redis again: {statuses:?}");
    assert!(statuses.iter().all(|s| [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(s)), "{statuses:?}");
}
