//! What the checks look things up in, built once from the map as
//! it-lanscape's `analyzeDataQuality` builds it: the trigrammes known,
//! used by applications, servers and flows, the servers' addresses and
//! names on each side, flows per trigramme, applications per trigramme,
//! and the establishments each kind of file covers.

use std::collections::{HashMap, HashSet};

use crate::model::{Atlas, Vlan};

use super::js::{or_empty, set_key, string, string_or_undefined, truthy_value};

pub(crate) struct Context<'a> {
    pub atlas: &'a Atlas,
    /// `trigrammes.json`'s codes, normalised.
    pub known: HashSet<String>,
    /// Non-empty trigrammes of applications.
    pub app_trigrammes: HashSet<String>,
    /// Non-empty trigrammes of servers.
    pub server_trigrammes: HashSet<String>,
    /// Non-empty trigrammes of flows, in order of first appearance.
    pub flow_trigrammes: Vec<String>,
    /// Flows (as source or target) per trigramme.
    pub flows_by_trigramme: HashMap<String, usize>,
    /// Application occurrences per trigramme.
    pub apps_by_trigramme: HashMap<String, usize>,
    /// Servers' addresses ([`set_key`]) and lower-case names, from the
    /// infrastructure files and from the VLANs.
    pub server_ips: HashSet<String>,
    pub server_names: HashSet<String>,
    pub network_ips: HashSet<String>,
    pub network_names: HashSet<String>,
    pub infra_establishments: HashSet<&'a str>,
    pub network_establishments: HashSet<&'a str>,
    pub flow_establishments: HashSet<&'a str>,
}

impl<'a> Context<'a> {
    pub fn new(atlas: &'a Atlas) -> Self {
        let mut cx = Context {
            atlas,
            known: atlas.trigrammes.keys().cloned().collect(),
            app_trigrammes: HashSet::new(),
            server_trigrammes: HashSet::new(),
            flow_trigrammes: Vec::new(),
            flows_by_trigramme: HashMap::new(),
            apps_by_trigramme: HashMap::new(),
            server_ips: HashSet::new(),
            server_names: HashSet::new(),
            network_ips: HashSet::new(),
            network_names: HashSet::new(),
            infra_establishments: names(&atlas.infrastructure),
            network_establishments: names(&atlas.network),
            flow_establishments: names(&atlas.flows),
        };
        cx.applications();
        cx.servers();
        cx.flows();
        cx
    }

    fn applications(&mut self) {
        for o in self.atlas.occurrences() {
            let code = o.application.trigramme();
            if !code.is_empty() {
                *self.apps_by_trigramme.entry(code.clone()).or_default() += 1;
                self.app_trigrammes.insert(code);
            }
        }
    }

    fn servers(&mut self) {
        for (_, s) in self.atlas.all_servers() {
            let code = s.trigramme();
            if !code.is_empty() {
                self.server_trigrammes.insert(code);
            }
            if let Some(ip) = truthy_value(&s.ip) {
                self.server_ips.insert(set_key(ip));
            }
            insert_name(&mut self.server_names, or_empty(&s.vm));
        }
        for vlan in self.atlas.network.iter().flat_map(|d| &d.items) {
            for s in &vlan.servers {
                if let Some(ip) = truthy_value(&s.ip) {
                    self.network_ips.insert(set_key(ip));
                }
                insert_name(&mut self.network_names, or_empty(&s.name));
            }
        }
    }

    fn flows(&mut self) {
        for (_, f) in self.atlas.all_flows() {
            for code in [f.source(), f.target()] {
                if code.is_empty() {
                    continue;
                }
                *self.flows_by_trigramme.entry(code.clone()).or_default() += 1;
                if !self.flow_trigrammes.contains(&code) {
                    self.flow_trigrammes.push(code);
                }
            }
        }
    }

    /// Whether `trigrammes.json` holds this (normalised) code.
    pub fn is_known(&self, code: &str) -> bool {
        self.known.contains(code)
    }
}

fn names<T>(datasets: &[crate::model::Dataset<T>]) -> HashSet<&str> {
    datasets.iter().map(|d| d.establishment.as_str()).collect()
}

fn insert_name(names: &mut HashSet<String>, name: String) {
    if !name.is_empty() {
        names.insert(name.to_lowercase());
    }
}

/// A VLAN's name for its servers: its own `nom`, else `VLAN-<id>`.
pub(crate) fn vlan_of_servers(vlan: &Vlan) -> String {
    match truthy_value(&vlan.nom) {
        Some(nom) => string(nom),
        None => format!("VLAN-{}", string_or_undefined(&vlan.id)),
    }
}
