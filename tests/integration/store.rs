//! The store and account rules, run unchanged on both backends, and the
//! check that both migration folders give exactly the schema of
//! `src/store/schema.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use diesel::RunQueryDsl;
use diesel::sql_types::{Bool, Text};
use tessera::accounts::{self, AccountError, Email, NewUser, Password, Role};
use tessera::audit::Actor;
use tessera::store::{self, DbConn};

use crate::both_backends;
use crate::support::{Backend, TestApp};

/// A table as `src/store/schema.rs` declares it: each column's name, its
/// diesel type and whether it is nullable, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeclaredTable {
    name: String,
    columns: Vec<(String, String, bool)>,
}

const SCHEMA_RS: &str = include_str!("../../src/store/schema.rs");

/// Every `diesel::table!` in schema.rs. A line inside one that this does
/// not understand fails the test, so a new construct cannot be skipped.
fn declared_tables() -> Vec<DeclaredTable> {
    let mut tables = Vec::new();
    let mut lines = SCHEMA_RS.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "diesel::table! {" {
            continue;
        }
        let header = lines.next().expect("a table name after diesel::table!");
        let name = header.split_once(" (").map(|(n, _)| n).filter(|_| header.ends_with(") {"));
        let name = name.unwrap_or_else(|| panic!("cannot read the table header `{header}` in schema.rs"));
        let mut columns = Vec::new();
        for line in lines.by_ref() {
            if line == "}" {
                break;
            }
            let (column, ty) = line
                .strip_suffix(',')
                .and_then(|l| l.split_once(" -> "))
                .unwrap_or_else(|| panic!("cannot read `{line}` in table {name} of schema.rs"));
            let (ty, nullable) = match ty.strip_prefix("Nullable<").and_then(|t| t.strip_suffix('>')) {
                Some(inner) => (inner, true),
                None => (ty, false),
            };
            columns.push((column.to_string(), ty.to_string(), nullable));
        }
        assert_eq!(lines.next(), Some("}"), "table {name} of schema.rs does not end where expected");
        tables.push(DeclaredTable { name: name.to_string(), columns });
    }
    assert_eq!(tables.len(), SCHEMA_RS.matches("diesel::table!").count(), "every diesel::table! is read");
    tables
}

/// The database's own type names for a diesel type, per backend.
fn database_type(conn: &DbConn, diesel_type: &str) -> &'static str {
    let sqlite = matches!(conn, DbConn::Sqlite(_));
    match (diesel_type, sqlite) {
        ("Text", true) => "TEXT",
        ("Text", false) => "text",
        ("Bool", true) => "BOOLEAN",
        ("Bool", false) => "boolean",
        ("BigInt", true) => "BIGINT",
        ("BigInt", false) => "bigint",
        ("Integer", true) => "INTEGER",
        ("Integer", false) => "integer",
        ("Timestamp", true) => "TIMESTAMP",
        ("Timestamp", false) => "timestamp without time zone",
        (other, _) => panic!("schema.rs uses {other}: add how each backend names it to this test"),
    }
}

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

