//! The HTTP side: one request to the Tracking API with Basic auth, optional gzip, and the
//! classification of what came back.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{self, HeaderMap, HeaderValue};

use crate::ClientError;
use crate::retry::{Verdict, classify, parse_retry_after};

/// The library's name and version, as sent in `context.library` and `User-Agent`.
pub const LIBRARY_NAME: &str = "spoor";
/// The library's version.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx or 3xx status.
    Delivered {
        /// The status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// A status never retried.
    Rejected {
        /// The status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// Retry: a retryable status or a network error.
    Retry {
        /// What went wrong, for people.
        reason: String,
        /// The server's `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
}

/// A Tracking API endpoint with its auth, shared by the worker's tasks.
#[derive(Clone, Debug)]
pub struct Transport {
    http: reqwest::Client,
    base: String,
    gzip: bool,
}

impl Transport {
    /// A transport to `endpoint` (no trailing `/v1`) authenticating with `write_key`.
    pub fn new(
        endpoint: &str,
        write_key: &str,
        timeout: Duration,
        gzip: bool,
    ) -> Result<Transport, ClientError> {
        let base = endpoint.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadEndpoint {
                endpoint: endpoint.to_owned(),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, basic_auth(write_key)?);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(format!("{LIBRARY_NAME}/{LIBRARY_VERSION}"))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(ClientError::Http)?;
        Ok(Transport { http, base, gzip })
    }

    /// POSTs a JSON body to `path` (`/v1/batch`) and classifies the answer.
    pub async fn post(&self, path: &str, body: Vec<u8>, retry_count: u32) -> Attempt {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if retry_count > 0 {
            request = request.header("X-Retry-Count", retry_count);
        }
        let body = if self.gzip {
            match gzip(&body) {
                Ok(compressed) => {
                    request = request.header(header::CONTENT_ENCODING, "gzip");
                    compressed
                }
                Err(_) => body,
            }
        } else {
            body
        };
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(err) => {
                return Attempt::Retry {
                    reason: describe(&err),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = match response.text().await {
            Ok(text) => text,
            Err(err) if classify(status) == Verdict::Delivered => {
                // The status line said accepted; a body lost afterwards changes nothing.
                tracing::debug!("response body lost after {status}: {err}");
                String::new()
            }
            Err(err) => {
                return Attempt::Retry {
                    reason: format!("HTTP {status}, then {}", describe(&err)),
                    retry_after,
                };
            }
        };
        match classify(status) {
            Verdict::Delivered => Attempt::Delivered { status, body },
            Verdict::Rejected => Attempt::Rejected { status, body },
            Verdict::Retry => Attempt::Retry {
                reason: format!("HTTP {status}: {}", truncate(&body, 200)),
                retry_after,
            },
        }
    }
}

/// The `Authorization: Basic base64(writeKey:)` header.
pub fn basic_auth(write_key: &str) -> Result<HeaderValue, ClientError> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
        ClientError::invalid(
            "writeKey",
            spoor_spec::Code::WrongType,
            "the write key holds characters a header cannot carry".to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "network error"
    };
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
