//! The checks on servers, on VLANs and on the servers each VLAN lists.

use crate::model::{blank, Scalar, Server, Vlan, VlanServer};

use super::context::{vlan_of_servers, Context};
use super::js::{
    blank_or_falsy, cidr_list_is_valid, is_ipv4, or_empty, set_key, string, string_or_undefined,
    truthy_value,
};
use super::Dimension::{Coherence, Completeness, Validity};
use super::Severity::{High, Medium};
use super::{Issue, Lang, State};

/// `"text"`, or `"vide"` when the value is falsy.
fn quoted(value: &Option<Scalar>, lang: Lang) -> String {
    match or_empty(value) {
        t if t.is_empty() => lang.pick("vide", "empty").to_string(),
        t => t,
    }
}

/// The first truthy of `values`, written, else `fallback`.
fn first_or(values: &[&Option<Scalar>], fallback: &str) -> String {
    values
        .iter()
        .find_map(|v| truthy_value(v))
        .map(string)
        .unwrap_or_else(|| fallback.to_string())
}

/// A server's required fields, as (French, English, blank, high).
fn required(sv: &Server) -> [(&'static str, &'static str, bool, bool); 8] {
    [
        ("nom de VM", "VM name", blank_or_falsy(&sv.vm), false),
        ("adresse IP", "IP address", blank_or_falsy(&sv.ip), true),
        (
            "rôle serveur",
            "server role",
            blank_or_falsy(&sv.role),
            false,
        ),
        ("OS", "OS", blank(&sv.os), false),
        ("antivirus", "antivirus", blank(&sv.antivirus), false),
        ("sauvegarde", "backup", blank(&sv.backup), false),
        ("contact", "contact", blank(&sv.contact), false),
        ("trigramme", "trigramme", sv.trigramme().is_empty(), true),
    ]
}

/// Every check on each server of the infrastructure files.
pub(crate) fn servers(cx: &Context, s: &mut State) {
    for (etab, sv) in cx.atlas.all_servers() {
        let fallback = s.lang.pick("Serveur", "Server");
        let label = format!("{} ({etab})", first_or(&[&sv.vm, &sv.ip], fallback));
        for (fr, en, missing, high) in required(sv) {
            s.check(Completeness, !missing, |l| Issue {
                severity: if high { High } else { Medium },
                code: "incomplete-server",
                title: ("Serveur incomplet", "Incomplete server"),
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
        server_references(cx, sv, &label, s);
    }
}

fn server_references(cx: &Context, sv: &Server, label: &str, s: &mut State) {
    let ip_ok = blank_or_falsy(&sv.ip) || sv.ip.as_ref().is_some_and(|ip| is_ipv4(&string(ip)));
    s.check(Validity, ip_ok, |l| Issue {
        severity: High,
        code: "invalid-value",
        title: ("Adresse IP serveur invalide", "Invalid server IP address"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} utilise \"{}\".", quoted(&sv.ip, l)),
            format!("{label} uses \"{}\".", quoted(&sv.ip, l)),
        ),
        recommendation: l
            .pick(
                "Corriger l’adresse IPv4 dans l’inventaire infrastructure.",
                "Correct the IPv4 address in the infrastructure inventory.",
            )
            .into(),
    });
    let code = sv.trigramme();
    s.check(Coherence, code.is_empty() || cx.app_trigrammes.contains(&code), |l| Issue {
        severity: High,
        code: "orphan-server",
        title: ("Serveur non rattaché à une application", "Server attached to no application"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} référence {code}, absent de la cartographie applicative."),
            format!("{label} refers to {code}, which is not on the application map."),
        ),
        recommendation: l.pick("Rattacher le serveur au bon trigramme applicatif ou créer la fiche applicative.", "Attach the server to the right application trigramme, or create the application's record.").into(),
    });
    s.check(Validity, code.is_empty() || cx.is_known(&code), |l| Issue {
        severity: Medium,
        code: "unknown-trigramme",
        title: ("Trigramme serveur inconnu", "Unknown server trigramme"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} référence {code}, absent de data/trigrammes.json."),
            format!("{label} refers to {code}, which is not in data/trigrammes.json."),
        ),
        recommendation: l
            .pick(
                "Ajouter le trigramme au référentiel ou corriger l’inventaire.",
                "Add the trigramme to the reference list or correct the inventory.",
            )
            .into(),
    });
    in_network(cx, sv, label, s);
}

