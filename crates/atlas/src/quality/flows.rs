//! The checks on declared flows, on the trigrammes they name, and
//! guichet's own: a flow from an application to itself.

use crate::model::{blank, Flow, Scalar};

use super::context::Context;
use super::js::{is_port, or_empty, string, text_in, truthy_value};
use super::Dimension::{Coherence, Completeness, Exploitability, Validity};
use super::Severity::{High, Medium};
use super::{Issue, Lang, State};

const PROTOCOLS: [&str; 7] = ["HL7", "FHIR", "DICOM", "API", "HTTPS", "SFTP", "SMTP/TLS"];
const INTERFACE_TYPES: [&str; 5] = [
    "Administrative",
    "Medicale",
    "Planification",
    "Facturation",
    "Autre",
];

/// The flow's `id`, else `SOURCE → TARGET` with `?` for a missing side.
fn label(f: &Flow) -> String {
    let side = |code: String| {
        if code.is_empty() {
            "?".to_string()
        } else {
            code
        }
    };
    match truthy_value(&f.id) {
        Some(id) => string(id),
        None => format!("{} → {}", side(f.source()), side(f.target())),
    }
}

/// `"text"`, or `"vide"` when the value is falsy.
fn quoted(value: &Option<Scalar>, lang: Lang) -> String {
    match or_empty(value) {
        t if t.is_empty() => lang.pick("vide", "empty").to_string(),
        t => t,
    }
}

/// A flow's required fields, as (French, English, blank).
fn required(f: &Flow) -> [(&'static str, &'static str, bool); 8] {
    [
        ("source", "source", f.source().is_empty()),
        ("cible", "target", f.target().is_empty()),
        ("protocole", "protocol", blank(&f.protocol)),
        ("port", "port", blank(&f.port)),
        ("type de message", "message type", blank(&f.message_type)),
        (
            "type d’interface",
            "interface type",
            blank(&f.interface_type),
        ),
        ("EAI", "EAI", blank(&f.eai)),
        ("description", "description", blank(&f.description)),
    ]
}

/// Every check on each declared flow.
pub(crate) fn flows(cx: &Context, s: &mut State) {
    for (_, f) in cx.atlas.all_flows() {
        let label = label(f);
        for (fr, en, missing) in required(f) {
            s.check(Completeness, !missing, |l| Issue {
                severity: Medium,
                code: "incomplete-flux",
                title: ("Flux incomplet", "Incomplete flow"),
                subject: label.clone(),
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
        values(f, &label, s);
        endpoints(cx, f, &label, s);
    }
}

/// An invalid value of a flow, with its French and English advice.
fn invalid<'a>(
    label: &'a str,
    title: (&'static str, &'static str),
    value: &'a Option<Scalar>,
    advice: (&'static str, &'static str),
) -> impl FnOnce(Lang) -> Issue + 'a {
    move |l: Lang| Issue {
        severity: Medium,
        code: "invalid-value",
        title,
        subject: label.to_string(),
        message: l.pick(
            format!("{label} utilise \"{}\".", quoted(value, l)),
            format!("{label} uses \"{}\".", quoted(value, l)),
        ),
        recommendation: l.pick(advice.0, advice.1).to_string(),
    }
}

fn values(f: &Flow, label: &str, s: &mut State) {
    s.check(
        Validity,
        text_in(&f.protocol, &PROTOCOLS),
        invalid(
            label,
            ("Protocole de flux invalide", "Invalid flow protocol"),
            &f.protocol,
            (
                "Utiliser un protocole supporté par le référentiel.",
                "Use a protocol the reference list supports.",
            ),
        ),
    );
    s.check(
        Validity,
        is_port(&f.port),
        invalid(
            label,
            ("Port de flux invalide", "Invalid flow port"),
            &f.port,
            (
                "Corriger le port TCP/UDP dans la plage 1-65535.",
                "Correct the TCP/UDP port: a number from 1 to 65535.",
            ),
        ),
    );
    s.check(
        Validity,
        text_in(&f.interface_type, &INTERFACE_TYPES),
        invalid(
            label,
            ("Type d’interface invalide", "Invalid interface type"),
            &f.interface_type,
            (
                "Utiliser une famille d’interface reconnue.",
                "Use a recognised interface family.",
            ),
        ),
    );
}

fn endpoints(cx: &Context, f: &Flow, label: &str, s: &mut State) {
    for (fr, en, code) in [
        ("source", "source", f.source()),
        ("cible", "target", f.target()),
    ] {
        s.check(
            Coherence,
            code.is_empty() || cx.app_trigrammes.contains(&code),
            |l| Issue {
                severity: High,
                code: "unknown-trigramme",
                title: (
                    "Flux vers application inconnue",
                    "Flow to an unknown application",
                ),
                subject: label.to_string(),
                message: l.pick(
                    format!("{label} référence {code} en {fr}."),
                    format!("{label} refers to {code} as its {en}."),
                ),
                recommendation: l
                    .pick(
                        "Corriger le trigramme ou créer la fiche applicative correspondante.",
                        "Correct the trigramme or create the application's record.",
                    )
                    .into(),
            },
        );
        s.check(Validity, code.is_empty() || cx.is_known(&code), |l| Issue {
            severity: Medium,
            code: "unknown-trigramme",
            title: (
                "Flux avec trigramme hors référentiel",
                "Flow with a trigramme outside the reference list",
            ),
            subject: label.to_string(),
            message: l.pick(
                format!("{label} référence {code}, absent de data/trigrammes.json."),
                format!("{label} refers to {code}, which is not in data/trigrammes.json."),
            ),
            recommendation: l
                .pick(
                    "Ajouter le trigramme au référentiel ou corriger le flux.",
                    "Add the trigramme to the reference list or correct the flow.",
                )
                .into(),
        });
    }
}

/// A trigramme of the flows with neither an application nor a server: a
/// finding that is no check (it counts in no dimension).
pub(crate) fn dependencies(cx: &Context, s: &mut State) {
    let l = s.lang;
    for code in &cx.flow_trigrammes {
        if cx.app_trigrammes.contains(code) || cx.server_trigrammes.contains(code) {
            continue;
        }
        s.issue(Exploitability, Issue {
            severity: Medium,
            code: "impact-readiness",
            title: ("Dépendance de flux non exploitable", "Unusable flow dependency"),
            subject: code.clone(),
            message: l.pick(
                format!("{code} apparaît dans les flux mais n’a ni application ni serveur rattaché."),
                format!("{code} appears in the flows but has neither an application nor a server."),
            ),
            recommendation: l.pick("Créer la fiche applicative ou documenter la dépendance externe.", "Create the application's record or document the external dependency.").into(),
        });
    }
}

/// guichet's own check: a flow whose source and target are the same
/// application says nothing about an exchange between two systems; it is
/// usually a typing error in one of the two trigrammes.
pub(crate) fn self_flows(cx: &Context, s: &mut State) {
    let l = s.lang;
    for (_, f) in cx.atlas.all_flows() {
        let code = f.source();
        if code.is_empty() || code != f.target() {
            continue;
        }
        let label = label(f);
        s.extra(
            Coherence,
            Issue {
                severity: Medium,
                code: "self-flow",
                title: (
                    "Flux d’une application vers elle-même",
                    "Flow from an application to itself",
                ),
                subject: label.clone(),
                message: l.pick(
                    format!("{label} a {code} pour source et pour cible."),
                    format!("{label} has {code} as both its source and its target."),
                ),
                recommendation: l
                    .pick(
                        "Corriger la source ou la cible du flux.",
                        "Correct the flow's source or target.",
                    )
                    .into(),
            },
        );
    }
}
