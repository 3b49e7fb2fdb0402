//! The connected-apps page and the admin pages, with a plain HTTP client
//! posting the forms (no JavaScript): every action works, a member gets
//! 403 on every admin page, and CSRF-less posts change nothing.

use oauth2::TokenResponse;

use crate::both_backends;
use crate::support::browser::{
    Person, authorization_url, code, dashboard_csrf, field, oauth2_http, refusal, secrets_in,
};
use crate::support::{Backend, TestApp};

/// What the token endpoint answers a refresh token whose app was revoked.
fn revoked_refresh() -> (String, String) {
    ("invalid_grant".into(), "the refresh token has been revoked".into())
}

fn signed_in_admin(app: &TestApp) -> Person {
    let admin = app.admin();
    admin.sign_in(app);
    admin
}

fn the_secret(html: &str) -> String {
    let secrets = secrets_in(html);
    assert_eq!(secrets.len(), 1, "exactly one secret on the page");
    assert_eq!(html.matches(secrets[0].as_str()).count(), 1, "the secret appears once");
    secrets[0].clone()
}

fn connected_apps_are_listed_and_revoked_from_the_page(backend: Backend) {
    let app = TestApp::start(backend);
    let person = signed_in_admin(&app);
    let client = app.web_client("read offline_access");
    let oauth = app.oauth2_client(&client);
    let (url, _, verifier) = authorization_url(&oauth, &["read", "offline_access"]);
    let code_value = person.approve(&app, &url);
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    let refresh = token.refresh_token().unwrap().clone();

    let page = person.page(&app, "/dashboard/connected-apps");
    assert!(page.contains("Photo Printer") && page.contains(&client.id), "{page}");
    assert!(page.contains("offline_access read"));
    let csrf = dashboard_csrf(&page);
    let revoke = format!("/dashboard/connected-apps/{}/revoke", client.id);

    // Without the token nothing happens.
    assert_eq!(person.submit(&app, &revoke, &[]).status(), 403);
    assert!(person.page(&app, "/dashboard/connected-apps").contains(&client.id));

    let res = person.submit(&app, &revoke, &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), 303);
    let page = person.page(&app, "/dashboard/connected-apps");
    assert!(page.contains("No app has access"), "{page}");
    assert_eq!(
        refusal(oauth.exchange_refresh_token(&refresh).request(&oauth2_http())),
        revoked_refresh(),
        "the refresh token fails"
    );
    let (again, _, _) = authorization_url(&oauth, &["read"]);
    let fields = person.open_authorize(&app, &again).unwrap_or_else(|back| panic!("no consent page: sent to {back}"));
    assert_eq!(
        (field(&fields, "client_id"), field(&fields, "scope")),
        (client.id.as_str(), "read"),
        "the consent page is back"
    );
    // Twice: nothing left to revoke.
    assert_eq!(person.submit(&app, &revoke, &[("csrf_token", &csrf)]).status(), 404);
}

