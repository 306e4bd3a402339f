//! The async runtime each long-running command starts.

use anyhow::Context;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub fn runtime() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
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
