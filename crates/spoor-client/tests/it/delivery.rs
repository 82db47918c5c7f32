//! Delivery under faults: exactly once by messageId, what is retried and what is not, the
//! queue policies, flush and close, batching limits, gzip and the blocking client.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spoor_client::{
    Backoff, BlockingClient, Client, ClientError, Config, CustomFields, Delivery, FieldSet,
    FullPolicy, Identify, Message, MessageType, Outcome, Track, Traits,
};

use crate::fault_server::{Fault, FaultServer};

/// A config with short waits, and a place the per-message deliveries land.
fn config(server: &FaultServer) -> (Config, Arc<Mutex<Vec<Delivery>>>) {
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&deliveries);
    let mut config = Config::new(&server.url, "wk_test");
    config.backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(40),
    };
    config.request_timeout = Duration::from_millis(800);
    config.flush_interval = Duration::from_millis(50);
    config.on_delivery = Some(Arc::new(move |delivery| {
        sink.lock().expect("lock").push(delivery);
    }));
    (config, deliveries)
}

fn track(n: usize) -> Message {
    Track::new("Item Viewed")
        .user_id(format!("user-{n}"))
        .build()
        .expect("valid track")
}

#[tokio::test]
async fn faults_end_with_every_message_stored_exactly_once() {
    let server = FaultServer::start(vec![
        Fault::Status(500),
        Fault::RetryAfter(429, 0),
        Fault::DropAfterAccept,
        Fault::DropBeforeAccept,
        Fault::SlowAfterAccept(Duration::from_millis(1500)),
        Fault::Status(503),
        Fault::DropAfterAccept,
        Fault::Status(502),
        Fault::RetryAfter(408, 0),
        Fault::Status(460),
        Fault::Status(410),
    ]);
    let (mut config, deliveries) = config(&server);
    config.batch_size = 50;
    let client = Client::new(config).expect("client");
    let mut sent = HashSet::new();
    for n in 0..1000 {
        sent.insert(client.enqueue(track(n)).await.expect("queued"));
    }
    client.close().await;

    let stats = client.stats();
    assert_eq!(stats.delivered, 1000, "{stats:?}");
    assert_eq!((stats.failed, stats.rejected), (0, 0), "{stats:?}");
    assert!(stats.retried > 0, "{stats:?}");
    let state = server.lock();
    let stored: HashSet<String> = state.stored.keys().cloned().collect();
    assert_eq!(stored, sent, "every id stored, none missing, none foreign");
    assert!(state.stored.values().all(|count| *count == 1));
    assert_eq!(state.messages.len(), 1000);
    assert!(
        state.duplicates >= 100,
        "responses lost after acceptance were resent and deduplicated: {}",
        state.duplicates
    );
    let deliveries = deliveries.lock().expect("lock");
    assert_eq!(deliveries.len(), 1000);
    assert!(
        deliveries
            .iter()
            .all(|d| matches!(d.outcome, Outcome::Delivered { status: 200 }))
    );
    assert!(deliveries.iter().any(|d| d.attempts > 1));
    let retried_requests: Vec<_> = state
        .requests
        .iter()
        .filter_map(|r| r.headers.get("x-retry-count"))
        .collect();
    assert!(!retried_requests.is_empty(), "retries carry X-Retry-Count");
}

