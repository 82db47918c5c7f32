//! The write path: [`MessageLog`] (append a request's messages and discards durably), with
//! two implementations, [`SqliteLog`] and [`NullLog`].
//!
//! # Design of the SQLite writer
//! One dedicated thread owns the only writing connection to `events.db` (WAL,
//! `synchronous=FULL`, cached prepared statements). Requests arrive through a bounded
//! channel. The thread takes one request, then drains everything else already waiting (up to
//! [`MAX_GROUP_MESSAGES`]), writes them all in one transaction and commits it, which is one
//! fsync for the whole group (group commit). Only then does it answer each request. So an
//! `Ok` from [`MessageLog::append`] means the messages are on disk, and a crash at any moment
//! either keeps a whole transaction or none of it.
//!
//! Deduplication happens in the same transaction: a message whose `(source_id, messageId)`
//! is in `dedupe` with a `received_ms` inside the window is counted as a duplicate and not
//! stored again. The writer prunes rows older than the window in steps of
//! [`PRUNE_STEP`] rows, at most once a minute, so pruning never stalls a commit for long.
//!
//! WAL checkpoints (copying committed pages into the main file) run on a second thread with
//! its own connection, every [`CHECKPOINT_EVERY`], so the writer's commits never wait for
//! them; the writer checkpoints itself only if the WAL grows past a safety limit.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use spoor_spec::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::events;

/// A boxed future, so [`MessageLog`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// At most this many messages (and discards) go into one transaction.
pub const MAX_GROUP_MESSAGES: usize = 20_000;
/// Old dedupe rows deleted per transaction while pruning.
pub const PRUNE_STEP: usize = 5_000;
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const QUEUE_CAPACITY: usize = 4_096;
/// How often the checkpoint thread runs a passive checkpoint.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL pages after which the writer checkpoints itself (a safety net).
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 8_192;

/// One accepted, normalized message, ready to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The source it was sent to.
    pub source_id: Arc<str>,
    /// Its messageId (set by normalization when the client sent none).
    pub message_id: String,
    /// Its type (`track`, ...).
    pub kind: &'static str,
    /// `userId`, as text.
    pub user_id: Option<String>,
    /// `anonymousId`, as text.
    pub anonymous_id: Option<String>,
    /// `event` (track).
    pub event: Option<String>,
    /// The corrected `timestamp`.
    pub timestamp: Option<String>,
    /// The normalized JSON body.
    pub body: String,
}

/// One rejected message or request, kept with its reasons.
#[derive(Clone, Debug)]
pub struct NewDiscard {
    /// The source, when the request was authenticated.
    pub source_id: Option<Arc<str>>,
    /// The first reason's code, for easy filtering.
    pub code: String,
    /// The reasons, a JSON array of `{"path","code","message"}`.
    pub reasons: String,
    /// The rejected JSON (or the request body, for a request-level rejection).
    pub body: String,
}

/// Everything one request wants stored, in one go.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// When the request was received (`receivedAt` of every message).
    pub received_at: Timestamp,
    /// The accepted messages.
    pub messages: Vec<NewMessage>,
    /// The rejected ones.
    pub discards: Vec<NewDiscard>,
}

impl AppendRequest {
    fn len(&self) -> usize {
        self.messages.len() + self.discards.len()
    }
}

/// What happened to a request's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Messages stored.
    pub stored: usize,
    /// Messages already seen in the dedupe window: acknowledged, not stored again.
    pub duplicates: usize,
    /// Discards stored.
    pub discarded: usize,
}

/// Counters of the writer, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Transactions committed.
    pub commits: u64,
    /// Requests answered.
    pub requests: u64,
    /// Commits that failed.
    pub failures: u64,
}

