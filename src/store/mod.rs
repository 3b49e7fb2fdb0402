//! Storage: one diesel schema over SQLite and PostgreSQL, chosen by the URL
//! scheme. Owns the connection type, the pool, the migrations and the
//! `StoreError` that every query returns. One module per table family.
//!
//! Queries are plain functions over `&mut DbConn`; async code reaches them
//! only through `Db::run`, which runs them on the blocking pool.

pub mod api_keys;
pub mod audit;
pub mod cache;
pub mod clients;
pub mod feed;
pub mod grants;
pub mod key_usage;
pub mod purge;
pub mod registrations;
pub mod resources;
pub mod schema;
pub mod sdk;
pub mod sessions;
pub mod signing_keys;
pub mod tokens;
mod url;
pub mod users;

pub use url::DatabaseUrl;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite connection waits for another writer's lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// One connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

pub type Pool = r2d2::Pool<ConnManager>;

/// What a query can fail with. Callers match on the first three; the rest
/// is an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (e.g. an email already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// No connection could be had in time: the database is unreachable or
    /// overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => Self::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Self::Conflict(info.constraint_name().unwrap_or(info.message()).to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Self::Unavailable(info.message().to_string())
            }
            other => Self::Query(other),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The database could not be opened or prepared at start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// Opens connections for the pool, dispatching on the URL scheme so that a
/// PostgreSQL URL can never silently become a SQLite file, and surfacing
/// the real error of a failed connection.
#[derive(Debug, Clone)]
pub struct ConnManager {
    url: DatabaseUrl,
    connect_timeout: Duration,
}

impl ConnManager {
    pub fn new(url: DatabaseUrl, connect_timeout: Duration) -> Self {
        Self { url, connect_timeout }
    }

    fn establish(&self) -> Result<DbConn, ConnectError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| ConnectError("the database path is not UTF-8".into()))?;
                let mut conn = SqliteConnection::establish(path).map_err(|e| ConnectError(e.to_string()))?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(|e| ConnectError(e.to_string()))?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let url = with_connect_timeout(url, self.connect_timeout);
                PgConnection::establish(&url).map(DbConn::Postgres).map_err(|e| ConnectError(one_line(&e.to_string())))
            }
        }
    }
}

/// libpq's messages span lines ("…\n\tIs the server running…"); an
/// operator gets them as one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// libpq waits forever for an unresponsive host unless told otherwise.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    // libpq treats values below 2 as 2 seconds.
    let secs = timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

