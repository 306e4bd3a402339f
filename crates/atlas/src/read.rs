//! it-lanscape's data folder, read as it is and as leniently as
//! it-lanscape reads it: missing fields are empty, an establishment's name
//! is `etablissement`, else `nom`, else the file name, and a business-map
//! file without `etablissements` adds nothing. What it cannot read (a file
//! that is not JSON, an array where an object must be) is an error naming
//! the file, the line and column or the JSON path, and what was expected.

use std::path::{Path as FsPath, PathBuf};

use serde_json::Value;

use crate::model::{
    Application, Atlas, Dataset, Domain, Establishment, Flow, Process, Server, Vlan, VlanServer,
};
use crate::node::{each, kind, Mismatch, Node, Path};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: at {json_path}: expected {expected}, found {found}", path.display())]
    Schema {
        path: PathBuf,
        json_path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "{}: no map data (expected it-lanscape's files: <etab>.json, <etab>.flux.json, \
         <etab>.infra.json, <etab>.network.json, trigrammes.json)",
        dir.display()
    )]
    Empty { dir: PathBuf },
}

/// What a file of the data folder holds, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Business,
    Infrastructure,
    Network,
    Flows,
    Trigrammes,
}

fn kind_of(name: &str) -> Option<(Kind, &str)> {
    if name == "trigrammes.json" {
        return Some((Kind::Trigrammes, "trigrammes"));
    }
    [
        (".infra.json", Kind::Infrastructure),
        (".network.json", Kind::Network),
        (".flux.json", Kind::Flows),
        (".json", Kind::Business),
    ]
    .into_iter()
    .find_map(|(suffix, kind)| name.strip_suffix(suffix).map(|stem| (kind, stem)))
}

/// Reads every file of an it-lanscape data folder, in file-name order.
pub fn read_dir(dir: &FsPath) -> Result<Atlas, ReadError> {
    let io = |source| ReadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| kind_of(n).is_some())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(ReadError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let mut atlas = Atlas::default();
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| ReadError::Io {
            path: path.clone(),
            source,
        })?;
        read_file(&mut atlas, name, &path, &bytes)?;
    }
    Ok(atlas)
}

/// Adds what one file holds to `atlas`; `name` tells what kind it is.
pub fn read_file(
    atlas: &mut Atlas,
    name: &str,
    path: &FsPath,
    bytes: &[u8],
) -> Result<(), ReadError> {
    let Some((kind, stem)) = kind_of(name) else {
        return Ok(());
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ReadError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        // serde's text ends with the position, which the error shows first.
        message: e
            .to_string()
            .trim_end_matches(&format!(" at line {} column {}", e.line(), e.column()))
            .to_string(),
    })?;
    let node = Node {
        value: &value,
        path: &Path::Root,
    };
    add(atlas, kind, stem, name, node).map_err(|m| ReadError::Schema {
        path: path.to_path_buf(),
        json_path: m.path,
        expected: m.expected,
        found: m.found,
    })
}

fn add(atlas: &mut Atlas, kind: Kind, stem: &str, file: &str, node: Node) -> Result<(), Mismatch> {
    match kind {
        Kind::Business => atlas
            .establishments
            .extend(each(node, "etablissements", |n| establishment(n, stem))?),
        Kind::Infrastructure => atlas
            .infrastructure
            .push(dataset(node, stem, file, "serveurs", server)?),
        Kind::Network => atlas
            .network
            .push(dataset(node, stem, file, "vlans", vlan)?),
        Kind::Flows => atlas.flows.push(dataset(node, stem, file, "flux", flow)?),
        Kind::Trigrammes => trigrammes(atlas, node)?,
    }
    Ok(())
}

fn name_of(node: Node, keys: &[&str], fallback: &str) -> Result<String, Mismatch> {
    Ok(node
        .first_scalar(keys)?
        .filter(|s| s.truthy())
        .map(|s| s.text())
        .unwrap_or_else(|| fallback.to_string()))
}

