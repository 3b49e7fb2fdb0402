//! Regression tests for the OAuth, session and signing-key holes of issue
//! #10. Each is named after its hole and failed on the code before the fix
//! (the last one checks how the consent migration carries earlier rows
//! over); each also checks the legitimate case next to the refused one, so
//! a refusal cannot pass by refusing everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};

use chrono::Duration;
use diesel::migration::MigrationSource;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::jwt::keys::{self, SigningAlg};
use tessera::jwt::signer::Typ;
use tessera::oauth::authorize::s256;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};
use tessera::oauth::resources::TokenAlg;
use tessera::store::DbConn;

use crate::both_backends;
use crate::support::browser::{Person, REDIRECT_URI, hidden_fields, param};
use crate::support::oauth::{JWT_BEARER, TestClient, TestResource, hs256_assertion};
use crate::support::{Backend, TestApp, http_client};

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk_a_long_enough_verifier";

pub fn inactive() -> Value {
    json!({ "active": false })
}

fn user_id(app: &TestApp, email: &str) -> String {
    tessera::store::users::find_by_email(&mut app.conn(), email).unwrap().unwrap().id
}

pub fn creds(client: &TestClient) -> (&str, &str) {
    (&client.id, client.secret())
}

/// An authorization URL for `client_id` with PKCE (`VERIFIER`) and `extra`.
pub fn authorize_url(app: &TestApp, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    authorize_url_to(app, client_id, REDIRECT_URI, scope, extra)
}

/// The same, back to `redirect_uri`.
pub fn authorize_url_to(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let challenge = s256(VERIFIER);
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .chain(extra)
    {
        q.append_pair(k, v);
    }
    format!("{}?{}", app.url("/oauth/authorize"), q.finish())
}

pub fn redeem(app: &TestApp, client: &TestClient, code: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT_URI),
    ];
    let res = app.post_form("/oauth/token", &form, Some(creds(client)));
    (res.status(), res.json().unwrap())
}

pub fn refresh(app: &TestApp, client: &TestClient, token: &str) -> (StatusCode, Value) {
    let res = app.post_form(
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        Some(creds(client)),
    );
    (res.status(), res.json().unwrap())
}

/// `person` approves `scope` for `client` and the code is redeemed: the
/// token response.
pub fn code_flow(app: &TestApp, person: &Person, client: &TestClient, scope: &str) -> Value {
    let code = person.approve(app, &authorize_url(app, &client.id, scope, &[]));
    let (status, body) = redeem(app, client, &code);
    assert_eq!(status, 200, "{body}");
    body
}

/// A genuine access token of the first admin with the `admin` scope, for
/// the server's own API.
fn admin_token(app: &TestApp) -> String {
    let client = app.web_client("read admin");
    code_flow(app, &app.admin(), &client, "admin")["access_token"].as_str().unwrap().to_string()
}

fn get_users(app: &TestApp, token: &str) -> StatusCode {
    app.client.get(app.url("/v1/users")).bearer_auth(token).send().unwrap().status()
}

/// Access-token claims valid now, as the server would write them.
fn access_claims(app: &TestApp, sub: &str, aud: &str, client_id: &str, scope: &str) -> Value {
    let now = app.clock.now().timestamp();
    json!({
        "iss": app.issuer(), "sub": sub, "aud": aud, "client_id": client_id, "scope": scope,
        "iat": now, "exp": now + 300, "jti": tessera::crypto::random_base62(20),
    })
}

/// A JWT with an access token's header (`typ: at+jwt`, `kid`).
fn sign_at(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// What a resource server can sign with the secret it holds.
fn forge(rs: &TestResource, claims: &Value) -> String {
    sign_at(Algorithm::HS256, &rs.id, &EncodingKey::from_secret(rs.secret.as_bytes()), claims)
}

/// `Location` of a response, bytes as sent (a tab is not valid in
/// `HeaderValue::to_str`).
fn location_bytes(res: &reqwest::blocking::Response) -> Option<String> {
    res.headers().get("location").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `n` distinct three-character parameter names, `&`-joined, no values.
fn junk_params(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|i| {
            let name: String = [i / (36 * 36), (i / 36) % 36, i % 36].iter().map(|d| ALPHABET[*d] as char).collect();
            format!("&{name}")
        })
        .collect()
}

fn post_raw(app: &TestApp, path: &str, body: String, basic: (&str, &str)) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url(path))
        .basic_auth(basic.0, Some(basic.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    (res.status(), res.json().unwrap_or(Value::Null))
}

/// Signs in through a trusted proxy that says the person is at `ip`.
fn sign_in_from(app: &TestApp, email: &str, password: &str, ip: &str) -> StatusCode {
    let http = http_client();
    let page = http.get(app.url("/login")).send().unwrap().text().unwrap();
    let mut fields = hidden_fields(&page);
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), password.into()));
    http.post(app.url("/login")).header("x-forwarded-for", ip).form(&fields).send().unwrap().status()
}