/// The durable write path. `append` resolves only once the request is committed.
pub trait MessageLog: Send + Sync {
    /// Stores a request's messages and discards; resolves after they are durable.
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendOutcome, StoreError>>;
    /// Requests waiting for the writer.
    fn queue_depth(&self) -> usize;
    /// Writer counters.
    fn stats(&self) -> LogStats;
    /// True while the last commit succeeded.
    fn healthy(&self) -> bool;
    /// A short name (`sqlite`, `null`).
    fn kind(&self) -> &'static str;
    /// Finishes what is queued, commits it and stops the writer. Later appends fail.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// A log that acknowledges without storing anything: for benchmarks of the HTTP path only.
#[derive(Debug, Default)]
pub struct NullLog {
    requests: AtomicU64,
}

impl NullLog {
    /// A new null log.
    pub fn new() -> NullLog {
        NullLog::default()
    }
}

impl MessageLog for NullLog {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = AppendOutcome {
            stored: request.messages.len(),
            duplicates: 0,
            discarded: request.discards.len(),
        };
        Box::pin(async move { Ok(outcome) })
    }

    fn queue_depth(&self) -> usize {
        0
    }

    fn stats(&self) -> LogStats {
        let requests = self.requests.load(Ordering::Relaxed);
        LogStats {
            commits: requests,
            requests,
            failures: 0,
        }
    }

    fn healthy(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "null"
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Settings of the SQLite log.
#[derive(Clone, Copy, Debug)]
pub struct SqliteLogConfig {
    /// How long a messageId is remembered per source; zero turns deduplication off.
    pub dedupe_window: Duration,
}

enum Job {
    Append {
        request: AppendRequest,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

struct Shared {
    stopping: AtomicBool,
    depth: AtomicUsize,
    commits: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    healthy: AtomicBool,
}

/// The SQLite message log: one writer thread with group commit (see the module docs).
pub struct SqliteLog {
    sender: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpoint_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn checkpoint_loop(conn: Connection, shared: &Shared) {
    while !shared.stopping.load(Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(err) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %err, "background checkpoint failed");
        }
    }
}

impl std::fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLog").finish_non_exhaustive()
    }
}

impl SqliteLog {
    /// Opens (creating when missing) `DIR/events.db` and starts the writer thread.
    pub fn open(dir: &Path, config: SqliteLogConfig) -> Result<SqliteLog, StoreError> {
        let conn = events::open_for_writing(dir)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        let checkpointer = events::open_for_writing(dir)?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            depth: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        });
        let writer = Writer {
            conn,
            receiver,
            shared: Arc::clone(&shared),
            window_ms: i64::try_from(config.dedupe_window.as_millis()).unwrap_or(i64::MAX),
            next_prune: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("spoor-log-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::Io {
                action: "start the writer thread for",
                path: dir.to_path_buf(),
                source,
            })?;
        let checkpoint_shared = Arc::clone(&shared);
        let checkpoint_thread = std::thread::Builder::new()
            .name("spoor-log-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(checkpointer, &checkpoint_shared))
            .map_err(|source| StoreError::Io {
                action: "start the checkpoint thread for",
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(SqliteLog {
            sender,
            shared,
            thread: Mutex::new(Some(thread)),
            checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
        })
    }
}

impl MessageLog for SqliteLog {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.shared.depth.fetch_add(1, Ordering::Relaxed);
            if self
                .sender
                .send(Job::Append { request, reply })
                .await
                .is_err()
            {
                self.shared.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Closed);
            }
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn queue_depth(&self) -> usize {
        self.shared.depth.load(Ordering::Relaxed)
    }

    fn stats(&self) -> LogStats {
        LogStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            requests: self.shared.requests.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
        }
    }

    fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (reply, done) = oneshot::channel();
            if self.sender.send(Job::Close { reply }).await.is_ok() {
                let _ = done.await;
            }
            let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
            self.shared.stopping.store(true, Ordering::Relaxed);
            let checkpointer = self
                .checkpoint_thread
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(handle) = handle {
                    let _ = handle.join();
                }
                if let Some(handle) = checkpointer {
                    let _ = handle.join();
                }
            })
            .await;
            Ok(())
        })
    }
}

struct Writer {
    conn: Connection,
    receiver: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    window_ms: i64,
    next_prune: Instant,
}

