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
//! # Deduplication
//! A message whose `(source_id, messageId)` was stored with a `received_ms` inside the window
//! is counted as a duplicate and not stored again. The commit transaction writes only
//! `messages` and `discards`: the `dedupe` index is derived from `messages` and kept out of
//! it, because each random messageId would dirty a random leaf of its B-tree per message.
//! The writer looks a messageId up, in this order, in
//! 1. the messages of the group being written (two copies in one commit are stored once);
//! 2. the memtable: an in-memory map of the messages committed since the last flush;
//! 3. the `dedupe` table on disk (a point lookup on the writer's own connection).
//!
//! A group's new entries join the memtable only once its commit succeeded. When the memtable
//! holds [`DEDUPE_FLUSH_ENTRIES`] entries, or [`DEDUPE_FLUSH_EVERY`] has passed, or the log
//! closes, the writer (after answering the group's requests) writes it into `dedupe` sorted
//! by key, in one transaction that also sets `dedupe_meta.last_seq` to the highest `seq`
//! covered, then clears it. So memory stays bounded by the flush size, and after a crash at
//! any moment [`SqliteLog::open`] rebuilds the memtable from the `messages` rows with
//! `seq > last_seq` (their source, messageId and `received_at`), flushing as it goes:
//! exactly-once holds across `kill -9`. Keys stay the text `(source_id, message_id)`, so there
//! is no hash and no collision risk. With the window at zero nothing is looked up or kept, and
//! `last_seq` is moved to the end of the log on open, so turning dedupe back on later does not
//! replay the messages stored meanwhile (as before, they are not in the index).
//!
//! The writer prunes rows older than the window in steps of [`PRUNE_STEP`] rows, at most
//! once a minute, so pruning never stalls a commit for long.
//!
//! WAL checkpoints (copying committed pages into the main file) run on a second thread with
//! its own connection, every [`CHECKPOINT_EVERY`], so the writer's commits never wait for
//! them; the writer checkpoints itself only if the WAL grows past a safety limit.

