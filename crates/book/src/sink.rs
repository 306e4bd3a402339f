//! A recording sink: the JSON-lines file that `guichet sim ror --record`
//! or `guichet listen --record` appends to, standing downstream of the
//! engine under test. The file is read as it grows; a case's emissions
//! are the lines written after it was sent that belong to it: messages
//! with its MSH-10, ROR operations on its units. A case whose emissions
//! cannot be told apart takes the sink for itself while it runs.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value as Json;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;

/// How often a sink is read while a case waits for its emissions.
const POLL: Duration = Duration::from_millis(20);

/// Once a case's expected count has come, how long the sink must stay
/// quiet before no more of its lines are looked for.
pub const GRACE: Duration = Duration::from_millis(40);

/// A sink's line as it was written (`null` when it is not JSON): kept as
/// text, a few times smaller than parsed, parsed when read ([`parse`]),
/// and shared between the sink and the case that took it.
pub type Emission = Arc<RawValue>;

/// Lines of a sink, each with its place in the file (0 the first).
pub type Lines = Vec<(usize, Emission)>;

/// When the wait for a case's lines ends: whichever comes first.
#[derive(Debug, Clone)]
pub struct Until {
    /// Once this many have come.
    pub count: Option<usize>,
    /// Once none came for this long.
    pub quiet: Option<Duration>,
    pub deadline: Instant,
}

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
    lines: Vec<Line>,
}

/// A line of the file, and what tells whose it is.
struct Line {
    text: Emission,
    control_id: Option<Box<str>>,
    unit: Option<Box<str>>,
}

impl Line {
    fn read(bytes: &[u8]) -> Line {
        let json: Json = serde_json::from_slice(bytes).unwrap_or(Json::Null);
        let key = |name: &str| json[name].as_str().map(Box::from);
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|_| !json.is_null())
            .and_then(|text| RawValue::from_string(text.to_owned()).ok());
        Line {
            control_id: key("control_id"),
            unit: key("unit"),
            text: Arc::from(text.unwrap_or_default()),
        }
    }
}

/// The emissions as JSON values.
pub fn parse(emissions: &[Emission]) -> Vec<Json> {
    emissions
        .iter()
        .map(|e| serde_json::from_str(e.get()).unwrap_or(Json::Null))
        .collect()
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
    fn takes(&self, line: &Line) -> bool {
        match self {
            Belongs::ControlId(id) => line.control_id.as_deref() == Some(id.as_str()),
            Belongs::Units(units) => line
                .unit
                .as_deref()
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
            read.lines.push(Line::read(line));
        }
        Ok(())
    }

    /// The case's lines after the first `from`, as they are now.
    pub fn belonging(&self, from: usize, belongs: &Belongs) -> Result<Lines, String> {
        self.taken(from, &|line| belongs.takes(line))
    }

    /// The lines after the first `from` that `takes` keeps, with their
    /// place in the file.
    fn taken(&self, from: usize, takes: &dyn Fn(&Line) -> bool) -> Result<Lines, String> {
        let mut read = self.read.lock().map_err(|_| "sink poisoned".to_string())?;
        self.refresh(&mut read)?;
        let fresh = read.lines.get(from..).unwrap_or_default();
        Ok((from..)
            .zip(fresh)
            .filter(|(_, line)| takes(line))
            .map(|(at, line)| (at, line.text.clone()))
            .collect())
    }

    /// How many lines after the first `from` `takes` keeps.
    fn count(&self, from: usize, takes: &dyn Fn(&Line) -> bool) -> Result<usize, String> {
        let mut read = self.read.lock().map_err(|_| "sink poisoned".to_string())?;
        self.refresh(&mut read)?;
        let fresh = read.lines.get(from..).unwrap_or_default();
        Ok(fresh.iter().filter(|line| takes(line)).count())
    }

    /// The case's lines after the first `from`, with their place in the
    /// file: once `until` says so; at its deadline, what came.
    pub async fn emissions(
        &self,
        from: usize,
        belongs: &Belongs,
        until: &Until,
    ) -> Result<Lines, String> {
        self.wait(from, &|line| belongs.takes(line), until).await
    }

    /// Waits until no line after the first `from` that belongs to one of
    /// `cases` has come for `quiet` (or until `deadline`).
    pub async fn quiet(
        &self,
        from: usize,
        cases: &[&Belongs],
        quiet: Duration,
        deadline: Instant,
    ) -> Result<(), String> {
        let until = Until {
            count: None,
            quiet: Some(quiet),
            deadline,
        };
        let takes = |line: &Line| cases.iter().any(|b| b.takes(line));
        self.wait(from, &takes, &until).await.map(|_| ())
    }

    async fn wait(
        &self,
        from: usize,
        takes: &dyn Fn(&Line) -> bool,
        until: &Until,
    ) -> Result<Lines, String> {
        let mut seen = 0;
        let mut quiet_since = Instant::now();
        loop {
            let count = self.count(from, takes)?;
            if count != seen {
                seen = count;
                quiet_since = Instant::now();
            }
            let counted = until.count.is_some_and(|count| seen >= count);
            let quiet = until.quiet.is_some_and(|q| quiet_since.elapsed() >= q);
            if counted || quiet || Instant::now() >= until.deadline {
                return self.taken(from, takes);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