fn admins_manage_people_resources_and_signing_keys(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = signed_in_admin(&app);
    let page = admin.page(&app, "/dashboard/admin/users");
    let csrf = dashboard_csrf(&page);

    // A new person, with a password shown once that signs in.
    let res = admin.submit(
        &app,
        "/dashboard/admin/users",
        &[("csrf_token", &csrf), ("email", "dee@example.com"), ("name", "<b>Dee</b>")],
    );
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let password = the_secret(&res.text().unwrap());
    let dee = Person::new("dee@example.com", &password);
    dee.sign_in(&app);
    let dee_id = app.user_id("dee@example.com");
    let people = admin.page(&app, "/dashboard/admin/users");
    assert!(people.contains("&#60;b&#62;Dee&#60;/b&#62;") && !people.contains("<b>Dee</b>"), "names are escaped");

    // A taken email keeps the input beside a message.
    let res = admin.submit(
        &app,
        "/dashboard/admin/users",
        &[("csrf_token", &csrf), ("email", "dee@example.com"), ("name", "Other Dee")],
    );
    assert_eq!(res.status(), 409);
    let html = res.text().unwrap();
    assert!(html.contains("exists") && html.contains("value=\"Other Dee\""), "{html}");

    // A reset password ends the old one and Dee's sessions.
    let res = admin.submit(&app, &format!("/dashboard/admin/users/{dee_id}/reset-password"), &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), 200);
    let fresh = the_secret(&res.text().unwrap());
    assert_ne!(fresh, password);
    assert_eq!(dee.get(&app.url("/dashboard")).status(), 302, "Dee's session ended");
    assert_eq!(
        Person::new("dee@example.com", &password).submit_login(&app, &app.url("/login"), &password).status(),
        401
    );
    Person::new("dee@example.com", &fresh).sign_in(&app);

    // Disable, after a confirmation page.
    let confirm = admin.page(&app, &format!("/dashboard/admin/users/{dee_id}/disable"));
    assert!(confirm.contains("Disable dee@example.com?"));
    let res = admin.submit(&app, &format!("/dashboard/admin/users/{dee_id}/disable"), &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), 303);
    assert_eq!(Person::new("dee@example.com", &fresh).submit_login(&app, &app.url("/login"), &fresh).status(), 401);

    // A resource server, its secret once, and a rotation.
    let res = admin.submit(
        &app,
        "/dashboard/admin/resources",
        &[
            ("csrf_token", &csrf),
            ("identifier", "https://orders.example.com"),
            ("name", "Orders"),
            ("alg", "ES256"),
            ("scope", "orders:read"),
        ],
    );
    assert_eq!(res.status(), 201);
    let secret = the_secret(&res.text().unwrap());
    let rs = tessera::oauth::resources::list(&mut app.conn()).unwrap().pop().unwrap();
    assert_eq!((rs.identifier.as_str(), rs.algorithm.as_str()), ("https://orders.example.com", "ES256"));
    let introspect =
        |secret: &str| app.post_form("/oauth/introspect", &[("token", "x")], Some((&rs.id, secret))).status();
    assert_eq!(introspect(&secret), 200, "the shown secret authenticates the resource server");
    let res =
        admin.submit(&app, &format!("/dashboard/admin/resources/{}/rotate-secret", rs.id), &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), 200);
    let rotated = the_secret(&res.text().unwrap());
    assert_eq!(introspect(&secret), 401);
    assert_eq!(introspect(&rotated), 200);
    let bad = admin.submit(
        &app,
        "/dashboard/admin/resources",
        &[("csrf_token", &csrf), ("identifier", "not a uri"), ("name", "Bad"), ("alg", "RS256"), ("scope", "")],
    );
    assert_eq!(bad.status(), 400);
    assert!(bad.text().unwrap().contains("value=\"not a uri\""));

    // A signing key staged from the page, then listed.
    let before = tessera::jwt::keys::list(&mut app.conn()).unwrap().len();
    let res = admin.submit(&app, "/dashboard/admin/signing-keys", &[("csrf_token", &csrf), ("alg", "EdDSA")]);
    assert_eq!(res.status(), 303);
    let keys = tessera::jwt::keys::list(&mut app.conn()).unwrap();
    assert_eq!(keys.len(), before + 1);
    let staged = keys.iter().find(|k| k.algorithm == "EdDSA").unwrap();
    assert!(admin.page(&app, "/dashboard/admin/signing-keys").contains(&staged.kid));

    // Every client, and the audit log filtered by action, actor and target.
    let client = app.web_client("read");
    assert!(admin.page(&app, "/dashboard/admin/clients").contains(&client.id));
    let admin_id = app.user_id(&admin.email);
    let log =
        admin.page(&app, &format!("/dashboard/admin/audit?action=user.disabled&actor={admin_id}&target={dee_id}"));
    assert_eq!(log.matches("<code>user.disabled</code>").count(), 1, "{log}");
    let none = admin.page(&app, &format!("/dashboard/admin/audit?action=user.disabled&actor=system&target={dee_id}"));
    assert!(none.contains("No events match"));
    let one = admin.page(&app, "/dashboard/admin/audit?limit=1");
    assert_eq!(one.matches("<tr><td>").count(), 1, "one event a page");
    let next = one.split("rel=\"next\"").next().unwrap().rsplit("href=\"").next().unwrap().split('"').next().unwrap();
    assert!(next.contains("limit=1") && next.contains("starting_after=evt_"), "{next}");
    let second = admin.page(&app, &next.replace("&#38;", "&"));
    assert_eq!(second.matches("<tr><td>").count(), 1);
    assert_ne!(one.split("<tbody>").nth(1), second.split("<tbody>").nth(1), "the next page is another event");
}

