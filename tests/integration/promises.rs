//! Promises the README makes that no other test held the server to: every
//! audit action, session and refresh-token lifetimes, client-signed JWTs
//! with RSA and Ed25519 keys on `/v1`, and IPv6 and `*.` referrer
//! restrictions over HTTP.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::Duration;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::TokenResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::oauth::clients::{AuthMethod, NewClient};

use crate::both_backends;
use crate::support::browser::{Person, authorization_url, code, hidden_fields, oauth2_http};
use crate::support::oauth::{ClientKey, key_assertion};
use crate::support::{Backend, TestApp};

/// Every action the code writes to the audit log, each caused over HTTP
/// or the CLI by `every_audit_action_is_recorded` below.
const ACTIONS: [&str; 32] = [
    "api.auth_failed",
    "api_key.created",
    "api_key.forbidden_endpoint",
    "api_key.forbidden_ip",
    "api_key.forbidden_referrer",
    "api_key.revoked",
    "api_key.rotated",
    "client.auth_failed",
    "client.created",
    "client.deleted",
    "client.disabled",
    "client.registered",
    "client.secret_rotated",
    "client.updated",
    "consent.revoked",
    "grant.revoked",
    "initial_access_token.created",
    "initial_access_token.revoked",
    "login.failed",
    "login.succeeded",
    "login.throttled",
    "logout",
    "resource_server.created",
    "resource_server.secret_rotated",
    "sdk_token.created",
    "sdk_token.revoked",
    "signing_key.rotated",
    "token.revoked",
    "user.created",
    "user.disabled",
    "user.password_changed",
    "user.renamed",
];

/// The string literals of Rust source, roughly: what lies between pairs of
/// double quotes. Good enough to find audit actions, which are plain
/// `word.word` literals.
fn literals(source: &str) -> impl Iterator<Item = &str> {
    source.lines().flat_map(|line| line.split('"').skip(1).step_by(2))
}

/// The action literals in `src/`: `area.verb` strings (file names aside)
/// and whatever literal `AuditEvent::new` is given directly ("logout").
fn actions_in_source(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            actions_in_source(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // Unit tests (at the end of a file, by the house's habit) emit nothing.
        let source = source.split("#[cfg(test)]").next().unwrap_or("");
        for literal in literals(source) {
            let Some((area, verb)) = literal.split_once('.') else { continue };
            let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            let file = ["html", "toml", "css", "js", "json", "rs", "db", "md", "txt", "sql", "pem"].contains(&verb);
            if word(area) && word(verb) && !file {
                found.insert(literal.to_string());
            }
        }
        for call in source.split("AuditEvent::new(").skip(1) {
            let second = call.split(',').nth(1).unwrap_or("").trim();
            if let Some(action) = second.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                found.insert(action.to_string());
            }
        }
    }
}

