//! `spoor batch`: newline-delimited JSON messages of any type through the batching client.
//!
//! Lines are read and validated on a blocking thread and queued with their line number as
//! the tag, so every error names its line. Memory stays flat: the queue is bounded and only
//! the failures are kept (the first 1,000 in detail).

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use spoor_client::{Client, ClientError, Config, Message, Outcome};

use crate::Global;
use crate::cmd::connection_store::{ConnectionFlag, resolve};
use crate::exit::{self, Exit};
use crate::output::print_json;

/// Lines queued together (one queue entry, one wake-up of the worker).
const CHUNK: usize = 256;

/// Queue entries (chunks) waiting for the worker: at most 64 x 256 messages in memory.
const QUEUED_CHUNKS: usize = 64;

/// Failures kept in detail; the rest are only counted.
const KEPT_ERRORS: usize = 1_000;

/// Arguments of `spoor batch`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = r#"Each line of FILE (or standard input with -) is one message with a "type" (identify,
track, page, screen, group, alias), as in the body of POST /v1/batch. Messages are
validated, given a messageId when they have none, batched (100 per request, under 500 KB)
and retried until delivered. The summary gives what was delivered, rejected (with the
reasons and line numbers) and retried. Exit 3 when anything was not delivered; exit 2
when only invalid lines were left out.

Examples:

  spoor batch events.ndjson

  zcat export.ndjson.gz | spoor batch - --connection prod --json

  {"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":19.99}}"#
)]
pub struct BatchArgs {
    /// The NDJSON file, or - for standard input.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// Messages per request (at most 2,500).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Compress requests with gzip.
    #[arg(long)]
    pub gzip: bool,
    /// Retries of a batch before its messages count as failed.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    #[command(flatten)]
    pub connection: ConnectionFlag,
}

#[derive(Default)]
struct Failures {
    kept: Vec<(u64, String, &'static str)>,
    rejected_reasons: std::collections::BTreeMap<String, u64>,
}

impl Failures {
    fn push(&mut self, line: u64, reason: String, kind: &'static str) {
        if self.kept.len() < KEPT_ERRORS {
            self.kept.push((line, reason, kind));
        }
    }
}

/// Runs `spoor batch`.
pub async fn run_batch(args: BatchArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 || args.batch_size > spoor_spec::limits::MAX_BATCH_MESSAGES {
        return Err(Exit::bad_input("--batch-size: between 1 and 2500"));
    }
    let reader: Box<dyn BufRead + Send> = if args.file == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|err| Exit::bad_input(format!("FILE {}: cannot open: {err}", args.file)))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    let total_bytes = std::fs::metadata(&args.file)
        .map(|m| m.len())
        .ok()
        .filter(|_| args.file != "-");
    let target = resolve(&args.connection)?;
    let failures = Arc::new(Mutex::new(Failures::default()));
    let sink = Arc::clone(&failures);
    let mut config = Config::new(&target.endpoint, &target.write_key);
    config.batch_size = args.batch_size;
    config.concurrency = args.concurrency.max(1);
    config.gzip = args.gzip;
    config.max_retries = args.max_retries;
    config.queue_capacity = QUEUED_CHUNKS;
    config.on_delivery = Some(Arc::new(move |delivery| {
        let (reason, kind) = match delivery.outcome {
            Outcome::Delivered { .. } => return,
            Outcome::Rejected { status, body } => {
                (format!("HTTP {status}: {}", body.trim()), "rejected")
            }
            Outcome::Failed { reason } => (reason, "failed"),
        };
        if let Ok(mut failures) = sink.lock() {
            *failures.rejected_reasons.entry(reason.clone()).or_insert(0) += 1;
            failures.push(delivery.tag, reason, kind);
        }
    }));
    let client = Arc::new(Client::new(config).map_err(|err| Exit::bad_input(err.to_string()))?);
    let progress = progress_bar(total_bytes);
    let started = Instant::now();

