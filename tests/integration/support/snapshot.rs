//! What storage holds of credentials and grants, as one comparable text:
//! a test takes it before and after a call that must change nothing, and
//! compares. Left out: the audit log and the usage counters (a refused
//! call is audited and counted), the cache versions, and the columns that
//! move by themselves (a key's or a session's last use).

use diesel::prelude::*;
use tessera::store::DbConn;
use tessera::store::schema;

fn rows<T: std::fmt::Debug>(name: &str, rows: Vec<T>, out: &mut String) {
    out.push_str(&format!("== {name} ({})\n", rows.len()));
    for row in rows {
        out.push_str(&format!("{row:?}\n"));
    }
}

fn failed<T>(e: diesel::result::Error) -> T {
    panic!("snapshot: {e}")
}

/// Every credential, grant, consent and session, in a stable order.
pub fn storage(conn: &mut DbConn) -> String {
    use tessera::store::{api_keys, clients, grants, registrations, resources, sdk, sessions, signing_keys, users};
    let mut out = String::new();
    rows(
        "users",
        schema::users::table
            .order(schema::users::id)
            .select(users::UserRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "clients",
        schema::clients::table
            .order(schema::clients::id)
            .select(clients::ClientRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "client_secrets",
        schema::client_secrets::table
            .order(schema::client_secrets::id)
            .select(clients::ClientSecretRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "resource_servers",
        schema::resource_servers::table
            .order(schema::resource_servers::id)
            .select(resources::ResourceServerRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "signing_keys",
        schema::signing_keys::table
            .order(schema::signing_keys::kid)
            .select(signing_keys::SigningKeyRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    let keys: Vec<api_keys::ApiKeyRow> = schema::api_keys::table
        .order(schema::api_keys::id)
        .select(api_keys::ApiKeyRow::as_select())
        .load(conn)
        .unwrap_or_else(failed);
    rows("api_keys", keys.into_iter().map(|k| api_keys::ApiKeyRow { last_used_at: None, ..k }).collect(), &mut out);
    rows(
        "sdk_tokens",
        schema::sdk_tokens::table
            .order(schema::sdk_tokens::id)
            .select(sdk::SdkTokenRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "sdk_sessions",
        schema::sdk_sessions::table
            .order(schema::sdk_sessions::id)
            .select(sdk::SdkSessionRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    let live: Vec<sessions::SessionRow> = schema::sessions::table
        .order(schema::sessions::id)
        .select(sessions::SessionRow::as_select())
        .load(conn)
        .unwrap_or_else(failed);
    let idle = chrono::NaiveDateTime::default();
    rows("sessions", live.into_iter().map(|s| sessions::SessionRow { last_seen_at: idle, ..s }).collect(), &mut out);
    rows(
        "consents",
        schema::consents::table
            .order((schema::consents::user_id, schema::consents::client_id, schema::consents::scope))
            .select((
                schema::consents::user_id,
                schema::consents::client_id,
                schema::consents::audience,
                schema::consents::scope,
            ))
            .load::<(String, String, String, String)>(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "grants",
        schema::grants::table
            .order(schema::grants::id)
            .select(grants::GrantRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "authorization_codes",
        schema::authorization_codes::table
            .order(schema::authorization_codes::id)
            .select(grants::CodeRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "refresh_tokens",
        schema::refresh_tokens::table
            .order(schema::refresh_tokens::id)
            .select(grants::RefreshRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "revoked_tokens",
        schema::revoked_tokens::table
            .order(schema::revoked_tokens::jti)
            .select((schema::revoked_tokens::jti, schema::revoked_tokens::client_id))
            .load::<(String, String)>(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "initial_access_tokens",
        schema::initial_access_tokens::table
            .order(schema::initial_access_tokens::id)
            .select(registrations::InitialAccessTokenRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    rows(
        "client_registrations",
        schema::client_registrations::table
            .order(schema::client_registrations::client_id)
            .select(registrations::RegistrationRow::as_select())
            .load(conn)
            .unwrap_or_else(failed),
        &mut out,
    );
    out
}

/// The lines of `after` that differ from `before`, for a failure message.
pub fn diff(before: &str, after: &str) -> String {
    let old: std::collections::BTreeSet<&str> = before.lines().collect();
    let new: std::collections::BTreeSet<&str> = after.lines().collect();
    let gone = old.difference(&new).map(|l| format!("- {l}"));
    let came = new.difference(&old).map(|l| format!("+ {l}"));
    gone.chain(came).collect::<Vec<_>>().join("\n")
}
