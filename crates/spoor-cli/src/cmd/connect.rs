//! `spoor connect` and `spoor connections ...`: the "create a connection" dialog of the
//! no-code Segment apps, as commands.
//!
//! `connect` checks the token against the Public API (`GET /`, the workspace), then looks for
//! the write key among the workspace's sources (`GET /sources`), and saves the connection.
//! A write key that matches no source is saved with a warning that says why it may still
//! work: Segment's Tracking API accepts any key, and a token without the Source Admin
//! permission sees empty `writeKeys`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::Global;
use crate::cmd::connection_store::{
    Connection, ConnectionsFile, EU_API_BASE, US_API_BASE, config_path, mask,
};
use crate::exit::{self, Exit};
use crate::output::{print_json, table};

/// Segment region: picks the default Tracking and Public API bases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Region {
    /// https://api.segment.io and https://api.segmentapis.com.
    Us,
    /// https://events.eu1.segmentapis.com and https://eu1.api.segmentapis.com.
    Eu,
}

/// Arguments of `spoor connect`.
#[derive(Debug, clap::Args)]
#[command(after_help = r#"Examples:

  spoor connect prod --token "$SEGMENT_TOKEN" --write-key "$WRITE_KEY"

  spoor connect eu --region eu --token "$TOKEN" --write-key "$KEY"

  spoor connect local --endpoint http://127.0.0.1:8088 --api-base http://127.0.0.1:8088/api \
      --token "$SPOOR_OWNER_TOKEN" --write-key "$SPOOR_WRITE_KEY""#)]
pub struct ConnectArgs {
    /// The connection's name (default: "default").
    #[arg(value_name = "NAME", default_value = "default")]
    pub name: String,
    /// A Public API token (Segment: Settings > Access Management > Tokens, role Workspace
    /// Owner). It is checked with GET / of the API base.
    #[arg(long, env = "SPOOR_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The source's write key (Segment: Sources > your source > Settings > API Keys).
    #[arg(long, env = "SPOOR_WRITE_KEY", hide_env_values = true)]
    pub write_key: String,
    /// Segment region (default us); sets the default endpoint and API base.
    #[arg(long, value_enum, conflicts_with = "endpoint")]
    pub region: Option<Region>,
    /// Tracking API base, without /v1 (e.g. http://127.0.0.1:8088 for a spoor collector).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Public API base (e.g. http://127.0.0.1:8088/api for a spoor collector).
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
}

/// `spoor connections` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConnectionsCommand {
    /// List connections (secrets masked).
    List,
    /// Show one connection (secrets masked).
    Show {
        /// The connection's name.
        name: String,
    },
    /// Remove a connection.
    Remove {
        /// The connection's name.
        name: String,
    },
    /// Make a connection the default for send commands.
    Default {
        /// The connection's name.
        name: String,
    },
}

