//! The real `tessera` binary, as an operator starts it: `tessera serve`
//! in a directory of its own, its stdout read line by line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary with a clean TESSERA_* environment, run in `dir`.
pub fn tessera(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir).env("TESSERA_DATABASE_CONNECT_TIMEOUT", "2");
    cmd
}

/// A `tessera serve` child whose stdout lines arrive on a channel.
pub struct Served {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub stdout: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Served {
    pub fn start(mut cmd: Command) -> Self {
        cmd.arg("serve")
            .env("TESSERA_BIND", "127.0.0.1:0")
            .env("TESSERA_WORKERS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tessera serve");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self { child, lines, stdout: Vec::new(), stderr: Some(stderr) }
    }

    /// Reads stdout until the "Listening on" line; the base URL. Panics
    /// with the exit status and stderr if the process ended first.
    pub fn wait_listening(&mut self) -> String {
        loop {
            let line = match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("tessera serve printed no \"Listening on\" in 30 s"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    let stderr = self.stderr.take().map(|e| e.join().unwrap()).unwrap_or_default();
                    panic!("tessera serve ended before listening ({status}): {stderr}")
                }
            };
            self.stdout.push(line.clone());
            if let Some(rest) = line.strip_prefix("Listening on ") {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn terminate(self) -> (std::process::ExitStatus, String) {
        self.sigterm();
        self.wait_exit(Duration::from_secs(60))
    }

    /// Sends SIGTERM and returns at once: the process drains meanwhile.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Waits for the process to exit; its status and stderr. Panics (and
    /// the drop kills it) if it is still running after `limit`.
    pub fn wait_exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "tessera serve still running {limit:?} later");
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stderr.take().unwrap().join().unwrap())
    }
}

impl Served {
    /// The first admin's password, as the first start printed it.
    pub fn admin_password(&self) -> String {
        let stdout = self.stdout.join("\n");
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("password:"))
            .map(|p| p.trim().to_string())
            .unwrap_or_else(|| panic!("admin password printed: {stdout}"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
