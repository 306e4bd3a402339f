//! `guichet validate` and `guichet convert`: bed-availability files for
//! the ROR, checked offline or printed in another form.
//!
//! Files are read in parallel, one worker per core, in the order given
//! (folders sorted); a progress bar shows on a terminal for long runs.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context as _};
use guichet_ror::fhir::{self, Coding};
use guichet_ror::referential::{Indicators, Referential};
use guichet_ror::rules::{Context, Lang, Settings, Severity, Violation};
use guichet_ror::{patch, validate_keeping, xml, Keep};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{CodingArg, ConvertArgs, FormArg, ReportFormat, ValidateArgs};

/// Exit status of a usage error (a missing path, an unreadable
/// referential), as clap uses for bad arguments.
const USAGE: u8 = 2;

/// Runs with a progress bar past this many files.
const PROGRESS_FROM: usize = 200;

/// One file's verdict, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    violations: Vec<Violation>,
}

pub fn validate_command(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let setup = match Setup::load(args) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let files = match collect(&args.paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let context = Context {
        referential: setup.referential.as_ref(),
        indicators: setup.indicators.as_ref(),
        settings: &setup.settings,
        now: args.now.unwrap_or_else(OffsetDateTime::now_utc),
        lang: match args.lang {
            crate::cli::Lang::Fr => Lang::Fr,
            crate::cli::Lang::En => Lang::En,
        },
    };
    let reports = check_all(&files, &context, args.max_bytes);
    let mut out = std::io::stdout().lock();
    match args.format {
        ReportFormat::Human => human(&mut out, &reports, context.lang)?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &reports)?;
            writeln!(out)?;
        }
        ReportFormat::Junit => junit(&mut out, &reports)?,
    }
    let failed = reports.iter().any(|r| !r.valid);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The referential, indicators and rules, read once.
struct Setup {
    referential: Option<Referential>,
    indicators: Option<Indicators>,
    settings: Settings,
}

impl Setup {
    fn load(args: &ValidateArgs) -> anyhow::Result<Setup> {
        let referential = match &args.referential {
            None => None,
            Some(path) => {
                let text = read_small(path)?;
                let referential = Referential::read(&text)
                    .with_context(|| format!("referential {}", path.display()))?;
                for rows in referential.duplicates() {
                    let lines: Vec<String> = rows
                        .iter()
                        .filter_map(|r| r.line)
                        .map(|l| l.to_string())
                        .collect();
                    eprintln!(
                        "warning: referential {}: unit {} of {} is named {} times (lines {}); \
                         documents naming it break unit.ambiguous",
                        path.display(),
                        rows[0].unit_id,
                        rows[0].finess_eg,
                        rows.len(),
                        lines.join(", ")
                    );
                }
                Some(referential)
            }
        };
        let indicators = match &args.indicators {
            None => None,
            Some(path) => Some(
                Indicators::from_csv(&read_small(path)?)
                    .with_context(|| format!("indicators {}", path.display()))?,
            ),
        };
        let settings = match &args.rules {
            None => Settings::default(),
            Some(path) => {
                let text = String::from_utf8(read_small(path)?)
                    .with_context(|| format!("rules {}: not UTF-8", path.display()))?;
                Settings::from_toml(&text).with_context(|| format!("rules {}", path.display()))?
            }
        };
        Ok(Setup {
            referential,
            indicators,
            settings,
        })
    }
}

/// A settings file, read whole (at most 64 MiB).
fn read_small(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(64 * 1024 * 1024 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > 64 * 1024 * 1024 {
        bail!("{} is over 64 MiB", path.display());
    }
    Ok(bytes)
}

/// The files named, and the .xml and .json files under the folders
/// named (links to folders not followed), sorted within each folder.
fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        // A link to a folder is not followed: a link back up the tree
        // would have the walk go round for ever. Links to files are read.
        let linked_folder = path.is_symlink() && path.is_dir();
        if linked_folder {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if is_document(&path) {
            files.push(path);
        }
    }
    Ok(())
}

fn is_document(path: &Path) -> bool {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    matches!(extension.as_deref(), Some("xml" | "json"))
}

