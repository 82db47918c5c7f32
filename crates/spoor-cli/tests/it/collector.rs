//! `spoor serve`, `spoor sources`, `spoor tokens` and `spoor query` as a user runs them: the
//! real binary, a real port, real signals.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

fn spoor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spoor"))
}

/// A directory removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = format!(
            "spoor-cli-{name}-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nanos()
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `spoor serve` child process and what its first start printed.
struct Served {
    child: Child,
    url: String,
    stdout: Vec<String>,
}

impl Served {
    /// Starts `spoor serve` (text output) and reads until the "listening on" line.
    fn start(data: &Path, extra: &[&str]) -> Served {
        Served::start_env(data, extra, &[])
    }

    /// Same, with environment variables set.
    fn start_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut child = spoor()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("spoor: listening on ") {
                url = Some(rest.trim().to_owned());
                seen.push(line);
                break;
            }
            seen.push(line);
        }
        std::thread::spawn(move || for _ in lines {});
        Served {
            child,
            url: url.unwrap_or_else(|| panic!("no listening line in {seen:?}")),
            stdout: seen,
        }
    }

    fn first_run_value(&self, label: &str) -> String {
        self.stdout
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label:?} in {:?}", self.stdout))
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], data: &Path) -> Output {
    spoor().args(args).arg("--data").arg(data).output().unwrap()
}

