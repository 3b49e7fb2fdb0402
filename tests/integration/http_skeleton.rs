//! The HTTP skeleton: health, request ids, security headers, body limit,
//! the `/v1` error shape, pages.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::both_backends;
use crate::support::{Backend, TestApp};

fn assert_v1_error(body: &Value, error: &str, code: &str, request_id: &str) {
    let obj = body.as_object().expect("error body is an object");
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "error", "message", "request_id", "success"], "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(body["request_id"], request_id);
}

fn request_id(headers: &HeaderMap) -> String {
    headers.get("x-request-id").expect("X-Request-Id on every response").to_str().unwrap().to_string()
}

fn healthz_and_readyz_answer(backend: Backend) {
    let app = TestApp::start(backend);
    let res = app.get("/healthz");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().unwrap()["status"], "ok");
    let res = app.get("/readyz");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().unwrap()["database"], "ok");
}

fn first_start_creates_one_admin(backend: Backend) {
    let app = TestApp::start(backend);
    let (email, password) = app.first_admin.clone().expect("first start makes an admin");
    assert_eq!(email, "admin@localhost");
    assert!(password.len() >= 43, "a 256-bit password");
    let row = tessera::store::users::find_by_email(&mut app.conn(), &email).unwrap().unwrap();
    assert_eq!(row.role, tessera::domain::Role::Admin);
    assert!(tessera::accounts::verify_password(&password, &row.password_hash));
    // A second start on the same database makes no second admin.
    let again = tessera::server::prepare(app.config.clone(), std::sync::Arc::new(app.clock.clone()))
        .map(|p| p.first_admin.is_some());
    assert!(matches!(again, Ok(false)));
    assert_eq!(tessera::store::users::list(&mut app.conn()).unwrap().len(), 1);
}

fn request_ids_are_made_kept_or_replaced(backend: Backend) {
    let app = TestApp::start(backend);
    let made = request_id(app.get("/healthz").headers());
    assert!(made.starts_with("req_") && made.len() >= 20, "{made}");
    assert_ne!(made, request_id(app.get("/healthz").headers()), "ids are unique");

    let kept = app.client.get(app.url("/healthz")).header("X-Request-Id", "trace-0123.abc_DEF").send().unwrap();
    assert_eq!(request_id(kept.headers()), "trace-0123.abc_DEF");

    let long = "x".repeat(500);
    let hostile: [&[u8]; 5] =
        [b"<script>alert(1)</script>", b"a b", long.as_bytes(), b"../../etc/passwd", "caf\u{e9}".as_bytes()];
    for hostile in hostile {
        let value = reqwest::header::HeaderValue::from_bytes(hostile).unwrap();
        let res = app.client.get(app.url("/healthz")).header("X-Request-Id", value).send().unwrap();
        let id = request_id(res.headers());
        assert!(id.starts_with("req_"), "{hostile:?} must be replaced, got {id}");
    }
}

fn security_headers_on_every_response(backend: Backend) {
    let app = TestApp::start(backend);
    for path in ["/", "/healthz", "/readyz", "/nowhere", "/v1/nothing"] {
        let res = app.get(path);
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    }
    let css = app.get("/static/style.css");
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
    assert_ne!(css.headers()["cache-control"], "no-store", "static files may be cached");
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

fn oversized_body_is_413_and_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend);
    let users_before = tessera::store::users::list(&mut app.conn()).unwrap();
    let big = vec![b'a'; app.config.body_limit + 1];
    for path in ["/v1/api-keys", "/healthz", "/oauth/token"] {
        let res =
            app.client.post(app.url(path)).header("Content-Type", "application/json").body(big.clone()).send().unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let id = request_id(res.headers());
        assert_v1_error(&res.json().unwrap(), "payload_too_large", "body_too_large", &id);
    }
    assert_eq!(tessera::store::users::list(&mut app.conn()).unwrap(), users_before);
}

/// `{…}` padded with JSON whitespace to exactly `len` bytes.
fn padded_json(value: &Value, len: usize) -> Vec<u8> {
    let mut body = value.to_string().into_bytes();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

/// Endpoints that read their body take one of exactly the limit and
/// refuse one byte more; the refused request changes nothing.
fn a_body_at_the_limit_is_read_and_one_byte_more_is_413(backend: Backend) {
    let app = TestApp::start(backend);
    let limit = app.config.body_limit;
    let root = app.root_key();
    let keys = |app: &TestApp| tessera::store::api_keys::list(&mut app.conn(), None).unwrap().len();
    let post = |body: Vec<u8>| {
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&root)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    // A JSON endpoint: exactly the limit is parsed and acted on.
    let at_limit = padded_json(&serde_json::json!({ "name": "At the limit" }), limit);
    assert_eq!(at_limit.len(), limit);
    let before = keys(&app);
    let res = post(at_limit);
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.json::<Value>().unwrap()["data"]["name"], "At the limit");
    assert_eq!(keys(&app), before + 1);
    // One byte more is refused before it is parsed.
    let res = post(padded_json(&serde_json::json!({ "name": "Over the limit" }), limit + 1));
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let id = request_id(res.headers());
    let body: Value = res.json().unwrap();
    assert_v1_error(&body, "payload_too_large", "body_too_large", &id);
    assert!(body["message"].as_str().unwrap().contains(&limit.to_string()), "{body}");
    assert_eq!(keys(&app), before + 1, "the refused body made no key");

    // A form endpoint: the same boundary.
    let client = app.cc_client(tessera::oauth::clients::AuthMethod::ClientSecretBasic, "read", &[]);
    let form = |len: usize| {
        let head = "grant_type=client_credentials&padding=";
        format!("{head}{}", "a".repeat(len - head.len()))
    };
    let token = |body: String| {
        app.client
            .post(app.url("/oauth/token"))
            .basic_auth(&client.id, Some(client.secret()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap()
    };
    let res = token(form(limit));
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().unwrap()["access_token"].as_str().unwrap().to_string();
    crate::support::oauth::verify_access_token(&app, &access, &app.default_audience(), None);
    assert_eq!(token(form(limit + 1)).status(), StatusCode::PAYLOAD_TOO_LARGE);
}

fn unknown_routes_and_methods_use_the_v1_shape(backend: Backend) {
    let app = TestApp::start(backend);
    let res = app.get("/v1/does-not-exist");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let id = request_id(res.headers());
    assert_v1_error(&res.json().unwrap(), "not_found", "route_not_found", &id);

    let res = app.client.delete(app.url("/healthz")).send().unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let id = request_id(res.headers());
    assert_v1_error(&res.json().unwrap(), "method_not_allowed", "method_not_allowed", &id);

    // A browser gets an HTML page that quotes the request id.
    let res = app.client.get(app.url("/no/such/page")).header("Accept", "text/html").send().unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let id = request_id(res.headers());
    let html = res.text().unwrap();
    assert!(html.contains("Not found") && html.contains(&id), "{html}");
}

fn pages_escape_what_they_show(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| c.issuer = Some("https://id.example.com/<script>alert(1)</script>".into()))
        .start();
    let res = app.get("/");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
}

both_backends!(
    healthz_and_readyz_answer,
    first_start_creates_one_admin,
    request_ids_are_made_kept_or_replaced,
    security_headers_on_every_response,
    oversized_body_is_413_and_changes_nothing,
    a_body_at_the_limit_is_read_and_one_byte_more_is_413,
    unknown_routes_and_methods_use_the_v1_shape,
    pages_escape_what_they_show,
);
