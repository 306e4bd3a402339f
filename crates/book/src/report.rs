//! A run's reports: one JSON document, and JUnit XML (one test case per
//! book case and target) that CI tools read. Neither holds message
//! bodies: outcomes, statuses, the failures found, and the downstream
//! emissions only in JSON.

use std::io::Write;

use quick_xml::escape::escape as esc;

use crate::run::{RunReport, Status};

/// The run as one JSON document: `{"book", "cases": [{"name", "status",
/// "targets": {NAME: {"outcome", "duration_ms", "failures"}}}]}`.
pub fn json(report: &RunReport) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(report)
}

/// The run as JUnit XML: a test suite per book, a test case per case and
/// target (`classname` the target), a failure per unmet expectation, an
/// error when the case could not run.
pub fn junit(out: &mut impl Write, report: &RunReport) -> std::io::Result<()> {
    let tests: usize = report.cases.iter().map(|c| c.targets.len()).sum();
    let count = |wanted: fn(&crate::run::TargetResult) -> bool| {
        report
            .cases
            .iter()
            .flat_map(|c| c.targets.values())
            .filter(|t| wanted(t))
            .count()
    };
    let failures = count(|t| t.error.is_none() && !t.failures.is_empty());
    let errors = count(|t| t.error.is_some());
    let seconds = report.duration_ms / 1e3;
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{seconds:.3}\">",
        name = esc(&report.book)
    )?;
    writeln!(
        out,
        "<testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{seconds:.3}\" timestamp=\"{}\">",
        esc(report.started.trim_end_matches('Z').split('.').next().unwrap_or_default()),
        name = esc(&report.book)
    )?;
    for case in &report.cases {
        for (target, result) in &case.targets {
            write!(
                out,
                "<testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                esc(&case.name),
                esc(target),
                result.duration_ms / 1e3
            )?;
            if let Some(error) = &result.error {
                writeln!(out, "><error message=\"{}\"/></testcase>", esc(error))?;
            } else if !result.failures.is_empty() {
                let first = &result.failures[0];
                writeln!(
                    out,
                    "><failure message=\"{}\">{}</failure></testcase>",
                    esc(first),
                    esc(result.failures.join("\n"))
                )?;
            } else {
                writeln!(out, "/>")?;
            }
        }
    }
    writeln!(out, "</testsuite>\n</testsuites>")
}

/// One line per case for the terminal.
pub fn line(case: &crate::run::CaseResult) -> String {
    let word = match case.status {
        Status::Pass => "PASS ",
        Status::Fail => "FAIL ",
        Status::Error => "ERROR",
    };
    let targets: Vec<String> = case
        .targets
        .iter()
        .map(|(name, t)| format!("{name}: {} ({:.0} ms)", t.outcome, t.duration_ms))
        .collect();
    let mut line = format!("{word} {}  [{}]", case.name, targets.join(", "));
    for (name, t) in &case.targets {
        for why in t.error.iter().chain(&t.failures) {
            line.push_str(&format!("\n        {name}: {why}"));
        }
    }
    line
}

/// A comparison as JUnit XML: a test case per book case, a failure per
/// case the engines differ on without the book saying why.
pub fn junit_compare(
    out: &mut impl Write,
    report: &crate::compare::CompareReport,
) -> std::io::Result<()> {
    let tests = report.cases.len();
    let failures = report.unexpected();
    let seconds = report.duration_ms / 1e3;
    let name = esc(format!("{} ({} / {})", report.book, report.old, report.new));
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(out, "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">")?;
    writeln!(out, "<testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">")?;
    for case in &report.cases {
        write!(
            out,
            "<testcase name=\"{}\" classname=\"compare\"",
            esc(&case.name)
        )?;
        if case.verdict != "different" {
            writeln!(out, "/>")?;
            continue;
        }
        let lines: Vec<String> = case.differences.iter().map(difference_line).collect();
        writeln!(
            out,
            "><failure message=\"{}\">{}</failure></testcase>",
            esc(&lines[0]),
            esc(lines.join("\n"))
        )?;
    }
    writeln!(out, "</testsuite>\n</testsuites>")
}

/// One difference for a person: where, the old value, the new one.
pub fn difference_line(d: &crate::compare::Difference) -> String {
    let at = match &d.field {
        Some(field) => format!("{} {field}", d.part),
        None => d.part.clone(),
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
    format!("{at}: {} -> {}", value(&d.old), value(&d.new))
}

/// One line per compared case for the terminal.
pub fn compare_line(case: &crate::compare::Compared) -> String {
    let word = match case.verdict {
        "same" => "SAME     ",
        "expected" => "EXPECTED ",
        _ => "DIFFERENT",
    };
    let mut line = format!("{word} {}", case.name);
    if let Some(why) = &case.expect_difference {
        line.push_str(&format!(" ({why})"));
    }
    for d in &case.differences {
        line.push_str(&format!("\n        {}", difference_line(d)));
    }
    line
}
