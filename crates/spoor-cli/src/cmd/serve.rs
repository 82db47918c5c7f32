//! `spoor serve`: the collector.
//!
//! Settings come from flags, then `SPOOR_*` environment variables, then an optional
//! `spoor.toml` (in the data directory, or `--config PATH`), then defaults. Unknown keys in
//! the file are an error naming them. On the first start with an empty data directory the
//! workspace, the source `default` and an owner token are created and their secrets printed
//! once. SIGTERM and Ctrl-C stop accepting, finish and commit what is in flight, and exit 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use spoor_collector::net::{Cidr, TrustedProxies};
use spoor_collector::{AppState, KeyRing, ServerConfig};
use spoor_store::{FirstRun, MessageLog, MetaStore, NullLog, SqliteLog, SqliteLogConfig};

use crate::Global;
use crate::exit::Exit;

/// The soft cap on SQLite's heap in `spoor serve` (see [`spoor_store::limit_sqlite_heap`]):
/// above the page caches it sets (4 + 16 + 2 MiB for the writer, the warehouse loader and the
/// log reader), so they shrink only when statements and schemas need room too.
const SQLITE_HEAP_LIMIT: i64 = 32 << 20;
/// Where accepted messages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite with fsync and group commit (the default).
    Sqlite,
    /// Acknowledge without storing anything: for benchmarks of the HTTP path only.
    Null,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Run the collector: Segment's Tracking API on an embedded, durable store.
///
/// Every Segment library can send to it unchanged: point its host at this server. Accepted
/// messages are committed to disk (fsync) before the 200 is sent.
///
/// Examples:
///   spoor serve
///   spoor serve --listen 0.0.0.0:8088 --data /var/lib/spoor
///   spoor serve --public-url https://events.example.com --trusted-proxy 10.0.0.0/8
///
/// Settings: flags win over SPOOR_* environment variables, which win over spoor.toml
/// (looked for in the data directory, or given with --config).
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8088]. Port 0 picks a free port; the
    /// address is printed as "listening on http://ADDR".
    #[arg(long, env = "SPOOR_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory, created on first start [default: ./spoor-data].
    #[arg(long, env = "SPOOR_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A spoor.toml to read instead of DIR/spoor.toml.
    #[arg(long, env = "SPOOR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// How long a messageId is remembered per source for deduplication, like 24h, 90m or
    /// 7d; 0 turns deduplication off [default: 24h].
    #[arg(long, env = "SPOOR_DEDUPE_WINDOW", value_name = "DURATION")]
    pub dedupe_window: Option<String>,
    /// messageIds kept in memory before they are written to the on-disk dedupe index as one
    /// run: more means fewer files and merges for more memory (about 100 bytes per id)
    /// [default: 25000].
    #[arg(long, env = "SPOOR_DEDUPE_MEMTABLE", value_name = "IDS")]
    pub dedupe_memtable: Option<usize>,
    /// A proxy (address or CIDR range) whose X-Forwarded-For header is believed for
    /// context.ip. Repeat or separate with commas.
    #[arg(
        long = "trusted-proxy",
        env = "SPOOR_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Option<Vec<String>>,
    /// The URL browsers reach this server at, like https://events.example.com; used in the
    /// analytics.js settings document [default: the request's Host, over http].
    #[arg(long, env = "SPOOR_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Storage: sqlite, or null to acknowledge without storing (benchmarks only).
    #[arg(long, env = "SPOOR_STORE", value_name = "KIND", hide = true)]
    pub store: Option<StoreKind>,
    /// Log line format on stderr [default: text].
    #[arg(long, env = "SPOOR_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Most client connections open at once; more wait in the backlog [default: 1024].
    #[arg(long, env = "SPOOR_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most time a client may take to send its request headers [default: 10s].
    #[arg(long, env = "SPOOR_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// Most time a client may take to send its request body [default: 30s].
    #[arg(long, env = "SPOOR_BODY_TIMEOUT", value_name = "DURATION")]
    pub body_timeout: Option<String>,
    /// Megabytes of request bodies held in memory at once; more requests wait [default: 32].
    #[arg(long, env = "SPOOR_BODY_MEMORY_MB", value_name = "MB")]
    pub body_memory_mb: Option<usize>,
    /// Load the warehouse into PostgreSQL instead of DIR/warehouse.db, like
    /// postgres://user@host/db (add ?schema=NAME for another schema than `spoor`).
    #[arg(long, env = "SPOOR_WAREHOUSE", value_name = "URL")]
    pub warehouse: Option<String>,
    /// Merge profiles even when a message links two different known user ids (such merges
    /// are always recorded in identity_merges; refused by default).
    #[arg(long, env = "SPOOR_ALLOW_USER_MERGE")]
    pub allow_user_merge: bool,
    /// Do not load the warehouse while serving (load it later with `spoor warehouse load`);
    /// for benchmarks of the ingest path, or when another process loads it.
    #[arg(long, env = "SPOOR_NO_WAREHOUSE_LOADER")]
    pub no_warehouse_loader: bool,
}