/// The server is listed in a VLAN, by address or by name.
fn in_network(cx: &Context, sv: &Server, label: &str, s: &mut State) {
    let in_network = truthy_value(&sv.ip).is_some_and(|ip| cx.network_ips.contains(&set_key(ip)))
        || cx.network_names.contains(&or_empty(&sv.vm).to_lowercase());
    s.check(Coherence, in_network, |l| Issue {
        severity: Medium,
        code: "network-infra-mismatch",
        title: (
            "Serveur absent de la vue réseau",
            "Server missing from the network view",
        ),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} existe en infrastructure mais pas dans les VLANs."),
            format!("{label} is in the infrastructure but in no VLAN."),
        ),
        recommendation: l
            .pick(
                "Ajouter le serveur au VLAN correspondant ou corriger son IP/nom.",
                "Add the server to its VLAN or correct its IP address or name.",
            )
            .into(),
    });
}

/// Every check on each VLAN.
pub(crate) fn vlans(cx: &Context, s: &mut State) {
    for d in &cx.atlas.network {
        for vlan in &d.items {
            let name = first_or(
                &[&vlan.name],
                &format!("VLAN-{}", string_or_undefined(&vlan.id)),
            );
            vlan_checks(vlan, &format!("{name} ({})", d.establishment), s);
        }
    }
}

fn vlan_checks(vlan: &Vlan, label: &str, s: &mut State) {
    let complete = !blank_or_falsy(&vlan.name) && !blank(&vlan.network) && !blank(&vlan.gateway);
    s.check(Completeness, complete, |l| Issue {
        severity: Medium,
        code: "incomplete-network",
        title: ("VLAN incomplet", "Incomplete VLAN"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} n’a pas tous ses champs réseau obligatoires."),
            format!("{label} lacks some of its required network fields."),
        ),
        recommendation: l
            .pick(
                "Renseigner nom, CIDR, passerelle et interconnexion.",
                "Fill in name, CIDR, gateway and interconnection.",
            )
            .into(),
    });
    s.check(Validity, cidr_list_is_valid(&vlan.network), |l| Issue {
        severity: High,
        code: "invalid-value",
        title: ("CIDR réseau invalide", "Invalid network CIDR"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} utilise \"{}\".", quoted(&vlan.network, l)),
            format!("{label} uses \"{}\".", quoted(&vlan.network, l)),
        ),
        recommendation: l
            .pick(
                "Corriger le réseau au format CIDR IPv4.",
                "Write the network as an IPv4 CIDR.",
            )
            .into(),
    });
    let gateway_ok =
        blank(&vlan.gateway) || vlan.gateway.as_ref().is_some_and(|g| is_ipv4(&string(g)));
    s.check(Validity, gateway_ok, |l| Issue {
        severity: Medium,
        code: "invalid-value",
        title: ("Passerelle réseau invalide", "Invalid network gateway"),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} utilise \"{}\".", quoted(&vlan.gateway, l)),
            format!("{label} uses \"{}\".", quoted(&vlan.gateway, l)),
        ),
        recommendation: l
            .pick(
                "Corriger l’adresse IPv4 de passerelle.",
                "Correct the gateway's IPv4 address.",
            )
            .into(),
    });
}

/// Each server a VLAN lists is in the infrastructure files.
pub(crate) fn network_servers(cx: &Context, s: &mut State) {
    for vlan in cx.atlas.network.iter().flat_map(|d| &d.items) {
        for ns in &vlan.servers {
            let fallback = s.lang.pick("Serveur réseau", "Network server");
            let label = format!(
                "{} ({})",
                first_or(&[&ns.name, &ns.ip], fallback),
                vlan_of_servers(vlan)
            );
            network_server(cx, ns, &label, s);
        }
    }
}

fn network_server(cx: &Context, ns: &VlanServer, label: &str, s: &mut State) {
    let known = truthy_value(&ns.ip).is_some_and(|ip| cx.server_ips.contains(&set_key(ip)))
        || cx.server_names.contains(&or_empty(&ns.name).to_lowercase());
    s.check(Coherence, known, |l| Issue {
        severity: High,
        code: "network-infra-mismatch",
        title: (
            "Serveur réseau absent de l’infrastructure",
            "Network server missing from the infrastructure",
        ),
        subject: label.to_string(),
        message: l.pick(
            format!("{label} existe dans le réseau mais pas dans l’inventaire infrastructure."),
            format!("{label} is in the network but not in the infrastructure inventory."),
        ),
        recommendation: l
            .pick(
                "Créer ou corriger le serveur dans l’inventaire infrastructure.",
                "Create or correct the server in the infrastructure inventory.",
            )
            .into(),
    });
}
