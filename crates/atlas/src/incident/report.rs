//! The incident report in Markdown, laid out as it-lanscape's (scenario,
//! summary, then per establishment: impacted applications, recommended
//! actions, processes, blocked flows, propagation), in French as its users
//! read it, or in English.

use std::collections::BTreeMap;

use super::{Cause, CauseKind, Impact, Incident, Link, Place, Propagated, Status};

pub use crate::Lang;

mod words;
use words::Words;

/// The report for `incident`; `generated_at` is written as given.
pub fn markdown(incident: &Incident, lang: Lang, generated_at: &str) -> String {
    let w = Words::of(lang);
    let mut out = vec![
        format!("# {}", w.title),
        String::new(),
        format!("{} {generated_at}.", w.generated),
        String::new(),
        format!("{}{}{}", w.rules, w.colon, w.rules_name(incident.rules)),
        String::new(),
    ];
    out.extend(scenario(incident, w));
    out.extend(summary(incident, w));
    let sections = by_establishment(incident, w);
    if sections.is_empty() {
        out.extend([format!("## {}", w.by_establishment), String::new()]);
        out.extend([format!("_{}_", w.no_impact), String::new()]);
    }
    for (name, section) in sections {
        out.extend(establishment(&name, &section, w));
    }
    out.join("\n")
}

