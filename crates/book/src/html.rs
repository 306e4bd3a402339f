//! The HTML reports: one self-contained page (no script, no outside
//! resource; it opens from disk), French by default. With `bodies` off,
//! no value of a message appears: only where it differs or failed.

use std::fmt::Write as _;

use guichet_ror::rules::Lang;
use quick_xml::escape::escape as esc;

use crate::compare::{CompareReport, Compared, Difference};
use crate::run::{CaseResult, RunReport, Status};

const STYLE: &str = "body{font:14px/1.45 system-ui,'Segoe UI',sans-serif;margin:1.5rem;color:#1d2330;background:#f6f7f9}\
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}.meta{color:#5a6172}\
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001;margin-bottom:.6rem}\
th,td{text-align:left;padding:.3rem .55rem;border-bottom:1px solid #e4e6eb;vertical-align:top}th{background:#eef0f4}\
td{overflow-wrap:anywhere}code{font:12px ui-monospace,monospace}.pass{color:#17743a;font-weight:600}\
.fail,.different{color:#b3261e;font-weight:600}.error,.expected{color:#9a5b00;font-weight:600}.same{color:#17743a;font-weight:600}\
td.part{white-space:nowrap}.old{background:#fdecea}.new{background:#e8f5ec}ul{margin:.2rem 0;padding-left:1.1rem}";

