//! Issue #19: delegated credentials stay delegated. Each test is one of the
//! review's findings, done the way the attacker did it, with the
//! legitimate case beside the refused one: an app holding a person's
//! token, or a client's signed JWT, never manages credentials; consent
//! covers the client as it was; every grant is re-checked when used.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};
use tessera::oauth::resources::TokenAlg;

use crate::both_backends;
use crate::oauth_holes::{VERIFIER, authorize_url, authorize_url_to, code_flow, creds, inactive, redeem, refresh};
use crate::support::browser::REDIRECT_URI;
use crate::support::oauth::hs256_assertion;
use crate::support::{Backend, TestApp, snapshot};
use crate::trust_boundary::{call, send, set_role, user_id};

const OPS_URI: &str = "https://ops.example.com/callback";
const EVIL_URI: &str = "https://evil.example/steal";

fn expect(got: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
}

/// The id of the API key `raw` (what `/v1/me` says of it).
fn key_id(app: &TestApp, raw: &str) -> String {
    let me = send(call(app, Method::GET, "/v1/me", raw));
    me.1["data"]["key_id"].as_str().expect("an API key").to_string()
}

/// "Mel's app": a confidential web app of `owner` with the code grant
/// (and `more` grants), asking for `scope`.
fn owned_app(app: &TestApp, owner: &str, scope: &str, more: &[GrantType]) -> crate::support::oauth::TestClient {
    app.create_client(NewClient {
        name: "Mel's app".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: [GrantType::AuthorizationCode].into_iter().chain(more.iter().copied()).collect(),
        scope: scope.into(),
        auth_method: Some(AuthMethod::ClientSecretBasic),
        owner_id: Some(owner.to_string()),
        ..NewClient::default()
    })
}

/// Redeems `code` for the public client `client_id` (PKCE with `VERIFIER`).
fn redeem_public(app: &TestApp, client_id: &str, redirect_uri: &str, code: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
    ];
    let res = app.post_form("/oauth/token", &form, None);
    (res.status(), res.json().unwrap())
}

