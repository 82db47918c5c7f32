//! The dedupe index on disk: immutable, sorted **run files** under `DIR/dedupe/`, written
//! sequentially and merged in the background (a small log-structured merge index).
//!
//! # Why not a B-tree
//! A messageId is random, so each one inserted into a B-tree dirties a random leaf; with the
//! window's index larger than the page cache, every commit rewrote thousands of 16 KiB
//! pages (to the WAL, then again by the checkpoint) for a few hundred bytes of keys. A run
//! is written once, front to back, at 24 bytes per key, and lookups (rare: the writer's
//! Bloom filter answers "new" for almost every key first) cost one `pread` per run.
//!
//! # Format
//! A run `run-{first_seq:020}-{last_seq:020}.dr` holds one [`RunEntry`] per message stored
//! with a `seq` in `first_seq..=last_seq` (of `events.db`'s `messages`) and not yet out of
//! the window when the run was written, sorted by `(hash, seq)`:
//! - a header of [`HEADER_BYTES`]: the magic `SPOORDR1`, then little-endian `u64`/`i64`
//!   fields: entry count, `first_seq`, `last_seq`, the least and the greatest
//!   `received_ms`, and a checksum of the entries;
//! - the entries, 24 bytes each: `hash` (`u64`), `seq` and `received_ms` (`i64`).
//!
//! # Invariants
//! - A run is written to a temporary name, `fdatasync`ed, renamed into place and its
//!   directory synced: a run that exists under its final name is complete. A file that fails
//!   its checks on open is reported as [`StoreError::Invalid`] and never half-used.
//! - The runs of a directory cover disjoint `seq` ranges, except for a short moment after a
//!   merge: the merged run is renamed into place before its inputs are deleted, so a crash
//!   between the two leaves runs whose range lies inside another's; [`open_dir`] deletes
//!   those.
//! - Nothing here knows SQLite: whoever writes a run must first make the messages it
//!   covers durable (the writer syncs the WAL), and whoever reads a hit must compare the
//!   exact key, since the index only holds its 64-bit hash.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Bytes of a run's header.
pub const HEADER_BYTES: usize = 64;
/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 24;
const MAGIC: &[u8; 8] = b"SPOORDR1";
/// Entries per block of the in-memory sparse index: a lookup reads one block (3 KiB), found
/// by a binary search of the first hash of every block.
const BLOCK_ENTRIES: usize = 128;

/// One key of the index: the hash of `(source_id, messageId)`, the message's `seq` and when
/// it was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunEntry {
    /// The key's 64-bit hash.
    pub hash: u64,
    /// The message's `seq` in `messages`.
    pub seq: i64,
    /// Its `receivedAt`, in Unix milliseconds.
    pub received_ms: i64,
}

impl RunEntry {
    fn to_bytes(self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[..8].copy_from_slice(&self.hash.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..].copy_from_slice(&self.received_ms.to_le_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> RunEntry {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            b
        };
        RunEntry {
            hash: u64::from_le_bytes(word(0)),
            seq: i64::from_le_bytes(word(8)),
            received_ms: i64::from_le_bytes(word(16)),
        }
    }
}

/// A running checksum of entries: a multiply-xorshift mix of each 64-bit word.
#[derive(Clone, Copy, Debug)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Checksum {
        Checksum(0x243f_6a88_85a3_08d3)
    }

    fn add(&mut self, entry: &RunEntry) {
        for word in [entry.hash, entry.seq as u64, entry.received_ms as u64] {
            self.0 = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            self.0 ^= self.0 >> 29;
        }
    }
}

/// An open run: its file (read with `pread`, so it is shared by lookups without a lock) and
/// the first hash of every block.
#[derive(Debug)]
pub struct Run {
    path: PathBuf,
    file: File,
    count: u64,
    first_seq: i64,
    last_seq: i64,
    min_received_ms: i64,
    max_received_ms: i64,
    sparse: Vec<u64>,
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, rule: &str) -> StoreError {
    StoreError::Invalid {
        field: "dedupe run",
        rule: format!("{}: {rule}", path.display()),
    }
}

/// The file name of the run covering `first_seq..=last_seq`.
pub fn run_name(first_seq: i64, last_seq: i64) -> String {
    format!("run-{first_seq:020}-{last_seq:020}.dr")
}

