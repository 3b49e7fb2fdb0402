//! Client authentication at the token endpoint: every method works, and
//! every way of getting it wrong is `invalid_client` (or `invalid_request`
//! for a malformed request), audited without the secret.

use chrono::Duration;
use jsonwebtoken::Algorithm;
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, TokenResponse, TokenUrl};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::oauth::clients::{self, AuthMethod, NewClient};

use crate::both_backends;
use crate::support::oauth::{
    ClientKey, JWT_BEARER, TestClient, hs256_assertion, key_assertion, unsigned_jwt, verify_access_token,
};
use crate::support::{Backend, TestApp};

const CC: (&str, &str) = ("grant_type", "client_credentials");

fn with_assertion(assertion: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_assertion_type", JWT_BEARER.into()),
        ("client_assertion", assertion.into()),
    ]
}

fn post(app: &TestApp, form: &[(&str, String)], basic: Option<(&str, &str)>) -> reqwest::blocking::Response {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_form("/oauth/token", &form, basic)
}

/// A 200 whose access token a resource server accepts (JWKS over HTTP)
/// as issued to `client_id`.
fn assert_ok(app: &TestApp, client_id: &str, res: reqwest::blocking::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("an access token");
    let claims = verify_access_token(app, token, &app.default_audience(), None).claims;
    assert_eq!((claims["client_id"].as_str(), claims["sub"].as_str()), (Some(client_id), Some(client_id)), "{claims}");
    assert_eq!(claims["scope"], body["scope"]);
    body
}

/// 401 `invalid_client` with a Basic challenge; the description is returned.
fn assert_invalid_client(res: reqwest::blocking::Response) -> String {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    body["error_description"].as_str().unwrap().to_string()
}

fn assert_invalid_request(res: reqwest::blocking::Response) {
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
}

/// The failures audited against `client_id`, once there are `at_least`
/// (they are written off the request path).
fn failures_of(app: &TestApp, client_id: &str, at_least: usize) -> Vec<Value> {
    crate::support::eventually("the failures are audited", || {
        let found: Vec<Value> = tessera::store::audit::for_target(&mut app.conn(), client_id)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "client.auth_failed")
            .map(|e| {
                assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
                serde_json::from_str(&e.details).unwrap()
            })
            .collect();
        (found.len() >= at_least).then_some(found)
    })
}

fn every_method_succeeds(backend: Backend) {
    let app = TestApp::start(backend);
    let http = oauth2::reqwest::blocking::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, auth_type) in
        [(AuthMethod::ClientSecretBasic, AuthType::BasicAuth), (AuthMethod::ClientSecretPost, AuthType::RequestBody)]
    {
        let client = app.cc_client(method, "read", &[]);
        let token = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret().to_string()))
            .set_auth_type(auth_type)
            .set_token_uri(TokenUrl::new(app.token_endpoint()).unwrap())
            .exchange_client_credentials()
            .request(&http)
            .unwrap_or_else(|e| panic!("{method:?}: {e:?}"));
        let claims = verify_access_token(&app, token.access_token().secret(), &app.default_audience(), None).claims;
        assert_eq!(claims["client_id"], client.id.as_str(), "{method:?}");
        assert_eq!(claims["scope"], "read");
    }

    let jwt_client = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    let assertion = hs256_assertion(jwt_client.secret(), &app.assertion_claims(&jwt_client.id));
    assert_ok(&app, &jwt_client.id, post(&app, &with_assertion(&assertion), None));
    // The issuer is an accepted audience too, and client_id may be sent.
    let mut claims = app.assertion_claims(&jwt_client.id);
    claims["aud"] = json!(app.issuer());
    let mut form = with_assertion(&hs256_assertion(jwt_client.secret(), &claims));
    form.push(("client_id", jwt_client.id.clone()));
    assert_ok(&app, &jwt_client.id, post(&app, &form, None));

    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let key = ClientKey::generate(alg, "k1");
        let client = app.create_client(NewClient {
            name: "Signer".into(),
            auth_method: Some(AuthMethod::PrivateKeyJwt),
            jwks: Some(ClientKey::jwks_json(&[&key])),
            ..NewClient::default()
        });
        assert!(client.secret.is_none(), "private_key_jwt clients get no secret");
        let assertion = key_assertion(&key, &app.assertion_claims(&client.id));
        assert_ok(&app, &client.id, post(&app, &with_assertion(&assertion), None));
    }
}

