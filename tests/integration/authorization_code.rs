//! The authorization code flow with PKCE: the `oauth2` crate builds the URL
//! and exchanges the code while a cookie-keeping client signs in and
//! approves; then every rule of the authorization endpoint, the code and
//! the consent page.

use chrono::Duration;
use oauth2::TokenResponse;
use reqwest::StatusCode;
use serde_json::Value;
use tessera::oauth::authorize::s256;
use tessera::oauth::clients::{self, GrantType, NewClient};

use crate::both_backends;
use crate::support::browser::{
    REDIRECT_URI, authorization_url, code, field, hidden_fields, location, oauth2_http, param,
};
use crate::support::oauth::{TestClient, verify_access_token};
use crate::support::{Backend, TestApp};

/// A hand-built authorization URL: `pairs` as given, nothing added.
fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{}?{}", app.url("/oauth/authorize"), q.finish())
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk_a_long_enough_verifier";

/// The parameters of a good request for `client`.
fn good(client: &TestClient) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client.id.clone()),
        ("redirect_uri", REDIRECT_URI.into()),
        ("scope", "read".into()),
        ("state", "xyz<&>\"'".into()),
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

fn url_of(app: &TestApp, pairs: &[(&'static str, String)]) -> String {
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    authorize_url(app, &refs)
}

fn with(
    mut pairs: Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    pairs.retain(|(k, _)| *k != name);
    if let Some(v) = value {
        pairs.push((name, v.into()));
    }
    pairs
}

/// Redeems a code by hand with client_secret_basic.
fn exchange(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    verifier: &str,
    redirect: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("code_verifier", verifier)];
    if let Some(r) = redirect {
        form.push(("redirect_uri", r));
    }
    let res = app.post_form("/oauth/token", &form, Some((&client.id, client.secret())));
    let status = res.status();
    (status, res.json().unwrap())
}

fn whole_flow_with_the_oauth2_crate(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read write");
    let oauth = app.oauth2_client(&client);
    let person = app.admin();
    let (url, state, verifier) = authorization_url(&oauth, &["read", "offline_access"]);

    // Not signed in: to the sign-in page, then back to the same request.
    let fields = person.open_authorize(&app, &url).expect("a consent page");
    let back = person.decide(&app, fields, "approve");
    assert!(back.starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(param(&back, "iss").as_deref(), Some(app.issuer().as_str()));
    let code_value = param(&back, "code").unwrap();

    let http = oauth2_http();
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&http).unwrap();
    let scopes: Vec<&str> = token.scopes().unwrap().iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["offline_access", "read"]);
    let data = verify_access_token(&app, token.access_token().secret(), &app.default_audience(), None);
    let admin_id = tessera::store::users::find_by_email(&mut app.conn(), &person.email).unwrap().unwrap().id;
    assert_eq!(data.claims["sub"], admin_id.as_str(), "sub is the person");
    assert_eq!(data.claims["client_id"], client.id.as_str());

    // The refresh token works through the crate too, and rotates.
    let refresh = token.refresh_token().expect("offline_access gives a refresh token").clone();
    let renewed = oauth.exchange_refresh_token(&refresh).request(&http).unwrap();
    let next = renewed.refresh_token().expect("a new refresh token");
    assert_ne!(next.secret(), refresh.secret());

    // A second authorization with the same scopes skips the consent page.
    let (url, _, verifier) = authorization_url(&oauth, &["read"]);
    let back = person.open_authorize(&app, &url).expect_err("no consent page the second time");
    let code_value = param(&back, "code").expect("a code at once");
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&http).unwrap();
    assert!(token.refresh_token().is_none(), "no offline_access, no refresh token");
}

fn public_client_uses_pkce_without_a_secret(backend: Backend) {
    let app = TestApp::start(backend);
    let spa = app.create_client(NewClient {
        name: "SPA".into(),
        public: true,
        redirect_uris: vec![REDIRECT_URI.into()],
        scope: "read".into(),
        ..NewClient::default()
    });
    let oauth = app.oauth2_client(&spa);
    let (url, _, verifier) = authorization_url(&oauth, &["read"]);
    let code_value = app.admin().approve(&app, &url);
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    assert!(!token.access_token().secret().is_empty());
}

