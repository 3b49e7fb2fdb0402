//! The purge (issue 10, hole 11): rows are made through the real server,
//! the ManualClock moves past their lifetimes, and `purge::purge` runs on
//! the test app's database. Exactly the dead rows go; the live ones stay
//! and still work over HTTP. The background task and `tessera purge` are
//! checked too.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::audit::{self, Actor, AuditEvent};
use tessera::clock::Clock;
use tessera::crypto::{fingerprint, random_base62};
use tessera::oauth::clients::AuthMethod;
use tessera::purge::{self, PurgeReport};
use tessera::store::DbConn;
use tessera::store::schema::{
    audit_events, authorization_codes, grant_access_tokens, grants, login_failures, refresh_tokens, revoked_tokens,
    sdk_sessions, sessions, used_assertions,
};

use crate::both_backends;
use crate::support::browser::{Person, REDIRECT_URI, authorization_url};
use crate::support::oauth::{JWT_BEARER, TestClient, hs256_assertion};
use crate::support::{Backend, TestApp, TestDatabase};

/// A test app whose background purge never runs: the test decides when.
fn app_without_background_purge(
    backend: Backend,
    change: impl FnOnce(&mut tessera::config::Config) + 'static,
) -> TestApp {
    TestApp::builder(backend)
        .with_config(move |c| {
            c.purge_interval = StdDuration::ZERO;
            change(c);
        })
        .start()
}

fn purge_now(app: &TestApp) -> PurgeReport {
    purge::purge(&mut app.conn(), &app.clock, &app.config.purge_policy()).expect("purge")
}

fn now(app: &TestApp) -> NaiveDateTime {
    app.clock.now().naive_utc()
}

/// The `tessera` binary on `db`, with a clean TESSERA_* environment.
fn tessera_on(db: &TestDatabase) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(db.dir.path())
        .env("TESSERA_DATABASE_CONNECT_TIMEOUT", "2")
        .env("TESSERA_DATABASE_URL", db.url_string())
        .env("TESSERA_MASTER_KEY_FILE", db.dir.path().join("master-key"));
    cmd
}

