//! `messages` in SQL: an eponymous virtual table over the segment log ([`crate::segment`]),
//! registered on every query connection by [`register`], so `SELECT ... FROM messages`
//! reads the log files directly and sees every message as soon as it is acknowledged.
//!
//! Columns: `seq` (also the rowid), `source_id`, `message_id`, `type`, `user_id`,
//! `anonymous_id`, `event`, `timestamp`, `received_at`, `body`, the same as the table of
//! earlier versions. Constraints on `seq` (`=`, `<`, `<=`, `>`, `>=`) and `ORDER BY seq` in
//! either direction are served from the log's order; everything else is a scan.
//!
//! This module allows `unsafe` (one of two places in the workspace): rusqlite's virtual-table
//! traits are `unsafe` to implement because SQLite treats the structs as C structs. The contract is
//! kept by `#[repr(C)]` with the base struct first and no other unsafe code.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, VTab, VTabConnection, VTabCursor,
    eponymous_only_module,
};
use rusqlite::{Connection, ffi};

use crate::segment::{LOG_DIR, OwnedRecord, Record, SegmentReader};

/// Records read from the log at a time.
const BATCH: usize = 1_024;

const EQ: c_int = 1;
const LOWER: c_int = 2;
const UPPER: c_int = 4;
const DESC: c_int = 8;

/// Makes `messages` readable on `conn`: the log of the data directory `dir`.
pub fn register(conn: &Connection, dir: &Path) -> rusqlite::Result<()> {
    conn.create_module(
        c"messages",
        eponymous_only_module::<MessagesTab>(),
        Some(dir.join(LOG_DIR)),
    )
}

#[repr(C)]
struct MessagesTab {
    /// SQLite's part; must come first.
    base: ffi::sqlite3_vtab,
    reader: Arc<SegmentReader>,
}

fn module_error(err: crate::StoreError) -> rusqlite::Error {
    rusqlite::Error::ModuleError(err.to_string())
}

