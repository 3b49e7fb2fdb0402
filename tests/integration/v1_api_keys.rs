//! `/v1/api-keys` and the `Caller` extractor: every presentation form, the
//! key lifecycle, and the bad inputs — each failing call leaves the stored
//! keys unchanged.

use chrono::Duration;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};
use tessera::apikeys::{self, Mode, NewKey};
use tessera::audit::Actor;
use tessera::config::Environment;

use crate::both_backends;
use crate::support::browser::{REDIRECT_URI, authorization_url, code, oauth2_http};
use crate::support::{Backend, TestApp};

fn user_id(app: &TestApp, email: &str) -> String {
    tessera::store::users::find_by_email(&mut app.conn(), email).unwrap().unwrap().id
}

fn new_key(owner_id: &str, mode: Mode) -> NewKey {
    crate::support::key_request(owner_id, mode)
}

fn make_key(app: &TestApp, new: NewKey) -> (String, String) {
    let (key, raw) = apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, Actor::Cli).unwrap();
    (key.id, raw.expose().to_string())
}

fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().unwrap();
    let status = res.status();
    (status, res.json().unwrap_or(Value::Null))
}

fn bearer(app: &TestApp, method: reqwest::Method, path: &str, token: &str) -> RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(token)
}

fn stored(app: &TestApp) -> Vec<(String, Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>)> {
    tessera::store::api_keys::list(&mut app.conn(), None)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.revoked_at, r.expires_at))
        .collect()
}

fn assert_error(got: (StatusCode, Value), status: StatusCode, code: &str) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["success"], false);
    assert_eq!(got.1["code"], code, "{}", got.1);
    got.1
}

fn key_lifecycle_over_http(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, boot) = make_key(&app, new_key(&admin, Mode::Test));
    use reqwest::Method;

    let (status, body) = send(bearer(&app, Method::POST, "/v1/api-keys", &boot).json(&json!({
        "name": "CI deploys", "permissions": ["read", "write"],
        "restrictions": { "endpoints": ["GET /v1/api-keys/*"] }, "type": "restricted"
    })));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    let data = &body["data"];
    let id = data["id"].as_str().unwrap().to_string();
    let raw = data["key"].as_str().unwrap().to_string();
    assert!(raw.starts_with("rk_test_"));
    for field in [
        "id",
        "name",
        "prefix",
        "last4",
        "mode",
        "type",
        "permissions",
        "restrictions",
        "created_at",
        "last_used",
        "expires_at",
    ] {
        assert!(data.get(field).is_some(), "{field}");
    }

    let (status, body) = send(bearer(&app, Method::GET, "/v1/api-keys", &boot));
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(!body.to_string().contains(&raw), "the key appears only at creation");
    // The restricted key reads itself, on its allowed endpoint, through X-API-KEY too.
    let path = format!("/v1/api-keys/{id}");
    let (status, body) = send(app.client.get(app.url(&path)).header("x-api-key", &raw));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["last4"], &raw[raw.len() - 4..]);
    // … but nothing else: another endpoint, another method.
    assert_error(send(bearer(&app, Method::GET, "/v1/api-keys", &raw)), StatusCode::FORBIDDEN, "insufficient_scope");
    assert_error(send(bearer(&app, Method::DELETE, &path, &raw)), StatusCode::FORBIDDEN, "insufficient_scope");

    // Rotate with a grace period: both work, then only the new one.
    let (status, body) =
        send(bearer(&app, Method::POST, &format!("{path}/rotate"), &boot).json(&json!({ "expire_old_in": 60 })));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_raw = body["data"]["key"].as_str().unwrap().to_string();
    let new_id = body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(send(bearer(&app, Method::GET, &path, &raw)).0, 200);
    assert_eq!(send(bearer(&app, Method::GET, &format!("/v1/api-keys/{new_id}"), &new_raw)).0, 200);
    app.clock.advance(Duration::seconds(61));
    assert_error(send(bearer(&app, Method::GET, &path, &raw)), StatusCode::UNAUTHORIZED, "expired_token");
    // Rotation bounds.
    let too_long = json!({ "expire_old_in": 31 * 24 * 3600 });
    assert_error(
        send(bearer(&app, Method::POST, &format!("/v1/api-keys/{new_id}/rotate"), &boot).json(&too_long)),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );

    // Revoke: fails at once.
    let (status, body) = send(bearer(&app, Method::DELETE, &format!("/v1/api-keys/{new_id}"), &boot));
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "success": true, "message": "API key revoked successfully" }));
    assert_error(
        send(bearer(&app, Method::GET, &format!("/v1/api-keys/{new_id}"), &new_raw)),
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    );
    assert_error(
        send(bearer(&app, Method::DELETE, &format!("/v1/api-keys/{new_id}"), &boot)),
        StatusCode::CONFLICT,
        "already_revoked",
    );
}

