//! Issue #10's holes in `/v1`: a credential never becomes more than it was
//! given. Each test is named after the hole it closes; each drives the real
//! server over HTTP and checks that the refused call changed nothing.

use diesel::prelude::*;
use oauth2::TokenResponse;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};
use tessera::apikeys::{self, KeyType, Mode, NewKey};
use tessera::audit::Actor;
use tessera::clock::Clock;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};
use tessera::oauth::resources::TokenAlg;

use crate::both_backends;
use crate::support::browser::{Person, authorization_url, code, oauth2_http};
use crate::support::oauth::hs256_assertion;
use crate::support::{Backend, TestApp};

pub fn user_id(app: &TestApp, email: &str) -> String {
    tessera::store::users::find_by_email(&mut app.conn(), email).unwrap().unwrap().id
}

/// A key request for `owner_id`: restricted to `permissions`, or a full
/// secret key when there are none.
pub fn new_key(owner_id: &str, permissions: &[&str]) -> NewKey {
    NewKey {
        key_type: if permissions.is_empty() { KeyType::Secret } else { KeyType::Restricted },
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..crate::support::key_request(owner_id, Mode::Test)
    }
}

/// A key made by the operator (CLI path) for `owner_id`.
pub fn operator_key(app: &TestApp, owner_id: &str, permissions: &[&str]) -> (String, String) {
    let new = new_key(owner_id, permissions);
    let (key, raw) = apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, Actor::Cli).unwrap();
    (key.id, raw.expose().to_string())
}

pub fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().unwrap();
    let status = res.status();
    (status, res.json().unwrap_or(Value::Null))
}

pub fn call(app: &TestApp, method: reqwest::Method, path: &str, token: &str) -> RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(token)
}

fn expect(got: (StatusCode, Value), status: StatusCode, code: &str) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    got.1
}

fn key_count(app: &TestApp) -> usize {
    tessera::store::api_keys::list(&mut app.conn(), None).unwrap().len()
}

pub fn set_role(app: &TestApp, id: &str, role: &str) {
    use tessera::store::schema::users;
    diesel::update(users::table.find(id)).set(users::role.eq(role)).execute(&mut *app.conn()).unwrap();
}

/// A member with a password, and a full key of theirs.
fn member(app: &TestApp, email: &str) -> (Person, String, String) {
    let person = app.person(email);
    let id = user_id(app, email);
    let (_, key) = operator_key(app, &id, &[]);
    (person, id, key)
}

fn hole_2_permission_lists_are_parsed_exactly(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, _, member_key) = member(&app, "bea@example.com");
    let admin = user_id(&app, "admin@localhost");
    let (_, writer) = operator_key(&app, &admin, &["read", "write"]);
    let before = key_count(&app);
    for key in [&member_key, &writer] {
        for bad in
            [json!(["write,admin"]), json!([" admin"]), json!(["admin "]), json!(["Admin"]), json!(["read write"])]
        {
            let got = send(
                call(&app, reqwest::Method::POST, "/v1/api-keys", key)
                    .json(&json!({ "name": "x", "type": "restricted", "permissions": bad })),
            );
            let body = expect(got, StatusCode::BAD_REQUEST, "validation_error");
            assert!(body["message"].as_str().unwrap().contains("unknown permission"), "{body}");
        }
    }
    // A member asking for admin by name is refused for lacking it.
    let got = send(
        call(&app, reqwest::Method::POST, "/v1/api-keys", &member_key)
            .json(&json!({ "name": "x", "type": "restricted", "permissions": ["admin"] })),
    );
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    // The narrower admin key cannot grant what it lacks either.
    let got = send(
        call(&app, reqwest::Method::POST, "/v1/api-keys", &writer)
            .json(&json!({ "name": "x", "type": "restricted", "permissions": ["read", "delete"] })),
    );
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(key_count(&app), before, "no refused call made a key");
}