/// A new audit action fails here until a row in `ACTIONS` and a line in
/// `every_audit_action_is_recorded` cause it and read it back.
#[test]
fn the_audit_table_names_every_action_the_code_emits() {
    let mut found = BTreeSet::new();
    actions_in_source(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
    let listed: BTreeSet<String> = ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(found, listed, "audit actions in src/ (left) and in promises::ACTIONS (right)");
}

/// Runs `tessera ARGS` against the app's database and master key, with
/// `stdin`; panics unless it succeeds, and returns stdout.
fn cli(app: &TestApp, args: &[&str], stdin: &[u8]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") {
            cmd.env_remove(name);
        }
    }
    let master_key = app.config.master_key_path();
    cmd.env("TESSERA_DATABASE_URL", app.database.url_string())
        .env("TESSERA_MASTER_KEY_FILE", &master_key)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tessera");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn every_audit_action_is_recorded(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.login_max_failures = 2;
            c.registration = tessera::oauth::registration::RegistrationMode::Token;
        })
        .start();
    let root = app.root_key();
    let admin = app.user_id("admin@localhost");
    let mut secrets: Vec<String> = vec![root.clone()];
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = app.client.request(method, app.url(path)).bearer_auth(&root);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().unwrap();
        let status = res.status();
        let body: Value = res.json().unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    };
    use reqwest::Method;

    // API keys: made, rotated, revoked, and refused by their restrictions.
    let (first, raw, _) = app.create_key(&root, json!({ "name": "Audited" }));
    let rotated = call(Method::POST, &format!("/v1/api-keys/{first}/rotate"), None);
    let second = rotated["data"]["id"].as_str().unwrap().to_string();
    secrets.extend([raw, rotated["data"]["key"].as_str().unwrap().to_string()]);
    call(Method::DELETE, &format!("/v1/api-keys/{second}"), None);
    let mut fenced = Vec::new();
    for (name, rules, path) in [
        ("ip", json!({ "ips": ["10.0.0.0/8"] }), "/v1/api-keys"),
        ("referrer", json!({ "referrers": ["https://app.example.com"] }), "/v1/api-keys"),
        ("endpoint", json!({ "endpoints": ["GET /v1/users/*"] }), "/v1/api-keys"),
    ] {
        let (id, raw, _) = app.create_key(&root, json!({ "name": name, "restrictions": rules }));
        let res = app.client.get(app.url(path)).bearer_auth(&raw).send().unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
        secrets.push(raw);
        fenced.push(id);
    }
    let res = app.client.get(app.url("/v1/api-keys")).bearer_auth("sk_test_guess").send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // SDK tokens: made and revoked.
    let sdk = call(Method::POST, "/v1/sdk-tokens", None);
    let sdk_id = sdk["data"]["id"].as_str().unwrap().to_string();
    secrets.push(sdk["data"]["token"].as_str().unwrap().to_string());
    call(Method::DELETE, &format!("/v1/sdk-tokens/{sdk_id}"), None);

    // Users: made, renamed, given a new password (CLI), disabled.
    let password = "a long enough password";
    let dee = call(
        Method::POST,
        "/v1/users",
        Some(json!({ "email": "dee@example.com", "name": "Dee", "password": password })),
    );
    let dee = dee["data"]["id"].as_str().unwrap().to_string();
    call(Method::PATCH, &format!("/v1/users/{dee}"), Some(json!({ "name": "Dee D." })));
    let new_password = "another long password";
    cli(&app, &["user", "set-password", "--email", "dee@example.com", "--password-stdin"], new_password.as_bytes());
    call(Method::DELETE, &format!("/v1/users/{dee}"), None);
    secrets.extend([password.to_string(), new_password.to_string()]);

    // Sign-in: success, sign-out, failure, throttling.
    let bea = app.person("bea@example.com");
    let bea_id = app.user_id(&bea.email);
    bea.sign_in(&app);
    let home = bea.get(&app.url("/")).text().unwrap();
    assert_eq!(bea.post(&app.url("/logout"), &hidden_fields(&home)).status(), 302);
    assert_eq!(bea.submit_login(&app, &app.url("/login"), "not the password").status(), 401);
    let guesser = Person::new("cy@example.com", "whatever1");
    for _ in 0..2 {
        assert_eq!(guesser.submit_login(&app, &app.url("/login"), "whatever1").status(), 401);
    }
    assert_eq!(guesser.submit_login(&app, &app.url("/login"), "whatever1").status(), 429);
    secrets.push(bea.password.clone());

    // Clients: registered, changed, new secret, a failed authentication,
    // a revoked token, disabled.
    let registered = call(Method::POST, "/v1/clients", Some(json!({ "name": "Audited app", "scope": "read" })));
    let client = registered["data"]["client_id"].as_str().unwrap().to_string();
    call(Method::PATCH, &format!("/v1/clients/{client}"), Some(json!({ "name": "Renamed app" })));
    let rotated =
        call(Method::POST, &format!("/v1/clients/{client}/rotate-secret"), Some(json!({ "expire_old_in": 0 })));
    let secret = rotated["data"]["client_secret"].as_str().unwrap().to_string();
    secrets.extend([registered["data"]["client_secret"].as_str().unwrap().to_string(), secret.clone()]);
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(app.post_form("/oauth/token", &cc, Some((&client, "wrong"))).status(), 401);
    let token = app.post_form("/oauth/token", &cc, Some((&client, &secret))).json::<Value>().unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.post_form("/oauth/revoke", &[("token", &token)], Some((&client, &secret))).status(), 200);
    call(Method::DELETE, &format!("/v1/clients/{client}"), None);

    // A replayed authorization code revokes its grant.
    let web = app.web_client("read");
    let (url, _, verifier) = authorization_url(&app.oauth2_client(&web), &["read"]);
    let code_value = app.admin().approve(&app, &url);
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code_value.as_str()),
        ("code_verifier", verifier.secret().as_str()),
        ("redirect_uri", crate::support::browser::REDIRECT_URI),
    ];
    assert_eq!(app.post_form("/oauth/token", &exchange, Some((&web.id, web.secret()))).status(), 200);
    assert_eq!(app.post_form("/oauth/token", &exchange, Some((&web.id, web.secret()))).status(), 400);
    secrets.extend([code_value.clone(), web.secret().to_string()]);

    // The person takes back what they granted the web app (the dashboard's
    // connected apps); an admin stages a new signing key (the admin pages).
    tessera::oauth::connected_apps::revoke(
        &mut app.conn(),
        &app.clock,
        &admin,
        &web.id,
        tessera::audit::Actor::person(&admin),
    )
    .unwrap();
    let admin_principal = tessera::domain::principal::Principal {
        user: tessera::accounts::find_user(&mut app.conn(), &admin).unwrap().unwrap(),
        credential: tessera::domain::principal::Credential::ApiKey { id: "key_root".into(), client_id: None },
        permissions: tessera::domain::permissions::Permissions::ALL,
        mode: None,
        rate_limit: None,
        key: None,
    };
    let doomed = app.web_client("read").id;
    tessera::oauth::clients::delete_visible(&mut app.conn(), &app.clock, &admin_principal, &doomed).unwrap();
    let staged = tessera::admin::rotate_signing_key(
        &mut app.conn(),
        &app.clock,
        &app.master_key,
        &app.config.rotation_policy(),
        &admin_principal,
        tessera::jwt::keys::SigningAlg::Es256,
    )
    .unwrap();

    // Resource servers exist only at the command line.
    let created: Value = serde_json::from_str(&cli(
        &app,
        &["resource", "create", "--identifier", "https://orders.example.com", "--name", "Orders", "--json"],
        b"",
    ))
    .unwrap();
    let rs = created["id"].as_str().unwrap().to_string();
    let rotated: Value = serde_json::from_str(&cli(&app, &["resource", "rotate-secret", &rs, "--json"], b"")).unwrap();
    secrets.extend([created["secret"].as_str().unwrap().to_string(), rotated["secret"].as_str().unwrap().to_string()]);

    // Dynamic registration: an initial access token (CLI), a client that
    // registers with it, changes and deletes itself (RFC 7592), the token
    // revoked.
    let iat: Value =
        serde_json::from_str(&cli(&app, &["registration", "token", "create", "--max-uses", "2", "--json"], b""))
            .unwrap();
    let (iat_id, iat_token) = (iat["id"].as_str().unwrap().to_string(), iat["token"].as_str().unwrap().to_string());
    let metadata = json!({ "client_name": "Self-made", "redirect_uris": ["https://self.example.com/cb"] });
    let res = app.client.post(app.url("/oauth/register")).bearer_auth(&iat_token).json(&metadata).send().unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let reg: Value = res.json().unwrap();
    let dcr = reg["client_id"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"].as_str().unwrap().to_string();
    let manage = reg["registration_client_uri"].as_str().unwrap().to_string();
    secrets.extend([iat_token, rat.clone(), reg["client_secret"].as_str().unwrap().to_string()]);
    let changed =
        json!({ "client_id": dcr, "client_name": "Self-made 2", "redirect_uris": ["https://self.example.com/cb"] });
    assert_eq!(app.client.put(&manage).bearer_auth(&rat).json(&changed).send().unwrap().status(), StatusCode::OK);
    assert_eq!(app.client.delete(&manage).bearer_auth(&rat).send().unwrap().status(), StatusCode::NO_CONTENT);
    cli(&app, &["registration", "token", "revoke", &iat_id], b"");

    // Each, read back by action and target: exactly once, by the right actor.
    let events = |action: &str, target: Option<&str>| -> Vec<Value> {
        let mut query = vec![("action", action)];
        query.extend(target.map(|t| ("target", t)));
        let res = app.client.get(app.url("/v1/audit-events")).bearer_auth(&root).query(&query).send().unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().unwrap()["data"].as_array().unwrap().clone()
    };
    let one = |action: &str, target: Option<&str>, actor: &str| -> Value {
        // Failed authentications are written off the request path.
        let found = crate::support::eventually(action, || Some(events(action, target)).filter(|f| !f.is_empty()));
        assert_eq!(found.len(), 1, "{action} on {target:?}: {found:?}");
        let event = found[0].clone();
        assert_eq!((event["action"].as_str(), event["target"].as_str()), (Some(action), target), "{event}");
        assert_eq!(event["actor"], actor, "{event}");
        event
    };
    let system = "system";
    one("api_key.created", Some(&first), &admin);
    let event = one("api_key.rotated", Some(&first), &admin);
    assert_eq!(event["details"]["new_key"], second.as_str());
    one("api_key.revoked", Some(&second), &admin);
    for (action, id) in
        ["api_key.forbidden_ip", "api_key.forbidden_referrer", "api_key.forbidden_endpoint"].iter().zip(&fenced)
    {
        assert_eq!(one(action, Some(id), system)["ip"], "127.0.0.1");
    }
    // Written off the request path.
    let failed = crate::support::eventually("api.auth_failed", || {
        Some(events("api.auth_failed", None)).filter(|f| !f.is_empty())
    });
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0]["actor"].as_str(), failed[0]["target"].as_str()), (Some(system), None));
    assert_eq!(failed[0]["details"], json!({ "code": "invalid_api_key", "path": "/v1/api-keys" }));
    one("user.created", Some(&dee), &admin);
    one("user.renamed", Some(&dee), &admin);
    one("user.password_changed", Some(&dee), "cli");
    one("user.disabled", Some(&dee), &admin);
    assert_eq!(one("login.succeeded", Some(&bea_id), &bea_id)["ip"], "127.0.0.1");
    one("logout", Some(&bea_id), &bea_id);
    assert_eq!(one("login.failed", Some(&bea_id), system)["details"]["reason"], "wrong password");
    let guesses = events("login.failed", Some("cy@example.com"));
    assert_eq!(guesses.len(), 2, "{guesses:?}");
    assert!(guesses.iter().all(|e| e["details"]["reason"] == "unknown email"));
    one("login.throttled", Some("cy@example.com"), system);
    one("client.created", Some(&client), &admin);
    one("client.updated", Some(&client), &admin);
    one("client.secret_rotated", Some(&client), &admin);
    let event = one("client.auth_failed", Some(&client), system);
    assert!(event["details"]["reason"].as_str().unwrap().contains("wrong client secret"), "{event}");
    one("token.revoked", Some(&client), system);
    one("client.disabled", Some(&client), &admin);
    let event = one("grant.revoked", Some(&web.id), system);
    assert_eq!(event["details"]["reason"], "authorization code replayed");
    one("sdk_token.created", Some(&sdk_id), &admin);
    one("sdk_token.revoked", Some(&sdk_id), &admin);
    one("resource_server.created", Some(&rs), "cli");
    one("resource_server.secret_rotated", Some(&rs), "cli");
    one("consent.revoked", Some(&web.id), &admin);
    let event = one("client.registered", Some(&dcr), system);
    assert_eq!((event["details"]["policy"].as_str(), event["ip"].as_str()), (Some("token"), Some("127.0.0.1")));
    assert_eq!(event["details"]["initial_access_token"], iat_id.as_str());
    one("client.updated", Some(&dcr), system);
    one("client.deleted", Some(&dcr), system);
    one("initial_access_token.created", Some(&iat_id), "cli");
    one("initial_access_token.revoked", Some(&iat_id), "cli");
    one("client.deleted", Some(&doomed), &admin);
    assert_eq!(one("signing_key.rotated", Some(&staged.kid), &admin)["details"]["alg"], "ES256");

    // Nothing but these actions, and no secret anywhere in the log.
    // The whole log, page by page (a page holds at most 100 events).
    let mut log = Vec::new();
    let mut path = "/v1/audit-events?limit=100".to_string();
    loop {
        let page: Value = app.client.get(app.url(&path)).bearer_auth(&root).send().unwrap().json().unwrap();
        log.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            break;
        }
        path = format!("/v1/audit-events?limit=100&starting_after={}", log.last().unwrap()["id"].as_str().unwrap());
    }
    let seen: BTreeSet<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(seen, ACTIONS.into_iter().collect::<BTreeSet<_>>());
    let text = Value::from(log.clone()).to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the audit log: {secret:.12}…");
    }
}

