//! `guichet apps list`: the applications of a config, one per line.

use std::path::Path;

use toml_edit::{DocumentMut, Table};

use super::document::{
    allow_list, app_name, app_tables, is_http, join_or, parse_document, route_name, routes,
    rule_name, rules,
};

/// The `[[app]]` keys that select certificates, in schema order.
const CRITERIA_KEYS: [&str; 9] = [
    "cn",
    "o",
    "ou",
    "issuer_cn",
    "issuer_dn",
    "san_dns",
    "san_uri",
    "fingerprint",
    "spki",
];

/// The applications of the config as a table: name, criteria, and where
/// each is admitted.
pub(super) fn list(path: &Path, text: &str) -> anyhow::Result<String> {
    let doc = parse_document(path, text)?;
    let rows: Vec<[String; 3]> = app_tables(&doc, path)?
        .into_iter()
        .map(|app| {
            let name = app_name(app);
            [name.to_string(), app_criteria(app), admitting(&doc, name)]
        })
        .collect();
    if rows.is_empty() {
        return Ok(format!(
            "no [[app]] in {}; add one with `guichet apps add`\n",
            path.display()
        ));
    }
    Ok(render_table(
        [
            "NAME".to_string(),
            "MATCH".to_string(),
            "ROUTES".to_string(),
        ],
        &rows,
    ))
}

fn app_criteria(app: &Table) -> String {
    let parts: Vec<String> = CRITERIA_KEYS
        .iter()
        .filter_map(|key| {
            let item = app.get(key)?;
            let value = match item.as_str() {
                Some(s) => s.to_string(),
                None => item.to_string().trim().to_string(),
            };
            Some(format!("{key}={value}"))
        })
        .collect();
    join_or(&parts, "; ", "-")
}

/// Where `app` is admitted, or `-`: the routes whose `allow` names it, and
/// `ROUTE/RULE` for each rule of an `http` route whose `allow` names it.
/// A rule the route's own `allow` makes unreachable is flagged.
fn admitting(doc: &DocumentMut, app: &str) -> String {
    let names: Vec<String> = routes(doc)
        .flat_map(|route| admitting_on(route, app))
        .collect();
    join_or(&names, ", ", "-")
}

fn admitting_on(route: &Table, app: &str) -> Vec<String> {
    let names = |table: &Table| allow_list(table).iter().any(|a| a == app);
    if !is_http(route) {
        return names(route)
            .then(|| route_name(route))
            .into_iter()
            .collect();
    }
    let blocked = route.contains_key("allow") && !names(route);
    rules(route)
        .filter(|rule| names(rule))
        .map(|rule| {
            let pair = format!("{}/{}", route_name(route), rule_name(rule));
            if blocked {
                format!("{pair} (not in the route's allow: refused at TLS)")
            } else {
                pair
            }
        })
        .collect()
}

fn render_table(header: [String; 3], rows: &[[String; 3]]) -> String {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {}",
            row[0],
            row[1],
            row[2],
            w0 = widths[0],
            w1 = widths[1]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
