//! The mapping file: which application of the map (its trigramme) each
//! party the gateway observed is.
//!
//! ```toml
//! [parties]            # MSH-3^MSH-4, a certificate's application, an HTTP rule
//! "EAI^CHU" = "ENO"
//! "partner-app" = "DOC"
//!
//! [routes]             # what stands behind a route's forward side
//! "to-dpi" = "ORB"
//! ```
//!
//! A party the file does not name stays unresolved: its flows show as
//! shadow flows, under the party as observed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::observed::ObservedFlow;

/// Observed parties and routes, by trigramme.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// A party as observed (`EAI^CHU`, an application name, a rule name)
    /// to its trigramme.
    #[serde(default)]
    pub parties: BTreeMap<String, String>,
    /// A route's name to the trigramme of what it forwards to, for
    /// targets that name no party (a byte tunnel's address).
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("{}: [{section}] {key:?} has an empty trigramme", path.display())]
    Empty {
        path: PathBuf,
        section: &'static str,
        key: String,
    },
}

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn read(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Mapping::parse(&text, path)
    }

    /// Parses a mapping file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Mapping, MappingError> {
        let mapping: Mapping = toml::from_str(text).map_err(|e| MappingError::Toml {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        for (section, map) in [("parties", &mapping.parties), ("routes", &mapping.routes)] {
            if let Some((key, _)) = map.iter().find(|(_, t)| t.trim().is_empty()) {
                return Err(MappingError::Empty {
                    path: path.to_path_buf(),
                    section,
                    key: key.clone(),
                });
            }
        }
        Ok(mapping)
    }

    /// The sender's trigramme: its party as observed, else its
    /// certificate's application.
    pub fn source_of(&self, flow: &ObservedFlow) -> Option<String> {
        self.party(&flow.source)
            .or_else(|| self.party(&flow.application))
    }

    /// The receiver's trigramme: its party as observed, else what stands
    /// behind the route.
    pub fn target_of(&self, flow: &ObservedFlow) -> Option<String> {
        self.party(&flow.target)
            .or_else(|| self.routes.get(&flow.route).map(|t| t.trim().to_string()))
    }

    /// Sets both trigrammes of `flow` (unresolved ones stay `None`).
    pub fn resolve(&self, flow: &mut ObservedFlow) {
        flow.source_trigramme = self.source_of(flow);
        flow.target_trigramme = self.target_of(flow);
    }

    fn party(&self, observed: &str) -> Option<String> {
        if observed.is_empty() {
            return None;
        }
        self.parties.get(observed).map(|t| t.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[parties]
"EAI^CHU" = "ENO"
"partner-app" = "DOC"

[routes]
"to-dpi" = "ORB"
"#;

    fn flow(route: &str, application: &str, source: &str, target: &str) -> ObservedFlow {
        ObservedFlow {
            route: route.into(),
            application: application.into(),
            source: source.into(),
            target: target.into(),
            ..ObservedFlow::default()
        }
    }

    fn resolved(f: ObservedFlow) -> (Option<String>, Option<String>) {
        let mapping = Mapping::parse(FILE, Path::new("map.toml")).unwrap();
        let mut f = f;
        mapping.resolve(&mut f);
        (f.source_trigramme, f.target_trigramme)
    }

    fn some(t: &str) -> Option<String> {
        Some(t.to_string())
    }

    #[test]
    fn parties_then_applications_then_routes() {
        assert_eq!(
            resolved(flow("to-dpi", "", "EAI^CHU", "DPI^CHU")),
            (some("ENO"), some("ORB"))
        );
        assert_eq!(
            resolved(flow(
                "tunnel",
                "partner-app",
                "partner-app",
                "10.0.0.1:2575"
            )),
            (some("DOC"), None)
        );
        assert_eq!(
            resolved(flow("x", "partner-app", "LAB^CHU", "EAI^CHU")),
            (some("DOC"), some("ENO"))
        );
        assert_eq!(resolved(flow("x", "", "", "")), (None, None));
    }

    #[test]
    fn a_bad_file_is_named() {
        let e = Mapping::parse("[parties]\nx = 1\n", Path::new("map.toml")).unwrap_err();
        assert!(e.to_string().starts_with("map.toml: "), "{e}");
        let e = Mapping::parse("[partys]\n", Path::new("map.toml")).unwrap_err();
        assert!(e.to_string().contains("partys"), "{e}");
        let e = Mapping::parse("[routes]\nr = \" \"\n", Path::new("m.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.toml: [routes] \"r\" has an empty trigramme"
        );
    }
}
