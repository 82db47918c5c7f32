//! Crash safety of `spoor serve`: concurrent senders post batches while the server is killed
//! with SIGKILL at random moments and restarted on the same data directory. Every message that
//! got a 200 must be in `messages` afterwards, exactly once; messages whose request failed are
//! sent again after the last restart (dedupe by messageId makes that safe), and so are the
//! acknowledged ones, and then every message must be there exactly once.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::util::{Server, TestDir, query, query_count};

/// Concurrent senders.
const SENDERS: usize = 6;
/// Messages per batch.
const BATCH: usize = 20;
/// SIGKILLs during the run.
const KILLS: usize = 5;
/// A small dedupe memtable, so the dedupe index's runs are written and merged all the time
/// and the kills land in the middle of that too (the default holds 25,000 ids, more than
/// this test sends).
const SERVE_ARGS: &[&str] = &["--dedupe-memtable", "40"];

/// What one sender saw.
#[derive(Debug, Default)]
struct Sent {
    acknowledged: Vec<String>,
    unacknowledged: Vec<String>,
}

#[test]
fn acknowledged_messages_survive_sigkill_exactly_once() {
    let started = Instant::now();
    let data = TestDir::new("crash");
    let mut server = Server::start_with(data.path(), SERVE_ARGS);
    let write_key = server.write_key.clone();
    let base_url = Arc::new(RwLock::new(server.url()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut random = Random::new();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");

    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            runtime.spawn(send_until_stopped(
                sender,
                client.clone(),
                Arc::clone(&base_url),
                write_key.clone(),
                Arc::clone(&stop),
            ))
        })
        .collect();

    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(random.between(300, 1500)));
        let addr = server.addr;
        server.kill();
        server = restart(data.path(), &addr.to_string(), &write_key);
        if let Ok(mut url) = base_url.write() {
            *url = server.url();
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::SeqCst);

    let mut acknowledged = Vec::new();
    let mut unacknowledged = Vec::new();
    for sender in senders {
        let sent = runtime.block_on(sender).expect("a sender task");
        acknowledged.extend(sent.acknowledged);
        unacknowledged.extend(sent.unacknowledged);
    }
    assert!(
        acknowledged.len() > 1000,
        "only {} messages were acknowledged; the run did not load the server",
        acknowledged.len()
    );

    // Every acknowledged message is there exactly once, before anything is sent again.
    let stored = stored_ids(&server, data.path());
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), stored_set.len(), "a message is stored twice");
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored_set.contains(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but missing after SIGKILL: {missing:?} (of {})",
        acknowledged.len()
    );

    // Sending the unacknowledged ones again makes every message present exactly once; sending
    // the acknowledged ones again stores nothing (they are found in the dedupe index's runs,
    // written, merged and reloaded across the kills).
    let url = server.url();
    let again: Vec<String> = unacknowledged
        .iter()
        .chain(&acknowledged)
        .cloned()
        .collect();
    runtime.block_on(async {
        for chunk in again.chunks(BATCH) {
            let mut tries = 0;
            loop {
                match post_batch(&client, &url, &write_key, chunk).await {
                    Ok(200) => break,
                    outcome => {
                        tries += 1;
                        assert!(tries < 20, "resending failed: {outcome:?}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
    let all = acknowledged.len() + unacknowledged.len();
    let total = query_count(
        data.path(),
        "SELECT count(*) AS n FROM messages WHERE message_id LIKE 'crash-%'",
    );
    let distinct = query_count(
        data.path(),
        "SELECT count(DISTINCT message_id) AS n FROM messages WHERE message_id LIKE 'crash-%'",
    );
    assert_eq!(distinct, all as i64, "every message sent is stored");
    assert_eq!(total, all as i64, "and none twice");
    let runs = std::fs::read_dir(data.path().join("dedupe"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|f| f.file_name().to_string_lossy().ends_with(".dr"))
                .count()
        })
        .unwrap_or(0);
    assert!(
        runs > 0,
        "the dedupe index wrote no run: the test did not exercise it"
    );
    println!(
        "crash test: {} acknowledged, {} resent, {KILLS} kills, {:?}",
        acknowledged.len(),
        unacknowledged.len(),
        started.elapsed()
    );
}

/// Restarts the server on the same port, retrying briefly while the port is still taken, and
/// falls back to a new port.
fn restart(data: &std::path::Path, listen: &str, write_key: &str) -> Server {
    let mut last_error = String::new();
    for _ in 0..10 {
        match Server::restart_with(data, listen, write_key, SERVE_ARGS) {
            Ok(server) => return server,
            Err(err) => last_error = err,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Server::restart_with(data, "127.0.0.1:0", write_key, SERVE_ARGS)
        .unwrap_or_else(|err| panic!("restart failed: {err}\nbefore: {last_error}"))
}

/// All `crash-` message ids in the store.
fn stored_ids(server: &Server, data: &std::path::Path) -> Vec<String> {
    query(
        data,
        "SELECT message_id FROM messages WHERE message_id LIKE 'crash-%'",
    )
    .into_iter()
    .map(|row| {
        row["message_id"]
            .as_str()
            .unwrap_or_else(|| panic!("bad row {row:?}; server said:\n{}", server.printed()))
            .to_owned()
    })
    .collect()
}

/// One sender: batches of unique ids, until `stop`; records which got a 200.
async fn send_until_stopped(
    sender: usize,
    client: reqwest::Client,
    base_url: Arc<RwLock<String>>,
    write_key: String,
    stop: Arc<AtomicBool>,
) -> Sent {
    let mut sent = Sent::default();
    let mut next = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let ids: Vec<String> = (next..next + BATCH)
            .map(|n| format!("crash-{sender}-{n}"))
            .collect();
        next += BATCH;
        let url = base_url.read().map(|u| u.clone()).unwrap_or_default();
        match post_batch(&client, &url, &write_key, &ids).await {
            Ok(200) => sent.acknowledged.extend(ids),
            _ => {
                sent.unacknowledged.extend(ids);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    sent
}

/// Posts one batch of track calls with the given message ids; returns the status.
async fn post_batch(
    client: &reqwest::Client,
    base_url: &str,
    write_key: &str,
    ids: &[String],
) -> Result<u16, reqwest::Error> {
    let batch: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "type": "track",
                "event": "Crash Tested",
                "userId": "crash-user",
                "messageId": id,
                "properties": { "payload": "x".repeat(200) },
            })
        })
        .collect();
    let response = client
        .post(format!("{base_url}/v1/batch"))
        .basic_auth(write_key, Some(""))
        .json(&serde_json::json!({ "batch": batch }))
        .send()
        .await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

/// A small xorshift generator seeded from the standard library's random hasher keys.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5EED);
        Self(hasher.finish() | 1)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}