/// Whether the person's browser is signed in, as the home page says.
fn signed_in(app: &TestApp, person: &Person) -> bool {
    person.get(&app.url("/")).text().unwrap().contains("Signed in as")
}

/// A session ends after `TESSERA_SESSION_IDLE_TTL` without a request, and
/// after `TESSERA_SESSION_TTL` however busy it is.
fn sessions_end_at_their_idle_and_absolute_lifetimes(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_frozen_clock()
        .with_config(|c| {
            c.session_idle_ttl = std::time::Duration::from_secs(600);
            c.session_ttl = std::time::Duration::from_secs(1800);
        })
        .start();
    let person = app.admin();
    let wait = |secs: i64| app.clock.advance(Duration::seconds(secs));

    // Idle: each request moves the idle end; a pause of the idle lifetime ends it.
    person.sign_in(&app);
    assert!(signed_in(&app, &person));
    wait(599);
    assert!(signed_in(&app, &person), "just within the idle lifetime");
    wait(599);
    assert!(signed_in(&app, &person), "idle counts from the last request, not from sign-in");
    wait(600);
    assert!(!signed_in(&app, &person), "idle for exactly the idle lifetime: ended");
    wait(1);
    assert!(!signed_in(&app, &person), "an ended session stays ended");

    // Absolute: kept busy, the session still ends at its absolute lifetime.
    person.sign_in(&app);
    for _ in 0..3 {
        wait(500);
        assert!(signed_in(&app, &person));
    }
    wait(299);
    assert!(signed_in(&app, &person), "one second before the absolute end");
    wait(1);
    assert!(!signed_in(&app, &person), "at the absolute end, though used 300 s ago");
    // Signing in again is a new session with a new absolute end.
    person.sign_in(&app);
    assert!(signed_in(&app, &person));
}

