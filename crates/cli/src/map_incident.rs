//! `guichet map incident`: what an outage does downstream, by it-lanscape's
//! rules or guichet's (EAIs and gateway routes as nodes), printed, as
//! JSON, or as a Markdown incident report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgGroup, Args, ValueEnum};
use guichet_atlas::incident::report::{markdown, Lang};
use guichet_atlas::incident::{
    eai_lookalikes, simulate, Cause, Impact, Incident, Rules, Start, Started, Status,
};
use guichet_atlas::observed::ObservedFlow;
use serde::Serialize;

use crate::cli::MapFormat;
use crate::map::load;

/// Exit status of a usage error: a start the map does not have.
const USAGE: u8 = 2;

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("start")
        .required(true)
        .args(["app", "server", "flow", "hosting", "eai", "route"])
))]
pub struct MapIncidentArgs {
    /// it-lanscape's data folder.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// The application that fails, by trigramme.
    #[arg(long, value_name = "TRIGRAMME")]
    pub app: Option<String>,
    /// The server that fails: VM, or ESTABLISHMENT::VM when several
    /// establishments have one of that name.
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// The flow that stops: its id, else SOURCE-TARGET.
    #[arg(long, value_name = "ID")]
    pub flow: Option<String>,
    /// The hosting provider that fails (`hebergement`, exactly).
    #[arg(long, value_name = "HOSTING")]
    pub hosting: Option<String>,
    /// The EAI that fails, by the name flows give it (needs --eai-nodes).
    #[arg(long, value_name = "NAME")]
    pub eai: Option<String>,
    /// The gateway route that fails (needs --eai-nodes and --observed).
    #[arg(long, value_name = "NAME")]
    pub route: Option<String>,
    /// How it fails: hs (down), degrade (degraded), intermittent, latence (slow).
    #[arg(long, value_enum)]
    pub status: StatusArg,
    /// guichet's rules: each EAI and each observed route is a node, so its
    /// outage reaches every flow through it. Without: it-lanscape's rules.
    #[arg(long)]
    pub eai_nodes: bool,
    /// Ties an EAI to the application that is it (repeatable), when their
    /// names differ: "Enovacom Engine=ENO".
    #[arg(long = "eai-app", value_name = "EAI=TRIGRAMME", requires = "eai_nodes")]
    pub eai_app: Vec<String>,
    /// Flows the gateway observed: a JSON array of aggregates with resolved
    /// trigrammes; each adds an edge through its route.
    #[arg(long, value_name = "FILE", requires = "eai_nodes")]
    pub observed: Option<PathBuf>,
    /// human: a line per impacted application; json: one object.
    #[arg(long, value_enum, default_value_t = MapFormat::Human)]
    pub format: MapFormat,
    /// Also write the incident report (Markdown) to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// The report's language.
    #[arg(long, value_enum, default_value_t = crate::cli::Lang::Fr)]
    pub lang: crate::cli::Lang,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Hs,
    Degrade,
    Intermittent,
    Latence,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Hs => Status::Hs,
            StatusArg::Degrade => Status::Degrade,
            StatusArg::Intermittent => Status::Intermittent,
            StatusArg::Latence => Status::Latence,
        }
    }
}

/// The start named on the command line (clap makes it exactly one).
fn start(a: &MapIncidentArgs) -> Start {
    let named = [
        (&a.app, Start::Application as fn(String) -> Start),
        (&a.server, Start::Server),
        (&a.flow, Start::Flow),
        (&a.hosting, Start::Hosting),
        (&a.eai, Start::Eai),
        (&a.route, Start::Route),
    ];
    named
        .into_iter()
        .find_map(|(value, make)| value.clone().map(make))
        .unwrap_or_else(|| Start::Application(String::new()))
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE)
}

/// `EAI=TRIGRAMME` pairs.
fn ties(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    pairs
        .iter()
        .map(|p| match p.rsplit_once('=') {
            Some((eai, tri)) if !eai.trim().is_empty() && !tri.trim().is_empty() => {
                Ok((eai.trim().to_string(), tri.trim().to_uppercase()))
            }
            _ => Err(format!("--eai-app {p}: expected EAI=TRIGRAMME")),
        })
        .collect()
}

fn read_observed(path: &Path) -> Result<Vec<ObservedFlow>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a JSON array of observed flows: {e}",
            path.display()
        )
    })
}

