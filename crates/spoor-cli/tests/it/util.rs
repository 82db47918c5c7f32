//! Shared fixtures of the integration tests: temporary directories, a running `spoor serve`
//! child process, `spoor query`, external scripts with a deadline, and the environment variables
//! that gate the tests needing outside parts (official Segment libraries, Chromium).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `spoor serve --json` announces on a first start: its address, and the first source's
/// write key and the owner token.
pub struct Announced {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The `default` source's write key.
    pub write_key: String,
    /// The owner token.
    pub token: String,
}

/// Reads the output of a first `spoor serve --json` up to its address line, then keeps
/// draining the rest on a thread so the server never blocks on a full pipe.
pub fn read_announcement(stdout: std::process::ChildStdout) -> Announced {
    let mut lines = BufReader::new(stdout).lines();
    let (mut write_key, mut token, mut url) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.expect("read serve output");
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(first) = value.get("firstRun") {
            write_key = first["writeKey"].as_str().map(str::to_owned);
            token = first["token"].as_str().map(str::to_owned);
        }
        if let Some(found) = value.get("url").and_then(serde_json::Value::as_str) {
            url = Some(found.to_owned());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Announced {
        url: url.expect("the collector printed its url"),
        write_key: write_key.expect("the collector printed a write key"),
        token: token.expect("the collector printed a token"),
    }
}

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Returns the value of `name`, or prints "skipped: NAME not set" and returns `None`.
pub fn env_or_skip(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            println!("skipped: {name} not set");
            None
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates an empty directory whose name starts with `label`.
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "spoor-it-{label}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).expect("create a test directory");
        Self { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `spoor` command (the binary under test).
pub fn spoor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spoor"))
}

/// A `spoor serve` child process on a loopback port, with the write key it printed on its first
/// start. Killed with SIGKILL on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// The write key of the `default` source (printed on the first start of a data directory,
    /// otherwise the key given to [`Server::restart`]).
    pub write_key: String,
    /// Everything the server printed so far, for failure messages.
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `spoor serve --data DATA --listen 127.0.0.1:0` on an empty data directory and
    /// waits until it printed its address and write key.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// [`Server::start`] with extra arguments for `spoor serve`.
    pub fn start_with(data: &Path, args: &[&str]) -> Self {
        Self::spawn(data, "127.0.0.1:0", None, args).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Starts the server again (with extra arguments for `spoor serve`) on a data directory
    /// that already holds `write_key`, on `listen` (for example the previous address, to keep
    /// clients' URLs valid). Fails with what the server printed when it exits before
    /// listening (for example when the port is taken).
    pub fn restart_with(
        data: &Path,
        listen: &str,
        write_key: &str,
        args: &[&str],
    ) -> Result<Self, String> {
        Self::spawn(data, listen, Some(write_key.to_owned()), args)
    }

    fn spawn(
        data: &Path,
        listen: &str,
        write_key: Option<String>,
        args: &[&str],
    ) -> Result<Self, String> {
        let mut command = spoor();
        command
            .arg("serve")
            .arg("--json")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(listen)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn spoor serve");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        if let Some(stdout) = child.stdout.take() {
            pump(stdout, lines_tx.clone(), Arc::clone(&output));
        }
        if let Some(stderr) = child.stderr.take() {
            pump(stderr, lines_tx, Arc::clone(&output));
        }

        let deadline = Instant::now() + Duration::from_secs(30);
        let mut addr = None;
        let mut key = write_key;
        while addr.is_none() || key.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    // With --json, the server prints `{"firstRun": {"writeKey": ...}}` on the
                    // first start of a data directory, then `{"listening": ADDR, "url": ...}`.
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if let Some(found) = value["firstRun"]["writeKey"].as_str() {
                        key = Some(found.to_owned());
                    }
                    if let Some(found) = value["listening"].as_str() {
                        addr = found.parse().ok();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    // Give the pipe readers a moment to store the last lines.
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(format!(
                        "spoor serve --listen {listen} did not print its address and write key \
                         (exit: {status:?}); it printed:\n{}",
                        output.lock().map(|o| o.join("\n")).unwrap_or_default()
                    ));
                }
            }
        }
        let (Some(addr), Some(write_key)) = (addr, key) else {
            unreachable!("the loop above ends only when both are known")
        };
        let server = Self {
            child,
            addr,
            write_key,
            output,
        };
        server.wait_until_ready();
        Ok(server)
    }

    /// Waits until the listener accepts connections.
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "spoor serve printed {} but does not accept connections",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the server printed so far.
    pub fn printed(&self) -> String {
        self.output.lock().map(|o| o.join("\n")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forwards the lines of a child's pipe to `lines` and keeps them in `keep`, until it closes.
fn pump(
    pipe: impl Read + Send + 'static,
    lines: mpsc::Sender<String>,
    keep: Arc<Mutex<Vec<String>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut keep) = keep.lock()
                && keep.len() < 2000
            {
                keep.push(line.clone());
            }
            let _ = lines.send(line);
        }
    });
}

/// Runs `spoor query SQL --data DATA --format json` and returns the rows as JSON objects.
pub fn query(data: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let output = spoor()
        .arg("query")
        .arg(sql)
        .arg("--data")
        .arg(data)
        .arg("--format")
        .arg("json")
        .output()
        .expect("run spoor query");
    assert!(
        output.status.success(),
        "spoor query {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<serde_json::Value> = match serde_json::from_str(&text) {
        Ok(serde_json::Value::Array(rows)) => rows,
        // Also accept one JSON object per line.
        _ => text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("spoor query prints JSON"))
            .collect(),
    };
    rows.into_iter()
        .map(|row| match row {
            serde_json::Value::Object(map) => map,
            other => panic!("spoor query printed a row that is not an object: {other}"),
        })
        .collect()
}

/// Runs `sql` (which must select one number) and returns it.
pub fn query_count(data: &Path, sql: &str) -> i64 {
    let rows = query(data, sql);
    let row = rows
        .first()
        .unwrap_or_else(|| panic!("{sql:?} returned no row"));
    let value = row.values().next().expect("a column");
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{sql:?} returned {value}, not a number"))
}

/// Polls `sql` (selecting one number) until it returns `want` or `timeout` passes, and returns
/// the last value.
pub fn wait_for_count(data: &Path, sql: &str, want: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let got = query_count(data, sql);
        if got == want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to completion, killing it after `timeout`. Returns its output and how long
/// it ran; panics (with what it printed) when it had to be killed.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {command:?}: {err}"));
    let stdout = child.stdout.take().map(read_all_in_background);
    let stderr = child.stderr.take().map(read_all_in_background);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = stdout
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            let stderr = stderr
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            panic!(
                "{command:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stdout = stdout
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    (
        Output {
            status,
            stdout,
            stderr,
        },
        elapsed,
    )
}

fn read_all_in_background(
    mut pipe: impl Read + Send + 'static,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Parses the one JSON object a driver script printed as the last line of its stdout.
pub fn last_json_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "the script printed no JSON object\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    serde_json::from_str(line).unwrap_or_else(|err| panic!("bad JSON {line:?}: {err}"))
}
