//! The dashboard over plain HTTP, as a browser without JavaScript uses it:
//! a cookie-keeping client signs in, reads the pages and posts their forms.
//! Each secret is read from `[data-secret]` and used against `/v1` or the
//! token endpoint, so the page and the API are checked against each other.

use serde_json::Value;
use tessera::apikeys::Mode;

use crate::both_backends;
use crate::support::browser::{Person, dashboard_csrf, location, secrets_in};
use crate::support::oauth::TestClient;
use crate::support::{Backend, TestApp};

/// `/v1` answers for a raw key.
fn v1(app: &TestApp, method: reqwest::Method, path: &str, key: &str) -> (u16, Value) {
    let res = app.client.request(method, app.url(path)).bearer_auth(key).json(&serde_json::json!({})).send().unwrap();
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

fn get_v1(app: &TestApp, path: &str, key: &str) -> u16 {
    v1(app, reqwest::Method::GET, path, key).0
}

fn mode(app: &TestApp) -> &'static str {
    Mode::of(app.config.environment).as_str()
}

/// A member, signed in.
fn member(app: &TestApp, email: &str) -> Person {
    let person = app.person(email);
    person.sign_in(app);
    person
}

/// Posts the create-key form; the answer's status and HTML.
fn create_key(app: &TestApp, person: &Person, extra: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
    let csrf = person.csrf(app);
    let mut form = vec![("csrf_token", csrf.as_str()), ("mode", mode(app))];
    form.extend_from_slice(extra);
    let res = person.submit(app, "/dashboard/api-keys", &form);
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.text().unwrap(), headers)
}

/// The one secret on a page: it appears exactly once in the whole page,
/// inside `[data-secret]`.
fn the_secret(html: &str) -> String {
    let secrets = secrets_in(html);
    assert_eq!(secrets.len(), 1, "one [data-secret] element: {html}");
    let secret = secrets[0].clone();
    assert!(!secret.is_empty());
    assert_eq!(html.matches(&secret).count(), 1, "the secret appears once, in [data-secret]");
    secret
}

fn no_store(headers: &reqwest::header::HeaderMap) {
    assert_eq!(headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
}

/// The key id in the "Key ID" fact of a secret page.
fn key_id_in(html: &str) -> String {
    let start = html.find("key_").expect("a key id");
    html[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn not_signed_in_is_sent_to_sign_in_and_back(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.person("bea@example.com");
    for path in ["/dashboard", "/dashboard/api-keys?tab=x", "/dashboard/apps", "/dashboard/api-keys/key_x"] {
        let res = person.get(&app.url(path));
        assert_eq!(res.status(), 302, "{path}");
        let to = location(&res);
        let expected =
            format!("/login?{}", form_urlencoded::Serializer::new(String::new()).append_pair("next", path).finish());
        assert_eq!(to, expected);
    }
    // A form posted without a session changes nothing and asks to sign in.
    let res = person.submit(&app, "/dashboard/api-keys", &[("name", "x"), ("mode", mode(&app))]);
    assert_eq!(res.status(), 302);
    assert!(tessera::apikeys::list(&mut app.conn(), None).unwrap().is_empty());
    // Signing in from there comes back to the page.
    let login = location(&person.get(&app.url("/dashboard/api-keys?tab=x")));
    let back = person.submit_login(&app, &app.url(&login), &person.password.clone());
    assert_eq!(location(&back), "/dashboard/api-keys?tab=x");
    let page = person.get(&app.url("/dashboard/api-keys?tab=x"));
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    // No inline script: the one script is the copy button's, from /static.
    let html = page.text().unwrap();
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1);
    assert!(scripts[0].starts_with(" src=\"/static/copy.js\" defer></script>"), "{}", scripts[0]);
    assert!(!html.contains(" onclick="));
    let js = app.get("/static/copy.js");
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));

    // The header's sign-out form ends the session.
    let form = html.split("action=\"/logout\"").nth(1).unwrap();
    let token = crate::support::browser::field(&crate::support::browser::hidden_fields(form), "csrf_token").to_string();
    let res = person.submit(&app, "/logout", &[("csrf_token", &token)]);
    assert_eq!(location(&res), "/");
    assert_eq!(person.get(&app.url("/dashboard")).status(), 302);
}

