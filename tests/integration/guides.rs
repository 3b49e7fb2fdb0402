//! The flows Tessera's users read in the guides, as the guides write them:
//! a web app with a backend running the code flow without PKCE and sending
//! its secret in the form body, and an HS256 JWT the app signs with its own
//! client secret for `/v1`. With them, the per-client PKCE policy and its
//! downgrade protections, and who may sign a `/v1` JWT now that every
//! confidential client's secret is sealed.

use chrono::Duration;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::oauth::authorize::s256;
use tessera::oauth::clients::{self, AuthMethod, GrantType, NewClient};

use crate::both_backends;
use crate::support::browser::{Person, REDIRECT_URI, location, param};
use crate::support::oauth::{TestClient, hs256_assertion};
use crate::support::{Backend, TestApp, TestDatabase};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const ENCODED_REDIRECT: &str = "https%3A%2F%2Fapp.example.com%2Fcallback";

fn send(req: reqwest::blocking::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().expect("request");
    let status = res.status();
    (status, res.json().unwrap_or(Value::Null))
}

/// `POST /v1/clients` with `body` as `key`.
fn register(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    send(app.client.post(app.url("/v1/clients")).bearer_auth(key).json(&body))
}

fn patch(app: &TestApp, key: &str, id: &str, body: Value) -> (StatusCode, Value) {
    send(app.client.patch(app.url(&format!("/v1/clients/{id}"))).bearer_auth(key).json(&body))
}

/// A web app registered over `/v1` by the admin's key: the default
/// method (client_secret_basic), owned by the admin.
fn web_app(app: &TestApp, key: &str, require_pkce: bool) -> TestClient {
    let (status, body) = register(
        app,
        key,
        json!({ "name": "Guide app", "redirect_uris": [REDIRECT_URI], "scope": "read write",
                "require_pkce": require_pkce }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(body["data"]["require_pkce"], require_pkce);
    TestClient {
        id: body["data"]["client_id"].as_str().unwrap().into(),
        secret: Some(body["data"]["client_secret"].as_str().unwrap().into()),
    }
}

/// The guide's authorization URL, byte for byte, plus `extra`.
fn guide_url(app: &TestApp, client_id: &str, extra: &str) -> String {
    app.url(&format!(
        "/oauth/authorize?client_id={client_id}&redirect_uri={ENCODED_REDIRECT}&response_type=code&scope=read%20write&state=af0ifjsldkj{extra}"
    ))
}

/// Opens `url` as a signed-in `person`: the redirect back to the client
/// when the request is refused there.
fn refused_at_authorize(person: &Person, url: &str) -> String {
    let res = person.get(url);
    let back = location(&res);
    assert!(back.starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("af0ifjsldkj"));
    back
}

/// The guide's token request, byte for byte: the secret in the body.
fn guide_exchange(app: &TestApp, client: &TestClient, code: &str, extra: &str) -> (StatusCode, Value) {
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={ENCODED_REDIRECT}&client_id={}&client_secret={}{extra}",
        client.id,
        client.secret()
    );
    send(app.client.post(app.token_endpoint()).header("content-type", "application/x-www-form-urlencoded").body(body))
}

fn error_of(got: (StatusCode, Value), status: u16, error: &str) -> String {
    assert_eq!((got.0.as_u16(), got.1["error"].as_str()), (status, Some(error)), "{}", got.1);
    got.1["error_description"].as_str().unwrap_or_default().to_string()
}

/// The web-app guide: code flow without PKCE, secret in the body, for a
/// client registered the default way with `require_pkce: false`.
fn the_web_app_flow_runs_as_the_guide_writes_it(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = app.admin();
    admin.sign_in(&app);
    let root = app.root_key();
    let client = web_app(&app, &root, false);

    let code = admin.approve(&app, &guide_url(&app, &client.id, ""));
    let (status, tokens) = guide_exchange(&app, &client, &code, "");
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "read write");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(send(app.client.get(app.url("/v1/api-keys")).bearer_auth(access)).0, 200);
    // The code is single-use, as ever.
    error_of(guide_exchange(&app, &client, &code, ""), 400, "invalid_grant");
    // Basic works for the same client too, and a wrong secret in the body fails.
    let code = admin.approve(&app, &guide_url(&app, &client.id, ""));
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    assert_eq!(app.post_form("/oauth/token", &form, Some((&client.id, client.secret()))).status(), 200);
    let code = admin.approve(&app, &guide_url(&app, &client.id, ""));
    let wrong = TestClient { id: client.id.clone(), secret: Some("wrong".into()) };
    error_of(guide_exchange(&app, &wrong, &code, ""), 401, "invalid_client");

    // A client registered without asking keeps PKCE required: the same
    // request is refused at the authorization endpoint, in the redirect.
    let strict = web_app(&app, &root, true);
    let back = refused_at_authorize(&admin, &guide_url(&app, &strict.id, ""));
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
    assert!(param(&back, "error_description").unwrap().contains("PKCE is required"), "{back}");
}