fn json_out(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

async fn send(url: &str, key: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/track"))
        .header("Authorization", basic(key))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn first_start_prints_the_secrets_once_and_the_curl_example_works() {
    let dir = Dir::new("first");
    let served = Served::start(&dir.data(), &[]);
    let key = served.first_run_value("write key (source default):");
    let token = served.first_run_value("owner token (Public API):");
    assert_eq!(key.len(), 32);
    assert!(token.starts_with("spoor_"));
    let curl = served
        .stdout
        .iter()
        .find(|l| l.contains("curl -u"))
        .unwrap()
        .clone();
    assert!(curl.contains(&format!("'{key}:'")), "{curl}");
    let url = served.url.clone();
    assert_eq!(
        send(
            &url,
            &key,
            json!({"userId": "user-1", "event": "Signed Up"})
        )
        .await,
        200
    );
    let (status, answer) = {
        let response = reqwest::Client::new()
            .get(format!("{url}/api/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 200, "{answer}");
    assert_eq!(served.terminate().code(), Some(0));

    // The second start prints no secrets.
    let again = Served::start(&dir.data(), &[]);
    assert!(
        !again.stdout.iter().any(|l| l.contains("owner token")),
        "{:?}",
        again.stdout
    );
    assert_eq!(again.terminate().code(), Some(0));

    // Files holding secrets or events are private, the warehouse's included.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.data()), 0o700);
    assert_eq!(mode(dir.data().join("meta.db")), 0o600);
    assert_eq!(mode(dir.data().join("events.db")), 0o600);
    assert_eq!(mode(dir.data().join("warehouse.db")), 0o600);
}

#[tokio::test]
async fn sigterm_commits_everything_acknowledged_and_exits_zero() {
    let dir = Dir::new("sigterm");
    let served = Served::start(&dir.data(), &[]);
    let key = served.first_run_value("write key (source default):");
    let url = served.url.clone();
    let mut tasks = Vec::new();
    for sender in 0..8 {
        let (url, key) = (url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = 0;
            for i in 0..25 {
                let body = json!({"userId": format!("s{sender}"), "event": "E", "messageId": format!("{sender}-{i}")});
                if send(&url, &key, body).await == 200 {
                    acknowledged += 1;
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = 0;
    for task in tasks {
        acknowledged += task.await.unwrap();
    }
    assert_eq!(acknowledged, 200);
    assert_eq!(served.terminate().code(), Some(0));
    let rows = json_out(&run(
        &[
            "query",
            "SELECT count(*) AS n, count(DISTINCT message_id) AS d FROM messages",
            "--format",
            "json",
        ],
        &dir.data(),
    ));
    assert_eq!(rows, json!([{"n": 200, "d": 200}]));
}

#[tokio::test]
async fn sources_and_tokens_from_the_cli_while_the_server_runs() {
    let dir = Dir::new("admin");
    let served = Served::start(&dir.data(), &[]);
    let url = served.url.clone();
    let data = dir.data();

    let created = json_out(&run(&["--json", "sources", "create", "web"], &data));
    let key = created["writeKeys"][0].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "web");
    let honoured = |key: String, want: u16| {
        let url = url.clone();
        async move {
            let started = Instant::now();
            loop {
                let status = send(&url, &key, json!({"userId": "u", "event": "E"})).await;
                if status == want {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "not {want} within 1 s"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    honoured(key.clone(), 200).await;

    let rotated = json_out(&run(&["--json", "sources", "rotate-key", "web"], &data));
    let new_key = rotated["writeKeys"][0].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    honoured(new_key.clone(), 200).await;
    honoured(key.clone(), 401).await;

    json_out(&run(&["--json", "sources", "disable", "web"], &data));
    honoured(new_key.clone(), 401).await;
    json_out(&run(&["--json", "sources", "enable", "web"], &data));
    honoured(new_key.clone(), 200).await;

    let list = json_out(&run(&["--json", "sources", "list"], &data));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "web"]);
    let text = run(&["sources", "list"], &data);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&new_key));

    let token = json_out(&run(
        &[
            "--json",
            "tokens",
            "create",
            "--description",
            "ci",
            "--role",
            "member",
        ],
        &data,
    ));
    let secret = token["token"].as_str().unwrap().to_owned();
    let id = token["id"].as_str().unwrap().to_owned();
    let listed = json_out(&run(&["--json", "tokens", "list"], &data));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains(&secret),
        "tokens are never shown again"
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let status = client
            .get(format!("{url}/api/sources"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    json_out(&run(&["--json", "tokens", "revoke", &id], &data));
    let started = Instant::now();
    loop {
        let status = client
            .get(format!("{url}/api/sources"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "revoked token still works"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Bad input and unknown names get their exit codes.
    assert_eq!(
        run(&["sources", "create", "Bad Name"], &data).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["sources", "create", "web"], &data).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["sources", "disable", "nope"], &data).status.code(),
        Some(4)
    );
    assert_eq!(
        run(&["tokens", "revoke", "nope"], &data).status.code(),
        Some(4)
    );
    assert_eq!(
        run(&["sources", "list"], &dir.path().join("missing"))
            .status
            .code(),
        Some(4)
    );
    drop(served);
}

#[tokio::test]
async fn query_reads_messages_and_discards_in_every_format() {
    let dir = Dir::new("query");
    let served = Served::start(&dir.data(), &[]);
    let key = served.first_run_value("write key (source default):");
    assert_eq!(
        send(
            &served.url,
            &key,
            json!({"userId": "u,1", "event": "Quoted \"E\""})
        )
        .await,
        200
    );
    assert_eq!(
        send(&served.url, &key, json!({"event": "no identity"})).await,
        400
    );
    assert_eq!(served.terminate().code(), Some(0));
    let data = dir.data();

    let rows = json_out(&run(
        &[
            "query",
            "SELECT user_id, anonymous_id, 1.5 AS x, x'ff00' AS b FROM messages",
            "--format",
            "json",
        ],
        &data,
    ));
    assert_eq!(
        rows,
        json!([{"user_id": "u,1", "anonymous_id": null, "x": 1.5, "b": "ff00"}])
    );

    let csv = run(
        &[
            "query",
            "SELECT user_id, event, anonymous_id FROM messages",
            "--format",
            "csv",
        ],
        &data,
    );
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "user_id,event,anonymous_id\n\"u,1\",\"Quoted \"\"E\"\"\",\n"
    );

    let table = run(&["query", "SELECT type, anonymous_id FROM messages"], &data);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("type   anonymous_id\n"), "{table}");
    assert!(table.contains("track  NULL"), "{table}");

    let discards = json_out(&run(
        &[
            "--json",
            "query",
            "SELECT code, reasons, body FROM discards",
        ],
        &data,
    ));
    assert_eq!(discards[0]["code"], "missing_identity");
    let reasons: Value = serde_json::from_str(discards[0]["reasons"].as_str().unwrap()).unwrap();
    assert_eq!(reasons[0]["path"], "userId");

    let refused = run(&["query", "DELETE FROM messages"], &data);
    assert_eq!(refused.status.code(), Some(2));
    let broken = run(&["query", "SELEC nothing"], &data);
    assert_eq!(broken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("syntax error"));
    let count = json_out(&run(
        &[
            "query",
            "SELECT count(*) AS n FROM messages",
            "--format",
            "json",
        ],
        &data,
    ));
    assert_eq!(count, json!([{"n": 1}]));
}

#[test]
fn settings_file_env_and_flags_in_order() {
    let dir = Dir::new("config");
    let data = dir.data();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("spoor.toml"),
        "listen = \"127.0.0.1:0\"\nlisten_port = 9\n",
    )
    .unwrap();
    let output = spoor()
        .args(["serve", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_port"), "{stderr}");

    // The file's bad value loses to the environment's good one, which loses to a bad flag.
    std::fs::write(data.join("spoor.toml"), "dedupe_window = \"forever\"\n").unwrap();
    let output = spoor()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dedupe-window",
            "soon",
            "--data",
        ])
        .arg(&data)
        .env("SPOOR_DEDUPE_WINDOW", "1h")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--dedupe-window: \"soon\""));
    let output = spoor()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("SPOOR_DEDUPE_WINDOW", "later")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"later\""));
    let served = Served::start_env(&data, &[], &[("SPOOR_DEDUPE_WINDOW", "1h")]);
    assert!(served.url.starts_with("http://127.0.0.1:"));
    assert_eq!(served.terminate().code(), Some(0));
}
