//! The write path: [`MessageLog`] (append a request's messages and discards durably), with
//! two implementations, [`SqliteLog`] and [`NullLog`].
//!
//! # Design of the SQLite writer
//! One dedicated thread owns the only writing connection to `events.db` (WAL, cached
//! prepared statements). Requests arrive through a bounded channel. The thread takes one
//! request, then drains everything else already waiting (up to [`MAX_GROUP_MESSAGES`]),
//! writes them all in one transaction and commits it (group commit). A crash at any moment
//! either keeps a whole transaction or none of it.
//!
//! # Acknowledgement after fsync, pipelined
//! The commit itself does not wait for the disk (`synchronous=NORMAL`: SQLite writes the
//! transaction's WAL frames, with their commit marker, and returns). The writer hands the
//! group's answers to a second thread, the syncer, and goes straight on with the next group.
//! The syncer takes every group handed to it so far, calls `fdatasync` on the WAL file
//! (`events.db-wal`, opened by path; reopened if SQLite ever replaced it) and only then
//! answers their requests. So an `Ok` from [`MessageLog::append`] still means the messages
//! are on disk, as with `synchronous=FULL`, but the fsync of group N overlaps the inserts
//! of group N+1 instead of following them, and one fsync covers every group committed while
//! the previous one ran.
//!
//! Why this is as safe as `synchronous=FULL`: `fdatasync` of the WAL covers every frame
//! written before it was called, and the groups it answers were committed (their frames
//! written) before it was called. Frames leave the WAL only through a checkpoint, which (at
//! `synchronous=NORMAL` and above) syncs the WAL before copying it into the main file and
//! syncs the main file before the WAL may be restarted over them; so a frame that is not yet
//! synced by the syncer is never overwritten before it is durable somewhere. A process crash
//! (`kill -9`) loses nothing written, synced or not (the frames are in the OS's cache); a
//! machine crash can lose only commits that were never acknowledged, whose senders retry,
//! and SQLite's WAL checksums drop any torn tail.
//!
//! # Deduplication
//! A message whose `(source_id, messageId)` was stored with a `received_ms` inside the window
//! is counted as a duplicate and not stored again. The commit transaction writes only
//! `messages` and `discards`: the `dedupe` index is derived from `messages` and kept out of
//! it, because each random messageId would dirty a random leaf of its B-tree per message.
//! The writer looks a messageId up, in this order, in
//! 1. the messages of the group being written (two copies in one commit are stored once);
//! 2. only when a fixed-size Bloom filter of every key committed ([`BLOOM_BYTES`], filled
//!    from the table on open and with each commit's keys) says the key may be there:
//!    - the memtable: an in-memory map of the messages committed since the last flush;
//!    - the flush being written (a binary search);
//!    - the `dedupe` table on disk (a point lookup on the writer's own connection).
//!
//!    A new messageId, the common case, costs one cache line of the filter and none of
//!    these: each of them is a cache miss or more per lookup in structures of megabytes
//!    (measured: the binary search of the flush alone was a tenth of the writer's time).
//!
//! A group's new entries join the memtable only once its commit succeeded. When the memtable
//! holds [`DEDUPE_FLUSH_ENTRIES`] entries, or [`DEDUPE_FLUSH_EVERY`] has passed, the writer
//! (after answering the group's requests) freezes it: it becomes a flush, sorted by key and
//! still looked up, and each following group commit also writes a chunk of it into `dedupe`
//! (twice the group's size, at least [`DEDUPE_FLUSH_CHUNK_MIN`]), so no request ever waits
//! for a whole flush. The commit holding the last chunk also sets `dedupe_meta.last_seq` to
//! the highest `seq` the flush covers; at close everything left is written at once. So
//! memory stays bounded by about twice the flush size, and after a crash at
//! any moment [`SqliteLog::open`] rebuilds the memtable from the `messages` rows with
//! `seq > last_seq` (their source, messageId and `received_at`), flushing as it goes:
//! exactly-once holds across `kill -9`. The index stores a 64-bit hash of the key with the
//! message's `seq`, and every hit is checked against the exact text in `messages`, so a hash
//! collision never makes a new message a duplicate. With the window at zero nothing is looked
//! up or kept, and `last_seq` is moved to the end of the log on open, so turning dedupe back
//! on later does not replay the messages stored meanwhile (as before, they are not in the
//! index).
//!
//! The writer prunes rows older than the window a slice of the hash space at a time
//! ([`PRUNE_SLICES`] slices, one per commit at most every 50 ms, a sweep every 10 minutes),
//! so pruning never stalls a commit for long.
//!
//! WAL checkpoints (copying committed pages into the main file) run on a second thread with
//! its own connection, every [`CHECKPOINT_BUSY_EVERY`] while commits arrive (every
//! [`CHECKPOINT_EVERY`] when idle), so the writer's commits rarely wait for them. Under
//! continuous load that thread never finds the whole WAL copied, so the WAL is never
//! restarted by it; the writer checkpoints itself once the WAL holds
//! [`WRITER_AUTOCHECKPOINT_BYTES`], which keeps the WAL and each checkpoint's writeback small
//! (a large WAL made the writer's fsyncs queue behind seconds of checkpoint writeback).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hash, Hasher};
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
/// The writer prunes dedupe rows older than the window one of this many slices of the hash
/// space at a time (a slice of `dedupe`'s key range, since it is keyed by hash first).
pub const PRUNE_SLICES: u64 = 1_024;
/// The pause between two slices of a sweep.
const PRUNE_PAUSE: Duration = Duration::from_millis(50);
/// How often a sweep starts: expired rows may stay this long past the window (a lookup
/// ignores them), which costs disk, not correctness.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Memtable entries after which the writer flushes them into `dedupe`.
pub const DEDUPE_FLUSH_ENTRIES: usize = 25_000;
/// The least number of dedupe entries a commit writes while a flush is in progress.
pub const DEDUPE_FLUSH_CHUNK_MIN: usize = 1_000;
/// Age of the oldest unflushed memtable entry after which the writer flushes anyway.
pub const DEDUPE_FLUSH_EVERY: Duration = Duration::from_secs(60);
const QUEUE_CAPACITY: usize = 4_096;
/// How often the checkpoint thread runs a passive checkpoint while the WAL is idle.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How often it runs one while commits keep arriving: often enough that the writer's own
/// checkpoint (at [`WRITER_AUTOCHECKPOINT_BYTES`]) finds almost every frame copied already,
/// so the copying happens on this thread and not on the writer's.
pub const CHECKPOINT_BUSY_EVERY: Duration = Duration::from_millis(10);
/// WAL size after which the writer checkpoints itself (as a number of pages of the file's
/// page size). Under continuous load the checkpoint thread never finds the WAL fully copied,
/// so this is what keeps the WAL, and so each checkpoint's burst of dirty pages, small:
/// measured, a 256 MiB limit gave commit stalls of 0.2 to 1 s (the WAL's fsync queued behind
/// the checkpoint's writeback) where 32 MiB keeps them under 0.2 s.
pub const WRITER_AUTOCHECKPOINT_BYTES: i64 = 32 << 20;

