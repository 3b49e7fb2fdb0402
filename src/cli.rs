//! The command line: `serve`, `migrate` and the operator's `user` commands.
//! Usage errors exit 2 (clap), runtime errors print one line to stderr and
//! exit 1. `--json` output goes to stdout, logs to stderr.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::accounts::{self, AccountError, Email, MAX_PASSWORD_BYTES, NewUser, Password, Role, User};
use crate::apikeys::{self, ApiKey, KeyType, Mode, NewKey};
use crate::audit::Actor;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, LogFormat};
use crate::jwt::keys::{self, SigningAlg, SigningKeyInfo};
use crate::oauth::clients::{self, AuthMethod, Client, DEFAULT_SECRET_OVERLAP_SECS, GrantType, NewClient};
use crate::oauth::resources::{self, NewResource, ResourceServer, TokenAlg};
use crate::server;
use crate::store::users as user_rows;

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
    /// Delete now what can no longer matter (expired codes and sessions,
    /// dead refresh tokens, old audit events, …); prints the counts.
    Purge {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key; prints its id and (once) the key.
    Create {
        /// The email of the user who owns the key.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        mode: Mode,
        #[arg(long = "type", value_enum, default_value = "secret")]
        key_type: KeyType,
        /// Comma-separated: read, write, delete, admin (default: all for a secret key).
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        /// Bind the key to a client (X-CLIENT-ID must then match).
        #[arg(long, value_name = "ID")]
        client: Option<String>,
        /// An allowed endpoint, e.g. "GET /v1/users/*" (repeat for several).
        #[arg(long = "endpoint", value_name = "\"METHOD /path\"")]
        endpoints: Vec<String>,
        /// An allowed IP or CIDR, v4 or v6 (repeat for several).
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ips: Vec<String>,
        /// An allowed referrer origin, or *.example.com (repeat for several).
        #[arg(long = "allow-referrer", value_name = "ORIGIN")]
        allow_referrers: Vec<String>,
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
        /// Requests per second for this key.
        #[arg(long, value_name = "PER_SECOND")]
        rate_limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List keys (display form only).
    List {
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke { id: String },
    /// Issue a successor; the old key works --expire-old-in more seconds (default 0).
    Rotate {
        id: String,
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        expire_old_in: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; prints its client_id and (once) its secret.
    Create {
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A grant the client may use (repeat for several).
        #[arg(long = "grant-type", value_enum, value_name = "GRANT")]
        grant_types: Vec<GrantType>,
        /// The scopes the client may ask for, space-separated.
        #[arg(long, default_value = "")]
        scope: String,
        /// A resource server identifier the client may get tokens for
        /// (repeat for several); the default audience is always allowed.
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<String>,
        /// A public client (no secret, auth method none).
        #[arg(long)]
        public: bool,
        #[arg(long = "auth-method", value_enum, value_name = "METHOD")]
        auth_method: Option<AuthMethod>,
        /// A file holding the client's JWK Set (for private_key_jwt).
        #[arg(long, value_name = "PATH")]
        jwks: Option<PathBuf>,
        /// The email of the user who owns the client.
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret; the old one keeps working for --expire-old-in
    /// seconds (default 86400; 0 ends it now).
    RotateSecret {
        id: String,
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SECRET_OVERLAP_SECS)]
        expire_old_in: u64,
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: it can no longer authenticate.
    Disable { id: String },
}

#[derive(Debug, Subcommand)]
enum ResourceCommand {
    /// Register a resource server; prints (once) its secret.
    Create {
        /// The `aud` of its tokens, e.g. https://api.example.com
        #[arg(long)]
        identifier: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "RS256")]
        alg: TokenAlg,
        /// A scope it defines (repeat, or space-separate).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List resource servers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Replace a resource server's secret (by id or identifier).
    RotateSecret {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeyCommand {
    /// Stage a new key: published in the JWKS at once, signing after
    /// TESSERA_SIGNING_KEY_PREPUBLISH (or at once with --now).
    Rotate {
        #[arg(long, value_enum, default_value = "RS256")]
        alg: SigningAlg,
        /// Sign with it at once (verifiers with a cached JWKS may reject
        /// its tokens until they refetch).
        #[arg(long)]
        now: bool,
        #[arg(long)]
        json: bool,
    },
    /// List keys, newest first (public information only).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (one trailing newline is stripped).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's password, read from standard input.
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable a user: they can no longer sign in.
    Disable {
        #[arg(long)]
        email: String,
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

type CliResult = Result<(), Box<dyn std::error::Error>>;

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
    tracing::info!(addr = %prepared.addr, issuer = %issuer, ready_ms = started.elapsed().as_millis() as u64, "listening");
    actix_web::rt::System::new().block_on(async move { prepared.run(true)?.await })?;
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
    let policy = crate::purge::PurgePolicy::from_config(config);
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

/// Reads a password from standard input: at most `MAX_PASSWORD_BYTES`,
/// one trailing `\n` or `\r\n` stripped (what `echo` and here-strings add).
fn read_password_stdin() -> Result<Password, AccountError> {
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_PASSWORD_BYTES as u64 + 3)
        .read_to_end(&mut raw)
        .map_err(|e| AccountError::InvalidPassword(format!("cannot read standard input: {e}")))?;
    let mut text = String::from_utf8(raw).map_err(|_| AccountError::InvalidPassword("it is not UTF-8".into()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Password::parse(&text)
}

fn print_users(users: &[User], json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(users)?);
        return Ok(());
    }
    for u in users {
        let state = if u.disabled { "disabled" } else { "active" };
        println!("{}\t{}\t{}\t{}\t{}", u.id, u.email, u.role.as_str(), state, u.name);
    }
    Ok(())
}

fn user(config: &Config, command: UserCommand) -> CliResult {
    // Validate input before touching the database.
    let clock = SystemClock;
    let clock: &dyn Clock = &clock;
    match command {
        UserCommand::Create { email, name, admin, password_stdin: _, json } => {
            let role = if admin { Role::Admin } else { Role::Member };
            let password = read_password_stdin()?;
            let new = NewUser::parse(&email, &name, password.expose(), role)?;
            let (db, _) = server::open_storage(config)?;
            let user = accounts::create_user(&mut *db.conn()?, clock, new, Actor::Cli)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&user)?);
            } else {
                println!("Created {} user {} ({})", user.role.as_str(), user.email, user.id);
            }
        }
        UserCommand::List { json } => {
            let (db, _) = server::open_storage(config)?;
            print_users(&accounts::list_users(&mut *db.conn()?)?, json)?;
        }
        UserCommand::SetPassword { email, password_stdin: _ } => {
            let email = Email::parse(&email)?;
            let password = read_password_stdin()?;
            let (db, _) = server::open_storage(config)?;
            let user = accounts::set_password(&mut *db.conn()?, clock, &email, &password, Actor::Cli)?;
            println!("Password changed for {}", user.email);
        }
        UserCommand::Disable { email } => {
            let email = Email::parse(&email)?;
            let (db, _) = server::open_storage(config)?;
            let user = accounts::disable_user(&mut *db.conn()?, clock, &email, Actor::Cli)?;
            println!("Disabled {}", user.email);
        }
    }
    Ok(())
}

fn print_signing_keys(list: &[SigningKeyInfo], json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    for k in list {
        println!("{}\t{}\t{}\tsigns from {}", k.kid, k.algorithm, k.state, k.activates_at.to_rfc3339());
    }
    Ok(())
}

fn signing_key(config: &Config, command: SigningKeyCommand) -> CliResult {
    let (db, master) = server::open_storage(config)?;
    let mut conn = db.conn()?;
    let policy = config.rotation_policy();
    match command {
        SigningKeyCommand::Rotate { alg, now, json } => {
            let key = keys::rotate(&mut conn, &SystemClock, &master, &policy, alg, now)?;
            print_signing_keys(std::slice::from_ref(&key), json)?;
        }
        SigningKeyCommand::List { json } => print_signing_keys(&keys::list(&mut conn)?, json)?,
    }
    Ok(())
}

fn print_clients(list: &[Client], json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    for c in list {
        let state = if c.disabled { "disabled" } else { "active" };
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        println!(
            "{}\t{}\t{}\t{}\t{}\tscope: {}",
            c.client_id,
            c.client_type,
            c.token_endpoint_auth_method.as_str(),
            grants.join(","),
            state,
            c.scope
        );
    }
    Ok(())
}

fn client(config: &Config, command: ClientCommand) -> CliResult {
    let clock = SystemClock;
    match command {
        ClientCommand::Create {
            name,
            redirect_uris,
            grant_types,
            scope,
            audiences,
            public,
            auth_method,
            jwks,
            owner,
            json,
        } => {
            let jwks = jwks
                .map(|path| std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display())))
                .transpose()?;
            let (db, master) = server::open_storage(config)?;
            let mut conn = db.conn()?;
            let owner_id = match owner {
                Some(email) => {
                    let email = Email::parse(&email)?;
                    Some(
                        user_rows::find_by_email(&mut conn, email.as_str())?
                            .ok_or(clients::ClientError::UnknownOwner)?
                            .id,
                    )
                }
                None => None,
            };
            let new =
                NewClient { name, public, redirect_uris, grant_types, scope, audiences, auth_method, jwks, owner_id };
            let (client, secret) = clients::create(&mut conn, &clock, &master, new, Actor::Cli)?;
            if json {
                let mut value = serde_json::to_value(&client)?;
                value["client_secret"] = secret.as_ref().map(|s| s.expose().into()).unwrap_or(serde_json::Value::Null);
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("client_id:     {}", client.client_id);
                if let Some(secret) = &secret {
                    println!("client_secret: {}", secret.expose());
                    println!("(the secret is shown only this once)");
                }
            }
        }
        ClientCommand::List { json } => {
            let (db, _) = server::open_storage(config)?;
            print_clients(&clients::list(&mut *db.conn()?)?, json)?;
        }
        ClientCommand::RotateSecret { id, expire_old_in, json } => {
            let (db, master) = server::open_storage(config)?;
            let expire = std::time::Duration::from_secs(expire_old_in);
            let secret = clients::rotate_secret(&mut *db.conn()?, &clock, &master, &id, expire, Actor::Cli)?;
            if json {
                let value = serde_json::json!({
                    "client_id": id,
                    "client_secret": secret.expose(),
                    "old_secret_expires_in": expire_old_in,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("client_secret: {}", secret.expose());
                println!("(shown only this once; the old secret works for {expire_old_in} more seconds)");
            }
        }
        ClientCommand::Disable { id } => {
            let (db, _) = server::open_storage(config)?;
            clients::disable(&mut *db.conn()?, &clock, &id, Actor::Cli)?;
            println!("Disabled client {id}");
        }
    }
    Ok(())
}

fn print_resource_secret(rs: &ResourceServer, secret: &crate::crypto::Secret, json: bool) -> CliResult {
    if json {
        let mut value = serde_json::to_value(rs)?;
        value["secret"] = secret.expose().into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("id:         {}", rs.id);
        println!("identifier: {}", rs.identifier);
        println!("algorithm:  {}", rs.algorithm.as_str());
        println!("secret:     {}", secret.expose());
        println!("(the secret is shown only this once)");
    }
    Ok(())
}

fn resource(config: &Config, command: ResourceCommand) -> CliResult {
    let clock = SystemClock;
    let (db, master) = server::open_storage(config)?;
    let mut conn = db.conn()?;
    match command {
        ResourceCommand::Create { identifier, name, alg, scopes, json } => {
            let scope = scopes.join(" ");
            let new = NewResource { identifier: &identifier, name: &name, alg, scope: &scope };
            let (rs, secret) = resources::create(&mut conn, &clock, &master, new, Actor::Cli)?;
            print_resource_secret(&rs, &secret, json)?;
        }
        ResourceCommand::List { json } => {
            let list = resources::list(&mut conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for rs in list {
                    println!(
                        "{}\t{}\t{}\t{}\tscope: {}",
                        rs.id,
                        rs.identifier,
                        rs.algorithm.as_str(),
                        rs.name,
                        rs.scope
                    );
                }
            }
        }
        ResourceCommand::RotateSecret { id, json } => {
            let (rs, secret) = resources::rotate_secret(&mut conn, &clock, &master, &id, Actor::Cli)?;
            print_resource_secret(&rs, &secret, json)?;
        }
    }
    Ok(())
}

fn owner_id(conn: &mut crate::store::DbConn, email: &str) -> Result<String, Box<dyn std::error::Error>> {
    let email = Email::parse(email)?;
    Ok(user_rows::find_by_email(conn, email.as_str())?.ok_or(AccountError::UnknownUser)?.id)
}

fn print_new_key(key: &ApiKey, raw: &crate::crypto::Secret, json: bool) -> CliResult {
    if json {
        let mut value = serde_json::to_value(key)?;
        value["key"] = raw.expose().into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("id:  {}", key.id);
        println!("key: {}", raw.expose());
        println!("(the key is shown only this once)");
    }
    Ok(())
}

fn key(config: &Config, command: KeyCommand) -> CliResult {
    let clock = SystemClock;
    let (db, master) = server::open_storage(config)?;
    let mut conn = db.conn()?;
    match command {
        KeyCommand::Create {
            owner,
            name,
            mode,
            key_type,
            permissions,
            client,
            endpoints,
            allow_ips,
            allow_referrers,
            expires_in,
            rate_limit,
            json,
        } => {
            let owner_id = owner_id(&mut conn, &owner)?;
            let new = NewKey {
                owner_id,
                client_id: client,
                name,
                key_type,
                mode,
                permissions,
                allowed_ips: allow_ips,
                allowed_referrers: allow_referrers,
                allowed_endpoints: endpoints,
                expires_in,
                rate_limit,
            };
            let (key, raw) = apikeys::create(&mut conn, &clock, &master, new, Actor::Cli)?;
            print_new_key(&key, &raw, json)?;
        }
        KeyCommand::List { owner, json } => {
            let owner = owner.map(|o| owner_id(&mut conn, &o)).transpose()?;
            let list = apikeys::list(&mut conn, owner.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for k in list {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.display(),
                        k.mode.as_str(),
                        k.permissions.names().join(","),
                        state,
                        k.name
                    );
                }
            }
        }
        KeyCommand::Revoke { id } => {
            apikeys::revoke(&mut conn, &clock, &id, Actor::Cli)?;
            println!("Revoked {id}");
        }
        KeyCommand::Rotate { id, expire_old_in, json } => {
            let (key, raw) = apikeys::rotate(&mut conn, &clock, &master, &id, expire_old_in, Actor::Cli)?;
            print_new_key(&key, &raw, json)?;
        }
    }
    Ok(())
}
