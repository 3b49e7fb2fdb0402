//! Tessera: an OAuth 2.0 / JWT authorization server and API-key service.
//!
//! The crate is layered, and the layers are a table the build checks
//! (docs/ARCHITECTURE.md, "Layers"; `tests/integration/layers.rs`): leaves
//! (`clock`, `crypto`, `uri`, …), the vocabulary (`domain`), `store`,
//! `jwt`, the services (`audit` … `purge`), `identity`, `config`, `http`,
//! and `server` and `cli` on top.

pub mod accounts;
pub mod admin;
pub mod apikeys;
pub mod audit;
pub mod charts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod identity;
pub mod jwt;
pub mod names;
pub mod oauth;
pub mod pause;
pub mod people;
pub mod purge;
pub mod request;
pub mod sdk;
pub mod server;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod uri;
