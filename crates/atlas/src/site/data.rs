//! What the page is given: the map in it-lanscape's own shape (so the
//! page's figures follow the same rules on the same values, JavaScript
//! truthiness included), the servers, the flows, what the gateway
//! observed, and what guichet computed beforehand.
//!
//! Each thing is sent once, in a compact shape the page unpacks
//! (page.js, `unpack`): rows as arrays, every repeated text once in
//! `strings` and named by its index, no field the page does not read.
//! What the page can derive (the flow matrix and the incident graphs
//! from the flows, the quality report's Markdown from the findings) it
//! derives.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::figures::{flow_figures, matches};
use crate::incident::{self, LinkKind, Rules};
use crate::kpi::Filters;
use crate::model::{text, Application, Atlas, Establishment, Scalar};
use crate::observed::ObservedFlow;
use crate::quality::{analyse, Dimension, Severity};
use crate::Lang;

/// Everything the page shows, as one JSON document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteData<'a> {
    /// `fr` or `en`: the language the page opens in.
    pub lang: Lang,
    /// When the data was gathered (RFC 3339), shown in the page's footer.
    pub generated: &'a str,
    /// Every text the fields below name by index.
    pub strings: Vec<String>,
    /// it-lanscape's business map: `etablissements` as nested rows, the
    /// distinct applications apart.
    pub landscape: Value,
    pub servers: Vec<Value>,
    /// `[etablissement, id, source, target, kind]` each.
    pub flows: Vec<Value>,
    /// `[protocol, port, messageType, interfaceType, eaiName, marks]`,
    /// which flows alike share; `marks` has bit 1 for encrypted, bit 2 for
    /// observed.
    pub flow_kinds: Vec<Value>,
    pub trigrammes: &'a BTreeMap<String, String>,
    /// What the page reads of each observed aggregate (its figures, its
    /// matrix), and whether a declared flow accounts for it; `count` is
    /// the messages it adds to the matrix ([`ObservedFlow::messages`]).
    pub observed: Vec<Value>,
    /// Observed flows no declaration accounts for.
    pub shadow_flows: usize,
    /// The data-quality score, the dimensions and every finding (guichet's
    /// own marked `extra`).
    pub quality: Value,
    /// What the page adds to the flows to walk the incident graph by
    /// it-lanscape's rules and by guichet's.
    pub incident: Value,
}

/// Texts sent once and named by their index.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Strings {
    fn id(&mut self, text: &str) -> Value {
        if let Some(&i) = self.index.get(text) {
            return i.into();
        }
        let i = self.list.len();
        self.list.push(text.to_string());
        self.index.insert(text.to_string(), i);
        i.into()
    }

    /// A field as the data gives it: a text by its index, a number in a
    /// one-element array (so it is not taken for an index), `true`,
    /// `false` and `null` as they are.
    fn scalar(&mut self, value: &Option<Scalar>) -> Value {
        match value {
            None => Value::Null,
            Some(Scalar::Text(s)) => self.id(s),
            Some(Scalar::Bool(b)) => Value::Bool(*b),
            Some(n @ Scalar::Number(_)) => json!([n]),
        }
    }
}

/// Rows sent once, named by their index.
#[derive(Default)]
struct Rows {
    list: Vec<Value>,
    index: HashMap<String, usize>,
}

impl Rows {
    fn id(&mut self, row: Value) -> usize {
        let next = self.list.len();
        let i = *self.index.entry(row.to_string()).or_insert(next);
        if i == next {
            self.list.push(row);
        }
        i
    }
}

/// The name serde gives a unit variant (`critical`, `coherence`...).
fn variant(value: impl Serialize) -> String {
    json!(value).as_str().unwrap_or_default().to_string()
}

fn truthy(value: &Option<Scalar>) -> bool {
    value.as_ref().is_some_and(Scalar::truthy)
}

/// `[nom, editeur, hebergement, criticite, multiEtablissement, filled,
/// interfaces, trigramme]`: `filled` has bit 1 for a truthy `referent`
/// and bit 2 for a truthy `lienPRTG` (all the page asks of them), and
/// `interfaces` lists the families set, in name order.
fn application(a: &Application, s: &mut Strings) -> Value {
    let interfaces: Map<String, Value> = a
        .interfaces
        .iter()
        .map(|(family, on)| (family.clone(), Value::Bool(*on)))
        .collect();
    let on: Vec<Value> = interfaces
        .iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .map(|(family, _)| s.id(family))
        .collect();
    let filled = u8::from(truthy(&a.referent)) | (u8::from(truthy(&a.supervision)) << 1);
    json!([
        s.scalar(&a.name),
        s.scalar(&a.editor),
        s.scalar(&a.hosting),
        s.scalar(&a.criticality),
        s.scalar(&a.multi_establishment),
        filled,
        on,
        s.id(&a.trigramme()),
    ])
}

/// `{etablissements: [[nom, [[domaine, [[processus, [app...]]...]]...]]...],
/// applications: [...]}`, where an `app` is the index of its row in
/// `applications` (occurrences alike share one).
fn landscape(establishments: &[Establishment], s: &mut Strings) -> Value {
    let mut apps = Rows::default();
    let mut app = |a: &Application, s: &mut Strings| apps.id(application(a, s));
    let etabs: Vec<Value> = establishments
        .iter()
        .map(|e| {
            let domains: Vec<Value> = e
                .domains
                .iter()
                .map(|d| {
                    let processes: Vec<Value> = d
                        .processes
                        .iter()
                        .map(|p| {
                            let list: Vec<usize> =
                                p.applications.iter().map(|a| app(a, s)).collect();
                            json!([s.id(&p.name), list])
                        })
                        .collect();
                    json!([s.id(&d.name), processes])
                })
                .collect();
            json!([s.id(&e.name), domains])
        })
        .collect();
    json!({"etablissements": etabs, "applications": apps.list})
}

