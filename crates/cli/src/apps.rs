//! `guichet apps ...` (being written).

use std::process::ExitCode;

use crate::cli::AppsCommand;

pub fn apps(_command: AppsCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet available")
}
