//! How each kind of start impacts its first applications, as
//! it-lanscape's incident page does it (and guichet's relays).

use super::graph::{Graph, LinkKind};
use super::run::{looks_like_database, propagate, Run};
use super::{Cause, CauseKind, Rules, Start, StartError, Started, Status};
use crate::model::{text, Atlas, Server};

fn cause(kind: CauseKind, label: &str, status: Status) -> Cause {
    Cause {
        kind,
        label: label.to_string(),
        status,
        database_server: false,
    }
}

fn started(kind: &'static str, value: &str, label: String, status: Status) -> Started {
    Started {
        kind,
        value: value.to_string(),
        label,
        node: None,
        establishment: None,
        detail: None,
        status,
    }
}

/// Finds the start in the map and records its first impacts.
pub(super) fn apply(
    graph: &Graph,
    atlas: &Atlas,
    rules: &Rules,
    run: &mut Run,
    start: &Start,
    status: Status,
) -> Result<Started, StartError> {
    match start {
        Start::Application(v) => application(graph, run, v, status),
        Start::Server(v) => server(atlas, run, v, status),
        Start::Flow(v) => flow(graph, run, v, status),
        Start::Hosting(v) => hosting(graph, run, v, status),
        Start::Eai(_) | Start::Route(_) if !rules.eai_nodes => Err(StartError::NeedsEaiNodes),
        Start::Eai(v) => eai(graph, run, v, status),
        Start::Route(v) => route(graph, run, v, status),
    }
}

fn application(
    graph: &Graph,
    run: &mut Run,
    value: &str,
    status: Status,
) -> Result<Started, StartError> {
    let tri = value.trim().to_uppercase();
    if tri.is_empty() || !graph.knows(&tri) {
        let mut known: Vec<(String, String)> = graph
            .names
            .iter()
            .map(|(t, n)| (t.clone(), n.clone()))
            .collect();
        known.extend(graph.apps.iter().map(|(t, m)| (t.clone(), m.name.clone())));
        return Err(StartError::UnknownApplication {
            value: value.to_string(),
            close: close_matches(&tri, known),
        });
    }
    let meta = graph.apps.get(&tri);
    let label = match meta {
        Some(m) => format!("{} ({tri})", m.name),
        None => tri.clone(),
    };
    run.add(
        &tri,
        status,
        cause(CauseKind::Application, &label, status),
        0,
    );
    let mut s = started("application", value, label, status);
    if let Some(m) = meta {
        s.establishment = m.places.first().map(|p| {
            if m.multi {
                "Multi-établissements".into()
            } else {
                p.establishment.clone()
            }
        });
        s.detail = m
            .places
            .first()
            .map(|p| format!("{} / {}", p.domain, p.process));
    }
    s.node = Some(tri);
    Ok(s)
}

/// The servers with a trigramme (it-lanscape lists no other), with their
/// establishment.
fn servers(atlas: &Atlas) -> impl Iterator<Item = (&str, &Server)> {
    atlas
        .all_servers()
        .filter(|(_, s)| !s.trigramme().is_empty())
}

fn server(
    atlas: &Atlas,
    run: &mut Run,
    value: &str,
    status: Status,
) -> Result<Started, StartError> {
    let (etab, vm) = match value.split_once("::") {
        Some((e, v)) => (Some(e.trim()), v.trim()),
        None => (None, value.trim()),
    };
    let found: Vec<(&str, &Server)> = servers(atlas)
        .filter(|(e, s)| s.name() == vm && etab.is_none_or(|want| want == *e))
        .collect();
    let Some(&(establishment, chosen)) = found.first() else {
        let known = servers(atlas).map(|(e, s)| (format!("{e}::{}", s.name()), s.name()));
        return Err(StartError::UnknownServer {
            value: value.to_string(),
            close: close_matches(&vm.to_uppercase(), known.collect()),
        });
    };
    if found.iter().any(|(e, _)| *e != establishment) {
        return Err(StartError::AmbiguousServer {
            value: value.to_string(),
            candidates: found
                .iter()
                .map(|(e, s)| format!("{e}::{}", s.name()))
                .collect(),
        });
    }
    let tri = chosen.trigramme();
    // it-lanscape judges the first server of that name among all of the
    // application's, whichever establishment holds it.
    let all: Vec<&Server> = servers(atlas)
        .map(|(_, s)| s)
        .filter(|s| s.trigramme() == tri)
        .collect();
    let judged = all.iter().find(|s| s.name() == vm);
    let database = judged.is_some_and(|s| looks_like_database(&text(&s.declared_role)));
    let app_status = if database || all.len() <= 1 {
        status
    } else {
        status.indirect()
    };
    let label = format!("{vm} ({tri}) • {establishment}");
    let mut c = cause(CauseKind::Server, &label, status);
    c.database_server = database;
    run.add(&tri, app_status, c, 0);
    let mut s = started("server", value, label, status);
    s.node = Some(tri);
    s.establishment = Some(establishment.to_string());
    s.detail = Some(vm.to_string());
    Ok(s)
}

