//! The hot path's pieces, each next to the aws-lc-rs primitive it rests
//! on, so the overhead over the primitive shows:
//!
//! - sign: Tessera's signer (`jwt::signer`), jsonwebtoken's `encode` as
//!   the server signed before (the key parsed on every RSA signature), and
//!   the raw aws-lc-rs signature of the same bytes;
//! - verify: jsonwebtoken's `decode` with the cached `DecodingKey`, as the
//!   server verifies, and the raw aws-lc-rs verification;
//! - API key: `apikeys::parse` + the HMAC fingerprint the lookup uses, and
//!   a raw HMAC-SHA256;
//! - client secret: `clients::matches_one` (SHA-256 and a constant-time
//!   comparison per live secret), and a raw SHA-256.
//!
//! `cargo bench --bench hot_path`

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Header};
use serde_json::json;
use tessera::apikeys::{self, KeyType, Mode};
use tessera::crypto::MasterKey;
use tessera::jwt::keys::{SigningAlg, encoding_key, generate_pkcs8, public_jwk};
use tessera::jwt::signer::{JwsSigner, Typ};
use tessera::oauth::clients::{LiveSecret, matches_one};

fn claims() -> serde_json::Value {
    json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "cl_4kQd9yZb2mXh7PfR1sVt",
        "aud": "https://api.example.com",
        "client_id": "cl_4kQd9yZb2mXh7PfR1sVt",
        "scope": "read write",
        "iat": 1_764_633_600,
        "exp": 1_764_634_500,
        "jti": "Q2Zr8KxV1mN7bT4cY9wE3uH6sJ0pL5aD",
    })
}

/// The raw signature of `message` with a key pair parsed once.
enum Raw {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Raw {
    fn new(alg: SigningAlg, pkcs8: &[u8]) -> Self {
        match alg {
            SigningAlg::Rs256 => Self::Rsa(aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).unwrap()),
            SigningAlg::Es256 => Self::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap()),
            SigningAlg::EdDsa => Self::Ed(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).unwrap()),
        }
    }

    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, rng, message, &mut sig).unwrap();
                sig
            }
            Self::Ec(k) => k.sign(rng, message).unwrap().as_ref().to_vec(),
            Self::Ed(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    fn public(&self) -> (Vec<u8>, &'static dyn signature::VerificationAlgorithm) {
        match self {
            Self::Rsa(k) => (k.public_key().as_ref().to_vec(), &RSA_PKCS1_2048_8192_SHA256),
            Self::Ec(k) => (k.public_key().as_ref().to_vec(), &ECDSA_P256_SHA256_FIXED),
            Self::Ed(k) => (k.public_key().as_ref().to_vec(), &ED25519),
        }
    }
}

fn sign_and_verify(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let claims = claims();
    for alg in SigningAlg::ALL {
        let pkcs8 = generate_pkcs8(alg).unwrap();
        let signer = JwsSigner::from_pkcs8("kid", alg, &pkcs8).unwrap();
        let encoding = encoding_key(alg, &pkcs8).unwrap();
        let raw = Raw::new(alg, &pkcs8);
        let token = signer.sign(Typ::AccessToken, &claims).unwrap();
        let (message, _) = token.rsplit_once('.').unwrap();
        let message = message.as_bytes().to_vec();

        let mut sign = c.benchmark_group(format!("sign/{}", alg.as_str()));
        sign.bench_function("tessera signer", |b| {
            b.iter(|| signer.sign(Typ::AccessToken, black_box(&claims)).unwrap())
        });
        let mut header = Header::new(alg.jws());
        header.kid = Some("kid".into());
        header.typ = Some("at+jwt".into());
        sign.bench_function("jsonwebtoken encode", |b| {
            b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding).unwrap())
        });
        sign.bench_function("aws-lc-rs raw", |b| b.iter(|| raw.sign(&rng, black_box(&message))));
        sign.finish();

        let jwk = public_jwk(alg, "kid", &encoding).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let validation = tessera::jwt::signature_only(alg.jws());
        let signature = raw.sign(&rng, &message);
        let (public, algorithm) = raw.public();
        let public = UnparsedPublicKey::new(algorithm, public);
        let mut verify = c.benchmark_group(format!("verify/{}", alg.as_str()));
        verify.bench_function("jsonwebtoken decode (as the server)", |b| {
            b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &validation).unwrap())
        });
        verify.bench_function("aws-lc-rs raw", |b| b.iter(|| public.verify(black_box(&message), &signature).unwrap()));
        verify.finish();
    }
}

fn credentials(c: &mut Criterion) {
    let master = MasterKey::generate();
    let (_, key) = apikeys::generate(KeyType::Secret, Mode::Test);
    let mut group = c.benchmark_group("api key");
    group.bench_function("parse + fingerprint (tessera)", |b| {
        b.iter(|| {
            apikeys::parse(black_box(&key)).unwrap();
            apikeys::fingerprint(&master, black_box(&key))
        })
    });
    let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]);
    group.bench_function("aws-lc-rs raw HMAC-SHA256", |b| {
        b.iter(|| aws_lc_rs::hmac::sign(&hmac, black_box(key.as_bytes())))
    });
    group.finish();

    let secret = tessera::crypto::random_base62(43);
    let live = vec![
        LiveSecret::new("s1".into(), tessera::crypto::fingerprint(&secret), None),
        LiveSecret::new("s0".into(), tessera::crypto::fingerprint("the previous secret, in its overlap"), None),
    ];
    let mut group = c.benchmark_group("client secret");
    group.bench_function("matches_one, two live secrets (tessera)", |b| {
        b.iter(|| assert!(matches_one(black_box(&live), black_box(&secret))))
    });
    group.bench_function("aws-lc-rs raw SHA-256", |b| {
        b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(secret.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, sign_and_verify, credentials);
criterion_main!(benches);
