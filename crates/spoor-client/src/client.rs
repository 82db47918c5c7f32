//! [`Client`]: validate, queue, batch and deliver, with per-message results.
//!
//! # Delivery rules
//! - A message is validated and given its `messageId` (UUID v4 unless the caller set one) and
//!   `context.library` at enqueue, then serialized once. Every retry sends the same bytes, so
//!   the server deduplicates by `messageId`: at-least-once on the wire, exactly-once stored.
//! - The queue is bounded; when it is full, [`FullPolicy`] says whether enqueue waits or
//!   fails. Nothing is ever dropped silently.
//! - The worker cuts a batch at `batch_size` messages, at `max_request_bytes` (envelope
//!   included), or `flush_interval` after the batch's first message, and keeps at most
//!   `concurrency` requests in flight; when all are busy it stops taking from the queue.
//! - Every message ends with exactly one [`Outcome`], reported to the callback and the
//!   counters: delivered, rejected (a status never retried, with the server's body) or failed
//!   (retries exhausted).
//! - [`Client::flush`] returns once every message queued before it has its outcome;
//!   [`Client::close`] flushes and stops the worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use spoor_spec::{Message, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::{Clock, Config, Delivery, DeliveryCallback, FullPolicy, Outcome};
use crate::retry::Backoff;
use crate::transport::{Attempt, LIBRARY_NAME, LIBRARY_VERSION, Transport};
use crate::{ClientError, builder, id};

/// Counters since the client started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages accepted into the queue.
    pub queued: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages refused by the server for good.
    pub rejected: u64,
    /// Messages whose retries ran out.
    pub failed: u64,
    /// Message sends repeated (a batch of 100 retried once counts 100).
    pub retried: u64,
    /// HTTP requests made.
    pub requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    requests: AtomicU64,
}

/// One serialized message waiting in the queue.
#[derive(Debug)]
struct Queued {
    id: String,
    tag: u64,
    json: Vec<u8>,
}

/// Many serialized messages in one buffer (one allocation for the whole chunk).
#[derive(Debug)]
struct Chunk {
    json: Vec<u8>,
    /// messageId, tag, and the end offset of the message in `json`.
    items: Vec<(String, u64, usize)>,
}

#[derive(Debug)]
enum Command {
    Message(Queued),
    Messages(Chunk),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// What the worker and its delivery tasks share.
struct Worker {
    transport: Transport,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
    callback: Option<DeliveryCallback>,
    write_key_json: String,
    batch_size: usize,
    max_request_bytes: usize,
    flush_interval: std::time::Duration,
    concurrency: usize,
    max_retries: u32,
    backoff: Backoff,
    max_retry_after: std::time::Duration,
}

/// An async Segment client with a background worker. Create it inside a tokio runtime.
pub struct Client {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
    when_full: FullPolicy,
    capacity: usize,
    stamp_timestamp: bool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a client and its worker on the current tokio runtime.
    pub fn new(config: Config) -> Result<Client, ClientError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let transport = Transport::new(
            &config.endpoint,
            &config.write_key,
            config.request_timeout,
            config.gzip,
        )?;
        let counters = Arc::new(Counters::default());
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let worker = Worker {
            transport,
            counters: Arc::clone(&counters),
            clock: Arc::clone(&config.clock),
            callback: config.on_delivery.clone(),
            write_key_json: Value::String(config.write_key.clone()).to_string(),
            batch_size: config
                .batch_size
                .clamp(1, spoor_spec::limits::MAX_BATCH_MESSAGES),
            max_request_bytes: config
                .max_request_bytes
                .min(spoor_spec::limits::MAX_BATCH_BYTES),
            flush_interval: config.flush_interval,
            concurrency: config.concurrency.max(1),
            max_retries: config.max_retries,
            backoff: config.backoff,
            max_retry_after: config.max_retry_after,
        };
        let join = handle.spawn(Arc::new(worker).run(rx));
        Ok(Client {
            tx,
            counters,
            clock: config.clock,
            when_full: config.when_full,
            capacity,
            stamp_timestamp: config.stamp_timestamp,
            worker: Mutex::new(Some(join)),
        })
    }

    /// Validates and queues a message; returns its messageId.
    pub async fn enqueue(&self, message: Message) -> Result<String, ClientError> {
        self.enqueue_tagged(message, 0).await
    }