fn flow(graph: &Graph, run: &mut Run, value: &str, status: Status) -> Result<Started, StartError> {
    let declared = || graph.links.iter().filter(|l| l.kind == LinkKind::Declared);
    let Some(link) = declared().find(|l| l.key == value.trim()) else {
        let known = declared().map(|l| (l.key.clone(), l.key.clone())).collect();
        return Err(StartError::UnknownFlow {
            value: value.to_string(),
            close: close_matches(&value.trim().to_uppercase(), known),
        });
    };
    run.flows.insert(link.key.clone());
    let establishment = link.establishment.clone().unwrap_or_default();
    let label = format!(
        "{} → {} • {establishment}",
        link.source_label, link.target_label
    );
    let to_target = propagate(status, 1, &link.interface_type).unwrap_or(Status::Latence);
    run.add(
        &link.target,
        to_target,
        cause(CauseKind::Flow, &label, status),
        0,
    );
    let outgoing = cause(CauseKind::FlowOutgoing, &label, status);
    run.add(&link.source, to_target.indirect(), outgoing, 0);
    let mut s = started("flow", value, label, status);
    s.establishment = Some(establishment);
    Ok(s)
}

fn hosting(
    graph: &Graph,
    run: &mut Run,
    value: &str,
    status: Status,
) -> Result<Started, StartError> {
    let known: Vec<String> = {
        let mut all: Vec<String> = graph
            .apps
            .values()
            .flat_map(|m| m.places.iter().filter_map(|p| p.hosting.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    };
    if !known.iter().any(|h| h == value) {
        let pairs = known.iter().map(|h| (h.clone(), h.clone())).collect();
        return Err(StartError::UnknownHosting {
            value: value.to_string(),
            close: close_matches(&value.to_uppercase(), pairs),
        });
    }
    // it-lanscape compares the first occurrence's hosting only.
    for tri in &graph.order {
        let first = graph.apps[tri].hosting.as_ref().and_then(|h| h.as_str());
        if first == Some(value) {
            run.add(tri, status, cause(CauseKind::Hosting, value, status), 0);
        }
    }
    let mut s = started("hosting", value, value.to_string(), status);
    s.establishment = Some(value.to_string());
    Ok(s)
}

fn eai(graph: &Graph, run: &mut Run, value: &str, status: Status) -> Result<Started, StartError> {
    let wanted = value.trim();
    let found = graph
        .eais
        .iter()
        .find(|(name, _)| name.as_str() == wanted)
        .or_else(|| {
            let lower = wanted.to_lowercase();
            graph
                .eais
                .iter()
                .find(|(name, _)| name.to_lowercase() == lower)
        });
    let Some((name, node)) = found else {
        return Err(StartError::UnknownEai {
            value: value.to_string(),
            known: graph.eais.keys().cloned().collect(),
        });
    };
    run.add(node, status, cause(CauseKind::Eai, name, status), 0);
    let mut s = started("eai", value, name.clone(), status);
    s.node = Some(node.clone());
    Ok(s)
}

fn route(graph: &Graph, run: &mut Run, value: &str, status: Status) -> Result<Started, StartError> {
    let name = value.trim();
    if !graph.routes.contains(name) {
        return Err(StartError::UnknownRoute {
            value: value.to_string(),
            known: graph.routes.iter().cloned().collect(),
        });
    }
    let node = format!("route:{name}");
    run.add(&node, status, cause(CauseKind::Route, name, status), 0);
    let mut s = started("route", value, name.to_string(), status);
    s.node = Some(node);
    Ok(s)
}

/// Up to five of `known` (code, name) close to `wanted` (upper case): the
/// code in another case, else the code within one edit or the name
/// containing it.
fn close_matches(wanted: &str, known: Vec<(String, String)>) -> Vec<String> {
    let same: Vec<String> = known
        .iter()
        .filter(|(code, _)| code.to_uppercase() == wanted)
        .map(|(code, _)| code.clone())
        .collect();
    if !same.is_empty() {
        return same;
    }
    let mut close: Vec<String> = known
        .into_iter()
        .filter(|(code, name)| {
            !wanted.is_empty()
                && (edits(&code.to_uppercase(), wanted) <= 1
                    || name.to_uppercase().contains(wanted))
        })
        .map(|(code, _)| code)
        .collect();
    close.sort();
    close.dedup();
    close.truncate(5);
    close
}

/// Levenshtein distance, by characters.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
