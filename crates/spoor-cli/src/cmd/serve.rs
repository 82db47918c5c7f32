//! `spoor serve`: the collector. (Owned by the collector work; skeleton.)

use std::process::ExitCode;

use crate::Global;

/// Arguments of `spoor serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs `spoor serve`.
pub async fn run(_args: ServeArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("spoor serve is being built")
}
