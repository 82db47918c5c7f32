//! The `spoor` command: the collector (`spoor serve` and its admin commands) and the Segment
//! connector (`spoor identify`, `track`, ..., `api`, `batch`), in one binary.
//!
//! This is the only crate that uses `anyhow`, reads the environment, or owns signals. Each
//! subcommand lives in its own module under `cmd/` and gets its parsed arguments explicitly.

mod cmd;
mod exit;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the collector's per-message JSON work is dominated by
/// small allocations (see docs/BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// spoor: Segment's Tracking API, done properly. A collector that keeps your events and a
/// connector that sends them.
#[derive(Debug, Parser)]
#[command(
    name = "spoor",
    version,
    about,
    long_about,
    propagate_version = true,
    after_help = "Examples:\n  \
        spoor serve                                      start a collector on 127.0.0.1:8088\n  \
        spoor track --event \"Signed Up\" --user-id u1     send an event to it\n  \
        spoor query \"SELECT event, user_id FROM messages\"  see what arrived\n  \
        spoor report top-events                          a BI report over the warehouse\n\n\
        Exit codes: 0 success, 1 runtime failure, 2 bad input, 3 refused or not delivered, \
        4 not found."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector: Segment's Tracking API on an embedded, durable store.
    Serve(cmd::serve::ServeArgs),
    /// Manage the collector's sources and their write keys.
    #[command(subcommand)]
    Sources(cmd::admin::SourcesCommand),
    /// Manage the collector's Public API tokens.
    #[command(subcommand)]
    Tokens(cmd::admin::TokensCommand),
    /// Run read-only SQL against the collector's store.
    Query(cmd::query::QueryArgs),
    /// Create a named connection to Segment or to a Segment-compatible endpoint.
    Connect(cmd::connect::ConnectArgs),
    /// List, show, remove connections or pick the default one.
    #[command(subcommand)]
    Connections(cmd::connect::ConnectionsCommand),
    /// Send an identify call: who the user is, with traits.
    Identify(cmd::send::IdentifyArgs),
    /// Send a track call: an action the user performed, with properties.
    Track(cmd::send::TrackArgs),
    /// Send a page call: a web page view.
    Page(cmd::send::PageArgs),
    /// Send a screen call: a mobile screen view.
    Screen(cmd::send::ScreenArgs),
    /// Send a group call: associate a user with a group.
    Group(cmd::send::GroupArgs),
    /// Send an alias call: one identity is another.
    Alias(cmd::send::AliasArgs),
    /// Make any call to the Tracking API, with the write key's auth added for you.
    Api(cmd::send::ApiArgs),
    /// Send newline-delimited JSON messages through the batching client.
    Batch(cmd::send::BatchArgs),
    /// Show a user's profile: ids, merged traits, groups and latest events.
    Profile(cmd::warehouse::ProfileArgs),
    /// Run a BI report over the warehouse tables.
    Report(cmd::warehouse::ReportArgs),
    /// Manage the warehouse tables derived from the message log.
    #[command(subcommand)]
    Warehouse(cmd::warehouse::WarehouseCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return exit::FAILURE;
        }
    };
    let global = cli.global;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args, &global).await,
            Command::Sources(command) => cmd::admin::run_sources(command, &global).await,
            Command::Tokens(command) => cmd::admin::run_tokens(command, &global).await,
            Command::Query(args) => cmd::query::run(args, &global).await,
            Command::Connect(args) => cmd::connect::run_connect(args, &global).await,
            Command::Connections(command) => cmd::connect::run_connections(command, &global).await,
            Command::Identify(args) => cmd::send::run_identify(args, &global).await,
            Command::Track(args) => cmd::send::run_track(args, &global).await,
            Command::Page(args) => cmd::send::run_page(args, &global).await,
            Command::Screen(args) => cmd::send::run_screen(args, &global).await,
            Command::Group(args) => cmd::send::run_group(args, &global).await,
            Command::Alias(args) => cmd::send::run_alias(args, &global).await,
            Command::Api(args) => cmd::send::run_api(args, &global).await,
            Command::Batch(args) => cmd::send::run_batch(args, &global).await,
            Command::Profile(args) => cmd::warehouse::run_profile(args, &global).await,
            Command::Report(args) => cmd::warehouse::run_report(args, &global).await,
            Command::Warehouse(command) => cmd::warehouse::run_warehouse(command, &global).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::code_for(&err)
        }
    }
}