/// The keys of `spoor.toml`. Unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data: Option<PathBuf>,
    dedupe_window: Option<String>,
    dedupe_memtable: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    public_url: Option<String>,
    store: Option<StoreKind>,
    log_format: Option<LogFormat>,
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    body_memory_mb: Option<usize>,
}

/// Settings after merging flags, environment, file and defaults.
#[derive(Debug)]
struct Settings {
    listen: String,
    data: PathBuf,
    dedupe_window: Duration,
    dedupe_memtable: usize,
    store: StoreKind,
    log_format: LogFormat,
    server: ServerConfig,
}

/// Parses `250ms`, `30s`, `90m`, `24h`, `7d` or a bare number of seconds.
pub fn parse_duration(field: &str, text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        Exit::bad_input(format!(
            "{field}: {text:?} is not a duration; use a number and a unit, like 250ms, 30s, 90m, 24h or 7d"
        ))
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => n,
        "" | "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => return Err(bad()),
    };
    Ok(Duration::from_millis(millis))
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|err| Exit::bad_input(format!("{}: {}", path.display(), err.to_string().trim())))
}

fn settings(args: ServeArgs) -> anyhow::Result<Settings> {
    let data_hint = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("./spoor-data"));
    let file = match &args.config {
        Some(path) => read_file_config(path)?,
        None => {
            let path = data_hint.join("spoor.toml");
            if path.is_file() {
                read_file_config(&path)?
            } else {
                FileConfig::default()
            }
        }
    };
    let data = args
        .data
        .or(file.data)
        .unwrap_or_else(|| PathBuf::from("./spoor-data"));
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8088".to_owned());
    let dedupe_window = match args.dedupe_window.or(file.dedupe_window) {
        Some(text) => parse_duration("--dedupe-window", &text)?,
        None => Duration::from_secs(24 * 3600),
    };
    let dedupe_memtable = match args.dedupe_memtable.or(file.dedupe_memtable) {
        Some(0) => return Err(Exit::bad_input("--dedupe-memtable: must be at least 1")),
        Some(ids) => ids,
        None => spoor_store::writer::DEDUPE_FLUSH_ENTRIES,
    };
    let proxies = args
        .trusted_proxy
        .or(file.trusted_proxies)
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.parse::<Cidr>()
                .map_err(|err| Exit::bad_input(format!("--trusted-proxy: {err}")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let public_url = args.public_url.or(file.public_url);
    if let Some(url) = public_url
        .as_ref()
        .filter(|url| !(url.starts_with("http://") || url.starts_with("https://")))
    {
        return Err(Exit::bad_input(format!(
            "--public-url: {url:?} must start with http:// or https://"
        )));
    }
    let defaults = ServerConfig::default();
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(Exit::bad_input("--max-connections: must be at least 1"));
    }
    let header_timeout = match args.header_timeout.or(file.header_timeout) {
        Some(text) => parse_duration("--header-timeout", &text)?,
        None => defaults.header_timeout,
    };
    let body_timeout = match args.body_timeout.or(file.body_timeout) {
        Some(text) => parse_duration("--body-timeout", &text)?,
        None => defaults.body_timeout,
    };
    if header_timeout.is_zero() || body_timeout.is_zero() {
        return Err(Exit::bad_input(
            "--header-timeout and --body-timeout must be more than zero",
        ));
    }
    let body_budget_bytes = match args.body_memory_mb.or(file.body_memory_mb) {
        Some(mb) if mb >= 1 => mb.saturating_mul(1024 * 1024),
        Some(_) => return Err(Exit::bad_input("--body-memory-mb: must be at least 1")),
        None => defaults.body_budget_bytes,
    };
    Ok(Settings {
        listen,
        data,
        dedupe_window,
        dedupe_memtable,
        store: args.store.or(file.store).unwrap_or(StoreKind::Sqlite),
        log_format: args
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
        server: ServerConfig {
            public_url,
            trusted_proxies: TrustedProxies::new(proxies),
            header_timeout,
            body_timeout,
            max_connections,
            body_budget_bytes,
            ..defaults
        },
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPOOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn print_first_run(first: &FirstRun, url: &str, data: &Path, global: &Global) {
    if global.json {
        crate::output::print_json(&serde_json::json!({
            "firstRun": {
                "dataDir": data.display().to_string(),
                "workspaceId": first.workspace.id,
                "source": {"id": first.source.id, "name": first.source.slug},
                "writeKey": first.write_key,
                "tokenId": first.token_id,
                "token": first.token,
            }
        }));
        return;
    }
    println!(
        "spoor: first start: created {} with a workspace, the source \"default\" and an owner token.\n\
         \n  write key (source default):  {}\n  owner token (Public API):   {}\n\
         \nThe token is shown only this once: store it now. The write key is listed again by\n\
         `spoor sources list`.\n\
         \nSend a first event:\n  curl -u '{}:' -H 'Content-Type: application/json' \\\n    -d '{{\"userId\":\"user-1\",\"event\":\"Signed Up\"}}' {}/v1/track\n\
         \nThen see it:\n  spoor query \"SELECT type, event, user_id, received_at FROM messages\"\n",
        data.display(),
        first.write_key,
        first.token,
        first.write_key,
        url,
    );
}

/// Runs `spoor serve`.
pub async fn run(args: ServeArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let (warehouse, allow_user_merge) = (args.warehouse.clone(), args.allow_user_merge);
    let load_warehouse = !args.no_warehouse_loader;
    let settings = settings(args)?;
    init_logging(settings.log_format);
    let addr: SocketAddr = tokio::net::lookup_host(&settings.listen)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Exit::bad_input(format!(
                "--listen: {:?} is not an address like 127.0.0.1:8088",
                settings.listen
            ))
        })?;
    let mut meta = MetaStore::open(&settings.data)
        .with_context(|| format!("cannot open the data directory {}", settings.data.display()))?;
    let first = meta.bootstrap().context("cannot initialize meta.db")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let url = format!("http://{bound}");
    if let Some(first) = &first {
        print_first_run(first, &url, &settings.data, global);
    }
    // SQLite's own memory, all connections together (docs/BENCHMARKS.md, session 3: without
    // a cap the default `spoor serve` grew past 200 MB under batches; with it the loader
    // caught up as fast).
    spoor_store::limit_sqlite_heap(SQLITE_HEAP_LIMIT).context("cannot cap SQLite's memory")?;
    let log: Arc<dyn MessageLog> = match settings.store {
        StoreKind::Sqlite => Arc::new(
            SqliteLog::open(
                &settings.data,
                SqliteLogConfig {
                    dedupe_window: settings.dedupe_window,
                    dedupe_memtable: settings.dedupe_memtable,
                },
            )
            .context("cannot open events.db")?,
        ),
        StoreKind::Null => {
            tracing::warn!("--store null: messages are acknowledged but NOT stored");
            Arc::new(NullLog::new())
        }
    };
    let keys = KeyRing::watch(settings.data.clone()).context("cannot load the write keys")?;
    let state = AppState::new(
        Arc::clone(&log),
        meta,
        keys,
        settings.server,
        spoor_collector::system_clock(),
    );
    let loader = match settings.store {
        StoreKind::Sqlite if load_warehouse => Some(
            crate::cmd::warehouse::start_loader(
                &settings.data,
                warehouse.clone(),
                allow_user_merge,
            )
            .await?,
        ),
        StoreKind::Sqlite | StoreKind::Null => None,
    };
    let warehouse_location =
        crate::cmd::warehouse::serve_location(&settings.data, warehouse.as_deref());
    let router = spoor_collector::router(state.clone()).merge(spoor_collector::profiles::routes(
        state.clone(),
        warehouse_location,
    ));
    let shutdown = shutdown_signal()?;
    if global.json {
        crate::output::print_json(&serde_json::json!({"listening": bound.to_string(), "url": url}));
    } else {
        println!("spoor: listening on {url}");
    }
    tracing::info!(
        address = %bound,
        data = %settings.data.display(),
        store = log.kind(),
        dedupe_window_seconds = settings.dedupe_window.as_secs(),
        "collector started"
    );
    spoor_collector::server::serve(listener, state, router, shutdown).await?;
    tracing::info!("no longer accepting; committing what is queued");
    log.close().await.context("cannot close the message log")?;
    if let Some(loader) = loader {
        loader.stop().await;
    }
    tracing::info!("stopped cleanly");
    Ok(crate::exit::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed before this returns,
/// so a signal sent right after the "listening" line is never missed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C received: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("x", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration("x", "24h").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_duration("x", "7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("x", "30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("x", "1y").is_err());
        assert!(parse_duration("x", "h").is_err());
    }

    #[test]
    fn unknown_file_keys_are_named() {
        let err = toml::from_str::<FileConfig>("listen = \"x\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }
}
