//! Per-key usage (issue #11): every `/v1` use of a key is noted in memory
//! with its outcome and written by the background flush — the counters
//! per day and the last 50 uses — never on the request path; the purge
//! drops what is past 30 days.

use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDate, Utc};
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;
use tessera::apikeys::usage::{self, DayCount, Outcome, UsageRecorder, Use};
use tessera::clock::Clock;
use tessera::store::DbConn;
use tessera::store::schema::{api_key_daily_usage, api_key_uses};

use crate::support::{Backend, TestApp};

const ALLOWED_IP: &str = "203.0.113.5";
const FORBIDDEN_IP: &str = "198.51.100.7";

/// A trusted proxy in front, so `X-Forwarded-For` names the client; a
/// frozen clock, so the rate limit refills only when the test says.
fn app_behind_a_proxy(backend: Backend, flush_every: StdDuration) -> TestApp {
    TestApp::builder(backend)
        .with_frozen_clock()
        .with_config(move |c| {
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            c.key_usage_flush_interval = flush_every;
        })
        .start()
}

/// A key allowed only from 203.0.113.0/24, two requests a second.
fn restricted_key(app: &TestApp) -> (String, String) {
    let root = app.root_key();
    let (id, key, _) = app.create_key(
        &root,
        json!({ "name": "Counted", "rate_limit": 2, "restrictions": { "ips": ["203.0.113.0/24"] } }),
    );
    (id, key)
}

/// `GET /v1/api-keys/{id}?…` from `ip`, with a query string that must never
/// be stored.
fn use_key(app: &TestApp, id: &str, key: &str, ip: &str) -> StatusCode {
    app.client
        .get(app.url(&format!("/v1/api-keys/{id}?expand=secret_looking_value")))
        .bearer_auth(key)
        .header("x-forwarded-for", ip)
        .send()
        .expect("GET")
        .status()
}

fn rows(conn: &mut DbConn) -> (i64, i64) {
    let daily: i64 = api_key_daily_usage::table.count().get_result(conn).unwrap();
    let uses: i64 = api_key_uses::table.count().get_result(conn).unwrap();
    (daily, uses)
}

/// Two allowed uses, a third refused by the rate limit, two from a
/// forbidden IP; the answers the key's owner sees.
fn spend_a_day(app: &TestApp, id: &str, key: &str) {
    assert_eq!(use_key(app, id, key, ALLOWED_IP), 200);
    assert_eq!(use_key(app, id, key, ALLOWED_IP), 200);
    assert_eq!(use_key(app, id, key, ALLOWED_IP), 429);
    assert_eq!(use_key(app, id, key, FORBIDDEN_IP), 403);
    assert_eq!(use_key(app, id, key, FORBIDDEN_IP), 403);
}

/// Regression (issue #11): no request writes a usage row. With the flush
/// an hour away (its first run is one interval after start), uses of every
/// outcome leave both tables empty, and `last_used` unwritten.
fn no_request_writes_a_usage_row(backend: Backend) {
    let app = app_behind_a_proxy(backend, StdDuration::from_secs(3600));
    let (id, key) = restricted_key(&app);
    spend_a_day(&app, &id, &key);
    assert_eq!(rows(&mut app.conn()), (0, 0), "the request path wrote usage rows");
    let last_used = tessera::store::api_keys::find(&mut app.conn(), &id).unwrap().unwrap().last_used_at;
    assert_eq!(last_used, None);
}

/// Polls (never sleeps for time to pass on the clock) until the
/// background flush has written `total` uses of `id`.
fn wait_for_flush(app: &TestApp, id: &str, total: u64, today: NaiveDate) -> Vec<DayCount> {
    for _ in 0..300 {
        let days = usage::daily_counts(&mut app.conn(), id, 30, today).unwrap();
        if days.iter().map(DayCount::total).sum::<u64>() >= total {
            return days;
        }
        std::thread::sleep(StdDuration::from_millis(100));
    }
    panic!("the background flush did not write {total} uses of {id} within 30 s");
}

/// Regression (issue #11): uses are counted per day by outcome — allowed,
/// refused by a restriction, rate-limited — across a day boundary, and the
/// last uses come back newest first with time, IP, method, path (without
/// the query string) and outcome.
fn uses_are_counted_per_day_by_outcome(backend: Backend) {
    let app = app_behind_a_proxy(backend, StdDuration::from_millis(200));
    let (id, key) = restricted_key(&app);
    let first_at = app.clock.now();
    let first = first_at.date_naive();
    spend_a_day(&app, &id, &key);
    // Just past the next midnight: a new day, and a refilled rate limit.
    let next = (first + Duration::days(1)).and_hms_opt(0, 0, 1).unwrap().and_utc();
    app.clock.advance(next - first_at);
    assert_eq!(use_key(&app, &id, &key, ALLOWED_IP), 200);

    let days = wait_for_flush(&app, &id, 6, next.date_naive());
    assert_eq!(days.len(), 30);
    assert_eq!(days[0].day, next.date_naive() - Duration::days(29), "oldest first");
    assert_eq!(days[28], DayCount { day: first, allowed: 2, refused: 2, rate_limited: 1 });
    assert_eq!(days[29], DayCount { day: next.date_naive(), allowed: 1, refused: 0, rate_limited: 0 });
    assert!(days[..28].iter().all(|d| d.total() == 0), "{days:?}");

    let uses = usage::recent_uses(&mut app.conn(), &id, 50).unwrap();
    let path = format!("/v1/api-keys/{id}");
    let seen: Vec<(&str, &str, Outcome)> =
        uses.iter().map(|u| (u.ip.as_deref().unwrap_or("-"), u.path.as_str(), u.outcome)).collect();
    assert_eq!(
        seen,
        vec![
            (ALLOWED_IP, path.as_str(), Outcome::Allowed),
            (FORBIDDEN_IP, path.as_str(), Outcome::Refused),
            (FORBIDDEN_IP, path.as_str(), Outcome::Refused),
            (ALLOWED_IP, path.as_str(), Outcome::RateLimited),
            (ALLOWED_IP, path.as_str(), Outcome::Allowed),
            (ALLOWED_IP, path.as_str(), Outcome::Allowed),
        ],
        "newest first"
    );
    assert!(uses.iter().all(|u| u.method == "GET"));
    assert_eq!(uses[0].at, next);
    assert!(uses[1..].iter().all(|u| u.at == first_at));
    // Another key's page shows none of these.
    assert!(usage::recent_uses(&mut app.conn(), "key_unknown", 50).unwrap().is_empty());
}

