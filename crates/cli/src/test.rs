//! `guichet test run` and `guichet test compare`: a book's cases against
//! its targets, a line per case, a summary, and the JUnit and JSON
//! reports when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use guichet_book::book::TargetSpec;
use guichet_book::compare::compare_targets;
use guichet_book::sink::Sink;
use guichet_book::target::Target;
use guichet_book::{html, report};
use guichet_book::{Book, Ends, RunOptions, Status};
use guichet_ror::referential::Referential;
use guichet_ror::rules::Lang;

use crate::cli::{GenerateBedArgs, HtmlArgs, HtmlLang, TestCompareArgs, TestRunArgs};
use crate::runtime::runtime_with;

/// A bad book or bad options: said, and exit 2.
const BAD_BOOK: u8 = 2;

/// Targets and sinks given on the command line, and their TLS files.
struct Given<'a> {
    targets: Vec<(String, String)>,
    sinks: Vec<(String, PathBuf)>,
    ca: Option<&'a PathBuf>,
    cert: Option<(&'a PathBuf, &'a PathBuf)>,
}

pub fn run_command(args: &TestRunArgs) -> anyhow::Result<ExitCode> {
    let given = || -> Result<Given<'_>, String> {
        Ok(Given {
            targets: pairs(&args.targets, "--target", "NAME=URL")?,
            sinks: pairs(&args.sinks, "--sink", "NAME=FILE")?
                .into_iter()
                .map(|(n, f)| (n, PathBuf::from(f)))
                .collect(),
            ca: args.tls.ca.as_ref(),
            cert: args.tls.cert.as_ref().zip(args.tls.key.as_ref()),
        })
    };
    let (book, ends) = match given().and_then(|g| prepare(&args.book, &g)) {
        Ok(prepared) => prepared,
        Err(why) => return Ok(bad_book(&why)),
    };
    println!(
        "book {:?}: {} case(s), target(s) {}",
        book.name,
        book.cases.len(),
        ends.targets.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    let options = RunOptions {
        on_case: Some(Box::new(|case| println!("{}", report::line(case)))),
        watch_sinks: false,
        only: None,
    };
    let result = runner()?.block_on(guichet_book::run(&book, &ends, &options));
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
    write_reports(
        args.junit.as_deref(),
        args.json.as_deref(),
        |out| report::junit(out, &result),
        || report::json(&result),
    )?;
    write_html(&args.html, |lang, bodies| {
        html::run_page(&result, lang, bodies)
    })?;
    Ok(exit(fail + error == 0))
}

pub fn compare_command(args: &TestCompareArgs) -> anyhow::Result<ExitCode> {
    let side = |given: &str, name: &str| match given.contains("://") {
        true => (
            name.to_string(),
            Some((name.to_string(), given.to_string())),
        ),
        false => (given.to_string(), None),
    };
    let (old, old_url) = side(&args.old, "old");
    let (new, new_url) = side(&args.new, "new");
    let sinks = [(&old, &args.old_sink), (&new, &args.new_sink)]
        .into_iter()
        .filter_map(|(name, sink)| Some((name.clone(), sink.clone()?)))
        .collect();
    let given = Given {
        targets: old_url.into_iter().chain(new_url).collect(),
        sinks,
        ca: args.tls.ca.as_ref(),
        cert: args.tls.cert.as_ref().zip(args.tls.key.as_ref()),
    };
    let (book, ends) = match prepare(&args.book, &given) {
        Ok(prepared) => prepared,
        Err(why) => return Ok(bad_book(&why)),
    };
    if let Some(missing) = [&old, &new]
        .into_iter()
        .find(|t| !ends.targets.contains_key(*t))
    {
        return Ok(bad_book(&format!(
            "no target {missing:?}: name one of the book, or give a URL"
        )));
    }
    println!(
        "book {:?}: {} case(s), {old} against {new}",
        book.name,
        book.cases.len()
    );
    let result = runner()?.block_on(compare_targets(
        &book,
        &ends,
        (&old, &new),
        args.learn_noise,
    ));
    print_comparison(&result);
    write_reports(
        args.junit.as_deref(),
        args.json.as_deref(),
        |out| report::junit_compare(out, &result),
        || serde_json::to_vec_pretty(&result),
    )?;
    write_html(&args.html, |lang, bodies| {
        html::compare_page(&result, lang, bodies)
    })?;
    Ok(exit(result.unexpected() == 0))
}

