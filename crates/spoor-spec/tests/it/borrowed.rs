//! The borrowed tree against `serde_json::Value`: for the same text and batch envelope, the
//! merge, the type, every validation problem and the normalized bytes are the same (or the
//! tree refuses the text, and the collector takes the `Value` path).

use std::path::Path;

use proptest::prelude::*;
use spoor_spec::{
    Batch, BorrowedMessage, Map, Message, MessageType, Node, NodeError, NormalizeCtx, Timestamp,
    Value, normalize, normalize_borrowed, validate, validate_borrowed,
};

use crate::props::{json, kind};

/// Runs both paths over `text` as a batch item of `batch` (or a message with `implied`
/// type) and fails on any difference.
fn same_on_both_paths(
    text: &str,
    batch: &Batch,
    implied: Option<MessageType>,
) -> Result<(), TestCaseError> {
    let value = serde_json::from_str::<Value>(text);
    let node = Node::parse(text);
    let (mut map, mut object) = match (value, node) {
        (Ok(Value::Object(map)), Ok(Node::Object(object))) => (map, object),
        (Ok(value), Ok(node)) => {
            let mut out = Vec::new();
            node.write_json(&mut out);
            prop_assert_eq!(String::from_utf8_lossy(&out), value.to_string());
            return Ok(());
        }
        (_, Err(NodeError::Unsupported(_))) | (Err(_), Err(NodeError::Json(_))) => return Ok(()),
        (value, node) => {
            prop_assert!(false, "{text}: {value:?} against {node:?}");
            return Ok(());
        }
    };
    batch.merge_into(&mut map);
    batch.merge_into_borrowed(&mut object);
    let (mut message, mut borrowed) = match (
        Message::from_value(Value::Object(map), implied),
        BorrowedMessage::from_object(object, implied),
    ) {
        (Ok(message), Ok(borrowed)) => (message, borrowed),
        (Err(a), Err((b, _))) => {
            prop_assert_eq!(a, b);
            return Ok(());
        }
        (a, b) => {
            prop_assert!(false, "{text}: {a:?} against {b:?}");
            return Ok(());
        }
    };
    prop_assert_eq!(message.kind(), borrowed.kind());
    prop_assert_eq!(validate(&message), validate_borrowed(&borrowed), "{}", text);
    let received_at = Timestamp::from_unix_millis(1_700_000_000_123);
    let mut new_id = || "generated".to_owned();
    normalize(
        &mut message,
        &mut NormalizeCtx {
            received_at,
            new_message_id: &mut new_id,
        },
    );
    normalize_borrowed(
        &mut borrowed,
        &mut NormalizeCtx {
            received_at,
            new_message_id: &mut new_id,
        },
    );
    let mut out = Vec::new();
    borrowed.body().write_json(&mut out);
    let expected = message.to_vec();
    prop_assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&expected),
        "{}",
        text
    );
    Ok(())
}

fn envelope(text: &str) -> Batch {
    Batch::from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn fixed_cases_agree() {
    let plain = envelope(r#"{"batch":[]}"#);
    let full = envelope(
        r#"{"batch":[],"context":{"library":{"name":"b"},"ip":"1.2.3.4","locale":"en"},
            "integrations":{"All":false},"sentAt":"2024-05-01T12:00:00.456Z"}"#,
    );
    let cases = [
        r#"{"type":"track","event":"E","userId":"u","properties":{"a":1.0,"b":1E5,"c":-0,"d":12345678901234567890123456789,"price":1e400,"revenue":"19.99","currency":"usd"}}"#,
        r#" { "type" : "track" , "event" : "E\u00e9\u0041\/x\"\\\b\f\n\r\t\u0001\u007f\ud83d\ude00" , "userId" : 42 , "anonymousId": 1.5e3, "context" : { "ip" : null , "library" : { "name" : 7 } } } "#,
        r#"{"type":"identify","userId":"u","traits":{"firstName":"Ada","lastName":"Lovelace","address":{"city":5}}}"#,
        r#"{"type":"identify","userId":"u","traits":{"first_name":"Ada","last_name":"L","name":null}}"#,
        r#"{"type":"group","groupId":7,"userId":"u","traits":{"employees":"12"}}"#,
        r#"{"type":"alias","userId":""}"#,
        r#"{"type":"page","anonymousId":"a","name":3,"properties":{"url":4,"keywords":["a",1]}}"#,
        r#"{"type":"track","userId":"u","event":"E","context":"x","integrations":null,"sentAt":null,"timestamp":"2024-05-01T12:00:00.123+02:00","messageId":""}"#,
        r#"{"type":"track","userId":"u","event":"E","sentAt":"2024-05-01T11:59:00Z","timestamp":"2024-05-01T11:58:00Z","receivedAt":"x","context":{"ip":"9.9.9.9"},"writeKey":"k"}"#,
        r#"{"type":"bogus"}"#,
        r#"{"type":7}"#,
        r#"{"type":null,"userId":"u"}"#,
        r#"{"userId":"u","userId":"v"}"#,
        r#"{"$serde_json::private::Number":"5"}"#,
        r#"[1,{"a":"b"}]"#,
        r#"{"a":"#,
    ];
    for batch in [&plain, &full] {
        for text in cases {
            for implied in [None, Some(MessageType::Track)] {
                same_on_both_paths(text, batch, implied).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

#[test]
fn library_fixtures_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for library in ["python", "node"] {
        for call in ["identify", "track", "page", "screen", "group", "alias"] {
            let read = |name: String| {
                let path = root.join(library).join(format!("{name}.json"));
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            };
            let item = read(call.to_owned());
            same_on_both_paths(&item, &envelope(r#"{"batch":[]}"#), None)
                .unwrap_or_else(|e| panic!("{e}"));
            let body = read(format!("batch-{call}"));
            let batch = envelope(&body);
            for item in &batch.items {
                let text = item.to_string();
                same_on_both_paths(&text, &batch, None).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_messages_agree(
        fields in prop::collection::vec((prop::sample::select(crate::props::KEYS), json()), 0..12),
        kind in prop::option::of(kind()),
        implied in prop::option::of(kind()),
        context in json(),
        sent_at in json(),
        pretty in any::<bool>(),
    ) {
        let mut body: Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if let Some(kind) = kind {
            body.insert("type".to_owned(), Value::from(kind.as_str()));
        }
        let body = Value::Object(body);
        let text = if pretty {
            serde_json::to_string_pretty(&body)
        } else {
            serde_json::to_string(&body)
        }
        .unwrap_or_default();
        let batch = Batch::from_value(serde_json::json!({
            "batch": [], "context": context.clone(), "integrations": context, "sentAt": sent_at,
        }))
        .unwrap_or_default();
        same_on_both_paths(&text, &batch, implied)?;
    }
}