/// Regression (issue #11): a use refused for a permission the key lacks
/// (a read-only key posting) counts as refused, with its method and path.
fn a_permission_the_key_lacks_counts_as_refused(backend: Backend) {
    let app = app_behind_a_proxy(backend, StdDuration::from_millis(200));
    let root = app.root_key();
    let (id, key, _) = app.create_key(&root, json!({ "name": "Reader", "permissions": ["read"] }));
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&key)
        .header("x-forwarded-for", ALLOWED_IP)
        .json(&json!({ "name": "Not allowed" }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    let today = app.clock.now().date_naive();
    let days = wait_for_flush(&app, &id, 1, today);
    assert_eq!(days[29], DayCount { day: today, allowed: 0, refused: 1, rate_limited: 0 });
    let uses = usage::recent_uses(&mut app.conn(), &id, 50).unwrap();
    assert_eq!(uses.len(), 1);
    assert_eq!((uses[0].method.as_str(), uses[0].path.as_str()), ("POST", "/v1/api-keys"));
    assert_eq!((uses[0].ip.as_deref(), uses[0].outcome), (Some(ALLOWED_IP), Outcome::Refused));
}

fn a_use(at: chrono::DateTime<Utc>, n: usize) -> Use {
    Use::new(at, Some("192.0.2.1".parse().unwrap()), "GET", &format!("/v1/n/{n}"), Outcome::Allowed)
}

/// Regression (issue #11): at most the last 50 uses of a key are kept,
/// across flushes, and they are the newest.
fn only_the_last_50_uses_are_kept(backend: Backend) {
    let app = TestApp::start(backend);
    let root = app.root_key();
    let (id, _, _) = app.create_key(&root, json!({ "name": "Busy" }));
    let recorder = UsageRecorder::default();
    let now = app.clock.now();
    for n in 0..30 {
        recorder.record(&id, a_use(now, n));
    }
    recorder.flush(&mut app.conn(), &app.clock).unwrap();
    for n in 30..90 {
        recorder.record(&id, a_use(now, n));
    }
    recorder.flush(&mut app.conn(), &app.clock).unwrap();
    let uses = usage::recent_uses(&mut app.conn(), &id, 100).unwrap();
    let paths: Vec<String> = uses.iter().map(|u| u.path.clone()).collect();
    let expected: Vec<String> = (40..90).rev().map(|n| format!("/v1/n/{n}")).collect();
    assert_eq!(paths, expected);
    assert_eq!(rows(&mut app.conn()).1, 50, "the table holds 50 rows for the key");
    // The counters count every use, not only the kept ones.
    let today = usage::daily_counts(&mut app.conn(), &id, 30, now.date_naive()).unwrap();
    assert_eq!(today[29].allowed, 90);
}

/// Regression (issue #11): the purge deletes usage counters and uses
/// older than 30 days and keeps the rest.
fn purge_drops_usage_past_30_days(backend: Backend) {
    // Only this test's purge runs (the server's own would race it).
    let app = TestApp::builder(backend).with_config(|c| c.purge_interval = StdDuration::ZERO).start();
    let root = app.root_key();
    let (id, _, _) = app.create_key(&root, json!({ "name": "Old" }));
    let recorder = UsageRecorder::default();
    let now = app.clock.now();
    recorder.record(&id, a_use(now - Duration::days(31), 1));
    recorder.record(&id, a_use(now - Duration::days(29), 2));
    recorder.flush(&mut app.conn(), &app.clock).unwrap();
    assert_eq!(rows(&mut app.conn()), (2, 2));
    let policy = app.config.purge_policy();
    let report = tessera::purge::purge(&mut app.conn(), &app.clock, &policy).unwrap();
    assert_eq!((report.key_usage_days, report.key_uses), (1, 1));
    assert_eq!(rows(&mut app.conn()), (1, 1));
    let uses = usage::recent_uses(&mut app.conn(), &id, 50).unwrap();
    assert_eq!(uses.iter().map(|u| u.path.as_str()).collect::<Vec<_>>(), vec!["/v1/n/2"]);
}

crate::both_backends!(
    no_request_writes_a_usage_row,
    uses_are_counted_per_day_by_outcome,
    a_permission_the_key_lacks_counts_as_refused,
    only_the_last_50_uses_are_kept,
    purge_drops_usage_past_30_days,
);
