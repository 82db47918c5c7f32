//! One table per validation rule: each case is a message and the exact problems expected
//! as `(severity, code, path)`; an empty list means the message is clean.

use spoor_spec::MessageType::{self, Alias, Group, Identify, Page, Screen, Track};
use spoor_spec::validate::{
    Code, Problem, Severity, batch_size_problem, message_size_problem, validate_envelope,
};
use spoor_spec::{Batch, validate};

use crate::util::{check, json, msg};

type Expected = &'static [(&'static str, &'static str, &'static str)];

/// Runs a table: `(kind, message JSON, expected problems)`.
fn table(cases: &[(MessageType, &str, Expected)]) {
    for (kind, body, expected) in cases {
        let got = check(*kind, body);
        let want: Vec<(&str, &str, String)> = expected
            .iter()
            .map(|(s, c, p)| (*s, *c, (*p).to_owned()))
            .collect();
        assert_eq!(got, want, "{kind} {body}");
    }
}

#[test]
fn identity_is_required() {
    table(&[
        (Track, r#"{"userId":"u1","event":"E"}"#, &[]),
        (Track, r#"{"anonymousId":"a1","event":"E"}"#, &[]),
        (Identify, r#"{"userId":"u1","anonymousId":"a1"}"#, &[]),
        (
            Identify,
            r#"{}"#,
            &[("error", "missing_identity", "userId")],
        ),
        (
            Page,
            r#"{"userId":null,"anonymousId":null}"#,
            &[("error", "missing_identity", "userId")],
        ),
        (
            Screen,
            r#"{"userId":"","anonymousId":"  "}"#,
            &[
                ("error", "missing_identity", "userId"),
                ("warning", "empty", "userId"),
                ("warning", "empty", "anonymousId"),
            ],
        ),
        (
            Identify,
            r#"{"userId":"","anonymousId":"a"}"#,
            &[("warning", "empty", "userId")],
        ),
        (
            Identify,
            r#"{"userId":true}"#,
            &[
                ("error", "wrong_type", "userId"),
                ("error", "missing_identity", "userId"),
            ],
        ),
        (
            Identify,
            r#"{"anonymousId":{"id":1}}"#,
            &[
                ("error", "wrong_type", "anonymousId"),
                ("error", "missing_identity", "userId"),
            ],
        ),
    ]);
}

#[test]
fn number_ids_warn() {
    table(&[
        (
            Identify,
            r#"{"userId":42}"#,
            &[("warning", "number_id", "userId")],
        ),
        (
            Track,
            r#"{"anonymousId":7,"event":"E"}"#,
            &[("warning", "number_id", "anonymousId")],
        ),
        (
            Group,
            r#"{"userId":"u","groupId":1234}"#,
            &[("warning", "number_id", "groupId")],
        ),
        (
            Alias,
            r#"{"userId":1,"previousId":2}"#,
            &[
                ("warning", "number_id", "userId"),
                ("warning", "number_id", "previousId"),
            ],
        ),
    ]);
}

#[test]
fn alias_needs_user_id_and_previous_id() {
    table(&[
        (Alias, r#"{"userId":"u1","previousId":"a1"}"#, &[]),
        (
            Alias,
            r#"{"previousId":"a1"}"#,
            &[("error", "required", "userId")],
        ),
        (
            Alias,
            r#"{"userId":"u1"}"#,
            &[("error", "required", "previousId")],
        ),
        (
            Alias,
            r#"{"anonymousId":"a1"}"#,
            &[
                ("error", "required", "userId"),
                ("error", "required", "previousId"),
            ],
        ),
        (
            Alias,
            r#"{"userId":"","previousId":""}"#,
            &[
                ("error", "empty", "userId"),
                ("error", "empty", "previousId"),
            ],
        ),
        (
            Alias,
            r#"{"userId":"u1","previousId":["a"]}"#,
            &[("error", "wrong_type", "previousId")],
        ),
    ]);
}

#[test]
fn track_needs_a_non_empty_event() {
    table(&[
        (Track, r#"{"userId":"u","event":"Order Completed"}"#, &[]),
        (
            Track,
            r#"{"userId":"u"}"#,
            &[("error", "required", "event")],
        ),
        (
            Track,
            r#"{"userId":"u","event":null}"#,
            &[("error", "required", "event")],
        ),
        (
            Track,
            r#"{"userId":"u","event":""}"#,
            &[("error", "empty", "event")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"   "}"#,
            &[("error", "empty", "event")],
        ),
        (
            Track,
            r#"{"userId":"u","event":12}"#,
            &[("error", "wrong_type", "event")],
        ),
        // Only track needs an event.
        (Identify, r#"{"userId":"u"}"#, &[]),
    ]);
}

#[test]
fn group_needs_group_id() {
    table(&[
        (Group, r#"{"userId":"u","groupId":"g1"}"#, &[]),
        (
            Group,
            r#"{"userId":"u"}"#,
            &[("error", "required", "groupId")],
        ),
        (
            Group,
            r#"{"userId":"u","groupId":""}"#,
            &[("error", "empty", "groupId")],
        ),
        (
            Group,
            r#"{"userId":"u","groupId":false}"#,
            &[("error", "wrong_type", "groupId")],
        ),
    ]);
}

#[test]
fn page_and_screen_name_and_category_are_strings() {
    table(&[
        (
            Page,
            r#"{"userId":"u","name":"Home","category":"Docs"}"#,
            &[],
        ),
        (Screen, r#"{"userId":"u","name":"Settings"}"#, &[]),
        (
            Page,
            r#"{"userId":"u","name":3}"#,
            &[("error", "wrong_type", "name")],
        ),
        (
            Screen,
            r#"{"userId":"u","category":[]}"#,
            &[("error", "wrong_type", "category")],
        ),
    ]);
}

#[test]
fn timestamps_are_strict_iso_8601() {
    let good = [
        "2024-01-02T03:04:05.678Z",
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05.123456+02:00",
        "2024-01-02T03:04:05-0530",
        "2024-02-29T00:00:00Z",
    ];
    for ts in good {
        for key in ["timestamp", "sentAt", "originalTimestamp"] {
            let body = format!(r#"{{"userId":"u","{key}":"{ts}"}}"#);
            assert_eq!(check(Identify, &body), vec![], "{body}");
        }
    }
    let bad = [
        "2024-01-02",
        "2024-01-02T03:04:05",
        "2024-01-02 03:04:05Z",
        "24-01-02T03:04:05Z",
        "2024-W01-2T03:04:05Z",
        "2024-002T03:04:05Z",
        "20240102T030405Z",
        "2023-02-29T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "1704164645",
        "Tue, 02 Jan 2024 03:04:05 GMT",
        "",
    ];
    for ts in bad {
        for key in ["timestamp", "sentAt", "originalTimestamp"] {
            let body = format!(r#"{{"userId":"u","{key}":"{ts}"}}"#);
            assert_eq!(
                check(Identify, &body),
                vec![("error", "invalid_timestamp", key.to_owned())],
                "{body}"
            );
        }
    }
    table(&[
        (
            Identify,
            r#"{"userId":"u","timestamp":1704164645}"#,
            &[("error", "wrong_type", "timestamp")],
        ),
        (
            Identify,
            r#"{"userId":"u","sentAt":{}}"#,
            &[("error", "wrong_type", "sentAt")],
        ),
        (Identify, r#"{"userId":"u","timestamp":null}"#, &[]),
        // receivedAt is the server's; a client's is replaced, never refused.
        (Identify, r#"{"userId":"u","receivedAt":"yesterday"}"#, &[]),
    ]);
}

#[test]
fn message_id_is_a_string_of_at_most_100_characters() {
    let at_limit = "m".repeat(100);
    let over = "m".repeat(101);
    // 100 characters of 3 bytes each: 300 bytes but within the limit.
    let wide = "€".repeat(100);
    assert_eq!(
        check(
            Identify,
            &format!(r#"{{"userId":"u","messageId":"{at_limit}"}}"#)
        ),
        vec![]
    );
    assert_eq!(
        check(
            Identify,
            &format!(r#"{{"userId":"u","messageId":"{wide}"}}"#)
        ),
        vec![]
    );
    assert_eq!(
        check(
            Identify,
            &format!(r#"{{"userId":"u","messageId":"{over}"}}"#)
        ),
        vec![("error", "too_long", "messageId".to_owned())]
    );
    table(&[
        (
            Identify,
            r#"{"userId":"u","messageId":12}"#,
            &[("error", "wrong_type", "messageId")],
        ),
        (Identify, r#"{"userId":"u","messageId":""}"#, &[]),
    ]);
}

#[test]
fn context_must_be_an_object_with_typed_reserved_fields() {
    table(&[
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"ip":"1.2.3.4","library":{"name":"analytics-python","version":"2.3.4"},"active":true,"locale":"en-US","page":{"url":"https://x"},"custom":[1]}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","context":"web"}"#,
            &[("error", "wrong_type", "context")],
        ),
        (Track, r#"{"userId":"u","event":"E","context":null}"#, &[]),
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"ip":17}}"#,
            &[("error", "wrong_type", "context.ip")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"active":"yes"}}"#,
            &[("error", "wrong_type", "context.active")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"library":"x"}}"#,
            &[("error", "wrong_type", "context.library")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"traits":[]}}"#,
            &[("error", "wrong_type", "context.traits")],
        ),
        // Inside the reserved context objects, a wrong type only warns.
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"library":{"name":1},"screen":{"width":"1080"},"device":{"adTrackingEnabled":1}}}"#,
            &[
                ("warning", "wrong_type", "context.library.name"),
                ("warning", "numeric_string", "context.screen.width"),
                ("warning", "wrong_type", "context.device.adTrackingEnabled"),
            ],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","context":{"traits":{"email":5,"createdAt":"last week"}}}"#,
            &[
                ("warning", "wrong_type", "context.traits.email"),
                ("warning", "invalid_timestamp", "context.traits.createdAt"),
            ],
        ),
    ]);
}

#[test]
fn integrations_are_an_object_of_booleans_or_objects() {
    table(&[
        (
            Track,
            r#"{"userId":"u","event":"E","integrations":{"All":true,"Salesforce":false,"Amplitude":{"session_id":1}}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","integrations":true}"#,
            &[("error", "wrong_type", "integrations")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","integrations":{"All":"true","Google Analytics 4.0":1}}"#,
            &[
                ("error", "wrong_type", "integrations.All"),
                (
                    "error",
                    "wrong_type",
                    r#"integrations["Google Analytics 4.0"]"#,
                ),
            ],
        ),
    ]);
}

#[test]
fn traits_and_properties_must_be_objects() {
    table(&[
        (
            Identify,
            r#"{"userId":"u","traits":[]}"#,
            &[("error", "wrong_type", "traits")],
        ),
        (
            Group,
            r#"{"userId":"u","groupId":"g","traits":"x"}"#,
            &[("error", "wrong_type", "traits")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":1}"#,
            &[("error", "wrong_type", "properties")],
        ),
        (
            Page,
            r#"{"userId":"u","properties":true}"#,
            &[("error", "wrong_type", "properties")],
        ),
        (
            Screen,
            r#"{"userId":"u","properties":"p"}"#,
            &[("error", "wrong_type", "properties")],
        ),
        (Identify, r#"{"userId":"u","traits":null}"#, &[]),
        // Identify has no properties and track no traits: unknown fields are kept, unchecked.
        (Identify, r#"{"userId":"u","properties":1}"#, &[]),
    ]);
}

#[test]
fn reserved_identify_traits_have_their_types() {
    table(&[
        (
            Identify,
            r#"{"userId":"u","traits":{"address":{"street":"1 Main St","city":"SF","state":"CA","postalCode":"94107","country":"USA"},"age":31,"avatar":"https://a","birthday":"1990-05-17","company":{"name":"Acme","id":123,"industry":"Tools","employee_count":40,"plan":"pro"},"createdAt":"2020-01-01T00:00:00Z","description":"d","email":"a@b.c","firstName":"Ada","gender":"f","id":"u","lastName":"Lovelace","name":"Ada Lovelace","phone":"+1 555","title":"Eng","username":"ada","website":"https://w","plan":{"any":"custom"}}}"#,
            &[],
        ),
        // snake_case spellings are checked too.
        (
            Identify,
            r#"{"userId":"u","traits":{"first_name":1,"created_at":"2020-13-01","address":{"postal_code":94107}}}"#,
            &[
                ("error", "wrong_type", "traits.first_name"),
                ("error", "invalid_timestamp", "traits.created_at"),
                ("error", "wrong_type", "traits.address.postal_code"),
            ],
        ),
        (
            Identify,
            r#"{"userId":"u","traits":{"age":"thirty","email":["a"],"address":"1 Main St","company":{"id":true,"employeeCount":"many"}}}"#,
            &[
                ("error", "wrong_type", "traits.age"),
                ("error", "wrong_type", "traits.email"),
                ("error", "wrong_type", "traits.address"),
                ("error", "wrong_type", "traits.company.id"),
                ("error", "wrong_type", "traits.company.employeeCount"),
            ],
        ),
        (
            Identify,
            r#"{"userId":"u","traits":{"age":"31"}}"#,
            &[("warning", "numeric_string", "traits.age")],
        ),
        (
            Identify,
            r#"{"userId":"u","traits":{"birthday":631152000}}"#,
            &[("error", "wrong_type", "traits.birthday")],
        ),
        (
            Identify,
            r#"{"userId":"u","traits":{"birthday":"05/17/1990"}}"#,
            &[("error", "invalid_timestamp", "traits.birthday")],
        ),
        (
            Identify,
            r#"{"userId":"u","traits":{"birthday":"1990-05-17T00:00:00+02:00"}}"#,
            &[],
        ),
        (
            Identify,
            r#"{"userId":"u","traits":{"email":null,"name":null}}"#,
            &[],
        ),
    ]);
}

#[test]
fn reserved_group_traits_have_their_types() {
    table(&[
        (
            Group,
            r#"{"userId":"u","groupId":"g","traits":{"name":"Acme","employees":"100","industry":"x","plan":"p","address":{"city":"SF"},"createdAt":"2020-01-01T00:00:00.000Z","website":"w","email":"e","phone":"p","avatar":"a","description":"d","id":"g"}}"#,
            &[],
        ),
        (
            Group,
            r#"{"userId":"u","groupId":"g","traits":{"employees":100}}"#,
            &[],
        ),
        (
            Group,
            r#"{"userId":"u","groupId":"g","traits":{"employees":true,"name":1,"address":{"city":2},"created_at":"2020"}}"#,
            &[
                ("error", "wrong_type", "traits.employees"),
                ("error", "wrong_type", "traits.name"),
                ("error", "wrong_type", "traits.address.city"),
                ("error", "invalid_timestamp", "traits.created_at"),
            ],
        ),
        // Identify-only traits are custom in a group.
        (
            Group,
            r#"{"userId":"u","groupId":"g","traits":{"age":"old"}}"#,
            &[],
        ),
    ]);
}

#[test]
fn revenue_and_value_are_exact_numbers() {
    table(&[
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":19.99,"value":3,"currency":"USD"}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":-5.5e2}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":"19.99"}}"#,
            &[("warning", "numeric_string", "properties.revenue")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":"$19.99","value":true}}"#,
            &[
                ("error", "wrong_type", "properties.revenue"),
                ("error", "wrong_type", "properties.value"),
            ],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":" 19.99"}}"#,
            &[("error", "wrong_type", "properties.revenue")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":1e400}}"#,
            &[("error", "invalid_number", "properties.revenue")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"revenue":null}}"#,
            &[],
        ),
        // Revenue is only reserved in track.
        (
            Page,
            r#"{"userId":"u","properties":{"revenue":"lots"}}"#,
            &[],
        ),
    ]);
}

#[test]
fn currency_is_an_iso_4217_code() {
    table(&[
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"EUR"}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"ZWG"}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"XCG"}}"#,
            &[],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"usd"}}"#,
            &[("warning", "currency_case", "properties.currency")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"HRK"}}"#,
            &[("warning", "withdrawn_currency", "properties.currency")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"DOLLARS"}}"#,
            &[("error", "invalid_currency", "properties.currency")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":"ABC"}}"#,
            &[("error", "invalid_currency", "properties.currency")],
        ),
        (
            Track,
            r#"{"userId":"u","event":"E","properties":{"currency":840}}"#,
            &[("error", "wrong_type", "properties.currency")],
        ),
    ]);
}

#[test]
fn reserved_page_and_screen_properties_have_their_types() {
    table(&[
        (
            Page,
            r#"{"userId":"u","properties":{"name":"n","path":"/","referrer":"r","search":"?q","title":"t","url":"https://x/","keywords":["a","b"]}}"#,
            &[],
        ),
        (
            Page,
            r#"{"userId":"u","properties":{"url":1,"keywords":["a",2],"title":{}}}"#,
            &[
                ("error", "wrong_type", "properties.url"),
                ("error", "wrong_type", "properties.keywords[1]"),
                ("error", "wrong_type", "properties.title"),
            ],
        ),
        (
            Page,
            r#"{"userId":"u","properties":{"keywords":"a,b"}}"#,
            &[("error", "wrong_type", "properties.keywords")],
        ),
        (
            Screen,
            r#"{"userId":"u","properties":{"name":5,"url":5}}"#,
            &[("error", "wrong_type", "properties.name")],
        ),
    ]);
}

#[test]
fn channel_is_a_string() {
    table(&[
        (Identify, r#"{"userId":"u","channel":"server"}"#, &[]),
        (
            Identify,
            r#"{"userId":"u","channel":1}"#,
            &[("error", "wrong_type", "channel")],
        ),
    ]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let report = validate(&msg(
        r#"{"type":"track","event":"","timestamp":"now","messageId":5,"properties":{"revenue":"x","currency":"xx"},"integrations":[]}"#,
    ));
    let codes: Vec<&str> = report.problems.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "missing_identity",
            "empty",
            "wrong_type",
            "invalid_timestamp",
            "wrong_type",
            "wrong_type",
            "invalid_currency"
        ]
    );
    assert!(!report.is_ok());
    assert_eq!(report.errors().count(), 7);
    assert_eq!(report.warnings().count(), 0);
}

#[test]
fn messages_name_the_field_and_the_rule() {
    let report = validate(&msg(
        r#"{"type":"track","userId":"u","event":"E","properties":{"revenue":"lots"}}"#,
    ));
    let problem = &report.problems[0];
    assert_eq!(problem.path, "properties.revenue");
    assert_eq!(problem.code, Code::WrongType);
    assert_eq!(problem.severity, Severity::Error);
    assert_eq!(
        problem.message,
        r#"properties.revenue must be a number, not the string "lots""#
    );
    assert_eq!(
        problem.to_string(),
        r#"properties.revenue: properties.revenue must be a number, not the string "lots" (wrong_type)"#
    );
    let prefixed = problem.clone().prefixed("batch[3]");
    assert_eq!(prefixed.path, "batch[3].properties.revenue");
}

#[test]
fn warnings_do_not_reject() {
    let report = validate(&msg(
        r#"{"type":"track","userId":7,"event":"E","properties":{"revenue":"1.5","currency":"eur"}}"#,
    ));
    assert!(report.is_ok());
    assert_eq!(report.warnings().count(), 3);
}

#[test]
fn size_limits() {
    assert_eq!(message_size_problem(32 * 1024), None);
    let problem = message_size_problem(32 * 1024 + 1).expect("over 32 KB");
    assert_eq!(
        (problem.code, problem.severity),
        (Code::MessageTooLarge, Severity::Error)
    );
    assert_eq!(batch_size_problem(500 * 1024, 2_500), None);
    let problem: Problem = batch_size_problem(500 * 1024 + 1, 1).expect("over 500 KB");
    assert_eq!(problem.code, Code::BatchTooLarge);
    let problem = batch_size_problem(1_000, 2_501).expect("over 2,500 messages");
    assert_eq!(
        (problem.code, problem.path.as_str()),
        (Code::TooManyMessages, "batch")
    );
}

#[test]
fn batch_envelope_fields_are_checked() {
    let batch = Batch::from_value(json(
        r#"{"batch":[],"context":"c","integrations":{"All":1},"sentAt":"2024-01-01"}"#,
    ))
    .expect("a batch");
    let report = validate_envelope(&batch);
    let got: Vec<(&str, &str)> = report
        .problems
        .iter()
        .map(|p| (p.code.as_str(), p.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("wrong_type", "context"),
            ("wrong_type", "integrations.All"),
            ("invalid_timestamp", "sentAt")
        ]
    );
    let good = Batch::from_value(json(
        r#"{"batch":[],"context":{},"integrations":{"All":true},"sentAt":"2024-01-01T00:00:00Z"}"#,
    ))
    .expect("a batch");
    assert!(validate_envelope(&good).is_clean());
}

#[test]
fn reports_prefix_their_paths_for_batch_items() {
    let report = validate(&msg(r#"{"type":"group","groupId":""}"#)).prefixed("batch[3]");
    let paths: Vec<&str> = report.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["batch[3].userId", "batch[3].groupId"]);
    let whole = message_size_problem(40_000)
        .expect("too large")
        .prefixed("batch[0]");
    assert_eq!(whole.path, "batch[0]");
    let quoted = validate(&msg(
        r#"{"type":"identify","userId":"u","integrations":{"a.b":1}}"#,
    ))
    .prefixed("batch[1]");
    assert_eq!(quoted.problems[0].path, r#"batch[1].integrations["a.b"]"#);
}
