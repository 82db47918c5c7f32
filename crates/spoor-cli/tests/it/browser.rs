//! analytics.js (`@segment/analytics-next`) in headless Chromium against a real `spoor serve`:
//! the page lives on another origin, loads the library's UMD bundle, fetches its settings from
//! the collector (`cdnURL`), and sends page, track and identify calls (`apiHost`) as
//! `text/plain` with Basic auth, so CORS preflights and the browser's short paths are exercised.
//!
//! Chromium comes from Debian and the npm packages from `tests/js` (both installed by `.ci/run`);
//! the test skips itself without `SPOOR_TEST_CHROMIUM` or `SPOOR_TEST_NODE_MODULES`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{
    Server, TestDir, env_or_skip, last_json_line, query, repo_root, run_with_timeout,
    wait_for_count,
};

#[test]
fn analytics_next_in_chromium_delivers_page_track_and_identify() {
    let Some(chromium) = env_or_skip("SPOOR_TEST_CHROMIUM") else {
        return;
    };
    let Some(_node_modules) = env_or_skip("SPOOR_TEST_NODE_MODULES") else {
        return;
    };
    let data = TestDir::new("browser");
    let server = Server::start(data.path());

    let (output, _) = run_with_timeout(
        Command::new("node")
            .arg(repo_root().join("tests/js/browser.mjs"))
            .arg("--collector")
            .arg(server.url())
            .arg("--write-key")
            .arg(&server.write_key)
            .arg("--chromium")
            .arg(&chromium),
        Duration::from_secs(120),
    );
    let result = last_json_line(&output);
    assert!(
        output.status.success() && result.get("fatal").is_none(),
        "the browser run failed: {result}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.printed()
    );
    let errors = result["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.is_empty(), "the page reported errors: {errors:?}");

    let responses = result["responses"].as_array().cloned().unwrap_or_default();
    let settings_url = format!("{}/v1/projects/{}/settings", server.url(), server.write_key);
    assert!(
        responses.iter().any(|r| r["method"] == "GET"
            && r["url"] == settings_url.as_str()
            && r["status"] == 200),
        "analytics.js did not load its settings from the collector: {responses:?}"
    );
    for short_path in ["/v1/p", "/v1/t", "/v1/i"] {
        let url = format!("{}{short_path}", server.url());
        assert!(
            responses
                .iter()
                .any(|r| r["method"] == "POST" && r["url"] == url.as_str() && r["status"] == 200),
            "no 200 for POST {short_path}: {responses:?}"
        );
    }

    let ids = &result["ids"];
    let id_list = ["page", "track", "identify"]
        .iter()
        .map(|kind| format!("'{}'", ids[kind].as_str().expect("a message id")))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        wait_for_count(
            data.path(),
            &format!("SELECT count(*) AS n FROM messages WHERE message_id IN ({id_list})"),
            3,
            Duration::from_secs(5),
        ),
        3
    );
    let rows = query(
        data.path(),
        &format!(
            "SELECT message_id, type, user_id, anonymous_id, event, timestamp, received_at, body \
             FROM messages WHERE message_id IN ({id_list})"
        ),
    );
    let row = |kind: &str| {
        let row = rows
            .iter()
            .find(|row| row["message_id"] == ids[kind])
            .unwrap_or_else(|| panic!("no {kind} message in {rows:?}"));
        let body: Value = match &row["body"] {
            Value::String(text) => serde_json::from_str(text).expect("body is JSON"),
            other => other.clone(),
        };
        assert_eq!(row["type"], kind);
        assert_eq!(row["anonymous_id"], result["anonymousId"], "{kind}");
        assert_eq!(body["context"]["library"]["name"], "analytics.js", "{kind}");
        assert_eq!(body["context"]["page"]["url"], result["pageUrl"], "{kind}");
        assert_eq!(body["context"]["userAgent"], result["userAgent"], "{kind}");
        assert_eq!(
            body["context"]["ip"], "127.0.0.1",
            "{kind}: context.ip from the peer"
        );
        assert!(
            body.get("writeKey").is_none(),
            "{kind}: the write key is not stored"
        );
        (row.clone(), body)
    };

    let (page, body) = row("page");
    assert!(page["user_id"].is_null(), "{page:?}");
    assert_eq!(body["name"], "Checkout");
    assert_eq!(body["category"], "Shop");
    assert_eq!(body["properties"]["step"], 2);

    let (track, body) = row("track");
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(body["properties"]["revenue"].to_string(), "19.99");
    assert_eq!(body["properties"]["order_id"], "o-77");

    let (identify, body) = row("identify");
    assert_eq!(identify["user_id"], "user-42");
    assert_eq!(body["traits"]["email"], "ada@example.com");
    assert_eq!(body["traits"]["plan"], "pro");
}