fn json_of(mut cmd: Command) -> Value {
    let out = cmd.output().expect("run tessera");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

// ---------------------------------------------------------------------------
// Sessions and sign-in failures

fn session_ids(conn: &mut DbConn) -> BTreeSet<String> {
    sessions::table.select(sessions::id).load(conn).unwrap().into_iter().collect()
}

fn failure_times(conn: &mut DbConn) -> Vec<NaiveDateTime> {
    let mut times: Vec<NaiveDateTime> = login_failures::table.select(login_failures::occurred_at).load(conn).unwrap();
    times.sort();
    times
}

fn signed_in_as(app: &TestApp, person: &Person) -> bool {
    let page = person.get(&app.url("/"));
    assert_eq!(page.status(), 200);
    page.text().unwrap().contains(&format!("Signed in as {}", person.email))
}

fn purge_ends_dead_sessions_and_forgets_old_sign_in_failures(backend: Backend) {
    let app = app_without_background_purge(backend, |c| {
        c.session_idle_ttl = StdDuration::from_secs(30 * 60);
        c.session_ttl = StdDuration::from_secs(60 * 60);
    });
    let minutes = |m| app.clock.advance(Duration::minutes(m));
    let (ann, cid, lee) = (app.person("ann@example.com"), app.person("cid@example.com"), app.person("lee@example.com"));
    let session_of = |p: &Person| fingerprint(&p.session_cookie(&app).expect("a session"));

    // T+0: Ann signs in and stays busy: her session dies of old age (60 min).
    ann.sign_in(&app);
    minutes(25);
    assert!(signed_in_as(&app, &ann));
    // T+25: Cid signs in and goes quiet: his dies of idleness (30 min).
    cid.sign_in(&app);
    minutes(25);
    assert!(signed_in_as(&app, &ann));
    // T+50: two wrong passwords for one account.
    let wrong = |email: &str| {
        let res = Person::new(email, "unused").submit_login(&app, &app.url("/login"), "not the password");
        assert_ne!(res.status(), 302, "a wrong password does not sign in");
    };
    wrong("mallory@example.com");
    wrong("mallory@example.com");
    let old_failures_until = now(&app);
    minutes(5);
    // T+55: Lee signs in; T+60 one more wrong password.
    lee.sign_in(&app);
    minutes(5);
    let recent_failures_from = now(&app);
    wrong("eve@example.com");
    minutes(6);

    // T+66: Ann's absolute expiry (T+60) and Cid's idle expiry (T+55)
    // have passed; Lee's session (seen at T+55) lives. Failures of T+50
    // are outside the 15-minute window, those of T+60 inside.
    let mut conn = app.conn();
    let (a, c, l) = (session_of(&ann), session_of(&cid), session_of(&lee));
    assert_eq!(session_ids(&mut conn), BTreeSet::from([a.clone(), c.clone(), l.clone()]));
    let failures = failure_times(&mut conn);
    let (old, recent): (Vec<_>, Vec<_>) = failures.iter().partition(|t| **t <= old_failures_until);
    assert!(old.len() >= 2 && !recent.is_empty(), "{failures:?}");
    assert!(recent.iter().all(|t: &&NaiveDateTime| **t >= recent_failures_from), "{failures:?}");
    drop(conn);

    let report = purge_now(&app);
    assert_eq!(report.sessions, 2, "{report:?}");
    assert_eq!(report.login_failures, old.len(), "{report:?}");
    let mut conn = app.conn();
    assert_eq!(session_ids(&mut conn), BTreeSet::from([l]));
    assert_eq!(failure_times(&mut conn), recent.into_iter().copied().collect::<Vec<_>>());
    drop(conn);
    // The live session still signs Lee in; the others are gone.
    assert!(signed_in_as(&app, &lee));
    assert!(!signed_in_as(&app, &ann));
    assert!(!signed_in_as(&app, &cid));
    // Nothing is left to purge.
    assert_eq!(purge_now(&app), PurgeReport::default());
}

// ---------------------------------------------------------------------------
// Authorization codes and refresh-token families

/// A code from the front channel (the admin approves) and its verifier.
fn new_code(app: &TestApp, client: &TestClient) -> (String, String) {
    let oauth = app.oauth2_client(client);
    let (url, _, verifier) = authorization_url(&oauth, &["read", "offline_access"]);
    let code = app.admin().approve(app, &url);
    (code, verifier.secret().to_string())
}

fn token_request(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = app.post_form("/oauth/token", form, Some((&client.id, client.secret())));
    (res.status(), res.json().unwrap())
}

fn redeem(app: &TestApp, client: &TestClient, (code, verifier): &(String, String)) -> (StatusCode, Value) {
    token_request(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
}

fn refresh(app: &TestApp, client: &TestClient, token: &str) -> (StatusCode, Value) {
    token_request(app, client, &[("grant_type", "refresh_token"), ("refresh_token", token)])
}

/// A family: a code redeemed, then refreshed once. Its grant id and its
/// two refresh tokens (the first retired).
struct Family {
    grant: String,
    retired: String,
    current: String,
}

fn family(app: &TestApp, client: &TestClient) -> Family {
    let (status, body) = redeem(app, client, &new_code(app, client));
    assert_eq!(status, 200, "{body}");
    let first = body["refresh_token"].as_str().expect("a refresh token").to_string();
    let (status, body) = refresh(app, client, &first);
    assert_eq!(status, 200, "{body}");
    let current = body["refresh_token"].as_str().unwrap().to_string();
    let grant = grant_of(&mut app.conn(), &current).expect("a stored refresh token");
    Family { grant, retired: first, current }
}

fn grant_of(conn: &mut DbConn, refresh_token: &str) -> Option<String> {
    refresh_tokens::table
        .find(fingerprint(refresh_token))
        .select(refresh_tokens::grant_id)
        .first(conn)
        .optional()
        .unwrap()
}

fn refresh_rows(conn: &mut DbConn, grant: &str) -> usize {
    refresh_tokens::table.filter(refresh_tokens::grant_id.eq(grant)).count().get_result::<i64>(conn).unwrap() as usize
}

fn access_records(conn: &mut DbConn, grant: &str) -> usize {
    grant_access_tokens::table.filter(grant_access_tokens::grant_id.eq(grant)).count().get_result::<i64>(conn).unwrap()
        as usize
}

fn grant_revoked(conn: &mut DbConn, grant: &str) -> Option<bool> {
    grants::table
        .find(grant)
        .select(grants::revoked_at)
        .first::<Option<NaiveDateTime>>(conn)
        .optional()
        .unwrap()
        .map(|r| r.is_some())
}

fn code_count(conn: &mut DbConn) -> usize {
    authorization_codes::table.count().get_result::<i64>(conn).unwrap() as usize
}

fn purge_removes_expired_codes_and_dead_refresh_tokens(backend: Backend) {
    let app = app_without_background_purge(backend, |c| {
        c.refresh_token_idle_ttl = StdDuration::from_secs(3600);
        c.refresh_token_ttl = StdDuration::from_secs(3 * 3600);
    });
    let client = app.web_client("read");
    let advance = |d: Duration| app.clock.advance(d);

    // T+0: family D, which will outlive its absolute lifetime (3 h).
    let dead = family(&app, &client);
    advance(Duration::hours(2));
    // T+2h: family I, whose current token expires unused at T+3h (idle 1 h).
    let idle = family(&app, &client);
    advance(Duration::minutes(45));
    // T+2h45: family V, revoked by the client (its tokens live on until T+5h45).
    let revoked = family(&app, &client);
    let res = app.post_form("/oauth/revoke", &[("token", &revoked.current)], Some((&client.id, client.secret())));
    assert_eq!(res.status(), 200);
    advance(Duration::minutes(15));
    // T+3h: family L, alive.
    let live = family(&app, &client);
    advance(Duration::minutes(28));
    // T+3h28: a code never redeemed (codes live 60 s) …
    let _expired_code = new_code(&app, &client);
    advance(Duration::seconds(90));
    // … and at T+3h29m30 one still valid at T+3h30.
    let valid_code = new_code(&app, &client);
    advance(Duration::seconds(30));

    let mut conn = app.conn();
    assert_eq!(code_count(&mut conn), 6, "four redeemed codes and two fresh ones");
    for f in [&dead, &idle, &revoked, &live] {
        assert_eq!(refresh_rows(&mut conn, &f.grant), 2);
        assert_eq!(access_records(&mut conn, &f.grant), 2);
    }
    assert_eq!(grant_revoked(&mut conn, &revoked.grant), Some(true));
    drop(conn);

    let report = purge_now(&app);
    assert_eq!(report.authorization_codes, 5, "{report:?}");
    assert_eq!(report.refresh_tokens, 3, "family D's two and family I's unused expired one: {report:?}");
    assert_eq!(report.grant_access_tokens, 2, "{report:?}");
    assert_eq!(report.grants, 1, "{report:?}");

    let mut conn = app.conn();
    assert_eq!(code_count(&mut conn), 1);
    // Family D is gone entirely.
    assert_eq!(refresh_rows(&mut conn, &dead.grant), 0);
    assert_eq!(access_records(&mut conn, &dead.grant), 0);
    assert_eq!(grant_revoked(&mut conn, &dead.grant), None);
    // Family I keeps its retired token (reuse detection) but not the
    // unused one that expired.
    assert_eq!(grant_of(&mut conn, &idle.retired).as_deref(), Some(idle.grant.as_str()));
    assert_eq!(grant_of(&mut conn, &idle.current), None);
    assert_eq!(access_records(&mut conn, &idle.grant), 2);
    // Family V, revoked but within its lifetime, and family L keep everything.
    for f in [&revoked, &live] {
        assert_eq!(refresh_rows(&mut conn, &f.grant), 2);
        assert_eq!(access_records(&mut conn, &f.grant), 2);
    }
    drop(conn);

    // What is left still works as before the purge: the live family
    // refreshes, the valid code redeems, and presenting family I's retired
    // token is still detected as reuse and revokes the family.
    let (status, body) = refresh(&app, &client, &live.current);
    assert_eq!(status, 200, "{body}");
    let (status, body) = redeem(&app, &client, &valid_code);
    assert_eq!(status, 200, "{body}");
    let (status, body) = refresh(&app, &client, &idle.retired);
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
    assert_eq!(grant_revoked(&mut app.conn(), &idle.grant), Some(true));
    let (status, body) = refresh(&app, &client, &revoked.current);
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

fn purge_keeps_a_family_until_its_last_access_token_has_expired(backend: Backend) {
    let app = app_without_background_purge(backend, |c| c.refresh_token_ttl = StdDuration::from_secs(3600));
    let client = app.web_client("read");
    let basic = (client.id.as_str(), client.secret());
    // T+0: a family (two refresh tokens, two access tokens); at T+59m one
    // more refresh, whose access token lives until T+74m, past the
    // family's end at T+60m.
    let f = family(&app, &client);
    app.clock.advance(Duration::minutes(59));
    let (status, body) = refresh(&app, &client, &f.current);
    assert_eq!(status, 200, "{body}");
    let (last_refresh, last_access) =
        (body["refresh_token"].as_str().unwrap().to_string(), body["access_token"].as_str().unwrap().to_string());
    app.clock.advance(Duration::minutes(2));

    // T+61m: the family has ended, but its last access token lives: the
    // purge keeps the family, so revoking its refresh token still reaches
    // that access token.
    assert_eq!(app.introspect(&last_access, basic)["active"], true);
    let report = purge_now(&app);
    assert_eq!((report.refresh_tokens, report.grant_access_tokens, report.grants), (0, 0, 0), "{report:?}");
    assert_eq!((refresh_rows(&mut app.conn(), &f.grant), access_records(&mut app.conn(), &f.grant)), (3, 3));
    let res = app.post_form("/oauth/revoke", &[("token", &last_refresh)], Some(basic));
    assert_eq!(res.status(), 200);
    assert_eq!(app.introspect(&last_access, basic)["active"], false);

    // Were the access-token lifetime shorter than the one this token was
    // minted with, the refresh tokens would go, but the family's records
    // stay while any of its access tokens is unexpired.
    let mut short = app.config.purge_policy();
    short.access_token_ttl = StdDuration::ZERO;
    let report = purge::purge(&mut app.conn(), &app.clock, &short).unwrap();
    assert_eq!((report.refresh_tokens, report.grant_access_tokens, report.grants), (3, 0, 0), "{report:?}");
    assert_eq!(access_records(&mut app.conn(), &f.grant), 3);
    assert_eq!(grant_revoked(&mut app.conn(), &f.grant), Some(true));

    // T+75m: the last access token has expired; now the family goes, with
    // the revocation of that token.
    app.clock.advance(Duration::minutes(14));
    let report = purge::purge(&mut app.conn(), &app.clock, &short).unwrap();
    assert_eq!((report.grant_access_tokens, report.grants, report.revoked_tokens), (3, 1, 1), "{report:?}");
    assert_eq!(grant_revoked(&mut app.conn(), &f.grant), None);
}

// ---------------------------------------------------------------------------
// Revocations, client assertions and SDK sessions

fn revoked_jtis(conn: &mut DbConn) -> BTreeSet<String> {
    revoked_tokens::table.select(revoked_tokens::jti).load(conn).unwrap().into_iter().collect()
}

fn jti_of(token: &str) -> String {
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

fn assertion_jtis(conn: &mut DbConn) -> BTreeSet<String> {
    used_assertions::table.select(used_assertions::jti).load(conn).unwrap().into_iter().collect()
}

fn sdk_session_ids(conn: &mut DbConn) -> BTreeSet<String> {
    sdk_sessions::table.select(sdk_sessions::id).load(conn).unwrap().into_iter().collect()
}

fn purge_removes_expired_revocations_assertions_and_sdk_sessions(backend: Backend) {
    let app = app_without_background_purge(backend, |_| {});
    let basic = app.cc_client(AuthMethod::ClientSecretBasic, "read", &[]);
    let jwt = app.cc_client(AuthMethod::ClientSecretJwt, "read", &[]);
    let revoke = |token: &str| {
        let res = app.post_form("/oauth/revoke", &[("token", token)], Some((&basic.id, basic.secret())));
        assert_eq!(res.status(), 200);
    };
    // An API key of the admin's, made the way an operator would.
    let mut cmd = tessera_on(&app.database);
    cmd.args(["key", "create", "--owner", "admin@localhost", "--name", "Back end", "--mode", "test", "--json"]);
    let api_key = json_of(cmd)["key"].as_str().unwrap().to_string();
    let res = app.client.post(app.url("/v1/sdk-tokens")).bearer_auth(&api_key).send().unwrap();
    assert_eq!(res.status(), 201);
    let sdk_token = res.json::<Value>().unwrap()["data"]["token"].as_str().unwrap().to_string();
    let open_sdk_session = || {
        let res = app.client.post(app.url("/v1/api/sdk/session")).header("x-sdk-token", &sdk_token).send().unwrap();
        assert_eq!(res.status(), 201);
        res.json::<Value>().unwrap()["data"]["session_id"].as_str().unwrap().to_string()
    };
    let read_sdk_session =
        |id: &str| app.client.get(app.url(&format!("/v1/api/sdk/session/{id}"))).bearer_auth(&api_key).send().unwrap();

    // T+0: a token revoked at once (it expires at T+15m); an SDK session
    // (it expires at T+10m).
    let expired = app.cc_token(&basic, &[])["access_token"].as_str().unwrap().to_string();
    revoke(&expired);
    let old_session = open_sdk_session();
    app.clock.advance(Duration::minutes(10));
    // T+10m: another revoked token (expires at T+25m), another SDK session
    // (expires at T+20m), and two client assertions: one expiring at
    // T+11m (+30 s leeway), one at T+20m.
    let alive = app.cc_token(&basic, &[])["access_token"].as_str().unwrap().to_string();
    revoke(&alive);
    let new_session = open_sdk_session();
    let assertion = |lifetime: i64| {
        let mut claims = app.assertion_claims(&jwt.id);
        claims["exp"] = json!(app.clock.now().timestamp() + lifetime);
        let jti = claims["jti"].as_str().unwrap().to_string();
        (hs256_assertion(jwt.secret(), &claims), jti)
    };
    let use_assertion = |signed: &str| {
        let form =
            [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", signed)];
        app.post_form("/oauth/token", &form, None)
    };
    let (short, short_jti) = assertion(60);
    let (long, long_jti) = assertion(600);
    assert_eq!(use_assertion(&short).status(), 200);
    assert_eq!(use_assertion(&long).status(), 200);
    app.clock.advance(Duration::minutes(6));

    // T+16m.
    let mut conn = app.conn();
    assert_eq!(revoked_jtis(&mut conn), BTreeSet::from([jti_of(&expired), jti_of(&alive)]));
    assert_eq!(assertion_jtis(&mut conn), BTreeSet::from([short_jti, long_jti.clone()]));
    assert_eq!(sdk_session_ids(&mut conn), BTreeSet::from([old_session.clone(), new_session.clone()]));
    drop(conn);

    let report = purge_now(&app);
    assert_eq!((report.revoked_tokens, report.used_assertions, report.sdk_sessions), (1, 1, 1), "{report:?}");
    let mut conn = app.conn();
    assert_eq!(revoked_jtis(&mut conn), BTreeSet::from([jti_of(&alive)]));
    assert_eq!(assertion_jtis(&mut conn), BTreeSet::from([long_jti]));
    assert_eq!(sdk_session_ids(&mut conn), BTreeSet::from([new_session.clone()]));
    drop(conn);

    // The revocation that matters still holds: the unexpired token reads
    // inactive (it would read active had its row gone).
    assert_eq!(app.introspect(&alive, (&basic.id, basic.secret()))["active"], false);
    // The unexpired assertion is still refused as a replay.
    assert_eq!(use_assertion(&long).status(), 401);
    // The live SDK session still reads; the expired one is gone.
    assert_eq!(read_sdk_session(&new_session).status(), 200);
    assert_eq!(read_sdk_session(&old_session).status(), 404);
}

// ---------------------------------------------------------------------------
// Audit retention

fn audit_event_ids(conn: &mut DbConn) -> BTreeSet<String> {
    audit_events::table.select(audit_events::id).load(conn).unwrap().into_iter().collect()
}

fn record_event(app: &TestApp, target: &str) -> String {
    let mut conn = app.conn();
    let before = audit_event_ids(&mut conn);
    audit::record(&mut conn, &app.clock, AuditEvent::new(Actor::Cli, "test.marker", Some(target))).unwrap();
    let after = audit_event_ids(&mut conn);
    let new: Vec<_> = after.difference(&before).cloned().collect();
    assert_eq!(new.len(), 1);
    new.into_iter().next().unwrap()
}

fn purge_keeps_audit_events_for_the_retention_period(backend: Backend) {
    let app = app_without_background_purge(backend, |_| {});
    let old = record_event(&app, "old");
    app.clock.advance(Duration::days(2));
    let recent = record_event(&app, "recent");
    app.clock.advance(Duration::days(89));
    // `old` is 91 days old, `recent` 89: only `old` (and what start-up
    // recorded beside it) is past the 90 days of the default retention.
    let mut conn = app.conn();
    let cutoff = now(&app) - Duration::days(90);
    let older: BTreeSet<String> = audit_events::table
        .filter(audit_events::occurred_at.lt(cutoff))
        .select(audit_events::id)
        .load(&mut *conn)
        .unwrap()
        .into_iter()
        .collect();
    assert!(older.contains(&old) && !older.contains(&recent));
    let before = audit_event_ids(&mut conn);
    drop(conn);

    let report = purge_now(&app);
    assert_eq!(report.audit_events, older.len(), "{report:?}");
    let after = audit_event_ids(&mut app.conn());
    assert_eq!(after, before.difference(&older).cloned().collect::<BTreeSet<_>>());
    assert!(after.contains(&recent) && !after.contains(&old));

    // A shorter configured retention is honoured.
    let mut policy = app.config.purge_policy();
    policy.audit_retention = StdDuration::from_secs(30 * 24 * 3600);
    let report = purge::purge(&mut app.conn(), &app.clock, &policy).unwrap();
    assert!(report.audit_events >= 1);
    assert!(!audit_event_ids(&mut app.conn()).contains(&recent));
}

// ---------------------------------------------------------------------------
// Batches

/// Inserts `n` sign-in failures and `n` audit events at `at`, in one
/// transaction (MultiConnection has no multi-row insert).
fn insert_backlog(conn: &mut DbConn, n: usize, at: NaiveDateTime) {
    conn.transaction(|conn| {
        for _ in 0..n {
            let id = random_base62(24);
            diesel::insert_into(login_failures::table)
                .values((
                    login_failures::id.eq(format!("lf_{id}")),
                    login_failures::subject.eq("email:backlog@example.com"),
                    login_failures::occurred_at.eq(at),
                ))
                .execute(conn)?;
            diesel::insert_into(audit_events::table)
                .values((
                    audit_events::id.eq(format!("evt_{id}")),
                    audit_events::occurred_at.eq(at),
                    audit_events::action.eq("test.backlog"),
                    audit_events::details.eq("{}"),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
}

fn count_failures(conn: &mut DbConn) -> usize {
    login_failures::table.count().get_result::<i64>(conn).unwrap() as usize
}

fn count_events(conn: &mut DbConn, action: &str) -> usize {
    audit_events::table.filter(audit_events::action.eq(action)).count().get_result::<i64>(conn).unwrap() as usize
}

fn purge_works_through_a_backlog_in_batches(backend: Backend) {
    let app = app_without_background_purge(backend, |_| {});
    let backlog = 2 * purge::DEFAULT_BATCH_SIZE as usize + 345;
    let mut conn = app.conn();
    insert_backlog(&mut conn, backlog, now(&app) - Duration::days(100));
    insert_backlog(&mut conn, 3, now(&app));
    assert_eq!(count_failures(&mut conn), backlog + 3);

    // One statement deletes at most one batch.
    let cutoff = now(&app) - Duration::minutes(15);
    assert_eq!(tessera::store::purge::login_failures(&mut conn, cutoff, purge::DEFAULT_BATCH_SIZE).unwrap(), 1000);
    assert_eq!(count_failures(&mut conn), backlog + 3 - 1000);
    drop(conn);

    // The purge loops until the backlog is gone, and keeps the live rows.
    let report = purge_now(&app);
    assert_eq!(report.login_failures, backlog - 1000, "{report:?}");
    assert_eq!(report.audit_events, backlog, "{report:?}");
    let mut conn = app.conn();
    assert_eq!(count_failures(&mut conn), 3);
    assert_eq!(count_events(&mut conn, "test.backlog"), 3);

    // A small batch size gives the same result, a batch at a time.
    insert_backlog(&mut conn, 25, now(&app) - Duration::days(100));
    drop(conn);
    let mut policy = app.config.purge_policy();
    policy.batch_size = 7;
    let report = purge::purge(&mut app.conn(), &app.clock, &policy).unwrap();
    assert_eq!((report.login_failures, report.audit_events), (25, 25), "{report:?}");
    assert_eq!(count_failures(&mut app.conn()), 3);
}

// ---------------------------------------------------------------------------
// The background task and the command line

fn the_server_purges_in_the_background_every_interval(backend: Backend) {
    let app = TestApp::builder(backend).with_config(|c| c.purge_interval = StdDuration::from_secs(1)).start();
    // Rows already dead when written: no clock needs to move, only the
    // task needs to come round (within a second, plus one run).
    insert_backlog(&mut app.conn(), 5, now(&app) - Duration::days(100));
    insert_backlog(&mut app.conn(), 2, now(&app));
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while count_failures(&mut app.conn()) != 2 {
        assert!(Instant::now() < deadline, "the background purge did not run");
        std::thread::sleep(StdDuration::from_millis(100));
    }
    assert_eq!(count_events(&mut app.conn(), "test.backlog"), 2);
}

fn tessera_purge_deletes_and_prints_the_counts(backend: Backend) {
    let db = TestDatabase::new(&backend);
    let wall_now = chrono::Utc::now().naive_utc();
    {
        let pool = tessera::store::open(&db.url, 1, StdDuration::from_secs(5)).unwrap();
        let mut conn = pool.get().unwrap();
        insert_backlog(&mut conn, 4, wall_now - Duration::days(100));
        insert_backlog(&mut conn, 1, wall_now);
    }
    let mut cmd = tessera_on(&db);
    cmd.args(["purge", "--json"]);
    let report = json_of(cmd);
    assert_eq!(report["login_failures"], 4, "{report}");
    assert_eq!(report["audit_events"], 4, "{report}");
    assert_eq!(report["sessions"], 0, "{report}");

    let pool = tessera::store::open(&db.url, 1, StdDuration::from_secs(5)).unwrap();
    let mut conn = pool.get().unwrap();
    assert_eq!(count_failures(&mut conn), 1);
    assert_eq!(count_events(&mut conn, "test.backlog"), 1);
}

both_backends!(
    purge_ends_dead_sessions_and_forgets_old_sign_in_failures,
    purge_removes_expired_codes_and_dead_refresh_tokens,
    purge_keeps_a_family_until_its_last_access_token_has_expired,
    purge_removes_expired_revocations_assertions_and_sdk_sessions,
    purge_keeps_audit_events_for_the_retention_period,
    purge_works_through_a_backlog_in_batches,
    the_server_purges_in_the_background_every_interval,
    tessera_purge_deletes_and_prints_the_counts,
);