fn hole_3_rotation_needs_the_rotated_keys_permissions_and_a_live_key(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, bea, _) = member(&app, "bea@example.com");
    let (full_id, full) = operator_key(&app, &bea, &["read", "write", "delete"]);
    let (_, narrow) = operator_key(&app, &bea, &["read", "write"]);
    let before = key_count(&app);

    // The narrow key may see the full key (same owner) but not copy it.
    let path = format!("/v1/api-keys/{full_id}/rotate");
    expect(send(call(&app, reqwest::Method::POST, &path, &narrow)), StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(key_count(&app), before);
    assert_eq!(send(call(&app, reqwest::Method::GET, &format!("/v1/api-keys/{full_id}"), &full)).0, 200);

    // A key with an expiry: its successor keeps that expiry unless a new
    // one is set.
    let created = send(call(&app, reqwest::Method::POST, "/v1/api-keys", &full).json(&json!({
        "name": "short", "expires_in": 3600
    })));
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let short_id = created.1["data"]["id"].as_str().unwrap().to_string();
    let expires_at = created.1["data"]["expires_at"].as_str().unwrap().to_string();
    app.clock.advance(chrono::Duration::seconds(600));
    let rotated = send(call(&app, reqwest::Method::POST, &format!("/v1/api-keys/{short_id}/rotate"), &full));
    assert_eq!(rotated.0, StatusCode::CREATED, "{}", rotated.1);
    assert_eq!(rotated.1["data"]["expires_at"], expires_at, "the successor never outlives the original");
    let successor = rotated.1["data"]["id"].as_str().unwrap().to_string();

    // Past its expiry, a key cannot be rotated (it would yield a fresh one).
    app.clock.advance(chrono::Duration::seconds(3600));
    let got = send(call(&app, reqwest::Method::POST, &format!("/v1/api-keys/{successor}/rotate"), &full));
    expect(got, StatusCode::CONFLICT, "api_key_expired");

    // A revoked key neither.
    assert_eq!(send(call(&app, reqwest::Method::DELETE, &format!("/v1/api-keys/{}", full_id), &full)).0, 200);
    let (_, admin_key) = operator_key(&app, &user_id(&app, "admin@localhost"), &[]);
    let got = send(call(&app, reqwest::Method::POST, &path, &admin_key));
    expect(got, StatusCode::CONFLICT, "already_revoked");

    // Setting a new lifetime is allowed to whoever holds the permissions.
    let fresh = send(call(&app, reqwest::Method::POST, "/v1/api-keys", &admin_key).json(&json!({
        "name": "renewable", "expires_in": 60
    })));
    let fresh_id = fresh.1["data"]["id"].as_str().unwrap().to_string();
    // The clock runs with the wall clock here: the expiry lies between the
    // times read before and after the request.
    let before = app.clock.now().timestamp();
    let renewed = send(
        call(&app, reqwest::Method::POST, &format!("/v1/api-keys/{fresh_id}/rotate"), &admin_key)
            .json(&json!({ "expires_in": 86400 })),
    );
    let after = app.clock.now().timestamp();
    assert_eq!(renewed.0, StatusCode::CREATED, "{}", renewed.1);
    let new_expiry: chrono::DateTime<chrono::Utc> = renewed.1["data"]["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((before + 86400..=after + 86400).contains(&new_expiry.timestamp()), "{new_expiry}");
}

fn hole_4_self_service_clients_cannot_choose_audiences_or_admin_scopes(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, bea, member_key) = member(&app, "bea@example.com");
    let payments = app.create_resource("https://payments.example", TokenAlg::Rs256, "payments:refund payments:read");
    let register = |body: Value| send(call(&app, reqwest::Method::POST, "/v1/clients", &member_key).json(&body));
    let count = || tessera::oauth::clients::list(&mut app.conn()).unwrap().len();
    let before = count();
    let got = register(json!({ "name": "Mine", "audiences": [payments.identifier] }));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    for scope in ["admin", "payments:refund", "read x:admin"] {
        let got = register(json!({ "name": "Mine", "scope": scope }));
        expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    }
    assert_eq!(count(), before, "no refused registration made a client");
    let ok = register(json!({ "name": "Mine", "scope": "read write offline_access" }));
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    let id = ok.1["data"]["client_id"].as_str().unwrap().to_string();
    let secret = ok.1["data"]["client_secret"].as_str().unwrap().to_string();
    // Nor can the owner widen it afterwards.
    let patch =
        |body: Value| send(call(&app, reqwest::Method::PATCH, &format!("/v1/clients/{id}"), &member_key).json(&body));
    expect(patch(json!({ "audiences": [payments.identifier] })), StatusCode::FORBIDDEN, "insufficient_scope");
    expect(patch(json!({ "scope": "read admin" })), StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(patch(json!({ "name": "Renamed", "scope": "read" })).0, 200);
    // Its client credentials cannot reach the resource server.
    let form = [("grant_type", "client_credentials"), ("resource", payments.identifier.as_str())];
    let res = app.post_form("/oauth/token", &form, Some((&id, &secret)));
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().unwrap()["error"], "invalid_target");

    // A JWT signed by a self-registered client acts for its owner, with at
    // most what the client holds.
    let signer =
        register(json!({ "name": "Signer", "scope": "read", "token_endpoint_auth_method": "client_secret_jwt" }));
    assert_eq!(signer.0, StatusCode::CREATED, "{}", signer.1);
    let (signer_id, signer_secret) =
        (signer.1["data"]["client_id"].as_str().unwrap(), signer.1["data"]["client_secret"].as_str().unwrap());
    let now = app.clock.now().timestamp();
    let jwt = hs256_assertion(
        signer_secret,
        &json!({ "iss": signer_id, "sub": bea, "aud": app.default_audience(), "iat": now, "exp": now + 60 }),
    );
    assert_eq!(send(call(&app, reqwest::Method::GET, &format!("/v1/users/{bea}"), &jwt)).0, 200);
    let got = send(call(&app, reqwest::Method::POST, "/v1/api-keys", &jwt).json(&json!({ "name": "x" })));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");

    // An admin may give audiences and any scope.
    let (_, admin_key) = operator_key(&app, &user_id(&app, "admin@localhost"), &[]);
    let got = send(call(&app, reqwest::Method::POST, "/v1/clients", &admin_key).json(&json!({
        "name": "Payments back end", "audiences": [payments.identifier], "scope": "payments:refund admin"
    })));
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

/// A client-signed JWT for a client owned by `owner_id` with `scope`.
fn owned_jwt_client(app: &TestApp, owner_id: &str, scope: &str) -> (String, String) {
    let client = app.create_client(NewClient {
        name: "Signer".into(),
        scope: scope.into(),
        auth_method: Some(AuthMethod::ClientSecretJwt),
        grant_types: vec![GrantType::ClientCredentials],
        owner_id: Some(owner_id.into()),
        ..NewClient::default()
    });
    let now = app.clock.now().timestamp();
    let jwt = hs256_assertion(
        client.secret(),
        &json!({ "iss": client.id, "sub": owner_id, "aud": app.default_audience(), "iat": now, "exp": now + 600 }),
    );
    (client.id, jwt)
}

fn hole_4_every_credential_is_cut_to_what_its_owner_may_do_now(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, admin_key) = operator_key(&app, &admin, &[]);
    // A second admin, so demoting one leaves the server administrable.
    let carol = app.person("carol@example.com");
    let carol_id = user_id(&app, &carol.email);
    set_role(&app, &carol_id, "admin");
    let (_, carol_key) = operator_key(&app, &carol_id, &[]);
    let (_, carol_jwt) = owned_jwt_client(&app, &carol_id, "read write delete admin");
    let carol_token = user_token(&app, &carol, "read write admin", &["read", "write", "admin"]);
    let create_user = |cred: &str, email: &str| {
        send(call(&app, reqwest::Method::POST, "/v1/users", cred).json(&json!({
            "email": email, "name": "N", "password": "correct horse battery"
        })))
    };
    let read_audit = |cred: &str| send(call(&app, reqwest::Method::GET, "/v1/audit-events", cred));
    for (i, cred) in [&carol_key, &carol_jwt, &carol_token].into_iter().enumerate() {
        let got = read_audit(cred);
        assert_eq!(got.0, StatusCode::OK, "admin credential {i}: {}", got.1);
    }
    // Her own key makes people; her apps' credentials never do, admin or not.
    assert_eq!(create_user(&carol_key, "u0@example.com").0, StatusCode::CREATED);
    for cred in [&carol_jwt, &carol_token] {
        expect(create_user(cred, "u1@example.com"), StatusCode::FORBIDDEN, "delegated_credential");
    }
    // Carol is demoted: every credential of hers loses admin at once.
    set_role(&app, &carol_id, "member");
    expect(create_user(&carol_key, "v0@example.com"), StatusCode::FORBIDDEN, "forbidden");
    for (i, cred) in [&carol_key, &carol_jwt, &carol_token].into_iter().enumerate() {
        expect(read_audit(cred), StatusCode::FORBIDDEN, "forbidden");
        let listed = send(call(&app, reqwest::Method::GET, "/v1/users", cred));
        assert_eq!(listed.0, 200);
        assert_eq!(listed.1["data"].as_array().unwrap().len(), 1, "a member sees only herself ({i})");
        // What she may still do as a member, she can.
        assert_eq!(send(call(&app, reqwest::Method::GET, &format!("/v1/users/{carol_id}"), cred)).0, 200);
    }
    // Disabled: nothing at all.
    let got = send(call(&app, reqwest::Method::DELETE, &format!("/v1/users/{carol_id}"), &admin_key));
    assert_eq!(got.0, 200, "{}", got.1);
    for cred in [&carol_key, &carol_jwt, &carol_token] {
        assert_eq!(send(call(&app, reqwest::Method::GET, &format!("/v1/users/{carol_id}"), cred)).0, 401);
    }
}

