//! `guichet apps add`: a new `[[app]]` built from a certificate, and the
//! `--allow-on` routes, or rules of `http` routes, that admit it.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use guichet_gateway::Config;
use guichet_tls::{AppName, Identity};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use super::document::{
    allow_list, app_names, app_tables_mut, asks_no_certificate, finish, is_http, join_or,
    parse_document, route_mut, rule_mut, rule_names,
};
use super::Change;

/// A certificate field that `--match` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Cn,
    O,
    Ou,
    Issuer,
    Dns,
    Uri,
    Fingerprint,
    Spki,
}

/// `--match` names, in the order the help text gives them.
const FIELDS: [(&str, Field); 8] = [
    ("cn", Field::Cn),
    ("o", Field::O),
    ("ou", Field::Ou),
    ("issuer", Field::Issuer),
    ("dns", Field::Dns),
    ("uri", Field::Uri),
    ("fingerprint", Field::Fingerprint),
    ("spki", Field::Spki),
];

/// The `--match` default; with it a certificate without OU is still
/// accepted (many partners have none), whereas an explicit `ou` must exist.
pub(super) const DEFAULT_FIELDS: [&str; 3] = ["cn", "ou", "issuer"];

/// One `[[app]]` key and the value read from the certificate.
type Criterion = (&'static str, String);

/// What `apps add` was asked to do.
pub(super) struct AddRequest<'a> {
    pub(super) name: &'a str,
    pub(super) cert: &'a Path,
    pub(super) fields: &'a [String],
    pub(super) allow_on: &'a [String],
}

impl Field {
    /// The `[[app]]` key this field fills.
    fn key(self) -> &'static str {
        match self {
            Field::Cn => "cn",
            Field::O => "o",
            Field::Ou => "ou",
            Field::Issuer => "issuer_dn",
            Field::Dns => "san_dns",
            Field::Uri => "san_uri",
            Field::Fingerprint => "fingerprint",
            Field::Spki => "spki",
        }
    }

    /// How an error names the missing part of the certificate.
    fn label(self) -> &'static str {
        match self {
            Field::Cn => "CN",
            Field::O => "O",
            Field::Ou => "OU",
            Field::Issuer => "issuer name",
            Field::Dns => "DNS name in its SAN",
            Field::Uri => "URI in its SAN",
            Field::Fingerprint => "fingerprint",
            Field::Spki => "public key",
        }
    }

    fn value(self, id: &Identity) -> Option<String> {
        let first = |v: &[String]| v.first().cloned();
        match self {
            Field::Cn => id.subject.common_name().map(str::to_string),
            Field::O => id.subject.values("O").next().map(str::to_string),
            Field::Ou => id.subject.values("OU").next().map(str::to_string),
            Field::Issuer => (!id.issuer.is_empty()).then(|| id.issuer.to_string()),
            Field::Dns => first(&id.san_dns),
            Field::Uri => first(&id.san_uri),
            Field::Fingerprint => Some(id.fingerprint.to_string()),
            Field::Spki => Some(id.spki.to_string()),
        }
    }
}

/// Adds the application of `request` to the config `text` (read from
/// `path`) and returns the checked new text.
pub(super) fn add(
    path: &Path,
    text: &str,
    request: &AddRequest<'_>,
    today: &str,
) -> anyhow::Result<Change> {
    let identity = read_identity(request.cert)?;
    let (fields, lenient) = parse_fields(request.fields)?;
    let criteria = criteria(&identity, &fields, lenient, request.cert)?;
    let mut doc = parse_document(path, text)?;
    if app_names(&doc, path)?.iter().any(|n| n == request.name) {
        bail!(
            "{}: an [[app]] named {:?} already exists; choose another --name, or `guichet apps remove` it first",
            path.display(),
            request.name
        );
    }
    let comment = added_comment(request.cert, &identity, today);
    append_app(&mut doc, path, request.name, &criteria, &comment)?;
    let mut report = vec![format!(
        "added [[app]] {:?} to {}, matching {}",
        request.name,
        path.display(),
        describe(&criteria)
    )];
    for target in request.allow_on {
        report.extend(allow_on(&mut doc, path, target, request.name)?);
    }
    let text = finish(path, text, &doc)?;
    ensure_matches(path, &text, request, &identity)?;
    Ok(Change { text, report })
}

