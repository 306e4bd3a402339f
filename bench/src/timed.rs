//! A command run to its end with its wall time and its own CPU time
//! (user and system, read from /proc just before it is reaped: the steady
//! figure on a shared machine).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What one run took.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Runs `cmd` (its output captured) and fails unless it succeeds.
pub fn run(mut cmd: Command, what: &str) -> anyhow::Result<(Output, Round)> {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let pid = child.id();
    let mut cpu = Duration::ZERO;
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if let Some(now) = crate::procfs::cpu_time(pid) {
            cpu = now;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let output = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the waiting thread failed"))??;
    let wall = started.elapsed();
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((output, Round { wall, cpu }))
}
