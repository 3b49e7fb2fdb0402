//! Several instances as one (issue #14): two `tessera serve` processes, A
//! and B, on one PostgreSQL database under one issuer, and what must hold
//! across them — a code redeemed once, a refresh family revoked wherever
//! a token is reused, revocations and a signing-key rotation seen by the
//! other within the bound, one sign-in throttle, migrations run once by
//! instances that start together. And SIGTERM: the request in flight
//! finishes while new connections are refused.
//!
//! Plain tests that return early without PostgreSQL (and fail under CI),
//! as `readiness.rs` does: `both_backends!` would pair each with a SQLite
//! twin, and a fleet on one SQLite file is not what is deployed. The
//! SIGTERM test needs one instance only, and runs on SQLite.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::Duration;

use base64::Engine;
use diesel::{Connection, PgConnection, RunQueryDsl};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use tessera::oauth::authorize::s256;

use crate::support::browser::{Person, REDIRECT_URI};
use crate::support::fleet::{self, Fleet, Instance, until, within_bound};
use crate::support::{Backend, Site, TestDatabase};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk_a_fleet_verifier";

/// A confidential client and its secret.
struct App {
    id: String,
    secret: String,
}

/// A web app made by the CLI: with a redirect URI it gets the code,
/// refresh and client credentials grants.
fn web_app(fleet: &Fleet) -> App {
    let client = fleet.cli_json(&[
        "client",
        "create",
        "--name",
        "Photo Printer",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        "read offline_access",
        "--json",
    ]);
    App { id: client["client_id"].as_str().unwrap().into(), secret: client["client_secret"].as_str().unwrap().into() }
}

/// The first admin, with the password A printed at first start.
fn admin(fleet: &Fleet) -> Person {
    Person::new("admin@localhost", &fleet.a.served.admin_password())
}

/// An authorization request with PKCE (S256 of `VERIFIER`) at `site`.
fn authorize_url(site: &impl Site, app: &App, scope: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &app.id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", scope)
        .append_pair("state", "fleet")
        .append_pair("code_challenge", &s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    site.url(&format!("/oauth/authorize?{}", q.finish()))
}

/// `POST /oauth/token` at `base` with client_secret_basic.
fn token_request(http: &Client, base: &str, app: &App, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res =
        http.post(format!("{base}/oauth/token")).basic_auth(&app.id, Some(&app.secret)).form(form).send().unwrap();
    let status = res.status();
    (status, res.json().unwrap())
}

fn redeem(http: &Client, base: &str, app: &App, code: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT_URI),
    ];
    token_request(http, base, app, &form)
}