fn parse_name(name: &str) -> Option<(i64, i64)> {
    let middle = name.strip_prefix("run-")?.strip_suffix(".dr")?;
    let (first, last) = middle.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl Run {
    /// Entries in the run.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when the run holds no entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first `seq` the run covers.
    pub fn first_seq(&self) -> i64 {
        self.first_seq
    }

    /// The last `seq` the run covers.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// The least `received_ms` of its entries (`i64::MAX` when empty).
    pub fn min_received_ms(&self) -> i64 {
        self.min_received_ms
    }

    /// The greatest `received_ms` of its entries (`i64::MIN` when empty).
    pub fn max_received_ms(&self) -> i64 {
        self.max_received_ms
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a run and checks it whole (magic, size, order, checksum), calling `each` with
    /// every entry's hash (to fill a Bloom filter).
    pub fn open(path: &Path, mut each: impl FnMut(u64)) -> Result<Run, StoreError> {
        let file = File::open(path).map_err(|e| io_error("open", path, e))?;
        let length = file
            .metadata()
            .map_err(|e| io_error("read the size of", path, e))?
            .len();
        let mut reader = BufReader::with_capacity(64 * 1024, &file);
        let mut header = [0u8; HEADER_BYTES];
        reader
            .read_exact(&mut header)
            .map_err(|_| invalid(path, "shorter than its header"))?;
        if &header[..8] != MAGIC {
            return Err(invalid(path, "not a spoor dedupe run (bad magic)"));
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[8 + 8 * i..16 + 8 * i]);
            b
        };
        let count = u64::from_le_bytes(field(0));
        let first_seq = i64::from_le_bytes(field(1));
        let last_seq = i64::from_le_bytes(field(2));
        let min_received_ms = i64::from_le_bytes(field(3));
        let max_received_ms = i64::from_le_bytes(field(4));
        let checksum = u64::from_le_bytes(field(5));
        let expected = (HEADER_BYTES as u64).checked_add(count.saturating_mul(ENTRY_BYTES as u64));
        if expected != Some(length) {
            return Err(invalid(path, "its size does not match its entry count"));
        }
        let mut sum = Checksum::new();
        let mut sparse = Vec::with_capacity((count as usize).div_ceil(BLOCK_ENTRIES));
        let mut previous: Option<RunEntry> = None;
        let mut buf = [0u8; ENTRY_BYTES];
        for i in 0..count as usize {
            reader
                .read_exact(&mut buf)
                .map_err(|e| io_error("read", path, e))?;
            let entry = RunEntry::from_bytes(&buf);
            if previous.is_some_and(|p| p > entry) {
                return Err(invalid(path, "its entries are out of order"));
            }
            previous = Some(entry);
            if i.is_multiple_of(BLOCK_ENTRIES) {
                sparse.push(entry.hash);
            }
            sum.add(&entry);
            each(entry.hash);
        }
        if sum.0 != checksum {
            return Err(invalid(path, "its checksum does not match"));
        }
        drop(reader);
        Ok(Run {
            path: path.to_path_buf(),
            file,
            count,
            first_seq,
            last_seq,
            min_received_ms,
            max_received_ms,
            sparse,
        })
    }

    /// Writes a run covering `first_seq..=last_seq` into `dir` from `entries`, which must
    /// come sorted by `(hash, seq)`: to a temporary file, synced, then renamed into place.
    pub fn write(
        dir: &Path,
        first_seq: i64,
        last_seq: i64,
        entries: impl IntoIterator<Item = RunEntry>,
    ) -> Result<Run, StoreError> {
        Run::write_checked(dir, first_seq, last_seq, entries, || Ok(()))
    }

    /// [`Run::write`], with `check` called once the entries are written and synced and before
    /// the run is renamed into place: an error from it leaves no run behind (a merge whose
    /// input failed mid-way must not replace its inputs with a short run).
    fn write_checked(
        dir: &Path,
        first_seq: i64,
        last_seq: i64,
        entries: impl IntoIterator<Item = RunEntry>,
        check: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<Run, StoreError> {
        let name = run_name(first_seq, last_seq);
        let path = dir.join(&name);
        let temp = dir.join(format!(".{name}.tmp"));
        let result = Run::write_temp(&temp, first_seq, last_seq, entries).and_then(|mut run| {
            check()?;
            std::fs::rename(&temp, &path).map_err(|e| io_error("rename into place", &path, e))?;
            sync_dir(dir)?;
            run.path = path.clone();
            Ok(run)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    fn write_temp(
        temp: &Path,
        first_seq: i64,
        last_seq: i64,
        entries: impl IntoIterator<Item = RunEntry>,
    ) -> Result<Run, StoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(temp)
            .map_err(|e| io_error("create", temp, e))?;
        let mut writer = BufWriter::with_capacity(64 * 1024, &file);
        let write = |w: &mut BufWriter<&File>, bytes: &[u8]| {
            w.write_all(bytes).map_err(|e| io_error("write", temp, e))
        };
        write(&mut writer, &[0u8; HEADER_BYTES])?;
        let mut count = 0u64;
        let mut sum = Checksum::new();
        let mut sparse = Vec::new();
        let (mut min_ms, mut max_ms) = (i64::MAX, i64::MIN);
        let mut previous: Option<RunEntry> = None;
        for entry in entries {
            if previous.is_some_and(|p| p > entry) {
                return Err(invalid(temp, "entries to write are out of order"));
            }
            previous = Some(entry);
            if (count as usize).is_multiple_of(BLOCK_ENTRIES) {
                sparse.push(entry.hash);
            }
            sum.add(&entry);
            min_ms = min_ms.min(entry.received_ms);
            max_ms = max_ms.max(entry.received_ms);
            write(&mut writer, &entry.to_bytes())?;
            count += 1;
        }
        writer.flush().map_err(|e| io_error("write", temp, e))?;
        drop(writer);
        let mut header = [0u8; HEADER_BYTES];
        header[..8].copy_from_slice(MAGIC);
        let fields = [
            count,
            first_seq as u64,
            last_seq as u64,
            min_ms as u64,
            max_ms as u64,
            sum.0,
        ];
        for (i, value) in fields.iter().enumerate() {
            header[8 + 8 * i..16 + 8 * i].copy_from_slice(&value.to_le_bytes());
        }
        file.write_all_at(&header, 0)
            .map_err(|e| io_error("write", temp, e))?;
        file.sync_data().map_err(|e| io_error("sync", temp, e))?;
        Ok(Run {
            path: temp.to_path_buf(),
            file,
            count,
            first_seq,
            last_seq,
            min_received_ms: min_ms,
            max_received_ms: max_ms,
            sparse,
        })
    }

    /// Appends to `out` the `(seq, received_ms)` of every entry whose hash is `hash`.
    pub fn find(&self, hash: u64, out: &mut Vec<(i64, i64)>) -> Result<(), StoreError> {
        if self.count == 0 {
            return Ok(());
        }
        // The last block whose first hash is below `hash` may end with it; equal hashes may
        // run on into the following blocks.
        let mut block = self.sparse.partition_point(|&h| h < hash).saturating_sub(1);
        let mut buf = vec![0u8; BLOCK_ENTRIES * ENTRY_BYTES];
        while block < self.sparse.len() {
            let start = block * BLOCK_ENTRIES;
            let entries = (self.count as usize - start).min(BLOCK_ENTRIES);
            let bytes = &mut buf[..entries * ENTRY_BYTES];
            let offset = (HEADER_BYTES + start * ENTRY_BYTES) as u64;
            self.file
                .read_exact_at(bytes, offset)
                .map_err(|e| io_error("read", &self.path, e))?;
            for chunk in bytes.chunks_exact(ENTRY_BYTES) {
                let entry = RunEntry::from_bytes(chunk);
                if entry.hash > hash {
                    return Ok(());
                }
                if entry.hash == hash {
                    out.push((entry.seq, entry.received_ms));
                }
            }
            block += 1;
        }
        Ok(())
    }

    /// Every entry, in order (for a merge).
    fn entries(&self) -> Result<RunIter, StoreError> {
        let file = File::open(&self.path).map_err(|e| io_error("open", &self.path, e))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut header = [0u8; HEADER_BYTES];
        reader
            .read_exact(&mut header)
            .map_err(|e| io_error("read", &self.path, e))?;
        Ok(RunIter {
            reader,
            left: self.count,
            path: self.path.clone(),
        })
    }
}

struct RunIter {
    reader: BufReader<File>,
    left: u64,
    path: PathBuf,
}

impl RunIter {
    fn next_entry(&mut self) -> Result<Option<RunEntry>, StoreError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut buf = [0u8; ENTRY_BYTES];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| io_error("read", &self.path, e))?;
        self.left -= 1;
        Ok(Some(RunEntry::from_bytes(&buf)))
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync directory", dir, e))
}

/// Merges `runs` (covering consecutive `seq` ranges, oldest first) into one run, leaving out
/// entries received before `cutoff_ms`. The inputs are left in place for the caller to
/// delete once it uses the result.
pub fn merge(dir: &Path, runs: &[&Run], cutoff_ms: i64) -> Result<Run, StoreError> {
    let first_seq = runs.iter().map(|r| r.first_seq).min().unwrap_or(0);
    let last_seq = runs.iter().map(|r| r.last_seq).max().unwrap_or(0);
    let mut inputs = runs
        .iter()
        .map(|run| run.entries())
        .collect::<Result<Vec<_>, _>>()?;
    let mut heads = Vec::with_capacity(inputs.len());
    for input in &mut inputs {
        heads.push(input.next_entry()?);
    }
    let failure = std::cell::RefCell::new(None);
    let merged = std::iter::from_fn(|| {
        loop {
            let (index, entry) = heads
                .iter()
                .enumerate()
                .filter_map(|(i, head)| head.map(|entry| (i, entry)))
                .min_by_key(|&(_, entry)| entry)?;
            match inputs[index].next_entry() {
                Ok(next) => heads[index] = next,
                Err(err) => {
                    *failure.borrow_mut() = Some(err);
                    return None;
                }
            }
            if entry.received_ms >= cutoff_ms {
                return Some(entry);
            }
        }
    });
    Run::write_checked(dir, first_seq, last_seq, merged, || {
        failure.borrow_mut().take().map_or(Ok(()), Err)
    })
}

/// The valid runs of `dir` (created 0700 when missing), oldest first, each entry's hash
/// passed to `each`. Temporary files of an interrupted write and runs left inside a merged
/// one are deleted. An invalid run, or runs whose ranges overlap without one containing the
/// other, is an error: the caller then starts over with [`clear_dir`] and rebuilds.
pub fn open_dir(dir: &Path, mut each: impl FnMut(u64)) -> Result<Vec<Run>, StoreError> {
    crate::files::ensure_data_dir(dir)?;
    let mut ranges = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
        let item = item.map_err(|e| io_error("list", dir, e))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(item.path());
        } else if let Some(range) = parse_name(&name) {
            ranges.push((range, item.path()));
        }
    }
    // Widest first among equal starts, so a merge's inputs come after their merged run.
    ranges.sort_by_key(|&((first, last), _)| (first, std::cmp::Reverse(last)));
    let mut kept: Vec<((i64, i64), PathBuf)> = Vec::new();
    for ((first, last), path) in ranges {
        match kept.last() {
            Some(&((_, kept_last), _)) if last <= kept_last => {
                // Inside the previous run: an input of a merge that finished.
                let _ = std::fs::remove_file(&path);
            }
            Some(&((_, kept_last), _)) if first <= kept_last => {
                return Err(invalid(&path, "its range overlaps another run's"));
            }
            _ => kept.push(((first, last), path)),
        }
    }
    kept.into_iter()
        .map(|(_, path)| Run::open(&path, &mut each))
        .collect()
}

/// Deletes every run of `dir`.
pub fn clear_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.is_dir() {
        return Ok(());
    }
    for item in std::fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
        let item = item.map_err(|e| io_error("list", dir, e))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if parse_name(&name).is_some() || name.ends_with(".tmp") {
            std::fs::remove_file(item.path()).map_err(|e| io_error("delete", &item.path(), e))?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        crate::files::test_dir("runs", name)
    }

    fn entries(hashes: &[u64], seq0: i64, ms: i64) -> Vec<RunEntry> {
        let mut out: Vec<RunEntry> = hashes
            .iter()
            .enumerate()
            .map(|(i, &hash)| RunEntry {
                hash,
                seq: seq0 + i as i64,
                received_ms: ms + i as i64,
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_run_finds_every_entry_and_nothing_else() {
        let dir = temp_dir("find");
        // Many equal hashes across block boundaries, and gaps.
        let mut hashes: Vec<u64> = (0..1_000u64).map(|i| i * 7).collect();
        hashes.extend(std::iter::repeat_n(3_500, 300));
        let written = entries(&hashes, 1, 10_000);
        let run = Run::write(&dir, 1, 1_300, written.clone()).unwrap();
        assert_eq!(run.len(), 1_300);
        let mut seen = 0;
        let reopened = Run::open(run.path(), |_| seen += 1).unwrap();
        assert_eq!(seen, 1_300);
        for r in [&run, &reopened] {
            let mut out = Vec::new();
            r.find(3_500, &mut out).unwrap();
            assert_eq!(out.len(), 301, "3500 = 500 * 7 once, and 300 copies");
            out.clear();
            r.find(14, &mut out).unwrap();
            assert_eq!(out, vec![(3, 10_002)]);
            out.clear();
            r.find(15, &mut out).unwrap();
            assert!(out.is_empty());
            r.find(u64::MAX, &mut out).unwrap();
            r.find(0, &mut out).unwrap();
            assert_eq!(out, vec![(1, 10_000)]);
        }
        assert_eq!(reopened.min_received_ms(), 10_000);
        assert_eq!(reopened.max_received_ms(), 11_299);
        assert_eq!(
            reopened.path().file_name().unwrap().to_str().unwrap(),
            run_name(1, 1_300)
        );
    }

    #[test]
    fn a_damaged_run_is_refused() {
        let dir = temp_dir("damaged");
        let run = Run::write(&dir, 1, 3, entries(&[5, 9, 1], 1, 0)).unwrap();
        let path = run.path().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        // A bit of the first entry's received_ms: order intact, checksum not.
        bytes[HEADER_BYTES + 19] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = Run::open(&path, |_| {}).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = Run::open(&path, |_| {}).unwrap_err().to_string();
        assert!(err.contains("size"), "{err}");
        assert!(open_dir(&dir, |_| {}).is_err());
        clear_dir(&dir).unwrap();
        assert!(open_dir(&dir, |_| {}).unwrap().is_empty());
    }

    #[test]
    fn a_merge_keeps_order_drops_expired_entries_and_replaces_its_inputs_on_open() {
        let dir = temp_dir("merge");
        let a = Run::write(&dir, 1, 3, entries(&[30, 10, 20], 1, 100)).unwrap();
        let b = Run::write(&dir, 4, 6, entries(&[25, 10, 5], 4, 200)).unwrap();
        let merged = merge(&dir, &[&a, &b], 101).unwrap();
        assert_eq!((merged.first_seq(), merged.last_seq()), (1, 6));
        // seq 1 (hash 30, received 100) is before the cutoff.
        assert_eq!(merged.len(), 5);
        let mut out = Vec::new();
        merged.find(10, &mut out).unwrap();
        assert_eq!(out, vec![(2, 101), (5, 201)]);
        out.clear();
        merged.find(30, &mut out).unwrap();
        assert!(out.is_empty());
        // A crash before the inputs were deleted: open keeps the merged run only.
        let runs = open_dir(&dir, |_| {}).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].first_seq(), runs[0].last_seq()), (1, 6));
        assert!(!a.path().exists() && !b.path().exists());
        // A later run is kept beside it; a leftover temporary file is removed.
        Run::write(&dir, 7, 7, entries(&[1], 7, 300)).unwrap();
        std::fs::write(dir.join(".run-x.dr.tmp"), b"partial").unwrap();
        let runs = open_dir(&dir, |_| {}).unwrap();
        assert_eq!(runs.len(), 2);
        assert!(!dir.join(".run-x.dr.tmp").exists());
    }

    #[test]
    fn a_merge_whose_input_fails_leaves_no_run() {
        let dir = temp_dir("merge-fails");
        let a = Run::write(&dir, 1, 300, entries(&(0..300).collect::<Vec<_>>(), 1, 0)).unwrap();
        let b = Run::write(&dir, 301, 301, entries(&[7], 301, 0)).unwrap();
        // `a` loses its tail on disk after it was opened: the merge reads past the end.
        let bytes = std::fs::read(a.path()).unwrap();
        std::fs::write(a.path(), &bytes[..bytes.len() - 10 * ENTRY_BYTES]).unwrap();
        assert!(merge(&dir, &[&a, &b], 0).is_err());
        assert!(!dir.join(run_name(1, 301)).exists());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn overlapping_runs_are_an_error() {
        let dir = temp_dir("overlap");
        Run::write(&dir, 1, 5, entries(&[1], 1, 0)).unwrap();
        Run::write(&dir, 4, 8, entries(&[2], 4, 0)).unwrap();
        let err = open_dir(&dir, |_| {}).unwrap_err().to_string();
        assert!(err.contains("overlaps"), "{err}");
    }

    #[test]
    fn out_of_order_input_is_refused_and_leaves_no_file() {
        let dir = temp_dir("order");
        let bad = vec![
            RunEntry {
                hash: 2,
                seq: 1,
                received_ms: 0,
            },
            RunEntry {
                hash: 1,
                seq: 2,
                received_ms: 0,
            },
        ];
        assert!(Run::write(&dir, 1, 2, bad).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
}