/// An access token for the default audience, from the code flow with the
/// `oauth2` crate, for `person` and `scopes`.
pub fn user_token(app: &TestApp, person: &Person, client_scope: &str, scopes: &[&str]) -> String {
    let client = app.web_client(client_scope);
    let oauth = app.oauth2_client(&client);
    let (url, _, verifier) = authorization_url(&oauth, scopes);
    let code_value = person.approve(app, &url);
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    token.access_token().secret().clone()
}

fn hole_4_namespaced_admin_scope_is_not_admin(backend: Backend) {
    let app = TestApp::start(backend);
    app.person("dan@example.com");
    let admin = app.admin();
    let token = user_token(&app, &admin, "read x:admin payments:admin", &["read", "x:admin", "payments:admin"]);
    let got = send(call(&app, reqwest::Method::POST, "/v1/users", &token).json(&json!({
        "email": "z@example.com", "name": "Z", "password": "correct horse battery"
    })));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    let listed = send(call(&app, reqwest::Method::GET, "/v1/users", &token));
    assert_eq!(listed.0, 200);
    assert_eq!(listed.1["data"].as_array().unwrap().len(), 1, "x:admin does not list everyone: {}", listed.1);
}

fn hole_6_keys_bind_only_to_their_owners_clients(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, _, bea_key) = member(&app, "bea@example.com");
    let (_, _, cem_key) = member(&app, "cem@example.com");
    let registered = send(call(&app, reqwest::Method::POST, "/v1/clients", &bea_key).json(&json!({ "name": "Bea's" })));
    assert_eq!(registered.0, StatusCode::CREATED);
    let beas_client = registered.1["data"]["client_id"].as_str().unwrap().to_string();
    let before = key_count(&app);
    let got = send(
        call(&app, reqwest::Method::POST, "/v1/api-keys", &cem_key)
            .json(&json!({ "name": "x", "client_id": beas_client })),
    );
    let body = expect(got, StatusCode::BAD_REQUEST, "validation_error");
    assert!(body["message"].as_str().unwrap().contains("no client"), "{body}");
    assert_eq!(key_count(&app), before);
    // So the client's key rotation can only ever find Bea's own keys.
    let own = send(
        call(&app, reqwest::Method::POST, "/v1/api-keys", &bea_key)
            .json(&json!({ "name": "x", "client_id": beas_client })),
    );
    assert_eq!(own.0, StatusCode::CREATED, "{}", own.1);
    let (_, admin_key) = operator_key(&app, &user_id(&app, "admin@localhost"), &[]);
    let rotated = send(
        call(&app, reqwest::Method::POST, "/v1/api/clients/rotate-key", &admin_key)
            .json(&json!({ "client_id": beas_client })),
    );
    assert_eq!(rotated.0, StatusCode::CREATED, "{}", rotated.1);
    assert_eq!(rotated.1["data"]["rotated_from"], own.1["data"]["id"]);
    assert_eq!(rotated.1["data"]["owner_id"], own.1["data"]["owner_id"]);
}

