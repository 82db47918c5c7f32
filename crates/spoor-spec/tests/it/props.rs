//! Property tests: parse-serialize-parse is the identity for valid messages, and no input
//! makes the parser, the validator, the normalizer or the helpers panic.

use proptest::prelude::*;
use spoor_spec::naming::snake_case;
use spoor_spec::{
    Batch, Decimal, Map, Message, MessageType, NormalizeCtx, Timestamp, Value, normalize, validate,
};

/// Keys the validator and the normalizer look at, mixed with free ones.
pub const KEYS: &[&str] = &[
    "type",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "event",
    "name",
    "category",
    "messageId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "receivedAt",
    "context",
    "integrations",
    "traits",
    "properties",
    "channel",
    "revenue",
    "currency",
    "value",
    "age",
    "birthday",
    "createdAt",
    "created_at",
    "firstName",
    "first_name",
    "lastName",
    "last_name",
    "address",
    "company",
    "postalCode",
    "employee_count",
    "id",
    "email",
    "employees",
    "keywords",
    "library",
    "page",
    "ip",
    "active",
    "screen",
    "width",
    "All",
    "batch",
    "custom",
    "",
];

/// JSON numbers as text, including exponents, long fractions and huge values.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?"
            .prop_map(|text| { serde_json::from_str(&text).unwrap_or(Value::Null) }),
    ]
}

fn strings() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        Just("2024-01-02T03:04:05.678Z".to_owned()),
        Just("1990-05-17".to_owned()),
        Just("USD".to_owned()),
        Just("usd".to_owned()),
        Just("19.99".to_owned()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:?[0-9]{2})?",
    ]
}

/// Arbitrary JSON whose object keys are mostly ones the code looks at.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        strings().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

pub fn kind() -> impl Strategy<Value = MessageType> {
    prop::sample::select(MessageType::ALL.to_vec())
}

/// Runs validation and normalization; both must not panic, and normalizing twice is fine.
fn exercise(mut message: Message) {
    let report = validate(&message);
    for problem in &report.problems {
        assert!(!problem.message.is_empty());
    }
    let mut new_id = || "generated".to_owned();
    let mut ctx = NormalizeCtx {
        received_at: Timestamp::from_unix_millis(1_700_000_000_000),
        new_message_id: &mut new_id,
    };
    normalize(&mut message, &mut ctx);
    assert!(message.message_id().is_some_and(|id| !id.is_empty()));
    assert!(message.received_at().is_some());
    let again = validate(&message);
    drop(again);
    normalize(&mut message, &mut ctx);
}

/// A valid message of a kind, with arbitrary custom properties, traits and context keys.
fn valid_message() -> impl Strategy<Value = Value> {
    (
        kind(),
        "[a-zA-Z0-9_-]{1,20}",
        prop::option::of("[a-f0-9-]{1,36}"),
        prop::collection::vec(("[a-z][a-zA-Z_ ]{0,12}", json()), 0..6),
        prop::option::of("-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,8})?"),
    )
        .prop_map(|(kind, user_id, message_id, custom, revenue)| {
            let mut body = Map::new();
            body.insert("type".to_owned(), Value::from(kind.as_str()));
            body.insert("userId".to_owned(), Value::from(user_id.clone()));
            if let Some(id) = message_id {
                body.insert("messageId".to_owned(), Value::from(id));
            }
            let mut extra = Map::new();
            for (k, v) in custom {
                extra.insert(format!("custom {k}"), v);
            }
            match kind {
                MessageType::Track => {
                    body.insert("event".to_owned(), Value::from("Order Completed"));
                    if let Some(revenue) = revenue {
                        let revenue: Value = serde_json::from_str(&revenue).unwrap_or(Value::Null);
                        extra.insert("revenue".to_owned(), revenue);
                    }
                    body.insert("properties".to_owned(), Value::Object(extra));
                }
                MessageType::Identify => {
                    body.insert("traits".to_owned(), Value::Object(extra));
                }
                MessageType::Group => {
                    body.insert("groupId".to_owned(), Value::from("g1"));
                    body.insert("traits".to_owned(), Value::Object(extra));
                }
                MessageType::Page | MessageType::Screen => {
                    body.insert("properties".to_owned(), Value::Object(extra));
                }
                MessageType::Alias => {
                    body.insert("previousId".to_owned(), Value::from("anon"));
                    body.insert("context".to_owned(), Value::Object(extra));
                }
            }
            Value::Object(body)
        })
}

