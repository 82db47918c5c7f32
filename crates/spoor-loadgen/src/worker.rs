//! One connection's loop: send a request, wait for the whole answer, record it, repeat;
//! either as fast as answers come (closed loop) or on a fixed [`Schedule`] (open loop, where
//! a request's latency counts from when it was due).
//!
//! Requests that start before the measuring window are sent but not counted; the loop stops
//! at the window's end. A broken connection is counted and reopened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::event::EventFactory;

/// Where requests go and how they authenticate; cheap to clone into every connection.
#[derive(Debug, Clone)]
pub struct Target {
    inner: Arc<TargetInner>,
}

#[derive(Debug)]
struct TargetInner {
    authority: String,
    path: String,
    authorization: String,
}

impl Target {
    /// A target at `authority` (`host:port`), posting to `path` with the write key as Basic auth.
    pub fn new(authority: &str, path: &str, write_key: &str) -> Self {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"));
        Self {
            inner: Arc::new(TargetInner {
                authority: authority.to_owned(),
                path: path.to_owned(),
                authorization: format!("Basic {credentials}"),
            }),
        }
    }
}

/// What one connection measured.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Latency of every counted request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Counted requests answered 2xx.
    pub ok_requests: u64,
    /// Counted requests answered with another status.
    pub failed_requests: u64,
    /// Connections that failed (connect, send or read errors), counted or not.
    pub connection_errors: u64,
    /// Counted answers by status code.
    pub statuses: HashMap<u16, u64>,
}

/// When an open-loop connection's requests are due: `first`, then every `interval`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// When the first request is due.
    pub first: Instant,
    /// Time between two requests of this connection.
    pub interval: std::time::Duration,
}

/// Runs one connection until `until`, counting requests that start (or, on a schedule, are
/// due) at or after `from`.
pub async fn run(
    target: Target,
    mut factory: EventFactory,
    batch_size: usize,
    schedule: Option<Schedule>,
    from: Instant,
    until: Instant,
) -> WorkerReport {
    let mut report = WorkerReport::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut next_due = schedule.map(|s| s.first);
    while Instant::now() < until {
        // On a schedule, wait until the next request is due; latency counts from then.
        let due = match (schedule, next_due) {
            (Some(schedule), Some(due)) => {
                tokio::time::sleep_until(due.into()).await;
                next_due = Some(due + schedule.interval);
                Some(due)
            }
            _ => None,
        };
        let mut live = match sender.take() {
            Some(live) => live,
            None => match connect(&target.inner.authority).await {
                Ok(live) => live,
                Err(_) => {
                    report.connection_errors += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let body = if batch_size == 1 {
            factory.single()
        } else {
            factory.batch(batch_size)
        };
        let request = hyper::Request::post(target.inner.path.as_str())
            .header(hyper::header::HOST, target.inner.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::AUTHORIZATION,
                target.inner.authorization.as_str(),
            )
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            // The parts above are constants and a validated authority; nothing to retry.
            report.connection_errors += 1;
            return report;
        };
        let started = due.unwrap_or_else(Instant::now);
        let outcome = async {
            live.ready().await?;
            let response = live.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<u16, hyper::Error>(status)
        }
        .await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(status) => {
                sender = Some(live);
                if started >= from && Instant::now() <= until {
                    report
                        .latencies_us
                        .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                    *report.statuses.entry(status).or_default() += 1;
                    if (200..300).contains(&status) {
                        report.ok_requests += 1;
                    } else {
                        report.failed_requests += 1;
                    }
                }
            }
            Err(_) => report.connection_errors += 1,
        }
    }
    report
}

/// Opens one HTTP/1.1 connection and drives it on a background task.
async fn connect(
    authority: &str,
) -> Result<SendRequest<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the server closes it or the sender is dropped; either way the
        // worker notices on its next request.
        let _ = connection.await;
    });
    Ok(sender)
}
