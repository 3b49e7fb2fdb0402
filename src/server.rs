//! Start-up: bind, open and migrate the database, load the master key,
//! make the first admin, then serve. `prepare` does the blocking work and
//! fails with an error that names the setting at fault; `run` serves.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{HttpServer, web};

use crate::accounts::{self, FirstAdmin};
use crate::apikeys::UsageRecorder;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::http::AppState;
use crate::http::ratelimit::{LimitSettings, RateLimits, Shared};
use crate::http::routes::build_app;
use crate::jwt::keyring::KeyRing;
use crate::jwt::{self, keys::SigningAlg};
use crate::oauth::AuthServer;
use crate::oauth::registration::{self, RegistrationMode, RegistrationPolicy};
use crate::oauth::user_grants::RefreshPolicy;
use crate::store::cache::Caches;
use crate::store::{self, Db};

/// Start-up failed; `setting` names what the operator should look at.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct StartError {
    pub setting: String,
    pub message: String,
}

impl StartError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        Self { setting: setting.to_string(), message: message.into() }
    }
}

/// Everything checked and opened, not yet serving.
pub struct Prepared {
    state: web::Data<AppState>,
    listener: TcpListener,
    pub addr: SocketAddr,
    /// `TESSERA_METRICS_BIND`'s listener, when set.
    metrics: Option<TcpListener>,
    pub metrics_addr: Option<SocketAddr>,
    /// Set when this start created `admin@localhost`: its one-time password.
    pub first_admin: Option<FirstAdmin>,
}

/// Opens the database (migrating it) and loads the master key. Shared by
/// `serve`, `migrate` and the CLI commands.
pub fn open_storage(config: &Config) -> Result<(Db, MasterKey), StartError> {
    let pool = store::open(&config.database_url, config.database_pool_size, config.database_connect_timeout)
        .map_err(|e| StartError::new("TESSERA_DATABASE_URL", format!("{}: {e}", config.database_url)))?;
    let master_key = match &config.master_key {
        Some(raw) => {
            MasterKey::parse(raw.expose()).map_err(|e| StartError::new("TESSERA_MASTER_KEY", e.to_string()))?
        }
        None => MasterKey::load_or_create(&config.master_key_path())
            .map_err(|e| StartError::new("TESSERA_MASTER_KEY_FILE", e.to_string()))?,
    };
    Ok((Db::new(pool), master_key))
}

pub fn prepare(config: Config, clock: SharedClock) -> Result<Prepared, StartError> {
    let listener = TcpListener::bind(&config.bind)
        .map_err(|e| StartError::new("TESSERA_BIND", format!("cannot listen on {}: {e}", config.bind)))?;
    let addr = listener.local_addr().map_err(|e| StartError::new("TESSERA_BIND", e.to_string()))?;
    let metrics = match &config.metrics_bind {
        Some(bind) => {
            let listener = TcpListener::bind(bind)
                .map_err(|e| StartError::new("TESSERA_METRICS_BIND", format!("cannot listen on {bind}: {e}")))?;
            crate::telemetry::install().map_err(|e| StartError::new("TESSERA_METRICS_BIND", e))?;
            Some(listener)
        }
        None => None,
    };
    let metrics_addr = match &metrics {
        Some(l) => Some(l.local_addr().map_err(|e| StartError::new("TESSERA_METRICS_BIND", e.to_string()))?),
        None => None,
    };
    let (db, master_key) = open_storage(&config)?;
    let first_admin = {
        let mut conn = db.conn().map_err(|e| StartError::new("TESSERA_DATABASE_URL", e.to_string()))?;
        accounts::ensure_first_admin(&mut conn, clock.as_ref())
            .map_err(|e| StartError::new("TESSERA_DATABASE_URL", format!("cannot create the first admin: {e}")))?
    };
    {
        let mut conn = db.conn().map_err(|e| StartError::new("TESSERA_DATABASE_URL", e.to_string()))?;
        jwt::keys::ensure_active(&mut conn, clock.as_ref(), &master_key, SigningAlg::Rs256)
            .map_err(|e| StartError::new("TESSERA_MASTER_KEY", format!("cannot prepare the signing key: {e}")))?;
    }
    {
        let mut conn = db.conn().map_err(|e| StartError::new("TESSERA_DATABASE_URL", e.to_string()))?;
        let present = store::feed::triggers_present(&mut conn)
            .map_err(|e| StartError::new("TESSERA_DATABASE_URL", format!("cannot check the cache triggers: {e}")))?;
        if !present {
            return Err(StartError::new(
                "TESSERA_DATABASE_URL",
                "a trigger of the cache versions (migration 2026-12-01-000010_cache_version) is missing: \
                 without it a change would not reach the in-memory caches; restore it before serving",
            ));
        }
    }
    if config.registration != RegistrationMode::Closed {
        let mut conn = db.conn().map_err(|e| StartError::new("TESSERA_DATABASE_URL", e.to_string()))?;
        registration::check_policy_scopes(&mut conn, &config.registration_scopes)
            .map_err(|m| StartError::new("TESSERA_REGISTRATION_SCOPES", m))?;
    }
    let issuer = config.issuer_for(addr);
    let oauth = Arc::new(AuthServer {
        issuer: issuer.clone(),
        default_audience: config.default_audience_for(&issuer),
        access_token_ttl: config.access_token_ttl,
        clock: clock.clone(),
        keys: KeyRing::new(master_key.clone(), config.rotation_policy(), db.feed()),
        cache: Arc::new(Caches::new(db.feed())),
        verified: crate::oauth::access_token::VerifiedTokens::default(),
        refresh: RefreshPolicy { idle: config.refresh_token_idle_ttl, absolute: config.refresh_token_ttl },
        registration: RegistrationPolicy { mode: config.registration, scopes: config.registration_scopes.clone() },
    });
    let limits = RateLimits::new(
        LimitSettings {
            default_per_key: config.api_rate_limit,
            max_per_key: config.api_rate_limit_max,
            failures_per_ip: config.ip_rate_limit,
            registrations_per_minute: config.registration_rate_limit,
            signins_per_minute: config.signin_rate_limit,
        },
        clock.clone(),
        match config.redis_url.clone() {
            Some(url) => Some(Shared::new(url, &issuer).map_err(|m| StartError::new("TESSERA_REDIS_URL", m))?),
            None => None,
        },
    );
    let key_usage = Arc::new(UsageRecorder::default());
    let state = web::Data::new(AppState {
        failure_audit: Arc::new(crate::audit::FailureSample::new(
            clock.clone(),
            config.audit_failures_per_ip,
            config.audit_failures_per_minute,
        )),
        hashes: crate::sessions::HashGate::new(config.password_hash_concurrency),
        config: Arc::new(config),
        db,
        clock,
        issuer,
        master_key,
        oauth,
        limits,
        key_usage,
    });
    Ok(Prepared { state, listener, addr, metrics, metrics_addr, first_admin })
}

