//! Golden tests: the fixture stream loaded into SQLite and PostgreSQL gives the expected
//! tables and reports; loading is idempotent, rebuilds reproduce the tables, batch size does
//! not matter, revenue sums are exact, and user-user merges obey the setting.

use std::sync::Arc;

use spoor_warehouse::memory_log::MemoryLog;
use spoor_warehouse::reports::{ReportName, ReportParams, run_report};
use spoor_warehouse::{AnyStore, Loader, LoaderOptions, Store};

use crate::util::*;

async fn golden(store: AnyStore) {
    let mut loader = load_fixture(store, LoaderOptions::default()).await;
    let tables = dump(loader.store()).await;
    check("tables.txt", &tables);
    let reports = all_reports(loader.store()).await;
    check("reports.txt", &reports);
    // Whole-day bounds read the rollups, other bounds the message tables: same answers.
    for name in [
        ReportName::Events,
        ReportName::ActiveUsers,
        ReportName::Retention,
    ] {
        let rollup = ReportParams {
            since: Some(spoor_spec::Timestamp::parse("2024-01-01T00:00:00Z").expect("ts")),
            ..ReportParams::default()
        };
        let raw = ReportParams {
            since: Some(spoor_spec::Timestamp::parse("2023-12-31T23:59:59.999Z").expect("ts")),
            ..ReportParams::default()
        };
        let store = loader.store();
        let (q1, a) = run_report(store, name, &rollup)
            .await
            .expect("rollup report");
        let (q2, b) = run_report(store, name, &raw).await.expect("raw report");
        assert!(
            q1.sql.contains("_days") && !q2.sql.contains("_days"),
            "{name}"
        );
        assert_eq!(a, b, "{name}: rollup and raw answers differ");
    }
    cleanup(loader.store()).await;
}

#[tokio::test]
async fn sqlite_fixture_matches_expected_tables_and_reports() {
    golden(sqlite_store()).await;
}

#[tokio::test]
async fn postgres_fixture_matches_expected_tables_and_reports() {
    let Some(url) = postgres_url() else { return };
    golden(postgres_store(&url).await).await;
}

async fn idempotent(store: AnyStore) {
    let mut loader = load_fixture(store, LoaderOptions::default()).await;
    let first = dump(loader.store()).await;
    // The same entries again, as a replay would deliver them.
    let entries = fixture_log().entries().to_vec();
    let stats = loader.load(&entries).await.expect("load again");
    assert_eq!(stats.loaded, 0, "nothing is loaded twice: {stats:?}");
    assert_eq!(stats.duplicates, entries.len() as u64);
    assert_eq!(dump(loader.store()).await, first);
    // A rebuild from the log gives the same tables.
    loader.rebuild(&fixture_log()).await.expect("rebuild");
    assert_eq!(dump(loader.store()).await, first);
    cleanup(loader.store()).await;
}

#[tokio::test]
async fn sqlite_loading_twice_and_rebuild_give_the_same_tables() {
    idempotent(sqlite_store()).await;
}

#[tokio::test]
async fn postgres_loading_twice_and_rebuild_give_the_same_tables() {
    let Some(url) = postgres_url() else { return };
    idempotent(postgres_store(&url).await).await;
}

#[tokio::test]
async fn batch_size_does_not_change_the_result() {
    let mut whole = load_fixture(sqlite_store(), LoaderOptions::default()).await;
    let options = LoaderOptions {
        batch_size: 1,
        max_transaction: 1,
        ..LoaderOptions::default()
    };
    let mut one_by_one = load_fixture(sqlite_store(), options).await;
    assert_eq!(dump(whole.store()).await, dump(one_by_one.store()).await);
    // Batches of one sharing transactions of up to four.
    let options = LoaderOptions {
        batch_size: 1,
        max_transaction: 4,
        ..LoaderOptions::default()
    };
    let mut shared = load_fixture(sqlite_store(), options).await;
    assert_eq!(dump(whole.store()).await, dump(shared.store()).await);
}