/// A refresh-token family ends `TESSERA_REFRESH_TOKEN_TTL` after the
/// authorization, even for a token issued a moment before.
fn refresh_tokens_end_with_their_familys_absolute_lifetime(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_frozen_clock()
        .with_config(|c| {
            c.refresh_token_idle_ttl = std::time::Duration::from_secs(1000);
            c.refresh_token_ttl = std::time::Duration::from_secs(2500);
        })
        .start();
    let web = app.web_client("read");
    let oauth = app.oauth2_client(&web);
    let (url, _, verifier) = authorization_url(&oauth, &["read", "offline_access"]);
    let code_value = app.admin().approve(&app, &url);
    let tokens = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    let mut refresh = tokens.refresh_token().expect("a refresh token").secret().clone();
    let use_it = |token: &str| {
        let res = app.post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
            Some((&web.id, web.secret())),
        );
        (res.status(), res.json::<Value>().unwrap())
    };
    // Within the idle lifetime each time, up to a second before the end.
    for wait in [900, 900, 699] {
        app.clock.advance(Duration::seconds(wait));
        let (status, body) = use_it(&refresh);
        assert_eq!(status, 200, "{body}");
        crate::support::oauth::verify_access_token(
            &app,
            body["access_token"].as_str().unwrap(),
            &app.default_audience(),
            None,
        );
        refresh = body["refresh_token"].as_str().unwrap().to_string();
    }
    let info = app.introspect(&refresh, (&web.id, web.secret()));
    assert_eq!((info["active"].as_bool(), info["token_type"].as_str()), (Some(true), Some("refresh_token")));
    // 2500 s after the authorization: the family is over, though this
    // token was issued 1 s ago, far within its idle lifetime.
    app.clock.advance(Duration::seconds(1));
    let (status, body) = use_it(&refresh);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("expired"), "{body}");
    assert_eq!(app.introspect(&refresh, (&web.id, web.secret())), json!({ "active": false }));
}