fn a_key_made_in_the_dashboard_is_shown_once_and_works_on_v1(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let (status, html, headers) = create_key(&app, &bea, &[("name", "Billing backend"), ("type", "secret")]);
    assert_eq!(status, 201, "{html}");
    no_store(&headers);
    let raw = the_secret(&html);
    assert!(raw.starts_with(&format!("sk_{}_", mode(&app))), "{raw}");
    assert!(html.contains("will not be shown again"));
    assert!(html.contains("data-copy-target=\"secret\""), "a copy button");
    assert_eq!(get_v1(&app, "/v1/api-keys", &raw), 200);

    // Afterwards the pages show the display form, never the key.
    let id = key_id_in(&html);
    let display = format!("{}…{}", &raw[..8], &raw[raw.len() - 4..]);
    for path in ["/dashboard", "/dashboard/api-keys", &format!("/dashboard/api-keys/{id}")] {
        let page = bea.page(&app, path);
        assert!(!page.contains(&raw), "{path} shows the key");
        assert!(secrets_in(&page).is_empty(), "{path}");
        assert!(page.contains("Billing backend"), "{path}");
        assert!(page.contains(&display) || path == "/dashboard/api-keys" && page.contains(&raw[raw.len() - 4..]));
    }
    let key_page = bea.page(&app, &format!("/dashboard/api-keys/{id}"));
    assert!(key_page.contains("<section id=\"usage\""), "the spot for the usage chart");
}

fn a_restricted_keys_page_matches_what_v1_enforces(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let (status, html, _) = create_key(
        &app,
        &bea,
        &[
            ("name", "Reader"),
            ("type", "restricted"),
            ("permissions", "read"),
            ("allowed_ips", "127.0.0.1\n10.0.0.0/8"),
            ("allowed_endpoints", "GET /v1/api-keys\nGET /v1/api-keys/*"),
        ],
    );
    assert_eq!(status, 201, "{html}");
    let reader = the_secret(&html);
    assert!(reader.starts_with("rk_"), "{reader}");
    let id = key_id_in(&html);
    let page = bea.page(&app, &format!("/dashboard/api-keys/{id}"));
    let dd = |name: &str| {
        let start = page.find(&format!("id=\"{name}\"")).unwrap_or_else(|| panic!("no {name}"));
        page[start..].split("</dd>").next().unwrap().to_string()
    };
    // The page: read only; two IP rules; two endpoints; any referrer.
    assert!(dd("permissions").ends_with(">read"), "{}", dd("permissions"));
    assert!(dd("allowed-ips").contains("127.0.0.1/32") && dd("allowed-ips").contains("10.0.0.0/8"));
    assert!(dd("allowed-endpoints").contains("GET /v1/api-keys/*"));
    assert!(dd("allowed-referrers").ends_with(">any"));
    // /v1: what the page lists passes; another endpoint does not.
    assert_eq!(get_v1(&app, "/v1/api-keys", &reader), 200);
    assert_eq!(get_v1(&app, &format!("/v1/api-keys/{id}"), &reader), 200);
    assert_eq!(get_v1(&app, "/v1/clients", &reader), 403);
    assert_eq!(v1(&app, reqwest::Method::POST, "/v1/api-keys", &reader).0, 403);

    // Without an endpoint rule, "read" alone still refuses a write, and an
    // IP rule that excludes the caller refuses everything.
    let (_, html, _) = create_key(&app, &bea, &[("name", "R2"), ("type", "restricted"), ("permissions", "read")]);
    let read_only = the_secret(&html);
    let (status, body) = v1(&app, reqwest::Method::POST, "/v1/api-keys", &read_only);
    assert_eq!((status, body["code"].as_str()), (403, Some("insufficient_scope")), "{body}");
    let (_, html, _) = create_key(
        &app,
        &bea,
        &[("name", "Far"), ("type", "restricted"), ("permissions", "read"), ("allowed_ips", "203.0.113.7")],
    );
    let far = the_secret(&html);
    let far_page = bea.page(&app, &format!("/dashboard/api-keys/{}", key_id_in(&html)));
    assert!(far_page.contains("203.0.113.7/32"));
    assert_eq!(get_v1(&app, "/v1/api-keys", &far), 403);
}

