//! JWS: the server's signing keys, their rotation, and the JWKS that
//! publishes them. Signing and verification of tokens build on this.

pub mod keyring;
pub mod keys;
