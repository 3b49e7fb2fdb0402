//! Signing keys and the JWKS: first-start key, staged rotation driven by
//! the injectable clock, public-only publication, keys sealed at rest.

use chrono::Duration;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::jwt::keys::{self, SigningAlg};

use crate::both_backends;
use crate::support::{Backend, TestApp};

fn fetch_jwks(app: &TestApp) -> (JwkSet, Value, String) {
    let res = app.get("/.well-known/jwks.json");
    assert_eq!(res.status(), 200);
    let cache = res.headers()["cache-control"].to_str().unwrap().to_string();
    let body: Value = res.json().unwrap();
    (serde_json::from_value(body.clone()).unwrap(), body, cache)
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect()
}

/// Signs a token with the active key of `alg`, as the token endpoint will.
fn sign(app: &TestApp, alg: SigningAlg) -> (String, String) {
    let policy = app.config.rotation_policy();
    let signer = keys::active_signer(&mut app.conn(), &app.clock, &app.master_key, &policy, alg).unwrap();
    let mut header = Header::new(alg.jws());
    header.kid = Some(signer.kid.clone());
    let exp = app.clock.now().timestamp() + 600;
    (signer.sign_with_header(&header, &json!({ "sub": "x", "exp": exp })).unwrap(), signer.kid.clone())
}

/// Verifies `token` as a microservice would: the key picked by `kid` from
/// the published set, the algorithm pinned by that key.
fn verify(set: &JwkSet, token: &str) -> Result<(), String> {
    let kid = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not published")?;
    let alg = jwk.common.key_algorithm.ok_or("no alg")?.to_string().parse().map_err(|_| "alg")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(alg);
    validation.validate_aud = false;
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|_| ()).map_err(|e| e.to_string())
}

fn first_start_publishes_one_public_rs256_key(backend: Backend) {
    let app = TestApp::start(backend);
    let (set, raw, cache) = fetch_jwks(&app);
    assert_eq!(set.keys.len(), 1);
    let key = &raw["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some_and(|k| k.len() >= 16));
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(key.get(private).is_none(), "no private member {private}: {key}");
    }
    let max_age: u64 = cache.strip_prefix("public, max-age=").unwrap().parse().unwrap();
    assert!(max_age < app.config.signing_key_prepublish.as_secs(), "{cache}");

    let (token, _) = sign(&app, SigningAlg::Rs256);
    verify(&set, &token).unwrap();
}

fn every_algorithm_signs_and_verifies_through_the_jwks(backend: Backend) {
    let app = TestApp::start(backend);
    let tokens: Vec<_> = SigningAlg::ALL.into_iter().map(|alg| sign(&app, alg).0).collect();
    let (set, raw, _) = fetch_jwks(&app);
    assert_eq!(set.keys.len(), 3);
    let algs: Vec<_> = raw["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&alg), "{algs:?}");
    }
    for token in &tokens {
        verify(&set, token).unwrap();
    }
    // Altered tokens fail.
    let mut forged = tokens[0].clone();
    forged.push('A');
    assert!(verify(&set, &forged).is_err());
}

fn rotation_is_staged_by_the_clock(backend: Backend) {
    let app = TestApp::start(backend);
    let policy = app.config.rotation_policy();
    let (old_token, old_kid) = sign(&app, SigningAlg::Rs256);

    let next = keys::rotate(&mut app.conn(), &app.clock, &app.master_key, &policy, SigningAlg::Rs256, false).unwrap();
    assert_eq!(next.state, "next");
    let (set, _, _) = fetch_jwks(&app);
    assert_eq!(kids(&set), [next.kid.clone(), old_kid.clone()], "the next key is published before it signs");
    assert_eq!(sign(&app, SigningAlg::Rs256).1, old_kid, "the old key still signs");

    // After the pre-publication delay the next key signs; the old one stays
    // published so that its tokens still verify.
    app.clock.advance(Duration::from_std(policy.prepublish).unwrap() + Duration::seconds(1));
    let (new_token, new_kid) = sign(&app, SigningAlg::Rs256);
    assert_eq!(new_kid, next.kid);
    let (set, _, _) = fetch_jwks(&app);
    assert_eq!(kids(&set), [next.kid.clone(), old_kid.clone()]);
    verify(&set, &old_token).unwrap();
    verify(&set, &new_token).unwrap();
    let states: Vec<_> = keys::list(&mut app.conn()).unwrap().into_iter().map(|k| (k.kid, k.state)).collect();
    assert_eq!(states, [(next.kid.clone(), "active".to_string()), (old_kid.clone(), "retired".to_string())]);

    // Once every token the old key signed has expired, it leaves the JWKS.
    app.clock.advance(Duration::from_std(policy.token_lifetime).unwrap() - Duration::seconds(5));
    assert_eq!(kids(&fetch_jwks(&app).0).len(), 2, "still published just before");
    app.clock.advance(Duration::seconds(10));
    let (set, _, _) = fetch_jwks(&app);
    assert_eq!(kids(&set), std::slice::from_ref(&next.kid));
    assert!(verify(&set, &old_token).unwrap_err().contains("not published"));
}

fn rotate_now_signs_at_once(backend: Backend) {
    let app = TestApp::start(backend);
    let policy = app.config.rotation_policy();
    let (_, old_kid) = sign(&app, SigningAlg::Rs256);
    let key = keys::rotate(&mut app.conn(), &app.clock, &app.master_key, &policy, SigningAlg::Rs256, true).unwrap();
    assert_eq!(key.state, "active");
    assert_eq!(sign(&app, SigningAlg::Rs256).1, key.kid);
    assert!(kids(&fetch_jwks(&app).0).contains(&old_kid), "the old key is still published");
}

fn private_keys_are_sealed_at_rest(backend: Backend) {
    let app = TestApp::start(backend);
    let rows = tessera::store::signing_keys::list(&mut app.conn()).unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    // The column is ciphertext: it opens only under this master key and
    // for this key's id.
    let context = format!("signing_key:{}", row.kid);
    let der = app.master_key.open(&context, &row.private_key).unwrap();
    assert!(der.len() > 1000, "a PKCS#8 RSA key");
    assert!(!row.private_key.contains("MII"), "not PEM or base64 DER in the clear");
    assert!(tessera::crypto::MasterKey::generate().open(&context, &row.private_key).is_err());
    assert!(app.master_key.open("signing_key:other", &row.private_key).is_err());
    assert!(!row.public_jwk.contains("\"d\""));
}

both_backends!(
    first_start_publishes_one_public_rs256_key,
    every_algorithm_signs_and_verifies_through_the_jwks,
    rotation_is_staged_by_the_clock,
    rotate_now_signs_at_once,
    private_keys_are_sealed_at_rest,
);