/// Writes the API-key uses noted in memory (`apikeys::usage`), in one
/// transaction, and notes when it last succeeded (`/metrics`).
async fn flush_key_usage(state: &AppState) -> Result<(), store::StoreError> {
    let (usage, clock) = (state.key_usage.clone(), state.clock.clone());
    state.db.run(move |conn| usage.flush(conn, clock.as_ref())).await?;
    state.key_usage.flushed();
    Ok(())
}

impl Prepared {
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The database handle the server uses (tests reach the store with it).
    pub fn db(&self) -> Db {
        self.state.db.clone()
    }

    /// The master key in use (tests open sealed values with it).
    pub fn master_key(&self) -> MasterKey {
        self.state.master_key.clone()
    }

    /// `tessera serve`: serves until SIGTERM (in-flight requests finish
    /// within the shutdown timeout) or Ctrl-C, then writes the key usage
    /// still in memory, so a rolling restart loses none.
    pub async fn serve(self) -> std::io::Result<()> {
        let state = self.state.clone();
        self.run(true)?.await?;
        if let Err(e) = flush_key_usage(&state).await {
            tracing::warn!(error = %e, "could not record the last API key uses before stopping");
        }
        Ok(())
    }

    /// Starts the workers; the returned future ends when the server stops.
    /// With `handle_signals`, SIGTERM and Ctrl-C stop it gracefully:
    /// in-flight requests finish within the shutdown timeout.
    pub fn run(self, handle_signals: bool) -> std::io::Result<actix_web::dev::Server> {
        let config = self.state.config.clone();
        let state = self.state;
        // Writes API keys' `last_used`, usage counters and last uses every
        // few seconds, in one transaction, off the request path.
        let flusher = state.clone();
        let every = config.key_usage_flush_interval.max(std::time::Duration::from_millis(100));
        actix_web::rt::spawn(async move {
            // The first flush one interval after start: nothing is noted yet.
            let start = actix_web::rt::time::Instant::now() + every;
            let mut tick = actix_web::rt::time::interval_at(start, every);
            loop {
                tick.tick().await;
                if let Err(e) = flush_key_usage(&flusher).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            }
        });
        // Reads the cache versions (`store::feed`) on a connection of its
        // own, so an exhausted pool does not starve it: a change made by
        // another instance or the CLI reaches this one's caches within
        // `feed::STALE_AFTER`.
        let (feed, manager, db, issuer) = (
            state.db.feed(),
            store::ConnManager::new(config.database_url.clone(), config.database_connect_timeout),
            state.db.clone(),
            state.issuer.clone(),
        );
        actix_web::rt::spawn(async move {
            let own = std::sync::Arc::new(std::sync::Mutex::new(None));
            let mut tick = actix_web::rt::time::interval(crate::store::feed::POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (feed, manager, own, db, issuer) =
                    (feed.clone(), manager.clone(), own.clone(), db.clone(), issuer.clone());
                let _ = web::block(move || {
                    // A test holds the poller here to play a database that
                    // no longer answers (rather than refuses).
                    crate::pause::point("feed:poll", &issuer);
                    let mut own = own.lock().unwrap_or_else(|e| e.into_inner());
                    if own.is_none() {
                        *own = r2d2::ManageConnection::connect(&manager).ok();
                    }
                    // A connection that fails is dropped and made again.
                    match own.as_mut().map(|conn| feed.sync(conn)) {
                        Some(Ok(())) => db.database_answered(),
                        Some(Err(_)) => *own = None,
                        None => {}
                    }
                })
                .await;
            }
        });
        // Deletes what can no longer matter, so no table grows without bound.
        if !config.purge_interval.is_zero() {
            let policy = config.purge_policy();
            actix_web::rt::spawn(crate::purge::every(
                state.db.clone(),
                state.clock.clone(),
                policy,
                config.purge_interval,
            ));
        }
        // `GET /metrics` on its own listener and worker: never on the
        // public port, and scraped even while the workers are busy.
        if let Some(listener) = self.metrics {
            actix_web::rt::spawn(async {
                let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    crate::telemetry::upkeep();
                }
            });
            let configure = crate::http::metrics::configure(state.clone());
            let metrics = HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)?
                .run();
            actix_web::rt::spawn(metrics);
        }
        let mut server =
            HttpServer::new(move || build_app(state.clone())).shutdown_timeout(config.shutdown_timeout.as_secs());
        if !handle_signals {
            server = server.disable_signals();
        }
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        Ok(server.listen(self.listener)?.run())
    }
}