fn rotating_shows_the_successor_once_and_revoking_asks_first(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let (_, html, _) = create_key(&app, &bea, &[("name", "Worker"), ("type", "secret")]);
    let (old, id) = (the_secret(&html), key_id_in(&html));
    let csrf = bea.csrf(&app);
    let res =
        bea.submit(&app, &format!("/dashboard/api-keys/{id}/rotate"), &[("csrf_token", &csrf), ("expire_old_in", "0")]);
    assert_eq!(res.status(), 200);
    no_store(res.headers());
    let html = res.text().unwrap();
    let new = the_secret(&html);
    let new_id = key_id_in(&html);
    assert_ne!(new, old);
    assert_eq!(get_v1(&app, "/v1/api-keys", &old), 401, "the old key ended now");
    assert_eq!(get_v1(&app, "/v1/api-keys", &new), 200);

    // An overlap of an hour: both keys work until it has passed.
    let csrf = bea.csrf(&app);
    let res = bea.submit(
        &app,
        &format!("/dashboard/api-keys/{new_id}/rotate"),
        &[("csrf_token", &csrf), ("expire_old_in", "3600")],
    );
    assert_eq!(res.status(), 200);
    let html = res.text().unwrap();
    let (newer, newer_id) = (the_secret(&html), key_id_in(&html));
    assert!(html.contains("keeps working for 1 hour"));
    assert_eq!(get_v1(&app, "/v1/api-keys", &new), 200, "within the overlap");
    assert_eq!(get_v1(&app, "/v1/api-keys", &newer), 200);
    app.clock.advance(chrono::Duration::seconds(3601));
    assert_eq!(get_v1(&app, "/v1/api-keys", &new), 401, "after the overlap");
    let (new, new_id) = (newer, newer_id);
    // An hour idle ended the session too: sign in again (a new token).
    assert_eq!(bea.get(&app.url("/dashboard")).status(), 302);
    bea.sign_in(&app);
    let csrf = bea.csrf(&app);
    // An overlap the form does not offer is refused, and nothing rotates.
    let res = bea.submit(
        &app,
        &format!("/dashboard/api-keys/{new_id}/rotate"),
        &[("csrf_token", &csrf), ("expire_old_in", "999999999")],
    );
    assert_eq!(res.status(), 400);
    assert_eq!(get_v1(&app, "/v1/api-keys", &new), 200);

    // Revoke: a confirmation page first, then the post.
    let confirm = bea.page(&app, &format!("/dashboard/api-keys/{new_id}/revoke"));
    assert!(confirm.contains("cannot be undone"));
    assert_eq!(get_v1(&app, "/v1/api-keys", &new), 200, "showing the confirmation revokes nothing");
    let res =
        bea.submit(&app, &format!("/dashboard/api-keys/{new_id}/revoke"), &[("csrf_token", &dashboard_csrf(&confirm))]);
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/dashboard/api-keys/{new_id}"));
    assert_eq!(get_v1(&app, "/v1/api-keys", &new), 401);
    let page = bea.page(&app, &format!("/dashboard/api-keys/{new_id}"));
    assert!(page.contains("status revoked") && !page.contains("id=\"rotate\""));
}