    /// Like [`Client::enqueue`], with a tag of the caller's (a line number, a row id) that
    /// comes back in the message's [`Delivery`].
    pub async fn enqueue_tagged(&self, message: Message, tag: u64) -> Result<String, ClientError> {
        let queued = self.prepare(message, tag)?;
        let id = queued.id.clone();
        let command = Command::Message(queued);
        match self.when_full {
            FullPolicy::Wait => self
                .tx
                .send(command)
                .await
                .map_err(|_| ClientError::Closed)?,
            FullPolicy::Fail => self.tx.try_send(command).map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => ClientError::QueueFull {
                    capacity: self.capacity,
                },
                mpsc::error::TrySendError::Closed(_) => ClientError::Closed,
            })?,
        }
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Validates and queues many messages as one queue entry, so the worker wakes once for
    /// all of them: the fast path for bulk senders. Returns one result per message, in
    /// order; invalid messages are refused one by one, the valid ones are queued together
    /// (their messageIds come back in each [`Delivery`] with the tag). The queue's capacity
    /// counts entries, so one call takes one slot; with [`FullPolicy::Fail`] a full queue
    /// fails every valid message of the call.
    pub async fn enqueue_many(
        &self,
        messages: Vec<(Message, u64)>,
    ) -> Vec<Result<(), ClientError>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut chunk = Chunk {
            json: Vec::with_capacity(messages.len() * 320),
            items: Vec::with_capacity(messages.len()),
        };
        for (message, tag) in messages {
            let start = chunk.json.len();
            match self.prepare_into(message, &mut chunk.json) {
                Ok(id) => {
                    results.push(Ok(()));
                    chunk.items.push((id, tag, chunk.json.len()));
                }
                Err(err) => {
                    chunk.json.truncate(start);
                    results.push(Err(err));
                }
            }
        }
        if chunk.items.is_empty() {
            return results;
        }
        let count = chunk.items.len() as u64;
        let command = Command::Messages(chunk);
        let sent = match self.when_full {
            FullPolicy::Wait => self.tx.send(command).await.map_err(|_| ClientError::Closed),
            FullPolicy::Fail => self.tx.try_send(command).map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => ClientError::QueueFull {
                    capacity: self.capacity,
                },
                mpsc::error::TrySendError::Closed(_) => ClientError::Closed,
            }),
        };
        match sent {
            Ok(()) => {
                self.counters.queued.fetch_add(count, Ordering::Relaxed);
            }
            Err(err) => {
                for result in results.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(match &err {
                        ClientError::QueueFull { capacity } => ClientError::QueueFull {
                            capacity: *capacity,
                        },
                        _ => ClientError::Closed,
                    });
                }
            }
        }
        results
    }

    /// Validates a message and completes it for sending: messageId, `context.library`, and
    /// `timestamp` when stamping is on. Returns the exact JSON that will be sent.
    pub fn complete(&self, message: Message) -> Result<Message, ClientError> {
        complete(message, self.stamp_timestamp.then(|| self.clock.now()))
    }

    fn prepare(&self, message: Message, tag: u64) -> Result<Queued, ClientError> {
        let mut json = Vec::with_capacity(512);
        let id = self.prepare_into(message, &mut json)?;
        Ok(Queued { id, tag, json })
    }

    /// Completes `message` like [`complete`], appends its JSON to `out`, and returns its
    /// messageId. On an error `out` may hold a partial message: the caller truncates it.
    ///
    /// This is the hot path of bulk sending, so the fields the client adds (messageId,
    /// timestamp, and `context` when the message has none) are appended to the serialized
    /// object as text instead of being inserted into the map first; only an existing
    /// `context` object gets `library` inserted.
    fn prepare_into(&self, mut message: Message, out: &mut Vec<u8>) -> Result<String, ClientError> {
        builder::check(&message)?;
        let body = message.body_mut();
        let existing_id = match body.get("messageId") {
            None => None,
            Some(Value::Null) => {
                body.shift_remove("messageId");
                None
            }
            Some(Value::String(id)) => Some(id.clone()),
            Some(other) => Some(other.to_string()),
        };
        let stamp = if self.stamp_timestamp {
            match body.get("timestamp") {
                None => true,
                Some(Value::Null) => {
                    body.shift_remove("timestamp");
                    true
                }
                Some(_) => false,
            }
        } else {
            false
        };
        let append_context = match body.get_mut("context") {
            None => true,
            Some(Value::Null) => {
                body.shift_remove("context");
                true
            }
            Some(Value::Object(context)) => {
                context.insert("library".to_owned(), library());
                false
            }
            Some(_) => false,
        };
        let start = out.len();
        serde_json::to_writer(&mut *out, message.body()).map_err(|err| {
            ClientError::invalid(
                "",
                spoor_spec::Code::WrongType,
                format!("cannot serialize: {err}"),
            )
        })?;
        // The body is a non-empty object (it always has "type"): reopen it before the `}`.
        if out.last() == Some(&b'}') {
            out.pop();
        }
        let id = match existing_id {
            Some(id) => id,
            None => {
                let id = id::uuid_v4()?;
                out.extend_from_slice(br#","messageId":""#);
                out.extend_from_slice(id.as_bytes());
                out.push(b'"');
                id
            }
        };
        if stamp {
            out.extend_from_slice(br#","timestamp":""#);
            out.extend_from_slice(self.clock.now().to_string().as_bytes());
            out.push(b'"');
        }
        if append_context {
            out.extend_from_slice(LIBRARY_CONTEXT.as_bytes());
        }
        out.push(b'}');
        if let Some(problem) = spoor_spec::validate::message_size_problem(out.len() - start) {
            return Err(ClientError::Invalid {
                problems: vec![problem],
            });
        }
        Ok(id)
    }

    /// Waits until every message queued before this call is delivered or definitively failed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes, then stops the worker. Later enqueues fail with [`ClientError::Closed`].
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
        let join = self.worker.lock().ok().and_then(|mut guard| guard.take());
        if let Some(join) = join {
            let _ = join.await;
        }
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            queued: c.queued.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
        }
    }
}

