//! Where the data lives: the database URL, parsed once, whose `Display`
//! never shows a password.

use std::fmt;
use std::path::PathBuf;

/// Where the data lives. `Display` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("the sqlite URL names no file (sqlite://PATH)".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("postgres://").or_else(|| text.strip_prefix("postgresql://")) {
            if rest.is_empty() || rest.chars().any(char::is_whitespace) {
                return Err("malformed PostgreSQL URL".into());
            }
            return Ok(Self::Postgres(text.to_string()));
        }
        Err("expected sqlite://PATH or postgres://…".into())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&crate::uri::redact_password(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
