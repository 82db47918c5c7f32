//! The official Segment server libraries, unchanged, against a real `spoor serve`:
//! segment-analytics-python (plain and gzip) and @segment/analytics-node. Every call type
//! arrives with its fields intact, 1,000 events arrive exactly once, and a wrong write key is
//! reported by the library as an error instead of being retried forever.
//!
//! The libraries are installed by `.ci/run`; these tests skip themselves without
//! `SPOOR_TEST_PYTHON` (the venv's python) or `SPOOR_TEST_NODE_MODULES`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{
    Server, TestDir, env_or_skip, last_json_line, query, query_count, repo_root, run_with_timeout,
    wait_for_count,
};

/// How long a driver script may run before the test calls it hung.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(90);
/// How long a library may take to give up on a refused write key.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);

/// One of the official libraries, with the command that runs its driver script.
enum Library {
    Python(String),
    Node,
}

impl Library {
    fn python() -> Option<Self> {
        env_or_skip("SPOOR_TEST_PYTHON").map(Library::Python)
    }

    fn node() -> Option<Self> {
        env_or_skip("SPOOR_TEST_NODE_MODULES").map(|_| Library::Node)
    }

    /// The name the library puts in `context.library.name`.
    fn library_name(&self) -> &'static str {
        match self {
            Library::Python(_) => "analytics-python",
            Library::Node => "@segment/analytics-node",
        }
    }

    /// The driver script in `mode` against `server`, with extra arguments.
    fn command(&self, mode: &str, server: &Server, write_key: &str, extra: &[&str]) -> Command {
        let mut command = match self {
            Library::Python(python) => {
                let mut command = Command::new(python);
                command.arg(repo_root().join("tests/py/send_segment.py"));
                command
            }
            Library::Node => {
                let mut command = Command::new("node");
                command.arg(repo_root().join("tests/js/send_segment.mjs"));
                command
            }
        };
        command
            .arg(mode)
            .arg("--host")
            .arg(server.url())
            .arg("--write-key")
            .arg(write_key)
            .args(extra);
        command
    }

    /// Runs the driver script and returns the errors the library reported.
    fn run(&self, mode: &str, server: &Server, write_key: &str, extra: &[&str]) -> Vec<Value> {
        let (output, _) = run_with_timeout(
            &mut self.command(mode, server, write_key, extra),
            SCRIPT_DEADLINE,
        );
        assert!(
            output.status.success(),
            "{mode} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        last_json_line(&output)["errors"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn python_library_delivers_every_call_type_intact_plain_and_gzip() {
    let Some(library) = Library::python() else {
        return;
    };
    let data = TestDir::new("py-types");
    let server = Server::start(data.path());
    for (prefix, extra) in [("py", &[][..]), ("pygz", &["--gzip"][..])] {
        let errors = library.run(
            "all-types",
            &server,
            &server.write_key,
            &["--prefix", prefix]
                .into_iter()
                .chain(extra.iter().copied())
                .collect::<Vec<_>>(),
        );
        assert!(
            errors.is_empty(),
            "{prefix}: the library reported {errors:?}"
        );
        check_every_call_type(data.path(), prefix, library.library_name());
    }
}

#[test]
fn node_library_delivers_every_call_type_intact() {
    let Some(library) = Library::node() else {
        return;
    };
    let data = TestDir::new("node-types");
    let server = Server::start(data.path());
    let errors = library.run(
        "all-types",
        &server,
        &server.write_key,
        &["--prefix", "node"],
    );
    assert!(errors.is_empty(), "the library reported {errors:?}");
    check_every_call_type(data.path(), "node", library.library_name());
}

#[test]
fn python_library_sends_1000_events_exactly_once() {
    let Some(library) = Library::python() else {
        return;
    };
    check_thousand_events(&library, "py1k");
}

#[test]
fn node_library_sends_1000_events_exactly_once() {
    let Some(library) = Library::node() else {
        return;
    };
    check_thousand_events(&library, "node1k");
}

#[test]
fn python_library_reports_a_wrong_write_key_and_gives_up() {
    let Some(library) = Library::python() else {
        return;
    };
    check_refused_key(&library, "pybad");
}

#[test]
fn node_library_reports_a_wrong_write_key_and_gives_up() {
    let Some(library) = Library::node() else {
        return;
    };
    check_refused_key(&library, "nodebad");
}

fn check_thousand_events(library: &Library, prefix: &str) {
    let data = TestDir::new(prefix);
    let server = Server::start(data.path());
    let errors = library.run(
        "many",
        &server,
        &server.write_key,
        &["--prefix", prefix, "--count", "1000"],
    );
    assert!(errors.is_empty(), "the library reported {errors:?}");
    let like = format!("message_id LIKE '{prefix}-%'");
    let total = wait_for_count(
        data.path(),
        &format!("SELECT count(*) AS n FROM messages WHERE {like}"),
        1000,
        Duration::from_secs(5),
    );
    assert_eq!(total, 1000, "{}", server.printed());
    let distinct = query_count(
        data.path(),
        &format!("SELECT count(DISTINCT message_id) AS n FROM messages WHERE {like}"),
    );
    assert_eq!(distinct, 1000);
    let tracks = query_count(
        data.path(),
        &format!(
            "SELECT count(*) AS n FROM messages WHERE {like} AND type = 'track' \
             AND event = 'Item Viewed' AND user_id LIKE 'user-%'"
        ),
    );
    assert_eq!(tracks, 1000);
}

fn check_refused_key(library: &Library, prefix: &str) {
    let data = TestDir::new(prefix);
    let server = Server::start(data.path());
    let wrong_key = "wrongwrongwrongwrongwrong1";
    let (output, elapsed) = run_with_timeout(
        &mut library.command("bad-key", &server, wrong_key, &["--prefix", prefix]),
        SCRIPT_DEADLINE,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        elapsed < REFUSAL_DEADLINE,
        "the library took {elapsed:?} to give up on a refused key"
    );
    let errors = last_json_line(&output)["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !errors.is_empty(),
        "the library reported no error for a 401"
    );
    for error in &errors {
        let says_401 = error["status"] == 401 || error["message"].to_string().contains("401");
        assert!(says_401, "expected a 401 error, got {error}");
    }
    let stored = query_count(
        data.path(),
        &format!("SELECT count(*) AS n FROM messages WHERE message_id LIKE '{prefix}-%'"),
    );
    assert_eq!(stored, 0, "messages with a wrong key were stored");
}

/// Checks the six messages `all-types` sent with ids `PREFIX-identify`, `PREFIX-track`, ...
fn check_every_call_type(data: &Path, prefix: &str, library_name: &str) {
    let count_sql =
        format!("SELECT count(*) AS n FROM messages WHERE message_id LIKE '{prefix}-%'");
    assert_eq!(
        wait_for_count(data, &count_sql, 6, Duration::from_secs(5)),
        6
    );
    let rows = query(
        data,
        &format!(
            "SELECT source_id, message_id, type, user_id, anonymous_id, event, timestamp, \
             received_at, body FROM messages WHERE message_id LIKE '{prefix}-%'"
        ),
    );
    let row = |kind: &str| -> (&serde_json::Map<String, Value>, Value) {
        let id = format!("{prefix}-{kind}");
        let row = rows
            .iter()
            .find(|row| row["message_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no message {id} in {rows:?}"));
        let body = match &row["body"] {
            Value::String(text) => serde_json::from_str(text).expect("body is JSON"),
            other => other.clone(),
        };
        assert_eq!(body["messageId"], id.as_str(), "body of {id}");
        assert_eq!(body["type"], row["type"], "body of {id}");
        assert_eq!(
            body["context"]["library"]["name"], library_name,
            "context.library of {id}"
        );
        (row, body)
    };

    let source = rows[0]["source_id"].clone();
    for row in &rows {
        assert!(source.as_str().is_some_and(|s| !s.is_empty()), "{row:?}");
        assert_eq!(row["source_id"], source, "all came from one source");
        for column in ["timestamp", "received_at"] {
            assert!(
                row[column].as_str().is_some_and(|s| s.contains('T')),
                "{column} of {row:?}"
            );
        }
    }

    let (identify, body) = row("identify");
    assert_eq!(identify["type"], "identify");
    assert_eq!(identify["user_id"], "user-42");
    assert_eq!(body["traits"]["email"], "ada@example.com");
    assert_eq!(body["traits"]["name"], "Ada Lovelace");
    assert_eq!(body["traits"]["age"], 36);

    let (track, body) = row("track");
    assert_eq!(track["type"], "track");
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["user_id"], "user-42");
    assert_eq!(body["event"], "Order Completed");
    assert_eq!(body["properties"]["revenue"].to_string(), "19.99");
    assert_eq!(body["properties"]["currency"], "EUR");
    assert_eq!(body["properties"]["items"][0]["sku"], "s-1");

    let (page, body) = row("page");
    assert_eq!(page["type"], "page");
    assert_eq!(page["user_id"], "user-42");
    assert_eq!(body["name"], "Getting Started");
    assert_eq!(body["properties"]["title"], "Getting Started");
    assert_eq!(body["properties"]["url"], "https://example.com/docs");

    let (screen, body) = row("screen");
    assert_eq!(screen["type"], "screen");
    assert_eq!(screen["anonymous_id"], "anon-7");
    assert!(screen["user_id"].is_null(), "{screen:?}");
    assert_eq!(body["name"], "Home");
    assert_eq!(body["properties"]["variant"], "b");

    let (group, body) = row("group");
    assert_eq!(group["type"], "group");
    assert_eq!(group["user_id"], "user-42");
    assert_eq!(body["groupId"], "org-9");
    assert_eq!(body["traits"]["name"], "Analytical Engines Ltd");
    assert_eq!(body["traits"]["employees"], 12);

    let (alias, body) = row("alias");
    assert_eq!(alias["type"], "alias");
    assert_eq!(alias["user_id"], "user-42");
    assert_eq!(body["previousId"], "anon-7");
}
