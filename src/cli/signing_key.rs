//! `tessera signing-key …`: the keys that sign access tokens.

use clap::Subcommand;

use super::CliResult;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::jwt::keys::{self, SigningAlg, SigningKeyInfo};
use crate::server;

#[derive(Debug, Subcommand)]
pub(super) enum SigningKeyCommand {
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

pub(super) fn print_signing_keys(list: &[SigningKeyInfo], json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    for k in list {
        println!("{}\t{}\t{}\tsigns from {}", k.kid, k.algorithm, k.state, k.activates_at.to_rfc3339());
    }
    Ok(())
}

pub(super) fn signing_key(config: &Config, command: SigningKeyCommand) -> CliResult {
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
