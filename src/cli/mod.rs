//! The command line: `serve`, `migrate`, `purge`, and one file per command
//! group (`user`, `signing-key`, `client`, `resource`, `key`).
//! Usage errors exit 2 (clap), runtime errors print one line to stderr and
//! exit 1. `--json` output goes to stdout, logs to stderr.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::accounts::{AccountError, Email};
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};
use crate::server;

mod client;
mod key;
mod registration;
mod resource;
mod signing_key;
mod user;

use crate::store::users as user_rows;
use client::{ClientCommand, client};
use key::{KeyCommand, key};
use registration::{RegistrationCommand, registration};
use resource::{ResourceCommand, resource};
use signing_key::{SigningKeyCommand, signing_key};
use user::{UserCommand, user};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "OAuth 2.0 / JWT authorization server and API-key service")]
struct Cli {
    /// TOML file with settings; environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (migrates the database and makes the first admin if needed).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage people who sign in.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the keys that sign access tokens.
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Manage OAuth clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage resource servers (the audiences of access tokens).
    Resource {
        #[command(subcommand)]
        command: ResourceCommand,
    },
    /// Manage API keys (sk_test_, sk_live_, rk_test_, rk_live_).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Dynamic client registration: initial access tokens.
    Registration {
        #[command(subcommand)]
        command: RegistrationCommand,
    },
    /// Delete now what can no longer matter (expired codes and sessions,
    /// dead refresh tokens, old audit events, …); prints the counts.
    Purge {
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match Config::load(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    init_logging(&config, matches!(cli.command, Command::Serve));
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config),
        Command::User { command } => user(&config, command),
        Command::SigningKey { command } => signing_key(&config, command),
        Command::Client { command } => client(&config, command),
        Command::Resource { command } => resource(&config, command),
        Command::Key { command } => key(&config, command),
        Command::Registration { command } => registration(&config, command),
        Command::Purge { json } => purge(&config, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

pub(super) type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Logs go to stderr. Commands other than `serve` log only warnings unless
/// `TESSERA_LOG_LEVEL` says otherwise.
fn init_logging(config: &Config, serving: bool) {
    let level = if serving || config.log_level != "info" { config.log_level.as_str() } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn serve(config: Config) -> CliResult {
    let started = std::time::Instant::now();
    let database = config.database_url.to_string();
    let environment = config.environment;
    let prepared = server::prepare(config, Arc::new(SystemClock))?;
    let issuer = prepared.issuer().to_string();
    println!("Tessera {} · environment {} · database {database}", env!("CARGO_PKG_VERSION"), environment.as_str());
    if let Some(admin) = &prepared.first_admin {
        println!();
        println!("First start: created the admin account (the password is shown only this once)");
        println!("  email:    {}", admin.user.email);
        println!("  password: {}", admin.password.expose());
        println!("  sign in:  {issuer}/login");
        println!();
    }
    println!("Listening on http://{} (issuer {issuer})", prepared.addr);
    if let Some(metrics) = prepared.metrics_addr {
        println!("Metrics on http://{metrics}/metrics");
    }
    tracing::info!(addr = %prepared.addr, issuer = %issuer, ready_ms = started.elapsed().as_millis() as u64, "listening");
    actix_web::rt::System::new().block_on(prepared.serve())?;
    tracing::info!("stopped");
    Ok(())
}

fn migrate(config: &Config) -> CliResult {
    server::open_storage(config)?;
    println!("Database {} is up to date", config.database_url);
    Ok(())
}

/// One purge, for operators who turned the background one off
/// (`TESSERA_PURGE_INTERVAL=0`) and run it from cron instead.
fn purge(config: &Config, json: bool) -> CliResult {
    let (db, _) = server::open_storage(config)?;
    let policy = config.purge_policy();
    let report = crate::purge::purge(&mut *db.conn()?, &SystemClock, &policy)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let value = serde_json::to_value(report)?;
        for (table, deleted) in value.as_object().into_iter().flatten() {
            println!("{table}\t{deleted}");
        }
        println!("Deleted {} rows", report.total());
    }
    Ok(())
}

pub(super) fn owner_id(conn: &mut crate::store::DbConn, email: &str) -> Result<String, Box<dyn std::error::Error>> {
    let email = Email::parse(email)?;
    Ok(user_rows::find_by_email(conn, email.as_str())?.ok_or(AccountError::UnknownUser)?.id)
}