impl r2d2::ManageConnection for ConnManager {
    type Connection = DbConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConn, ConnectError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectError> {
        conn.ping().map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Logs pool errors through `tracing` (r2d2's default goes to `log`).
#[derive(Debug)]
struct PoolErrorLog;

/// The pool retries a lost database many times a second: one line every
/// `LOG_EVERY` says so, with how many attempts failed since the last.
impl r2d2::HandleError<ConnectError> for PoolErrorLog {
    fn handle_error(&self, error: ConnectError) {
        const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
        static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
        static SINCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let failed = SINCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(std::time::Instant::now());
            SINCE.store(0, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %error, failed_attempts = failed, "database connection failed");
        }
    }
}

/// Opens the database, waiting up to `connect_timeout` for it to answer,
/// applies pending migrations and returns a pool over it.
pub fn open(url: &DatabaseUrl, pool_size: u32, connect_timeout: Duration) -> Result<Pool, ConnectError> {
    let manager = ConnManager::new(url.clone(), connect_timeout);
    let mut conn = connect_with_retry(&manager, connect_timeout)?;
    migrate(&mut conn)?;
    drop(conn);
    Ok(r2d2::Pool::builder()
        .max_size(pool_size)
        // Connections are made on demand, never in the background: a
        // background connect still running when a CLI command exits crashed
        // inside libpq's TLS set-up (SIGSEGV at exit).
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .error_handler(Box::new(PoolErrorLog))
        .build_unchecked(manager))
}

/// Tries to connect until the deadline, so a database that is still
/// starting is waited for, and one that is down fails with its real error.
fn connect_with_retry(manager: &ConnManager, wait: Duration) -> Result<DbConn, ConnectError> {
    let deadline = Instant::now() + wait;
    loop {
        match manager.establish() {
            Ok(conn) => return Ok(conn),
            // A SQLite failure (bad path, read-only directory) will not heal.
            Err(e) if matches!(manager.url, DatabaseUrl::Sqlite(_)) => return Err(e),
            Err(e) if Instant::now() >= deadline => {
                return Err(ConnectError(format!("{} (gave up after {}s)", e.0, wait.as_secs())));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Applies pending migrations; a no-op when there are none. On PostgreSQL
/// an advisory lock keeps instances that start together from racing.
pub fn migrate(conn: &mut DbConn) -> Result<(), ConnectError> {
    let failed = |e: &dyn std::fmt::Display| ConnectError(format!("migration failed: {e}"));
    match conn {
        DbConn::Sqlite(c) => {
            c.run_pending_migrations(SQLITE_MIGRATIONS).map_err(|e| failed(&e))?;
        }
        DbConn::Postgres(c) => {
            // An arbitrary constant naming "tessera migrations".
            c.batch_execute("SELECT pg_advisory_lock(7252365521)").map_err(|e| failed(&e))?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            let unlock = c.batch_execute("SELECT pg_advisory_unlock(7252365521)");
            result.map_err(|e| failed(&e))?;
            unlock.map_err(|e| failed(&e))?;
        }
    }
    Ok(())
}

/// A pooled connection that reads the cache version when dropped.
pub struct SyncedConn {
    conn: r2d2::PooledConnection<ConnManager>,
    feed: std::sync::Arc<feed::Feed>,
}

impl std::ops::Deref for SyncedConn {
    type Target = DbConn;

    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl std::ops::DerefMut for SyncedConn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl Drop for SyncedConn {
    fn drop(&mut self) {
        let _ = self.feed.sync(&mut self.conn);
    }
}

/// How long requests answer 503 at once after the pool found the database
/// unreachable, before one of them tries again.
pub const FAIL_FAST: std::time::Duration = std::time::Duration::from_millis(500);

/// Fails requests fast while the database is known to be unreachable:
/// without it each would wait `TESSERA_DATABASE_CONNECT_TIMEOUT` for a
/// connection that cannot come, holding a blocking thread all along.
/// Tripped only when the pool holds no connection at all (the database is
/// gone), never by a pool merely busy under load.
#[derive(Default)]
struct Breaker {
    tripped_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// After `FAIL_FAST`, one request tries the database; the others keep
    /// failing fast until it has an answer.
    probing: std::sync::atomic::AtomicBool,
}

/// Why a fail-fast 503 happened: logged at debug, not once per request.
pub const FAIL_FAST_CAUSE: &str = "the database was unreachable a moment ago";

/// Logs a request refused for want of the database: a warning with its
/// cause, except for the fail-fast refusals that follow one (debug: they
/// come at the rate of requests).
pub fn log_unavailable(cause: &dyn std::fmt::Display) {
    let request_id = crate::request::current_request_id();
    let request_id = request_id.as_deref().unwrap_or("-");
    let cause = cause.to_string();
    if cause.ends_with(FAIL_FAST_CAUSE) {
        tracing::debug!(request_id, error = %cause, "database unavailable");
    } else {
        tracing::warn!(request_id, error = %cause, "database unavailable");
    }
}

/// What `Breaker::admit` decides for one request.
enum Admit {
    Go,
    /// The one request that tries the database after `FAIL_FAST`; its
    /// guard lets another try if it ends without an answer.
    Probe(ProbeGuard),
    Refuse,
}

/// Held by the probing request: dropped unanswered (a task never run, a
/// panic), it lets the next request probe instead.
struct ProbeGuard(std::sync::Arc<Breaker>);

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.0.probing.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Breaker {
    fn admit(self: &std::sync::Arc<Self>) -> Admit {
        use std::sync::atomic::Ordering;
        let tripped = *self.tripped_at.lock().unwrap_or_else(|e| e.into_inner());
        match tripped {
            None => Admit::Go,
            Some(at) if at.elapsed() < FAIL_FAST => Admit::Refuse,
            Some(_) => match self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => Admit::Probe(ProbeGuard(self.clone())),
                Err(_) => Admit::Refuse,
            },
        }
    }

    fn trip(&self) {
        *self.tripped_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
        self.probing.store(false, std::sync::atomic::Ordering::Release);
    }

    fn reset(&self) {
        let mut tripped = self.tripped_at.lock().unwrap_or_else(|e| e.into_inner());
        if tripped.take().is_some() {
            self.probing.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Cheap handle that async code uses to reach the database.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    feed: std::sync::Arc<feed::Feed>,
    /// Closures run on the pool so far.
    runs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Callers waiting for a pooled connection now.
    waiting: std::sync::Arc<std::sync::atomic::AtomicU32>,
    breaker: std::sync::Arc<Breaker>,
}

/// The pool as `/metrics` shows it.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
    pub waiting: u32,
}

impl Db {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            feed: Default::default(),
            runs: Default::default(),
            waiting: Default::default(),
            breaker: Default::default(),
        }
    }

    /// The database answered on another connection (the feed's poller):
    /// requests need not fail fast any more.
    pub fn database_answered(&self) {
        self.breaker.reset();
    }

    /// Connections in use and idle, and callers waiting for one.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// How many closures `run` has taken a pooled connection for: the
    /// paths answered from memory take none.
    pub fn pool_runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the caches over this database consult (`feed`).
    pub fn feed(&self) -> std::sync::Arc<feed::Feed> {
        self.feed.clone()
    }

    /// A connection for synchronous callers (CLI, start-up, tests). What
    /// is written through it reaches this process's caches when it is
    /// dropped.
    pub fn conn(&self) -> Result<SyncedConn, StoreError> {
        Ok(SyncedConn { conn: self.pool.get()?, feed: self.feed.clone() })
    }

    /// Runs `f` with a connection on the blocking pool, never on an actix
    /// worker thread. `f` returns its own error type (a service's error),
    /// which a failure to get a connection converts into.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let probe = match self.breaker.admit() {
            Admit::Refuse => return Err(E::from(StoreError::Unavailable(FAIL_FAST_CAUSE.into()))),
            Admit::Probe(guard) => Some(guard),
            Admit::Go => None,
        };
        let (pool, feed, waiting, breaker) =
            (self.pool.clone(), self.feed.clone(), self.waiting.clone(), self.breaker.clone());
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        actix_web::web::block(move || {
            waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let got = pool.get();
            waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let mut conn = match got {
                Ok(conn) => {
                    breaker.reset();
                    conn
                }
                Err(e) => {
                    metrics::counter!("tessera_db_pool_timeouts_total").increment(1);
                    // The probe failing keeps the breaker open whatever
                    // the pool holds; another request only trips it when
                    // the pool holds nothing (not merely busy).
                    if probe.is_some() || pool.state().connections == 0 {
                        breaker.trip();
                    }
                    drop(probe);
                    return Err(E::from(StoreError::from(e)));
                }
            };
            drop(probe);
            let answer = f(&mut conn);
            // What this did is in memory before its answer leaves.
            if let Err(e) = feed.sync(&mut conn) {
                tracing::debug!(error = %e, "could not read the cache version");
            }
            answer
        })
        .await
        .map_err(|e| E::from(StoreError::Internal(format!("blocking task failed: {e}"))))?
    }

    /// `f` from memory when it needs nothing from the database (its
    /// lookups all hit the caches), else on the blocking pool as `run`.
    /// `f` may thus run twice: it must not act outside the connection.
    pub async fn run_cached<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&mut DbConn) -> Result<T, E> + Send + Sync + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if let Some(answer) = feed::offline(&f) {
            return answer;
        }
        self.run(f).await
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.ping().map_err(StoreError::from)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Admit, Breaker, FAIL_FAST};

    fn window_passed(breaker: &Breaker) {
        *breaker.tripped_at.lock().unwrap() = Instant::now().checked_sub(FAIL_FAST + Duration::from_millis(1));
    }

    fn refuses(breaker: &Arc<Breaker>) -> bool {
        matches!(breaker.admit(), Admit::Refuse)
    }

    /// Open for `FAIL_FAST`, then one probe at a time; a probe that ends
    /// without an answer (its guard dropped) lets the next one try, so the
    /// breaker never stays open with nobody probing.
    #[test]
    fn the_breaker_fails_fast_then_lets_one_probe_and_never_sticks() {
        let breaker = Arc::new(Breaker::default());
        assert!(matches!(breaker.admit(), Admit::Go));
        breaker.trip();
        assert!(refuses(&breaker), "within the window");

        window_passed(&breaker);
        let Admit::Probe(first) = breaker.admit() else { panic!("a probe after the window") };
        assert!(refuses(&breaker), "one probe at a time");
        drop(first);
        let Admit::Probe(second) = breaker.admit() else { panic!("an abandoned probe is replaced") };

        // The probe failed: a new window, then a new probe.
        breaker.trip();
        drop(second);
        assert!(refuses(&breaker));
        window_passed(&breaker);
        assert!(matches!(breaker.admit(), Admit::Probe(_)));

        // The database answered (the probe, another request, the poller).
        breaker.reset();
        assert!(matches!(breaker.admit(), Admit::Go));
        assert!(matches!(breaker.admit(), Admit::Go));
    }
}
