//! The store and account rules, run unchanged on both backends: this is
//! what shows that both migrations give the same logical schema.

use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use tessera::accounts::{self, AccountError, Email, NewUser, Password, Role};
use tessera::audit::Actor;
use tessera::store::{self, DbConn};

use crate::both_backends;
use crate::support::{Backend, TestApp};

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
}

fn columns(conn: &mut DbConn, table: &str) -> Vec<String> {
    let query = match conn {
        DbConn::Sqlite(_) => "SELECT name FROM pragma_table_info(?1) ORDER BY cid".to_string(),
        DbConn::Postgres(_) => "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            .to_string(),
    };
    diesel::sql_query(query).bind::<Text, _>(table).load::<Column>(conn).unwrap().into_iter().map(|c| c.name).collect()
}

fn both_migrations_give_the_same_schema(backend: Backend) {
    let app = TestApp::start(backend);
    let mut conn = app.conn();
    assert_eq!(
        columns(&mut conn, "users"),
        ["id", "email", "display_name", "password_hash", "role", "disabled", "created_at", "updated_at"]
    );
    assert_eq!(
        columns(&mut conn, "audit_events"),
        ["id", "occurred_at", "actor", "action", "target", "ip", "request_id", "details"]
    );
    // A second migration run is a no-op.
    store::migrate(&mut conn).expect("migrating twice");
    assert_eq!(columns(&mut conn, "users").len(), 8);
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

both_backends!(
    both_migrations_give_the_same_schema,
    users_round_trip_with_case_insensitive_emails,
    password_change_and_disable_are_audited,
    the_first_admin_is_made_once,
);
