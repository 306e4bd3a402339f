//! The async runtime each long-running command starts.

use anyhow::Context;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub fn runtime() -> anyhow::Result<Runtime> {
    runtime_with(None)
}

/// `workers` threads serving connections (`None`: one per CPU). One worker
/// is a single-threaded runtime: no work stealing, no wake-ups across
/// threads, the lowest latency per message.
pub fn runtime_with(workers: Option<usize>) -> anyhow::Result<Runtime> {
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .thread_name("guichet")
        .build()
        .context("cannot start the runtime")
}

/// Cancels `token` on Ctrl-C (SIGINT) or SIGTERM.
pub fn cancel_on_ctrl_c(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(term) => term.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        token.cancel();
    });
}
