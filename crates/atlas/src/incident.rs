//! Incident simulation: what an outage of an application, a server, a
//! flow, a hosting provider (and, by guichet's rules, an EAI or a gateway
//! route) does to the applications downstream.
//!
//! Two rule sets:
//! - **it-lanscape's**, exactly as its incident page computes them: the
//!   start's status (a server passes its full status to its application
//!   when its role looks like a database or the application has at most
//!   one server, else `hs` becomes `degrade`; a flow's target gets the
//!   depth-1 status, its source the same with `hs` lowered), then a
//!   breadth-first walk along outgoing flows, attenuated by depth and
//!   interface type, nothing at depth 5 or more. The EAI is a label.
//! - **guichet's** (`eai_nodes`): each EAI named by the flows, and each
//!   gateway route that observed traffic crosses, is a relay node. A flow
//!   A→B through E is A→E→B: crossing E costs no depth (A's impact reaches
//!   B at A's depth + 1, as in it-lanscape), and E's own outage reaches
//!   every target of the flows through it at depth 1.
//!
//! The result lists every impacted application with its status, depth and
//! causes, most critical first; [`report`] writes it as a Markdown
//! incident report.

mod graph;
pub mod report;
mod run;
mod start;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Atlas;
use crate::observed::ObservedFlow;

pub use graph::{Link, LinkKind};

/// it-lanscape's statuses, ordered by rank (latence 1 … hs 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Latence,
    Intermittent,
    Degrade,
    Hs,
}

impl Status {
    /// Accepts it-lanscape's codes (`hs`, `degrade`, `intermittent`,
    /// `latence`), case-insensitively, and `dégradé`.
    pub fn parse(text: &str) -> Option<Status> {
        match text.trim().to_lowercase().as_str() {
            "hs" => Some(Status::Hs),
            "degrade" | "dégradé" => Some(Status::Degrade),
            "intermittent" => Some(Status::Intermittent),
            "latence" => Some(Status::Latence),
            _ => None,
        }
    }

    /// The code, as it-lanscape writes it.
    pub fn code(self) -> &'static str {
        match self {
            Status::Hs => "hs",
            Status::Degrade => "degrade",
            Status::Intermittent => "intermittent",
            Status::Latence => "latence",
        }
    }

    /// it-lanscape's `mapIndirectStatus`: an outage seen second hand is a
    /// degradation.
    pub fn indirect(self) -> Status {
        match self {
            Status::Hs => Status::Degrade,
            other => other,
        }
    }
}

/// Where an incident starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// An application, by trigramme (any case).
    Application(String),
    /// A server, by name (`VM`), or `ESTABLISHMENT::VM` when two
    /// establishments have a server of that name.
    Server(String),
    /// A declared flow, by [`crate::model::Flow::key`].
    Flow(String),
    /// A hosting provider (`hebergement`), exactly.
    Hosting(String),
    /// An EAI, by the name flows give it (`eaiName`); guichet's rules only.
    Eai(String),
    /// A gateway route observed traffic crosses; guichet's rules only.
    Route(String),
}

/// Which rules the simulation follows.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// guichet's rules: EAIs and routes are relay nodes. Off: it-lanscape's.
    pub eai_nodes: bool,
    /// EAI name → the trigramme of the application that is this EAI, for
    /// names that do not tie by themselves (see [`Rules::eai_nodes`]).
    /// An EAI ties by itself to the application whose name (in
    /// `trigrammes.json` or the business map) or trigramme it is, ignoring
    /// case; the tied application and the EAI are then one node.
    pub eai_apps: BTreeMap<String, String>,
}

/// Why an impact was recorded, as it-lanscape lists causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    pub kind: CauseKind,
    /// The component or the link: `Maincare IGAP (GAP)`,
    /// `Maincare IGAP → ORBIS DPI`, a hosting provider's name.
    pub label: String,
    pub status: Status,
    /// Set when the start was a server that looks like a database: a
    /// single point of failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub database_server: bool,
}

/// it-lanscape's cause types, and guichet's relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseKind {
    /// The application itself is down (`Applicatif`).
    Application,
    /// One of its servers (`Infrastructure`).
    Server,
    /// A flow it receives (`Interface`).
    Flow,
    /// A flow it sends (`Interface sortante`).
    FlowOutgoing,
    /// Its hosting provider (`Hébergeur`).
    Hosting,
    /// An application upstream (`Dépendance amont`).
    Upstream,
    /// The EAI it is (guichet).
    Eai,
    /// The route it is (guichet).
    Route,
}

/// One establishment where an impacted application is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub establishment: String,
    pub domain: String,
    pub process: String,
    /// This occurrence's `hebergement`, else the first occurrence's;
    /// `None` when neither is given.
    pub hosting: Option<String>,
}

/// An impacted application.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    pub trigramme: String,
    /// The business map's name, else `trigrammes.json`'s, else the
    /// trigramme.
    pub name: String,
    pub status: Status,
    /// 0 for the start, 1 for what it feeds directly, and so on.
    pub depth: u8,
    /// The first occurrence's `criticite`, else `Standard`.
    pub criticality: String,
    pub causes: Vec<Cause>,
    /// Where it is used, in the order of the business map; empty when the
    /// business map does not have it.
    pub places: Vec<Place>,
}

impl Impact {
    /// The establishments where it is used, each once.
    pub fn establishments(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.places {
            if !seen.contains(&p.establishment.as_str()) {
                seen.push(&p.establishment);
            }
        }
        seen
    }
}

