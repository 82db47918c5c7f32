//! `spoor api`: the "Make an API call" module. Any method and path relative to the
//! connection's Tracking API endpoint, with Basic auth (the write key) added unless the
//! caller gives an Authorization header; the answer is printed as a bundle
//! `{"status", "headers", "body"}`, the body parsed when it is JSON.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::Global;
use crate::cmd::connection_store::{ConnectionFlag, resolve};
use crate::exit::{self, Exit};
use crate::output::print_json;

/// Arguments of `spoor api`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = r#"PATH is relative to the connection's endpoint (https://api.segment.io by default). The
Authorization header (Basic, the write key as user name) is added for you unless you give
one. The result is printed as {"status": ..., "headers": {...}, "body": ...}; the exit
code is 3 when the status is 400 or more.

Examples:

  Associate a user with a group (the Segment app's example):
  spoor api POST /v1/group --header "Content-Type: application/json" \
      --body '{"userId": "u42", "groupId": "acme"}'

  spoor api POST /v1/track --body @event.json
  echo '{"userId":"u1","event":"Ping"}' | spoor api POST /v1/track --body -"#
)]
pub struct ApiArgs {
    /// GET, POST, PUT, PATCH or DELETE.
    #[arg(value_name = "METHOD")]
    pub method: String,
    /// The path, relative to the endpoint (/v1/group).
    #[arg(value_name = "PATH")]
    pub path: String,
    /// A request header, NAME:VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// A query string parameter, KEY=VALUE (repeatable).
    #[arg(long = "query", value_name = "KEY=VALUE")]
    pub query: Vec<String>,
    /// The JSON body: inline JSON, @FILE, or - for standard input.
    #[arg(long, value_name = "JSON|@FILE|-")]
    pub body: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionFlag,
}

/// Runs `spoor api`.
pub async fn run_api(args: ApiArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let method = match args.method.to_ascii_uppercase().as_str() {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        "PATCH" => reqwest::Method::PATCH,
        "DELETE" => reqwest::Method::DELETE,
        other => {
            return Err(Exit::bad_input(format!(
                "METHOD: {other:?} is not one of GET, POST, PUT, PATCH, DELETE"
            )));
        }
    };
    if args.path.contains("://") {
        return Err(Exit::bad_input(format!(
            "PATH: {:?} must be relative to the endpoint (/v1/group); pick the endpoint with --connection or SPOOR_ENDPOINT",
            args.path
        )));
    }
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .filter(|(name, _)| !name.trim().is_empty())
            .ok_or_else(|| Exit::bad_input(format!("--header {header:?}: expected NAME:VALUE")))?;
        let name =
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                Exit::bad_input(format!(
                    "--header {header:?}: {:?} is not a header name",
                    name.trim()
                ))
            })?;
        let value = reqwest::header::HeaderValue::from_str(value.trim()).map_err(|_| {
            Exit::bad_input(format!(
                "--header {header:?}: the value holds characters a header cannot carry"
            ))
        })?;
        headers.push((name, value));
    }
    let mut query = Vec::new();
    for pair in &args.query {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Exit::bad_input(format!("--query {pair:?}: expected KEY=VALUE")))?;
        query.push((key.to_owned(), value.to_owned()));
    }
    let body = match &args.body {
        None => None,
        Some(spec) => {
            let text = if spec == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the body from standard input")?;
                text
            } else if let Some(file) = spec.strip_prefix('@') {
                std::fs::read_to_string(file).map_err(|err| {
                    Exit::bad_input(format!("--body @{file}: cannot read the file: {err}"))
                })?
            } else {
                spec.clone()
            };
            if let Err(err) = serde_json::from_str::<Value>(&text) {
                return Err(Exit::bad_input(format!("--body: not valid JSON: {err}")));
            }
            Some(text)
        }
    };
    let has_auth = headers
        .iter()
        .any(|(name, _)| name == reqwest::header::AUTHORIZATION);
    let has_type = headers
        .iter()
        .any(|(name, _)| name == reqwest::header::CONTENT_TYPE);
    let (endpoint, write_key) = match resolve(&args.connection) {
        Ok(target) => (target.endpoint, Some(target.write_key)),
        Err(_) if has_auth => (
            std::env::var("SPOOR_ENDPOINT")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| spoor_client::US_ENDPOINT.to_owned()),
            None,
        ),
        Err(err) => return Err(err),
    };
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let url = format!("{}{path}", endpoint.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(format!("spoor/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let mut request = http.request(method.clone(), &url).query(&query);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if !has_auth && let Some(key) = &write_key {
        let auth = spoor_client::transport::basic_auth(key)
            .map_err(|err| Exit::bad_input(err.to_string()))?;
        request = request.header(reqwest::header::AUTHORIZATION, auth);
    }
    if let Some(body) = body {
        if !has_type {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let mut header_map = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {method} {url}"))?;
    let body = match serde_json::from_str::<Value>(&text) {
        Ok(value) => value,
        Err(_) => Value::String(text),
    };
    let bundle = json!({"status": status, "headers": header_map, "body": body});
    if global.json {
        print_json(&bundle);
    } else {
        println!("{}", serde_json::to_string_pretty(&bundle)?);
    }
    if status >= 400 {
        return Err(Exit::refused(format!(
            "{method} {url} answered HTTP {status}"
        )));
    }
    Ok(exit::SUCCESS)
}
