//! The business map as a draw.io file: a page per establishment, on each
//! its domains side by side, in each domain its processes, in each process
//! its application cards, coloured by interface family, critical ones
//! outlined in red. The view it-lanscape's users draw by hand today.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::export::colour_of;
use crate::model::{Application, Domain, Establishment, Process};

const APP_W: u32 = 180;
const APP_H: u32 = 44;
const GAP: u32 = 10;
const HEADER: u32 = 30;
const PROCESS_W: u32 = APP_W + 2 * GAP;
const DOMAIN_W: u32 = PROCESS_W + 2 * GAP;

/// One `mxCell` vertex: its id, parent, label, style and geometry.
struct Vertex<'a> {
    id: &'a str,
    parent: &'a str,
    value: &'a str,
    style: &'a str,
    at: (u32, u32),
    size: (u32, u32),
}

impl Vertex<'_> {
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            r#"<mxCell id="{}" value="{}" style="{}" vertex="1" parent="{}"><mxGeometry x="{}" y="{}" width="{}" height="{}" as="geometry"/></mxCell>"#,
            escape(self.id),
            escape(self.value),
            escape(self.style),
            escape(self.parent),
            self.at.0,
            self.at.1,
            self.size.0,
            self.size.1
        );
    }
}

fn process_height(p: &Process) -> u32 {
    let n = u32::try_from(p.applications.len().max(1)).unwrap_or(u32::MAX / 64);
    HEADER + n * (APP_H + GAP) + GAP
}

fn domain_height(d: &Domain) -> u32 {
    HEADER
        + d.processes
            .iter()
            .map(|p| process_height(p) + GAP)
            .sum::<u32>()
        + GAP
}

/// The whole file: an `mxfile` with one diagram per establishment.
pub fn business_map(establishments: &[Establishment]) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    out.push_str(r#"<mxfile host="guichet" agent="guichet">"#);
    for (i, e) in establishments.iter().enumerate() {
        let _ = write!(
            out,
            r#"<diagram id="e{i}" name="{}"><mxGraphModel grid="1" gridSize="10" page="0"><root><mxCell id="0"/><mxCell id="1" parent="0"/>"#,
            escape(&e.name)
        );
        let mut x = 0;
        for (j, d) in e.domains.iter().enumerate() {
            write_domain(&mut out, &format!("e{i}-d{j}"), d, x);
            x += DOMAIN_W + 2 * GAP;
        }
        out.push_str("</root></mxGraphModel></diagram>");
    }
    out.push_str("</mxfile>\n");
    out
}

fn write_domain(out: &mut String, id: &str, d: &Domain, x: u32) {
    Vertex {
        id,
        parent: "1",
        value: &d.name,
        style: "swimlane;startSize=30;fillColor=#e2e8f0;strokeColor=#475569;fontStyle=1;",
        at: (x, 0),
        size: (DOMAIN_W, domain_height(d)),
    }
    .write(out);
    let mut y = HEADER + GAP;
    for (k, p) in d.processes.iter().enumerate() {
        let pid = format!("{id}-p{k}");
        Vertex {
            id: &pid,
            parent: id,
            value: &p.name,
            style: "swimlane;startSize=30;fillColor=#f8fafc;strokeColor=#94a3b8;",
            at: (GAP, y),
            size: (PROCESS_W, process_height(p)),
        }
        .write(out);
        for (l, a) in p.applications.iter().enumerate() {
            let ay = HEADER + GAP + u32::try_from(l).unwrap_or(0) * (APP_H + GAP);
            write_application(out, &format!("{pid}-a{l}"), &pid, a, ay);
        }
        y += process_height(p) + GAP;
    }
}

fn write_application(out: &mut String, id: &str, parent: &str, a: &Application, y: u32) {
    let trigramme = a.trigramme();
    let value = if trigramme.is_empty() {
        a.name()
    } else {
        format!("{} ({trigramme})", a.name())
    };
    let stroke = if a.is_critical() {
        "strokeColor=#b91c1c;strokeWidth=3;"
    } else {
        "strokeColor=#334155;"
    };
    let style = format!("rounded=1;fillColor={};{stroke}", colour_of(a));
    Vertex {
        id,
        parent,
        value: &value,
        style: &style,
        at: (GAP, y),
        size: (APP_W, APP_H),
    }
    .write(out);
}