proptest! {
    #[test]
    fn parse_serialize_parse_is_the_identity(value in valid_message()) {
        let text = serde_json::to_vec(&value).expect("serializes");
        let message = Message::from_slice(&text, None).expect("parses");
        let report = validate(&message);
        prop_assert!(report.is_ok(), "{:?}", report.problems);
        let again = message.to_vec();
        prop_assert_eq!(&again, &text);
        let reparsed = Message::from_slice(&again, None).expect("reparses");
        prop_assert_eq!(reparsed.clone(), message);
        prop_assert_eq!(reparsed.into_value(), value);
    }

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), kind in prop::option::of(kind())) {
        if let Ok(message) = Message::from_slice(&bytes, kind) {
            exercise(message);
        }
        if let Ok(batch) = Batch::from_slice(&bytes) {
            drop(spoor_spec::validate::validate_envelope(&batch));
            for message in batch.into_messages().into_iter().flatten() {
                exercise(message);
            }
        }
    }

    #[test]
    fn no_panic_on_arbitrary_json(value in json(), kind in prop::option::of(kind())) {
        if let Ok(message) = Message::from_value(value.clone(), kind) {
            exercise(message);
        }
        let wrapped = serde_json::json!({"batch": [value.clone()], "context": value.clone(), "sentAt": value});
        if let Ok(batch) = Batch::from_value(wrapped) {
            drop(spoor_spec::validate::validate_envelope(&batch));
            for message in batch.into_messages().into_iter().flatten() {
                exercise(message);
            }
        }
    }

    #[test]
    fn no_panic_on_arbitrary_objects_of_each_type(
        fields in prop::collection::vec((prop::sample::select(KEYS), json()), 0..12),
        kind in kind(),
    ) {
        let mut body: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        body.insert("type".to_owned(), Value::from(kind.as_str()));
        let message = Message::from_value(Value::Object(body), None).expect("typed object");
        exercise(message);
    }

    #[test]
    fn timestamps_never_panic_and_round_trip(text in strings()) {
        if let Ok(ts) = Timestamp::parse(&text) {
            let shown = ts.to_string();
            let back = Timestamp::parse(&shown).expect("own output parses");
            prop_assert_eq!(back.unix_millis(), ts.unix_millis());
        }
        drop(Timestamp::parse_date_or_timestamp(&text));
    }

    #[test]
    fn decimals_never_panic_and_display_exactly(text in "\\PC*|-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{1,10})?") {
        if let Ok(d) = text.parse::<Decimal>() {
            let shown = d.to_string();
            let back: Decimal = shown.parse().expect("own output parses");
            prop_assert_eq!(back, d);
            prop_assert_eq!(back.scale(), d.scale());
        }
    }

    #[test]
    fn snake_case_is_snake_and_idempotent(text in "\\PC*|[a-zA-Z0-9 _$.-]{0,30}") {
        let once = snake_case(&text);
        prop_assert!(once.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        prop_assert_eq!(snake_case(&once), once.clone());
    }
}

proptest! {
    #[test]
    fn clock_skew_correction_never_overflows(
        timestamp in any::<i64>(),
        sent_at in any::<i64>(),
        received in any::<i64>(),
    ) {
        let text = |nanos: i64| Timestamp::from_unix_nanos(nanos).to_string();
        let body = serde_json::json!({
            "type": "track", "userId": "u", "event": "E",
            "timestamp": text(timestamp), "sentAt": text(sent_at),
        });
        let mut message = Message::from_value(body, None).expect("parses");
        prop_assert!(validate(&message).is_ok());
        let mut new_id = || "generated".to_owned();
        let mut ctx = NormalizeCtx {
            received_at: Timestamp::from_unix_nanos(received),
            new_message_id: &mut new_id,
        };
        normalize(&mut message, &mut ctx);
        let corrected = message.timestamp().map(Timestamp::parse);
        prop_assert!(matches!(corrected, Some(Ok(_))), "{:?}", message.timestamp());
    }
}
