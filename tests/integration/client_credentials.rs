//! The client credentials grant end to end: the `oauth2` crate gets a
//! token over HTTP, the test verifies it against the JWKS (or the resource
//! server's HS256 secret) with jsonwebtoken; scope and audience rules;
//! RFC 6749 errors for bad input; metadata; tokens across a key rotation.

use chrono::Duration;
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use reqwest::StatusCode;
use serde_json::Value;
use tessera::jwt::keyring::SIGNER_RECHECK;
use tessera::jwt::keys::{self, SigningAlg};
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};
use tessera::oauth::resources::TokenAlg;

use crate::both_backends;
use crate::support::oauth::verify_access_token;
use crate::support::{Backend, TestApp};

fn oauth2_http() -> oauth2::reqwest::blocking::Client {
    oauth2::reqwest::blocking::ClientBuilder::new().redirect(oauth2::reqwest::redirect::Policy::none()).build().unwrap()
}

fn assert_oauth_error(res: reqwest::blocking::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}

fn oauth2_crate_gets_a_verifiable_token_for_every_algorithm(backend: Backend) {
    let app = TestApp::start(backend);
    let mut audiences = Vec::new();
    let mut resources = Vec::new();
    for (alg, name) in
        [(TokenAlg::Rs256, "rs"), (TokenAlg::Es256, "es"), (TokenAlg::EdDsa, "ed"), (TokenAlg::Hs256, "hs")]
    {
        let rs = app.create_resource(&format!("https://{name}.example.com"), alg, "orders:read orders:write");
        audiences.push(rs.identifier.clone());
        resources.push((alg, rs));
    }
    let audience_refs: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "orders:read orders:write read", &audience_refs);
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret().to_string()))
        .set_token_uri(TokenUrl::new(app.token_endpoint()).unwrap());
    let http = oauth2_http();

    for (alg, rs) in &resources {
        let token = oauth
            .exchange_client_credentials()
            .add_scope(Scope::new("orders:read".into()))
            .add_extra_param("resource", rs.identifier.clone())
            .request(&http)
            .unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(token.token_type().as_ref(), "bearer");
        assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(900)));
        assert_eq!(token.scopes().unwrap()[0].as_str(), "orders:read");
        let secret = (*alg == TokenAlg::Hs256).then_some(rs.secret.as_str());
        let data = verify_access_token(&app, token.access_token().secret(), &rs.identifier, secret);
        assert_eq!(format!("{:?}", data.header.alg), alg.as_str());
        let claims = data.claims;
        assert_eq!(claims["sub"], client.id.as_str());
        assert_eq!(claims["client_id"], client.id.as_str());
        assert_eq!(claims["scope"], "orders:read");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));
        if *alg == TokenAlg::Hs256 {
            assert!(app.jwks().keys.iter().all(|k| k.common.key_id.as_deref() != data.header.kid.as_deref()));
        }
    }
}

fn default_audience_and_default_scope(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read write", &[]);
    let res =
        app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some((&client.id, client.secret())));
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body: Value = res.json().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read write");
    let data = verify_access_token(&app, body["access_token"].as_str().unwrap(), &app.default_audience(), None);
    assert_eq!(format!("{:?}", data.header.alg), "RS256");
    assert_eq!(data.claims["scope"], "read write");

    // The `audience` parameter works like `resource`.
    let aud = app.default_audience();
    let body = app.cc_token(&client, &[("audience", &aud), ("scope", "write")]);
    assert_eq!(body["scope"], "write");
}

fn scope_and_audience_rules(backend: Backend) {
    let app = TestApp::start(backend);
    let orders = app.create_resource("https://orders.example.com", TokenAlg::Rs256, "orders:read orders:write");
    app.create_resource("https://hr.example.com", TokenAlg::Rs256, "hr:read");
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "orders:read read", &[&orders.identifier]);
    let creds = Some((client.id.as_str(), client.secret()));
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("grant_type", "client_credentials")];
        f.extend_from_slice(extra);
        f
    };

    // A scope the client may not have.
    let res = app.post_form("/oauth/token", &form(&[("scope", "read admin")]), creds);
    let body = assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope");
    assert!(body["error_description"].as_str().unwrap().contains("admin"));
    // A scope the resource server does not define, though the client has it.
    let res =
        app.post_form("/oauth/token", &form(&[("resource", "https://orders.example.com"), ("scope", "read")]), creds);
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope");
    // Malformed scope.
    let res = app.post_form("/oauth/token", &form(&[("scope", "re\"ad")]), creds);
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope");
    // Unknown audience, an audience the client may not use, a malformed one,
    // and two that disagree.
    for target in [
        &[("resource", "https://unknown.example.com")][..],
        &[("resource", "https://hr.example.com")],
        &[("resource", "not a uri")],
        &[("resource", "https://orders.example.com#frag")],
        &[("resource", "https://orders.example.com"), ("audience", "https://hr.example.com")],
    ] {
        let res = app.post_form("/oauth/token", &form(target), creds);
        assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_target");
    }
    // With none requested, the scope is what both client and resource allow.
    let body = app.cc_token(&client, &[("resource", "https://orders.example.com")]);
    assert_eq!(body["scope"], "orders:read");
}