/// The writer's page cache, in KiB: it appends to `messages` (the right edge of one B-tree)
/// and writes sorted chunks of `dedupe`, so a small cache serves it as well as a large one,
/// and its pages are resident for the life of the server.
const WRITER_CACHE_KIB: i64 = 4_096;

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
    let mut last = (0, 0);
    let mut pause = CHECKPOINT_EVERY;
    while !shared.stopping.load(Ordering::Relaxed) {
        std::thread::sleep(pause);
        // (frames in the WAL, frames copied): unchanged means nothing was committed since.
        let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match frames {
            Ok(frames) => {
                pause = if frames == last {
                    CHECKPOINT_EVERY
                } else {
                    CHECKPOINT_BUSY_EVERY
                };
                last = frames;
            }
            Err(err) => tracing::warn!(error = %err, "background checkpoint failed"),
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
        // The syncer makes each commit durable before it is acknowledged (module docs).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            WRITER_AUTOCHECKPOINT_BYTES / page_size.max(512),
        )?;
        let window_ms = i64::try_from(config.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let mut dedupe = Dedupe {
            memtable: KeyMap::default(),
            flush_entries: flush_entries.max(1),
            first_unflushed: None,
            bloom: Bloom::new(BLOOM_BYTES),
            flushing: None,
        };
        dedupe.recover(&conn, window_ms)?;
        let checkpointer = events::open_for_writing(dir)?;
        // A checkpoint copies frames from the WAL to the file without the page cache.
        checkpointer.pragma_update(None, "cache_size", -256)?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            depth: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        });
        let (unsynced, groups) = std::sync::mpsc::channel();
        let wal = WalFile {
            path: dir.join(format!("{}-wal", crate::files::EVENTS_DB)),
            file: None,
        };
        let syncer_shared = Arc::clone(&shared);
        let syncer = std::thread::Builder::new()
            .name("spoor-log-syncer".to_owned())
            .spawn(move || sync_loop(wal, groups, &syncer_shared))
            .map_err(|source| StoreError::Io {
                action: "start the syncer thread for",
                path: dir.to_path_buf(),
                source,
            })?;
        let writer = Writer {
            conn,
            receiver,
            unsynced: Some(unsynced),
            syncer: Some(syncer),
            shared: Arc::clone(&shared),
            window_ms,
            next_prune: Instant::now(),
            prune_slice: 0,
            dedupe,
            pending: KeyMap::default(),
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

/// A committed group's answers, waiting for the fsync that makes the commit durable.
type Unsynced = Vec<(
    oneshot::Sender<Result<AppendOutcome, StoreError>>,
    AppendOutcome,
)>;

/// The WAL file as the syncer sees it: opened by path and reopened when the path names
/// another file (SQLite deletes the WAL only when its last connection closes, after a
/// complete checkpoint, so this is a safeguard, not a path taken in normal running).
struct WalFile {
    path: std::path::PathBuf,
    file: Option<(std::fs::File, u64)>,
}

impl WalFile {
    /// Makes every frame written to the WAL so far durable.
    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let inode = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.ino(),
            // No WAL: the last connection closed it after a complete, synced checkpoint.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        let stale = !matches!(&self.file, Some((_, open)) if *open == inode);
        if stale {
            let file = std::fs::File::open(&self.path)?;
            let inode = file.metadata()?.ino();
            self.file = Some((file, inode));
        }
        match &self.file {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// The syncer thread: answers committed groups once an fsync of the WAL covers them.
fn sync_loop(mut wal: WalFile, groups: std::sync::mpsc::Receiver<Unsynced>, shared: &Shared) {
    while let Ok(mut answers) = groups.recv() {
        while let Ok(more) = groups.try_recv() {
            answers.extend(more);
        }
        match wal.sync() {
            Ok(()) => {
                for (reply, outcome) in answers {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                shared.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %err, requests = answers.len(), "fsync of the WAL failed");
                let reason = format!("fsync of {} failed: {err}", wal.path.display());
                for (reply, _) in answers {
                    let _ = reply.send(Err(StoreError::CommitFailed(reason.clone())));
                }
            }
        }
    }
}

struct Writer {
    conn: Connection,
    receiver: mpsc::Receiver<Job>,
    /// Committed groups on their way to the syncer.
    unsynced: Option<std::sync::mpsc::Sender<Unsynced>>,
    syncer: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    window_ms: i64,
    next_prune: Instant,
    /// The slice of the hash space the next pruning step sweeps.
    prune_slice: u64,
    dedupe: Dedupe,
    /// The fresh dedupe entries of the group being written, merged into the memtable only
    /// once its commit succeeded.
    pending: KeyMap,
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

/// `dedupe.hash` as SQLite stores it: the same 64 bits read as a signed integer.
fn stored_hash(hash: u64) -> i64 {
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The inverse of [`stored_hash`].
fn loaded_hash(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// Deletes the `dedupe` rows of slice `slice` (of [`PRUNE_SLICES`]) of the hash space that
/// were received before `cutoff_ms`.
fn prune_slice(conn: &Connection, slice: u64, cutoff_ms: i64) -> Result<usize, StoreError> {
    let width = u64::MAX / PRUNE_SLICES + 1;
    let start = slice.wrapping_mul(width);
    // Each slice is contiguous as signed integers too: the sign boundary 2^63 is a multiple
    // of the width.
    let (low, high) = (
        stored_hash(start),
        stored_hash(start.wrapping_add(width - 1)),
    );
    Ok(conn.execute(
        "DELETE FROM dedupe WHERE hash BETWEEN ?1 AND ?2 AND received_ms < ?3",
        params![low.min(high), low.max(high), cutoff_ms],
    )?)
}

/// The dedupe memtable: entries committed in `messages` but not yet flushed to `dedupe`,
/// the flush in progress, and the Bloom filter of every key committed.
struct Dedupe {
    memtable: KeyMap,
    flush_entries: usize,
    first_unflushed: Option<Instant>,
    /// Every key committed since the open (in the memtable, the flush or `dedupe`), and every
    /// key `dedupe` held then: a key it does not contain is in none of them, so every lookup
    /// is skipped.
    bloom: Bloom,
    /// The flush being written, a chunk with each group's commit.
    flushing: Option<Flushing>,
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

    fn may_contain(&self, hash: u64) -> bool {
        let (block, bits) = self.block_and_bits(hash);
        (0..BLOOM_HASHES).all(|i| {
            let (word, mask) = Bloom::probe(bits, i);
            self.words[block + word] & mask != 0
        })
    }
}

impl Dedupe {
    /// Brings the memtable in line with the log after an open (clean or after a crash): reads
    /// the messages after `dedupe_meta.last_seq`, flushing every `flush_entries` of them.
    fn recover(&mut self, conn: &Connection, window_ms: i64) -> Result<(), StoreError> {
        {
            let mut stmt = conn.prepare("SELECT hash FROM dedupe")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let hash: i64 = row.get(0)?;
                self.bloom.insert(loaded_hash(hash));
            }
        }
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
            for (seq, source_id, message_id, received_at) in rows {
                // `received_at` is always written by the writer from a valid timestamp; an
                // unreadable one is remembered as "now", which only widens the window.
                let received_ms = Timestamp::parse(&received_at)
                    .map(Timestamp::unix_millis)
                    .unwrap_or_else(|_| crate::files::now().unix_millis());
                self.remember(
                    Keyed::new(Arc::from(source_id), message_id),
                    Entry { received_ms, seq },
                );
            }
            after = last;
            if self.memtable.len() >= self.flush_entries {
                self.flush_all(conn, Some(after))?;
            }
        }
        if !self.memtable.is_empty() {
            self.first_unflushed = Some(Instant::now());
        }
        Ok(())
    }

    /// Adds a committed key to the memtable (and so to the Bloom filter).
    fn remember(&mut self, keyed: Keyed, entry: Entry) {
        self.bloom.insert(keyed.hash);
        self.memtable.insert(keyed, entry);
    }

    /// The `received_ms` of a key committed earlier: memtable, flush in progress, then disk
    /// (only when the Bloom filter says the key may be there).
    fn lookup(&self, conn: &Connection, keyed: &Keyed) -> Result<Option<i64>, StoreError> {
        let (hash, key) = (keyed.hash, &keyed.key);
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        if let Some(entry) = self.memtable.get(keyed) {
            return Ok(Some(entry.received_ms));
        }
        if let Some(ms) = self.flushing.as_ref().and_then(|f| f.get(hash, key)) {
            return Ok(Some(ms));
        }
        // The hash narrows it to a few rows; the text comparison through `messages` makes
        // the answer exact.
        let mut stmt = conn.prepare_cached(
            "SELECT max(d.received_ms) FROM dedupe d JOIN messages m ON m.seq = d.seq \
             WHERE d.hash = ?1 AND m.source_id = ?2 AND m.message_id = ?3",
        )?;
        Ok(
            stmt.query_row(params![stored_hash(hash), &*key.0, key.1], |row| {
                row.get::<_, Option<i64>>(0)
            })?,
        )
    }

    fn due(&self) -> bool {
        self.memtable.len() >= self.flush_entries
            || self
                .first_unflushed
                .is_some_and(|first| first.elapsed() >= DEDUPE_FLUSH_EVERY)
    }

    /// Moves the memtable into a new flush (sorted by key), covering the log up to `covered`
    /// (or its current end). Does nothing while a flush is in progress or with nothing to flush.
    fn freeze(&mut self, conn: &Connection, covered: Option<i64>) -> Result<(), StoreError> {
        if self.flushing.is_some() || self.memtable.is_empty() {
            return Ok(());
        }
        let covered = match covered {
            Some(seq) => seq,
            None => conn.query_row("SELECT coalesce(max(seq), 0) FROM messages", [], |r| {
                r.get(0)
            })?,
        };
        let mut entries: Vec<Frozen> = self
            .memtable
            .drain()
            .map(|(keyed, entry)| Frozen {
                hash: stored_hash(keyed.hash),
                entry,
                key: keyed.key,
            })
            .collect();
        entries.sort_unstable_by_key(|frozen| (frozen.hash, frozen.entry.seq));
        self.flushing = Some(Flushing {
            entries,
            next: 0,
            covered,
        });
        self.first_unflushed = None;
        Ok(())
    }

    /// Writes up to `limit` more entries of the flush in progress with `conn`, inside the
    /// caller's transaction, and with the last of them moves `dedupe_meta.last_seq` to the
    /// flush's `covered`. Returns how far the flush got, for [`Dedupe::advance`] once the
    /// transaction has committed.
    fn write_chunk(&self, conn: &Connection, limit: usize) -> Result<Option<usize>, StoreError> {
        let Some(flushing) = &self.flushing else {
            return Ok(None);
        };
        let end = flushing
            .next
            .saturating_add(limit)
            .min(flushing.entries.len());
        let mut upsert = conn.prepare_cached(
            "INSERT OR IGNORE INTO dedupe (hash, seq, received_ms) VALUES (?1, ?2, ?3)",
        )?;
        for frozen in &flushing.entries[flushing.next..end] {
            upsert.execute(params![
                frozen.hash,
                frozen.entry.seq,
                frozen.entry.received_ms
            ])?;
        }
        if end == flushing.entries.len() {
            conn.execute(
                "UPDATE dedupe_meta SET last_seq = ?1 WHERE id = 1",
                params![flushing.covered],
            )?;
        }
        Ok(Some(end))
    }

    /// Records that the flush's entries before `end` are committed in `dedupe`.
    fn advance(&mut self, end: usize) {
        let Some(flushing) = &mut self.flushing else {
            return;
        };
        flushing.next = end;
        if end >= flushing.entries.len() {
            self.flushing = None;
        }
    }

    /// Writes the flush in progress and then the whole memtable into `dedupe`, each in one
    /// transaction of its own. On error what is not written is kept and tried again later.
    fn flush_all(&mut self, conn: &Connection, covered: Option<i64>) -> Result<(), StoreError> {
        loop {
            self.freeze(conn, covered)?;
            if self.flushing.is_none() {
                return Ok(());
            }
            conn.execute_batch("BEGIN IMMEDIATE")?;
            match self
                .write_chunk(conn, usize::MAX)
                .and_then(|end| Ok((end, conn.execute_batch("COMMIT")?)))
            {
                Ok((end, ())) => self.advance(end.unwrap_or(0)),
                Err(err) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(err);
                }
            }
        }
    }
}

/// A dedupe flush in progress: the frozen memtable, sorted by `dedupe`'s key
/// `(hash, seq)`, written into `dedupe` a chunk per commit.
struct Flushing {
    entries: Vec<Frozen>,
    /// The entries before this index are committed in `dedupe`.
    next: usize,
    /// The highest `seq` whose key is in `entries` or already in `dedupe`.
    covered: i64,
}

/// One entry of a flush.
struct Frozen {
    /// [`key_hash`] as stored.
    hash: i64,
    entry: Entry,
    key: DedupeKey,
}

impl Flushing {
    /// The latest `received_ms` of `key` (whose hash is `hash`) in the flush.
    fn get(&self, hash: u64, key: &DedupeKey) -> Option<i64> {
        let hash = stored_hash(hash);
        let start = self.entries.partition_point(|frozen| frozen.hash < hash);
        self.entries[start..]
            .iter()
            .take_while(|frozen| frozen.hash == hash)
            .filter(|frozen| frozen.key == *key)
            .map(|frozen| frozen.entry.received_ms)
            .max()
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
                    let answers: Unsynced = group
                        .drain(..)
                        .zip(outcomes.iter())
                        .map(|((_, reply), outcome)| (reply, *outcome))
                        .collect();
                    if let Some(unsynced) = &self.unsynced {
                        // The syncer only stops once this sender is dropped, below.
                        let _ = unsynced.send(answers);
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
        // Every acknowledged group is synced before the writer reports itself closed.
        drop(self.unsynced.take());
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
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
                    let mut fresh = None;
                    if window_ms > 0 {
                        let key =
                            Keyed::new(Arc::clone(&message.source_id), message.message_id.clone());
                        let seen = match self.pending.get(&key) {
                            Some(entry) => Some(entry.received_ms),
                            None => self.dedupe.lookup(&tx, &key)?,
                        };
                        if seen.is_some_and(|ms| ms >= received_ms.saturating_sub(window_ms)) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        fresh = Some(key);
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
                    if let Some(key) = fresh.take() {
                        let seq = tx.last_insert_rowid();
                        self.pending.insert(key, Entry { received_ms, seq });
                    }
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
            // One of PRUNE_SLICES slices of the hash space per step (an index range scan of
            // a bounded part of the table), a step every PRUNE_PAUSE, a sweep every
            // PRUNE_EVERY.
            let cutoff = crate::files::now().unix_millis().saturating_sub(window_ms);
            prune_slice(&tx, self.prune_slice, cutoff)?;
            self.prune_slice = (self.prune_slice + 1) % PRUNE_SLICES;
            self.next_prune = Instant::now()
                + if self.prune_slice == 0 {
                    PRUNE_EVERY
                } else {
                    PRUNE_PAUSE
                };
        }
        // A chunk of the dedupe flush in progress rides along, twice the group's size so the
        // flush outpaces the memtable's growth; sorted keys keep its B-tree writes local.
        let chunk = (2 * self.pending.len()).max(DEDUPE_FLUSH_CHUNK_MIN);
        let flushed = self.dedupe.write_chunk(&tx, chunk)?;
        tx.commit()?;
        if let Some(end) = flushed {
            self.dedupe.advance(end);
        }
        if !self.pending.is_empty() {
            if self.dedupe.memtable.is_empty() {
                self.dedupe.first_unflushed = Some(Instant::now());
            }
            for (keyed, entry) in self.pending.drain() {
                self.dedupe.remember(keyed, entry);
            }
        }
        Ok(())
    }

    /// Starts a flush of the dedupe memtable when it is due; with `force` (at close) writes
    /// everything now. A failure is logged: the entries stay in memory and are tried again.
    fn maybe_flush(&mut self, force: bool) {
        let result = if force {
            self.dedupe.flush_all(&self.conn, None)
        } else if self.dedupe.due() {
            self.dedupe.freeze(&self.conn, None)
        } else {
            Ok(())
        };
        if let Err(err) = result {
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
    async fn a_schema_2_log_is_upgraded_and_its_ids_still_deduplicated() {
        let dir = temp_dir("upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = now_ms();
        let received_at = Timestamp::from_unix_millis(t0).to_string();
        {
            // events.db as schema 2 left it: text-keyed `dedupe`, one id flushed there.
            let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
            conn.execute_batch(
                "CREATE TABLE messages (seq INTEGER PRIMARY KEY, source_id TEXT NOT NULL, \
                 message_id TEXT NOT NULL, type TEXT NOT NULL, user_id TEXT, anonymous_id TEXT, \
                 event TEXT, timestamp TEXT, received_at TEXT NOT NULL, body TEXT NOT NULL);
                 CREATE TABLE discards (id INTEGER PRIMARY KEY, source_id TEXT, \
                 received_at TEXT NOT NULL, code TEXT NOT NULL, reasons TEXT NOT NULL, \
                 body TEXT NOT NULL);
                 CREATE TABLE dedupe (source_id TEXT NOT NULL, message_id TEXT NOT NULL, \
                 received_ms INTEGER NOT NULL, PRIMARY KEY (source_id, message_id)) WITHOUT ROWID;
                 CREATE INDEX dedupe_received ON dedupe(received_ms);
                 CREATE TABLE dedupe_meta (id INTEGER PRIMARY KEY CHECK (id = 1), \
                 last_seq INTEGER NOT NULL);
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
        assert_eq!(
            count(&dir, "SELECT count(*) FROM dedupe WHERE hash IS NOT NULL"),
            3
        );
    }

    #[tokio::test]
    async fn a_schema_3_log_loses_its_received_index_and_keeps_its_ids() {
        let dir = temp_dir("schema3");
        let t0 = now_ms();
        let log = open(&dir, DAY, 1);
        log.append(request(t0, vec![message("s1", "a")]))
            .await
            .unwrap();
        log.close().await.unwrap();
        {
            let conn = Connection::open(dir.join(crate::files::EVENTS_DB)).unwrap();
            conn.execute_batch(
                "CREATE INDEX dedupe_received ON dedupe(received_ms); PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let log = open(&dir, DAY, 1);
        assert_eq!(count(&dir, "PRAGMA user_version"), events::SCHEMA_VERSION);
        assert_eq!(
            count(
                &dir,
                "SELECT count(*) FROM sqlite_master WHERE name = 'dedupe_received'"
            ),
            0
        );
        let again = log
            .append(request(t0 + 1, vec![message("s1", "a")]))
            .await
            .unwrap();
        assert_eq!(again.duplicates, 1);
        log.close().await.unwrap();
    }

    #[test]
    fn a_sweep_of_every_slice_prunes_exactly_the_expired_rows() {
        let dir = temp_dir("prune");
        let conn = events::open_for_writing(&dir).unwrap();
        let mut expect_kept = 0;
        for i in 0..5_000_i64 {
            let hash = stored_hash(key_hash("s1", &format!("id-{i}")));
            let received_ms = if i % 3 == 0 { 1_000 } else { 9_000 };
            expect_kept += i64::from(received_ms >= 5_000);
            conn.execute(
                "INSERT INTO dedupe (hash, seq, received_ms) VALUES (?1, ?2, ?3)",
                params![hash, i, received_ms],
            )
            .unwrap();
        }
        // The extremes of the key space too.
        for (hash, seq) in [
            (i64::MIN, 10_000),
            (i64::MAX, 10_001),
            (-1, 10_002),
            (0, 10_003),
        ] {
            conn.execute(
                "INSERT INTO dedupe (hash, seq, received_ms) VALUES (?1, ?2, 1)",
                params![hash, seq],
            )
            .unwrap();
        }
        let mut deleted = 0;
        for slice in 0..PRUNE_SLICES {
            deleted += prune_slice(&conn, slice, 5_000).unwrap();
        }
        assert_eq!(deleted as i64, 5_000 - expect_kept + 4);
        assert_eq!(count(&dir, "SELECT count(*) FROM dedupe"), expect_kept);
        assert_eq!(count(&dir, "SELECT min(received_ms) FROM dedupe"), 9_000);
    }

    #[test]
    fn the_syncer_follows_the_wal_file_by_path() {
        use std::os::unix::fs::MetadataExt;
        let dir = temp_dir("wal-file");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.db-wal");
        let mut wal = WalFile {
            path: path.clone(),
            file: None,
        };
        // No WAL yet (or any more): nothing to sync.
        wal.sync().unwrap();
        assert!(wal.file.is_none());
        std::fs::write(&path, b"frames").unwrap();
        wal.sync().unwrap();
        let first = wal.file.as_ref().map(|(_, inode)| *inode).unwrap();
        assert_eq!(first, std::fs::metadata(&path).unwrap().ino());
        // Replaced by another file under the same name: the next sync opens the new one.
        let other = dir.join("other");
        std::fs::write(&other, b"new frames").unwrap();
        std::fs::rename(&other, &path).unwrap();
        wal.sync().unwrap();
        let second = wal.file.as_ref().map(|(_, inode)| *inode).unwrap();
        assert_ne!(first, second);
        assert_eq!(second, std::fs::metadata(&path).unwrap().ino());
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
        // The group filled the memtable, so the writer froze it after answering, and the next
        // commit wrote it into `dedupe` (a flush smaller than a chunk takes one commit).
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

    #[test]
    fn a_flush_is_written_in_chunks_and_moves_last_seq_with_the_last() {
        let dir = temp_dir("chunks");
        let conn = events::open_for_writing(&dir).unwrap();
        let mut dedupe = Dedupe {
            memtable: KeyMap::default(),
            flush_entries: 100,
            first_unflushed: None,
            bloom: Bloom::new(1 << 10),
            flushing: None,
        };
        let key = |id: &str| Keyed::new(Arc::from("s1"), id.to_owned());
        for (i, id) in ["e", "a", "d", "b", "c"].into_iter().enumerate() {
            // The message rows the entries point at, as the writer would have stored them.
            conn.execute(
                "INSERT INTO messages (source_id, message_id, type, received_at, body) \
                 VALUES ('s1', ?1, 'track', '2026-01-01T00:00:00.000Z', '{}')",
                params![id],
            )
            .unwrap();
            let entry = Entry {
                received_ms: 1_000 + i as i64,
                seq: conn.last_insert_rowid(),
            };
            dedupe.remember(key(id), entry);
        }
        // Same source, another messageId that shares nothing: not found anywhere.
        assert_eq!(dedupe.lookup(&conn, &key("zz")).unwrap(), None);
        dedupe.freeze(&conn, Some(42)).unwrap();
        assert!(dedupe.memtable.is_empty());
        let dedupe_rows = || count(&dir, "SELECT count(*) FROM dedupe");
        let last_seq = || count(&dir, "SELECT last_seq FROM dedupe_meta");
        // Two chunks of two: last_seq stays until the last entry is written.
        for (written, expect_rows) in [(2, 2), (4, 4)] {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            let end = dedupe.write_chunk(&conn, 2).unwrap();
            conn.execute_batch("COMMIT").unwrap();
            assert_eq!(end, Some(written));
            dedupe.advance(written);
            assert_eq!(dedupe_rows(), expect_rows);
            assert_eq!(last_seq(), 0);
        }
        // Every key is found meanwhile, written or not.
        for id in ["a", "b", "c", "d", "e"] {
            assert!(dedupe.lookup(&conn, &key(id)).unwrap().is_some(), "{id}");
        }
        assert_eq!(dedupe.lookup(&conn, &key("f")).unwrap(), None);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let end = dedupe.write_chunk(&conn, 2).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(end, Some(5));
        dedupe.advance(5);
        assert!(dedupe.flushing.is_none());
        assert_eq!((dedupe_rows(), last_seq()), (5, 42));
        // Found on disk now, through the Bloom filter.
        assert_eq!(dedupe.lookup(&conn, &key("e")).unwrap(), Some(1_000));
        assert_eq!(dedupe.lookup(&conn, &key("a")).unwrap(), Some(1_001));
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
