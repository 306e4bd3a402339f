//! `guichet test run`: a book's cases against its targets, a line per
//! case, a summary, and the JUnit and JSON reports when asked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use guichet_book::book::TargetSpec;
use guichet_book::report;
use guichet_book::sink::Sink;
use guichet_book::target::Target;
use guichet_book::{Book, Ends, RunOptions, Status};

use crate::cli::TestRunArgs;
use crate::runtime::runtime;

/// A bad book or bad options: said, and exit 2.
const BAD_BOOK: u8 = 2;

pub fn run_command(args: &TestRunArgs) -> anyhow::Result<ExitCode> {
    let (book, ends) = match prepare(args) {
        Ok(prepared) => prepared,
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(ExitCode::from(BAD_BOOK));
        }
    };
    println!(
        "book {:?}: {} case(s), target(s) {}",
        book.name,
        book.cases.len(),
        ends.targets.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    let options = RunOptions {
        on_case: Some(Box::new(|case| println!("{}", report::line(case)))),
    };
    let result = runtime()?.block_on(guichet_book::run(&book, &ends, &options));
    let (pass, fail, error) = (
        result.count(Status::Pass),
        result.count(Status::Fail),
        result.count(Status::Error),
    );
    println!(
        "{} case(s): {pass} passed, {fail} failed, {error} could not run ({:.1} s)",
        result.cases.len(),
        result.duration_ms / 1e3
    );
    if let Some(path) = &args.junit {
        let mut file = std::io::BufWriter::new(create(path)?);
        report::junit(&mut file, &result)?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report::json(&result)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if fail + error == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn create(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The book, with the targets and sinks given on the command line.
fn prepare(args: &TestRunArgs) -> Result<(Book, Ends), String> {
    let mut book = Book::load(&args.book).map_err(|e| e.to_string())?;
    for given in &args.targets {
        let (name, url) = pair(given, "--target", "NAME=URL")?;
        let spec = book.targets.entry(name.to_string()).or_default();
        spec.url = url.to_string();
        if args.ca.is_some() {
            spec.ca = args.ca.clone();
        }
        if args.cert.is_some() {
            spec.cert = args.cert.clone();
            spec.key = args.key.clone();
        }
    }
    for given in &args.sinks {
        let (name, file) = pair(given, "--sink", "NAME=FILE")?;
        let spec = book
            .targets
            .get_mut(name)
            .ok_or_else(|| format!("--sink {given}: no target {name:?}"))?;
        spec.sink = Some(PathBuf::from(file));
    }
    if book.targets.is_empty() {
        return Err(format!(
            "{}: no target: name one in [targets] or with --target NAME=URL",
            args.book.display()
        ));
    }
    Ok((book.clone(), ends(&book.targets)?))
}

fn pair<'a>(given: &'a str, option: &str, shape: &str) -> Result<(&'a str, &'a str), String> {
    given
        .split_once('=')
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .ok_or_else(|| format!("{option} {given:?}: give {shape}"))
}

fn ends(targets: &BTreeMap<String, TargetSpec>) -> Result<Ends, String> {
    let mut ends = Ends {
        targets: BTreeMap::new(),
        sinks: BTreeMap::new(),
    };
    for (name, spec) in targets {
        let target = Target::new(name, spec).map_err(|e| format!("target {name:?}: {e}"))?;
        ends.targets.insert(name.clone(), Arc::new(target));
        if let Some(sink) = &spec.sink {
            ends.sinks.insert(name.clone(), Arc::new(Sink::new(sink)));
        }
    }
    Ok(ends)
}
