//! The keys in memory: the active signer of each algorithm, re-read from
//! the database at most every `SIGNER_RECHECK` (so a rotation made by the
//! CLI or another instance is picked up without a restart), and the
//! verification key of each kid, which never changes once made.

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

pub struct KeyRing {
    master: MasterKey,
    policy: RotationPolicy,
    signers: RwLock<HashMap<SigningAlg, CachedSigner>>,
    verifiers: RwLock<HashMap<String, Arc<Verifier>>>,
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

    /// The public key named `kid` among the server's signing keys, with
    /// its algorithm; `None` for an unknown kid.
    pub fn verifier(&self, conn: &mut DbConn, kid: &str) -> Result<Option<Arc<Verifier>>, SigningKeyError> {
        if let Some(v) = self.verifiers.read().unwrap_or_else(|e| e.into_inner()).get(kid) {
            return Ok(Some(v.clone()));
        }
        let Some(row) = signing_keys::find(conn, kid)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| SigningKeyError::Corrupt { kid: kid.to_string(), reason };
        let alg = SigningAlg::parse(&row.algorithm).ok_or_else(|| corrupt("unknown algorithm".into()))?;
        let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(|e| corrupt(e.to_string()))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| corrupt(e.to_string()))?;
        let verifier = Arc::new(Verifier { alg: alg.jws(), key });
        let mut cache = self.verifiers.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_VERIFIERS {
            cache.clear();
        }
        cache.insert(kid.to_string(), verifier.clone());
        Ok(Some(verifier))
    }
}
