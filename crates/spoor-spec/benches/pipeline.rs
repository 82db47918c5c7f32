//! The collector's per-message work on a realistic batch: 100 track events of about 600
//! bytes each, as a browser library sends them (full context per event, batch-level sentAt).
//!
//! - `serde_json_value`: the baseline, `serde_json::from_slice::<Value>` of the same bytes.
//! - `spoor_parse_merge`: `Batch::from_slice` and `Batch::into_messages` only, to show what
//!   validation and normalization add.
//! - `spoor_pipeline`: `Batch::from_slice`, the merge of batch-level fields into each item,
//!   `Message::from_value`, `validate` and `normalize`.
//! - `items_value_to_bytes` and `items_borrowed_to_bytes`: from each item's text to its stored
//!   bytes (merge, validate, normalize, serialize), through `serde_json::Value` and through
//!   the borrowed tree (`spoor_spec::borrowed`), as the collector's batch path does.
//!
//! Run: `cargo bench -p spoor-spec --bench pipeline -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spoor_spec::{
    Batch, BorrowedMessage, Message, Node, NormalizeCtx, Timestamp, Value, normalize,
    normalize_borrowed, validate, validate_borrowed,
};

/// One browser-like track event; `i` varies the ids so no two items are equal.
fn event(i: usize) -> Value {
    serde_json::json!({
        "type": "track",
        "event": "Product Added",
        "userId": format!("user-{:06}", i * 7919 % 1_000_000),
        "anonymousId": format!("6f0d3c1e-9b2a-4c55-8e1f-{:012x}", i * 104_729),
        "messageId": format!("ajs-next-1714564800{:03}-{:08x}-a1b2c3d4", i, i * 2_654_435_761usize % 4_294_967_296),
        "timestamp": "2024-05-01T12:00:00.123Z",
        "properties": {
            "product_id": format!("sku-{}", 1000 + i),
            "name": "Monopoly",
            "price": 19.99,
            "quantity": 1,
            "revenue": 19.99,
            "currency": "USD",
        },
        "context": {
            "page": {
                "path": "/products/monopoly",
                "referrer": "https://www.google.com/",
                "search": "",
                "title": "Monopoly | Example Store",
                "url": "https://store.example.com/products/monopoly"
            },
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "locale": "en-US"
        },
        "integrations": {}
    })
}

/// The batch body as bytes, and the average size of one item.
fn batch_bytes() -> (Vec<u8>, usize) {
    let items: Vec<Value> = (0..100).map(event).collect();
    let item_bytes: usize = items
        .iter()
        .map(|item| serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0))
        .sum();
    let body = serde_json::json!({
        "batch": items,
        "context": { "library": { "name": "analytics.js", "version": "next-1.70.0" } },
        "sentAt": "2024-05-01T12:00:00.456Z",
        "writeKey": "wk_0123456789abcdef"
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (bytes, item_bytes / 100)
}

fn pipeline(c: &mut Criterion) {
    let (bytes, item_size) = batch_bytes();
    eprintln!(
        "batch: {} bytes, 100 track events of {item_size} bytes on average",
        bytes.len()
    );
    let received_at =
        Timestamp::parse("2024-05-01T12:00:00.789Z").unwrap_or(Timestamp::from_unix_millis(0));

    let mut group = c.benchmark_group("batch_100_track");
    group.throughput(Throughput::Elements(100));
    group.bench_function("serde_json_value", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(&bytes)).unwrap_or(Value::Null);
            black_box(value)
        })
    });
    group.bench_function("spoor_parse_merge", |b| {
        b.iter(|| {
            let batch = match Batch::from_slice(black_box(&bytes)) {
                Ok(batch) => batch,
                Err(_) => return 0,
            };
            let messages = batch.into_messages();
            let count = messages.iter().filter(|m| m.is_ok()).count();
            black_box(messages);
            count
        })
    });
    group.bench_function("spoor_pipeline", |b| {
        let mut counter = 0u64;
        let mut new_id = || {
            counter += 1;
            format!("generated-{counter}")
        };
        b.iter(|| {
            let mut ctx = NormalizeCtx {
                received_at,
                new_message_id: &mut new_id,
            };
            let batch = match Batch::from_slice(black_box(&bytes)) {
                Ok(batch) => batch,
                Err(_) => return 0,
            };
            let mut accepted = 0;
            for message in batch.into_messages() {
                let Ok(mut message) = message else { continue };
                let report = validate(&message);
                if report.is_ok() {
                    normalize(&mut message, &mut ctx);
                    accepted += 1;
                }
                black_box(message);
            }
            assert_eq!(accepted, 100);
            accepted
        })
    });
    // Item by item from each item's text to the stored bytes, as the collector does: the
    // `Value` path and the borrowed tree.
    let (items, envelope) = match Batch::from_slice(&bytes) {
        Ok(batch) => {
            let items: Vec<String> = batch.items.iter().map(Value::to_string).collect();
            let envelope = Batch {
                items: Vec::new(),
                ..batch
            };
            (items, envelope)
        }
        Err(_) => (Vec::new(), Batch::default()),
    };
    group.bench_function("items_value_to_bytes", |b| {
        let mut new_id = || "generated".to_owned();
        b.iter(|| {
            let mut ctx = NormalizeCtx {
                received_at,
                new_message_id: &mut new_id,
            };
            let mut stored = 0;
            for text in &items {
                let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(black_box(text))
                else {
                    continue;
                };
                envelope.merge_into(&mut map);
                let Ok(mut message) = Message::from_value(Value::Object(map), None) else {
                    continue;
                };
                if validate(&message).is_ok() {
                    normalize(&mut message, &mut ctx);
                    stored += black_box(message.to_vec()).len();
                }
            }
            stored
        })
    });
    group.bench_function("items_borrowed_to_bytes", |b| {
        let mut new_id = || "generated".to_owned();
        b.iter(|| {
            let mut ctx = NormalizeCtx {
                received_at,
                new_message_id: &mut new_id,
            };
            let mut stored = 0;
            for text in &items {
                let Ok(Node::Object(mut map)) = Node::parse(black_box(text)) else {
                    continue;
                };
                envelope.merge_into_borrowed(&mut map);
                let Ok(mut message) = BorrowedMessage::from_object(map, None) else {
                    continue;
                };
                if validate_borrowed(&message).is_ok() {
                    normalize_borrowed(&mut message, &mut ctx);
                    let mut out = Vec::new();
                    message.body().write_json(&mut out);
                    stored += black_box(out).len();
                }
            }
            stored
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
