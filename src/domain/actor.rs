//! Who acted, as the audit log records it.

/// Who acted: a person (and, when they acted through a credential, which
/// one: `principal::Credential::audit_label`), the operator at the command
/// line, or the server itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { id: String, credential: Option<String> },
    Cli,
    System,
}

impl Actor {
    /// A person acting in person (signing in or out), with no credential
    /// of theirs to name.
    pub fn person(id: &str) -> Self {
        Self::User { id: id.to_string(), credential: None }
    }

    /// The user it names, if any.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User { id, .. } => Some(id),
            Self::Cli | Self::System => None,
        }
    }

    /// The `actor` column.
    pub fn as_column(&self) -> String {
        match self {
            Actor::User { id, .. } => id.clone(),
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
        }
    }

    /// The `credential` column.
    pub fn credential_column(&self) -> Option<String> {
        match self {
            Actor::User { credential, .. } => credential.clone(),
            Actor::Cli | Actor::System => None,
        }
    }
}