/// Finding 1: an app a person connected (holding her `write` token), or a
/// sibling client's signed JWT, re-points her other client's redirect URIs
/// and rides her remembered consent to that client's `admin` scope.
fn finding_1_a_connected_app_cannot_repoint_her_other_clients(backend: Backend) {
    let app = TestApp::start(backend);
    let ann = app.admin();
    let ann_id = user_id(&app, "admin@localhost");
    let own_key = app.root_key();
    // Her ops console: a public client with `admin read`, approved before.
    let ops = app.create_client(NewClient {
        name: "Ops console".into(),
        public: true,
        redirect_uris: vec![OPS_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "admin read".into(),
        owner_id: Some(ann_id.clone()),
        ..NewClient::default()
    });
    let ops_code = ann.approve(&app, &authorize_url_to(&app, &ops.id, OPS_URI, "admin read", &[]));
    assert_eq!(redeem_public(&app, &ops.id, OPS_URI, &ops_code).0, StatusCode::OK);
    // The app she connects with `read write`: someone else's.
    app.person("mallory@example.com");
    let evil = app.create_client(NewClient {
        name: "Photo Printer".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "read write".into(),
        auth_method: Some(AuthMethod::ClientSecretBasic),
        owner_id: Some(user_id(&app, "mallory@example.com")),
        ..NewClient::default()
    });
    let token = code_flow(&app, &ann, &evil, "read write")["access_token"].as_str().unwrap().to_string();
    // A sibling client of hers with a secret signs a /v1 JWT.
    let sibling = app.create_client(NewClient {
        name: "Ann's scripts".into(),
        scope: "read write".into(),
        grant_types: vec![GrantType::ClientCredentials],
        owner_id: Some(ann_id.clone()),
        ..NewClient::default()
    });
    let now = app.clock.now().timestamp();
    let jwt = hs256_assertion(
        sibling.secret(),
        &json!({ "iss": sibling.id, "sub": ann_id, "aud": app.default_audience(), "iat": now, "exp": now + 600 }),
    );

    let repoint = json!({ "redirect_uris": [OPS_URI, EVIL_URI] });
    // Nor can a narrower key of her own, which could not have made the
    // client nor rotate its secret: it lacks `admin` and `read`.
    let (_, writer) = crate::trust_boundary::operator_key(&app, &ann_id, &["write"]);
    let before = snapshot::storage(&mut app.conn());
    let got = send(call(&app, Method::PATCH, &format!("/v1/clients/{}", ops.id), &writer).json(&repoint));
    expect(got, StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(snapshot::storage(&mut app.conn()), before);
    for credential in [&token, &jwt] {
        // What the credential may read, it reads.
        assert_eq!(send(call(&app, Method::GET, &format!("/v1/clients/{}", ops.id), credential)).0, StatusCode::OK);
        let before = snapshot::storage(&mut app.conn());
        let got = send(call(&app, Method::PATCH, &format!("/v1/clients/{}", ops.id), credential).json(&repoint));
        expect(got, StatusCode::FORBIDDEN, "delegated_credential");
        let after = snapshot::storage(&mut app.conn());
        assert_eq!(before, after, "nothing changed:\n{}", snapshot::diff(&before, &after));
    }
    // So the code cannot be sent to the app's address.
    let res = ann.get(&authorize_url_to(&app, &ops.id, EVIL_URI, "admin read", &[]));
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "an unregistered redirect URI is a page, not a redirect");

    // She adds the address herself, with her own key: allowed, audited as
    // her key's doing, and her consent to the console is forgotten — the
    // next authorization to the new address asks her again.
    let got = send(call(&app, Method::PATCH, &format!("/v1/clients/{}", ops.id), &own_key).json(&repoint));
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let events = tessera::store::audit::for_target(&mut app.conn(), &ops.id).unwrap();
    let updated = events.iter().rev().find(|e| e.action == "client.updated").expect("client.updated");
    assert_eq!(updated.actor.as_deref(), Some(ann_id.as_str()));
    assert_eq!(updated.credential, Some(format!("api_key:{}", key_id(&app, &own_key))));
    assert_eq!(updated.details, r#"{"consents_forgotten":2}"#, "admin and read, for her");
    let asked = ann.open_authorize(&app, &authorize_url_to(&app, &ops.id, EVIL_URI, "admin read", &[]));
    assert!(asked.is_ok(), "the consent page, not a code: {asked:?}");
    // The pages say who did it, with what, in words.
    let audit = ann.page(&app, &format!("/dashboard/admin/audit?action=client.updated&target={}", ops.id));
    let row = audit.split("<tr><td>").skip(1).find(|r| r.contains("client.updated")).expect("the event's row");
    assert!(row.contains("Administrator <code>admin@localhost</code>") && row.contains("API key “Root”"), "{row}");
    assert!(row.contains("app “Ops console”"), "{row}");
    let overview = ann.page(&app, "/dashboard");
    let row = overview.split("<tr><td>").skip(1).find(|r| r.contains("client.updated")).expect("the event's row");
    assert!(row.contains("with the API key “Root”"), "{row}");
}

/// Finding 2: a `write` access token makes SDK tokens (which never expire
/// and outlive the app's revocation); its own key still does.
fn finding_2_an_apps_token_makes_no_sdk_token(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let client = app.web_client("read write delete");
    let token = code_flow(&app, &bea, &client, "read write delete")["access_token"].as_str().unwrap().to_string();
    let before = snapshot::storage(&mut app.conn());
    expect(send(call(&app, Method::POST, "/v1/sdk-tokens", &token)), StatusCode::FORBIDDEN, "delegated_credential");
    assert_eq!(snapshot::storage(&mut app.conn()), before, "no SDK token was stored");
    assert_eq!(send(call(&app, Method::GET, "/v1/sdk-tokens", &token)).0, StatusCode::OK, "it may read them");
    let (_, key) = crate::trust_boundary::operator_key(&app, &user_id(&app, "bea@example.com"), &[]);
    assert_eq!(send(call(&app, Method::POST, "/v1/sdk-tokens", &key)).0, StatusCode::CREATED);
}

/// Finding 3: after an admin narrowed a client to `read`, its refresh
/// tokens kept minting `write delete` tokens.
fn finding_3_a_grant_holds_no_more_than_the_client_and_person_may_now(backend: Backend) {
    let app = TestApp::start(backend);
    let root = app.root_key();
    let bea = app.person("bea@example.com");
    let client = app.web_client("read write delete");
    let tokens = code_flow(&app, &bea, &client, "read write delete offline_access");
    assert_eq!(tokens["scope"], "delete offline_access read write");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
    // A code issued before the narrowing, redeemed after.
    let pending = bea.approve(&app, &authorize_url(&app, &client.id, "read write delete offline_access", &[]));
    let narrow = |scope: &str| {
        let got = send(
            call(&app, Method::PATCH, &format!("/v1/clients/{}", client.id), &root).json(&json!({ "scope": scope })),
        );
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    };
    narrow("read");

    let introspected = app.post_form(
        "/oauth/introspect",
        &[("token", &refresh_token), ("token_type_hint", "refresh_token")],
        Some(creds(&client)),
    );
    let introspected: Value = introspected.json().unwrap();
    assert_eq!(introspected["scope"], "offline_access read", "what the refresh token would give now: {introspected}");
    let (status, body) = refresh(&app, &client, &refresh_token);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "offline_access read", "the refresh is cut to the client's scope now");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(access, creds(&client))["scope"], "offline_access read");
    let me = send(call(&app, Method::GET, "/v1/me", access));
    assert_eq!(me.1["data"]["permissions"], json!(["read"]), "{}", me.1);
    let (status, body) = redeem(&app, &client, &pending);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "offline_access read", "a code gets what the client may have now");

    // Widening the client again gives the narrowed grant nothing back.
    narrow("read write delete");
    let (status, body) = refresh(&app, &client, body["refresh_token"].as_str().unwrap());
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "offline_access read");

    // An admin's grant loses `admin` when she is demoted.
    let carol = app.person("carol@example.com");
    let carol_id = user_id(&app, "carol@example.com");
    set_role(&app, &carol_id, "admin");
    let ops = app.web_client("read admin");
    let tokens = code_flow(&app, &carol, &ops, "read admin offline_access");
    assert_eq!(tokens["scope"], "admin offline_access read");
    set_role(&app, &carol_id, "member");
    let (status, body) = refresh(&app, &ops, tokens["refresh_token"].as_str().unwrap());
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "offline_access read", "a member holds no admin grant");
}

