//! How in-memory copies of credentials learn that the database changed.
//!
//! Every write to a table that a cache copies (users, clients, client
//! secrets, resource servers, signing keys, API keys, grant revocations,
//! token revocations) bumps its kind's row of `cache_version`, by a trigger,
//! in the writer's own transaction: whoever wrote it (this instance,
//! another instance, the CLI) and whatever code path did.
//!
//! `Feed` remembers the version last read and a local *generation* that
//! moves whenever the version does. A cached entry records the generation
//! it was read under (taken *before* the read) and is used only while the
//! generation is unchanged, so an entry read concurrently with a write is
//! never trusted once that write is seen. The version is read after every
//! use of the pool (`Db::run`): a change made through this instance counts
//! before its answer leaves. A poller reads it every `POLL` for changes
//! made elsewhere, and an entry is trusted only while the last read is
//! younger than `STALE_AFTER`: if the database cannot be asked, the caches
//! step aside rather than serve what may have been revoked.
//!
//! `offline` runs a service against a connection that holds nothing: any
//! query it tries is noted, so that a caller can tell an answer made from
//! memory alone from one that needed the database (and then ask again on
//! a real connection).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use super::schema::cache_version;
use super::{DbConn, StoreError};

/// The triggers that move the versions (migration
/// `2026-12-01-000010_cache_version`): 21 row triggers on SQLite, 8
/// constraint triggers on PostgreSQL.
const TRIGGERS: (i64, i64) = (21, 8);

/// Whether every trigger that moves the versions is in place: without one,
/// a write would leave the caches believing what it changed. The server
/// does not start without them.
pub fn triggers_present(conn: &mut DbConn) -> Result<bool, StoreError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let (query, expected) = match conn {
        DbConn::Sqlite(_) => (
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%UPDATE cache_version%'",
            TRIGGERS.0,
        ),
        DbConn::Postgres(_) => (
            "SELECT COUNT(*) AS n FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
             WHERE p.proname = 'tessera_cache_changed' AND t.tgenabled <> 'D'",
            TRIGGERS.1,
        ),
    };
    let count: Count = diesel::sql_query(query).get_result(conn)?;
    Ok(count.n == expected)
}

/// How often the version is read for changes made elsewhere.
pub const POLL: Duration = Duration::from_millis(100);
/// How old the last read may be for a cached entry to count; the bound on
/// how late a change made elsewhere takes effect here.
pub const STALE_AFTER: Duration = Duration::from_millis(500);

/// What changed: one version row per kind of cached thing, so that a
/// revoked token does not make every instance forget every API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Users = 1,
    /// Clients and their secrets.
    Clients = 2,
    ResourceServers = 3,
    SigningKeys = 4,
    ApiKeys = 5,
    Grants = 6,
    RevokedTokens = 7,
}

const KINDS: usize = 7;

pub struct Feed {
    epoch: Instant,
    /// The last version read of each kind (index `kind - 1`); -1 before
    /// the first read.
    versions: [AtomicI64; KINDS],
    generations: [AtomicU64; KINDS],
    /// Milliseconds after `epoch` of the last successful read.
    read_at: AtomicI64,
    /// Successful reads so far.
    reads: AtomicU64,
}

impl Feed {
    /// How long ago the versions were last read; `None` before the first.
    pub fn since_last_read(&self) -> Option<Duration> {
        let at = self.read_at.load(Ordering::Acquire);
        (at != i64::MIN).then(|| Duration::from_millis(u64::try_from(self.millis().saturating_sub(at)).unwrap_or(0)))
    }
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            versions: std::array::from_fn(|_| AtomicI64::new(-1)),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            read_at: AtomicI64::new(i64::MIN),
            reads: AtomicU64::new(0),
        }
    }
}

