//! `guichet apps remove`: drop an `[[app]]` and every `allow` entry that
//! names it, on routes and on the rules of `http` routes.

use std::path::Path;

use anyhow::bail;
use toml_edit::{Array, DocumentMut, Item, Table};

use super::document::{
    allow_list, app_names, app_tables_mut, asks_no_certificate, finish, is_http, join_or,
    parse_document, route_name, routes, routes_mut, rule_name, rules, rules_mut,
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
    let orphaned = left_without_apps(&doc, name);
    if !orphaned.is_empty() {
        bail!(
            "{}: removing {name:?} would leave {} admitting no application; add another app to their `allow` first, or remove them",
            path.display(),
            orphaned.join(" and ")
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

/// The TLS routes, and the rules of `http` routes, that admit `name` and
/// nobody else, as `route(s) "a", "b"` and `rule(s) "r/x"`: the gateway
/// would refuse them once it is gone (or a rule would serve nobody), so
/// the operator has to decide about them.
fn left_without_apps(doc: &DocumentMut, name: &str) -> Vec<String> {
    let only = |table: &Table| {
        let allow = allow_list(table);
        allow.iter().any(|a| a == name) && allow.iter().all(|a| a == name)
    };
    let checked = || {
        routes(doc).filter(|route| route.contains_key("listen_tls") && !asks_no_certificate(route))
    };
    let emptied_routes: Vec<String> = checked()
        .filter(|route| only(route))
        .map(|route| format!("{:?}", route_name(route)))
        .collect();
    let emptied_rules: Vec<String> = checked()
        .filter(|route| is_http(route))
        .flat_map(|route| {
            rules(route)
                .filter(|rule| only(rule))
                .map(move |rule| format!("\"{}/{}\"", route_name(route), rule_name(rule)))
        })
        .collect();
    let mut out = Vec::new();
    if !emptied_routes.is_empty() {
        out.push(format!("route(s) {}", emptied_routes.join(", ")));
    }
    if !emptied_rules.is_empty() {
        out.push(format!("rule(s) {}", emptied_rules.join(", ")));
    }
    out
}

/// Removes `name` from every `allow` array of the routes and of their
/// rules; returns what changed, as `ROUTE` or `ROUTE/RULE`.
fn strip_allow(doc: &mut DocumentMut, name: &str) -> Vec<String> {
    let mut changed = Vec::new();
    for route in routes_mut(doc) {
        let route_name = route_name(route);
        if strip_from(route, name) {
            changed.push(route_name.clone());
        }
        for rule in rules_mut(route) {
            if strip_from(rule, name) {
                changed.push(format!("{route_name}/{}", rule_name(rule)));
            }
        }
    }
    changed
}

fn strip_from(table: &mut Table, name: &str) -> bool {
    table
        .get_mut("allow")
        .and_then(Item::as_array_mut)
        .is_some_and(|allow| remove_name(allow, name))
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
