//! `spoor query`: read-only SQL against the store. (Owned by the collector work; skeleton.)

use std::process::ExitCode;

use crate::Global;

/// Arguments of `spoor query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {}

/// Runs `spoor query`.
pub async fn run(_args: QueryArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}
