//! What the map holds: the business map (establishment → domain → process
//! → application), the servers, the VLANs, the flows and the trigrammes.
//!
//! Field values keep the JSON kind they were written with ([`Scalar`]):
//! it-lanscape judges them with JavaScript's truthiness and `String()`, and
//! its figures depend on it (a port written `"2575"` is not an integer).

use std::collections::BTreeMap;

use serde::Serialize;

/// A scalar field as written: text, number or boolean. `null` and a
/// missing field are `None` where the field is an `Option<Scalar>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    /// The value as JavaScript's `String()` writes it.
    pub fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// JavaScript truthiness: not `""`, `0`, `false`.
    pub fn truthy(&self) -> bool {
        match self {
            Scalar::Text(s) => !s.is_empty(),
            Scalar::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Scalar::Bool(b) => *b,
        }
    }

    /// it-lanscape's `blank()`: nothing but white space once written out.
    pub fn blank(&self) -> bool {
        match self {
            Scalar::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The text, when the value is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Truthiness of an optional field (`null` and missing are false).
pub fn truthy(value: &Option<Scalar>) -> bool {
    value.as_ref().is_some_and(Scalar::truthy)
}

/// it-lanscape's `blank()` of an optional field.
pub fn blank(value: &Option<Scalar>) -> bool {
    value.as_ref().is_none_or(Scalar::blank)
}

/// The field as JavaScript's `String()` would show it, `""` when absent.
pub fn text(value: &Option<Scalar>) -> String {
    value.as_ref().map(Scalar::text).unwrap_or_default()
}

/// A trigramme as it-lanscape compares them: trimmed, upper case.
pub fn normalise_trigramme(value: &Option<Scalar>) -> String {
    match value {
        Some(s) if s.truthy() => s.text().trim().to_uppercase(),
        _ => String::new(),
    }
}

/// The whole map, as read from one data folder.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Atlas {
    /// The business map, from every `<etab>.json` that has an
    /// `etablissements` key, in file-name order.
    pub establishments: Vec<Establishment>,
    /// One entry per `<etab>.infra.json`: the establishment it names and
    /// its servers.
    pub infrastructure: Vec<Dataset<Server>>,
    /// One entry per `<etab>.network.json`.
    pub network: Vec<Dataset<Vlan>>,
    /// One entry per `<etab>.flux.json`.
    pub flows: Vec<Dataset<Flow>>,
    /// `trigrammes.json`: trigramme → application name.
    pub trigrammes: BTreeMap<String, String>,
}

/// What one file of servers, VLANs or flows holds for its establishment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset<T> {
    /// `etablissement`, else `nom`, else the file name without its suffix.
    pub establishment: String,
    /// The file it came from, for messages.
    pub file: String,
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Establishment {
    pub name: String,
    pub domains: Vec<Domain>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub name: String,
    pub description: Option<Scalar>,
    pub processes: Vec<Process>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub name: String,
    pub description: Option<Scalar>,
    pub applications: Vec<Application>,
}

/// One application *occurrence*: the same application declared in three
/// establishments is three of these.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub name: Option<Scalar>,
    pub description: Option<Scalar>,
    pub editor: Option<Scalar>,
    pub referent: Option<Scalar>,
    pub hosting: Option<Scalar>,
    pub criticality: Option<Scalar>,
    pub multi_establishment: Option<Scalar>,
    pub supervision: Option<Scalar>,
    /// Interface families in the order written, each with its truthiness.
    pub interfaces: Vec<(String, bool)>,
    /// As written; [`Application::trigramme`] gives the normalised code.
    #[serde(rename = "trigramme")]
    pub trigramme_raw: Option<Scalar>,
}

impl Application {
    /// The name as it-lanscape shows it (`String()` of the field).
    pub fn name(&self) -> String {
        text(&self.name)
    }

    /// The trigramme, trimmed and in upper case; `""` when absent.
    pub fn trigramme(&self) -> String {
        normalise_trigramme(&self.trigramme_raw)
    }

    pub fn is_critical(&self) -> bool {
        self.criticality.as_ref().and_then(Scalar::as_str) == Some("Critique")
    }

    /// `multiEtablissement` by JavaScript truthiness.
    pub fn is_multi(&self) -> bool {
        truthy(&self.multi_establishment)
    }

    /// Whether the interface family is set.
    pub fn has_interface(&self, family: &str) -> bool {
        self.interfaces.iter().any(|(f, on)| f == family && *on)
    }
}

