//! Reload when a referenced file changes.
//!
//! Polling the metadata of a handful of files every few seconds is cheaper
//! and more robust than inotify here: it sees atomic renames, symlink swaps
//! (Kubernetes secrets, certbot's `live/`) and network file systems alike,
//! and needs no extra dependency.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::reload::Reloader;

/// What identifies one version of a file; `None` when it cannot be read.
type Stamp = Option<(i64, i64, u64, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

fn snapshot(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    files.iter().map(|f| (f.clone(), stamp(f))).collect()
}

pub(crate) async fn watch_files(reloader: Reloader, every: Duration, shutdown: CancellationToken) {
    let mut seen = snapshot(&reloader.files());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now = snapshot(&reloader.files());
        if now == seen {
            continue;
        }
        let changed: Vec<String> = now
            .iter()
            .filter(|entry| !seen.contains(entry))
            .map(|(path, _)| path.display().to_string())
            .collect();
        info!(files = ?changed, "referenced files changed");
        // A failed reload is logged by the reloader; the broken file is not
        // retried until it changes again.
        let _ = reloader.reload("file change").await;
        seen = snapshot(&reloader.files());
    }
}
