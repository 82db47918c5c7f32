//! `spoor profile`, `spoor report` and `spoor warehouse ...`: reading and rebuilding the
//! warehouse that `spoor serve` derives from the message log.
//!
//! Every command works on SQLite (`--data DIR`, the file `DIR/warehouse.db`) or PostgreSQL
//! (`--warehouse postgres://...`) alike.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};
use spoor_store::{EventReader, MetaStore};
use spoor_warehouse::profile::{find_profile, load_profile};
use spoor_warehouse::reports::{ReportName, ReportParams, parse_bound, parse_window, rows_json};
use spoor_warehouse::sqlite::SqliteStore;
use spoor_warehouse::{AnyStore, LoadStats, Loader, LoaderOptions, WarehouseError};

use crate::Global;
use crate::exit::{self, Exit};
use crate::output;

/// Where the warehouse is.
#[derive(Debug, Clone, clap::Args)]
pub struct Location {
    /// The collector's data directory; the warehouse is DIR/warehouse.db.
    #[arg(
        long,
        env = "SPOOR_DATA",
        value_name = "DIR",
        default_value = "./spoor-data"
    )]
    pub data: PathBuf,
    /// A PostgreSQL warehouse instead of DIR/warehouse.db, like
    /// postgres://user@host:5432/db (add ?schema=NAME for another schema than `spoor`).
    #[arg(long, env = "SPOOR_WAREHOUSE", value_name = "URL")]
    pub warehouse: Option<String>,
}

impl Location {
    /// The SQLite file, when no URL is given.
    fn sqlite_path(&self) -> PathBuf {
        self.data.join("warehouse.db")
    }

    /// Opens the warehouse for reading.
    async fn open_for_reading(&self) -> anyhow::Result<AnyStore> {
        match &self.warehouse {
            Some(url) => open_url(url).await,
            None => {
                let path = self.sqlite_path();
                if !path.is_file() {
                    return Err(Exit::not_found(format!(
                        "no warehouse at {}: start `spoor serve --data {}` (it loads the \
                         warehouse as messages arrive) or run `spoor warehouse rebuild --data {}`",
                        path.display(),
                        self.data.display(),
                        self.data.display()
                    )));
                }
                Ok(AnyStore::Sqlite(
                    SqliteStore::open_read_only(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                ))
            }
        }
    }

    /// Opens the warehouse for loading, creating it when missing.
    async fn open_for_writing(&self) -> anyhow::Result<AnyStore> {
        match &self.warehouse {
            Some(url) => open_url(url).await,
            None => {
                std::fs::create_dir_all(&self.data)
                    .with_context(|| format!("cannot create {}", self.data.display()))?;
                let path = self.sqlite_path();
                Ok(AnyStore::Sqlite(SqliteStore::open(&path).with_context(
                    || format!("cannot open {}", path.display()),
                )?))
            }
        }
    }
}

async fn open_url(url: &str) -> anyhow::Result<AnyStore> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Exit::bad_input(format!(
            "--warehouse: {url:?} is not a postgres:// URL"
        )));
    }
    AnyStore::open(url).await.map_err(|err| match err {
        WarehouseError::Config { .. } => Exit::bad_input(format!("--warehouse: {err}")),
        other => anyhow::Error::new(other).context("cannot connect to the PostgreSQL warehouse"),
    })
}

/// Maps library errors on user input to exit code 2.
fn user_error(err: WarehouseError) -> anyhow::Error {
    match err {
        WarehouseError::BadInput { .. } | WarehouseError::Config { .. } => {
            Exit::bad_input(err.to_string())
        }
        other => anyhow::Error::new(other),
    }
}

/// Show a user's profile: ids, merged traits, groups and latest events.
///
/// ID is a user id or an anonymous id (tried in that order), or an explicit
/// `user_id:ID` / `anonymous_id:ID`. Ids linked by identify (anonymousId with userId) and
/// alias (previousId to userId) are one profile, so events sent before the user signed in
/// are shown too. Exits 4 when no profile has that id.
///
/// Examples:
///   spoor profile u123
///   spoor profile anonymous_id:3f9c0b2e --events 50
///   spoor profile u123 --json | jq .traits
///   spoor profile u123 --warehouse postgres://postgres@127.0.0.1/analytics
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  spoor profile u123
  spoor profile anonymous_id:3f9c0b2e --events 50
  spoor profile u123 --json | jq .traits
  spoor profile u123 --warehouse postgres://postgres@127.0.0.1/analytics")]