/// Reverts the consent-audience migration, runs `insert` against the
/// table as it was, and applies the migration again.
fn replay_consent_migration<DB, C>(conn: &mut C, dir: &str, insert: &str)
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB> + diesel::connection::SimpleConnection,
{
    let source = FileBasedMigrations::from_path(dir).unwrap();
    let migration = MigrationSource::<DB>::migrations(&source)
        .unwrap()
        .into_iter()
        .find(|m| m.name().to_string().starts_with("2026-11-24-000010"))
        .expect("the consent-audience migration");
    conn.revert_migration(&*migration).unwrap();
    conn.batch_execute(insert).unwrap();
    conn.run_migration(&*migration).unwrap();
}

/// Hole 1: a resource server's HS256 secret verifies only tokens for that
/// resource server.
fn hs256_resource_secret_cannot_forge_v1_admin_token(backend: Backend) {
    let app = TestApp::start(backend);
    let hr = app.create_resource("https://hr.example.com", TokenAlg::Hs256, "hr:read");
    let orders = app.create_resource("https://orders.example.com", TokenAlg::Hs256, "orders:read");
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read hr:read", &[&hr.identifier]);
    let admin_id = user_id(&app, "admin@localhost");
    assert_eq!(get_users(&app, &admin_token(&app)), StatusCode::OK, "a genuine admin token reads /v1/users");

    // hr signs an admin token for the server's own API: refused there and
    // at introspection, by the client it names.
    let v1_admin = forge(&hr, &access_claims(&app, &admin_id, &app.default_audience(), &client.id, "admin"));
    assert_eq!(get_users(&app, &v1_admin), StatusCode::UNAUTHORIZED);
    assert_eq!(app.introspect(&v1_admin, creds(&client)), inactive());
    // hr signs a token for another resource server: that one does not
    // take it.
    let for_orders = forge(&hr, &access_claims(&app, &client.id, &orders.identifier, &client.id, "orders:read"));
    assert_eq!(app.introspect(&for_orders, (&orders.id, &orders.secret)), inactive());
    // A token for hr itself is what hr's secret is for.
    let own = forge(&hr, &access_claims(&app, &client.id, &hr.identifier, &client.id, "hr:read"));
    assert_eq!(app.introspect(&own, (&hr.id, &hr.secret))["active"], true);
}

/// A resource server an operator named like the API itself: its HS256
/// secret signs tokens whose `aud` is the API, yet they speak for nothing
/// on `/v1` nor at UserInfo — only the server's own keys do.
fn a_resource_server_named_like_the_api_speaks_for_nothing_on_v1(backend: Backend) {
    let app = TestApp::start(backend);
    let genuine = admin_token(&app);
    let twin = app.create_resource(&app.default_audience(), TokenAlg::Hs256, "read");
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let admin_id = user_id(&app, "admin@localhost");
    let forged = forge(&twin, &access_claims(&app, &admin_id, &app.default_audience(), &client.id, "admin openid"));
    assert_eq!(get_users(&app, &forged), StatusCode::UNAUTHORIZED);
    let res = app.client.get(app.url("/v1/me")).bearer_auth(&forged).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.client.get(app.url("/oauth/userinfo")).bearer_auth(&forged).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // What the server's own key signed for the API is what /v1 takes.
    assert_eq!(get_users(&app, &genuine), StatusCode::OK);
}

