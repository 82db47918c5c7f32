//! `spoor profile`, `spoor report` and `spoor warehouse ...`. (Owned by the warehouse work; skeleton.)

use std::process::ExitCode;

use crate::Global;

/// Arguments of `spoor profile`.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {}

/// Arguments of `spoor report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

/// `spoor warehouse` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WarehouseCommand {
    /// Rebuild the warehouse tables from the message log.
    Rebuild,
}

/// Runs `spoor profile`.
pub async fn run_profile(_args: ProfileArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Runs `spoor report`.
pub async fn run_report(_args: ReportArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Runs `spoor warehouse ...`.
pub async fn run_warehouse(
    _command: WarehouseCommand,
    _global: &Global,
) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}
