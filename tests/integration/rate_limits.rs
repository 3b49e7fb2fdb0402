//! Rate limits on `/v1`, over HTTP: the default per-key limit, a key's own
//! limit, the server's cap on it, and the per-IP limit on failed
//! authentications. Each answers 429 exactly when its budget is spent, with
//! `Retry-After` and the `RateLimit-*` headers, and recovers once the
//! injected clock has moved on by `RateLimit-Reset` seconds.
//!
//! The apps run on a frozen `ManualClock`: the budgets are per second, and
//! the wall time a slow machine spends between requests would otherwise
//! refill them and blur "exactly".

use chrono::Duration;
use reqwest::StatusCode;
use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestApp};

fn get(app: &TestApp, key: &str) -> Response {
    app.client.get(app.url("/v1/api-keys")).bearer_auth(key).send().unwrap()
}

fn header(res: &Response, name: &str) -> String {
    res.headers().get(name).unwrap_or_else(|| panic!("{name} header")).to_str().unwrap().to_string()
}

/// A 429 with the body and headers a client needs to back off; returns
/// `RateLimit-Reset` in seconds.
fn assert_limited(res: Response, limit: u32) -> i64 {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "ratelimit-limit"), limit.to_string());
    assert_eq!(header(&res, "ratelimit-remaining"), "0");
    let reset: i64 = header(&res, "ratelimit-reset").parse().unwrap();
    let retry: i64 = header(&res, "retry-after").parse().unwrap();
    // A budget of N per second is back, whole, within a second.
    assert_eq!((reset, retry), (1, 1));
    let id = header(&res, "x-request-id");
    let body: Value = res.json().unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(body["code"], "rate_limit_exceeded", "{body}");
    assert!(body["message"].as_str().unwrap().contains(&format!("{limit} per second")), "{body}");
    assert_eq!(body["request_id"], id.as_str());
    reset
}

/// Spends `limit` requests of `key` (each 200), then sees the 429; twice,
/// with the clock moved on by `RateLimit-Reset` in between.
fn spend_and_recover(app: &TestApp, key: &str, limit: u32) {
    for round in 0..2 {
        for i in 0..limit {
            let res = get(app, key);
            assert_eq!(res.status(), 200, "round {round}, request {} of {limit}: {}", i + 1, res.text().unwrap());
        }
        let reset = assert_limited(get(app, key), limit);
        // Refused requests spend nothing more: still refused, not worse.
        assert_eq!(assert_limited(get(app, key), limit), reset);
        app.clock.advance(Duration::seconds(reset));
    }
}

fn the_default_limit_answers_429_then_recovers(backend: Backend) {
    let app = TestApp::builder(backend).with_frozen_clock().with_config(|c| c.api_rate_limit = 3).start();
    let root = app.root_key();
    let (_, key, _) = app.create_key(&root, json!({ "name": "No limit of its own" }));
    let (_, other, _) = app.create_key(&root, json!({ "name": "Another" }));
    spend_and_recover(&app, &key, 3);
    // Each key has its own budget: the other one is untouched.
    for _ in 0..3 {
        assert_eq!(get(&app, &other).status(), 200);
    }
    assert_limited(get(&app, &other), 3);
}

fn a_keys_own_limit_answers_429_then_recovers(backend: Backend) {
    let app = TestApp::builder(backend).with_frozen_clock().with_config(|c| c.api_rate_limit = 50).start();
    let root = app.root_key();
    let (_, slow, answer) = app.create_key(&root, json!({ "name": "Slow", "rate_limit": 2 }));
    assert_eq!(answer["data"]["rate_limit"], 2, "{answer}");
    spend_and_recover(&app, &slow, 2);
    let (_, quick, _) = app.create_key(&root, json!({ "name": "Quick", "rate_limit": 4 }));
    spend_and_recover(&app, &quick, 4);
}

fn a_keys_limit_above_the_cap_gets_the_cap(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_frozen_clock()
        .with_config(|c| {
            c.api_rate_limit = 2;
            c.api_rate_limit_max = 3;
        })
        .start();
    let root = app.root_key();
    let (_, greedy, _) = app.create_key(&root, json!({ "name": "Greedy", "rate_limit": 1_000_000 }));
    spend_and_recover(&app, &greedy, 3);
    // Below the cap, a key's own limit stands.
    let (_, modest, _) = app.create_key(&root, json!({ "name": "Modest", "rate_limit": 1 }));
    spend_and_recover(&app, &modest, 1);
}

fn failed_authentications_are_limited_per_ip(backend: Backend) {
    let app = TestApp::builder(backend).with_frozen_clock().with_config(|c| c.ip_rate_limit = 3).start();
    let root = app.root_key();
    for round in 0..2 {
        for i in 0..3 {
            let res = get(&app, "sk_test_wrong");
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "round {round}, failure {}", i + 1);
            assert_eq!(res.json::<Value>().unwrap()["code"], "invalid_api_key");
        }
        // The fourth failure and every one after it, until the budget is back.
        let mut reset = 0;
        for _ in 0..3 {
            reset = assert_limited(get(&app, "sk_test_wrong"), 3);
        }
        // A failure of another kind counts the same: no credential at all.
        let res = app.client.get(app.url("/v1/api-keys")).send().unwrap();
        assert_limited(res, 3);
        // A valid key from the same IP is not refused: only failures count.
        assert_eq!(get(&app, &root).status(), 200);
        app.clock.advance(Duration::seconds(reset));
    }
}

/// `POST /v1/keys/verify` tells a microservice the limit the server
/// enforces on the key: the cap, not the larger number the key asked for,
/// and the default for a key without a limit of its own.
fn the_verdict_reports_the_enforced_limit(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.api_rate_limit = 10;
            c.api_rate_limit_max = 20;
        })
        .start();
    let root = app.root_key();
    let (_, greedy, _) = app.create_key(&root, json!({ "name": "Greedy", "rate_limit": 1_000_000 }));
    let (_, plain, _) = app.create_key(&root, json!({ "name": "Plain" }));
    for (key, limit) in [(greedy, 20), (plain, 10)] {
        let res =
            app.client.post(app.url("/v1/keys/verify")).bearer_auth(&root).json(&json!({ "key": key })).send().unwrap();
        let verdict: Value = res.json().unwrap();
        assert_eq!(verdict["code"], "VALID", "{verdict}");
        assert_eq!(verdict["ratelimit"]["limit"], limit, "{verdict}");
    }
}

both_backends!(
    the_default_limit_answers_429_then_recovers,
    a_keys_own_limit_answers_429_then_recovers,
    a_keys_limit_above_the_cap_gets_the_cap,
    failed_authentications_are_limited_per_ip,
    the_verdict_reports_the_enforced_limit,
);
