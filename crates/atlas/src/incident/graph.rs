//! The graph the propagation walks: the applications the business map
//! knows (first occurrence wins, as in it-lanscape), and the links between
//! nodes, in the order of the data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::{Place, Rules};
use crate::figures::matches;
use crate::model::{text, Atlas, Flow, Scalar};
use crate::observed::ObservedFlow;

/// What a link stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// A flow of a `.flux.json`.
    Declared,
    /// Traffic the gateway saw (guichet's rules).
    Observed,
    /// The hop out of a relay node (an EAI or a route) to the target of a
    /// flow that goes through it (guichet's rules).
    Relay,
}

/// A directed link between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub kind: LinkKind,
    /// The flow's key ([`Flow::key`]), or the route of observed traffic.
    pub key: String,
    /// A trigramme, `eai:NAME` or `route:NAME`.
    pub source: String,
    pub target: String,
    pub source_label: String,
    pub target_label: String,
    pub interface_type: String,
    /// The establishment whose file declares it; none when observed.
    pub establishment: Option<String>,
    pub protocol: String,
    pub message_type: String,
    /// The relay node it crosses (guichet's rules).
    pub via: Option<String>,
}

/// An application as the incident page knows it: from its first
/// occurrence, with every place it is used.
pub(super) struct AppMeta {
    pub name: String,
    pub criticality: String,
    pub hosting: Option<Scalar>,
    /// Any occurrence marked `multiEtablissement`.
    pub multi: bool,
    pub places: Vec<Place>,
}

pub(super) struct Graph {
    /// Trigramme → application, and the trigrammes in first-seen order.
    pub apps: HashMap<String, AppMeta>,
    pub order: Vec<String>,
    /// `trigrammes.json`.
    pub names: BTreeMap<String, String>,
    pub links: Vec<Link>,
    /// Link indices by source node.
    pub outgoing: HashMap<String, Vec<usize>>,
    /// EAI name → its node (a trigramme when tied, else `eai:NAME`).
    pub eais: BTreeMap<String, String>,
    /// Route names observed traffic crosses.
    pub routes: BTreeSet<String>,
}

fn apps(atlas: &Atlas) -> (HashMap<String, AppMeta>, Vec<String>) {
    let (mut apps, mut order) = (HashMap::<String, AppMeta>::new(), Vec::new());
    for o in atlas.occurrences() {
        let a = o.application;
        let tri = a.trigramme();
        if tri.is_empty() {
            continue;
        }
        let meta = apps.entry(tri.clone()).or_insert_with(|| {
            order.push(tri);
            AppMeta {
                name: a.name(),
                criticality: non_empty(&a.criticality).unwrap_or_else(|| "Standard".into()),
                hosting: a.hosting.clone(),
                multi: false,
                places: Vec::new(),
            }
        });
        meta.multi |= a.is_multi();
        let hosting = non_empty(&a.hosting).or_else(|| non_empty(&meta.hosting));
        meta.places.push(Place {
            establishment: o.establishment.name.clone(),
            domain: o.domain.name.clone(),
            process: o.process.name.clone(),
            hosting,
        });
    }
    (apps, order)
}

/// The text of a truthy field (JavaScript's `a || fallback`).
fn non_empty(value: &Option<Scalar>) -> Option<String> {
    value.as_ref().filter(|s| s.truthy()).map(Scalar::text)
}

/// An EAI name that makes a node: not blank, not `Direct`.
fn eai_name(flow: &Flow) -> Option<String> {
    let name = text(&flow.eai).trim().to_string();
    (!name.is_empty() && !name.eq_ignore_ascii_case("direct")).then_some(name)
}

impl Graph {
    pub fn build(atlas: &Atlas, observed: &[ObservedFlow], rules: &Rules) -> Graph {
        let (apps, order) = apps(atlas);
        let mut graph = Graph {
            apps,
            order,
            names: atlas.trigrammes.clone(),
            links: Vec::new(),
            outgoing: HashMap::new(),
            eais: BTreeMap::new(),
            routes: BTreeSet::new(),
        };
        for (establishment, flow) in atlas.all_flows() {
            graph.add_declared(establishment, flow, rules);
        }
        if rules.eai_nodes {
            for seen in observed {
                graph.add_observed(atlas, seen);
            }
        }
        for (i, link) in graph.links.iter().enumerate() {
            graph
                .outgoing
                .entry(link.source.clone())
                .or_default()
                .push(i);
        }
        graph
    }

    /// it-lanscape's `labelForTri`: the business map's name, else the
    /// trigramme. Relay nodes are labelled by their name.
    pub fn label(&self, node: &str) -> String {
        if let Some(name) = node
            .strip_prefix("eai:")
            .or_else(|| node.strip_prefix("route:"))
        {
            return name.to_string();
        }
        match self.apps.get(node) {
            Some(meta) => meta.name.clone(),
            None => node.to_string(),
        }
    }