fn bad_client_or_redirect_uri_shows_a_page_and_never_redirects(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let person = app.admin();
    person.sign_in(&app);
    let cases = [
        with(good(&client), "redirect_uri", Some("https://evil.example.com/callback")),
        with(good(&client), "redirect_uri", Some("https://app.example.com/callback/../evil")),
        with(good(&client), "redirect_uri", Some("https://app.example.com/callback.evil.com")),
        with(good(&client), "redirect_uri", Some("https://app.example.com/callbackx")),
        with(good(&client), "redirect_uri", Some("https://app.example.com:8443/callback")),
        with(good(&client), "redirect_uri", Some("https://app.example.com/CALLBACK")),
        with(good(&client), "redirect_uri", Some("https://app.example.com/callback?x=1")),
        with(good(&client), "redirect_uri", Some("javascript:alert(1)")),
        // Missing while two are registered.
        with(good(&client), "redirect_uri", None),
        with(good(&client), "client_id", Some("cl_unknown")),
        with(good(&client), "client_id", None),
        // Repeated client_id.
        [good(&client), vec![("client_id", client.id.clone())]].concat(),
    ];
    for pairs in cases {
        let res = person.get(&url_of(&app, &pairs));
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(res.headers().get("location").is_none(), "never a redirect: {pairs:?}");
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let html = res.text().unwrap();
        assert!(html.contains(&id), "the page shows the request id");
        assert!(!html.contains("<script") && !html.contains("javascript:alert"), "no reflected input");
    }
    // Scheme and host compare case-insensitively (RFC 3986 §6.2.2.1).
    let pairs = with(good(&client), "redirect_uri", Some("HTTPS://APP.EXAMPLE.COM/callback"));
    let fields = person.open_authorize(&app, &url_of(&app, &pairs)).expect("a consent page");
    let back = person.decide(&app, fields, "approve");
    assert!(back.starts_with("HTTPS://APP.EXAMPLE.COM/callback?"), "{back}");

    // A disabled client is unknown.
    clients::disable(&mut app.conn(), &app.clock, &client.id, tessera::audit::Actor::Cli).unwrap();
    assert_eq!(person.get(&url_of(&app, &good(&client))).status(), StatusCode::BAD_REQUEST);
}

fn later_errors_redirect_with_state_and_iss(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let person = app.admin();
    person.sign_in(&app);
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (with(good(&client), "response_type", Some("token")), "unsupported_response_type"),
        (with(good(&client), "response_type", None), "invalid_request"),
        (with(good(&client), "code_challenge", None), "invalid_request"),
        (with(good(&client), "code_challenge_method", Some("plain")), "invalid_request"),
        (with(good(&client), "code_challenge_method", None), "invalid_request"),
        (with(good(&client), "code_challenge", Some("short")), "invalid_request"),
        ([good(&client), vec![("scope", "read".into())]].concat(), "invalid_request"),
        (with(good(&client), "scope", Some("read admin")), "invalid_scope"),
        (with(good(&client), "scope", Some("re\"ad")), "invalid_scope"),
        (with(good(&client), "resource", Some("https://unknown.example.com")), "invalid_target"),
        (with(good(&client), "prompt", Some("select_account")), "invalid_request"),
    ];
    for (pairs, error) in cases {
        let back = location(&person.get(&url_of(&app, &pairs)));
        assert!(back.starts_with(REDIRECT_URI), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{pairs:?} → {back}");
        assert!(param(&back, "error_description").is_some());
        assert_eq!(param(&back, "state").as_deref(), Some("xyz<&>\"'"), "state verbatim");
        assert_eq!(param(&back, "iss").as_deref(), Some(app.issuer().as_str()));
        assert!(param(&back, "code").is_none());
    }
    // A client without the code grant.
    let cc = app.create_client(NewClient {
        name: "Machine".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::ClientCredentials],
        ..NewClient::default()
    });
    let back = location(&person.get(&url_of(&app, &good(&cc))));
    assert_eq!(param(&back, "error").as_deref(), Some("unauthorized_client"));
}