pub(super) fn read_identity(cert: &Path) -> anyhow::Result<Identity> {
    let certs = guichet_tls::material::load_certs(cert, "certificate")?;
    let first = certs
        .first()
        .ok_or_else(|| anyhow!("{} holds no certificate", cert.display()))?;
    Identity::from_der(first).with_context(|| format!("cannot read {}", cert.display()))
}

/// Reads the `--match` list; the flag says whether it is the default set.
fn parse_fields(names: &[String]) -> anyhow::Result<(Vec<Field>, bool)> {
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let mut fields = Vec::new();
    for name in &names {
        let field = FIELDS
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                anyhow!(
                    "--match: unknown field {name:?}; use a comma-separated list of {}",
                    FIELDS.map(|(n, _)| n).join(", ")
                )
            })?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    if fields.is_empty() {
        bail!("--match: no field given; e.g. --match cn,ou,issuer or --match fingerprint");
    }
    Ok((fields, names == DEFAULT_FIELDS))
}

/// The `[[app]]` entries for `fields`, read from the certificate.
fn criteria(
    id: &Identity,
    fields: &[Field],
    lenient: bool,
    cert: &Path,
) -> anyhow::Result<Vec<Criterion>> {
    let mut out = Vec::new();
    for &field in fields {
        match field.value(id) {
            Some(value) => out.push((field.key(), value)),
            None if lenient && field == Field::Ou => {}
            None => bail!(
                "certificate {} has no {}; choose other --match fields",
                cert.display(),
                field.label()
            ),
        }
    }
    Ok(out)
}

/// The comment written above a new `[[app]]`, so a reader knows where the
/// values came from. Control characters (possible in a certificate or a
/// path) would end the comment early, so they become `?`.
fn added_comment(cert: &Path, id: &Identity, today: &str) -> String {
    let line = format!(
        "# added by guichet apps add from {} on {today} (subject \"{}\", sha256 {})",
        cert.display(),
        id.subject,
        id.fingerprint
    );
    line.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Appends the new table after the last `[[app]]`, or at the end of the
/// file when there is none.
fn append_app(
    doc: &mut DocumentMut,
    path: &Path,
    name: &str,
    criteria: &[Criterion],
    comment: &str,
) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.decor_mut().set_prefix(format!("\n{comment}\n"));
    table.insert("name", toml_edit::value(name));
    for (key, value) in criteria {
        table.insert(key, toml_edit::value(value.as_str()));
    }
    match doc.get_mut("app") {
        // A table without a position is written right after the one before
        // it in the tree: here, the last [[app]].
        Some(item) => app_tables_mut(item, path)?.push(table),
        None => {
            table.set_position(next_position(doc.as_table()));
            let mut apps = ArrayOfTables::new();
            apps.push(table);
            doc.insert("app", Item::ArrayOfTables(apps));
        }
    }
    Ok(())
}

/// A position after every table of the document.
fn next_position(table: &Table) -> usize {
    let nested = table.iter().map(|(_, item)| match item {
        Item::Table(t) => next_position(t),
        Item::ArrayOfTables(a) => a.iter().map(next_position).max().unwrap_or(0),
        _ => 0,
    });
    nested
        .chain(table.position().map(|p| p + 1))
        .max()
        .unwrap_or(0)
}

/// Where `--allow-on` admits an application: a route, or one rule of an
/// `http` route (`ROUTE/RULE`; names cannot contain `/`).
struct AllowTarget<'a> {
    route: &'a str,
    rule: Option<&'a str>,
}

impl<'a> AllowTarget<'a> {
    fn parse(text: &'a str) -> Self {
        match text.split_once('/') {
            Some((route, rule)) => AllowTarget {
                route,
                rule: Some(rule),
            },
            None => AllowTarget {
                route: text,
                rule: None,
            },
        }
    }
}