impl Writer {
    fn run(mut self) {
        let mut group: Vec<(
            AppendRequest,
            oneshot::Sender<Result<AppendOutcome, StoreError>>,
        )> = Vec::with_capacity(256);
        let mut outcomes: Vec<AppendOutcome> = Vec::with_capacity(256);
        let mut close_reply: Option<oneshot::Sender<()>> = None;
        while close_reply.is_none() {
            let Some(first) = self.receiver.blocking_recv() else {
                break;
            };
            let mut count = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Append { request, reply } => {
                        count += request.len();
                        group.push((request, reply));
                    }
                    Job::Close { reply } => close_reply = Some(reply),
                }
                if count < MAX_GROUP_MESSAGES && close_reply.is_none() {
                    next = self.receiver.try_recv().ok();
                }
            }
            if close_reply.is_some() {
                // Everything sent before the close is still waiting: take it too.
                while let Ok(job) = self.receiver.try_recv() {
                    if let Job::Append { request, reply } = job {
                        group.push((request, reply));
                    }
                }
            }
            if group.is_empty() {
                continue;
            }
            self.shared.depth.fetch_sub(group.len(), Ordering::Relaxed);
            outcomes.clear();
            let result = self.write_group(&group, &mut outcomes);
            self.shared
                .requests
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            match result {
                Ok(()) => {
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                    self.shared.healthy.store(true, Ordering::Relaxed);
                    for ((_, reply), outcome) in group.drain(..).zip(outcomes.iter()) {
                        let _ = reply.send(Ok(*outcome));
                    }
                }
                Err(err) => {
                    self.shared.failures.fetch_add(1, Ordering::Relaxed);
                    self.shared.healthy.store(false, Ordering::Relaxed);
                    tracing::error!(error = %err, requests = group.len(), "commit failed");
                    let reason = err.to_string();
                    for (_, reply) in group.drain(..) {
                        let _ = reply.send(Err(StoreError::CommitFailed(reason.clone())));
                    }
                }
            }
        }
        self.receiver.close();
        // Appends that raced with the close are answered as refused, never left hanging.
        while let Ok(job) = self.receiver.try_recv() {
            if let Job::Append { reply, .. } = job {
                let _ = reply.send(Err(StoreError::Closed));
            }
        }
        if let Err(err) = self.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %err, "checkpoint at shutdown failed");
        }
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    fn write_group(
        &mut self,
        group: &[(
            AppendRequest,
            oneshot::Sender<Result<AppendOutcome, StoreError>>,
        )],
        outcomes: &mut Vec<AppendOutcome>,
    ) -> Result<(), StoreError> {
        let window_ms = self.window_ms;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut dedupe = tx.prepare_cached(
                "INSERT INTO dedupe (source_id, message_id, received_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (source_id, message_id) DO UPDATE SET received_ms = excluded.received_ms \
                 WHERE dedupe.received_ms < ?4",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (source_id, message_id, type, user_id, anonymous_id, event, \
                 timestamp, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut discard = tx.prepare_cached(
                "INSERT INTO discards (source_id, received_at, code, reasons, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (request, _) in group {
                let mut outcome = AppendOutcome::default();
                let received_ms = request.received_at.unix_millis();
                let received_at = request.received_at.to_string();
                for message in &request.messages {
                    if window_ms > 0 {
                        let fresh = dedupe.execute(params![
                            &*message.source_id,
                            message.message_id,
                            received_ms,
                            received_ms.saturating_sub(window_ms),
                        ])?;
                        if fresh == 0 {
                            outcome.duplicates += 1;
                            continue;
                        }
                    }
                    insert.execute(params![
                        &*message.source_id,
                        message.message_id,
                        message.kind,
                        message.user_id,
                        message.anonymous_id,
                        message.event,
                        message.timestamp,
                        received_at,
                        message.body,
                    ])?;
                    outcome.stored += 1;
                }
                for item in &request.discards {
                    discard.execute(params![
                        item.source_id.as_deref(),
                        received_at,
                        item.code,
                        item.reasons,
                        item.body,
                    ])?;
                    outcome.discarded += 1;
                }
                outcomes.push(outcome);
            }
        }
        if window_ms > 0 && Instant::now() >= self.next_prune {
            let cutoff = crate::files::now().unix_millis().saturating_sub(window_ms);
            let deleted = tx.execute(
                "DELETE FROM dedupe WHERE (source_id, message_id) IN \
                 (SELECT source_id, message_id FROM dedupe WHERE received_ms < ?1 LIMIT ?2)",
                params![cutoff, PRUNE_STEP as i64],
            )?;
            if deleted < PRUNE_STEP {
                self.next_prune = Instant::now() + PRUNE_EVERY;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
