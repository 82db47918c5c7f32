//! `spoor sources ...` and `spoor tokens ...`: manage the collector's sources, write keys and
//! Public API tokens in the data directory. They work while the server runs; a running server
//! honours a new, rotated or disabled key within a second.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};
use spoor_store::{MetaStore, Role, Source, StoreError, Token};

use crate::Global;
use crate::exit::{self, Exit};
use crate::output;

/// The data directory flag shared by the admin commands.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDir {
    /// The collector's data directory.
    #[arg(
        long,
        env = "SPOOR_DATA",
        value_name = "DIR",
        default_value = "./spoor-data"
    )]
    pub data: PathBuf,
}

/// `spoor sources` subcommands.
///
/// Examples:
///   spoor sources list
///   spoor sources create web
///   spoor sources rotate-key web
///   spoor sources disable web
#[derive(Debug, clap::Subcommand)]
pub enum SourcesCommand {
    /// Create a source and print its write key.
    Create {
        /// The source's name: a-z, 0-9, '-' and '_'.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List sources with their ids, state and write keys.
    List {
        #[command(flatten)]
        data: DataDir,
    },
    /// Stop accepting the source's write keys (requests get 401).
    Disable {
        /// The source's name or id.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Accept the source's write keys again.
    Enable {
        /// The source's name or id.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Replace the source's write keys with a new one; the old keys stop working.
    RotateKey {
        /// The source's name or id.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
}

/// `spoor tokens` subcommands.
///
/// Examples:
///   spoor tokens create --description "CI reads sources" --role member
///   spoor tokens list
///   spoor tokens revoke 3hV9Xc0mY1a2b3c4d5e6f7
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create a Public API token; it is printed once and stored only as a hash.
    Create {
        /// What the token is for.
        #[arg(long)]
        description: String,
        /// owner (read and change) or member (read only).
        #[arg(long, default_value = "member", value_parser = ["owner", "member"])]
        role: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        data: DataDir,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        /// The token's id, as listed.
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
}

fn open(data: &DataDir) -> anyhow::Result<MetaStore> {
    MetaStore::open_existing(&data.data).map_err(|err| match err {
        StoreError::NotFound { .. } => Exit::not_found(format!(
            "no spoor data directory at {}: start the collector once with `spoor serve --data {}`",
            data.data.display(),
            data.data.display()
        )),
        other => anyhow::Error::new(other).context("cannot open meta.db"),
    })
}

/// Maps store errors to exit codes: not found 4, invalid or conflict 2.
fn store_error(err: StoreError) -> anyhow::Error {
    match err {
        StoreError::NotFound { .. } => Exit::not_found(err.to_string()),
        StoreError::Invalid { .. } | StoreError::Conflict { .. } => {
            Exit::bad_input(err.to_string())
        }
        other => anyhow::Error::new(other),
    }
}

fn source_json(source: &Source) -> Value {
    json!({
        "id": source.id,
        "name": source.slug,
        "enabled": source.enabled,
        "writeKeys": source.write_keys,
        "createdAt": source.created_at,
    })
}

fn token_json(token: &Token) -> Value {
    json!({
        "id": token.id,
        "description": token.description,
        "role": token.role.as_str(),
        "createdAt": token.created_at,
        "revokedAt": token.revoked_at,
    })
}

fn print_source(source: &Source, what: &str, global: &Global) {
    if global.json {
        output::print_json(&source_json(source));
    } else {
        println!(
            "{what} source {} (id {}, {})\nwrite key: {}",
            source.slug,
            source.id,
            if source.enabled {
                "enabled"
            } else {
                "disabled"
            },
            source.write_keys.join(", ")
        );
    }
}

/// Runs `spoor sources ...`.
pub async fn run_sources(command: SourcesCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match command {
        SourcesCommand::Create { name, data } => {
            let source = open(&data)?
                .create_source(&name, None)
                .map_err(store_error)?;
            print_source(&source, "created", global);
        }
        SourcesCommand::List { data } => {
            let sources = open(&data)?.list_sources().context("cannot list sources")?;
            if global.json {
                output::print_json(&Value::Array(sources.iter().map(source_json).collect()));
            } else {
                let columns = ["name", "id", "enabled", "write keys", "created"]
                    .map(str::to_owned)
                    .to_vec();
                let rows: Vec<Vec<String>> = sources
                    .iter()
                    .map(|s| {
                        vec![
                            s.slug.clone(),
                            s.id.clone(),
                            if s.enabled { "yes" } else { "no" }.to_owned(),
                            s.write_keys.join(", "),
                            s.created_at.clone(),
                        ]
                    })
                    .collect();
                print!("{}", output::table(&columns, &rows));
            }
        }
        SourcesCommand::Disable { name, data } => {
            let source = open(&data)?
                .set_enabled(&name, false)
                .map_err(store_error)?;
            print_source(&source, "disabled", global);
        }
        SourcesCommand::Enable { name, data } => {
            let source = open(&data)?.set_enabled(&name, true).map_err(store_error)?;
            print_source(&source, "enabled", global);
        }
        SourcesCommand::RotateKey { name, data } => {
            let (source, _key) = open(&data)?.rotate_key(&name).map_err(store_error)?;
            print_source(&source, "rotated the key of", global);
        }
    }
    Ok(exit::SUCCESS)
}

/// Runs `spoor tokens ...`.
pub async fn run_tokens(command: TokensCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create {
            description,
            role,
            data,
        } => {
            let role =
                Role::parse(&role).ok_or_else(|| Exit::bad_input("--role: use owner or member"))?;
            let (token, secret) = open(&data)?
                .create_token(&description, role)
                .map_err(store_error)?;
            if global.json {
                let mut value = token_json(&token);
                value["token"] = Value::String(secret);
                output::print_json(&value);
            } else {
                println!(
                    "created token {} ({}, {})\ntoken: {secret}\nIt is shown only this once: store it now.",
                    token.id,
                    token.role.as_str(),
                    token.description
                );
            }
        }
        TokensCommand::List { data } => {
            let tokens = open(&data)?.list_tokens().context("cannot list tokens")?;
            if global.json {
                output::print_json(&Value::Array(tokens.iter().map(token_json).collect()));
            } else {
                let columns = ["id", "role", "description", "created", "revoked"]
                    .map(str::to_owned)
                    .to_vec();
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.role.as_str().to_owned(),
                            t.description.clone(),
                            t.created_at.clone(),
                            t.revoked_at.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!("{}", output::table(&columns, &rows));
            }
        }
        TokensCommand::Revoke { id, data } => {
            let token = open(&data)?.revoke_token(&id).map_err(store_error)?;
            if global.json {
                output::print_json(&token_json(&token));
            } else {
                println!("revoked token {} ({})", token.id, token.description);
            }
        }
    }
    Ok(exit::SUCCESS)
}
