//! The accept loop: one task per connection, a cap on open connections, hyper's header read
//! timeout, and graceful shutdown.
//!
//! Shutdown: when the future passed to [`serve`] completes, the listener is closed (no new
//! connections), every open connection is told to finish its in-flight request and close,
//! and [`serve`] returns once they have (or after the grace period). The caller then closes
//! the message log, which commits whatever is still queued.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceExt as _;

use crate::AppState;
use crate::net::PeerAddr;

/// Serves `router(state)` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let config = Arc::clone(&state.config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Running out of file descriptors and similar: wait, do not spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut closing = closing_rx.clone();
        let done = done_tx.clone();
        let metrics = Arc::clone(&state.metrics);
        let header_timeout = config.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _done = done;
            metrics.connection(true);
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    router.clone().oneshot(request.map(Body::new))
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, %peer, "connection ended with an error");
                    }
                }
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            metrics.connection(false);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(done_tx);
    if tokio::time::timeout(config.shutdown_grace, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the shutdown grace period");
    }
    Ok(())
}
