//! `guichet-bench map`: the map of a synthetic hospital group, as a
//! nightly job builds it: 20 establishments, 3,000 application
//! occurrences, 5,000 flows, in it-lanscape's data folder form. Measured:
//! `guichet map build` and `guichet map kpis` (wall and CPU, the median
//! of several rounds), and the time the built page takes in headless
//! Chromium until its first view is on screen (the page's own
//! `data-rendered-ms`, from navigation start). The section "The map" of
//! docs/BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::timed::{self, Round};

/// The section's heading in docs/BENCHMARKS.md.
pub const HEADING: &str = "## The map\n";

/// What the product promises.
const BUILD_TARGET: Duration = Duration::from_secs(2);
const KPIS_TARGET: Duration = Duration::from_millis(200);
const PAGE_TARGET_MS: u64 = 1000;

/// The group's size.
pub struct Plan {
    pub establishments: usize,
    pub occurrences: usize,
    pub flows: usize,
    pub rounds: usize,
}

const DOMAINS: [&str; 10] = [
    "DP Administrative",
    "DP Commun",
    "DP Spécialités",
    "Dossier médico-techniques",
    "Support & logistique",
    "Gestion",
    "Qualité & Risques",
    "Communication / Collaboration",
    "Annuaire & ref. internes",
    "Pilotage",
];
const PROTOCOLS: [&str; 7] = ["HL7", "FHIR", "DICOM", "API", "HTTPS", "SFTP", "SMTP/TLS"];
const FAMILIES: [&str; 5] = [
    "Administrative",
    "Medicale",
    "Planification",
    "Facturation",
    "Autre",
];
const MESSAGE_TYPES: [&str; 5] = ["ADT", "ORU", "ORM", "DFT", "MDM"];
const EAIS: [&str; 4] = ["Enovacom Engine", "API interne", "Passerelle MSS", "Direct"];

/// The trigramme of the `n`th application of the group's catalogue.
fn trigramme(n: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    format!(
        "{}{}{}",
        letters[n / 676 % 26] as char,
        letters[n / 26 % 26] as char,
        letters[n % 26] as char
    )
}

/// One establishment's business map: `per_etab` occurrences spread over
/// the domains, five processes each, drawn from a catalogue of `catalogue`
/// applications (so establishments share some).
fn business(e: usize, per_etab: usize, catalogue: usize) -> Value {
    let per_process = (per_etab / (DOMAINS.len() * 5)).max(1);
    let mut n = 0;
    let domains: Vec<Value> = DOMAINS
        .iter()
        .enumerate()
        .map(|(d, name)| {
            let processes: Vec<Value> = (0..5)
                .map(|p| {
                    let apps: Vec<Value> = (0..per_process)
                        .map(|a| {
                            n += 1;
                            let id = (d * 97 + p * 13 + a * 7 + e * (a % 3)) % catalogue;
                            json!({
                                "nom": format!("Application {}", trigramme(id)),
                                "description": "Application du groupe",
                                "editeur": if id % 4 == 0 { "" } else { "Éditeur" },
                                "referent": if id % 3 == 0 { "" } else { "dsi@groupe.fr" },
                                "hebergement": if id % 3 == 0 { "SaaS".to_string() } else { format!("Établissement {e}") },
                                "criticite": if id % 5 == 0 { "Critique" } else { "Standard" },
                                "multiEtablissement": id % 2 == 0,
                                "lienPRTG": if id % 6 == 0 { Value::Null } else { json!("https://prtg.groupe.fr") },
                                "interfaces": FAMILIES.iter().enumerate().map(|(i, f)| (f.to_string(), json!((id + i) % 3 == 0))).collect::<serde_json::Map<_, _>>(),
                                "trigramme": trigramme(id),
                            })
                        })
                        .collect();
                    json!({"nom": format!("Processus {d}.{p}"), "description": "", "applications": apps})
                })
                .collect();
            json!({"nom": name, "description": "", "processus": processes})
        })
        .collect();
    debug_assert!(n > 0);
    json!({"etablissements": [{"nom": format!("Établissement {e}"), "domaines": domains}]})
}

