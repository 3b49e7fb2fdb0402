//! Introspection (RFC 7662) and revocation (RFC 7009): who may ask about
//! which token, what an inactive token looks like, revocation taking
//! effect at once, and both failing closed when storage fails.

use chrono::Duration;
use diesel::connection::SimpleConnection;
use oauth2::basic::BasicClient;
use oauth2::{AccessToken, ClientId, ClientSecret, IntrospectionUrl, RevocationUrl, TokenIntrospectionResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::oauth::clients::AuthMethod;
use tessera::oauth::resources::TokenAlg;

use crate::both_backends;
use crate::support::oauth::TestClient;
use crate::support::{Backend, TestApp};

fn token_for(app: &TestApp, client: &TestClient, extra: &[(&str, &str)]) -> String {
    app.cc_token(client, extra)["access_token"].as_str().unwrap().to_string()
}

fn creds(client: &TestClient) -> (&str, &str) {
    (&client.id, client.secret())
}

fn introspection_shows_own_tokens_only(backend: Backend) {
    let app = TestApp::start(backend);
    let orders = app.create_resource("https://orders.example.com", TokenAlg::Es256, "orders:read");
    let hr = app.create_resource("https://hr.example.com", TokenAlg::Hs256, "hr:read");
    let client =
        app.cc_client(AuthMethod::ClientSecretBasic, "read orders:read hr:read", &[&orders.identifier, &hr.identifier]);
    let other = app.cc_client(AuthMethod::ClientSecretPost, "read", &[]);

    let token = token_for(&app, &client, &[("resource", &orders.identifier)]);
    let res = app.post_form("/oauth/introspect", &[("token", &token)], Some(creds(&client)));
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["sub"], client.id.as_str());
    assert_eq!(body["aud"], orders.identifier.as_str());
    assert_eq!(body["iss"], app.issuer());
    assert_eq!(body["scope"], "orders:read");
    assert_eq!(body["token_type"], "Bearer");
    for claim in ["exp", "iat"] {
        assert!(body[claim].is_i64(), "{claim}");
    }
    assert!(body["jti"].is_string());

    // The same, through the oauth2 crate's introspection client.
    let http = oauth2::reqwest::blocking::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret().to_string()))
        .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap())
        .set_revocation_url(RevocationUrl::new(app.url("/oauth/revoke")).unwrap());
    let answer = oauth.introspect(&AccessToken::new(token.clone())).request(&http).unwrap();
    assert!(answer.active());
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some(client.id.as_str()));

    // Another client sees nothing; so does the wrong resource server.
    let res = app.post_form(
        "/oauth/introspect",
        &[("token", &token), ("client_id", &other.id), ("client_secret", other.secret())],
        None,
    );
    assert_eq!(res.json::<Value>().unwrap(), json!({ "active": false }));
    assert_eq!(app.introspect(&token, (&hr.id, &hr.secret)), json!({ "active": false }));
    // The audience's resource server sees it.
    assert_eq!(app.introspect(&token, (&orders.id, &orders.secret))["active"], true);
    // An HS256 token verifies with the resource server's secret.
    let hs_token = token_for(&app, &client, &[("resource", &hr.identifier)]);
    assert_eq!(app.introspect(&hs_token, (&hr.id, &hr.secret))["scope"], "hr:read");

    // Malformed, unknown, tampered: inactive.
    let mut tampered = token.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    for junk in ["x", "a.b.c", &"A".repeat(4000), &tampered] {
        assert_eq!(app.introspect(junk, creds(&client)), json!({ "active": false }), "{junk:.40}");
    }
    // An empty token is no token (RFC 6749 §3.2: an empty value counts as
    // absent): a malformed request, not an inactive token.
    let res = app.post_form("/oauth/introspect", &[("token", "")], Some(creds(&client)));
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("token"), "{body}");
    assert!(body.get("active").is_none(), "{body}");
    // Missing token parameter; no or wrong credentials.
    let res = app.post_form("/oauth/introspect", &[("token_type_hint", "access_token")], Some(creds(&client)));
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().unwrap()["error"], "invalid_request");
    assert_eq!(app.post_form("/oauth/introspect", &[("token", &token)], None).status(), StatusCode::UNAUTHORIZED);
    let res = app.post_form("/oauth/introspect", &[("token", &token)], Some((&orders.id, "wrong")));
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Expired: inactive (the injected clock, no sleeping).
    app.clock.advance(Duration::seconds(901));
    assert_eq!(app.introspect(&token, creds(&client)), json!({ "active": false }));
}

