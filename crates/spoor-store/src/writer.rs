//! The write path: [`MessageLog`] (append a request's messages and discards durably), with
//! two implementations, [`SqliteLog`] and [`NullLog`].
//!
//! # Design of the writer
//! One dedicated thread owns the log's [`SegmentWriter`] (`DIR/log/`, [`crate::segment`])
//! and the only writing connection to `events.db` (discards and `dedupe_meta`). Requests
//! arrive through a bounded channel. The thread takes one request, then drains everything
//! else already waiting (up to [`MAX_GROUP_MESSAGES`]), encodes the group's messages into
//! one buffer and appends it to the current segment with one `write` (group commit). A
//! group's discards, which are rare, are committed first in one `events.db` transaction
//! (`synchronous=FULL`, so durable at commit). A failed write cuts the segment back to where
//! the group began and fails every request of the group.
//!
//! (The name `SqliteLog` stays from the versions that kept the log in a SQLite table: the
//! store is still the embedded, SQLite-queried one. Each row then cost a B-tree insert, a WAL
//! frame and a checkpoint's second copy, the floor of the write path.)
//!
//! # Acknowledgement after fsync, pipelined
//! The writer hands the group's answers to a second thread, the syncer, and goes straight on
//! with the next group. The syncer takes every group handed to it so far, calls `fdatasync`
//! on their segment and only then answers their requests. So an `Ok` from
//! [`MessageLog::append`] means the messages are on disk, but the fsync of group N overlaps
//! the encoding and writing of group N+1 instead of following it, and one fsync covers every
//! group written while the previous one ran. A full segment is synced by the writer itself
//! before it starts the next one, so the syncer never has to look back further than the
//! segment of the groups it answers (it syncs each distinct segment of its batch).
//!
//! A process crash (`kill -9`) loses nothing written, synced or not (the bytes are in the
//! OS's cache); a machine crash can lose only writes that were never acknowledged, whose
//! senders retry, and a torn tail is cut off when the log is next opened.
//!
//! # Deduplication
//! A message whose `(source_id, messageId)` was stored with a `received_ms` inside the window
//! is counted as a duplicate and not stored again. A group's write holds only the messages:
//! the dedupe index is derived from the log and kept in sorted run files under
//! `DIR/dedupe/` ([`crate::runs`]), because each random messageId would dirty a random leaf
//! of a B-tree (measured when the index was a SQLite table: half of the writer thread's
//! time, and most of the bytes written to disk).
//! The writer looks a messageId up, in this order, in
//! 1. the messages of the group being written (two copies in one commit are stored once);
//! 2. only when a fixed-size Bloom filter of every key committed ([`BLOOM_BYTES`], filled
//!    from the runs on open and with each commit's keys) says the key may be there:
//!    - the memtable: an in-memory map of the messages committed since the last flush;
//!    - the flushes being written (a binary search each);
//!    - the runs: one block read (`pread`) per run, each hit checked against
//!      the exact text in the log, so a hash collision never makes a new message a
//!      duplicate.
//!
//!    A new messageId, the common case, costs one cache line of the filter and none of
//!    these.
//!
//! A group's new entries join the memtable only once its commit succeeded. When the memtable
//! holds [`DEDUPE_FLUSH_ENTRIES`] entries, or [`DEDUPE_FLUSH_EVERY`] has passed, the writer
//! (after answering the group's requests) freezes it, sorted by hash, into a flush covering
//! the log from the previous flush's end to the log's current end, and hands it to the
//! **flush thread** (`spoor-log-dedupe`), which syncs the current segment (so a run never
//! covers a message a machine crash could still lose) and writes the run. Until the run is in place
//! the flush is still looked up. The **merge thread** (`spoor-log-merge`) merges each
//! [`MERGE_FAN_IN`] newest runs of one size into one, leaving out expired entries, and
//! deletes runs whose newest entry left the window; runs spanning more than a quarter of the
//! window are not merged further, so expiry deletes whole files. Memory stays bounded by
//! about two memtables plus the filter and 8 bytes per 128 keys on disk.
//!
//! After a crash at any moment, [`SqliteLog::open`] loads the runs (deleting leftovers of an
//! interrupted write or merge) and rebuilds the memtable from the log's records after the
//! last run's range (their source, messageId and `received_at`), writing runs as it goes:
//! exactly-once holds across `kill -9`. A damaged run is never half-used: the index is then
//! rebuilt from the log. With the window at zero nothing is looked up or kept, and
//! `dedupe_meta.last_seq` is moved to the end of the log on open, so turning dedupe back on
//! later does not replay the messages stored meanwhile (as before, they are not in the
//! index).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use spoor_spec::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::events;
use crate::histogram::{Histogram, Snapshot};
use crate::runs::{self, Run, RunEntry};
use crate::segment::{LOG_DIR, Record, SegmentReader, SegmentWriter};

/// A boxed future, so [`MessageLog`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// At most this many messages (and discards) go into one transaction.
pub const MAX_GROUP_MESSAGES: usize = 20_000;
/// Memtable entries after which the writer flushes them into a run.
pub const DEDUPE_FLUSH_ENTRIES: usize = 25_000;
/// Age of the oldest unflushed memtable entry after which the writer flushes anyway.
pub const DEDUPE_FLUSH_EVERY: Duration = Duration::from_secs(60);
const QUEUE_CAPACITY: usize = 4_096;
/// The dedupe index's directory, inside the data directory.
pub const DEDUPE_DIR: &str = "dedupe";
/// The discards connection's page cache, in KiB: it only appends to `discards`, rarely.
const WRITER_CACHE_KIB: i64 = 1_024;

/// One accepted, normalized message, ready to store.
///
/// The body and the short fields stored beside it share one allocation: a message is
/// allocated by the thread that parsed it and freed by the store's syncer thread, and one
/// buffer freed across threads costs the allocator a fraction of five (docs/BENCHMARKS.md,
/// "Session 5: where issue 3's goals stand").
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The source it was sent to.
    pub source_id: Arc<str>,
    /// Its messageId (set by normalization when the client sent none). Its own allocation:
    /// the dedupe index keeps it.
    pub message_id: String,
    /// Its type (`track`, ...).
    pub kind: &'static str,
    /// The body, then `user_id`, `anonymous_id`, `event` and `timestamp` when present.
    text: String,
    /// Where each part of `text` ends: the body, then the four fields.
    ends: [usize; 5],
    /// Which of the four fields are present (bit 0: `user_id`, ... bit 3: `timestamp`).
    present: u8,
}

/// The fields of a [`NewMessage`] besides its body, as text.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageFields<'a> {
    /// `userId`, as text.
    pub user_id: Option<&'a str>,
    /// `anonymousId`, as text.
    pub anonymous_id: Option<&'a str>,
    /// `event` (track).
    pub event: Option<&'a str>,
    /// The corrected `timestamp`.
    pub timestamp: Option<&'a str>,
}

impl NewMessage {
    /// A message with its normalized JSON `body` (whose buffer also takes the fields: give
    /// it spare capacity to save a reallocation).
    pub fn new(
        source_id: Arc<str>,
        message_id: String,
        kind: &'static str,
        body: String,
        fields: MessageFields<'_>,
    ) -> NewMessage {
        let mut text = body;
        let parts = [
            fields.user_id,
            fields.anonymous_id,
            fields.event,
            fields.timestamp,
        ];
        text.reserve(parts.iter().flatten().map(|p| p.len()).sum());
        let mut ends = [text.len(); 5];
        let mut present = 0;
        for (i, part) in parts.iter().enumerate() {
            if let Some(part) = part {
                text.push_str(part);
                present |= 1 << i;
            }
            ends[i + 1] = text.len();
        }
        NewMessage {
            source_id,
            message_id,
            kind,
            text,
            ends,
            present,
        }
    }

    /// The normalized JSON body.
    pub fn body(&self) -> &str {
        self.text.get(..self.ends[0]).unwrap_or_default()
    }

