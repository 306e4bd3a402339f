//! The checks counted per dimension, the findings they give, and the
//! scores: it-lanscape's `addCheck`, `addIssue`, `computeScores` and
//! `issueSort`.

use super::{
    collate, Dimension, DimensionScore, Dimensions, Finding, Lang, Metrics, Quality, Severity,
};
use crate::round::js_round;

/// What a failed check says, before it is placed in a dimension.
pub(crate) struct Issue {
    pub severity: Severity,
    pub code: &'static str,
    /// (French, English).
    pub title: (&'static str, &'static str),
    pub subject: String,
    pub message: String,
    pub recommendation: String,
}

/// The checks counted so far and the findings they gave.
pub(crate) struct State {
    pub lang: Lang,
    counts: [(usize, usize); 4],
    findings: Vec<Finding>,
    extra: Vec<Finding>,
}

impl State {
    pub fn new(lang: Lang) -> Self {
        State {
            lang,
            counts: [(0, 0); 4],
            findings: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// it-lanscape's `addCheck`: one more check in `dimension`; a finding
    /// when it fails.
    pub fn check(&mut self, dimension: Dimension, passed: bool, issue: impl FnOnce(Lang) -> Issue) {
        let (ok, total) = &mut self.counts[dimension as usize];
        *total += 1;
        if passed {
            *ok += 1;
        } else {
            let finding = self.finding(dimension, issue(self.lang), false);
            self.findings.push(finding);
        }
    }

    /// it-lanscape's `addIssue`: a finding that is no check.
    pub fn issue(&mut self, dimension: Dimension, issue: Issue) {
        let finding = self.finding(dimension, issue, false);
        self.findings.push(finding);
    }

    /// A finding of guichet's own, outside the score.
    pub fn extra(&mut self, dimension: Dimension, issue: Issue) {
        let finding = self.finding(dimension, issue, true);
        self.extra.push(finding);
    }

    fn finding(&self, dimension: Dimension, i: Issue, extra: bool) -> Finding {
        Finding {
            severity: i.severity,
            dimension,
            code: i.code,
            subject: i.subject,
            message: i.message,
            title: self.lang.pick(i.title.0, i.title.1).to_string(),
            recommendation: i.recommendation,
            extra,
            sort_title: i.title.0,
        }
    }

    pub fn finish(mut self, metrics: Metrics) -> Quality {
        let lang = self.lang;
        let score = |d: Dimension| {
            let (passed, total) = self.counts[d as usize];
            DimensionScore {
                score: percent(passed, total),
                passed,
                total,
                label: d.label(lang),
                weight: d.weight(),
            }
        };
        let dimensions = Dimensions {
            completeness: score(Dimension::Completeness),
            coherence: score(Dimension::Coherence),
            validity: score(Dimension::Validity),
            exploitability: score(Dimension::Exploitability),
        };
        let weighted: f64 = Dimension::ALL
            .iter()
            .map(|d| f64::from(dimensions.get(*d).score) * d.weight())
            .sum();
        self.findings.sort_by(order);
        self.extra.sort_by(order);
        Quality {
            score: clamp_round(weighted),
            dimensions,
            findings: self.findings,
            extra: self.extra,
            metrics,
        }
    }
}

/// `round(100 · passed / total)`, 100 without checks.
fn percent(passed: usize, total: usize) -> u32 {
    if total == 0 {
        100
    } else {
        clamp_round(passed as f64 / total as f64 * 100.0)
    }
}

/// it-lanscape's `roundScore`: `Math.round`, within 0–100.
fn clamp_round(x: f64) -> u32 {
    js_round(x).clamp(0.0, 100.0) as u32
}

/// Severity weight descending, then French title (a stable sort keeps
/// the order of the checks among equals).
fn order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.severity
        .weight()
        .cmp(&a.severity.weight())
        .then_with(|| collate::compare(a.sort_title, b.sort_title))
}