/// `,"context":{"library":...}`, appended to messages that have no context.
const LIBRARY_CONTEXT: &str = concat!(
    r#","context":{"library":{"name":"spoor","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}}"#
);

/// `{"name": "spoor", "version": ...}`.
fn library() -> Value {
    let mut library = Map::new();
    library.insert("name".to_owned(), Value::String(LIBRARY_NAME.to_owned()));
    library.insert(
        "version".to_owned(),
        Value::String(LIBRARY_VERSION.to_owned()),
    );
    Value::Object(library)
}

/// Validates `message` and completes it: a UUID v4 `messageId` when it has none,
/// `context.library = {name: "spoor", version}`, and `timestamp = now` when `now` is given and
/// the message has no timestamp.
pub fn complete(mut message: Message, now: Option<Timestamp>) -> Result<Message, ClientError> {
    builder::check(&message)?;
    let body = message.body_mut();
    if body.get("messageId").is_none_or(Value::is_null) {
        body.insert("messageId".to_owned(), Value::String(id::uuid_v4()?));
    }
    if let Some(now) = now
        && body.get("timestamp").is_none_or(Value::is_null)
    {
        body.insert("timestamp".to_owned(), Value::String(now.to_string()));
    }
    let context = body
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if context.is_null() {
        *context = Value::Object(Map::new());
    }
    if let Value::Object(context) = context {
        let mut library = Map::new();
        library.insert("name".to_owned(), Value::String(LIBRARY_NAME.to_owned()));
        library.insert(
            "version".to_owned(),
            Value::String(LIBRARY_VERSION.to_owned()),
        );
        context.insert("library".to_owned(), Value::Object(library));
    }
    Ok(message)
}

/// A batch being filled: `{"batch":[` plus the messages so far, and their ids and tags.
struct Batch {
    body: Vec<u8>,
    ids: Vec<(String, u64)>,
}

const BATCH_PREFIX: &[u8] = br#"{"batch":["#;