impl Feed {
    fn millis(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The generation to record with an entry about to be read, made of
    /// what it depends on (it moves whenever one of `kinds` does); `None`
    /// while the feed is stale (the entry would not be trusted anyway).
    pub fn generation(&self, kinds: &[Kind]) -> Option<u64> {
        let stale = self.millis().saturating_sub(self.read_at.load(Ordering::Acquire)) > STALE_AFTER.as_millis() as i64;
        (!stale).then(|| kinds.iter().map(|k| self.generations[*k as usize - 1].load(Ordering::Acquire)).sum())
    }

    /// Records the versions read by a query that started at `started`
    /// (`millis`): the entries count from then, not from when the answer
    /// arrived. A kind the answer lacks is taken as changed.
    fn observe_from(&self, versions: &[(i32, i64)], started: i64) {
        for index in 0..KINDS {
            let version = versions.iter().find(|(id, _)| *id as usize == index + 1).map_or(-2, |(_, v)| *v);
            if self.versions[index].swap(version, Ordering::AcqRel) != version || version == -2 {
                self.generations[index].fetch_add(1, Ordering::AcqRel);
            }
        }
        self.read_at.fetch_max(started, Ordering::AcqRel);
        self.reads.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the versions were read (for tests and metrics).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Acquire)
    }

    /// Records versions read from the database just now.
    pub fn observe(&self, versions: &[(i32, i64)]) {
        self.observe_from(versions, self.millis());
    }

    /// Reads the versions on `conn`. If it cannot, forgets every entry: a
    /// write this connection just made may not have been seen.
    pub fn sync(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        let started = self.millis();
        match cache_version::table.select((cache_version::id, cache_version::version)).load::<(i32, i64)>(conn) {
            Ok(versions) => {
                self.observe_from(&versions, started);
                Ok(())
            }
            Err(e) => {
                self.invalidate();
                Err(e.into())
            }
        }
    }

    /// Forgets every cached entry now (tests; the CLI's own writes are
    /// seen through the version).
    pub fn invalidate(&self) {
        for generation in &self.generations {
            generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

thread_local! {
    static OFFLINE: RefCell<Option<DbConn>> = const { RefCell::new(None) };
    static TOUCHED: Cell<bool> = const { Cell::new(false) };
    static RUNNING_OFFLINE: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is running a service `offline`: an error it makes
/// from a failed lookup is not real (the answer is thrown away), so it is
/// not logged.
pub fn is_offline() -> bool {
    RUNNING_OFFLINE.with(Cell::get)
}

fn offline_conn() -> Option<DbConn> {
    let mut conn = SqliteConnection::establish(":memory:").ok()?;
    conn.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| TOUCHED.with(|t| t.set(true)));
    Some(DbConn::Sqlite(conn))
}

/// `f` on a connection that holds nothing: its answer if it never reached
/// for the database, `None` if it did (its answer may then be wrong: a
/// lookup that failed, a write that did not happen).
pub fn offline<T>(f: impl FnOnce(&mut DbConn) -> T) -> Option<T> {
    OFFLINE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = offline_conn();
        }
        let conn = slot.as_mut()?;
        TOUCHED.with(|t| t.set(false));
        RUNNING_OFFLINE.with(|r| r.set(true));
        let answer = f(conn);
        RUNNING_OFFLINE.with(|r| r.set(false));
        (!TOUCHED.with(|t| t.replace(false))).then_some(answer)
    })
}

/// The longest key an entry is kept under: ids, fingerprints and digests
/// are far shorter; anything longer is looked up every time.
pub const MAX_KEY_LEN: usize = 256;

/// A bounded cache whose entries count only under the generation they
/// were read in (see the module's comment). Misses, `None` included, are
/// cached too: a flood of unknown keys does not reach the database.
pub struct Cached<V> {
    entries: moka::sync::Cache<String, (u64, V)>,
    kinds: &'static [Kind],
    /// The `cache` label of `tessera_cache_requests_total`.
    name: &'static str,
}

