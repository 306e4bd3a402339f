//! guichet's own figures, which neither it-lanscape nor Mercator has:
//! how much of the declared map is encrypted and really runs, what runs
//! without being declared, and where the information system depends on
//! one EAI or one application.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::kpi::Filters;
use crate::model::{blank, text, Atlas, Flow};
use crate::observed::ObservedFlow;
use crate::round::to_fixed_1;

/// How many applications [`FlowFigures::hubs`] lists.
pub const HUBS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowFigures {
    /// Declared flows of the establishments the filters admit.
    pub flows: usize,
    /// Share of them encrypted: Mercator's `crypted` where given, else
    /// from the protocol (HTTPS, SFTP, SMTP/TLS...).
    pub encrypted_pct: f64,
    /// Observed aggregates (route, parties, message type).
    pub observed: usize,
    /// Share of observed aggregates with TLS on both sides; `null`
    /// without observation.
    pub observed_encrypted_pct: Option<f64>,
    /// Share of declared flows the gateway has seen; `null` without
    /// observation.
    pub observed_pct: Option<f64>,
    /// Observed, not declared.
    pub shadow_flows: Vec<Shadow>,
    /// Declared flows per EAI (`eaiName`), most first; `""` is direct.
    pub eai_dependency: Vec<EaiShare>,
    /// The most connected applications, by declared flows in and out.
    pub hubs: Vec<Hub>,
    /// Critical applications with at least one flow in clear.
    pub critical_in_clear: Vec<CriticalInClear>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shadow {
    /// The trigramme, or the party as observed when no mapping names it.
    pub source: String,
    pub target: String,
    pub route: String,
    pub message_type: String,
    /// Messages delivered (see [`ObservedFlow::messages`]).
    pub count: u64,
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EaiShare {
    pub eai: String,
    pub flows: usize,
    pub pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hub {
    pub trigramme: String,
    pub name: String,
    pub flows: usize,
    pub partners: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CriticalInClear {
    pub trigramme: String,
    pub name: String,
    /// Declared flows in clear (their ids), then observed routes in clear.
    pub flows: Vec<String>,
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        to_fixed_1(part as f64 / whole as f64 * 100.0)
    }
}

/// Whether an observed aggregate is an instance of a declared flow: the
/// same two applications (either way for a bidirectional flow) and, for
/// HL7 over MLLP, the same message family.
pub fn matches(flow: &Flow, seen: &ObservedFlow) -> bool {
    let (Some(from), Some(to)) = (&seen.source_trigramme, &seen.target_trigramme) else {
        return false;
    };
    let (source, target) = (flow.source(), flow.target());
    let ends = (*from == source && *to == target)
        || (flow.bidirectional == Some(true) && *from == target && *to == source);
    let family = seen.kind != "mllp"
        || blank(&flow.message_type)
        || text(&flow.message_type).eq_ignore_ascii_case(seen.family());
    ends && family
}

/// guichet's figures over the declared flows of the admitted
/// establishments and what the gateway observed.
pub fn flow_figures(atlas: &Atlas, filters: &Filters, observed: &[ObservedFlow]) -> FlowFigures {
    let flows: Vec<&Flow> = atlas
        .flows
        .iter()
        .filter(|d| {
            filters.establishments.is_empty() || filters.establishments.contains(&d.establishment)
        })
        .flat_map(|d| d.items.iter())
        .collect();
    let encrypted = flows.iter().filter(|f| f.encrypted()).count();
    let seen = flows
        .iter()
        .filter(|f| observed.iter().any(|o| matches(f, o)))
        .count();
    let observed_encrypted = observed.iter().filter(|o| o.encrypted()).count();
    let with_observation = |v: f64| (!observed.is_empty()).then_some(v);
    let names = Names::of(atlas);
    FlowFigures {
        flows: flows.len(),
        encrypted_pct: share(encrypted, flows.len()),
        observed: observed.len(),
        observed_encrypted_pct: with_observation(share(observed_encrypted, observed.len())),
        observed_pct: with_observation(share(seen, flows.len())),
        shadow_flows: shadows(&flows, observed),
        eai_dependency: eai_dependency(&flows),
        hubs: hubs(&names, &flows),
        critical_in_clear: critical_in_clear(atlas, &names, filters, &flows, observed),
    }
}

/// One shadow per pair, route, message type and encryption, in the order
/// first observed: a store-and-forward route's aggregates (`in`, `out`,
/// `retry`) are one flow, its count the messages delivered.
fn shadows(flows: &[&Flow], observed: &[ObservedFlow]) -> Vec<Shadow> {
    let mut shadows: Vec<Shadow> = Vec::new();
    for o in observed
        .iter()
        .filter(|o| !flows.iter().any(|f| matches(f, o)))
    {
        let shadow = Shadow {
            source: o
                .source_trigramme
                .clone()
                .unwrap_or_else(|| o.source.clone()),
            target: o
                .target_trigramme
                .clone()
                .unwrap_or_else(|| o.target.clone()),
            route: o.route.clone(),
            message_type: o.message_type.clone(),
            count: o.messages(),
            encrypted: o.encrypted(),
        };
        match shadows.iter_mut().find(|s| s.is_flow_of(&shadow)) {
            Some(same) => same.count += shadow.count,
            None => shadows.push(shadow),
        }
    }
    shadows
}

impl Shadow {
    /// The same undeclared flow: everything but the count.
    fn is_flow_of(&self, other: &Shadow) -> bool {
        (
            &self.source,
            &self.target,
            &self.route,
            &self.message_type,
            self.encrypted,
        ) == (
            &other.source,
            &other.target,
            &other.route,
            &other.message_type,
            other.encrypted,
        )
    }
}

fn eai_dependency(flows: &[&Flow]) -> Vec<EaiShare> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for f in flows {
        *by.entry(text(&f.eai).trim().to_string()).or_default() += 1;
    }
    let mut shares: Vec<EaiShare> = by
        .into_iter()
        .map(|(eai, n)| EaiShare {
            eai,
            flows: n,
            pct: share(n, flows.len()),
        })
        .collect();
    shares.sort_by(|a, b| b.flows.cmp(&a.flows).then_with(|| a.eai.cmp(&b.eai)));
    shares
}

/// Applications' names by trigramme: `trigrammes.json`, else the first
/// occurrence's name. Built once; a lookup per name would walk the map
/// each time.
pub struct Names(std::collections::HashMap<String, String>);

impl Names {
    pub fn of(atlas: &Atlas) -> Names {
        let mut names = std::collections::HashMap::new();
        for o in atlas.occurrences() {
            names
                .entry(o.application.trigramme())
                .or_insert_with(|| o.application.name());
        }
        names.extend(atlas.trigrammes.iter().map(|(t, n)| (t.clone(), n.clone())));
        Names(names)
    }

    /// The name, `""` when the map has none.
    pub fn get(&self, trigramme: &str) -> String {
        self.0.get(trigramme).cloned().unwrap_or_default()
    }
}

fn hubs(names: &Names, flows: &[&Flow]) -> Vec<Hub> {
    let mut by: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    for f in flows {
        let (s, t) = (f.source(), f.target());
        for (me, other) in [(&s, &t), (&t, &s)] {
            if me.is_empty() {
                continue;
            }
            let entry = by.entry(me.clone()).or_default();
            entry.0 += 1;
            entry.1.insert(other.clone());
        }
    }
    let mut hubs: Vec<Hub> = by
        .into_iter()
        .map(|(trigramme, (flows, partners))| Hub {
            name: names.get(&trigramme),
            trigramme,
            flows,
            partners: partners.len(),
        })
        .collect();
    hubs.sort_by(|a, b| {
        b.flows
            .cmp(&a.flows)
            .then_with(|| a.trigramme.cmp(&b.trigramme))
    });
    hubs.truncate(HUBS);
    hubs
}

fn critical_in_clear(
    atlas: &Atlas,
    names: &Names,
    filters: &Filters,
    flows: &[&Flow],
    observed: &[ObservedFlow],
) -> Vec<CriticalInClear> {
    let critical: BTreeSet<String> = atlas
        .occurrences()
        .filter(|o| filters.admits(o) && o.application.is_critical())
        .map(|o| o.application.trigramme())
        .filter(|t| !t.is_empty())
        .collect();
    // Each application's flows in clear, in one pass over the flows.
    let mut clear: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in flows.iter().filter(|f| !f.encrypted()) {
        let (s, t, key) = (f.source(), f.target(), f.key());
        if s != t {
            clear.entry(t).or_default().push(key.clone());
        }
        clear.entry(s).or_default().push(key);
    }
    for o in observed.iter().filter(|o| !o.encrypted()) {
        let (Some(s), Some(t)) = (&o.source_trigramme, &o.target_trigramme) else {
            continue;
        };
        let route = format!("route {}", o.route);
        if s != t {
            clear.entry(t.clone()).or_default().push(route.clone());
        }
        clear.entry(s.clone()).or_default().push(route);
    }
    critical
        .into_iter()
        .filter_map(|trigramme| {
            let mut flows = clear.remove(&trigramme)?;
            flows.dedup();
            Some(CriticalInClear {
                name: names.get(&trigramme),
                trigramme,
                flows,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