fn hole_10_token_and_client_jwt_callers_are_rate_limited(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.api_rate_limit = 2).start();
    let admin = user_id(&app, "admin@localhost");
    let (_, jwt) = owned_jwt_client(&app, &admin, "read");
    let token = user_token(&app, &app.admin(), "read", &["read"]);
    for cred in [&jwt, &token] {
        let statuses: Vec<u16> =
            (0..3).map(|_| send(call(&app, reqwest::Method::GET, "/v1/users", cred)).0.as_u16()).collect();
        assert_eq!(statuses, [200, 200, 429], "the third call in one second is over the limit");
        // The limiter reads the injected clock: a second later on it (and
        // no wall-clock time at all), the budget is back.
        app.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(send(call(&app, reqwest::Method::GET, "/v1/users", cred)).0, StatusCode::OK, "a second later");
    }
}

fn hole_10_sdk_tokens_are_listed_revoked_and_rate_limited(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.api_rate_limit = 2).start();
    let (_, bea, bea_key) = member(&app, "bea@example.com");
    let (_, bea_second_key) = operator_key(&app, &bea, &[]);
    let (_, _, cem_key) = member(&app, "cem@example.com");
    let created = send(call(&app, reqwest::Method::POST, "/v1/sdk-tokens", &bea_key));
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let (id, raw) = (created.1["data"]["id"].as_str().unwrap(), created.1["data"]["token"].as_str().unwrap());
    let listed = send(call(&app, reqwest::Method::GET, "/v1/sdk-tokens", &bea_key));
    assert_eq!(listed.1["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.1["data"][0]["id"], id);
    assert_eq!(listed.1["data"][0]["owner_id"], bea.as_str());
    assert!(!listed.1.to_string().contains(raw), "the token is shown once");
    assert!(
        send(call(&app, reqwest::Method::GET, "/v1/sdk-tokens", &cem_key)).1["data"].as_array().unwrap().is_empty()
    );
    let open = || app.client.post(app.url("/v1/api/sdk/session")).header("x-sdk-token", raw).send().unwrap().status();
    assert_eq!([open().as_u16(), open().as_u16(), open().as_u16()], [201, 201, 429], "per-token limit");
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(open(), StatusCode::CREATED, "a second later on the injected clock");
    // Another member cannot revoke it; its owner can, and it stops at once.
    expect(
        send(call(&app, reqwest::Method::DELETE, &format!("/v1/sdk-tokens/{id}"), &cem_key)),
        StatusCode::NOT_FOUND,
        "sdk_token_not_found",
    );
    // (A second key of hers: the first has spent its 2 requests a second.)
    assert_eq!(send(call(&app, reqwest::Method::DELETE, &format!("/v1/sdk-tokens/{id}"), &bea_second_key)).0, 200);
    app.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(open(), StatusCode::UNAUTHORIZED);
    expect(
        send(call(&app, reqwest::Method::DELETE, &format!("/v1/sdk-tokens/{id}"), &bea_second_key)),
        StatusCode::CONFLICT,
        "already_revoked",
    );
}

fn hole_10_client_names_and_loopback_uris_are_checked(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, _, key) = member(&app, "bea@example.com");
    let register = |body: Value| send(call(&app, reqwest::Method::POST, "/v1/clients", &key).json(&body));
    let got = register(json!({ "name": "Pay\u{202E}lapyaP" }));
    expect(got, StatusCode::BAD_REQUEST, "validation_error");
    let got = register(json!({ "name": "Native", "public": true, "redirect_uris": ["http://[::1]evil/cb"] }));
    expect(got, StatusCode::BAD_REQUEST, "validation_error");
    let got = register(json!({ "name": "Native", "public": true, "redirect_uris": ["http://[::1]:8080/cb"] }));
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

fn attack_narrow_credentials_cannot_reach_a_wider_clients_secret(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, admin_writer) = operator_key(&app, &admin, &["write"]);
    let (_, admin_full) = operator_key(&app, &admin, &[]);
    let (_, bea, _) = member(&app, "bea@example.com");
    let (_, bea_writer) = operator_key(&app, &bea, &["write"]);
    // The admin's client signs JWTs that are admin on /v1.
    let registered = send(call(&app, reqwest::Method::POST, "/v1/clients", &admin_full).json(
        &json!({ "name": "Ops", "scope": "read write admin", "token_endpoint_auth_method": "client_secret_jwt" }),
    ));
    assert_eq!(registered.0, StatusCode::CREATED, "{}", registered.1);
    let ops = registered.1["data"]["client_id"].as_str().unwrap().to_string();
    // A write-only key of the same admin may not learn its secret…
    let got = send(call(&app, reqwest::Method::POST, &format!("/v1/clients/{ops}/rotate-secret"), &admin_writer));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    // … and the secret did not change: the old one still signs.
    let old = registered.1["data"]["client_secret"].as_str().unwrap();
    let now = app.clock.now().timestamp();
    let jwt = hs256_assertion(
        old,
        &json!({ "iss": ops, "sub": admin, "aud": app.default_audience(), "iat": now, "exp": now + 60 }),
    );
    assert_eq!(send(call(&app, reqwest::Method::GET, "/v1/audit-events", &jwt)).0, 200);
    // A member's write-only key may not give its client read or delete.
    let got = send(
        call(&app, reqwest::Method::POST, "/v1/clients", &bea_writer)
            .json(&json!({ "name": "Wider", "scope": "read write delete" })),
    );
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    let mine = send(
        call(&app, reqwest::Method::POST, "/v1/clients", &bea_writer)
            .json(&json!({ "name": "Mine", "scope": "write" })),
    );
    assert_eq!(mine.0, StatusCode::CREATED, "{}", mine.1);
    let mine = mine.1["data"]["client_id"].as_str().unwrap().to_string();
    let got = send(
        call(&app, reqwest::Method::PATCH, &format!("/v1/clients/{mine}"), &bea_writer)
            .json(&json!({ "scope": "write delete" })),
    );
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    // Tokens and client JWTs never mint credentials.
    let token = user_token(&app, &app.admin(), "read write", &["read", "write"]);
    for cred in [&token, &jwt] {
        let got = send(call(&app, reqwest::Method::POST, "/v1/api-keys", cred).json(&json!({ "name": "persist" })));
        expect(got, StatusCode::FORBIDDEN, "delegated_credential");
        let got = send(call(&app, reqwest::Method::POST, "/v1/clients", cred).json(&json!({ "name": "persist" })));
        expect(got, StatusCode::FORBIDDEN, "delegated_credential");
    }
    let _ = bea;
}

