//! The connector modules: identify, track, page, screen, group, alias, api, batch. (Owned by the connector work; skeleton.)

use std::process::ExitCode;

use crate::Global;

/// Arguments of `spoor identify`.
#[derive(Debug, clap::Args)]
pub struct IdentifyArgs {}

/// Runs `spoor identify`.
pub async fn run_identify(_args: IdentifyArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor track`.
#[derive(Debug, clap::Args)]
pub struct TrackArgs {}

/// Runs `spoor track`.
pub async fn run_track(_args: TrackArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor page`.
#[derive(Debug, clap::Args)]
pub struct PageArgs {}

/// Runs `spoor page`.
pub async fn run_page(_args: PageArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor screen`.
#[derive(Debug, clap::Args)]
pub struct ScreenArgs {}

/// Runs `spoor screen`.
pub async fn run_screen(_args: ScreenArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor group`.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {}

/// Runs `spoor group`.
pub async fn run_group(_args: GroupArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor alias`.
#[derive(Debug, clap::Args)]
pub struct AliasArgs {}

/// Runs `spoor alias`.
pub async fn run_alias(_args: AliasArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor api`.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {}

/// Runs `spoor api`.
pub async fn run_api(_args: ApiArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}

/// Arguments of `spoor batch`.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {}

/// Runs `spoor batch`.
pub async fn run_batch(_args: BatchArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("being built")
}
