//! The Redis the shared rate limits use: `TESSERA_TEST_REDIS_URL`, else
//! 127.0.0.1:6379 when something answers there. Under CI a missing Redis
//! fails the test instead of skipping it (`.ci/run` starts one).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const REDIS_ENV: &str = "TESSERA_TEST_REDIS_URL";

/// `(url, host:port address)` of the test Redis, or `None` (skip).
pub fn redis() -> Option<(String, SocketAddr)> {
    let url = std::env::var(REDIS_ENV).unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let authority = url.trim_start_matches("redis://").split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let addr: Option<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(host_port).ok().and_then(|mut a| a.next());
    match addr.filter(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok()) {
        Some(addr) => Some((url, addr)),
        None if super::in_ci() => panic!("CI needs Redis at {url} (set {REDIS_ENV}, or start redis-server)"),
        None => {
            super::skipped("the Redis tests", &format!("nothing answers at {url}; set {REDIS_ENV}"));
            None
        }
    }
}

/// `url` with its host and port replaced by `addr` (a proxy in front).
pub fn through(url: &str, addr: SocketAddr) -> String {
    let rest = url.trim_start_matches("redis://");
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    let tail = if tail.is_empty() { String::new() } else { format!("/{tail}") };
    format!("redis://{userinfo}{addr}{tail}")
}