fn members_get_403_on_every_admin_page(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    bea.sign_in(&app);
    let bea_id = app.user_id(&bea.email);
    for path in [
        "/dashboard/admin/users",
        "/dashboard/admin/clients",
        "/dashboard/admin/resources",
        "/dashboard/admin/signing-keys",
        "/dashboard/admin/audit",
        "/dashboard/admin/registration",
        &format!("/dashboard/admin/users/{bea_id}/disable"),
    ] {
        assert_eq!(bea.get(&app.url(path)).status(), 403, "GET {path}");
    }
    let csrf = bea.csrf(&app);
    let admin_id = app.user_id("admin@localhost");
    let keys_before = tessera::jwt::keys::list(&mut app.conn()).unwrap().len();
    for (path, form) in [
        ("/dashboard/admin/users".to_string(), vec![("email", "x@example.com"), ("name", "X")]),
        (format!("/dashboard/admin/users/{admin_id}/reset-password"), vec![]),
        (format!("/dashboard/admin/users/{admin_id}/disable"), vec![]),
        (
            "/dashboard/admin/resources".to_string(),
            vec![("identifier", "https://x.example"), ("name", "X"), ("alg", "RS256")],
        ),
        ("/dashboard/admin/signing-keys".to_string(), vec![("alg", "RS256")]),
        ("/dashboard/admin/registration".to_string(), vec![("max_uses", "1")]),
    ] {
        let mut form = form;
        form.push(("csrf_token", &csrf));
        assert_eq!(bea.submit(&app, &path, &form).status(), 403, "POST {path}");
    }
    // Nothing changed: the admin still signs in, no user, key or server was added.
    app.admin().sign_in(&app);
    assert!(tessera::store::users::find_by_email(&mut app.conn(), "x@example.com").unwrap().is_none());
    assert!(tessera::oauth::resources::list(&mut app.conn()).unwrap().is_empty());
    assert_eq!(tessera::jwt::keys::list(&mut app.conn()).unwrap().len(), keys_before);
    assert!(tessera::oauth::registration::list_initial_tokens(&mut app.conn()).unwrap().is_empty());
    // And a member's navigation has no admin link.
    let html = bea.page(&app, "/dashboard");
    assert!(!html.contains("/dashboard/admin/"), "{html}");
}

fn dashboard_lists_are_paginated_like_v1(backend: Backend) {
    let app = TestApp::start(backend);
    let admin = signed_in_admin(&app);
    let admin_id = app.user_id(&admin.email);
    for n in 0..25 {
        let new = tessera::apikeys::NewKey {
            name: format!("key {n:02}"),
            ..crate::support::key_request(&admin_id, tessera::apikeys::Mode::Test)
        };
        tessera::apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, tessera::audit::Actor::Cli)
            .unwrap();
    }
    let first = admin.page(&app, "/dashboard/api-keys");
    assert_eq!(first.matches("<a href=\"/dashboard/api-keys/key_").count(), 20, "a page holds 20 keys");
    let next = first.split("rel=\"next\"").next().unwrap().rsplit("href=\"").next().unwrap().split('"').next().unwrap();
    assert!(next.starts_with("/dashboard/api-keys?starting_after=key_"), "{next}");
    let second = admin.page(&app, &next.replace("&#38;", "&"));
    assert_eq!(second.matches("<a href=\"/dashboard/api-keys/key_").count(), 5);
    assert!(!second.contains("rel=\"next\""), "the last page has no next link");
    // A cursor that is not the person's own is refused, as on /v1.
    let bea = app.person("bea@example.com");
    bea.sign_in(&app);
    let foreign = next.split("starting_after=").nth(1).unwrap();
    let res = bea.get(&app.url(&format!("/dashboard/api-keys?starting_after={foreign}")));
    assert_eq!(res.status(), 400);
}

