//! One table per normalization rule: a message in, the fields expected after normalizing.

use spoor_spec::{Message, NormalizeCtx, Timestamp, Value, normalize};

use crate::util::{json, msg};

const RECEIVED: &str = "2024-05-01T12:00:00.500Z";

/// Normalizes `body` with a fixed clock and a counting id source.
fn run(body: &str) -> Message {
    let mut message = msg(body);
    let mut counter = 0;
    let mut new_id = || {
        counter += 1;
        format!("generated-{counter}")
    };
    let mut ctx = NormalizeCtx {
        received_at: Timestamp::parse(RECEIVED).expect("valid"),
        new_message_id: &mut new_id,
    };
    normalize(&mut message, &mut ctx);
    message
}

/// Checks every `(pointer, expected JSON)` pair after normalizing each body.
fn table(cases: &[(&str, &[(&str, &str)])]) {
    for (body, expected) in cases {
        let value = run(body).into_value();
        for (pointer, want) in *expected {
            let got = value.pointer(pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(got, json(want), "{pointer} of {body}");
        }
    }
}

#[test]
fn message_id_is_generated_when_missing() {
    table(&[
        (
            r#"{"type":"identify","userId":"u"}"#,
            &[("/messageId", r#""generated-1""#)],
        ),
        (
            r#"{"type":"identify","userId":"u","messageId":null}"#,
            &[("/messageId", r#""generated-1""#)],
        ),
        (
            r#"{"type":"identify","userId":"u","messageId":""}"#,
            &[("/messageId", r#""generated-1""#)],
        ),
        (
            r#"{"type":"identify","userId":"u","messageId":"m-1"}"#,
            &[("/messageId", r#""m-1""#)],
        ),
    ]);
}

#[test]
fn number_ids_become_strings() {
    table(&[
        (
            r#"{"type":"alias","userId":42,"previousId":1.50,"anonymousId":-7}"#,
            &[
                ("/userId", r#""42""#),
                ("/previousId", r#""1.50""#),
                ("/anonymousId", r#""-7""#),
            ],
        ),
        (
            r#"{"type":"group","userId":"u","groupId":12345678901234567890123}"#,
            &[("/groupId", r#""12345678901234567890123""#)],
        ),
        (
            r#"{"type":"identify","userId":"u7"}"#,
            &[("/userId", r#""u7""#)],
        ),
    ]);
}

#[test]
fn received_at_is_the_clock_passed_in() {
    table(&[
        (
            r#"{"type":"identify","userId":"u"}"#,
            &[("/receivedAt", r#""2024-05-01T12:00:00.500Z""#)],
        ),
        (
            r#"{"type":"identify","userId":"u","receivedAt":"1999-01-01T00:00:00Z"}"#,
            &[("/receivedAt", r#""2024-05-01T12:00:00.500Z""#)],
        ),
    ]);
}

#[test]
fn timestamp_is_corrected_for_clock_skew() {
    table(&[
        // The device clock is 10 minutes fast: sentAt - timestamp is 2 s, so the event
        // happened 2 s before the server received it.
        (
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T12:10:00.000Z","sentAt":"2024-05-01T12:10:02.000Z"}"#,
            &[
                ("/timestamp", r#""2024-05-01T11:59:58.500Z""#),
                ("/originalTimestamp", r#""2024-05-01T12:10:00.000Z""#),
                ("/sentAt", r#""2024-05-01T12:10:02.000Z""#),
            ],
        ),
        // The partner spec's worked example: originalTimestamp = sentAt gives receivedAt.
        (
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T16:33:26.060Z","sentAt":"2024-05-01T16:33:26.060Z"}"#,
            &[("/timestamp", r#""2024-05-01T12:00:00.500Z""#)],
        ),
        // Offsets are honoured and the original text is kept as sent.
        (
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T14:00:00+02:00","sentAt":"2024-05-01T12:00:01Z"}"#,
            &[
                ("/timestamp", r#""2024-05-01T11:59:59.500Z""#),
                ("/originalTimestamp", r#""2024-05-01T14:00:00+02:00""#),
            ],
        ),
    ]);
}

#[test]
fn timestamp_without_sent_at_is_kept() {
    table(&[(
        r#"{"type":"track","userId":"u","event":"E","timestamp":"2020-01-01T01:00:00+01:00"}"#,
        &[
            ("/timestamp", r#""2020-01-01T00:00:00.000Z""#),
            ("/originalTimestamp", r#""2020-01-01T01:00:00+01:00""#),
        ],
    )]);
}

#[test]
fn missing_timestamp_is_received_at() {
    table(&[
        (
            r#"{"type":"track","userId":"u","event":"E","sentAt":"2024-05-01T13:00:00Z"}"#,
            &[
                ("/timestamp", r#""2024-05-01T12:00:00.500Z""#),
                ("/originalTimestamp", r#""2024-05-01T12:00:00.500Z""#),
            ],
        ),
        (
            r#"{"type":"track","userId":"u","event":"E","timestamp":null}"#,
            &[
                ("/timestamp", r#""2024-05-01T12:00:00.500Z""#),
                ("/originalTimestamp", r#""2024-05-01T12:00:00.500Z""#),
            ],
        ),
    ]);
}

#[test]
fn name_is_filled_from_first_and_last_name() {
    table(&[
        (
            r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada","lastName":"Lovelace"}}"#,
            &[("/traits/name", r#""Ada Lovelace""#)],
        ),
        (
            r#"{"type":"identify","userId":"u","traits":{"first_name":" Ada ","last_name":"Lovelace"}}"#,
            &[("/traits/name", r#""Ada Lovelace""#)],
        ),
        (
            r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada","last_name":"Lovelace","name":null}}"#,
            &[("/traits/name", r#""Ada Lovelace""#)],
        ),
        // A name given wins.
        (
            r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada","lastName":"Lovelace","name":"Countess"}}"#,
            &[("/traits/name", r#""Countess""#)],
        ),
        // Only one part: nothing to fill.
        (
            r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada"}}"#,
            &[("/traits/name", "null")],
        ),
        (
            r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada","lastName":""}}"#,
            &[("/traits/name", "null")],
        ),
        (
            r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada","lastName":7}}"#,
            &[("/traits/name", "null")],
        ),
        // context.traits and group traits are left alone.
        (
            r#"{"type":"track","userId":"u","event":"E","context":{"traits":{"firstName":"Ada","lastName":"L"}}}"#,
            &[("/context/traits/name", "null")],
        ),
        (
            r#"{"type":"group","userId":"u","groupId":"g","traits":{"firstName":"Ada","lastName":"L"}}"#,
            &[("/traits/name", "null")],
        ),
    ]);
}

#[test]
fn everything_else_is_kept() {
    let body = r#"{"type":"track","userId":"u","event":"E","messageId":"m","timestamp":"2024-05-01T12:00:00.000Z","properties":{"revenue":19.99,"nested":{"a":[1,2.50,"x"]}},"context":{"custom":true},"integrations":{"All":false},"unknownTop":1e3}"#;
    let mut expected = json(body);
    let value = run(body).into_value();
    let object = expected.as_object_mut().expect("object");
    object.insert(
        "originalTimestamp".to_owned(),
        json(r#""2024-05-01T12:00:00.000Z""#),
    );
    object.insert("receivedAt".to_owned(), json(&format!("{RECEIVED:?}")));
    assert_eq!(value, expected);
    // Numbers keep their digits; serde_json writes an exponent as `e+` or `e-`.
    let text = serde_json::to_string(&value).expect("serializes");
    assert!(
        text.contains("19.99") && text.contains("2.50") && text.contains("1e+3"),
        "{text}"
    );
}

#[test]
fn extreme_clock_skew_saturates_instead_of_overflowing() {
    table(&[
        (
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2262-04-11T23:47:16.854775807Z","sentAt":"1677-09-21T00:12:43.145224192Z"}"#,
            &[("/timestamp", r#""2262-04-11T23:47:16.854Z""#)],
        ),
        (
            r#"{"type":"track","userId":"u","event":"E","timestamp":"1677-09-21T00:12:43.145224192Z","sentAt":"2262-04-11T23:47:16.854775807Z"}"#,
            &[("/timestamp", r#""1732-01-21T12:12:43.645Z""#)],
        ),
    ]);
}