// SAFETY: `MessagesTab` is `#[repr(C)]` with `sqlite3_vtab` as its first field, as the
// trait requires.
unsafe impl<'vtab> VTab<'vtab> for MessagesTab {
    type Aux = PathBuf;
    type Cursor = MessagesCursor;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&PathBuf>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, MessagesTab)> {
        let dir = aux.cloned().unwrap_or_default();
        Ok((
            "CREATE TABLE x(seq INTEGER, source_id TEXT, message_id TEXT, type TEXT, \
             user_id TEXT, anonymous_id TEXT, event TEXT, timestamp TEXT, \
             received_at TEXT, body TEXT)"
                .to_owned(),
            MessagesTab {
                base: ffi::sqlite3_vtab::default(),
                reader: Arc::new(SegmentReader::new(&dir)),
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let (mut eq, mut lower, mut upper) = (None, None, None);
        for (i, constraint) in info.constraints().enumerate() {
            // Column 0 is `seq`; -1 is the rowid, which is `seq` too.
            if !constraint.is_usable() || !matches!(constraint.column(), 0 | -1) {
                continue;
            }
            match constraint.operator() {
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ => eq = eq.or(Some(i)),
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GT
                | IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GE => lower = lower.or(Some(i)),
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LT
                | IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LE => upper = upper.or(Some(i)),
                _ => {}
            }
        }
        let mut plan = 0;
        let mut argv = 0;
        // SQLite checks every constraint again (no `omit`): the bounds only narrow the read,
        // so a value that is not an integer can widen it without changing the answer.
        for (flag, used) in [(EQ, eq), (LOWER, lower), (UPPER, upper)] {
            if let Some(i) = used {
                plan |= flag;
                argv += 1;
                info.constraint_usage(i).set_argv_index(argv);
            }
        }
        let mut order_bys = info.order_bys();
        let consumed = match (order_bys.next(), order_bys.next()) {
            (Some(order), None) if matches!(order.column(), 0 | -1) => {
                if order.is_order_by_desc() {
                    plan |= DESC;
                }
                true
            }
            _ => false,
        };
        if consumed {
            info.set_order_by_consumed(true);
        }
        let (cost, rows) = if plan & EQ != 0 {
            (1.0, 1)
        } else if plan & (LOWER | UPPER) != 0 {
            (1_000.0, 100_000)
        } else {
            (1_000_000.0, 10_000_000)
        };
        info.set_estimated_cost(cost);
        info.set_estimated_rows(rows);
        info.set_idx_num(plan);
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<MessagesCursor> {
        Ok(MessagesCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            reader: Arc::clone(&self.reader),
            batch: Vec::new(),
            pos: 0,
            after: 0,
            upto: i64::MAX,
            desc: false,
            done: true,
        })
    }
}

#[repr(C)]
struct MessagesCursor {
    /// SQLite's part; must come first.
    base: ffi::sqlite3_vtab_cursor,
    reader: Arc<SegmentReader>,
    /// The current batch (in the order rows are returned) and the row in it.
    batch: Vec<OwnedRecord>,
    pos: usize,
    /// Rows still to come have `after < seq <= upto`.
    after: i64,
    upto: i64,
    desc: bool,
    done: bool,
}

/// An integer bound from a constraint's value: `Some` for integers and reals (rounded
/// outwards by `round`), `None` for anything else, which then bounds nothing.
fn bound(value: ValueRef<'_>, round: fn(f64) -> f64) -> Option<i64> {
    match value {
        ValueRef::Integer(i) => Some(i),
        // Saturating conversion of a finite rounded value.
        ValueRef::Real(r) if r.is_finite() => Some(round(r) as i64),
        _ => None,
    }
}

impl MessagesCursor {
    /// Reads the next batch; `done` when the range is exhausted.
    fn fill(&mut self) -> rusqlite::Result<()> {
        self.pos = 0;
        self.batch.clear();
        if self.after >= self.upto {
            self.done = true;
            return Ok(());
        }
        if self.desc {
            // The newest part of the range first, read forwards and returned backwards.
            let from = self.upto.saturating_sub(BATCH as i64).max(self.after);
            let mut batch = self.reader.read_after(from, BATCH).map_err(module_error)?;
            batch.retain(|r| r.seq() <= self.upto);
            batch.reverse();
            self.upto = from;
            // `upto` is at most the log's last seq (see `filter`) and the log has no gaps,
            // so an empty batch means nothing at or below it is left.
            self.batch = batch;
        } else {
            // No more than the range holds: `seq = 42` reads one record, not a batch.
            let wanted = usize::try_from(self.upto.saturating_sub(self.after))
                .map_or(BATCH, |n| n.min(BATCH));
            let mut batch = self
                .reader
                .read_after(self.after, wanted)
                .map_err(module_error)?;
            batch.retain(|r| r.seq() <= self.upto);
            match batch.last() {
                Some(last) => self.after = last.seq(),
                None => self.after = self.upto,
            }
            self.batch = batch;
        }
        self.done = self.batch.is_empty();
        Ok(())
    }

    fn current(&self) -> Option<Record<'_>> {
        self.batch.get(self.pos).and_then(OwnedRecord::record)
    }
}

// SAFETY: `MessagesCursor` is `#[repr(C)]` with `sqlite3_vtab_cursor` as its first field.
unsafe impl VTabCursor for MessagesCursor {
    fn filter(
        &mut self,
        plan: c_int,
        _idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let mut after = 0i64;
        let mut upto = i64::MAX;
        let mut i = 0;
        if plan & EQ != 0 {
            if let Some(seq) = bound(args.iter().nth(i).unwrap_or(ValueRef::Null), f64::floor) {
                after = after.max(seq.saturating_sub(1));
                upto = upto.min(seq);
            }
            i += 1;
        }
        if plan & LOWER != 0 {
            // `seq > x` and `seq >= x` both start after `floor(x) - 1`; SQLite rechecks.
            if let Some(seq) = bound(args.iter().nth(i).unwrap_or(ValueRef::Null), f64::floor) {
                after = after.max(seq.saturating_sub(1));
            }
            i += 1;
        }
        if plan & UPPER != 0
            && let Some(seq) = bound(args.iter().nth(i).unwrap_or(ValueRef::Null), f64::ceil)
        {
            upto = upto.min(seq);
        }
        self.desc = plan & DESC != 0;
        if self.desc {
            // Newest first starts at the log's end, however high the bound.
            upto = upto.min(self.reader.last_seq().map_err(module_error)?);
        }
        self.after = after;
        self.upto = upto;
        self.done = false;
        self.fill()
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.pos += 1;
        if self.pos >= self.batch.len() {
            self.fill()?;
        }
        Ok(())
    }

    fn eof(&self) -> bool {
        self.done
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let Some(record) = self.current() else {
            return ctx.set_result(&rusqlite::types::Null);
        };
        match i {
            0 => ctx.set_result(&record.seq),
            1 => ctx.set_result(&record.source_id),
            2 => ctx.set_result(&record.message_id),
            3 => ctx.set_result(&record.kind),
            4 => ctx.set_result(&record.user_id),
            5 => ctx.set_result(&record.anonymous_id),
            6 => ctx.set_result(&record.event),
            7 => ctx.set_result(&record.timestamp),
            8 => ctx.set_result(&record.received_at),
            _ => ctx.set_result(&record.body),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.batch.get(self.pos).map_or(0, OwnedRecord::seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::SegmentWriter;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spoor-vtab-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn write(dir: &Path, n: usize) {
        let mut writer = SegmentWriter::open(&dir.join(LOG_DIR), 0).unwrap();
        for i in 0..n {
            let id = format!("m-{i}");
            let user = format!("u{}", i % 7);
            let body = format!(
                r#"{{"type":"track","event":"E{}","messageId":"{id}"}}"#,
                i % 3
            );
            let event = format!("E{}", i % 3);
            writer.push(&Record {
                seq: 0,
                source_id: "src",
                message_id: &id,
                kind: "track",
                user_id: Some(&user),
                anonymous_id: None,
                event: Some(&event),
                timestamp: Some("2026-12-01T00:00:00.000Z"),
                received_at: "2026-12-01T00:00:01.000Z",
                body: &body,
            });
            if i % 500 == 499 {
                writer.write().unwrap();
            }
        }
        writer.write().unwrap();
    }

    fn ints(conn: &Connection, sql: &str) -> Vec<i64> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn messages_answers_sql_with_ranges_orders_and_json() {
        let dir = temp_dir("sql");
        write(&dir, 3_000);
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, &dir).unwrap();
        assert_eq!(ints(&conn, "SELECT count(*) FROM messages"), [3_000]);
        assert_eq!(
            ints(
                &conn,
                "SELECT seq FROM messages WHERE seq > 2990 AND seq <= 2993"
            ),
            [2_991, 2_992, 2_993]
        );
        assert_eq!(
            ints(&conn, "SELECT seq FROM messages WHERE seq = 1234"),
            [1_234]
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT count(*) FROM messages WHERE seq > -9223372036854775808"
            ),
            [3_000],
            "the widest range does not overflow"
        );
        assert_eq!(
            ints(&conn, "SELECT seq FROM messages WHERE rowid >= 2999.5"),
            [3_000]
        );
        assert_eq!(
            ints(&conn, "SELECT seq FROM messages ORDER BY seq DESC LIMIT 3"),
            [3_000, 2_999, 2_998]
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT seq FROM messages WHERE seq < 1100 ORDER BY seq DESC LIMIT 2"
            ),
            [1_099, 1_098]
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT seq FROM messages WHERE seq <= 9223372036854775807 \
                 ORDER BY seq DESC LIMIT 2"
            ),
            [3_000, 2_999],
            "a bound far past the log's end"
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT count(*) FROM (SELECT seq FROM messages WHERE seq < -5 ORDER BY seq DESC)"
            ),
            [0]
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT seq FROM messages WHERE seq > 2998 ORDER BY seq DESC"
            ),
            [3_000, 2_999]
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT seq FROM messages WHERE seq > '10' ORDER BY seq LIMIT 1"
            ),
            [11],
            "a text bound is compared as SQLite compares it with an INTEGER column"
        );
        assert_eq!(
            ints(
                &conn,
                "SELECT count(*) FROM messages WHERE user_id = 'u3' AND event = 'E1' \
                 AND body ->> '$.type' = 'track' AND anonymous_id IS NULL"
            ),
            [(0..3_000).filter(|i| i % 7 == 3 && i % 3 == 1).count() as i64]
        );
        let row: (String, String, String) = conn
            .query_row(
                "SELECT message_id, type, received_at FROM messages WHERE seq = 10",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row.0, "m-9");
        assert_eq!(row.1, "track");
        assert_eq!(row.2, "2026-12-01T00:00:01.000Z");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_or_missing_log_is_an_empty_table() {
        let dir = temp_dir("empty");
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, &dir).unwrap();
        assert_eq!(ints(&conn, "SELECT count(*) FROM messages"), [0]);
        assert_eq!(
            ints(&conn, "SELECT seq FROM messages ORDER BY seq DESC LIMIT 1"),
            Vec::<i64>::new()
        );
    }
}