pub fn incident_command(a: &MapIncidentArgs) -> anyhow::Result<ExitCode> {
    if (a.eai.is_some() || a.route.is_some()) && !a.eai_nodes {
        return Ok(usage(
            "--eai and --route need --eai-nodes: by it-lanscape's rules an EAI is a label \
             on a flow, not something that fails",
        ));
    }
    let atlas = match load(&a.data) {
        Ok(atlas) => atlas,
        Err(code) => return Ok(code),
    };
    let rules = match ties(&a.eai_app) {
        Ok(eai_apps) => Rules {
            eai_nodes: a.eai_nodes,
            eai_apps,
        },
        Err(e) => return Ok(usage(e)),
    };
    let observed = match a.observed.as_deref().map(read_observed).transpose() {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => return Ok(usage(e)),
    };
    let status = Status::from(a.status);
    let incident = match simulate(&atlas, &observed, &rules, &[(start(a), status)]) {
        Ok(i) => i,
        Err(e) => return Ok(usage(e)),
    };
    if let (true, Some(app)) = (a.eai_nodes, &a.app) {
        hint_ties(&atlas, &rules, app);
    }
    if let Some(path) = &a.markdown {
        write_report(&incident, a.lang, path)?;
    }
    print(&incident, status, a.format)?;
    Ok(ExitCode::SUCCESS)
}

/// Says which EAI an application looks like it is, when nothing ties them.
fn hint_ties(atlas: &guichet_atlas::Atlas, rules: &Rules, app: &str) {
    for eai in eai_lookalikes(atlas, rules, app) {
        let tri = app.trim().to_uppercase();
        eprintln!(
            "note: {tri} looks like the EAI \"{eai}\"; to count its outage as the EAI's, \
             add --eai-app \"{eai}={tri}\""
        );
    }
}

fn write_report(incident: &Incident, lang: crate::cli::Lang, path: &Path) -> anyhow::Result<()> {
    // French readers expect day first, as it-lanscape writes it.
    let (lang, layout) = match lang {
        crate::cli::Lang::Fr => (Lang::Fr, "[day]/[month]/[year] [hour]:[minute] UTC"),
        crate::cli::Lang::En => (Lang::En, "[year]-[month]-[day] [hour]:[minute] UTC"),
    };
    let layout =
        time::format_description::parse_borrowed::<1>(layout).context("the date's layout")?;
    let at = time::OffsetDateTime::now_utc()
        .format(&layout)
        .context("writing the date")?;
    let text = markdown(incident, lang, &at);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// What `map incident --format json` prints.
#[derive(Serialize)]
struct Report<'a> {
    start: &'a Started,
    status: Status,
    rules: &'a str,
    impacted: Vec<ImpactJson<'a>>,
}

#[derive(Serialize)]
struct ImpactJson<'a> {
    trigramme: &'a str,
    name: &'a str,
    status: Status,
    depth: u8,
    criticality: &'a str,
    establishments: Vec<&'a str>,
    causes: &'a [Cause],
}

impl<'a> From<&'a Impact> for ImpactJson<'a> {
    fn from(i: &'a Impact) -> Self {
        ImpactJson {
            trigramme: &i.trigramme,
            name: &i.name,
            status: i.status,
            depth: i.depth,
            criticality: &i.criticality,
            establishments: i.establishments(),
            causes: &i.causes,
        }
    }
}

fn print(incident: &Incident, status: Status, format: MapFormat) -> anyhow::Result<()> {
    let Some(start) = incident.starts.first() else {
        return Ok(());
    };
    match format {
        MapFormat::Json => {
            let report = Report {
                start,
                status,
                rules: incident.rules,
                impacted: incident.impacted.iter().map(ImpactJson::from).collect(),
            };
            let text = serde_json::to_string_pretty(&report).context("writing the incident")?;
            println!("{text}");
        }
        MapFormat::Human => print_human(incident, start),
    }
    Ok(())
}

fn print_human(incident: &Incident, start: &Started) {
    println!(
        "{} {} ({} rules)",
        start.label,
        start.status.code(),
        incident.rules
    );
    for i in &incident.impacted {
        let causes: Vec<&str> = i.causes.iter().map(|c| c.label.as_str()).collect();
        println!(
            "{:<4} {:<12} {} {:<9} {:<32} ← {}",
            i.trigramme,
            i.status.code(),
            i.depth,
            i.criticality,
            i.name,
            causes.join("; ")
        );
    }
    let (apps, flows) = (incident.impacted.len(), incident.blocked.len());
    let s = |n: usize| if n == 1 { "" } else { "s" };
    println!(
        "{apps} application{} impacted, {flows} flow{} blocked or degraded",
        s(apps),
        s(flows)
    );
}
