//! The `toml_edit` helpers that add, remove and list share: the `[[app]]`
//! tables, the `[[route]]` tables, the `[[route.rule]]` tables of `http`
//! routes, their `allow` lists, and the final check of an edited document.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use guichet_gateway::Config;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

pub(super) fn parse_document(path: &Path, text: &str) -> anyhow::Result<DocumentMut> {
    text.parse::<DocumentMut>().with_context(|| {
        format!(
            "{} is not valid TOML; fix it first (`guichet check -c {}` shows where)",
            path.display(),
            path.display()
        )
    })
}

pub(super) fn app_tables_mut<'d>(
    item: &'d mut Item,
    path: &Path,
) -> anyhow::Result<&'d mut ArrayOfTables> {
    item.as_array_of_tables_mut()
        .ok_or_else(|| not_app_tables(path))
}

pub(super) fn app_tables<'d>(doc: &'d DocumentMut, path: &Path) -> anyhow::Result<Vec<&'d Table>> {
    match doc.get("app") {
        None => Ok(Vec::new()),
        Some(item) => Ok(item
            .as_array_of_tables()
            .ok_or_else(|| not_app_tables(path))?
            .iter()
            .collect()),
    }
}

fn not_app_tables(path: &Path) -> anyhow::Error {
    anyhow!(
        "{}: `app` is not written as [[app]] tables; rewrite it that way so `guichet apps` can edit it",
        path.display()
    )
}

pub(super) fn app_names(doc: &DocumentMut, path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(app_tables(doc, path)?
        .into_iter()
        .map(|t| app_name(t).to_string())
        .collect())
}

/// The `name` of an `[[app]]`, empty when it has none (the gateway
/// refuses such a config, but `list` still shows the rest).
pub(super) fn app_name(app: &Table) -> &str {
    name_of(app).unwrap_or_default()
}

pub(super) fn routes(doc: &DocumentMut) -> impl Iterator<Item = &Table> {
    doc.get("route")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(ArrayOfTables::iter)
}

/// [`routes`], for editing.
pub(super) fn routes_mut(doc: &mut DocumentMut) -> impl Iterator<Item = &mut Table> {
    doc.get_mut("route")
        .and_then(Item::as_array_of_tables_mut)
        .into_iter()
        .flat_map(ArrayOfTables::iter_mut)
}

fn route_names(doc: &DocumentMut) -> Vec<String> {
    routes(doc).map(route_name).collect()
}

pub(super) fn route_name(route: &Table) -> String {
    name_of(route).unwrap_or("?").to_string()
}

pub(super) fn route_mut<'d>(
    doc: &'d mut DocumentMut,
    path: &Path,
    route: &str,
) -> anyhow::Result<&'d mut Table> {
    let known = route_names(doc);
    routes_mut(doc)
        .find(|t| name_of(t) == Some(route))
        .ok_or_else(|| {
            anyhow!(
                "{}: no [[route]] named {route:?} (routes: {})",
                path.display(),
                join_or(&known, ", ", "none")
            )
        })
}

/// Whether the route is `kind = "http"`: its `[[route.rule]]` tables say
/// who may call what, and its own `allow` (optional) only who may connect.
pub(super) fn is_http(route: &Table) -> bool {
    route.get("kind").and_then(Item::as_str) == Some("http")
}

/// The `[[route.rule]]` tables of a route, in file order.
pub(super) fn rules(route: &Table) -> impl Iterator<Item = &Table> {
    route
        .get("rule")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(ArrayOfTables::iter)
}

/// [`rules`], for editing.
pub(super) fn rules_mut(route: &mut Table) -> impl Iterator<Item = &mut Table> {
    route
        .get_mut("rule")
        .and_then(Item::as_array_of_tables_mut)
        .into_iter()
        .flat_map(ArrayOfTables::iter_mut)
}

pub(super) fn rule_name(rule: &Table) -> String {
    name_of(rule).unwrap_or("?").to_string()
}

/// The rule names of a route, for error messages.
pub(super) fn rule_names(route: &Table) -> Vec<String> {
    rules(route).map(rule_name).collect()
}

/// The rule `rule` of `route`, which is named `route_label` in errors.
pub(super) fn rule_mut<'r>(
    route: &'r mut Table,
    path: &Path,
    route_label: &str,
    rule: &str,
) -> anyhow::Result<&'r mut Table> {
    let known = rule_names(route);
    rules_mut(route)
        .find(|t| name_of(t) == Some(rule))
        .ok_or_else(|| {
            anyhow!(
                "{}: route {route_label:?} has no [[route.rule]] named {rule:?} (rules: {})",
                path.display(),
                join_or(&known, ", ", "none")
            )
        })
}

fn name_of(table: &Table) -> Option<&str> {
    table.get("name").and_then(Item::as_str)
}

/// The names in the `allow` of a route or rule; empty when there is none.
pub(super) fn allow_list(table: &Table) -> Vec<String> {
    table
        .get("allow")
        .and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the route says `client_auth = "none"`: it takes no client
/// certificate, so it has no `allow` list to keep.
pub(super) fn asks_no_certificate(route: &Table) -> bool {
    route.get("client_auth").and_then(Item::as_str) == Some("none")
}

/// `items` joined by `separator`, or `empty` when there are none.
pub(super) fn join_or(items: &[String], separator: &str, empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(separator)
    }
}

/// The edited text, once the gateway accepts it.
pub(super) fn finish(path: &Path, old: &str, doc: &DocumentMut) -> anyhow::Result<String> {
    let new = doc.to_string();
    if let Err(e) = Config::parse(path, &new) {
        if Config::parse(path, old).is_err() {
            bail!(
                "{e}\n{} is not valid as it stands; fix it first (`guichet check -c {}`); nothing was written",
                path.display(),
                path.display()
            );
        }
        bail!("{e}\nthe change would make the config invalid, so nothing was written");
    }
    Ok(new)
}