/// A server of `<etab>.infra.json`, with it-lanscape's fallbacks applied
/// (`VM` else `nom` else `name`; `PrimaryIPAddress` else `ip`;
/// `RoleServeur` else `role` else `description`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub vm: Option<Scalar>,
    pub ip: Option<Scalar>,
    pub role: Option<Scalar>,
    /// `RoleServeur` else `role`, without the `description` fallback: the
    /// incident simulation judges a server by the role it declares.
    pub declared_role: Option<Scalar>,
    pub os: Option<Scalar>,
    pub antivirus: Option<Scalar>,
    pub backup: Option<Scalar>,
    pub contact: Option<Scalar>,
    pub editor: Option<Scalar>,
    #[serde(rename = "trigramme")]
    pub trigramme_raw: Option<Scalar>,
}

impl Server {
    pub fn trigramme(&self) -> String {
        normalise_trigramme(&self.trigramme_raw)
    }

    pub fn name(&self) -> String {
        text(&self.vm)
    }
}

/// A VLAN of `<etab>.network.json` (`nom` else `name` else `description`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vlan {
    pub id: Option<Scalar>,
    pub name: Option<Scalar>,
    /// `nom` alone, as written: it-lanscape's quality report names the
    /// VLAN of a VLAN's servers by it (else `VLAN-<id>`), not by `name`.
    pub nom: Option<Scalar>,
    pub description: Option<Scalar>,
    pub network: Option<Scalar>,
    pub interco: Option<Scalar>,
    pub gateway: Option<Scalar>,
    pub servers: Vec<VlanServer>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VlanServer {
    pub ip: Option<Scalar>,
    pub name: Option<Scalar>,
}

/// A declared flow of `<etab>.flux.json`. `crypted` and `bidirectional`
/// are Mercator's fields, optional.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub id: Option<Scalar>,
    #[serde(rename = "source")]
    pub source_raw: Option<Scalar>,
    #[serde(rename = "target")]
    pub target_raw: Option<Scalar>,
    pub protocol: Option<Scalar>,
    pub port: Option<Scalar>,
    pub message_type: Option<Scalar>,
    pub interface_type: Option<Scalar>,
    pub eai: Option<Scalar>,
    pub description: Option<Scalar>,
    pub crypted: Option<bool>,
    pub bidirectional: Option<bool>,
}

impl Flow {
    pub fn source(&self) -> String {
        normalise_trigramme(&self.source_raw)
    }

    pub fn target(&self) -> String {
        normalise_trigramme(&self.target_raw)
    }

    /// The flow's id, else `SOURCE-TARGET` as it-lanscape names it.
    pub fn key(&self) -> String {
        match &self.id {
            Some(id) if id.truthy() => id.text(),
            _ => format!("{}-{}", text(&self.source_raw), text(&self.target_raw)),
        }
    }

    /// Whether the flow is encrypted: as declared (`crypted`), else from
    /// its protocol (HTTPS, SFTP, SMTP/TLS and anything naming TLS).
    pub fn encrypted(&self) -> bool {
        self.crypted
            .unwrap_or_else(|| protocol_is_encrypted(&text(&self.protocol)))
    }
}

/// Protocols that are encrypted by definition.
pub fn protocol_is_encrypted(protocol: &str) -> bool {
    let p = protocol.trim().to_ascii_uppercase();
    matches!(p.as_str(), "HTTPS" | "SFTP" | "FTPS" | "MLLPS" | "LDAPS")
        || p.contains("TLS")
        || p.contains("SSH")
}

impl Atlas {
    /// Every application occurrence with its establishment, domain and
    /// process, in the order of the data.
    pub fn occurrences(&self) -> impl Iterator<Item = Occurrence<'_>> {
        self.establishments.iter().flat_map(|e| {
            e.domains.iter().flat_map(move |d| {
                d.processes.iter().flat_map(move |p| {
                    p.applications.iter().map(move |a| Occurrence {
                        establishment: e,
                        domain: d,
                        process: p,
                        application: a,
                    })
                })
            })
        })
    }

    /// Every declared flow with the establishment whose file holds it.
    pub fn all_flows(&self) -> impl Iterator<Item = (&str, &Flow)> {
        self.flows
            .iter()
            .flat_map(|d| d.items.iter().map(move |f| (d.establishment.as_str(), f)))
    }

    /// Every server with the establishment whose file holds it.
    pub fn all_servers(&self) -> impl Iterator<Item = (&str, &Server)> {
        self.infrastructure
            .iter()
            .flat_map(|d| d.items.iter().map(move |s| (d.establishment.as_str(), s)))
    }
}

/// One application occurrence in its place on the map.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence<'a> {
    pub establishment: &'a Establishment,
    pub domain: &'a Domain,
    pub process: &'a Process,
    pub application: &'a Application,
}