fn flows(e: usize, count: usize, catalogue: usize) -> Value {
    let flux: Vec<Value> = (0..count)
        .map(|i| {
            let source = (i * 31 + e) % catalogue;
            let target = (i * 17 + 5 + e * 3) % catalogue;
            json!({
                "id": format!("E{e}-FLX-{i:04}"),
                "sourceTrigramme": trigramme(source),
                "targetTrigramme": trigramme(target),
                "protocol": PROTOCOLS[i % PROTOCOLS.len()],
                "port": 2575,
                "messageType": MESSAGE_TYPES[i % MESSAGE_TYPES.len()],
                "interfaceType": FAMILIES[i % FAMILIES.len()],
                "eaiName": EAIS[i % EAIS.len()],
                "description": "Flux du groupe",
            })
        })
        .collect();
    json!({"etablissement": format!("Établissement {e}"), "flux": flux})
}

fn infrastructure(e: usize, catalogue: usize) -> Value {
    let servers: Vec<Value> = (0..catalogue)
        .step_by(2)
        .map(|id| {
            json!({"VM": format!("e{e}-{}-01", trigramme(id).to_lowercase()), "PrimaryIPAddress": format!("10.{e}.{}.{}", id / 250, id % 250 + 1),
                   "RoleServeur": "Serveur applicatif", "CPUs": 4, "MemoryMiB": 16384, "TotalDiskCapacityMiB": 204800,
                   "OS": "Debian 12", "Antivirus": "ClamAV", "Backup": "RPO 4h", "Contact": "dsi@groupe.fr",
                   "Editeur": "Éditeur", "trigramme": trigramme(id)})
        })
        .collect();
    json!({"etablissement": format!("Établissement {e}"), "serveurs": servers})
}

/// Applications in the group's catalogue: each establishment uses about
/// half of them.
fn catalogue(plan: &Plan) -> usize {
    (plan.occurrences / plan.establishments * 2).max(10)
}

