//! The propagation, step for step as it-lanscape's `runAnalysis`: impacts
//! merge (the worst status and the smallest depth win, causes accumulate
//! by label), and a breadth-first walk re-queues a node only when its
//! status or depth improved, visiting each (node, depth) once.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::graph::{Graph, LinkKind};
use super::{Cause, CauseKind, Impact, Incident, Propagated, Started, Status};

/// it-lanscape's `MAX_DEPTH`: nothing propagates this far.
pub(super) const MAX_DEPTH: u8 = 5;

/// What one node has taken so far.
struct Entry {
    node: String,
    status: Status,
    depth: u8,
    causes: Vec<Cause>,
}

pub(super) struct Run<'g> {
    graph: &'g Graph,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    propagation: Vec<Propagated>,
    /// Keys of the flows an incident starts from.
    pub flows: BTreeSet<String>,
}

/// it-lanscape's `propagateStatus`: the status a link carries to a node at
/// `depth`, attenuated by depth and interface type; `None` stops it.
pub(super) fn propagate(status: Status, depth: u8, interface_type: &str) -> Option<Status> {
    let severe = status >= Status::Degrade;
    match depth {
        d if d >= MAX_DEPTH => None,
        0 => Some(status),
        1 if is_synchronous(interface_type) => Some(status.indirect()),
        _ => severe.then_some(Status::Latence),
    }
}

/// `/(sync|temps.r[eé]el|eai|middleware|api)/i`.
pub(super) fn is_synchronous(interface_type: &str) -> bool {
    let t = interface_type.to_lowercase();
    ["sync", "eai", "middleware", "api"]
        .iter()
        .any(|w| t.contains(w))
        || t.match_indices("temps")
            .any(|(i, _)| real_time_after(&t[i + 5..]))
}

/// `.r[eé]el` at the start of `rest` (`.` is any character but a line
/// break).
fn real_time_after(rest: &str) -> bool {
    let mut chars = rest.chars();
    let any = chars
        .next()
        .is_some_and(|c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'));
    let tail = chars.as_str();
    any && (tail.starts_with("reel") || tail.starts_with("réel"))
}

/// it-lanscape's `isCriticalServer`: the role has one of these words
/// (ASCII word boundaries, as JavaScript's `\b`).
pub(super) fn looks_like_database(role: &str) -> bool {
    const WORDS: [&str; 10] = [
        "db", "database", "base", "bdd", "sql", "oracle", "mysql", "postgres", "mongo", "data",
    ];
    role.to_lowercase()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| WORDS.contains(&word))
}

fn criticality_rank(c: &str) -> u8 {
    match c {
        "Critique" => 2,
        "Standard" => 1,
        _ => 0,
    }
}

impl<'g> Run<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        Run {
            graph,
            entries: Vec::new(),
            index: HashMap::new(),
            propagation: Vec::new(),
            flows: BTreeSet::new(),
        }
    }

    pub fn status_of(&self, node: &str) -> Option<Status> {
        self.index.get(node).map(|&i| self.entries[i].status)
    }

    /// it-lanscape's `addAppImpact`: true when the node's status or depth
    /// improved (so it must be walked from again).
    pub fn add(&mut self, node: &str, status: Status, cause: Cause, depth: u8) -> bool {
        if node.is_empty() {
            return false;
        }
        let Some(&i) = self.index.get(node) else {
            self.index.insert(node.to_string(), self.entries.len());
            self.entries.push(Entry {
                node: node.to_string(),
                status,
                depth,
                causes: vec![cause],
            });
            return true;
        };
        let e = &mut self.entries[i];
        let merged = e.status.max(status);
        if !e.causes.iter().any(|c| same_label(c, &cause)) {
            e.causes.push(cause);
        }
        let improved = merged != e.status || depth < e.depth;
        e.status = merged;
        e.depth = e.depth.min(depth);
        improved
    }

    /// The breadth-first walk from every node impacted so far.
    pub fn spread(&mut self) {
        let mut queue: VecDeque<(String, Status, u8)> = self
            .entries
            .iter()
            .map(|e| (e.node.clone(), e.status, e.depth))
            .collect();
        let mut visited = HashSet::new();
        while let Some((node, status, depth)) = queue.pop_front() {
            if !visited.insert((node.clone(), depth)) {
                continue;
            }
            let graph = self.graph;
            for &i in graph.outgoing.get(&node).into_iter().flatten() {
                let link = &graph.links[i];
                let Some(carried) = propagate(status, depth + 1, &link.interface_type) else {
                    continue;
                };
                self.propagation.push(Propagated {
                    source: link.source.clone(),
                    target: link.target.clone(),
                    source_label: link.source_label.clone(),
                    target_label: link.target_label.clone(),
                    status: carried,
                    interface_type: link.interface_type.clone(),
                });
                let cause = Cause {
                    kind: CauseKind::Upstream,
                    label: format!("{} → {}", link.source_label, link.target_label),
                    status: carried,
                    database_server: false,
                };
                if self.add(&link.target, carried, cause, depth + 1) {
                    queue.push_back((link.target.clone(), carried, depth + 1));
                }
            }
        }
    }

    pub fn finish(self, starts: Vec<Started>, rules: &'static str) -> Incident {
        let blocked = self.blocked();
        let mut impacted: Vec<Impact> = self
            .entries
            .into_iter()
            .filter(|e| Graph::is_application(&e.node))
            .map(|e| impact(self.graph, e))
            .collect();
        impacted.sort_by_cached_key(|i| {
            (
                Reverse(criticality_rank(&i.criticality)),
                Reverse(i.status),
                i.depth,
                i.trigramme.clone(),
            )
        });
        Incident {
            starts,
            rules,
            impacted,
            blocked,
            propagation: self.propagation,
        }
    }

    /// Flows stopped (a started flow) or whose source, target or relay is
    /// at least degraded.
    fn blocked(&self) -> Vec<super::Link> {
        let severe = |node: &str| self.status_of(node).is_some_and(|s| s >= Status::Degrade);
        self.graph
            .links
            .iter()
            .filter(|l| l.kind != LinkKind::Relay)
            .filter(|l| {
                (l.kind == LinkKind::Declared && self.flows.contains(&l.key))
                    || severe(&l.source)
                    || severe(&l.target)
                    || l.via.as_deref().is_some_and(severe)
            })
            .cloned()
            .collect()
    }
}

/// it-lanscape keeps one cause per label; a hosting provider's label is
/// `Hébergeur : NAME` there.
fn same_label(a: &Cause, b: &Cause) -> bool {
    let full = |c: &Cause| match c.kind {
        CauseKind::Hosting => format!("Hébergeur : {}", c.label),
        _ => c.label.clone(),
    };
    full(a) == full(b)
}

fn impact(graph: &Graph, e: Entry) -> Impact {
    let meta = graph.apps.get(&e.node);
    let name = meta
        .map(|m| m.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| graph.names.get(&e.node).cloned())
        .unwrap_or_else(|| e.node.clone());
    Impact {
        name,
        status: e.status,
        depth: e.depth,
        criticality: meta.map_or_else(|| "Standard".into(), |m| m.criticality.clone()),
        causes: e.causes,
        places: meta.map(|m| m.places.clone()).unwrap_or_default(),
        trigramme: e.node,
    }
}