fn a_form_without_or_with_a_foreign_csrf_token_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let cai = member(&app, "cai@example.com");
    let (_, html, _) = create_key(&app, &bea, &[("name", "Kept"), ("type", "secret")]);
    let (raw, id) = (the_secret(&html), key_id_in(&html));
    let foreign = cai.csrf(&app);
    let logout_token = {
        let page = bea.page(&app, "/dashboard");
        let form = page.split("action=\"/logout\"").nth(1).unwrap().to_string();
        crate::support::browser::field(&crate::support::browser::hidden_fields(&form), "csrf_token").to_string()
    };
    let app_form = [
        ("name", "App"),
        ("client_type", "confidential"),
        ("redirect_uris", "https://a.example.com/cb"),
        ("scope", "read"),
    ];
    for token in [None, Some(foreign.as_str()), Some(logout_token.as_str()), Some("")] {
        let with = |fields: &[(&'static str, &'static str)]| {
            let mut f: Vec<(&str, &str)> = fields.to_vec();
            if let Some(t) = token {
                f.push(("csrf_token", t));
            }
            f
        };
        let res = bea.submit(&app, "/dashboard/api-keys", &with(&[("name", "Sneaky"), ("mode", mode(&app))]));
        assert_eq!(res.status(), 403, "{token:?}");
        assert!(!res.text().unwrap().contains("sk_"));
        assert_eq!(bea.submit(&app, &format!("/dashboard/api-keys/{id}/revoke"), &with(&[])).status(), 403);
        assert_eq!(
            bea.submit(&app, &format!("/dashboard/api-keys/{id}/rotate"), &with(&[("expire_old_in", "0")])).status(),
            403
        );
        assert_eq!(bea.submit(&app, "/dashboard/apps", &with(&app_form)).status(), 403);
    }
    assert_eq!(tessera::apikeys::list(&mut app.conn(), None).unwrap().len(), 1, "no key made or rotated");
    assert!(tessera::oauth::clients::list(&mut app.conn()).unwrap().is_empty());
    assert_eq!(get_v1(&app, "/v1/api-keys", &raw), 200, "still works");
}

fn another_members_keys_and_apps_read_as_not_found(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let cai = member(&app, "cai@example.com");
    let (_, html, _) = create_key(&app, &bea, &[("name", "Bea's"), ("type", "secret")]);
    let (raw, id) = (the_secret(&html), key_id_in(&html));
    let (client_id, client_secret) = register_app(&app, &bea, &[]);
    // Every secret row of Bea's app, live or not: (id, fingerprint, expires_at).
    let secret_rows = || -> Vec<(String, String, Option<chrono::NaiveDateTime>)> {
        use diesel::prelude::*;
        use tessera::store::schema::client_secrets as cs;
        cs::table
            .filter(cs::client_id.eq(&client_id))
            .order(cs::id)
            .select((cs::id, cs::fingerprint, cs::expires_at))
            .load(&mut *app.conn())
            .unwrap()
    };
    let secrets_before = secret_rows();
    assert_eq!(secrets_before.len(), 1, "{secrets_before:?}");
    assert_eq!(secrets_before[0].2, None, "the one secret does not expire");
    assert_eq!(token_status(&app, &client_id, &client_secret), 200);
    let csrf = cai.csrf(&app);
    for path in [
        format!("/dashboard/api-keys/{id}"),
        format!("/dashboard/api-keys/{id}/revoke"),
        format!("/dashboard/apps/{client_id}"),
        format!("/dashboard/apps/{client_id}/disable"),
    ] {
        assert_eq!(cai.get(&app.url(&path)).status(), 404, "GET {path}");
    }
    for (path, extra) in [
        (format!("/dashboard/api-keys/{id}/revoke"), None),
        (format!("/dashboard/api-keys/{id}/rotate"), Some(("expire_old_in", "0"))),
        (format!("/dashboard/apps/{client_id}/disable"), None),
        (format!("/dashboard/apps/{client_id}/rotate-secret"), Some(("expire_old_in", "0"))),
        (format!("/dashboard/apps/{client_id}"), Some(("name", "Mine now"))),
    ] {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend(extra);
        assert_eq!(cai.submit(&app, &path, &form).status(), 404, "POST {path}");
    }
    assert_eq!(get_v1(&app, "/v1/api-keys", &raw), 200);
    let client = tessera::oauth::clients::find(&mut app.conn(), &client_id).unwrap().unwrap();
    assert!(!client.disabled && client.name == "Photo Printer");
    // The refused rotation (with no overlap asked) made no secret and
    // ended none: the same single row, and the old secret still works.
    assert_eq!(secret_rows(), secrets_before, "no new secret row, the old one's expiry unchanged");
    assert_eq!(token_status(&app, &client_id, &client_secret), 200, "the old secret still authenticates");
    // Nor does either show up in the other's lists.
    let listing = cai.page(&app, "/dashboard");
    assert!(!listing.contains(&id) && !listing.contains(&client_id));
}