/// A client key of `alg` for `private_key_jwt`: RSA from the shared
/// helper, Ed25519 made here (a PKCS#8 v1 key, the form jsonwebtoken reads).
fn client_key(alg: Algorithm, kid: &str) -> ClientKey {
    if alg != Algorithm::EdDSA {
        return ClientKey::generate(alg, kid);
    }
    let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let key = EncodingKey::from_ed_der(pair.to_pkcs8v1().unwrap().as_ref());
    let mut public = Jwk::from_encoding_key(&key, alg).unwrap();
    public.common.key_id = Some(kid.to_string());
    ClientKey { alg, kid: kid.to_string(), key, public }
}

/// `Authorization: Bearer <JWT>` signed by a `private_key_jwt` client with
/// its own RSA or Ed25519 key acts on `/v1` for the client's owner, within
/// the client's scope; a JWT signed by any other key is refused.
fn client_signed_jwts_with_rsa_and_ed25519_keys(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = app.user_id("admin@localhost");
    for alg in [Algorithm::RS256, Algorithm::EdDSA] {
        let key = client_key(alg, "k1");
        let client = app.create_client(NewClient {
            name: format!("{alg:?} service"),
            auth_method: Some(AuthMethod::PrivateKeyJwt),
            jwks: Some(ClientKey::jwks_json(&[&key])),
            scope: "read".into(),
            owner_id: Some(admin.clone()),
            ..NewClient::default()
        });
        let now = app.clock.now().timestamp();
        let claims =
            json!({ "iss": client.id, "sub": client.id, "aud": app.default_audience(), "iat": now, "exp": now + 300 });
        let get = |jwt: &str, path: &str| {
            let res = app.client.get(app.url(path)).bearer_auth(jwt).send().unwrap();
            (res.status(), res.json::<Value>().unwrap())
        };
        let jwt = key_assertion(&key, &claims);
        assert_eq!(jsonwebtoken::decode_header(&jwt).unwrap().alg, alg);
        let (status, body) = get(&jwt, &format!("/v1/users/{admin}"));
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(body["data"]["id"], admin.as_str(), "it acts for the client's owner");
        let (status, _) = get(&jwt, "/v1/api-keys");
        assert_eq!(status, 200);
        // The client's scope bounds it: read only.
        let res =
            app.client.post(app.url("/v1/api-keys")).bearer_auth(&jwt).json(&json!({ "name": "x" })).send().unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.json::<Value>().unwrap()["code"], "insufficient_scope");

        // Refused: another key under the same kid, another algorithm's key,
        // the public key used as an HMAC secret, a foreign audience.
        let impostor = client_key(alg, "k1");
        let other_alg = client_key(if alg == Algorithm::EdDSA { Algorithm::RS256 } else { Algorithm::EdDSA }, "k1");
        let public_json = serde_json::to_string(&key.public).unwrap();
        let hmac = jsonwebtoken::encode(
            &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
            &claims,
            &EncodingKey::from_secret(public_json.as_bytes()),
        )
        .unwrap();
        let mut elsewhere = claims.clone();
        elsewhere["aud"] = json!("https://elsewhere.example.com");
        for (why, forged) in [
            ("another key, same kid", key_assertion(&impostor, &claims)),
            ("another algorithm", key_assertion(&other_alg, &claims)),
            ("HS256 over the public key", hmac),
            ("a foreign audience", key_assertion(&key, &elsewhere)),
        ] {
            let (status, body) = get(&forged, "/v1/api-keys");
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg:?}, {why}: {body}");
            assert_eq!(body["code"], "invalid_token", "{alg:?}, {why}");
        }
    }
}