#[tokio::test]
async fn retried_batches_carry_the_same_message_ids() {
    let server = FaultServer::start(vec![Fault::Status(500), Fault::DropAfterAccept]);
    let (config, _) = config(&server);
    let client = Client::new(config).expect("client");
    for n in 0..3 {
        client.enqueue(track(n)).await.expect("queued");
    }
    client.flush().await;
    let state = server.lock();
    let ids = |i: usize| -> Vec<String> {
        state.requests[i].body["batch"]
            .as_array()
            .expect("batch")
            .iter()
            .map(|m| m["messageId"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(state.requests.len(), 3);
    assert_eq!(ids(0), ids(1));
    assert_eq!(ids(1), ids(2));
    assert_eq!(state.duplicates, 3);
}

#[tokio::test]
async fn bad_request_is_rejected_with_the_body_and_never_retried() {
    let server = FaultServer::start(vec![]);
    server.otherwise(Fault::BadRequest);
    let (config, deliveries) = config(&server);
    let client = Client::new(config).expect("client");
    for n in 0..3 {
        client.enqueue(track(n)).await.expect("queued");
    }
    client.flush().await;
    assert_eq!(server.lock().requests.len(), 1, "a 400 is not retried");
    let stats = client.stats();
    assert_eq!((stats.rejected, stats.retried, stats.delivered), (3, 0, 0));
    for delivery in deliveries.lock().expect("lock").iter() {
        match &delivery.outcome {
            Outcome::Rejected { status, body } => {
                assert_eq!(*status, 400);
                assert!(body.contains("malformed JSON"), "{body}");
            }
            other => panic!("expected rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn other_client_errors_and_501_are_not_retried() {
    for status in [401, 403, 404, 413, 501, 505] {
        let server = FaultServer::start(vec![]);
        server.otherwise(Fault::Status(status));
        let (config, _) = config(&server);
        let client = Client::new(config).expect("client");
        client.enqueue(track(1)).await.expect("queued");
        client.close().await;
        assert_eq!(server.lock().requests.len(), 1, "status {status}");
        assert_eq!(client.stats().rejected, 1, "status {status}");
    }
}

#[tokio::test]
async fn retries_run_out_and_every_message_is_reported_failed() {
    let server = FaultServer::start(vec![]);
    server.otherwise(Fault::Status(503));
    let (mut config, deliveries) = config(&server);
    config.max_retries = 2;
    let client = Client::new(config).expect("client");
    client.enqueue(track(1)).await.expect("queued");
    client.enqueue(track(2)).await.expect("queued");
    client.flush().await;
    assert_eq!(server.lock().requests.len(), 3, "one try and two retries");
    let stats = client.stats();
    assert_eq!((stats.failed, stats.retried), (2, 4));
    let deliveries = deliveries.lock().expect("lock");
    assert!(deliveries.iter().all(|d| d.attempts == 3
        && matches!(&d.outcome, Outcome::Failed { reason } if reason.contains("503"))));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = FaultServer::start(vec![Fault::RetryAfter(429, 1)]);
    let (config, _) = config(&server);
    let client = Client::new(config).expect("client");
    let started = Instant::now();
    client.enqueue(track(1)).await.expect("queued");
    client.flush().await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}, the backoff alone is at most 40 ms",
        started.elapsed()
    );
    assert_eq!(client.stats().delivered, 1);
}

#[tokio::test]
async fn slow_responses_beyond_the_timeout_are_retried() {
    let server = FaultServer::start(vec![Fault::Slow(Duration::from_millis(1200))]);
    let (config, _) = config(&server);
    let client = Client::new(config).expect("client");
    client.enqueue(track(1)).await.expect("queued");
    client.close().await;
    assert_eq!(client.stats().delivered, 1);
    assert!(server.lock().requests.len() >= 2);
}

#[tokio::test]
async fn full_queue_with_fail_policy_refuses_and_drops_nothing() {
    let server = FaultServer::start(vec![Fault::Slow(Duration::from_millis(300))]);
    let (mut config, _) = config(&server);
    config.when_full = FullPolicy::Fail;
    config.queue_capacity = 2;
    config.batch_size = 1;
    config.concurrency = 1;
    let client = Client::new(config).expect("client");
    let (mut accepted, mut refused) = (HashSet::new(), 0);
    for n in 0..20 {
        match client.enqueue(track(n)).await {
            Ok(id) => {
                accepted.insert(id);
            }
            Err(ClientError::QueueFull { capacity }) => {
                assert_eq!(capacity, 2);
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "the queue filled up");
    client.close().await;
    let stored: HashSet<String> = server.lock().stored.keys().cloned().collect();
    assert_eq!(stored, accepted, "every accepted message delivered");
    assert_eq!(client.stats().queued as usize, accepted.len());
}

#[tokio::test]
async fn full_queue_with_wait_policy_waits_and_delivers_all() {
    let server = FaultServer::start(vec![Fault::Slow(Duration::from_millis(200))]);
    let (mut config, _) = config(&server);
    config.queue_capacity = 1;
    config.batch_size = 2;
    config.concurrency = 1;
    let client = Client::new(config).expect("client");
    for n in 0..30 {
        client.enqueue(track(n)).await.expect("waits, never fails");
    }
    client.close().await;
    assert_eq!(server.lock().stored.len(), 30);
}

#[tokio::test]
async fn flush_returns_after_every_outcome_and_close_stops_intake() {
    let server = FaultServer::start(vec![
        Fault::Status(500),
        Fault::Slow(Duration::from_millis(100)),
    ]);
    let (config, deliveries) = config(&server);
    let client = Client::new(config).expect("client");
    for n in 0..250 {
        client.enqueue(track(n)).await.expect("queued");
    }
    client.flush().await;
    assert_eq!(deliveries.lock().expect("lock").len(), 250);
    assert_eq!(server.lock().stored.len(), 250);
    client
        .enqueue(track(999))
        .await
        .expect("still open after flush");
    client.close().await;
    assert_eq!(server.lock().stored.len(), 251);
    assert!(matches!(
        client.enqueue(track(1000)).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn batches_are_cut_by_count_bytes_and_time() {
    let server = FaultServer::start(vec![]);
    let (mut config, _) = config(&server);
    config.batch_size = 10;
    config.flush_interval = Duration::from_millis(100);
    let client = Client::new(config).expect("client");
    for n in 0..25 {
        client.enqueue(track(n)).await.expect("queued");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    {
        let state = server.lock();
        let sizes: Vec<usize> = state
            .requests
            .iter()
            .map(|r| r.body["batch"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(
            sizes,
            vec![10, 10, 5],
            "the last five went by the timer, without a flush"
        );
    }
    client.close().await;
    let (mut config, _) = self::config(&server);
    config.batch_size = 100;
    let client = Client::new(config).expect("client");
    let big = "x".repeat(30_000);
    for n in 0..40 {
        let mut custom = CustomFields::new(FieldSet::TrackProperties);
        custom
            .insert("blob", Value::String(big.clone()))
            .expect("custom");
        let message = Track::new("Big")
            .user_id(format!("u{n}"))
            .properties(custom)
            .build()
            .expect("valid");
        client.enqueue(message).await.expect("under 32 KB");
    }
    client.close().await;
    let state = server.lock();
    assert_eq!(state.stored.len(), 65);
    for request in &state.requests {
        assert!(
            request.json_bytes < 500 * 1024,
            "{} bytes",
            request.json_bytes
        );
    }
    assert!(
        state.requests.iter().any(|r| r.json_bytes > 400 * 1024),
        "big batches were filled"
    );
}

#[tokio::test]
async fn oversize_and_invalid_messages_are_refused_before_queueing() {
    let server = FaultServer::start(vec![]);
    let (config, _) = config(&server);
    let client = Client::new(config).expect("client");
    let mut custom = CustomFields::new(FieldSet::TrackProperties);
    custom
        .insert("blob", Value::String("x".repeat(40_000)))
        .expect("custom");
    let big = Track::new("Big")
        .user_id("u")
        .properties(custom)
        .build()
        .expect("valid");
    let err = client.enqueue(big).await.expect_err("over 32 KB");
    assert!(err.to_string().contains("32 KB"), "{err}");
    let anonymous =
        Message::from_value(json!({"type": "track", "event": "x"}), None).expect("parse");
    let err = client.enqueue(anonymous).await.expect_err("no ids");
    assert!(err.to_string().contains("userId or anonymousId"), "{err}");
    client.close().await;
    assert_eq!(client.stats().queued, 0);
    assert!(server.lock().requests.is_empty());
}

#[tokio::test]
async fn the_envelope_has_auth_write_key_sent_at_and_library() {
    let server = FaultServer::start(vec![]);
    let (mut config, _) = config(&server);
    config.gzip = true;
    let client = Client::new(config).expect("client");
    let identify = Identify::new()
        .user_id("u1")
        .message_id("my-own-id")
        .traits(Traits::new().first_name("Ada").last_name("Lovelace"))
        .build()
        .expect("valid");
    client.enqueue(identify).await.expect("queued");
    client.close().await;
    let state = server.lock();
    let request = &state.requests[0];
    assert_eq!(request.headers["authorization"], "Basic d2tfdGVzdDo=");
    assert_eq!(request.headers["content-encoding"], "gzip");
    assert!(request.wire_bytes < request.json_bytes);
    assert_eq!(request.body["writeKey"], "wk_test");
    assert!(
        request.body["sentAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    let message = &request.body["batch"][0];
    assert_eq!(message["messageId"], "my-own-id");
    assert_eq!(message["type"], "identify");
    assert_eq!(message["traits"]["name"], "Ada Lovelace");
    assert_eq!(message["context"]["library"]["name"], "spoor");
    assert!(message["timestamp"].as_str().is_some());
    let _ = MessageType::Identify;
}

#[test]
fn blocking_client_delivers_outside_a_runtime() {
    let server = FaultServer::start(vec![Fault::Status(500)]);
    let (config, deliveries) = config(&server);
    let client = BlockingClient::new(config).expect("client");
    for n in 0..5 {
        client
            .enqueue_tagged(track(n), n as u64 + 1)
            .expect("queued");
    }
    client.flush().expect("flush");
    assert_eq!(deliveries.lock().expect("lock").len(), 5);
    let stats = client.close().expect("close");
    assert_eq!(stats.delivered, 5);
    let mut tags: Vec<u64> = deliveries
        .lock()
        .expect("lock")
        .iter()
        .map(|d| d.tag)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, vec![1, 2, 3, 4, 5]);
    assert_eq!(server.lock().stored.len(), 5);
}

#[tokio::test]
async fn blocking_client_refuses_to_run_inside_a_runtime() {
    let server = FaultServer::start(vec![]);
    let (config, _) = config(&server);
    assert!(matches!(
        BlockingClient::new(config),
        Err(ClientError::InsideRuntime)
    ));
}

#[tokio::test]
async fn enqueue_many_refuses_the_invalid_and_delivers_the_rest() {
    let server = FaultServer::start(vec![Fault::DropAfterAccept]);
    let (mut config, deliveries) = config(&server);
    config.batch_size = 7;
    let client = Client::new(config).expect("client");
    let mut chunk: Vec<(Message, u64)> = (0..20).map(|n| (track(n), n as u64)).collect();
    chunk[5].0 =
        Message::from_value(json!({"type": "track", "event": "no ids"}), None).expect("parse");
    let results = client.enqueue_many(chunk).await;
    assert_eq!(results.len(), 20);
    assert!(matches!(&results[5], Err(ClientError::Invalid { .. })));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 19);
    client.close().await;
    assert_eq!(client.stats().queued, 19);
    assert_eq!(server.lock().stored.len(), 19);
    let mut tags: Vec<u64> = deliveries
        .lock()
        .expect("lock")
        .iter()
        .map(|d| d.tag)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..20).filter(|n| *n != 5).collect::<Vec<u64>>());
}

/// A clock stuck at one instant.
struct FixedClock(spoor_client::Timestamp);

impl spoor_client::Clock for FixedClock {
    fn now(&self) -> spoor_client::Timestamp {
        self.0
    }
}

#[tokio::test]
async fn the_injected_clock_sets_sent_at_and_missing_timestamps() {
    let server = FaultServer::start(vec![]);
    let (mut config, _) = config(&server);
    let fixed = spoor_client::Timestamp::parse("2030-01-02T03:04:05.678Z").expect("timestamp");
    config.clock = Arc::new(FixedClock(fixed));
    let client = Client::new(config).expect("client");
    client.enqueue(track(1)).await.expect("queued");
    let own = Track::new("Past")
        .user_id("u")
        .timestamp(spoor_client::Timestamp::parse("2020-05-05T00:00:00Z").expect("timestamp"))
        .build()
        .expect("valid");
    client.enqueue(own).await.expect("queued");
    client.close().await;
    let state = server.lock();
    let body = &state.requests[0].body;
    assert_eq!(body["sentAt"], "2030-01-02T03:04:05.678Z");
    assert_eq!(
        body["batch"][0]["timestamp"], "2030-01-02T03:04:05.678Z",
        "stamped at enqueue"
    );
    assert_eq!(
        body["batch"][1]["timestamp"], "2020-05-05T00:00:00.000Z",
        "the caller's time kept"
    );
}

#[tokio::test]
async fn library_context_is_added_whatever_context_the_message_has() {
    let server = FaultServer::start(vec![]);
    let (config, _) = config(&server);
    let client = Client::new(config).expect("client");
    for (n, context) in [
        json!({"ip": "1.2.3.4", "library": {"name": "mine"}}),
        Value::Null,
    ]
    .into_iter()
    .enumerate()
    {
        let message = Message::from_value(
            json!({"type": "track", "userId": "u", "event": "E", "messageId": null, "timestamp": null, "context": context, "properties": {"n": n}}),
            None,
        )
        .expect("parse");
        client.enqueue(message).await.expect("queued");
    }
    client.close().await;
    let state = server.lock();
    let batch = state.requests[0].body["batch"]
        .as_array()
        .expect("batch")
        .clone();
    assert_eq!(
        batch[0]["context"]["ip"], "1.2.3.4",
        "the caller's context is kept"
    );
    for message in &batch {
        assert_eq!(message["context"]["library"]["name"], "spoor");
        assert_eq!(message["messageId"].as_str().map(str::len), Some(36));
        assert!(
            message["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    let raw = &state.requests[0].raw;
    assert_eq!(
        raw.matches(r#""context":"#).count(),
        2,
        "one context per message: {raw}"
    );
    assert_eq!(
        raw.matches(r#""messageId":"#).count(),
        2,
        "one messageId per message: {raw}"
    );
    assert_eq!(
        raw.matches(r#""timestamp":"#).count(),
        2,
        "one timestamp per message: {raw}"
    );
}
