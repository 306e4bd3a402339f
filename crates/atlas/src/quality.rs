//! The data-quality score, exactly as it-lanscape computes it
//! (`lib/qualityAnalysis.js`) on its JSON sources: four dimensions, each
//! the share of passed checks (`Math.round`, 100 when a dimension has no
//! check), a weighted global score, and a finding for each failed check.
//!
//! - Dimensions and weights: completeness 0.3, coherence 0.3, validity 0.2,
//!   exploitability 0.2.
//! - Findings are sorted as it-lanscape sorts them: severity weight first
//!   (critical, high, medium, low), then title in French by a
//!   locale-style comparison (accents and case fold, space and
//!   punctuation before digits before letters, then the exact text), and
//!   in the order the checks ran when both are equal (a stable sort, as
//!   JavaScript's). The order is the same in English: it is it-lanscape's.
//! - guichet's own findings (a flow from an application to itself:
//!   `self-flow`, coherence, medium) are in [`Quality::extra`], marked
//!   `extra: true`, and count in no dimension and no score: the figures
//!   stay it-lanscape's.
//!
//! Where guichet reads a folder differently from it-lanscape, the checks
//! follow guichet's reading: a file that is not JSON is an error instead
//! of an empty file, and an establishment without `nom` is named by its
//! `etablissement` field or its file instead of `undefined`.

use serde::Serialize;

use crate::model::Atlas;

mod applications;
mod collate;
mod context;
mod flows;
mod js;
mod markdown;
mod servers;
mod state;

pub use markdown::markdown;
pub(crate) use state::{Issue, State};

pub use crate::Lang;

impl Lang {
    pub(crate) fn pick<T>(self, fr: T, en: T) -> T {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// it-lanscape's `SEVERITY_WEIGHT`.
    pub fn weight(self) -> u8 {
        match self {
            Severity::Critical => 4,
            Severity::High => 3,
            Severity::Medium => 2,
            Severity::Low => 1,
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Severity::Critical => lang.pick("Critique", "Critical"),
            Severity::High => lang.pick("Forte", "High"),
            Severity::Medium => lang.pick("Moyenne", "Medium"),
            Severity::Low => lang.pick("Faible", "Low"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    Completeness,
    Coherence,
    Validity,
    Exploitability,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Completeness,
        Dimension::Coherence,
        Dimension::Validity,
        Dimension::Exploitability,
    ];

    pub fn weight(self) -> f64 {
        match self {
            Dimension::Completeness | Dimension::Coherence => 0.3,
            Dimension::Validity | Dimension::Exploitability => 0.2,
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Dimension::Completeness => lang.pick("Complétude", "Completeness"),
            Dimension::Coherence => lang.pick("Cohérence", "Coherence"),
            Dimension::Validity => lang.pick("Validité", "Validity"),
            Dimension::Exploitability => lang.pick("Exploitabilité", "Exploitability"),
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub dimension: Dimension,
    /// it-lanscape's `category` (`duplicate-trigramme`, `orphan-server`...).
    pub code: &'static str,
    /// it-lanscape's `entity`: the application, server, VLAN, flow or
    /// establishment concerned, as it-lanscape names it.
    pub subject: String,
    /// it-lanscape's `detail`.
    pub message: String,
    pub title: String,
    pub recommendation: String,
    /// guichet's own check, outside it-lanscape's score.
    pub extra: bool,
    /// The French title, which orders findings in either language.
    #[serde(skip)]
    pub(crate) sort_title: &'static str,
}

/// A dimension's score and the checks behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionScore {
    pub score: u32,
    pub passed: usize,
    pub total: usize,
    pub label: &'static str,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dimensions {
    pub completeness: DimensionScore,
    pub coherence: DimensionScore,
    pub validity: DimensionScore,
    pub exploitability: DimensionScore,
}

impl Dimensions {
    pub fn get(&self, dimension: Dimension) -> &DimensionScore {
        match dimension {
            Dimension::Completeness => &self.completeness,
            Dimension::Coherence => &self.coherence,
            Dimension::Validity => &self.validity,
            Dimension::Exploitability => &self.exploitability,
        }
    }
}

/// The whole assessment of a map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    /// 0–100: Σ weight · dimension score, `Math.round`ed.
    pub score: u32,
    pub dimensions: Dimensions,
    /// it-lanscape's findings, in its order.
    pub findings: Vec<Finding>,
    /// guichet's own findings, in the same order, outside the score.
    pub extra: Vec<Finding>,
    pub metrics: Metrics,
}

/// What was assessed, as it-lanscape counts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Distinct establishment names of the business map.
    pub establishments: usize,
    /// Application occurrences.
    pub applications: usize,
    pub servers: usize,
    /// Servers listed in VLANs.
    pub network_servers: usize,
    pub vlans: usize,
    pub flows: usize,
    pub known_trigrammes: usize,
}

impl Metrics {
    fn of(atlas: &Atlas) -> Self {
        let vlans = || atlas.network.iter().flat_map(|d| &d.items);
        let names: std::collections::HashSet<&str> = atlas
            .establishments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        Metrics {
            establishments: names.len(),
            applications: atlas.occurrences().count(),
            servers: atlas.all_servers().count(),
            network_servers: vlans().map(|v| v.servers.len()).sum(),
            vlans: vlans().count(),
            flows: atlas.all_flows().count(),
            known_trigrammes: atlas.trigrammes.len(),
        }
    }
}

impl Quality {
    /// Whether a finding, it-lanscape's or guichet's, is critical.
    pub fn has_critical(&self) -> bool {
        self.all().any(|f| f.severity == Severity::Critical)
    }

    /// it-lanscape's findings, then guichet's.
    pub fn all(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().chain(&self.extra)
    }

    /// How many of it-lanscape's findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Every check of it-lanscape's quality analysis on `atlas`, and guichet's
/// own, with texts in `lang`.
pub fn analyse(atlas: &Atlas, lang: Lang) -> Quality {
    let cx = context::Context::new(atlas);
    let mut state = State::new(lang);
    applications::establishments(&cx, &mut state);
    applications::applications(&cx, &mut state);
    servers::servers(&cx, &mut state);
    servers::vlans(&cx, &mut state);
    servers::network_servers(&cx, &mut state);
    flows::flows(&cx, &mut state);
    flows::dependencies(&cx, &mut state);
    flows::self_flows(&cx, &mut state);
    state.finish(Metrics::of(atlas))
}

#[cfg(test)]
mod tests;
