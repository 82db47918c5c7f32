//! `spoor sources ...` and `spoor tokens ...`. (Owned by the collector work; skeleton.)

use std::process::ExitCode;

use crate::Global;

/// `spoor sources` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SourcesCommand {
    /// List sources.
    List,
}

/// `spoor tokens` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// List tokens.
    List,
}

/// Runs `spoor sources ...`.
pub async fn run_sources(_command: SourcesCommand, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Runs `spoor tokens ...`.
pub async fn run_tokens(_command: TokensCommand, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}