fn bad_keys_and_bad_input_change_nothing(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, good) = make_key(&app, new_key(&admin, Mode::Test));
    let (_, live) = make_key(&app, new_key(&admin, Mode::Live));
    let mut expiring = new_key(&admin, Mode::Test);
    expiring.expires_in = Some(30);
    let (_, expiring) = make_key(&app, expiring);
    let mut fenced = new_key(&admin, Mode::Test);
    fenced.allowed_ips = vec!["10.0.0.0/8".into()];
    let (_, fenced) = make_key(&app, fenced);
    let mut referred = new_key(&admin, Mode::Test);
    referred.allowed_referrers = vec!["https://app.example.com".into()];
    let (_, referred) = make_key(&app, referred);
    let client = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let other_client = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let mut bound = new_key(&admin, Mode::Test);
    bound.client_id = Some(client.id.clone());
    let (_, bound) = make_key(&app, bound);
    let before = stored(&app);
    let get = |key: &str| send(app.client.get(app.url("/v1/api-keys")).bearer_auth(key));

    // A flipped character: refused by the checksum, with words that say so.
    let mut flipped = good.clone().into_bytes();
    let i = 12;
    flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
    let body = assert_error(get(&String::from_utf8(flipped).unwrap()), StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert!(body["message"].as_str().unwrap().contains("checksum"));
    // Quotes; extra whitespace (HTTP strips it around a header value, so it
    // shows between "Bearer" and the key).
    let body = assert_error(get(&format!("\"{good}\"")), StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert!(body["message"].as_str().unwrap().contains("quotes"));
    let res = send(app.client.get(app.url("/v1/api-keys")).header("authorization", format!("Bearer  {good}")));
    assert!(
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key")["message"]
            .as_str()
            .unwrap()
            .contains("whitespace")
    );
    // Missing; garbage; a live key in the sandbox.
    assert_error(send(app.client.get(app.url("/v1/api-keys"))), StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_error(get("sk_test_nope"), StatusCode::UNAUTHORIZED, "invalid_api_key");
    let body = assert_error(get(&live), StatusCode::UNAUTHORIZED, "wrong_environment");
    assert!(body["message"].as_str().unwrap().contains("live key"));
    // Expired.
    app.clock.advance(Duration::seconds(31));
    assert_error(get(&expiring), StatusCode::UNAUTHORIZED, "expired_token");
    // Outside the IP allowlist; X-Forwarded-For cannot forge the socket address.
    let res = send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&fenced).header("x-forwarded-for", "10.1.1.1"));
    assert_error(res, StatusCode::FORBIDDEN, "forbidden");
    // Referrer.
    assert_error(get(&referred), StatusCode::FORBIDDEN, "forbidden");
    let res = send(
        app.client.get(app.url("/v1/api-keys")).bearer_auth(&referred).header("referer", "https://app.example.com/x"),
    );
    assert_eq!(res.0, 200);
    // X-CLIENT-ID: missing, another client's, the right one.
    let with_client = |c: Option<&str>| {
        let mut req = app.client.get(app.url("/v1/api-keys")).header("x-api-key", &bound);
        if let Some(c) = c {
            req = req.header("x-client-id", c);
        }
        send(req)
    };
    assert_error(with_client(None), StatusCode::UNAUTHORIZED, "client_id_mismatch");
    assert_error(with_client(Some(&other_client.id)), StatusCode::UNAUTHORIZED, "client_id_mismatch");
    assert_eq!(with_client(Some(&client.id)).0, 200);
    // An SDK token on a server route.
    let res = send(app.client.get(app.url("/v1/api-keys")).header("x-sdk-token", "sdk_test_abc"));
    assert_error(res, StatusCode::FORBIDDEN, "forbidden");

    // Who comes before what: a bad credential with a bad body is 401.
    let res = send(
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth("sk_test_nope")
            .header("content-type", "application/json")
            .body("{"),
    );
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key");
    // The same when only the database can tell (a revoked key).
    let (gone_id, gone) = make_key(&app, new_key(&admin, Mode::Test));
    apikeys::revoke(&mut app.conn(), &app.clock, &gone_id, Actor::Cli).unwrap();
    let res = send(
        app.client.post(app.url("/v1/api-keys")).bearer_auth(&gone).header("content-type", "text/plain").body("{"),
    );
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key");
    // Bad bodies.
    let post = |body: reqwest::blocking::RequestBuilder| send(body.bearer_auth(&good));
    let url = app.url("/v1/api-keys");
    assert_error(
        post(app.client.post(&url).json(&json!({ "name": "x", "permissions": ["fly"] }))),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        post(app.client.post(&url).json(&json!({ "name": "x".repeat(101) }))),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        post(app.client.post(&url).json(&json!({ "name": "x", "restrictions": { "ips": ["nope"] } }))),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        post(app.client.post(&url).json(&json!({ "name": "x", "bogus": 1 }))),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let res = post(app.client.post(&url).header("content-type", "application/json").body("{\"name\": "));
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_json");
    let huge = json!({ "name": "x", "restrictions": { "referrers": vec!["a".repeat(1000); 100] } });
    assert_eq!(post(app.client.post(&url).json(&huge)).0, StatusCode::PAYLOAD_TOO_LARGE);

    // A member cannot see or touch another member's keys.
    let bea = app.person("bea@example.com");
    let bea_id = user_id(&app, &bea.email);
    let (bea_key_id, _) = make_key(&app, new_key(&bea_id, Mode::Test));
    let (_, cem) = {
        let cem = app.person("cem@example.com");
        make_key(&app, new_key(&user_id(&app, &cem.email), Mode::Test))
    };
    let path = format!("/v1/api-keys/{bea_key_id}");
    let body = assert_error(
        send(app.client.get(app.url(&path)).bearer_auth(&cem)),
        StatusCode::NOT_FOUND,
        "api_key_not_found",
    );
    assert!(!body.to_string().contains(&bea_id));
    assert_error(send(app.client.delete(app.url(&path)).bearer_auth(&cem)), StatusCode::NOT_FOUND, "api_key_not_found");
    let res = send(app.client.get(app.url(&format!("/v1/api-keys?owner_id={bea_id}"))).bearer_auth(&cem));
    assert_error(res, StatusCode::FORBIDDEN, "forbidden");
    // The admin may.
    assert_eq!(send(app.client.get(app.url(&path)).bearer_auth(&good)).0, 200);

    // Nothing that failed changed a stored key.
    let after: Vec<_> = stored(&app).into_iter().filter(|(id, _, _)| before.iter().any(|(b, _, _)| b == id)).collect();
    assert_eq!(after, before);
}

fn production_refuses_test_keys(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.environment = Environment::Production).start();
    let admin = user_id(&app, "admin@localhost");
    let (_, test) = make_key(&app, new_key(&admin, Mode::Test));
    let (_, live) = make_key(&app, new_key(&admin, Mode::Live));
    let body = assert_error(
        send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&test)),
        StatusCode::UNAUTHORIZED,
        "wrong_environment",
    );
    assert!(body["message"].as_str().unwrap().contains("test key"));
    assert_eq!(send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&live)).0, 200);
}

fn access_tokens_map_scopes_onto_permissions(backend: Backend) {
    let app = TestApp::start(backend);
    let web = app.web_client("read write");
    let oauth = app.oauth2_client(&web);
    let (url, _, verifier) = authorization_url(&oauth, &["read"]);
    let code_value = app.admin().approve(&app, &url);
    use oauth2::TokenResponse;
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    let access = token.access_token().secret().clone();
    assert_eq!(send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&access)).0, 200);
    let res = send(app.client.post(app.url("/v1/api-keys")).bearer_auth(&access).json(&json!({ "name": "x" })));
    assert_error(res, StatusCode::FORBIDDEN, "insufficient_scope");
    // A client credentials token acts for no person here.
    let cc = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let cc_token = app.cc_token(&cc, &[])["access_token"].as_str().unwrap().to_string();
    assert_error(
        send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&cc_token)),
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let _ = REDIRECT_URI;
}

fn microservices_verify_keys(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, root) = make_key(&app, new_key(&admin, Mode::Test));
    let bea = app.person("bea@example.com");
    let bea_id = user_id(&app, &bea.email);
    let mut narrow = new_key(&bea_id, Mode::Test);
    narrow.permissions = vec!["read".into()];
    narrow.allowed_ips = vec!["192.0.2.0/24".into()];
    narrow.allowed_endpoints = vec!["GET /orders/*".into()];
    let (narrow_id, narrow) = make_key(&app, narrow);
    let (_, live) = make_key(&app, new_key(&bea_id, Mode::Live));
    let (revoked_id, revoked) = make_key(&app, new_key(&bea_id, Mode::Test));
    apikeys::revoke(&mut app.conn(), &app.clock, &revoked_id, Actor::Cli).unwrap();
    let cem = app.person("cem@example.com");
    let (_, cem_key) = make_key(&app, new_key(&user_id(&app, &cem.email), Mode::Test));
    let before = stored(&app);

    let verify = |with: &str, body: Value| -> Value {
        let (status, v) = send(app.client.post(app.url("/v1/keys/verify")).bearer_auth(with).json(&body));
        assert_eq!(status, 200, "{v}");
        v
    };
    let ok = verify(
        &root,
        json!({ "key": narrow, "ip": "192.0.2.9", "method": "GET", "path": "/orders/7", "permissions": ["read"] }),
    );
    assert_eq!(ok["valid"], true, "{ok}");
    assert_eq!(ok["code"], "VALID");
    assert_eq!(ok["key_id"], narrow_id.as_str());
    assert_eq!(ok["owner"], bea_id.as_str());
    assert_eq!(ok["mode"], "test");
    assert_eq!(ok["permissions"], json!(["read"]));
    for (body, code) in [
        (json!({ "key": narrow, "ip": "203.0.113.1" }), "FORBIDDEN"),
        (json!({ "key": narrow, "ip": "192.0.2.9", "method": "DELETE", "path": "/orders/7" }), "FORBIDDEN"),
        (json!({ "key": narrow, "ip": "192.0.2.9", "permissions": ["write"] }), "INSUFFICIENT_PERMISSIONS"),
        (json!({ "key": revoked }), "REVOKED"),
        (json!({ "key": live }), "WRONG_ENVIRONMENT"),
        (json!({ "key": "sk_test_garbage" }), "NOT_FOUND"),
        (json!({ "key": format!("{narrow}\n") }), "NOT_FOUND"),
    ] {
        let v = verify(&root, body.clone());
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some(code)), "{body} → {v}");
    }
    // A member verifies its own keys, and learns nothing of others'.
    assert_eq!(verify(&cem_key, json!({ "key": cem_key }))["code"], "VALID");
    let hidden = verify(&cem_key, json!({ "key": narrow }));
    assert_eq!(
        hidden,
        json!({ "valid": false, "code": "NOT_FOUND", "key_id": null, "owner": null, "mode": null, "permissions": null, "ratelimit": null })
    );
    assert_eq!(verify(&cem_key, json!({ "key": revoked }))["code"], "NOT_FOUND");
    // Bad bodies and no credential.
    let res = send(app.client.post(app.url("/v1/keys/verify")).bearer_auth(&root).json(&json!({ "ip": "1.2.3.4" })));
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_json");
    let res = send(
        app.client.post(app.url("/v1/keys/verify")).bearer_auth(&root).json(&json!({ "key": narrow, "ip": "nope" })),
    );
    assert_error(res, StatusCode::BAD_REQUEST, "validation_error");
    let res = send(app.client.post(app.url("/v1/keys/verify")).json(&json!({ "key": narrow })));
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_eq!(stored(&app), before, "verification changes no key");
    // Verifications count against the verified key's own limit.
    let mut slow = new_key(&bea_id, Mode::Test);
    slow.rate_limit = Some(1);
    let (_, slow) = make_key(&app, slow);
    assert_eq!(verify(&root, json!({ "key": slow }))["code"], "VALID");
    let limited = verify(&root, json!({ "key": slow }));
    assert_eq!((limited["valid"].as_bool(), limited["code"].as_str()), (Some(false), Some("RATE_LIMITED")));
    // On the injected clock: a second later the key verifies again.
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(verify(&root, json!({ "key": slow }))["code"], "VALID");
}

