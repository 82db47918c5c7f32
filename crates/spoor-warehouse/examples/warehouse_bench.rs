//! Warehouse benchmark: loader throughput and report times over a generated log.
//!
//! Generates N mixed normalized messages (tracks of 20 event names, pages, screens,
//! identifies, groups, aliases; anonymous visitors who later sign in; revenue in three
//! currencies), loads them into SQLite (and PostgreSQL when `--postgres URL` is given), then
//! runs every report several times and prints medians.
//!
//! Run it with `bench/warehouse.sh`, or:
//!   cargo run --release -p spoor-warehouse --example warehouse_bench -- \
//!     --messages 1000000 --postgres postgres://postgres@127.0.0.1:5432/test

use std::sync::Arc;
use std::time::{Duration, Instant};

use spoor_store::LogEntry;
use spoor_warehouse::memory_log::MemoryLog;
use spoor_warehouse::reports::{ReportName, ReportParams, run_report};
use spoor_warehouse::sqlite::SqliteStore;
use spoor_warehouse::{AnyStore, Loader, LoaderOptions, Store};

/// The allocator of the `spoor` binary, so the loader is measured as `spoor serve` runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: [&str; 20] = [
    "Order Completed",
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Signed Up",
    "Signed In",
    "Signed Out",
    "Search Performed",
    "Video Played",
    "Video Paused",
    "Article Read",
    "Comment Posted",
    "Invite Sent",
    "Plan Upgraded",
    "Plan Downgraded",
    "Notification Opened",
    "File Uploaded",
    "Report Exported",
    "Settings Changed",
];