fn secret_failures(backend: Backend) {
    // Every failure is audited here: no limit on this one address.
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.ip_rate_limit = 100_000;
            c.audit_failures_per_ip = 100_000;
        })
        .start();
    let basic = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let other = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let cc = [CC];

    // Wrong secret, and another client's secret.
    assert_invalid_client(app.post_form("/oauth/token", &cc, Some((&basic.id, "wrong"))));
    assert_invalid_client(app.post_form("/oauth/token", &cc, Some((&basic.id, other.secret()))));
    // Unknown client; no credentials at all.
    assert_invalid_client(app.post_form("/oauth/token", &cc, Some(("cl_nobody", basic.secret()))));
    assert_invalid_client(app.post_form("/oauth/token", &cc, None));
    // A secret client may send its secret in the Basic header or in the
    // body (RFC 6749 §2.3.1), whichever it registered; not as `none`
    // (client_id alone), nor as an assertion signed with the secret.
    let res = app.post_form("/oauth/token", &[CC, ("client_id", &basic.id), ("client_secret", basic.secret())], None);
    assert_ok(&app, &basic.id, res);
    let res = app.post_form("/oauth/token", &[CC, ("client_id", &basic.id)], None);
    assert!(assert_invalid_client(res).contains("client_secret_basic"));
    let signed = hs256_assertion(basic.secret(), &app.assertion_claims(&basic.id));
    assert!(assert_invalid_client(post(&app, &with_assertion(&signed), None)).contains("client_secret_basic"));
    // Two methods at once.
    let res = app.post_form(
        "/oauth/token",
        &[CC, ("client_id", &basic.id), ("client_secret", basic.secret())],
        Some((&basic.id, basic.secret())),
    );
    assert_invalid_request(res);
    let res = app.post_form(
        "/oauth/token",
        &[CC, ("client_assertion_type", JWT_BEARER), ("client_assertion", "a.b.c")],
        Some((&basic.id, basic.secret())),
    );
    assert_invalid_request(res);
    // Malformed Basic credentials and other schemes.
    for header in ["Basic !!!", "Basic", "Bearer abc", "Basic Y2xfeA=="] {
        let res = app.client.post(app.token_endpoint()).header("authorization", header).form(&cc).send().unwrap();
        assert_invalid_client(res);
    }
    // A huge client id is refused without a lookup.
    let huge = "c".repeat(5000);
    assert_invalid_client(app.post_form("/oauth/token", &cc, Some((&huge, "x"))));
    // Disabled client.
    clients::disable(&mut app.conn(), &app.clock, &other.id, tessera::audit::Actor::Cli).unwrap();
    assert_invalid_client(app.post_form("/oauth/token", &cc, Some((&other.id, other.secret()))));

    // Every failure is audited with a reason, never the secret.
    let failures = failures_of(&app, &basic.id, 4);
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(failures.iter().any(|f| f["reason"].as_str().unwrap().contains("wrong client secret")));
    for f in failures.iter().chain(failures_of(&app, &other.id, 1).iter()) {
        let text = f.to_string();
        assert!(!text.contains(basic.secret()) && !text.contains(other.secret()), "{text}");
    }
    assert!(failures_of(&app, &other.id, 1).iter().any(|f| f["reason"] == "the client is disabled"));
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
fn basic_credentials_are_form_urlencoded(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let id = utf8_percent_encode(&client.id, NON_ALPHANUMERIC).to_string();
    assert!(id.contains("%5F"), "the underscore of cl_ is escaped: {id}");
    // Every character of the secret escaped, too.
    let secret: String = client.secret().bytes().map(|b| format!("%{b:02X}")).collect();
    assert_ok(&app, &client.id, app.post_form("/oauth/token", &[CC], Some((&id, &secret))));
    // `+` means a space: a secret with a `+` where a space is meant fails as wrong,
    // and an escape that is not UTF-8 is malformed.
    let res = app.post_form("/oauth/token", &[CC], Some((&client.id, &format!("{}+", client.secret()))));
    assert_invalid_client(res);
    assert_invalid_client(app.post_form("/oauth/token", &[CC], Some((&client.id, "%FF%FE"))));
}

