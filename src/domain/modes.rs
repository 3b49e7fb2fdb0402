//! Which kind of key, and which environment takes it: test keys in the
//! sandbox, live keys in production.

use serde::Serialize;

/// Which key modes the server accepts: test keys in the sandbox, live keys
/// in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }

    /// Exactly `test` or `live`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Test, Self::Live].into_iter().find(|m| m.as_str() == text)
    }

    /// The mode a server environment accepts.
    pub fn of(environment: Environment) -> Self {
        match environment {
            Environment::Sandbox => Self::Test,
            Environment::Production => Self::Live,
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Secret,
    Restricted,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Restricted => "restricted",
        }
    }

    /// Exactly `secret` or `restricted`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Secret, Self::Restricted].into_iter().find(|t| t.as_str() == text)
    }
}

text_enum!(Mode, "key mode");
text_enum!(KeyType, "key type");
