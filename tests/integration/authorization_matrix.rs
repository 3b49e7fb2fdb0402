//! The authorization matrix: every `/v1` route and method, called by every
//! kind of caller, answers exactly the documented status. The table below
//! is the one place these rules are written for tests; a route registered
//! in `src/http/routes.rs` (or documented in `/openapi.json`) without a row
//! here fails the test.
//!
//! The subject of every call is member A's: A's key, A's client, A's user,
//! A's SDK token and session (fresh ones for each call that changes them).
//!
//! Delegated callers — an app's access token, a client-signed JWT, an SDK
//! token, a token whose person was disabled — never change a credential:
//! for every call that is not a read, the test compares what storage holds
//! before and after, not only the status.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};

use crate::both_backends;
use crate::support::oauth::hs256_assertion;
use crate::support::{Backend, TestApp, snapshot};
use crate::trust_boundary::{operator_key, send, user_id, user_token};

/// The kinds of caller, in the order of the table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The admin's full key.
    Admin,
    /// A's keys with one permission each.
    Read,
    Write,
    Delete,
    /// The admin's key with only `admin`.
    AdminOnly,
    /// A's restricted key (read, write, delete) allowed only `GET /v1/api-keys/*`.
    Restricted,
    /// The admin's access token with scope `read` only.
    Token,
    /// A's access token for an app she let `read write delete`.
    FullToken,
    /// A JWT signed by A's client (scope read write delete).
    ClientJwt,
    /// A's SDK token, alone.
    Sdk,
    /// Nothing.
    Anonymous,
    /// Member B's full key.
    Other,
    /// The access token (`read write delete`) of a member disabled since.
    Disabled,
}

impl Who {
    /// An app's credential acting for a person: it never changes storage.
    fn delegated(self) -> bool {
        matches!(self, Who::Token | Who::FullToken | Who::ClientJwt | Who::Sdk | Who::Disabled)
    }
}

const WHO: [Who; 13] = [
    Who::Admin,
    Who::Read,
    Who::Write,
    Who::Delete,
    Who::AdminOnly,
    Who::Restricted,
    Who::Token,
    Who::FullToken,
    Who::ClientJwt,
    Who::Sdk,
    Who::Anonymous,
    Who::Other,
    Who::Disabled,
];

