//! `guichet map observed`: the flows the gateway observed, read from its
//! journal, their parties named by the mapping file.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use guichet_atlas::mapping::Mapping;
use guichet_atlas::observed::ObservedFlow;
use guichet_gateway::Config;
use guichet_journal::{FlowTotal, OpenOptions, StoreSpec};

use crate::cli::{MapObservedArgs, ObservedSource};

pub fn observed_command(args: &MapObservedArgs) -> anyhow::Result<ExitCode> {
    if args.source.journal.is_none() && args.source.config.is_none() {
        bail!(
            "give the gateway's journal: --journal journal.db (or a postgres:// URL), \
             or its config file with -c FILE"
        );
    }
    let flows = load(&args.source)?;
    if args.json {
        let text = serde_json::to_string_pretty(&flows).context("writing the flows")?;
        println!("{text}");
    } else {
        print_table(&flows);
    }
    Ok(ExitCode::SUCCESS)
}

/// The observed flows of `source`, resolved by its mapping; none without
/// a journal.
pub fn load(source: &ObservedSource) -> anyhow::Result<Vec<ObservedFlow>> {
    let Some(spec) = store(source)? else {
        return Ok(Vec::new());
    };
    let mapping = source.mapping.as_deref().map(Mapping::read).transpose()?;
    let totals = read_flows(&spec)?;
    Ok(resolve(totals, mapping.as_ref()))
}

/// The journal `source` names: `--journal` as given, or the `[journal]
/// store` of the gateway's config (its relative paths taken from the
/// config's folder, as the gateway takes them).
fn store(source: &ObservedSource) -> anyhow::Result<Option<StoreSpec>> {
    if let Some(store) = &source.journal {
        return Ok(Some(StoreSpec::parse(store, Path::new(""))));
    }
    let Some(path) = &source.config else {
        return Ok(None);
    };
    let config = Config::load(path)?;
    match config.journal {
        Some(journal) => Ok(Some(journal.store)),
        None => bail!(
            "{}: no [journal] section, so the gateway observes no flows",
            path.display()
        ),
    }
}

/// The journal's aggregates as the map takes them, their parties named
/// by `mapping`.
pub fn resolve(totals: Vec<FlowTotal>, mapping: Option<&Mapping>) -> Vec<ObservedFlow> {
    totals
        .into_iter()
        .map(|total| {
            let mut flow = observed(total);
            if let Some(mapping) = mapping {
                mapping.resolve(&mut flow);
            }
            flow
        })
        .collect()
}

/// Every aggregate of the journal at `spec` (a missing SQLite file is
/// an error, not a new journal).
fn read_flows(spec: &StoreSpec) -> anyhow::Result<Vec<FlowTotal>> {
    if let StoreSpec::Sqlite(path) = spec {
        if !path.is_file() {
            bail!(
                "no journal at {}: give the gateway's [journal] store",
                path.display()
            );
        }
    }
    let runtime = crate::runtime::runtime_with(Some(1))?;
    runtime
        .block_on(async {
            let journal = guichet_journal::open(spec, OpenOptions::default()).await?;
            journal.flows().await
        })
        .with_context(|| format!("reading the observed flows of {spec}"))
}

fn observed(t: FlowTotal) -> ObservedFlow {
    let k = t.key;
    ObservedFlow {
        route: k.route,
        kind: k.kind,
        direction: k.direction,
        application: k.application,
        source: k.source,
        target: k.target,
        message_type: k.message_type,
        tls_in: k.tls_in,
        tls_out: k.tls_out,
        count: t.count,
        first_seen: rfc3339(t.first_ms),
        last_seen: rfc3339(t.last_ms),
        outcomes: t.outcomes,
        source_trigramme: None,
        target_trigramme: None,
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn print_table(flows: &[ObservedFlow]) {
    println!(
        "{:<16} {:<6} {:<5} {:<24} {:<24} {:<10} {:<9} {:>8}  {:<24} outcomes",
        "route", "kind", "dir", "source", "target", "type", "tls", "count", "last seen"
    );
    for f in flows {
        let party = |p: &str, t: &Option<String>| match t {
            Some(t) => format!("{} ({t})", shown(p)),
            None => shown(p).to_string(),
        };
        let tls = format!("{}>{}", side(f.tls_in), side(f.tls_out));
        let outcomes: Vec<String> = f.outcomes.iter().map(|(o, n)| format!("{o}={n}")).collect();
        println!(
            "{:<16} {:<6} {:<5} {:<24} {:<24} {:<10} {:<9} {:>8}  {:<24} {}",
            f.route,
            f.kind,
            f.direction,
            party(&f.source, &f.source_trigramme),
            party(&f.target, &f.target_trigramme),
            shown(&f.message_type),
            tls,
            f.count,
            f.last_seen,
            outcomes.join(" ")
        );
    }
}

fn shown(party: &str) -> &str {
    if party.is_empty() {
        "-"
    } else {
        party
    }
}

fn side(tls: bool) -> &'static str {
    if tls {
        "tls"
    } else {
        "plain"
    }
}
