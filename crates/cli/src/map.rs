//! `guichet map`: the map of the information system, from it-lanscape's
//! data folder.

use std::process::ExitCode;

use anyhow::Context as _;
use guichet_atlas::figures::{flow_figures, FlowFigures};
use guichet_atlas::kpi::{kpis, Criticality, Filters, Kpis};
use guichet_atlas::Atlas;
use serde::Serialize;

use crate::cli::{CriticalityArg, MapFilterArgs, MapFormat, MapKpisArgs, YesNo};

/// Exit status of a usage error (a folder that cannot be read).
const USAGE: u8 = 2;

/// Reads the data folder, or says why not (exit 2).
fn load(data: &std::path::Path) -> Result<Atlas, ExitCode> {
    guichet_atlas::read_dir(data).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(USAGE)
    })
}

impl From<&MapFilterArgs> for Filters {
    fn from(a: &MapFilterArgs) -> Self {
        Filters {
            establishments: a.etab.clone(),
            domains: a.domain.clone(),
            criticality: a.criticality.map(|c| match c {
                CriticalityArg::Critical => Criticality::Critical,
                CriticalityArg::Standard => Criticality::Standard,
            }),
            hosting: a.hosting.clone(),
            interface: a.interface.clone(),
            multi: a.multi.map(|m| m == YesNo::Yes),
        }
    }
}

/// What `map kpis --format json` prints: it-lanscape's figures, then
/// guichet's.
#[derive(Serialize)]
struct KpisReport {
    #[serde(flatten)]
    dashboard: Kpis,
    #[serde(flatten)]
    flows: FlowFigures,
}

pub fn kpis_command(args: &MapKpisArgs) -> anyhow::Result<ExitCode> {
    let atlas = match load(&args.data) {
        Ok(atlas) => atlas,
        Err(code) => return Ok(code),
    };
    let filters = Filters::from(&args.filters);
    let observed = crate::observed::load(&args.observed)?;
    let report = KpisReport {
        dashboard: kpis(&atlas, &filters),
        flows: flow_figures(&atlas, &filters, &observed),
    };
    match args.format {
        MapFormat::Json => {
            let text = serde_json::to_string_pretty(&report).context("writing the figures")?;
            println!("{text}");
        }
        MapFormat::Human => print_kpis(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_kpis(r: &KpisReport) {
    let d = &r.dashboard;
    println!("applications (occurrences)  {}", d.applications);
    println!("process alignment           {:.1} %", d.proc_pct);
    println!("application alignment       {:.1} %", d.align_pct);
    println!("mutualisation               {:.1} %", d.multi_pct);
    println!("completeness                {:.1} %", d.compl_pct);
    let f = &r.flows;
    println!("declared flows              {}", f.flows);
    println!("encrypted (declared)        {:.1} %", f.encrypted_pct);
    if let (Some(seen), Some(enc)) = (f.observed_pct, f.observed_encrypted_pct) {
        println!("declared flows observed     {seen:.1} %");
        println!("encrypted (observed)        {enc:.1} %");
        println!("shadow flows                {}", f.shadow_flows.len());
    }
    for e in &f.eai_dependency {
        let eai = if e.eai.is_empty() { "(none)" } else { &e.eai };
        println!("through {eai:<20}{:>4} flows  {:.1} %", e.flows, e.pct);
    }
    let hubs: Vec<String> = f
        .hubs
        .iter()
        .map(|h| format!("{} ({})", h.trigramme, h.flows))
        .collect();
    println!("most connected              {}", hubs.join(", "));
    let clear: Vec<&str> = f
        .critical_in_clear
        .iter()
        .map(|c| c.trigramme.as_str())
        .collect();
    println!("critical with flows in clear {}", clear.join(", "));
}