/// A start once found in the map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Started {
    /// `application`, `server`, `flow`, `hosting`, `eai` or `route`.
    pub kind: &'static str,
    /// As given.
    pub value: String,
    /// As it-lanscape labels it: `Maincare IGAP (GAP)`,
    /// `vdl-gap-01 (GAP) • CH Val-de-Lys`, `Maincare IGAP → ORBIS DPI •
    /// CH Val-de-Lys`, the hosting provider, the EAI or route.
    pub label: String,
    /// The node it starts from: a trigramme, `eai:NAME` or `route:NAME`
    /// (none for a flow or a hosting provider, which start several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The establishment (server, flow) or `Multi-établissements` for an
    /// application used in several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub establishment: Option<String>,
    /// For a server: its name; for an application: `domain / process`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub status: Status,
}

/// A link the propagation crossed, with the status it carried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Propagated {
    pub source: String,
    pub target: String,
    pub source_label: String,
    pub target_label: String,
    pub status: Status,
    pub interface_type: String,
}

/// The simulation's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub starts: Vec<Started>,
    /// `it-lanscape` or `guichet`.
    pub rules: &'static str,
    /// Every impacted application, most critical first, then by status
    /// (worst first), depth, trigramme.
    pub impacted: Vec<Impact>,
    /// Declared (and observed) flows stopped or degraded: the started
    /// flow, and any whose source, target or relay is at least degraded.
    pub blocked: Vec<Link>,
    /// Every link the propagation crossed, in the order it crossed them.
    pub propagation: Vec<Propagated>,
}

impl Incident {
    /// `establishment • domain / process` of every impacted application's
    /// occurrences, each once, sorted.
    pub fn processes(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .impacted
            .iter()
            .flat_map(|i| i.places.iter())
            .map(|p| format!("{} • {} / {}", p.establishment, p.domain, p.process))
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A start the map does not have, or that the rules do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("no application {value} in the map{}", close_list(.close))]
    UnknownApplication { value: String, close: Vec<String> },
    #[error("no server {value} in the map{}", close_list(.close))]
    UnknownServer { value: String, close: Vec<String> },
    #[error("server {value} exists in several establishments; name one: {}", .candidates.join(", "))]
    AmbiguousServer {
        value: String,
        candidates: Vec<String>,
    },
    #[error("no flow {value} in the map (a flow is named by its id, else SOURCE-TARGET){}", close_list(.close))]
    UnknownFlow { value: String, close: Vec<String> },
    #[error("no application is hosted by {value}{}", close_list(.close))]
    UnknownHosting { value: String, close: Vec<String> },
    #[error("no flow goes through an EAI named {value} (known: {})", .known.join(", "))]
    UnknownEai { value: String, known: Vec<String> },
    #[error("no observed traffic crosses a route named {value} (known: {})", .known.join(", "))]
    UnknownRoute { value: String, known: Vec<String> },
    #[error("an EAI or a route is a node only under guichet's rules (EAI nodes); it-lanscape's rules treat the EAI as a label")]
    NeedsEaiNodes,
}

fn close_list(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

/// Runs the simulation of `starts` (each with its status) on the map, by
/// the `rules`. `observed` adds edges under guichet's rules only.
pub fn simulate(
    atlas: &Atlas,
    observed: &[ObservedFlow],
    rules: &Rules,
    starts: &[(Start, Status)],
) -> Result<Incident, StartError> {
    let graph = graph::Graph::build(atlas, observed, rules);
    let mut run = run::Run::new(&graph);
    let mut started = Vec::new();
    for (start, status) in starts {
        started.push(start::apply(
            &graph, atlas, rules, &mut run, start, *status,
        )?);
    }
    run.spread();
    Ok(run.finish(
        started,
        if rules.eai_nodes {
            "guichet"
        } else {
            "it-lanscape"
        },
    ))
}

/// What a page needs to run the same simulation: the links the
/// propagation walks, and the node each EAI name stands for.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub links: Vec<Link>,
    pub eais: BTreeMap<String, String>,
    pub routes: std::collections::BTreeSet<String>,
    /// Each application's label (its business map name), by trigramme.
    pub labels: BTreeMap<String, String>,
}

/// The graph [`simulate`] walks under `rules`.
pub fn network(atlas: &Atlas, observed: &[ObservedFlow], rules: &Rules) -> Network {
    let graph = graph::Graph::build(atlas, observed, rules);
    let labels = graph
        .apps
        .iter()
        .map(|(tri, meta)| (tri.clone(), meta.name.clone()))
        .collect();
    Network {
        links: graph.links,
        eais: graph.eais,
        routes: graph.routes,
        labels,
    }
}

/// The EAI names whose every word appears in the application's name
/// (`Enovacom Engine` for `Enovacom Integration Engine`) and that the
/// `rules` do not tie to it: ties worth declaring in [`Rules::eai_apps`].
pub fn eai_lookalikes(atlas: &Atlas, rules: &Rules, trigramme: &str) -> Vec<String> {
    let tri = trigramme.trim().to_uppercase();
    let graph = graph::Graph::build(atlas, &[], rules);
    graph::lookalikes(atlas, &tri)
        .into_iter()
        .filter(|eai| graph.eais.get(eai) != Some(&tri))
        .collect()
}

#[cfg(test)]
mod tests;