fn refresh(http: &Client, base: &str, app: &App, refresh_token: &str) -> (StatusCode, Value) {
    token_request(http, base, app, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
}

/// A client credentials access token from `base`; panics unless 200.
fn cc_token(http: &Client, base: &str, app: &App) -> String {
    let (status, body) = token_request(http, base, app, &[("grant_type", "client_credentials"), ("scope", "read")]);
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// Whether `base` introspects `token` as active for `app`.
fn active(http: &Client, base: &str, app: &App, token: &str) -> bool {
    let res = http
        .post(format!("{base}/oauth/introspect"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(&[("token", token)])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().unwrap()["active"] == true
}

fn assert_invalid_grant((status, body): (StatusCode, Value), what: &str) {
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{what}: {body}");
}

fn str_of<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field].as_str().unwrap_or_else(|| panic!("no {field} in {body}"))
}

/// A code issued through A is redeemed on B, and its replay on A is
/// refused (and revokes what B issued for it); redeemed on A and on B at
/// the same instant, exactly one wins.
#[test]
fn a_code_is_redeemed_once_across_instances() {
    let Some(backend) = Backend::postgres() else { return };
    let fleet = Fleet::start(&backend);
    let (a, b, http) = (fleet.a.base.as_str(), fleet.b.base.as_str(), &fleet.http);
    let app = web_app(&fleet);
    let person = admin(&fleet);

    // Sign-in and consent on A; the code redeemed on B.
    let code = person.approve(&fleet.a, &authorize_url(&fleet.a, &app, "read"));
    let (status, tokens) = redeem(http, b, &app, &code);
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = str_of(&tokens, "access_token");
    assert!(active(http, a, &app, access) && active(http, b, &app, access), "active on both (and in memory)");
    // Replayed on A: refused, and the tokens B issued for it are revoked
    // (RFC 9700 §4.4.2): at once on A, within the bound on B.
    assert_invalid_grant(redeem(http, a, &app, &code), "the code replayed on the other instance");
    assert!(!active(http, a, &app, access), "revoked at once where the replay was seen");
    within_bound(
        "the tokens of a replayed code read inactive on the other instance",
        until(|| !active(http, b, &app, access)),
    );

    // The race: the same code on A and on B at once, several times over.
    // (Consent is remembered now: each code comes straight back.)
    for round in 1..=5 {
        let code = person.approve(&fleet.a, &authorize_url(&fleet.a, &app, "read"));
        let barrier = Barrier::new(2);
        let answers: Vec<(StatusCode, Value)> = std::thread::scope(|s| {
            let racers: Vec<_> = [a, b]
                .into_iter()
                .map(|base| {
                    let (barrier, app, code) = (&barrier, &app, &code);
                    s.spawn(move || {
                        barrier.wait();
                        redeem(http, base, app, code)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let winners: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, b)| b).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one redemption succeeds: {answers:?}");
        let loser = answers.iter().find(|(s, _)| *s != StatusCode::OK).unwrap().clone();
        assert_invalid_grant(loser, &format!("round {round}: the other redemption"));
        // The loser cannot tell a race from a replay: the winner's tokens
        // are revoked too (`user_grants::authorization_code`).
        let access = str_of(winners[0], "access_token");
        within_bound(
            "the race's winning tokens read inactive on both instances",
            until(|| !active(http, a, &app, access) && !active(http, b, &app, access)),
        );
    }
}

/// A family minted and rotated on A; the retired refresh token presented
/// on B is a reuse: the whole family is revoked, everywhere.
#[test]
fn a_refresh_token_reused_on_b_revokes_the_family_minted_on_a() {
    let Some(backend) = Backend::postgres() else { return };
    let fleet = Fleet::start(&backend);
    let (a, b, http) = (fleet.a.base.as_str(), fleet.b.base.as_str(), &fleet.http);
    let app = web_app(&fleet);
    let person = admin(&fleet);

    let code = person.approve(&fleet.a, &authorize_url(&fleet.a, &app, "read offline_access"));
    let (status, first) = redeem(http, a, &app, &code);
    assert_eq!(status, StatusCode::OK, "{first}");
    let (access0, r0) = (str_of(&first, "access_token"), str_of(&first, "refresh_token"));
    // Rotation on A: a new refresh token, the old one retired.
    let (status, second) = refresh(http, a, &app, r0);
    assert_eq!(status, StatusCode::OK, "{second}");
    let (access1, r1) = (str_of(&second, "access_token"), str_of(&second, "refresh_token"));
    assert_ne!(r1, r0, "the refresh token rotates");
    for base in [a, b] {
        for access in [access0, access1] {
            assert!(active(http, base, &app, access), "the family is live on {base} (and in its memory)");
        }
    }

    // The retired token on B: refused as a reuse.
    assert_invalid_grant(refresh(http, b, &app, r0), "the retired refresh token on the other instance");
    // The newest one is refused on A at once: a refresh spends its token
    // in the database, so no instance may answer it from a stale memory.
    assert_invalid_grant(refresh(http, a, &app, r1), "the newest refresh token of a revoked family");
    assert!(!active(http, a, &app, r1), "the newest refresh token introspects inactive");
    // Every access token of the family reads inactive: at once on B,
    // where the reuse was seen, and within the bound on A.
    assert!(!active(http, b, &app, access0) && !active(http, b, &app, access1), "revoked at once on B");
    within_bound(
        "a family revoked on another instance reads inactive",
        until(|| !active(http, a, &app, access0) && !active(http, a, &app, access1)),
    );
}

/// Changes made through A's HTTP API — an API key revoked, a client
/// disabled — are obeyed by B within the bound. (`hot_path.rs` covers the
/// same through the CLI, on both backends.)
#[test]
fn a_key_revoked_and_a_client_disabled_through_a_are_refused_by_b() {
    let Some(backend) = Backend::postgres() else { return };
    let fleet = Fleet::start(&backend);
    let (a, b, http) = (fleet.a.base.as_str(), fleet.b.base.as_str(), &fleet.http);
    let (_, root) = fleet.key("read,write,delete,admin");

    // An API key made through A, used on B (so B holds it in memory).
    let res = http.post(format!("{a}/v1/api-keys")).bearer_auth(&root).json(&json!({ "name": "Victim" })).send();
    let made: Value = res.unwrap().json().unwrap();
    let (key_id, key) = (str_of(&made["data"], "id"), str_of(&made["data"], "key"));
    let verify = |base: &str| -> bool {
        let res = http.post(format!("{base}/v1/keys/verify")).bearer_auth(&root).json(&json!({ "key": key })).send();
        let body: Value = res.unwrap().json().unwrap();
        body["valid"].as_bool().unwrap_or_else(|| panic!("{body}"))
    };
    within_bound("a key made through A is accepted by B", until(|| fleet.me(b, key) == StatusCode::OK));
    assert!(verify(b), "B verifies the key");
    // Revoked through A: refused at once on A, within the bound on B, by
    // `/v1` authentication and by `/v1/keys/verify`.
    let res = http.delete(format!("{a}/v1/api-keys/{key_id}")).bearer_auth(&root).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(fleet.me(a, key), StatusCode::UNAUTHORIZED, "at once where it was revoked");
    within_bound(
        "a key revoked through A is refused by B",
        until(|| fleet.me(b, key) == StatusCode::UNAUTHORIZED && !verify(b)),
    );

    // A client registered through A's API; B issues its tokens, one of
    // them acting for the admin (the code flow run on B).
    let res = http
        .post(format!("{a}/v1/clients"))
        .bearer_auth(&root)
        .json(&json!({ "name": "Photo Printer", "redirect_uris": [REDIRECT_URI], "scope": "read" }))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let made: Value = res.json().unwrap();
    let app =
        App { id: str_of(&made["data"], "client_id").into(), secret: str_of(&made["data"], "client_secret").into() };
    let code = admin(&fleet).approve(&fleet.b, &authorize_url(&fleet.b, &app, "read"));
    let (status, tokens) = redeem(http, b, &app, &code);
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = str_of(&tokens, "access_token");
    assert_eq!(fleet.me(b, access), StatusCode::OK, "the person's token works on B");
    cc_token(http, b, &app);

    // Disabled through A's API: A refuses it at once; B stops issuing to
    // it and stops accepting its tokens within the bound.
    let res = http.delete(format!("{a}/v1/clients/{}", app.id)).bearer_auth(&root).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let client_credentials =
        |base: &str| token_request(http, base, &app, &[("grant_type", "client_credentials"), ("scope", "read")]);
    let (status, body) = client_credentials(a);
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    within_bound(
        "a client disabled through A is refused by B",
        until(|| client_credentials(b).0 == StatusCode::UNAUTHORIZED),
    );
    assert_eq!(client_credentials(b).1["error"], "invalid_client");
    within_bound(
        "the tokens of a client disabled through A are refused by B",
        until(|| fleet.me(b, access) == StatusCode::UNAUTHORIZED),
    );
}

/// `kid`s of the JWKS at `base`.
fn jwks(http: &Client, base: &str) -> JwkSet {
    let res = http.get(format!("{base}/.well-known/jwks.json")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys.iter().filter_map(|k| k.common.key_id.clone()).collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.expect("a kid")
}

/// Verifies an access token as a resource server holding `set` would:
/// the key its `kid` names, RS256, the fleet's issuer and audience.
fn verify_with(set: &JwkSet, token: &str) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("a kid");
    let jwk = set.find(&kid).unwrap_or_else(|| panic!("{kid} is published"));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[fleet::ISSUER]);
    validation.set_audience(&[format!("{}/v1", fleet::ISSUER)]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("the token verifies against the other instance's JWKS: {e}"));
}

/// A rotation made by the CLI: a staged key is published by both before
/// it signs anything; a key that signs at once (`--now`) is used by both,
/// and each one's tokens verify against the other's JWKS.
#[test]
fn a_signing_key_rotated_by_the_cli_is_published_then_used_by_both() {
    let Some(backend) = Backend::postgres() else { return };
    let fleet = Fleet::start(&backend);
    let (a, b, http) = (fleet.a.base.as_str(), fleet.b.base.as_str(), &fleet.http);
    let app = web_app(&fleet);
    let first = kid_of(&cc_token(http, a, &app));
    assert_eq!(kid_of(&cc_token(http, b, &app)), first, "one key signs for the fleet");
    assert!(kids(&jwks(http, a)).contains(&first) && kids(&jwks(http, b)).contains(&first));

    // Staged (TESSERA_SIGNING_KEY_PREPUBLISH, an hour by default): both
    // publish it within the bound, and neither signs with it yet.
    let staged = fleet.cli_json(&["signing-key", "rotate", "--alg", "RS256", "--json"]);
    let (staged, state) = (str_of(&staged[0], "kid").to_string(), str_of(&staged[0], "state"));
    assert_eq!(state, "next");
    within_bound(
        "a staged key is published by both",
        until(|| kids(&jwks(http, a)).contains(&staged) && kids(&jwks(http, b)).contains(&staged)),
    );
    for base in [a, b] {
        assert_eq!(kid_of(&cc_token(http, base, &app)), first, "{base} does not sign with a staged key");
    }

    // Signing at once: both publish it and sign with it within the bound.
    let now = fleet.cli_json(&["signing-key", "rotate", "--alg", "RS256", "--now", "--json"]);
    let (now, state) = (str_of(&now[0], "kid").to_string(), str_of(&now[0], "state"));
    assert_eq!(state, "active");
    within_bound(
        "a key made active by the CLI signs on both",
        until(|| kid_of(&cc_token(http, a, &app)) == now && kid_of(&cc_token(http, b, &app)) == now),
    );
    let (from_a, from_b) = (cc_token(http, a, &app), cc_token(http, b, &app));
    assert_eq!((kid_of(&from_a), kid_of(&from_b)), (now.clone(), now.clone()));
    let (set_a, set_b) = (jwks(http, a), jwks(http, b));
    for set in [&set_a, &set_b] {
        // The retired key stays published while its tokens live.
        assert!([&first, &staged, &now].iter().all(|k| kids(set).contains(k)), "{:?}", kids(set));
    }
    verify_with(&set_b, &from_a);
    verify_with(&set_a, &from_b);
    // And each instance accepts the other's token.
    assert!(active(http, b, &app, &from_a) && active(http, a, &app, &from_b));
}

/// Sign-in failures are rows in the database, per account: failing in
/// turn on A and B trips the throttle after `TESSERA_LOGIN_MAX_FAILURES`
/// in all, not per instance, and then both refuse even the right password.
#[test]
fn sign_in_failures_on_both_instances_trip_one_throttle() {
    let Some(backend) = Backend::postgres() else { return };
    let fleet = Fleet::start_with(&backend, &[("TESSERA_LOGIN_MAX_FAILURES", "3")]);
    let person = admin(&fleet);
    person.sign_in(&fleet.b);

    // A, B, A: three failures in all, no more than two on either.
    for (n, at) in [&fleet.a, &fleet.b, &fleet.a].into_iter().enumerate() {
        let res = person.submit_login(at, &at.url("/login"), "not the password");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "failure {} is checked, not throttled", n + 1);
    }
    for at in [&fleet.b, &fleet.a] {
        let res = person.submit_login(at, &at.url("/login"), &person.password.clone());
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{}: even the right password waits", at.base);
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 900, "Retry-After {retry}");
        assert!(res.text().unwrap().contains("try again in"), "the throttled page says when");
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

/// Two instances started at the same instant on an empty database: both
/// come up, every migration is applied once (they run under an advisory
/// lock), and one first admin is made. Three fresh databases in a row.
#[test]
fn instances_started_together_on_an_empty_database_migrate_once() {
    let Some(backend) = Backend::postgres() else { return };
    let migrations_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let migrations = std::fs::read_dir(migrations_dir).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    for round in 1..=3 {
        let database = TestDatabase::new(&backend);
        // The fleet's master key is provisioned before its instances start
        // (each would otherwise make a key file of its own).
        tessera::crypto::MasterKey::load_or_create(&database.dir.path().join("master-key")).unwrap();
        let barrier = Barrier::new(2);
        let (a, b) = std::thread::scope(|s| {
            let (barrier, database) = (&barrier, &database);
            let start = || {
                s.spawn(move || {
                    barrier.wait();
                    Instance::start(database, &[])
                })
            };
            let (a, b) = (start(), start());
            (a.join().unwrap(), b.join().unwrap())
        });
        let http = crate::support::http_client();
        for at in [&a, &b] {
            assert_eq!(http.get(at.url("/readyz")).send().unwrap().status(), StatusCode::OK, "round {round}");
        }
        let mut conn = PgConnection::establish(&database.url_string()).unwrap();
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM __diesel_schema_migrations") as usize,
            migrations,
            "round {round}: every migration applied, once"
        );
        assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM users"), 1, "round {round}: one first admin");
        let announced =
            [&a, &b].iter().filter(|i| i.served.stdout.iter().any(|l| l.starts_with("First start"))).count();
        assert_eq!(announced, 1, "round {round}: one instance made the admin and printed its password");
    }
}

/// Reads one HTTP head (through the blank line) from `stream`.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed mid-head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Whether a new connection to `addr` is refused, or closed without an
/// answer; false while the server still answers (or has not yet within a
/// second).
fn new_connection_refused(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else { return true };
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    if stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .is_err()
    {
        return true;
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => answer.is_empty(),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => answer.is_empty(),
    }
}

/// SIGTERM drains: a token request whose body is still arriving when the
/// signal comes gets its whole answer, while the server stops listening;
/// then the process exits 0, without waiting out the shutdown timeout
/// (`TESSERA_SHUTDOWN_TIMEOUT`, the time requests in flight get).
#[test]
fn sigterm_finishes_the_request_in_flight_and_refuses_new_connections() {
    let database = TestDatabase::new(&Backend::Sqlite);
    let env = [("TESSERA_SHUTDOWN_TIMEOUT", "30")];
    let server = Instance::start(&database, &env);
    let client: Value = serde_json::from_str(&fleet::cli(
        &database,
        &env,
        &["client", "create", "--name", "svc", "--scope", "read", "--json"],
    ))
    .unwrap();
    let (id, secret) = (str_of(&client, "client_id"), str_of(&client, "client_secret"));
    let addr = server.base.strip_prefix("http://").unwrap().to_string();

    // A body of 100 bytes, announced in full, sent in part: the request is
    // in flight once the server has answered `100 Continue`.
    let mut body = "grant_type=client_credentials&scope=read&pad=".to_string();
    body.push_str(&"x".repeat(100 - body.len()));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    let continued = read_head(&mut slow);
    assert!(continued.starts_with("HTTP/1.1 100 Continue"), "{continued}");
    slow.write_all(&body.as_bytes()[..40]).unwrap();

    server.served.sigterm();
    let signalled = std::time::Instant::now();
    // The listener closes: a new connection is refused (or dropped
    // unanswered), while the slow one is still open.
    until(|| new_connection_refused(&addr));
    // The upload stays slow past actix's first shutdown check (1 s): a
    // server that gave requests in flight no time (a shutdown timeout of
    // 0) would close the connection then.
    while signalled.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(new_connection_refused(&addr), "still refusing new connections while draining");

    // The rest of the body: the request in flight gets its whole answer.
    slow.write_all(&body.as_bytes()[40..]).expect("the connection in flight is still open");
    let mut answer = String::new();
    slow.read_to_string(&mut answer).expect("the connection in flight is answered");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "the request in flight is answered in full: {answer:?}");
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(json["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{json}");

    // Drained, it exits at once rather than at the end of the timeout.
    let (status, stderr) = server.served.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit {status}: {stderr}");
}