/// Hole 1: no access token lives longer than the configured lifetime,
/// whichever key signed it, and `iat` is required.
fn access_token_outliving_the_configured_ttl_is_refused(backend: Backend) {
    let app = TestApp::start(backend);
    let hr = app.create_resource("https://hr.example.com", TokenAlg::Hs256, "hr:read");
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read hr:read", &[&hr.identifier]);
    let ttl = app.config.access_token_ttl.as_secs() as i64;
    let ten_years = 10 * 365 * 86_400;
    let hr_sees = |claims: &Value| app.introspect(&forge(&hr, claims), (&hr.id, &hr.secret))["active"] == true;

    let mut claims = access_claims(&app, &client.id, &hr.identifier, &client.id, "hr:read");
    let iat = claims["iat"].as_i64().unwrap();
    claims["exp"] = json!(iat + ttl);
    assert!(hr_sees(&claims), "a token of the configured lifetime is fine");
    claims["exp"] = json!(iat + ten_years);
    assert!(!hr_sees(&claims), "ten years from a resource server's secret");
    claims["exp"] = json!(iat + ttl + 3600);
    assert!(!hr_sees(&claims), "an hour longer than the lifetime");
    let mut no_iat = access_claims(&app, &client.id, &hr.identifier, &client.id, "hr:read");
    no_iat.as_object_mut().unwrap().remove("iat");
    assert!(!hr_sees(&no_iat), "iat is required");

    // The same bound holds for the server's own keys (any kid).
    let policy = app.config.rotation_policy();
    let signer = keys::active_signer(&mut app.conn(), &app.clock, &app.master_key, &policy, SigningAlg::Rs256).unwrap();
    let mut claims = access_claims(&app, &client.id, &app.default_audience(), &client.id, "read");
    let server_signed = |claims: &Value| signer.sign(Typ::AccessToken, claims).unwrap();
    assert_eq!(app.introspect(&server_signed(&claims), creds(&client))["active"], true);
    claims["exp"] = json!(iat + ten_years);
    assert_eq!(app.introspect(&server_signed(&claims), creds(&client)), inactive());
}

/// Hole 5: `next` after sign-in is only ever a local path.
fn open_redirect_after_sign_in_is_refused(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    // Signs in with this exact `next` (sent as a form value, so the server
    // reads it after one decoding, as from the login page).
    let sign_in_to = |next: &str| -> Option<String> {
        let page = person.get(&app.url("/login"));
        let mut fields = hidden_fields(&page.text().unwrap());
        fields.retain(|(n, _)| n != "next");
        fields.push(("next".into(), next.into()));
        fields.push(("email".into(), person.email.clone()));
        fields.push(("password".into(), person.password.clone()));
        let res = person.post(&app.url("/login"), &fields);
        assert_eq!(res.status(), StatusCode::FOUND, "sign-in with next={next:?}");
        location_bytes(&res)
    };
    let evil = [
        "/%09/evil.example",
        "/\t/evil.example",
        "/\t\\evil",
        "/\\\\evil",
        "/\\evil",
        "//evil",
        "/%2F/evil",
        "/%2f%2fevil",
        "/%5Cevil",
        "/%5cevil",
        "/%0a/evil",
        "/%0d%0aSet-Cookie:x=y",
        "/%252F%252Fevil",
        "https://evil",
        "\\/evil",
        "evil",
        "",
    ];
    for next in evil {
        assert_eq!(sign_in_to(next).as_deref(), Some("/"), "next={next:?}");
    }
    let local = "/oauth/authorize?response_type=code&client_id=cl_x&state=a%3Cb%26c";
    assert_eq!(sign_in_to(local).as_deref(), Some(local), "a local path survives");
    assert_eq!(sign_in_to("/").as_deref(), Some("/"));

    // From the query string of /login (decoded once by the transport): a
    // signed-in person is sent on only to a local path, and the form
    // carries only a local path.
    for raw in ["/%09/evil.example", "//evil", "/%5Cevil", "/%252F/evil", "%2F%2Fevil", "https:%2F%2Fevil"] {
        let res = person.get(&app.url(&format!("/login?next={raw}")));
        match location_bytes(&res) {
            Some(to) => assert_eq!(to, "/", "next={raw}"),
            None => {
                assert_eq!(res.status(), StatusCode::OK, "next={raw}");
                let fields = hidden_fields(&res.text().unwrap());
                assert!(fields.iter().any(|(n, v)| n == "next" && v == "/"), "next={raw}: {fields:?}");
            }
        }
    }
    let res = person.get(&app.url("/login?next=%2Foauth%2Fauthorize%3Fclient_id%3Dcl_x"));
    assert_eq!(location_bytes(&res).as_deref(), Some("/oauth/authorize?client_id=cl_x"));
}