/// A small deterministic PRNG (xorshift64*), so every run loads the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Generates the log. Message ids are `m-00000001`, ... (in log order, so the `id` indexes
/// grow at their end), or with `uuid_ids` random-looking UUIDs as real senders make them
/// (from a second generator, so the messages are otherwise the same).
fn generate(count: usize, uuid_ids: bool) -> Vec<LogEntry> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ids = Rng(0xD1B5_4A32_D192_ED03);
    let mut message_id = |i: usize| {
        if uuid_ids {
            let (a, b) = (ids.next(), ids.next());
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                (b >> 48) & 0xfff,
                b & 0xffff_ffff_ffff
            )
        } else {
            format!("m-{i:08}")
        }
    };
    let users = (count / 20).max(10) as u64;
    let start_ms: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
    let span_ms: i64 = 90 * 86_400_000; // 90 days
    let mut out = Vec::with_capacity(count);
    // Sessions: a visitor (60% of them signed in) does 5 to 15 things, 30 s apart; sessions
    // start one after another over 90 days.
    let (mut user, mut known, mut left, mut session_start) = (0u64, false, 0u64, 0i64);
    for i in 0..count {
        if left == 0 {
            user = rng.below(users);
            known = rng.below(100) < 60;
            left = 5 + rng.below(11);
            session_start = start_ms + (i as i64) * span_ms / count as i64;
        }
        let mid = message_id(i);
        let t = session_start + (15 - left as i64) * 30_000;
        left -= 1;
        let ts = spoor_spec::Timestamp::from_unix_millis(t).to_string();
        let ids = if known {
            format!(r#""userId":"user-{user}","anonymousId":"anon-{user}""#)
        } else {
            format!(r#""anonymousId":"anon-{user}""#)
        };
        let common = format!(
            r#""messageId":"{mid}",{ids},"timestamp":"{ts}","sentAt":"{ts}","receivedAt":"{ts}","context":{{"library":{{"name":"analytics.js","version":"2.11.1"}},"ip":"203.0.113.{}","userAgent":"Mozilla/5.0"}}"#,
            user % 250
        );
        let roll = rng.below(100);
        let body = if roll < 70 {
            let event = EVENTS[rng.below(EVENTS.len() as u64) as usize];
            let properties = if event == "Order Completed" {
                let currency = ["USD", "EUR", "GBP"][rng.below(3) as usize];
                format!(
                    r#"{{"order_id":"o-{i}","revenue":{}.{:02},"currency":"{currency}","products":[{{"sku":"p-{}"}}]}}"#,
                    rng.below(200),
                    rng.below(100),
                    rng.below(500)
                )
            } else {
                format!(
                    r#"{{"item":"i-{}","count":{},"ok":true,"nested":{{"a":"x","b":{}}}}}"#,
                    rng.below(1000),
                    rng.below(10),
                    rng.below(100)
                )
            };
            format!(r#"{{"type":"track","event":"{event}","properties":{properties},{common}}}"#)
        } else if roll < 85 {
            format!(
                r#"{{"type":"page","name":"Page {}","properties":{{"path":"/p/{}","title":"T"}},{common}}}"#,
                rng.below(30),
                rng.below(30)
            )
        } else if roll < 90 {
            format!(
                r#"{{"type":"screen","name":"Screen {}","properties":{{"variant":"a"}},{common}}}"#,
                rng.below(10)
            )
        } else if roll < 98 {
            format!(
                r#"{{"type":"identify","userId":"user-{user}","anonymousId":"anon-{user}","traits":{{"email":"u{user}@example.com","plan":"p{}","logins":{},"address":{{"city":"c{}"}}}},"messageId":"{mid}","timestamp":"{ts}","receivedAt":"{ts}"}}"#,
                rng.below(4),
                rng.below(1000),
                rng.below(50)
            )
        } else if roll < 99 {
            format!(
                r#"{{"type":"group","groupId":"g-{}","traits":{{"name":"G","employees":{}}},{common}}}"#,
                user % 500,
                rng.below(1000)
            )
        } else {
            format!(
                r#"{{"type":"alias","previousId":"anon-{user}","userId":"user-{user}","messageId":"{mid}","timestamp":"{ts}","receivedAt":"{ts}"}}"#
            )
        };
        out.push(LogEntry {
            seq: i as i64 + 1,
            source_id: "bench".to_owned(),
            body,
        });
    }
    out
}

/// CPU seconds (user + system, all threads) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; after the command name they are 12th and 13th.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// This process's read and write calls and bytes so far (`/proc/self/io`): unlike time, the
/// same on a busy machine, so page cache and WAL settings can be compared exactly.
fn io_counts() -> [u64; 4] {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    [
        field("syscr:"),
        field("rchar:"),
        field("syscw:"),
        field("wchar:"),
    ]
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn bench(
    label: &str,
    store: AnyStore,
    log: &Arc<MemoryLog>,
    options: &LoaderOptions,
    runs: usize,
    dump: Option<&std::path::Path>,
    db: Option<&std::path::Path>,
) {
    let mut loader = Loader::open(store, options.clone())
        .await
        .expect("open warehouse");
    let started = Instant::now();
    let cpu = cpu_seconds();
    let io = io_counts();
    let stats = loader.catch_up(log).await.expect("load");
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu;
    let io: Vec<u64> = io_counts().iter().zip(io).map(|(b, a)| b - a).collect();
    println!(
        "{label}: loaded {} messages in {:.2} s: {:.0} msg/s wall; loader process CPU {:.1} s: \
         {:.0} msg per CPU-second",
        stats.loaded,
        elapsed.as_secs_f64(),
        stats.loaded as f64 / elapsed.as_secs_f64(),
        cpu,
        stats.loaded as f64 / cpu.max(0.001),
    );
    println!(
        "{label}: loader IO: {} reads, {:.0} MiB read; {} writes, {:.0} MiB written",
        io[0],
        io[1] as f64 / 1048576.0,
        io[2],
        io[3] as f64 / 1048576.0,
    );
    if let Some(db) = db {
        let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        println!(
            "{label}: warehouse.db {:.0} MiB, its WAL {:.0} MiB",
            size(db.to_path_buf()) as f64 / 1048576.0,
            size(wal.into()) as f64 / 1048576.0,
        );
    }
    let store = loader.store();
    if let Some(path) = dump {
        // Every table in canonical text, to compare two builds of the loader.
        let text = spoor_warehouse::dump::dump_all(store).await.expect("dump");
        std::fs::write(path, text).expect("write dump");
    }
    if let AnyStore::Postgres(_) = store {
        // What autovacuum does after a large load: statistics and the visibility map (for
        // index-only scans).
        store
            .execute("VACUUM ANALYZE")
            .await
            .expect("vacuum analyze");
    }
    for name in ReportName::ALL {
        let mut params = ReportParams::default();
        if name == ReportName::Funnel {
            params.steps = vec![
                "Product Viewed".into(),
                "Product Added".into(),
                "Order Completed".into(),
            ];
        }
        let mut times = Vec::new();
        let mut rows = 0;
        let cpu = cpu_seconds();
        for _ in 0..runs {
            let t = Instant::now();
            let (_, result) = run_report(store, name, &params).await.expect("report");
            times.push(t.elapsed());
            rows = result.rows.len();
        }
        let cpu = (cpu_seconds() - cpu) / runs as f64;
        println!(
            "{label}: report {name:<16} median {:>8.1} ms wall, {:>7.1} ms spoor CPU ({rows} rows, {runs} runs)",
            median(times).as_secs_f64() * 1000.0,
            cpu * 1000.0,
        );
    }
}

#[tokio::main]
async fn main() {
    let mut messages = 1_000_000usize;
    let mut postgres: Option<String> = None;
    let mut runs = 5usize;
    let mut skip_sqlite = false;
    let mut keep = false;
    let mut dump: Option<std::path::PathBuf> = None;
    let mut options = LoaderOptions::default();
    let mut uuid_ids = false;
    let mut dir =
        std::env::temp_dir().join(format!("spoor-warehouse-bench-{}", std::process::id()));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--messages" => messages = args.next().and_then(|v| v.parse().ok()).unwrap_or(messages),
            "--postgres" => postgres = args.next(),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--dir" => dir = args.next().map(Into::into).unwrap_or(dir),
            "--skip-sqlite" => skip_sqlite = true,
            "--keep" => keep = true,
            "--dump" => dump = args.next().map(Into::into),
            "--batch" => {
                options.batch_size = args.next().and_then(|v| v.parse().ok()).unwrap_or(2000);
            }
            "--max-transaction" => {
                options.max_transaction = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "--uuid-ids" => uuid_ids = true,
            other => {
                eprintln!(
                    "unknown argument {other}; use --messages N --postgres URL --runs N --dir DIR \
                     --dump FILE --batch N --max-transaction N --uuid-ids --keep"
                );
                std::process::exit(2);
            }
        }
    }
    let t = Instant::now();
    let log = Arc::new(MemoryLog::new(generate(messages, uuid_ids)));
    println!(
        "generated {messages} messages in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join("warehouse.db");
    let _ = std::fs::remove_file(&path);
    if !skip_sqlite {
        let store = AnyStore::Sqlite(SqliteStore::open(&path).expect("sqlite"));
        let db = Some(path.as_path());
        bench("sqlite", store, &log, &options, runs, dump.as_deref(), db).await;
    }
    if let Some(url) = postgres {
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}schema=spoor_bench_{}", std::process::id());
        let mut store = AnyStore::open(&url).await.expect("postgres");
        store.reset().await.expect("reset");
        let dump = dump.map(|p| p.with_extension("postgres.txt"));
        bench(
            "postgres",
            store,
            &log,
            &options,
            runs,
            dump.as_deref(),
            None,
        )
        .await;
        if keep {
            println!("kept the PostgreSQL warehouse: {url}");
        } else if let Ok(pg) = spoor_warehouse::postgres::PgStore::connect(&url).await {
            let _ = pg.drop_schema().await;
        }
    }
    if keep && !skip_sqlite {
        println!("kept the SQLite warehouse: {}", path.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