/// Runs `spoor connect`.
pub async fn run_connect(args: ConnectArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let region = args.region.unwrap_or(Region::Us);
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| match region {
            Region::Us => spoor_client::US_ENDPOINT.to_owned(),
            Region::Eu => spoor_client::EU_ENDPOINT.to_owned(),
        })
        .trim_end_matches('/')
        .to_owned();
    let api_base = args
        .api_base
        .clone()
        .unwrap_or_else(|| match region {
            Region::Us => US_API_BASE.to_owned(),
            Region::Eu => EU_API_BASE.to_owned(),
        })
        .trim_end_matches('/')
        .to_owned();
    for (flag, url) in [("--endpoint", &endpoint), ("--api-base", &api_base)] {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Exit::bad_input(format!(
                "{flag}: {url:?} is not an http:// or https:// URL"
            )));
        }
    }
    if args.token.trim().is_empty() {
        return Err(Exit::bad_input("--token: must not be empty"));
    }
    if args.write_key.trim().is_empty() {
        return Err(Exit::bad_input("--write-key: must not be empty"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent(format!("spoor/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;

    let workspace = get_json(&http, &format!("{api_base}/"), &args.token)
        .await
        .context("checking the token with GET / of the Public API")?;
    let workspace = match workspace {
        (200..=299, body) => body,
        (401 | 403, body) => {
            return Err(Exit::refused(format!(
                "--token: the Public API at {api_base} refused the token ({}); create one under Settings > Access Management > Tokens",
                error_text(&body)
            )));
        }
        (status, body) => {
            return Err(Exit::refused(format!(
                "GET {api_base}/ answered HTTP {status}: {}",
                error_text(&body)
            )));
        }
    };
    let workspace_name = workspace
        .pointer("/data/workspace/name")
        .or_else(|| workspace.pointer("/data/workspace/slug"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    let (source, warning) = match_write_key(&http, &api_base, &args.token, &args.write_key).await;

    let path = config_path()?;
    let mut file = ConnectionsFile::load(&path)?;
    file.connections.insert(
        args.name.clone(),
        Connection {
            write_key: args.write_key.clone(),
            token: Some(args.token.clone()),
            endpoint: endpoint.clone(),
            api_base: api_base.clone(),
            workspace: workspace_name.clone(),
            source: source.clone(),
        },
    );
    let is_default = match &file.default {
        Some(name) if file.connections.contains_key(name) => name == &args.name,
        _ => {
            file.default = Some(args.name.clone());
            true
        }
    };
    file.save(&path)?;

    if global.json {
        print_json(&json!({
            "name": args.name,
            "workspace": workspace_name,
            "source": source,
            "endpoint": endpoint,
            "apiBase": api_base,
            "default": is_default,
            "warning": warning,
            "file": path.display().to_string(),
        }));
    } else {
        if let Some(warning) = &warning {
            eprintln!("warning: {warning}");
        }
        println!(
            "connected {:?} to workspace {:?}{}{} (saved in {})",
            args.name,
            workspace_name.as_deref().unwrap_or("?"),
            source
                .as_ref()
                .map(|s| format!(", source {s:?}"))
                .unwrap_or_default(),
            if is_default {
                ", the default connection"
            } else {
                ""
            },
            path.display()
        );
    }
    Ok(exit::SUCCESS)
}

/// Looks for the write key among the workspace's sources. Returns the source name, or a
/// warning saying why it was not found.
async fn match_write_key(
    http: &reqwest::Client,
    api_base: &str,
    token: &str,
    write_key: &str,
) -> (Option<String>, Option<String>) {
    let mut cursor: Option<String> = None;
    let mut sources_seen = 0usize;
    let mut keys_seen = 0usize;
    for _page in 0..50 {
        let mut url = format!("{api_base}/sources?pagination.count=200");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&pagination.cursor={}", percent_encode(cursor)));
        }
        let (status, body) = match get_json(http, &url, token).await {
            Ok(answer) => answer,
            Err(err) => {
                return (
                    None,
                    Some(format!(
                        "could not list the workspace's sources ({err:#}); the write key was not checked"
                    )),
                );
            }
        };
        if !(200..300).contains(&status) {
            return (
                None,
                Some(format!(
                    "the token may not list sources (GET /sources answered HTTP {status}: {}); the write key was not checked, and it may still work",
                    error_text(&body)
                )),
            );
        }
        let sources = body
            .pointer("/data/sources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for source in &sources {
            sources_seen += 1;
            let keys = source
                .get("writeKeys")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            keys_seen += keys.len();
            if keys.iter().any(|k| k.as_str() == Some(write_key)) {
                let name = source
                    .get("name")
                    .or_else(|| source.get("slug"))
                    .or_else(|| source.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                return (name, None);
            }
        }
        cursor = body
            .pointer("/data/pagination/next")
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty())
            .map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let warning = if sources_seen > 0 && keys_seen == 0 {
        format!(
            "the write key matches no source: the token sees {sources_seen} source(s) but no write keys, \
             so it probably lacks the Source Admin permission; the key may still work"
        )
    } else {
        format!(
            "the write key matches none of the workspace's {sources_seen} source(s): it may belong to another \
             workspace or region (Segment's Tracking API accepts any key with HTTP 200 and drops the events later)"
        )
    };
    (None, Some(warning))
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .header(
            "Accept",
            "application/vnd.segment.v1+json, application/json",
        )
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer of GET {url}"))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// The message of a Public API error envelope, else the body as text.
fn error_text(body: &Value) -> String {
    body.pointer("/errors/0/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = body
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| body.to_string());
            text.chars().take(200).collect()
        })
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn masked(name: &str, connection: &Connection, default: bool) -> Value {
    json!({
        "name": name,
        "default": default,
        "endpoint": connection.endpoint,
        "apiBase": connection.api_base,
        "workspace": connection.workspace,
        "source": connection.source,
        "writeKey": mask(&connection.write_key),
        "token": connection.token.as_deref().map(mask),
    })
}

/// Runs `spoor connections ...`.
pub async fn run_connections(
    command: ConnectionsCommand,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let path = config_path()?;
    let mut file = ConnectionsFile::load(&path)?;
    match command {
        ConnectionsCommand::List => {
            let default = file.default.clone().unwrap_or_default();
            if global.json {
                let list: Vec<Value> = file
                    .connections
                    .iter()
                    .map(|(name, c)| masked(name, c, *name == default))
                    .collect();
                print_json(&Value::Array(list));
            } else if file.connections.is_empty() {
                println!(
                    "no connections; create one with `spoor connect NAME --token TOKEN --write-key KEY`"
                );
            } else {
                let columns: Vec<String> = ["", "NAME", "WORKSPACE", "ENDPOINT", "WRITE KEY"]
                    .map(String::from)
                    .to_vec();
                let rows: Vec<Vec<String>> = file
                    .connections
                    .iter()
                    .map(|(name, c)| {
                        vec![
                            if *name == default {
                                "*".to_owned()
                            } else {
                                String::new()
                            },
                            name.clone(),
                            c.workspace.clone().unwrap_or_default(),
                            c.endpoint.clone(),
                            mask(&c.write_key),
                        ]
                    })
                    .collect();
                print!("{}", table(&columns, &rows));
            }
        }
        ConnectionsCommand::Show { name } => {
            let connection = file.get(&name)?;
            let value = masked(
                &name,
                connection,
                file.default.as_deref() == Some(name.as_str()),
            );
            if global.json {
                print_json(&value);
            } else if let Value::Object(map) = value {
                for (key, value) in map {
                    let text = match value {
                        Value::String(s) => s,
                        Value::Null => "-".to_owned(),
                        other => other.to_string(),
                    };
                    println!("{key:<10} {text}");
                }
            }
        }
        ConnectionsCommand::Remove { name } => {
            file.get(&name)?;
            file.connections.remove(&name);
            if file.default.as_deref() == Some(name.as_str()) {
                file.default = None;
            }
            file.save(&path)?;
            if global.json {
                print_json(&json!({"removed": name}));
            } else {
                println!("removed connection {name:?}");
            }
        }
        ConnectionsCommand::Default { name } => {
            file.get(&name)?;
            file.default = Some(name.clone());
            file.save(&path)?;
            if global.json {
                print_json(&json!({"default": name}));
            } else {
                println!("{name:?} is now the default connection");
            }
        }
    }
    Ok(exit::SUCCESS)
}