fn attack_a_key_makes_no_key_freer_than_itself(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, bea, _) = member(&app, "bea@example.com");
    // A key usable only from 127.0.0.1, for an hour, at 50 requests a second.
    let new = NewKey {
        allowed_ips: vec!["127.0.0.1".into()],
        expires_in: Some(3600),
        rate_limit: Some(50),
        ..new_key(&bea, &[])
    };
    let (_, fenced) = apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, Actor::Cli).unwrap();
    let fenced = fenced.expose().to_string();
    let create = |body: Value| send(call(&app, reqwest::Method::POST, "/v1/api-keys", &fenced).json(&body));
    let before = key_count(&app);
    for body in [
        json!({ "name": "anywhere", "restrictions": { "ips": ["0.0.0.0/0"] } }),
        json!({ "name": "forever", "expires_in": 315360000 }),
        json!({ "name": "faster", "rate_limit": 1000 }),
    ] {
        expect(create(body), StatusCode::FORBIDDEN, "insufficient_scope");
    }
    assert_eq!(key_count(&app), before);
    // Left open, each bound is the maker's.
    let made = create(json!({ "name": "child" }));
    assert_eq!(made.0, StatusCode::CREATED, "{}", made.1);
    let child = &made.1["data"];
    assert_eq!(child["restrictions"]["ips"], json!(["127.0.0.1/32"]));
    assert_eq!(child["rate_limit"], 50);
    assert!(child["expires_at"].is_string());
    // Nor may it renew itself past its own end.
    let (own_id, _) = (made.1["data"]["id"].as_str().unwrap().to_string(), ());
    let got = send(
        call(&app, reqwest::Method::POST, &format!("/v1/api-keys/{own_id}/rotate"), &fenced)
            .json(&json!({ "expires_in": 315360000 })),
    );
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    // An unrestricted key of the same owner cannot be copied by it either.
    let (open_id, _) = operator_key(&app, &bea, &[]);
    let got = send(call(&app, reqwest::Method::POST, &format!("/v1/api-keys/{open_id}/rotate"), &fenced));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
}

