//! A recording sink: the JSON-lines file that `guichet sim ror --record`
//! or `guichet listen --record` appends to, standing downstream of the
//! engine under test. The file is read as it grows; a case's emissions
//! are the lines written after it was sent that belong to it: messages
//! with its MSH-10, ROR operations on its units. A case whose emissions
//! cannot be told apart takes the sink for itself while it runs.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;

/// How often a sink is read while a case waits for its emissions.
const POLL: Duration = Duration::from_millis(20);

pub struct Sink {
    path: PathBuf,
    /// Written by a case whose emissions are told apart by time only, read
    /// by every other case on the target: the first runs alone.
    window: RwLock<()>,
    read: std::sync::Mutex<Progress>,
}

/// What was read of the file so far.
#[derive(Default)]
struct Progress {
    offset: u64,
    /// A line not yet ended.
    partial: Vec<u8>,
    lines: Vec<Json>,
}

/// Which of a sink's lines are a case's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Belongs {
    /// Messages whose MSH-10 is this.
    ControlId(String),
    /// ROR operations on these units (`1<FINESS>/<unit>`).
    Units(Vec<String>),
    /// Every line written while the case held the sink.
    Window,
}

impl Belongs {
    fn takes(&self, line: &Json) -> bool {
        match self {
            Belongs::ControlId(id) => line["control_id"].as_str() == Some(id.as_str()),
            Belongs::Units(units) => line["unit"]
                .as_str()
                .is_some_and(|u| units.iter().any(|w| w == u)),
            Belongs::Window => true,
        }
    }
}

impl Sink {
    pub fn new(path: &Path) -> Sink {
        Sink {
            path: path.to_path_buf(),
            window: RwLock::new(()),
            read: std::sync::Mutex::new(Progress::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the sink for one case whose lines are told apart by time.
    pub async fn alone(&self) -> RwLockWriteGuard<'_, ()> {
        self.window.write().await
    }

    /// Shares the sink with the other cases whose lines are told apart.
    pub async fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.window.read().await
    }

    /// How many lines the file holds now; an error when it is not there
    /// (the sink is down, or was never started).
    pub fn written(&self) -> Result<usize, String> {
        let mut read = self.read.lock().map_err(|_| "sink poisoned".to_string())?;
        self.refresh(&mut read)?;
        Ok(read.lines.len())
    }

    /// Reads what was appended since the last read.
    fn refresh(&self, read: &mut Progress) -> Result<(), String> {
        let why = |e: std::io::Error| {
            format!(
                "sink {}: {e} (is the recording sink running?)",
                self.path.display()
            )
        };
        let mut file = std::fs::File::open(&self.path).map_err(why)?;
        file.seek(SeekFrom::Start(read.offset)).map_err(why)?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).map_err(why)?;
        read.offset += fresh.len() as u64;
        read.partial.extend_from_slice(&fresh);
        let Some(end) = read.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = read.partial.drain(..=end).collect();
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            read.lines
                .push(serde_json::from_slice(line).unwrap_or(Json::Null));
        }
        Ok(())
    }

    /// The lines after the first `from` that belong to the case.
    fn taken(&self, from: usize, belongs: &Belongs) -> Result<Vec<Json>, String> {
        let mut read = self.read.lock().map_err(|_| "sink poisoned".to_string())?;
        self.refresh(&mut read)?;
        let fresh = read.lines.get(from..).unwrap_or_default();
        Ok(fresh.iter().filter(|l| belongs.takes(l)).cloned().collect())
    }

    /// The case's lines after the first `from`: once `count` have come,
    /// or once none came for `settle`; at `deadline`, what came.
    pub async fn emissions(
        &self,
        from: usize,
        belongs: &Belongs,
        count: Option<usize>,
        settle: Duration,
        deadline: Instant,
    ) -> Result<Vec<Json>, String> {
        let mut seen = 0;
        let mut quiet_since = Instant::now();
        loop {
            let taken = self.taken(from, belongs)?;
            if taken.len() != seen {
                seen = taken.len();
                quiet_since = Instant::now();
            }
            let done = match count {
                Some(count) => seen >= count && (seen > count || quiet_since.elapsed() >= POLL * 2),
                None => quiet_since.elapsed() >= settle,
            };
            if done || Instant::now() >= deadline {
                return Ok(taken);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
