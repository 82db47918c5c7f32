//! The message log's files: append-only segments under `DIR/log/`, each message written
//! once.
//!
//! # Why not a SQLite table
//! A row of a SQLite table in WAL mode is written twice (into the WAL, then by a checkpoint
//! into the main file), in pages that SQLite builds, checksums and manages, and that per-row
//! work was the floor of the write path (docs/BENCHMARKS.md, "Session 6: the log as
//! segment files"). The log only ever appends and is read in order, so it is kept as plain
//! files, and SQL reaches it through a virtual table ([`crate::vtab`]).
//!
//! # Format
//! A segment is named after the `seq` of its first record, zero-padded to 20 digits
//! (`00000000000000000001.seg`), and starts with a 16-byte header: the magic
//! `SPOORLG1` and that first `seq` (u64, little-endian). Records follow back to back:
//!
//! ```text
//! len: u32 LE    length of the payload
//! crc: u32 LE    CRC-32 (IEEE) of the payload
//! payload:       seq u64 LE, then 8 fields, each a u32 LE length (u32::MAX for NULL)
//!                and its UTF-8 bytes: source_id, message_id, type, user_id,
//!                anonymous_id, event, timestamp, received_at; then the body (the rest)
//! ```
//!
//! `seq` is strictly increasing by one across records and segments, never reused.
//!
//! # Crash safety
//! The writer ([`SegmentWriter`]) appends a whole group at once, and the log's
//! syncer `fdatasync`s the file before any of the group is acknowledged. A segment is full
//! at [`SEGMENT_BYTES`]: the writer then syncs it, creates the next one (header written and
//! synced, directory synced) and goes on there, so every segment but the last is complete
//! and durable. A crash can only leave a torn tail on the last segment (a short or
//! mis-checksummed record, or zeros): [`SegmentWriter::open`] cuts the file at the end of
//! its last valid record. Every acknowledged record lies before that point, because the
//! fsync that preceded its acknowledgement covered every byte written before it.
//!
//! # Direct writes
//! Where the file system supports it the writer opens segments with `O_DIRECT`
//! ([`WriteMode`]): the group is copied into an aligned staging buffer behind the bytes of
//! the segment's last partial block, padded with zeros to a 4 KiB block, and written at that
//! block's start. The page cache is left out (allocating and writing back its pages cost the
//! writer more than the rest of its work, docs/BENCHMARKS.md). Zeros after the last record
//! read as the end of the log (a zero length is no record); the next group overwrites them;
//! a closed segment is cut to its last record first. Rewriting the partial block puts the
//! same bytes back in front, so a torn write leaves acknowledged records whole.
//!
//! Readers ([`SegmentReader`]) see records as soon as they are written (they are in the
//! OS's cache), and treat a short or invalid record at the end of the last segment as the
//! end of the log, since it may be one being written; the same in an earlier segment is
//! reported as damage ([`StoreError::Corrupt`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::StoreError;

/// The log's directory, inside the data directory.
pub const LOG_DIR: &str = "log";
/// A segment is closed, and the next one started, once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 << 20;
const MAGIC: &[u8; 8] = b"SPOORLG1";
const HEADER_LEN: u64 = 16;
/// `len` and `crc`.
const RECORD_HEAD: usize = 8;
/// The fields before the body.
const FIELDS: usize = 8;
const NULL_LEN: u32 = u32::MAX;
/// A payload longer than this is damage, not a record (a message is at most 32 KB).
const MAX_PAYLOAD: u32 = 64 << 20;
/// The reader remembers the offset of one record in this many.
const MARK_EVERY: i64 = 128;

/// One record of the log, borrowed from its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Position in the log.
    pub seq: i64,
    /// The source's id.
    pub source_id: &'a str,
    /// The messageId.
    pub message_id: &'a str,
    /// The message type (`track`, ...).
    pub kind: &'a str,
    /// `userId`, as text.
    pub user_id: Option<&'a str>,
    /// `anonymousId`, as text.
    pub anonymous_id: Option<&'a str>,
    /// `event` (track).
    pub event: Option<&'a str>,
    /// The corrected `timestamp`.
    pub timestamp: Option<&'a str>,
    /// When the request was received (RFC 3339).
    pub received_at: &'a str,
    /// The normalized JSON body.
    pub body: &'a str,
}