/// The columns of `table` as the database has them: name, type, nullable.
fn columns(conn: &mut DbConn, table: &str) -> Vec<(String, String, bool)> {
    let query = match conn {
        DbConn::Sqlite(_) => {
            "SELECT name, type AS data_type, \"notnull\" = 0 AS nullable \
             FROM pragma_table_info(?1) ORDER BY cid"
        }
        DbConn::Postgres(_) => {
            "SELECT column_name::text AS name, data_type::text AS data_type, \
             is_nullable = 'YES' AS nullable FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    };
    diesel::sql_query(query)
        .bind::<Text, _>(table)
        .load::<Column>(conn)
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.data_type, c.nullable))
        .collect()
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The tables the migrations made, but diesel's own bookkeeping.
fn database_tables(conn: &mut DbConn) -> BTreeSet<String> {
    let query = match conn {
        DbConn::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        DbConn::Postgres(_) => {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    diesel::sql_query(query)
        .load::<TableName>(conn)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| n != "__diesel_schema_migrations")
        .collect()
}

/// Every table of schema.rs exists after migrating, with exactly the
/// declared columns (order, type, nullability), and no other table does.
/// Run on both backends, this is what keeps the two migration folders
/// giving the same schema, the one schema.rs that the code is written
/// against.
fn both_migrations_give_the_schema_of_schema_rs(backend: Backend) {
    let app = TestApp::start(backend);
    let mut conn = app.conn();
    let declared = declared_tables();
    assert!(declared.iter().any(|t| t.name == "users" && t.columns.len() == 8), "{declared:?}");
    for table in &declared {
        let expected: Vec<_> = table
            .columns
            .iter()
            .map(|(name, ty, nullable)| (name.clone(), database_type(&conn, ty).to_string(), *nullable))
            .collect();
        assert_eq!(columns(&mut conn, &table.name), expected, "table {}", table.name);
    }
    let names: BTreeSet<String> = declared.iter().map(|t| t.name.clone()).collect();
    assert_eq!(database_tables(&mut conn), names, "the migrations make exactly the tables of schema.rs");
    // A second migration run is a no-op.
    store::migrate(&mut conn).expect("migrating twice");
    assert_eq!(database_tables(&mut conn), names);
}

/// `.ci/run`'s check of the two migration folders, on copies: identical
/// passes; a difference fails unless each differing migration carries a
/// BACKEND_DIFFERENCE.md in every copy; a stray file fails.
#[test]
fn ci_refuses_migration_folders_that_differ_without_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |sqlite: &Path, postgres: &Path| {
        let out = Command::new("bash")
            .arg(root.join(".ci/run"))
            .args(["migration-parity".as_ref(), sqlite.as_os_str(), postgres.as_os_str()])
            .output()
            .expect("run .ci/run");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = check(&root.join("migrations/sqlite"), &root.join("migrations/postgres"));
    // The repository's folders pass: identical but for migrations that say
    // why they differ (the cache triggers, written in each dialect).
    assert!(ok && text.contains("differs deliberately: see"), "the repository's folders: {text}");

    let dir = tempfile::tempdir().unwrap();
    let (sqlite, postgres) = (dir.path().join("sqlite"), dir.path().join("postgres"));
    copy_dir(&root.join("migrations/sqlite"), &sqlite);
    copy_dir(&root.join("migrations/postgres"), &postgres);
    assert!(check(&sqlite, &postgres).0);

    let migration = std::fs::read_dir(&postgres).unwrap().next().unwrap().unwrap().file_name();
    let up = postgres.join(&migration).join("up.sql");
    let mut sql = std::fs::read_to_string(&up).unwrap();
    sql.push_str("\n-- a change on one backend only\n");
    std::fs::write(&up, sql).unwrap();
    let (ok, text) = check(&sqlite, &postgres);
    assert!(!ok && text.contains("a change on one backend only"), "the difference is shown: {text}");
    assert!(text.contains("without a BACKEND_DIFFERENCE.md"), "{text}");

    let note = "PostgreSQL needs this and SQLite does not, because …\n";
    std::fs::write(postgres.join(&migration).join("BACKEND_DIFFERENCE.md"), note).unwrap();
    assert!(!check(&sqlite, &postgres).0, "a note in one copy only is not enough");
    std::fs::write(sqlite.join(&migration).join("BACKEND_DIFFERENCE.md"), "").unwrap();
    assert!(!check(&sqlite, &postgres).0, "an empty note explains nothing");
    std::fs::write(sqlite.join(&migration).join("BACKEND_DIFFERENCE.md"), note).unwrap();
    let (ok, text) = check(&sqlite, &postgres);
    assert!(ok && text.contains("differs deliberately"), "{text}");

    let only_one = postgres.join("2099-01-01-000000_postgres_only");
    std::fs::create_dir(&only_one).unwrap();
    std::fs::write(only_one.join("up.sql"), "SELECT 1;\n").unwrap();
    assert!(!check(&sqlite, &postgres).0, "a migration on one backend needs a note too");
    std::fs::write(only_one.join("BACKEND_DIFFERENCE.md"), note).unwrap();
    assert!(check(&sqlite, &postgres).0);

    std::fs::write(sqlite.join("stray.sql"), "SELECT 1;\n").unwrap();
    assert!(!check(&sqlite, &postgres).0, "a stray file is not a migration folder");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn new_user(email: &str) -> NewUser {
    NewUser::parse(email, "Ann Example", "correct horse battery", Role::Member).unwrap()
}

fn users_round_trip_with_case_insensitive_emails(backend: Backend) {
    let app = TestApp::start(backend);
    let mut conn = app.conn();
    let user = accounts::create_user(&mut conn, &app.clock, new_user("Ann@Example.com"), Actor::Cli).unwrap();
    assert!(user.id.starts_with("usr_"));
    assert_eq!(user.email, "ann@example.com");
    assert_eq!(user.role, Role::Member);
    assert!(!user.disabled);

    let row = store::users::find_by_email(&mut conn, "ann@example.com").unwrap().unwrap();
    assert_eq!(row.created_at.and_utc(), user.created_at, "timestamps survive the round trip");
    assert!(row.password_hash.starts_with("$argon2id$"));

    // The same email in other case is the same account.
    let before = store::users::list(&mut conn).unwrap();
    let dup = accounts::create_user(&mut conn, &app.clock, new_user("ANN@example.COM"), Actor::Cli);
    assert!(matches!(dup, Err(AccountError::EmailTaken)), "{dup:?}");
    assert_eq!(store::users::list(&mut conn).unwrap(), before, "no second row");
}

fn password_change_and_disable_are_audited(backend: Backend) {
    let app = TestApp::start(backend);
    let mut conn = app.conn();
    let user = accounts::create_user(&mut conn, &app.clock, new_user("bob@example.com"), Actor::Cli).unwrap();
    let email = Email::parse("BOB@example.com").unwrap();

    app.clock.advance(chrono::Duration::minutes(5));
    let new_password = Password::parse("a whole new password").unwrap();
    let changed = accounts::set_password(&mut conn, &app.clock, &email, &new_password, Actor::Cli).unwrap();
    assert!(changed.updated_at >= user.created_at + chrono::Duration::minutes(5));
    let row = store::users::find_by_id(&mut conn, &user.id).unwrap().unwrap();
    assert!(accounts::verify_password("a whole new password", &row.password_hash));
    assert!(!accounts::verify_password("correct horse battery", &row.password_hash));

    let disabled = accounts::disable_user(&mut conn, &app.clock, &email, Actor::Cli).unwrap();
    assert!(disabled.disabled);

    let events = store::audit::for_target(&mut conn, &user.id).unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.created", "user.password_changed", "user.disabled"]);
    assert!(events.iter().all(|e| e.actor.as_deref() == Some("cli")));
    for e in &events {
        assert!(!e.details.contains("password\":"), "no secret in audit details");
        assert!(!e.details.contains("a whole new password"));
    }

    let unknown = Email::parse("nobody@example.com").unwrap();
    assert!(matches!(
        accounts::disable_user(&mut conn, &app.clock, &unknown, Actor::Cli),
        Err(AccountError::UnknownUser)
    ));
}

fn the_first_admin_is_made_once(backend: Backend) {
    let app = TestApp::start(backend);
    let mut conn = app.conn();
    // The app already made one at start; asking again makes none.
    assert!(accounts::ensure_first_admin(&mut conn, &app.clock).unwrap().is_none());
    assert_eq!(store::users::count_enabled_admins(&mut conn).unwrap(), 1);
    // With the only admin disabled, the next start makes none either: the
    // address is taken and the operator decides.
    let email = Email::parse("admin@localhost").unwrap();
    accounts::disable_user(&mut conn, &app.clock, &email, Actor::Cli).unwrap();
    assert!(accounts::ensure_first_admin(&mut conn, &app.clock).unwrap().is_none());
    assert_eq!(store::users::list(&mut conn).unwrap().len(), 1);
}

/// A stored enum the program does not know is a read error, never a
/// default: a key whose mode says `staging` is not a test key, a user
/// whose role says `owner` not a member — and the API refuses with an
/// internal error rather than guess.
fn a_corrupt_stored_enum_is_an_error_never_a_default(backend: Backend) {
    use diesel::prelude::*;
    use tessera::store::schema::{api_keys, users};
    let app = TestApp::start(backend);
    let root = app.root_key();
    let me = app.client.get(app.url("/v1/me")).bearer_auth(&root).send().unwrap();
    let key_id = me.json::<serde_json::Value>().unwrap()["data"]["key_id"].as_str().unwrap().to_string();
    let mut conn = app.conn();
    // What only a corruption (or a hand's edit) can do: past the schema's
    // own CHECKs.
    {
        use diesel::connection::SimpleConnection;
        let bypass = match &*conn {
            tessera::store::DbConn::Sqlite(_) => "PRAGMA ignore_check_constraints = ON",
            tessera::store::DbConn::Postgres(_) => {
                "ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_mode_check; \
                 ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check"
            }
        };
        conn.batch_execute(bypass).unwrap();
    }
    diesel::update(api_keys::table.find(&key_id)).set(api_keys::mode.eq("staging")).execute(&mut *conn).unwrap();
    let read = store::api_keys::find(&mut conn, &key_id);
    assert!(matches!(read, Err(store::StoreError::Query(_))), "{read:?}");
    let admin = app.user_id("admin@localhost");
    diesel::update(users::table.find(&admin)).set(users::role.eq("owner")).execute(&mut *conn).unwrap();
    let read = store::users::find_by_id(&mut conn, &admin);
    assert!(matches!(read, Err(store::StoreError::Query(_))), "{read:?}");
    drop(conn);
    let res = app.client.get(app.url("/v1/api-keys")).bearer_auth(&root).send().unwrap();
    assert!(res.status().is_server_error(), "never a guess: {}", res.status());
}

both_backends!(
    a_corrupt_stored_enum_is_an_error_never_a_default,
    both_migrations_give_the_schema_of_schema_rs,
    users_round_trip_with_case_insensitive_emails,
    password_change_and_disable_are_audited,
    the_first_admin_is_made_once,
);