/// Adds `app` to the `allow` list `target` names; returns the lines that
/// tell the operator what changed.
fn allow_on(
    doc: &mut DocumentMut,
    path: &Path,
    target: &str,
    app: &str,
) -> anyhow::Result<Vec<String>> {
    let AllowTarget { route: name, rule } = AllowTarget::parse(target);
    let route = route_mut(doc, path, name)?;
    takes_certificates(route, path, name)?;
    match (is_http(route), rule) {
        (false, None) => {
            add_to_allow(route, path, &format!("route {name:?}"), app)?;
            Ok(vec![format!("route {name:?} now admits {app:?}")])
        }
        (false, Some(_)) => bail!(
            "{}: route {name:?} is not an http route, so it has no rules; give --allow-on {name}",
            path.display()
        ),
        (true, None) => bail!(
            "{}: route {name:?} is an http route: each of its rules has its own allow list; give --allow-on {name}/RULE (rules: {})",
            path.display(),
            join_or(&rule_names(route), ", ", "none")
        ),
        (true, Some(rule)) => allow_on_rule(route, path, name, rule, app),
    }
}

/// Adds `app` to a rule of an `http` route, and to the route's own
/// `allow` when it has one: that list decides who completes the TLS
/// handshake, so an application missing there never reaches its rules.
fn allow_on_rule(
    route: &mut Table,
    path: &Path,
    name: &str,
    rule: &str,
    app: &str,
) -> anyhow::Result<Vec<String>> {
    let table = rule_mut(route, path, name, rule)?;
    add_to_allow(
        table,
        path,
        &format!("rule {rule:?} of route {name:?}"),
        app,
    )?;
    let mut report = vec![format!(
        "rule {rule:?} of route {name:?} now admits {app:?}"
    )];
    if route.contains_key("allow") && !allow_list(route).iter().any(|a| a == app) {
        add_to_allow(route, path, &format!("route {name:?}"), app)?;
        report.push(format!(
            "route {name:?} now lets {app:?} connect (the route's own allow list)"
        ));
    }
    Ok(report)
}

/// Refuses routes that take no client certificate: nothing there could
/// tell one application from another.
fn takes_certificates(route: &Table, path: &Path, name: &str) -> anyhow::Result<()> {
    if !route.contains_key("listen_tls") {
        bail!(
            "{}: route {name:?} has no `listen_tls`: a plain listener cannot check certificates, so it admits no applications",
            path.display()
        );
    }
    if asks_no_certificate(route) {
        bail!(
            "{}: route {name:?} has client_auth = \"none\": it asks for no client certificate; remove that line first",
            path.display()
        );
    }
    Ok(())
}

/// Adds `app` once to the `allow` array of `table` (a route or a rule,
/// named `label` in errors), creating the array if needed.
fn add_to_allow(table: &mut Table, path: &Path, label: &str, app: &str) -> anyhow::Result<()> {
    let allow = table
        .entry("allow")
        .or_insert_with(|| toml_edit::value(Array::new()))
        .as_array_mut()
        .ok_or_else(|| {
            anyhow!(
                "{}: {label}: `allow` is not a list of names",
                path.display()
            )
        })?;
    if !allow.iter().any(|v| v.as_str() == Some(app)) {
        push_like_last(allow, app);
    }
    Ok(())
}

/// Appends to an array in the layout of its last element, so one name per
/// line stays one name per line.
fn push_like_last(array: &mut Array, name: &str) {
    let prefix = array
        .iter()
        .last()
        .and_then(|v| v.decor().prefix())
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('\n'));
    let prefix = match (prefix, array.is_empty()) {
        (Some(p), _) => p.to_string(),
        (None, true) => String::new(),
        (None, false) => " ".to_string(),
    };
    array.push_formatted(Value::from(name).decorated(prefix, ""));
}

/// Parses the rule just written back from the new text and checks that it
/// admits the certificate it was made from.
fn ensure_matches(
    path: &Path,
    text: &str,
    request: &AddRequest<'_>,
    id: &Identity,
) -> anyhow::Result<()> {
    let config = Config::parse(path, text)?;
    let admitted = config
        .apps
        .get(&AppName::new(request.name))
        .is_some_and(|rule| rule.matches(id));
    if !admitted {
        bail!(
            "the rule built from {} would not admit that certificate; nothing was written (try --match fingerprint)",
            request.cert.display()
        );
    }
    Ok(())
}

fn describe(criteria: &[Criterion]) -> String {
    criteria
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