fn a_keys_page_draws_its_usage(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| c.key_usage_flush_interval = std::time::Duration::from_millis(50))
        .start();
    let admin = signed_in_admin(&app);
    let admin_id = app.user_id(&admin.email);
    let new = tessera::apikeys::NewKey {
        allowed_endpoints: vec!["GET /v1/users".into()],
        ..crate::support::key_request(&admin_id, tessera::apikeys::Mode::Test)
    };
    let (key, raw) =
        tessera::apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, tessera::audit::Actor::Cli)
            .unwrap();
    let raw = raw.expose().to_string();
    let path = format!("/dashboard/api-keys/{}", key.id);
    assert!(admin.page(&app, &path).contains("This key has not been used yet"));
    for _ in 0..3 {
        assert_eq!(app.client.get(app.url("/v1/users?limit=5")).bearer_auth(&raw).send().unwrap().status(), 200);
    }
    assert_eq!(app.client.get(app.url("/v1/api-keys")).bearer_auth(&raw).send().unwrap().status(), 403);
    // Counted in the background flush: wait for it (bounded), never on the
    // request path.
    let mut page = String::new();
    for _ in 0..200 {
        page = admin.page(&app, &path);
        if page.contains("<strong>3</strong> allowed") && page.contains("<strong>1</strong> refused") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(page.contains("<strong>3</strong> allowed, <strong>1</strong> refused"), "{page}");
    assert!(page.contains("<svg") && page.contains("role=\"img\""), "the chart is drawn inline");
    let uses = page.split("id=\"uses-h\"").nth(1).unwrap();
    assert_eq!(uses.matches("<code>GET /v1/users</code>").count(), 3, "the query string is not shown");
    assert!(uses.contains("<code>GET /v1/api-keys</code>"));
    assert!(!page.contains("limit=5"));
}

fn a_production_server_makes_live_keys_only(backend: Backend) {
    let app =
        TestApp::builder(backend).with_config(|c| c.environment = tessera::config::Environment::Production).start();
    let admin = signed_in_admin(&app);
    let page = admin.page(&app, "/dashboard/api-keys");
    assert!(page.contains("value=\"live\"") && !page.contains("value=\"test\""), "only live is offered");
    let csrf = dashboard_csrf(&page);
    let form = |mode: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("name", "Live reader".to_string()),
            ("mode", mode.to_string()),
            ("type", "restricted".to_string()),
            ("permissions", "read".to_string()),
        ]
    };
    let post = |fields: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        admin.submit(&app, "/dashboard/api-keys", &pairs)
    };
    assert_eq!(post(form("test")).status(), 422, "a test key is refused on a production server");
    let res = post(form("live"));
    assert_eq!(res.status(), 201);
    let raw = the_secret(&res.text().unwrap());
    assert!(raw.starts_with("rk_live_"), "{raw}");
    assert_eq!(app.client.get(app.url("/v1/users")).bearer_auth(&raw).send().unwrap().status(), 200);
    assert_eq!(app.client.post(app.url("/v1/api-keys")).bearer_auth(&raw).send().unwrap().status(), 403);
}

fn an_app_is_deleted_for_good_after_a_confirmation(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    bea.sign_in(&app);
    let csrf = bea.csrf(&app);
    let res = bea.submit(
        &app,
        "/dashboard/apps",
        &[("csrf_token", &csrf), ("name", "Doomed"), ("client_type", "confidential"), ("scope", "read")],
    );
    assert_eq!(res.status(), 201);
    let html = res.text().unwrap();
    let secret = the_secret(&html);
    let client_id = html.split("cl_").nth(1).map(|s| format!("cl_{}", s.split('<').next().unwrap())).unwrap();
    let token =
        app.cc_token(&crate::support::oauth::TestClient { id: client_id.clone(), secret: Some(secret.clone()) }, &[]);
    assert!(token["access_token"].is_string());
    let bound = bea.submit(&app, "/dashboard/api-keys", &[("csrf_token", &csrf), ("name", "bound"), ("mode", "test")]);
    assert_eq!(bound.status(), 201);
    let bea_id = app.user_id(&bea.email);
    let bound_key = {
        let new = tessera::apikeys::NewKey {
            client_id: Some(client_id.clone()),
            ..crate::support::key_request(&bea_id, tessera::apikeys::Mode::Test)
        };
        let (k, raw) =
            tessera::apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, tessera::audit::Actor::Cli)
                .unwrap();
        (k.id, raw.expose().to_string())
    };
    let use_bound = || {
        app.client
            .get(app.url("/v1/users"))
            .header("x-api-key", &bound_key.1)
            .header("x-client-id", &client_id)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(use_bound(), 200);

    // The confirmation changes nothing; another member cannot delete it.
    let path = format!("/dashboard/apps/{client_id}/delete");
    assert!(bea.page(&app, &path).contains("Delete “Doomed” for good?"));
    let cem = app.person("cem@example.com");
    cem.sign_in(&app);
    let cem_csrf = cem.csrf(&app);
    assert_eq!(cem.submit(&app, &path, &[("csrf_token", &cem_csrf)]).status(), 404);
    assert_eq!(bea.submit(&app, &path, &[]).status(), 403, "no CSRF token, no delete");
    assert!(tessera::oauth::clients::find(&mut app.conn(), &client_id).unwrap().is_some());

    let res = bea.submit(&app, &path, &[("csrf_token", &csrf)]);
    assert_eq!(res.status(), 303);
    assert!(tessera::oauth::clients::find(&mut app.conn(), &client_id).unwrap().is_none(), "gone");
    assert_eq!(bea.get(&app.url(&format!("/dashboard/apps/{client_id}"))).status(), 404);
    assert!(!bea.page(&app, "/dashboard/apps").contains(&client_id));
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.post_form("/oauth/token", &form, Some((&client_id, &secret))).status(), 401);
    assert_eq!(use_bound(), 401, "its bound key is revoked");
    let key = tessera::apikeys::find(&mut app.conn(), &bound_key.0).unwrap().unwrap();
    assert!(key.revoked_at.is_some() && key.client_id.is_none());
}

