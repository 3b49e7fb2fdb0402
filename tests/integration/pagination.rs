//! Lists are paginated (issue #11): `limit` (1–100, default 20) and the
//! cursor `starting_after=<id>`, answering `has_more`, on every `/v1`
//! list. The cursor is a keyset, so inserts between fetches neither repeat
//! nor skip an item, and a cursor naming something the caller may not see
//! is the same 400 as an unknown one.

use std::collections::HashSet;

use chrono::{Duration, NaiveDateTime};
use diesel::Connection;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::apikeys::{self, Mode, NewKey};
use tessera::audit::Actor;
use tessera::clock::Clock;
use tessera::crypto::random_base62;
use tessera::store::api_keys::{self as key_rows, ApiKeyRow};

use crate::both_backends;
use crate::support::{Backend, TestApp, key_request};

const UNKNOWN_CURSOR: &str = "starting_after names no item of this list";

fn get(app: &TestApp, path: &str, key: &str) -> (StatusCode, Value) {
    let res = app.client.get(app.url(path)).bearer_auth(key).send().unwrap();
    let status = res.status();
    (status, res.json().unwrap_or(Value::Null))
}

/// A member with one API key (made through the service): the member's
/// id, the raw key, and the key's `(created_at, id)`.
fn member(app: &TestApp, email: &str) -> (String, String, (NaiveDateTime, String)) {
    app.person(email);
    let id = app.user_id(email);
    let (made, raw) = apikeys::create(
        &mut app.conn(),
        &app.clock,
        &app.master_key,
        key_request(&id, Mode::of(app.config.environment)),
        Actor::Cli,
    )
    .unwrap();
    (id, raw.expose().to_string(), (made.created_at.naive_utc(), made.id))
}

/// A stored key of `owner_id` created at `created_at`, straight into the
/// table (no HTTP, no hashing of a real secret: only listing reads it).
fn key_row(owner_id: &str, created_at: chrono::NaiveDateTime) -> ApiKeyRow {
    ApiKeyRow {
        id: format!("key_{}", random_base62(16)),
        owner_id: owner_id.into(),
        client_id: None,
        name: "Bulk".into(),
        key_type: tessera::apikeys::KeyType::Secret,
        mode: tessera::apikeys::Mode::Test,
        prefix: "sk_test".into(),
        last4: "abcd".into(),
        fingerprint: random_base62(32),
        permissions: "[]".into(),
        allowed_ips: "[]".into(),
        allowed_referrers: "[]".into(),
        allowed_endpoints: "[]".into(),
        rate_limit: None,
        created_at,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        rotated_from: None,
    }
}

/// The ids in the order the lists promise, worked out here from what the
/// test made (never by the store's query, whose bug would then agree with
/// itself): by `at`, then by id, compared byte by byte as the databases
/// do (the test databases use the C collation).
fn in_order<T: Ord>(mut items: Vec<(T, String)>) -> Vec<String> {
    items.sort();
    items.into_iter().map(|(_, id)| id).collect()
}

/// Walks `path` (which has a `?`) page by page with `limit`; checks that
/// no page holds more than `limit` and that `has_more` is false only on
/// the last. Returns the ids in the order served.
fn walk(app: &TestApp, path: &str, key: &str, limit: usize, id_field: &str) -> Vec<String> {
    walk_from(app, path, key, limit, id_field, None)
}

/// `walk`, starting after the item `cursor` names.
fn walk_from(
    app: &TestApp,
    path: &str,
    key: &str,
    limit: usize,
    id_field: &str,
    mut cursor: Option<String>,
) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let after = cursor.as_ref().map(|c| format!("&starting_after={c}")).unwrap_or_default();
        let (status, body) = get(app, &format!("{path}&limit={limit}{after}"), key);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true);
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= limit, "a page of {} with limit {limit}", data.len());
        let has_more = body["has_more"].as_bool().expect("has_more is a boolean");
        ids.extend(data.iter().map(|item| item[id_field].as_str().unwrap().to_string()));
        if !has_more {
            return ids;
        }
        assert_eq!(data.len(), limit, "only the last page may be short");
        cursor = ids.last().cloned();
        assert!(ids.len() <= 20_000, "the walk ends");
    }
}

