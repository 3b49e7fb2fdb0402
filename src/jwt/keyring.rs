//! The keys in memory: the active signer of each algorithm, re-read from
//! the database at most every `SIGNER_RECHECK` (so a rotation made by the
//! CLI or another instance is picked up without a restart), and the
//! verification key of each kid, whose publication is re-read on the same
//! schedule: a retired key stops verifying once it has left the JWKS (at
//! most `SIGNER_RECHECK` late on an instance that cached it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::keys::{self, RotationPolicy, Signer, SigningAlg, SigningKeyError};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::store::DbConn;
use crate::store::signing_keys;

/// How long a cached active signer is trusted before the database is
/// asked again (and due `next` keys are promoted).
pub const SIGNER_RECHECK: chrono::Duration = chrono::Duration::seconds(10);
/// Verification keys kept; the cache is emptied when it would grow past.
const MAX_VERIFIERS: usize = 1024;

/// A public key with the one algorithm it verifies.
pub struct Verifier {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// An active signer and when the database was last asked about it.
type CachedSigner = (Arc<Signer>, DateTime<Utc>);

/// A verification key, when the database was last asked about it, and
/// when it leaves the JWKS if it is retired.
struct CachedVerifier {
    verifier: Arc<Verifier>,
    checked: DateTime<Utc>,
    unpublish_at: Option<DateTime<Utc>>,
}

impl CachedVerifier {
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        now >= self.checked && now - self.checked < SIGNER_RECHECK && self.unpublish_at.is_none_or(|t| now < t)
    }
}

/// Whether a key is in the JWKS at `now` (the same rule as
/// `signing_keys::published`): `next` and `active` keys, and retired keys
/// until their `unpublish_at`.
fn published(row: &signing_keys::SigningKeyRow, now: DateTime<Utc>) -> bool {
    match row.state.as_str() {
        "next" | "active" => true,
        "retired" => row.unpublish_at.is_some_and(|t| now < t.and_utc()),
        _ => false,
    }
}

pub struct KeyRing {
    master: MasterKey,
    policy: RotationPolicy,
    signers: RwLock<HashMap<SigningAlg, CachedSigner>>,
    verifiers: RwLock<HashMap<String, CachedVerifier>>,
}

impl KeyRing {
    pub fn new(master: MasterKey, policy: RotationPolicy) -> Self {
        Self { master, policy, signers: RwLock::default(), verifiers: RwLock::default() }
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    /// The key that signs `alg` tokens now.
    pub fn signer(
        &self,
        conn: &mut DbConn,
        clock: &dyn Clock,
        alg: SigningAlg,
    ) -> Result<Arc<Signer>, SigningKeyError> {
        let now = clock.now();
        if let Some((signer, checked)) = self.signers.read().unwrap_or_else(|e| e.into_inner()).get(&alg)
            && now - *checked < SIGNER_RECHECK
            && now >= *checked
        {
            return Ok(signer.clone());
        }
        let signer = Arc::new(keys::active_signer(conn, clock, &self.master, &self.policy, alg)?);
        self.signers.write().unwrap_or_else(|e| e.into_inner()).insert(alg, (signer.clone(), now));
        Ok(signer)
    }

    /// The public key named `kid` among the server's published signing
    /// keys, with its algorithm; `None` for an unknown kid or a key no
    /// longer published (a verifier that follows the JWKS would refuse its
    /// tokens too).
    pub fn verifier(
        &self,
        conn: &mut DbConn,
        clock: &dyn Clock,
        kid: &str,
    ) -> Result<Option<Arc<Verifier>>, SigningKeyError> {
        let now = clock.now();
        if let Some(cached) = self.verifiers.read().unwrap_or_else(|e| e.into_inner()).get(kid)
            && cached.fresh(now)
        {
            return Ok(Some(cached.verifier.clone()));
        }
        let row = signing_keys::find(conn, kid)?;
        let Some(row) = row.filter(|r| published(r, now)) else {
            self.verifiers.write().unwrap_or_else(|e| e.into_inner()).remove(kid);
            return Ok(None);
        };
        let corrupt = |reason: String| SigningKeyError::Corrupt { kid: kid.to_string(), reason };
        let alg = SigningAlg::parse(&row.algorithm).ok_or_else(|| corrupt("unknown algorithm".into()))?;
        let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(|e| corrupt(e.to_string()))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| corrupt(e.to_string()))?;
        let verifier = Arc::new(Verifier { alg: alg.jws(), key });
        let unpublish_at = row.unpublish_at.map(|t| t.and_utc());
        let mut cache = self.verifiers.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_VERIFIERS {
            cache.clear();
        }
        cache.insert(kid.to_string(), CachedVerifier { verifier: verifier.clone(), checked: now, unpublish_at });
        Ok(Some(verifier))
    }
}