fn assertion_failures(backend: Backend) {
    // Every failure is audited here: no limit on this one address.
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.ip_rate_limit = 100_000;
            c.audit_failures_per_ip = 100_000;
        })
        .start();
    let hs = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    let key = ClientKey::generate(Algorithm::RS256, "k1");
    let pk = app.create_client(NewClient {
        name: "Signer".into(),
        auth_method: Some(AuthMethod::PrivateKeyJwt),
        jwks: Some(ClientKey::jwks_json(&[&key])),
        ..NewClient::default()
    });
    let now = app.clock.now().timestamp();
    let expect_refused = |assertion: String, why: &str| {
        let reason = assert_invalid_client(post(&app, &with_assertion(&assertion), None));
        assert!(reason.contains(why), "expected {why:?} in {reason:?}");
    };

    for (client, sign) in [
        (&hs, &(|c: &Value| hs256_assertion(hs.secret(), c)) as &dyn Fn(&Value) -> String),
        (&pk, &|c: &Value| key_assertion(&key, c)),
    ] {
        let base = app.assertion_claims(&client.id);
        let with = |field: &str, value: Value| {
            let mut c = base.clone();
            c[field] = value;
            c
        };
        expect_refused(sign(&with("aud", json!("https://elsewhere.example.com/token"))), "aud");
        expect_refused(sign(&with("exp", json!(now - 120))), "expired");
        expect_refused(sign(&with("exp", json!(now + 3600))), "too far");
        expect_refused(sign(&with("exp", json!((now + 60).to_string()))), "not a number");
        expect_refused(sign(&with("nbf", json!(now + 600))), "not valid yet");
        expect_refused(sign(&with("sub", json!("someone-else"))), "iss and sub");
        let mut no_jti = base.clone();
        no_jti.as_object_mut().unwrap().remove("jti");
        expect_refused(sign(&no_jti), "jti");
        expect_refused(unsigned_jwt(&base), "well-formed");
        // Replay: the same assertion twice.
        let once = sign(&app.assertion_claims(&client.id));
        assert_ok(&app, &client.id, post(&app, &with_assertion(&once), None));
        expect_refused(once, "replay");
        // client_id that differs from the assertion's issuer.
        let mut form = with_assertion(&sign(&app.assertion_claims(&client.id)));
        form.push(("client_id", "cl_other".into()));
        assert_invalid_client(post(&app, &form, None));
        // Assertion type missing or wrong.
        let good = sign(&app.assertion_claims(&client.id));
        assert_invalid_request(post(
            &app,
            &[("grant_type", "client_credentials".into()), ("client_assertion", good.clone())],
            None,
        ));
        let mut form = with_assertion(&good);
        form[1].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
        assert_invalid_request(post(&app, &form, None));
    }

    // Algorithm confusion: HS256 over the client's public key.
    let public_pem_like = serde_json::to_string(&key.public).unwrap();
    let forged = hs256_assertion(&public_pem_like, &app.assertion_claims(&pk.id));
    expect_refused(forged, "allows only RS256");
    // A secret-JWT client's assertion signed with an RSA key.
    let stray = ClientKey::generate(Algorithm::RS256, "k1");
    expect_refused(key_assertion(&stray, &app.assertion_claims(&hs.id)), "allows only HS256");
    // Unknown kid; right kid, wrong key.
    let unknown = ClientKey::generate(Algorithm::RS256, "k2");
    expect_refused(key_assertion(&unknown, &app.assertion_claims(&pk.id)), "kid");
    expect_refused(key_assertion(&stray, &app.assertion_claims(&pk.id)), "signature");
    // The wrong secret for client_secret_jwt.
    let other = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    expect_refused(hs256_assertion(other.secret(), &app.assertion_claims(&hs.id)), "signature");

    failures_of(&app, &hs.id, 10);
    assert!(failures_of(&app, &pk.id, 1).iter().any(|f| f["reason"].as_str().unwrap().contains("replay")));
}