/// 10,000 keys of one owner, walked 100 at a time: each exactly once, in
/// (created_at, id) order, and `has_more` false only on the last page.
fn walking_ten_thousand_keys_serves_each_once_in_order(backend: Backend) {
    let app = TestApp::start(backend);
    let (owner, key, own_key) = member(&app, "bulk@example.com");
    let base = app.clock.now().naive_utc();
    // Three keys share each timestamp, so the id breaks ties.
    let rows: Vec<ApiKeyRow> = (0..9_999).map(|i| key_row(&owner, base - Duration::seconds(10_000 - i / 3))).collect();
    app.conn()
        .transaction(|conn| {
            for row in &rows {
                key_rows::insert(conn, row)?;
            }
            Ok::<_, tessera::store::StoreError>(())
        })
        .unwrap();
    let mut made: Vec<(NaiveDateTime, String)> = rows.iter().map(|r| (r.created_at, r.id.clone())).collect();
    made.push(own_key.clone());
    let expected = in_order(made);
    assert_eq!(expected.len(), 10_000);
    assert_eq!(expected.last(), Some(&own_key.1), "the member's own key is the newest");

    let served = walk(&app, "/v1/api-keys?", &key, 100, "id");
    assert_eq!(served.len(), 10_000);
    assert_eq!(served.iter().collect::<HashSet<_>>().len(), 10_000, "no key twice");
    assert_eq!(served, expected, "in (created_at, id) order");

    // Without a limit: the first 20, and more follow.
    let (_, body) = get(&app, "/v1/api-keys", &key);
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    assert_eq!(body["has_more"], true);
}

/// A key created between two fetches — older than the cursor (back-dated)
/// or newer — neither repeats an item already served nor hides one not
/// yet served; the newer one is served at the end. OFFSET paging would
/// serve the cursor's item again after the back-dated insert.
fn inserting_between_fetches_neither_repeats_nor_skips(backend: Backend) {
    let app = TestApp::start(backend);
    let (owner, key, own_key) = member(&app, "walker@example.com");
    let base = app.clock.now().naive_utc();
    let mut made = vec![own_key];
    for i in 0..11 {
        let row = key_row(&owner, base - Duration::seconds(100 - i));
        key_rows::insert(&mut app.conn(), &row).unwrap();
        made.push((row.created_at, row.id));
    }
    let before = in_order(made);
    assert_eq!(before.len(), 12);

    let (_, first) = get(&app, "/v1/api-keys?limit=5", &key);
    let mut served: Vec<String> =
        first["data"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(served, before[..5]);

    let older = key_row(&owner, base - Duration::seconds(1_000));
    key_rows::insert(&mut app.conn(), &older).unwrap();
    app.clock.advance(Duration::seconds(5));
    let newer = key_row(&owner, app.clock.now().naive_utc());
    key_rows::insert(&mut app.conn(), &newer).unwrap();

    let rest = walk_from(&app, "/v1/api-keys?", &key, 5, "id", Some(served[4].clone()));
    served.extend(rest);
    let mut expected = before.clone();
    expected.push(newer.id.clone());
    assert_eq!(served, expected, "every older item once, the new one last, the back-dated one not at all");
}

/// A member's cursor naming another member's key is the same 400 as an
/// unknown id, and the answer says nothing of that key.
fn a_cursor_naming_another_members_item_is_refused_without_leaking(backend: Backend) {
    let app = TestApp::start(backend);
    let (_, ann, _) = member(&app, "ann@example.com");
    let (bob_id, bob, (_, bobs_key)) = member(&app, "bob@example.com");
    let (_, bobs_token) = get_sdk_token(&app, &bob);
    let admin_key = app.root_key();
    let (_, client) = post(&app, "/v1/clients", &bob, json!({ "name": "Bob's app" }));
    let bobs_client = client["data"]["client_id"].as_str().unwrap().to_string();

    for (list, foreign) in [
        ("/v1/api-keys", bobs_key.as_str()),
        ("/v1/sdk-tokens", bobs_token.as_str()),
        ("/v1/clients", bobs_client.as_str()),
        ("/v1/users", bob_id.as_str()),
    ] {
        let (status, theirs) = get(&app, &format!("{list}?starting_after={foreign}"), &ann);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{list}: {theirs}");
        assert_eq!(theirs["code"], "validation_error");
        assert_eq!(theirs["message"], UNKNOWN_CURSOR);
        let (status, unknown) = get(&app, &format!("{list}?starting_after=xyz_nothing"), &ann);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let strip = |mut v: Value| {
            v["request_id"] = Value::Null;
            v
        };
        assert_eq!(strip(theirs.clone()), strip(unknown), "{list}: another's id reads as an unknown one");
        assert!(!theirs.to_string().contains(foreign), "{list}: the id is not echoed");
        for secret in ["bob@example.com", "Bob's app"] {
            assert!(!theirs.to_string().contains(secret), "{list}: nothing of it leaks");
        }
        // Bob, and an admin for the admin-wide lists, may use the cursor.
        assert_eq!(get(&app, &format!("{list}?starting_after={foreign}"), &bob).0, StatusCode::OK, "{list}");
    }
    let (status, _) = get(&app, &format!("/v1/clients?starting_after={bobs_client}"), &admin_key);
    assert_eq!(status, StatusCode::OK, "an admin sees every client");
    let (status, _) = get(&app, &format!("/v1/api-keys?owner_id={bob_id}&starting_after={bobs_key}"), &admin_key);
    assert_eq!(status, StatusCode::OK, "an admin walks Bob's keys");
    let (status, body) = get(&app, &format!("/v1/api-keys?starting_after={bobs_key}"), &admin_key);
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(UNKNOWN_CURSOR)),
        "not the admin's list"
    );
}