/// Hole 7: disabling a user (the `/v1` path, `DELETE /v1/users/{id}`)
/// ends their sessions and every token of theirs reads inactive.
fn disabling_a_user_revokes_their_sessions_and_tokens(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let bea = app.person("bea@example.com");
    let bea_id = user_id(&app, &bea.email);
    let tokens = code_flow(&app, &bea, &client, "read offline_access");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
    // A code issued before the account is disabled, redeemed after.
    let pending = bea.approve(&app, &authorize_url(&app, &client.id, "read", &[]));
    assert_eq!(app.introspect(&access, creds(&client))["active"], true);
    assert!(bea.get(&app.url("/")).text().unwrap().contains("Signed in as"));
    let sessions_of = |user: &str| -> i64 {
        use diesel::prelude::*;
        use tessera::store::schema::sessions;
        sessions::table.filter(sessions::user_id.eq(user)).count().get_result(&mut *app.conn()).unwrap()
    };
    assert_eq!(sessions_of(&bea_id), 1);

    // The admin's own key: an app's token never disables anyone.
    let admin = app.root_key();
    let res = app.client.delete(app.url(&format!("/v1/users/{bea_id}"))).bearer_auth(&admin).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    assert_eq!(sessions_of(&bea_id), 0, "the sessions are ended, not just refused");
    assert!(!bea.get(&app.url("/")).text().unwrap().contains("Signed in as"));
    assert_eq!(app.introspect(&access, creds(&client)), inactive());
    let (status, body) = refresh(&app, &client, &refresh_token);
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, body) = redeem(&app, &client, &pending);
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    // The admin's own tokens are untouched.
    assert_eq!(get_users(&app, &admin), StatusCode::OK);
}

/// Hole 7, the CLI path (`tessera user disable`): every grant family of
/// the user is revoked; their access and refresh tokens read inactive and
/// the refresh token stops working.
fn disabling_a_user_from_the_cli_revokes_their_grants(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let bea = app.person("bea@example.com");
    let tokens = code_flow(&app, &bea, &client, "read offline_access");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(refresh_token, creds(&client))["active"], true);

    let email = tessera::accounts::Email::parse(&bea.email).unwrap();
    tessera::accounts::disable_user(&mut app.conn(), &app.clock, &email, tessera::audit::Actor::Cli).unwrap();

    assert_eq!(app.introspect(access, creds(&client)), inactive());
    assert_eq!(app.introspect(refresh_token, creds(&client)), inactive());
    assert_eq!(refresh(&app, &client, refresh_token).1["error"], "invalid_grant");
    use diesel::prelude::*;
    use tessera::store::schema::grants;
    let live: i64 = grants::table
        .filter(grants::client_id.eq(&client.id))
        .filter(grants::revoked_at.is_null())
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(live, 0, "every grant family of the user is revoked");
}

/// Hole 7: introspection also reads a token inactive once its client is
/// disabled.
fn tokens_of_a_disabled_client_read_inactive(backend: Backend) {
    let app = TestApp::start(backend);
    let orders = app.create_resource("https://orders.example.com", TokenAlg::Es256, "orders:read");
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "orders:read", &[&orders.identifier]);
    let token =
        app.cc_token(&client, &[("resource", &orders.identifier)])["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.introspect(&token, (&orders.id, &orders.secret))["active"], true);
    tessera::oauth::clients::disable(&mut app.conn(), &app.clock, &client.id, tessera::audit::Actor::Cli).unwrap();
    assert_eq!(app.introspect(&token, (&orders.id, &orders.secret)), inactive());
}

