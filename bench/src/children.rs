//! The processes a measurement starts: gateways and the sink.
//!
//! Each is held by a [`Child`] that kills and reaps it when dropped, so an
//! error or Ctrl-C anywhere in a run leaves no gateway behind. Children
//! get the highest descriptor limit allowed (a gateway holds two per
//! proxied connection) and write their stderr to a log file shown when
//! they fail to start.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procfs;

/// Raises the soft descriptor limit as far as allowed, then runs the
/// program with its arguments (`$0 "$@"`).
const RAISE_NOFILE: &str =
    "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\" \"$@\"";

/// How long a child stopped with SIGTERM may take before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running child process, killed and reaped on drop.
pub struct Child {
    name: String,
    inner: std::process::Child,
    log: PathBuf,
    /// Stop with SIGTERM first (a master process that must stop its
    /// workers), then SIGKILL after [`TERM_GRACE`].
    sigterm: bool,
}

impl Child {
    /// Starts `program args` with `env` added, stderr to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Child> {
        let stderr =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let inner = Command::new("sh")
            .arg("-c")
            .arg(RAISE_NOFILE)
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        Ok(Child {
            name: name.to_owned(),
            inner,
            log: log.to_path_buf(),
            sigterm: false,
        })
    }

    /// Stops the child with SIGTERM on drop, and waits for it (up to
    /// [`TERM_GRACE`]) before killing it: nginx's master stops its workers
    /// on SIGTERM, while SIGKILL would leave them running.
    pub fn stop_with_sigterm(mut self) -> Child {
        self.sigterm = true;
        self
    }

    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until `addr` is listening (read from /proc/net/tcp, so no
    /// test connection goes through the gateway), or the child dies.
    pub async fn wait_listening(
        &mut self,
        addr: SocketAddr,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.inner.try_wait()? {
                bail!("{} exited ({status}){}", self.name, self.log_tail());
            }
            if procfs::is_listening(addr)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} is not listening on {addr} after {within:?}{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails with the log's end if the child has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.inner.try_wait()? {
            Some(status) => bail!("{} exited ({status}){}", self.name, self.log_tail()),
            None => Ok(()),
        }
    }

    /// Waits until the child exits by itself; fails with the log's end if
    /// it does not within `within`, or exits with a failure.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            match self.inner.try_wait()? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => bail!("{} exited ({status}){}", self.name, self.log_tail()),
                None if Instant::now() > deadline => {
                    bail!(
                        "{} still running after {within:?}{}",
                        self.name,
                        self.log_tail()
                    )
                }
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.pid())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its log ({}) ends with:\n{tail}", self.log.display())
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.sigterm && self.terminate() {
            return;
        }
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

impl Child {
    /// SIGTERM (with kill(1): this crate has no unsafe code for libc),
    /// then waits; whether the child has exited.
    fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + TERM_GRACE;
        while sent && Instant::now() < deadline {
            match self.inner.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => return false,
            }
        }
        false
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}