fn pkce_and_code_rules(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let other = app.web_client("read");
    let person = app.admin();
    let fresh_code = || person.approve(&app, &url_of(&app, &good(&client)));

    // Wrong verifier, malformed verifiers, missing verifier.
    let c = fresh_code();
    let (status, body) = exchange(&app, &client, &c, &format!("{VERIFIER}x"), Some(REDIRECT_URI));
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    for bad in ["short", &"a".repeat(129), &format!("{}+/", &VERIFIER[..50])] {
        let (status, body) = exchange(&app, &client, &c, bad, Some(REDIRECT_URI));
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{bad}");
    }
    let res = app.post_form(
        "/oauth/token",
        &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", REDIRECT_URI)],
        Some((&client.id, client.secret())),
    );
    assert_eq!(res.json::<Value>().unwrap()["error"], "invalid_request");
    // Another redirect URI, another client.
    let (_, body) = exchange(&app, &client, &c, VERIFIER, Some("https://app.example.com/other"));
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange(&app, &client, &c, VERIFIER, None);
    assert_eq!(body["error"], "invalid_grant", "redirect_uri was in the request, so it is required");
    let (_, body) = exchange(&app, &other, &c, VERIFIER, Some(REDIRECT_URI));
    assert_eq!(body["error"], "invalid_grant");
    // The right one works (the failures above did not burn it).
    let (status, first) = exchange(&app, &client, &c, VERIFIER, Some(REDIRECT_URI));
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(access, (&client.id, client.secret()))["active"], true);

    // Replay: refused, and the first use's token is revoked.
    let (_, body) = exchange(&app, &client, &c, VERIFIER, Some(REDIRECT_URI));
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(app.introspect(access, (&client.id, client.secret()))["active"], false);

    // Expiry after 60 seconds, on the injected clock.
    let c = fresh_code();
    app.clock.advance(Duration::seconds(61));
    let (_, body) = exchange(&app, &client, &c, VERIFIER, Some(REDIRECT_URI));
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("expired"));
    // Unknown code.
    let (_, body) = exchange(&app, &client, "nonsense", VERIFIER, Some(REDIRECT_URI));
    assert_eq!(body["error"], "invalid_grant");
}

fn consent_rules(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read write");
    let person = app.admin();

    // Deny → access_denied.
    let fields = person.open_authorize(&app, &url_of(&app, &good(&client))).unwrap();
    let back = person.decide(&app, fields.clone(), "deny");
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("xyz<&>\"'"));

    // CSRF: missing, altered, or a request changed under the token → 400, no code.
    let without: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "csrf_token").cloned().collect();
    let tampered_scope: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| if k == "scope" { (k.clone(), "read write".into()) } else { (k.clone(), v.clone()) })
        .collect();
    for form in [without, tampered_scope] {
        let mut form = form;
        form.push(("decision".into(), "approve".into()));
        let res = person.post(&app.url("/oauth/consent"), &form);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers().get("location").is_none());
    }
    // From another session: someone else's browser replays this form.
    let intruder = app.person("mallory@example.com");
    intruder.sign_in(&app);
    let mut form = fields.clone();
    form.push(("decision".into(), "approve".into()));
    let res = intruder.post(&app.url("/oauth/consent"), &form);
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Without any session.
    let res = app.client.post(app.url("/oauth/consent")).form(&form).send().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The consent page is not framable and names app, owner and scopes.
    let page = person.get(&url_of(&app, &good(&client)));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let html = page.text().unwrap();
    assert!(html.contains("Photo Printer") && html.contains("Read your data") && html.contains("registered by"));
    assert!(!html.contains("xyz<&>"), "state is escaped in the form");

    // prompt=none without consent → consent_required; without a session → login_required.
    let back = location(&person.get(&url_of(&app, &with(good(&client), "prompt", Some("none")))));
    assert_eq!(param(&back, "error").as_deref(), Some("consent_required"));
    let stranger = crate::support::browser::Person::new("x@example.com", "irrelevant");
    let back = location(&stranger.get(&url_of(&app, &with(good(&client), "prompt", Some("none")))));
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));

    // Approve → remembered: the same scope skips the page; a new scope shows only it.
    person.approve(&app, &url_of(&app, &good(&client)));
    let back = location(&person.get(&url_of(&app, &good(&client))));
    assert!(param(&back, "code").is_some(), "remembered consent skips the page");
    let back = location(&person.get(&url_of(&app, &with(good(&client), "prompt", Some("none")))));
    assert!(param(&back, "code").is_some(), "prompt=none works once consented");
    let wider = with(good(&client), "scope", Some("read write"));
    let page = person.get(&url_of(&app, &wider)).text().unwrap();
    assert!(page.contains("<code>write</code>") && !page.contains("<code>read</code>"), "only the new scope");
    // prompt=consent always shows the page, though `read` was approved
    // before: the whole form, asking for every scope again (none listed as
    // allowed earlier), and approving it issues a code.
    let forced = with(good(&client), "prompt", Some("consent"));
    let res = person.get(&url_of(&app, &forced));
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().unwrap();
    assert!(html.contains("action=\"/oauth/consent\"") && html.contains("id=\"approve\""), "a consent form: {html}");
    assert!(html.contains("Read your data") && html.contains("<code>read</code>"), "the scope is listed: {html}");
    assert!(!html.contains("You allowed it earlier"), "asked again, not shown as granted: {html}");
    let fields = hidden_fields(&html);
    for (name, value) in &forced {
        assert_eq!(field(&fields, name), value.as_str(), "the form carries the request's {name}");
    }
    assert!(!field(&fields, "csrf_token").is_empty());
    let back = person.decide(&app, fields, "approve");
    assert!(back.starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("xyz<&>\"'"));
    let c = param(&back, "code").unwrap_or_else(|| panic!("approving issues a code: {back}"));
    let (status, body) = exchange(&app, &client, &c, VERIFIER, Some(REDIRECT_URI));
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("read")), "{body}");
}

