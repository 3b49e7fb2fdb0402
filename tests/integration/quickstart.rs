//! The README's Quickstart, run as written: every ```sh block of the
//! section, in order, with `bash -euo pipefail`, against the real
//! `tessera serve` on a fresh SQLite database in a temp directory. The
//! variables a block exports reach the next ones through a file; the
//! browser step between an authorization URL a block prints and the next
//! block is done here (sign in as the admin with the printed password,
//! approve, read `code`) and handed on as `$CODE`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::browser::{Person, hidden_fields, location, param};

/// How many ```sh blocks the Quickstart has: a block added or lost must
/// be a deliberate change here too.
const BLOCKS: usize = 8;

/// The fenced ```sh blocks of the README's `## Quickstart` section.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let start = readme.find("\n## Quickstart\n").expect("README.md has a ## Quickstart section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map(|i| i + 3).unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("\n```").expect("a closed sh block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 4..];
    }
    blocks
}

/// `tessera serve` in `dir`, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn without_tessera_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Starts the server; its base URL and the admin password it printed.
fn serve(dir: &Path) -> (Serve, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    without_tessera_env(&mut cmd)
        .current_dir(dir)
        .arg("serve")
        .env("TESSERA_BIND", "127.0.0.1:0")
        .env("TESSERA_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn tessera serve");
    let out = child.stdout.take().unwrap();
    let served = Serve(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut password = None;
    loop {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("tessera serve printed where it listens");
        if let Some(p) = line.trim().strip_prefix("password:") {
            password = Some(p.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("Listening on ") {
            let base = rest.split_whitespace().next().unwrap().to_string();
            return (served, base, password.expect("the first start printed the admin password"));
        }
    }
}

/// The person's part: open the URL, sign in, approve; the `code` the
/// browser is sent back with.
fn browser_step(base: &str, password: &str, url: &str) -> String {
    let person = Person::new("admin@localhost", password);
    let mut res = person.get(url);
    if res.status() == 302 && location(&res).starts_with("/login") {
        let page = person.get(&format!("{base}{}", location(&res)));
        let mut fields = hidden_fields(&page.text().unwrap());
        fields.push(("email".into(), person.email.clone()));
        fields.push(("password".into(), password.into()));
        let signed_in = person.post(&format!("{base}/login"), &fields);
        res = person.get(&format!("{base}{}", location(&signed_in)));
    }
    let back = if res.status() == 200 {
        let mut fields = hidden_fields(&res.text().unwrap());
        fields.push(("decision".into(), "approve".into()));
        location(&person.post(&format!("{base}/oauth/consent"), &fields))
    } else {
        location(&res)
    };
    assert!(back.starts_with("http://localhost:3000/callback?"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = quickstart_blocks(&readme);
    assert_eq!(blocks.len(), BLOCKS, "the Quickstart's sh blocks changed: update BLOCKS and this test");
    let openssl = Command::new("openssl").arg("version").output();
    assert!(openssl.is_ok_and(|o| o.status.success()), "the Quickstart needs openssl on PATH");

    let dir = tempfile::tempdir().unwrap();
    let (_server, base, password) = serve(dir.path());
    let env_file = dir.path().join("quickstart.env");
    std::fs::write(&env_file, "").unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tessera")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());

    let (mut authorizations, mut answers) = (0, 0);
    for (i, block) in blocks.iter().enumerate() {
        let script = format!("source \"$QUICKSTART_ENV\"\n{block}\nexport -p > \"$QUICKSTART_ENV\"\n");
        let mut cmd = Command::new("bash");
        let out = without_tessera_env(&mut cmd)
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(dir.path())
            .env("QUICKSTART_ENV", &env_file)
            .env("TESSERA", &base)
            .env("PATH", &path)
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "block {} failed ({}):\n{block}\nstdout: {stdout}\nstderr: {}",
            i + 1,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // What the curl calls printed is JSON (one answer after another,
        // without newlines between them), not an error.
        for line in stdout.lines().filter(|l| l.starts_with('{')) {
            for v in serde_json::Deserializer::from_str(line).into_iter::<serde_json::Value>() {
                let v = v.unwrap_or_else(|e| panic!("block {}: {e}: {line}", i + 1));
                assert!(v.get("error").is_none() && v["success"] != false, "block {}: {v}", i + 1);
                answers += 1;
            }
        }
        if let Some(url) = stdout.lines().find(|l| l.starts_with(&format!("{base}/oauth/authorize?"))) {
            let code = browser_step(&base, &password, url);
            let mut env = std::fs::read_to_string(&env_file).unwrap();
            env.push_str(&format!("export CODE='{code}'\n"));
            std::fs::write(&env_file, env).unwrap();
            authorizations += 1;
        }
    }
    assert_eq!(authorizations, 2, "the PKCE flow and the web-app flow each print an authorization URL");
    // Every curl call that prints answered: /v1 with the API key and with
    // the access token, the web app's code exchange, refresh, client
    // credentials, and /v1 with the JWT.
    assert_eq!(answers, 6);
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("CLIENT_SECRET=") && env.contains("REFRESH_TOKEN="), "the blocks exported their variables");
}

#[test]
fn quickstart_blocks_are_read_in_order_and_only_from_the_section() {
    let readme = "# T\n```sh\nno\n```\n## Quickstart\ntext\n```sh\none\n```\n```json\n{}\n```\n```sh\ntwo\nlines\n```\n## Next\n```sh\nno\n```\n";
    assert_eq!(quickstart_blocks(readme), ["one", "two\nlines"]);
}