impl<V: Clone + Send + Sync + 'static> Cached<V> {
    /// A cache, called `name` in the metrics, of what `kinds` of rows say.
    pub fn new(name: &'static str, kinds: &'static [Kind], capacity: u64, ttl: Duration) -> Self {
        Self { entries: moka::sync::Cache::builder().max_capacity(capacity).time_to_live(ttl).build(), kinds, name }
    }

    /// The generation an entry read now is kept under.
    pub fn generation(&self, feed: &Feed) -> Option<u64> {
        feed.generation(self.kinds)
    }

    /// The entry for `key`, read with `load` unless a trusted copy is held.
    pub fn get_or_load<E>(&self, feed: &Feed, key: &str, load: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        let generation = self.generation(feed);
        if let Some(value) = self.get(generation, key) {
            return Ok(value);
        }
        let value = load()?;
        self.put(generation, key, value.clone());
        Ok(value)
    }

    /// The entry for `key` if it was read in `generation` (taken from the
    /// feed before a read that may `put`).
    pub fn get(&self, generation: Option<u64>, key: &str) -> Option<V> {
        let found = self.entries.get(key).and_then(|(at, value)| (Some(at) == generation).then_some(value));
        // A miss in `run_cached`'s in-memory rehearsal is looked up again
        // on the pool: counted there, once.
        if found.is_some() || !is_offline() {
            crate::telemetry::cache_lookup(self.name, found.is_some());
        }
        found
    }

    /// Keeps `value`, read in `generation`; nothing while the feed is stale,
    /// nor under a key longer than `MAX_KEY_LEN` (capacity counts entries).
    pub fn put(&self, generation: Option<u64>, key: &str, value: V) {
        if let Some(generation) = generation.filter(|_| key.len() <= MAX_KEY_LEN) {
            self.entries.insert(key.to_string(), (generation, value));
        }
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_only_in_its_generation_and_while_fresh() {
        let feed = Feed::default();
        let cache: Cached<i32> = Cached::new("test", &[Kind::ApiKeys, Kind::Users], 10, Duration::from_secs(60));
        let all = |api_keys: i64, revoked: i64| [(1, 0), (2, 0), (3, 0), (4, 0), (5, api_keys), (6, 0), (7, revoked)];
        let loads = Cell::new(0);
        let load = || -> Result<i32, ()> {
            loads.set(loads.get() + 1);
            Ok(loads.get())
        };
        // Never read: stale, nothing kept.
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(1));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(2));
        feed.observe(&all(7, 0));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(3));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(3), "kept");
        feed.observe(&all(7, 0));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(3), "same versions");
        feed.observe(&all(7, 5));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(3), "another kind moved");
        feed.observe(&all(8, 5));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(4), "its kind moved");
        feed.observe(&[(1, 0), (2, 0), (3, 0), (4, 0), (6, 0), (7, 5)]);
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(5), "a kind missing counts as moved");
        feed.observe(&all(8, 5));
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(6), "back: a move all the same");
        feed.invalidate();
        assert_eq!(cache.get_or_load(&feed, "k", load), Ok(7));
    }

    #[test]
    fn the_cache_is_bounded() {
        let feed = Feed::default();
        feed.observe(&[(1, 1)]);
        let cache: Cached<Option<i32>> = Cached::new("test", &[Kind::ApiKeys], 100, Duration::from_secs(60));
        for i in 0..10_000 {
            cache.get_or_load::<()>(&feed, &format!("unknown-{i}"), || Ok(None)).unwrap();
        }
        assert!(cache.entry_count() <= 100, "{}", cache.entry_count());
    }

    #[test]
    fn offline_notes_every_query() {
        assert_eq!(offline(|_| 1), Some(1));
        let touched = offline(|conn| {
            let _ = diesel::sql_query("SELECT 1").execute(conn);
            2
        });
        assert_eq!(touched, None);
        assert_eq!(offline(|_| 3), Some(3), "the note does not linger");
    }
}