/// `optional` is for confidential clients only, wherever it is set.
fn pkce_optional_is_only_for_confidential_clients(backend: Backend) {
    // The CLI.
    let db = TestDatabase::new(&backend);
    let made = crate::cli::exec_on(
        &db,
        &["client", "create", "--name", "Web", "--redirect-uri", REDIRECT_URI, "--pkce", "optional", "--json"],
    );
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!((made["require_pkce"].as_bool(), made["client_type"].as_str()), (Some(false), Some("confidential")));
    let default =
        crate::cli::exec_on(&db, &["client", "create", "--name", "Web", "--redirect-uri", REDIRECT_URI, "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&default.stdout).unwrap()["require_pkce"], true);
    let public = crate::cli::exec_on(
        &db,
        &["client", "create", "--name", "Spa", "--public", "--redirect-uri", REDIRECT_URI, "--pkce", "optional"],
    );
    assert_eq!(public.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&public.stderr).contains("public client must use PKCE"));
    drop(db);

    // /v1/clients, create and PATCH.
    let app = TestApp::start(backend);
    let root = app.root_key();
    let spa = json!({ "name": "Spa", "public": true, "redirect_uris": [REDIRECT_URI], "require_pkce": false });
    let (status, body) = register(&app, &root, spa);
    assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("validation_error")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("public client must use PKCE"), "{body}");
    let (status, body) =
        register(&app, &root, json!({ "name": "Spa", "public": true, "redirect_uris": [REDIRECT_URI] }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["require_pkce"], true);
    let spa_id = body["data"]["client_id"].as_str().unwrap().to_string();
    let (status, body) = patch(&app, &root, &spa_id, json!({ "require_pkce": false }));
    assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("validation_error")), "{body}");
    let web = web_app(&app, &root, true);
    let (status, body) = patch(&app, &root, &web.id, json!({ "require_pkce": false }));
    assert_eq!((status.as_u16(), &body["data"]["require_pkce"]), (200, &json!(false)), "{body}");
    let (status, body) = patch(&app, &root, &web.id, json!({ "name": "Renamed" }));
    assert_eq!((status.as_u16(), &body["data"]["require_pkce"]), (200, &json!(false)), "a PATCH keeps the policy");
    let (status, body) = patch(&app, &root, &web.id, json!({ "require_pkce": "no" }));
    assert_eq!(status, 400, "{body}");
}

/// The downgrade protections hold for a client that may skip PKCE.
fn pkce_downgrades_are_refused(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = app.admin();
    admin.sign_in(&app);
    let root = app.root_key();
    let client = web_app(&app, &root, false);
    let challenge = format!("&code_challenge={}&code_challenge_method=S256", s256(VERIFIER));

    // A code issued with a challenge needs the verifier…
    let code = admin.approve(&app, &guide_url(&app, &client.id, &challenge));
    let why = error_of(guide_exchange(&app, &client, &code, ""), 400, "invalid_request");
    assert!(why.contains("code_verifier is missing"), "{why}");
    // … (and that refusal did not burn it: the right verifier redeems it).
    let with_verifier = format!("&code_verifier={VERIFIER}");
    assert_eq!(guide_exchange(&app, &client, &code, &with_verifier).0, 200);
    // A wrong verifier fails.
    let code = admin.approve(&app, &guide_url(&app, &client.id, &challenge));
    let other = format!("&code_verifier={}", "x".repeat(43));
    error_of(guide_exchange(&app, &client, &code, &other), 400, "invalid_grant");
    // A code issued without a challenge refuses a verifier.
    let code = admin.approve(&app, &guide_url(&app, &client.id, ""));
    let why = error_of(guide_exchange(&app, &client, &code, &with_verifier), 400, "invalid_grant");
    assert!(why.contains("without a code_challenge"), "{why}");
    // plain is never accepted, nor a method without a challenge.
    for extra in [
        format!("&code_challenge={VERIFIER}&code_challenge_method=plain"),
        format!("&code_challenge={VERIFIER}"),
        "&code_challenge_method=S256".to_string(),
    ] {
        let back = refused_at_authorize(&admin, &guide_url(&app, &client.id, &extra));
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{extra}: {back}");
    }
    // A code issued while PKCE was optional, redeemed after the policy
    // turned required, is refused.
    let code = admin.approve(&app, &guide_url(&app, &client.id, ""));
    assert_eq!(patch(&app, &root, &client.id, json!({ "require_pkce": true })).0, 200);
    let why = error_of(guide_exchange(&app, &client, &code, ""), 400, "invalid_grant");
    assert!(why.contains("must use PKCE"), "{why}");
}

