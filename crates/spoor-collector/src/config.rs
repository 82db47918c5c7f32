//! [`ServerConfig`]: the collector's validated settings, built once by the binary.

use std::time::Duration;

use crate::net::TrustedProxies;

/// The collector's settings. The binary fills it from flags, environment and `spoor.toml`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The public base URL (`https://events.example.com`), used in the analytics.js settings
    /// document; when `None`, the request's `Host` header is used with `http`.
    pub public_url: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed for `context.ip`.
    pub trusted_proxies: TrustedProxies,
    /// The most time a client may take to send the request headers. Default 10 s.
    pub header_timeout: Duration,
    /// The most time a client may take to send the request body. Default 30 s.
    pub body_timeout: Duration,
    /// The most connections open at once; more wait in the kernel's backlog. Default 1024.
    pub max_connections: usize,
    /// Bytes of request bodies held in memory at once, across all requests. Default 32 MiB.
    pub body_budget_bytes: usize,
    /// The most time shutdown waits for in-flight requests. Default 30 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            public_url: None,
            trusted_proxies: TrustedProxies::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            body_budget_bytes: 32 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
