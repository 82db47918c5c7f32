//! The connector against a real `spoor serve`: every module and flag lands with the right
//! fields, the help page's /v1/group API call, connections against the collector's Public
//! API, and batch.

use serde_json::{Value, json};

use crate::connector_util::{Collector, TempDir, run_spoor, run_spoor_stdin};

/// Environment that points the connector at `collector`.
fn env(collector: &Collector) -> [(&'static str, &str); 2] {
    [
        ("SPOOR_ENDPOINT", collector.url.as_str()),
        ("SPOOR_WRITE_KEY", collector.write_key.as_str()),
    ]
}

#[test]
fn connector_every_module_and_flag_lands_with_its_fields() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    let env = env(&collector);
    let send = |args: &[&str]| {
        let run = run_spoor(config.path(), &env, args);
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        run
    };

    send(&[
        "identify",
        "--user-id",
        "u1",
        "--anonymous-id",
        "a1",
        "--message-id",
        "m-identify",
        "--timestamp",
        "2024-05-01T12:00:00.123Z",
        "--email",
        "ada@example.com",
        "--first-name",
        "Ada",
        "--last-name",
        "Lovelace",
        "--age",
        "36",
        "--avatar",
        "https://x.io/a.png",
        "--birthday",
        "1815-12-10",
        "--created-at",
        "2024-01-02T03:04:05Z",
        "--description",
        "mathematician",
        "--gender",
        "female",
        "--id",
        "db-1",
        "--phone",
        "+44 1",
        "--title",
        "Countess",
        "--username",
        "ada",
        "--website",
        "https://ada.dev",
        "--address-street",
        "1 St James's Sq",
        "--address-city",
        "London",
        "--address-state",
        "LND",
        "--address-postal-code",
        "SW1",
        "--address-country",
        "UK",
        "--company-name",
        "Analytical",
        "--company-id",
        "c-9",
        "--company-industry",
        "Computing",
        "--company-employee-count",
        "2",
        "--company-plan",
        "enterprise",
        "--trait",
        "plan_tier=gold",
        "--trait",
        "seats:=12",
        "--trait",
        "beta:=true",
        "--trait",
        "tags:=[\"a\",\"b\"]",
        "--context",
        "ip=10.0.0.1",
        "--context",
        "page.url=https://x.io/p",
        "--integration",
        "All=false",
        "--integration",
        "Mixpanel=true",
    ]);
    let row = collector.message("m-identify");
    assert_eq!(
        (
            row["type"].as_str(),
            row["user_id"].as_str(),
            row["anonymous_id"].as_str()
        ),
        (Some("identify"), Some("u1"), Some("a1"))
    );
    let body = &row["body"];
    let traits = &body["traits"];
    assert_eq!(
        traits["name"], "Ada Lovelace",
        "name filled from first and last name"
    );
    for (key, value) in [
        ("email", json!("ada@example.com")),
        ("firstName", json!("Ada")),
        ("lastName", json!("Lovelace")),
        ("age", json!(36)),
        ("avatar", json!("https://x.io/a.png")),
        ("birthday", json!("1815-12-10")),
        ("createdAt", json!("2024-01-02T03:04:05Z")),
        ("description", json!("mathematician")),
        ("gender", json!("female")),
        ("id", json!("db-1")),
        ("phone", json!("+44 1")),
        ("title", json!("Countess")),
        ("username", json!("ada")),
        ("website", json!("https://ada.dev")),
        ("plan_tier", json!("gold")),
        ("seats", json!(12)),
        ("beta", json!(true)),
        ("tags", json!(["a", "b"])),
    ] {
        assert_eq!(traits[key], value, "traits.{key}");
    }
    assert_eq!(
        traits["address"],
        json!({"street": "1 St James's Sq", "city": "London", "state": "LND", "postalCode": "SW1", "country": "UK"})
    );
    assert_eq!(
        traits["company"],
        json!({"name": "Analytical", "id": "c-9", "industry": "Computing", "employee_count": 2, "plan": "enterprise"})
    );
    assert_eq!(body["context"]["ip"], "10.0.0.1");
    assert_eq!(body["context"]["page"]["url"], "https://x.io/p");
    assert_eq!(body["context"]["library"]["name"], "spoor");
    assert_eq!(
        body["integrations"],
        json!({"All": false, "Mixpanel": true})
    );
    assert!(
        body["originalTimestamp"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2024-05-01T12:00:00.123")
            || body["timestamp"]
                .as_str()
                .unwrap_or_default()
                .starts_with("2024-05-01T12:00:00.123"),
        "{body}"
    );

    send(&[
        "track",
        "--user-id",
        "u1",
        "--event",
        "Order Completed",
        "--message-id",
        "m-track",
        "--revenue",
        "19.99",
        "--currency",
        "EUR",
        "--value",
        "0.10",
        "--property",
        "sku=A-1",
        "--property",
        "qty:=3",
        "--property",
        "price:=0.30",
    ]);
    let row = collector.message("m-track");
    assert_eq!(row["event"], "Order Completed");
    let text = row["body_text"].as_str().expect("body text");
    assert!(
        text.contains(r#""revenue":19.99"#),
        "revenue kept exact: {text}"
    );
    assert!(
        text.contains(r#""value":0.10"#) || text.contains(r#""value":0.1"#),
        "{text}"
    );
    assert!(
        text.contains(r#""price":0.30"#) || text.contains(r#""price":0.3"#),
        "{text}"
    );
    let props = &row["body"]["properties"];
    assert_eq!(
        (
            props["currency"].as_str(),
            props["sku"].as_str(),
            props["qty"].as_i64()
        ),
        (Some("EUR"), Some("A-1"), Some(3))
    );

    send(&[
        "page",
        "--anonymous-id",
        "a2",
        "--message-id",
        "m-page",
        "--name",
        "Pricing",
        "--category",
        "Docs",
        "--url",
        "https://x.io/pricing",
        "--path",
        "/pricing",
        "--title",
        "Pricing | X",
        "--referrer",
        "https://google.com",
        "--search",
        "?q=1",
        "--property",
        "variant=b",
    ]);
    let body = &collector.message("m-page")["body"];
    assert_eq!(
        (
            body["type"].as_str(),
            body["name"].as_str(),
            body["category"].as_str()
        ),
        (Some("page"), Some("Pricing"), Some("Docs"))
    );
    assert_eq!(body["properties"]["url"], "https://x.io/pricing");
    assert_eq!(body["properties"]["path"], "/pricing");
    assert_eq!(body["properties"]["title"], "Pricing | X");
    assert_eq!(body["properties"]["referrer"], "https://google.com");
    assert_eq!(body["properties"]["search"], "?q=1");
    assert_eq!(body["properties"]["variant"], "b");

    send(&[
        "screen",
        "--user-id",
        "u3",
        "--message-id",
        "m-screen",
        "--name",
        "Home",
        "--category",
        "Main",
        "--property",
        "tab:=2",
    ]);
    let body = &collector.message("m-screen")["body"];
    assert_eq!(
        (
            body["type"].as_str(),
            body["name"].as_str(),
            body["properties"]["tab"].as_i64()
        ),
        (Some("screen"), Some("Home"), Some(2))
    );

    send(&[
        "group",
        "--user-id",
        "u1",
        "--group-id",
        "acme",
        "--message-id",
        "m-group",
        "--name",
        "Acme Inc",
        "--email",
        "ops@acme.io",
        "--industry",
        "Tools",
        "--employees",
        "120",
        "--plan",
        "pro",
        "--website",
        "https://acme.io",
        "--phone",
        "+1 2",
        "--description",
        "anvils",
        "--avatar",
        "https://acme.io/a.png",
        "--created-at",
        "2020-01-01T00:00:00Z",
        "--trait",
        "region=emea",
    ]);
    let body = &collector.message("m-group")["body"];
    assert_eq!(body["groupId"], "acme");
    assert_eq!(
        body["traits"],
        json!({
            "name": "Acme Inc", "email": "ops@acme.io", "industry": "Tools", "plan": "pro", "website": "https://acme.io",
            "phone": "+1 2", "description": "anvils", "avatar": "https://acme.io/a.png", "employees": 120,
            "createdAt": "2020-01-01T00:00:00Z", "region": "emea",
        })
    );

    send(&[
        "alias",
        "--previous-id",
        "a2",
        "--user-id",
        "u1",
        "--message-id",
        "m-alias",
    ]);
    let row = collector.message("m-alias");
    assert_eq!(
        (row["body"]["previousId"].as_str(), row["user_id"].as_str()),
        (Some("a2"), Some("u1"))
    );
}

#[test]
fn connector_json_output_shows_what_was_sent_and_what_came_back() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    let run = run_spoor(
        config.path(),
        &env(&collector),
        &["track", "--json", "--user-id", "u", "--event", "Ping"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.json();
    assert_eq!(out["sent"]["event"], "Ping");
    assert_eq!(out["response"]["status"], 200);
    assert_eq!(out["outcome"], "delivered");
    let id = out["sent"]["messageId"].as_str().expect("messageId");
    assert_eq!(id.len(), 36, "a UUID v4");
    collector.message(id);

    let human = run_spoor(
        config.path(),
        &env(&collector),
        &["track", "--user-id", "u", "--event", "Ping"],
    );
    assert_eq!(
        human.stdout.lines().count(),
        1,
        "one line: {}",
        human.stdout
    );
    assert!(human.stdout.contains("delivered"), "{}", human.stdout);
}

#[test]
fn connector_message_id_makes_a_repeated_command_idempotent() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    for _ in 0..2 {
        let run = run_spoor(
            config.path(),
            &env(&collector),
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "Once",
                "--message-id",
                "fixed-1",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    collector.message("fixed-1");
}

#[test]
fn connector_dry_run_sends_nothing() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    let run = run_spoor(
        config.path(),
        &env(&collector),
        &[
            "--json",
            "identify",
            "--user-id",
            "u",
            "--dry-run",
            "--message-id",
            "dry-1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["sent"]["messageId"], "dry-1");
    assert!(
        collector
            .query("SELECT message_id FROM messages WHERE message_id = 'dry-1'")
            .is_empty()
    );
}

#[test]
fn connector_api_call_from_the_help_page_works_as_written() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    let body = r#"{"userId": "user id of the user you want to associate to group", "groupId": "target group id", "messageId": "m-api-group"}"#;
    let run = run_spoor(
        config.path(),
        &env(&collector),
        &[
            "api",
            "POST",
            // As the help page writes it, trailing slash included.
            "/v1/group/",
            "--header",
            "Content-Type: application/json",
            "--body",
            body,
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let bundle = run.json();
    assert_eq!(bundle["status"], 200);
    assert_eq!(
        bundle["body"]["success"], true,
        "bundle > body shows success: true"
    );
    assert!(bundle["headers"].is_object());
    let row = collector.message("m-api-group");
    assert_eq!(row["type"], "group");
    assert_eq!(row["body"]["groupId"], "target group id");

    // The caller's own Authorization header is used as given.
    let auth = format!(
        "Basic {}",
        base64_encode(&format!("{}:", collector.write_key))
    );
    let run = run_spoor(
        config.path(),
        &[("SPOOR_ENDPOINT", collector.url.as_str())],
        &[
            "--json",
            "api",
            "post",
            "/v1/track",
            "--header",
            &format!("Authorization: {auth}"),
            "--query",
            "x=1",
            "--body",
            "-",
        ],
    );
    assert_eq!(
        run.code, 2,
        "no stdin body given is invalid JSON: {}",
        run.stderr
    );
    let run = run_spoor_stdin(
        config.path(),
        &[("SPOOR_ENDPOINT", collector.url.as_str())],
        &[
            "--json",
            "api",
            "POST",
            "/v1/track",
            "--header",
            &format!("Authorization: {auth}"),
            "--body",
            "-",
        ],
        Some(r#"{"userId":"u","event":"From Stdin","messageId":"m-api-stdin"}"#),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    collector.message("m-api-stdin");

    // A status of 400 or more exits 3 and still prints the bundle.
    let run = run_spoor(
        config.path(),
        &env(&collector),
        &["--json", "api", "GET", "/v1/no-such-endpoint"],
    );
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(run.json()["status"].as_u64().is_some_and(|s| s >= 400));
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn connector_connect_checks_the_collector_api_and_stores_a_private_file() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    let api = format!("{}/api", collector.url);
    let run = run_spoor(
        config.path(),
        &[],
        &[
            "connect",
            "local",
            "--endpoint",
            &collector.url,
            "--api-base",
            &api,
            "--token",
            &collector.token,
            "--write-key",
            &collector.write_key,
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("workspace"), "{}", run.stdout);
    assert!(run.stdout.contains("default connection"), "{}", run.stdout);
    assert!(
        run.stderr.is_empty(),
        "the key matched the source `default`: {}",
        run.stderr
    );

    let file = config.path().join("spoor").join("connections.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "connections file mode {mode:o}");

    let list = run_spoor(config.path(), &[], &["connections", "list", "--json"]);
    assert_eq!(list.code, 0);
    let listed = list.json();
    assert_eq!(listed[0]["name"], "local");
    assert_eq!(listed[0]["default"], true);
    assert_eq!(listed[0]["source"], "default");
    assert!(
        !list.stdout.contains(&collector.write_key),
        "write key masked"
    );
    assert!(!list.stdout.contains(&collector.token), "token masked");
    let show = run_spoor(config.path(), &[], &["connections", "show", "local"]);
    assert!(
        !show.stdout.contains(&collector.write_key) && show.stdout.contains("local"),
        "{}",
        show.stdout
    );

    // Sending picks the default connection, then --connection by name.
    let run = run_spoor(
        config.path(),
        &[],
        &[
            "track",
            "--user-id",
            "u",
            "--event",
            "Via Default",
            "--message-id",
            "m-conn-1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = run_spoor(
        config.path(),
        &[],
        &[
            "track",
            "--connection",
            "local",
            "--user-id",
            "u",
            "--event",
            "Via Name",
            "--message-id",
            "m-conn-2",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    collector.message("m-conn-1");
    collector.message("m-conn-2");
    let run = run_spoor(
        config.path(),
        &[],
        &[
            "track",
            "--connection",
            "nope",
            "--user-id",
            "u",
            "--event",
            "x",
        ],
    );
    assert_eq!(run.code, 4, "unknown connection: {}", run.stderr);

    // A key of no source is kept, with a warning that says why it may still work.
    let run = run_spoor(
        config.path(),
        &[],
        &[
            "connect",
            "other",
            "--endpoint",
            &collector.url,
            "--api-base",
            &api,
            "--token",
            &collector.token,
            "--write-key",
            "wk_not_a_key_of_this_workspace",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("warning") && run.stderr.contains("matches none"),
        "{}",
        run.stderr
    );

    let run = run_spoor(config.path(), &[], &["connections", "default", "other"]);
    assert_eq!(run.code, 0);
    let listed = run_spoor(config.path(), &[], &["connections", "list", "--json"]).json();
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["name"] == "other" && c["default"] == true)
    );
    let run = run_spoor(config.path(), &[], &["connections", "remove", "other"]);
    assert_eq!(run.code, 0);
    let listed = run_spoor(config.path(), &[], &["connections", "list", "--json"]).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "still 0600 after rewrites");

    // A bad token is refused (exit 3) and nothing is saved.
    let run = run_spoor(
        config.path(),
        &[],
        &[
            "connect",
            "bad",
            "--endpoint",
            &collector.url,
            "--api-base",
            &api,
            "--token",
            "not-a-token",
            "--write-key",
            &collector.write_key,
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("--token"), "{}", run.stderr);
}

#[test]
fn connector_batch_delivers_ndjson_and_names_bad_lines() {
    let collector = Collector::start();
    let config = TempDir::new("config");
    let input = TempDir::new("input");
    let mut lines = Vec::new();
    for n in 0..250 {
        lines.push(json!({"type": "track", "userId": format!("u{n}"), "event": "Batched", "messageId": format!("b-{n}"), "properties": {"revenue": Value::Number(serde_json::Number::from_string_unchecked("19.99".to_owned()))}}).to_string());
    }
    lines.insert(10, r#"{"type":"track","event":"No Ids"}"#.to_owned());
    lines.insert(20, "{not json".to_owned());
    lines.insert(30, String::new());
    lines.push(json!({"type": "identify", "userId": "u1", "traits": {"email": "x@y.z"}, "messageId": "b-identify"}).to_string());
    let file = input.path().join("events.ndjson");
    std::fs::write(&file, lines.join("\n")).expect("write ndjson");

    let run = run_spoor(
        config.path(),
        &env(&collector),
        &["--json", "batch", file.to_str().expect("path")],
    );
    assert_eq!(
        run.code, 2,
        "only invalid lines were left out: {}{}",
        run.stdout, run.stderr
    );
    let summary = run.json();
    assert_eq!(summary["delivered"], 251);
    assert_eq!(summary["invalid"], 2);
    assert_eq!(summary["rejected"], 0);
    let errors = summary["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["line"] == 11 && e["reason"].as_str().is_some_and(|r| r.contains("userId"))),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["line"] == 21 && e["reason"].as_str().is_some_and(|r| r.contains("JSON"))),
        "{errors:?}"
    );
    let count = collector.query("SELECT count(*) AS n FROM messages WHERE event = 'Batched'");
    assert_eq!(count[0]["n"], 250);
    let row = collector.message("b-7");
    assert!(
        row["body_text"]
            .as_str()
            .is_some_and(|b| b.contains(r#""revenue":19.99"#))
    );

    // From standard input, all valid: exit 0 and a human summary line.
    let run = run_spoor_stdin(
        config.path(),
        &env(&collector),
        &["batch", "-"],
        Some("{\"type\":\"page\",\"userId\":\"u\",\"name\":\"Home\",\"messageId\":\"b-stdin\"}\n"),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("delivered 1 of 1"), "{}", run.stdout);
    collector.message("b-stdin");
}
