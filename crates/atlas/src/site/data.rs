//! What the page is given: the map in it-lanscape's own shape (so the
//! page's figures follow the same rules on the same values, JavaScript
//! truthiness included), the servers, the flows, what the gateway
//! observed, and what guichet computed beforehand.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::figures::{flow_figures, matches, FlowFigures};
use crate::incident::{self, Rules};
use crate::kpi::Filters;
use crate::matrix::{of_atlas, Matrix};
use crate::model::{text, Application, Atlas, Establishment, Scalar};
use crate::observed::ObservedFlow;
use crate::quality::{analyse, markdown};
use crate::Lang;

/// Everything the page shows, as one JSON document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteData<'a> {
    /// `fr` or `en`: the language the page opens in.
    pub lang: Lang,
    /// When the data was gathered (RFC 3339), shown in the page's footer.
    pub generated: &'a str,
    /// it-lanscape's `{etablissements: [...]}`.
    pub landscape: Value,
    pub servers: Vec<Value>,
    pub flows: Vec<Value>,
    pub trigrammes: &'a std::collections::BTreeMap<String, String>,
    pub observed: &'a [ObservedFlow],
    pub figures: FlowFigures,
    pub matrix: Matrix,
    /// The data-quality report and its Markdown.
    pub quality: Value,
    /// The incident graph by it-lanscape's rules and by guichet's.
    pub incident: Value,
}

fn scalar(value: &Option<Scalar>) -> Value {
    value.as_ref().map_or(Value::Null, |s| {
        serde_json::to_value(s).unwrap_or(Value::Null)
    })
}

fn application(a: &Application) -> Value {
    let interfaces: Map<String, Value> = a
        .interfaces
        .iter()
        .map(|(family, on)| (family.clone(), Value::Bool(*on)))
        .collect();
    json!({
        "nom": scalar(&a.name),
        "description": scalar(&a.description),
        "editeur": scalar(&a.editor),
        "referent": scalar(&a.referent),
        "hebergement": scalar(&a.hosting),
        "criticite": scalar(&a.criticality),
        "multiEtablissement": scalar(&a.multi_establishment),
        "lienPRTG": scalar(&a.supervision),
        "interfaces": interfaces,
        "trigramme": a.trigramme(),
    })
}

fn establishment(e: &Establishment) -> Value {
    let domains: Vec<Value> = e
        .domains
        .iter()
        .map(|d| {
            let processes: Vec<Value> = d
                .processes
                .iter()
                .map(|p| {
                    let apps: Vec<Value> = p.applications.iter().map(application).collect();
                    json!({"nom": p.name, "description": scalar(&p.description), "applications": apps})
                })
                .collect();
            json!({"nom": d.name, "description": scalar(&d.description), "processus": processes})
        })
        .collect();
    json!({"nom": e.name, "domaines": domains})
}

/// The score, the dimensions, every finding (guichet's own marked
/// `extra`) and the Markdown report.
fn quality(atlas: &Atlas, lang: Lang) -> Value {
    let q = analyse(atlas, lang);
    let findings: Vec<&crate::quality::Finding> = q.all().collect();
    json!({"score": q.score, "dimensions": q.dimensions, "findings": findings, "markdown": markdown(&q, lang)})
}

/// The links the page's simulation walks, and each EAI's node.
fn links(network: &incident::Network) -> Value {
    let links: Vec<Value> = network
        .links
        .iter()
        .map(|l| {
            json!({"source": l.source, "target": l.target, "iface": l.interface_type,
                        "sourceLabel": l.source_label, "targetLabel": l.target_label})
        })
        .collect();
    json!({"links": links, "eais": network.eais, "routes": network.routes})
}

impl<'a> SiteData<'a> {
    pub fn new(
        atlas: &'a Atlas,
        observed: &'a [ObservedFlow],
        lang: Lang,
        generated: &'a str,
    ) -> SiteData<'a> {
        let servers = atlas
            .all_servers()
            .map(|(etab, s)| {
                json!({"etablissement": etab, "vm": text(&s.vm), "ip": text(&s.ip),
                       "role": text(&s.role), "declaredRole": text(&s.declared_role),
                       "os": text(&s.os), "trigramme": s.trigramme()})
            })
            .collect();
        let flows = atlas
            .all_flows()
            .map(|(etab, f)| {
                json!({"etablissement": etab, "id": f.key(), "source": f.source(), "target": f.target(),
                       "protocol": text(&f.protocol), "port": scalar(&f.port),
                       "messageType": text(&f.message_type), "interfaceType": text(&f.interface_type),
                       "eai": text(&f.eai), "description": text(&f.description),
                       "encrypted": f.encrypted(), "bidirectional": f.bidirectional == Some(true),
                       "observed": observed.iter().any(|o| matches(f, o))})
            })
            .collect();
        let establishments: Vec<Value> = atlas.establishments.iter().map(establishment).collect();
        SiteData {
            lang,
            generated,
            landscape: json!({ "etablissements": establishments }),
            servers,
            flows,
            trigrammes: &atlas.trigrammes,
            observed,
            figures: flow_figures(atlas, &Filters::default(), observed),
            matrix: of_atlas(atlas, observed),
            quality: quality(atlas, lang),
            incident: json!({
                "itLanscape": links(&incident::network(atlas, &[], &Rules::default())),
                "guichet": links(&incident::network(atlas, observed, &Rules { eai_nodes: true, ..Rules::default() })),
            }),
        }
    }
}