fn rate_limits_and_last_used(backend: Backend) {
    // Frozen: the budgets below are per second, and a slow machine's wall
    // time must not refill them between two requests.
    let app = TestApp::builder(backend).with_frozen_clock().with_config(|c| c.ip_rate_limit = 3).start();
    let admin = user_id(&app, "admin@localhost");
    let mut slow = new_key(&admin, Mode::Test);
    slow.rate_limit = Some(1);
    let (slow_id, slow) = make_key(&app, slow);
    let get = |key: &str| app.client.get(app.url("/v1/api-keys")).bearer_auth(key).send().unwrap();
    assert_eq!(get(&slow).status(), 200);
    // Within the second that one request per second allows.
    let res = get(&slow);
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit-limit"], "1");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_eq!(res.headers()["ratelimit-reset"], "1");
    assert_eq!(res.json::<Value>().unwrap()["code"], "rate_limit_exceeded");

    // Failed authentications from one IP: 401 until the IP's budget is
    // spent, then 429 for the fourth and every one after.
    let codes: Vec<u16> = (0..5).map(|_| get("sk_test_wrong").status().as_u16()).collect();
    assert_eq!(codes, [401, 401, 401, 429, 429]);

    // last_used is written in the background, not by the request.
    let mut seen = None;
    for _ in 0..100 {
        seen = apikeys::find(&mut app.conn(), &slow_id).unwrap().unwrap().last_used;
        if seen.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.is_some(), "last_used recorded within a few seconds");
}

