//! The vocabulary every layer speaks: who acts (`Principal`, `Actor`,
//! `User`, `Role`), what they may do (`Permissions`, `Scopes`, key
//! `Restrictions`), which keys a server takes (`Mode`, `KeyType`,
//! `Environment`) and how lists are paged. Plain types and the rules that
//! read nothing but them: nothing here imports the store, a database
//! connection, actix or the configuration, so every service can take
//! these types without taking each other.

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
