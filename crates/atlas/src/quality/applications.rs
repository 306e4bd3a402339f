//! The checks on establishments and on each application occurrence.

use crate::model::{blank, Application, Occurrence};

use super::context::Context;
use super::js::{is_external_hosting, is_trigramme, or_empty, text_in};
use super::Dimension::{Coherence, Completeness, Exploitability, Validity};
use super::Severity::{Critical, High, Low, Medium};
use super::{Issue, Lang, Severity, State};

/// Every establishment of the business map has an infrastructure file, a
/// network file and a flow file.
pub(crate) fn establishments(cx: &Context, s: &mut State) {
    for e in &cx.atlas.establishments {
        let name = e.name.as_str();
        s.check(Coherence, cx.infra_establishments.contains(name), |l| Issue {
            severity: High,
            code: "missing-establishment-dataset",
            title: ("Établissement absent de l’infrastructure", "Establishment missing from the infrastructure"),
            subject: name.to_string(),
            message: l.pick(
                format!("{name} existe dans la cartographie applicative mais pas dans l’inventaire infrastructure."),
                format!("{name} is on the application map but not in the infrastructure inventory."),
            ),
            recommendation: l.pick("Ajouter le fichier infrastructure ou corriger le nom d’établissement.", "Add the infrastructure file or correct the establishment's name.").into(),
        });
        s.check(Coherence, cx.network_establishments.contains(name), |l| Issue {
            severity: High,
            code: "missing-establishment-dataset",
            title: ("Établissement absent du réseau", "Establishment missing from the network"),
            subject: name.to_string(),
            message: l.pick(
                format!("{name} existe dans la cartographie applicative mais pas dans l’inventaire réseau."),
                format!("{name} is on the application map but not in the network inventory."),
            ),
            recommendation: l.pick("Ajouter le fichier réseau ou corriger le nom d’établissement.", "Add the network file or correct the establishment's name.").into(),
        });
        s.check(Exploitability, cx.flow_establishments.contains(name), |l| {
            Issue {
                severity: Medium,
                code: "impact-readiness",
                title: (
                    "Flux absents pour un établissement",
                    "No flows for an establishment",
                ),
                subject: name.to_string(),
                message: l.pick(
                    format!("{name} n’a pas de catalogue de flux exploitable."),
                    format!("{name} has no usable flow catalogue."),
                ),
                recommendation: l
                    .pick(
                        "Ajouter les flux applicatifs pour fiabiliser les analyses d’impact.",
                        "Add the application flows so that impact analyses can be trusted.",
                    )
                    .into(),
            }
        });
    }
}

/// it-lanscape's `labelForApplication`.
fn label(o: &Occurrence, lang: Lang) -> String {
    let a = o.application;
    let name = match or_empty(&a.name) {
        n if !n.is_empty() => n,
        _ if !a.trigramme().is_empty() => a.trigramme(),
        _ => "Application".to_string(),
    };
    let site = match o.establishment.name.as_str() {
        "" => lang.pick("site inconnu", "unknown site"),
        e => e,
    };
    format!("{name} ({site})")
}

/// Every check on each application occurrence, in it-lanscape's order.
pub(crate) fn applications(cx: &Context, s: &mut State) {
    for o in cx.atlas.occurrences() {
        let label = label(&o, s.lang);
        let a = o.application;
        fields(a, &label, s);
        referent(a, &label, s);
        validity(cx, a, &label, s);
        duplicate(cx, a, s);
        hosting(cx, a, &label, s);
    }
}

/// The required fields, as (field, French, English).
const REQUIRED: [(&str, &str, &str); 6] = [
    ("nom", "nom applicatif", "application name"),
    ("description", "description", "description"),
    ("editeur", "éditeur", "editor"),
    ("hebergement", "hébergement", "hosting"),
    ("trigramme", "trigramme", "trigramme"),
    ("criticite", "criticité", "criticality"),
];

fn required_blank(a: &Application, field: &str) -> bool {
    match field {
        "nom" => blank(&a.name),
        "description" => blank(&a.description),
        "editeur" => blank(&a.editor),
        "hebergement" => blank(&a.hosting),
        "trigramme" => a.trigramme().is_empty(),
        _ => blank(&a.criticality),
    }
}

fn fields(a: &Application, label: &str, s: &mut State) {
    for (field, fr, en) in REQUIRED {
        s.check(Completeness, !required_blank(a, field), |l| Issue {
            severity: Medium,
            code: "incomplete-application",
            title: ("Application incomplète", "Incomplete application"),
            subject: label.to_string(),
            message: l.pick(
                format!("{label} n’a pas de {fr}."),
                format!("{label} has no {en}."),
            ),
            recommendation: l.pick(
                format!("Renseigner le champ {fr}."),
                format!("Fill in the {en} field."),
            ),
        });
    }
    let interfaces = a.interfaces.iter().any(|(_, on)| *on);
    s.check(Completeness, interfaces, |l| Issue {
        severity: Medium,
        code: "incomplete-application",
        title: (
            "Interfaces applicatives non qualifiées",
            "Application interfaces not qualified",
        ),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} n’a aucune famille d’interface activée."),
            format!("{label} has no interface family set."),
        ),
        recommendation: l
            .pick(
                "Qualifier au moins une interface ou confirmer explicitement l’absence de flux.",
                "Qualify at least one interface, or state explicitly that there are no flows.",
            )
            .into(),
    });
}

