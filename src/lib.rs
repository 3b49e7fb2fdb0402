//! Tessera: an OAuth 2.0 / JWT authorization server and API-key service.
//!
//! The crate is layered (see README, "Design"): `http` parses and renders,
//! the services (`accounts`, `audit`) hold the rules, `store` talks to the
//! database, `crypto` owns randomness, fingerprints and the master key.

pub mod accounts;
pub mod admin;
pub mod apikeys;
pub mod audit;
pub mod charts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod jwt;
pub mod names;
pub mod oauth;
pub mod page;
pub mod pause;
pub mod people;
pub mod permissions;
pub mod principal;
pub mod purge;
pub mod request;
pub mod sdk;
pub mod server;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod uri;

/// The handle every caller runs services on (`Db::run`); the HTTP layer
/// names it through here, never through `store`.
pub use store::Db;