pub struct ProfileArgs {
    /// A user id, an anonymous id, or `user_id:ID` / `anonymous_id:ID`.
    pub id: String,
    /// How many of the latest events to show.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub events: usize,
    #[command(flatten)]
    pub location: Location,
}

/// Report names, as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportArg {
    /// Track calls per event name per day.
    Events,
    /// Event names by number of calls, with distinct users.
    TopEvents,
    /// Daily, weekly and monthly active users (any track, page or screen).
    ActiveUsers,
    /// Revenue per currency per day, exact, from `revenue` properties (no currency = USD).
    Revenue,
    /// Users who did each --step in order, within --window of the first step.
    Funnel,
    /// Weekly cohorts by first seen, and how many are active each week after.
    Retention,
    /// Messages that would merge two known users, merged or refused.
    IdentityMerges,
}

impl ReportArg {
    fn name(self) -> ReportName {
        match self {
            ReportArg::Events => ReportName::Events,
            ReportArg::TopEvents => ReportName::TopEvents,
            ReportArg::ActiveUsers => ReportName::ActiveUsers,
            ReportArg::Revenue => ReportName::Revenue,
            ReportArg::Funnel => ReportName::Funnel,
            ReportArg::Retention => ReportName::Retention,
            ReportArg::IdentityMerges => ReportName::IdentityMerges,
        }
    }
}

/// Output formats of `spoor report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// A JSON array of row objects (decimals as exact JSON numbers).
    Json,
    /// RFC 4180 CSV with a header.
    Csv,
}

/// Run a BI report over the warehouse tables.
///
/// Each report is one SQL query over Segment's warehouse tables (see it with --show-sql), so
/// a BI tool pointed at the same database gets the same numbers. Times are the events'
/// timestamps in UTC; --since is inclusive, --until exclusive (a bare date YYYY-MM-DD for
/// --until includes that day). Users are profiles: events before sign-in count for the user.
///
/// Examples:
///   spoor report events --since 2024-01-01
///   spoor report top-events --limit 10
///   spoor report active-users --format csv
///   spoor report revenue --since 2024-01-01 --until 2024-01-31 --json
///   spoor report funnel --step "Product Viewed" --step "Order Completed" --window 3d
///   spoor report retention --source web
///   spoor report revenue --warehouse postgres://postgres@127.0.0.1/analytics --show-sql
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Each report is one SQL query over Segment's warehouse tables (see it \
with --show-sql). Users are profiles: events before sign-in count for the user.

Examples:
  spoor report events --since 2024-01-01
  spoor report top-events --limit 10
  spoor report active-users --format csv
  spoor report revenue --since 2024-01-01 --until 2024-01-31 --json
  spoor report funnel --step \"Product Viewed\" --step \"Order Completed\" --window 3d
  spoor report retention --source web
  spoor report revenue --warehouse postgres://postgres@127.0.0.1/analytics --show-sql"
)]
pub struct ReportArgs {
    /// The report.
    #[arg(value_enum)]
    pub report: ReportArg,
    /// Only events at or after this time (YYYY-MM-DD or an ISO 8601 timestamp).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (YYYY-MM-DD includes that day).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this source (its id, or its slug when --data has the collector's meta.db).
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// A funnel step: an event name as sent. Give two or more, in order.
    #[arg(long = "step", value_name = "EVENT")]
    pub steps: Vec<String>,
    /// Funnel window from the first step, like 7d, 24h, 30m.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub window: String,
    /// Rows of top-events.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Output format [default: table, or json with --json].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print the SQL instead of running it.
    #[arg(long)]
    pub show_sql: bool,
    #[command(flatten)]
    pub location: Location,
}