async fn exact_revenue(store: AnyStore) {
    let lines: Vec<String> = ["0.1", "0.2", "1e-2", "100"]
        .iter()
        .enumerate()
        .map(|(i, revenue)| {
            format!(
                r#"{{"type":"track","messageId":"r{i}","userId":"u","event":"Order Completed","properties":{{"revenue":{revenue}}},"timestamp":"2024-03-01T10:0{i}:00.000Z","receivedAt":"2024-03-01T10:0{i}:00.000Z"}}"#
            )
        })
        .collect();
    let log = Arc::new(MemoryLog::from_ndjson(&lines.join("\n"), "s"));
    let mut loader = Loader::open(store, LoaderOptions::default())
        .await
        .expect("open");
    loader.catch_up(&log).await.expect("load");
    let (_, rows) = run_report(
        loader.store(),
        ReportName::Revenue,
        &ReportParams::default(),
    )
    .await
    .expect("revenue");
    assert_eq!(
        rows.rows,
        vec![vec![
            Some("2024-03-01".to_owned()),
            Some("USD".to_owned()),
            Some("100.31".to_owned()),
            Some("4".to_owned()),
        ]]
    );
    // And 0.1 + 0.2 alone is exactly 0.3.
    let params = ReportParams {
        until: Some(spoor_spec::Timestamp::parse("2024-03-01T10:02:00Z").expect("ts")),
        ..ReportParams::default()
    };
    let (_, rows) = run_report(loader.store(), ReportName::Revenue, &params)
        .await
        .expect("revenue");
    assert_eq!(rows.rows[0][2].as_deref(), Some("0.3"));
    cleanup(loader.store()).await;
}

#[tokio::test]
async fn sqlite_revenue_sums_are_exact() {
    exact_revenue(sqlite_store()).await;
}

#[tokio::test]
async fn postgres_revenue_sums_are_exact() {
    let Some(url) = postgres_url() else { return };
    exact_revenue(postgres_store(&url).await).await;
}

async fn allowed_merge(store: AnyStore) {
    let options = LoaderOptions {
        allow_user_merge: true,
        ..LoaderOptions::default()
    };
    let mut loader = load_fixture(store, options).await;
    let store = loader.store();
    let u1 = spoor_warehouse::profile::find_profile(store, "u1")
        .await
        .expect("find");
    let u2 = spoor_warehouse::profile::find_profile(store, "user_id:u2")
        .await
        .expect("find");
    assert!(u1.is_some());
    assert_eq!(u1, u2, "u1 and u2 are one profile when merges are allowed");
    let merges = store
        .query("SELECT allowed FROM identity_merges")
        .await
        .expect("merges");
    assert_eq!(merges.rows.len(), 1);
    // Every event of both users now carries the kept profile.
    let rows = store
        .query("SELECT count(DISTINCT profile_id) FROM tracks WHERE user_id IN ('u1', 'u2')")
        .await
        .expect("tracks");
    assert_eq!(rows.rows[0][0].as_deref(), Some("1"));
    let rows = store
        .query("SELECT count(*) FROM profile_days WHERE profile_id = 'anonymous_id:a1'")
        .await
        .expect("profile_days");
    assert_eq!(
        rows.rows[0][0].as_deref(),
        Some("0"),
        "the merged profile's days moved"
    );
    let profile = u1.unwrap_or_default();
    let traits = spoor_warehouse::profile::profile_traits(store, &profile)
        .await
        .expect("traits");
    let email = traits
        .iter()
        .find(|t| t.name == "email")
        .map(|t| t.value.clone());
    // The latest email set on either profile wins.
    assert_eq!(email, Some(serde_json::json!("grace@work.example")));
    cleanup(loader.store()).await;
}

#[tokio::test]
async fn sqlite_allowed_user_merge_joins_the_profiles() {
    allowed_merge(sqlite_store()).await;
}

#[tokio::test]
async fn postgres_allowed_user_merge_joins_the_profiles() {
    let Some(url) = postgres_url() else { return };
    allowed_merge(postgres_store(&url).await).await;
}

