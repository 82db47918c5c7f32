//! Shared fixtures of the connector tests: temporary directories, a real `spoor serve` on a
//! free loopback port, and a runner for the spoor binary with a private config directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::util::read_announcement;

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh empty directory.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "spoor-connector-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The spoor binary under test.
pub fn spoor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_spoor")
}

/// A running `spoor serve` with a fresh data directory.
pub struct Collector {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The write key of the source `default`.
    pub write_key: String,
    /// The owner token for the Public API.
    pub token: String,
    /// The data directory.
    pub data: TempDir,
}

impl Collector {
    /// Starts a collector on a free port and reads its write key, token and address.
    pub fn start() -> Collector {
        let data = TempDir::new("data");
        let mut child = Command::new(spoor_bin())
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn spoor serve");
        let announced = read_announcement(child.stdout.take().expect("stdout"));
        Collector {
            child,
            url: announced.url,
            write_key: announced.write_key,
            token: announced.token,
            data,
        }
    }

    /// Runs SQL over the collector's store; rows as JSON objects, `body` parsed.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        let output = Command::new(spoor_bin())
            .args(["query", sql, "--format", "json", "--data"])
            .arg(self.data.path())
            .output()
            .expect("run spoor query");
        assert!(
            output.status.success(),
            "query failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rows: Value = serde_json::from_slice(&output.stdout).expect("query json");
        rows.as_array()
            .expect("rows")
            .iter()
            .map(|row| {
                let mut row = row.clone();
                if let Some(body) = row.get("body").and_then(Value::as_str) {
                    let parsed: Value = serde_json::from_str(body).expect("body json");
                    row["body_text"] = Value::String(body.to_owned());
                    row["body"] = parsed;
                }
                row
            })
            .collect()
    }

    /// The one stored message with this messageId.
    pub fn message(&self, message_id: &str) -> Value {
        let rows = self.query(&format!(
            "SELECT message_id, type, user_id, anonymous_id, event, timestamp, body FROM messages WHERE message_id = '{message_id}'"
        ));
        assert_eq!(
            rows.len(),
            1,
            "exactly one stored message {message_id}: {rows:?}"
        );
        rows.into_iter().next().expect("one row")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one spoor run.
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs spoor with `config` as XDG_CONFIG_HOME, the SPOOR_* variables cleared, then `env`.
pub fn run_spoor(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    run_spoor_stdin(config, env, args, None)
}

/// Like [`run_spoor`], with standard input.
pub fn run_spoor_stdin(
    config: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    use std::io::Write;
    let mut command = Command::new(spoor_bin());
    command
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("SPOOR_WRITE_KEY")
        .env_remove("SPOOR_ENDPOINT")
        .env_remove("SPOOR_TOKEN")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn spoor");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for spoor").into()
}
