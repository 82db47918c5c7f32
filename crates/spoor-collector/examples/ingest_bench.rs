//! The collector's CPU per message on the batch path, in process, for `valgrind --tool=callgrind`
//! and for checking that a change keeps the stored bytes.
//!
//! Bench mode posts `--requests` batches of `--batch` track events, exactly as
//! `spoor-loadgen` builds them (its `event.rs` is compiled in), through the whole axum
//! router (`--via router`, the default: routing, body reading, auth header, ingest, the
//! answer) or straight to [`spoor_collector::ingest::ingest`] (`--via ingest`), into a
//! null log. It prints the requests and messages sent; divide callgrind's instruction count,
//! minus that of a `--via none` run (the setup and the building of the same bodies), by the
//! messages.
//!
//! Dump mode (`--dump CASES`) posts each case of a cases file through `ingest` into a log
//! that keeps everything, with a fixed clock, and prints every answer, stored message and
//! discard, so two builds can be compared byte for byte. A cases file holds cases separated
//! by lines `### /v1/ENDPOINT`; the body is the lines that follow (without the last line
//! end). `WRITE_KEY` in a body is replaced by the real write key. Three batches of
//! `--batch` spoor-loadgen events follow the cases.
//!
//! ```sh
//! cargo build --release -p spoor-collector --example ingest_bench
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/ingest_bench --requests 200
//! target/release/examples/ingest_bench --dump cases.txt > stored.txt
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use spoor_collector::ingest::{Endpoint, IngestRequest};
use spoor_collector::net::PeerAddr;
use spoor_collector::{AppState, KeyRing, ServerConfig};
use spoor_spec::{MessageType, Timestamp};
use spoor_store::{
    AppendOutcome, AppendRequest, BoxFuture, LogStats, MessageLog, MetaStore, NullLog, StoreError,
};
use tower::ServiceExt as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code)]
#[path = "../../spoor-loadgen/src/event.rs"]
mod event;

/// Keeps every request appended, for dump mode.
#[derive(Default)]
struct KeepLog {
    requests: Mutex<Vec<AppendRequest>>,
}

impl MessageLog for KeepLog {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        let outcome = AppendOutcome {
            stored: request.messages.len(),
            duplicates: 0,
            discarded: request.discards.len(),
        };
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
        Box::pin(async move { Ok(outcome) })
    }
    fn queue_depth(&self) -> usize {
        0
    }
    fn stats(&self) -> LogStats {
        NullLog::new().stats()
    }
    fn healthy(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "keep"
    }
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut requests = 200usize;
    let mut batch = 100usize;
    let mut via = "router".to_owned();
    let mut dump = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--requests" => requests = value()?.parse()?,
            "--batch" => batch = value()?.parse()?,
            "--via" => via = value()?,
            "--dump" => dump = Some(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = std::env::temp_dir().join(format!(
        "spoor-ingest-bench-{}",
        spoor_store::secret::random_base62(10)?
    ));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, requests, batch, &via, dump.as_deref());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(
    dir: &std::path::Path,
    requests: usize,
    batch: usize,
    via: &str,
    dump: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut meta = MetaStore::open(dir)?;
    let key = meta.bootstrap()?.ok_or("no first run")?.write_key;
    let keys = KeyRing::fixed(meta.snapshot()?);
    let received_at = Timestamp::parse("2026-12-01T12:00:00.789Z")?;
    let clock: spoor_collector::Clock = Arc::new(move || received_at);
    let keep = Arc::new(KeepLog::default());
    let log: Arc<dyn MessageLog> = if dump.is_some() {
        keep.clone()
    } else {
        Arc::new(NullLog::new())
    };
    let state = AppState::new(log, meta, keys, ServerConfig::default(), clock);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if let Some(path) = dump {
        let text = std::fs::read_to_string(path)?;
        let mut all = cases(&text);
        // Then a few batches as spoor-loadgen sends them.
        let mut factory = event::EventFactory::new(7, 3, "2026-12-01T12:00:00.000Z".to_owned());
        for _ in 0..3 {
            let body = String::from_utf8(factory.batch(batch))?;
            all.push(("batch", body));
        }
        for (index, (endpoint, body)) in all.into_iter().enumerate() {
            let body = body.replace("WRITE_KEY", &key);
            let endpoint = match endpoint {
                "batch" => Endpoint::Batch,
                other => Endpoint::Single(
                    MessageType::from_path_segment(other).ok_or("unknown endpoint")?,
                ),
            };
            let request = IngestRequest {
                endpoint,
                body: body.as_bytes(),
                basic_key: Some(&key),
                client_ip,
            };
            let answer = runtime.block_on(spoor_collector::ingest::ingest(&state, request));
            println!("== case {index}: {answer:?}");
            let appended = std::mem::take(&mut *keep.requests.lock().map_err(|_| "poisoned")?);
            for request in appended {
                for m in request.messages {
                    println!(
                        "message id={:?} kind={} user={:?} anon={:?} event={:?} ts={:?}\n  {}",
                        m.message_id,
                        m.kind,
                        m.user_id(),
                        m.anonymous_id(),
                        m.event(),
                        m.timestamp(),
                        m.body()
                    );
                }
                for d in request.discards {
                    println!(
                        "discard code={} reasons={}\n  {}",
                        d.code, d.reasons, d.body
                    );
                }
            }
        }
        return Ok(());
    }

    let mut factory = event::EventFactory::new(7, 3, "2026-12-01T12:00:00.000Z".to_owned());
    let router = spoor_collector::router(state.clone());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    );
    let peer = PeerAddr(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 40_000));
    let mut accepted = 0usize;
    for _ in 0..requests {
        let body = factory.batch(batch);
        if via == "none" {
            std::hint::black_box(body);
            continue;
        }
        if via == "ingest" {
            let request = IngestRequest {
                endpoint: Endpoint::Batch,
                body: &body,
                basic_key: Some(&key),
                client_ip,
            };
            let answer = runtime.block_on(spoor_collector::ingest::ingest(&state, request))?;
            accepted += answer.accepted;
        } else {
            let mut request = Request::post("/v1/batch")
                .header("authorization", &basic)
                .header("content-type", "application/json")
                .header("content-length", body.len())
                .body(Body::from(body))?;
            request.extensions_mut().insert(peer);
            let response = runtime.block_on(router.clone().oneshot(request))?;
            if response.status().is_success() {
                accepted += batch;
            }
        }
    }
    println!("requests {requests}, messages {accepted}, via {via}");
    Ok(())
}

/// Splits a cases file into (endpoint, body) pairs.
fn cases(text: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(endpoint) = line.strip_prefix("### /v1/") {
            out.push((endpoint.trim(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
        }
    }
    for (_, body) in &mut out {
        if body.ends_with('\n') {
            body.pop();
        }
    }
    out
}
