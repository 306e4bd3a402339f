//! The outside data in `../shared/fixtures` beside the checkout (real HL7
//! v2 samples, it-lanscape's demo cartography, the stunnel project
//! guichet replaces). It is never copied into the project; CI has it.
//!
//! A developer without the folder sees `SKIPPED: ...`; under `CI=true` its
//! absence fails the test.

use std::path::{Path, PathBuf};

use crate::peers::skip;

/// The shared fixtures folder.
pub fn shared() -> PathBuf {
    // The run's own CARGO_MANIFEST_DIR is some crate of this workspace, as
    // deep as this one; the build's is a fallback for a binary run by hand.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("../../../shared/fixtures")
}

/// The folder of real HL7 v2 samples.
pub fn hl7_dir() -> PathBuf {
    shared().join("hl7/fhir-converter")
}

/// Every `.hl7` sample, sorted by path, with its bytes; `None` after a
/// SKIPPED line when the folder is absent (a failure under CI).
///
/// # Panics
/// Under CI when the folder is absent; when a sample cannot be read.
pub fn hl7_samples() -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let dir = hl7_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        skip(&format!("fixtures not found at {}", dir.display()));
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "hl7"))
        .collect();
    files.sort();
    let read = |path: PathBuf| {
        let bytes = std::fs::read(&path).expect("a readable sample");
        (path, bytes)
    };
    Some(files.into_iter().map(read).collect())
}

/// One HL7 v2 sample by file name (`ADT-A01-01.hl7`), as
/// [`hl7_samples`] reads it.
///
/// # Panics
/// When the folder is there but the sample is not.
pub fn hl7_sample(name: &str) -> Option<Vec<u8>> {
    let samples = hl7_samples()?;
    let found = samples
        .into_iter()
        .find(|(path, _)| path.file_name() == Some(name.as_ref()));
    Some(found.expect("the sample is in the corpus").1)
}

/// A file's name, for messages.
pub fn name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// it-lanscape's demo data folder (three establishments); `None` after a
/// SKIPPED line when it is absent (a failure under CI).
pub fn lanscape_dir() -> Option<PathBuf> {
    let dir = shared().join("it-lanscape");
    if dir.join("trigrammes.json").is_file() {
        Some(dir)
    } else {
        skip(&format!("fixtures not found at {}", dir.display()));
        None
    }
}

/// The stunnel project guichet replaces (mllp-safetunnel: its stunnel
/// configs, test PKI script, simulators and messages); `None` after a
/// SKIPPED line when it is absent (a failure under CI).
pub fn safetunnel_dir() -> Option<PathBuf> {
    let dir = shared().join("mllp-safetunnel");
    if dir.join("eai/stunnel.conf").is_file() {
        Some(dir)
    } else {
        skip(&format!("fixtures not found at {}", dir.display()));
        None
    }
}
