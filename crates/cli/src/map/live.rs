//! The map the admin listener serves live at `/map` (`[map]`): the page
//! `guichet map build` writes, from the same data folder, mapping file
//! and journal, rendered when the gateway asks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use guichet_atlas::mapping::Mapping;
use guichet_atlas::{site, Lang};
use guichet_gateway::admin::MapSite;
use guichet_gateway::config::{MapLang, MapSpec};
use guichet_journal::FlowTotal;

/// `[map]`'s sources, read again at each rendering.
pub struct LiveSite {
    data: PathBuf,
    mapping: Option<PathBuf>,
    lang: Lang,
}

impl LiveSite {
    pub fn new(spec: &MapSpec) -> LiveSite {
        LiveSite {
            data: spec.data.clone(),
            mapping: spec.mapping.clone(),
            lang: match spec.lang {
                MapLang::Fr => Lang::Fr,
                MapLang::En => Lang::En,
            },
        }
    }
}

impl MapSite for LiveSite {
    fn sources(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        match std::fs::read_dir(&self.data) {
            Ok(entries) => {
                let mut files: Vec<_> = entries
                    .flatten()
                    .map(|entry| (entry.file_name(), stamp(&entry.path())))
                    .collect();
                files.sort();
                files.hash(&mut hasher);
            }
            Err(e) => e.kind().hash(&mut hasher),
        }
        self.mapping.as_deref().map(stamp).hash(&mut hasher);
        hasher.finish()
    }

    fn render(&self, flows: Vec<FlowTotal>) -> Result<String, String> {
        let atlas = guichet_atlas::read_dir(&self.data).map_err(|e| e.to_string())?;
        let mapping = self
            .mapping
            .as_deref()
            .map(Mapping::read)
            .transpose()
            .map_err(|e| e.to_string())?;
        let observed = crate::observed::resolve(flows, mapping.as_ref());
        let generated = super::now_rfc3339();
        let data = site::SiteData::new(&atlas, &observed, self.lang, &generated);
        site::page(&data).map_err(|e| format!("the page cannot be written: {e}"))
    }
}

/// What changes when a file is rewritten, without reading it.
fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