/// `limit` outside 1–100, or not a number, and unknown parameters are 400
/// on every list route.
fn bad_limits_are_refused_on_every_list(backend: Backend) {
    let app = TestApp::start(backend);
    let root = app.root_key();
    for list in ["/v1/api-keys", "/v1/clients", "/v1/users", "/v1/audit-events", "/v1/sdk-tokens"] {
        for bad in ["0", "101", "-1", "x", ""] {
            let (status, body) = get(&app, &format!("{list}?limit={bad}"), &root);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{list}?limit={bad}: {body}");
            assert_eq!(body["code"], "validation_error", "{list}?limit={bad}");
            assert_eq!(body["message"], "limit must be an integer from 1 to 100");
        }
        for good in ["1", "100"] {
            assert_eq!(get(&app, &format!("{list}?limit={good}"), &root).0, StatusCode::OK, "{list}?limit={good}");
        }
        let (status, _) = get(&app, &format!("{list}?limt=5"), &root);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{list}: an unknown parameter is refused");
    }
}

fn post(app: &TestApp, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let res = app.client.post(app.url(path)).bearer_auth(key).json(&body).send().unwrap();
    let status = res.status();
    (status, res.json().unwrap_or(Value::Null))
}

/// A new SDK token of the key's owner: (status, its id).
fn get_sdk_token(app: &TestApp, key: &str) -> (StatusCode, String) {
    let res = app.client.post(app.url("/v1/sdk-tokens")).bearer_auth(key).send().unwrap();
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (status, body["data"]["id"].as_str().unwrap().to_string())
}

