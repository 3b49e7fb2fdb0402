//! Dynamic client registration (RFC 7591) and its management (RFC 7592):
//! the operator's three policies, the metadata rules (the CLI's, with RFC
//! 7591's two error codes), what a self-registered client may and may not
//! get, the management token's reach, the per-IP limit, and the admin
//! page for initial access tokens.

use oauth2::TokenResponse;
use proptest::prelude::*;
use reqwest::StatusCode;
use reqwest::blocking::Response;
use serde_json::{Value, json};
use tessera::audit::Actor;
use tessera::clock::Clock;
use tessera::oauth::registration::{self, RegistrationMode};
use tessera::oauth::resources::TokenAlg;

use crate::both_backends;
use crate::support::browser::{REDIRECT_URI, authorization_url, code, hidden_fields, location, oauth2_http, param};
use crate::support::oauth::{TestClient, hs256_assertion};
use crate::support::{Backend, TestApp};

fn app_with(backend: Backend, mode: RegistrationMode) -> TestApp {
    TestApp::builder(backend).with_config(move |c| c.registration = mode).start()
}

fn register(app: &TestApp, bearer: Option<&str>, body: &Value) -> Response {
    let mut req = app.client.post(app.url("/oauth/register")).json(body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().unwrap()
}

/// Registers and panics unless 201; the answer.
fn registered(app: &TestApp, bearer: Option<&str>, body: &Value) -> Value {
    let res = register(app, bearer, body);
    let status = res.status();
    let answer: Value = res.json().unwrap();
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

/// A 4xx answer's status and `error`.
fn refusal(res: Response) -> (StatusCode, String, Value) {
    let status = res.status();
    let body: Value = res.json().unwrap();
    (status, body["error"].as_str().unwrap_or("").to_string(), body)
}

fn web_app() -> Value {
    json!({ "client_name": "Self-made", "redirect_uris": [REDIRECT_URI] })
}

fn discovery(app: &TestApp, path: &str) -> Value {
    let res = app.get(path);
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

fn client_count(app: &TestApp) -> usize {
    tessera::oauth::clients::list(&mut app.conn()).unwrap().len()
}

fn each_policy_answers_as_configured(backend: Backend) {
    // Closed (the default): 403, and discovery does not offer it.
    let app = TestApp::start(backend.clone());
    let (status, error, _) = refusal(register(&app, None, &web_app()));
    assert_eq!((status, error.as_str()), (StatusCode::FORBIDDEN, "access_denied"));
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        assert!(discovery(&app, path).get("registration_endpoint").is_none(), "{path}");
    }
    assert_eq!(client_count(&app), 0);
    drop(app);

    // Open: anyone, and discovery says where.
    let app = app_with(backend, RegistrationMode::Open);
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        assert_eq!(discovery(&app, path)["registration_endpoint"], app.url("/oauth/register"), "{path}");
    }
    let before = app.clock.now().timestamp();
    let res = register(&app, None, &web_app());
    let after = app.clock.now().timestamp();
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.status(), StatusCode::CREATED);
    let answer: Value = res.json().unwrap();
    let id = answer["client_id"].as_str().unwrap();
    assert!(id.starts_with("cl_"));
    assert_eq!(answer["registration_client_uri"], app.url(&format!("/oauth/register/{id}")));
    assert_eq!(answer["client_secret"].as_str().unwrap().len(), 43);
    assert_eq!(answer["client_secret_expires_at"], 0);
    assert_eq!(answer["registration_access_token"].as_str().unwrap().len(), 43);
    let issued_at = answer["client_id_issued_at"].as_i64().unwrap();
    assert!((before..=after).contains(&issued_at), "{issued_at} outside {before}..={after}");
    assert_eq!(answer["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(answer["grant_types"], json!(["authorization_code"]));
    assert_eq!(answer["response_types"], json!(["code"]));
    assert_eq!(answer["scope"], "email offline_access openid profile", "no scope asked: the self-service set");
    assert_eq!(answer["require_pkce"], true);
    let client = tessera::oauth::clients::find(&mut app.conn(), id).unwrap().unwrap();
    assert_eq!((client.owner_id, client.audiences.len()), (None, 0));
    assert!(registration::is_self_registered(&mut app.conn(), id).unwrap());

    // A public client gets no secret.
    let public = registered(
        &app,
        None,
        &json!({ "redirect_uris": ["http://127.0.0.1:8765/cb"], "token_endpoint_auth_method": "none" }),
    );
    assert!(public.get("client_secret").is_none() && public.get("client_secret_expires_at").is_none(), "{public}");
    assert_eq!(public["client_name"], registration::UNNAMED_CLIENT);
}

fn token_policy_needs_a_live_initial_access_token(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Token);
    let make = |expires_in: Option<u64>, max_uses: Option<i64>| {
        let (info, token) =
            registration::create_initial_token(&mut app.conn(), &app.clock, expires_in, max_uses, Actor::Cli).unwrap();
        (info.id, token.expose().to_string())
    };
    let uses = |id: &str| {
        registration::list_initial_tokens(&mut app.conn()).unwrap().into_iter().find(|t| t.id == id).unwrap().uses
    };
    let refused_401 = |bearer: Option<&str>, why: &str| {
        let res = register(&app, bearer, &web_app());
        assert_eq!(res.headers()["www-authenticate"], "Bearer error=\"invalid_token\"", "{why}");
        let (status, error, _) = refusal(res);
        assert_eq!((status, error.as_str()), (StatusCode::UNAUTHORIZED, "invalid_token"), "{why}");
    };
    refused_401(None, "no token");
    refused_401(Some("not-a-token"), "a wrong token");

    let (good, good_token) = make(None, None);
    registered(&app, Some(&good_token), &web_app());
    assert_eq!(uses(&good), 1, "a registration counts");
    // Refused metadata uses nothing up.
    let (status, _, _) = refusal(register(&app, Some(&good_token), &json!({ "redirect_uris": ["http://x.example/"] })));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(uses(&good), 1);

    let (short_id, short_lived) = make(Some(60), None);
    app.clock.advance(chrono::Duration::seconds(61));
    refused_401(Some(&short_lived), "expired");
    // The purge takes it away; the others stay.
    let policy = app.config.purge_policy();
    let report = tessera::purge::purge(&mut app.conn(), &app.clock, &policy).unwrap();
    assert_eq!(report.initial_access_tokens, 1);
    let left: Vec<String> =
        registration::list_initial_tokens(&mut app.conn()).unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(left, [good.as_str()]);
    assert!(!left.contains(&short_id));

    let (once, once_token) = make(None, Some(1));
    registered(&app, Some(&once_token), &web_app());
    refused_401(Some(&once_token), "used up");
    assert_eq!(uses(&once), 1);

    let (revoked, revoked_token) = make(None, None);
    registration::revoke_initial_token(&mut app.conn(), &app.clock, &revoked, Actor::Cli).unwrap();
    refused_401(Some(&revoked_token), "revoked");
    assert!(matches!(
        registration::revoke_initial_token(&mut app.conn(), &app.clock, &revoked, Actor::Cli),
        Err(registration::InitialTokenError::Unknown)
    ));
    assert_eq!(client_count(&app), 2);
    // A token server is not open: refusals register nothing. (That an
    // open server ignores the header is `an_open_server_ignores_the_authorization_header`.)
    refused_401(Some(&revoked_token), "still revoked");
    assert_eq!(client_count(&app), 2);
}

/// An open server neither requires nor reads an Authorization header: a
/// bogus bearer token is no reason to refuse, and a live initial access
/// token sent there is not used up (a one-use token registers twice and
/// still counts no use); the registration is recorded as open.
fn an_open_server_ignores_the_authorization_header(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Open);
    let (info, token) =
        registration::create_initial_token(&mut app.conn(), &app.clock, None, Some(1), Actor::Cli).unwrap();
    let token = token.expose().to_string();
    let uses = || {
        registration::list_initial_tokens(&mut app.conn()).unwrap().into_iter().find(|t| t.id == info.id).unwrap().uses
    };
    assert_eq!(uses(), 0);
    let mut ids = Vec::new();
    for (why, bearer) in [
        ("a bogus token", "not-a-token"),
        ("a live one-use initial access token", token.as_str()),
        ("the same token again", token.as_str()),
    ] {
        let answer = registered(&app, Some(bearer), &web_app());
        let id = answer["client_id"].as_str().unwrap_or_else(|| panic!("{why}: {answer}")).to_string();
        assert!(answer["registration_access_token"].as_str().is_some_and(|t| t != bearer), "{why}: {answer}");
        assert_eq!(uses(), 0, "{why}: the initial access token is not used up");
        ids.push(id);
    }
    // Basic credentials, as a confused client might send: ignored too.
    let res = app.client.post(app.url("/oauth/register")).basic_auth("cl_x", Some("y")).json(&web_app()).send();
    let res = res.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    ids.push(res.json::<Value>().unwrap()["client_id"].as_str().unwrap().to_string());
    assert_eq!(client_count(&app), 4);
    for id in &ids {
        assert!(registration::is_self_registered(&mut app.conn(), id).unwrap(), "{id}");
        let event = tessera::store::audit::for_target(&mut app.conn(), id)
            .unwrap()
            .into_iter()
            .find(|e| e.action == "client.registered")
            .unwrap_or_else(|| panic!("{id}: no client.registered event"));
        let details: Value = serde_json::from_str(&event.details).unwrap();
        assert_eq!((&details["policy"], &details["initial_access_token"]), (&json!("open"), &Value::Null), "{id}");
    }
    // Nothing about the token changed: unused, live.
    let listed = registration::list_initial_tokens(&mut app.conn()).unwrap();
    assert!(listed.iter().any(|t| t.id == info.id && t.uses == 0 && t.revoked_at.is_none()), "{listed:?}");
}