/// A finding's message, which mostly begins with its subject (`GAP est
/// porté par plusieurs applications.`): then the index of the rest, else
/// the whole text.
fn message(subject: &str, message: &str, s: &mut Strings) -> Value {
    match message.strip_prefix(subject) {
        Some(rest) if !subject.is_empty() => s.id(rest),
        _ => message.into(),
    }
}

/// `{score, dimensions, metrics, labels, kinds, findings}`: a finding is
/// `[kind, subject, message]` (`message` as [`message`] gives it), a kind
/// `[severity, dimension, code, title, recommendation, extra]`, which
/// findings alike share; `labels` names the severities and dimensions in the site's
/// language, for the Markdown report the page writes.
fn quality(atlas: &Atlas, lang: Lang, s: &mut Strings) -> Value {
    let q = analyse(atlas, lang);
    let mut kinds = Rows::default();
    let findings: Vec<Value> = q
        .all()
        .map(|f| {
            let kind = kinds.id(json!([
                s.id(&variant(f.severity)),
                s.id(&variant(f.dimension)),
                s.id(f.code),
                s.id(&f.title),
                s.id(&f.recommendation),
                u8::from(f.extra),
            ]));
            json!([kind, s.id(&f.subject), message(&f.subject, &f.message, s)])
        })
        .collect();
    let mut labels = Map::new();
    for severity in Severity::ALL {
        labels.insert(variant(severity), severity.label(lang).into());
    }
    for dimension in Dimension::ALL {
        labels.insert(variant(dimension), dimension.label(lang).into());
    }
    let dimensions: Map<String, Value> = Dimension::ALL
        .iter()
        .map(|d| {
            let score = q.dimensions.get(*d);
            (
                variant(d),
                json!({"score": score.score, "passed": score.passed, "total": score.total}),
            )
        })
        .collect();
    let m = &q.metrics;
    json!({"score": q.score, "dimensions": dimensions, "labels": labels, "kinds": kinds.list, "findings": findings,
           "metrics": {"establishments": m.establishments, "applications": m.applications, "servers": m.servers,
                       "networkServers": m.network_servers, "flows": m.flows}})
}

/// The incident graphs are the flows, one link each, plus by guichet's
/// rules a hop out of each EAI node a flow crosses (`relays`: a flow's
/// `eaiName` → its node) and the links of observed traffic (`observed`).
/// `labels` names each application as the graph labels it.
fn incident(atlas: &Atlas, observed: &[ObservedFlow]) -> Value {
    let rules = Rules {
        eai_nodes: true,
        ..Rules::default()
    };
    let network = incident::network(atlas, observed, &rules);
    let mut relays = BTreeMap::new();
    let declared = network
        .links
        .iter()
        .filter(|l| l.kind == LinkKind::Declared);
    for ((_, flow), link) in atlas.all_flows().zip(declared) {
        debug_assert_eq!(flow.key(), link.key);
        if let Some(node) = &link.via {
            relays.insert(text(&flow.eai), node.clone());
        }
    }
    let observed_links: Vec<Value> = network
        .links
        .iter()
        .filter(|l| l.establishment.is_none())
        .map(|l| {
            json!({"source": l.source, "target": l.target, "iface": l.interface_type,
                   "sourceLabel": l.source_label, "targetLabel": l.target_label})
        })
        .collect();
    json!({"eais": network.eais, "routes": network.routes, "relays": relays,
           "labels": network.labels, "observed": observed_links})
}

impl<'a> SiteData<'a> {
    pub fn new(
        atlas: &'a Atlas,
        observed: &'a [ObservedFlow],
        lang: Lang,
        generated: &'a str,
    ) -> SiteData<'a> {
        let mut s = Strings::default();
        let servers = atlas
            .all_servers()
            .map(|(etab, server)| {
                json!([
                    s.id(etab),
                    text(&server.vm),
                    text(&server.ip),
                    s.id(&text(&server.role)),
                    s.id(&text(&server.declared_role)),
                    s.id(&text(&server.os)),
                    s.id(&server.trigramme())
                ])
            })
            .collect();
        let mut kinds = Rows::default();
        let flows = atlas
            .all_flows()
            .map(|(etab, f)| {
                let seen = observed.iter().any(|o| matches(f, o));
                let kind = kinds.id(json!([
                    s.id(&text(&f.protocol)),
                    s.scalar(&f.port),
                    s.id(&text(&f.message_type)),
                    s.id(&text(&f.interface_type)),
                    s.id(&text(&f.eai)),
                    u8::from(f.encrypted()) | (u8::from(seen) << 1)
                ]));
                json!([
                    s.id(etab),
                    f.key(),
                    s.id(&f.source()),
                    s.id(&f.target()),
                    kind
                ])
            })
            .collect();
        let observed_read = observed
            .iter()
            .map(|o| {
                json!({"source_trigramme": o.source_trigramme, "target_trigramme": o.target_trigramme,
                       "tls_in": o.tls_in, "tls_out": o.tls_out, "kind": o.kind, "message_type": o.message_type,
                       "count": o.messages(), "declared": atlas.all_flows().any(|(_, f)| matches(f, o))})
            })
            .collect();
        let landscape = landscape(&atlas.establishments, &mut s);
        let quality = quality(atlas, lang, &mut s);
        SiteData {
            lang,
            generated,
            landscape,
            servers,
            flows,
            flow_kinds: kinds.list,
            trigrammes: &atlas.trigrammes,
            observed: observed_read,
            shadow_flows: flow_figures(atlas, &Filters::default(), observed)
                .shadow_flows
                .len(),
            quality,
            incident: incident(atlas, observed),
            strings: s.list,
        }
    }
}
