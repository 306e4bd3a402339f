//! `guichet map check`: the data-quality score of the map, its dimensions
//! and its findings, for a person (by severity), a program (JSON) or a
//! report (Markdown).

use std::process::ExitCode;

use anyhow::Context as _;
use guichet_atlas::quality::{
    analyse, markdown, Dimension, Dimensions, Finding, Lang, Quality, Severity,
};
use serde::Serialize;

use super::{load, USAGE};
use crate::cli::{MapCheckArgs, MapFormat};

/// What `map check --format json` prints: it-lanscape's findings, then
/// guichet's own (`"extra": true`, outside the score).
#[derive(Serialize)]
struct CheckReport<'a> {
    score: u32,
    dimensions: &'a Dimensions,
    findings: Vec<&'a Finding>,
}

pub fn check_command(args: &MapCheckArgs) -> anyhow::Result<ExitCode> {
    let atlas = match load(&args.data) {
        Ok(atlas) => atlas,
        Err(code) => return Ok(code),
    };
    let lang: Lang = args.lang.into();
    let quality = analyse(&atlas, lang);
    if let Some(path) = &args.markdown {
        if let Err(e) = std::fs::write(path, markdown(&quality, lang)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Ok(ExitCode::from(USAGE));
        }
    }
    match args.format {
        MapFormat::Json => {
            let report = CheckReport {
                score: quality.score,
                dimensions: &quality.dimensions,
                findings: quality.all().collect(),
            };
            let text = serde_json::to_string_pretty(&report).context("writing the findings")?;
            println!("{text}");
        }
        MapFormat::Human => print_check(&quality, lang),
    }
    Ok(if quality.has_critical() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_check(q: &Quality, lang: Lang) {
    println!("score             {}/100", q.score);
    for d in Dimension::ALL {
        let s = q.dimensions.get(d);
        println!(
            "{:<17} {:>3} %  ({}/{} checks)",
            d.label(lang),
            s.score,
            s.passed,
            s.total
        );
    }
    let counts: Vec<String> = Severity::ALL
        .iter()
        .map(|s| format!("{} {}", s.label(lang), q.count(*s)))
        .collect();
    println!(
        "findings          {} ({})",
        q.findings.len(),
        counts.join(", ")
    );
    print_findings(&q.findings, lang);
    if !q.extra.is_empty() {
        println!(
            "\nguichet's own checks, not in the score: {}",
            q.extra.len()
        );
        print_findings(&q.extra, lang);
    }
}

fn print_findings(findings: &[Finding], lang: Lang) {
    for severity in Severity::ALL {
        let of: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
        if of.is_empty() {
            continue;
        }
        println!("\n{} ({})", severity.label(lang), of.len());
        for f in of {
            println!("  {:<30} {}", f.code, f.message);
        }
    }
}