fn invalid_metadata_is_refused_field_by_field(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.registration = RegistrationMode::Open;
            c.registration_rate_limit = 1000;
        })
        .start();
    let uri = REDIRECT_URI;
    let many: Vec<String> = (0..21).map(|i| format!("https://app.example.com/cb{i}")).collect();
    let redirect = "invalid_redirect_uri";
    let metadata = "invalid_client_metadata";
    let cases: Vec<(&str, Value, &str)> = vec![
        ("http, not loopback", json!({ "redirect_uris": ["http://app.example.com/cb"] }), redirect),
        ("fragment", json!({ "redirect_uris": ["https://app.example.com/cb#x"] }), redirect),
        ("javascript:", json!({ "redirect_uris": ["javascript:alert(1)"] }), redirect),
        ("too many URIs", json!({ "redirect_uris": many }), redirect),
        ("code without a redirect URI", json!({ "client_name": "X" }), redirect),
        (
            "post-logout URI",
            json!({ "redirect_uris": [uri], "post_logout_redirect_uris": ["http://evil.example/"] }),
            redirect,
        ),
        ("implicit", json!({ "redirect_uris": [uri], "grant_types": ["implicit"] }), metadata),
        ("password", json!({ "redirect_uris": [uri], "grant_types": ["password"] }), metadata),
        ("response type token", json!({ "redirect_uris": [uri], "response_types": ["token"] }), metadata),
        (
            "public client credentials",
            json!({ "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"] }),
            metadata,
        ),
        (
            "public without PKCE",
            json!({ "redirect_uris": [uri], "token_endpoint_auth_method": "none", "require_pkce": false }),
            metadata,
        ),
        (
            "jwks_uri",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks",
                    "grant_types": ["client_credentials"] }),
            metadata,
        ),
        (
            "empty jwks",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [] },
                    "grant_types": ["client_credentials"] }),
            metadata,
        ),
        (
            "symmetric jwk",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"],
                    "jwks": { "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] } }),
            metadata,
        ),
        (
            "private_key_jwt without jwks",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"] }),
            metadata,
        ),
        (
            "unknown auth method",
            json!({ "redirect_uris": [uri], "token_endpoint_auth_method": "tls_client_auth" }),
            metadata,
        ),
        ("HS256 ID tokens", json!({ "redirect_uris": [uri], "id_token_signed_response_alg": "HS256" }), metadata),
        ("none ID tokens", json!({ "redirect_uris": [uri], "id_token_signed_response_alg": "none" }), metadata),
        ("admin scope", json!({ "redirect_uris": [uri], "scope": "openid admin" }), metadata),
        ("a /v1 scope not offered", json!({ "redirect_uris": [uri], "scope": "read" }), metadata),
        ("a resource server's scope", json!({ "redirect_uris": [uri], "scope": "orders:write" }), metadata),
        ("bidi name", json!({ "redirect_uris": [uri], "client_name": "Good\u{202E}lapyap" }), metadata),
        ("long name", json!({ "redirect_uris": [uri], "client_name": "x".repeat(101) }), metadata),
        ("uris not an array", json!({ "redirect_uris": uri }), metadata),
        ("require_pkce not a boolean", json!({ "redirect_uris": [uri], "require_pkce": "false" }), metadata),
        ("not an object", json!([uri]), metadata),
    ];
    app.create_resource("https://orders.example.com", TokenAlg::Rs256, "orders:write");
    for (why, body, expected) in cases {
        let (status, error, answer) = refusal(register(&app, None, &body));
        assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, expected), "{why}: {answer}");
        assert!(!answer["error_description"].as_str().unwrap().is_empty(), "{why}");
    }
    let (_, _, answer) = refusal(register(
        &app,
        None,
        &json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks" }),
    ));
    assert!(answer["error_description"].as_str().unwrap().contains("jwks"), "says to send jwks: {answer}");
    // Not JSON at all.
    let res = app.client.post(app.url("/oauth/register")).body("{").header("content-type", "application/json").send();
    assert_eq!(refusal(res.unwrap()).1, metadata);
    let res = app.client.post(app.url("/oauth/register")).form(&[("client_name", "X")]).send().unwrap();
    assert_eq!(refusal(res).1, metadata);
    assert_eq!(client_count(&app), 0, "nothing refused was registered");

    // Audience-like fields are not metadata: ignored, never granted.
    let answer = registered(
        &app,
        None,
        &json!({ "client_name": "Sneaky", "grant_types": ["client_credentials"], "scope": "openid",
                 "audiences": ["https://orders.example.com"], "audience": "https://orders.example.com",
                 "resource": "https://orders.example.com", "owner_id": app.user_id("admin@localhost") }),
    );
    let id = answer["client_id"].as_str().unwrap();
    let client = tessera::oauth::clients::find(&mut app.conn(), id).unwrap().unwrap();
    assert!(client.audiences.is_empty() && client.owner_id.is_none(), "{client:?}");
    let secret = answer["client_secret"].as_str().unwrap();
    let form = [("grant_type", "client_credentials"), ("resource", "https://orders.example.com")];
    let (status, error, _) = refusal(app.post_form("/oauth/token", &form, Some((id, secret))));
    assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, "invalid_target"));
}