/// Hole 8: two refreshes with one token that really start together.
/// Exactly one wins; the other is a reuse and revokes the family, and the
/// revocation covers what the winner minted during the race.
fn family_revocation_covers_tokens_minted_during_the_race(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let person = app.admin();
    // Several rounds, so that some of them overlap inside the server.
    for round in 0..6 {
        let token =
            code_flow(&app, &person, &client, "read offline_access")["refresh_token"].as_str().unwrap().to_string();
        let barrier = Barrier::new(2);
        let results: Vec<(StatusCode, Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (barrier, token, client, app) = (&barrier, &token, &client, &app);
                    s.spawn(move || {
                        let http = http_client();
                        // Open the connection first, so both requests
                        // leave at the barrier with nothing left to set up.
                        assert_eq!(http.get(app.url("/healthz")).send().unwrap().status(), 200);
                        let req = http
                            .post(app.token_endpoint())
                            .basic_auth(&client.id, Some(client.secret()))
                            .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())]);
                        barrier.wait();
                        let res = req.send().unwrap();
                        (res.status(), res.json::<Value>().unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let loser = results.iter().find(|(s, _)| *s != 200).unwrap();
        assert_eq!(loser.1["error"], "invalid_grant", "round {round}");
        let won = winners[0];
        let (status, body) = refresh(&app, &client, won["refresh_token"].as_str().unwrap());
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "round {round}");
        let access = won["access_token"].as_str().unwrap();
        assert_eq!(app.introspect(access, creds(&client)), inactive(), "round {round}: the winner's access token");
    }
}

/// Hole 9: a form of 13,000 names is refused before any work on it; the
/// cap is 64 parameters.
fn quadratic_parameter_parsing_is_capped(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let token = app.cc_token(&client, &[])["access_token"].as_str().unwrap().to_string();
    let huge = junk_params(13_000);
    assert!(huge.len() < app.config.body_limit, "the form is within the body limit");

    let refused = |(status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
    };
    refused(post_raw(&app, "/oauth/token", format!("grant_type=client_credentials{huge}"), creds(&client)));
    refused(post_raw(&app, "/oauth/introspect", format!("token={token}{huge}"), creds(&client)));
    refused(post_raw(&app, "/oauth/revoke", format!("token={token}{huge}"), creds(&client)));
    assert_eq!(app.introspect(&token, creds(&client))["active"], true, "the refused revocation did nothing");

    // 64 parameters are fine, 65 are not.
    let (status, body) =
        post_raw(&app, "/oauth/token", format!("grant_type=client_credentials{}", junk_params(63)), creds(&client));
    assert_eq!(status, StatusCode::OK, "{body}");
    refused(post_raw(
        &app,
        "/oauth/token",
        format!("grant_type=client_credentials{}", junk_params(64)),
        creds(&client),
    ));

    // The authorization endpoint answers with a page, never a redirect.
    let web = app.web_client("read");
    let url = format!("{}{}", authorize_url(&app, &web.id, "read", &[]), junk_params(100));
    let res = app.client.get(url).header("accept", "text/html").send().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().unwrap().contains("too many parameters"));
}

/// Hole 10: a retired signing key verifies nothing once it has left the
/// JWKS.
fn retired_signing_key_stops_verifying_once_unpublished(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let policy = app.config.rotation_policy();
    let old = keys::active_signer(&mut app.conn(), &app.clock, &app.master_key, &policy, SigningAlg::Rs256).unwrap();
    // A token signed now by the old key, valid for its whole lifetime.
    let signed_by_old = || {
        old.sign(Typ::AccessToken, &access_claims(&app, &client.id, &app.default_audience(), &client.id, "read"))
            .unwrap()
    };
    assert_eq!(app.introspect(&signed_by_old(), creds(&client))["active"], true);

    keys::rotate(&mut app.conn(), &app.clock, &app.master_key, &policy, SigningAlg::Rs256, true).unwrap();
    assert_eq!(app.introspect(&signed_by_old(), creds(&client))["active"], true, "retired, still published");

    app.clock.advance(Duration::from_std(policy.token_lifetime).unwrap() + Duration::seconds(1));
    assert!(app.jwks().find(&old.kid).is_none(), "unpublished");
    assert_eq!(app.introspect(&signed_by_old(), creds(&client)), inactive());
    // The new key signs and verifies.
    let token = app.cc_token(&client, &[])["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.introspect(&token, creds(&client))["active"], true);
}

/// Hole 10: a client assertion's `aud` is one string, the issuer or the
/// token endpoint (RFC 7523bis, the 2025 audience-injection class).
fn client_assertion_aud_is_a_single_issuer_or_token_endpoint(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    let call = |path: &str, aud: Value| -> StatusCode {
        let mut claims = app.assertion_claims(&client.id);
        claims["aud"] = aud;
        let assertion = hs256_assertion(client.secret(), &claims);
        let mut form = vec![("client_assertion_type", JWT_BEARER), ("client_assertion", assertion.as_str())];
        form.push(if path == "/oauth/token" { ("grant_type", "client_credentials") } else { ("token", "x") });
        app.post_form(path, &form, None).status()
    };
    let (issuer, token_endpoint) = (app.issuer(), app.token_endpoint());
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        assert_eq!(call(path, json!(issuer)), StatusCode::OK, "{path}: the issuer");
        assert_eq!(call(path, json!(token_endpoint)), StatusCode::OK, "{path}: the token endpoint");
        for aud in
            [json!([issuer]), json!([token_endpoint]), json!([issuer, "https://elsewhere.example.com"]), json!([])]
        {
            assert_eq!(call(path, aud.clone()), StatusCode::UNAUTHORIZED, "{path}: {aud}");
        }
    }
    // The endpoint called is not an audience of its own.
    assert_eq!(call("/oauth/introspect", json!(app.url("/oauth/introspect"))), StatusCode::UNAUTHORIZED);
    assert_eq!(call("/oauth/revoke", json!(app.url("/oauth/revoke"))), StatusCode::UNAUTHORIZED);
}