fn dataset<T>(
    node: Node,
    stem: &str,
    file: &str,
    key: &'static str,
    item: impl FnMut(Node<'_>) -> Result<T, Mismatch>,
) -> Result<Dataset<T>, Mismatch> {
    node.object()?;
    Ok(Dataset {
        establishment: name_of(node, &["etablissement", "nom"], stem)?,
        file: file.to_string(),
        items: each(node, key, item)?,
    })
}

fn establishment(node: Node, stem: &str) -> Result<Establishment, Mismatch> {
    Ok(Establishment {
        name: name_of(node, &["nom", "etablissement"], stem)?,
        domains: each(node, "domaines", |d| {
            Ok(Domain {
                name: name_of(d, &["nom"], "")?,
                description: d.scalar("description")?,
                processes: each(d, "processus", process)?,
            })
        })?,
    })
}

fn process(node: Node) -> Result<Process, Mismatch> {
    Ok(Process {
        name: name_of(node, &["nom"], "")?,
        description: node.scalar("description")?,
        applications: each(node, "applications", application)?,
    })
}

fn application(node: Node) -> Result<Application, Mismatch> {
    Ok(Application {
        name: node.scalar("nom")?,
        description: node.scalar("description")?,
        editor: node.scalar("editeur")?,
        referent: node.scalar("referent")?,
        hosting: node.scalar("hebergement")?,
        criticality: node.scalar("criticite")?,
        multi_establishment: node.scalar("multiEtablissement")?,
        supervision: node.scalar("lienPRTG")?,
        interfaces: interfaces(node)?,
        trigramme_raw: node.scalar("trigramme")?,
    })
}

fn interfaces(node: Node) -> Result<Vec<(String, bool)>, Mismatch> {
    let path = Path::Key(node.path, "interfaces");
    let value = match node.get("interfaces")? {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(value) => value,
    };
    let families = Node { value, path: &path };
    families
        .object()?
        .keys()
        .map(|family| {
            Ok((
                family.clone(),
                families.scalar(family)?.is_some_and(|s| s.truthy()),
            ))
        })
        .collect()
}

fn server(node: Node) -> Result<Server, Mismatch> {
    Ok(Server {
        vm: node.first_scalar(&["VM", "nom", "name"])?,
        ip: node.first_scalar(&["PrimaryIPAddress", "ip"])?,
        role: node.first_scalar(&["RoleServeur", "role", "description"])?,
        declared_role: node.first_scalar(&["RoleServeur", "role"])?,
        os: node.scalar("OS")?,
        antivirus: node.scalar("Antivirus")?,
        backup: node.scalar("Backup")?,
        contact: node.scalar("Contact")?,
        editor: node.scalar("Editeur")?,
        trigramme_raw: node.scalar("trigramme")?,
    })
}

fn vlan(node: Node) -> Result<Vlan, Mismatch> {
    Ok(Vlan {
        id: node.scalar("id")?,
        name: node.first_scalar(&["nom", "name", "description"])?,
        nom: node.scalar("nom")?,
        description: node.scalar("description")?,
        network: node.scalar("network")?,
        interco: node.scalar("interco")?,
        gateway: node.scalar("gateway")?,
        servers: each(node, "serveurs", |s| {
            Ok(VlanServer {
                ip: s.scalar("ip")?,
                name: s.scalar("nom")?,
            })
        })?,
    })
}

fn flow(node: Node) -> Result<Flow, Mismatch> {
    Ok(Flow {
        id: node.scalar("id")?,
        source_raw: node.scalar("sourceTrigramme")?,
        target_raw: node.scalar("targetTrigramme")?,
        protocol: node.scalar("protocol")?,
        port: node.scalar("port")?,
        message_type: node.scalar("messageType")?,
        interface_type: node.scalar("interfaceType")?,
        eai: node.scalar("eaiName")?,
        description: node.scalar("description")?,
        crypted: node.boolean("crypted")?,
        bidirectional: node.boolean("bidirectional")?,
    })
}

fn trigrammes(atlas: &mut Atlas, node: Node) -> Result<(), Mismatch> {
    for (code, name) in node.object()? {
        let name = match name {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => {
                return Err(Mismatch {
                    path: Path::Key(node.path, code).to_string(),
                    expected: "text (the application's name)",
                    found: kind(other),
                })
            }
        };
        atlas.trigrammes.insert(code.trim().to_uppercase(), name);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
