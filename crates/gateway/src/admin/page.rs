//! The `/status` page: one self-contained HTML document (no script, no
//! CDN), readable on a laptop, refreshed by the browser every 5 seconds.

use std::fmt::Write as _;

use crate::localtime;
use crate::status::{HttpRouteStatus, RequestCounts, Snapshot};

const STYLE: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#5a6172}.ok{color:#17743a;font-weight:600}.bad{color:#b3261e;font-weight:600}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;box-shadow:0 1px 2px #0001}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e6eb;vertical-align:top;word-break:normal;overflow-wrap:normal}
th{background:#eef0f4;font-weight:600;white-space:nowrap}.t,.n,.id,code,td:first-child{white-space:nowrap}.n{text-align:right}
tr.warn td{background:#fff4e5}tr.err td{background:#fdecea}h3{font-size:1rem;margin:1rem 0 .4rem}
code{font:12px ui-monospace,monospace}.empty{color:#5a6172;font-style:italic;padding:.5rem}
.mode{display:inline-block;padding:0 .4rem;border-radius:.3rem;background:#e8eefc;font-size:12px}
.mode.plain{background:#fdecea}";

/// The page; `map`: a link to the live map (`[map]` is configured).
pub fn render(s: &Snapshot, map: bool) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let (title, heading) = match &s.name {
        Some(name) => (
            format!("{} · guichet", e(name)),
            format!(
                "{} <span class=meta>guichet {}</span>",
                e(name),
                e(s.version)
            ),
        ),
        None => (
            "guichet status".to_string(),
            format!("guichet {}", e(s.version)),
        ),
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=refresh content=5><meta name=viewport content='width=device-width,initial-scale=1'>\
         <title>{title}</title><style>{STYLE}</style></head><body>\
         <h1>{heading}</h1><div class=meta>config <code>{}</code> · up {} · {} · {}</div>",
        e(&s.config),
        uptime(s.uptime_seconds),
        if s.ready { "<span class=ok>ready</span>" } else { "<span class=bad>not ready</span>" },
        reload(s),
    );
    routes(&mut h, s);
    http_routes(&mut h, s);
    folders(&mut h, s);
    certificates(&mut h, s);
    refusals(&mut h, s);
    messages(&mut h, s);
    let map = if map {
        " · the map of the information system at <a href=/map>/map</a>"
    } else {
        ""
    };
    let _ = write!(h, "<p class=meta>as of {} · JSON at <a href=/api/status>/api/status</a> · <a href=/metrics>/metrics</a>{map}</p></body></html>", when(&s.now));
    h
}

fn reload(s: &Snapshot) -> String {
    match &s.last_reload {
        None => "no reload yet".into(),
        Some(r) if r.ok => format!(
            "last reload {} ({}) <span class=ok>ok</span>",
            when(&r.at),
            e(&r.cause)
        ),
        Some(r) => format!(
            "last reload {} ({}) <span class=bad>refused</span>: {}",
            when(&r.at),
            e(&r.cause),
            e(r.error.as_deref().unwrap_or(""))
        ),
    }
}

fn routes(h: &mut String, s: &Snapshot) {
    h.push_str("<h2>Routes</h2><div class=scroll><table><tr><th>route</th><th>kind</th><th>listen</th><th>admits</th><th>forward</th><th>open</th><th>ended connections</th><th>refused</th><th>messages</th><th>queue</th></tr>");
    for r in &s.routes {
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td><td><span class='mode {lm}'>{lm}</span> <code>{}</code></td><td>{}</td>\
             <td><span class='mode {fm}'>{fm}</span> <code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&r.name),
            match r.delivery {
                Some("store-and-forward") => "mllp, store-and-forward",
                _ => r.kind,
            },
            e(&r.listen),
            if r.allow.is_empty() { "—".into() } else { e(&r.allow.join(", ")) },
            e(&r.forward),
            r.server_name.as_deref().map(|n| format!(" as <code>{}</code>", e(n))).unwrap_or_default(),
            r.open_connections,
            counts(r.connections.iter()),
            r.refusals,
            counts(r.messages.iter()),
            queue(r.queue.as_ref()),
            lm = r.listen_mode,
            fm = r.forward_mode,
        );
    }
    h.push_str("</table></div>");
}

/// The folder routes: where files come from and go, what they finished,
/// and their queue.
fn folders(h: &mut String, s: &Snapshot) {
    if s.folders.is_empty() {
        return;
    }
    h.push_str("<h2>Drop folders</h2><div class=scroll><table><tr><th>route</th><th>inbox</th><th>upstream</th><th>checks</th><th>done</th><th>rejected</th><th>queue</th></tr>");
    for f in &s.folders {
        let checks = match (f.validate, f.convert) {
            (None, _) => "none".to_string(),
            (Some(v), None) => e(v),
            (Some(v), Some(c)) => format!("{}, sent as {}", e(v), e(c)),
        };
        let count = |outcome: &str| f.files.get(outcome).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td><code>{}</code></td><td><code>{}</code></td><td>{checks}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&f.name),
            e(&f.inbox),
            e(&f.upstream),
            count("done"),
            count("rejected"),
            queue(Some(&f.queue)),
        );
    }
    h.push_str("</table></div>");
}