use std::collections::HashMap;
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
/// Memtable entries after which the writer flushes them into `dedupe`.
pub const DEDUPE_FLUSH_ENTRIES: usize = 50_000;
/// Age of the oldest unflushed memtable entry after which the writer flushes anyway.
pub const DEDUPE_FLUSH_EVERY: Duration = Duration::from_secs(60);
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
    /// Opens (creating when missing) `DIR/events.db`, rebuilds the dedupe memtable from the
    /// messages not yet in the `dedupe` index, and starts the writer thread.
    pub fn open(dir: &Path, config: SqliteLogConfig) -> Result<SqliteLog, StoreError> {
        SqliteLog::open_with_flush_entries(dir, config, DEDUPE_FLUSH_ENTRIES)
    }

    /// [`SqliteLog::open`] with another memtable flush size (at least 1): for tests and tuning.
    pub fn open_with_flush_entries(
        dir: &Path,
        config: SqliteLogConfig,
        flush_entries: usize,
    ) -> Result<SqliteLog, StoreError> {
        let conn = events::open_for_writing(dir)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        let window_ms = i64::try_from(config.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let mut dedupe = Dedupe {
            memtable: HashMap::new(),
            flush_entries: flush_entries.max(1),
            first_unflushed: None,
        };
        dedupe.recover(&conn, window_ms)?;
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
            window_ms,
            next_prune: Instant::now(),
            dedupe,
            pending: HashMap::new(),
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
    dedupe: Dedupe,
    /// The fresh dedupe entries of the group being written, merged into the memtable only
    /// once its commit succeeded.
    pending: HashMap<DedupeKey, i64>,
}

/// A dedupe key: `(source_id, message_id)`.
type DedupeKey = (Arc<str>, String);

/// The dedupe memtable: entries committed in `messages` but not yet flushed to `dedupe`.
struct Dedupe {
    memtable: HashMap<DedupeKey, i64>,
    flush_entries: usize,
    first_unflushed: Option<Instant>,
}

impl Dedupe {
    /// Brings the memtable in line with the log after an open (clean or after a crash): reads
    /// the messages after `dedupe_meta.last_seq`, flushing every `flush_entries` of them.
    fn recover(&mut self, conn: &Connection, window_ms: i64) -> Result<(), StoreError> {
        let last_seq: i64 =
            conn.query_row("SELECT last_seq FROM dedupe_meta WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        if window_ms <= 0 {
            conn.execute(
                "UPDATE dedupe_meta SET last_seq = (SELECT coalesce(max(seq), 0) FROM messages) \
                 WHERE id = 1",
                [],
            )?;
            return Ok(());
        }
        let mut after = last_seq;
        loop {
            let mut rows: Vec<(i64, String, String, String)> = Vec::new();
            {
                let mut stmt = conn.prepare(
                    "SELECT seq, source_id, message_id, received_at FROM messages \
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let limit = i64::try_from(self.flush_entries).unwrap_or(i64::MAX);
                let mapped = stmt.query_map(params![after, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?;
                for row in mapped {
                    rows.push(row?);
                }
            }
            let Some(last) = rows.last().map(|row| row.0) else {
                break;
            };
            for (_, source_id, message_id, received_at) in rows {
                // `received_at` is always written by the writer from a valid timestamp; an
                // unreadable one is remembered as "now", which only widens the window.
                let received_ms = Timestamp::parse(&received_at)
                    .map(Timestamp::unix_millis)
                    .unwrap_or_else(|_| crate::files::now().unix_millis());
                self.memtable
                    .insert((Arc::from(source_id), message_id), received_ms);
            }
            after = last;
            if self.memtable.len() >= self.flush_entries {
                self.flush(conn, Some(after))?;
            }
        }
        if !self.memtable.is_empty() {
            self.first_unflushed = Some(Instant::now());
        }
        Ok(())
    }

    /// The `received_ms` of a key committed earlier: memtable first, then disk.
    fn lookup(&self, conn: &Connection, key: &DedupeKey) -> Result<Option<i64>, StoreError> {
        if let Some(ms) = self.memtable.get(key) {
            return Ok(Some(*ms));
        }
        let mut stmt = conn.prepare_cached(
            "SELECT received_ms FROM dedupe WHERE source_id = ?1 AND message_id = ?2",
        )?;
        let mut rows = stmt.query(params![&*key.0, key.1])?;
        match rows.next()? {
            Some(row) => Ok(Some(row.get(0)?)),
            None => Ok(None),
        }
    }

    fn due(&self) -> bool {
        self.memtable.len() >= self.flush_entries
            || self
                .first_unflushed
                .is_some_and(|first| first.elapsed() >= DEDUPE_FLUSH_EVERY)
    }

    /// Writes the memtable into `dedupe` sorted by key and records the last `seq` covered
    /// (`covered`, or the log's current end) in the same transaction, then clears it. On
    /// error the memtable is kept, and the flush is tried again later.
    fn flush(&mut self, conn: &Connection, covered: Option<i64>) -> Result<(), StoreError> {
        let mut entries: Vec<(&DedupeKey, &i64)> = self.memtable.iter().collect();
        entries.sort_unstable_by(|a, b| (&*a.0.0, &a.0.1).cmp(&(&*b.0.0, &b.0.1)));
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| -> Result<(), StoreError> {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO dedupe (source_id, message_id, received_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (source_id, message_id) DO UPDATE SET \
                 received_ms = max(dedupe.received_ms, excluded.received_ms)",
            )?;
            for ((source_id, message_id), received_ms) in &entries {
                upsert.execute(params![&**source_id, message_id, received_ms])?;
            }
            match covered {
                Some(seq) => conn.execute(
                    "UPDATE dedupe_meta SET last_seq = ?1 WHERE id = 1",
                    params![seq],
                )?,
                None => conn.execute(
                    "UPDATE dedupe_meta SET last_seq = \
                     (SELECT coalesce(max(seq), 0) FROM messages) WHERE id = 1",
                    [],
                )?,
            };
            Ok(())
        })();
        if let Err(err) = result.and_then(|()| Ok(conn.execute_batch("COMMIT")?)) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err);
        }
        self.memtable.clear();
        self.first_unflushed = None;
        Ok(())
    }
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
                    // After the answers, so a flush is never on a waiting request's path.
                    self.maybe_flush(false);
                }
                Err(err) => {
                    self.pending.clear();
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
        self.maybe_flush(true);
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
        self.pending.clear();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
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
                        let key: DedupeKey =
                            (Arc::clone(&message.source_id), message.message_id.clone());
                        let seen = match self.pending.get(&key) {
                            Some(ms) => Some(*ms),
                            None => self.dedupe.lookup(&tx, &key)?,
                        };
                        if seen.is_some_and(|ms| ms >= received_ms.saturating_sub(window_ms)) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        self.pending.insert(key, received_ms);
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
        if !self.pending.is_empty() {
            if self.dedupe.memtable.is_empty() {
                self.dedupe.first_unflushed = Some(Instant::now());
            }
            self.dedupe.memtable.extend(self.pending.drain());
        }
        Ok(())
    }

    /// Flushes the dedupe memtable when it is due (or `force`), logging a failure: the
    /// entries stay in memory and the flush is tried again after the next group.
    fn maybe_flush(&mut self, force: bool) {
        if self.dedupe.memtable.is_empty() || !(force || self.dedupe.due()) {
            return;
        }
        if let Err(err) = self.dedupe.flush(&self.conn, None) {
            tracing::warn!(error = %err, entries = self.dedupe.memtable.len(), "dedupe flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "spoor-writer-{name}-{}",
            crate::secret::random_base62(8).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn message(source: &str, id: &str) -> NewMessage {
        NewMessage {
            source_id: Arc::from(source),
            message_id: id.to_owned(),
            kind: "track",
            user_id: Some("u1".to_owned()),
            anonymous_id: None,
            event: Some("Clicked".to_owned()),
            timestamp: None,
            body: format!("{{\"messageId\":\"{id}\"}}"),
        }
    }

    fn request(at_ms: i64, messages: Vec<NewMessage>) -> AppendRequest {
        AppendRequest {
            received_at: Timestamp::from_unix_millis(at_ms),
            messages,
            discards: Vec::new(),
        }
    }

    fn open(dir: &Path, window: Duration, flush_entries: usize) -> SqliteLog {
        SqliteLog::open_with_flush_entries(
            dir,
            SqliteLogConfig {
                dedupe_window: window,
            },
            flush_entries,
        )
        .unwrap()
    }

    fn count(dir: &Path, sql: &str) -> i64 {
        let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Now, so the writer's pruning (which uses the wall clock) keeps the test's rows.
    fn now_ms() -> i64 {
        crate::files::now().unix_millis()
    }
    const DAY: Duration = Duration::from_secs(86_400);

    #[tokio::test]
    async fn two_copies_in_one_group_are_stored_once() {
        let dir = temp_dir("group");
        let t0 = now_ms();
        let log = open(&dir, DAY, DEDUPE_FLUSH_ENTRIES);
        let outcome = log
            .append(request(
                t0,
                vec![message("s1", "a"), message("s1", "a"), message("s2", "a")],
            ))
            .await
            .unwrap();
        assert_eq!(outcome.stored, 2);
        assert_eq!(outcome.duplicates, 1);
        // Still in the memtable: the commit wrote no dedupe row.
        assert_eq!(count(&dir, "SELECT count(*) FROM dedupe"), 0);
        let again = log
            .append(request(t0 + 1, vec![message("s1", "a")]))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 1));
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 2);
        // Close flushes the memtable and records the seq it covers.
        assert_eq!(count(&dir, "SELECT count(*) FROM dedupe"), 2);
        assert_eq!(count(&dir, "SELECT last_seq FROM dedupe_meta"), 2);
    }

    #[tokio::test]
    async fn duplicates_are_found_across_a_flush() {
        let dir = temp_dir("flush");
        let t0 = now_ms();
        let log = open(&dir, DAY, 2);
        let first = log
            .append(request(t0, vec![message("s1", "a"), message("s1", "b")]))
            .await
            .unwrap();
        assert_eq!(first.stored, 2);
        // The group filled the memtable, so the writer flushed it after answering.
        let flushed = log
            .append(request(t0 + 1, vec![message("s1", "c")]))
            .await
            .unwrap();
        assert_eq!(flushed.stored, 1);
        assert_eq!(count(&dir, "SELECT count(*) FROM dedupe"), 2);
        assert_eq!(count(&dir, "SELECT last_seq FROM dedupe_meta"), 2);
        // "a" and "b" are found on disk, "c" in the memtable.
        let dup = log
            .append(request(
                t0 + 2,
                vec![message("s1", "a"), message("s1", "c"), message("s1", "b")],
            ))
            .await
            .unwrap();
        assert_eq!((dup.stored, dup.duplicates), (0, 3));
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 3);
    }

    #[tokio::test]
    async fn the_memtable_is_rebuilt_from_messages_after_a_crash() {
        let dir = temp_dir("crash");
        let t0 = now_ms();
        let log = open(&dir, DAY, DEDUPE_FLUSH_ENTRIES);
        let ids = ["a", "b", "c", "d", "e"];
        log.append(request(
            t0,
            ids.iter().map(|id| message("s1", id)).collect(),
        ))
        .await
        .unwrap();
        log.close().await.unwrap();
        // The state a kill -9 before any flush leaves: messages committed, index empty.
        {
            let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
            conn.execute_batch("DELETE FROM dedupe; UPDATE dedupe_meta SET last_seq = 0;")
                .unwrap();
        }
        // A small flush size makes the rebuild flush in steps.
        let log = open(&dir, DAY, 2);
        assert_eq!(count(&dir, "SELECT last_seq FROM dedupe_meta"), 4);
        let outcome = log
            .append(request(
                t0 + 1_000,
                vec![message("s1", "a"), message("s1", "e"), message("s1", "f")],
            ))
            .await
            .unwrap();
        assert_eq!((outcome.stored, outcome.duplicates), (1, 2));
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 6);
        assert_eq!(count(&dir, "SELECT count(*) FROM dedupe"), 6);
        assert_eq!(count(&dir, "SELECT last_seq FROM dedupe_meta"), 6);
    }

    #[tokio::test]
    async fn a_message_outside_the_window_is_stored_again() {
        for flush_entries in [1, DEDUPE_FLUSH_ENTRIES] {
            let dir = temp_dir("window");
            let t0 = now_ms();
            let log = open(&dir, Duration::from_secs(1), flush_entries);
            let at = |ms: i64| request(t0 + ms, vec![message("s1", "a")]);
            assert_eq!(log.append(at(0)).await.unwrap().stored, 1);
            assert_eq!(log.append(at(900)).await.unwrap().duplicates, 1);
            assert_eq!(log.append(at(2_000)).await.unwrap().stored, 1);
            assert_eq!(log.append(at(2_500)).await.unwrap().duplicates, 1);
            log.close().await.unwrap();
            assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 2);
        }
    }

    #[tokio::test]
    async fn a_zero_window_stores_every_copy() {
        let dir = temp_dir("off");
        let t0 = now_ms();
        let log = open(&dir, Duration::ZERO, 1);
        let outcome = log
            .append(request(t0, vec![message("s1", "a"), message("s1", "a")]))
            .await
            .unwrap();
        assert_eq!((outcome.stored, outcome.duplicates), (2, 0));
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM dedupe"), 0);
    }
}