/// A public client can never skip PKCE, even if its row says it may.
fn a_public_client_never_skips_pkce(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = app.admin();
    admin.sign_in(&app);
    let spa = app.create_client(NewClient {
        name: "Spa".into(),
        public: true,
        redirect_uris: vec![REDIRECT_URI.into()],
        scope: "read write".into(),
        ..NewClient::default()
    });
    // A row tampered with (or written by an older version) still requires it.
    {
        use tessera::store::schema::clients::dsl;
        diesel::update(dsl::clients.find(&spa.id)).set(dsl::require_pkce.eq(false)).execute(&mut *app.conn()).unwrap();
    }
    assert!(clients::find(&mut app.conn(), &spa.id).unwrap().unwrap().require_pkce);
    let back = refused_at_authorize(&admin, &guide_url(&app, &spa.id, ""));
    assert!(param(&back, "error_description").unwrap().contains("PKCE is required"), "{back}");
    // With PKCE it works; the guide's token request without the secret.
    let challenge = format!("&code_challenge={}&code_challenge_method=S256", s256(VERIFIER));
    let code = admin.approve(&app, &guide_url(&app, &spa.id, &challenge));
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={ENCODED_REDIRECT}&client_id={}&code_verifier={VERIFIER}",
        spa.id
    );
    let (status, tokens) = send(
        app.client.post(app.token_endpoint()).header("content-type", "application/x-www-form-urlencoded").body(body),
    );
    assert_eq!(status, 200, "{tokens}");
}

/// The guide's JWT: `{iss: CLIENT_ID, sub, aud, iat, exp}` HS256 with the
/// client secret.
fn guide_jwt(app: &TestApp, client_id: &str, secret: &str, sub: &str) -> String {
    let now = app.clock.now().timestamp();
    hs256_assertion(
        secret,
        &json!({ "iss": client_id, "sub": sub, "aud": app.default_audience(), "iat": now, "exp": now + 600 }),
    )
}

fn v1_get(app: &TestApp, path: &str, bearer: &str) -> (StatusCode, Value) {
    send(app.client.get(app.url(path)).bearer_auth(bearer))
}

fn refused(got: (StatusCode, Value), needle: &str) {
    assert_eq!((got.0.as_u16(), got.1["code"].as_str()), (401, Some("invalid_token")), "{}", got.1);
    assert!(got.1["message"].as_str().unwrap().contains(needle), "expected {needle:?} in {}", got.1);
}

fn set_role(app: &TestApp, id: &str, role: &str) {
    use tessera::store::schema::users;
    diesel::update(users::table.find(id)).set(users::role.eq(role)).execute(&mut *app.conn()).unwrap();
}

