//! The `tessera` binary as an operator runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tessera::config::DatabaseUrl;

use crate::both_backends;
use crate::support::served::{Served, tessera};
use crate::support::{Backend, TestDatabase};

fn tessera_on(db: &TestDatabase) -> Command {
    let mut cmd = tessera(db.dir.path());
    cmd.env("TESSERA_DATABASE_URL", db.url_string());
    cmd
}

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run tessera");
    // A command that fails before reading stdin closes it: not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    // A command that should exit but serves instead must fail the test,
    // not hang the suite: kill it after a minute.
    let pid = child.id().to_string();
    let (done, watchdog) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    out
}

/// Runs `tessera ARGS` on `db` with empty stdin.
pub(crate) fn exec_on(db: &TestDatabase, args: &[&str]) -> Output {
    let mut cmd = tessera_on(db);
    cmd.args(args);
    run(cmd, b"")
}

/// Runs `tessera ARGS` on `db`, asserts success, and parses stdout as JSON.
fn json_on(db: &TestDatabase, args: &[&str]) -> Value {
    let out = exec_on(db, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn list_users(db: &TestDatabase) -> Vec<Value> {
    let mut cmd = tessera_on(db);
    cmd.args(["user", "list", "--json"]);
    let out = run(cmd, b"");
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

fn stored_hash(url: &DatabaseUrl, email: &str) -> String {
    let pool = tessera::store::open(url, 1, Duration::from_secs(5)).unwrap();
    let mut conn = pool.get().unwrap();
    tessera::store::users::find_by_email(&mut conn, email).unwrap().unwrap().password_hash
}

fn create_user(db: &TestDatabase, email: &str, extra: &[&str], password: &[u8]) -> Output {
    let mut cmd = tessera_on(db);
    cmd.args(["user", "create", "--email", email, "--name", "Ann", "--password-stdin"]).args(extra);
    run(cmd, password)
}

fn user_commands_round_trip(backend: Backend) {
    let db = TestDatabase::new(&backend);
    let out = create_user(&db, "Ann@Example.com", &["--admin", "--json"], b"pass word 123\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["email"], "ann@example.com");
    assert_eq!(created["role"], "admin");
    assert!(created["id"].as_str().unwrap().starts_with("usr_"));
    assert!(created.get("password_hash").is_none(), "no hash in output");

    // The trailing newline from stdin is not part of the password.
    let hash = stored_hash(&db.url, "ann@example.com");
    assert!(tessera::accounts::verify_password("pass word 123", &hash));
    assert!(!tessera::accounts::verify_password("pass word 123\n", &hash));

    let mut cmd = tessera_on(&db);
    cmd.args(["user", "set-password", "--email", "ANN@example.com", "--password-stdin"]);
    let out = run(cmd, b"another secret 456\r\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let hash = stored_hash(&db.url, "ann@example.com");
    assert!(tessera::accounts::verify_password("another secret 456", &hash));

    let mut cmd = tessera_on(&db);
    cmd.args(["user", "disable", "--email", "ann@example.com"]);
    assert!(run(cmd, b"").status.success());
    let users = list_users(&db);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["disabled"], true);

    let mut cmd = tessera_on(&db);
    cmd.args(["user", "list"]);
    let out = run(cmd, b"");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ann@example.com\tadmin\tdisabled"));
}

fn user_create_refuses_bad_input_and_changes_nothing(backend: Backend) {
    let db = TestDatabase::new(&backend);
    assert!(create_user(&db, "ann@example.com", &[], b"good password\n").status.success());
    let before = list_users(&db);

    let long = vec![b'x'; 2000];
    let cases: [(&str, &[u8], &str); 6] = [
        ("ANN@example.com", b"good password\n", "already exists"),
        ("ann@example.com", b"good password\n", "already exists"),
        ("bob@example.com", b"", "password"),
        ("bob@example.com", b"\n", "password"),
        ("bob@example.com", &long, "longer than 1024"),
        ("not-an-email", b"good password\n", "email"),
    ];
    for (email, password, expected) in cases {
        let out = create_user(&db, email, &[], password);
        assert_eq!(out.status.code(), Some(1), "{email}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: ") && err.contains(expected), "{email}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
        assert!(!err.contains("good password"), "the password is never echoed");
    }

    // Usage errors exit 2.
    for args in [
        &["user", "create", "--name", "X", "--password-stdin"][..],
        &["user", "create", "--email", "x@example.com", "--name", "X"][..],
        &["user", "frobnicate"][..],
    ] {
        let mut cmd = tessera_on(&db);
        cmd.args(args);
        assert_eq!(run(cmd, b"pw").status.code(), Some(2), "{args:?}");
    }
    assert_eq!(list_users(&db), before, "nothing changed");

    let mut cmd = tessera_on(&db);
    cmd.args(["user", "disable", "--email", "ghost@example.com"]);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no user"), "{}", stderr(&out));
}

fn migrate_twice_is_a_no_op(backend: Backend) {
    let db = TestDatabase::new(&backend);
    for _ in 0..2 {
        let mut cmd = tessera_on(&db);
        cmd.arg("migrate");
        let out = run(cmd, b"");
        assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
    assert!(list_users(&db).is_empty(), "migrate makes no user");
}

fn signing_key_commands_stage_and_list(backend: Backend) {
    let db = TestDatabase::new(&backend);
    let json = |args: &[&str]| json_on(&db, args);
    let staged = json(&["signing-key", "rotate", "--json"]);
    assert_eq!(staged[0]["algorithm"], "RS256");
    assert_eq!(staged[0]["state"], "next");
    let now = json(&["signing-key", "rotate", "--alg", "ES256", "--now", "--json"]);
    assert_eq!(now[0]["state"], "active");
    let listed = json(&["signing-key", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("private"), "nothing secret is listed");

    let mut cmd = tessera_on(&db);
    cmd.args(["signing-key", "rotate", "--alg", "none"]);
    assert_eq!(run(cmd, b"").status.code(), Some(2), "unknown algorithms are usage errors");
    assert_eq!(json(&["signing-key", "list", "--json"]).as_array().unwrap().len(), 2);
}

fn client_and_resource_commands_round_trip(backend: Backend) {
    let db = TestDatabase::new(&backend);
    let exec = |args: &[&str]| exec_on(&db, args);
    let json = |args: &[&str]| json_on(&db, args);
    let rs = json(&[
        "resource",
        "create",
        "--identifier",
        "https://orders.example.com",
        "--name",
        "Orders",
        "--alg",
        "HS256",
        "--scope",
        "orders:read",
        "--scope",
        "orders:write",
        "--json",
    ]);
    assert_eq!(rs["algorithm"], "HS256");
    assert_eq!(rs["scope"], serde_json::json!(["orders:read", "orders:write"]));
    let rs_secret = rs["secret"].as_str().unwrap().to_string();
    assert!(rs_secret.len() >= 43);
    let again = exec(&["resource", "create", "--identifier", "https://orders.example.com", "--name", "Dup"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    let rotated = json(&["resource", "rotate-secret", "https://orders.example.com", "--json"]);
    assert_ne!(rotated["secret"], rs_secret.as_str());
    let listed = json(&["resource", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&rs_secret));

    let client = json(&[
        "client",
        "create",
        "--name",
        "Billing",
        "--scope",
        "read orders:read",
        "--audience",
        "https://orders.example.com",
        "--json",
    ]);
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    assert!(id.starts_with("cl_") && secret.len() >= 43);
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(client["grant_types"], serde_json::json!(["client_credentials"]));
    let public = json(&[
        "client",
        "create",
        "--name",
        "SPA",
        "--public",
        "--redirect-uri",
        "https://spa.example.com/cb",
        "--json",
    ]);
    assert_eq!(public["client_type"], "public");
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert!(public["client_secret"].is_null());
    let plain = exec(&["client", "create", "--name", "Plain"]);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains("client_id:") && text.contains("client_secret:") && text.contains("only this once"),
        "{text}"
    );

    let jwks_path = db.dir.path().join("jwks.json");
    let key = crate::support::oauth::ClientKey::generate(jsonwebtoken::Algorithm::ES256, "k1");
    std::fs::write(&jwks_path, crate::support::oauth::ClientKey::jwks_json(&[&key])).unwrap();
    let pk = json(&[
        "client",
        "create",
        "--name",
        "Signer",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        jwks_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(pk["client_secret"].is_null());
    assert_eq!(pk["jwks"]["keys"][0]["kid"], "k1");

    // Bad input: a clear line, exit 1 (or 2 for usage), nothing stored.
    for (args, expected) in [
        (&["client", "create", "--name", "X", "--public", "--auth-method", "client_secret_basic"][..], "public"),
        (&["client", "create", "--name", "X", "--auth-method", "private_key_jwt"], "JWKS"),
        (&["client", "create", "--name", "X", "--redirect-uri", "not a uri"], "redirect URI"),
        (&["client", "create", "--name", "X", "--redirect-uri", "https://a.example/cb#frag"], "fragment"),
        (&["client", "create", "--name", "X", "--grant-type", "authorization_code"], "redirect URI"),
        (&["client", "create", "--name", "", "--scope", "read"], "name"),
        (&["client", "create", "--name", "X", "--scope", "bad\"scope"], "scope"),
        (&["client", "create", "--name", "X", "--owner", "nobody@example.com"], "user"),
        (&["client", "rotate-secret", "cl_missing"], "no client"),
        (&["client", "rotate-secret", &id, "--expire-old-in", "99999999"], "at most"),
        (&["resource", "create", "--identifier", "orders", "--name", "X"], "absolute URI"),
    ] {
        let out = exec(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(exec(&["client", "create", "--name", "X", "--grant-type", "password"]).status.code(), Some(2));

    let rotated = json(&["client", "rotate-secret", &id, "--expire-old-in", "60", "--json"]);
    assert_ne!(rotated["client_secret"], secret.as_str());
    assert_eq!(rotated["old_secret_expires_in"], 60);
    assert!(exec(&["client", "disable", &id]).status.success());
    let listed = json(&["client", "list", "--json"]);
    let clients = listed.as_array().unwrap();
    assert_eq!(clients.len(), 4);
    let billing = clients.iter().find(|c| c["client_id"] == id.as_str()).unwrap();
    assert_eq!(billing["disabled"], true);
    assert!(!listed.to_string().contains(&secret), "no secret is listed");
    assert!(exec(&["client", "disable", "cl_missing"]).status.code() == Some(1));
}

fn key_commands_round_trip(backend: Backend) {
    let db = TestDatabase::new(&backend);
    assert!(create_user(&db, "ann@example.com", &[], b"pass word 123").status.success());
    let exec = |args: &[&str]| exec_on(&db, args);
    let json = |args: &[&str]| json_on(&db, args);
    let created = json(&[
        "key",
        "create",
        "--owner",
        "ann@example.com",
        "--name",
        "Backend",
        "--mode",
        "live",
        "--type",
        "restricted",
        "--permissions",
        "read,write",
        "--endpoint",
        "GET /v1/users/*",
        "--allow-ip",
        "10.0.0.0/8",
        "--json",
    ]);
    let id = created["id"].as_str().unwrap().to_string();
    let raw = created["key"].as_str().unwrap().to_string();
    assert!(id.starts_with("key_") && raw.starts_with("rk_live_") && raw.len() == 8 + 36);
    assert_eq!(created["permissions"], serde_json::json!(["read", "write"]));
    assert_eq!(created["last4"], &raw[raw.len() - 4..]);
    assert!(tessera::apikeys::parse(&raw).is_ok());
    let listed = json(&["key", "list", "--owner", "ann@example.com", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&raw), "the key is shown once");

    let rotated = json(&["key", "rotate", &id, "--expire-old-in", "60", "--json"]);
    assert_eq!(rotated["rotated_from"], id.as_str());
    assert_ne!(rotated["key"], raw.as_str());
    assert!(exec(&["key", "revoke", &id]).status.success());
    let again = exec(&["key", "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("revoked"));

    for (args, expected) in [
        (
            &[
                "key",
                "create",
                "--owner",
                "ann@example.com",
                "--name",
                "X",
                "--mode",
                "test",
                "--permissions",
                "read,fly",
            ][..],
            "fly",
        ),
        (&["key", "create", "--owner", "nobody@example.com", "--name", "X", "--mode", "test"], "no user"),
        (
            &[
                "key",
                "create",
                "--owner",
                "ann@example.com",
                "--name",
                "X",
                "--mode",
                "test",
                "--allow-ip",
                "10.0.0.300",
            ],
            "CIDR",
        ),
        (
            &["key", "create", "--owner", "ann@example.com", "--name", "X", "--mode", "test", "--type", "restricted"],
            "permissions",
        ),
        (
            &["key", "create", "--owner", "ann@example.com", "--name", "X", "--mode", "test", "--client", "cl_none"],
            "no client",
        ),
        (&["key", "rotate", "key_missing"], "no API key"),
    ] {
        let out = exec(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        exec(&["key", "create", "--owner", "ann@example.com", "--name", "X", "--mode", "prod"]).status.code(),
        Some(2)
    );
    assert_eq!(json(&["key", "list", "--json"]).as_array().unwrap().len(), 2, "failed calls stored nothing");
}

both_backends!(
    key_commands_round_trip,
    client_and_resource_commands_round_trip,
    signing_key_commands_stage_and_list,
    user_commands_round_trip,
    user_create_refuses_bad_input_and_changes_nothing,
    migrate_twice_is_a_no_op,
);

fn assert_stops_naming(mut cmd: Command, setting: &str) -> String {
    cmd.arg("serve");
    // A free port unless the case under test is the bind address itself.
    if !cmd.get_envs().any(|(name, _)| name == "TESSERA_BIND") {
        cmd.env("TESSERA_BIND", "127.0.0.1:0");
    }
    let out = run(cmd, b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains(setting), "{setting} not named in: {line}");
    line.to_string()
}

#[test]
fn bad_settings_stop_with_a_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("TESSERA_ENVIRONMENT", "prod"),
        ("TESSERA_DATABASE_URL", "mysql://localhost/x"),
        ("TESSERA_LOG_FORMAT", "xml"),
        ("TESSERA_BIND", "not an address"),
        ("TESSERA_MASTER_KEY", "too-short"),
        ("TESSERA_DATABASE_CONNECT_TIMEOUT", "soon"),
    ];
    for (name, value) in cases {
        let mut cmd = tessera(dir.path());
        cmd.env(name, value);
        assert_stops_naming(cmd, name);
    }
    // A database under a path that cannot be a directory.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let mut cmd = tessera(dir.path());
    cmd.env("TESSERA_DATABASE_URL", "sqlite://file/tessera.db");
    assert_stops_naming(cmd, "TESSERA_DATABASE_URL");
    // An unreadable config file.
    let mut cmd = tessera(dir.path());
    cmd.args(["--config", "/nonexistent/tessera.toml"]);
    assert_stops_naming(cmd, "--config");
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = tessera(dir.path());
    cmd.arg("serve").env("TESSERA_BIND", taken.local_addr().unwrap().to_string());
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("TESSERA_BIND"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_database_fails_the_start_after_the_configured_wait() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let mut cmd = tessera(dir.path());
    cmd.env("TESSERA_DATABASE_URL", "postgres://tessera:hunter2@127.0.0.1:1/tessera")
        .env("TESSERA_DATABASE_CONNECT_TIMEOUT", "1");
    let started = std::time::Instant::now();
    let line = assert_stops_naming(cmd, "TESSERA_DATABASE_URL");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(line.contains("gave up after 1s"), "{line}");
    assert!(!line.contains("hunter2"), "the password is redacted: {line}");
}

#[test]
fn postgres_with_wrong_credentials_is_a_clear_error() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else { return };
    let (_, rest) = url.split_once("://").unwrap();
    let host_and_path = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let bad = format!("postgres://no_such_role:hunter2@{host_and_path}");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tessera(dir.path());
    cmd.env("TESSERA_DATABASE_URL", bad).env("TESSERA_DATABASE_CONNECT_TIMEOUT", "1");
    let line = assert_stops_naming(cmd, "TESSERA_DATABASE_URL");
    assert!(line.contains("no_such_role"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn serve_on_a_fresh_directory_makes_everything_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::start(tessera(dir.path()));
    let base = served.wait_listening();
    let stdout = served.stdout.join("\n");
    let password = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("admin password printed: {stdout}"));
    assert!(stdout.contains("admin@localhost"));
    assert!(stdout.contains(&format!("{base}/login")), "sign-in URL printed: {stdout}");

    let client = crate::support::http_client();
    for path in ["/healthz", "/readyz"] {
        assert_eq!(client.get(format!("{base}{path}")).send().unwrap().status(), 200);
    }
    let (status, stderr) = served.terminate();
    assert!(status.success(), "graceful stop exits 0: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!stderr.contains(&password), "the password is never logged");

    // The embedded default: the database and the 0600 key file beside it.
    assert!(dir.path().join("tessera.db").exists());
    let key = dir.path().join("tessera.db.master-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The printed credentials are the stored ones.
    let url = DatabaseUrl::Sqlite(dir.path().join("tessera.db"));
    let users = {
        let mut cmd = tessera(dir.path());
        cmd.args(["user", "list", "--json"]);
        serde_json::from_slice::<Value>(&run(cmd, b"").stdout).unwrap()
    };
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["email"], "admin@localhost");
    assert!(tessera::accounts::verify_password(&password, &stored_hash(&url, "admin@localhost")));

    // A second start reuses all of it and prints no password; its logs are
    // JSON lines with the request id, method, path, status and latency.
    let mut cmd = tessera(dir.path());
    cmd.env("TESSERA_LOG_FORMAT", "json");
    let mut served = Served::start(cmd);
    let base = served.wait_listening();
    assert!(!served.stdout.join("\n").contains("password"));
    let res = client
        .get(format!("{base}/healthz?token=secret-in-query"))
        .header("X-Request-Id", "trace-42")
        .header("Authorization", "Bearer sk_test_do-not-log")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, stderr) = served.terminate();
    assert!(status.success());
    let access = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["request_id"] == "trace-42" && v["path"].is_string())
        .unwrap_or_else(|| panic!("a JSON access line for trace-42 in: {stderr}"));
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/healthz");
    assert_eq!(access["status"], 200);
    assert!(access.get("latency_ms").is_some());
    assert!(!stderr.contains("secret-in-query") && !stderr.contains("do-not-log"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).unwrap().len(), 45, "the key file is kept");
}