fn the_management_token_works_only_for_its_own_client(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Open);
    let a = registered(&app, None, &web_app());
    let b = registered(&app, None, &web_app());
    let (a_id, a_token, a_uri) = (
        a["client_id"].as_str().unwrap(),
        a["registration_access_token"].as_str().unwrap(),
        a["registration_client_uri"].as_str().unwrap(),
    );
    let b_uri = b["registration_client_uri"].as_str().unwrap();
    let b_token = b["registration_access_token"].as_str().unwrap();
    let operator_made = app.web_client("openid").id;

    let get = |uri: &str, token: Option<&str>| {
        let mut req = app.client.get(uri);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    // Its own: the metadata, no secret.
    let res = get(a_uri, Some(a_token));
    assert_eq!(res.status(), 200);
    let read: Value = res.json().unwrap();
    assert_eq!(read["client_id"], a_id);
    assert!(read.get("client_secret").is_none() && read.get("registration_access_token").is_none(), "{read}");

    // Someone else's, an unknown id, an operator's client, no token: one answer.
    let answer = |res: Response| {
        let header = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
        (res.status(), header, res.json::<Value>().unwrap())
    };
    let expected = answer(get(b_uri, Some(a_token)));
    assert_eq!(expected.0, StatusCode::UNAUTHORIZED);
    assert_eq!(expected.1.as_deref(), Some("Bearer error=\"invalid_token\""));
    assert_eq!(expected.2["error"], "invalid_token");
    for (why, uri, token) in [
        ("unknown id", app.url("/oauth/register/cl_000000000000000000000000"), Some(a_token)),
        ("an operator's client", app.url(&format!("/oauth/register/{operator_made}")), Some(a_token)),
        ("no token", a_uri.to_string(), None),
        ("a's id, b's token", a_uri.to_string(), Some(b_token)),
    ] {
        assert_eq!(answer(get(&uri, token)), expected, "{why}");
        let put = app.client.put(&uri).bearer_auth(token.unwrap_or("")).json(&json!({ "client_id": a_id })).send();
        assert_eq!(put.unwrap().status(), StatusCode::UNAUTHORIZED, "{why}");
        let delete = app.client.delete(&uri).bearer_auth(token.unwrap_or("")).send().unwrap();
        assert_eq!(delete.status(), StatusCode::UNAUTHORIZED, "{why}");
    }
    assert_eq!(client_count(&app), 3);

    // PUT replaces the metadata within the same policy: never wider.
    let put = |body: Value| app.client.put(a_uri).bearer_auth(a_token).json(&body).send().unwrap();
    for (why, body, expected) in [
        (
            "another client_id",
            json!({ "client_id": b["client_id"], "redirect_uris": [REDIRECT_URI] }),
            "invalid_client_metadata",
        ),
        ("no client_id", json!({ "redirect_uris": [REDIRECT_URI] }), "invalid_client_metadata"),
        (
            "a /v1 scope",
            json!({ "client_id": a_id, "redirect_uris": [REDIRECT_URI], "scope": "openid read" }),
            "invalid_client_metadata",
        ),
        (
            "admin",
            json!({ "client_id": a_id, "redirect_uris": [REDIRECT_URI], "scope": "admin" }),
            "invalid_client_metadata",
        ),
        (
            "new method",
            json!({ "client_id": a_id, "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none" }),
            "invalid_client_metadata",
        ),
        (
            "new grant",
            json!({ "client_id": a_id, "redirect_uris": [REDIRECT_URI], "grant_types": ["authorization_code", "client_credentials"] }),
            "invalid_client_metadata",
        ),
        ("bad URI", json!({ "client_id": a_id, "redirect_uris": ["http://evil.example/cb"] }), "invalid_redirect_uri"),
    ] {
        let (status, error, answer) = refusal(put(body));
        assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, expected), "{why}: {answer}");
    }
    let client = tessera::oauth::clients::find(&mut app.conn(), a_id).unwrap().unwrap();
    assert_eq!(client.scope.to_string(), "email offline_access openid profile", "unchanged");
    let res =
        put(json!({ "client_id": a_id, "client_name": "Renamed", "redirect_uris": [REDIRECT_URI], "scope": "openid" }));
    assert_eq!(res.status(), 200);
    let changed: Value = res.json().unwrap();
    assert_eq!((changed["client_name"].as_str(), changed["scope"].as_str()), (Some("Renamed"), Some("openid")));
    let client = tessera::oauth::clients::find(&mut app.conn(), a_id).unwrap().unwrap();
    assert_eq!((client.name.as_str(), client.audiences.len(), client.owner_id), ("Renamed", 0, None));

    // DELETE: gone, and the token with it; B is untouched.
    let res = app.client.delete(a_uri).bearer_auth(a_token).send().unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(tessera::oauth::clients::find(&mut app.conn(), a_id).unwrap().is_none());
    assert_eq!(answer(get(a_uri, Some(a_token))), expected, "the token stops with its client");
    assert_eq!(app.client.delete(a_uri).bearer_auth(a_token).send().unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(b_uri, Some(b_token)).status(), 200);
    // A registration access token is no credential anywhere else.
    assert_eq!(app.client.get(app.url("/v1/users")).bearer_auth(b_token).send().unwrap().status(), 401);
    let b_id = b["client_id"].as_str().unwrap();
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.post_form("/oauth/token", &form, Some((b_id, b_token))).status(), 401);
}