fn referent(a: &Application, label: &str, s: &mut State) {
    s.check(Exploitability, !blank(&a.referent), |l| Issue {
        severity: if a.is_critical() { High } else { Low },
        code: "impact-readiness",
        title: ("Référent manquant", "Missing referent"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} n’a pas de référent identifié."),
            format!("{label} has no identified referent."),
        ),
        recommendation: l
            .pick(
                "Renseigner un propriétaire applicatif ou un contact DSI.",
                "Name an application owner or an IT department contact.",
            )
            .into(),
    });
}

fn validity(cx: &Context, a: &Application, label: &str, s: &mut State) {
    let code = a.trigramme();
    s.check(Validity, code.is_empty() || is_trigramme(&code), |l| {
        Issue {
            severity: High,
            code: "invalid-value",
            title: ("Format de trigramme invalide", "Invalid trigramme format"),
            subject: label.to_string(),
            message: l.pick(
                format!("{label} utilise le trigramme \"{code}\"."),
                format!("{label} uses the trigramme \"{code}\"."),
            ),
            recommendation: l
                .pick(
                    "Utiliser un code sur 3 caractères alphanumériques.",
                    "Use a code of 3 alphanumeric characters.",
                )
                .into(),
        }
    });
    s.check(Validity, code.is_empty() || cx.is_known(&code), |l| Issue {
        severity: High,
        code: "unknown-trigramme",
        title: (
            "Trigramme applicatif inconnu",
            "Unknown application trigramme",
        ),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} référence {code}, absent de data/trigrammes.json."),
            format!("{label} refers to {code}, which is not in data/trigrammes.json."),
        ),
        recommendation: l
            .pick(
                "Ajouter le trigramme au référentiel ou corriger la fiche applicative.",
                "Add the trigramme to the reference list or correct the application's record.",
            )
            .into(),
    });
    s.check(
        Validity,
        text_in(&a.criticality, &["Critique", "Standard"]),
        |l| Issue {
            severity: Medium,
            code: "invalid-value",
            title: ("Criticité invalide", "Invalid criticality"),
            subject: label.to_string(),
            message: l.pick(
                format!("{label} a une criticité non reconnue."),
                format!("{label} has an unrecognised criticality."),
            ),
            recommendation: l
                .pick(
                    "Utiliser Critique ou Standard.",
                    "Use Critique or Standard.",
                )
                .into(),
        },
    );
}

fn duplicate(cx: &Context, a: &Application, s: &mut State) {
    let code = a.trigramme();
    let unique = code.is_empty() || cx.apps_by_trigramme.get(&code) == Some(&1);
    s.check(Coherence, unique, |l| Issue {
        severity: Medium,
        code: "duplicate-trigramme",
        title: (
            "Trigramme applicatif dupliqué",
            "Duplicate application trigramme",
        ),
        subject: code.clone(),
        message: l.pick(
            format!("{code} est porté par plusieurs applications."),
            format!("{code} is carried by several applications."),
        ),
        recommendation: l
            .pick(
                "Dédupliquer le référentiel ou expliciter une application commune.",
                "Deduplicate the reference list or make the shared application explicit.",
            )
            .into(),
    });
}

/// A server unless hosted outside; then the checks of a critical
/// application.
fn hosting(cx: &Context, a: &Application, label: &str, s: &mut State) {
    let code = a.trigramme();
    let has_server = cx.server_trigrammes.contains(&code);
    let external = is_external_hosting(&a.hosting);
    let severity: Severity = if a.is_critical() { High } else { Medium };
    if !external {
        s.check(Coherence, has_server, |l| Issue {
            severity,
            code: "orphan-server",
            title: (
                "Application sans serveur rattaché",
                "Application without a server",
            ),
            subject: label.to_string(),
            message: l.pick(
                format!("{label} n’a aucun serveur associé dans l’infrastructure."),
                format!("{label} has no server in the infrastructure."),
            ),
            recommendation: l
                .pick(
                    "Rattacher au moins un serveur ou qualifier l’hébergement comme SaaS/externe.",
                    "Attach at least one server, or qualify the hosting as SaaS/external.",
                )
                .into(),
        });
    }
    if a.is_critical() {
        critical(cx, a, has_server || external, label, s);
    }
}

/// A critical application can be recovered (a server, or hosted outside)
/// and its flows are known.
fn critical(cx: &Context, a: &Application, recoverable: bool, label: &str, s: &mut State) {
    let code = a.trigramme();
    s.check(Exploitability, recoverable, |l| Issue {
        severity: Critical,
        code: "impact-readiness",
        title: (
            "Application critique non exploitable pour PRA/PCA",
            "Critical application not usable for DR/BC",
        ),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} est critique mais sans serveur ni hébergement externe explicite."),
            format!("{label} is critical but has neither a server nor explicit external hosting."),
        ),
        recommendation: l
            .pick(
                "Documenter l’infrastructure, le mode SaaS ou les dépendances de reprise.",
                "Document the infrastructure, the SaaS mode or the recovery dependencies.",
            )
            .into(),
    });
    let flows = cx.flows_by_trigramme.get(&code).copied().unwrap_or(0);
    s.check(Exploitability, flows > 0, |l| Issue {
        severity: High,
        code: "impact-readiness",
        title: (
            "Application critique sans flux documenté",
            "Critical application without documented flows",
        ),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} est critique mais aucun flux entrant ou sortant n’est connu."),
            format!("{label} is critical but no incoming or outgoing flow is known."),
        ),
        recommendation: l
            .pick(
                "Documenter les flux nécessaires à l’analyse d’impact.",
                "Document the flows the impact analysis needs.",
            )
            .into(),
    });
}