/// Registers an app from the dashboard; its client id and secret.
fn register_app(app: &TestApp, person: &Person, extra: &[(&str, &str)]) -> (String, String) {
    let csrf = dashboard_csrf(&person.page(app, "/dashboard/apps"));
    let mut form = vec![
        ("csrf_token", csrf.as_str()),
        ("name", "Photo Printer"),
        ("client_type", "confidential"),
        ("redirect_uris", "https://app.example.com/callback\nhttps://app.example.com/other"),
        ("scope", "read"),
        ("grant_types", "authorization_code"),
        ("grant_types", "refresh_token"),
        ("grant_types", "client_credentials"),
    ];
    form.extend_from_slice(extra);
    let res = person.submit(app, "/dashboard/apps", &form);
    assert_eq!(res.status(), 201);
    no_store(res.headers());
    let html = res.text().unwrap();
    let secret = the_secret(&html);
    let start = html.find("cl_").expect("a client id");
    let id: String = html[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (id, secret)
}

fn token_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    app.post_form("/oauth/token", &[("grant_type", "client_credentials")], Some((id, secret))).status().as_u16()
}

fn apps_are_registered_edited_rotated_and_disabled(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let (id, secret) = register_app(&app, &bea, &[]);
    let client = TestClient { id: id.clone(), secret: Some(secret.clone()) };
    app.cc_token(&client, &[]);
    let overview = bea.page(&app, "/dashboard");
    assert!(overview.contains(&id) && !overview.contains(&secret), "the Client ID, never the secret");

    // A public app has a Client ID and no secret.
    let csrf = dashboard_csrf(&bea.page(&app, "/dashboard/apps"));
    let res = bea.submit(
        &app,
        "/dashboard/apps",
        &[
            ("csrf_token", &csrf),
            ("name", "Phone app"),
            ("client_type", "public"),
            ("redirect_uris", "https://phone.example.com/cb"),
            ("scope", "read offline_access"),
            ("grant_types", "authorization_code"),
            ("grant_types", "refresh_token"),
        ],
    );
    assert_eq!(res.status(), 201);
    let html = res.text().unwrap();
    assert!(secrets_in(&html).is_empty() && html.contains("cl_") && html.contains("PKCE"), "{html}");

    // Edit; a bad redirect URI re-renders with the input kept.
    let page = bea.page(&app, &format!("/dashboard/apps/{id}"));
    let csrf = dashboard_csrf(&page);
    let res = bea.submit(
        &app,
        &format!("/dashboard/apps/{id}"),
        &[
            ("csrf_token", &csrf),
            ("name", "Printer <b>2</b>"),
            ("redirect_uris", "javascript:alert(1)"),
            ("scope", "read"),
        ],
    );
    assert_eq!(res.status(), 422);
    let html = res.text().unwrap();
    assert!(html.contains("Printer &#60;b&#62;2&#60;/b&#62;") && !html.contains("<b>2"), "kept, escaped");
    assert!(html.contains("javascript:alert(1)</textarea>"));
    assert!(html.contains("class=\"field-error\""));
    let res = bea.submit(
        &app,
        &format!("/dashboard/apps/{id}"),
        &[
            ("csrf_token", &csrf),
            ("name", "Printer 2"),
            ("redirect_uris", "https://app.example.com/new"),
            ("scope", "read write"),
        ],
    );
    assert_eq!(res.status(), 303);
    let page = bea.page(&app, &location(&res));
    assert!(
        page.contains("Changes saved") && page.contains("Printer 2") && page.contains("https://app.example.com/new")
    );
    // A member may not give an app the admin scope (the service's rule).
    let res = bea.submit(
        &app,
        &format!("/dashboard/apps/{id}"),
        &[
            ("csrf_token", &csrf),
            ("name", "Printer 2"),
            ("redirect_uris", "https://app.example.com/new"),
            ("scope", "admin"),
        ],
    );
    assert_eq!(res.status(), 422);
    assert!(res.text().unwrap().contains("Only an admin may give a client the scope admin"));

    // Rotate with no overlap: the old secret stops, the new one works.
    let res = bea.submit(
        &app,
        &format!("/dashboard/apps/{id}/rotate-secret"),
        &[("csrf_token", &csrf), ("expire_old_in", "0")],
    );
    assert_eq!(res.status(), 200);
    no_store(res.headers());
    let fresh = the_secret(&res.text().unwrap());
    assert_eq!(token_status(&app, &id, &secret), 401);
    assert_eq!(token_status(&app, &id, &fresh), 200);

    // Disable after a confirmation.
    let confirm = bea.page(&app, &format!("/dashboard/apps/{id}/disable"));
    assert_eq!(token_status(&app, &id, &fresh), 200);
    let res = bea.submit(&app, &format!("/dashboard/apps/{id}/disable"), &[("csrf_token", &dashboard_csrf(&confirm))]);
    assert_eq!(res.status(), 303);
    assert_eq!(token_status(&app, &id, &fresh), 401);
    assert!(bea.page(&app, &format!("/dashboard/apps/{id}")).contains("status disabled"));
}

