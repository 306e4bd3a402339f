//! The application × application flow matrix: a cell per (source,
//! target) pair, holding the protocols and message types between them and
//! what is known of the pair: encrypted or in clear, and, once the
//! gateway's observations are given, observed, declared but not observed,
//! or observed without being declared (a shadow flow).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::figures::matches;
use crate::model::{text, Atlas, Flow};
use crate::observed::ObservedFlow;
use crate::Lang;

/// What is known of one pair of applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellState {
    /// Declared, every flow encrypted (no observation given).
    Encrypted,
    /// Declared, at least one flow in clear (no observation given).
    Clear,
    /// Declared and seen by the gateway.
    Observed,
    /// Declared, not seen although observations were given.
    DeclaredNotObserved,
    /// Seen by the gateway, declared nowhere.
    Shadow,
}

impl CellState {
    /// The label a French reader sees, or the English one.
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang == Lang::Fr) {
            (CellState::Encrypted, true) => "chiffré",
            (CellState::Encrypted, false) => "encrypted",
            (CellState::Clear, true) => "en clair",
            (CellState::Clear, false) => "in clear",
            (CellState::Observed, true) => "observé",
            (CellState::Observed, false) => "observed",
            (CellState::DeclaredNotObserved, true) => "déclaré, non observé",
            (CellState::DeclaredNotObserved, false) => "declared, not observed",
            (CellState::Shadow, true) => "non déclaré (shadow)",
            (CellState::Shadow, false) => "shadow (not declared)",
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub source: String,
    pub target: String,
    /// `PROTOCOL MESSAGE-TYPE` of each declared flow, then of each
    /// observed one, without repeats.
    pub exchanges: Vec<String>,
    pub state: CellState,
    /// Every flow of the pair encrypted (declared and observed).
    pub encrypted: bool,
    /// Messages observed between the pair, each once (see
    /// [`ObservedFlow::messages`]).
    pub observed_count: u64,
}

/// The matrix: the applications in order, and the non-empty cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    /// Trigrammes of every application that has a flow, sorted.
    pub applications: Vec<String>,
    pub cells: Vec<Cell>,
}

struct Pair {
    exchanges: BTreeSet<String>,
    declared: bool,
    declared_seen: bool,
    shadow: bool,
    all_encrypted: bool,
    count: u64,
}

impl Default for Pair {
    /// Nothing known yet: encrypted until a flow in clear is seen.
    fn default() -> Pair {
        Pair {
            exchanges: BTreeSet::new(),
            declared: false,
            declared_seen: false,
            shadow: false,
            all_encrypted: true,
            count: 0,
        }
    }
}

impl Pair {
    /// Something undeclared ran: shadow, whatever else is known; then
    /// what observation says; without it, what the declarations say.
    fn state(&self, observing: bool) -> CellState {
        if self.shadow || !self.declared {
            CellState::Shadow
        } else if !observing {
            if self.all_encrypted {
                CellState::Encrypted
            } else {
                CellState::Clear
            }
        } else if self.declared_seen {
            CellState::Observed
        } else {
            CellState::DeclaredNotObserved
        }
    }
}

fn exchange(protocol: &str, message_type: &str) -> String {
    format!("{protocol} {message_type}").trim().to_string()
}

/// The matrix of the declared flows `flows` and the observed `observed`.
pub fn matrix(flows: &[&Flow], observed: &[ObservedFlow]) -> Matrix {
    let mut pairs: BTreeMap<(String, String), Pair> = BTreeMap::new();
    for f in flows {
        let pair = pairs.entry((f.source(), f.target())).or_default();
        pair.exchanges
            .insert(exchange(&text(&f.protocol), &text(&f.message_type)));
        pair.declared = true;
        pair.declared_seen |= observed.iter().any(|o| matches(f, o));
        pair.all_encrypted &= f.encrypted();
    }
    for o in observed {
        let (Some(s), Some(t)) = (&o.source_trigramme, &o.target_trigramme) else {
            continue;
        };
        let pair = pairs.entry((s.clone(), t.clone())).or_default();
        pair.exchanges
            .insert(exchange(&o.kind.to_uppercase(), &o.message_type));
        pair.shadow |= !flows.iter().any(|f| matches(f, o));
        pair.all_encrypted &= o.encrypted();
        pair.count += o.messages();
    }
    let observing = !observed.is_empty();
    let applications: BTreeSet<String> = pairs
        .keys()
        .flat_map(|(s, t)| [s.clone(), t.clone()])
        .filter(|t| !t.is_empty())
        .collect();
    let cells = pairs
        .into_iter()
        .map(|((source, target), p)| Cell {
            state: p.state(observing),
            encrypted: p.all_encrypted,
            observed_count: p.count,
            exchanges: p.exchanges.into_iter().collect(),
            source,
            target,
        })
        .collect();
    Matrix {
        applications: applications.into_iter().collect(),
        cells,
    }
}

/// The matrix of every declared flow of `atlas`.
pub fn of_atlas(atlas: &Atlas, observed: &[ObservedFlow]) -> Matrix {
    let flows: Vec<&Flow> = atlas.all_flows().map(|(_, f)| f).collect();
    matrix(&flows, observed)
}

impl Matrix {
    /// The cell of a pair, if any flow joins them.
    pub fn cell(&self, source: &str, target: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.source == source && c.target == target)
    }
}

#[cfg(test)]
mod tests;