    fn field(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        self.text.get(self.ends[i]..self.ends[i + 1])
    }

    /// `userId`, as text.
    pub fn user_id(&self) -> Option<&str> {
        self.field(0)
    }

    /// `anonymousId`, as text.
    pub fn anonymous_id(&self) -> Option<&str> {
        self.field(1)
    }

    /// `event` (track).
    pub fn event(&self) -> Option<&str> {
        self.field(2)
    }

    /// The corrected `timestamp`.
    pub fn timestamp(&self) -> Option<&str> {
        self.field(3)
    }
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
    /// How long the writer took to write and commit each group (empty for the null log).
    pub write_time: Snapshot,
    /// How long each fsync making commits durable took (empty for the null log).
    pub sync_time: Snapshot,
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
            ..LogStats::default()
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
    /// Ids kept in memory before they are written as a run (at least 1): more means fewer,
    /// larger runs for more memory (about 100 bytes per id, twice over while a run is
    /// written). [`DEDUPE_FLUSH_ENTRIES`] by default.
    pub dedupe_memtable: usize,
}

impl SqliteLogConfig {
    /// The defaults with this dedupe window.
    pub fn with_window(dedupe_window: Duration) -> SqliteLogConfig {
        SqliteLogConfig {
            dedupe_window,
            dedupe_memtable: DEDUPE_FLUSH_ENTRIES,
        }
    }
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
    write_time: Histogram,
    sync_time: Histogram,
}

/// The SQLite message log: one writer thread with group commit (see the module docs).
pub struct SqliteLog {
    sender: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLog").finish_non_exhaustive()
    }
}

impl SqliteLog {
    /// Opens (creating when missing) the log in `DIR/log/` and `DIR/events.db`, cuts a
    /// torn tail off the log, loads the dedupe index's runs from `DIR/dedupe/`, rebuilds
    /// the memtable from the messages after them, and starts the writer thread (and the
    /// syncer, flush and merge threads).
    pub fn open(dir: &Path, config: SqliteLogConfig) -> Result<SqliteLog, StoreError> {
        let flush_entries = config.dedupe_memtable;
        // Migrates an older `messages` table into the log first (`crate::events`).
        let conn = events::open_for_writing(dir)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        let log_dir = dir.join(LOG_DIR);
        let log = SegmentWriter::open(&log_dir, 0)?;
        // Whatever an earlier process wrote is made durable before the dedupe index
        // (rebuilt below) may refer to it; earlier segments were synced when closed.
        log.current_file()
            .sync_data()
            .map_err(|source| StoreError::Io {
                action: "sync",
                path: log_dir.clone(),
                source,
            })?;
        let reader = SegmentReader::new(&log_dir);
        let window_ms = i64::try_from(config.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let runs = Arc::new(RunSet {
            dir: dir.join(DEDUPE_DIR),
            runs: RwLock::new(Vec::new()),
            written: AtomicI64::new(0),
            closing: AtomicBool::new(false),
        });
        let flush_entries = flush_entries.max(1);
        let mut dedupe = Dedupe {
            memtable: KeyMap::default(),
            flush_entries,
            first_unflushed: None,
            bloom: Bloom::new(BLOOM_BYTES),
            flushing: Vec::new(),
            covered: 0,
            runs: Arc::clone(&runs),
            jobs: None,
            candidates: Vec::new(),
        };
        dedupe.recover(&conn, &reader, log.last_seq(), window_ms)?;
        let current = Arc::new(Mutex::new(log.current_file()));
        let mut run_threads = Vec::new();
        if window_ms > 0 {
            let (jobs, job_receiver) = std::sync::mpsc::channel();
            let (wake, woken) = std::sync::mpsc::channel();
            let flush_set = Arc::clone(&runs);
            let flush_current = Arc::clone(&current);
            let flush_log_dir = log_dir.clone();
            run_threads.push(spawn("spoor-log-dedupe", dir, move || {
                flush_loop(
                    &flush_set,
                    &flush_log_dir,
                    &flush_current,
                    job_receiver,
                    wake,
                )
            })?);
            let merge_set = Arc::clone(&runs);
            run_threads.push(spawn("spoor-log-merge", dir, move || {
                merge_loop(&merge_set, woken, flush_entries, window_ms)
            })?);
            dedupe.jobs = Some(jobs);
        }
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            depth: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            write_time: Histogram::new(),
            sync_time: Histogram::new(),
        });
        let (unsynced, groups) = std::sync::mpsc::channel();
        let syncer_shared = Arc::clone(&shared);
        let syncer = spawn("spoor-log-syncer", dir, move || {
            sync_loop(groups, &syncer_shared)
        })?;
        let writer = Writer {
            conn,
            log,
            reader,
            current,
            receiver,
            unsynced: Some(unsynced),
            syncer: Some(syncer),
            shared: Arc::clone(&shared),
            window_ms,
            dedupe,
            run_threads,
            keys: Vec::new(),
            source: None,
        };
        let thread = spawn("spoor-log-writer", dir, move || writer.run())?;
        Ok(SqliteLog {
            sender,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// Starts a named thread of the log.
fn spawn(
    name: &str,
    dir: &Path,
    body: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|source| StoreError::Io {
            action: "start a thread for",
            path: dir.to_path_buf(),
            source,
        })
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
            write_time: self.shared.write_time.snapshot(),
            sync_time: self.shared.sync_time.snapshot(),
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
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(handle) = handle {
                    let _ = handle.join();
                }
            })
            .await;
            Ok(())
        })
    }
}

/// A written group's answers, waiting for the fsync that makes it durable.
struct Unsynced {
    answers: Vec<(
        oneshot::Sender<Result<AppendOutcome, StoreError>>,
        AppendOutcome,
    )>,
    /// The group's requests, freed by the syncer after answering (their strings were
    /// allocated by other threads, and freeing them was a twentieth of the writer's time).
    spent: Vec<AppendRequest>,
    /// The segment the group was written to.
    file: Arc<std::fs::File>,
}

/// The syncer thread: answers written groups once an fsync of their segment covers them.
fn sync_loop(groups: std::sync::mpsc::Receiver<Unsynced>, shared: &Shared) {
    while let Ok(first) = groups.recv() {
        let Unsynced {
            mut answers,
            spent,
            file,
        } = first;
        let mut spent = vec![spent];
        // Usually one file; two when the writer started a segment meanwhile (it synced the
        // full one itself, but syncing it again costs nothing and keeps this rule simple).
        let mut files = vec![file];
        while let Ok(more) = groups.try_recv() {
            answers.extend(more.answers);
            spent.push(more.spent);
            if !files.iter().any(|f| Arc::ptr_eq(f, &more.file)) {
                files.push(more.file);
            }
        }
        let started = Instant::now();
        let synced = files.iter().try_for_each(|f| f.sync_data());
        shared.sync_time.record(started.elapsed());
        match synced {
            Ok(()) => {
                for (reply, outcome) in answers {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                shared.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %err, requests = answers.len(), "fsync of the log failed");
                let reason = format!("fsync of the message log failed: {err}");
                for (reply, _) in answers {
                    let _ = reply.send(Err(StoreError::CommitFailed(reason.clone())));
                }
            }
        }
        drop(spent);
    }
}

struct Writer {
    /// `events.db`: discards and `dedupe_meta`.
    conn: Connection,
    /// The message log.
    log: SegmentWriter,
    /// The log, read (dedupe hits are checked against the stored messageId).
    reader: SegmentReader,
    /// The segment being written, for the flush thread's sync.
    current: Arc<Mutex<Arc<std::fs::File>>>,
    receiver: mpsc::Receiver<Job>,
    /// Committed groups on their way to the syncer.
    unsynced: Option<std::sync::mpsc::Sender<Unsynced>>,
    syncer: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    window_ms: i64,
    dedupe: Dedupe,
    /// The dedupe index's flush and merge threads, joined at close.
    run_threads: Vec<std::thread::JoinHandle<()>>,
    /// The dedupe keys of the request being encoded.
    keys: Vec<Keyed>,
    /// The writer's own copy of the last source id seen, shared by its dedupe keys (cloning
    /// the request's copy, which the request threads clone and drop too, made every key's
    /// reference count bounce between cores).
    source: Option<Arc<str>>,
}