/// method, path, and the status for each `Who`, in column order:
/// Admin, Read, Write, Delete, AdminOnly, Restricted, Token, FullToken,
/// ClientJwt, Sdk, Anonymous, Other, Disabled.
/// A delegated caller (Token, FullToken, ClientJwt, Sdk, Disabled) reads
/// within its scope and changes nothing: 403 `delegated_credential` (or
/// `insufficient_scope` when its scope does not even reach), 401 once its
/// person is disabled.
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [u16; 13])] = &[
    ("GET", "/v1/api-keys", [200, 200, 403, 403, 200, 403, 200, 200, 200, 403, 401, 200, 401]),
    ("POST", "/v1/api-keys", [201, 403, 201, 403, 201, 403, 403, 403, 403, 403, 401, 201, 401]),
    ("GET", "/v1/api-keys/{id}", [200, 200, 403, 403, 200, 200, 404, 200, 200, 403, 401, 404, 401]),
    ("DELETE", "/v1/api-keys/{id}", [200, 403, 403, 200, 200, 403, 403, 403, 403, 403, 401, 404, 401]),
    // The rotated key holds `read`: a write-only key may not copy it.
    ("POST", "/v1/api-keys/{id}/rotate", [201, 403, 403, 403, 201, 403, 403, 403, 403, 403, 401, 404, 401]),
    ("POST", "/v1/keys/verify", [200, 200, 403, 403, 200, 403, 200, 200, 200, 403, 401, 200, 401]),
    // Only a key bound to a client, with the client's secret, rotates itself.
    ("POST", "/v1/api/me/api-key/rotate", [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 401, 403, 401]),
    ("POST", "/v1/api/clients/rotate-key", [201, 403, 403, 403, 201, 403, 403, 403, 403, 403, 401, 403, 401]),
    // Who the credential is: anything that may read.
    ("GET", "/v1/me", [200, 200, 403, 403, 200, 403, 200, 200, 200, 403, 401, 200, 401]),
    ("GET", "/v1/users", [200, 200, 403, 403, 200, 403, 200, 200, 200, 403, 401, 200, 401]),
    ("POST", "/v1/users", [201, 403, 403, 403, 201, 403, 403, 403, 403, 403, 401, 403, 401]),
    ("GET", "/v1/users/{id}", [200, 200, 403, 403, 200, 403, 404, 200, 200, 403, 401, 404, 401]),
    ("PATCH", "/v1/users/{id}", [200, 403, 200, 403, 200, 403, 403, 403, 403, 403, 401, 404, 401]),
    // The target is another member, T: only an admin disables anyone.
    ("DELETE", "/v1/users/{id}", [200, 403, 403, 403, 200, 403, 403, 403, 403, 403, 401, 403, 401]),
    ("GET", "/v1/clients", [200, 200, 403, 403, 200, 403, 200, 200, 200, 403, 401, 200, 401]),
    ("POST", "/v1/clients", [201, 403, 201, 403, 201, 403, 403, 403, 403, 403, 401, 201, 401]),
    ("GET", "/v1/clients/{id}", [200, 200, 403, 403, 200, 403, 404, 200, 200, 403, 401, 404, 401]),
    ("PATCH", "/v1/clients/{id}", [200, 403, 200, 403, 200, 403, 403, 403, 403, 403, 401, 404, 401]),
    ("DELETE", "/v1/clients/{id}", [200, 403, 403, 200, 200, 403, 403, 403, 403, 403, 401, 404, 401]),
    ("POST", "/v1/clients/{id}/rotate-secret", [201, 403, 201, 403, 201, 403, 403, 403, 403, 403, 401, 404, 401]),
    ("GET", "/v1/audit-events", [200, 403, 403, 403, 200, 403, 403, 403, 403, 403, 401, 403, 401]),
    ("GET", "/v1/sdk-tokens", [200, 200, 403, 403, 200, 403, 200, 200, 200, 403, 401, 200, 401]),
    ("POST", "/v1/sdk-tokens", [201, 403, 201, 403, 201, 403, 403, 403, 403, 403, 401, 201, 401]),
    ("DELETE", "/v1/sdk-tokens/{id}", [200, 403, 403, 200, 200, 403, 403, 403, 403, 403, 401, 404, 401]),
    // Opened with X-SDK-TOKEN alone; any other credential is no SDK token.
    ("POST", "/v1/api/sdk/session", [401, 401, 401, 401, 401, 401, 401, 401, 401, 201, 401, 401, 401]),
    ("GET", "/v1/api/sdk/session/{id}", [200, 200, 403, 403, 200, 403, 404, 200, 200, 403, 401, 404, 401]),
];