/// Hole 10: the per-IP sign-in throttle counts an IPv6 /64 as one
/// address (one host usually holds a whole /64).
fn sign_in_throttle_groups_ipv6_by_64(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            c.login_max_failures = 2;
        })
        .start();
    let bea = app.person("bea@example.com");
    // 4 × 2 failures, each from another address of one /64 and for
    // another account (so no account is throttled).
    for i in 1..=8 {
        let status =
            sign_in_from(&app, &format!("guess{i}@example.com"), "wrong password", &format!("2001:db8:1:2::{i:x}"));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = sign_in_from(&app, &bea.email, &bea.password, "2001:db8:1:2:ffff:ffff:ffff:fffe");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the same /64");
    assert_eq!(sign_in_from(&app, &bea.email, &bea.password, "2001:db8:1:3::1"), StatusCode::FOUND, "another /64");
    assert_eq!(sign_in_from(&app, &bea.email, &bea.password, "192.0.2.7"), StatusCode::FOUND, "IPv4 apart");
}

/// Hole 10: argon2 runs without a pooled connection, so sign-ins cannot
/// starve other requests of the pool.
fn sign_ins_do_not_starve_the_database_pool(backend: Backend) {
    const SIGN_INS: usize = 10;
    let app = TestApp::builder(backend)
        .with_config(|c| {
            c.database_pool_size = 2;
            c.database_connect_timeout = std::time::Duration::from_millis(500);
            c.password_hash_concurrency = SIGN_INS;
        })
        .start();
    let admin = admin_token(&app);
    // Ten people: one account's attempts in flight count against its
    // throttle (five), right password or not.
    let people: Vec<Person> = (0..SIGN_INS).map(|n| app.person(&format!("p{n}@example.com"))).collect();
    let done = AtomicBool::new(false);
    let probes: Mutex<Vec<(String, StatusCode)>> = Mutex::new(Vec::new());
    let barrier = Barrier::new(SIGN_INS + 1);
    let sign_ins: Vec<StatusCode> = std::thread::scope(|s| {
        let handles: Vec<_> = people
            .iter()
            .map(|person| {
                let (app, barrier) = (&app, &barrier);
                s.spawn(move || {
                    let browser = Person::new(&person.email, &person.password);
                    let mut fields = hidden_fields(&browser.get(&app.url("/login")).text().unwrap());
                    fields.push(("email".into(), person.email.clone()));
                    fields.push(("password".into(), person.password.clone()));
                    barrier.wait();
                    browser.post(&app.url("/login"), &fields).status()
                })
            })
            .collect();
        let (app, done, probes, barrier, admin) = (&app, &done, &probes, &barrier, &admin);
        s.spawn(move || {
            let http = http_client();
            barrier.wait();
            while !done.load(Ordering::SeqCst) {
                for path in ["/readyz", "/v1/users"] {
                    let status = http.get(app.url(path)).bearer_auth(admin).send().unwrap().status();
                    probes.lock().unwrap().push((path.to_string(), status));
                }
            }
        });
        let statuses = handles.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        statuses
    });
    assert!(sign_ins.iter().all(|s| *s == StatusCode::FOUND), "{sign_ins:?}");
    let probes = probes.into_inner().unwrap();
    assert!(!probes.is_empty(), "the probes ran during the sign-ins");
    assert!(probes.iter().all(|(_, s)| *s == StatusCode::OK), "{probes:?}");
}