fn a_registered_confidential_client_runs_client_credentials_and_speaks_for_nobody_on_v1(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Open);
    let answer = registered(
        &app,
        None,
        &json!({ "client_name": "Machine", "grant_types": ["client_credentials"],
                 "token_endpoint_auth_method": "client_secret_jwt", "scope": "openid" }),
    );
    let client = TestClient {
        id: answer["client_id"].as_str().unwrap().to_string(),
        secret: Some(answer["client_secret"].as_str().unwrap().to_string()),
    };
    assert!(answer.get("response_types").is_some_and(|r| r == &json!([])), "{answer}");
    // client_secret_jwt authenticates with an assertion.
    let assertion = hs256_assertion(client.secret(), &app.assertion_claims(&client.id));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", crate::support::oauth::JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let res = app.post_form("/oauth/token", &form, None);
    assert_eq!(res.status(), 200);
    let token: Value = res.json().unwrap();
    assert_eq!(token["scope"], "openid");
    let access = token["access_token"].as_str().unwrap();
    // On /v1 its token and a JWT signed with its own secret speak for nobody.
    assert_eq!(app.client.get(app.url("/v1/users")).bearer_auth(access).send().unwrap().status(), 401);
    let now = app.clock.now().timestamp();
    let jwt = hs256_assertion(
        client.secret(),
        &json!({ "iss": client.id, "sub": client.id, "aud": app.default_audience(), "iat": now, "exp": now + 600 }),
    );
    let res = app.client.get(app.url("/v1/api-keys")).bearer_auth(&jwt).send().unwrap();
    assert_eq!(res.status(), 401, "an owner-less client's JWT is refused");
    // Nor can it reach the admin-only /v1 client routes with either.
    let res = app.client.post(app.url("/v1/clients")).bearer_auth(&jwt).json(&json!({ "name": "x" })).send().unwrap();
    assert_eq!(res.status(), 401);
}

