//! `guichet map`: the map of the information system, from it-lanscape's
//! data folder.

use std::process::ExitCode;

use anyhow::Context as _;
use guichet_atlas::export::{csv, drawio, mermaid};
use guichet_atlas::figures::{flow_figures, FlowFigures};
use guichet_atlas::kpi::{kpis, Criticality, Filters, Kpis};
use guichet_atlas::matrix::{of_atlas, Matrix};
use guichet_atlas::{site, Atlas};
use serde::Serialize;

pub mod check;
pub mod live;

use crate::cli::{
    CriticalityArg, ExportFormat, MapBuildArgs, MapExportArgs, MapFilterArgs, MapFormat,
    MapKpisArgs, YesNo,
};

/// Exit status of a usage error (a folder that cannot be read).
pub(crate) const USAGE: u8 = 2;

/// Reads the data folder, or says why not (exit 2).
pub(crate) fn load(data: &std::path::Path) -> Result<Atlas, ExitCode> {
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

/// What `map export --format json` writes: the whole model, its figures
/// and its flow matrix.
#[derive(Serialize)]
struct ModelExport<'a> {
    model: &'a Atlas,
    kpis: Kpis,
    flows: FlowFigures,
    matrix: Matrix,
}

pub fn export_command(args: &MapExportArgs) -> anyhow::Result<ExitCode> {
    let atlas = match load(&args.data) {
        Ok(atlas) => atlas,
        Err(code) => return Ok(code),
    };
    let lang = args.lang.into();
    let observed = crate::observed::load(&args.observed)?;
    let matrix = of_atlas(&atlas, &observed);
    let text = match args.format {
        ExportFormat::Csv => csv::matrix_csv(&matrix, lang),
        ExportFormat::Drawio => drawio::business_map(&atlas.establishments),
        ExportFormat::Mermaid => mermaid::flowchart(&atlas, &matrix, lang),
        ExportFormat::Json => {
            let all = Filters::default();
            let export = ModelExport {
                model: &atlas,
                kpis: kpis(&atlas, &all),
                flows: flow_figures(&atlas, &all, &observed),
                matrix,
            };
            serde_json::to_string_pretty(&export).context("writing the model")? + "\n"
        }
    };
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Now, as the site's footer shows it.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn build_command(args: &MapBuildArgs) -> anyhow::Result<ExitCode> {
    let atlas = match load(&args.data) {
        Ok(atlas) => atlas,
        Err(code) => return Ok(code),
    };
    let lang = args.lang.into();
    let generated = now_rfc3339();
    let observed = crate::observed::load(&args.observed)?;
    let data = site::SiteData::new(&atlas, &observed, lang, &generated);
    let page = site::page(&data).context("writing the page")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let index = args.out.join("index.html");
    std::fs::write(&index, page).with_context(|| format!("cannot write {}", index.display()))?;
    println!("{}", index.display());
    Ok(ExitCode::SUCCESS)
}
