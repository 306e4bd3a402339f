//! The folders of a folder route: which inbox files are ready, taking one
//! (a rename into the work folder, so it is ours and never read twice),
//! and moving it out with its report.
//!
//! Every move is a rename within one file system, so a crash leaves each
//! file whole in exactly one place: the inbox, the work folder, `done/`
//! or `rejected/`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::time::Instant;

use crate::config::FolderSpec;

/// What the inbox holds that is not for guichet to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Odd {
    /// A symbolic link: never followed (it could point anywhere).
    Link,
    /// Larger than `max_file_bytes`: rejected unread.
    TooLarge(u64),
}

/// An inbox entry ready to be taken.
#[derive(Debug)]
pub(super) struct Ready {
    pub name: OsString,
    pub odd: Option<Odd>,
}

/// How each inbox file looked at the last scan, to tell a file still
/// being written from one at rest.
#[derive(Default)]
pub(super) struct Watch {
    /// Each file not yet at rest: its look, and since when it has had it.
    seen: HashMap<OsString, (Look, Instant)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Look {
    len: u64,
    modified: Option<SystemTime>,
}

/// Whether guichet leaves this name alone: a writer's file before its
/// rename (`.` prefix, `.tmp` suffix), and guichet's own work folder.
pub(super) fn hidden(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.first() == Some(&b'.') || bytes.ends_with(b".tmp")
}

impl Watch {
    /// The inbox files ready now: at rest for `settle_time` (same size and
    /// time as when first seen so), or odd (a link, too large), which are
    /// refused at once.
    pub fn scan(&mut self, spec: &FolderSpec, now: Instant) -> io::Result<Vec<Ready>> {
        let mut ready = Vec::new();
        let mut seen = HashMap::with_capacity(self.seen.len());
        for entry in std::fs::read_dir(&spec.inbox)? {
            let entry = entry?;
            let name = entry.file_name();
            if hidden(&name) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue; // gone meanwhile
            };
            if meta.file_type().is_symlink() {
                ready.push(Ready {
                    name,
                    odd: Some(Odd::Link),
                });
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            if meta.len() > spec.max_file_bytes {
                ready.push(Ready {
                    name,
                    odd: Some(Odd::TooLarge(meta.len())),
                });
                continue;
            }
            let look = Look {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            let since = match self.seen.get(&name) {
                Some((before, since)) if *before == look => *since,
                _ => now,
            };
            if now.duration_since(since) >= spec.settle_time {
                ready.push(Ready { name, odd: None });
            } else {
                seen.insert(name, (look, since));
            }
        }
        self.seen = seen;
        ready.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ready)
    }
}

/// The name a taken file keeps from the work folder on: the time it was
/// taken, a sequence number, then its own name, so files of the same name
/// sent on different days stay apart in `done/` and `rejected/`.
pub(super) fn work_name(name: &OsStr, taken: SystemTime, seq: u64) -> OsString {
    let stamp = time::OffsetDateTime::from(taken);
    let mut work = OsString::from(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{seq}-",
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second(),
        stamp.millisecond(),
    ));
    work.push(name);
    work
}

/// Renames `from` to `to` unless `to` exists (never overwriting a file);
/// `Ok(false)` when it does.
pub(super) fn rename_new(from: &Path, to: &Path) -> io::Result<bool> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Ok(false);
    }
    std::fs::rename(from, to)?;
    Ok(true)
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside
/// it, flushed, then renamed.
pub(super) fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Reads at most `max` bytes of `path`, refusing a file that is larger
/// (it may have grown since it was measured). Never follows a link.
pub(super) fn read_at_most(path: &Path, max: u64) -> io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(max) as usize);
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(meta.len().max(bytes.len() as u64)));
    }
    Ok(Ok(bytes))
}

/// Makes the route's folders; a route whose folders cannot be made, or
/// are on several file systems (files move by rename), does not start.
pub(crate) fn make_folders(spec: &FolderSpec) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut device = None;
    for folder in [&spec.inbox, &spec.work(), &spec.done, &spec.rejected] {
        let made = std::fs::create_dir_all(folder).and_then(|()| std::fs::metadata(folder));
        let meta = made.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot make {}: {e}", folder.display()))
        })?;
        if *device.get_or_insert(meta.dev()) != meta.dev() {
            return Err(io::Error::other(format!(
                "{} is on another file system than the inbox: files move by rename",
                folder.display()
            )));
        }
    }
    Ok(())
}
