//! Reading request bodies within limits: a cap on bytes read, a deadline for the whole body,
//! and gzip/deflate decoding with a hard cap on the decoded size, so a small compressed bomb
//! can never allocate more than the limit.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than the limit (raw or decoded).
    #[error("the request body is {size}; the limit is {limit} bytes (500 KB)")]
    TooLarge {
        /// "N bytes" when known, else "more than N bytes".
        size: String,
        /// The limit.
        limit: usize,
    },
    /// The client took too long to send the body.
    #[error("the request body was not received within {seconds} s")]
    Timeout {
        /// The deadline, in seconds.
        seconds: u64,
    },
    /// The connection failed while reading.
    #[error("reading the request body failed: {reason}")]
    Read {
        /// The cause.
        reason: String,
    },
    /// A `Content-Encoding` other than gzip, deflate and identity.
    #[error("Content-Encoding {encoding:?} is not supported (use gzip, deflate or none)")]
    UnsupportedEncoding {
        /// The encoding named.
        encoding: String,
    },
    /// The compressed data is corrupt.
    #[error("the {encoding} body cannot be decoded: {reason}")]
    BadEncoding {
        /// gzip or deflate.
        encoding: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl BodyError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::Timeout { .. } => "body_timeout",
            BodyError::Read { .. } => "body_read_failed",
            BodyError::UnsupportedEncoding { .. } => "unsupported_encoding",
            BodyError::BadEncoding { .. } => "invalid_encoding",
        }
    }
}

/// The declared `Content-Length`, if any and valid.
pub fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads at most `limit` bytes of `body` within `timeout`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    if let Some(len) = content_length(headers).filter(|len| *len > limit) {
        return Err(BodyError::TooLarge {
            size: format!("{len} bytes"),
            limit,
        });
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    match collected {
        Err(_) => Err(BodyError::Timeout {
            seconds: timeout.as_secs(),
        }),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge {
                size: format!("more than {limit} bytes"),
                limit,
            })
        }
        Ok(Err(err)) => Err(BodyError::Read {
            reason: err.to_string(),
        }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Decodes the body per `Content-Encoding`, never producing more than `limit` bytes.
pub fn decode(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, BodyError> {
    let Some(encoding) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(raw);
    };
    let encoding = encoding.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => {
            read_capped(flate2::read::MultiGzDecoder::new(&raw[..]), "gzip", limit)
        }
        "deflate" => {
            // HTTP's "deflate" is zlib-wrapped; some clients send raw deflate instead.
            if raw.len() >= 2
                && (u16::from(raw[0]) << 8 | u16::from(raw[1])) % 31 == 0
                && raw[0] & 0x0f == 8
            {
                read_capped(flate2::read::ZlibDecoder::new(&raw[..]), "deflate", limit)
            } else {
                read_capped(
                    flate2::read::DeflateDecoder::new(&raw[..]),
                    "deflate",
                    limit,
                )
            }
        }
        other => Err(BodyError::UnsupportedEncoding {
            encoding: other.to_owned(),
        }),
    }
}

fn read_capped(
    reader: impl Read,
    encoding: &'static str,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|err| BodyError::BadEncoding {
            encoding,
            reason: err.to_string(),
        })?;
    if out.len() > limit {
        return Err(BodyError::TooLarge {
            size: format!("more than {limit} bytes once decoded"),
            limit,
        });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn headers(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        headers
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b' '; 50 * 1024 * 1024]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 100 * 1024);
        let err = decode(&headers("gzip"), Bytes::from(bomb), 512_000).unwrap_err();
        assert_eq!(err.code(), "body_too_large");
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(b"{\"a\":1}").unwrap();
        let out = decode(
            &headers("deflate"),
            Bytes::from(zlib.finish().unwrap()),
            100,
        )
        .unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"{\"a\":1}").unwrap();
        let out = decode(&headers("deflate"), Bytes::from(raw.finish().unwrap()), 100).unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
        assert_eq!(
            decode(&headers("br"), Bytes::new(), 100)
                .unwrap_err()
                .code(),
            "unsupported_encoding"
        );
    }
}
