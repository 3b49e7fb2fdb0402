//! `GET /metrics` on `TESSERA_METRICS_BIND`: Prometheus text with the
//! series docs/OPERATIONS.md lists, bounded labels only, and never on the
//! public port. A `tessera serve` process of its own (the recorder is the
//! process's).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::http_client;
use crate::support::served::{Served, tessera};

/// The value of the first sample of `name` whose labels include every one
/// of `labels` (`key="value"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

#[test]
fn metrics_are_served_apart_with_bounded_labels() {
    let dir = tempfile::tempdir().unwrap();
    let with_env = |mut cmd: std::process::Command| {
        cmd.env("TESSERA_DATABASE_URL", format!("sqlite://{}", dir.path().join("t.db").display()))
            .env("TESSERA_MASTER_KEY_FILE", dir.path().join("master-key"))
            .env("TESSERA_METRICS_BIND", "127.0.0.1:0")
            .env("TESSERA_LOG_LEVEL", "warn");
        cmd
    };
    let mut served = Served::start(with_env(tessera(dir.path())));
    let base = served.wait_listening();
    let metrics_url = loop {
        let line = served.lines.recv_timeout(std::time::Duration::from_secs(10)).expect("the metrics address");
        if let Some(url) = line.strip_prefix("Metrics on ") {
            break url.trim().to_string();
        }
    };
    let cli = |args: &[&str]| -> Value {
        let out = with_env(tessera(dir.path())).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let http = http_client();

    // Traffic of each kind the metrics count.
    let client = cli(&["client", "create", "--name", "svc", "--scope", "read", "--json"]);
    let (id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());
    let token = |secret: &str| {
        http.post(format!("{base}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(token(secret), StatusCode::OK);
    assert_eq!(token("wrong-secret"), StatusCode::UNAUTHORIZED);
    let key = cli(&["key", "create", "--owner", "admin@localhost", "--name", "k", "--mode", "test", "--json"]);
    let (key_id, raw) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    let me = |bearer: &str| http.get(format!("{base}/v1/me")).bearer_auth(bearer).send().unwrap().status();
    assert_eq!(me(raw), StatusCode::OK);
    assert_eq!(me(&format!("sk_test_{}", "Z".repeat(40))), StatusCode::UNAUTHORIZED);
    let verdict: Value = http
        .post(format!("{base}/v1/keys/verify"))
        .bearer_auth(raw)
        .json(&json!({ "key": raw }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(verdict["valid"], true);
    let secretish = "NOT-A-LABEL-7f3a";
    assert_eq!(http.get(format!("{base}/no/such/{secretish}")).send().unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        http.get(format!("{base}/v1/api-keys/{key_id}")).bearer_auth(raw).send().unwrap().status(),
        StatusCode::OK
    );

    // Not on the public port.
    assert_eq!(http.get(format!("{base}/metrics")).send().unwrap().status(), StatusCode::NOT_FOUND);

    let res = http.get(&metrics_url).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().unwrap();
    let has = |name: &str, labels: &[&str]| {
        let value = sample(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in:\n{text}"));
        assert!(value >= 1.0, "{name} {labels:?} = {value}");
    };
    has("tessera_http_requests_total", &["route=\"/oauth/token\"", "method=\"POST\"", "status=\"200\""]);
    has("tessera_http_requests_total", &["route=\"/oauth/token\"", "status=\"401\""]);
    has("tessera_http_requests_total", &["route=\"/v1/api-keys/{id}\"", "method=\"GET\"", "status=\"200\""]);
    has("tessera_http_requests_total", &["route=\"unmatched\"", "status=\"404\""]);
    has("tessera_http_request_duration_seconds_count", &["route=\"/v1/me\"", "method=\"GET\""]);
    has("tessera_http_request_duration_seconds_bucket", &["route=\"/v1/me\"", "le=\"0.005\""]);
    has("tessera_tokens_issued_total", &["grant=\"client_credentials\"", "alg=\"RS256\""]);
    has("tessera_client_auth_failures_total", &["method=\"client_secret_basic\""]);
    has("tessera_api_key_authentications_total", &["outcome=\"allowed\""]);
    has("tessera_api_key_authentications_total", &["outcome=\"invalid\""]);
    has("tessera_api_key_verifications_total", &["outcome=\"VALID\""]);
    has("tessera_cache_requests_total", &["cache=\"api_keys\"", "result=\"miss\""]);
    for (name, labels) in [
        ("tessera_db_pool_connections", &["state=\"in_use\""][..]),
        ("tessera_db_pool_connections", &["state=\"idle\""]),
        ("tessera_db_pool_waiting", &[]),
        ("tessera_background_lag_seconds", &["task=\"cache_feed\""]),
    ] {
        assert!(sample(&text, name, labels).is_some(), "{name} {labels:?} in:\n{text}");
    }
    let feed_lag = sample(&text, "tessera_background_lag_seconds", &["task=\"cache_feed\""]).unwrap();
    assert!(feed_lag < 5.0, "the feed is read every 100 ms: {feed_lag}");
    // No label holds what a caller chose or who they are.
    for leaked in [secretish, key_id, id, raw, "127.0.0.1", "admin@localhost"] {
        assert!(!text.contains(leaked), "{leaked} in the metrics");
    }
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
}