fn attack_a_rotation_never_revives_a_revoked_key(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (id, _) = operator_key(&app, &admin, &[]);
    let mut conn = app.conn();
    let old = tessera::store::api_keys::find(&mut conn, &id).unwrap().unwrap();
    // The revocation lands between the rotation's read and its write.
    let now = app.clock.now().naive_utc();
    assert!(tessera::store::api_keys::revoke(&mut conn, &id, now).unwrap());
    let successor = tessera::store::api_keys::ApiKeyRow {
        id: "key_successor".into(),
        fingerprint: "f".repeat(64),
        rotated_from: Some(id.clone()),
        ..old.clone()
    };
    assert!(!tessera::store::api_keys::rotate(&mut conn, &old, &successor, now, now).unwrap());
    assert!(tessera::store::api_keys::find(&mut conn, "key_successor").unwrap().is_none(), "no successor");
}

fn attack_a_disabled_clients_bound_keys_stop(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, _, bea_key) = member(&app, "bea@example.com");
    let registered = send(call(&app, reqwest::Method::POST, "/v1/clients", &bea_key).json(&json!({ "name": "Bound" })));
    let client = registered.1["data"]["client_id"].as_str().unwrap().to_string();
    let secret = registered.1["data"]["client_secret"].as_str().unwrap().to_string();
    let bound = send(
        call(&app, reqwest::Method::POST, "/v1/api-keys", &bea_key).json(&json!({ "name": "b", "client_id": client })),
    );
    let raw = bound.1["data"]["key"].as_str().unwrap().to_string();
    let use_it = |path: &str, method: reqwest::Method| {
        send(
            app.client
                .request(method, app.url(path))
                .header("x-api-key", &raw)
                .header("x-client-id", &client)
                .header("x-client-secret", &secret),
        )
    };
    assert_eq!(use_it("/v1/api-keys", reqwest::Method::GET).0, 200);
    assert_eq!(send(call(&app, reqwest::Method::DELETE, &format!("/v1/clients/{client}"), &bea_key)).0, 200);
    expect(use_it("/v1/api-keys", reqwest::Method::GET), StatusCode::UNAUTHORIZED, "invalid_api_key");
    expect(use_it("/v1/api/me/api-key/rotate", reqwest::Method::POST), StatusCode::UNAUTHORIZED, "invalid_api_key");
}

