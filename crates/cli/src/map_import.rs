//! `guichet map import-flows`: a spreadsheet of flows into an
//! establishment's `<etab>.flux.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use guichet_atlas::sheet::{self, Mode};
use serde_json::{Map, Value};

use crate::cli::{ImportMode, MapImportFlowsArgs};

/// Exit status of a usage error (an unreadable sheet, a bad mapping).
const USAGE: u8 = 2;

fn columns(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((field, header)) if !field.trim().is_empty() => {
                Ok((field.trim().to_string(), header.trim().to_string()))
            }
            _ => bail!("--column {p:?}: expected FIELD=HEADER"),
        })
        .collect()
}

/// The flow file as it is (an empty one when missing).
fn existing(path: &Path) -> anyhow::Result<Map<String, Value>> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => bail!("{}: expected a JSON object", path.display()),
            Err(e) => bail!("{}: not valid JSON: {e}", path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn import_flows_command(args: &MapImportFlowsArgs) -> anyhow::Result<ExitCode> {
    match import(args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(USAGE))
        }
    }
}

fn import(args: &MapImportFlowsArgs) -> anyhow::Result<()> {
    let columns = columns(&args.columns)?;
    let table = sheet::read_sheet(&args.sheet, args.sheet_name.as_deref())?;
    let mapping = sheet::mapping(&table.headers, &columns)?;
    for field in ["sourceTrigramme", "targetTrigramme"] {
        if !mapping.contains_key(field) {
            bail!(
                "no column for {field}: name it with --column {field}=HEADER (columns: {})",
                table.headers.join(", ")
            );
        }
    }
    let incoming = sheet::flows(&table, &mapping);
    let mut file = existing(&args.into)?;
    let stem = args
        .into
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".flux.json")
                .to_string()
        })
        .unwrap_or_default();
    let old: Vec<Map<String, Value>> = match file.get("flux") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_object().cloned())
            .collect(),
        _ => Vec::new(),
    };
    let mode = match args.mode {
        ImportMode::Replace => Mode::Replace,
        ImportMode::Merge => Mode::Merge,
    };
    let (flows, report) = sheet::import(old, incoming, mode, &stem.to_uppercase());
    if !file.contains_key("etablissement") {
        let name = args.etab.clone().unwrap_or_else(|| stem.clone());
        file.insert("etablissement".into(), Value::from(name));
    }
    file.insert(
        "flux".into(),
        Value::Array(flows.into_iter().map(Value::Object).collect()),
    );
    let text = serde_json::to_string_pretty(&file)? + "\n";
    println!(
        "{} row(s) read from sheet {:?}: {} added, {} updated, {} flow(s) in {}",
        table.rows.len(),
        table.name,
        report.added,
        report.updated,
        report.total,
        args.into.display()
    );
    if args.dry_run {
        print!("{text}");
        return Ok(());
    }
    write_atomically(&args.into, &text)
}

/// Replaces the file whole or not at all: a temporary file beside it,
/// then a rename.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