fn grant_and_request_errors(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let creds = Some((client.id.as_str(), client.secret()));

    let res = app.post_form("/oauth/token", &[("scope", "read")], creds);
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request");
    let res = app.post_form("/oauth/token", &[("grant_type", "password")], creds);
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let res = app.post_form("/oauth/token", &[("grant_type", "<script>")], creds);
    let body = assert_oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    assert!(!body.to_string().contains("<script>"));

    // Repeated parameters (RFC 6749 §3.2).
    let res = app
        .client
        .post(app.token_endpoint())
        .basic_auth(&client.id, Some(client.secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=read&scope=read")
        .send()
        .unwrap();
    let body = assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("scope"));

    // Not a form.
    let res = app
        .client
        .post(app.token_endpoint())
        .basic_auth(&client.id, Some(client.secret()))
        .json(&serde_json::json!({ "grant_type": "client_credentials" }))
        .send()
        .unwrap();
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request");

    // Oversized body.
    let huge = "x".repeat(app.config.body_limit + 1);
    let res = app.post_form("/oauth/token", &[("grant_type", "client_credentials"), ("scope", &huge)], creds);
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Wrong method.
    assert_eq!(app.get("/oauth/token").status(), StatusCode::METHOD_NOT_ALLOWED);

    // A client without the grant.
    let coder = app.create_client(NewClient {
        name: "Web app".into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        grant_types: vec![GrantType::AuthorizationCode],
        ..NewClient::default()
    });
    let res = app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some((&coder.id, coder.secret())));
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client");

    // A public client cannot authenticate for this grant.
    let public = app.create_client(NewClient {
        name: "SPA".into(),
        public: true,
        redirect_uris: vec!["https://spa.example.com/cb".into()],
        ..NewClient::default()
    });
    let res = app.post_form("/oauth/token", &[("grant_type", "client_credentials"), ("client_id", &public.id)], None);
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client");

    // A client credentials client may not redeem codes.
    let res = app.post_form("/oauth/token", &[("grant_type", "authorization_code"), ("code", "x")], creds);
    assert_oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client");
}

fn metadata_advertises_what_works(backend: Backend) {
    let app = TestApp::start(backend);
    app.create_resource("https://orders.example.com", TokenAlg::Rs256, "orders:read");
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let res = app.get(path);
        assert_eq!(res.status(), 200);
        let doc: Value = res.json().unwrap();
        assert_eq!(doc["issuer"], app.issuer());
        assert_eq!(doc["token_endpoint"], app.token_endpoint());
        assert_eq!(doc["authorization_endpoint"], app.url("/oauth/authorize"));
        let grants = doc["grant_types_supported"].as_array().unwrap();
        for g in ["authorization_code", "client_credentials", "refresh_token"] {
            assert!(grants.contains(&g.into()), "{g}");
        }
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert!(doc["scopes_supported"].as_array().unwrap().contains(&"orders:read".into()));
        let methods = doc["token_endpoint_auth_methods_supported"].as_array().unwrap();
        for m in ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"] {
            assert!(methods.contains(&m.into()), "{m}");
        }
        assert!(doc["token_endpoint_auth_signing_alg_values_supported"].as_array().unwrap().contains(&"RS256".into()));
        // Every advertised endpoint answers (a POST endpoint answers a bare
        // POST with an OAuth error, not 404).
        let jwks = doc["jwks_uri"].as_str().unwrap();
        assert_eq!(app.client.get(jwks).send().unwrap().status(), 200);
        for key in ["token_endpoint", "introspection_endpoint", "revocation_endpoint"] {
            let url = doc[key].as_str().unwrap();
            let res = app.client.post(url).form(&[("x", "y")]).send().unwrap();
            assert!(res.status() == 400 || res.status() == 401, "{key}: {}", res.status());
        }
    }
}

fn tokens_survive_a_signing_key_rotation(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| c.signing_key_prepublish = std::time::Duration::from_secs(60))
        .start();
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let aud = app.default_audience();
    let kid_of = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let before = app.cc_token(&client, &[])["access_token"].as_str().unwrap().to_string();
    let old_kid = kid_of(&before);

    let policy = app.config.rotation_policy();
    let next = keys::rotate(&mut app.conn(), &app.clock, &app.master_key, &policy, SigningAlg::Rs256, false).unwrap();
    // Published before it signs anything.
    assert!(app.jwks().find(&next.kid).is_some());
    let during = app.cc_token(&client, &[])["access_token"].as_str().unwrap().to_string();
    assert_eq!(kid_of(&during), old_kid);

    app.clock.advance(Duration::from_std(policy.prepublish).unwrap() + SIGNER_RECHECK);
    let after = app.cc_token(&client, &[])["access_token"].as_str().unwrap().to_string();
    assert_eq!(kid_of(&after), next.kid);
    verify_access_token(&app, &after, &aud, None);
    // The token signed before the rotation still verifies against the
    // published set, and its key stays published while it lives.
    verify_access_token(&app, &before, &aud, None);
    app.clock.advance(Duration::from_std(policy.token_lifetime).unwrap() - Duration::seconds(5));
    assert!(app.jwks().find(&old_kid).is_some(), "retired key still published while its tokens live");
    app.clock.advance(Duration::seconds(6));
    assert!(app.jwks().find(&old_kid).is_none(), "retired key gone once its tokens expired");
}

both_backends!(
    oauth2_crate_gets_a_verifiable_token_for_every_algorithm,
    default_audience_and_default_scope,
    scope_and_audience_rules,
    grant_and_request_errors,
    metadata_advertises_what_works,
    tokens_survive_a_signing_key_rotation,
);