fn attack_resource_server_scopes_do_not_map_onto_v1(backend: Backend) {
    let app = TestApp::start(backend);
    app.create_resource("https://payments.example", TokenAlg::Rs256, "payments:read payments:write");
    // The payments app asks for its scopes but names no audience: the token
    // is for /v1, and payments:write must not be write there.
    let token = user_token(&app, &app.admin(), "payments:read payments:write", &["payments:read", "payments:write"]);
    let got = send(call(&app, reqwest::Method::POST, "/v1/api-keys", &token).json(&json!({ "name": "x" })));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    expect(send(call(&app, reqwest::Method::GET, "/v1/users", &token)), StatusCode::FORBIDDEN, "insufficient_scope");
    // A namespace no resource server defines still maps, as documented.
    let token = user_token(&app, &app.admin(), "api:read", &["api:read"]);
    assert_eq!(send(call(&app, reqwest::Method::GET, "/v1/users", &token)).0, 200);
}

fn attack_verify_fails_closed(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, root) = operator_key(&app, &admin, &[]);
    let new = NewKey { allowed_endpoints: vec!["GET /v1/users".into()], ..new_key(&admin, &["read"]) };
    let (_, fenced) = apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, Actor::Cli).unwrap();
    let verify = |body: Value| send(call(&app, reqwest::Method::POST, "/v1/keys/verify", &root).json(&body));
    let raw = fenced.expose();
    expect(verify(json!({ "key": raw, "method": "DELETE" })), StatusCode::BAD_REQUEST, "validation_error");
    expect(verify(json!({ "key": raw, "path": "/v1/users" })), StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(verify(json!({ "key": raw, "method": "GET", "path": "/v1/users" })).1["code"], "VALID");
    // A key bound to a client verifies only with that client's id.
    let client = send(call(&app, reqwest::Method::POST, "/v1/clients", &root).json(&json!({ "name": "C" })));
    let client = client.1["data"]["client_id"].as_str().unwrap().to_string();
    let bound = send(
        call(&app, reqwest::Method::POST, "/v1/api-keys", &root).json(&json!({ "name": "b", "client_id": client })),
    );
    let bound = bound.1["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(verify(json!({ "key": bound })).1["code"], "FORBIDDEN");
    assert_eq!(verify(json!({ "key": bound, "client_id": "cl_other" })).1["code"], "FORBIDDEN");
    assert_eq!(verify(json!({ "key": bound, "client_id": client })).1["code"], "VALID");
}

fn attack_the_sandbox_is_no_oracle_for_live_keys(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (id, live) = {
        let new = NewKey { mode: Mode::Live, ..new_key(&admin, &[]) };
        let (k, raw) = apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, Actor::Cli).unwrap();
        (k.id, raw.expose().to_string())
    };
    apikeys::revoke(&mut app.conn(), &app.clock, &id, Actor::Cli).unwrap();
    // Revoked or not, known or not: the sandbox says only "wrong environment".
    expect(send(call(&app, reqwest::Method::GET, "/v1/users", &live)), StatusCode::UNAUTHORIZED, "wrong_environment");
}