fn redirect_uris_at_registration(backend: Backend) {
    let app = TestApp::start(backend);
    let register = |uri: &str| {
        clients::create(
            &mut app.conn(),
            &app.clock,
            &app.master_key,
            NewClient { name: "X".into(), redirect_uris: vec![uri.into()], ..NewClient::default() },
            tessera::audit::Actor::Cli,
        )
    };
    for bad in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,hi",
        "DATA:text/html,hi",
        "vbscript:x",
        "https://app.example.com/cb#frag",
        "http://app.example.com/cb",
        "https://user@app.example.com/cb",
        "/relative",
        "https://",
    ] {
        assert!(register(bad).is_err(), "{bad} must be refused");
    }
    for ok in ["https://app.example.com/cb", "http://localhost:8080/cb", "http://127.0.0.1/cb", "com.example.app:/cb"] {
        assert!(register(ok).is_ok(), "{ok} must be accepted");
    }
}

fn refresh_rules(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read write");
    let other = app.web_client("read write");
    let person = app.admin();
    let refresh_pair = |scope: &str| -> (String, String) {
        let pairs = with(good(&client), "scope", Some(scope));
        let c = person.approve(&app, &url_of(&app, &pairs));
        let (status, body) = exchange(&app, &client, &c, VERIFIER, Some(REDIRECT_URI));
        assert_eq!(status, 200, "{body}");
        (body["access_token"].as_str().unwrap().into(), body["refresh_token"].as_str().unwrap().into())
    };
    let refresh = |who: &TestClient, token: &str, scope: Option<&str>| -> (StatusCode, Value) {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let res = app.post_form("/oauth/token", &form, Some((&who.id, who.secret())));
        (res.status(), res.json().unwrap())
    };
    let active = |token: &str| app.introspect(token, (&client.id, client.secret()))["active"] == true;

    let (access0, r0) = refresh_pair("read write offline_access");
    // Narrower scope is fine; wider is invalid_scope; another client's token fails.
    let (status, body) = refresh(&client, &r0, Some("admin"));
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (_, body) = refresh(&other, &r0, None);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = refresh(&client, &r0, Some("read"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    let access1 = body["access_token"].as_str().unwrap().to_string();
    let r1 = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r0);
    // The rotated token keeps the grant's full scope.
    let (status, body) = refresh(&client, &r1, Some("write"));
    assert_eq!(status, 200, "{body}");
    let r2 = body["refresh_token"].as_str().unwrap().to_string();
    let access2 = body["access_token"].as_str().unwrap().to_string();
    assert!(active(&access0) && active(&access1) && active(&access2));
    // The refresh token introspects as active for its client.
    let info = app.introspect(&r2, (&client.id, client.secret()));
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "refresh_token");

    // Reuse of a retired token revokes the family: every token in it.
    let (_, body) = refresh(&client, &r0, None);
    assert_eq!(body["error"], "invalid_grant");
    assert!(!active(&access0) && !active(&access1) && !active(&access2), "the family's access tokens are revoked");
    let (_, body) = refresh(&client, &r2, None);
    assert_eq!(body["error"], "invalid_grant", "the newest refresh token is revoked too");

    // Revoking a refresh token (RFC 7009) revokes its family.
    let (access, r) = refresh_pair("read offline_access");
    let res = app.post_form(
        "/oauth/revoke",
        &[("token", &r), ("token_type_hint", "refresh_token")],
        Some((&client.id, client.secret())),
    );
    assert_eq!(res.status(), 200);
    assert!(!active(&access));
    assert_eq!(refresh(&client, &r, None).1["error"], "invalid_grant");

    // Idle expiry, on the injected clock.
    let (_, r) = refresh_pair("read offline_access");
    app.clock.advance(Duration::from_std(app.config.refresh_token_idle_ttl).unwrap() + Duration::seconds(1));
    assert_eq!(refresh(&client, &r, None).1["error"], "invalid_grant");
}