fn get_with(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut req = app.client.get(app.url("/v1/api-keys")).bearer_auth(key);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().unwrap().status()
}

/// IPv6 allowlists, with the client address taken from `X-Forwarded-For`
/// behind a trusted proxy.
fn ipv6_allowlists_through_a_trusted_proxy(backend: Backend) {
    let app =
        TestApp::builder(backend).with_config(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).start();
    let root = app.root_key();
    let key = |ips: Value| app.create_key(&root, json!({ "name": "v6", "restrictions": { "ips": ips } }));
    let (net_id, net, _) = key(json!(["2001:db8::/64"]));
    let (_, host, _) = key(json!(["2001:db8::5"]));
    let (_, v4, _) = key(json!(["10.0.0.0/8"]));
    let from = |k: &str, ip: &str| get_with(&app, k, &[("x-forwarded-for", ip)]);
    assert_eq!(from(&net, "2001:db8::5"), 200);
    assert_eq!(from(&net, "2001:db8::ffff:1"), 200, "anywhere in the /64");
    assert_eq!(from(&net, "2001:DB8:0:0::5"), 200, "however the address is written");
    assert_eq!(from(&net, "2001:db8:0:1::5"), 403, "the next /64");
    assert_eq!(from(&host, "2001:db8::5"), 200);
    assert_eq!(from(&host, "2001:db8::6"), 403, "a single address allows only itself");
    assert_eq!(from(&v4, "2001:db8::5"), 403, "an IPv4 rule allows no IPv6 client");
    assert_eq!(get_with(&app, &net, &[]), 403, "the proxy's own address is not the client's");
    // Audited off the request path, in the order they happened.
    let events = crate::support::eventually("both refusals audited", || {
        let res = app
            .client
            .get(app.url("/v1/audit-events"))
            .bearer_auth(&root)
            .query(&[("action", "api_key.forbidden_ip"), ("target", net_id.as_str())])
            .send()
            .unwrap();
        Some(res.json::<Value>().unwrap()["data"].as_array().unwrap().clone()).filter(|e| e.len() >= 2)
    });
    let ips: Vec<&str> = events.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, ["127.0.0.1", "2001:db8:0:1::5"], "newest first, in canonical form");
}