fn admins_read_the_audit_log(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, root) = make_key(&app, new_key(&admin, Mode::Test));
    let mut fenced = new_key(&admin, Mode::Test);
    fenced.allowed_ips = vec!["10.0.0.0/8".into()];
    let (fenced_id, fenced) = make_key(&app, fenced);
    assert_eq!(send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&fenced)).0, StatusCode::FORBIDDEN);
    // The refusal is audited off the request path.
    crate::support::eventually("the refusal is audited", || {
        let (status, body) = send(app.client.get(app.url("/v1/audit-events?limit=50")).bearer_auth(&root));
        assert_eq!(status, 200, "{body}");
        let actions: Vec<String> =
            body["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
        assert!(actions.iter().any(|a| a == "api_key.created"), "{actions:?}");
        actions.iter().any(|a| a == "api_key.forbidden_ip").then_some(())
    });
    // A failed authentication is recorded with its code, never the credential.
    assert_eq!(send(app.client.get(app.url("/v1/api-keys")).bearer_auth("sk_test_guess")).0, StatusCode::UNAUTHORIZED);
    // It is written in the background: wait for it (briefly).
    let mut body = Value::Null;
    for _ in 0..100 {
        body = send(app.client.get(app.url("/v1/audit-events?action=api.auth_failed")).bearer_auth(&root)).1;
        if !body["data"][0].is_null() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(body["data"][0]["details"]["code"], "invalid_api_key", "{body}");
    assert!(!body.to_string().contains("sk_test_guess"));
    assert!(!body.to_string().contains(&root) && !body.to_string().contains(&fenced), "no secret in the log");
    // By target: exactly what happened to that key, newest first.
    let (_, body) = send(app.client.get(app.url(&format!("/v1/audit-events?target={fenced_id}"))).bearer_auth(&root));
    let events = body["data"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [("api_key.forbidden_ip", fenced_id.as_str(), "system"), ("api_key.created", fenced_id.as_str(), "cli")],
        "{body}"
    );
    // By action: the one refusal, with the address it came from.
    let (_, body) = send(app.client.get(app.url("/v1/audit-events?action=api_key.forbidden_ip")).bearer_auth(&root));
    let events = body["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!((events[0]["target"].as_str(), events[0]["ip"].as_str()), (Some(fenced_id.as_str()), Some("127.0.0.1")));
    assert_error(
        send(app.client.get(app.url("/v1/audit-events?limit=0")).bearer_auth(&root)),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    // A member may not.
    let bea = app.person("bea@example.com");
    let (_, bea_key) = make_key(&app, new_key(&user_id(&app, &bea.email), Mode::Test));
    assert_error(
        send(app.client.get(app.url("/v1/audit-events")).bearer_auth(&bea_key)),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

fn users_over_v1(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, root) = make_key(&app, new_key(&admin, Mode::Test));
    let call = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut req = app.client.request(method, app.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req)
    };
    use reqwest::Method;
    let (status, body) = call(
        Method::POST,
        "/v1/users",
        &root,
        Some(json!({ "email": "Dee@Example.com", "name": "Dee", "password": "long enough pw" })),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dee = body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["email"], "dee@example.com");
    assert!(!body.to_string().contains("long enough pw") && !body.to_string().contains("argon2"));
    assert_error(
        call(
            Method::POST,
            "/v1/users",
            &root,
            Some(json!({ "email": "dee@example.com", "name": "D", "password": "long enough pw" })),
        ),
        StatusCode::CONFLICT,
        "email_taken",
    );
    assert_error(
        call(
            Method::POST,
            "/v1/users",
            &root,
            Some(json!({ "email": "x@example.com", "name": "X", "password": "short" })),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_password",
    );
    assert_eq!(call(Method::GET, &format!("/v1/users/{dee}"), &root, None).0, 200);

    // A member: sees and renames itself only; others read as not found.
    let (_, dee_key) = make_key(&app, new_key(&dee, Mode::Test));
    let (_, body) = call(Method::GET, "/v1/users", &dee_key, None);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let (status, body) = call(Method::PATCH, &format!("/v1/users/{dee}"), &dee_key, Some(json!({ "name": "Dee D." })));
    assert_eq!((status, body["data"]["name"].as_str()), (StatusCode::OK, Some("Dee D.")));
    assert_error(
        call(Method::GET, &format!("/v1/users/{admin}"), &dee_key, None),
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        call(Method::PATCH, &format!("/v1/users/{admin}"), &dee_key, Some(json!({ "name": "pwned" }))),
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        call(
            Method::POST,
            "/v1/users",
            &dee_key,
            Some(json!({ "email": "e@example.com", "name": "E", "password": "long enough pw" })),
        ),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        call(Method::DELETE, &format!("/v1/users/{admin}"), &dee_key, None),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        call(Method::PATCH, &format!("/v1/users/{dee}"), &dee_key, Some(json!({ "name": "" }))),
        StatusCode::BAD_REQUEST,
        "invalid_name",
    );
    assert_error(
        call(Method::PATCH, &format!("/v1/users/{dee}"), &dee_key, Some(json!({ "role": "admin" }))),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );

    // Disabling a user stops their keys at once.
    assert_error(
        call(Method::DELETE, &format!("/v1/users/{admin}"), &root, None),
        StatusCode::CONFLICT,
        "cannot_disable_self",
    );
    assert_eq!(call(Method::DELETE, &format!("/v1/users/{dee}"), &root, None).0, 200);
    assert_error(call(Method::GET, "/v1/users", &dee_key, None), StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_error(call(Method::DELETE, "/v1/users/usr_missing", &root, None), StatusCode::NOT_FOUND, "user_not_found");
}

fn clients_over_v1(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, root) = make_key(&app, new_key(&admin, Mode::Test));
    let bea = app.person("bea@example.com");
    let (_, bea_key) = make_key(&app, new_key(&user_id(&app, &bea.email), Mode::Test));
    use reqwest::Method;
    let call = |method: Method, path: &str, key: &str, body: Option<Value>| {
        let mut req = app.client.request(method, app.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req)
    };
    let (status, body) =
        call(Method::POST, "/v1/clients", &bea_key, Some(json!({ "name": "Bea's backend", "scope": "read" })));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["data"]["client_id"].as_str().unwrap().to_string();
    let secret = body["data"]["client_secret"].as_str().unwrap().to_string();
    let token = |secret: &str| {
        app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some((&id, secret))).status()
    };
    assert_eq!(token(&secret), 200);
    let (_, listed) = call(Method::GET, "/v1/clients", &bea_key, None);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&secret));

    let path = format!("/v1/clients/{id}");
    let (status, body) = call(
        Method::PATCH,
        &path,
        &bea_key,
        Some(json!({ "name": "Renamed", "redirect_uris": ["https://bea.example.com/cb"] })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "Renamed");
    assert_error(
        call(Method::PATCH, &path, &bea_key, Some(json!({ "redirect_uris": ["javascript:alert(1)"] }))),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        call(Method::POST, "/v1/clients", &bea_key, Some(json!({ "name": "X", "grant_types": ["password"] }))),
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_eq!(call(Method::GET, &path, &bea_key, None).1["data"]["name"], "Renamed", "a failed patch changed nothing");

    let (status, body) =
        call(Method::POST, &format!("{path}/rotate-secret"), &bea_key, Some(json!({ "expire_old_in": 0 })));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_secret = body["data"]["client_secret"].as_str().unwrap().to_string();
    assert_eq!(token(&secret), 401);
    assert_eq!(token(&new_secret), 200);

    // Someone else's client reads as not found; the admin sees it.
    let cem = app.person("cem@example.com");
    let (_, cem_key) = make_key(&app, new_key(&user_id(&app, &cem.email), Mode::Test));
    assert_error(call(Method::GET, &path, &cem_key, None), StatusCode::NOT_FOUND, "client_not_found");
    assert_error(call(Method::DELETE, &path, &cem_key, None), StatusCode::NOT_FOUND, "client_not_found");
    assert_eq!(call(Method::GET, &path, &root, None).0, 200);
    assert_eq!(call(Method::DELETE, &path, &bea_key, None).0, 200);
    assert_eq!(token(&new_secret), 401, "a disabled client cannot authenticate");
}

fn client_signed_jwts(backend: Backend) {
    use tessera::clock::Clock;
    use tessera::oauth::clients::{AuthMethod, NewClient};
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let svc = app.create_client(NewClient {
        name: "Orders service".into(),
        auth_method: Some(AuthMethod::ClientSecretJwt),
        scope: "read".into(),
        owner_id: Some(admin.clone()),
        ..NewClient::default()
    });
    let orphan = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    let now = app.clock.now().timestamp();
    let claims =
        |exp: i64| json!({ "iss": svc.id, "sub": "svc-orders", "aud": app.default_audience(), "iat": now, "exp": exp });
    let sign = |c: &Value, secret: &str| crate::support::oauth::hs256_assertion(secret, c);
    let get = |token: &str| send(app.client.get(app.url("/v1/api-keys")).bearer_auth(token));

    assert_eq!(get(&sign(&claims(now + 300), svc.secret())).0, 200);
    assert_eq!(get(&sign(&claims(now + 3600), svc.secret())).0, 200, "an hour ahead is allowed");
    let body = assert_error(get(&sign(&claims(now + 86_400), svc.secret())), StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(body["message"].as_str().unwrap().contains("too far ahead"));
    assert_error(get(&sign(&claims(now - 120), svc.secret())), StatusCode::UNAUTHORIZED, "invalid_token");
    let mut wrong_aud = claims(now + 300);
    wrong_aud["aud"] = json!("https://elsewhere.example.com");
    assert_error(get(&sign(&wrong_aud, svc.secret())), StatusCode::UNAUTHORIZED, "invalid_token");
    assert_error(
        get(&crate::support::oauth::unsigned_jwt(&claims(now + 300))),
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_error(get(&sign(&claims(now + 300), orphan.secret())), StatusCode::UNAUTHORIZED, "invalid_token");
    let mut no_iat = claims(now + 300);
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_error(get(&sign(&no_iat, svc.secret())), StatusCode::UNAUTHORIZED, "invalid_token");
    // A client without an owner has no one to act for.
    let mut orphan_claims = claims(now + 300);
    orphan_claims["iss"] = json!(orphan.id);
    assert_error(get(&sign(&orphan_claims, orphan.secret())), StatusCode::UNAUTHORIZED, "invalid_token");
    // Its scope limits it: read only.
    let res = send(
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(sign(&claims(now + 300), svc.secret()))
            .json(&json!({ "name": "x" })),
    );
    assert_error(res, StatusCode::FORBIDDEN, "insufficient_scope");
}

fn authmatech_rotation_routes(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = user_id(&app, "admin@localhost");
    let (_, root) = make_key(&app, new_key(&admin, Mode::Test));
    let bea = app.person("bea@example.com");
    let client = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let mut bound = new_key(&user_id(&app, &bea.email), Mode::Test);
    bound.client_id = Some(client.id.clone());
    let (_, raw) = make_key(&app, bound);
    let (_, unbound) = make_key(&app, new_key(&user_id(&app, &bea.email), Mode::Test));
    let rotate_own = |key: &str, secret: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/v1/api/me/api-key/rotate"))
            .header("x-api-key", key)
            .header("x-client-id", &client.id);
        if let Some(s) = secret {
            req = req.header("x-client-secret", s);
        }
        send(req)
    };
    assert_error(rotate_own(&raw, None), StatusCode::UNAUTHORIZED, "invalid_client_secret");
    assert_error(rotate_own(&raw, Some("wrong")), StatusCode::UNAUTHORIZED, "invalid_client_secret");
    let res = send(app.client.post(app.url("/v1/api/me/api-key/rotate")).bearer_auth(&unbound));
    assert_error(res, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = rotate_own(&raw, Some(client.secret()));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_raw = body["data"]["key"].as_str().unwrap().to_string();
    let new_id = body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["client_id"], client.id.as_str());
    // The old key ended at once (no grace asked for); the new one works.
    let get = |key: &str| {
        send(app.client.get(app.url("/v1/api-keys")).header("x-api-key", key).header("x-client-id", &client.id)).0
    };
    assert_eq!(get(&raw), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&new_raw), StatusCode::OK);

    // The admin route rotates the client's newest live key.
    let res = send(
        app.client
            .post(app.url("/v1/api/clients/rotate-key"))
            .bearer_auth(&root)
            .json(&json!({ "client_id": client.id, "expire_old_in": 60 })),
    );
    assert_eq!(res.0, StatusCode::CREATED, "{}", res.1);
    let successor = &res.1["data"];
    assert_eq!(successor["rotated_from"], new_id.as_str(), "the client's newest live key was rotated");
    assert_eq!(successor["client_id"], client.id.as_str());
    // The old key ends exactly the grace period after the rotation, which
    // is when its successor was made.
    let (_, old) = send(app.client.get(app.url(&format!("/v1/api-keys/{new_id}"))).bearer_auth(&root));
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(at(&old["data"]["expires_at"]) - at(&successor["created_at"]), Duration::seconds(60), "{old}");
    assert_eq!(get(&new_raw), StatusCode::OK, "within its grace period");
    let successor_raw = successor["key"].as_str().unwrap().to_string();
    assert_eq!(get(&successor_raw), StatusCode::OK);
    app.clock.advance(Duration::seconds(61));
    assert_eq!(get(&new_raw), StatusCode::UNAUTHORIZED, "the grace period is over");
    assert_eq!(get(&successor_raw), StatusCode::OK);
    let res = send(
        app.client
            .post(app.url("/v1/api/clients/rotate-key"))
            .bearer_auth(&unbound)
            .json(&json!({ "client_id": client.id })),
    );
    assert_error(res, StatusCode::FORBIDDEN, "forbidden");
    let res = send(
        app.client
            .post(app.url("/v1/api/clients/rotate-key"))
            .bearer_auth(&root)
            .json(&json!({ "client_id": "cl_none" })),
    );
    assert_error(res, StatusCode::NOT_FOUND, "api_key_not_found");
}

fn sdk_tokens_open_sessions_only(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let (_, bea_key) = make_key(&app, new_key(&user_id(&app, &bea.email), Mode::Test));
    let cem = app.person("cem@example.com");
    let (_, cem_key) = make_key(&app, new_key(&user_id(&app, &cem.email), Mode::Test));
    let (status, body) = send(app.client.post(app.url("/v1/sdk-tokens")).bearer_auth(&bea_key));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sdk = body["data"]["token"].as_str().unwrap().to_string();
    assert!(sdk.starts_with("sdk_test_"));

    // The browser opens a session with it…
    let (status, body) = send(
        app.client
            .post(app.url("/v1/api/sdk/session"))
            .header("x-sdk-token", &sdk)
            .header("origin", "https://shop.example.com"),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let session = body["data"]["session_id"].as_str().unwrap().to_string();
    // … and the owner's back end reads it with its API key; nobody else can.
    let path = format!("/v1/api/sdk/session/{session}");
    let (status, body) = send(app.client.get(app.url(&path)).bearer_auth(&bea_key));
    assert_eq!((status, body["data"]["origin"].as_str()), (StatusCode::OK, Some("https://shop.example.com")));
    assert_error(
        send(app.client.get(app.url(&path)).bearer_auth(&cem_key)),
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
    // An SDK token anywhere else is 403, with words saying what it is for.
    let body = assert_error(
        send(app.client.get(app.url(&path)).header("x-sdk-token", &sdk)),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert!(body["message"].as_str().unwrap().contains("/v1/api/sdk/session"));
    assert_error(
        send(app.client.get(app.url("/v1/api-keys")).header("x-sdk-token", &sdk)),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // A mangled token, none at all; the session expires.
    let last = if sdk.ends_with('x') { 'y' } else { 'x' };
    let mangled = format!("{}{last}", &sdk[..sdk.len() - 1]);
    assert_error(
        send(app.client.post(app.url("/v1/api/sdk/session")).header("x-sdk-token", &mangled)),
        StatusCode::UNAUTHORIZED,
        "invalid_sdk_token",
    );
    assert_error(send(app.client.post(app.url("/v1/api/sdk/session"))), StatusCode::UNAUTHORIZED, "invalid_sdk_token");
    app.clock.advance(Duration::seconds(601));
    assert_error(
        send(app.client.get(app.url(&path)).bearer_auth(&bea_key)),
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
}

/// A component schema of the document, by `$ref` or name.
fn component<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let name = reference.trim_start_matches("#/components/schemas/");
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "schema {name} is in the document");
    schema
}

/// Whether a property may be left out of an answer: its type admits
/// `null`, or it is unconstrained (`{}`, any JSON value).
fn nullable(schema: &Value) -> bool {
    let by_type = match &schema["type"] {
        Value::String(t) => t == "null",
        Value::Array(types) => types.iter().any(|t| t == "null"),
        _ => false,
    };
    let by_one_of = schema["oneOf"].as_array().is_some_and(|options| options.iter().any(|o| o["type"] == "null"));
    by_type || by_one_of || schema.as_object().is_some_and(|o| o.is_empty() || o.keys().all(|k| k == "description"))
}

/// Every `$ref` a schema reaches (through properties, items, oneOf).
fn references(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                out.push(r.to_string());
            }
            o.values().for_each(|v| references(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Whether `value` is what `schema` describes: types, enums, required
/// properties and nested schemas, as far as the `/v1` document uses JSON
/// Schema. The error names where the value departs from the document.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return conforms(doc, component(doc, r), value, at);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let errors: Vec<String> = options.iter().filter_map(|o| conforms(doc, o, value, at).err()).collect();
        return if errors.len() < options.len() { Ok(()) } else { Err(errors.join("; ")) };
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fits = allowed.contains(&kind) || (kind == "integer" && allowed.contains(&"number"));
    if !allowed.is_empty() && !fits {
        return Err(format!("{at} is {kind}, documented as {allowed:?}: {value}"));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at} = {value} is not one of {options:?}"));
    }
    match value {
        Value::Object(o) => {
            for field in schema["required"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap_or_default();
                if !o.contains_key(field) {
                    return Err(format!("{at}.{field} is required by the document but missing: {value}"));
                }
            }
            let properties = schema["properties"].as_object();
            for (name, v) in o {
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => conforms(doc, s, v, &format!("{at}.{name}"))?,
                    None if schema["additionalProperties"] == false => {
                        return Err(format!("{at}.{name} is not in the document"));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) if schema.get("items").is_some() => {
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The document's word on one real answer: its status is documented for
/// the operation, and its body is what that response's schema describes.
fn documented(doc: &Value, method: &str, template: &str, status: StatusCode, body: &Value) -> Result<(), String> {
    let operation = &doc["paths"][template][method.to_lowercase()];
    let response = &operation["responses"][status.as_str()];
    if response.is_null() {
        return Err(format!("{method} {template} answered {status}, which the document does not list: {body}"));
    }
    let schema = &response["content"]["application/json"]["schema"];
    conforms(doc, schema, body, &format!("{method} {template} {status}: $"))
}

/// Every schema an answer of the document can use lists its required
/// fields: at least one, each a property, and every property that cannot
/// be null among them.
fn answer_schemas_list_their_required_fields(doc: &Value) {
    let mut pending = Vec::new();
    for operations in doc["paths"].as_object().unwrap().values() {
        for operation in operations.as_object().unwrap().values() {
            references(&operation["responses"], &mut pending);
        }
    }
    assert!(!pending.is_empty(), "the answers refer to component schemas");
    let mut seen: Vec<String> = Vec::new();
    while let Some(reference) = pending.pop() {
        if seen.contains(&reference) {
            continue;
        }
        seen.push(reference.clone());
        let schema = component(doc, &reference);
        references(schema, &mut pending);
        let Some(properties) = schema["properties"].as_object() else { continue };
        let required: Vec<&str> =
            schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert!(!required.is_empty(), "{reference} lists no required fields: {schema}");
        for field in &required {
            assert!(properties.contains_key(*field), "{reference} requires {field}, which it does not describe");
        }
        for (name, property) in properties {
            assert!(
                nullable(property) || required.contains(&name.as_str()),
                "{reference}.{name} cannot be null, so it must be required: {schema}"
            );
        }
    }
    for expected in ["ApiKey", "ApiKeyWithSecret", "Restrictions", "EndpointRule", "ErrorBody", "Verdict", "Envelope"] {
        assert!(seen.iter().any(|s| s.ends_with(&format!("/{expected}"))), "{expected} was checked: {seen:?}");
    }
    // Request schemas: what they require, they describe.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap();
            assert!(schema["properties"].get(field).is_some(), "{name} requires {field}, which it does not describe");
        }
    }
}

/// Calls `/v1` and returns the status and JSON body.
struct V1<'a> {
    app: &'a TestApp,
}

impl V1<'_> {
    fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.app.client.request(method.parse().unwrap(), self.app.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req)
    }
}

fn openapi_matches_the_real_api(backend: Backend) {
    // Every route is called once without a credential: room for that.
    let app = TestApp::builder(backend).with_config(|c| c.ip_rate_limit = 1000).start();
    let doc: Value = app.get("/openapi.json").json().unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let routes = [
        ("/v1/api-keys", "get"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys/{id}", "get"),
        ("/v1/api-keys/{id}", "delete"),
        ("/v1/api-keys/{id}/rotate", "post"),
        ("/v1/keys/verify", "post"),
        ("/v1/api/me/api-key/rotate", "post"),
        ("/v1/api/clients/rotate-key", "post"),
        ("/v1/me", "get"),
        ("/v1/users", "get"),
        ("/v1/users", "post"),
        ("/v1/users/{id}", "get"),
        ("/v1/users/{id}", "patch"),
        ("/v1/users/{id}", "delete"),
        ("/v1/clients", "get"),
        ("/v1/clients", "post"),
        ("/v1/clients/{id}", "get"),
        ("/v1/clients/{id}", "patch"),
        ("/v1/clients/{id}", "delete"),
        ("/v1/clients/{id}/rotate-secret", "post"),
        ("/v1/audit-events", "get"),
        ("/v1/sdk-tokens", "get"),
        ("/v1/sdk-tokens", "post"),
        ("/v1/sdk-tokens/{id}", "delete"),
        ("/v1/api/sdk/session", "post"),
        ("/v1/api/sdk/session/{id}", "get"),
    ];
    for (path, method) in routes {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is documented");
        // And it exists: without a credential it is refused, not missing,
        // with the documented error body.
        let (status, body) = V1 { app: &app }.call(&method.to_uppercase(), &path.replace("{id}", "x"), None, None);
        assert!(status == 401 || status == 403, "{method} {path}: {status}");
        documented(&doc, method, path, status, &body).unwrap();
    }
    let documented_operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented_operations, routes.len(), "every documented operation is in the list above");
    answer_schemas_list_their_required_fields(&doc);

    // Real answers, good and bad, carry what the document says for their
    // status, down to nested objects.
    let v1 = V1 { app: &app };
    let root = app.root_key();
    let bea = app.person("bea@example.com");
    let bea_id = app.user_id(&bea.email);
    let (_, bea_key, _) = app.create_key(&root, json!({ "name": "Bea's", "owner_id": bea_id }));
    let check = |method: &str, template: &str, (status, body): (StatusCode, Value)| -> Value {
        documented(&doc, method, template, status, &body).unwrap_or_else(|e| panic!("{e}"));
        body
    };

    let created = check(
        "POST",
        "/v1/api-keys",
        v1.call(
            "POST",
            "/v1/api-keys",
            Some(&root),
            Some(json!({ "name": "doc", "restrictions": { "endpoints": ["GET /v1/api-keys/*"], "ips": ["10.0.0.0/8"] } })),
        ),
    );
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["data"]["restrictions"]["endpoints"][0]["method"], "GET", "nested schemas were checked");
    check("POST", "/v1/api-keys", v1.call("POST", "/v1/api-keys", Some(&root), Some(json!({ "name": "" }))));
    let forbidden = v1.call("POST", "/v1/api-keys", Some(&bea_key), Some(json!({ "name": "x", "owner_id": "usr_x" })));
    assert_eq!(check("POST", "/v1/api-keys", forbidden)["code"], "forbidden");
    let listed = check("GET", "/v1/api-keys", v1.call("GET", "/v1/api-keys", Some(&root), None));
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "the root key and the one above");
    check("GET", "/v1/api-keys", v1.call("GET", "/v1/api-keys?owner_id=usr_x", Some(&bea_key), None));
    // Every list's pages, and its refusals of a bad page, as documented.
    for list in ["/v1/api-keys", "/v1/clients", "/v1/users", "/v1/audit-events", "/v1/sdk-tokens"] {
        let page = check("GET", list, v1.call("GET", &format!("{list}?limit=1"), Some(&root), None));
        assert!(page["has_more"].is_boolean(), "{list}: {page}");
        check("GET", list, v1.call("GET", &format!("{list}?limit=101"), Some(&root), None));
        check("GET", list, v1.call("GET", &format!("{list}?starting_after=nothing"), Some(&root), None));
    }
    check("GET", "/v1/api-keys/{id}", v1.call("GET", &format!("/v1/api-keys/{id}"), Some(&root), None));
    check("GET", "/v1/api-keys/{id}", v1.call("GET", "/v1/api-keys/key_none", Some(&root), None));
    let rotated = check(
        "POST",
        "/v1/api-keys/{id}/rotate",
        v1.call("POST", &format!("/v1/api-keys/{id}/rotate"), Some(&root), None),
    );
    let successor = rotated["data"]["id"].as_str().unwrap().to_string();
    check("POST", "/v1/api-keys/{id}/rotate", v1.call("POST", "/v1/api-keys/key_none/rotate", Some(&root), None));
    let path = format!("/v1/api-keys/{successor}");
    let message = check("DELETE", "/v1/api-keys/{id}", v1.call("DELETE", &path, Some(&root), None));
    assert_eq!(message["success"], true);
    let again = check("DELETE", "/v1/api-keys/{id}", v1.call("DELETE", &path, Some(&root), None));
    assert_eq!(again["code"], "already_revoked");
    check("DELETE", "/v1/api-keys/{id}", v1.call("DELETE", "/v1/api-keys/key_none", Some(&root), None));

    let valid =
        check("POST", "/v1/keys/verify", v1.call("POST", "/v1/keys/verify", Some(&root), Some(json!({ "key": root }))));
    assert_eq!(valid["valid"], true);
    let invalid =
        check("POST", "/v1/keys/verify", v1.call("POST", "/v1/keys/verify", Some(&root), Some(json!({ "key": "x" }))));
    assert_eq!(invalid["valid"], false);
    check("POST", "/v1/keys/verify", v1.call("POST", "/v1/keys/verify", Some(&root), Some(json!({ "ip": "1.2.3.4" }))));

    // A client of the admin's, a key bound to it, and the Authmatech routes.
    let (status, client) =
        v1.call("POST", "/v1/clients", Some(&root), Some(json!({ "name": "Documented", "scope": "read" })));
    check("POST", "/v1/clients", (status, client.clone()));
    let client_id = client["data"]["client_id"].as_str().unwrap().to_string();
    let secret = client["data"]["client_secret"].as_str().unwrap().to_string();
    let (_, bound, _) = app.create_key(&root, json!({ "name": "Bound", "client_id": client_id }));
    let rotate_own = |key: &str, secret: &str| {
        send(
            app.client
                .post(app.url("/v1/api/me/api-key/rotate"))
                .header("x-api-key", key)
                .header("x-client-id", &client_id)
                .header("x-client-secret", secret),
        )
    };
    check("POST", "/v1/api/me/api-key/rotate", rotate_own(&bound, "wrong"));
    check("POST", "/v1/api/me/api-key/rotate", rotate_own(&bound, &secret));
    check("POST", "/v1/api/me/api-key/rotate", v1.call("POST", "/v1/api/me/api-key/rotate", Some(&root), None));
    let body = Some(json!({ "client_id": client_id }));
    check(
        "POST",
        "/v1/api/clients/rotate-key",
        v1.call("POST", "/v1/api/clients/rotate-key", Some(&root), body.clone()),
    );
    check("POST", "/v1/api/clients/rotate-key", v1.call("POST", "/v1/api/clients/rotate-key", Some(&bea_key), body));
    let none = Some(json!({ "client_id": "cl_none" }));
    check("POST", "/v1/api/clients/rotate-key", v1.call("POST", "/v1/api/clients/rotate-key", Some(&root), none));

    // Clients, users, audit and SDK answers whose `data` is one object.
    let client_path = format!("/v1/clients/{client_id}");
    check("GET", "/v1/clients/{id}", v1.call("GET", &client_path, Some(&root), None));
    check("GET", "/v1/clients/{id}", v1.call("GET", &client_path, Some(&bea_key), None));
    check("PATCH", "/v1/clients/{id}", v1.call("PATCH", &client_path, Some(&root), Some(json!({ "name": "Renamed" }))));
    let bad = Some(json!({ "redirect_uris": ["javascript:alert(1)"] }));
    check("PATCH", "/v1/clients/{id}", v1.call("PATCH", &client_path, Some(&root), bad));
    let rotate_secret = format!("{client_path}/rotate-secret");
    check("POST", "/v1/clients/{id}/rotate-secret", v1.call("POST", &rotate_secret, Some(&root), None));
    check(
        "POST",
        "/v1/clients/{id}/rotate-secret",
        v1.call("POST", "/v1/clients/cl_none/rotate-secret", Some(&root), None),
    );
    check("POST", "/v1/clients", v1.call("POST", "/v1/clients", Some(&root), Some(json!({ "name": "" }))));
    check("DELETE", "/v1/clients/{id}", v1.call("DELETE", &client_path, Some(&root), None));
    check("DELETE", "/v1/clients/{id}", v1.call("DELETE", "/v1/clients/cl_none", Some(&root), None));
    let user = json!({ "email": "dee@example.com", "name": "Dee", "password": "long enough pw" });
    let (status, dee) = v1.call("POST", "/v1/users", Some(&root), Some(user.clone()));
    check("POST", "/v1/users", (status, dee.clone()));
    let dee_path = format!("/v1/users/{}", dee["data"]["id"].as_str().unwrap());
    check("POST", "/v1/users", v1.call("POST", "/v1/users", Some(&root), Some(user.clone())));
    check("POST", "/v1/users", v1.call("POST", "/v1/users", Some(&bea_key), Some(user)));
    check("GET", "/v1/users/{id}", v1.call("GET", &dee_path, Some(&root), None));
    check("GET", "/v1/users/{id}", v1.call("GET", &dee_path, Some(&bea_key), None));
    check("PATCH", "/v1/users/{id}", v1.call("PATCH", &dee_path, Some(&root), Some(json!({ "name": "Dee D." }))));
    check("DELETE", "/v1/users/{id}", v1.call("DELETE", &dee_path, Some(&root), None));
    check("DELETE", "/v1/users/{id}", v1.call("DELETE", "/v1/users/usr_none", Some(&root), None));
    check("GET", "/v1/audit-events", v1.call("GET", "/v1/audit-events?limit=0", Some(&root), None));
    check("GET", "/v1/audit-events", v1.call("GET", "/v1/audit-events", Some(&bea_key), None));
    let (status, sdk) = v1.call("POST", "/v1/sdk-tokens", Some(&bea_key), None);
    check("POST", "/v1/sdk-tokens", (status, sdk.clone()));
    let token = sdk["data"]["token"].as_str().unwrap().to_string();
    let open = |t: &str| send(app.client.post(app.url("/v1/api/sdk/session")).header("x-sdk-token", t));
    let session = check("POST", "/v1/api/sdk/session", open(&token));
    check("POST", "/v1/api/sdk/session", open("sdk_test_nope"));
    let session_path = format!("/v1/api/sdk/session/{}", session["data"]["session_id"].as_str().unwrap());
    check("GET", "/v1/api/sdk/session/{id}", v1.call("GET", &session_path, Some(&bea_key), None));
    check("GET", "/v1/api/sdk/session/{id}", v1.call("GET", &session_path, Some(&root), None));
    check("GET", "/v1/api/sdk/session/{id}", v1.call("GET", "/v1/api/sdk/session/sess_none", Some(&root), None));
}

/// Answers the document gets wrong today; `openapi_matches_the_real_api`
/// covers everything else.
fn openapi_documents_every_answer(backend: Backend) {
    let app = TestApp::start(backend);
    let doc: Value = app.get("/openapi.json").json().unwrap();
    let v1 = V1 { app: &app };
    let root = app.root_key();
    let admin = app.user_id("admin@localhost");
    let (_, client) = v1.call("POST", "/v1/clients", Some(&root), Some(json!({ "name": "Doc", "scope": "read" })));
    let client_path = format!("/v1/clients/{}", client["data"]["client_id"].as_str().unwrap());
    let (key_id, _, _) = app.create_key(&root, json!({ "name": "doc" }));
    let mut gaps = Vec::new();
    let mut expect = |method: &str, template: &str, answer: (StatusCode, Value)| {
        if let Err(e) = documented(&doc, method, template, answer.0, &answer.1) {
            gaps.push(e);
        }
    };
    // Lists: `data` is an array, documented as an object (Envelope).
    expect("GET", "/v1/users", v1.call("GET", "/v1/users", Some(&root), None));
    expect("GET", "/v1/clients", v1.call("GET", "/v1/clients", Some(&root), None));
    expect("GET", "/v1/audit-events", v1.call("GET", "/v1/audit-events", Some(&root), None));
    // Statuses the handlers answer that their operations do not list.
    expect("DELETE", "/v1/users/{id}", v1.call("DELETE", &format!("/v1/users/{admin}"), Some(&root), None));
    let unnamed = Some(json!({ "name": "" }));
    expect("PATCH", "/v1/users/{id}", v1.call("PATCH", &format!("/v1/users/{admin}"), Some(&root), unnamed));
    let too_long = Some(json!({ "expire_old_in": 31 * 24 * 3600 }));
    let rotate = format!("/v1/api-keys/{key_id}/rotate");
    expect("POST", "/v1/api-keys/{id}/rotate", v1.call("POST", &rotate, Some(&root), too_long.clone()));
    let rotate_secret = format!("{client_path}/rotate-secret");
    expect("POST", "/v1/clients/{id}/rotate-secret", v1.call("POST", &rotate_secret, Some(&root), too_long));
    assert!(gaps.is_empty(), "the OpenAPI document disagrees with the API:\n{}", gaps.join("\n"));
}

/// What a rotation must carry over to the successor.
fn settings_of(key: &Value) -> Value {
    let fields =
        ["name", "type", "mode", "owner_id", "client_id", "permissions", "restrictions", "rate_limit", "expires_at"];
    Value::Object(fields.iter().map(|f| (f.to_string(), key[*f].clone())).collect())
}

/// Every rotation route hands the successor the old key's restrictions
/// (IPs, referrers, endpoints), rate limit, client binding, permissions
/// and expiry, and the server enforces them on it, not only shows them.
fn a_rotated_key_keeps_its_restrictions(backend: Backend) {
    // Frozen: the key's budget of 2 per second is part of what is checked.
    let app = TestApp::builder(backend)
        .with_frozen_clock()
        .with_config(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
        .start();
    let root = app.root_key();
    let (status, body) = send(
        app.client
            .post(app.url("/v1/clients"))
            .bearer_auth(&root)
            .json(&json!({ "name": "Bound app", "scope": "read" })),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client_id = body["data"]["client_id"].as_str().unwrap().to_string();
    let client_secret = body["data"]["client_secret"].as_str().unwrap().to_string();
    let (first_id, first_raw, created) = app.create_key(
        &root,
        json!({
            "name": "Fenced",
            "type": "restricted",
            "permissions": ["read", "write"],
            "client_id": client_id,
            "rate_limit": 2,
            "expires_in": 86_400,
            "restrictions": {
                "ips": ["10.0.0.0/8", "2001:db8::/32"],
                "referrers": ["https://app.example.com", "*.example.org"],
                "endpoints": ["GET /v1/api-keys/*", "DELETE /v1/api-keys/*", "POST /v1/api/me/api-key/rotate"],
            },
        }),
    );
    let original = settings_of(&created["data"]);
    assert_eq!(original["restrictions"]["ips"], json!(["10.0.0.0/8", "2001:db8::/32"]), "{created}");

    // A call as the key's legitimate user makes it, with every header right
    // unless the test changes one.
    struct Call<'a> {
        method: reqwest::Method,
        path: String,
        client: Option<&'a str>,
        ip: &'a str,
        referrer: &'a str,
    }
    let call = |raw: &str, c: Call| {
        let mut req = app
            .client
            .request(c.method, app.url(&c.path))
            .header("x-api-key", raw)
            .header("x-forwarded-for", c.ip)
            .header("referer", c.referrer);
        if let Some(client) = c.client {
            req = req.header("x-client-id", client);
        }
        send(req)
    };
    let good = |id: &str| Call {
        method: reqwest::Method::GET,
        path: format!("/v1/api-keys/{id}"),
        client: Some(&client_id),
        ip: "10.1.2.3",
        referrer: "https://shop.example.org/cart",
    };
    // Checks the restrictions on `raw`, spending exactly its budget of 2.
    let enforced = |raw: &str, id: &str| {
        let (status, body) = call(raw, good(id));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["id"], id);
        let refusals = [
            (Call { ip: "203.0.113.5", ..good(id) }, StatusCode::FORBIDDEN, "forbidden"),
            (Call { referrer: "https://evil.example.net/", ..good(id) }, StatusCode::FORBIDDEN, "forbidden"),
            (Call { path: "/v1/users".into(), ..good(id) }, StatusCode::FORBIDDEN, "insufficient_scope"),
            (Call { client: None, ..good(id) }, StatusCode::UNAUTHORIZED, "client_id_mismatch"),
            (Call { client: Some("cl_another"), ..good(id) }, StatusCode::UNAUTHORIZED, "client_id_mismatch"),
        ];
        for (c, status, code) in refusals {
            assert_error(call(raw, c), status, code);
        }
        // An allowed endpoint whose method needs a permission the key lacks
        // (delete); this one counts against the budget.
        let body = assert_error(
            call(raw, Call { method: reqwest::Method::DELETE, ..good(id) }),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        );
        assert!(body["message"].as_str().unwrap().contains("delete"), "{body}");
        // Two counted requests: the budget of 2 per second is spent.
        let res = app
            .client
            .get(app.url(&format!("/v1/api-keys/{id}")))
            .header("x-api-key", raw)
            .header("x-client-id", &client_id)
            .header("x-forwarded-for", "10.1.2.3")
            .header("referer", "https://app.example.com/")
            .send()
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["ratelimit-limit"], "2");
        // The next checks start with a full budget.
        app.clock.advance(Duration::seconds(1));
    };
    enforced(&first_raw, &first_id);

    // 1. `POST /v1/api-keys/{id}/rotate`, by an admin.
    let (status, body) =
        send(app.client.post(app.url(&format!("/v1/api-keys/{first_id}/rotate"))).bearer_auth(&root).json(&json!({})));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (second_id, second_raw) =
        (body["data"]["id"].as_str().unwrap().to_string(), body["data"]["key"].as_str().unwrap().to_string());
    assert_eq!(body["data"]["rotated_from"], first_id.as_str());
    assert_eq!(settings_of(&body["data"]), original, "the successor as shown once");
    enforced(&second_raw, &second_id);

    // 2. The key rotates itself (Authmatech), proving its client.
    let res = app
        .client
        .post(app.url("/v1/api/me/api-key/rotate"))
        .header("x-api-key", &second_raw)
        .header("x-client-id", &client_id)
        .header("x-client-secret", &client_secret)
        .header("x-forwarded-for", "10.1.2.3")
        .header("referer", "https://app.example.com/")
        .send()
        .unwrap();
    let (status, body) = (res.status(), res.json::<Value>().unwrap());
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (third_id, third_raw) =
        (body["data"]["id"].as_str().unwrap().to_string(), body["data"]["key"].as_str().unwrap().to_string());
    assert_eq!(body["data"]["rotated_from"], second_id.as_str());
    assert_eq!(settings_of(&body["data"]), original);
    app.clock.advance(Duration::seconds(1));
    enforced(&third_raw, &third_id);

    // 3. An admin rotates the client's newest key.
    let res = send(
        app.client
            .post(app.url("/v1/api/clients/rotate-key"))
            .bearer_auth(&root)
            .json(&json!({ "client_id": client_id })),
    );
    assert_eq!(res.0, StatusCode::CREATED, "{}", res.1);
    let (fourth_id, fourth_raw) =
        (res.1["data"]["id"].as_str().unwrap().to_string(), res.1["data"]["key"].as_str().unwrap().to_string());
    assert_eq!(res.1["data"]["rotated_from"], third_id.as_str());
    assert_eq!(settings_of(&res.1["data"]), original);
    enforced(&fourth_raw, &fourth_id);

    // What is stored agrees with what was shown (a rotated-out key's expiry
    // is the moment it was rotated); each predecessor ended.
    let (_, listed) = send(app.client.get(app.url("/v1/api-keys")).bearer_auth(&root));
    let stored = |id: &str| listed["data"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap().clone();
    assert_eq!(settings_of(&stored(&fourth_id)), original);
    for id in [&second_id, &third_id] {
        let (mut was, mut is) = (original.clone(), settings_of(&stored(id)));
        was["expires_at"] = Value::Null;
        is["expires_at"] = Value::Null;
        assert_eq!(is, was, "{id}");
    }
    for raw in [&first_raw, &second_raw, &third_raw] {
        let (status, _) = call(raw, good(&fourth_id));
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a rotated-out key no longer works");
    }
}

fn trusted_proxies_decide_the_client_ip(backend: Backend) {
    let app =
        TestApp::builder(backend).with_config(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).start();
    let admin = user_id(&app, "admin@localhost");
    let mut fenced = new_key(&admin, Mode::Test);
    fenced.allowed_ips = vec!["10.0.0.0/8".into()];
    let (_, fenced) = make_key(&app, fenced);
    let get = |xff: Option<&str>| {
        let mut req = app.client.get(app.url("/v1/api-keys")).bearer_auth(&fenced);
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        req.send().unwrap().status()
    };
    // The socket peer (127.0.0.1) is a trusted proxy: the header counts.
    assert_eq!(get(Some("10.1.1.1")), 200);
    assert_eq!(get(Some("203.0.113.9, 10.1.1.1")), 200, "the nearest untrusted hop is the client");
    assert_eq!(get(Some("10.1.1.1, 203.0.113.9")), 403, "a forged left-most entry does not help");
    assert_eq!(get(None), 403);
    // A proxy that appends a line of its own (HAProxy): the last line
    // counts, not the client's first one; and unreadable bytes a client
    // wrote on the left hide nothing the proxy added on the right.
    let lines = |values: &[&[u8]]| {
        let mut headers = reqwest::header::HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", reqwest::header::HeaderValue::from_bytes(v).unwrap());
        }
        app.client.get(app.url("/v1/api-keys")).bearer_auth(&fenced).headers(headers).send().unwrap().status()
    };
    assert_eq!(lines(&[b"10.1.1.1", b"203.0.113.9"]), 403, "a forged first line does not help");
    assert_eq!(lines(&[b"203.0.113.9", b"10.1.1.1"]), 200);
    assert_eq!(lines(&[b"\xff\xfe, 10.1.1.1"]), 200, "the proxy's entry is read past the client's bytes");
}

both_backends!(
    a_rotated_key_keeps_its_restrictions,
    trusted_proxies_decide_the_client_ip,
    openapi_matches_the_real_api,
    openapi_documents_every_answer,
    sdk_tokens_open_sessions_only,
    authmatech_rotation_routes,
    client_signed_jwts,
    clients_over_v1,
    users_over_v1,
    admins_read_the_audit_log,
    rate_limits_and_last_used,
    microservices_verify_keys,
    key_lifecycle_over_http,
    bad_keys_and_bad_input_change_nothing,
    production_refuses_test_keys,
    access_tokens_map_scopes_onto_permissions,
);