/// Words of the page, in one language.
struct Words {
    run_title: &'static str,
    compare_title: &'static str,
    cases: &'static str,
    passed: &'static str,
    failed: &'static str,
    errors: &'static str,
    case: &'static str,
    status: &'static str,
    target: &'static str,
    outcome: &'static str,
    time: &'static str,
    findings: &'static str,
    same: &'static str,
    expected: &'static str,
    different: &'static str,
    part: &'static str,
    field: &'static str,
    hidden: &'static str,
    noise: &'static str,
    why: &'static str,
    /// Before a colon: a space in French.
    colon: &'static str,
    /// A case's verdict: the same, different as expected, different.
    verdicts: [&'static str; 3],
    /// The parts compared: outcome, answer, downstream.
    parts: [&'static str; 3],
}

const FR: Words = Words {
    run_title: "Cahier de tests",
    compare_title: "Comparaison",
    cases: "cas",
    passed: "réussi(s)",
    failed: "en échec",
    errors: "non exécuté(s)",
    case: "Cas",
    status: "Statut",
    target: "Cible",
    outcome: "Réponse",
    time: "Durée",
    findings: "Écarts",
    same: "identique(s)",
    expected: "différence(s) attendue(s)",
    different: "différence(s)",
    part: "Partie",
    field: "Champ",
    hidden: "(valeur masquée)",
    noise: "Bruit appris",
    why: "Différence attendue",
    colon: " :",
    verdicts: ["identique", "différence attendue", "différent"],
    parts: ["résultat", "réponse", "en aval"],
};

const EN: Words = Words {
    run_title: "Test book",
    compare_title: "Comparison",
    cases: "case(s)",
    passed: "passed",
    failed: "failed",
    errors: "could not run",
    case: "Case",
    status: "Status",
    target: "Target",
    outcome: "Answer",
    time: "Time",
    findings: "Findings",
    same: "the same",
    expected: "different as expected",
    different: "different",
    part: "Part",
    field: "Field",
    hidden: "(value hidden)",
    noise: "Learned noise",
    why: "Expected difference",
    colon: ":",
    verdicts: ["the same", "expected difference", "different"],
    parts: ["outcome", "answer", "downstream"],
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    }
}

fn page(lang: Lang, title: &str, body: &str) -> String {
    let code = if lang == Lang::Fr { "fr" } else { "en" };
    format!(
        "<!doctype html><html lang={code}><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

/// A run as a page: the summary, then each case on each target.
pub fn run_page(report: &RunReport, lang: Lang, bodies: bool) -> String {
    let w = words(lang);
    let title = format!("{}{} {}", w.run_title, w.colon, report.book);
    let mut h = String::new();
    let _ = write!(
        h,
        "<h1>{}</h1><p class=meta>{} {} · <span class=pass>{} {}</span> · <span class=fail>{} {}</span> · <span class=error>{} {}</span> · {:.1} s · {}</p>",
        esc(&title),
        report.cases.len(),
        w.cases,
        report.count(Status::Pass),
        w.passed,
        report.count(Status::Fail),
        w.failed,
        report.count(Status::Error),
        w.errors,
        report.duration_ms / 1e3,
        esc(&report.started),
    );
    let _ = write!(
        h,
        "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        w.case, w.status, w.target, w.outcome, w.time, w.findings
    );
    for case in &report.cases {
        case_rows(&mut h, case, bodies);
    }
    h.push_str("</table>");
    page(lang, &title, &h)
}

fn case_rows(h: &mut String, case: &CaseResult, bodies: bool) {
    let status = match case.status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
    };
    for (i, (target, result)) in case.targets.iter().enumerate() {
        let findings: Vec<String> = result
            .error
            .iter()
            .chain(&result.failures)
            .map(|f| format!("<li>{}</li>", esc(shown(f, bodies))))
            .collect();
        let lead = if i == 0 {
            format!(
                "<td rowspan={}><b>{}</b><br><code>{}</code></td><td class={status}>{status}</td>",
                case.targets.len(),
                esc(&case.name),
                esc(&case.source)
            )
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr>{lead}<td>{}</td><td><code>{}</code></td><td>{:.0} ms</td><td><ul>{}</ul></td></tr>",
            esc(target),
            esc(&result.outcome),
            result.duration_ms,
            findings.join("")
        );
    }
}

/// A finding as shown: whole, or without the values after its first `:`.
fn shown(finding: &str, bodies: bool) -> String {
    match (bodies, finding.split_once(": ")) {
        (false, Some((what, _))) => what.to_string(),
        _ => finding.to_string(),
    }
}

/// A comparison as a page: the summary, the noise learned, then each case
/// that differs, old and new side by side.
pub fn compare_page(report: &CompareReport, lang: Lang, bodies: bool) -> String {
    let w = words(lang);
    let title = format!(
        "{}{} {} ({} / {})",
        w.compare_title, w.colon, report.book, report.old, report.new
    );
    let count = |verdict: &str| report.cases.iter().filter(|c| c.verdict == verdict).count();
    let mut h = String::new();
    let _ = write!(
        h,
        "<h1>{}</h1><p class=meta>{} {} · <span class=same>{} {}</span> · <span class=expected>{} {}</span> · <span class=different>{} {}</span> · {:.1} s</p>",
        esc(&title),
        report.cases.len(),
        w.cases,
        count("same"),
        w.same,
        count("expected"),
        w.expected,
        count("different"),
        w.different,
        report.duration_ms / 1e3,
    );
    if !report.noise.is_empty() {
        let _ = write!(
            h,
            "<p class=meta>{}{} <code>{}</code></p>",
            w.noise,
            w.colon,
            esc(report.noise.join(", "))
        );
    }
    for case in &report.cases {
        compared_case(&mut h, case, report, bodies, w);
    }
    page(lang, &title, &h)
}

/// One compared case: its verdict, why it is meant to differ, and its
/// differences, old and new side by side.
fn compared_case(h: &mut String, case: &Compared, report: &CompareReport, bodies: bool, w: &Words) {
    let word = match case.verdict {
        "same" => w.verdicts[0],
        "expected" => w.verdicts[1],
        _ => w.verdicts[2],
    };
    let _ = write!(
        h,
        "<h2>{} <span class={}>{word}</span></h2>",
        esc(&case.name),
        case.verdict
    );
    if let Some(why) = &case.expect_difference {
        let _ = write!(h, "<p class=meta>{}{} {}</p>", w.why, w.colon, esc(why));
    }
    if case.differences.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<table><tr><th>{}</th><th>{}</th><th class=old>{}</th><th class=new>{}</th></tr>",
        w.part,
        w.field,
        esc(&report.old),
        esc(&report.new)
    );
    for d in &case.differences {
        difference_row(h, d, bodies, w);
    }
    h.push_str("</table>");
}

fn difference_row(h: &mut String, d: &Difference, bodies: bool, w: &Words) {
    let value = |v: &Option<String>| match (bodies, v) {
        (_, None) => "—".to_string(),
        (true, Some(v)) => format!("<code>{}</code>", esc(v)),
        // An outcome is an ACK code or a status, never a message's value.
        (false, Some(v)) if d.part == "outcome" || d.field.as_deref() == Some("count") => {
            format!("<code>{}</code>", esc(v))
        }
        (false, Some(_)) => w.hidden.to_string(),
    };
    // `downstream 2`: the part's word, then which emission.
    let (part, rest) = d.part.split_once(' ').unwrap_or((&d.part, ""));
    let part = match part {
        "outcome" => w.parts[0],
        "answer" => w.parts[1],
        "downstream" => w.parts[2],
        other => other,
    };
    let _ = write!(
        h,
        "<tr><td class=part>{} {}</td><td><code>{}</code></td><td class=old>{}</td><td class=new>{}</td></tr>",
        part,
        esc(rest),
        esc(d.field.as_deref().unwrap_or("")),
        value(&d.old),
        value(&d.new)
    );
}