/// One thread: a book's run waits on its targets and sinks far more than
/// it computes, and a second thread only adds its stack and its share of
/// the allocator's memory.
fn runner() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(Some(1))
}

fn write_html(args: &HtmlArgs, page: impl FnOnce(Lang, bool) -> String) -> anyhow::Result<()> {
    let Some(path) = &args.html else {
        return Ok(());
    };
    let lang = match args.lang {
        HtmlLang::Fr => Lang::Fr,
        HtmlLang::En => Lang::En,
    };
    std::fs::write(path, page(lang, !args.no_bodies))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

pub fn generate_command(args: &GenerateBedArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.referential)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.referential.display()))?;
    let referential = Referential::read(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.referential.display()))?;
    let now = args.now.unwrap_or_else(time::OffsetDateTime::now_utc);
    let cases = guichet_book::generate::write_book(&args.out, &referential, now)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}: {cases} case(s)", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Each compared case, the noise learned, and the summary.
fn print_comparison(result: &guichet_book::compare::CompareReport) {
    for case in &result.cases {
        println!("{}", report::compare_line(case));
    }
    if !result.noise.is_empty() {
        println!("learned noise: {}", result.noise.join(", "));
    }
    let same = result.cases.iter().filter(|c| c.verdict == "same").count();
    println!(
        "{} case(s): {same} the same, {} different as expected, {} different ({:.1} s)",
        result.cases.len(),
        result
            .cases
            .iter()
            .filter(|c| c.verdict == "expected")
            .count(),
        result.unexpected(),
        result.duration_ms / 1e3
    );
}

fn bad_book(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(BAD_BOOK)
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write_reports(
    junit: Option<&Path>,
    json: Option<&Path>,
    write_junit: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
    json_bytes: impl FnOnce() -> serde_json::Result<Vec<u8>>,
) -> anyhow::Result<()> {
    let cannot = |path: &Path, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    };
    if let Some(path) = junit {
        let file = std::fs::File::create(path).map_err(|e| cannot(path, &e))?;
        let mut out = std::io::BufWriter::new(file);
        write_junit(&mut out).map_err(|e| cannot(path, &e))?;
    }
    if let Some(path) = json {
        std::fs::write(path, json_bytes()?).map_err(|e| cannot(path, &e))?;
    }
    Ok(())
}

/// The book, with the targets and sinks given on the command line.
fn prepare(path: &Path, given: &Given<'_>) -> Result<(Book, Ends), String> {
    let mut book = Book::load(path).map_err(|e| e.to_string())?;
    for (name, url) in &given.targets {
        let spec = book.targets.entry(name.clone()).or_default();
        spec.url = url.clone();
        if let Some(ca) = given.ca {
            spec.ca = Some(ca.clone());
        }
        if let Some((cert, key)) = given.cert {
            spec.cert = Some(cert.clone());
            spec.key = Some(key.clone());
        }
    }
    for (name, file) in &given.sinks {
        let spec = book
            .targets
            .get_mut(name)
            .ok_or_else(|| format!("sink {}: no target {name:?}", file.display()))?;
        spec.sink = Some(file.clone());
    }
    if book.targets.is_empty() {
        return Err(format!(
            "{}: no target: name one in [targets] or with --target NAME=URL",
            path.display()
        ));
    }
    let ends = ends(&book.targets)?;
    Ok((book, ends))
}

fn pairs(given: &[String], option: &str, shape: &str) -> Result<Vec<(String, String)>, String> {
    given
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .filter(|(name, value)| !name.is_empty() && !value.is_empty())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or_else(|| format!("{option} {pair:?}: give {shape}"))
        })
        .collect()
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
