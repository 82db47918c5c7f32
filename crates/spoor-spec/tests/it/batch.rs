//! The batch envelope: splitting, merging batch-level fields into items (the item wins),
//! and parsing items.

use spoor_spec::{Batch, MessageType, ParseError};

use crate::util::json;

#[test]
fn batch_level_fields_merge_into_items_and_the_item_wins() {
    let batch = Batch::from_value(json(
        r#"{
            "batch": [
                {"type":"track","userId":"u","event":"A"},
                {"type":"identify","userId":"u","sentAt":"2024-01-01T00:00:09Z",
                 "context":{"ip":"9.9.9.9","library":{"name":"mine"}},
                 "integrations":{"All":false}}
            ],
            "context": {"ip":"1.1.1.1","library":{"name":"analytics-go","version":"3.3.0"}},
            "integrations": {"All":true,"Mixpanel":false},
            "sentAt": "2024-01-01T00:00:00Z",
            "writeKey": "wk",
            "messageId": "batch-1"
        }"#,
    ))
    .expect("a batch");
    assert_eq!(batch.write_key.as_deref(), Some("wk"));
    assert_eq!(batch.rest.get("messageId"), Some(&json(r#""batch-1""#)));
    let messages: Vec<_> = batch
        .into_messages()
        .into_iter()
        .map(|m| m.expect("parses"))
        .collect();
    assert_eq!(messages[0].kind(), MessageType::Track);
    assert_eq!(
        messages[0].clone().into_value(),
        json(
            r#"{"type":"track","userId":"u","event":"A",
                "context":{"ip":"1.1.1.1","library":{"name":"analytics-go","version":"3.3.0"}},
                "integrations":{"All":true,"Mixpanel":false},
                "sentAt":"2024-01-01T00:00:00Z"}"#
        )
    );
    // The item's own keys win, one level deep: its library is kept whole.
    assert_eq!(
        messages[1].clone().into_value(),
        json(
            r#"{"type":"identify","userId":"u","sentAt":"2024-01-01T00:00:09Z",
                "context":{"ip":"9.9.9.9","library":{"name":"mine"}},
                "integrations":{"All":false,"Mixpanel":false}}"#
        )
    );
}

#[test]
fn bad_items_fail_in_place() {
    let batch = Batch::from_value(json(
        r#"{"batch":[1,{"userId":"u"},{"type":"Track"},{"type":"page","userId":"u"}]}"#,
    ))
    .expect("a batch");
    let results = batch.into_messages();
    assert_eq!(results.len(), 4);
    assert_eq!(
        results[0].as_ref().err(),
        Some(&ParseError::NotAnObject { found: "number" })
    );
    assert_eq!(results[1].as_ref().err(), Some(&ParseError::MissingType));
    assert_eq!(
        results[2].as_ref().err().map(ParseError::code),
        Some("unknown_type")
    );
    // The value is quoted once, as JSON.
    let message = results[2]
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        message.starts_with("type: \"") && !message.contains("\\\""),
        "{message}"
    );
    assert!(results[3].is_ok());
}

#[test]
fn envelope_errors() {
    let cases = [
        ("[]", "not_an_object"),
        ("{}", "missing_batch"),
        (r#"{"batch":{}}"#, "missing_batch"),
        ("nope", "invalid_json"),
    ];
    for (body, code) in cases {
        let err = Batch::from_slice(body.as_bytes()).expect_err(body);
        assert_eq!(err.code(), code, "{body}");
    }
}

#[test]
fn envelope_round_trips() {
    let text = r#"{"batch":[{"type":"track","userId":"u","event":"E"}],"context":{"a":1},"integrations":{"All":true},"sentAt":"2024-01-01T00:00:00Z","writeKey":"k","messageId":"m","other":[1]}"#;
    let value = json(text);
    let batch = Batch::from_value(value.clone()).expect("a batch");
    assert_eq!(batch.into_value(), value);
    // A non-object context is kept (and reported by validate_envelope), never merged.
    let odd =
        json(r#"{"batch":[{"type":"track","userId":"u","event":"E"}],"context":"x","writeKey":5}"#);
    let batch = Batch::from_value(odd.clone()).expect("a batch");
    assert!(batch.context.is_none());
    assert_eq!(batch.clone().into_value(), odd);
    let item = batch.into_messages().remove(0).expect("parses");
    assert!(item.body().get("context").is_none());
}

#[test]
fn message_accessors_read_the_common_fields() {
    let message = spoor_spec::Message::from_value(
        json(
            r#"{"type":"page","userId":"u","anonymousId":"a","messageId":"m","name":"Home","category":"Docs","timestamp":"t","sentAt":"s","originalTimestamp":"o","receivedAt":"r","channel":"browser","version":2,"context":{},"integrations":{"All":true},"properties":{}}"#,
        ),
        None,
    )
    .expect("parses");
    assert_eq!(
        (
            message.user_id(),
            message.anonymous_id(),
            message.message_id(),
            message.name(),
            message.category()
        ),
        (Some("u"), Some("a"), Some("m"), Some("Home"), Some("Docs"))
    );
    assert_eq!(
        (
            message.timestamp(),
            message.sent_at(),
            message.original_timestamp(),
            message.received_at(),
            message.channel()
        ),
        (Some("t"), Some("s"), Some("o"), Some("r"), Some("browser"))
    );
    assert_eq!(message.version(), Some(&json("2")));
    assert!(message.context().is_some() && message.properties().is_some());
    assert_eq!(message.integrations().map(|i| i.len()), Some(1));
    assert_eq!(
        (
            message.event(),
            message.group_id(),
            message.previous_id(),
            message.traits()
        ),
        (None, None, None, None)
    );
}