/// A dedupe key: `(source_id, message_id)`.
type DedupeKey = (Arc<str>, String);

/// A dedupe key with its [`key_hash`], computed once per message: the in-memory maps hash
/// by it (no second pass over the text), and the flush and the Bloom filter use it as is.
#[derive(Clone, Debug)]
struct Keyed {
    hash: u64,
    key: DedupeKey,
}

impl Keyed {
    fn new(source_id: Arc<str>, message_id: String) -> Keyed {
        Keyed {
            hash: key_hash(&source_id, &message_id),
            key: (source_id, message_id),
        }
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Keyed) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Keyed {}

impl Hash for Keyed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hasher of [`KeyMap`]: [`Keyed`] keys are hashed already (and well mixed), so it
/// passes their hash through.
#[derive(Clone, Copy, Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Keyed`; any other input is still hashed.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Dedupe entries by key.
type KeyMap = HashMap<Keyed, Entry, BuildHasherDefault<PassThrough>>;

/// What the dedupe index knows of a stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    received_ms: i64,
    seq: i64,
}

/// The 64-bit hash of a dedupe key kept in `dedupe.hash` and used by the Bloom filter:
/// FNV-1a over the source, a separator and the messageId, then the SplitMix64 finalizer to
/// spread the bits. Fixed here (not std's unspecified `DefaultHasher`) because it is stored.
fn key_hash(source_id: &str, message_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = source_id.bytes().chain([0xff]).chain(message_id.bytes());
    for byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The runs of the dedupe index as the writer and the run threads share them.
struct RunSet {
    /// `DIR/dedupe`.
    dir: PathBuf,
    /// The runs, oldest first. Only the flush thread appends and only the merge thread
    /// replaces or removes, so each can act on what it read without holding the lock.
    runs: RwLock<Vec<Arc<Run>>>,
    /// The highest `seq` covered by a run written: flushes up to it are done.
    written: AtomicI64,
    /// Set when the writer closes: a failing run write then gives up instead of retrying
    /// (what it held is rebuilt from the log on the next open).
    closing: AtomicBool,
}

/// A memtable handed to the flush thread, to be written as one run covering
/// `first_seq..=flush.covered` (the writer keeps looking it up meanwhile).
struct RunJob {
    flush: Arc<Flushing>,
    first_seq: i64,
}

/// The dedupe memtable: entries stored in the log but not yet in a run, the flushes
/// being written, the runs, and the Bloom filter of every key committed.
struct Dedupe {
    memtable: KeyMap,
    flush_entries: usize,
    first_unflushed: Option<Instant>,
    /// Every key committed since the open (in the memtable, a flush or a run), and every key
    /// the runs held then: a key it does not contain is in none of them, so every lookup is
    /// skipped.
    bloom: Bloom,
    /// Memtables frozen and handed to the flush thread, oldest first, until their run is in
    /// `runs` (and so `runs.written` reaches their `covered`).
    flushing: Vec<Arc<Flushing>>,
    /// The highest `seq` covered by the runs and the flushes: the next flush starts after it.
    covered: i64,
    runs: Arc<RunSet>,
    /// The flush thread's queue (None before it starts and after the close).
    jobs: Option<std::sync::mpsc::Sender<RunJob>>,
    /// Hits of the runs for the key being looked up (reused).
    candidates: Vec<(i64, i64)>,
}

/// A fixed-size Bloom filter over dedupe keys: memory is [`BLOOM_BYTES`] however many keys
/// it holds; more keys only mean more false positives, and a false positive costs one
/// point lookup in `dedupe` (the answer stays exact).
///
/// Blocked: all the probes of a key fall in one 512-bit block, one cache line, so a lookup in
/// the 8 MiB filter costs one cache miss instead of one per probe (measured: the misses were
/// a tenth of the writer thread's time), for slightly more false positives than a plain
/// filter of the same size.
struct Bloom {
    /// [`BLOOM_BLOCK_WORDS`] words per block.
    words: Vec<u64>,
    blocks: u64,
}

/// The size of the dedupe Bloom filter: 8 MiB, 2^26 bits; with five probes per
/// key, a key that is not on disk is looked up anyway about 0.4% of the time with 5 million
/// keys in the window and 3-4% with 10 million.
pub const BLOOM_BYTES: usize = 8 << 20;
const BLOOM_HASHES: u32 = 5;
/// Words of a block: 8 x 64 bits, one cache line.
const BLOOM_BLOCK_WORDS: usize = 8;

impl Bloom {
    fn new(bytes: usize) -> Bloom {
        let words = (bytes / 8).next_power_of_two().max(BLOOM_BLOCK_WORDS);
        Bloom {
            words: vec![0; words],
            blocks: (words / BLOOM_BLOCK_WORDS) as u64,
        }
    }

    /// The first word of a key hash's block (from the hash's high half, scaled to the number
    /// of blocks) and the bits to test in it: [`BLOOM_HASHES`] fields of 9 bits of a remix of
    /// the hash, so they are independent of the block.
    fn block_and_bits(&self, hash: u64) -> (usize, u64) {
        let block = (((hash >> 32) * self.blocks) >> 32) as usize * BLOOM_BLOCK_WORDS;
        let mut bits = hash ^ 0x9e37_79b9_7f4a_7c15;
        bits = (bits ^ (bits >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (block, bits ^ (bits >> 29))
    }

    /// Probe `i` of `bits`: a word of the block and the bit in it.
    fn probe(bits: u64, i: u32) -> (usize, u64) {
        let bit = (bits >> (9 * i)) & 511;
        ((bit >> 6) as usize, 1u64 << (bit & 63))
    }

    fn insert(&mut self, hash: u64) {
        let (block, bits) = self.block_and_bits(hash);
        for i in 0..BLOOM_HASHES {
            let (word, mask) = Bloom::probe(bits, i);
            self.words[block + word] |= mask;
        }
    }

    /// Reads the word of `hash`'s block: done for a whole request before its keys are
    /// checked, so the cache misses of the 8 MiB filter overlap instead of following one
    /// another (they were half of the writer's own time).
    fn touch(&self, hash: u64) -> u64 {
        let (block, _) = self.block_and_bits(hash);
        self.words[block]
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (block, bits) = self.block_and_bits(hash);
        (0..BLOOM_HASHES).all(|i| {
            let (word, mask) = Bloom::probe(bits, i);
            self.words[block + word] & mask != 0
        })
    }
}

impl Dedupe {
    /// Loads the runs of `DIR/dedupe` and brings the memtable in line with the log after an
    /// open (clean or after a crash): converts a schema-4 `dedupe` table into a run, then
    /// reads the messages after the runs' coverage, flushing every `flush_entries` of them.
    fn recover(
        &mut self,
        conn: &Connection,
        log: &SegmentReader,
        log_end: i64,
        window_ms: i64,
    ) -> Result<(), StoreError> {
        let floor: i64 =
            conn.query_row("SELECT last_seq FROM dedupe_meta WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        if window_ms <= 0 {
            // Nothing is kept: turning dedupe back on later starts from the log's end.
            conn.execute(
                "UPDATE dedupe_meta SET last_seq = ?1 WHERE id = 1",
                [log_end],
            )?;
            return Ok(());
        }
        let cutoff = crate::files::now().unix_millis().saturating_sub(window_ms);
        let mut floor = floor;
        self.convert_legacy(conn, floor, cutoff)?;
        let bloom = &mut self.bloom;
        let runs = match runs::open_dir(&self.runs.dir, |hash| bloom.insert(hash)) {
            Ok(runs) => runs,
            Err(err) => {
                // A damaged index is rebuilt from the log, never half-used.
                tracing::warn!(error = %err, "dedupe index damaged; rebuilding it from the log");
                runs::clear_dir(&self.runs.dir)?;
                self.bloom = Bloom::new(BLOOM_BYTES);
                floor = 0;
                Vec::new()
            }
        };
        self.covered = runs.last().map_or(floor, |run| run.last_seq().max(floor));
        *self.runs.runs.write().unwrap_or_else(|p| p.into_inner()) =
            runs.into_iter().map(Arc::new).collect();
        self.runs.written.store(self.covered, Ordering::Relaxed);
        let mut after = self.covered;
        loop {
            let mut rows: Vec<(i64, String, String, String)> = Vec::new();
            log.scan_after(after, |seq, payload| {
                if let Some(record) = Record::decode(payload) {
                    rows.push((
                        seq,
                        record.source_id.to_owned(),
                        record.message_id.to_owned(),
                        record.received_at.to_owned(),
                    ));
                }
                rows.len() < self.flush_entries
            })?;
            let Some(last) = rows.last().map(|row| row.0) else {
                break;
            };
            for (seq, source_id, message_id, received_at) in rows {
                // `received_at` is always written by the writer from a valid timestamp; an
                // unreadable one is remembered as "now", which only widens the window.
                let received_ms = Timestamp::parse(&received_at)
                    .map(Timestamp::unix_millis)
                    .unwrap_or_else(|_| crate::files::now().unix_millis());
                if received_ms >= cutoff {
                    self.remember(
                        Keyed::new(Arc::from(source_id), message_id),
                        Entry { received_ms, seq },
                    );
                }
            }
            after = last;
            if self.memtable.len() >= self.flush_entries {
                self.flush_now(after)?;
            }
        }
        self.flush_now(after)?;
        Ok(())
    }

    /// Schema 4 kept the index in the `dedupe` table (renamed `dedupe_legacy` by the
    /// migration to schema 5): its unexpired rows become one run covering the log up to
    /// `dedupe_meta.last_seq`, then the table is dropped.
    fn convert_legacy(
        &mut self,
        conn: &Connection,
        floor: i64,
        cutoff: i64,
    ) -> Result<(), StoreError> {
        let legacy: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'dedupe_legacy'",
            [],
            |r| r.get(0),
        )?;
        if !legacy {
            return Ok(());
        }
        let mut entries = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT hash, seq, received_ms FROM dedupe_legacy WHERE received_ms >= ?1",
            )?;
            let mut rows = stmt.query(params![cutoff])?;
            while let Some(row) = rows.next()? {
                entries.push(RunEntry {
                    hash: u64::from_ne_bytes(row.get::<_, i64>(0)?.to_ne_bytes()),
                    seq: row.get(1)?,
                    received_ms: row.get(2)?,
                });
            }
        }
        entries.sort_unstable();
        crate::files::ensure_data_dir(&self.runs.dir)?;
        if !entries.is_empty() && floor > 0 {
            Run::write(&self.runs.dir, 1, floor, entries)?;
        }
        conn.execute_batch("DROP TABLE dedupe_legacy")?;
        Ok(())
    }

    /// Adds a committed key to the memtable (and so to the Bloom filter).
    fn remember(&mut self, keyed: Keyed, entry: Entry) {
        self.bloom.insert(keyed.hash);
        self.memtable.insert(keyed, entry);
    }

    /// The `received_ms` of a key committed earlier: memtable, flushes in progress, then the
    /// runs (only when the Bloom filter says the key may be there).
    fn lookup(&mut self, log: &SegmentReader, keyed: &Keyed) -> Result<Option<i64>, StoreError> {
        let (hash, key) = (keyed.hash, &keyed.key);
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        if let Some(entry) = self.memtable.get(keyed) {
            return Ok(Some(entry.received_ms));
        }
        if let Some(ms) = self.flushing.iter().rev().find_map(|f| f.get(hash, key)) {
            return Ok(Some(ms));
        }
        self.candidates.clear();
        for run in self
            .runs
            .runs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            run.find(hash, &mut self.candidates)?;
        }
        if self.candidates.is_empty() {
            return Ok(None);
        }
        // Latest first; the hash narrows it to a few records, the text comparison with
        // the log makes the answer exact.
        self.candidates
            .sort_unstable_by_key(|&(_, ms)| std::cmp::Reverse(ms));
        for &(seq, ms) in &self.candidates {
            let found = log.get(seq)?;
            let same = found
                .as_ref()
                .and_then(|owned| owned.record())
                .is_some_and(|r| r.source_id == &*key.0 && r.message_id == key.1);
            if same {
                return Ok(Some(ms));
            }
        }
        Ok(None)
    }

    fn due(&self) -> bool {
        self.memtable.len() >= self.flush_entries
            || self
                .first_unflushed
                .is_some_and(|first| first.elapsed() >= DEDUPE_FLUSH_EVERY)
    }

    /// Drops the flushes whose run is written.
    fn reap(&mut self) {
        let written = self.runs.written.load(Ordering::Acquire);
        self.flushing.retain(|f| f.covered > written);
    }

    /// Moves the memtable into a new flush (sorted by key) covering the log after the last
    /// flush up to `covered`, and returns it as a job for the flush thread. None with
    /// nothing to flush.
    fn freeze(&mut self, covered: i64) -> Option<RunJob> {
        if self.memtable.is_empty() || covered <= self.covered {
            return None;
        }
        let mut entries: Vec<Frozen> = self
            .memtable
            .drain()
            .map(|(keyed, entry)| Frozen {
                hash: keyed.hash,
                entry,
                key: keyed.key,
            })
            .collect();
        entries.sort_unstable_by_key(|frozen| (frozen.hash, frozen.entry.seq));
        let flush = Arc::new(Flushing { entries, covered });
        let job = RunJob {
            flush: Arc::clone(&flush),
            first_seq: self.covered + 1,
        };
        self.flushing.push(flush);
        self.covered = covered;
        self.first_unflushed = None;
        Some(job)
    }

    /// Writes the memtable as a run now, on this thread (while recovering, before the flush
    /// thread starts; the log was synced first).
    fn flush_now(&mut self, covered: i64) -> Result<(), StoreError> {
        if let Some(job) = self.freeze(covered) {
            let run = job.write(&self.runs.dir)?;
            self.runs
                .runs
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arc::new(run));
            self.runs
                .written
                .store(job.flush.covered, Ordering::Release);
            self.reap();
        }
        Ok(())
    }
}