/// A default-registered app signs the guide's JWT; who else can.
fn who_can_sign_a_v1_jwt_with_a_client_secret(backend: Backend) {
    let app = TestApp::start(backend);
    let admin_id = app.user_id("admin@localhost");
    let carol = app.person("carol@example.com");
    let carol_id = app.user_id(&carol.email);
    set_role(&app, &carol_id, "admin");
    let owned = |owner: Option<&str>, method: AuthMethod, scope: &str| {
        app.create_client(NewClient {
            name: "Backend".into(),
            auth_method: Some(method),
            scope: scope.into(),
            grant_types: vec![GrantType::ClientCredentials],
            owner_id: owner.map(str::to_string),
            ..NewClient::default()
        })
    };

    // Registered the default way over /v1 (so it has an owner): it signs.
    let root = app.root_key();
    let (status, body) = register(&app, &root, json!({ "name": "Backend", "scope": "read write" }));
    assert_eq!(status, 201, "{body}");
    let (id, secret) = (body["data"]["client_id"].as_str().unwrap(), body["data"]["client_secret"].as_str().unwrap());
    assert_eq!(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, id, secret, "user-42")).0, 200);
    // client_secret_post signs too; its scope still limits it.
    let post = owned(Some(&admin_id), AuthMethod::ClientSecretPost, "read");
    let jwt = guide_jwt(&app, &post.id, post.secret(), "user-42");
    assert_eq!(v1_get(&app, "/v1/api-keys", &jwt).0, 200);
    let got = send(app.client.post(app.url("/v1/api-keys")).bearer_auth(&jwt).json(&json!({ "name": "x" })));
    assert_eq!((got.0.as_u16(), got.1["code"].as_str()), (403, Some("insufficient_scope")), "{}", got.1);
    // Not with another client's secret, nor signed with a wrong one.
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &post.id, secret, "u")), "signature");
    // The aud must be the API; exp at most an hour ahead.
    let now = app.clock.now().timestamp();
    let claims = |aud: &str, exp: i64| json!({ "iss": post.id, "sub": "u", "aud": aud, "iat": now, "exp": exp });
    refused(
        v1_get(&app, "/v1/api-keys", &hs256_assertion(post.secret(), &claims(&app.token_endpoint(), now + 60))),
        "aud",
    );
    let far = hs256_assertion(post.secret(), &claims(&app.default_audience(), now + 7200));
    refused(v1_get(&app, "/v1/api-keys", &far), "too far ahead");

    // An owner-less client has no one to act for.
    let orphan = owned(None, AuthMethod::ClientSecretBasic, "read");
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &orphan.id, orphan.secret(), "u")), "no owner");
    // A public client has no secret: whatever it signs with is refused.
    let spa = app.create_client(NewClient {
        name: "Spa".into(),
        public: true,
        redirect_uris: vec![REDIRECT_URI.into()],
        scope: "read".into(),
        owner_id: Some(admin_id.clone()),
        ..NewClient::default()
    });
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &spa.id, "", "u")), "no secret");
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &spa.id, &spa.id, "u")), "no secret");

    // A client's scope wider than its owner: cut to the owner. Carol (an
    // admin) owns a client with admin; demoted, the JWT loses admin;
    // disabled, it is refused; a disabled client's JWT is refused.
    let wide = owned(Some(&carol_id), AuthMethod::ClientSecretBasic, "read admin");
    let jwt = guide_jwt(&app, &wide.id, wide.secret(), "u");
    assert_eq!(v1_get(&app, "/v1/audit-events", &jwt).0, 200);
    set_role(&app, &carol_id, "member");
    assert_eq!(v1_get(&app, "/v1/audit-events", &jwt).0, 403);
    assert_eq!(v1_get(&app, "/v1/api-keys", &jwt).0, 200);
    tessera::accounts::disable_user_id(&mut app.conn(), &app.clock, &carol_id, tessera::audit::Actor::Cli).unwrap();
    refused(v1_get(&app, "/v1/api-keys", &jwt), "enabled owner");
    let basic = owned(Some(&admin_id), AuthMethod::ClientSecretBasic, "read");
    let jwt = guide_jwt(&app, &basic.id, basic.secret(), "u");
    assert_eq!(v1_get(&app, "/v1/api-keys", &jwt).0, 200);
    clients::disable(&mut app.conn(), &app.clock, &basic.id, tessera::audit::Actor::Cli).unwrap();
    refused(v1_get(&app, "/v1/api-keys", &jwt), "disabled");

    // A rotated-out secret signs during the overlap, not after.
    let rotating = owned(Some(&admin_id), AuthMethod::ClientSecretBasic, "read");
    // The server's background writers (key usage) may hold SQLite's write
    // lock for a moment: a direct write from the test then fails with
    // "database is locked" rather than waiting, so it is tried again.
    let rotate = |overlap: u64| {
        for attempt in 0.. {
            match clients::rotate_secret(
                &mut app.conn(),
                &app.clock,
                &app.master_key,
                &rotating.id,
                std::time::Duration::from_secs(overlap),
                tessera::audit::Actor::Cli,
            ) {
                Ok(secret) => return secret.expose().to_string(),
                Err(e) if attempt < 20 && e.to_string().contains("locked") => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    };
    let new = rotate(60);
    assert_eq!(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &rotating.id, rotating.secret(), "u")).0, 200);
    assert_eq!(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &rotating.id, &new, "u")).0, 200);
    app.clock.advance(Duration::seconds(61));
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &rotating.id, rotating.secret(), "u")), "signature");
    assert_eq!(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &rotating.id, &new, "u")).0, 200);

    // The token endpoint stays strict: a basic client's secret-signed
    // assertion is no client authentication.
    let assertion = hs256_assertion(rotating.secret(), &app.assertion_claims(&rotating.id));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", crate::support::oauth::JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(app.post_form("/oauth/token", &form, None).status(), 401);
}