/// The log holds every message twice (a replay appended to it). Pipelined batches are
/// planned before the previous one commits, as if all their messages were new; a batch that
/// meets loaded messages is refused by the backend and loaded again skipping them. With
/// `max_transaction` above the batch size, batches share transactions, and a refused batch
/// rolls back the batches before it in its transaction too.
async fn replayed_log(store: AnyStore, max_transaction: usize) {
    let first = fixture_log().entries().to_vec();
    let count = first.len() as u64;
    let mut entries = first.clone();
    entries.extend(first.into_iter().map(|mut entry| {
        entry.seq += count as i64;
        entry
    }));
    let options = LoaderOptions {
        batch_size: 3,
        max_transaction,
        ..LoaderOptions::default()
    };
    let mut loader = Loader::open(store, options).await.expect("open");
    let stats = loader
        .catch_up(&Arc::new(MemoryLog::new(entries)))
        .await
        .expect("load");
    assert_eq!(loader.checkpoint(), 2 * count as i64);
    assert_eq!(stats.loaded + stats.duplicates + stats.invalid, 2 * count);
    assert!(stats.duplicates > count / 2, "{stats:?}");
    // The same tables as the log without the replay, but for the checkpoint.
    let tables = dump(loader.store()).await.replace(
        &format!("checkpoint | {}", 2 * count),
        &format!("checkpoint | {count}"),
    );
    check("tables.txt", &tables);
    cleanup(loader.store()).await;
}

#[tokio::test]
async fn sqlite_replayed_log_loads_each_message_once() {
    replayed_log(sqlite_store(), 3).await;
    replayed_log(sqlite_store(), 12).await;
}

#[tokio::test]
async fn postgres_replayed_log_loads_each_message_once() {
    let Some(url) = postgres_url() else { return };
    replayed_log(postgres_store(&url).await, 3).await;
    replayed_log(postgres_store(&url).await, 12).await;
}

/// The names of the indexes on `tracks`, sorted.
async fn tracks_indexes(store: &mut AnyStore) -> Vec<String> {
    let sql = match store {
        AnyStore::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tracks' \
             AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name"
        }
        AnyStore::Postgres(_) => {
            "SELECT indexname FROM pg_indexes WHERE tablename = 'tracks' \
             AND schemaname = current_schema() AND indexname NOT LIKE '%pkey' ORDER BY indexname"
        }
    };
    let rows = store.query(sql).await.expect("list indexes");
    rows.rows
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect()
}

/// A warehouse made by an earlier version (with the `tracks (event_text, profile_id,
/// timestamp)` index) gets the current indexes when it is opened, and the same reports.
async fn upgrade(location: &str) {
    let store = AnyStore::open(location).await.expect("open");
    let mut loader = load_fixture(store, LoaderOptions::default()).await;
    let current = tracks_indexes(loader.store()).await;
    assert_eq!(
        current,
        [
            "tracks__event_text__timestamp__profile_id__source_id",
            "tracks__profile_id",
            "tracks__timestamp"
        ]
    );
    let reports = all_reports(loader.store()).await;
    loader
        .store()
        .execute(
            "DROP INDEX tracks__event_text__timestamp__profile_id__source_id;\n\
             CREATE INDEX tracks__event_text__profile_id__timestamp \
             ON tracks (event_text, profile_id, timestamp)",
        )
        .await
        .expect("make the old index");
    assert!(
        tracks_indexes(loader.store())
            .await
            .contains(&"tracks__event_text__profile_id__timestamp".to_owned())
    );
    drop(loader);
    let store = AnyStore::open(location).await.expect("open again");
    let mut loader = Loader::open(store, LoaderOptions::default())
        .await
        .expect("open the old warehouse");
    assert_eq!(tracks_indexes(loader.store()).await, current);
    assert_eq!(all_reports(loader.store()).await, reports);
    cleanup(loader.store()).await;
}

#[tokio::test]
async fn sqlite_old_indexes_are_replaced_on_open() {
    let dir = std::env::temp_dir().join(unique("spoor-wh-upgrade"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("warehouse.db");
    upgrade(&path.to_string_lossy()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_old_indexes_are_replaced_on_open() {
    let Some(url) = postgres_url() else { return };
    let sep = if url.contains('?') { '&' } else { '?' };
    upgrade(&format!("{url}{sep}schema={}", unique("spoor_test"))).await;
}