/// IPv6 from the socket itself: the server listens on `[::1]`.
fn ipv6_socket_addresses(backend: Backend) {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        assert!(!crate::support::in_ci(), "CI must run the IPv6 test: no [::1] here");
        crate::support::skipped("the IPv6 test", "no IPv6 loopback: [::1] cannot be bound");
        return;
    }
    let app = TestApp::builder(backend).with_config(|c| c.bind = "[::1]:0".into()).start();
    assert!(app.addr.is_ipv6());
    let root = app.root_key();
    let key = |ips: Value| app.create_key(&root, json!({ "name": "v6", "restrictions": { "ips": ips } })).1;
    assert_eq!(get_with(&app, &key(json!(["::1"])), &[]), 200);
    assert_eq!(get_with(&app, &key(json!(["::/0"])), &[]), 200);
    assert_eq!(get_with(&app, &key(json!(["2001:db8::/32"])), &[]), 403);
    assert_eq!(get_with(&app, &key(json!(["127.0.0.1"])), &[]), 403, "::1 is not 127.0.0.1");
    // No proxy is trusted: the header cannot move the client.
    assert_eq!(get_with(&app, &key(json!(["2001:db8::/32"])), &[("x-forwarded-for", "2001:db8::1")]), 403);
}

/// `*.example.com` allows any subdomain, at any depth, by `Referer` or
/// `Origin`, and nothing else that merely looks like it.
fn wildcard_referrers_over_http(backend: Backend) {
    let app = TestApp::start(backend);
    let root = app.root_key();
    let (id, key, _) =
        app.create_key(&root, json!({ "name": "web", "restrictions": { "referrers": ["*.example.com"] } }));
    let by = |header: &str, value: &str| get_with(&app, &key, &[(header, value)]);
    for allowed in [
        "https://shop.example.com/checkout",
        "https://a.b.example.com/",
        "https://shop.example.com:8443/x?y=1",
        "https://SHOP.Example.COM/",
        "http://shop.example.com",
    ] {
        assert_eq!(by("referer", allowed), 200, "{allowed}");
    }
    assert_eq!(by("origin", "https://shop.example.com"), 200, "Origin when there is no Referer");
    let refused = [
        "https://example.com/",
        "https://evilexample.com/",
        "https://example.com.evil.net/",
        "https://shop.example.com.evil.net/",
        "https://shop.example.com@evil.net/",
        "https://evil.net/?next=https://shop.example.com",
        "https://evil.net/#.example.com",
    ];
    for value in refused {
        assert_eq!(by("referer", value), 403, "{value}");
    }
    assert_eq!(get_with(&app, &key, &[]), 403, "no referrer at all");
    // Audited off the request path.
    crate::support::eventually("each refusal is audited", || {
        let res = app
            .client
            .get(app.url("/v1/audit-events"))
            .bearer_auth(&root)
            .query(&[("action", "api_key.forbidden_referrer"), ("target", id.as_str())])
            .send()
            .unwrap();
        let events = res.json::<Value>().unwrap()["data"].as_array().unwrap().len();
        assert!(events <= refused.len() + 1, "{events} events");
        (events == refused.len() + 1).then_some(())
    });
}

both_backends!(
    every_audit_action_is_recorded,
    sessions_end_at_their_idle_and_absolute_lifetimes,
    refresh_tokens_end_with_their_familys_absolute_lifetime,
    client_signed_jwts_with_rsa_and_ed25519_keys,
    ipv6_allowlists_through_a_trusted_proxy,
    ipv6_socket_addresses,
    wildcard_referrers_over_http,
);