fn revocation_takes_effect_at_once(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let other = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let token = token_for(&app, &client, &[]);
    let keep = token_for(&app, &client, &[]);

    // Another client cannot revoke it: 200, but nothing happens.
    let res = app.post_form("/oauth/revoke", &[("token", &token)], Some(creds(&other)));
    assert_eq!(res.status(), 200);
    assert_eq!(app.introspect(&token, creds(&client))["active"], true);

    // The hint is honoured but not trusted: a wrong hint still revokes.
    let res = app.post_form(
        "/oauth/revoke",
        &[("token", &token), ("token_type_hint", "refresh_token")],
        Some(creds(&client)),
    );
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(app.introspect(&token, creds(&client)), json!({ "active": false }));
    assert_eq!(app.introspect(&keep, creds(&client))["active"], true, "only that token");
    // Revoking twice, and unknown or malformed tokens: 200.
    for t in [token.as_str(), "unknown", "a.b.c"] {
        assert_eq!(app.post_form("/oauth/revoke", &[("token", t)], Some(creds(&client))).status(), 200);
    }
    // A Basic client without its secret, or with a wrong one in the body,
    // revokes nothing; with its secret in the body (RFC 6749 §2.3.1 lets
    // it send the secret either way) it does. (The oauth2 crate's
    // revocation client insists on https, so it cannot be used here.)
    for form in [
        vec![("token", keep.as_str()), ("client_id", client.id.as_str())],
        vec![("token", keep.as_str()), ("client_id", client.id.as_str()), ("client_secret", "wrong")],
    ] {
        assert_eq!(app.post_form("/oauth/revoke", &form, None).status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.introspect(&keep, creds(&client))["active"], true);
    let res = app.post_form(
        "/oauth/revoke",
        &[("token", &keep), ("client_id", &client.id), ("client_secret", client.secret())],
        None,
    );
    assert_eq!(res.status(), 200);
    assert_eq!(app.introspect(&keep, creds(&client)), json!({ "active": false }));

    // Errors: no credentials, no token, resource servers may not revoke.
    assert_eq!(app.post_form("/oauth/revoke", &[("token", &token)], None).status(), StatusCode::UNAUTHORIZED);
    let res = app.post_form("/oauth/revoke", &[], Some(creds(&client)));
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let rs = app.create_resource("https://orders.example.com", TokenAlg::Rs256, "");
    let res = app.post_form("/oauth/revoke", &[("token", &token)], Some((&rs.id, &rs.secret)));
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A revocation is kept only until the token would have expired.
    app.clock.advance(Duration::seconds(901));
    app.post_form("/oauth/revoke", &[("token", "x")], Some(creds(&client)));
    use diesel::prelude::*;
    let left: i64 = tessera::store::schema::revoked_tokens::table.count().get_result(&mut *app.conn()).unwrap();
    assert_eq!(left, 0, "expired revocations are purged");
}

/// A storage failure is 503, never `active: true` nor a false 200.
fn storage_failures_fail_closed(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let token = token_for(&app, &client, &[]);
    app.conn().batch_execute("DROP TABLE revoked_tokens").unwrap();
    let res = app.post_form("/oauth/introspect", &[("token", &token)], Some(creds(&client)));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body.get("active").is_none());
    let res = app.post_form("/oauth/revoke", &[("token", &token)], Some(creds(&client)));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

both_backends!(introspection_shows_own_tokens_only, revocation_takes_effect_at_once, storage_failures_fail_closed);