impl<'a> Record<'a> {
    /// Appends this record (head and payload) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; RECORD_HEAD]);
        out.extend_from_slice(&self.seq.to_le_bytes());
        let fields = [
            Some(self.source_id),
            Some(self.message_id),
            Some(self.kind),
            self.user_id,
            self.anonymous_id,
            self.event,
            self.timestamp,
            Some(self.received_at),
        ];
        for field in fields {
            match field {
                Some(text) => {
                    out.extend_from_slice(&len_u32(text.len()).to_le_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
                None => out.extend_from_slice(&NULL_LEN.to_le_bytes()),
            }
        }
        out.extend_from_slice(self.body.as_bytes());
        let payload = &out[start + RECORD_HEAD..];
        let len = len_u32(payload.len()).to_le_bytes();
        let crc = crc32fast::hash(payload).to_le_bytes();
        out[start..start + 4].copy_from_slice(&len);
        out[start + 4..start + 8].copy_from_slice(&crc);
    }

    /// Reads a payload (already checked against its CRC). None when it is malformed.
    pub fn decode(payload: &'a [u8]) -> Option<Record<'a>> {
        let seq = i64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
        let mut rest = payload.get(8..)?;
        let mut fields: [Option<&str>; FIELDS] = [None; FIELDS];
        for field in &mut fields {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
            rest = rest.get(4..)?;
            if len != NULL_LEN {
                let len = usize::try_from(len).ok()?;
                *field = Some(std::str::from_utf8(rest.get(..len)?).ok()?);
                rest = rest.get(len..)?;
            }
        }
        let [
            source_id,
            message_id,
            kind,
            user_id,
            anonymous_id,
            event,
            timestamp,
            received_at,
        ] = fields;
        Some(Record {
            seq,
            source_id: source_id?,
            message_id: message_id?,
            kind: kind?,
            user_id,
            anonymous_id,
            event,
            timestamp,
            received_at: received_at?,
            body: std::str::from_utf8(rest).ok()?,
        })
    }
}

/// A record's payload, owned: what readers hand out in batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    seq: i64,
    payload: Vec<u8>,
}

impl OwnedRecord {
    /// Its `seq`.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// The record (decoding a payload that was checked when it was read).
    pub fn record(&self) -> Option<Record<'_>> {
        Record::decode(&self.payload)
    }
}

fn len_u32(len: usize) -> u32 {
    // Messages are capped at 32 KB and requests at 500 KB long before this.
    u32::try_from(len).unwrap_or(NULL_LEN - 1)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_owned(),
    }
}

