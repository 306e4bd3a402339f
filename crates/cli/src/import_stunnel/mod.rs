//! `guichet import stunnel`: stunnel configurations turned into one guichet
//! configuration, with every change of meaning said on stderr.
//!
//! stunnel's usual setup (`verify = 2`, no `checkHost`, TLS 1.2 pinned)
//! admits any certificate of the CA and never checks the server's name;
//! guichet admits listed applications and checks names. A migration that
//! kept quiet about that would surprise someone at the first refused
//! partner, so each section's differences are printed, and every stunnel
//! option is either mapped or reported with the reason it is not.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::ImportStunnelArgs;

mod certs;
mod options;
mod parse;
mod plan;
mod service;

use plan::{Plan, Profile, Route};

/// Exit code of a usage error (as clap's own).
const USAGE: u8 = 2;

pub fn import_stunnel_command(args: &ImportStunnelArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.out {
        if out.exists() && !args.force {
            eprintln!(
                "error: {} exists; pass --force to replace it, or choose another --out",
                out.display()
            );
            return Ok(ExitCode::from(USAGE));
        }
    }
    let (plan, mut general) = read_and_plan(&args.files)?;
    let base = match &args.out {
        Some(out) => Some(out_dir(out)?),
        None => None,
    };
    let text = render(&plan, &args.files, args.mllp, base.as_deref());
    general.push(if args.mllp {
        "routes are kind \"mllp\" (--mllp): guichet reads each HL7 message and its ACK (type, control id, ACK code) and enforces MLLP framing".to_string()
    } else {
        "routes are kind \"tcp\": bytes pass untouched and no HL7 event is recorded; if they carry HL7 over MLLP, import again with --mllp (or set kind = \"mllp\") to see each message and its ACK".to_string()
    });
    let check_path = args.out.as_deref().unwrap_or(Path::new("guichet.toml"));
    if let Err(e) = guichet_gateway::Config::parse(check_path, &text) {
        general.push(format!(
            "the config is not valid yet; fix it before `guichet run`: {e}"
        ));
    }
    print_notes(&plan, &general);
    match &args.out {
        Some(out) => {
            std::fs::write(out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {} ({} route(s), {} TLS profile(s), {} application(s)); check it with `guichet check -c {}`",
                out.display(),
                plan.routes.len(),
                plan.profiles.len(),
                plan.apps.len(),
                out.display()
            );
        }
        None => {
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("cannot write to standard output")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every file, then plans the merged config. Input errors (a file
/// that cannot be read, a syntax error, a section without accept or
/// connect, two listeners on one address) are `Err`.
fn read_and_plan(files: &[PathBuf]) -> anyhow::Result<(Plan, Vec<String>)> {
    let mut parsed = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let absolute = std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        parsed.push(parse::parse(absolute, &path.display().to_string(), &text)?);
    }
    let mut general = Vec::new();
    let mut services = Vec::new();
    for (i, file) in parsed.iter().enumerate() {
        let mut notes = Vec::new();
        let defaults = service::global_options(file, &mut notes);
        if file.sections.is_empty() {
            anyhow::bail!(
                "{}: no [section]: stunnel services are sections with accept and connect",
                file.shown
            );
        }
        for section in &file.sections {
            services.push(service::read(i, file, &defaults, section)?);
        }
        general.extend(notes.into_iter().map(|n| format!("{}: {n}", file.shown)));
    }
    let shown: Vec<String> = parsed.iter().map(|f| f.shown.clone()).collect();
    Ok((plan::plan(&services, &shown)?, general))
}

/// The folder the written config's relative paths start from.
fn out_dir(out: &Path) -> anyhow::Result<PathBuf> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::canonicalize(&parent).with_context(|| {
        format!(
            "cannot write into {}: the folder must exist",
            parent.display()
        )
    })
}

fn print_notes(plan: &Plan, general: &[String]) {
    let mut err = String::new();
    for (heading, notes) in &plan.notes {
        let _ = writeln!(err, "{heading}");
        for note in notes {
            let _ = writeln!(err, "  - {note}");
        }
    }
    for note in general {
        let _ = writeln!(err, "note: {note}");
    }
    eprint!("{err}");
}

/// A path as the config writes it: relative to the config's folder when
/// it lies inside it, else absolute.
fn shown_path(path: &Path, base: Option<&Path>) -> String {
    let clean = normalise(path);
    // The folder is canonical; the path may reach it through a symlink.
    let real = std::fs::canonicalize(&clean).ok();
    for candidate in [Some(&clean), real.as_ref()].into_iter().flatten() {
        if let Some(rel) = base.and_then(|b| candidate.strip_prefix(b).ok()) {
            if !rel.as_os_str().is_empty() {
                return rel.display().to_string();
            }
        }
    }
    clean.display().to_string()
}

/// `a/./b/../c` as `a/c`, without touching the file system (the files
/// may not exist where the import runs).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A TOML basic string.
fn q(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_string()
}

fn render(plan: &Plan, files: &[PathBuf], mllp: bool, base: Option<&Path>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Imported from stunnel by `guichet import stunnel`:");
    for f in files {
        let _ = writeln!(t, "#   {}", comment(&f.display().to_string()));
    }
    let _ = writeln!(
        t,
        "# The import printed what changes in meaning; check with `guichet check -c <this file>`.\n"
    );
    for p in &plan.profiles {
        render_profile(&mut t, p, base);
    }
    for app in &plan.apps {
        let _ = writeln!(t, "# read from {}", comment(&app.source));
        let _ = writeln!(t, "[[app]]\nname = {}", q(&app.name));
        for (key, value) in &app.criteria {
            let _ = writeln!(t, "{key} = {}", q(value));
        }
        t.push('\n');
    }
    for r in &plan.routes {
        render_route(&mut t, r, mllp);
    }
    t
}

fn render_profile(t: &mut String, p: &Profile, base: Option<&Path>) {
    let bare = p
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare { p.name.clone() } else { q(&p.name) };
    let _ = writeln!(t, "[tls.{key}]");
    let path = |t: &mut String, key: &str, v: &Option<PathBuf>| {
        if let Some(v) = v {
            let _ = writeln!(t, "{key} = {}", q(&shown_path(v, base)));
        }
    };
    path(t, "cert", &p.cert);
    path(t, "key", &p.key);
    path(t, "ca", &p.ca);
    if !p.crls.is_empty() {
        let list: Vec<String> = p.crls.iter().map(|c| q(&shown_path(c, base))).collect();
        let _ = writeln!(t, "crl = [{}]", list.join(", "));
    }
    if p.tls13_only {
        let _ = writeln!(t, "min_version = \"1.3\"");
    }
    if let Some(url) = &p.ocsp_url {
        let _ = writeln!(t, "ocsp = \"hard\"\nocsp_url = {}", q(url));
    }
    if p.crls.is_empty() && p.ocsp_url.is_none() && p.ca.is_some() {
        let _ = writeln!(
            t,
            "# stunnel checked no revocation: add the CA's CRL (crl = [...]) and remove this line\ncrl_unknown = \"allow\""
        );
    }
    t.push('\n');
}

fn render_route(t: &mut String, r: &Route, mllp: bool) {
    let _ = writeln!(t, "# {}", comment(&r.origin));
    if r.allow.as_ref().is_some_and(Vec::is_empty) {
        let _ = writeln!(
            t,
            "# EMPTY allowlist: no partner certificate could be read; list the admitted [[app]] names"
        );
    }
    let _ = writeln!(t, "[[route]]\nname = {}", q(&r.name));
    let _ = writeln!(t, "kind = {}", if mllp { "\"mllp\"" } else { "\"tcp\"" });
    let _ = writeln!(t, "listen = {}", q(&r.listen.to_string()));
    if let Some(tls) = &r.listen_tls {
        let _ = writeln!(t, "listen_tls = {}", q(tls));
    }
    if r.client_auth_none {
        let _ = writeln!(t, "client_auth = \"none\"");
    }
    if let Some(allow) = &r.allow {
        let list: Vec<String> = allow.iter().map(|a| q(a)).collect();
        let _ = writeln!(t, "allow = [{}]", list.join(", "));
    }
    let forward = if r.forward.host.contains(':') {
        format!("[{}]:{}", r.forward.host, r.forward.port)
    } else {
        format!("{}:{}", r.forward.host, r.forward.port)
    };
    let _ = writeln!(t, "forward = {}", q(&forward));
    if let Some(tls) = &r.forward_tls {
        let _ = writeln!(t, "forward_tls = {}", q(tls));
    }
    if let Some(name) = &r.server_name {
        let _ = writeln!(t, "server_name = {}", q(name));
    }
    if let Some(s) = r.idle_timeout {
        let _ = writeln!(t, "idle_timeout = \"{s}s\"");
    }
    if let Some(s) = r.connect_timeout {
        let _ = writeln!(t, "connect_timeout = \"{s}s\"");
    }
    t.push('\n');
}

/// Text made safe for a `#` comment (a newline would end it).
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
