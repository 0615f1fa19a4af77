//! `fcgi exporter`: placeholder while the server is built.

use crate::cli_monitor::ExporterCmd;
use crate::exit::Exit;

/// Runs `exporter`.
pub async fn run(_cmd: &ExporterCmd) -> anyhow::Result<Exit> {
    anyhow::bail!("not yet")
}