fn a_registered_public_client_runs_the_code_flow_and_the_consent_page_says_it_registered_itself(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Open);
    let answer = registered(
        &app,
        None,
        &json!({ "client_name": "Pocket Notes", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
                 "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access" }),
    );
    let client = TestClient { id: answer["client_id"].as_str().unwrap().to_string(), secret: None };
    let oauth = app.oauth2_client(&client);
    let (url, state, verifier) = authorization_url(&oauth, &["openid", "offline_access"]);
    let person = app.admin();
    person.sign_in(&app);
    let page = person.get(&url);
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("Pocket Notes"), "{html}");
    assert!(html.contains("self-registered") && html.contains("does not vouch for it"), "{html}");
    assert!(!html.contains("registered by the operator of this server"), "{html}");
    let mut fields = hidden_fields(&html);
    fields.push(("decision".into(), "approve".into()));
    let back = location(&person.post(&app.url("/oauth/consent"), &fields));
    assert_eq!(param(&back, "state").as_deref(), Some(state.secret().as_str()));
    let code_value = param(&back, "code").expect("a code");
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    let refresh = token.refresh_token().expect("offline_access gives a refresh token");
    assert!(oauth.exchange_refresh_token(refresh).request(&oauth2_http()).is_ok());
    // Without PKCE the same client is refused.
    let plain = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid",
        app.url("/oauth/authorize"),
        client.id,
        REDIRECT_URI
    );
    // And, as a client that registered itself, with a page rather than a
    // redirect to where its registrant chose (RFC 9700 §4.11.2).
    let refused = person.get(&plain);
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get("location").is_none());
    let html = refused.text().unwrap();
    assert!(html.contains("registered itself") && html.contains("invalid_request"), "{html}");
    // Nor is anyone sent there unasked: not signed in, `prompt=none` is a
    // page too, not `login_required` at the registrant's address.
    let (url, _, _) = authorization_url(&oauth, &["openid"]);
    let stranger = app.person("nobody@example.com");
    let res = stranger.get(&format!("{url}&prompt=none"));
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{:?}", res.headers().get("location"));
    assert!(res.text().unwrap().contains("login_required"));

    // An operator's owner-less client keeps the operator's word.
    let operator_app = app.web_client("read");
    let (url, _, _) = authorization_url(&app.oauth2_client(&operator_app), &["read"]);
    let html = person.get(&url).text().unwrap();
    assert!(html.contains("the operator of this server") && !html.contains("self-registered"), "{html}");
}

