//! The test harness: `TestApp` starts the real server on an ephemeral port
//! over a fresh database (a temp SQLite file, or a fresh PostgreSQL
//! database made from `TESSERA_TEST_POSTGRES_URL` and dropped afterwards),
//! with a manual clock and an HTTP client that keeps cookies.

#![allow(dead_code)]

pub mod browser;
pub mod fleet;
pub mod oauth;
pub mod proxy;
pub mod redis;
pub mod served;
pub mod snapshot;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tessera::clock::ManualClock;
use tessera::config::{Config, DatabaseUrl};
use tessera::crypto::random_base62;
use tessera::store::Db;

pub const POSTGRES_ENV: &str = "TESSERA_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The server URL from `TESSERA_TEST_POSTGRES_URL`.
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend, or `None` (and one line on stderr, once per
    /// run) when `TESSERA_TEST_POSTGRES_URL` is not set. Under CI (see
    /// `in_ci`) a missing URL fails the test instead: a skip there would
    /// let the suite pass without ever touching PostgreSQL.
    pub fn postgres() -> Option<Self> {
        Self::postgres_from(std::env::var(POSTGRES_ENV).ok(), in_ci())
    }

    /// `postgres()` with the environment passed in, so the rule can be
    /// tested without changing the process environment.
    pub fn postgres_from(url: Option<String>, ci: bool) -> Option<Self> {
        match url {
            Some(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ if ci => panic!(
                "{POSTGRES_ENV} is not set: under CI (CI is set) the PostgreSQL half of the suite must run, not be skipped"
            ),
            _ => {
                skipped("the PostgreSQL half of the suite", &format!("{POSTGRES_ENV} is not set"));
                None
            }
        }
    }
}

/// Says, once per run and group, that a group of tests is skipped:
/// `SKIPPED: <group> (<why>)` on stderr, written past the test harness's
/// capture so that a plain `cargo test` shows it (an `eprintln!` inside a
/// passing test is swallowed). The caller has already failed under CI,
/// where a skip must not happen; `.ci/run` also fails on any such line.
pub fn skipped(group: &str, why: &str) {
    use std::io::Write;
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if SAID.lock().unwrap_or_else(|e| e.into_inner()).insert(group.to_owned()) {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {group} ({why})");
    }
}

/// Whether the suite runs under CI: `CI` set to anything non-empty (as
/// GitHub Actions, GitLab CI and `.ci/run` set it). There a missing
/// database or browser fails the test that needs it instead of skipping.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Runs each named test function once per backend:
/// `both_backends!(f, g)` makes `sqlite::f`, `postgres::f`, ….
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::support::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if let Some(backend) = $crate::support::Backend::postgres() { super::$name(backend) }
            })*
        }
    };
}

/// A database that exists for one test: a file in a temp dir, or a
/// PostgreSQL database that is dropped when this is.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self { url: DatabaseUrl::Sqlite(dir.path().join("tessera.db")), dir, postgres: None },
            Backend::Postgres(server_url) => {
                let name = format!("tessera_test_{}", random_base62(16).to_lowercase());
                let mut admin = PgConnection::establish(server_url).expect("connect to TESSERA_TEST_POSTGRES_URL");
                admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
                let url = with_database_name(server_url, &name);
                Self {
                    url: DatabaseUrl::parse(&url).expect("postgres url"),
                    dir,
                    postgres: Some((server_url.clone(), name)),
                }
            }
        }
    }

    /// The URL as `TESSERA_DATABASE_URL` would carry it.
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server_url, name)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(server_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `postgres://u@h:5432/postgres?x=y` → `postgres://u@h:5432/NAME?x=y`.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The configuration every test app starts from: a free port, one worker,
/// quick timeouts, a fixed master key.
fn test_config(db: &TestDatabase) -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        database_pool_size: 4,
        database_connect_timeout: Duration::from_secs(2),
        master_key_file: Some(db.dir.path().join("master-key")),
        workers: Some(1),
        shutdown_timeout: Duration::from_secs(1),
        ..Config::default()
    }
}

type ConfigChange = Box<dyn FnOnce(&mut Config)>;

pub struct TestAppBuilder {
    backend: Backend,
    changes: Vec<ConfigChange>,
    frozen_clock: bool,
}

impl TestAppBuilder {
    /// Changes one setting for this test only.
    pub fn with_config(mut self, change: impl FnOnce(&mut Config) + 'static) -> Self {
        self.changes.push(Box::new(change));
        self
    }

