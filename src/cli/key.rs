//! `tessera key …`: API keys for the operator.

use clap::Subcommand;

use super::{CliResult, owner_id};
use crate::apikeys::{self, ApiKey, KeyType, Mode, NewKey};
use crate::audit::Actor;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::server;

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
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

pub(super) fn print_new_key(key: &ApiKey, raw: &crate::crypto::Secret, json: bool) -> CliResult {
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

pub(super) fn key(config: &Config, command: KeyCommand) -> CliResult {
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