fn two_secrets_live_during_rotation(backend: Backend) {
    let app = TestApp::start(backend);
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretJwt] {
        let client = app.cc_client(method, "read", &[]);
        let old = client.secret().to_string();
        let new = clients::rotate_secret(
            &mut app.conn(),
            &app.clock,
            &app.master_key,
            &client.id,
            std::time::Duration::from_secs(3600),
            tessera::audit::Actor::Cli,
        )
        .unwrap()
        .expose()
        .to_string();
        assert_ne!(old, new);
        let works = |secret: &str| -> bool {
            let res = match method {
                AuthMethod::ClientSecretBasic => app.post_form("/oauth/token", &[CC], Some((&client.id, secret))),
                _ => post(&app, &with_assertion(&hs256_assertion(secret, &app.assertion_claims(&client.id))), None),
            };
            res.status() == 200
        };
        assert!(works(&old) && works(&new), "{method:?}: both secrets work during the overlap");
        app.clock.advance(Duration::seconds(3599));
        assert!(works(&old));
        app.clock.advance(Duration::seconds(2));
        assert!(!works(&old), "{method:?}: the old secret stops at its expiry");
        assert!(works(&new));

        // A second rotation with no overlap ends the current secret at once,
        // and never leaves more than two live.
        let newest = clients::rotate_secret(
            &mut app.conn(),
            &app.clock,
            &app.master_key,
            &client.id,
            std::time::Duration::ZERO,
            tessera::audit::Actor::Cli,
        )
        .unwrap();
        assert!(!works(&new));
        assert!(works(newest.expose()));
        let live = clients::live_secrets(&mut app.conn(), &app.clock, &client.id).unwrap();
        assert_eq!(live.len(), 1);
    }
    // A client without a secret has none to rotate.
    let key = ClientKey::generate(Algorithm::ES256, "k");
    let pk: TestClient = app.create_client(NewClient {
        name: "Signer".into(),
        auth_method: Some(AuthMethod::PrivateKeyJwt),
        jwks: Some(ClientKey::jwks_json(&[&key])),
        ..NewClient::default()
    });
    let err = clients::rotate_secret(
        &mut app.conn(),
        &app.clock,
        &app.master_key,
        &pk.id,
        std::time::Duration::ZERO,
        tessera::audit::Actor::Cli,
    )
    .unwrap_err();
    assert!(err.to_string().contains("private_key_jwt"));
}

fn secrets_are_stored_as_fingerprints(backend: Backend) {
    let app = TestApp::start(backend);
    let basic = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let jwt = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    for c in [&basic, &jwt] {
        assert!(c.secret().len() >= 43, "256 bits of base62");
    }
    use diesel::prelude::*;
    use tessera::store::schema::client_secrets::dsl::*;
    let rows: Vec<(String, String, String, Option<String>)> =
        client_secrets.select((id, client_id, fingerprint, sealed)).load(&mut *app.conn()).unwrap();
    assert_eq!(rows.len(), 2);
    for (secret_id, owner, print, seal) in rows {
        let raw = if owner == basic.id { basic.secret() } else { jwt.secret() };
        assert_eq!(print, tessera::crypto::fingerprint(raw));
        assert!(!print.contains(raw));
        // Every secret client keeps a copy sealed under the master key
        // (for the HS256 JWTs it may sign), never the secret in clear.
        let seal = seal.expect("a sealed copy");
        assert!(!seal.contains(raw));
        let opened = app.master_key.open(&format!("client_secret:{secret_id}"), &seal).unwrap();
        assert_eq!(opened, raw.as_bytes());
    }
}

both_backends!(
    every_method_succeeds,
    secret_failures,
    basic_credentials_are_form_urlencoded,
    assertion_failures,
    two_secrets_live_during_rotation,
    secrets_are_stored_as_fingerprints,
);