/// `spoor warehouse` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WarehouseCommand {
    /// Drop the warehouse tables and load them again from the whole message log.
    ///
    /// The result is the same tables and rows as loading as messages arrived. Stop
    /// `spoor serve` (or run it with another warehouse) while rebuilding its warehouse.
    ///
    /// Examples:
    ///   spoor warehouse rebuild
    ///   spoor warehouse rebuild --data /var/lib/spoor --allow-user-merge
    ///   spoor warehouse rebuild --warehouse postgres://postgres@127.0.0.1/analytics
    #[command(verbatim_doc_comment)]
    Rebuild(LoadArgs),
    /// Load what the message log holds beyond the warehouse's checkpoint, then exit.
    ///
    /// `spoor serve` does this continuously; use this for a warehouse it does not load
    /// (another PostgreSQL database, say).
    ///
    /// Examples:
    ///   spoor warehouse load
    ///   spoor warehouse load --warehouse postgres://postgres@127.0.0.1/analytics
    #[command(verbatim_doc_comment)]
    Load(LoadArgs),
}

/// Arguments of `spoor warehouse rebuild|load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub location: Location,
    /// Merge profiles even when that joins two different known user ids (always recorded
    /// in identity_merges; refused by default).
    #[arg(long, env = "SPOOR_ALLOW_USER_MERGE")]
    pub allow_user_merge: bool,
    /// Messages per batch (read and planned together; while the warehouse is behind, batches
    /// share transactions of up to 50,000 messages).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch_size: usize,
}