/// The `/v1` routes the routing table registers: every `resource("/v1…")`
/// with its methods, read from the source so a new route needs a row.
fn registered_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/http/routes.rs");
    let mut routes = BTreeSet::new();
    for chunk in source.split("resource(\"").skip(1) {
        let Some((path, rest)) = chunk.split_once('"') else { continue };
        if !path.starts_with("/v1") {
            continue;
        }
        let chain = rest.split(".service(").next().unwrap_or(rest);
        for method in ["get", "post", "put", "patch", "delete"] {
            if chain.contains(&format!(".{method}(")) {
                routes.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    routes
}

/// A's objects for one call: fresh, so a call that changes one leaves the
/// next call's untouched.
struct Subject {
    key_id: String,
    key_raw: String,
    client_id: String,
    bound_client_id: String,
    user_id: String,
    victim_id: String,
    sdk_token_id: String,
    sdk_raw: String,
    session_id: String,
}

struct World {
    a: String,
    a_full: String,
    admin_full: String,
    credentials: Vec<(Who, Option<String>)>,
}

fn world(app: &TestApp) -> World {
    let admin = user_id(app, "admin@localhost");
    let a_person = app.person("a@example.com");
    app.person("b@example.com");
    let d_person = app.person("d@example.com");
    let (a, b) = (user_id(app, "a@example.com"), user_id(app, "b@example.com"));
    let (_, admin_full) = operator_key(app, &admin, &[]);
    let (_, a_full) = operator_key(app, &a, &[]);
    let restricted = {
        let new = tessera::apikeys::NewKey {
            allowed_endpoints: vec!["GET /v1/api-keys/*".into()],
            ..crate::trust_boundary::new_key(&a, &["read", "write", "delete"])
        };
        tessera::apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, tessera::audit::Actor::Cli)
            .unwrap()
            .1
            .expose()
            .to_string()
    };
    let signer = app.create_client(NewClient {
        name: "A's signer".into(),
        scope: "read write delete".into(),
        auth_method: Some(AuthMethod::ClientSecretJwt),
        grant_types: vec![GrantType::ClientCredentials],
        owner_id: Some(a.clone()),
        ..NewClient::default()
    });
    let now = app.clock.now().timestamp();
    let jwt = hs256_assertion(
        signer.secret(),
        &json!({ "iss": signer.id, "sub": a, "aud": app.default_audience(), "iat": now, "exp": now + 3000 }),
    );
    let token = user_token(app, &app.admin(), "read", &["read"]);
    let full_token = user_token(app, &a_person, "read write delete", &["read", "write", "delete"]);
    let disabled_token = user_token(app, &d_person, "read write delete", &["read", "write", "delete"]);
    tessera::accounts::disable_user_id(
        &mut app.conn(),
        &app.clock,
        &user_id(app, "d@example.com"),
        tessera::audit::Actor::Cli,
    )
    .unwrap();
    let sdk = send(app.client.post(app.url("/v1/sdk-tokens")).bearer_auth(&a_full));
    let sdk = sdk.1["data"]["token"].as_str().unwrap().to_string();
    let credentials = vec![
        (Who::Admin, Some(admin_full.clone())),
        (Who::Read, Some(operator_key(app, &a, &["read"]).1)),
        (Who::Write, Some(operator_key(app, &a, &["write"]).1)),
        (Who::Delete, Some(operator_key(app, &a, &["delete"]).1)),
        (Who::AdminOnly, Some(operator_key(app, &admin, &["admin"]).1)),
        (Who::Restricted, Some(restricted)),
        (Who::Token, Some(token)),
        (Who::FullToken, Some(full_token)),
        (Who::ClientJwt, Some(jwt)),
        (Who::Sdk, Some(sdk)),
        (Who::Anonymous, None),
        (Who::Other, Some(operator_key(app, &b, &[]).1)),
        (Who::Disabled, Some(disabled_token)),
    ];
    World { a, a_full, admin_full, credentials }
}

fn subject(app: &TestApp, world: &World, n: usize) -> Subject {
    let (key_id, key_raw) = operator_key(app, &world.a, &["read"]);
    let client_id = app
        .create_client(NewClient { name: "A's app".into(), owner_id: Some(world.a.clone()), ..NewClient::default() })
        .id;
    let bound_client_id = app
        .create_client(NewClient { name: "A's bound".into(), owner_id: Some(world.a.clone()), ..NewClient::default() })
        .id;
    let bound = send(
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&world.a_full)
            .json(&json!({ "name": "bound", "client_id": bound_client_id })),
    );
    assert_eq!(bound.0, 201, "{}", bound.1);
    app.person(&format!("t{n}@example.com"));
    let victim_id = user_id(app, &format!("t{n}@example.com"));
    let sdk = send(app.client.post(app.url("/v1/sdk-tokens")).bearer_auth(&world.a_full));
    let (sdk_token_id, sdk_raw) =
        (sdk.1["data"]["id"].as_str().unwrap().to_string(), sdk.1["data"]["token"].as_str().unwrap().to_string());
    let session = send(app.client.post(app.url("/v1/api/sdk/session")).header("x-sdk-token", &sdk_raw));
    assert_eq!(session.0, 201, "{}", session.1);
    let session_id = session.1["data"]["session_id"].as_str().unwrap().to_string();
    Subject {
        key_id,
        key_raw,
        client_id,
        bound_client_id,
        user_id: world.a.clone(),
        victim_id,
        sdk_token_id,
        sdk_raw,
        session_id,
    }
}