/// A memtable being written as a run: its entries sorted by hash, still looked up (with
/// their exact keys) until the run is in place.
struct Flushing {
    entries: Vec<Frozen>,
    /// The highest `seq` the run covers.
    covered: i64,
}

/// One entry of a flush.
struct Frozen {
    hash: u64,
    entry: Entry,
    key: DedupeKey,
}

impl RunJob {
    /// Writes the flush as a run into `dir`.
    fn write(&self, dir: &Path) -> Result<Run, StoreError> {
        let entries = self.flush.entries.iter().map(|f| RunEntry {
            hash: f.hash,
            seq: f.entry.seq,
            received_ms: f.entry.received_ms,
        });
        Run::write(dir, self.first_seq, self.flush.covered, entries)
    }
}

impl Flushing {
    /// The latest `received_ms` of `key` (whose hash is `hash`) in the flush.
    fn get(&self, hash: u64, key: &DedupeKey) -> Option<i64> {
        let start = self.entries.partition_point(|frozen| frozen.hash < hash);
        self.entries[start..]
            .iter()
            .take_while(|frozen| frozen.hash == hash)
            .filter(|frozen| frozen.key == *key)
            .map(|frozen| frozen.entry.received_ms)
            .max()
    }
}

/// Merges of the runs: this many runs of one size tier become one run of the next.
const MERGE_FAN_IN: usize = 8;
/// How often the merge thread looks for expired runs when no run is added.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// The flush thread: writes each frozen memtable as a run, once the log holding its
/// messages is synced (a run never covers a message that a machine crash could lose). The
/// segment being written is the only one that may need it: full ones are synced when
/// closed.
fn flush_loop(
    set: &RunSet,
    log_dir: &Path,
    current: &Mutex<Arc<std::fs::File>>,
    jobs: std::sync::mpsc::Receiver<RunJob>,
    merges: std::sync::mpsc::Sender<()>,
) {
    while let Ok(job) = jobs.recv() {
        loop {
            let file = Arc::clone(&current.lock().unwrap_or_else(|p| p.into_inner()));
            let result = file
                .sync_data()
                .map_err(|source| StoreError::Io {
                    action: "sync",
                    path: log_dir.to_path_buf(),
                    source,
                })
                .and_then(|()| job.write(&set.dir));
            match result {
                Ok(run) => {
                    set.runs
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Arc::new(run));
                    set.written.store(job.flush.covered, Ordering::Release);
                    let _ = merges.send(());
                    break;
                }
                Err(err) if set.closing.load(Ordering::Relaxed) => {
                    // Rebuilt from the log on the next open.
                    tracing::warn!(error = %err, "dedupe run not written at close");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "writing a dedupe run failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// The size tier of a run of `count` entries: 0 below `MERGE_FAN_IN` flushes' worth, then
/// one more for each factor of `MERGE_FAN_IN`.
fn tier(count: u64, flush_entries: usize) -> u32 {
    let mut flushes = count / (flush_entries.max(1) as u64);
    let mut tier = 0;
    while flushes >= MERGE_FAN_IN as u64 {
        flushes /= MERGE_FAN_IN as u64;
        tier += 1;
    }
    tier
}

/// Which newest runs to merge now: the last [`MERGE_FAN_IN`] when they share a tier and
/// span at most a quarter of the window (so a run expires at most a quarter of the window
/// after its newest entry, and whole runs are what expiry deletes).
fn merge_due(runs: &[Arc<Run>], flush_entries: usize, window_ms: i64) -> Option<usize> {
    let start = runs.len().checked_sub(MERGE_FAN_IN)?;
    let tail = &runs[start..];
    let newest = tier(tail[MERGE_FAN_IN - 1].len(), flush_entries);
    let same = tail.iter().all(|r| tier(r.len(), flush_entries) == newest);
    let oldest_ms = tail.iter().map(|r| r.min_received_ms()).min()?;
    let newest_ms = tail.iter().map(|r| r.max_received_ms()).max()?;
    (same && newest_ms.saturating_sub(oldest_ms) <= window_ms / 4).then_some(start)
}

/// The merge thread: after each new run, merges the newest runs while [`merge_due`] says
/// so; and deletes the runs whose newest entry is out of the window.
fn merge_loop(
    set: &RunSet,
    wake: std::sync::mpsc::Receiver<()>,
    flush_entries: usize,
    window_ms: i64,
) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match wake.recv_timeout(EXPIRE_EVERY) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while wake.try_recv().is_ok() {}
        let cutoff = crate::files::now().unix_millis().saturating_sub(window_ms);
        let expired: Vec<Arc<Run>> = {
            let mut runs = set.runs.write().unwrap_or_else(|p| p.into_inner());
            let (gone, kept) = runs
                .drain(..)
                .partition(|r: &Arc<Run>| r.is_empty() || r.max_received_ms() < cutoff);
            *runs = kept;
            gone
        };
        for run in expired {
            let _ = std::fs::remove_file(run.path());
        }
        // At close the merges wait for the next start: only the flushes must finish.
        while !set.closing.load(Ordering::Relaxed) {
            let inputs: Vec<Arc<Run>> = {
                let runs = set.runs.read().unwrap_or_else(|p| p.into_inner());
                match merge_due(&runs, flush_entries, window_ms) {
                    Some(start) => runs[start..start + MERGE_FAN_IN].to_vec(),
                    None => break,
                }
            };
            let refs: Vec<&Run> = inputs.iter().map(|r| &**r).collect();
            let merged = match runs::merge(&set.dir, &refs, cutoff) {
                Ok(run) => Arc::new(run),
                Err(err) => {
                    tracing::warn!(error = %err, "merging dedupe runs failed");
                    break;
                }
            };
            {
                let mut runs = set.runs.write().unwrap_or_else(|p| p.into_inner());
                let at = runs.iter().position(|r| Arc::ptr_eq(r, &inputs[0]));
                if let Some(at) = at {
                    runs.splice(at..at + MERGE_FAN_IN, [merged]);
                }
            }
            // The merged run is in place (renamed and synced): its inputs can go; open
            // handles keep serving lookups that started before the swap.
            for run in &inputs {
                let _ = std::fs::remove_file(run.path());
            }
        }
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
            let started = Instant::now();
            let result = self.write_group(&mut group, &mut outcomes);
            self.shared.write_time.record(started.elapsed());
            self.shared
                .requests
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            match result {
                Ok(file) => {
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                    self.shared.healthy.store(true, Ordering::Relaxed);
                    let mut spent = Vec::with_capacity(group.len());
                    let answers = group
                        .drain(..)
                        .zip(outcomes.iter())
                        .map(|((request, reply), outcome)| {
                            spent.push(request);
                            (reply, *outcome)
                        })
                        .collect();
                    let answers = Unsynced {
                        answers,
                        spent,
                        file,
                    };
                    if let Some(unsynced) = &self.unsynced {
                        // The syncer only stops once this sender is dropped, below.
                        let _ = unsynced.send(answers);
                    }
                    // After the answers, so a flush is never on a waiting request's path.
                    self.maybe_flush();
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
        // Every acknowledged group is synced before the writer reports itself closed.
        drop(self.unsynced.take());
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
        self.close_dedupe();
        // Appends that raced with the close are answered as refused, never left hanging.
        while let Ok(job) = self.receiver.try_recv() {
            if let Job::Append { reply, .. } = job {
                let _ = reply.send(Err(StoreError::Closed));
            }
        }
        if let Err(err) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %err, "checkpoint at shutdown failed");
        }
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    /// Writes a group: its messages to the log (one `write`), its discards to `events.db`
    /// (one transaction, synced at commit, before the messages). Returns the segment to
    /// sync before answering.
    fn write_group(
        &mut self,
        group: &mut [(
            AppendRequest,
            oneshot::Sender<Result<AppendOutcome, StoreError>>,
        )],
        outcomes: &mut Vec<AppendOutcome>,
    ) -> Result<Arc<std::fs::File>, StoreError> {
        let first_seq = self.log.last_seq() + 1;
        let was_empty = self.dedupe.memtable.is_empty();
        let result = self.encode_group(group, outcomes);
        let written = result.and_then(|()| self.log.write());
        let written = match written {
            Ok(written) => written,
            Err(err) => {
                self.log.abandon();
                // The group's keys went into the memtable as they were encoded: take them
                // out again (an entry they replaced was out of the window, so not needed).
                self.dedupe
                    .memtable
                    .retain(|_, entry| entry.seq < first_seq);
                return Err(err);
            }
        };
        {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if !Arc::ptr_eq(&written.file, &current) {
                *current = Arc::clone(&written.file);
            }
        }
        if was_empty && !self.dedupe.memtable.is_empty() {
            self.dedupe.first_unflushed = Some(Instant::now());
        }
        Ok(written.file)
    }

    /// Deduplicates and encodes the group's messages for the log, and commits its
    /// discards.
    fn encode_group(
        &mut self,
        group: &mut [(
            AppendRequest,
            oneshot::Sender<Result<AppendOutcome, StoreError>>,
        )],
        outcomes: &mut Vec<AppendOutcome>,
    ) -> Result<(), StoreError> {
        let window_ms = self.window_ms;
        let mut discards = 0;
        for (request, _) in group.iter_mut() {
            let mut outcome = AppendOutcome::default();
            let received_ms = request.received_at.unix_millis();
            let received_at = request.received_at.to_string();
            let mut keys = std::mem::take(&mut self.keys);
            keys.clear();
            if window_ms > 0 {
                // The keys take the messageIds (the request is freed after the write).
                let mut touched = 0u64;
                for message in request.messages.iter_mut() {
                    let source = match &self.source {
                        Some(source) if **source == *message.source_id => Arc::clone(source),
                        _ => {
                            let source: Arc<str> = Arc::from(&*message.source_id);
                            self.source = Some(Arc::clone(&source));
                            source
                        }
                    };
                    let key = Keyed::new(source, std::mem::take(&mut message.message_id));
                    touched = touched.wrapping_add(self.dedupe.bloom.touch(key.hash));
                    keys.push(key);
                }
                std::hint::black_box(touched);
            }
            let mut keys_iter = keys.drain(..);
            for message in request.messages.iter_mut() {
                let mut fresh = None;
                if let Some(key) = keys_iter.next() {
                    // A key stored earlier in this group is in the memtable already.
                    let seen = self.dedupe.lookup(&self.reader, &key)?;
                    if seen.is_some_and(|ms| ms >= received_ms.saturating_sub(window_ms)) {
                        outcome.duplicates += 1;
                        continue;
                    }
                    fresh = Some(key);
                }
                let message_id = fresh.as_ref().map_or(&message.message_id, |k| &k.key.1);
                let seq = self.log.push(&Record {
                    seq: 0,
                    source_id: &message.source_id,
                    message_id,
                    kind: message.kind,
                    user_id: message.user_id(),
                    anonymous_id: message.anonymous_id(),
                    event: message.event(),
                    timestamp: message.timestamp(),
                    received_at: &received_at,
                    body: message.body(),
                });
                if let Some(key) = fresh.take() {
                    self.dedupe.remember(key, Entry { received_ms, seq });
                }
                outcome.stored += 1;
            }
            drop(keys_iter);
            self.keys = keys;
            discards += request.discards.len();
            outcome.discarded = request.discards.len();
            outcomes.push(outcome);
        }
        if discards > 0 {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut discard = tx.prepare_cached(
                    "INSERT INTO discards (source_id, received_at, code, reasons, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (request, _) in group.iter() {
                    let received_at = request.received_at.to_string();
                    for item in &request.discards {
                        discard.execute(params![
                            item.source_id.as_deref(),
                            received_at,
                            item.code,
                            item.reasons,
                            item.body,
                        ])?;
                    }
                }
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Hands the dedupe memtable to the flush thread when it is due (and no other flush is
    /// in progress, so memory stays bounded by about two memtables).
    fn maybe_flush(&mut self) {
        self.dedupe.reap();
        if !self.dedupe.flushing.is_empty() || !self.dedupe.due() {
            return;
        }
        self.send_flush(self.log.last_seq());
    }

    fn send_flush(&mut self, end: i64) {
        if let Some(job) = self.dedupe.freeze(end)
            && let Some(jobs) = &self.dedupe.jobs
        {
            // The flush thread only stops once this sender is dropped, at close.
            let _ = jobs.send(job);
        }
    }

    /// At close: hands everything left in the memtable to the flush thread and waits for
    /// both run threads to finish.
    fn close_dedupe(&mut self) {
        if self.window_ms > 0 {
            self.send_flush(self.log.last_seq());
        }
        self.dedupe.runs.closing.store(true, Ordering::Relaxed);
        drop(self.dedupe.jobs.take());
        for thread in self.run_threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        crate::files::test_dir("writer", name)
    }

    fn message(source: &str, id: &str) -> NewMessage {
        NewMessage::new(
            Arc::from(source),
            id.to_owned(),
            "track",
            format!("{{\"messageId\":\"{id}\"}}"),
            MessageFields {
                user_id: Some("u1"),
                event: Some("Clicked"),
                ..MessageFields::default()
            },
        )
    }

    #[test]
    fn a_message_keeps_its_fields_in_one_buffer() {
        let body = String::from("{\"type\":\"track\"}");
        let m = NewMessage::new(
            Arc::from("s1"),
            "m1".to_owned(),
            "track",
            body.clone(),
            MessageFields {
                user_id: Some(""),
                anonymous_id: None,
                event: Some("Clicked"),
                timestamp: Some("2026-12-01T00:00:00.000Z"),
            },
        );
        assert_eq!(m.body(), body);
        // An empty id is kept as empty, not as absent.
        assert_eq!(m.user_id(), Some(""));
        assert_eq!(m.anonymous_id(), None);
        assert_eq!(m.event(), Some("Clicked"));
        assert_eq!(m.timestamp(), Some("2026-12-01T00:00:00.000Z"));
        let bare = NewMessage::new(
            Arc::from("s1"),
            "m2".to_owned(),
            "page",
            "{}".to_owned(),
            MessageFields::default(),
        );
        assert_eq!(bare.body(), "{}");
        assert_eq!(
            (
                bare.user_id(),
                bare.anonymous_id(),
                bare.event(),
                bare.timestamp()
            ),
            (None, None, None, None)
        );
    }

    fn request(at_ms: i64, messages: Vec<NewMessage>) -> AppendRequest {
        AppendRequest {
            received_at: Timestamp::from_unix_millis(at_ms),
            messages,
            discards: Vec::new(),
        }
    }

    fn open(dir: &Path, window: Duration, flush_entries: usize) -> SqliteLog {
        SqliteLog::open(
            dir,
            SqliteLogConfig {
                dedupe_window: window,
                dedupe_memtable: flush_entries,
            },
        )
        .unwrap()
    }

    fn count(dir: &Path, sql: &str) -> i64 {
        let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
        crate::vtab::register(&conn, dir).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Now, so the writer's pruning (which uses the wall clock) keeps the test's rows.
    fn now_ms() -> i64 {
        crate::files::now().unix_millis()
    }
    const DAY: Duration = Duration::from_secs(86_400);

    /// `messages`, `discards` and `dedupe_meta` as every schema before 5 created them.
    const OLD_LOG_TABLES: &str = "
        CREATE TABLE messages (seq INTEGER PRIMARY KEY, source_id TEXT NOT NULL,
            message_id TEXT NOT NULL, type TEXT NOT NULL, user_id TEXT, anonymous_id TEXT,
            event TEXT, timestamp TEXT, received_at TEXT NOT NULL, body TEXT NOT NULL);
        CREATE TABLE discards (id INTEGER PRIMARY KEY, source_id TEXT,
            received_at TEXT NOT NULL, code TEXT NOT NULL, reasons TEXT NOT NULL,
            body TEXT NOT NULL);
        CREATE TABLE dedupe_meta (id INTEGER PRIMARY KEY CHECK (id = 1),
            last_seq INTEGER NOT NULL);";

    #[tokio::test]
    async fn a_schema_2_log_is_upgraded_and_its_ids_still_deduplicated() {
        let dir = temp_dir("upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = now_ms();
        let received_at = Timestamp::from_unix_millis(t0).to_string();
        {
            // events.db as schema 2 left it: text-keyed `dedupe`, one id flushed there.
            let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
            conn.execute_batch(OLD_LOG_TABLES).unwrap();
            conn.execute_batch(
                "CREATE TABLE dedupe (source_id TEXT NOT NULL, message_id TEXT NOT NULL, \
                 received_ms INTEGER NOT NULL, PRIMARY KEY (source_id, message_id)) WITHOUT ROWID;
                 CREATE INDEX dedupe_received ON dedupe(received_ms);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
            for id in ["old-1", "old-2"] {
                conn.execute(
                    "INSERT INTO messages (source_id, message_id, type, received_at, body) \
                     VALUES ('s1', ?1, 'track', ?2, '{}')",
                    params![id, received_at],
                )
                .unwrap();
            }
            conn.execute_batch(&format!(
                "INSERT INTO dedupe VALUES ('s1', 'old-1', {t0}); \
                 INSERT INTO dedupe_meta VALUES (1, 1);"
            ))
            .unwrap();
        }
        let log = open(&dir, DAY, 1);
        assert_eq!(count(&dir, "PRAGMA user_version"), events::SCHEMA_VERSION);
        // Both the flushed id and the unflushed one are still known after the upgrade.
        let again = log
            .append(request(
                t0 + 1,
                vec![
                    message("s1", "old-1"),
                    message("s1", "old-2"),
                    message("s1", "new"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (1, 2));
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 3);
        assert_eq!((runs_of(&dir).1, runs_of(&dir).2), (3, 3));
    }

    /// An `events.db` as schema 5 left it, with `n` messages in its `messages` table.
    fn schema_5_log(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
        conn.execute_batch(OLD_LOG_TABLES).unwrap();
        conn.execute_batch("INSERT INTO dedupe_meta VALUES (1, 0); PRAGMA user_version = 5;")
            .unwrap();
        for i in 0..n {
            conn.execute(
                "INSERT INTO messages (source_id, message_id, type, user_id, event, received_at, \
                 body) VALUES ('s1', ?1, 'track', ?2, 'Old', ?4, ?3)",
                params![
                    format!("old-{i}"),
                    (i % 2 == 0).then(|| format!("u{i}")),
                    format!(r#"{{"n":{i}}}"#),
                    Timestamp::from_unix_millis(now_ms()).to_string()
                ],
            )
            .unwrap();
        }
    }

    #[tokio::test]
    async fn a_schema_5_messages_table_moves_into_the_log_seq_for_seq() {
        let dir = temp_dir("schema5");
        schema_5_log(&dir, 5_000);
        let log = open(&dir, DAY, 1_000);
        assert_eq!(count(&dir, "PRAGMA user_version"), events::SCHEMA_VERSION);
        assert_eq!(
            count(
                &dir,
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages'"
            ),
            0,
            "the table is gone: `messages` is now the log"
        );
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 5_000);
        assert_eq!(
            count(
                &dir,
                "SELECT count(*) FROM messages WHERE message_id = 'old-' || (seq - 1) \
                 AND body ->> '$.n' = seq - 1 AND event = 'Old' \
                 AND (user_id IS NULL) = (seq % 2 = 0)"
            ),
            5_000
        );
        // The new messages follow the old ones; the old ids are still deduplicated.
        let t = now_ms() + 1_000;
        let outcome = log
            .append(request(
                t,
                vec![message("s1", "old-7"), message("s1", "fresh")],
            ))
            .await
            .unwrap();
        assert_eq!((outcome.stored, outcome.duplicates), (1, 1));
        log.close().await.unwrap();
        assert_eq!(
            count(&dir, "SELECT seq FROM messages WHERE message_id = 'fresh'"),
            5_001
        );
    }

    #[tokio::test]
    async fn a_migration_interrupted_after_the_rename_only_drops_the_table() {
        let dir = temp_dir("schema5-crash");
        schema_5_log(&dir, 10);
        // The log directory is in place but the table was not dropped yet: as if the
        // process died between the rename and the commit.
        let mut writer = SegmentWriter::open(&dir.join(LOG_DIR), 0).unwrap();
        for i in 0..10 {
            let id = format!("old-{i}");
            writer.push(&Record {
                seq: 0,
                source_id: "s1",
                message_id: &id,
                kind: "track",
                user_id: None,
                anonymous_id: None,
                event: Some("Old"),
                timestamp: None,
                received_at: "2026-11-30T00:00:00.000Z",
                body: "{}",
            });
        }
        writer.write().unwrap();
        drop(writer);
        // A leftover of an earlier attempt is ignored.
        std::fs::create_dir_all(dir.join("log.tmp")).unwrap();
        let log = open(&dir, DAY, 1_000);
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 10);
        assert_eq!(
            count(
                &dir,
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages'"
            ),
            0
        );
    }

    /// (number of runs, entries in them, highest seq covered) of `DIR/dedupe`.
    fn runs_of(dir: &Path) -> (usize, u64, i64) {
        let runs = runs::open_dir(&dir.join(DEDUPE_DIR), |_| {}).unwrap();
        (
            runs.len(),
            runs.iter().map(Run::len).sum(),
            runs.last().map_or(0, Run::last_seq),
        )
    }

    #[tokio::test]
    async fn a_schema_3_log_is_converted_into_a_run_and_keeps_its_ids() {
        let dir = temp_dir("schema3");
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = now_ms();
        let received_at = Timestamp::from_unix_millis(t0).to_string();
        {
            // events.db as schema 3 left it: `dedupe` keyed by hash, with its received index;
            // "a" and "b" flushed there, "c" not yet, "old" flushed but out of the window.
            let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
            conn.execute_batch(OLD_LOG_TABLES).unwrap();
            conn.execute_batch(
                "CREATE TABLE dedupe (hash INTEGER NOT NULL, seq INTEGER NOT NULL, \
                 received_ms INTEGER NOT NULL, PRIMARY KEY (hash, seq)) WITHOUT ROWID;
                 CREATE INDEX dedupe_received ON dedupe(received_ms);
                 INSERT INTO dedupe_meta VALUES (1, 3);
                 PRAGMA user_version = 3;",
            )
            .unwrap();
            for (seq, id, ms) in [(1, "old", t0 - 3 * 86_400_000), (2, "a", t0), (3, "b", t0)] {
                conn.execute(
                    "INSERT INTO messages (seq, source_id, message_id, type, received_at, body) \
                     VALUES (?1, 's1', ?2, 'track', ?3, '{}')",
                    params![seq, id, Timestamp::from_unix_millis(ms).to_string()],
                )
                .unwrap();
                let hash = i64::from_ne_bytes(key_hash("s1", id).to_ne_bytes());
                conn.execute(
                    "INSERT INTO dedupe VALUES (?1, ?2, ?3)",
                    params![hash, seq, ms],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO messages (seq, source_id, message_id, type, received_at, body) \
                 VALUES (4, 's1', 'c', 'track', ?1, '{}')",
                params![received_at],
            )
            .unwrap();
        }
        let log = open(&dir, DAY, DEDUPE_FLUSH_ENTRIES);
        assert_eq!(count(&dir, "PRAGMA user_version"), events::SCHEMA_VERSION);
        assert_eq!(
            count(
                &dir,
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'dedupe%' \
                 AND name != 'dedupe_meta'"
            ),
            0
        );
        // The converted run (a, b; "old" expired) and the rebuilt memtable's (c).
        assert_eq!(runs_of(&dir), (2, 3, 4));
        let again = log
            .append(request(
                t0 + 1,
                ["a", "b", "c", "old", "new"]
                    .into_iter()
                    .map(|id| message("s1", id))
                    .collect(),
            ))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (2, 3));
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn runs_are_merged_in_the_background_and_expired_ones_deleted() {
        let dir = temp_dir("merge");
        let t0 = now_ms();
        // One entry per flush: every commit writes a run.
        let log = open(&dir, DAY, 1);
        for i in 0..40 {
            let outcome = log
                .append(request(t0 + i, vec![message("s1", &format!("m{i}"))]))
                .await
                .unwrap();
            assert_eq!(outcome.stored, 1);
        }
        // Merges run in the background (and stop at close): wait for them.
        let run_files = || {
            std::fs::read_dir(dir.join(DEDUPE_DIR))
                .unwrap()
                .filter(|f| f.as_ref().unwrap().path().extension() == Some("dr".as_ref()))
                .count()
        };
        let waited = Instant::now();
        while run_files() >= 20 && waited.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        log.close().await.unwrap();
        let (runs, entries, covered) = runs_of(&dir);
        assert_eq!((entries, covered), (40, 40));
        assert!(
            runs < 20,
            "{runs} runs: merges should have joined most of 40"
        );
        // Every id is still found, now through the merged runs.
        let log = open(&dir, DAY, 1);
        let again = log
            .append(request(
                t0 + 100,
                (0..40).map(|i| message("s1", &format!("m{i}"))).collect(),
            ))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 40));
        log.close().await.unwrap();

        // Runs whose newest entry left the window are deleted whole.
        let dir = temp_dir("expire");
        let log = open(&dir, Duration::from_secs(1), 1);
        let old = log
            .append(request(t0 - 5_000, vec![message("s1", "old")]))
            .await
            .unwrap();
        assert_eq!(old.stored, 1);
        log.close().await.unwrap();
        assert_eq!(runs_of(&dir), (0, 0, 0));
    }

    #[test]
    fn merges_take_the_newest_runs_of_one_tier_within_a_quarter_of_the_window() {
        assert_eq!(tier(1, 100), 0);
        assert_eq!(tier(799, 100), 0);
        assert_eq!(tier(800, 100), 1);
        assert_eq!(tier(6_400, 100), 2);
        let dir = temp_dir("due");
        let run = |first: i64, n: u64, ms: i64| {
            let entries = (0..n).map(|i| RunEntry {
                hash: i,
                seq: first + i as i64,
                received_ms: ms,
            });
            Arc::new(Run::write(&dir, first, first + n as i64 - 1, entries).unwrap())
        };
        let mut runs: Vec<Arc<Run>> = (0..7).map(|i| run(i * 10 + 1, 2, 1_000 + i)).collect();
        assert_eq!(merge_due(&runs, 10, 10_000), None);
        runs.push(run(71, 2, 1_010));
        assert_eq!(merge_due(&runs, 10, 10_000), Some(0));
        // Too long a span for the window.
        assert_eq!(merge_due(&runs, 10, 20), None);
        // A bigger run in front is not part of the newest eight.
        runs.insert(0, run(1_000_000, 100, 900));
        assert_eq!(merge_due(&runs, 10, 10_000), Some(1));
        // Mixed tiers among the newest eight: no merge.
        runs.push(run(2_000_000, 100, 1_100));
        assert_eq!(merge_due(&runs, 10, 10_000), None);
    }

    #[tokio::test]
    async fn a_damaged_run_is_rebuilt_from_the_log() {
        let dir = temp_dir("damaged");
        let t0 = now_ms();
        let log = open(&dir, DAY, DEDUPE_FLUSH_ENTRIES);
        log.append(request(t0, vec![message("s1", "a"), message("s1", "b")]))
            .await
            .unwrap();
        log.close().await.unwrap();
        let run = std::fs::read_dir(dir.join(DEDUPE_DIR))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&run).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&run, bytes).unwrap();
        let log = open(&dir, DAY, DEDUPE_FLUSH_ENTRIES);
        assert_eq!(runs_of(&dir), (1, 2, 2));
        let again = log
            .append(request(
                t0 + 1,
                vec![message("s1", "b"), message("s1", "a")],
            ))
            .await
            .unwrap();
        assert_eq!(again.duplicates, 2);
        log.close().await.unwrap();
    }

    #[test]
    fn a_hash_collision_in_a_run_never_makes_a_new_message_a_duplicate() {
        let dir = temp_dir("collision");
        let mut writer = SegmentWriter::open(&dir.join(LOG_DIR), 0).unwrap();
        writer.push(&Record {
            seq: 0,
            source_id: "s1",
            message_id: "stored",
            kind: "track",
            user_id: None,
            anonymous_id: None,
            event: None,
            timestamp: None,
            received_at: "2026-01-01T00:00:00.000Z",
            body: "{}",
        });
        writer.write().unwrap();
        let conn = SegmentReader::new(&dir.join(LOG_DIR));
        let runs_dir = dir.join(DEDUPE_DIR);
        std::fs::create_dir_all(&runs_dir).unwrap();
        // A run claiming that "new"'s hash was stored at seq 1 (where "stored" is).
        let new = Keyed::new(Arc::from("s1"), "new".to_owned());
        let stored = Keyed::new(Arc::from("s1"), "stored".to_owned());
        let mut entries = vec![
            RunEntry {
                hash: new.hash,
                seq: 1,
                received_ms: 5,
            },
            RunEntry {
                hash: stored.hash,
                seq: 1,
                received_ms: 7,
            },
        ];
        entries.sort();
        let run = Run::write(&runs_dir, 1, 1, entries).unwrap();
        let mut dedupe = Dedupe {
            memtable: KeyMap::default(),
            flush_entries: 100,
            first_unflushed: None,
            bloom: Bloom::new(1 << 10),
            flushing: Vec::new(),
            covered: 1,
            runs: Arc::new(RunSet {
                dir: runs_dir,
                runs: RwLock::new(vec![Arc::new(run)]),
                written: AtomicI64::new(1),
                closing: AtomicBool::new(false),
            }),
            jobs: None,
            candidates: Vec::new(),
        };
        dedupe.bloom.insert(new.hash);
        dedupe.bloom.insert(stored.hash);
        assert_eq!(dedupe.lookup(&conn, &new).unwrap(), None);
        assert_eq!(dedupe.lookup(&conn, &stored).unwrap(), Some(7));
        // A flush in progress is looked up with its exact keys too.
        dedupe.remember(
            new.clone(),
            Entry {
                received_ms: 9,
                seq: 2,
            },
        );
        assert!(dedupe.freeze(2).is_some());
        assert!(dedupe.memtable.is_empty());
        assert_eq!(dedupe.lookup(&conn, &new).unwrap(), Some(9));
    }

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        // 64 KiB = 524,288 bits for 50,000 keys: about 1% false positives expected.
        let mut bloom = Bloom::new(64 << 10);
        for i in 0..50_000 {
            bloom.insert(key_hash("src", &format!("id-{i}")));
        }
        assert!((0..50_000).all(|i| bloom.may_contain(key_hash("src", &format!("id-{i}")))));
        let false_positives = (0..50_000)
            .filter(|i| bloom.may_contain(key_hash("src", &format!("other-{i}"))))
            .count();
        assert!(false_positives < 1_500, "{false_positives} false positives");
        // The source is part of the key, and the separator keeps ("ab", "c") from ("a", "bc").
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
        let other_source = (0..1_000)
            .filter(|i| bloom.may_contain(key_hash("src2", &format!("id-{i}"))))
            .count();
        assert!(other_source < 50, "{other_source}");
    }

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
        // Still in the memtable: the commit wrote no run.
        assert_eq!(runs_of(&dir), (0, 0, 0));
        let again = log
            .append(request(t0 + 1, vec![message("s1", "a")]))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 1));
        log.close().await.unwrap();
        assert_eq!(count(&dir, "SELECT count(*) FROM messages"), 2);
        // Close flushes the memtable into a run covering the log.
        assert_eq!(runs_of(&dir), (1, 2, 2));
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
        // The group filled the memtable, so the writer froze it after answering and handed it
        // to the flush thread; found there or in its run meanwhile.
        let flushed = log
            .append(request(t0 + 1, vec![message("s1", "c")]))
            .await
            .unwrap();
        assert_eq!(flushed.stored, 1);
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
        // After a reopen the memtable is empty: found in the runs alone.
        assert_eq!(runs_of(&dir).2, 3);
        let log = open(&dir, DAY, 2);
        let dup = log
            .append(request(
                t0 + 3,
                vec![message("s1", "b"), message("s1", "c"), message("s1", "a")],
            ))
            .await
            .unwrap();
        assert_eq!((dup.stored, dup.duplicates), (0, 3));
        log.close().await.unwrap();
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
        // The state a kill -9 before any flush leaves: messages committed, no run.
        runs::clear_dir(&dir.join(DEDUPE_DIR)).unwrap();
        // A small flush size makes the rebuild flush in steps: 2, 2, then the last 1.
        let log = open(&dir, DAY, 2);
        assert_eq!(runs_of(&dir), (3, 5, 5));
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
        assert_eq!((runs_of(&dir).1, runs_of(&dir).2), (6, 6));
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
        assert!(!dir.join(DEDUPE_DIR).exists());
        // Each open without dedupe moves the index's floor to the log's end.
        open(&dir, Duration::ZERO, 1).close().await.unwrap();
        assert_eq!(count(&dir, "SELECT last_seq FROM dedupe_meta"), 2);
    }
}
