//! `guichet apps ...`: edit the `[[app]]` allowlist of a config file.
//!
//! Operators should never have to hand-edit TOML to admit a partner: a
//! typo there either locks a partner out or lets the wrong one in. The
//! edits go through `toml_edit`, so comments and layout elsewhere in the
//! file stay byte for byte; the new text is checked with the gateway's own
//! `Config::parse` before it replaces the file, so these commands never
//! write a config that `guichet run` would refuse.
//!
//! The editing functions work on text and `DocumentMut`, and the file I/O
//! is a thin layer around them, so tests drive the editing directly.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use guichet_gateway::Config;
use guichet_tls::{AppName, Identity};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::cli::AppsCommand;

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
const DEFAULT_FIELDS: [&str; 3] = ["cn", "ou", "issuer"];

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

/// One `[[app]]` key and the value read from the certificate.
type Criterion = (&'static str, String);

/// What `apps add` was asked to do.
struct AddRequest<'a> {
    name: &'a str,
    cert: &'a Path,
    fields: &'a [String],
    allow_on: &'a [String],
}

/// A config edit ready to be written: the new text and what to tell the
/// operator about it.
struct Change {
    text: String,
    report: Vec<String>,
}

pub fn apps(command: AppsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppsCommand::Add {
            config,
            name,
            cert,
            fields,
            allow_on,
        } => {
            let request = AddRequest {
                name: &name,
                cert: &cert,
                fields: &fields,
                allow_on: &allow_on,
            };
            edit_file(&config, |text| add(&config, text, &request, &today()))?;
        }
        AppsCommand::List { config } => print!("{}", list(&config, &read_config(&config)?)?),
        AppsCommand::Remove { config, name } => {
            edit_file(&config, |text| remove(&config, text, &name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the config, applies `edit`, writes the result atomically and
/// prints the report; nothing is written when `edit` fails.
fn edit_file(path: &Path, edit: impl FnOnce(&str) -> anyhow::Result<Change>) -> anyhow::Result<()> {
    let change = edit(&read_config(path)?)?;
    write_atomic(path, &change.text)?;
    for line in &change.report {
        println!("{line}");
    }
    Ok(())
}

fn read_config(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))
}

// ---- add ----

/// Adds the application of `request` to the config `text` (read from
/// `path`) and returns the checked new text.
fn add(path: &Path, text: &str, request: &AddRequest<'_>, today: &str) -> anyhow::Result<Change> {
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
    for route in request.allow_on {
        allow_on(&mut doc, path, route, request.name)?;
        report.push(format!("route {route:?} now admits {:?}", request.name));
    }
    let text = finish(path, text, &doc)?;
    ensure_matches(path, &text, request, &identity)?;
    Ok(Change { text, report })
}

fn read_identity(cert: &Path) -> anyhow::Result<Identity> {
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

/// Adds `app` to the `allow` list of `route`.
fn allow_on(doc: &mut DocumentMut, path: &Path, route: &str, app: &str) -> anyhow::Result<()> {
    let table = route_mut(doc, path, route)?;
    if !table.contains_key("listen_tls") {
        bail!(
            "{}: route {route:?} has no `listen_tls`: a plain listener cannot check certificates, so it admits no applications",
            path.display()
        );
    }
    if table.get("client_auth").and_then(Item::as_str) == Some("none") {
        bail!(
            "{}: route {route:?} has client_auth = \"none\": it asks for no client certificate; remove that line first",
            path.display()
        );
    }
    let allow = table
        .entry("allow")
        .or_insert_with(|| toml_edit::value(Array::new()))
        .as_array_mut()
        .ok_or_else(|| {
            anyhow!(
                "{}: route {route:?}: `allow` is not a list of names",
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

fn route_mut<'d>(
    doc: &'d mut DocumentMut,
    path: &Path,
    route: &str,
) -> anyhow::Result<&'d mut Table> {
    let known = route_names(doc);
    doc.get_mut("route")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|routes| {
            routes
                .iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(route))
        })
        .ok_or_else(|| {
            anyhow!(
                "{}: no [[route]] named {route:?} (routes: {})",
                path.display(),
                names_or_none(&known)
            )
        })
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

// ---- remove ----

/// Removes the application `name` and takes it off every `allow` list.
fn remove(path: &Path, text: &str, name: &str) -> anyhow::Result<Change> {
    let mut doc = parse_document(path, text)?;
    let names = app_names(&doc, path)?;
    let Some(index) = names.iter().position(|n| n == name) else {
        bail!(
            "{}: no [[app]] named {name:?} (apps: {})",
            path.display(),
            names_or_none(&names)
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
        .filter(|t| t.get("client_auth").and_then(Item::as_str) != Some("none"))
        .filter(|t| {
            let allow = allow_list(t);
            allow.iter().any(|a| a == name) && allow.iter().all(|a| a == name)
        })
        .map(|t| format!("{:?}", route_name(t)))
        .collect()
}

/// Removes `name` from every `allow` array; returns the routes changed.
fn strip_allow(doc: &mut DocumentMut, name: &str) -> Vec<String> {
    let Some(routes) = doc.get_mut("route").and_then(Item::as_array_of_tables_mut) else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    for route in routes.iter_mut() {
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

// ---- list ----

/// The applications of the config as a table: name, criteria, routes.
fn list(path: &Path, text: &str) -> anyhow::Result<String> {
    let doc = parse_document(path, text)?;
    let rows: Vec<[String; 3]> = app_tables(&doc, path)?
        .into_iter()
        .map(|app| {
            let name = app.get("name").and_then(Item::as_str).unwrap_or_default();
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
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join("; ")
    }
}

/// The routes whose `allow` names `app`, or `-`.
fn admitting(doc: &DocumentMut, app: &str) -> String {
    let names: Vec<String> = routes(doc)
        .filter(|t| allow_list(t).iter().any(|a| a == app))
        .map(route_name)
        .collect();
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(", ")
    }
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

// ---- shared ----

fn parse_document(path: &Path, text: &str) -> anyhow::Result<DocumentMut> {
    text.parse::<DocumentMut>().with_context(|| {
        format!(
            "{} is not valid TOML; fix it first (`guichet check -c {}` shows where)",
            path.display(),
            path.display()
        )
    })
}

fn app_tables_mut<'d>(item: &'d mut Item, path: &Path) -> anyhow::Result<&'d mut ArrayOfTables> {
    item.as_array_of_tables_mut()
        .ok_or_else(|| not_app_tables(path))
}

fn app_tables<'d>(doc: &'d DocumentMut, path: &Path) -> anyhow::Result<Vec<&'d Table>> {
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

fn app_names(doc: &DocumentMut, path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(app_tables(doc, path)?
        .into_iter()
        .map(|t| {
            t.get("name")
                .and_then(Item::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect())
}

fn routes(doc: &DocumentMut) -> impl Iterator<Item = &Table> {
    doc.get("route")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(ArrayOfTables::iter)
}

fn route_names(doc: &DocumentMut) -> Vec<String> {
    routes(doc).map(route_name).collect()
}

fn route_name(route: &Table) -> String {
    route
        .get("name")
        .and_then(Item::as_str)
        .unwrap_or("?")
        .to_string()
}

fn allow_list(route: &Table) -> Vec<String> {
    route
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

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn describe(criteria: &[Criterion]) -> String {
    criteria
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The edited text, once the gateway accepts it.
fn finish(path: &Path, old: &str, doc: &DocumentMut) -> anyhow::Result<String> {
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

/// Replaces the file in one step (temporary file in the same directory,
/// then rename), keeping its permissions; a symlinked config stays a
/// symlink, its target is replaced.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let fail = || format!("cannot write {}; it is unchanged", path.display());
    let target = fs::canonicalize(path).with_context(fail)?;
    let permissions = fs::metadata(&target).with_context(fail)?.permissions();
    let dir = target.parent().unwrap_or(Path::new("."));
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.set_permissions(permissions)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(fail)
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use guichet_pki::{CaOptions, IssueRequest};

    use super::*;

    /// The part of `CONFIG` before the place a new `[[app]]` goes.
    const HEAD: &str = r#"# guichet for the test bench
# (keep this header)

[gateway]
drain_timeout = "5s"   # short, for tests

[tls.dpi]
cert = "pki/dpi.pem"
key = "pki/dpi.key"
ca = "pki/ca.pem"

# The DPI itself.
[[app]]
name = "dpi"
cn = "dpi"        # subject CN
issuer_cn = "guichet test CA"
"#;

    /// The part after it.
    const TAIL: &str = r#"

# Routes below.
[[route]]
name = "from-eai"
listen = "127.0.0.1:32200"
listen_tls = "dpi"
allow = ["dpi"]   # who may connect
forward = "127.0.0.1:22011"

[[route]]
name = "plain"
listen = "127.0.0.1:21010"
forward = "127.0.0.1:32100"
# the end
"#;

    const TODAY: &str = "2024-05-01";

    struct Bench {
        _dir: tempfile::TempDir,
        config: PathBuf,
        /// CN=eai, OU=1750000001.
        eai: PathBuf,
        /// CN=dpi, no OU.
        dpi: PathBuf,
    }

    fn bench() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        guichet_pki::init(&pki, &CaOptions::default()).unwrap();
        let eai = IssueRequest {
            ou: Some("1750000001".into()),
            ..IssueRequest::new("eai")
        };
        let eai = guichet_pki::issue(&pki, &eai).unwrap().cert;
        let dpi = guichet_pki::issue(&pki, &IssueRequest::new("dpi"))
            .unwrap()
            .cert;
        let config = dir.path().join("guichet.toml");
        Bench {
            _dir: dir,
            config,
            eai,
            dpi,
        }
    }

    fn config() -> String {
        format!("{HEAD}{TAIL}")
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn add_app(
        b: &Bench,
        text: &str,
        name: &str,
        cert: &Path,
        fields: &[&str],
        allow_on: &[&str],
    ) -> anyhow::Result<Change> {
        let (fields, allow_on) = (strings(fields), strings(allow_on));
        let request = AddRequest {
            name,
            cert,
            fields: &fields,
            allow_on: &allow_on,
        };
        add(&b.config, text, &request, TODAY)
    }

    fn identity(cert: &Path) -> Identity {
        read_identity(cert).unwrap()
    }

    fn rule(b: &Bench, text: &str, name: &str) -> Arc<guichet_tls::AppRule> {
        let config = Config::parse(&b.config, text).unwrap();
        config.apps[&AppName::new(name)].clone()
    }

    #[track_caller]
    fn assert_err(result: anyhow::Result<Change>, expected: &str) {
        let err = format!("{:#}", result.err().expect("the edit should be refused"));
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }

    #[test]
    fn add_keeps_the_rest_of_the_file_byte_for_byte() {
        let b = bench();
        let change = add_app(&b, &config(), "eai", &b.eai, &DEFAULT_FIELDS, &[]).unwrap();
        let id = identity(&b.eai);
        let added = format!(
            "\n# added by guichet apps add from {} on 2024-05-01 (subject \"{}\", sha256 {})\n\
             [[app]]\nname = \"eai\"\ncn = \"eai\"\nou = \"1750000001\"\nissuer_dn = \"CN=guichet test CA\"\n",
            b.eai.display(),
            id.subject,
            id.fingerprint
        );
        assert_eq!(change.text, format!("{HEAD}{added}{TAIL}"));
        assert!(rule(&b, &change.text, "eai").matches(&id));
        assert!(!rule(&b, &change.text, "eai").matches(&identity(&b.dpi)));
        assert_eq!(
            change.report,
            [format!(
                "added [[app]] \"eai\" to {}, matching cn = \"eai\", ou = \"1750000001\", issuer_dn = \"CN=guichet test CA\"",
                b.config.display()
            )]
        );
    }

    #[test]
    fn add_without_apps_goes_at_the_end() {
        let b = bench();
        let text = "[tls.dpi]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n# end\n";
        let change = add_app(&b, text, "eai", &b.eai, &["cn"], &[]).unwrap();
        let (before, after) = change.text.split_once("\n# added by").unwrap();
        assert_eq!(before, text.trim_end_matches("# end\n"));
        assert!(after.ends_with("\n[[app]]\nname = \"eai\"\ncn = \"eai\"\n# end\n"));
    }

    #[test]
    fn default_match_skips_a_missing_ou_but_an_explicit_ou_is_refused() {
        let b = bench();
        let change = add_app(&b, &config(), "dpi2", &b.dpi, &DEFAULT_FIELDS, &[]).unwrap();
        assert!(change.text.contains(
            "[[app]]\nname = \"dpi2\"\ncn = \"dpi\"\nissuer_dn = \"CN=guichet test CA\"\n"
        ));
        assert!(rule(&b, &change.text, "dpi2").matches(&identity(&b.dpi)));
        let explicit = add_app(&b, &config(), "dpi2", &b.dpi, &["cn", "ou"], &[]);
        assert_err(
            explicit,
            &format!(
                "certificate {} has no OU; choose other --match fields",
                b.dpi.display()
            ),
        );
    }

    #[test]
    fn match_fingerprint_pins_one_certificate() {
        let b = bench();
        let id = identity(&b.eai);
        let change = add_app(&b, &config(), "eai", &b.eai, &["fingerprint"], &[]).unwrap();
        assert!(change.text.contains(&format!(
            "[[app]]\nname = \"eai\"\nfingerprint = \"{}\"\n",
            id.fingerprint
        )));
        let rule = rule(&b, &change.text, "eai");
        assert_eq!(rule.fingerprint, Some(id.fingerprint));
        assert_eq!((rule.cn.as_deref(), rule.issuer_dn.as_ref()), (None, None));
        assert!(rule.matches(&id));
        assert!(!rule.matches(&identity(&b.dpi)));
    }

    #[test]
    fn match_spki_dns_and_o_fields() {
        let b = bench();
        let id = identity(&b.eai);
        let change = add_app(&b, &config(), "eai", &b.eai, &[" SPKI", "dns"], &[]).unwrap();
        assert!(change.text.contains(&format!(
            "name = \"eai\"\nspki = \"{}\"\nsan_dns = \"eai\"\n",
            id.spki
        )));
        assert!(rule(&b, &change.text, "eai").matches(&id));
        assert_err(
            add_app(&b, &config(), "eai", &b.eai, &["o"], &[]),
            "has no O; choose other --match fields",
        );
    }

    #[test]
    fn allow_on_adds_the_name_to_the_route() {
        let b = bench();
        let change = add_app(&b, &config(), "eai", &b.eai, &DEFAULT_FIELDS, &["from-eai"]).unwrap();
        assert!(change
            .text
            .contains("\nallow = [\"dpi\", \"eai\"]   # who may connect\n"));
        let config = Config::parse(&b.config, &change.text).unwrap();
        let route = config.route("from-eai").unwrap();
        let names: Vec<String> = match &route.listen_tls.as_ref().unwrap().auth {
            guichet_gateway::config::AuthSpec::Required(rules) => {
                rules.iter().map(|r| r.name.as_str().to_string()).collect()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(names, ["dpi", "eai"]);
        assert_eq!(change.report[1], "route \"from-eai\" now admits \"eai\"");
    }

    #[test]
    fn allow_on_keeps_one_name_per_line() {
        let b = bench();
        let text = config().replace(
            "allow = [\"dpi\"]   # who may connect",
            "allow = [\n    \"dpi\",\n]",
        );
        let change = add_app(&b, &text, "eai", &b.eai, &["cn"], &["from-eai"]).unwrap();
        assert!(change
            .text
            .contains("allow = [\n    \"dpi\",\n    \"eai\",\n]\n"));
    }

    #[test]
    fn allow_on_refuses_plain_and_unknown_routes() {
        let b = bench();
        assert_err(
            add_app(&b, &config(), "eai", &b.eai, &["cn"], &["plain"]),
            "route \"plain\" has no `listen_tls`",
        );
        assert_err(
            add_app(&b, &config(), "eai", &b.eai, &["cn"], &["nope"]),
            "no [[route]] named \"nope\" (routes: from-eai, plain)",
        );
    }

    #[test]
    fn duplicate_name_is_refused() {
        let b = bench();
        assert_err(
            add_app(&b, &config(), "dpi", &b.eai, &["cn"], &[]),
            "an [[app]] named \"dpi\" already exists",
        );
    }

    #[test]
    fn unknown_field_is_refused_with_the_valid_ones() {
        let b = bench();
        assert_err(
            add_app(&b, &config(), "eai", &b.eai, &["cn", "serial"], &[]),
            "unknown field \"serial\"; use a comma-separated list of cn, o, ou, issuer, dns, uri, fingerprint, spki",
        );
    }

    #[test]
    fn a_name_the_gateway_refuses_is_not_written() {
        let b = bench();
        assert_err(
            add_app(&b, &config(), "e a i", &b.eai, &["cn"], &[]),
            "the change would make the config invalid, so nothing was written",
        );
    }

    /// `CONFIG` after `apps add --name eai --allow-on from-eai`.
    fn with_eai(b: &Bench) -> String {
        add_app(b, &config(), "eai", &b.eai, &DEFAULT_FIELDS, &["from-eai"])
            .unwrap()
            .text
    }

    #[test]
    fn remove_strips_the_app_and_its_allow_entries() {
        let b = bench();
        let change = remove(&b.config, &with_eai(&b), "eai").unwrap();
        assert_eq!(change.text, config());
        assert_eq!(
            change.report,
            [
                format!("removed [[app]] \"eai\" from {}", b.config.display()),
                "taken off the allow list of: from-eai".to_string(),
            ]
        );
    }

    #[test]
    fn remove_first_of_several_keeps_the_list_tidy() {
        let b = bench();
        let text = with_eai(&b).replace("[\"dpi\", \"eai\"]", "[\"eai\", \"dpi\"]");
        let change = remove(&b.config, &text, "eai").unwrap();
        assert!(change
            .text
            .contains("\nallow = [\"dpi\"]   # who may connect\n"));
    }

    #[test]
    fn remove_refuses_to_empty_a_tls_route_and_leaves_the_file() {
        let b = bench();
        fs::write(&b.config, config()).unwrap();
        let result = edit_file(&b.config, |text| remove(&b.config, text, "dpi"));
        let err = format!("{:#}", result.unwrap_err());
        assert!(
            err.contains(
                "removing \"dpi\" would leave route(s) \"from-eai\" admitting no application"
            ),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&b.config).unwrap(), config());
    }

    #[test]
    fn remove_unknown_app_names_the_known_ones() {
        let b = bench();
        assert_err(
            remove(&b.config, &config(), "eai"),
            "no [[app]] named \"eai\" (apps: dpi)",
        );
    }

    #[test]
    fn list_shows_names_criteria_and_routes() {
        let b = bench();
        let out = list(&b.config, &with_eai(&b)).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("NAME  MATCH"), "{out}");
        assert!(lines[0].ends_with("ROUTES"), "{out}");
        assert!(
            lines[1].starts_with("dpi   cn=dpi; issuer_cn=guichet test CA "),
            "{out}"
        );
        assert!(lines[1].ends_with("  from-eai"), "{out}");
        assert!(lines[2].starts_with("eai   cn=eai; ou=1750000001; issuer_dn=CN=guichet test CA"));
        assert!(lines[2].ends_with("  from-eai"), "{out}");
        let none = list(&b.config, "[gateway]\n").unwrap();
        assert_eq!(
            none,
            format!(
                "no [[app]] in {}; add one with `guichet apps add`\n",
                b.config.display()
            )
        );
    }

    #[test]
    fn add_through_the_file_keeps_its_permissions() {
        let b = bench();
        fs::write(&b.config, config()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&b.config, fs::Permissions::from_mode(0o640)).unwrap();
        }
        let (fields, allow_on) = (strings(&DEFAULT_FIELDS), strings(&["from-eai"]));
        let request = AddRequest {
            name: "eai",
            cert: &b.eai,
            fields: &fields,
            allow_on: &allow_on,
        };
        edit_file(&b.config, |text| add(&b.config, text, &request, TODAY)).unwrap();
        assert_eq!(fs::read_to_string(&b.config).unwrap(), with_eai(&b));
        Config::load(&b.config).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&b.config).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let leftovers = fs::read_dir(b.config.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 2, "only guichet.toml and pki/");
    }
}