/// Every file checked, in order, on every core.
fn check_all(files: &[PathBuf], context: &Context<'_>, max_bytes: u64) -> Vec<FileReport> {
    let progress = (files.len() >= PROGRESS_FROM && std::io::stderr().is_terminal())
        .then(|| indicatif::ProgressBar::new(files.len() as u64));
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<FileReport>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(files.len()).collect());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(files.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let report = check_file(path, context, max_bytes);
                if let Ok(mut reports) = reports.lock() {
                    reports[i] = Some(report);
                }
                if let Some(bar) = &progress {
                    bar.inc(1);
                }
            });
        }
    });
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let reports = reports
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reports.into_iter().flatten().collect()
}

fn check_file(path: &Path, context: &Context<'_>, max_bytes: u64) -> FileReport {
    let file = path.display().to_string();
    let refused = |code: &'static str, message: String| FileReport {
        file: file.clone(),
        valid: false,
        violations: vec![Violation {
            code,
            severity: Severity::Error,
            path: String::new(),
            message,
        }],
    };
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return refused("file.unreadable", format!("cannot read {file}: {e}"));
    }
    if bytes.len() as u64 > max_bytes {
        return refused(
            "file.too_large",
            format!("{file} is over {max_bytes} bytes"),
        );
    }
    // Only the violations are reported: the document is not kept.
    let verdict = validate_keeping(&bytes, context, Keep::Violations);
    FileReport {
        valid: verdict.valid(),
        file,
        violations: verdict.violations,
    }
}

fn human(out: &mut impl Write, reports: &[FileReport], lang: Lang) -> std::io::Result<()> {
    let fr = lang == Lang::Fr;
    for report in reports {
        let verdict = match (report.valid, fr) {
            (true, true) => "valide",
            (true, false) => "valid",
            (false, true) => "invalide",
            (false, false) => "invalid",
        };
        writeln!(out, "{}: {verdict}", report.file)?;
        for v in &report.violations {
            let severity = match (v.severity, fr) {
                (Severity::Error, true) => "erreur",
                (Severity::Warning, true) => "avertissement",
                (Severity::Error, false) => "error",
                (Severity::Warning, false) => "warning",
                (Severity::Off, _) => continue,
            };
            writeln!(out, "  {severity} {} {}: {}", v.code, v.path, v.message)?;
        }
    }
    let invalid = reports.iter().filter(|r| !r.valid).count();
    let total = reports.len();
    match fr {
        true => writeln!(
            out,
            "{total} fichier(s), {} valide(s), {invalid} invalide(s)",
            total - invalid
        ),
        false => writeln!(
            out,
            "{total} file(s), {} valid, {invalid} invalid",
            total - invalid
        ),
    }
}

fn junit(out: &mut impl Write, reports: &[FileReport]) -> std::io::Result<()> {
    use quick_xml::escape::escape as esc;
    let failures = reports.iter().filter(|r| !r.valid).count();
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<testsuites><testsuite name=\"guichet validate\" tests=\"{}\" failures=\"{failures}\">",
        reports.len()
    )?;
    for report in reports {
        write!(
            out,
            "<testcase classname=\"bed-availability\" name=\"{}\"",
            esc(&report.file)
        )?;
        let errors: Vec<&Violation> = report
            .violations
            .iter()
            .filter(|v| v.severity == Severity::Error)
            .collect();
        if errors.is_empty() {
            writeln!(out, "/>")?;
            continue;
        }
        let codes: Vec<&str> = errors.iter().map(|v| v.code).collect();
        let text: Vec<String> = errors
            .iter()
            .map(|v| format!("{} {}: {}", v.code, v.path, v.message))
            .collect();
        writeln!(
            out,
            "><failure message=\"{}\">{}</failure></testcase>",
            esc(codes.join(" ")),
            esc(text.join("\n"))
        )?;
    }
    writeln!(out, "</testsuite></testsuites>")
}

pub fn convert_command(args: &ConvertArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_small(&args.file)?;
    let (_, read) = guichet_ror::read(&bytes);
    let document = match read {
        Ok(document) => document,
        Err(why) => bail!(
            "{}: {} at {}: {}",
            args.file.display(),
            why.code,
            why.path,
            why.reason
        ),
    };
    let coding = match args.coding {
        CodingArg::CodeableConcept => Coding::CodeableConcept,
        CodingArg::Code => Coding::Code,
    };
    let json = |json| serde_json::to_string_pretty(&json).map(|text| text + "\n");
    let text = match args.to {
        FormArg::Xml => xml::write(&document),
        FormArg::Fhir => json(fhir::write(&document, coding))?,
        FormArg::Patch => json(patch::write(&document, coding))?,
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