fn registrations_are_rate_limited_per_ip(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_frozen_clock()
        .with_config(|c| {
            c.registration = RegistrationMode::Open;
            c.registration_rate_limit = 2;
        })
        .start();
    registered(&app, None, &web_app());
    // A refused registration counts too.
    assert_eq!(register(&app, None, &json!({})).status(), StatusCode::BAD_REQUEST);
    let res = register(&app, None, &web_app());
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let (status, error, _) = refusal(res);
    assert_eq!((status, error.as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"));
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(client_count(&app), 1);
    app.clock.advance(chrono::Duration::seconds(retry as i64));
    registered(&app, None, &web_app());
}

fn admins_make_list_and_revoke_initial_access_tokens_on_the_dashboard(backend: Backend) {
    use crate::support::browser::{dashboard_csrf, secrets_in};
    let app = app_with(backend, RegistrationMode::Token);
    let admin = app.admin();
    admin.sign_in(&app);
    let path = "/dashboard/admin/registration";
    let page = admin.page(&app, path);
    assert!(page.contains("No initial access tokens yet") && page.contains("<strong>token</strong>"), "{page}");
    let csrf = dashboard_csrf(&page);
    assert_eq!(admin.submit(&app, path, &[("max_uses", "1")]).status(), 403, "no CSRF token, no token");
    let res = admin.submit(&app, path, &[("csrf_token", &csrf), ("max_uses", "many")]);
    assert_eq!(res.status(), 400);
    assert!(res.text().unwrap().contains("must be a whole number"));
    let res = admin.submit(&app, path, &[("csrf_token", &csrf), ("max_uses", "0")]);
    assert_eq!(res.status(), 400);
    assert!(registration::list_initial_tokens(&mut app.conn()).unwrap().is_empty());

    let res = admin.submit(&app, path, &[("csrf_token", &csrf), ("max_uses", "1"), ("expires_in", "3600")]);
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().unwrap();
    let secrets = secrets_in(&html);
    assert_eq!(secrets.len(), 1);
    let token = secrets[0].clone();
    let listed = admin.page(&app, path);
    assert!(listed.contains("0 of 1") && listed.contains("live") && !listed.contains(&token), "{listed}");
    registered(&app, Some(&token), &web_app());
    let listed = admin.page(&app, path);
    assert!(listed.contains("1 of 1") && listed.contains("used up"), "{listed}");

    let id = registration::list_initial_tokens(&mut app.conn()).unwrap()[0].id.clone();
    let revoke = format!("{path}/{id}/revoke");
    assert_eq!(admin.submit(&app, &revoke, &[]).status(), 403);
    let res = admin.submit(&app, &revoke, &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), 303);
    let listed = admin.page(&app, &format!("{path}?revoked={id}"));
    assert!(listed.contains(&format!("Revoked <code>{id}</code>")) && listed.contains("revoked"), "{listed}");
    assert_eq!(admin.submit(&app, &revoke, &[("csrf_token", &csrf)]).status(), 404, "twice: nothing to revoke");
    let (status, error, _) = refusal(register(&app, Some(&token), &web_app()));
    assert_eq!((status, error.as_str()), (StatusCode::UNAUTHORIZED, "invalid_token"));
}

/// Registration scopes are checked at start: only self-service scopes or
/// scopes a resource server defines.
fn the_registration_scopes_are_checked_at_start(backend: Backend) {
    let db = crate::support::TestDatabase::new(&backend);
    let config = tessera::config::Config {
        bind: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        master_key_file: Some(db.dir.path().join("master-key")),
        registration: RegistrationMode::Open,
        registration_scopes: tessera::domain::scope::Scopes::parse("openid orders:read").unwrap(),
        ..tessera::config::Config::default()
    };
    let clock = std::sync::Arc::new(tessera::clock::ManualClock::new());
    let err = tessera::server::prepare(config.clone(), clock.clone()).err().expect("refused");
    assert_eq!(err.setting, "TESSERA_REGISTRATION_SCOPES", "{err}");
    assert!(err.message.contains("orders:read"), "{err}");
    // Once a resource server defines it, the server starts.
    let (store, master) = tessera::server::open_storage(&config).unwrap();
    let new = tessera::oauth::resources::NewResource {
        identifier: "https://orders.example.com",
        name: "Orders",
        alg: TokenAlg::Rs256,
        scope: "orders:read",
    };
    tessera::oauth::resources::create(&mut store.conn().unwrap(), clock.as_ref(), &master, new, Actor::Cli).unwrap();
    assert!(tessera::server::prepare(config, clock).is_ok());
}

fn arbitrary_metadata_is_registered_or_refused_with_an_rfc_7591_code(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.registration = RegistrationMode::Open;
            c.registration_rate_limit = 1_000_000;
        })
        .start();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            "code",
            "token",
            "none",
            "client_secret_basic",
            "client_secret_jwt",
            "private_key_jwt",
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "openid",
            "admin",
            "openid email",
            "RS256",
            "HS256",
            "https://app.example.com/cb",
            "http://localhost:8080/cb",
            "http://evil.example/cb",
            "https://a.example/#f",
            "Name\u{202E}",
            "",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let field = prop::sample::select(vec![
        "redirect_uris",
        "client_name",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "scope",
        "jwks",
        "jwks_uri",
        "post_logout_redirect_uris",
        "id_token_signed_response_alg",
        "require_pkce",
        "other",
    ]);
    let value = leaf.prop_recursive(2, 8, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Value::Array));
    let body = prop::collection::vec((field, value), 0..8)
        .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 48, ..ProptestConfig::default() });
    runner
        .run(&body, |body| {
            let res = register(&app, None, &body);
            let status = res.status();
            let answer: Value = res.json().unwrap();
            if status == StatusCode::CREATED {
                let id = answer["client_id"].as_str().unwrap();
                let client = tessera::oauth::clients::find(&mut app.conn(), id).unwrap().unwrap();
                prop_assert!(client.owner_id.is_none() && client.audiences.is_empty());
                prop_assert!(
                    client.scope.iter().all(|s| ["openid", "profile", "email", "offline_access"].contains(&s))
                );
            } else {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{} {}", body, answer);
                let error = answer["error"].as_str().unwrap_or("");
                prop_assert!(
                    ["invalid_redirect_uri", "invalid_client_metadata"].contains(&error),
                    "{} {}",
                    body,
                    answer
                );
            }
            Ok(())
        })
        .unwrap();
}

