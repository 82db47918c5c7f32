//! Connector commands that need no collector: bad input exits 2 naming the flag and the
//! rule, help texts with examples, and batch exiting 3 when nothing can be delivered.

use crate::connector_util::{TempDir, run_spoor, run_spoor_stdin};

/// A connection to nowhere (port 9, discard): enough for commands that never send.
const NO_COLLECTOR: [(&str, &str); 2] = [
    ("SPOOR_ENDPOINT", "http://127.0.0.1:9"),
    ("SPOOR_WRITE_KEY", "k"),
];

#[test]
fn connector_batch_exits_3_when_nothing_can_be_delivered() {
    let config = TempDir::new("config");
    let run = run_spoor_stdin(
        config.path(),
        &NO_COLLECTOR,
        &["--json", "batch", "-", "--max-retries", "0"],
        Some("{\"type\":\"track\",\"userId\":\"u\",\"event\":\"x\"}\n"),
    );
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let summary = run.json();
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["errors"][0]["line"], 1);
}

#[test]
fn connector_bad_input_exits_2_naming_the_flag_and_the_rule() {
    let config = TempDir::new("config");
    let env = NO_COLLECTOR;
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["identify", "--email", "a@b.c"],
            &["--user-id", "anonymousId"],
        ),
        (&["track", "--event", "E"], &["--user-id", "required"]),
        (&["track", "--user-id", "u"], &["--event", "required"]),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--timestamp",
                "2024-05-01 12:00",
            ],
            &["--timestamp", "ISO 8601"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--timestamp",
                "2024-05-01T12:00:00",
            ],
            &["--timestamp", "time zone"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--currency",
                "XXQ",
            ],
            &["--currency", "ISO 4217"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--currency",
                "hrk",
                "--dry-run",
            ],
            &["--currency", "use EUR"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--revenue",
                "19,99",
            ],
            &["--revenue", "decimal"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--property",
                "revenue:=5",
            ],
            &["--property revenue", "use --revenue instead"],
        ),
        (
            &["identify", "--user-id", "u", "--trait", "email=a@b.c"],
            &["--trait email", "use --email instead"],
        ),
        (
            &["identify", "--user-id", "u", "--trait", "first_name=Ada"],
            &["--trait first_name", "use --first-name instead"],
        ),
        (
            &["identify", "--user-id", "u", "--trait", "seats:=twelve"],
            &["--trait seats", "not valid JSON"],
        ),
        (
            &["identify", "--user-id", "u", "--trait", "novalue"],
            &["--trait", "KEY=VALUE"],
        ),
        (
            &["identify", "--user-id", "u", "--age", "old"],
            &["--age", "not a number"],
        ),
        (
            &["identify", "--user-id", "u", "--birthday", "10/12/1815"],
            &["--birthday", "ISO 8601"],
        ),
        (&["group", "--user-id", "u"], &["--group-id", "required"]),
        (
            &[
                "group",
                "--user-id",
                "u",
                "--group-id",
                "g",
                "--trait",
                "plan=x",
            ],
            &["--trait plan", "--plan"],
        ),
        (&["alias", "--user-id", "u"], &["--previous-id", "required"]),
        (&["alias", "--previous-id", "p"], &["--user-id", "required"]),
        (
            &["page", "--user-id", "u", "--property", "url=x"],
            &["--property url", "--url"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--message-id",
                &"x".repeat(101),
            ],
            &["--message-id", "100"],
        ),
        (
            &[
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--integration",
                "All=maybe",
            ],
            &["--integration", "true or false"],
        ),
        (
            &["api", "POST", "/v1/track", "--body", "{\"userId\": "],
            &["--body", "not valid JSON"],
        ),
        (
            &["api", "POST", "/v1/track", "--body", "@/no/such/file.json"],
            &["--body @/no/such/file.json", "cannot read"],
        ),
        (&["api", "FETCH", "/v1/track"], &["METHOD", "GET, POST"]),
        (
            &["api", "POST", "/v1/track", "--header", "NoColon"],
            &["--header", "NAME:VALUE"],
        ),
        (&["batch", "/no/such/file.ndjson"], &["FILE", "cannot open"]),
    ];
    for (args, expected) in cases {
        let run = run_spoor(config.path(), &env, args);
        assert_eq!(run.code, 2, "{args:?} exits 2: {}", run.stderr);
        for needle in *expected {
            assert!(
                run.stderr.contains(needle),
                "{args:?}: stderr should name {needle:?}: {}",
                run.stderr
            );
        }
    }
    let run = run_spoor(
        config.path(),
        &[],
        &["track", "--user-id", "u", "--event", "E"],
    );
    assert_eq!(run.code, 2, "no write key anywhere: {}", run.stderr);
    assert!(
        run.stderr.contains("spoor connect") && run.stderr.contains("SPOOR_WRITE_KEY"),
        "{}",
        run.stderr
    );
}

#[test]
fn connector_help_texts_teach_with_examples() {
    let config = TempDir::new("config");
    for (command, needle) in [
        ("identify", "--first-name"),
        ("track", "--revenue 19.99"),
        ("api", "/v1/group"),
        ("batch", "NDJSON"),
        ("connect", "--api-base"),
    ] {
        let run = run_spoor(config.path(), &[], &[command, "--help"]);
        assert_eq!(run.code, 0);
        assert!(
            run.stdout.contains("Example"),
            "{command} --help has examples"
        );
        assert!(
            run.stdout.contains(needle),
            "{command} --help mentions {needle}"
        );
    }
}

#[test]
fn connector_currency_in_any_case_is_sent_in_capitals() {
    let config = TempDir::new("config");
    let env = NO_COLLECTOR;
    let run = run_spoor(
        config.path(),
        &env,
        &[
            "--json",
            "track",
            "--user-id",
            "u",
            "--event",
            "Order Completed",
            "--revenue",
            "19.99",
            "--currency",
            "eur",
            "--dry-run",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["sent"]["properties"]["currency"], "EUR");
}
