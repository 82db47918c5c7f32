//! Named connections in `$XDG_CONFIG_HOME/spoor/connections.toml` (else
//! `~/.config/spoor/connections.toml`), and how a send command picks its write key and
//! endpoint: `--connection NAME`, else the default connection, with `SPOOR_WRITE_KEY`,
//! `SPOOR_ENDPOINT` and `SPOOR_TOKEN` overriding for scripts.
//!
//! The file holds secrets: it is created with mode 0600 (never chmod-ed afterwards) inside a
//! 0700 directory, and written through a temporary file renamed over it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::exit::Exit;

/// Segment's US Public API.
pub const US_API_BASE: &str = "https://api.segmentapis.com";
/// Segment's EU Public API.
pub const EU_API_BASE: &str = "https://eu1.api.segmentapis.com";

/// One named connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The source's write key (Tracking API).
    pub write_key: String,
    /// The Public API token, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The Tracking API base (`https://api.segment.io`).
    pub endpoint: String,
    /// The Public API base (`https://api.segmentapis.com`).
    pub api_base: String,
    /// The workspace name the token showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The source the write key belongs to, when the token could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The whole file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    /// The connection used when no `--connection` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Connections by name.
    #[serde(default)]
    pub connections: BTreeMap<String, Connection>,
}

/// Where the connections file lives.
pub fn config_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => anyhow::bail!(
                "neither XDG_CONFIG_HOME nor HOME is set; cannot find the config directory"
            ),
        },
    };
    Ok(base.join("spoor").join("connections.toml"))
}

impl ConnectionsFile {
    /// Reads the file; a missing file is an empty one.
    pub fn load(path: &Path) -> anyhow::Result<ConnectionsFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|err| {
                Exit::bad_input(format!(
                    "{}: not a valid connections file: {err}",
                    path.display()
                ))
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Ok(ConnectionsFile::default())
            }
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file with mode 0600, atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("the config path has no directory")?;
        create_private_dir(dir)?;
        let text = toml::to_string_pretty(self).context("encoding the connections file")?;
        let tmp = dir.join(format!(".connections.toml.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        {
            let mut file =
                open_private(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// A connection by name, or exit 4 naming the known ones.
    pub fn get(&self, name: &str) -> anyhow::Result<&Connection> {
        self.connections.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            Exit::not_found(format!(
                "no connection named {name:?} (known: {}); create it with `spoor connect {name} --token ... --write-key ...`",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A secret for display: its first four characters, the rest starred.
pub fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    if count < 12 {
        return "*".repeat(count.max(4));
    }
    let head: String = secret.chars().take(4).collect();
    format!("{head}{}", "*".repeat(8))
}

/// The `--connection` flag every send command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionFlag {
    /// The connection to send through (see `spoor connections list`); default: the default
    /// connection. SPOOR_WRITE_KEY and SPOOR_ENDPOINT override its write key and endpoint.
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

/// What a send command sends with.
#[derive(Clone, Debug)]
pub struct Target {
    /// The write key.
    pub write_key: String,
    /// The Tracking API base.
    pub endpoint: String,
    /// The connection's name, if one was used.
    pub name: Option<String>,
}

/// Picks the write key and endpoint: the connection, then the environment's overrides.
pub fn resolve(flag: &ConnectionFlag) -> anyhow::Result<Target> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let env_key = env("SPOOR_WRITE_KEY");
    let env_endpoint = env("SPOOR_ENDPOINT");
    let connection = match (&flag.connection, &env_key) {
        (Some(name), _) => {
            let file = ConnectionsFile::load(&config_path()?)?;
            Some((name.clone(), file.get(name)?.clone()))
        }
        (None, Some(_)) => None,
        (None, None) => {
            let file = ConnectionsFile::load(&config_path()?)?;
            match &file.default {
                Some(name) => Some((name.clone(), file.get(name)?.clone())),
                None => None,
            }
        }
    };
    let write_key = env_key
        .or_else(|| connection.as_ref().map(|(_, c)| c.write_key.clone()))
        .ok_or_else(|| {
            Exit::bad_input(
                "no write key: create a connection with `spoor connect NAME --token TOKEN --write-key KEY`, \
                 pick one with --connection NAME, or set SPOOR_WRITE_KEY",
            )
        })?;
    let endpoint = env_endpoint
        .or_else(|| connection.as_ref().map(|(_, c)| c.endpoint.clone()))
        .unwrap_or_else(|| spoor_client::US_ENDPOINT.to_owned());
    Ok(Target {
        write_key,
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        name: connection.map(|(name, _)| name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_a_short_head() {
        assert_eq!(mask("abcdefghijklmnop"), "abcd********");
        assert_eq!(mask("short"), "*****");
        assert!(!mask("wk_0123456789abcdef").contains("0123"));
    }

    #[test]
    fn file_round_trips() {
        let mut file = ConnectionsFile {
            default: Some("prod".to_owned()),
            ..ConnectionsFile::default()
        };
        file.connections.insert(
            "prod".to_owned(),
            Connection {
                write_key: "k".to_owned(),
                token: None,
                endpoint: "https://api.segment.io".to_owned(),
                api_base: US_API_BASE.to_owned(),
                workspace: Some("W".to_owned()),
                source: None,
            },
        );
        let text = toml::to_string_pretty(&file).expect("encode");
        let back: ConnectionsFile = toml::from_str(&text).expect("decode");
        assert_eq!(back, file);
    }
}
