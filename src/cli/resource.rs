//! `tessera resource …`: resource servers (the audiences of tokens).

use clap::Subcommand;

use super::CliResult;
use crate::audit::Actor;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::oauth::resources::{self, NewResource, ResourceServer, TokenAlg};
use crate::server;

#[derive(Debug, Subcommand)]
pub(super) enum ResourceCommand {
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

pub(super) fn print_resource_secret(rs: &ResourceServer, secret: &crate::crypto::Secret, json: bool) -> CliResult {
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

pub(super) fn resource(config: &Config, command: ResourceCommand) -> CliResult {
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
