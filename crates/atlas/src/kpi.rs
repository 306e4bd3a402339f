//! The dashboard's four figures, by it-lanscape's exact rules
//! (`hooks/useMetrics.js`): over application *occurrences*, after the
//! filters, each percentage written as `toFixed(1)` writes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::model::{truthy, Application, Atlas, Establishment, Occurrence};
use crate::round::to_fixed_1;

/// The dashboard's filters (the search box is not one: it-lanscape's
/// figures ignore it). Empty lists and `None` let everything through.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Establishments, by name (any of them).
    pub establishments: Vec<String>,
    /// Domains, by name (any of them).
    pub domains: Vec<String>,
    pub criticality: Option<Criticality>,
    /// `hebergement`, exactly.
    pub hosting: Option<String>,
    /// An interface family (`Medicale`, `Administrative`, ...) the
    /// application must have.
    pub interface: Option<String>,
    /// `multiEtablissement` true or false.
    pub multi: Option<bool>,
}

/// it-lanscape's criticality filter: `Standard` is anything not `Critique`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criticality {
    Critical,
    Standard,
}

impl Filters {
    pub fn admits_establishment(&self, e: &Establishment) -> bool {
        self.establishments.is_empty() || self.establishments.contains(&e.name)
    }

    pub fn admits_domain(&self, name: &str) -> bool {
        self.domains.is_empty() || self.domains.iter().any(|d| d == name)
    }

    /// The application filters (criticality, interface, multi, hosting).
    pub fn admits_application(&self, app: &Application) -> bool {
        let criticality = match self.criticality {
            None => true,
            Some(Criticality::Critical) => app.is_critical(),
            Some(Criticality::Standard) => !app.is_critical(),
        };
        let interface = self
            .interface
            .as_deref()
            .is_none_or(|family| app.has_interface(family));
        // it-lanscape compares with `===`: only a JSON boolean matches.
        let multi = self
            .multi
            .is_none_or(|want| app.multi_establishment == Some(crate::model::Scalar::Bool(want)));
        let hosting = self
            .hosting
            .as_deref()
            .is_none_or(|h| app.hosting.as_ref().and_then(|s| s.as_str()) == Some(h));
        criticality && interface && multi && hosting
    }

    /// Whether an occurrence passes every filter.
    pub fn admits(&self, o: &Occurrence) -> bool {
        self.admits_establishment(o.establishment)
            && self.admits_domain(&o.domain.name)
            && self.admits_application(o.application)
    }
}

/// The dashboard's four figures and the number of occurrences.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kpis {
    /// Application occurrences shown.
    pub applications: usize,
    /// Process alignment: mean Jaccard similarity of the processes each
    /// pair of establishments covers; 100 with one establishment.
    pub proc_pct: f64,
    /// Application alignment: share of the processes present in several
    /// establishments that use the same applications in each; 0 when none.
    pub align_pct: f64,
    /// Mutualisation: share of occurrences marked multi-establishment.
    pub multi_pct: f64,
    /// Completeness: editor, referent and supervision link filled.
    pub compl_pct: f64,
}

/// A process's key across establishments: `domain::process`.
fn process_key(o: &Occurrence) -> String {
    format!("{}::{}", o.domain.name, o.process.name)
}

/// The four figures over the occurrences `filters` admits.
pub fn kpis(atlas: &Atlas, filters: &Filters) -> Kpis {
    let establishments: Vec<&str> = atlas
        .establishments
        .iter()
        .filter(|e| filters.admits_establishment(e))
        .map(|e| e.name.as_str())
        .collect();
    // key → establishment → application names (only where it has some)
    let mut apps: BTreeMap<String, BTreeMap<&str, BTreeSet<String>>> = BTreeMap::new();
    let (mut shown, mut multi, mut filled) = (0usize, 0usize, 0usize);
    for o in atlas.occurrences().filter(|o| filters.admits(o)) {
        shown += 1;
        let a = o.application;
        multi += usize::from(a.is_multi());
        filled += [&a.editor, &a.referent, &a.supervision]
            .into_iter()
            .filter(|f| truthy(f))
            .count();
        apps.entry(process_key(&o))
            .or_default()
            .entry(o.establishment.name.as_str())
            .or_default()
            .insert(a.name());
    }
    Kpis {
        applications: shown,
        proc_pct: to_fixed_1(process_alignment(&establishments, &apps)),
        align_pct: percent(application_alignment(&apps)),
        multi_pct: percent((multi, shown)),
        compl_pct: percent((filled, 3 * shown)),
    }
}

/// `pct(num, den)` of it-lanscape: 0 when there is nothing to count.
fn percent((num, den): (usize, usize)) -> f64 {
    if den == 0 {
        0.0
    } else {
        to_fixed_1(num as f64 / den as f64 * 100.0)
    }
}

/// Mean Jaccard similarity, over every pair of establishments, of the
/// process keys each covers with at least one application.
fn process_alignment(
    establishments: &[&str],
    apps: &BTreeMap<String, BTreeMap<&str, BTreeSet<String>>>,
) -> f64 {
    if establishments.len() == 1 {
        return 100.0;
    }
    let covered = |e: &str| -> BTreeSet<&str> {
        apps.iter()
            .filter(|(_, by)| by.contains_key(e))
            .map(|(k, _)| k.as_str())
            .collect()
    };
    let sets: HashMap<&str, BTreeSet<&str>> =
        establishments.iter().map(|e| (*e, covered(e))).collect();
    let (mut sum, mut pairs) = (0.0, 0usize);
    for (i, a) in establishments.iter().enumerate() {
        for b in &establishments[i + 1..] {
            let (a, b) = (&sets[a], &sets[b]);
            let union = a.union(b).count();
            let inter = a.intersection(b).count();
            sum += if union == 0 {
                1.0
            } else {
                inter as f64 / union as f64
            };
            pairs += 1;
        }
    }
    // No establishment at all: JavaScript's 0/0 is NaN, written "NaN";
    // guichet says 0.
    if pairs == 0 {
        0.0
    } else {
        sum / pairs as f64 * 100.0
    }
}

/// (aligned, counted): keys with applications in more than one
/// establishment count; aligned when every establishment uses the same
/// set of application names.
fn application_alignment(
    apps: &BTreeMap<String, BTreeMap<&str, BTreeSet<String>>>,
) -> (usize, usize) {
    let mut counted = 0;
    let mut aligned = 0;
    for by in apps.values().filter(|by| by.len() > 1) {
        counted += 1;
        let mut sets = by.values();
        let first = sets.next();
        aligned += usize::from(sets.all(|s| Some(s) == first));
    }
    (aligned, counted)
}

#[cfg(test)]
mod tests;