/// `tessera registration token create|list|revoke`, as an operator runs them.
fn registration_token_commands_round_trip(backend: Backend) {
    let db = crate::support::TestDatabase::new(&backend);
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TESSERA_")) {
            cmd.env_remove(name);
        }
        cmd.current_dir(db.dir.path()).env("TESSERA_DATABASE_URL", db.url_string()).args(args);
        cmd.output().unwrap()
    };
    let json = |args: &[&str]| -> Value {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let made = json(&["registration", "token", "create", "--max-uses", "2", "--expires-in", "3600", "--json"]);
    let (id, token) = (made["id"].as_str().unwrap(), made["token"].as_str().unwrap());
    assert!(id.starts_with("iat_") && token.len() == 43, "{made}");
    assert_eq!((made["max_uses"].as_i64(), made["uses"].as_i64()), (Some(2), Some(0)));
    let listed = json(&["registration", "token", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(token) && listed[0].get("token").is_none(), "never listed: {listed}");
    for bad in [["--max-uses", "0"], ["--expires-in", "0"]] {
        let out = run(&["registration", "token", "create", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&bad[0][2..]), "{bad:?}");
    }
    assert!(run(&["registration", "token", "revoke", id]).status.success());
    assert_eq!(run(&["registration", "token", "revoke", id]).status.code(), Some(1), "twice");
    let text = String::from_utf8(run(&["registration", "token", "list"]).stdout).unwrap();
    assert!(text.contains(id) && text.contains("revoked") && text.contains("uses: 0/2"), "{text}");
}

/// Whoever holds a registration access token may change where codes go
/// and what the app is called, but not under consents people gave to the
/// old ones: a changed redirect URI or name asks everyone again; the same
/// metadata put back keeps the consents.
fn a_changed_redirect_uri_or_name_asks_for_consent_again(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Open);
    let metadata = |name: &str, uris: &[&str]| {
        json!({ "client_name": name, "redirect_uris": uris, "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"], "scope": "openid" })
    };
    let answer = registered(&app, None, &metadata("Pocket Notes", &[REDIRECT_URI]));
    let id = answer["client_id"].as_str().unwrap().to_string();
    let (uri, token) = (
        answer["registration_client_uri"].as_str().unwrap().to_string(),
        answer["registration_access_token"].as_str().unwrap().to_string(),
    );
    let put = |body: Value| {
        let mut body = body;
        body["client_id"] = json!(id);
        let res = app.client.put(&uri).bearer_auth(&token).json(&body).send().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    };
    let oauth = app.oauth2_client(&TestClient { id: id.clone(), secret: None });
    let person = app.admin();
    person.sign_in(&app);
    // Consent asked (200, the page) or remembered (302 back with a code).
    let asks = || {
        let (url, _, _) = authorization_url(&oauth, &["openid"]);
        let res = person.get(&url);
        match res.status() {
            StatusCode::OK => true,
            StatusCode::FOUND => {
                assert!(location(&res).starts_with(REDIRECT_URI), "{}", location(&res));
                false
            }
            other => panic!("{other}"),
        }
    };
    let approve = || {
        let (url, _, _) = authorization_url(&oauth, &["openid"]);
        let mut fields = hidden_fields(&person.get(&url).text().unwrap());
        fields.push(("decision".into(), "approve".into()));
        assert!(location(&person.post(&app.url("/oauth/consent"), &fields)).starts_with(REDIRECT_URI));
    };
    assert!(asks());
    approve();
    assert!(!asks(), "remembered");

    put(metadata("Pocket Notes", &[REDIRECT_URI]));
    assert!(!asks(), "the same metadata keeps the consent");

    put(metadata("Pocket Notes", &[REDIRECT_URI, "https://elsewhere.example/cb"]));
    assert!(asks(), "another redirect URI asks again");
    approve();
    assert!(!asks());

    put(metadata("Your Bank", &[REDIRECT_URI, "https://elsewhere.example/cb"]));
    assert!(asks(), "another name asks again");
}