/// Finding 4: a disabled person's clients kept working — client
/// credentials for a resource server, and other people's refresh tokens
/// for her app.
fn finding_4_a_disabled_persons_clients_stop(backend: Backend) {
    let app = TestApp::start(backend);
    let root = app.root_key();
    app.person("mel@example.com");
    let mel = user_id(&app, "mel@example.com");
    let payments = app.create_resource("https://payments.example", TokenAlg::Rs256, "payments:read");
    let back_end = app.create_client(NewClient {
        name: "Mel's back end".into(),
        scope: "payments:read".into(),
        audiences: vec![payments.identifier.clone()],
        owner_id: Some(mel.clone()),
        ..NewClient::default()
    });
    let web = owned_app(&app, &mel, "read", &[GrantType::RefreshToken]);
    let resource = (payments.id.as_str(), payments.secret.as_str());
    let cc = app.cc_token(&back_end, &[("resource", &payments.identifier)]);
    let cc = cc["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.introspect(&cc, resource)["active"], true);
    let quinn = app.person("quinn@example.com");
    let tokens = code_flow(&app, &quinn, &web, "read offline_access");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(send(call(&app, Method::GET, "/v1/me", &access)).0, StatusCode::OK);

    // An admin's key bound to Mel's back end verifies while she is enabled.
    let (_, bound, _) = app.create_key(&root, json!({ "name": "bound", "client_id": back_end.id }));
    let verify = || {
        send(
            call(&app, Method::POST, "/v1/keys/verify", &root).json(&json!({ "key": bound, "client_id": back_end.id })),
        )
    };
    assert_eq!(verify().1["code"], "VALID");
    let wrong_secret = || {
        let res = app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some((&back_end.id, "nope")));
        res.json::<Value>().unwrap()["error_description"].as_str().unwrap().to_string()
    };
    let before = wrong_secret();

    let got = send(call(&app, Method::DELETE, &format!("/v1/users/{mel}"), &root));
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(verify().1["code"], "REVOKED", "a key bound to her client stops with it");
    assert_eq!(wrong_secret(), before, "a wrong secret learns nothing about her account");

    let res = app.post_form(
        "/oauth/token",
        &[("grant_type", "client_credentials"), ("resource", &payments.identifier)],
        Some(creds(&back_end)),
    );
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().unwrap()["error"], "invalid_client");
    assert_eq!(app.introspect(&cc, resource), inactive(), "her back end's token reads inactive");
    let (status, body) = refresh(&app, &web, tokens["refresh_token"].as_str().unwrap());
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    assert_eq!(
        send(call(&app, Method::GET, "/v1/me", &access)).0,
        StatusCode::UNAUTHORIZED,
        "Quinn's token for her app"
    );
    let res = quinn.get(&authorize_url(&app, &web.id, "read", &[]));
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "her app starts no flow");
}