    /// Whether the node is an application (not an untied EAI or a route).
    pub fn is_application(node: &str) -> bool {
        !node.starts_with("eai:") && !node.starts_with("route:")
    }

    /// A trigramme the map names anywhere: business map, `trigrammes.json`,
    /// a flow.
    pub fn knows(&self, trigramme: &str) -> bool {
        self.apps.contains_key(trigramme)
            || self.names.contains_key(trigramme)
            || self
                .links
                .iter()
                .any(|l| l.source == trigramme || l.target == trigramme)
    }

    fn add_declared(&mut self, establishment: &str, flow: &Flow, rules: &Rules) {
        let (source, target) = (flow.source(), flow.target());
        let mut link = Link {
            kind: LinkKind::Declared,
            key: flow.key(),
            source_label: self.label(&source),
            target_label: self.label(&target),
            source,
            target,
            interface_type: text(&flow.interface_type),
            establishment: Some(establishment.to_string()),
            protocol: text(&flow.protocol),
            message_type: text(&flow.message_type),
            via: None,
        };
        let relay = rules
            .eai_nodes
            .then(|| eai_name(flow))
            .flatten()
            .map(|name| match self.eais.get(&name) {
                Some(node) => node.clone(),
                None => {
                    let node = self.eai_node(&name, rules);
                    self.eais.insert(name, node.clone());
                    node
                }
            });
        link.via = relay.clone();
        self.links.push(link.clone());
        if let Some(node) = relay {
            self.push_relay(link, node);
        }
    }

    /// The hop from `node` to the target of `link`, which goes through it.
    fn push_relay(&mut self, link: Link, node: String) {
        self.links.push(Link {
            kind: LinkKind::Relay,
            source_label: self.label(&node),
            source: node,
            via: None,
            ..link
        });
    }

    fn add_observed(&mut self, atlas: &Atlas, seen: &ObservedFlow) {
        let party = |t: &Option<String>| t.as_deref().map(|t| t.trim().to_uppercase());
        let (Some(source), Some(target)) =
            (party(&seen.source_trigramme), party(&seen.target_trigramme))
        else {
            return;
        };
        if source.is_empty() || target.is_empty() {
            return;
        }
        // The declared flow it is an instance of lends its interface type.
        let declared = atlas.all_flows().map(|(_, f)| f).find(|f| matches(f, seen));
        let node = format!("route:{}", seen.route);
        self.routes.insert(seen.route.clone());
        let link = Link {
            kind: LinkKind::Observed,
            key: seen.route.clone(),
            source_label: self.label(&source),
            target_label: self.label(&target),
            source,
            target,
            interface_type: declared
                .map(|f| text(&f.interface_type))
                .unwrap_or_default(),
            establishment: None,
            protocol: seen.kind.clone(),
            message_type: seen.message_type.clone(),
            via: Some(node.clone()),
        };
        self.links.push(link.clone());
        self.push_relay(link, node);
    }

    /// The node of an EAI: the application it is tied to, else `eai:NAME`.
    fn eai_node(&self, name: &str, rules: &Rules) -> String {
        let wanted = name.trim().to_lowercase();
        let explicit = rules
            .eai_apps
            .iter()
            .find(|(eai, _)| eai.trim().to_lowercase() == wanted)
            .map(|(_, tri)| tri.trim().to_uppercase());
        explicit
            .or_else(|| self.named(&wanted))
            .or_else(|| {
                let tri = name.trim().to_uppercase();
                self.knows(&tri).then_some(tri)
            })
            .unwrap_or_else(|| format!("eai:{name}"))
    }

    /// The one trigramme whose name (either source) is `wanted`.
    fn named(&self, wanted: &str) -> Option<String> {
        let mut found: BTreeSet<&String> = self
            .names
            .iter()
            .filter(|(_, n)| n.trim().to_lowercase() == wanted)
            .map(|(t, _)| t)
            .collect();
        found.extend(
            self.apps
                .iter()
                .filter(|(_, m)| m.name.trim().to_lowercase() == wanted)
                .map(|(t, _)| t),
        );
        match found.len() {
            1 => found.into_iter().next().cloned(),
            _ => None,
        }
    }
}

/// The EAI names (from the flows) whose every word is in the name of the
/// application `trigramme`.
pub(super) fn lookalikes(atlas: &Atlas, trigramme: &str) -> Vec<String> {
    let tri = trigramme.trim().to_uppercase();
    let names: Vec<String> = atlas
        .occurrences()
        .filter(|o| o.application.trigramme() == tri)
        .map(|o| o.application.name())
        .chain(atlas.trigrammes.get(&tri).cloned())
        .collect();
    let words = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let eais: BTreeSet<String> = atlas.all_flows().filter_map(|(_, f)| eai_name(f)).collect();
    eais.into_iter()
        .filter(|eai| {
            names.iter().any(|n| {
                let have = words(n);
                words(eai).iter().all(|w| have.contains(w))
            })
        })
        .collect()
}