/// Runs `spoor profile`.
pub async fn run_profile(args: ProfileArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let mut store = args.location.open_for_reading().await?;
    let Some(profile_id) = find_profile(&mut store, &args.id)
        .await
        .map_err(user_error)?
    else {
        return Err(Exit::not_found(format!(
            "no profile has the id {:?} (as a user id or an anonymous id)",
            args.id
        )));
    };
    let profile = load_profile(&mut store, &profile_id, args.events)
        .await
        .map_err(user_error)?;
    if global.json {
        output::print_json(&profile.to_json());
        return Ok(exit::SUCCESS);
    }
    let mut out = format!("profile {}\n\nids\n", profile.profile_id);
    let rows: Vec<Vec<String>> = profile
        .ids
        .iter()
        .map(|i| {
            vec![
                i.id_type.clone(),
                i.id.clone(),
                i.first_seen.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["type".into(), "id".into(), "first_seen".into()],
        &rows,
    ));
    out.push_str("\ntraits\n");
    let rows: Vec<Vec<String>> = profile
        .traits
        .iter()
        .map(|t| {
            let value = match &t.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![t.name.clone(), value, t.set_at.clone().unwrap_or_default()]
        })
        .collect();
    out.push_str(&output::table(
        &["trait".into(), "value".into(), "set_at".into()],
        &rows,
    ));
    if !profile.groups.is_empty() {
        out.push_str("\ngroups\n");
        let rows: Vec<Vec<String>> = profile
            .groups
            .iter()
            .map(|(g, t)| vec![g.clone(), t.clone().unwrap_or_default()])
            .collect();
        out.push_str(&output::table(
            &["group_id".into(), "last_seen".into()],
            &rows,
        ));
    }
    out.push_str("\nlatest events\n");
    let rows: Vec<Vec<String>> = profile
        .events
        .iter()
        .map(|e| {
            vec![
                e.timestamp.clone().unwrap_or_default(),
                e.kind.clone(),
                e.name.clone().unwrap_or_default(),
                e.message_id.clone(),
                e.source_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &[
            "timestamp".into(),
            "type".into(),
            "name".into(),
            "message_id".into(),
            "source_id".into(),
        ],
        &rows,
    ));
    if !profile.merges.is_empty() {
        out.push_str("\nuser merges (two known user ids linked by one message)\n");
        let rows: Vec<Vec<String>> = profile
            .merges
            .iter()
            .map(|(m, u, o, outcome)| vec![m.clone(), u.clone(), o.clone(), outcome.clone()])
            .collect();
        out.push_str(&output::table(
            &[
                "message_id".into(),
                "user_id".into(),
                "other_user_id".into(),
                "outcome".into(),
            ],
            &rows,
        ));
    }
    print!("{out}");
    Ok(exit::SUCCESS)
}

/// Resolves `--source` (a slug) to a source id with the collector's meta.db, when there.
fn resolve_source(location: &Location, source: &str) -> String {
    if location.warehouse.is_some() || !location.data.join("meta.db").is_file() {
        return source.to_owned();
    }
    MetaStore::open_existing(&location.data)
        .ok()
        .and_then(|meta| meta.source(source).ok())
        .map_or_else(|| source.to_owned(), |s| s.id)
}

/// Runs `spoor report`.
pub async fn run_report(args: ReportArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let format = args.format.unwrap_or(if global.json {
        Format::Json
    } else {
        Format::Table
    });
    let params = ReportParams {
        since: args
            .since
            .as_deref()
            .map(|t| parse_bound("--since", t, false))
            .transpose()
            .map_err(user_error)?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_bound("--until", t, true))
            .transpose()
            .map_err(user_error)?,
        source: args
            .source
            .as_deref()
            .map(|s| resolve_source(&args.location, s)),
        steps: args.steps.clone(),
        window_seconds: parse_window(&args.window).map_err(user_error)?,
        limit: args.limit,
    };
    let name = args.report.name();
    if name == ReportName::Funnel && params.steps.len() < 2 {
        return Err(Exit::bad_input(
            "--step: a funnel needs at least two steps, like --step \"Signed Up\" --step \"Order Completed\"",
        ));
    }
    let mut store = args.location.open_for_reading().await?;
    if args.show_sql {
        let schema = spoor_warehouse::loader::read_schema(&mut store)
            .await
            .map_err(user_error)?;
        let query = spoor_warehouse::reports::report_query(
            name,
            spoor_warehouse::Store::dialect(&store),
            &schema,
            &params,
        )
        .map_err(user_error)?;
        println!("{};", query.sql);
        return Ok(exit::SUCCESS);
    }
    let (query, rows) = spoor_warehouse::reports::run_report(&mut store, name, &params)
        .await
        .map_err(user_error)?;
    match format {
        Format::Json => output::print_json(&rows_json(&query, &rows)),
        Format::Table | Format::Csv => {
            let null = if format == Format::Table { "NULL" } else { "" };
            let cells: Vec<Vec<String>> = rows
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|c| c.clone().unwrap_or_else(|| null.to_owned()))
                        .collect()
                })
                .collect();
            if format == Format::Table {
                print!("{}", output::table(&rows.columns, &cells));
            } else {
                print!("{}", output::csv(&rows.columns, &cells));
            }
        }
    }
    Ok(exit::SUCCESS)
}