/// Finding 5: a member's own client with an evil post-logout URI, and one
/// ID token minted once, made `/oauth/logout` a redirector for any visitor
/// without a session, however old the hint.
fn finding_5_logout_without_a_session_redirects_only_for_the_operators_clients(backend: Backend) {
    let app = TestApp::start(backend);
    let mel = app.person("mel@example.com");
    let own = app.create_client(NewClient {
        name: "Mel's app".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "openid".into(),
        post_logout_redirect_uris: vec![EVIL_URI.into()],
        owner_id: Some(user_id(&app, "mel@example.com")),
        ..NewClient::default()
    });
    let hint = crate::oidc::id_token_for(&app, &mel, &own);
    let visitor = crate::support::browser::Person::new("visitor@example.com", "x");
    let bounce = |hint: &str, uri: &str| {
        visitor.get(&crate::oidc::logout_url(&app, &[("id_token_hint", hint), ("post_logout_redirect_uri", uri)]))
    };
    let res = bounce(&hint, EVIL_URI);
    assert_eq!(res.status(), StatusCode::OK, "the signed-out page, not a redirect");
    assert!(res.headers().get("location").is_none());
    assert!(res.text().unwrap().contains(&format!("href=\"{EVIL_URI}\"")), "the target, as a link to follow by hand");

    // The operator's client (no owner) still sends the visitor back…
    let operators = crate::oidc::oidc_client(&app, None);
    let fresh = crate::oidc::id_token_for(&app, &app.admin(), &operators);
    let res = bounce(&fresh, crate::oidc::LOGOUT_URI);
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(crate::support::browser::location(&res), crate::oidc::LOGOUT_URI);
    // … while its hint is younger than a session can live (12 hours).
    app.clock.advance(chrono::Duration::hours(12) + chrono::Duration::minutes(1));
    let res = bounce(&fresh, crate::oidc::LOGOUT_URI);
    assert_eq!(res.status(), StatusCode::OK, "an old hint is never enough to redirect");
    assert!(res.text().unwrap().contains(&format!("href=\"{}\"", crate::oidc::LOGOUT_URI)));
}

/// Finding 6: 3,000 bad client credentials from one address in 5 s all got
/// 401 and each wrote an audit row. Now they count against the address
/// before anything is written (429 once spent), and the rows written for
/// failures are bounded per address and in all.
fn finding_6_failed_client_authentication_is_limited_before_it_is_written(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.ip_rate_limit = 5;
            c.audit_failures_per_minute = 30;
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .with_frozen_clock()
        .start();
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let audited = || {
        use diesel::prelude::*;
        use tessera::store::schema::audit_events;
        audit_events::table
            .filter(audit_events::action.eq("client.auth_failed"))
            .select(audit_events::details)
            .load::<String>(&mut *app.conn())
            .unwrap()
    };
    let wrong = |path: &str, from: &str| {
        let form: &[(&str, &str)] = match path {
            "/oauth/token" => &[("grant_type", "client_credentials")],
            _ => &[("token", "whatever")],
        };
        app.client
            .post(app.url(path))
            .header("x-forwarded-for", from)
            .basic_auth(&client.id, Some("not-the-secret"))
            .form(form)
            .send()
            .unwrap()
    };
    let mut statuses = Vec::new();
    for i in 0..60 {
        let path = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"][i % 3];
        let res = wrong(path, "198.51.100.7");
        statuses.push(res.status().as_u16());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().get("retry-after").is_some());
            assert_eq!(res.json::<Value>().unwrap()["error"], "rate_limit_exceeded");
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 55, "{statuses:?}");
    crate::support::eventually("five rows", || (audited().len() == 5).then_some(()));
    // The address's budget is for failures: its good credentials still work.
    let res = app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some(creds(&client)));
    assert_eq!(res.status(), StatusCode::OK);

    // Two hundred addresses, one failure each: 30 rows in the minute at
    // most (the five above among them).
    for n in 0..200 {
        assert_eq!(wrong("/oauth/token", &format!("203.0.113.{}", n % 250 + 1)).status(), 401);
    }
    crate::support::eventually("thirty rows", || (audited().len() == 30).then_some(()));
    // A minute later, the next row says how many were left out.
    app.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(wrong("/oauth/token", "192.0.2.1").status(), 401);
    let rows = crate::support::eventually("the next row", || Some(audited()).filter(|r| r.len() == 31));
    assert!(rows.iter().any(|d| d.contains(r#""suppressed":175"#)), "{rows:?}");
}

/// A wrong-password sign-in of `email`, from its own browser: the status.
fn wrong_sign_in(app: &TestApp, email: &str) -> StatusCode {
    let browser = crate::support::browser::Person::new(email, "not her password");
    let mut fields = crate::support::browser::hidden_fields(&browser.get(&app.url("/login")).text().unwrap());
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), "not her password".into()));
    browser.post(&app.url("/login"), &fields).status()
}

