//! Several instances as one deployment: two `tessera serve` processes on
//! one database, under one issuer and one master key, as behind a load
//! balancer, and the CLI as a third writer. Used by `hot_path.rs` (the
//! staleness bound) and `fleet.rs` (what must hold across instances).

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

use super::served::{Served, tessera};
use super::{Backend, Site, TestDatabase, http_client};

/// The issuer every instance of a fleet announces. Plain http so that the
/// test's browser, which talks HTTP to each instance directly, gets
/// cookies without `Secure` and sends them back.
pub const ISSUER: &str = "http://auth.fleet.example";

/// What the README promises: a change made elsewhere holds everywhere
/// within 500 ms (`feed::STALE_AFTER`). Each test prints the figure it
/// measured against it.
pub const PROMISE: Duration = tessera::store::feed::STALE_AFTER;

/// Where a test fails: six times the promise. Generous on purpose, so that
/// a loaded 2-core machine cannot turn CI red, yet a change that never
/// spreads, or spreads only when a cache entry ages out, still fails.
/// The promise itself is measured, not asserted: the printed figures, and
/// `bench/fleet.py` under load.
pub const BOUND: Duration = Duration::from_secs(3);

/// Polls `check` until it holds; how long that took. Panics past 10 s
/// (at the caller's line).
#[track_caller]
pub fn until(mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(10), "never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// Prints what was measured beside the promise, and fails past `BOUND`.
pub fn within_bound(what: &str, took: Duration) {
    let over = if took > PROMISE { " (over the promise)" } else { "" };
    eprintln!("staleness: {what}: {} ms of {} ms promised{over}", took.as_millis(), PROMISE.as_millis());
    assert!(took <= BOUND, "{what} took {took:?}, more than {BOUND:?}");
}

/// The `tessera` command on `database`, with the fleet's issuer and the
/// master key file beside it, and `env` on top.
pub fn command(database: &TestDatabase, env: &[(&str, &str)]) -> Command {
    let mut cmd = tessera(database.dir.path());
    cmd.env("TESSERA_DATABASE_URL", database.url_string())
        .env("TESSERA_MASTER_KEY_FILE", database.dir.path().join("master-key"))
        .env("TESSERA_LOG_LEVEL", "warn")
        .env("TESSERA_ISSUER", ISSUER)
        .envs(env.iter().copied());
    cmd
}

/// `tessera ARGS` on `database` (see `command`); its stdout. Panics
/// unless it exits 0.
pub fn cli(database: &TestDatabase, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = command(database, env).args(args).output().unwrap();
    assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// One running instance and its base URL.
pub struct Instance {
    pub served: Served,
    pub base: String,
}

impl Instance {
    /// `tessera serve` (see `command`), once it listens.
    pub fn start(database: &TestDatabase, env: &[(&str, &str)]) -> Self {
        let mut served = Served::start(command(database, env));
        let base = served.wait_listening();
        Self { served, base }
    }
}

impl Site for Instance {
    fn base_url(&self) -> &str {
        &self.base
    }
}

/// Two instances, A and B, on one database.
pub struct Fleet {
    pub database: TestDatabase,
    pub a: Instance,
    pub b: Instance,
    pub http: Client,
    env: Vec<(&'static str, &'static str)>,
}

impl Fleet {
    pub fn start(backend: &Backend) -> Self {
        Self::start_with(backend, &[])
    }

    /// With `env` (settings) given to both instances and to the CLI.
    pub fn start_with(backend: &Backend, env: &[(&'static str, &'static str)]) -> Self {
        let database = TestDatabase::new(backend);
        // One after the other: the first migrates, makes the admin and the
        // master key file the second reads.
        let a = Instance::start(&database, env);
        let b = Instance::start(&database, env);
        Self { database, a, b, http: http_client(), env: env.to_vec() }
    }

    /// The CLI on the same database: a third writer. Its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(&self.database, &self.env, args)
    }

    pub fn cli_json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.cli(args)).unwrap()
    }

    /// A test-mode API key of the first admin with `permissions` (comma
    /// separated), made by the CLI: its id and the raw key.
    pub fn key(&self, permissions: &str) -> (String, String) {
        let key = self.cli_json(&[
            "key",
            "create",
            "--owner",
            "admin@localhost",
            "--name",
            permissions,
            "--mode",
            "test",
            "--permissions",
            permissions,
            "--json",
        ]);
        (key["id"].as_str().unwrap().to_string(), key["key"].as_str().unwrap().to_string())
    }

    /// `GET /v1/me` on `base` with a bearer credential.
    pub fn me(&self, base: &str, bearer: &str) -> StatusCode {
        self.http.get(format!("{base}/v1/me")).bearer_auth(bearer).send().unwrap().status()
    }
}
