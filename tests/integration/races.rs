//! Races the code must win, made to happen rather than hoped for: a
//! request is held at a pause point (`tessera::pause`, in test builds
//! only) while the other is let into the window the race is about, and
//! each test asserts that the overlap happened — the second request read
//! what the first was about to change, and on PostgreSQL it waits on the
//! first's row lock — before it lets the first go on.
//!
//! SQLite serializes writing transactions (each begins with a write, so
//! it holds the database's write lock from its first statement): there the
//! second request can only run before or after the first's transaction,
//! and the tests check that whichever it is, the outcome holds.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;
use tessera::pause::Armed;
use tessera::store::DbConn;

use crate::both_backends;
use crate::oauth_holes::{authorize_url, code_flow, creds, inactive, redeem, refresh};
use crate::support::{Backend, TestApp, eventually};

/// On PostgreSQL, waits until a connection to this test's database waits
/// on a lock (the second request, behind the first's row): the overlap
/// is real, not only likely. On SQLite, writers wait for the database's
/// one write lock in the busy handler, which nothing outside can see.
fn wait_until_blocked_behind_a_lock(app: &TestApp) {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    eventually("a connection waits on the held request's lock", || {
        let mut conn = app.conn();
        let DbConn::Postgres(pg) = &mut *conn else { return Some(()) };
        let waiting: Waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(pg)
        .unwrap();
        (waiting.n > 0).then_some(())
    });
}

/// Runs `first` until it is held at `spending`, mid-transaction; then
/// `second` until it has read what the first is changing (`found` counts
/// both) and, on PostgreSQL, waits on the first's row; then lets the first
/// go on. Both answers, first's first.
fn overlapped<T: Send>(
    app: &TestApp,
    spending: &Armed,
    found: &Armed,
    first: impl FnOnce() -> T + Send,
    second: impl FnOnce() -> T + Send,
) -> (T, T) {
    std::thread::scope(|s| {
        let first = s.spawn(first);
        spending.wait_for(1);
        let second = s.spawn(second);
        found.wait_for(2);
        wait_until_blocked_behind_a_lock(app);
        spending.release();
        (first.join().unwrap(), second.join().unwrap())
    })
}

/// The first request got tokens; the second was refused as a replay.
fn one_won(first: &(StatusCode, Value), second: &(StatusCode, Value)) {
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(
        (second.0, second.1["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{}",
        second.1
    );
}

/// Two redemptions of one code: the second reads it unused while the
/// first holds it, mid-transaction. Exactly one gets tokens; the other is
/// a replay, and revokes what the first one got.
fn a_code_redeemed_twice_at_once_gives_tokens_once(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let client = app.web_client("read");
    let code = bea.approve(&app, &authorize_url(&app, &client.id, "read offline_access", &[]));
    let spending = Armed::arm("code:redeeming", &client.id, 1);
    let found = Armed::arm("code:found", &client.id, 0);
    let spend = || redeem(&app, &client, &code);
    let (first, second) = overlapped(&app, &spending, &found, spend, spend);
    assert_eq!(found.arrived(), 2, "both read the code as unused");
    assert_eq!(spending.arrived(), 1, "only one spent it");
    one_won(&first, &second);
    let access = first.1["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(access, creds(&client)), inactive(), "the replay revoked the family");
}

/// Two refreshes with one refresh token at once: one wins, the other is
/// a reuse and revokes the family.
fn a_refresh_token_used_twice_at_once_refreshes_once(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let client = app.web_client("read");
    let tokens = code_flow(&app, &bea, &client, "read offline_access");
    let token = tokens["refresh_token"].as_str().unwrap().to_string();
    let spending = Armed::arm("refresh:redeeming", &client.id, 1);
    let found = Armed::arm("refresh:found", &client.id, 0);
    let again = || refresh(&app, &client, &token);
    let (first, second) = overlapped(&app, &spending, &found, again, again);
    assert_eq!((found.arrived(), spending.arrived()), (2, 1));
    one_won(&first, &second);
    let (status, body) = refresh(&app, &client, first.1["refresh_token"].as_str().unwrap());
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "the family is revoked"
    );
}

/// Finding 11: revoking a connected app while a code of it is being
/// redeemed. The revocation starts while the redemption holds the code
/// (and, on PostgreSQL, waits on its row); whichever commits first, no
/// family of that app survives for the person.
fn revoking_an_app_during_a_redemption_leaves_no_grant(backend: Backend) {
    let app = TestApp::start(backend);
    let bea = app.person("bea@example.com");
    let bea_id = app.user_id("bea@example.com");
    let client = app.web_client("read");
    let code = bea.approve(&app, &authorize_url(&app, &client.id, "read offline_access", &[]));
    let csrf = bea.csrf(&app);
    let spending = Armed::arm("code:redeeming", &client.id, 1);
    let revoking = Armed::arm("consent:revoking", &client.id, 0);
    let (redeemed, revoked) = std::thread::scope(|s| {
        let redeemed = s.spawn(|| redeem(&app, &client, &code));
        spending.wait_for(1);
        let revoked = s.spawn(|| {
            bea.submit(&app, &format!("/dashboard/connected-apps/{}/revoke", client.id), &[("csrf_token", &csrf)])
                .status()
        });
        revoking.wait_for(1);
        wait_until_blocked_behind_a_lock(&app);
        spending.release();
        (redeemed.join().unwrap(), revoked.join().unwrap())
    });
    assert_eq!(revoking.arrived(), 1, "the revocation ran during the redemption");
    assert_eq!(revoked, StatusCode::SEE_OTHER);
    let live: i64 = {
        use tessera::store::schema::grants;
        grants::table
            .filter(grants::user_id.eq(&bea_id))
            .filter(grants::client_id.eq(&client.id))
            .filter(grants::revoked_at.is_null())
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(live, 0, "no family survives the revocation");
    if redeemed.0 == StatusCode::OK {
        let body: &Value = &redeemed.1;
        assert_eq!(app.introspect(body["access_token"].as_str().unwrap(), creds(&client)), inactive());
        let (status, _) = refresh(&app, &client, body["refresh_token"].as_str().unwrap());
        assert_eq!(status, StatusCode::BAD_REQUEST, "its refresh token is revoked");
    } else {
        assert_eq!(redeemed.1["error"], "invalid_grant", "{}", redeemed.1);
    }
}

both_backends!(
    a_code_redeemed_twice_at_once_gives_tokens_once,
    a_refresh_token_used_twice_at_once_refreshes_once,
    revoking_an_app_during_a_redemption_leaves_no_grant,
);
