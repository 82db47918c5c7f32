//! `spoor-loadgen`: drives `spoor serve` (or any Segment Tracking API) with realistic track
//! events over N keep-alive HTTP/1.1 connections for a fixed duration, and prints the result as
//! one JSON object: messages and requests per second, latency percentiles, status counts.
//!
//! Each connection sends its next request as soon as the previous answer arrived (closed loop),
//! so the latency is what one client sees under that concurrency. Used by `bench/collector.sh`.
//!
//! ```text
//! spoor-loadgen --url http://127.0.0.1:8088 --write-key KEY --mode batch --connections 64 --duration 15
//! ```

mod event;
mod worker;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};

use crate::worker::{Target, WorkerReport};

/// Sends realistic ~600-byte track events to a Segment-compatible collector and reports
/// throughput and latency as JSON.
#[derive(Debug, Parser)]
#[command(name = "spoor-loadgen", version, about, long_about)]
struct Args {
    /// Base URL of the collector (plain http).
    #[arg(long, default_value = "http://127.0.0.1:8088")]
    url: String,
    /// Write key sent with HTTP Basic auth.
    #[arg(long)]
    write_key: String,
    /// `single` posts one message per request to /v1/track; `batch` posts --batch-size
    /// messages per request to /v1/batch.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    mode: Mode,
    /// Messages per request in batch mode.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Open loop at this many messages per second in all (spread evenly over the
    /// connections), instead of each connection sending as fast as it is answered. Latency
    /// is then measured from when each request was due, not when it was sent, so a server
    /// that falls behind is charged for the wait (no coordinated omission, as in wrk2).
    #[arg(long)]
    rate: Option<f64>,
}

/// What one request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One message per request to /v1/track.
    Single,
    /// A batch of messages per request to /v1/batch.
    Batch,
}

/// Errors that stop the load generator before it reports.
#[derive(Debug, thiserror::Error)]
enum LoadgenError {
    #[error("--url must look like http://HOST:PORT, got {0:?}")]
    BadUrl(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("a connection task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("--duration, --warmup, --connections, --batch-size and --rate must be positive")]
    BadNumbers,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<serde_json::Value, LoadgenError> {
    if !(args.duration > 0.0
        && args.warmup >= 0.0
        && args.connections > 0
        && args.batch_size > 0
        && args.rate.is_none_or(|rate| rate > 0.0))
    {
        return Err(LoadgenError::BadNumbers);
    }
    let authority = args
        .url
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .ok_or_else(|| LoadgenError::BadUrl(args.url.clone()))?
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(LoadgenError::Runtime)?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let run_id = now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(40);
    let timestamp = event::iso8601(now.as_millis() as u64);
    let (path, batch_size) = match args.mode {
        Mode::Single => ("/v1/track", 1),
        Mode::Batch => ("/v1/batch", args.batch_size),
    };
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(args.duration);
    let target = Target::new(&authority, path, &args.write_key);

    let reports = runtime.block_on(async {
        let mut tasks = Vec::new();
        for connection in 0..args.connections {
            let factory = event::EventFactory::new(run_id, connection, timestamp.clone());
            // Open loop: each connection sends every `interval`, the connections staggered
            // evenly within it.
            let schedule = args.rate.map(|rate| {
                let interval =
                    Duration::from_secs_f64(f64::from(args.connections) * batch_size as f64 / rate);
                let phase = interval.mul_f64(f64::from(connection) / f64::from(args.connections));
                worker::Schedule {
                    first: start + phase,
                    interval,
                }
            });
            tasks.push(tokio::spawn(worker::run(
                target.clone(),
                factory,
                batch_size,
                schedule,
                measure_from,
                measure_until,
            )));
        }
        let mut reports = Vec::new();
        for task in tasks {
            reports.push(task.await?);
        }
        Ok::<_, LoadgenError>(reports)
    })?;
    Ok(summarize(&args, path, batch_size, reports))
}

/// CPU time (user + system) this process used so far, from `/proc/self/stat` (in USER_HZ,
/// which is 100 on Linux); `null` where that file is missing.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start with field 3, so utime and stime (fields 14 and 15) are at 11 and 12 there.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Merges the connections' reports into the printed JSON object.
fn summarize(
    args: &Args,
    path: &str,
    batch_size: usize,
    reports: Vec<WorkerReport>,
) -> serde_json::Value {
    let mut latencies: Vec<u32> = Vec::new();
    let mut statuses = std::collections::BTreeMap::<String, u64>::new();
    let mut ok_requests = 0u64;
    let mut failed_requests = 0u64;
    let mut connection_errors = 0u64;
    for report in reports {
        latencies.extend(report.latencies_us);
        ok_requests += report.ok_requests;
        failed_requests += report.failed_requests;
        connection_errors += report.connection_errors;
        for (status, count) in report.statuses {
            *statuses.entry(status.to_string()).or_default() += count;
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, latencies.len()) - 1;
        f64::from(latencies[index]) / 1000.0
    };
    let messages = ok_requests * batch_size as u64;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    serde_json::json!({
        "mode": match args.mode { Mode::Single => "single", Mode::Batch => "batch" },
        "path": path,
        "batch_size": batch_size,
        "connections": args.connections,
        "duration_s": args.duration,
        "requests_ok": ok_requests,
        "requests_failed": failed_requests,
        "connection_errors": connection_errors,
        "messages": messages,
        "messages_per_s": round(messages as f64 / args.duration),
        "requests_per_s": round(ok_requests as f64 / args.duration),
        "latency_ms": {
            "p50": round(percentile(50.0)),
            "p90": round(percentile(90.0)),
            "p99": round(percentile(99.0)),
            "max": round(percentile(100.0)),
        },
        "statuses": statuses,
        "loadgen_cpu_s": own_cpu_seconds(),
    })
}
