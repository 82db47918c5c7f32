//! [`MemoryLog`]: a [`LogSource`] held in memory, for tests, benchmarks and replays of an
//! NDJSON file. The collector's `events.db` is read with `spoor_store::EventReader`.

use spoor_store::{LogEntry, LogSource};

/// A log held in memory (tests, benchmarks, replays of an NDJSON file).
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    entries: Vec<LogEntry>,
}

impl MemoryLog {
    /// A log of these entries (in `seq` order).
    pub fn new(entries: Vec<LogEntry>) -> MemoryLog {
        MemoryLog { entries }
    }

    /// A log of NDJSON lines (blank lines skipped), numbered from 1, all in `source_id`.
    pub fn from_ndjson(text: &str, source_id: &str) -> MemoryLog {
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| LogEntry {
                seq: i as i64 + 1,
                source_id: source_id.to_owned(),
                body: line.to_owned(),
            })
            .collect();
        MemoryLog { entries }
    }

    /// The entries.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }
}

impl LogSource for MemoryLog {
    type Error = std::convert::Infallible;

    fn read_after(&self, after: i64, limit: usize) -> Result<Vec<LogEntry>, Self::Error> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        Ok(self
            .entries
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }
}
