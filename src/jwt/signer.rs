//! A signing key parsed once: the aws-lc-rs key pair and the base64url
//! JWS headers it signs under, so that a signature costs only the claims'
//! serialization and the primitive (jsonwebtoken's `EncodingKey` keeps DER
//! and parses the key pair again on every RSA signature).
//!
//! The compact JWS is the one `jsonwebtoken::encode` writes, byte for
//! byte: the header is jsonwebtoken's own `Header`, serialized once.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::Serialize;

use super::keys::SigningAlg;

/// The `typ` a token is signed under: access tokens (RFC 9068) or ID
/// tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typ {
    AccessToken,
    IdToken,
}

impl Typ {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => super::ACCESS_TOKEN_TYP,
            Self::IdToken => "JWT",
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// An active key, parsed, ready to sign.
pub struct JwsSigner {
    pub kid: String,
    pub alg: SigningAlg,
    pair: Pair,
    rng: SystemRandom,
    /// base64url of the header for each `Typ`, in `Typ` order.
    headers: [String; 2],
}

impl std::fmt::Debug for JwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwsSigner").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the claims do not serialize: {0}")]
    Claims(#[from] serde_json::Error),
    #[error("the signature failed")]
    Signature,
    #[error("the header is not this key's")]
    Header,
}

fn header_b64(alg: SigningAlg, kid: &str, typ: Typ) -> String {
    let mut header = Header::new(alg.jws());
    header.kid = Some(kid.to_string());
    header.typ = Some(typ.as_str().to_string());
    // A header of plain strings always serializes.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default())
}

impl JwsSigner {
    /// Parses a PKCS#8 private key of `alg`; the reason when it is not one.
    pub fn from_pkcs8(kid: &str, alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, String> {
        let pair = match alg {
            SigningAlg::Rs256 => Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| e.to_string())?),
            SigningAlg::Es256 => Pair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|e| e.to_string())?,
            ),
            SigningAlg::EdDsa => {
                Pair::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| e.to_string())?)
            }
        };
        Ok(Self {
            kid: kid.to_string(),
            alg,
            pair,
            rng: SystemRandom::new(),
            headers: [header_b64(alg, kid, Typ::AccessToken), header_b64(alg, kid, Typ::IdToken)],
        })
    }

    /// The compact JWS of `claims` under the header of `typ`.
    pub fn sign<T: Serialize>(&self, typ: Typ, claims: &T) -> Result<String, SignError> {
        let header = &self.headers[typ as usize];
        let payload = serde_json::to_vec(claims)?;
        let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 360);
        jws.push_str(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jws);
        let signature = self.signature(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jws);
        Ok(jws)
    }

    /// The compact JWS of `claims` under another `header` than the
    /// server's own: its `alg` and `kid` must be this key's, and it may not
    /// point elsewhere for a key (`jku`, `jwk`, `x5u`).
    pub fn sign_with_header<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, SignError> {
        if header.alg != self.alg.jws()
            || header.kid.as_deref() != Some(self.kid.as_str())
            || header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
        {
            return Err(SignError::Header);
        }
        let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
        let signature = self.signature(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jws);
        Ok(jws)
    }

    fn signature(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature).map_err(|_| SignError::Signature)?;
                Ok(signature)
            }
            Pair::Ecdsa(pair) => {
                pair.sign(&self.rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| SignError::Signature)
            }
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, jwk::Jwk};

    use super::*;
    use crate::jwt::keys::{encoding_key, generate_pkcs8, public_jwk};

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        iss: String,
        sub: String,
        exp: i64,
    }

    #[test]
    fn tokens_are_jsonwebtokens_own_and_verify() {
        let claims = Claims { iss: "https://issuer.example".into(), sub: "ü/😀".into(), exp: 4_000_000_000 };
        for alg in SigningAlg::ALL {
            let pkcs8 = generate_pkcs8(alg).unwrap();
            let signer = JwsSigner::from_pkcs8("kid-1", alg, &pkcs8).unwrap();
            let key = encoding_key(alg, &pkcs8).unwrap();
            let jwk: Jwk = public_jwk(alg, "kid-1", &key).unwrap();
            let verifying = DecodingKey::from_jwk(&jwk).unwrap();
            for typ in [Typ::AccessToken, Typ::IdToken] {
                let ours = signer.sign(typ, &claims).unwrap();
                let mut header = Header::new(alg.jws());
                header.kid = Some("kid-1".into());
                header.typ = Some(typ.as_str().into());
                let theirs = jsonwebtoken::encode(&header, &claims, &key).unwrap();
                // RSA PKCS#1 v1.5 and Ed25519 are deterministic: the same
                // bytes; ECDSA differs in its signature only.
                if alg == SigningAlg::Es256 {
                    assert_eq!(ours.rsplit_once('.').unwrap().0, theirs.rsplit_once('.').unwrap().0);
                } else {
                    assert_eq!(ours, theirs, "{alg:?}");
                }
                let decoded =
                    jsonwebtoken::decode::<Claims>(&ours, &verifying, &crate::jwt::signature_only(alg.jws())).unwrap();
                assert_eq!(decoded.claims, claims);
                assert_eq!(decoded.header.typ.as_deref(), Some(typ.as_str()));
            }
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let rsa = generate_pkcs8(SigningAlg::Rs256).unwrap();
        assert!(JwsSigner::from_pkcs8("k", SigningAlg::Es256, &rsa).is_err());
        assert!(JwsSigner::from_pkcs8("k", SigningAlg::EdDsa, &rsa).is_err());
        assert!(JwsSigner::from_pkcs8("k", SigningAlg::Rs256, b"not a key").is_err());
    }
}