/// Finding 7: 28 concurrent wrong passwords for one account were all
/// checked (budget: 5), because the throttle was read before argon2 and
/// written after. Thirty attempts are held together right after the
/// throttle let them by: only the account's five get there.
fn finding_7_concurrent_sign_ins_never_exceed_the_throttle(backend: Backend) {
    const ATTEMPTS: usize = 30;
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.signin_rate_limit = 1000;
            c.password_hash_concurrency = 64;
        })
        .start();
    app.person("bea@example.com");
    let reserved = tessera::pause::Armed::arm("signin:reserved", "bea@example.com", ATTEMPTS);
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let statuses: Vec<StatusCode> = std::thread::scope(|s| {
        let attempts: Vec<_> = (0..ATTEMPTS)
            .map(|_| {
                s.spawn(|| {
                    let status = wrong_sign_in(&app, "bea@example.com");
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    status
                })
            })
            .collect();
        // Every attempt is either held past the throttle or answered.
        let settled = || reserved.arrived() + answered.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while settled() < ATTEMPTS {
            let (held, done) = (reserved.arrived(), answered.load(std::sync::atomic::Ordering::SeqCst));
            assert!(std::time::Instant::now() < deadline, "{held} held and {done} answered of {ATTEMPTS}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(reserved.arrived(), 5, "five attempts at once past the throttle, the others refused before");
        reserved.release();
        attempts.into_iter().map(|a| a.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 25, "{statuses:?}");
    let counted = {
        use diesel::prelude::*;
        use tessera::store::schema::login_failures;
        login_failures::table
            .filter(login_failures::subject.eq("email:bea@example.com"))
            .count()
            .get_result::<i64>(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(counted, 5, "five passwords checked and counted, the refused ones not");
    // Her right password, later, still works: nothing else was counted.
    app.clock.advance(chrono::Duration::minutes(16));
    let bea = crate::support::browser::Person::new("bea@example.com", "correct horse battery");
    bea.sign_in(&app);
}

/// Finding 8: with many client addresses, password hashes piled up to a
/// gigabyte and both cores. At most `TESSERA_PASSWORD_HASH_CONCURRENCY`
/// run at once; one more is 503 with `Retry-After` at once, not queued.
fn finding_8_password_hashes_in_flight_are_bounded(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.password_hash_concurrency = 2).start();
    app.person("bea@example.com");
    app.person("cem@example.com");
    let held = tessera::pause::Armed::arm("signin:reserved", "bea@example.com", 2);
    std::thread::scope(|s| {
        let two: Vec<_> = (0..2).map(|_| s.spawn(|| wrong_sign_in(&app, "bea@example.com"))).collect();
        held.wait_for(2);
        // Both hashes are taken: another person's sign-in is refused at once.
        let cem = crate::support::browser::Person::new("cem@example.com", "correct horse battery");
        let mut fields = crate::support::browser::hidden_fields(&cem.get(&app.url("/login")).text().unwrap());
        fields.push(("email".into(), cem.email.clone()));
        fields.push(("password".into(), cem.password.clone()));
        let res = cem.post(&app.url("/login"), &fields);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get("retry-after").unwrap(), "1");
        held.release();
        for attempt in two {
            assert_eq!(attempt.join().unwrap(), StatusCode::UNAUTHORIZED);
        }
        // Nothing was counted against her; with a hash free she signs in.
        cem.sign_in(&app);
    });

    // A password change on /v1 hashes under the same bound.
    let cem_id = user_id(&app, "cem@example.com");
    let (_, key) = crate::trust_boundary::operator_key(&app, &cem_id, &[]);
    let held = tessera::pause::Armed::arm("signin:reserved", "bea@example.com", 2);
    std::thread::scope(|s| {
        let two: Vec<_> = (0..2).map(|_| s.spawn(|| wrong_sign_in(&app, "bea@example.com"))).collect();
        held.wait_for(2);
        let got = send(
            call(&app, Method::PATCH, &format!("/v1/users/{cem_id}"), &key)
                .json(&json!({ "password": "a new password", "current_password": "correct horse battery" })),
        );
        expect(got, StatusCode::SERVICE_UNAVAILABLE, "password_checks_busy");
        held.release();
        for attempt in two {
            attempt.join().unwrap();
        }
    });

    // An attempt still on its way past the throttle holds no hash: two
    // held there, a third person still signs in.
    let waiting = tessera::pause::Armed::arm("signin:reserving", "dee@example.com", 2);
    app.person("dee@example.com");
    std::thread::scope(|s| {
        let two: Vec<_> = (0..2).map(|_| s.spawn(|| wrong_sign_in(&app, "dee@example.com"))).collect();
        waiting.wait_for(2);
        crate::support::browser::Person::new("cem@example.com", "correct horse battery").sign_in(&app);
        waiting.release();
        for attempt in two {
            attempt.join().unwrap();
        }
    });
}

/// Finding 9: a member renamed herself "the operator of this server", and
/// the consent page for her app said it was registered by the operator;
/// user names took bidi controls that client names refused.
fn finding_9_the_consent_page_names_a_person_by_her_email_and_names_hide_nothing(backend: Backend) {
    let app = TestApp::start(backend);
    app.person("mel@example.com");
    let mel = user_id(&app, "mel@example.com");
    let (_, mel_key) = crate::trust_boundary::operator_key(&app, &mel, &[]);
    let renamed = send(
        call(&app, Method::PATCH, &format!("/v1/users/{mel}"), &mel_key)
            .json(&json!({ "name": "the operator of this server" })),
    );
    assert_eq!(renamed.0, StatusCode::OK, "plain words are a name: {}", renamed.1);
    let hers = owned_app(&app, &mel, "read", &[]);
    let bea = app.person("bea@example.com");
    bea.sign_in(&app);
    let page = bea.get(&authorize_url(&app, &hers.id, "read", &[])).text().unwrap();
    assert!(page.contains("registered by mel@example.com, a person with an account on this server"), "{page}");
    assert!(!page.contains("registered by the operator"), "{page}");
    // The operator's own app says so.
    let operators = app.web_client("read");
    let page = bea.get(&authorize_url(&app, &operators.id, "read", &[])).text().unwrap();
    assert!(page.contains("registered by the operator of this server"), "{page}");

    // One rule for every name people read: nothing invisible, nothing
    // that reorders, whoever names what.
    let root = app.root_key();
    for hidden in ["Mel\u{202E}", "Mel\u{200B}", "\u{2066}Mel", "Mel\u{FEFF}"] {
        let before = snapshot::storage(&mut app.conn());
        let got =
            send(call(&app, Method::PATCH, &format!("/v1/users/{mel}"), &mel_key).json(&json!({ "name": hidden })));
        expect(got, StatusCode::BAD_REQUEST, "invalid_name");
        let got = send(
            call(&app, Method::POST, "/v1/users", &root)
                .json(&json!({ "email": "new@example.com", "name": hidden, "password": "correct horse battery" })),
        );
        expect(got, StatusCode::BAD_REQUEST, "invalid_name");
        let got = send(call(&app, Method::POST, "/v1/clients", &mel_key).json(&json!({ "name": hidden })));
        expect(got, StatusCode::BAD_REQUEST, "validation_error");
        let got = send(call(&app, Method::POST, "/v1/api-keys", &mel_key).json(&json!({ "name": hidden })));
        expect(got, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(snapshot::storage(&mut app.conn()), before, "{hidden:?} stored nothing");
    }
    let got =
        send(call(&app, Method::POST, "/v1/users", &root).json(
            &json!({ "email": "moc.elpmaxe\u{202E}@x.example", "name": "X", "password": "correct horse battery" }),
        ));
    expect(got, StatusCode::BAD_REQUEST, "invalid_email");
}

/// The sessions and grants of `email`: (live sessions, live grants).
fn sessions_and_grants(app: &TestApp, user: &str) -> (i64, i64) {
    use diesel::prelude::*;
    use tessera::store::schema::{grants, sessions};
    let mut conn = app.conn();
    let live_sessions = sessions::table.filter(sessions::user_id.eq(user)).count().get_result(&mut *conn).unwrap();
    let live_grants = grants::table
        .filter(grants::user_id.eq(user))
        .filter(grants::revoked_at.is_null())
        .count()
        .get_result(&mut *conn)
        .unwrap();
    (live_sessions, live_grants)
}

/// Finding 10: `tessera user set-password` left the person's sessions and
/// refresh tokens alive (the dashboard's reset ended sessions, not grants).
/// A new password, from the CLI, the dashboard or `/v1`, ends both.
fn finding_10_a_new_password_ends_sessions_and_grants_everywhere(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let bea_id = user_id(&app, "bea@example.com");
    let client = app.web_client("read");
    let signed_in_with_a_grant = |password: &str| {
        let person = crate::support::browser::Person::new("bea@example.com", password);
        let tokens = code_flow(&app, &person, &client, "read offline_access");
        assert_eq!(sessions_and_grants(&app, &bea_id), (1, 1));
        (person, tokens["refresh_token"].as_str().unwrap().to_string())
    };
    let ended = |person: &crate::support::browser::Person, refresh_token: &str| {
        assert_eq!(sessions_and_grants(&app, &bea_id), (0, 0));
        assert_eq!(person.get(&app.url("/dashboard")).status(), StatusCode::FOUND, "signed out");
        let (status, body) = refresh(&app, &client, refresh_token);
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    };

    // The CLI. A code issued before, redeemed after, starts nothing.
    let (person, refresh_token) = signed_in_with_a_grant(&bea.password);
    let pending = person.approve(&app, &authorize_url(&app, &client.id, "read offline_access", &[]));
    let mut cli = crate::support::served::tessera(&app.data_dir());
    cli.env("TESSERA_DATABASE_URL", app.database.url_string())
        .args(["user", "set-password", "--email", "bea@example.com", "--password-stdin"])
        .stdin(std::process::Stdio::piped());
    let mut child = cli.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"second password 2\n").unwrap();
    assert!(child.wait().unwrap().success());
    ended(&person, &refresh_token);
    let (status, body) = redeem(&app, &client, &pending);
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");

    // The dashboard: an admin's reset.
    let (person, refresh_token) = signed_in_with_a_grant("second password 2");
    let admin = app.admin();
    admin.sign_in(&app);
    let csrf = admin.csrf(&app);
    let res = admin.submit(&app, &format!("/dashboard/admin/users/{bea_id}/reset-password"), &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), StatusCode::OK);
    let reset = crate::support::browser::secrets_in(&res.text().unwrap()).pop().expect("the new password, once");
    ended(&person, &refresh_token);

    // /v1: her own key, with her current password (a wrong one changes
    // nothing and counts like a failed sign-in).
    let (person, refresh_token) = signed_in_with_a_grant(&reset);
    let (_, key) = crate::trust_boundary::operator_key(&app, &bea_id, &[]);
    let change = |current: &str| {
        send(
            call(&app, Method::PATCH, &format!("/v1/users/{bea_id}"), &key)
                .json(&json!({ "password": "third password 3", "current_password": current })),
        )
    };
    expect(change("not it"), StatusCode::FORBIDDEN, "invalid_current_password");
    assert_eq!(sessions_and_grants(&app, &bea_id), (1, 1), "a refused change ends nothing");
    let bad_name = send(
        call(&app, Method::PATCH, &format!("/v1/users/{bea_id}"), &key)
            .json(&json!({ "password": "third password 3", "current_password": reset, "name": "Bea\u{202E}" })),
    );
    expect(bad_name, StatusCode::BAD_REQUEST, "invalid_name");
    assert_eq!(sessions_and_grants(&app, &bea_id), (1, 1), "nothing changed: all or nothing");
    assert_eq!(change(&reset).0, StatusCode::OK);
    ended(&person, &refresh_token);
    // An admin sets another person's password without hers; no one sets
    // a password with an app's token.
    let (_, token) = signed_in_with_a_grant("third password 3");
    let _ = token;
    let root = app.root_key();
    let got = send(
        call(&app, Method::PATCH, &format!("/v1/users/{bea_id}"), &root)
            .json(&json!({ "password": "fourth password 4" })),
    );
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(sessions_and_grants(&app, &bea_id), (0, 0));
    crate::support::browser::Person::new("bea@example.com", "fourth password 4").sign_in(&app);
}

/// Consent is per person: a second person authorizing an app the first
/// one approved is asked herself.
fn consent_is_per_person(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let ann = app.admin();
    code_flow(&app, &ann, &client, "read");
    let url = authorize_url(&app, &client.id, "read", &[]);
    let again = ann.open_authorize(&app, &url);
    assert!(again.as_ref().is_err_and(|back| back.contains("code=")), "Ann is not asked twice: {again:?}");
    let bea = app.person("bea@example.com");
    let asked = bea.open_authorize(&app, &url);
    assert!(asked.is_ok(), "Bea is asked, whatever Ann said: {asked:?}");
}

/// Throttled and failed sign-ins are failed authentications like the
/// others: from many addresses at once, at most the audit's bound of rows
/// a minute, however many come.
fn failed_sign_ins_are_audited_within_bounds(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.audit_failures_per_minute = 20;
            c.signin_rate_limit = 1000;
            c.password_hash_concurrency = 64;
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .with_frozen_clock()
        .start();
    app.person("bea@example.com");
    let attempt = |from: &str| {
        let browser = crate::support::browser::Person::new("bea@example.com", "x");
        let mut fields = crate::support::browser::hidden_fields(&browser.get(&app.url("/login")).text().unwrap());
        fields.push(("email".into(), "bea@example.com".into()));
        fields.push(("password".into(), "not her password".into()));
        browser.http.post(app.url("/login")).header("x-forwarded-for", from).form(&fields).send().unwrap().status()
    };
    let statuses: Vec<u16> = (0..100).map(|n| attempt(&format!("203.0.113.{}", n + 1)).as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 95, "{statuses:?}");
    let rows: i64 = {
        use diesel::prelude::*;
        use tessera::store::schema::audit_events;
        audit_events::table
            .filter(audit_events::action.eq_any(["login.failed", "login.throttled"]))
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(rows, 20, "five failures and fifteen of the refusals, the rest counted");
}

/// An approval counts only for the app as its consent page showed it: an
/// owner who renames it, or moves where its codes go, while the page is
/// open, gets no consent recorded and no code.
fn an_approval_counts_only_for_the_app_the_page_showed(backend: Backend) {
    let app = TestApp::start(backend);
    app.person("mel@example.com");
    let mel = user_id(&app, "mel@example.com");
    let (_, mel_key) = crate::trust_boundary::operator_key(&app, &mel, &[]);
    let hers = owned_app(&app, &mel, "read", &[]);
    let bea = app.person("bea@example.com");
    let url = authorize_url(&app, &hers.id, "read", &[]);
    let page = bea.open_authorize(&app, &url).expect("the consent page");
    let got = send(
        call(&app, Method::PATCH, &format!("/v1/clients/{}", hers.id), &mel_key).json(&json!({ "name": "Your bank" })),
    );
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let mut fields = page.clone();
    fields.push(("decision".into(), "approve".into()));
    let res = bea.post(&app.url("/oauth/consent"), &fields);
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "no code for what the page did not show");
    assert!(bea.open_authorize(&app, &url).is_ok(), "nothing was recorded: she is asked again");
}

/// A client an admin disabled is not its registration token's to manage.
fn a_disabled_client_is_not_managed_by_its_registration_token(backend: Backend) {
    use tessera::oauth::registration::RegistrationMode;
    let app = TestApp::builder(backend).with_config(|c| c.registration = RegistrationMode::Open).start();
    let registered = send(app.client.post(app.url("/oauth/register")).json(&json!({
        "client_name": "Self-made", "redirect_uris": [REDIRECT_URI]
    })));
    assert_eq!(registered.0, StatusCode::CREATED, "{}", registered.1);
    let (id, token) =
        (registered.1["client_id"].as_str().unwrap(), registered.1["registration_access_token"].as_str().unwrap());
    let read = || app.client.get(app.url(&format!("/oauth/register/{id}"))).bearer_auth(token).send().unwrap().status();
    assert_eq!(read(), StatusCode::OK);
    tessera::oauth::clients::disable(&mut app.conn(), &app.clock, id, tessera::audit::Actor::Cli).unwrap();
    assert_eq!(read(), StatusCode::UNAUTHORIZED);
    let put = app.client.put(app.url(&format!("/oauth/register/{id}"))).bearer_auth(token).json(&json!({
        "client_id": id, "client_name": "Renamed", "redirect_uris": [EVIL_URI]
    }));
    assert_eq!(put.send().unwrap().status(), StatusCode::UNAUTHORIZED);
}

both_backends!(
    a_disabled_client_is_not_managed_by_its_registration_token,
    an_approval_counts_only_for_the_app_the_page_showed,
    consent_is_per_person,
    failed_sign_ins_are_audited_within_bounds,
    finding_1_a_connected_app_cannot_repoint_her_other_clients,
    finding_2_an_apps_token_makes_no_sdk_token,
    finding_3_a_grant_holds_no_more_than_the_client_and_person_may_now,
    finding_4_a_disabled_persons_clients_stop,
    finding_5_logout_without_a_session_redirects_only_for_the_operators_clients,
    finding_6_failed_client_authentication_is_limited_before_it_is_written,
    finding_7_concurrent_sign_ins_never_exceed_the_throttle,
    finding_8_password_hashes_in_flight_are_bounded,
    finding_9_the_consent_page_names_a_person_by_her_email_and_names_hide_nothing,
    finding_10_a_new_password_ends_sessions_and_grants_everywhere,
);