/// A client registered before every secret was sealed (its `sealed` is
/// NULL) keeps authenticating, but signs no JWT until its secret rotates.
fn a_secret_from_before_sealing_signs_after_rotation(backend: Backend) {
    let app = TestApp::start(backend);
    let admin_id = app.user_id("admin@localhost");
    let old = app.create_client(NewClient {
        name: "Old backend".into(),
        scope: "read".into(),
        owner_id: Some(admin_id),
        ..NewClient::default()
    });
    {
        use tessera::store::schema::client_secrets::dsl;
        let none: Option<String> = None;
        let n = diesel::update(dsl::client_secrets.filter(dsl::client_id.eq(&old.id)))
            .set(dsl::sealed.eq(none))
            .execute(&mut *app.conn())
            .unwrap();
        assert_eq!(n, 1);
    }
    // It still authenticates at the token endpoint, either way.
    app.cc_token(&old, &[]);
    let form = [("grant_type", "client_credentials"), ("client_id", old.id.as_str()), ("client_secret", old.secret())];
    assert_eq!(app.post_form("/oauth/token", &form, None).status(), 200);
    // Its JWT is refused with a message that says what to do.
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &old.id, old.secret(), "u")), "rotate the client secret");
    // Rotated (over /v1, as the owner would): the new secret signs; the
    // old one, unsealed, still authenticates during the overlap but signs nothing.
    let root = app.root_key();
    let (status, body) = send(
        app.client
            .post(app.url(&format!("/v1/clients/{}/rotate-secret", old.id)))
            .bearer_auth(&root)
            .json(&json!({ "expire_old_in": 3600 })),
    );
    assert_eq!(status, 201, "{body}");
    let new = body["data"]["client_secret"].as_str().unwrap();
    assert_eq!(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &old.id, new, "u")).0, 200);
    refused(v1_get(&app, "/v1/api-keys", &guide_jwt(&app, &old.id, old.secret(), "u")), "signature");
    assert_eq!(app.post_form("/oauth/token", &form, None).status(), 200);
}

/// The dashboard's app form offers the same policy, with the same rule.
fn the_dashboard_sets_the_pkce_policy(backend: Backend) {
    use crate::support::browser::dashboard_csrf;
    let app = TestApp::start(backend);
    let admin = app.admin();
    admin.sign_in(&app);
    let csrf = dashboard_csrf(&admin.page(&app, "/dashboard/apps"));
    let page = admin.page(&app, "/dashboard/apps");
    assert!(page.contains(r#"name="pkce" value="required" checked"#), "required is the default choice");
    let form = |client_type: &'static str, pkce: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("name", "Web app".to_string()),
            ("client_type", client_type.to_string()),
            ("redirect_uris", REDIRECT_URI.to_string()),
            ("scope", "read".to_string()),
            ("grant_types", "authorization_code".to_string()),
            ("pkce", pkce.to_string()),
        ]
    };
    let post = |path: &str, form: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        admin.submit(&app, path, &pairs)
    };
    // A public app cannot skip PKCE: the refusal is beside the field.
    let res = post("/dashboard/apps", form("public", "optional"));
    assert_eq!(res.status(), 422);
    let html = res.text().unwrap();
    assert!(html.contains(r#"id="pkce-error""#) && html.contains("must use PKCE"), "{html}");
    assert_eq!(post("/dashboard/apps", form("confidential", "sometimes")).status(), 422);
    // A confidential one may; the app page shows it, and the edit form changes it.
    let res = post("/dashboard/apps", form("confidential", "optional"));
    assert_eq!(res.status(), 201);
    let html = res.text().unwrap();
    let start = html.find("cl_").unwrap();
    let id: String = html[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    assert!(!clients::find(&mut app.conn(), &id).unwrap().unwrap().require_pkce);
    let path = format!("/dashboard/apps/{id}");
    assert!(admin.page(&app, &path).contains(r#"<dd id="pkce-policy">optional</dd>"#));
    let edit = vec![
        ("csrf_token", csrf.clone()),
        ("name", "Web app".to_string()),
        ("redirect_uris", REDIRECT_URI.to_string()),
        ("scope", "read".to_string()),
        ("pkce", "required".to_string()),
    ];
    assert_eq!(post(&path, edit).status(), 303);
    assert!(admin.page(&app, &path).contains(r#"<dd id="pkce-policy">required</dd>"#));
    assert!(clients::find(&mut app.conn(), &id).unwrap().unwrap().require_pkce);
}

both_backends!(
    the_dashboard_sets_the_pkce_policy,
    the_web_app_flow_runs_as_the_guide_writes_it,
    pkce_optional_is_only_for_confidential_clients,
    pkce_downgrades_are_refused,
    a_public_client_never_skips_pkce,
    who_can_sign_a_v1_jwt_with_a_client_secret,
    a_secret_from_before_sealing_signs_after_rotation,
);