/// Writes the group's data folder.
pub fn write_group(dir: &Path, plan: &Plan) -> anyhow::Result<()> {
    let catalogue = catalogue(plan);
    let per_etab = plan.occurrences / plan.establishments;
    let per_flows = plan.flows / plan.establishments;
    let mut names = serde_json::Map::new();
    for id in 0..catalogue {
        names.insert(
            trigramme(id),
            json!(format!("Application {}", trigramme(id))),
        );
    }
    std::fs::write(
        dir.join("trigrammes.json"),
        Value::Object(names).to_string(),
    )?;
    for e in 0..plan.establishments {
        let file = |kind: &str| dir.join(format!("etab_{e:02}{kind}.json"));
        std::fs::write(file(""), business(e, per_etab, catalogue).to_string())?;
        std::fs::write(file(".flux"), flows(e, per_flows, catalogue).to_string())?;
        std::fs::write(file(".infra"), infrastructure(e, catalogue).to_string())?;
        std::fs::write(
            file(".network"),
            json!({"etablissement": format!("Établissement {e}"), "vlans": []}).to_string(),
        )?;
    }
    Ok(())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Builds, computes and opens the group's map; returns the section.
pub fn run(guichet: &Path, plan: &Plan, date: &str) -> anyhow::Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-map-")
        .tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    write_group(&data, plan)?;
    let site = dir.path().join("site");
    let build = || {
        let mut cmd = Command::new(guichet);
        cmd.args(["map", "build"])
            .arg(&data)
            .arg("--out")
            .arg(&site);
        timed::run(cmd, "guichet map build").map(|(_, r)| r)
    };
    let kpis = || {
        let mut cmd = Command::new(guichet);
        cmd.args(["map", "kpis", "--format", "json"]).arg(&data);
        timed::run(cmd, "guichet map kpis")
    };
    let (out, _) = kpis()?;
    let figures: Value = serde_json::from_slice(&out.stdout).context("map kpis printed no JSON")?;
    if figures["applications"].as_u64() != Some(plan.occurrences as u64) {
        bail!(
            "map kpis counted {} occurrences, not {}",
            figures["applications"],
            plan.occurrences
        );
    }
    build()?;
    let mut builds = Vec::new();
    let mut sums = Vec::new();
    for _ in 0..plan.rounds {
        builds.push(build()?);
        sums.push(kpis()?.1);
    }
    let page = std::fs::metadata(site.join("index.html"))?.len();
    let rendered: Vec<u64> = (0..plan.rounds.min(5))
        .map(|i| {
            rendered_ms(
                &site.join("index.html"),
                &dir.path().join(format!("chromium-{i}")),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(section(
        plan, &builds, &sums, &rendered, page, &figures, date,
    ))
}

/// The page's own measure of its first view, read in headless Chromium.
fn rendered_ms(page: &Path, profile: &Path) -> anyhow::Result<u64> {
    let mut cmd = Command::new("chromium");
    cmd.args(guichet_testsupport::peers::CHROMIUM_HEADLESS)
        .arg("--dump-dom")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()));
    let (out, _) = timed::run(cmd, "chromium")?;
    let dom = String::from_utf8_lossy(&out.stdout);
    let at = dom
        .find("data-rendered-ms=\"")
        .context("the page never rendered its first view")?;
    let rest = &dom[at + 18..];
    Ok(rest[..rest.find('"').unwrap_or(0)].parse()?)
}

fn section(
    plan: &Plan,
    builds: &[Round],
    sums: &[Round],
    rendered: &[u64],
    page: u64,
    figures: &Value,
    date: &str,
) -> String {
    let build_wall = median(builds.iter().map(|r| r.wall).collect());
    let build_cpu = median(builds.iter().map(|r| r.cpu).collect());
    let kpis_wall = median(sums.iter().map(|r| r.wall).collect());
    let kpis_cpu = median(sums.iter().map(|r| r.cpu).collect());
    let mut sorted = rendered.to_vec();
    sorted.sort_unstable();
    let page_ms = sorted[sorted.len() / 2];
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    let mut s = String::from(HEADING);
    let _ = write!(
        s,
        "\nA synthetic hospital group in it-lanscape's data folder form: {} establishments, \
         {} application occurrences ({} flows declared, a server for every other application), \
         {} applications in the group's catalogue. `guichet map build` writes the site \
         (one self-contained page, {:.1} MiB); `guichet map kpis --format json` prints the \
         dashboard's figures and guichet's (alignment {} %, {} flows). The page's time is its \
         own `data-rendered-ms` in headless Chromium (navigation start to the first view on \
         screen: the data parsed, the figures computed, the view drawn). The median of {} \
         rounds. Measured {date}; 2 cores.\n\n",
        plan.establishments,
        plan.occurrences,
        plan.flows,
        catalogue(plan),
        page as f64 / (1024.0 * 1024.0),
        figures["alignPct"],
        figures["flows"],
        plan.rounds,
    );
    s.push_str("| step | wall | CPU |\n|---|---:|---:|\n");
    let _ = writeln!(
        s,
        "| `guichet map build` | {} | {} |",
        ms(build_wall),
        ms(build_cpu)
    );
    let _ = writeln!(
        s,
        "| `guichet map kpis` | {} | {} |",
        ms(kpis_wall),
        ms(kpis_cpu)
    );
    let _ = writeln!(s, "| page, first view on screen | {page_ms} ms | |");
    s.push_str("\n### Targets (the map)\n\n| target | measured | verdict |\n|---|---|---|\n");
    let _ = writeln!(
        s,
        "| `map build` under 2 s | {} | {} |",
        ms(build_wall),
        verdict(build_wall < BUILD_TARGET)
    );
    let _ = writeln!(
        s,
        "| `map kpis` under 200 ms | {} | {} |",
        ms(kpis_wall),
        verdict(kpis_wall < KPIS_TARGET)
    );
    let _ = writeln!(
        s,
        "| page interactive under 1 s | {page_ms} ms | {} |",
        verdict(page_ms < PAGE_TARGET_MS)
    );
    s.push_str("\nReproduce: `cargo run --release -p guichet-bench -- map`.\n\n");
    s
}