/// Loads the log into the loader (its pipelined catch-up), with a progress bar on a terminal.
async fn load_all(
    loader: &mut Loader<AnyStore>,
    log: Arc<EventReader>,
) -> anyhow::Result<LoadStats> {
    let last = {
        let log = Arc::clone(&log);
        tokio::task::spawn_blocking(move || log.last_seq()).await??
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(u64::try_from(last).unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} log entries, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let shown = bar.clone();
    let total = loader
        .catch_up_with_progress(&log, move |checkpoint| {
            if let Some(bar) = &shown {
                bar.set_position(u64::try_from(checkpoint).unwrap_or(0));
            }
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(total)
}

/// Runs `spoor warehouse ...`.
pub async fn run_warehouse(command: WarehouseCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let (args, rebuild) = match command {
        WarehouseCommand::Rebuild(args) => (args, true),
        WarehouseCommand::Load(args) => (args, false),
    };
    let events = args.location.data.join("events.db");
    if !events.is_file() {
        return Err(Exit::not_found(format!(
            "no message log at {}: the warehouse is built from a collector's data directory \
             (give it with --data)",
            events.display()
        )));
    }
    let log = Arc::new(
        EventReader::open(&args.location.data)
            .with_context(|| format!("cannot open {}", events.display()))?,
    );
    let store = args.location.open_for_writing().await?;
    let options = LoaderOptions {
        batch_size: args.batch_size.max(1),
        allow_user_merge: args.allow_user_merge,
        ..LoaderOptions::default()
    };
    let started = std::time::Instant::now();
    let mut loader = Loader::open(store, options).await?;
    if rebuild {
        loader.reset().await?;
    }
    let stats = load_all(&mut loader, log).await?;
    let seconds = started.elapsed().as_secs_f64();
    if global.json {
        output::print_json(&json!({
            "loaded": stats.loaded,
            "duplicates": stats.duplicates,
            "invalid": stats.invalid,
            "type_conflicts": stats.conflicts,
            "user_merges": stats.user_merges,
            "checkpoint": loader.checkpoint(),
            "seconds": seconds,
        }));
    } else {
        println!(
            "{} {} messages in {seconds:.1}s (checkpoint {}); {} duplicates skipped, {} invalid \
             entries, {} type conflicts, {} user-user merges met",
            if rebuild { "rebuilt from" } else { "loaded" },
            stats.loaded,
            loader.checkpoint(),
            stats.duplicates,
            stats.invalid,
            stats.conflicts,
            stats.user_merges,
        );
    }
    Ok(exit::SUCCESS)
}

/// The warehouse loader running inside `spoor serve`.
pub struct LoaderTask {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The loader's own runtime (its threads run at [`LOADER_NICE`]).
    runtime: tokio::runtime::Runtime,
}

/// The `nice` value of the loader's threads in `spoor serve`. The collector's threads keep
/// the default 0, so under a load that needs every core the kernel gives the collector most
/// of the CPU and the loader the rest (the log keeps what the warehouse has not loaded yet,
/// durably); when the collector has spare CPU the loader takes all of it.
/// Measured in docs/BENCHMARKS.md ("Session 6: the loader in the background").
pub const LOADER_NICE: i32 = 10;

/// The name of the loader's threads (`/proc/PID/task/*/comm`, `top -H`).
pub const LOADER_THREAD: &str = "spoor-loader";

/// Lowers the calling thread's scheduling priority to [`LOADER_NICE`]. On Linux
/// `setpriority(PRIO_PROCESS, 0, n)` applies to the calling thread only. A failure (a
/// sandbox that forbids it) only costs the collector's latency under full load: logged.
#[allow(unsafe_code)]
fn background_priority() {
    // SAFETY: `setpriority` takes three integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, LOADER_NICE) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "warehouse: cannot lower the loader thread's priority"
        );
    }
}

/// How often the loader looks for new messages.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Where `spoor serve` keeps the warehouse: the URL, or `DIR/warehouse.db`.
pub fn serve_location(data: &std::path::Path, warehouse: Option<&str>) -> String {
    warehouse.map_or_else(
        || data.join("warehouse.db").display().to_string(),
        str::to_owned,
    )
}

/// Starts the loader of `spoor serve`: every 200 ms it loads what the log holds beyond the
/// warehouse's checkpoint (in batches, until caught up). Errors are logged and retried.
///
/// The warehouse is connected to (or its file opened) before this returns, so a wrong
/// `--warehouse` stops `spoor serve` at once; the loader opens it in the background (its
/// schema, the id graph and, for a warehouse made by an earlier version, new indexes, which
/// take seconds per million rows), so the collector takes messages meanwhile.
pub async fn start_loader(
    data: &std::path::Path,
    warehouse: Option<String>,
    allow_user_merge: bool,
) -> anyhow::Result<LoaderTask> {
    let location = Location {
        data: data.to_path_buf(),
        warehouse,
    };
    let store = location.open_for_writing().await?;
    // The default batch (1,000 messages): with the pipeline two batches and their plans are in
    // memory at once, so smaller batches keep `spoor serve`'s memory lower. With 2,000 the
    // default serve peaked at 189-205 MB under batched load, with 1,000 at 157-170 MB, and
    // the loader was no slower (docs/BENCHMARKS.md, "Session 5: where issue 3's goals stand").
    let options = LoaderOptions {
        allow_user_merge,
        ..LoaderOptions::default()
    };
    let log = Arc::new(EventReader::open(data).context("cannot read events.db")?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    // Its own runtime, so that its threads (the worker and the blocking threads that run
    // SQLite and read the log) and only they run at a lower priority.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name(LOADER_THREAD)
        .on_thread_start(background_priority)
        .enable_all()
        .build()
        .context("cannot start the warehouse loader's threads")?;
    let task = runtime.spawn(async move {
        let started = std::time::Instant::now();
        let mut store = Some(store);
        let mut loader = loop {
            let opened = match store.take() {
                Some(store) => Ok(store),
                None => location.open_for_writing().await,
            };
            // A stop while opening drops the open: its DDL is atomic (SQLite finishes the
            // statement on its blocking thread; PostgreSQL rolls it back with the connection).
            let result = match opened {
                Ok(store) => tokio::select! {
                    result = Loader::open(store, options.clone()) => result.map_err(anyhow::Error::new),
                    _ = stopped.changed() => return,
                },
                Err(err) => Err(err),
            };
            match result {
                Ok(loader) => break loader,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "warehouse: cannot open it; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
        };
        tracing::info!(
            checkpoint = loader.checkpoint(),
            seconds = started.elapsed().as_secs_f64(),
            "warehouse: opened"
        );
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stopped.changed() => break,
            }
            // A stop ends a catch-up between two awaits: the batch being written is applied
            // or rolled back as a whole (SQLite's runs on a blocking thread that the runtime
            // lets finish; PostgreSQL's is rolled back with its connection), and the
            // checkpoint moves only with a committed batch, so the next start resumes
            // exactly where this one stopped. The SQLite transaction that batches behind the
            // log share is committed after the loop. Waiting for the whole backlog instead
            // made a shutdown after a saturating load take tens of seconds.
            let result = tokio::select! {
                result = loader.catch_up(&log) => result,
                _ = stopped.changed() => break,
            };
            match result {
                Ok(stats) if stats.loaded + stats.duplicates + stats.invalid > 0 => {
                    tracing::debug!(
                        loaded = stats.loaded,
                        checkpoint = loader.checkpoint(),
                        "warehouse: loaded"
                    );
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "warehouse: loading failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stopped.changed() => break,
                    }
                }
            }
        }
        // Every batch in the open transaction (if a stop ended a catch-up that was behind)
        // is whole and wrote its checkpoint: keep them rather than load them again.
        if let Err(err) = spoor_warehouse::Store::commit(loader.store()).await {
            tracing::warn!(error = %err, "warehouse: committing the last batches failed");
        }
    });
    Ok(LoaderTask {
        stop,
        task,
        runtime,
    })
}