both_backends!(
    an_app_is_deleted_for_good_after_a_confirmation,
    a_production_server_makes_live_keys_only,
    chromium_connects_an_app_revokes_it_and_visits_the_admin_pages,
    a_keys_page_draws_its_usage,
    dashboard_lists_are_paginated_like_v1,
    connected_apps_are_listed_and_revoked_from_the_page,
    admins_manage_people_resources_and_signing_keys,
    members_get_403_on_every_admin_page,
);

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// In Chromium: register an app in the dashboard, run the code flow for it,
/// see it under connected apps, revoke it there, see its refresh token fail
/// and the consent page return; a key's use on its page; every admin page.
/// A screenshot of each page goes to `target/screenshots/` (and of the
/// last page, named after the test, on failure).
fn chromium_connects_an_app_revokes_it_and_visits_the_admin_pages(backend: Backend) {
    use fantoccini::Locator;
    let Some(chromium) = crate::support::browser::Chromium::start() else { return };
    let prod_backend = backend.clone();
    let app = TestApp::builder(backend)
        .with_config(|c| c.key_usage_flush_interval = std::time::Duration::from_millis(50))
        .start();
    let (email, password) = app.first_admin.clone().unwrap();
    let test_name = "chromium_connects_an_app_revokes_it_and_visits_the_admin_pages";
    let redirect = app.url("/callback");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let browser = runtime.block_on(chromium.session());
    let e = |e: fantoccini::error::CmdError| e.to_string();
    let shot = |name: &'static str| {
        let browser = browser.clone();
        async move { crate::support::browser::save_screenshot(&browser, name).await.map(|_| ()) }
    };
    let fail = |why: String| -> ! {
        let path = runtime.block_on(crate::support::browser::save_screenshot(&browser, test_name));
        let _ = runtime.block_on(browser.clone().close());
        panic!("{test_name} failed ({why}); screenshot of the last page: {path:?}");
    };

    // Sign in, register the app, read its Client ID and secret.
    let registered: Result<(String, String), String> = runtime.block_on(async {
        browser.goto(&app.url("/dashboard/apps")).await.map_err(e)?;
        browser.find(Locator::Css("input[name=email]")).await.map_err(e)?.send_keys(&email).await.map_err(e)?;
        browser.find(Locator::Css("input[name=password]")).await.map_err(e)?.send_keys(&password).await.map_err(e)?;
        browser.find(Locator::Css("button[type=submit]")).await.map_err(e)?.click().await.map_err(e)?;
        browser.wait().for_element(Locator::Id("create-app")).await.map_err(e)?;
        browser.find(Locator::Id("name")).await.map_err(e)?.send_keys("Photo Printer").await.map_err(e)?;
        browser.find(Locator::Id("redirect_uris")).await.map_err(e)?.send_keys(&redirect).await.map_err(e)?;
        let scope = browser.find(Locator::Id("scope")).await.map_err(e)?;
        scope.clear().await.map_err(e)?;
        scope.send_keys("read offline_access").await.map_err(e)?;
        browser.find(Locator::Id("create-app")).await.map_err(e)?.click().await.map_err(e)?;
        let secret = browser.wait().for_element(Locator::Css("[data-secret]")).await.map_err(e)?;
        let secret = secret.text().await.map_err(e)?.trim().to_string();
        let source = browser.source().await.map_err(e)?;
        let id =
            source.split("cl_").nth(1).map(|s| format!("cl_{}", s.split('<').next().unwrap_or(""))).unwrap_or_default();
        check!(id.len() > 10 && !secret.is_empty(), "no Client ID or secret on the page");
        Ok((id, secret))
    });
    let (client_id, secret) = registered.unwrap_or_else(|why| fail(why));
    let client = crate::support::oauth::TestClient { id: client_id.clone(), secret: Some(secret) };
    let oauth = app.oauth2_client_to(&client, &redirect);

    // The code flow in the browser, the exchange by the oauth2 crate.
    let (url, _, verifier) = authorization_url(&oauth, &["read", "offline_access"]);
    let landed: Result<String, String> = runtime.block_on(async {
        browser.goto(&url).await.map_err(e)?;
        let approve = browser.wait().for_element(Locator::Id("approve")).await.map_err(e)?;
        shot("dashboard-consent").await?;
        approve.click().await.map_err(e)?;
        for _ in 0..400 {
            let now = browser.current_url().await.map_err(e)?.to_string();
            if now.starts_with(&redirect) {
                return Ok(now);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Err("the browser never reached the redirect URI".into())
    });
    let landed = landed.unwrap_or_else(|why| fail(why));
    let code_value =
        crate::support::browser::param(&landed, "code").unwrap_or_else(|| fail(format!("no code: {landed}")));
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    let refresh = token.refresh_token().expect("a refresh token").clone();

    // Under connected apps; revoked there.
    let revoked: Result<(), String> = runtime.block_on(async {
        browser.goto(&app.url("/dashboard/connected-apps")).await.map_err(e)?;
        let text = browser.find(Locator::Css("main")).await.map_err(e)?.text().await.map_err(e)?;
        check!(text.contains("Photo Printer") && text.contains(&client_id), "not listed: {text}");
        shot("dashboard-connected-apps").await?;
        browser.find(Locator::Css("main form button.danger")).await.map_err(e)?.click().await.map_err(e)?;
        browser.wait().for_element(Locator::Css("p.notice")).await.map_err(e)?;
        let text = browser.find(Locator::Css("main")).await.map_err(e)?.text().await.map_err(e)?;
        check!(text.contains("No app has access"), "still listed: {text}");
        Ok(())
    });
    revoked.unwrap_or_else(|why| fail(why));
    assert_eq!(
        refusal(oauth.exchange_refresh_token(&refresh).request(&oauth2_http())),
        revoked_refresh(),
        "the refresh token must fail once the app is revoked"
    );

    // The consent page returns; a key's use shows on its page; the admin pages.
    let admin_id = app.user_id(&email);
    let (key_id, raw) = {
        let new = crate::support::key_request(&admin_id, tessera::apikeys::Mode::Test);
        let (k, raw) =
            tessera::apikeys::create(&mut app.conn(), &app.clock, &app.master_key, new, tessera::audit::Actor::Cli)
                .unwrap();
        (k.id, raw.expose().to_string())
    };
    assert_eq!(app.client.get(app.url("/v1/users")).bearer_auth(&raw).send().unwrap().status(), 200);
    let (again, _, _) = authorization_url(&oauth, &["read"]);
    let rest: Result<(), String> = runtime.block_on(async {
        browser.goto(&again).await.map_err(e)?;
        browser.wait().for_element(Locator::Id("approve")).await.map_err(e)?;
        let key_page = app.url(&format!("/dashboard/api-keys/{key_id}"));
        let mut seen = false;
        for _ in 0..200 {
            browser.goto(&key_page).await.map_err(e)?;
            let text = browser.find(Locator::Id("usage")).await.map_err(e)?.text().await.map_err(e)?;
            if text.contains("GET /v1/users") {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        check!(seen, "the key's use never showed on its page");
        shot("dashboard-api-key-used").await?;
        for (path, name) in [
            ("/dashboard/admin/users", "dashboard-admin-users"),
            ("/dashboard/admin/clients", "dashboard-admin-clients"),
            ("/dashboard/admin/resources", "dashboard-admin-resources"),
            ("/dashboard/admin/signing-keys", "dashboard-admin-signing-keys"),
            ("/dashboard/admin/audit", "dashboard-admin-audit"),
            ("/dashboard/admin/registration", "dashboard-admin-registration"),
        ] {
            browser.goto(&app.url(path)).await.map_err(e)?;
            browser.wait().for_element(Locator::Css("nav[aria-label=Admin]")).await.map_err(e)?;
            shot(name).await?;
        }
        Ok(())
    });
    rest.unwrap_or_else(|why| fail(why));

    // A live key, on a production server's dashboard.
    let prod = TestApp::builder(prod_backend)
        .with_config(|c| {
            c.environment = tessera::config::Environment::Production;
            c.key_usage_flush_interval = std::time::Duration::from_millis(50);
        })
        .start();
    let (prod_email, prod_password) = prod.first_admin.clone().unwrap();
    let live: Result<String, String> = runtime.block_on(async {
        browser.goto(&prod.url("/dashboard/api-keys")).await.map_err(e)?;
        browser.find(Locator::Css("input[name=email]")).await.map_err(e)?.send_keys(&prod_email).await.map_err(e)?;
        browser
            .find(Locator::Css("input[name=password]"))
            .await
            .map_err(e)?
            .send_keys(&prod_password)
            .await
            .map_err(e)?;
        browser.find(Locator::Css("button[type=submit]")).await.map_err(e)?.click().await.map_err(e)?;
        browser.wait().for_element(Locator::Id("create-key")).await.map_err(e)?;
        let mode = browser.find(Locator::Id("mode")).await.map_err(e)?.prop("value").await.map_err(e)?;
        check!(mode.as_deref() == Some("live"), "the form offers {mode:?}, not live");
        browser.find(Locator::Id("name")).await.map_err(e)?.send_keys("Live reader").await.map_err(e)?;
        browser.find(Locator::Css("input[name=type][value=restricted]")).await.map_err(e)?.click().await.map_err(e)?;
        browser.find(Locator::Css("input[name=permissions][value=read]")).await.map_err(e)?.click().await.map_err(e)?;
        browser.find(Locator::Id("create-key")).await.map_err(e)?.click().await.map_err(e)?;
        let secret = browser.wait().for_element(Locator::Css("[data-secret]")).await.map_err(e)?;
        let raw = secret.text().await.map_err(e)?.trim().to_string();
        shot("dashboard-api-key-live-created").await?;
        Ok(raw)
    });
    let live = live.unwrap_or_else(|why| fail(why));
    assert!(live.starts_with("rk_live_"), "{live}");
    assert_eq!(prod.client.get(prod.url("/v1/users")).bearer_auth(&live).send().unwrap().status(), 200);
    assert_eq!(prod.client.post(prod.url("/v1/api-keys")).bearer_auth(&live).send().unwrap().status(), 403);
    // Its uses on its page, then revoked there.
    let revoked: Result<(), String> = runtime.block_on(async {
        browser.find(Locator::Css("a.button.primary")).await.map_err(e)?.click().await.map_err(e)?;
        browser.wait().for_element(Locator::Id("usage")).await.map_err(e)?;
        let key_page = browser.current_url().await.map_err(e)?.to_string();
        let mut seen = false;
        for _ in 0..200 {
            let text = browser.find(Locator::Id("usage")).await.map_err(e)?.text().await.map_err(e)?;
            if text.contains("GET /v1/users") && text.contains("POST /v1/api-keys") {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            browser.goto(&key_page).await.map_err(e)?;
        }
        check!(seen, "the live key's uses never showed on its page");
        shot("dashboard-api-key-live-used").await?;
        browser.find(Locator::Id("revoke")).await.map_err(e)?.click().await.map_err(e)?;
        browser.wait().for_element(Locator::Id("confirm")).await.map_err(e)?.click().await.map_err(e)?;
        browser.wait().for_element(Locator::Css("h1 .status.revoked")).await.map_err(e)?;
        Ok(())
    });
    revoked.unwrap_or_else(|why| fail(why));
    assert_eq!(prod.client.get(prod.url("/v1/users")).bearer_auth(&live).send().unwrap().status(), 401);
    let _ = runtime.block_on(browser.clone().close());
}