/// A PUT that names no scope keeps what the client has, within today's
/// policy: an admin's narrowing is not undone by its registrant.
fn a_put_without_scope_does_not_widen_what_an_admin_narrowed(backend: Backend) {
    let app = app_with(backend, RegistrationMode::Open);
    let answer = registered(&app, None, &web_app());
    let id = answer["client_id"].as_str().unwrap().to_string();
    assert_eq!(answer["scope"], "email offline_access openid profile");
    let master = app.master_key.clone();
    let narrowed = tessera::oauth::clients::ClientChanges { scope: Some("openid".into()), ..Default::default() };
    tessera::oauth::clients::update(&mut app.conn(), &app.clock, &master, &id, narrowed, Actor::Cli).unwrap();
    let mut body = web_app();
    body["client_id"] = json!(id);
    let res = app
        .client
        .put(answer["registration_client_uri"].as_str().unwrap())
        .bearer_auth(answer["registration_access_token"].as_str().unwrap())
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().unwrap()["scope"], "openid");
}

/// A client's JWKS holds a few keys, each named apart: an assertion is
/// checked against the key its kid names (or every key), so a JWKS of
/// hundreds of keys sharing a kid would make each token request cost
/// hundreds of signature checks.
fn a_jwks_holds_a_few_keys_each_with_its_own_kid(backend: Backend) {
    use crate::support::oauth::ClientKey;
    use jsonwebtoken::Algorithm;
    let app = app_with(backend, RegistrationMode::Open);
    let keys: Vec<ClientKey> = (0..11).map(|i| ClientKey::generate(Algorithm::ES256, &format!("k{i}"))).collect();
    let with = |keys: &[&ClientKey]| {
        let jwks: Value = serde_json::from_str(&ClientKey::jwks_json(keys)).unwrap();
        json!({ "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks })
    };
    let all: Vec<&ClientKey> = keys.iter().collect();
    let (status, error, _) = refusal(register(&app, None, &with(&all)));
    assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, "invalid_client_metadata"));
    let twin = ClientKey::generate(Algorithm::ES256, "k0");
    let (status, error, _) = refusal(register(&app, None, &with(&[&keys[0], &twin])));
    assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, "invalid_client_metadata"), "a shared kid");
    assert_eq!(register(&app, None, &with(&all[..10])).status(), StatusCode::CREATED, "ten keys, named apart");
}

both_backends!(
    an_open_server_ignores_the_authorization_header,
    registration_token_commands_round_trip,
    each_policy_answers_as_configured,
    token_policy_needs_a_live_initial_access_token,
    invalid_metadata_is_refused_field_by_field,
    the_management_token_works_only_for_its_own_client,
    a_registered_confidential_client_runs_client_credentials_and_speaks_for_nobody_on_v1,
    a_registered_public_client_runs_the_code_flow_and_the_consent_page_says_it_registered_itself,
    registrations_are_rate_limited_per_ip,
    admins_make_list_and_revoke_initial_access_tokens_on_the_dashboard,
    the_registration_scopes_are_checked_at_start,
    arbitrary_metadata_is_registered_or_refused_with_an_rfc_7591_code,
    a_changed_redirect_uri_or_name_asks_for_consent_again,
    a_put_without_scope_does_not_widen_what_an_admin_narrowed,
    a_jwks_holds_a_few_keys_each_with_its_own_kid,
);
