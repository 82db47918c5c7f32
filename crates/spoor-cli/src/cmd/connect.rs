//! `spoor connect` and `spoor connections ...`. (Owned by the connector work; skeleton.)

use std::process::ExitCode;

use crate::Global;

/// Arguments of `spoor connect`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {}

/// `spoor connections` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConnectionsCommand {
    /// List connections.
    List,
}

/// Runs `spoor connect`.
pub async fn run_connect(_args: ConnectArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Runs `spoor connections ...`.
pub async fn run_connections(
    _command: ConnectionsCommand,
    _global: &Global,
) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}