/// A store-and-forward route's queue: depth, oldest wait, dead, and
/// whether this node delivers it.
fn queue(q: Option<&crate::status::QueueStatus>) -> String {
    let Some(q) = q else {
        return "—".into();
    };
    let oldest = q
        .oldest_pending_age_seconds
        .map(|s| format!(", oldest {s} s"))
        .unwrap_or_default();
    let dead = if q.dead > 0 {
        format!(", <b>{} dead</b>", q.dead)
    } else {
        String::new()
    };
    let here = if q.delivering_here {
        "delivering here"
    } else {
        "delivered by another node"
    };
    format!("{} waiting{oldest}{dead}; {here}", q.depth)
}

fn counts<'a>(items: impl Iterator<Item = (&'a &'static str, &'a u64)>) -> String {
    let parts: Vec<String> = items.map(|(k, v)| format!("{} {v}", e(k))).collect();
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(", ")
    }
}

fn certificates(h: &mut String, s: &Snapshot) {
    h.push_str("<h2>Certificates</h2><div class=scroll><table><tr><th>profile</th><th>role</th><th>subject</th><th>issuer</th><th>expires</th><th>days left</th><th>SHA-256</th></tr>");
    for c in &s.certificates {
        let class = if c.days_left < 0 {
            "err"
        } else if c.warning {
            "warn"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr class='{class}'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=t>{}</td><td class=n>{}</td><td><code>{}</code></td></tr>",
            e(&c.cert.profile),
            c.cert.role,
            e(&c.cert.subject),
            e(&c.cert.issuer),
            when(&c.cert.not_after),
            c.days_left,
            e(&short(&c.cert.fingerprint)),
        );
    }
    if s.certificates.is_empty() {
        h.push_str("<tr><td colspan=7 class=empty>no TLS profile in use</td></tr>");
    }
    h.push_str("</table></div>");
}

fn refusals(h: &mut String, s: &Snapshot) {
    h.push_str("<h2>Recent refusals</h2><div class=scroll><table><tr><th>time</th><th>route</th><th>side</th><th>remote</th><th>reason</th><th>certificate presented</th></tr>");
    for r in &s.recent_refusals {
        let cert = match (&r.subject, &r.fingerprint) {
            (Some(subject), Some(fp)) => format!("{} <code>{}</code>", e(subject), e(&short(fp))),
            _ => "—".into(),
        };
        let _ = write!(
            h,
            "<tr class=err><td class=t>{}</td><td class=id>{}</td><td>{}</td><td><code>{}</code></td><td><b>{}</b><br>{}</td><td>{cert}</td></tr>",
            when(&r.at),
            e(&r.route),
            r.side,
            e(&r.remote),
            r.reason,
            e(&r.description),
        );
    }
    if s.recent_refusals.is_empty() {
        h.push_str("<tr><td colspan=6 class=empty>no refusal</td></tr>");
    }
    h.push_str("</table></div>");
}

fn messages(h: &mut String, s: &Snapshot) {
    h.push_str("<h2>Recent messages</h2><div class=scroll><table><tr><th>time</th><th>route</th><th>from</th><th>type</th><th>control id</th><th>ACK</th><th>latency</th></tr>");
    for m in &s.recent_messages {
        let class = match (m.outcome, m.id_matches) {
            ("AA" | "CA", Some(true)) => "",
            _ => "warn",
        };
        let from = m.peer_app.as_deref().map_or_else(
            || e(&m.sender),
            |app| format!("{} ({})", e(&m.sender), e(app)),
        );
        let ack = match m.id_matches {
            Some(false) => format!("{} — MSA-2 does not match", m.outcome),
            _ => m.outcome.to_string(),
        };
        let _ = write!(
            h,
            "<tr class='{class}'><td class=t>{}</td><td class=id>{}</td><td>{from}</td><td class=id>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            when(&m.at),
            e(&m.route),
            e(&m.message_type),
            e(&m.control_id),
            e(&ack),
            m.latency_ms.map(|l| format!("{l:.1} ms")).unwrap_or_else(|| "—".into()),
        );
    }
    if s.recent_messages.is_empty() {
        h.push_str("<tr><td colspan=7 class=empty>no message yet (mllp routes only)</td></tr>");
    }
    h.push_str("</table></div>");
}