fn attack_restriction_refusals_count_against_the_ip(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.ip_rate_limit = 2).start();
    let admin = user_id(&app, "admin@localhost");
    let new = NewKey { allowed_ips: vec!["192.0.2.1".into()], ..new_key(&admin, &[]) };
    let (_, fenced) = apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, Actor::Cli).unwrap();
    let statuses: Vec<u16> =
        (0..3).map(|_| send(call(&app, reqwest::Method::GET, "/v1/users", fenced.expose())).0.as_u16()).collect();
    assert_eq!(statuses, [403, 403, 429]);
    // Counted per second on the injected clock: a second later the IP may
    // fail again (and is refused for its restriction, not its rate).
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(send(call(&app, reqwest::Method::GET, "/v1/users", fenced.expose())).0, StatusCode::FORBIDDEN);
}

fn attack_a_disabled_owners_sdk_tokens_stop(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, bea, bea_key) = member(&app, "bea@example.com");
    let created = send(call(&app, reqwest::Method::POST, "/v1/sdk-tokens", &bea_key));
    let raw = created.1["data"]["token"].as_str().unwrap().to_string();
    let open = || app.client.post(app.url("/v1/api/sdk/session")).header("x-sdk-token", &raw).send().unwrap().status();
    assert_eq!(open(), StatusCode::CREATED);
    let (_, admin_key) = operator_key(&app, &user_id(&app, "admin@localhost"), &[]);
    assert_eq!(send(call(&app, reqwest::Method::DELETE, &format!("/v1/users/{bea}"), &admin_key)).0, 200);
    assert_eq!(open(), StatusCode::UNAUTHORIZED);
}

both_backends!(
    hole_2_permission_lists_are_parsed_exactly,
    hole_3_rotation_needs_the_rotated_keys_permissions_and_a_live_key,
    hole_4_self_service_clients_cannot_choose_audiences_or_admin_scopes,
    hole_4_every_credential_is_cut_to_what_its_owner_may_do_now,
    hole_4_namespaced_admin_scope_is_not_admin,
    hole_6_keys_bind_only_to_their_owners_clients,
    hole_10_token_and_client_jwt_callers_are_rate_limited,
    hole_10_sdk_tokens_are_listed_revoked_and_rate_limited,
    hole_10_client_names_and_loopback_uris_are_checked,
    attack_narrow_credentials_cannot_reach_a_wider_clients_secret,
    attack_a_key_makes_no_key_freer_than_itself,
    attack_a_rotation_never_revives_a_revoked_key,
    attack_a_disabled_clients_bound_keys_stop,
    attack_resource_server_scopes_do_not_map_onto_v1,
    attack_verify_fails_closed,
    attack_the_sandbox_is_no_oracle_for_live_keys,
    attack_restriction_refusals_count_against_the_ip,
    attack_a_disabled_owners_sdk_tokens_stop,
);
