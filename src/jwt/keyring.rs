//! The keys in memory: the active signer of each algorithm, re-read from
//! the database at most every `SIGNER_RECHECK` (so a rotation made by the
//! CLI or another instance is picked up without a restart), and the
//! verification key of each kid, whose publication is re-read on the same
//! schedule: a retired key stops verifying once it has left the JWKS (at
//! most `SIGNER_RECHECK` late on an instance that cached it). Whatever is
//! cached is also forgotten as soon as the database changes (`store::feed`).
//!
//! The JWKS is kept serialized, with its `ETag`, and rebuilt only when the
//! key set may have changed: the database changed, or a key's time to sign
//! or to leave the JWKS came.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::keys::{self, RotationPolicy, Signer, SigningAlg, SigningKeyError};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::store::DbConn;
use crate::store::feed::{Feed, Kind};
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
    /// When a retired key leaves the JWKS and stops verifying.
    pub unpublish_at: Option<DateTime<Utc>>,
}

/// An active signer, when the database was last asked about it, and the
/// feed's generation then.
type CachedSigner = (Arc<Signer>, DateTime<Utc>, u64);

/// The published JWK Set, serialized, and its entity tag.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub body: bytes::Bytes,
    pub etag: String,
    /// The `kid` of each published key.
    pub kids: Arc<[String]>,
}

struct CachedJwks {
    jwks: Jwks,
    generation: u64,
    /// The next moment a key starts signing or leaves the JWKS.
    until: DateTime<Utc>,
}

/// A verification key (which knows when it leaves the JWKS), when the
/// database was last asked about it, and the feed's generation then.
struct CachedVerifier {
    verifier: Arc<Verifier>,
    checked: DateTime<Utc>,
    generation: u64,
}

impl CachedVerifier {
    fn fresh(&self, now: DateTime<Utc>, generation: Option<u64>) -> bool {
        generation == Some(self.generation)
            && now >= self.checked
            && now - self.checked < SIGNER_RECHECK
            && self.verifier.unpublish_at.is_none_or(|t| now < t)
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
    feed: Arc<Feed>,
    signers: RwLock<HashMap<SigningAlg, CachedSigner>>,
    verifiers: RwLock<HashMap<String, CachedVerifier>>,
    jwks: RwLock<Option<CachedJwks>>,
}

impl KeyRing {
    pub fn new(master: MasterKey, policy: RotationPolicy, feed: Arc<Feed>) -> Self {
        Self { master, policy, feed, signers: RwLock::default(), verifiers: RwLock::default(), jwks: RwLock::default() }
    }

    /// The JWK Set to publish now, from memory unless the key set may
    /// have changed since it was built.
    pub fn jwks(&self, conn: &mut DbConn, clock: &dyn Clock) -> Result<Jwks, SigningKeyError> {
        let (now, generation) = (clock.now(), self.feed.generation(&[Kind::SigningKeys]));
        if let Some(cached) = self.jwks.read().unwrap_or_else(|e| e.into_inner()).as_ref()
            && Some(cached.generation) == generation
            && now < cached.until
        {
            return Ok(cached.jwks.clone());
        }
        let (set, until) = keys::jwks(conn, clock, &self.policy)?;
        let body = bytes::Bytes::from(serde_json::to_vec(&set).map_err(|_| SigningKeyError::Generation)?);
        let etag = crate::crypto::etag_of(&body);
        let kids = set["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k["kid"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let jwks = Jwks { body, etag, kids };
        if let Some(generation) = generation {
            let until = until.map_or(now + SIGNER_RECHECK, |t| t.min(now + SIGNER_RECHECK));
            *self.jwks.write().unwrap_or_else(|e| e.into_inner()) =
                Some(CachedJwks { jwks: jwks.clone(), generation, until });
        }
        Ok(jwks)
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
        let (now, generation) = (clock.now(), self.feed.generation(&[Kind::SigningKeys]));
        if let Some((signer, checked, at)) = self.signers.read().unwrap_or_else(|e| e.into_inner()).get(&alg)
            && Some(*at) == generation
            && now - *checked < SIGNER_RECHECK
            && now >= *checked
        {
            return Ok(signer.clone());
        }
        let signer = Arc::new(keys::active_signer(conn, clock, &self.master, &self.policy, alg)?);
        if let Some(generation) = generation {
            self.signers.write().unwrap_or_else(|e| e.into_inner()).insert(alg, (signer.clone(), now, generation));
        }
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
        let (now, generation) = (clock.now(), self.feed.generation(&[Kind::SigningKeys]));
        if let Some(cached) = self.verifiers.read().unwrap_or_else(|e| e.into_inner()).get(kid)
            && cached.fresh(now, generation)
        {
            return Ok(Some(cached.verifier.clone()));
        }
        // A kid the JWKS does not publish verifies nothing: known from the
        // JWKS in memory, so a flood of made-up kids reads no database.
        if !self.jwks(conn, clock)?.kids.iter().any(|k| k == kid) {
            return Ok(None);
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
        let verifier = Arc::new(Verifier { alg: alg.jws(), key, unpublish_at: row.unpublish_at.map(|t| t.and_utc()) });
        let Some(generation) = generation else {
            return Ok(Some(verifier));
        };
        let mut cache = self.verifiers.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_VERIFIERS {
            cache.clear();
        }
        cache.insert(kid.to_string(), CachedVerifier { verifier: verifier.clone(), checked: now, generation });
        Ok(Some(verifier))
    }
}
