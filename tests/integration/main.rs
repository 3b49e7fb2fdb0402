//! One integration test binary (it links once): the real server on an
//! ephemeral port over a real database, on SQLite and on PostgreSQL.

mod support;

mod authorization_code;
mod authorization_matrix;
mod chromium;
mod cli;
mod client_auth;
mod client_credentials;
mod connected_apps;
mod dashboard;
mod dashboard_admin;
mod delegation;
mod fleet;
mod guides;
mod hot_path;
mod http_skeleton;
mod introspection;
mod key_usage;
mod layers;
mod metrics;
mod oauth_holes;
mod oidc;
mod pagination;
mod promises;
mod purge;
mod quickstart;
mod races;
mod rate_limits;
mod readiness;
mod registration;
mod shared_limits;
mod signing_keys;
mod store;
mod trust_boundary;
mod v1_api_keys;