fn status(s: Status, w: &Words) -> &'static str {
    match s {
        Status::Hs => w.status[0],
        Status::Degrade => w.status[1],
        Status::Latence => w.status[2],
        Status::Intermittent => w.status[3],
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

fn table(headers: &[&str], rows: Vec<Vec<String>>, w: &Words) -> String {
    if rows.is_empty() {
        return format!("_{}_", w.no_data);
    }
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    let mut lines = vec![
        line(headers.iter().map(|h| escape(h)).collect()),
        line(headers.iter().map(|_| "---".to_string()).collect()),
    ];
    lines.extend(
        rows.into_iter()
            .map(|r| line(r.iter().map(|c| escape(c)).collect())),
    );
    lines.join("\n")
}

fn bullets(items: &[String], w: &Words) -> String {
    if items.is_empty() {
        return format!("- {}", w.nothing);
    }
    let lines: Vec<String> = items.iter().map(|i| format!("- {i}")).collect();
    lines.join("\n")
}

fn scenario(incident: &Incident, w: &Words) -> Vec<String> {
    let rows = incident
        .starts
        .iter()
        .map(|s| {
            let label = match s.kind {
                "hosting" => format!("{}{}{}", w.hosting, w.colon, s.label),
                _ => s.label.clone(),
            };
            vec![
                label,
                w.kind(s.kind).to_string(),
                status(s.status, w).to_string(),
                s.establishment.clone().unwrap_or(w.not_given.into()),
                s.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    vec![
        format!("## {}", w.scenario),
        String::new(),
        table(&w.scenario_headers, rows, w),
        String::new(),
    ]
}

fn summary(incident: &Incident, w: &Words) -> Vec<String> {
    let figures = [
        incident.starts.len(),
        incident.impacted.len(),
        incident.processes().len(),
        incident.blocked.len(),
    ];
    let rows = w
        .summary_rows
        .iter()
        .zip(figures)
        .map(|(label, n)| vec![label.to_string(), n.to_string()])
        .collect();
    vec![
        format!("## {}", w.summary),
        String::new(),
        table(&w.summary_headers, rows, w),
        String::new(),
    ]
}

/// What one establishment's section holds.
#[derive(Default)]
struct Section<'a> {
    /// Each impacted application once, with its places there.
    apps: Vec<(&'a Impact, Vec<&'a Place>)>,
    blocked: Vec<&'a Link>,
    propagation: Vec<&'a Propagated>,
}

fn by_establishment<'a>(incident: &'a Incident, w: &Words) -> BTreeMap<String, Section<'a>> {
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    for impact in &incident.impacted {
        if impact.places.is_empty() {
            let entry = sections.entry(w.unknown.to_string()).or_default();
            entry.apps.push((impact, Vec::new()));
        }
        for etab in impact.establishments() {
            let places = impact
                .places
                .iter()
                .filter(|p| p.establishment == etab)
                .collect();
            let entry = sections.entry(etab.to_string()).or_default();
            entry.apps.push((impact, places));
        }
    }
    for link in &incident.blocked {
        let etab = link
            .establishment
            .clone()
            .unwrap_or(w.no_establishment.into());
        sections.entry(etab).or_default().blocked.push(link);
    }
    let places_of = |node: &str| -> Vec<&str> {
        incident
            .impacted
            .iter()
            .find(|i| i.trigramme == node)
            .map(Impact::establishments)
            .unwrap_or_default()
    };
    for edge in &incident.propagation {
        let targets = places_of(&edge.target);
        for etab in places_of(&edge.source) {
            if targets.contains(&etab) {
                sections
                    .entry(etab.to_string())
                    .or_default()
                    .propagation
                    .push(edge);
            }
        }
    }
    sections
}

fn establishment(name: &str, s: &Section, w: &Words) -> Vec<String> {
    let mut out = vec![format!("## {name}"), String::new()];
    out.extend([format!("### {}", w.impacted), String::new()]);
    out.extend([apps_table(s, w), String::new()]);
    out.extend([format!("### {}", w.actions), String::new()]);
    for (impact, _) in &s.apps {
        out.extend([
            format!("#### {} ({})", impact.name, impact.trigramme),
            String::new(),
        ]);
        out.extend([w.describe(impact.status).to_string(), String::new()]);
        out.extend([
            bullets(&w.actions_for(impact.status, &impact.causes), w),
            String::new(),
        ]);
    }
    let mut processes: Vec<String> = s
        .apps
        .iter()
        .flat_map(|(_, places)| {
            places
                .iter()
                .map(|p| format!("{} / {}", p.domain, p.process))
        })
        .collect();
    processes.sort();
    processes.dedup();
    out.extend([format!("### {}", w.processes), String::new()]);
    out.extend([bullets(&processes, w), String::new()]);
    out.extend([format!("### {}", w.blocked), String::new()]);
    out.extend([blocked_table(s, w), String::new()]);
    out.extend([format!("### {}", w.propagation), String::new()]);
    out.extend([propagation_table(s, w), String::new()]);
    out
}

fn cause_text(c: &Cause, w: &Words) -> String {
    let label = match c.kind {
        CauseKind::Hosting => format!("{}{}{}", w.hosting, w.colon, c.label),
        CauseKind::Eai => format!("EAI{}{}", w.colon, c.label),
        CauseKind::Route => format!("Route{}{}", w.colon, c.label),
        _ => c.label.clone(),
    };
    format!("{label} ({})", status(c.status, w))
}

fn apps_table(s: &Section, w: &Words) -> String {
    let mut rows = Vec::new();
    for (impact, places) in &s.apps {
        let causes: Vec<String> = impact.causes.iter().map(|c| cause_text(c, w)).collect();
        let row = |process: String, hosting: Option<&str>| {
            vec![
                impact.name.clone(),
                impact.trigramme.clone(),
                status(impact.status, w).to_string(),
                impact.criticality.clone(),
                process,
                hosting.unwrap_or(w.not_given).to_string(),
                causes.join("<br>"),
            ]
        };
        if places.is_empty() {
            let none = format!("{} / {}", w.not_given, w.not_given);
            rows.push(row(none, None));
        }
        for p in places {
            let process = format!("{} / {}", p.domain, p.process);
            rows.push(row(process, p.hosting.as_deref()));
        }
    }
    table(&w.app_headers, rows, w)
}

fn blocked_table(s: &Section, w: &Words) -> String {
    let rows = s
        .blocked
        .iter()
        .map(|l| {
            let kind = if l.interface_type.is_empty() {
                w.flow.to_string()
            } else {
                l.interface_type.clone()
            };
            let (source, target) = (l.source_label.clone(), l.target_label.clone());
            vec![
                source,
                target,
                kind,
                l.protocol.clone(),
                l.message_type.clone(),
            ]
        })
        .collect();
    table(&w.blocked_headers, rows, w)
}

fn propagation_table(s: &Section, w: &Words) -> String {
    let rows = s
        .propagation
        .iter()
        .map(|e| {
            let kind = if e.interface_type.is_empty() {
                w.dependency.to_string()
            } else {
                e.interface_type.clone()
            };
            let carried = status(e.status, w).to_string();
            vec![
                e.source_label.clone(),
                e.target_label.clone(),
                carried,
                kind,
            ]
        })
        .collect();
    table(&w.propagation_headers, rows, w)
}
