//! `/readyz` follows the database: 503 while it is unreachable, 200 once it
//! is back. The server's connections go through a proxy the test cuts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
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

#[test]
fn readyz_follows_the_database_through_a_cut_and_back() {
    let Some(backend) = Backend::postgres() else { return };
    let Backend::Postgres(server_url) = &backend else { unreachable!() };
    let (host_port, target) = server_of(server_url);
    let proxy = TcpProxy::start(target);
    let proxy_addr = proxy.addr.to_string();
    let app = TestApp::builder(backend.clone())
        .with_config(move |c| {
            if let DatabaseUrl::Postgres(url) = &c.database_url {
                c.database_url = DatabaseUrl::Postgres(url.replacen(&host_port, &proxy_addr, 1));
            }
            c.database_connect_timeout = Duration::from_secs(1);
        })
        .start();
    assert_eq!(app.get("/readyz").status(), StatusCode::OK);

    proxy.cut();
    let res = app.get("/readyz");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "service_unavailable");
    assert_eq!(body["code"], "database_unavailable");
    assert_eq!(body["request_id"], id.as_str());
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").status(), StatusCode::OK);

    proxy.restore();
    // The pool reconnects on the next checkout; allow it a few tries.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..20 {
        status = app.get("/readyz").status();
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(status, StatusCode::OK, "ready again once the database is back");
}
