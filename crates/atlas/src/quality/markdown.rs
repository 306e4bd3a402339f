//! The quality report in Markdown, after it-lanscape's "Data Quality
//! Center" report: a summary, the dimensions, then the findings grouped by
//! severity, and guichet's own findings apart. It holds what the map's
//! files describe (names, addresses, trigrammes), nothing else.

use super::{Dimension, Finding, Lang, Quality, Severity};

/// A table cell: `|` escaped, line breaks as `<br>`.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

fn table(headers: &[&str], rows: &[Vec<String>], lang: Lang) -> String {
    if rows.is_empty() {
        return lang.pick("_Aucune donnée._", "_No data._").to_string();
    }
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    let mut lines = vec![
        line(headers.iter().map(|h| cell(h)).collect()),
        line(headers.iter().map(|_| "---".to_string()).collect()),
    ];
    lines.extend(
        rows.iter()
            .map(|r| line(r.iter().map(|c| cell(c)).collect())),
    );
    lines.join("\n")
}

fn summary(q: &Quality, lang: Lang) -> String {
    let m = &q.metrics;
    let rows: Vec<Vec<String>> = [
        (
            lang.pick("Score global", "Overall score"),
            format!("{}/100", q.score),
        ),
        ("Applications", m.applications.to_string()),
        (
            lang.pick("Établissements", "Establishments"),
            m.establishments.to_string(),
        ),
        (lang.pick("Serveurs", "Servers"), m.servers.to_string()),
        (
            lang.pick("Serveurs réseau", "Network servers"),
            m.network_servers.to_string(),
        ),
        (lang.pick("Flux", "Flows"), m.flows.to_string()),
        (
            lang.pick("Anomalies", "Findings"),
            q.findings.len().to_string(),
        ),
        (
            lang.pick("Critiques", "Critical"),
            q.count(Severity::Critical).to_string(),
        ),
        (
            lang.pick("Fortes", "High"),
            q.count(Severity::High).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect();
    table(
        &[
            lang.pick("Indicateur", "Indicator"),
            lang.pick("Valeur", "Value"),
        ],
        &rows,
        lang,
    )
}

fn dimensions(q: &Quality, lang: Lang) -> String {
    let rows: Vec<Vec<String>> = Dimension::ALL
        .iter()
        .map(|d| {
            let s = q.dimensions.get(*d);
            vec![
                d.label(lang).to_string(),
                format!("{}%", s.score),
                format!("{}/{}", s.passed, s.total),
            ]
        })
        .collect();
    let headers = [
        "Dimension",
        "Score",
        lang.pick("Contrôles conformes", "Checks passed"),
    ];
    table(&headers, &rows, lang)
}

/// The findings of `findings`, a section per severity that has some.
fn by_severity(findings: &[Finding], lang: Lang) -> Vec<String> {
    let headers = [
        "Dimension",
        lang.pick("Anomalie", "Finding"),
        lang.pick("Détail", "Detail"),
        lang.pick("Recommandation", "Recommendation"),
    ];
    let mut out = Vec::new();
    for severity in Severity::ALL {
        let rows: Vec<Vec<String>> = findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| {
                vec![
                    f.dimension.label(lang).to_string(),
                    f.title.clone(),
                    f.message.clone(),
                    f.recommendation.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out.push(format!(
                "### {} ({})\n\n{}\n",
                severity.label(lang),
                rows.len(),
                table(&headers, &rows, lang)
            ));
        }
    }
    if out.is_empty() {
        out.push(format!(
            "{}\n",
            lang.pick("_Aucune anomalie._", "_No findings._")
        ));
    }
    out
}

/// The report, in `lang` (the findings' texts are those `q` was built
/// with).
pub fn markdown(q: &Quality, lang: Lang) -> String {
    let mut parts = vec![
        format!("# {}\n", lang.pick("Qualité des données", "Data quality")),
        format!(
            "## {}\n\n{}\n",
            lang.pick("Synthèse", "Summary"),
            summary(q, lang)
        ),
        format!("## Dimensions\n\n{}\n", dimensions(q, lang)),
        format!("## {}\n", lang.pick("Anomalies", "Findings")),
    ];
    parts.extend(by_severity(&q.findings, lang));
    if !q.extra.is_empty() {
        parts.push(format!(
            "## {}\n\n{}\n",
            lang.pick(
                "Contrôles propres à guichet (hors score)",
                "guichet's own checks (not scored)"
            ),
            lang.pick(
                "Ces constats ne comptent ni dans les dimensions ni dans le score.",
                "These findings count in no dimension and not in the score."
            )
        ));
        parts.extend(by_severity(&q.extra, lang));
    }
    parts.join("\n")
}