impl LoaderTask {
    /// Stops the loader: the batch being written commits or rolls back, and what is left in
    /// the log is loaded at the next start (the loader resumes from its checkpoint).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "warehouse: the loader task failed");
        }
        // The task is done; its runtime has nothing left to wait for.
        self.runtime.shutdown_background();
    }
}

/// Runs one read-only query against a PostgreSQL warehouse (`spoor query --warehouse URL`):
/// a single statement, inside `BEGIN READ ONLY ... ROLLBACK`.
pub async fn query_postgres(url: &str, sql: &str) -> anyhow::Result<spoor_warehouse::Rows> {
    let statement = sql.trim().trim_end_matches(';').trim_end();
    if statement.contains(';') {
        return Err(Exit::bad_input(
            "SQL: give one statement (no ';' inside it) with --warehouse",
        ));
    }
    let mut store = open_url(url).await?;
    let store_ref = &mut store;
    spoor_warehouse::Store::execute(store_ref, "BEGIN READ ONLY").await?;
    let result = spoor_warehouse::Store::query(store_ref, statement).await;
    let _ = spoor_warehouse::Store::execute(store_ref, "ROLLBACK").await;
    result.map_err(|err| match err {
        WarehouseError::Postgres(e) => match e.as_db_error() {
            Some(db) => Exit::bad_input(format!("SQL: {}", db.message())),
            None => anyhow::Error::new(e),
        },
        other => anyhow::Error::new(other),
    })
}
