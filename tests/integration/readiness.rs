//! `/readyz` and the API follow the database: 503 while it is unreachable,
//! 200 once it is back. The server's connections go through a proxy the
//! test cuts (PostgreSQL only: SQLite is a file, with nothing to cut).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::config::DatabaseUrl;

use crate::support::proxy::TcpProxy;
use crate::support::{Backend, TestApp};

/// `postgres://user:pw@host:port/db?x` → (`host:port`, its address).
fn server_of(url: &str) -> (String, SocketAddr) {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let with_port = if host_port.contains(':') { host_port.to_string() } else { format!("{host_port}:5432") };
    let addr = with_port
        .to_socket_addrs()
        .expect("resolve the PostgreSQL host")
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address for PostgreSQL");
    (host_port.to_string(), addr)
}

/// How long a request waits for a database connection. Far above what the
/// fail-fast answer takes, so that the two cannot be confused on a loaded
/// machine.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A server on PostgreSQL whose every database connection goes through a
/// proxy the test can cut; `None` without PostgreSQL.
fn app_behind_a_proxy() -> Option<(TcpProxy, TestApp)> {
    let backend = Backend::postgres()?;
    let Backend::Postgres(server_url) = &backend else { unreachable!() };
    let (host_port, target) = server_of(server_url);
    let proxy = TcpProxy::start(target);
    let proxy_addr = proxy.addr.to_string();
    let app = TestApp::builder(backend.clone())
        .with_config(move |c| {
            if let DatabaseUrl::Postgres(url) = &c.database_url {
                c.database_url = DatabaseUrl::Postgres(url.replacen(&host_port, &proxy_addr, 1));
            }
            c.database_connect_timeout = CONNECT_TIMEOUT;
        })
        .start();
    Some((proxy, app))
}

/// 503 `database_unavailable` in the `/v1` shape, with `Retry-After`.
fn assert_unavailable(res: reqwest::blocking::Response) {
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "service_unavailable");
    assert_eq!(body["code"], "database_unavailable");
    assert_eq!(body["request_id"], id.as_str());
}

#[test]
fn readyz_follows_the_database_through_a_cut_and_back() {
    let Some((proxy, app)) = app_behind_a_proxy() else { return };
    assert_eq!(app.get("/readyz").status(), StatusCode::OK);

    proxy.cut();
    assert_unavailable(app.get("/readyz"));
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").status(), StatusCode::OK);

    // Once one request has found the database gone, the next ones do not
    // wait for a connection (CONNECT_TIMEOUT) again: they fail at once.
    // The bound is half the wait, generous for a loaded machine; the
    // figure is printed.
    let at = std::time::Instant::now();
    assert_unavailable(app.get("/readyz"));
    eprintln!("failed fast in {} ms while the database was cut", at.elapsed().as_millis());
    assert!(at.elapsed() < CONNECT_TIMEOUT / 2, "did not fail fast: {:?}", at.elapsed());

    proxy.restore();
    // The pool reconnects on the next checkout, once the fail-fast window
    // (500 ms) has passed: within 5 s.
    let at = std::time::Instant::now();
    while app.get("/readyz").status() != StatusCode::OK {
        assert!(at.elapsed() < Duration::from_secs(5), "ready again once the database is back");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("ready {} ms after the database came back", at.elapsed().as_millis());
}

/// While the database is cut, an API call answers 503 — never 401 (a good
/// key must not read as a bad one) nor a half-done write — and works again
/// once the database is back. The OAuth endpoints fail the same way, in
/// their own error shape.
#[test]
fn v1_and_token_requests_answer_503_during_a_cut() {
    let Some((proxy, app)) = app_behind_a_proxy() else { return };
    let root = app.root_key();
    let client = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let list = || app.client.get(app.url("/v1/api-keys")).bearer_auth(&root).send().unwrap();
    let create = || {
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&root)
            .json(&json!({ "name": "During the cut" }))
            .send()
            .unwrap()
    };
    assert_eq!(list().status(), StatusCode::OK);
    let keys_before = list().json::<Value>().unwrap()["data"].as_array().unwrap().len();

    proxy.cut();
    assert_unavailable(list());
    assert_unavailable(create());
    // A key the server cannot look up is not declared invalid.
    let unknown = app.client.get(app.url("/v1/api-keys")).header("x-api-key", &root).send().unwrap();
    assert_unavailable(unknown);
    let res =
        app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some((&client.id, client.secret())));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.json::<Value>().unwrap()["error"], "temporarily_unavailable");

    proxy.restore();
    let at = std::time::Instant::now();
    let mut res = list();
    while res.status() != StatusCode::OK {
        assert!(at.elapsed() < Duration::from_secs(5), "the API works again once the database is back");
        std::thread::sleep(Duration::from_millis(20));
        res = list();
    }
    let keys_after = res.json::<Value>().unwrap()["data"].as_array().unwrap().len();
    assert_eq!(keys_after, keys_before, "the create refused during the cut left nothing behind");
}

/// The paths answered from memory once warm — `/v1/me` and
/// `/v1/keys/verify` with a key, client credentials with a secret, the
/// introspection of a JWT — fail closed when the database goes: once the
/// caches cannot be checked against it (500 ms, `store::feed::STALE_AFTER`)
/// they are not trusted, and those paths answer 503 like the rest, never
/// a verdict from memory about something that may have been revoked.
#[test]
fn the_paths_answered_from_memory_fail_closed_during_a_cut() {
    let Some((proxy, app)) = app_behind_a_proxy() else { return };
    let key = app.root_key();
    let client = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let basic = (client.id.as_str(), client.secret());
    let first = app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some(basic));
    let access = first.json::<Value>().unwrap()["access_token"].as_str().unwrap().to_string();
    let round = || -> Vec<StatusCode> {
        vec![
            app.client.get(app.url("/v1/me")).bearer_auth(&key).send().unwrap().status(),
            app.client
                .post(app.url("/v1/keys/verify"))
                .bearer_auth(&key)
                .json(&json!({ "key": key }))
                .send()
                .unwrap()
                .status(),
            app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some(basic)).status(),
            app.post_form("/oauth/introspect", &[("token", &access)], Some(basic)).status(),
        ]
    };
    // Warm: a whole round without a pooled connection.
    crate::support::eventually("a round answered from memory", || {
        let before = app.db.pool_runs();
        let statuses = round();
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        (app.db.pool_runs() == before).then_some(())
    });

    // Cut: the poller's next read fails, and the caches step aside at once.
    proxy.cut();
    let statuses = crate::support::eventually("every path fails closed", || {
        let statuses = round();
        statuses.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE).then_some(statuses)
    });
    assert_eq!(statuses.len(), 4);
    proxy.restore();
    crate::support::eventually("back once the database is", || {
        round().iter().all(|s| *s == StatusCode::OK).then_some(())
    });

    // A database that stops answering rather than refusing: the poller
    // learns nothing, neither a change nor a failure. Once its last read
    // is older than STALE_AFTER the caches are not trusted all the same.
    crate::support::eventually("a round answered from memory", || {
        let before = app.db.pool_runs();
        round();
        (app.db.pool_runs() == before).then_some(())
    });
    let silent = tessera::pause::Armed::arm("feed:poll", &app.issuer(), usize::MAX);
    silent.wait_for(1);
    proxy.cut();
    crate::support::eventually("every path fails closed with the poller silent", || {
        round().iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    });
    proxy.restore();
    drop(silent);
}
