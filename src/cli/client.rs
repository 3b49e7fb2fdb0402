//! `tessera client …`: OAuth clients.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliResult;
use crate::accounts::Email;
use crate::audit::Actor;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::oauth::clients::{self, AuthMethod, Client, DEFAULT_SECRET_OVERLAP_SECS, GrantType, NewClient, SigningAlg};
use crate::server;
use crate::store::users as user_rows;

#[derive(Debug, Subcommand)]
pub(super) enum ClientCommand {
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
        /// Whether the code flow must use PKCE; `optional` only for a
        /// confidential client (a web app with a backend).
        #[arg(long, value_enum, default_value = "required")]
        pkce: PkcePolicy,
        /// The algorithm of its ID tokens (default RS256).
        #[arg(long = "id-token-alg", value_enum, value_name = "ALG")]
        id_token_alg: Option<SigningAlg>,
        /// An exact URI logout may send the person back to (repeat for
        /// several).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
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

/// `--pkce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum PkcePolicy {
    Required,
    Optional,
}

pub(super) fn print_clients(list: &[Client], json: bool) -> CliResult {
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

pub(super) fn client(config: &Config, command: ClientCommand) -> CliResult {
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
            pkce,
            id_token_alg,
            post_logout_redirect_uris,
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
            let new = NewClient {
                name,
                public,
                redirect_uris,
                grant_types,
                scope,
                audiences,
                auth_method,
                jwks,
                owner_id,
                require_pkce: Some(pkce == PkcePolicy::Required),
                id_token_alg,
                post_logout_redirect_uris,
            };
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