fn sign_in_rules(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.login_max_failures = 3).start();
    let person = app.admin();
    let bea = app.person("bea@example.com");

    // Wrong password and unknown email read the same.
    let wrong = person.submit_login(&app, &app.url("/login"), "not the password");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_html = wrong.text().unwrap();
    let nobody = crate::support::browser::Person::new("nobody@example.com", "whatever1");
    let unknown = nobody.submit_login(&app, &app.url("/login"), "whatever1");
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong_html.contains("Wrong email or password") && unknown.text().unwrap().contains("Wrong email or password")
    );
    // A form without its CSRF cookie (posted from elsewhere) is refused.
    let res = reqwest::blocking::Client::new()
        .post(app.url("/login"))
        .form(&[("email", person.email.as_str()), ("password", person.password.as_str()), ("csrf_token", "x")])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Throttling after N failures, per account: 429, Retry-After, in words.
    for _ in 0..2 {
        assert_eq!(person.submit_login(&app, &app.url("/login"), "wrong").status(), 401);
    }
    let throttled = person.submit_login(&app, &app.url("/login"), &person.password.clone());
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    assert!(throttled.text().unwrap().contains("try again in"));
    // Another account from the same IP is not yet throttled.
    bea.sign_in(&app);
    // The window passes (injected clock).
    app.clock.advance(Duration::seconds(retry as i64 + 1));
    person.sign_in(&app);

    // The session id changes at sign-in; logout ends it server-side.
    let first = person.session_cookie(&app).unwrap();
    person.sign_in(&app);
    let second = person.session_cookie(&app).unwrap();
    assert_ne!(first, second, "a new session id at each sign-in");
    let stale = reqwest::blocking::Client::new()
        .get(app.url("/"))
        .header("cookie", format!("tessera_session={first}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!stale.contains("Signed in as"), "the replaced session is gone");
    let home = person.get(&app.url("/")).text().unwrap();
    assert!(home.contains("Signed in as"));
    let fields = crate::support::browser::hidden_fields(&home);
    let res = person.post(&app.url("/logout"), &fields);
    assert_eq!(res.status(), 302);
    let replay = reqwest::blocking::Client::new()
        .get(app.url("/"))
        .header("cookie", format!("tessera_session={second}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!replay.contains("Signed in as"), "the session ended server-side");

    // Every sign-in, failure and logout is audited.
    use diesel::prelude::*;
    use tessera::store::schema::audit_events::dsl::*;
    let actions: Vec<String> = audit_events.select(action).load(&mut *app.conn()).unwrap();
    for a in ["login.succeeded", "login.failed", "login.throttled", "logout"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

/// Session cookie attributes, and the per-IP throttle that holds across
/// accounts.
fn session_cookie_attributes_and_ip_throttle(backend: Backend) {
    for (issuer, secure) in [(None, false), (Some("https://auth.example.com"), true)] {
        let app = TestApp::builder(backend.clone())
            .with_config(move |c| {
                c.issuer = issuer.map(str::to_string);
                c.login_max_failures = 2;
            })
            .start();
        let person = app.admin();
        let res = person.submit_login(&app, &app.url("/login"), &person.password.clone());
        assert_eq!(res.status(), 302);
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("tessera_session="))
            .expect("a session cookie");
        let value = cookie.split(';').next().unwrap().trim_start_matches("tessera_session=");
        assert!(value.len() >= 43, "256 bits");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attr), "{attr} in {cookie}");
        }
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
        // The database keeps only the fingerprint.
        use diesel::prelude::*;
        let ids: Vec<String> = tessera::store::schema::sessions::table
            .select(tessera::store::schema::sessions::id)
            .load(&mut *app.conn())
            .unwrap();
        assert!(ids.contains(&tessera::crypto::fingerprint(value)) && !ids.iter().any(|i| i == value));

        if secure {
            continue;
        }
        // Per IP: 4 × 2 failures over several accounts, then even a fresh
        // account from this IP waits.
        for i in 0..8 {
            let p = crate::support::browser::Person::new(&format!("guess{i}@example.com"), "x");
            assert_eq!(p.submit_login(&app, &app.url("/login"), "wrong password").status(), 401);
        }
        let bea = app.person("bea@example.com");
        let res = bea.submit_login(&app, &app.url("/login"), &bea.password.clone());
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

both_backends!(
    session_cookie_attributes_and_ip_throttle,
    whole_flow_with_the_oauth2_crate,
    public_client_uses_pkce_without_a_secret,
    bad_client_or_redirect_uri_shows_a_page_and_never_redirects,
    later_errors_redirect_with_state_and_iss,
    pkce_and_code_rules,
    consent_rules,
    redirect_uris_at_registration,
    refresh_rules,
    sign_in_rules,
);