/// The segment files of `dir`, by first `seq`.
pub fn list(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io("read directory", dir)(err)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("read directory", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(first) = stem.parse::<i64>() {
            segments.push((first, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(first, _)| *first);
    Ok(segments)
}

fn segment_path(dir: &Path, first_seq: i64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

/// Reads the record at `offset` of `file` (whose length is `len`) with a buffered reader's
/// help. `Ok(None)` at the end of the valid data (EOF, a short or invalid record).
fn read_record(
    reader: &mut impl Read,
    offset: u64,
    len: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<u64>> {
    if offset + RECORD_HEAD as u64 > len {
        return Ok(None);
    }
    let mut head = [0u8; RECORD_HEAD];
    reader.read_exact(&mut head)?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = head;
    let payload_len = u32::from_le_bytes([l0, l1, l2, l3]);
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if !(8..=MAX_PAYLOAD).contains(&payload_len) {
        return Ok(None);
    }
    let end = offset + RECORD_HEAD as u64 + u64::from(payload_len);
    if end > len {
        return Ok(None);
    }
    buf.resize(payload_len as usize, 0);
    reader.read_exact(buf)?;
    if crc32fast::hash(buf) != crc {
        return Ok(None);
    }
    Ok(Some(end))
}

fn payload_seq(payload: &[u8]) -> i64 {
    payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(-1, i64::from_le_bytes)
}

/// Checks a segment's header; returns its first `seq`.
fn read_header(file: &File, path: &Path) -> Result<Option<i64>, StoreError> {
    let mut header = [0u8; HEADER_LEN as usize];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(io("read", path)(err)),
    }
    if &header[..8] != MAGIC {
        return Ok(None);
    }
    Ok(header[8..].try_into().ok().map(i64::from_le_bytes))
}

/// Read-ahead of a scan (reading the log in order).
const SCAN_BUFFER: usize = 1 << 20;
/// Read-ahead of a lookup of one record ([`SegmentReader::get`]): about the span between two
/// marks, not a scan's megabyte.
const LOOKUP_BUFFER: usize = 64 << 10;

/// Walks the valid records of one segment from `offset` (which must be a record's start),
/// reading ahead `buffer` bytes at a time, calling `f(seq, offset, payload)` until it returns
/// false. Returns the offset after the last record walked and whether the walk stopped at
/// the end of the valid data.
fn walk(
    file: &File,
    path: &Path,
    offset: u64,
    buffer: usize,
    mut f: impl FnMut(i64, u64, &[u8]) -> bool,
) -> Result<(u64, bool), StoreError> {
    let len = file.metadata().map_err(io("read", path))?.len();
    let mut reader = std::io::BufReader::with_capacity(buffer, file);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(io("read", path))?;
    let mut buf = Vec::new();
    let mut at = offset;
    loop {
        let Some(end) = read_record(&mut reader, at, len, &mut buf).map_err(io("read", path))?
        else {
            return Ok((at, true));
        };
        if !f(payload_seq(&buf), at, &buf) {
            return Ok((at, false));
        }
        at = end;
    }
}

/// Direct I/O's unit: buffer addresses, file offsets and lengths are multiples of it (4 KiB
/// covers devices with 512-byte and 4 KiB logical blocks).
const BLOCK: usize = 4_096;
/// The most bytes one direct write takes from the staging buffer.
const STAGING: usize = 4 << 20;

/// How a segment is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// `O_DIRECT` where the file system supports it (buffered otherwise): the group goes
    /// from the writer's own buffer to the device, with no page-cache pages to allocate and
    /// write back (docs/BENCHMARKS.md, "Session 6").
    Direct,
    /// Through the page cache.
    Buffered,
}

/// `O_DIRECT`, whose value differs between architectures.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const O_DIRECT: i32 = 0o200_000;
#[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
const O_DIRECT: i32 = 0o40_000;

/// Opens a segment for writing, with `O_DIRECT` when asked and supported.
fn open_for_write(path: &Path, mode: WriteMode) -> Result<(File, WriteMode), StoreError> {
    if mode == WriteMode::Direct {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_DIRECT)
            .open(path)
        {
            Ok(file) => return Ok((file, WriteMode::Direct)),
            // EINVAL: the file system has no direct I/O (tmpfs, for one).
            Err(err) if err.raw_os_error() == Some(22) => {
                tracing::debug!(path = %path.display(), "no direct I/O here; writing buffered");
            }
            Err(err) => return Err(io("open", path)(err)),
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open", path))?;
    Ok((file, WriteMode::Buffered))
}

/// A buffer whose usable part starts at a [`BLOCK`] boundary, for direct writes.
#[derive(Debug, Default)]
struct Staging {
    bytes: Vec<u8>,
    start: usize,
}

impl Staging {
    /// The aligned part, `len` bytes long (allocated once, on first use).
    fn get(&mut self, len: usize) -> &mut [u8] {
        if self.bytes.len() < STAGING + BLOCK {
            self.bytes = vec![0; STAGING + BLOCK];
            self.start = self.bytes.as_ptr().align_offset(BLOCK).min(BLOCK);
        }
        &mut self.bytes[self.start..self.start + len]
    }
}

/// The write side of the log: one per data directory, owned by the writer thread.
#[derive(Debug)]
pub struct SegmentWriter {
    dir: PathBuf,
    /// The current segment.
    path: PathBuf,
    file: Arc<File>,
    /// How the current segment is written.
    mode: WriteMode,
    /// How new segments are opened.
    wanted: WriteMode,
    /// Bytes of records (and header) in the current segment: the file may be longer by the
    /// zeros that pad a direct write to a block.
    len: u64,
    /// Direct writes: the bytes of the segment's last, partial block (`len` rounded down
    /// to a block, up to `len`), written again in front of the next group.
    tail: Vec<u8>,
    staging: Staging,
    /// The `seq` the next record gets.
    next_seq: i64,
    /// Records encoded and not yet written.
    buf: Vec<u8>,
    /// The `seq` of the first record in `buf`.
    buf_first: i64,
    /// A write failed and could not be undone: nothing more may be appended.
    broken: bool,
}

/// What [`SegmentWriter::write`] wrote to: the file to sync before acknowledging.
#[derive(Clone, Debug)]
pub struct Written {
    /// The segment the group went to.
    pub file: Arc<File>,
}

impl SegmentWriter {
    /// Opens the log in `dir` (creating it, 0700) with direct writes where supported, cuts
    /// a torn tail off the last segment and positions after its last record. An empty log
    /// starts at `floor + 1`.
    pub fn open(dir: &Path, floor: i64) -> Result<SegmentWriter, StoreError> {
        SegmentWriter::open_with(dir, floor, WriteMode::Direct)
    }

    /// [`SegmentWriter::open`] with the given write mode.
    pub fn open_with(dir: &Path, floor: i64, mode: WriteMode) -> Result<SegmentWriter, StoreError> {
        crate::files::ensure_data_dir(dir)?;
        let segments = list(dir)?;
        let Some((first, path)) = segments.last().cloned() else {
            return SegmentWriter::create(dir, floor + 1, mode);
        };
        let file = File::open(&path).map_err(io("open", &path))?;
        let Some(header_first) = read_header(&file, &path)? else {
            let len = file.metadata().map_err(io("read", &path))?.len();
            if len > HEADER_LEN {
                // Records behind a damaged header: refused, never guessed at or dropped.
                return Err(corrupt(&path, 0, "the segment header is damaged"));
            }
            // Created but its header never made it to disk: nothing in it was acknowledged.
            drop(file);
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
            return SegmentWriter::create(dir, first, mode);
        };
        if header_first != first {
            return Err(corrupt(
                &path,
                8,
                "the header's first seq is not the file's name",
            ));
        }
        let mut expected = first;
        let (end, _) = walk(&file, &path, HEADER_LEN, SCAN_BUFFER, |seq, _, _| {
            if seq != expected {
                return false;
            }
            expected += 1;
            true
        })?;
        let len = file.metadata().map_err(io("read", &path))?.len();
        if end < len {
            // Zeros are the padding of a direct write; anything else is a write that was
            // under way when the process stopped, never acknowledged.
            let mut rest = vec![0u8; (len - end) as usize];
            file.read_exact_at(&mut rest, end)
                .map_err(io("read", &path))?;
            if rest.iter().any(|&b| b != 0) {
                tracing::warn!(
                    segment = %path.display(),
                    kept = end,
                    cut = len - end,
                    "cutting the torn tail of the message log (writes that were never acknowledged)"
                );
            }
        }
        let wanted = mode;
        let (file, mode) = open_for_write(&path, wanted)?;
        if end < len {
            file.set_len(end).map_err(io("truncate", &path))?;
            file.sync_all().map_err(io("sync", &path))?;
        }
        let mut writer = SegmentWriter::positioned(dir, path, file, (mode, wanted), end, expected);
        writer.load_tail()?;
        Ok(writer)
    }

    /// A writer of `file`, opened in `mode` where `wanted` was asked for.
    fn positioned(
        dir: &Path,
        path: PathBuf,
        file: File,
        (mode, wanted): (WriteMode, WriteMode),
        len: u64,
        next_seq: i64,
    ) -> SegmentWriter {
        SegmentWriter {
            dir: dir.to_path_buf(),
            path,
            file: Arc::new(file),
            mode,
            wanted,
            len,
            tail: Vec::new(),
            staging: Staging::default(),
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            buf_first: next_seq,
            broken: false,
        }
    }

    /// Reads the last partial block back into `tail` (direct writes only).
    fn load_tail(&mut self) -> Result<(), StoreError> {
        self.tail.clear();
        if self.mode == WriteMode::Direct {
            let start = self.len - self.len % BLOCK as u64;
            self.tail.resize((self.len - start) as usize, 0);
            // A buffered descriptor: a direct read would need an aligned buffer too.
            File::open(&self.path)
                .and_then(|f| f.read_exact_at(&mut self.tail, start))
                .map_err(io("read", &self.path))?;
        }
        Ok(())
    }

    /// Creates the segment starting at `first_seq`, header written and synced, directory
    /// synced, then opened for writing in `mode`.
    fn create(dir: &Path, first_seq: i64, mode: WriteMode) -> Result<SegmentWriter, StoreError> {
        let path = segment_path(dir, first_seq);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("create", &path))?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&first_seq.to_le_bytes());
        file.write_all(&header).map_err(io("write", &path))?;
        file.sync_all().map_err(io("sync", &path))?;
        drop(file);
        sync_dir(dir)?;
        let (file, opened) = open_for_write(&path, mode)?;
        let mut writer =
            SegmentWriter::positioned(dir, path, file, (opened, mode), HEADER_LEN, first_seq);
        if opened == WriteMode::Direct {
            writer.tail = header.to_vec();
        }
        Ok(writer)
    }

    /// How the current segment is written (direct I/O falls back to buffered where the file
    /// system has none).
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// The `seq` of the last record written (or pushed and not yet written), 0 when none.
    pub fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }

    /// The current segment (for a sync that must cover everything written so far: every
    /// earlier segment was synced when it was closed).
    pub fn current_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Encodes a record for the next [`SegmentWriter::write`]; returns its `seq`. The
    /// record's own `seq` is ignored.
    pub fn push(&mut self, record: &Record<'_>) -> i64 {
        let seq = self.next_seq;
        Record { seq, ..*record }.encode(&mut self.buf);
        self.next_seq += 1;
        seq
    }

    /// Forgets the records pushed since the last write (their group failed).
    pub fn abandon(&mut self) {
        self.buf.clear();
        self.next_seq = self.buf_first;
    }

    /// Writes the pushed records in one go (closing the segment first when it is full).
    /// On failure the file is cut back to where it was, and nothing pushed is kept.
    pub fn write(&mut self) -> Result<Written, StoreError> {
        if self.broken {
            self.abandon();
            return Err(StoreError::CommitFailed(
                "an earlier write to the message log could not be undone".to_owned(),
            ));
        }
        if self.buf.is_empty() {
            return Ok(Written {
                file: Arc::clone(&self.file),
            });
        }
        if self.len >= SEGMENT_BYTES
            && let Err(err) = self.roll()
        {
            self.abandon();
            return Err(err);
        }
        let written = match self.mode {
            WriteMode::Buffered => self.file.write_all_at(&self.buf, self.len),
            WriteMode::Direct => self.write_direct(),
        };
        if let Err(err) = written {
            // Whatever part of the group reached the file is cut off again, so the next
            // group does not land behind a torn record that would end the log for readers.
            if self.file.set_len(self.len).is_err() {
                self.broken = true;
            }
            self.abandon();
            return Err(io("write", &self.path)(err));
        }
        self.len += self.buf.len() as u64;
        if self.mode == WriteMode::Direct {
            // The new last partial block: the end of `tail ++ buf`.
            let keep = (self.len % BLOCK as u64) as usize;
            if keep <= self.buf.len() {
                self.tail.clear();
                self.tail
                    .extend_from_slice(&self.buf[self.buf.len() - keep..]);
            } else {
                self.tail.extend_from_slice(&self.buf);
            }
        }
        self.buf.clear();
        self.buf_first = self.next_seq;
        Ok(Written {
            file: Arc::clone(&self.file),
        })
    }

    /// Writes `tail ++ buf`, zero-padded to a block, at the start of the tail's block,
    /// through the aligned staging buffer.
    fn write_direct(&mut self) -> std::io::Result<()> {
        let mut offset = self.len - self.tail.len() as u64;
        let total = self.tail.len() + self.buf.len();
        let mut done = 0;
        while done < total {
            let take = (total - done).min(STAGING);
            let padded = take.div_ceil(BLOCK) * BLOCK;
            let staging = self.staging.get(padded);
            let mut filled = 0;
            // Copy the part of `tail ++ buf` in [done, done + take).
            if done < self.tail.len() {
                let from_tail = &self.tail[done..self.tail.len().min(done + take)];
                staging[..from_tail.len()].copy_from_slice(from_tail);
                filled = from_tail.len();
            }
            let buf_from = (done + filled).saturating_sub(self.tail.len());
            let from_buf = &self.buf[buf_from..buf_from + (take - filled)];
            staging[filled..take].copy_from_slice(from_buf);
            staging[take..padded].fill(0);
            self.file.write_all_at(staging, offset)?;
            offset += take as u64;
            done += take;
        }
        Ok(())
    }

    /// Syncs the full segment and starts the next one at the first pushed record.
    fn roll(&mut self) -> Result<(), StoreError> {
        // Without the padding of the last direct write: a closed segment ends at its last
        // record, so readers can tell damage from an end.
        self.file
            .set_len(self.len)
            .map_err(io("truncate", &self.path))?;
        self.file.sync_data().map_err(io("sync", &self.path))?;
        let next = SegmentWriter::create(&self.dir, self.buf_first, self.wanted)?;
        self.path = next.path;
        self.file = next.file;
        self.mode = next.mode;
        self.len = next.len;
        self.tail = next.tail;
        Ok(())
    }
}

/// Where a segment's records are, as far as a reader has walked it.
#[derive(Debug)]
struct SegmentMarks {
    path: PathBuf,
    /// `(seq, offset)` of one record in [`MARK_EVERY`], in order.
    marks: Vec<(i64, u64)>,
    /// The furthest record start known: `(seq, offset)`; at the end of the walked data,
    /// the `seq` the next record will have and the offset it will start at.
    furthest: (i64, u64),
}

impl SegmentMarks {
    /// A known record start at or before `seq`.
    fn start_for(&self, seq: i64) -> (i64, u64) {
        if self.furthest.0 <= seq {
            return self.furthest;
        }
        match self.marks.partition_point(|&(s, _)| s <= seq) {
            0 => (i64::MIN, HEADER_LEN),
            i => self.marks[i - 1],
        }
    }
}

/// The read side of the log: any number per data directory, each safe to share.
#[derive(Debug)]
pub struct SegmentReader {
    dir: PathBuf,
    /// Segments by first `seq`, with what has been learnt of their records' offsets.
    segments: Mutex<BTreeMap<i64, SegmentMarks>>,
}

impl SegmentReader {
    /// A reader of the log in `dir` (which may not exist yet: the log is then empty).
    pub fn new(dir: &Path) -> SegmentReader {
        SegmentReader {
            dir: dir.to_path_buf(),
            segments: Mutex::new(BTreeMap::new()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, SegmentMarks>> {
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists the directory again, adding segments started since.
    fn relist(&self) -> Result<(), StoreError> {
        let listed = list(&self.dir)?;
        let mut known = self.known();
        for (first, path) in listed {
            known.entry(first).or_insert_with(|| SegmentMarks {
                path,
                marks: Vec::new(),
                furthest: (first, HEADER_LEN),
            });
        }
        Ok(())
    }

    /// The segment to read `seq` from (the one with the greatest first `seq` not above it,
    /// or the first segment when `seq` precedes the log), its path and a record start at or
    /// before `seq` in it.
    fn locate(&self, seq: i64) -> Result<Option<(i64, PathBuf, u64)>, StoreError> {
        let last_known = {
            let known = self.known();
            known
                .range(..=seq)
                .next_back()
                .is_none_or(|(first, _)| known.range(first + 1..).next().is_none())
        };
        if last_known {
            // `seq` may be in a segment started since the last listing.
            self.relist()?;
        }
        let known = self.known();
        let found = known
            .range(..=seq)
            .next_back()
            .or_else(|| known.iter().next());
        Ok(found.map(|(&first, marks)| (first, marks.path.clone(), marks.start_for(seq).1)))
    }

    /// The first `seq` of the segment after `first`, listing the directory again when none
    /// is known.
    fn successor(&self, first: i64) -> Result<Option<i64>, StoreError> {
        if let Some((&next, _)) = self.known().range(first + 1..).next() {
            return Ok(Some(next));
        }
        self.relist()?;
        Ok(self
            .known()
            .range(first + 1..)
            .next()
            .map(|(&next, _)| next))
    }

    /// Remembers record starts learnt by a walk of segment `first`.
    fn learn(&self, first: i64, marks: &[(i64, u64)], furthest: (i64, u64)) {
        let mut known = self.known();
        let Some(segment) = known.get_mut(&first) else {
            return;
        };
        for &(seq, at) in marks {
            if segment.marks.last().is_none_or(|&(s, _)| seq > s) {
                segment.marks.push((seq, at));
            }
        }
        if furthest.0 > segment.furthest.0 {
            segment.furthest = furthest;
        }
    }

    /// Calls `f` with each record whose `seq` is above `after`, in order, until `f` returns
    /// false or the log ends. Returns how many records `f` was given.
    pub fn scan_after(
        &self,
        after: i64,
        f: impl FnMut(i64, &[u8]) -> bool,
    ) -> Result<u64, StoreError> {
        self.scan(after, SCAN_BUFFER, f)
    }

    /// [`SegmentReader::scan_after`], reading ahead `buffer` bytes at a time.
    fn scan(
        &self,
        after: i64,
        buffer: usize,
        mut f: impl FnMut(i64, &[u8]) -> bool,
    ) -> Result<u64, StoreError> {
        let mut from = after.saturating_add(1);
        let mut taken = 0u64;
        loop {
            let Some((first, path, offset)) = self.locate(from)? else {
                return Ok(taken);
            };
            let file = File::open(&path).map_err(io("open", &path))?;
            let mut at = offset;
            let mut rewalked = false;
            loop {
                let mut marks = Vec::new();
                let mut furthest = (i64::MIN, at);
                let mut stopped = false;
                let (end, at_end) = walk(&file, &path, at, buffer, |seq, start, payload| {
                    if (seq - first) % MARK_EVERY == 0 {
                        marks.push((seq, start));
                    }
                    furthest = (seq + 1, start + (RECORD_HEAD + payload.len()) as u64);
                    if seq < from {
                        return true;
                    }
                    from = seq + 1;
                    taken += 1;
                    stopped = !f(seq, payload);
                    !stopped
                })?;
                self.learn(first, &marks, furthest);
                if stopped || !at_end {
                    return Ok(taken);
                }
                at = end;
                let Some(next) = self.successor(first)? else {
                    return Ok(taken);
                };
                if !rewalked {
                    // A later segment exists, so this one is complete now: walk its end once
                    // more, for records whose write was under way during the first walk.
                    rewalked = true;
                    continue;
                }
                let len = file.metadata().map_err(io("read", &path))?.len();
                if end < len {
                    return Err(corrupt(&path, end, "a damaged record inside the log"));
                }
                from = from.max(next);
                break;
            }
        }
    }

    /// Up to `limit` records with `seq > after`, in order.
    pub fn read_after(&self, after: i64, limit: usize) -> Result<Vec<OwnedRecord>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(4_096));
        if limit == 0 {
            return Ok(out);
        }
        self.scan_after(after, |seq, payload| {
            out.push(OwnedRecord {
                seq,
                payload: payload.to_vec(),
            });
            out.len() < limit
        })?;
        Ok(out)
    }

    /// The record `seq`, if the log holds it.
    pub fn get(&self, seq: i64) -> Result<Option<OwnedRecord>, StoreError> {
        let mut found = None;
        self.scan(seq - 1, LOOKUP_BUFFER, |at, payload| {
            if at == seq {
                found = Some(OwnedRecord {
                    seq,
                    payload: payload.to_vec(),
                });
            }
            false
        })?;
        Ok(found)
    }

    /// The `seq` of the log's last record, 0 when it is empty (or, for a log started after a
    /// floor, that floor).
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        self.relist()?;
        let Some((first, path, start)) = self
            .known()
            .iter()
            .next_back()
            .map(|(&first, m)| (first, m.path.clone(), m.furthest))
        else {
            return Ok(0);
        };
        let file = File::open(&path).map_err(io("open", &path))?;
        let mut furthest = start;
        let mut marks = Vec::new();
        walk(&file, &path, start.1, SCAN_BUFFER, |seq, at, payload| {
            if (seq - first) % MARK_EVERY == 0 {
                marks.push((seq, at));
            }
            furthest = (seq + 1, at + (RECORD_HEAD + payload.len()) as u64);
            true
        })?;
        self.learn(first, &marks, furthest);
        Ok(furthest.0 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spoor-segment-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn record(id: &str) -> Record<'_> {
        Record {
            seq: 0,
            source_id: "src",
            message_id: id,
            kind: "track",
            user_id: Some("u1"),
            anonymous_id: None,
            event: Some("Signed Up"),
            timestamp: Some("2026-12-01T00:00:00.000Z"),
            received_at: "2026-12-01T00:00:01.000Z",
            body: r#"{"type":"track","event":"Signed Up"}"#,
        }
    }

    #[test]
    fn a_record_round_trips_with_its_nulls() {
        let mut buf = Vec::new();
        let rec = Record {
            seq: 42,
            ..record("m-1")
        };
        rec.encode(&mut buf);
        let payload = &buf[RECORD_HEAD..];
        assert_eq!(
            crc32fast::hash(payload).to_le_bytes(),
            buf[4..8],
            "the CRC covers the payload"
        );
        assert_eq!(Record::decode(payload), Some(rec));
        assert_eq!(
            Record::decode(&payload[..20]),
            None,
            "cut inside the fields"
        );
    }

    const MODES: [WriteMode; 2] = [WriteMode::Direct, WriteMode::Buffered];

    #[test]
    fn records_are_read_back_in_order_across_segments_and_reopens() {
        for mode in MODES {
            read_back_in_order(mode);
        }
    }

    fn read_back_in_order(mode: WriteMode) {
        let dir = temp_dir(&format!("order-{mode:?}"));
        let mut writer = SegmentWriter::open_with(&dir, 0, mode).unwrap();
        assert_eq!(
            writer.mode(),
            mode,
            "the test directory supports direct I/O"
        );
        let ids: Vec<String> = (0..1_000).map(|i| format!("m-{i}")).collect();
        for chunk in ids.chunks(100) {
            for id in chunk {
                writer.push(&record(id));
            }
            writer.write().unwrap();
        }
        assert_eq!(writer.last_seq(), 1_000);
        drop(writer);
        // Reopening continues the sequence.
        let mut writer = SegmentWriter::open_with(&dir, 0, mode).unwrap();
        assert_eq!(writer.push(&record("m-1000")), 1_001);
        writer.write().unwrap();
        let reader = SegmentReader::new(&dir);
        let all = reader.read_after(0, usize::MAX).unwrap();
        assert_eq!(all.len(), 1_001);
        for (i, rec) in all.iter().enumerate() {
            let r = rec.record().unwrap();
            assert_eq!(r.seq, i as i64 + 1);
            assert_eq!(r.message_id, format!("m-{i}"));
        }
        // Paging from any point, and single lookups.
        let page = reader.read_after(500, 10).unwrap();
        assert_eq!(page.first().map(OwnedRecord::seq), Some(501));
        assert_eq!(page.len(), 10);
        assert_eq!(
            reader
                .get(777)
                .unwrap()
                .unwrap()
                .record()
                .unwrap()
                .message_id,
            "m-776"
        );
        assert_eq!(reader.get(5_000).unwrap(), None);
        assert_eq!(reader.last_seq().unwrap(), 1_001);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_segment_is_closed_and_the_next_one_named_after_its_first_seq() {
        for mode in MODES {
            full_segments_roll(mode);
        }
    }

    fn full_segments_roll(mode: WriteMode) {
        let dir = temp_dir(&format!("roll-{mode:?}"));
        let mut writer = SegmentWriter::open_with(&dir, 9, mode).unwrap();
        let big = "x".repeat(30_000);
        let mut n = 0;
        while list(&dir).unwrap().len() < 3 {
            for _ in 0..100 {
                writer.push(&Record {
                    body: &big,
                    ..record("big")
                });
                n += 1;
            }
            writer.write().unwrap();
        }
        let segments = list(&dir).unwrap();
        assert_eq!(segments[0].0, 10, "an empty log starts after its floor");
        let reader = SegmentReader::new(&dir);
        let mut expected = 10;
        reader
            .scan_after(0, |seq, _| {
                assert_eq!(seq, expected);
                expected += 1;
                true
            })
            .unwrap();
        assert_eq!(expected, 10 + n);
        for (first, _) in &segments[1..] {
            assert_eq!(
                reader.get(*first).unwrap().map(|r| r.seq()),
                Some(*first),
                "a segment's name is the seq of its first record"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_tail_is_cut_on_open_and_readers_stop_before_it() {
        for mode in MODES {
            torn_tail_is_cut(mode);
        }
    }

    fn torn_tail_is_cut(mode: WriteMode) {
        let dir = temp_dir(&format!("torn-{mode:?}"));
        let mut writer = SegmentWriter::open_with(&dir, 0, mode).unwrap();
        for i in 0..10 {
            writer.push(&record(&format!("m-{i}")));
        }
        writer.write().unwrap();
        let path = list(&dir).unwrap()[0].1.clone();
        let good = writer.len;
        // Half a record, then zeros: what a crash mid-write can leave.
        let mut torn = Vec::new();
        record("torn").encode(&mut torn);
        torn.truncate(torn.len() / 2);
        torn.extend_from_slice(&[0; 100]);
        let plain = OpenOptions::new().write(true).open(&path).unwrap();
        plain.write_all_at(&torn, good).unwrap();
        drop(writer);
        let reader = SegmentReader::new(&dir);
        assert_eq!(reader.read_after(0, 100).unwrap().len(), 10);
        let mut writer = SegmentWriter::open_with(&dir, 0, mode).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        assert_eq!(writer.push(&record("next")), 11);
        writer.write().unwrap();
        let all = SegmentReader::new(&dir).read_after(0, 100).unwrap();
        assert_eq!(all.len(), 11);
        assert_eq!(all[10].record().unwrap().message_id, "next");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn direct_writes_rewrite_the_partial_block_and_keep_every_record() {
        let dir = temp_dir("blocks");
        let mut writer = SegmentWriter::open_with(&dir, 0, WriteMode::Direct).unwrap();
        let reader = SegmentReader::new(&dir);
        let mut n = 0;
        // Groups of 1 to 13 records of varied sizes: every group starts mid-block.
        for group in 1..=13usize {
            for i in 0..group {
                let body = "b".repeat((group * 97 + i * 31) % 5_000);
                let id = format!("m-{n}");
                writer.push(&Record {
                    body: &body,
                    ..record(&id)
                });
                n += 1;
            }
            writer.write().unwrap();
            // Readers see every record at once, and stop at the padding.
            assert_eq!(reader.last_seq().unwrap(), n);
        }
        // One group larger than the staging buffer: written in several direct writes.
        let big = "g".repeat(30_000);
        for _ in 0..(STAGING / 30_000 + 40) {
            let id = format!("m-{n}");
            writer.push(&Record {
                body: &big,
                ..record(&id)
            });
            n += 1;
        }
        writer.write().unwrap();
        assert_eq!(reader.last_seq().unwrap(), n);
        drop(writer);
        let mut writer = SegmentWriter::open_with(&dir, 0, WriteMode::Direct).unwrap();
        writer.push(&record("after-reopen"));
        writer.write().unwrap();
        let all = SegmentReader::new(&dir).read_after(0, usize::MAX).unwrap();
        assert_eq!(all.len() as i64, n + 1);
        for (i, rec) in all.iter().enumerate().take(n as usize) {
            assert_eq!(rec.record().unwrap().message_id, format!("m-{i}"));
        }
        assert_eq!(all[n as usize].record().unwrap().message_id, "after-reopen");
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever bytes a crash (or anything else) leaves in the last segment, readers and
        /// the writer never panic; the writer keeps exactly the records before the first
        /// damaged byte and the log goes on from there.
        #[test]
        fn any_damage_to_the_last_segment_is_survived(
            flips in proptest::collection::vec((0usize..20_000, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..20_000,
        ) {
            let dir = temp_dir(&format!("damage-prop-{}", cut));
            let mut writer = SegmentWriter::open_with(&dir, 0, WriteMode::Buffered).unwrap();
            for i in 0..40 {
                let id = format!("m-{i}");
                let body = "z".repeat(i * 13);
                writer.push(&Record { body: &body, ..record(&id) });
            }
            writer.write().unwrap();
            drop(writer);
            let path = list(&dir).unwrap()[0].1.clone();
            let mut bytes = std::fs::read(&path).unwrap();
            let mut first_damage = bytes.len();
            for (at, value) in flips {
                let at = at % bytes.len();
                if bytes[at] != value {
                    bytes[at] = value;
                    first_damage = first_damage.min(at);
                }
            }
            let cut = cut % (bytes.len() + 1);
            bytes.truncate(cut);
            first_damage = first_damage.min(cut);
            std::fs::write(&path, &bytes).unwrap();
            // Readers: no panic, and every record they return is intact.
            let read = SegmentReader::new(&dir).read_after(0, usize::MAX);
            if let Ok(records) = &read {
                for (i, rec) in records.iter().enumerate() {
                    let r = rec.record().unwrap();
                    proptest::prop_assert_eq!(r.seq, i as i64 + 1);
                }
            }
            // The writer: no panic; it keeps a prefix and appends after it.
            match SegmentWriter::open_with(&dir, 0, WriteMode::Buffered) {
                Ok(mut writer) => {
                    let kept = writer.last_seq();
                    proptest::prop_assert!(kept <= 40);
                    if first_damage >= bytes.len() && cut == bytes.len() && kept < 40 {
                        // Only a cut: everything before it that is whole is kept.
                        proptest::prop_assert!(writer.len <= cut as u64);
                    }
                    writer.push(&record("after"));
                    writer.write().unwrap();
                    let all = SegmentReader::new(&dir).read_after(0, usize::MAX).unwrap();
                    proptest::prop_assert_eq!(all.len() as i64, kept + 1);
                    proptest::prop_assert_eq!(all.last().unwrap().record().unwrap().message_id, "after");
                }
                // A damaged header (the first 16 bytes) is refused, never guessed.
                Err(err) => proptest::prop_assert!(
                    first_damage < HEADER_LEN as usize,
                    "unexpected error {}", err
                ),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_damaged_record_before_the_last_segment_is_an_error_not_an_end() {
        let dir = temp_dir("damage");
        let mut writer = SegmentWriter::open(&dir, 0).unwrap();
        let big = "y".repeat(30_000);
        while list(&dir).unwrap().len() < 2 {
            for _ in 0..100 {
                writer.push(&Record {
                    body: &big,
                    ..record("big")
                });
            }
            writer.write().unwrap();
        }
        let first = list(&dir).unwrap()[0].1.clone();
        let file = OpenOptions::new().write(true).open(&first).unwrap();
        file.write_all_at(b"garbage!", 1_000_000).unwrap();
        let err = SegmentReader::new(&dir)
            .read_after(0, usize::MAX)
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
