//! `guichet apps remove`: drop an `[[app]]` and every `allow` entry that
//! names it.

use std::path::Path;

use anyhow::bail;
use toml_edit::{Array, DocumentMut, Item};

use super::document::{
    allow_list, app_names, app_tables_mut, asks_no_certificate, finish, join_or, parse_document,
    route_name, routes, routes_mut,
};
use super::Change;

/// Removes the application `name` and takes it off every `allow` list.
pub(super) fn remove(path: &Path, text: &str, name: &str) -> anyhow::Result<Change> {
    let mut doc = parse_document(path, text)?;
    let names = app_names(&doc, path)?;
    let Some(index) = names.iter().position(|n| n == name) else {
        bail!(
            "{}: no [[app]] named {name:?} (apps: {})",
            path.display(),
            join_or(&names, ", ", "none")
        );
    };
    let orphaned = routes_left_without_apps(&doc, name);
    if !orphaned.is_empty() {
        bail!(
            "{}: removing {name:?} would leave route(s) {} admitting no application; add another app to their `allow` first, or remove the route(s)",
            path.display(),
            orphaned.join(", ")
        );
    }
    if let Some(item) = doc.get_mut("app") {
        let apps = app_tables_mut(item, path)?;
        apps.remove(index);
        if apps.is_empty() {
            doc.remove("app");
        }
    }
    let routes = strip_allow(&mut doc, name);
    let mut report = vec![format!("removed [[app]] {name:?} from {}", path.display())];
    if !routes.is_empty() {
        report.push(format!(
            "taken off the allow list of: {}",
            routes.join(", ")
        ));
    }
    let text = finish(path, text, &doc)?;
    Ok(Change { text, report })
}

/// TLS routes that admit `name` and nobody else, which `guichet run`
/// would refuse once it is gone; the operator has to decide about them.
fn routes_left_without_apps(doc: &DocumentMut, name: &str) -> Vec<String> {
    routes(doc)
        .filter(|t| t.contains_key("listen_tls"))
        .filter(|t| !asks_no_certificate(t))
        .filter(|t| {
            let allow = allow_list(t);
            allow.iter().any(|a| a == name) && allow.iter().all(|a| a == name)
        })
        .map(|t| format!("{:?}", route_name(t)))
        .collect()
}

/// Removes `name` from every `allow` array; returns the routes changed.
fn strip_allow(doc: &mut DocumentMut, name: &str) -> Vec<String> {
    let mut changed = Vec::new();
    for route in routes_mut(doc) {
        let route_name = route_name(route);
        if let Some(allow) = route.get_mut("allow").and_then(Item::as_array_mut) {
            if remove_name(allow, name) {
                changed.push(route_name);
            }
        }
    }
    changed
}

/// Removes every `name` from `array`, keeping the layout of the rest: the
/// element that becomes first takes the old first element's spacing.
fn remove_name(array: &mut Array, name: &str) -> bool {
    let mut removed = false;
    loop {
        let found = array.iter().position(|v| v.as_str() == Some(name));
        let Some(i) = found else {
            break;
        };
        let gone = array.remove(i);
        if i == 0 {
            let prefix = gone.decor().prefix().cloned().unwrap_or_default();
            if let Some(next) = array.get_mut(0) {
                next.decor_mut().set_prefix(prefix);
            }
        }
        removed = true;
    }
    removed
}