    let reader_client = Arc::clone(&client);
    let reader_failures = Arc::clone(&failures);
    let reader_progress = progress.clone();
    let handle = tokio::runtime::Handle::current();
    let (lines, invalid) = tokio::task::spawn_blocking(move || {
        read_lines(
            reader,
            &reader_client,
            &handle,
            &reader_failures,
            reader_progress.as_ref(),
        )
    })
    .await
    .context("the reader thread stopped")??;
    client.close().await;
    if let Some(progress) = &progress {
        progress.finish_and_clear();
    }
    let elapsed = started.elapsed();
    let stats = client.stats();
    let failures = failures
        .lock()
        .map(|mut f| std::mem::take(&mut *f))
        .unwrap_or_default();
    let per_second = stats.delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    let not_delivered = stats.rejected + stats.failed;
    if global.json {
        let errors: Vec<Value> = failures
            .kept
            .iter()
            .map(|(line, reason, kind)| json!({"line": line, "kind": kind, "reason": reason}))
            .collect();
        print_json(&json!({
            "lines": lines,
            "sent": stats.queued,
            "delivered": stats.delivered,
            "invalid": invalid,
            "rejected": stats.rejected,
            "failed": stats.failed,
            "retried": stats.retried,
            "requests": stats.requests,
            "seconds": elapsed.as_secs_f64(),
            "eventsPerSecond": per_second.round(),
            "errors": errors,
        }));
    } else {
        println!(
            "delivered {} of {} messages in {:.1} s ({:.0}/s); {} invalid, {} rejected, {} failed; {} retried, {} requests",
            stats.delivered,
            lines,
            elapsed.as_secs_f64(),
            per_second,
            invalid,
            stats.rejected,
            stats.failed,
            stats.retried,
            stats.requests
        );
        for (line, reason, kind) in failures.kept.iter().take(20) {
            eprintln!("line {line}: {kind}: {reason}");
        }
        if failures.kept.len() > 20 {
            eprintln!("... and {} more (see --json)", invalid + not_delivered - 20);
        }
    }
    if not_delivered > 0 {
        return Err(Exit::refused(format!(
            "{not_delivered} message(s) were not delivered"
        )));
    }
    if invalid > 0 {
        return Err(Exit::bad_input(format!(
            "{invalid} line(s) were invalid and not sent"
        )));
    }
    Ok(exit::SUCCESS)
}

/// Reads, validates and queues every line; returns (lines with a message, invalid lines).
fn read_lines(
    mut reader: Box<dyn BufRead + Send>,
    client: &Client,
    handle: &tokio::runtime::Handle,
    failures: &Mutex<Failures>,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<(u64, u64)> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = Vec::with_capacity(CHUNK);
    let (mut line_no, mut lines, mut invalid, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .context("reading the input")?;
        if read == 0 {
            break;
        }
        line_no += 1;
        bytes += read as u64;
        if let Some(progress) = progress
            && line_no % 1024 == 0
        {
            progress.set_position(bytes);
        }
        let text = buffer.trim_ascii();
        if text.is_empty() {
            continue;
        }
        lines += 1;
        match Message::from_slice(text, None) {
            Ok(message) => {
                chunk.push((message, line_no));
                if chunk.len() == CHUNK {
                    invalid += enqueue_chunk(client, handle, &mut chunk, failures)?;
                }
            }
            Err(err) => {
                invalid += 1;
                if let Ok(mut failures) = failures.lock() {
                    failures.push(line_no, err.to_string(), "invalid");
                }
            }
        }
    }
    invalid += enqueue_chunk(client, handle, &mut chunk, failures)?;
    Ok((lines, invalid))
}

/// Queues a chunk of parsed lines in one go; returns how many were invalid.
fn enqueue_chunk(
    client: &Client,
    handle: &tokio::runtime::Handle,
    chunk: &mut Vec<(Message, u64)>,
    failures: &Mutex<Failures>,
) -> anyhow::Result<u64> {
    if chunk.is_empty() {
        return Ok(0);
    }
    let tags: Vec<u64> = chunk.iter().map(|(_, tag)| *tag).collect();
    let results = handle.block_on(client.enqueue_many(std::mem::take(chunk)));
    let mut invalid = 0;
    for (tag, result) in tags.into_iter().zip(results) {
        let reason = match result {
            Ok(_) => continue,
            Err(ClientError::Invalid { problems }) => problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Err(ClientError::Closed) => anyhow::bail!("the client closed while reading"),
            Err(err) => err.to_string(),
        };
        invalid += 1;
        if let Ok(mut failures) = failures.lock() {
            failures.push(tag, reason, "invalid");
        }
    }
    Ok(invalid)
}

fn progress_bar(total_bytes: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total_bytes {
        Some(total) => {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}