    /// Time stands still unless the test advances `app.clock`: for limits
    /// measured in fractions of a second, which wall time spent by a slow
    /// machine would otherwise refill.
    pub fn with_frozen_clock(mut self) -> Self {
        self.frozen_clock = true;
        self
    }

    pub fn start(self) -> TestApp {
        let database = TestDatabase::new(&self.backend);
        let mut config = test_config(&database);
        for change in self.changes {
            change(&mut config);
        }
        let clock = if self.frozen_clock { ManualClock::frozen() } else { ManualClock::new() };
        let prepared = tessera::server::prepare(config.clone(), Arc::new(clock.clone()))
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let addr = prepared.addr;
        let db = prepared.db();
        let master_key = prepared.master_key();
        let first_admin =
            prepared.first_admin.as_ref().map(|a| (a.user.email.clone(), a.password.expose().to_string()));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match prepared.run(false) {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
        });
        let handle = rx.recv().expect("server thread").unwrap_or_else(|e| panic!("server did not run: {e}"));
        TestApp {
            addr,
            base_url: format!("http://{addr}"),
            clock,
            db,
            config,
            first_admin,
            master_key,
            client: http_client(),
            handle,
            thread: Some(thread),
            database,
        }
    }
}

/// A full secret key for `owner_id` in `mode`, with no restrictions: the
/// request other tests change one field of.
pub fn key_request(owner_id: &str, mode: tessera::apikeys::Mode) -> tessera::apikeys::NewKey {
    tessera::apikeys::NewKey {
        owner_id: owner_id.into(),
        client_id: None,
        name: "Backend".into(),
        key_type: tessera::apikeys::KeyType::Secret,
        mode,
        permissions: vec![],
        allowed_ips: vec![],
        allowed_referrers: vec![],
        allowed_endpoints: vec![],
        expires_in: None,
        rate_limit: None,
    }
}

/// The first `Some` that `check` gives, tried for up to 10 s: for what the
/// server does off the request path (an audit row written after the
/// answer left). Waits for an outcome, never to let time pass.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking client that keeps cookies and does not follow redirects, so
/// a test sees every 302.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Where a person's browser goes: a server's base URL.
pub trait Site {
    /// `http://127.0.0.1:PORT`.
    fn base_url(&self) -> &str;

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }
}

impl<T: Site + ?Sized> Site for &T {
    fn base_url(&self) -> &str {
        (**self).base_url()
    }
}

impl Site for TestApp {
    fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// A running server over its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub clock: ManualClock,
    pub db: Db,
    pub config: Config,
    /// `(email, password)` of the admin made on first start.
    pub first_admin: Option<(String, String)>,
    pub master_key: tessera::crypto::MasterKey,
    pub client: reqwest::blocking::Client,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
    pub database: TestDatabase,
}

impl TestApp {
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder { backend, changes: Vec::new(), frozen_clock: false }
    }

    pub fn start(backend: Backend) -> Self {
        Self::builder(backend).start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.client.get(self.url(path)).send().expect("GET")
    }

    pub fn conn(&self) -> impl std::ops::DerefMut<Target = tessera::store::DbConn> {
        self.db.conn().expect("database connection")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.database.dir.path().to_path_buf()
    }

    /// The id of the user with `email`.
    pub fn user_id(&self, email: &str) -> String {
        tessera::store::users::find_by_email(&mut self.conn(), email).expect("lookup").expect("a user").id
    }

    /// A new API key of the first admin, with every permission, made
    /// through the service: the one credential a test needs before it can
    /// make everything else over HTTP.
    pub fn root_key(&self) -> String {
        let new = tessera::apikeys::NewKey {
            name: "Root".into(),
            ..key_request(&self.user_id("admin@localhost"), tessera::apikeys::Mode::of(self.config.environment))
        };
        let (_, raw) =
            tessera::apikeys::create(&mut self.conn(), &self.clock, &self.master_key, new, tessera::audit::Actor::Cli)
                .expect("create the root key");
        raw.expose().to_string()
    }

    /// `POST /v1/api-keys` with `body`, authenticated by `creator`;
    /// panics unless 201. Returns the key's id, the raw key and the answer.
    pub fn create_key(&self, creator: &str, body: serde_json::Value) -> (String, String, serde_json::Value) {
        let res = self.client.post(self.url("/v1/api-keys")).bearer_auth(creator).json(&body).send().expect("POST");
        let status = res.status();
        let answer: serde_json::Value = res.json().expect("a JSON answer");
        assert_eq!(status, 201, "{answer}");
        let data = &answer["data"];
        (data["id"].as_str().expect("id").into(), data["key"].as_str().expect("key").into(), answer.clone())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::System::new().block_on(handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
