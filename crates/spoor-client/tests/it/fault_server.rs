//! A small HTTP/1.1 Tracking API written for the tests, that misbehaves on purpose.
//!
//! It runs on its own thread and runtime (so blocking tests can use it too), takes
//! `POST /v1/batch`, and follows a script of [`Fault`]s, one per request, then answers 200.
//! Like Segment, it deduplicates by messageId: a message seen before is not stored again but
//! counted in `duplicates`, so a test can prove both "each id stored exactly once" and "the
//! client did resend after a lost response".

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status; the messages are stored only for a 2xx.
    Status(u16),
    /// Do not store; answer this status with `Retry-After: seconds`.
    RetryAfter(u16, u64),
    /// Do not store; answer 400 with a Segment-like error body.
    BadRequest,
    /// Do not store; close the connection without answering.
    DropBeforeAccept,
    /// Store the messages, then close the connection without answering (a lost response).
    DropAfterAccept,
    /// Store the messages, then wait this long before answering 200 (beyond the client's
    /// timeout, this is a lost response too).
    SlowAfterAccept(Duration),
    /// Wait this long, then store and answer 200.
    Slow(Duration),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The decompressed body, parsed.
    pub body: Value,
    /// The decompressed body as text.
    pub raw: String,
    /// The body's size in bytes before decompression.
    pub wire_bytes: usize,
    /// The decompressed size.
    pub json_bytes: usize,
    /// Request headers, names lower-cased.
    pub headers: HashMap<String, String>,
}

/// What the server saw and stored.
#[derive(Debug, Default)]
pub struct State {
    /// The faults still to play, one per request.
    pub script: VecDeque<Fault>,
    /// Fault applied to every request once the script is empty (default: 200).
    pub otherwise: Option<Fault>,
    /// Stored messageIds and how many times each was stored (always 1 by dedupe).
    pub stored: HashMap<String, u32>,
    /// Stored messages in arrival order.
    pub messages: Vec<Value>,
    /// Messages that arrived again after being stored (deduplicated).
    pub duplicates: u64,
    /// Every request.
    pub requests: Vec<Seen>,
}

/// A running fault server.
pub struct FaultServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its state, shared with the server thread.
    pub state: Arc<Mutex<State>>,
}

impl FaultServer {
    /// Starts a server that plays `script`, then answers 200.
    pub fn start(script: Vec<Fault>) -> FaultServer {
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
                }
            });
        });
        let addr = rx.recv().expect("server address");
        FaultServer {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Sets the fault for every request after the script.
    pub fn otherwise(&self, fault: Fault) {
        self.lock().otherwise = Some(fault);
    }

    /// The state, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut headers = HashMap::new();
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let wire_bytes = body.len();
        if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut plain = Vec::new();
            if flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .is_err()
            {
                return;
            }
            body = plain;
        }
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let fault = {
            let mut state = state.lock().expect("state lock");
            state.requests.push(Seen {
                body: parsed.clone(),
                raw: String::from_utf8_lossy(&body).into_owned(),
                wire_bytes,
                json_bytes: body.len(),
                headers,
            });
            state
                .script
                .pop_front()
                .or_else(|| state.otherwise.clone())
                .unwrap_or(Fault::Status(200))
        };
        let stream = reader.get_mut();
        let answer = |status: u16, extra: &str, body: &str| {
            format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                body.len()
            )
        };
        let ok = answer(200, "", r#"{"success":true}"#);
        let reply = match fault {
            Fault::Status(status) => {
                if (200..300).contains(&status) {
                    store(&state, &parsed);
                }
                answer(status, "", r#"{"success":true}"#)
            }
            Fault::RetryAfter(status, seconds) => answer(
                status,
                &format!("retry-after: {seconds}\r\n"),
                r#"{"success":false}"#,
            ),
            Fault::BadRequest => answer(
                400,
                "",
                r#"{"success":false,"message":"malformed JSON","code":"invalid_request"}"#,
            ),
            Fault::DropBeforeAccept => return,
            Fault::DropAfterAccept => {
                store(&state, &parsed);
                return;
            }
            Fault::SlowAfterAccept(wait) => {
                store(&state, &parsed);
                tokio::time::sleep(wait).await;
                ok
            }
            Fault::Slow(wait) => {
                tokio::time::sleep(wait).await;
                store(&state, &parsed);
                ok
            }
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn store(state: &Mutex<State>, body: &Value) {
    let mut state = state.lock().expect("state lock");
    let Some(items) = body.get("batch").and_then(Value::as_array) else {
        return;
    };
    for item in items {
        let id = item
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let count = state.stored.entry(id).or_insert(0);
        if *count > 0 {
            state.duplicates += 1;
        } else {
            *count = 1;
            state.messages.push(item.clone());
        }
    }
}
