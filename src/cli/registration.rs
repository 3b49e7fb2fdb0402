//! `tessera registration token …`: initial access tokens for dynamic
//! client registration when `TESSERA_REGISTRATION=token`.

use clap::Subcommand;

use super::CliResult;
use crate::audit::Actor;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::oauth::registration;
use crate::server;

#[derive(Debug, Subcommand)]
pub(super) enum RegistrationCommand {
    /// Initial access tokens (RFC 7591 §3).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Make a token; prints it once.
    Create {
        /// It stops working this many seconds from now (default: never).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
        /// It registers at most this many clients (default: no limit).
        #[arg(long, value_name = "N")]
        max_uses: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; clients it registered stay.
    Revoke { id: String },
}

pub(super) fn registration(config: &Config, command: RegistrationCommand) -> CliResult {
    let clock = SystemClock;
    let (db, _) = server::open_storage(config)?;
    let mut conn = db.conn()?;
    let RegistrationCommand::Token { command } = command;
    match command {
        TokenCommand::Create { expires_in, max_uses, json } => {
            let (info, token) =
                registration::create_initial_token(&mut conn, &clock, expires_in, max_uses, Actor::Cli)?;
            if json {
                let mut value = serde_json::to_value(&info)?;
                value["token"] = token.expose().into();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("id:    {}", info.id);
                println!("token: {}", token.expose());
                println!("(the token is shown only this once)");
            }
        }
        TokenCommand::List { json } => {
            let list = registration::list_initial_tokens(&mut conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let now = clock.now();
                for t in list {
                    let uses = match t.max_uses {
                        Some(max) => format!("{}/{max}", t.uses),
                        None => t.uses.to_string(),
                    };
                    let expires = t.expires_at.map_or("never".to_string(), |e| e.to_rfc3339());
                    println!("{}\t{}\tuses: {uses}\texpires: {expires}", t.id, t.state(now));
                }
            }
        }
        TokenCommand::Revoke { id } => {
            registration::revoke_initial_token(&mut conn, &clock, &id, Actor::Cli)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