/// An RFC 3339 time in local time with its offset
/// (`2026-12-06 07:12:03 +01:00`), the exact UTC value on hover.
fn when(rfc3339: &str) -> String {
    let shown = localtime::format_rfc3339(rfc3339);
    format!("<span class=t title='{}'>{}</span>", e(rfc3339), e(&shown))
}

/// Each `http` route: its rules with their requests, and its last
/// refusals (rule and prefix, application or certificate, reason; never
/// the request's own path or query).
fn http_routes(h: &mut String, s: &Snapshot) {
    for r in &s.routes {
        if let Some(http) = &r.http {
            let _ = write!(h, "<h2>HTTPS gateway <code>{}</code></h2>", e(&r.name));
            http_rules(h, http);
            http_refusals(h, http);
        }
    }
}

fn http_rules(h: &mut String, http: &HttpRouteStatus) {
    h.push_str("<div class=scroll><table class=http-rules><tr><th>rule</th><th>path</th><th>upstream</th><th>admits</th>\
        <th class=n>2xx</th><th class=n>3xx</th><th class=n>4xx</th><th class=n>5xx</th><th class=n>refused</th></tr>");
    for rule in &http.rules {
        let path = format!("{}{}", rule.host.as_deref().unwrap_or("*"), rule.path);
        let _ = write!(
            h,
            "<tr data-rule='{}'><td><b>{}</b></td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td>{}</tr>",
            e(&rule.name),
            e(&rule.name),
            e(&path),
            e(&rule.upstream),
            e(&rule.allow.join(", ")),
            count_cells(&rule.requests),
        );
    }
    let _ = write!(
        h,
        "<tr data-rule=''><td><i>no rule</i></td><td colspan=3 class=meta>requests that matched no rule</td>{}</tr>\
         <tr data-rule=handshake><td><i>TLS handshake</i></td><td colspan=3 class=meta>connections refused before any request</td>\
         <td colspan=4></td><td class=n>{}</td></tr></table></div>\
         <p class=meta>2xx to 5xx: answers from the upstream; refused: answered by guichet itself (reasons below).</p>",
        count_cells(&http.unmatched),
        http.handshakes_refused,
    );
}

fn count_cells(c: &RequestCounts) -> String {
    format!(
        "<td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>",
        c.s2xx, c.s3xx, c.s4xx, c.s5xx, c.refused
    )
}

fn http_refusals(h: &mut String, http: &HttpRouteStatus) {
    h.push_str("<h3>Last refusals</h3><div class=scroll><table class=http-refusals><tr><th>time</th><th>rule</th>\
        <th>path</th><th>application or certificate</th><th>reason</th></tr>");
    for r in &http.recent_refusals {
        let who = match (&r.application, &r.subject) {
            (Some(app), _) => format!("<b>{}</b>", e(app)),
            (None, Some(subject)) => e(subject),
            (None, None) => "no certificate".to_string(),
        };
        let path = match &r.path {
            Some(path) => format!(
                "<code>{}{}</code>",
                e(r.host.as_deref().unwrap_or("*")),
                e(path)
            ),
            None => "—".to_string(),
        };
        let status = r.status.map(|s| format!(" ({s})")).unwrap_or_default();
        let words = r
            .description
            .as_deref()
            .map(|d| format!("<br>{}", e(d)))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr class=err><td>{}</td><td class=id>{}</td><td>{path}</td><td>{who}</td><td><b>{}</b>{status}{words}</td></tr>",
            when(&r.at),
            e(r.rule.as_deref().unwrap_or("—")),
            e(r.reason),
        );
    }
    if http.recent_refusals.is_empty() {
        h.push_str("<tr><td colspan=5 class=empty>no refusal</td></tr>");
    }
    h.push_str("</table></div>");
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The first 8 bytes of a colon-separated fingerprint, enough to tell
/// certificates apart on screen (the JSON has the whole value).
fn short(fingerprint: &str) -> String {
    fingerprint.split(':').take(8).collect::<Vec<_>>().join(":")
}

/// HTML-escapes text for element content and quoted attributes.
fn e(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            e("<b a='1'>&\"</b>"),
            "&lt;b a=&#39;1&#39;&gt;&amp;&quot;&lt;/b&gt;"
        );
    }
}