/// The concrete URL and body of a row's call on `s`.
fn request(method: &str, path: &str, s: &Subject, n: usize) -> (String, Option<Value>) {
    let id = if path.starts_with("/v1/api-keys/") {
        &s.key_id
    } else if path.starts_with("/v1/clients/") {
        &s.client_id
    } else if path.starts_with("/v1/users/") && method == "DELETE" {
        &s.victim_id
    } else if path.starts_with("/v1/users/") {
        &s.user_id
    } else if path.starts_with("/v1/sdk-tokens/") {
        &s.sdk_token_id
    } else {
        &s.session_id
    };
    let url = path.replace("{id}", id);
    let body = match (method, path) {
        ("POST", "/v1/api-keys") => Some(json!({ "name": "matrix" })),
        ("POST", "/v1/keys/verify") => Some(json!({ "key": s.key_raw })),
        ("POST", "/v1/api/clients/rotate-key") => Some(json!({ "client_id": s.bound_client_id })),
        ("POST", "/v1/users") => {
            Some(json!({ "email": format!("new{n}@example.com"), "name": "New", "password": "correct horse battery" }))
        }
        ("PATCH", "/v1/users/{id}") => Some(json!({ "name": "Renamed" })),
        ("POST", "/v1/clients") => Some(json!({ "name": "matrix" })),
        ("PATCH", "/v1/clients/{id}") => Some(json!({ "name": "Renamed" })),
        _ => None,
    };
    (url, body)
}

fn every_v1_route_answers_each_kind_of_caller_as_documented(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.api_rate_limit = 100_000;
            c.ip_rate_limit = 100_000;
        })
        .start();

    // The table covers exactly the routes that exist and are documented.
    let rows: BTreeSet<(String, String)> = MATRIX.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(rows.len(), MATRIX.len(), "one row per route and method");
    assert_eq!(registered_routes(), rows, "every /v1 route in src/http/routes.rs has a row, and only those");
    let doc: Value = app.get("/openapi.json").json().unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .filter(|(_, p)| p.starts_with("/v1"))
        .collect();
    assert_eq!(documented, rows, "every /v1 route is documented in /openapi.json, and only those");

    let world = world(&app);
    let mut wrong = Vec::new();
    let mut n = 0;
    let mut watched_calls = 0;
    let mut refused_as_delegated = 0;
    for (method, path, expected) in MATRIX {
        for (column, (who, credential)) in world.credentials.iter().enumerate() {
            n += 1;
            let s = subject(&app, &world, n);
            let (url, body) = request(method, path, &s, n);
            let mut req = app.client.request(method.parse::<Method>().unwrap(), app.url(&url));
            match (who, credential) {
                (Who::Sdk, Some(raw)) => {
                    // This row's own token, so a revocation elsewhere cannot
                    // change the answer.
                    let raw = if *path == "/v1/api/sdk/session" { &s.sdk_raw } else { raw };
                    req = req.header("x-sdk-token", raw);
                }
                (_, Some(c)) => req = req.bearer_auth(c),
                (_, None) => {}
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            // A delegated caller's call that is not a read must leave
            // storage as it was (but for the one thing an SDK token is for).
            let watched = who.delegated() && *method != "GET" && !(*who == Who::Sdk && *path == "/v1/api/sdk/session");
            let before = watched.then(|| snapshot::storage(&mut app.conn()));
            let (status, answer) = send(req);
            if status.as_u16() != expected[column] {
                wrong.push(format!("{method} {path} as {who:?}: {status} (expected {}) {answer}", expected[column]));
            }
            // An app's credential whose scope reaches the method is refused
            // for being delegated, whatever else the route needs.
            if matches!(who, Who::FullToken | Who::ClientJwt) && *method != "GET" && status == 403 {
                if answer["code"] != "delegated_credential" {
                    wrong.push(format!(
                        "{method} {path} as {who:?}: code {} (expected delegated_credential)",
                        answer["code"]
                    ));
                }
                refused_as_delegated += 1;
            }
            if let Some(before) = before {
                let after = snapshot::storage(&mut app.conn());
                if after != before {
                    wrong.push(format!(
                        "{method} {path} as {who:?} changed storage:\n{}",
                        snapshot::diff(&before, &after)
                    ));
                }
                watched_calls += 1;
            }
            assert_eq!(WHO[column], *who);
        }
    }
    assert!(wrong.is_empty(), "{} cells differ:\n{}", wrong.len(), wrong.join("\n"));
    // Every call that is not a read × the delegated callers, but the SDK token's own session.
    let delegated = WHO.iter().filter(|w| w.delegated()).count();
    let writes = MATRIX.iter().filter(|(m, _, _)| *m != "GET").count();
    assert_eq!(watched_calls, writes * delegated - 1, "the storage checks ran");
    // Every call that is not a read but verify (which reads) and the SDK session, for both.
    assert_eq!(refused_as_delegated, (writes - 2) * 2, "refused as delegated");
    // The admin's key still works: nothing above disabled or revoked it.
    assert_eq!(send(app.client.get(app.url("/v1/users")).bearer_auth(&world.admin_full)).0, 200);
}

