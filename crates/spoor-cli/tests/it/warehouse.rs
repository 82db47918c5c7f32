//! End-to-end tests of the warehouse: messages sent over HTTP to a real `spoor serve` appear
//! in `spoor report`, `spoor profile`, `spoor query` and the Profile API, on SQLite and on
//! PostgreSQL; `spoor warehouse rebuild` gives the same answers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::connector_util::{TempDir, spoor_bin};
use crate::util::read_announcement;

/// A running `spoor serve` with extra flags.
struct Serve {
    child: Child,
    url: String,
    write_key: String,
    token: String,
    data: TempDir,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        Serve::start_in(TempDir::new("warehouse"), extra)
    }

    /// Starts `spoor serve` on a data directory prepared by the test.
    fn start_in(data: TempDir, extra: &[&str]) -> Serve {
        let mut child = Command::new(spoor_bin())
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(extra)
            .env_remove("SPOOR_WAREHOUSE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn spoor serve");
        let announced = read_announcement(child.stdout.take().expect("stdout"));
        Serve {
            child,
            url: announced.url,
            write_key: announced.write_key,
            token: announced.token,
            data,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs spoor; returns (exit code, stdout, stderr).
fn spoor(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(spoor_bin())
        .args(args)
        .env_remove("SPOOR_WAREHOUSE")
        .env_remove("SPOOR_DATA")
        .output()
        .expect("run spoor");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn spoor_json(args: &[&str]) -> Value {
    let (code, out, err) = spoor(args);
    assert_eq!(code, 0, "spoor {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The batch every test sends: an anonymous visitor who signs up and buys twice.
fn batch() -> Value {
    json!({"batch": [
        {"type": "page", "anonymousId": "anon-1", "name": "Home", "properties": {"path": "/"},
         "timestamp": "2024-05-06T10:00:00Z"},
        {"type": "track", "anonymousId": "anon-1", "event": "Product Viewed",
         "properties": {"product_id": "p1", "price": 19.99}, "timestamp": "2024-05-06T10:01:00Z"},
        {"type": "identify", "anonymousId": "anon-1", "userId": "user-1",
         "traits": {"email": "ada@example.com", "plan": "pro", "address": {"city": "London"}},
         "timestamp": "2024-05-06T10:02:00Z"},
        {"type": "track", "userId": "user-1", "event": "Order Completed",
         "properties": {"order_id": "o1", "revenue": 0.1}, "timestamp": "2024-05-06T10:03:00Z"},
        {"type": "track", "userId": "user-1", "event": "Order Completed",
         "properties": {"order_id": "o2", "revenue": 0.2}, "timestamp": "2024-05-06T10:04:00Z"},
        {"type": "group", "userId": "user-1", "groupId": "acme", "traits": {"name": "Acme"},
         "timestamp": "2024-05-06T10:05:00Z"}
    ]})
}

async fn send(serve: &Serve) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/batch", serve.url))
        .basic_auth(&serve.write_key, Some(""))
        .json(&batch())
        .send()
        .await
        .expect("send batch");
    assert_eq!(response.status(), 200);
}

/// Polls `report revenue` until the two orders are loaded; returns how long it took.
fn wait_for_revenue(location: &[&str]) -> Duration {
    let started = Instant::now();
    let mut args = vec!["report", "revenue", "--format", "json"];
    args.extend_from_slice(location);
    loop {
        let (code, out, _) = spoor(&args);
        if code == 0 && out.contains("0.3") {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the orders never reached the warehouse: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn with<'a>(args: &[&'a str], location: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend_from_slice(location);
    all
}

fn check_answers(location: &[&str]) {
    let with = |args: &[&'static str]| with(args, location);
    let revenue = spoor_json(&with(&["report", "revenue", "--format", "json"]));
    assert_eq!(
        revenue,
        json!([{"day": "2024-05-06", "currency": "USD", "revenue": 0.3, "orders": 2}])
    );
    let funnel = spoor_json(&with(&[
        "report",
        "funnel",
        "--step",
        "Product Viewed",
        "--step",
        "Order Completed",
        "--format",
        "json",
    ]));
    assert_eq!(
        funnel,
        json!([
            {"step": 1, "event": "Product Viewed", "users": 1},
            {"step": 2, "event": "Order Completed", "users": 1}
        ])
    );
    // The anonymous id and the user id are one profile, with the events before sign-up.
    let profile = spoor_json(&with(&["profile", "anon-1", "--json"]));
    assert_eq!(profile["traits"]["plan"], "pro");
    assert_eq!(profile["traits"]["address"], json!({"city": "London"}));
    let ids: Vec<&str> = profile["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, ["anon-1", "user-1"]);
    assert_eq!(profile["events"].as_array().map(Vec::len), Some(6));
    assert_eq!(profile["groups"][0]["group_id"], "acme");
    let (code, table, _) = spoor(&with(&["profile", "user-1"]));
    assert_eq!(code, 0);
    assert!(table.contains("ada@example.com") && table.contains("Product Viewed"));
    // Bad input and unknown profiles get their exit codes.
    let (code, _, err) = spoor(&with(&["report", "funnel", "--step", "A"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = spoor(&with(&["report", "events", "--since", "yesterday"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since"), "{err}");
    let (code, _, _) = spoor(&with(&["profile", "nobody"]));
    assert_eq!(code, 4);
}

#[tokio::test]
async fn warehouse_serve_loads_sqlite_and_reports_profiles_query_and_rebuild_agree() {
    let mut serve = Serve::start(&[]);
    send(&serve).await;
    let data = serve.data.path().display().to_string();
    let location = ["--data", data.as_str()];
    let waited = wait_for_revenue(&location);
    println!("first answer after {waited:?}");
    check_answers(&location);

    // `spoor query` sees the warehouse tables and the exact sum function.
    let rows = spoor_json(&[
        "query",
        "SELECT decimal_sum(revenue) AS total, count(*) AS orders FROM order_completed",
        "--format",
        "json",
        "--data",
        &data,
    ]);
    assert_eq!(rows, json!([{"total": "0.3", "orders": 2}]));

    // The Profile API, with the Public API's bearer auth.
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", serve.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = get("/api/profiles/user_id:user-1/traits", None)
        .await
        .expect("get");
    assert_eq!(response.status(), 401);
    let token = serve.token.clone();
    let response = get("/api/profiles/user_id:user-1/traits", Some(&token))
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["traits"]["email"], "ada@example.com");
    assert_eq!(body["cursor"]["has_more"], false);
    let response = get(
        "/api/profiles/anonymous_id:anon-1/events?limit=2",
        Some(&token),
    )
    .await
    .expect("get");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["data"][0]["type"], "group");
    assert_eq!(body["cursor"]["has_more"], true);
    let next = body["cursor"]["next"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let response = get(
        &format!("/api/profiles/anonymous_id:anon-1/events?limit=10&next={next}"),
        Some(&token),
    )
    .await
    .expect("get");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(4));
    assert_eq!(body["data"][3]["type"], "page");
    let response = get("/api/profiles/user_id:nobody/traits", Some(&token))
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    let response = get("/api/profiles/email:x/traits", Some(&token))
        .await
        .expect("get");
    assert_eq!(response.status(), 400);

    // A rebuild from the log, with the collector stopped, answers the same.
    serve.stop();
    let before = spoor(&["report", "retention", "--data", &data]).1;
    let (code, _, err) = spoor(&["warehouse", "rebuild", "--data", &data]);
    assert_eq!(code, 0, "{err}");
    check_answers(&location);
    assert_eq!(spoor(&["report", "retention", "--data", &data]).1, before);
}

#[tokio::test]
async fn warehouse_serve_loads_postgres_and_reports_profiles_and_query_agree() {
    let Ok(base) = std::env::var("SPOOR_TEST_POSTGRES_URL") else {
        println!("skipped: SPOOR_TEST_POSTGRES_URL not set");
        return;
    };
    let schema = format!(
        "spoor_test_e2e_{}_{}",
        std::process::id(),
        Instant::now().elapsed().subsec_nanos()
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    let serve = Serve::start(&["--warehouse", &url]);
    send(&serve).await;
    let location = ["--warehouse", url.as_str()];
    wait_for_revenue(&location);
    check_answers(&location);
    let rows = spoor_json(&[
        "query",
        "SELECT sum(revenue) AS total FROM order_completed",
        "--format",
        "json",
        "--warehouse",
        &url,
    ]);
    assert_eq!(rows, json!([{"total": "0.3"}]));
    let (code, _, err) = spoor(&["query", "DELETE FROM tracks", "--warehouse", &url]);
    assert_eq!(code, 2, "writes are refused: {err}");
    drop(serve);
    if let Ok(store) = spoor_warehouse::postgres::PgStore::connect(&url).await {
        let _ = store.drop_schema().await;
    }
}

/// The collector does not wait for its warehouse: with a warehouse that cannot be opened (its
/// bookkeeping damaged), `spoor serve` listens, takes messages into the log, and keeps
/// trying; once the warehouse is repaired the loader opens it and loads what was sent.
#[tokio::test]
async fn serve_takes_messages_while_its_warehouse_cannot_be_opened() {
    use spoor_warehouse::Store;
    let data = TempDir::new("warehouse-damaged");
    let path = data.path().join("warehouse.db");
    let mut damaged =
        spoor_warehouse::sqlite::SqliteStore::open(&path).expect("create warehouse.db");
    damaged
        .execute(
            "CREATE TABLE warehouse_state (key TEXT PRIMARY KEY, value TEXT);\n\
             INSERT INTO warehouse_state VALUES ('checkpoint', 'not a number')",
        )
        .await
        .expect("damage the checkpoint");
    let serve = Serve::start_in(data, &[]);
    send(&serve).await;
    let dir = serve.data.path().display().to_string();
    let rows = spoor_json(&[
        "query",
        "SELECT count(*) AS n FROM messages",
        "--format",
        "json",
        "--data",
        &dir,
    ]);
    assert_eq!(rows, json!([{"n": 6}]), "the log has every message");
    // Nothing reaches the warehouse meanwhile (its checkpoint still reads as damaged).
    std::thread::sleep(Duration::from_millis(1500));
    let (_, revenue, _) = spoor(&["report", "revenue", "--format", "json", "--data", &dir]);
    assert!(
        !revenue.contains("0.3"),
        "loaded before the repair: {revenue}"
    );

    damaged
        .execute("UPDATE warehouse_state SET value = '0' WHERE key = 'checkpoint'")
        .await
        .expect("repair the checkpoint");
    let waited = wait_for_revenue(&["--data", dir.as_str()]);
    println!("loaded {waited:?} after the repair");
}

/// The `nice` value and name of every thread of process `pid`.
fn thread_priorities(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc") {
        let task = task.expect("task").path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) start after the last ')':
        // state is field 3, nice is field 19.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let nice = rest
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .unwrap_or(i64::MIN);
        threads.push((name.trim().to_owned(), nice));
    }
    threads
}

#[tokio::test]
async fn the_loader_runs_at_a_lower_priority_than_the_collector() {
    let serve = Serve::start(&[]);
    send(&serve).await;
    wait_for_revenue(&["--data", &serve.data.path().display().to_string()]);
    let threads = thread_priorities(serve.child.id());
    let loader: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name == "spoor-loader")
        .collect();
    assert!(!loader.is_empty(), "no loader threads in {threads:?}");
    assert!(
        loader.iter().all(|(_, nice)| *nice == 10),
        "loader threads not at nice 10: {threads:?}"
    );
    let collector: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("tokio-rt") || name.starts_with("spoor-log"))
        .collect();
    assert!(!collector.is_empty(), "no collector threads in {threads:?}");
    assert!(
        collector.iter().all(|(_, nice)| *nice == 0),
        "collector threads not at nice 0: {threads:?}"
    );
}