impl Batch {
    fn new() -> Batch {
        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(BATCH_PREFIX);
        Batch {
            body,
            ids: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The whole body with the envelope closed: `],"sentAt":...,"writeKey":...}`.
    fn finish(&self, sent_at: Timestamp, write_key_json: &str) -> Vec<u8> {
        let suffix = envelope_suffix(sent_at, write_key_json);
        let mut body = Vec::with_capacity(self.body.len() + suffix.len());
        body.extend_from_slice(&self.body);
        body.extend_from_slice(suffix.as_bytes());
        body
    }
}

fn envelope_suffix(sent_at: Timestamp, write_key_json: &str) -> String {
    format!(r#"],"sentAt":"{sent_at}","writeKey":{write_key_json}}}"#)
}

impl Worker {
    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Command>) {
        let suffix_len =
            envelope_suffix(Timestamp::from_unix_millis(0), &self.write_key_json).len();
        let mut batch = Batch::new();
        let mut deadline: Option<Instant> = None;
        let mut in_flight: JoinSet<()> = JoinSet::new();
        loop {
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = sleep_until(deadline), if deadline.is_some() => {
                    deadline = None;
                    self.dispatch(&mut batch, &mut in_flight).await;
                }
                command = rx.recv() => match command {
                    Some(Command::Message(queued)) => {
                        let item = (queued.id, queued.tag);
                        self.accept(&queued.json, item, suffix_len, &mut batch, &mut deadline, &mut in_flight).await;
                    }
                    Some(Command::Messages(chunk)) => {
                        let mut start = 0;
                        for (id, tag, end) in chunk.items {
                            let json = chunk.json.get(start..end).unwrap_or_default();
                            start = end;
                            self.accept(json, (id, tag), suffix_len, &mut batch, &mut deadline, &mut in_flight).await;
                        }
                    }
                    Some(Command::Flush(done)) => {
                        deadline = None;
                        self.dispatch(&mut batch, &mut in_flight).await;
                        while in_flight.join_next().await.is_some() {}
                        let _ = done.send(());
                    }
                    Some(Command::Close(done)) => {
                        self.dispatch(&mut batch, &mut in_flight).await;
                        while in_flight.join_next().await.is_some() {}
                        rx.close();
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.dispatch(&mut batch, &mut in_flight).await;
                        while in_flight.join_next().await.is_some() {}
                        return;
                    }
                },
            }
        }
    }

    /// Adds one message to the batch, sending the batch first when the message would not
    /// fit, and after it when the batch is full.
    async fn accept(
        self: &Arc<Self>,
        json: &[u8],
        item: (String, u64),
        suffix_len: usize,
        batch: &mut Batch,
        deadline: &mut Option<Instant>,
        in_flight: &mut JoinSet<()>,
    ) {
        let needed = batch.body.len() + 1 + json.len() + suffix_len;
        if !batch.is_empty() && needed > self.max_request_bytes {
            *deadline = None;
            self.dispatch(batch, in_flight).await;
        }
        if !batch.is_empty() {
            batch.body.push(b',');
        }
        batch.body.extend_from_slice(json);
        batch.ids.push(item);
        if batch.ids.len() == 1 {
            *deadline = Some(Instant::now() + self.flush_interval);
        }
        if batch.ids.len() >= self.batch_size {
            *deadline = None;
            self.dispatch(batch, in_flight).await;
        }
    }

    /// Hands the current batch to a delivery task, waiting for a free slot first.
    async fn dispatch(self: &Arc<Self>, batch: &mut Batch, in_flight: &mut JoinSet<()>) {
        if batch.is_empty() {
            return;
        }
        while in_flight.len() >= self.concurrency {
            in_flight.join_next().await;
        }
        let ready = std::mem::replace(batch, Batch::new());
        in_flight.spawn(Arc::clone(self).deliver(ready));
    }

    /// Sends one batch until it is delivered, rejected, or out of retries.
    async fn deliver(self: Arc<Self>, batch: Batch) {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let body = batch.finish(self.clock.now(), &self.write_key_json);
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            match self.transport.post("/v1/batch", body, attempt - 1).await {
                Attempt::Delivered { status, .. } => {
                    return self.report(batch, &Outcome::Delivered { status }, attempt);
                }
                Attempt::Rejected { status, body } => {
                    return self.report(batch, &Outcome::Rejected { status, body }, attempt);
                }
                Attempt::Retry {
                    reason,
                    retry_after,
                } => {
                    if attempt > self.max_retries {
                        return self.report(batch, &Outcome::Failed { reason }, attempt);
                    }
                    self.counters
                        .retried
                        .fetch_add(batch.ids.len() as u64, Ordering::Relaxed);
                    let wait = match retry_after {
                        Some(wait) => wait.min(self.max_retry_after),
                        None => self.backoff.delay(attempt, id::unit_random()),
                    };
                    tracing::debug!(attempt, ?wait, %reason, "retrying a batch of {}", batch.ids.len());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn report(&self, batch: Batch, outcome: &Outcome, attempts: u32) {
        let counter = match outcome {
            Outcome::Delivered { .. } => &self.counters.delivered,
            Outcome::Rejected { .. } => &self.counters.rejected,
            Outcome::Failed { .. } => &self.counters.failed,
        };
        counter.fetch_add(batch.ids.len() as u64, Ordering::Relaxed);
        if let Some(callback) = &self.callback {
            for (message_id, tag) in batch.ids {
                callback(Delivery {
                    message_id,
                    tag,
                    outcome: outcome.clone(),
                    attempts,
                });
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