fn form_errors_keep_the_input_beside_a_message_and_escape_names(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = member(&app, "bea@example.com");
    let (status, html, _) = create_key(
        &app,
        &bea,
        &[("name", "<script>alert(1)</script>"), ("type", "restricted"), ("allowed_ips", "not-an-ip")],
    );
    assert_eq!(status, 422, "{html}");
    assert!(!html.contains("<script>alert"), "escaped");
    assert!(html.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\""), "the name is kept");
    assert!(html.contains("not-an-ip</textarea>"), "the restriction is kept");
    assert!(html.contains("class=\"field-error\""));
    assert!(secrets_in(&html).is_empty());
    // The name is escaped in the list too, once created.
    let (status, html, _) = create_key(&app, &bea, &[("name", "<script>alert(1)</script>"), ("type", "secret")]);
    assert_eq!(status, 201);
    assert!(!html.contains("<script>alert"));
    assert!(!bea.page(&app, "/dashboard/api-keys").contains("<script>alert"));
    // A bad expiry is the form's to catch, beside its field.
    let (status, html, _) = create_key(&app, &bea, &[("name", "x"), ("expires_in_days", "soon")]);
    assert_eq!(status, 422);
    assert!(html.contains("whole number of days"));
    assert_eq!(tessera::apikeys::list(&mut app.conn(), None).unwrap().len(), 1);
}

fn the_overview_lists_keys_apps_and_recent_events_about_them(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = app.admin();
    admin.sign_in(&app);
    let (_, html, _) = create_key(&app, &admin, &[("name", "Ops"), ("type", "secret")]);
    let key_id = key_id_in(&html);
    let (client_id, _) = register_app(&app, &admin, &[]);
    // Someone else's key is not "about" the admin's things.
    let bea = member(&app, "bea@example.com");
    let (_, html, _) = create_key(&app, &bea, &[("name", "Bea's"), ("type", "secret")]);
    let beas_key = key_id_in(&html);

    let page = admin.page(&app, "/dashboard");
    assert!(page.contains("Ops") && page.contains(&client_id), "keys and the Client ID");
    let activity = page.split("id=\"events-h\"").nth(1).unwrap();
    assert!(activity.contains("api_key.created") && activity.contains(&key_id), "{activity}");
    assert!(activity.contains("client.created") && activity.contains(&client_id));
    assert!(!activity.contains(&beas_key));
    // A member sees their own keys and the events about them, and nothing
    // about anyone else's.
    let page = bea.page(&app, "/dashboard");
    assert!(page.contains("Bea&#39;s") && !page.contains("Ops") && !page.contains(&client_id), "{page}");
    let activity = page.split("id=\"events-h\"").nth(1).unwrap();
    assert!(activity.contains("api_key.created") && activity.contains(&beas_key), "{activity}");
    assert!(!activity.contains(&key_id) && !activity.contains(&client_id), "{activity}");
}

