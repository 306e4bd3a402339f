//! The flows as a Mermaid flowchart: a node per application, an arrow per
//! pair of the flow matrix, thick when encrypted, dotted when nobody
//! declared it.

use std::fmt::Write as _;

use crate::figures::Names;
use crate::matrix::{CellState, Matrix};
use crate::model::Atlas;
use crate::Lang;

/// A node id Mermaid accepts whatever the trigramme holds.
fn node_id(trigramme: &str) -> String {
    let clean: String = trigramme
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("app_{clean}")
}

/// Text inside a Mermaid label: quotes and markup characters as entities.
fn label(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('|', "#124;")
}

/// `flowchart LR` of the matrix; critical applications outlined in red.
pub fn flowchart(atlas: &Atlas, matrix: &Matrix, lang: Lang) -> String {
    let mut out = String::from("flowchart LR\n");
    let critical: std::collections::BTreeSet<String> = atlas
        .occurrences()
        .filter(|o| o.application.is_critical())
        .map(|o| o.application.trigramme())
        .collect();
    let names = Names::of(atlas);
    for t in &matrix.applications {
        let name = names.get(t);
        let text = if name.is_empty() {
            t.clone()
        } else {
            format!("{name} ({t})")
        };
        let _ = writeln!(out, "  {}[\"{}\"]", node_id(t), label(&text));
    }
    for c in &matrix.cells {
        let arrow = match c.state {
            CellState::Shadow => "-.->",
            _ if c.encrypted => "==>",
            _ => "-->",
        };
        let mut text = c.exchanges.join(", ");
        if matches!(c.state, CellState::Shadow | CellState::DeclaredNotObserved) {
            text = format!("{text} ({})", c.state.label(lang));
        }
        let _ = writeln!(
            out,
            "  {} {arrow}|\"{}\"| {}",
            node_id(&c.source),
            label(&text),
            node_id(&c.target)
        );
    }
    let shown: Vec<String> = matrix
        .applications
        .iter()
        .filter(|t| critical.contains(*t))
        .map(|t| node_id(t))
        .collect();
    if !shown.is_empty() {
        out.push_str("  classDef critical stroke:#b91c1c,stroke-width:3px\n");
        let _ = writeln!(out, "  class {} critical", shown.join(","));
    }
    out
}