/// Hole 10: consent is remembered per user, client, scope and audience,
/// and the consent page names the audience.
fn consent_is_remembered_per_audience(backend: Backend) {
    let app = TestApp::start(backend);
    let photos = app.create_resource("https://photos.example.com", TokenAlg::Rs256, "read");
    let client = app.create_client(NewClient {
        name: "Photo Printer".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "read".into(),
        audiences: vec![photos.identifier.clone()],
        auth_method: Some(AuthMethod::ClientSecretBasic),
        ..NewClient::default()
    });
    let person = app.admin();
    person.sign_in(&app);
    let default_url = authorize_url(&app, &client.id, "read", &[]);
    let photos_url = authorize_url(&app, &client.id, "read", &[("resource", &photos.identifier)]);

    let page = person.get(&default_url);
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().unwrap();
    assert!(html.contains(&app.default_audience()), "the page names the default audience");
    let back = person.decide(&app, hidden_fields(&html), "approve");
    assert!(param(&back, "code").is_some(), "{back}");

    // The same scope for another audience is a new question.
    let page = person.get(&photos_url);
    assert_eq!(page.status(), StatusCode::OK, "consent for the default audience does not cover photos");
    let html = page.text().unwrap();
    assert!(html.contains(&photos.identifier), "the page names the audience");
    let back = person.decide(&app, hidden_fields(&html), "approve");
    let (status, body) = redeem(&app, &client, &param(&back, "code").unwrap());
    assert_eq!(status, 200, "{body}");

    // Both answers are remembered.
    for url in [&default_url, &photos_url] {
        let res = person.get(url);
        assert_eq!(res.status(), StatusCode::FOUND);
        assert!(param(&location_bytes(&res).unwrap(), "code").is_some());
    }
}

/// The consent migration: a consent given before audiences were recorded
/// is a consent for the server's own API.
fn consent_audience_migration_keeps_earlier_consents(backend: Backend) {
    let app = TestApp::start(backend);
    let client = app.web_client("read");
    let admin_id = user_id(&app, "admin@localhost");
    // Ids are the server's own base62 values: safe to write into SQL.
    let insert = format!(
        "INSERT INTO consents (user_id, client_id, scope, granted_at) \
         VALUES ('{admin_id}', '{}', 'read', '2026-11-23 12:00:00')",
        client.id
    );
    {
        let mut conn = app.conn();
        match &mut *conn {
            DbConn::Sqlite(c) => replay_consent_migration(c, "migrations/sqlite", &insert),
            DbConn::Postgres(c) => replay_consent_migration(c, "migrations/postgres", &insert),
        }
    }
    let kept = tessera::store::grants::consented_scopes(&mut app.conn(), &admin_id, &client.id, "").unwrap();
    assert_eq!(kept, ["read"]);
    let person = app.admin();
    person.sign_in(&app);
    let res = person.get(&authorize_url(&app, &client.id, "read", &[]));
    assert_eq!(res.status(), StatusCode::FOUND, "the earlier consent covers the server's own API");
    assert!(param(&location_bytes(&res).unwrap(), "code").is_some());
    let res = person.get(&authorize_url(&app, &client.id, "read", &[("prompt", "consent")]));
    assert_eq!(res.status(), StatusCode::OK, "the page itself still works");
}

both_backends!(
    a_resource_server_named_like_the_api_speaks_for_nothing_on_v1,
    hs256_resource_secret_cannot_forge_v1_admin_token,
    access_token_outliving_the_configured_ttl_is_refused,
    open_redirect_after_sign_in_is_refused,
    disabling_a_user_revokes_their_sessions_and_tokens,
    disabling_a_user_from_the_cli_revokes_their_grants,
    tokens_of_a_disabled_client_read_inactive,
    family_revocation_covers_tokens_minted_during_the_race,
    quadratic_parameter_parsing_is_capped,
    retired_signing_key_stops_verifying_once_unpublished,
    client_assertion_aud_is_a_single_issuer_or_token_endpoint,
    sign_in_throttle_groups_ipv6_by_64,
    sign_ins_do_not_starve_the_database_pool,
    consent_is_remembered_per_audience,
    consent_audience_migration_keeps_earlier_consents,
);