/// The dashboard's forms (every `POST /dashboard…` route in the routing
/// table): they act only in a signed-in person's session, behind its CSRF
/// token. An app's credential — the person's own access token, her
/// client's signed JWT, her SDK token — sent to any of them is sent to
/// sign in, and changes nothing stored.
fn every_dashboard_form_refuses_delegated_callers(backend: Backend) {
    let app = TestApp::start(backend);
    let world = world(&app);
    let source = include_str!("../../src/http/routes.rs");
    let forms: Vec<&str> = source
        .split("resource(\"")
        .skip(1)
        .filter_map(|chunk| {
            let (path, rest) = chunk.split_once('"')?;
            let chain = rest.split(".service(").next().unwrap_or(rest);
            (path.starts_with("/dashboard") && chain.contains(".post(")).then_some(path)
        })
        .collect();
    assert!(forms.len() >= 15, "the dashboard's forms: {forms:?}");
    let s = subject(&app, &world, 0);
    let mut refused = 0;
    for path in &forms {
        let url = path.replace("{id}", &s.client_id).replace("{client_id}", &s.client_id);
        for (who, credential) in &world.credentials {
            if !matches!(who, Who::FullToken | Who::ClientJwt | Who::Sdk | Who::Token) {
                continue;
            }
            let credential = credential.as_deref().unwrap();
            let mut req = crate::support::http_client().post(app.url(&url));
            req = match who {
                Who::Sdk => req.header("x-sdk-token", credential),
                _ => req.bearer_auth(credential),
            };
            let before = snapshot::storage(&mut app.conn());
            let res = req
                .form(&[("csrf_token", "x"), ("name", "Delegated"), ("redirect_uris", "https://evil.example/cb")])
                .send()
                .unwrap();
            assert_eq!(res.status(), 302, "POST {url} as {who:?}");
            let location = res.headers()["location"].to_str().unwrap();
            assert!(location.starts_with("/login?"), "POST {url} as {who:?}: to {location}");
            let after = snapshot::storage(&mut app.conn());
            assert_eq!(before, after, "POST {url} as {who:?} changed:\n{}", snapshot::diff(&before, &after));
            refused += 1;
        }
    }
    assert_eq!(refused, forms.len() * 4);
}

both_backends!(
    every_v1_route_answers_each_kind_of_caller_as_documented,
    every_dashboard_form_refuses_delegated_callers
);
