//! `tessera user …`: people who sign in.

use std::io::Read;

use clap::Subcommand;

use super::CliResult;
use crate::accounts::{self, AccountError, Email, MAX_PASSWORD_BYTES, NewUser, Password, Role, User};
use crate::audit::Actor;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::server;

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
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

/// Reads a password from standard input: at most `MAX_PASSWORD_BYTES`,
/// one trailing `\n` or `\r\n` stripped (what `echo` and here-strings add).
pub(super) fn read_password_stdin() -> Result<Password, AccountError> {
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

pub(super) fn print_users(users: &[User], json: bool) -> CliResult {
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

pub(super) fn user(config: &Config, command: UserCommand) -> CliResult {
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