/// A blocking `/v1` call from inside the browser's async flow: on its own
/// thread, since reqwest's blocking client refuses to run on a runtime.
fn v1_status_from_async(app: &TestApp, path: &str, key: &str) -> u16 {
    let (url, key) = (app.url(path), key.to_string());
    std::thread::spawn(move || {
        crate::support::http_client().get(url).bearer_auth(key).send().map(|r| r.status().as_u16()).unwrap_or(0)
    })
    .join()
    .unwrap()
}

/// Fails the flow with a message (the caller screenshots the page).
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// The dashboard in headless Chromium: sign in, create a restricted key,
/// read it from `[data-secret]`, use it over HTTP, revoke it in the page
/// and see it fail; then rotate a key and register an app. Each page is
/// saved to `target/screenshots/dashboard-*.png`; on failure the last page
/// is saved as `target/screenshots/<test>.png` and its path printed.
fn chromium_creates_uses_and_revokes_a_restricted_key(backend: Backend) {
    use fantoccini::Locator;
    let Some(chromium) = crate::support::browser::Chromium::start() else { return };
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let test_name = "chromium_creates_uses_and_revokes_a_restricted_key";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome: Result<(), String> = runtime.block_on(async {
        let browser = chromium.session().await;
        let flow = async {
            let e = |e: fantoccini::error::CmdError| e.to_string();
            let shot = |name: &'static str| {
                let browser = browser.clone();
                async move { crate::support::browser::save_screenshot(&browser, name).await.map(|_| ()) }
            };
            browser.goto(&app.url("/dashboard")).await.map_err(e)?;
            let at = browser.current_url().await.map_err(e)?;
            check!(at.path() == "/login" && at.query() == Some("next=%2Fdashboard"), "not sent to sign in: {at}");
            browser.find(Locator::Css("input[name=email]")).await.map_err(e)?.send_keys(&bea.email).await.map_err(e)?;
            browser
                .find(Locator::Css("input[name=password]"))
                .await
                .map_err(e)?
                .send_keys(&bea.password)
                .await
                .map_err(e)?;
            browser.find(Locator::Css("button[type=submit]")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Css("nav[aria-label=Dashboard]")).await.map_err(e)?;
            check!(browser.current_url().await.map_err(e)?.path() == "/dashboard", "not back on the dashboard");
            shot("dashboard-overview-empty").await?;

            // A form error first: the message stands beside its field.
            browser.goto(&app.url("/dashboard/api-keys")).await.map_err(e)?;
            browser.find(Locator::Id("create-key")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Id("name-error")).await.map_err(e)?;
            shot("dashboard-api-keys-error").await?;

            // Create a restricted key that may only read its own list.
            browser.goto(&app.url("/dashboard/api-keys")).await.map_err(e)?;
            browser.find(Locator::Id("name")).await.map_err(e)?.send_keys("Reporting job").await.map_err(e)?;
            browser
                .find(Locator::Css("input[name=type][value=restricted]"))
                .await
                .map_err(e)?
                .click()
                .await
                .map_err(e)?;
            browser
                .find(Locator::Css("input[name=permissions][value=read]"))
                .await
                .map_err(e)?
                .click()
                .await
                .map_err(e)?;
            browser.find(Locator::Css("details summary")).await.map_err(e)?.click().await.map_err(e)?;
            browser
                .find(Locator::Id("allowed_endpoints"))
                .await
                .map_err(e)?
                .send_keys("GET /v1/api-keys")
                .await
                .map_err(e)?;
            shot("dashboard-api-keys-form").await?;
            browser.find(Locator::Id("create-key")).await.map_err(e)?.click().await.map_err(e)?;
            let secret = browser.wait().for_element(Locator::Css("[data-secret]")).await.map_err(e)?;
            let raw = secret.text().await.map_err(e)?.trim().to_string();
            check!(raw.starts_with("rk_"), "not a restricted key: {raw:?}");
            let copy = browser.find(Locator::Css("button.copy")).await.map_err(e)?;
            check!(copy.is_displayed().await.map_err(e)?, "copy.js did not reveal the copy button");
            shot("dashboard-api-key-created").await?;

            // It works over HTTP, within its rules.
            check!(v1_status_from_async(&app, "/v1/api-keys", &raw) == 200, "the new key does not work");
            check!(v1_status_from_async(&app, "/v1/clients", &raw) == 403, "the endpoint rule is not enforced");

            // Its page, then revoke it after the confirmation.
            browser.find(Locator::Css("a.button.primary")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Id("usage")).await.map_err(e)?;
            let text = browser.find(Locator::Css("main")).await.map_err(e)?.text().await.map_err(e)?;
            check!(text.contains("GET /v1/api-keys") && !text.contains(&raw), "the key page: {text}");
            shot("dashboard-api-key").await?;
            browser.find(Locator::Id("revoke")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Id("confirm")).await.map_err(e)?;
            shot("dashboard-api-key-revoke").await?;
            browser.find(Locator::Id("confirm")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Css("h1 .status.revoked")).await.map_err(e)?;
            check!(v1_status_from_async(&app, "/v1/api-keys", &raw) == 401, "the revoked key still works");

            // A secret key, rotated with a day's overlap.
            browser.goto(&app.url("/dashboard/api-keys")).await.map_err(e)?;
            browser.find(Locator::Id("name")).await.map_err(e)?.send_keys("Web backend").await.map_err(e)?;
            browser.find(Locator::Id("create-key")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Css("[data-secret]")).await.map_err(e)?;
            browser.find(Locator::Css("a.button.primary")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Id("rotate")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Css("[data-secret]")).await.map_err(e)?;
            shot("dashboard-api-key-rotated").await?;
            browser.goto(&app.url("/dashboard/api-keys")).await.map_err(e)?;
            shot("dashboard-api-keys").await?;

            // An app: register, its page, the disable confirmation.
            browser.goto(&app.url("/dashboard/apps")).await.map_err(e)?;
            browser.find(Locator::Id("name")).await.map_err(e)?.send_keys("Photo Printer").await.map_err(e)?;
            browser
                .find(Locator::Id("redirect_uris"))
                .await
                .map_err(e)?
                .send_keys("https://app.example.com/callback")
                .await
                .map_err(e)?;
            shot("dashboard-apps-form").await?;
            browser.find(Locator::Id("create-app")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Css("[data-secret]")).await.map_err(e)?;
            shot("dashboard-app-created").await?;
            browser.find(Locator::Css("a.button.primary")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Id("save-app")).await.map_err(e)?;
            shot("dashboard-app").await?;
            browser.find(Locator::Id("disable")).await.map_err(e)?.click().await.map_err(e)?;
            browser.wait().for_element(Locator::Id("confirm")).await.map_err(e)?;
            shot("dashboard-app-disable").await?;
            browser.goto(&app.url("/dashboard/apps")).await.map_err(e)?;
            shot("dashboard-apps").await?;
            browser.goto(&app.url("/dashboard")).await.map_err(e)?;
            shot("dashboard-overview").await?;
            Ok(())
        }
        .await;
        if let Err(why) = &flow {
            match crate::support::browser::save_screenshot(&browser, test_name).await {
                Ok(path) => eprintln!("{test_name} failed ({why}); screenshot of the last page: {}", path.display()),
                Err(e) => eprintln!("{test_name} failed ({why}); no screenshot: {e}"),
            }
        }
        let _ = browser.close().await;
        flow
    });
    if let Err(why) = outcome {
        panic!("{why}");
    }
}

both_backends!(
    not_signed_in_is_sent_to_sign_in_and_back,
    a_key_made_in_the_dashboard_is_shown_once_and_works_on_v1,
    a_restricted_keys_page_matches_what_v1_enforces,
    rotating_shows_the_successor_once_and_revoking_asks_first,
    a_form_without_or_with_a_foreign_csrf_token_changes_nothing,
    another_members_keys_and_apps_read_as_not_found,
    apps_are_registered_edited_rotated_and_disabled,
    form_errors_keep_the_input_beside_a_message_and_escape_names,
    the_overview_lists_keys_apps_and_recent_events_about_them,
    chromium_creates_uses_and_revokes_a_restricted_key,
);
