//! Shared helpers: the fixture log, fresh stores, expected-file checks.

use std::path::PathBuf;
use std::sync::Arc;

use spoor_warehouse::dump::{dump_all, render_rows};
use spoor_warehouse::memory_log::MemoryLog;
use spoor_warehouse::reports::{ReportName, ReportParams, run_report};
use spoor_warehouse::sqlite::SqliteStore;
use spoor_warehouse::{AnyStore, Loader, LoaderOptions, Store};

/// The fixture stream as a log.
pub fn fixture_log() -> Arc<MemoryLog> {
    let text = std::fs::read_to_string(fixtures().join("stream.ndjson")).unwrap_or_default();
    assert!(!text.is_empty(), "tests/fixtures/stream.ndjson is missing");
    Arc::new(MemoryLog::from_ndjson(&text, "src_web"))
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{nanos:x}_{n}", std::process::id())
}

/// A fresh SQLite warehouse, in memory (the same engine and SQL; the file-backed database is
/// exercised end to end by spoor-cli's warehouse tests), so tests leave no files behind.
pub fn sqlite_store() -> AnyStore {
    AnyStore::Sqlite(SqliteStore::open(std::path::Path::new(":memory:")).expect("open sqlite"))
}

/// The PostgreSQL URL, or `None` (and a printed skip) when unset.
pub fn postgres_url() -> Option<String> {
    match std::env::var("SPOOR_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: SPOOR_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// A fresh PostgreSQL warehouse in a new schema `spoor_test_...`.
pub async fn postgres_store(url: &str) -> AnyStore {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}schema={}", unique("spoor_test"));
    AnyStore::open(&url).await.expect("connect to PostgreSQL")
}

/// Drops a PostgreSQL test schema.
pub async fn cleanup(store: &mut AnyStore) {
    if let AnyStore::Postgres(pg) = store {
        let _ = pg.drop_schema().await;
    }
}

/// Loads the fixture with the given options.
pub async fn load_fixture(store: AnyStore, options: LoaderOptions) -> Loader<AnyStore> {
    let mut loader = Loader::open(store, options).await.expect("open loader");
    loader.catch_up(&fixture_log()).await.expect("load fixture");
    loader
}

/// Every report over the fixture, rendered.
pub async fn all_reports<S: Store>(store: &mut S) -> String {
    let mut out = String::new();
    for name in ReportName::ALL {
        let mut params = ReportParams::default();
        if name == ReportName::Funnel {
            params.steps = vec!["Product Viewed".into(), "Order Completed".into()];
        }
        let (_, rows) = run_report(store, name, &params)
            .await
            .unwrap_or_else(|err| panic!("report {name}: {err}"));
        out.push_str(&format!("== {name} ==\n{}\n", render_rows(&rows)));
    }
    out
}

/// Compares `actual` with `tests/fixtures/expected/NAME`; `UPDATE_EXPECT=1` rewrites it.
pub fn check(name: &str, actual: &str) {
    let path = fixtures().join("expected").join(name);
    if std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write expected file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{name} differs from tests/fixtures/expected/{name} ({} vs {} lines):\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// The dump of a store.
pub async fn dump<S: Store>(store: &mut S) -> String {
    dump_all(store).await.expect("dump")
}
