//! The vocabulary every layer speaks: who acts (`Principal`, `Actor`,
//! `User`, `Role`), what they may do (`Permissions`, `Scopes`, key
//! `Restrictions`), which keys a server takes (`Mode`, `KeyType`,
//! `Environment`) and how lists are paged. Plain types and the rules that
//! read nothing but them: nothing here imports the store, a database
//! connection, actix or the configuration, so every service can take
//! these types without taking each other.

/// A stored enum: kept as TEXT (its `as_str`), read back through `parse`,
/// and a value it does not know is a read error — a corrupt row is never
/// taken for a default (a test key, a member).
macro_rules! text_enum {
    ($ty:ty, $what:literal) => {
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                <$ty>::parse(&text).ok_or_else(|| format!("unknown {} {text:?} in the database", $what).into())
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }
    };
}

pub mod actor;
pub mod modes;
pub mod page;
pub mod permissions;
pub mod principal;
pub mod restrictions;
pub mod scope;
pub mod user;

pub use actor::Actor;
pub use modes::{Environment, KeyType, Mode};
pub use permissions::{Permission, Permissions};
pub use principal::{AuthError, Credential, FirstParty, KeyBounds, Principal};
pub use restrictions::{EndpointRule, Restrictions};
pub use scope::Scopes;
pub use user::{Role, User};