/// Each list route serves its items in its order, two at a time, with
/// `has_more` right: keys, clients, users and SDK tokens oldest first,
/// audit events newest first (with its filters).
fn every_list_route_paginates(backend: Backend) {
    // Frozen, so that items made together share their instant exactly and
    // only the id orders them.
    let app = TestApp::builder(backend).with_frozen_clock().start();
    // Everything made before the loop shares the first instant (slot 0):
    // the admin (made at start), the root key, Ann and her key.
    let admin = app.user_id("admin@localhost");
    let (root_key, root) = apikeys::create(
        &mut app.conn(),
        &app.clock,
        &app.master_key,
        NewKey { name: "Root".into(), ..key_request(&admin, Mode::of(app.config.environment)) },
        Actor::Cli,
    )
    .unwrap();
    let root = root.expose().to_string();
    let (ann_id, ann, _) = member(&app, "ann@example.com");
    let mut users = vec![(0, admin.clone()), (0, ann_id.clone())];
    let mut keys = vec![(0, root_key.id.clone())];
    let mut tokens = Vec::new();
    let mut clients = Vec::new();
    for n in 0..5 {
        // Pairs share an instant (the id breaks the tie), a second apart.
        if n % 2 == 0 {
            app.clock.advance(Duration::seconds(1));
        }
        let slot = 1 + n / 2;
        let email = format!("p{n}@example.com");
        app.person(&email);
        users.push((slot, app.user_id(&email)));
        tokens.push((slot, get_sdk_token(&app, &ann).1));
        let (status, c) = post(&app, "/v1/clients", &root, json!({ "name": format!("App {n}") }));
        assert_eq!(status, StatusCode::CREATED, "{c}");
        clients.push((slot, c["data"]["client_id"].as_str().unwrap().to_string()));
        keys.push((slot, app.create_key(&root, json!({ "name": format!("k{n}") })).0));
    }
    // The order the lists promise: by instant, then by id.
    let client_slots = clients.clone();
    let (users, keys, tokens, clients) = (in_order(users), in_order(keys), in_order(tokens), in_order(clients));
    assert_eq!(users.len(), 7, "the admin, Ann and five people");
    assert_eq!(walk(&app, "/v1/users?", &root, 2, "id"), users);
    assert_eq!(walk(&app, "/v1/clients?", &root, 2, "client_id"), clients);
    assert_eq!(walk(&app, "/v1/sdk-tokens?", &ann, 2, "id"), tokens);
    assert_eq!(keys.len(), 6);
    assert_eq!(walk(&app, "/v1/api-keys?", &root, 2, "id"), keys);
    // A member sees a list of one: themself.
    assert_eq!(walk(&app, "/v1/users?", &ann, 2, "id"), vec![ann_id.clone()]);
    let conn = &mut *app.conn();

    // Audit events: newest first, by (occurred_at, id) descending, within
    // the filter; the filter holds across pages. Each client's one
    // `client.created` event happened at that client's instant (its slot);
    // only the event's id is read back.
    let mut created = Vec::new();
    for (slot, c) in &client_slots {
        let ids: Vec<String> = tessera::store::audit::for_target(conn, c)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "client.created")
            .map(|e| e.id)
            .collect();
        assert_eq!(ids.len(), 1, "{c}: one client.created event");
        created.push((*slot, ids[0].clone()));
    }
    let mut created = in_order(created);
    created.reverse();
    assert_eq!(created.len(), 5);
    assert_eq!(walk(&app, "/v1/audit-events?action=client.created", &root, 2, "id"), created);
    let all = walk(&app, "/v1/audit-events?", &root, 100, "id");
    assert!(all.len() > 20, "more events than one default page");
    // A cursor outside the filter names no item of that list.
    let other = all.iter().find(|id| !created.contains(id)).unwrap();
    let (status, body) = get(&app, &format!("/v1/audit-events?action=client.created&starting_after={other}"), &root);
    assert_eq!((status, body["message"].as_str()), (StatusCode::BAD_REQUEST, Some(UNKNOWN_CURSOR)));
}

both_backends!(
    walking_ten_thousand_keys_serves_each_once_in_order,
    inserting_between_fetches_neither_repeats_nor_skips,
    a_cursor_naming_another_members_item_is_refused_without_leaking,
    bad_limits_are_refused_on_every_list,
    every_list_route_paginates,
);
