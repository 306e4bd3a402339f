//! `guichet-bench validate`: `guichet validate` on a folder of
//! bed-availability files, as a regional agency runs it on a day's
//! files. CPU per file first (the process's own user + system time, the
//! steady figure on a shared machine), then files per second (wall, page
//! cache warm); the median of several rounds; the section "Bed
//! availability" of docs/BENCHMARKS.md.
//!
//! The same documents are what the validating HTTP rule's rounds post
//! ([`posted_document`]), dated from the round's clock.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use guichet_ror::model::Document;
use guichet_ror::{sample, xml};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The section's heading in docs/BENCHMARKS.md.
pub const HEADING: &str = "## Bed availability\n";

/// Units per document, by default.
pub const UNITS: usize = 10;

/// What a run measures.
pub struct Plan {
    pub files: usize,
    pub units: usize,
    pub rounds: usize,
}

/// When a document was written and its capacities last updated.
struct Dates {
    written: String,
    updated: String,
}

use crate::timed::Round;

/// Writes the files, runs the rounds, returns the report section.
pub fn run(guichet: &Path, plan: &Plan, date: &str) -> anyhow::Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-beds-")
        .tempdir()?;
    let files = dir.path().join("files");
    std::fs::create_dir(&files)?;
    let bytes = write_files(&files, plan)?;
    let referential = dir.path().join("referential.csv");
    std::fs::write(&referential, referential_csv(plan.units))?;
    // One unmeasured round fills the page cache.
    validate(guichet, &files, &referential)?;
    let mut rounds: Vec<Round> = (0..plan.rounds)
        .map(|_| validate(guichet, &files, &referential))
        .collect::<anyhow::Result<_>>()?;
    rounds.sort_by_key(|r| r.wall);
    let median = &rounds[rounds.len() / 2];
    Ok(section(plan, bytes, median, date))
}

/// `guichet validate --format json` on `files`, which must all be valid.
fn validate(guichet: &Path, files: &Path, referential: &Path) -> anyhow::Result<Round> {
    let mut cmd = Command::new(guichet);
    cmd.args([
        "validate",
        "--format",
        "json",
        "--now",
        NOW,
        "--referential",
    ])
    .arg(referential)
    .arg(files);
    let (_, round) = crate::timed::run(cmd, "guichet validate")?;
    Ok(round)
}

/// The time the files' dates are checked as of.
const NOW: &str = "2026-12-05T10:00:00+01:00";

impl Dates {
    /// The files' dates, checked as of [`NOW`].
    fn fixed() -> Dates {
        Dates {
            written: NOW.to_owned(),
            updated: "2026-12-05T09:58:00+01:00".to_owned(),
        }
    }

    /// Written now, updated two minutes ago: valid for a gateway that
    /// checks dates against its own clock.
    fn current() -> Dates {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let text = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        Dates {
            written: text(now),
            updated: text(now - Duration::from_secs(120)),
        }
    }
}

/// One document of `units` units, as the files are, dated now, in
/// guichet's XML: what a validating rule's rounds post.
pub fn posted_document(units: usize) -> String {
    xml::write(&document(0, 0..units, &Dates::current()))
}

/// Document `i`, of the one unit `U{i}`, dated now, in guichet's XML: a
/// test book's case for a gateway that checks dates against its own
/// clock; with its number of capacity records.
pub fn unit_document(i: usize) -> (String, usize) {
    let document = document(i, i..i + 1, &Dates::current());
    let records = document.units.iter().map(|u| u.capacities.len()).sum();
    (xml::write(&document), records)
}

/// `plan.files` documents of `plan.units` units, one capacity record each
/// (available beds), in guichet's XML; their total size.
fn write_files(dir: &Path, plan: &Plan) -> anyhow::Result<u64> {
    let mut bytes = 0;
    let dates = Dates::fixed();
    for i in 0..plan.files {
        let text = xml::write(&document(i, 0..plan.units, &dates));
        bytes += text.len() as u64;
        let path: PathBuf = dir.join(format!("beds-{i:06}.xml"));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(bytes)
}

fn document(i: usize, units: Range<usize>, dates: &Dates) -> Document {
    let count = (i % 9) as i64;
    sample::document(
        &format!("D-{i}"),
        units,
        count,
        &dates.written,
        &dates.updated,
    )
}

/// The referential that knows every unit of the documents.
pub fn referential_csv(units: usize) -> String {
    sample::referential_csv(units)
}

fn section(plan: &Plan, bytes: u64, median: &Round, date: &str) -> String {
    let files = plan.files as f64;
    let per_second = files / median.wall.as_secs_f64();
    let cpu_per_file = median.cpu.as_secs_f64() * 1e6 / files;
    let target = if per_second >= 20_000.0 {
        "met"
    } else {
        "not met"
    };
    format!(
        "{HEADING}\n\
         `guichet validate --referential ... FOLDER` on {} files of {} units\n\
         (one capacity record each, {:.1} MB in all), read in parallel on every\n\
         core, page cache warm; the median of {} rounds after one unmeasured\n\
         round. Measured {date}.\n\n\
         | CPU per file (user + system) | files/s | wall | target: 20,000 files/s |\n\
         |---|---|---|---|\n\
         | {cpu_per_file:.1} µs | {per_second:.0} | {:.2} s | {target} |\n\n\
         Reproduce: `cargo run --release -p guichet-bench -- validate`.\n\n",
        plan.files,
        plan.units,
        bytes as f64 / 1e6,
        plan.rounds,
        median.wall.as_secs_f64(),
    )
}
