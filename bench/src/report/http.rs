//! The "HTTPS gateway" section: guichet's `http` route against nginx and
//! Caddy, the HTTPS gateway's targets, and how each gateway is set up.

use std::fmt::Write;
use std::time::Duration;

use super::{
    checks, latency_or_dash, peak_memory, problem, problems_list, rate, rate_cells, targets_table,
    times, Run, Verdict,
};
use crate::http::client::PATH;
use crate::http::{Detail, BODY};
use crate::peers::Peer;
use crate::scenario::{Outcome, Scenario, Throughput};

/// The section's heading, by which [`super::merge_section`] finds it.
pub(super) const HEADING: &str = "## HTTPS gateway\n";

/// The peers of the section, in the order of its rows.
const PEERS: [Peer; 3] = [Peer::Guichet, Peer::Nginx, Peer::Caddy];

/// Keep-alive: guichet's requests/s over nginx's, with a lower p99.
const KEEP_ALIVE_TARGET: f64 = 1.2;
/// A handshake per request: guichet's requests/s over nginx's.
const HANDSHAKE_TARGET: f64 = 1.0;

impl Run<'_> {
    /// The whole section, self-contained (date, command, machine), so it
    /// can replace its previous version in a report from another run.
    pub fn http_section(&self) -> String {
        let mut out = String::new();
        self.http_header(&mut out);
        self.http_table(&mut out);
        targets_table(
            &mut out,
            "### Targets (HTTPS gateway)",
            self.http_verdicts(),
        );
        self.http_method(&mut out);
        self.https_problems(
            &mut out,
            Scenario::is_http,
            "### Failed, invalid or skipped (HTTPS gateway)",
        );
        out
    }

    fn http_header(&self, out: &mut String) {
        let m = self.machine;
        let p = self.plan;
        let _ = write!(
            out,
            "{HEADING}
guichet's `http` route against nginx and Caddy (Go, the closest packaged
stand-in for Traefik), each alone in front of the same upstream, with the
same certificates, measured in the same run.

```text
load generator (HTTPS, client certificate) -> gateway (mTLS in, allowlist, HTTP/1.1 out, pooled) -> upstream (plain HTTP/1.1)
```

{provenance}
- guichet: {guichet}
- nginx: {nginx}
- Caddy: {caddy}
- Request: `GET {PATH}` over HTTP/1.1 with a client certificate; the
  upstream answers 200 and a {body}-byte JSON document; the load generator
  checks the status and the body of every response
- Each scenario: {rounds} round(s) per peer, the peers interleaved; each
  round {warmup:?} of warm-up, then {measured:?} measured, with a fresh
  upstream and a fresh gateway; the median round is reported, with the
  range of all rounds
- One connection is latency-bound: each request wakes the gateway twice
  (the client's request, the upstream's answer), and on a virtual machine
  an idle vCPU is slow to wake; that row moves most between runs, compare
  its ratios within one run

req/s is the median round, with the lowest and highest rounds in
parentheses; the latencies and CPU are those of the median round.
Latencies are from the load generator: sending the request to reading the
whole response (for a connection per request, connecting and the
handshake included). CPU/req is the user + system time of a process
during the measured window divided by the requests answered: the
gateway's (nginx: master and workers), the load generator's and the
upstream's. The three share {cores} cores: a gateway's rate is bounded by
the sum of the three, so a gateway twice as cheap is less than twice as
fast here. vs nginx: requests/s divided by nginx's (above 1: faster).

| scenario | peer | CPU/req: gateway | load generator | upstream | req/s | p50 | p99 | p99.9 | gateway peak memory | vs nginx | checks |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
",
            provenance = self.provenance("the gateway and the upstream"),
            cores = m.cores,
            guichet = m.guichet,
            nginx = m.nginx,
            caddy = m.caddy,
            body = BODY.len(),
            rounds = p.rounds,
            warmup = p.warmup,
            measured = p.measured,
        );
    }

    fn http_table(&self, out: &mut String) {
        for scenario in Scenario::HTTP {
            for peer in PEERS {
                let Some(outcome) = self.outcome(scenario, peer) else {
                    continue;
                };
                let vs_nginx = self
                    .throughput_ratio(scenario, peer, Peer::Nginx)
                    .map_or("—".to_owned(), times);
                let _ = writeln!(
                    out,
                    "| {} | {peer} | {} |",
                    scenario.label(self.plan),
                    http_row(outcome, &vs_nginx)
                );
            }
        }
        out.push('\n');
    }

    fn http_verdicts(&self) -> Vec<(String, String, Verdict)> {
        let mut verdicts = Vec::new();
        for scenario in [Scenario::HttpOne, Scenario::HttpMany] {
            let text = format!(
                "{}: at least {KEEP_ALIVE_TARGET}x nginx's requests/s, with a lower p99",
                scenario.label(self.plan)
            );
            verdicts.push(self.rate_and_p99_target(
                scenario,
                Peer::Nginx,
                KEEP_ALIVE_TARGET,
                text,
                Self::http_unknown,
            ));
        }
        for scenario in [Scenario::HttpOne, Scenario::HttpMany] {
            let text = format!(
                "{}: gateway CPU per request at most nginx's, with a p99 no higher",
                scenario.label(self.plan)
            );
            verdicts.push(self.cpu_and_p99_target(
                scenario,
                Peer::Nginx,
                1.0,
                text,
                Self::http_unknown,
            ));
        }
        let scenario = Scenario::HttpHandshake;
        let text = format!("{}: at least nginx's requests/s", scenario.label(self.plan));
        verdicts.push(self.rate_target(
            scenario,
            Peer::Nginx,
            HANDSHAKE_TARGET,
            text,
            Self::http_unknown,
        ));
        verdicts
    }

    /// Why a target has no figure.
    fn http_unknown(&self, scenario: Scenario) -> Verdict {
        let outcome = |peer| self.outcome(scenario, peer);
        match (outcome(Peer::Guichet), outcome(Peer::Nginx)) {
            (None, _) | (_, None) => Verdict::Unknown("scenario not run"),
            (Some(Outcome::Skipped(_)), _) | (_, Some(Outcome::Skipped(_))) => {
                Verdict::Unknown("skipped: see below")
            }
            _ => Verdict::Unknown("a run failed or was invalid: see below"),
        }
    }

    fn http_method(&self, out: &mut String) {
        let access_log = if self.plan.http_access_log {
            "on for all three, each to a file in the run's directory:
  guichet's `access_log` (JSON lines); nginx's `access_log` with a JSON
  `log_format` of about the same fields, buffered (`buffer=64k
  flush=1s`); Caddy's `log` (JSON). An access log is what a hospital
  gateway keeps; `--http-access-log false` measures without"
        } else {
            "off (`--http-access-log false`) for nginx (`access_log off`) and
  Caddy (no `log`); guichet has no off: without `access_log` it writes
  its JSON lines to standard output, /dev/null here"
        };
        let _ = write!(
            out,
            "### How the HTTPS gateways are set up

- guichet: one `guichet run`, one `kind = \"http\"` route, `listen_tls` with
  the CA and its CRL, one rule `path = \"/ror/\"` to the upstream admitting
  the application `partner` (CN `eai` + issuer DN), identity headers in both
  forms (the default), logging at its default level (`info`), worker threads: one per core (the
  default). A second application `other` (CN `intruder`) is known to the
  route but not to the rule.
- nginx: `worker_processes auto` (one per core), `ssl_verify_client on`,
  `ssl_client_certificate` the CA, `ssl_crl` its CRL, a `map
  $ssl_client_fingerprint` (SHA-1 of the certificate) naming the partner
  and `return 403` for any other, `proxy_pass` to an `upstream` with
  `keepalive 64`, `proxy_http_version 1.1`, `proxy_set_header Connection
  \"\"`, the client's subject, fingerprint, application and address sent as
  headers; `keepalive_requests 1000000` on both sides (the default 1000
  would close the load generator's connections during a round).
- Caddy: `client_auth` `require_and_verify` with `trusted_ca_cert_file`
  the CA and the partner's certificate as the only
  `trusted_leaf_cert_file` (Caddy's allowlist: any other certificate fails
  the handshake; Caddy 2.6 checks no CRL), `reverse_proxy` to the upstream
  with `keepalive_idle_conns_per_host 64`, the client's subject and
  fingerprint sent as headers (and X-Forwarded-*, its default); `admin
  off`, `auto_https off`, HTTP/1.1 and HTTP/2 only (no HTTP/3 listener);
  GOMAXPROCS: Go's default, one per core.
- Access log: {access_log}.
- Certificates: the tunnel scenarios' ECDSA P-256 set from `guichet pki`:
  the gateway presents `dpi` (SAN `localhost`), the load generator `eai`.
  TLS 1.2 and 1.3 allowed on every gateway; each picks its own cipher
  suite. Negotiated, as the load generator saw it:{tls}
- The allowlist is checked before every round: the partner's request
  gets the upstream's answer, and a certificate of the same CA on no
  allowlist (CN `intruder`) must be refused:{refusals}
- Load generator: its own process (`guichet-bench http-load`, Rust,
  tokio-rustls with ring, a minimal HTTP/1.1 client, as many threads as
  cores or connections), ALPN `http/1.1`, one request outstanding per
  connection. Keep-alive: each connection opened once (during the warm-up)
  and reused for every request. A new TLS connection per request: a
  `Connection: close` request on a fresh TCP connection, a full handshake
  each time (TLS session resumption disabled on the client), the
  connection dropped once the response is read; {clients} clients side by
  side.
- Upstream: its own process (`guichet-bench upstream`, hyper HTTP/1.1 on
  one thread), the same fixed answer to every request.

",
            access_log = access_log,
            tls = self.per_peer(|d| d.tls.clone()),
            refusals = self.per_peer(|d| Some(d.refusal.clone())),
            clients = self.plan.handshake_senders,
        );
    }

    /// A sub-list, `guichet: ...`, `nginx: ...`, `Caddy: ...`, from the
    /// first HTTPS round of each peer that gives a value.
    fn per_peer(&self, value: impl Fn(&Detail) -> Option<String>) -> String {
        let parts: Vec<String> = PEERS
            .into_iter()
            .filter_map(|peer| {
                let found = self.measurements.iter().find_map(|m| match &m.outcome {
                    Outcome::Throughput(Throughput {
                        http: Some(detail), ..
                    }) if m.peer == peer => value(detail),
                    _ => None,
                })?;
                Some(format!("\n  - {peer}: {found}"))
            })
            .collect();
        if parts.is_empty() {
            " —".to_owned()
        } else {
            parts.concat()
        }
    }

    /// Under `heading`, what failed, was invalid or skipped among the
    /// scenarios of a kind (`Scenario::is_http`...).
    pub(super) fn https_problems(
        &self,
        out: &mut String,
        kind: fn(Scenario) -> bool,
        heading: &str,
    ) {
        let problems: Vec<String> = self
            .measurements
            .iter()
            .filter(|m| kind(m.scenario))
            .filter_map(|m| {
                let label = m.scenario.label(self.plan);
                match &m.outcome {
                    Outcome::Skipped(why) => Some(format!("- {label}, {}: skipped: {why}", m.peer)),
                    other => problem(other).map(|p| {
                        let p = p.replace("bad ACKs", "bad responses");
                        format!("- {label}, {}: {p}", m.peer)
                    }),
                }
            })
            .collect();
        problems_list(out, heading, &problems);
    }
}

/// The cells after scenario and peer; `vs_nginx` the one before the
/// checks.
pub(super) fn http_row(outcome: &Outcome, vs_nginx: &str) -> String {
    match outcome {
        Outcome::Throughput(t) => {
            let per_request =
                |cpu: fn(&Detail) -> Option<Duration>| latency_or_dash(per_request(t, cpu));
            format!(
                "{} | {} | {} | {} | {} | {vs_nginx} | {}",
                latency_or_dash(t.cpu_per_message()),
                per_request(|d| d.load_cpu),
                per_request(|d| d.upstream_cpu),
                rate_cells(t),
                peak_memory(t),
                http_checks(t)
            )
        }
        Outcome::Skipped(why) => format!("— | — | — | — | — | — | — | — | — | skipped: {why}"),
        _ => "— | — | — | — | — | — | — | — | — | **failed** (below)".to_owned(),
    }
}

/// One of a round's CPU times divided by the requests it answered.
fn per_request(t: &Throughput, cpu: fn(&Detail) -> Option<Duration>) -> Option<Duration> {
    let requests = u32::try_from(t.stats.messages).ok().filter(|&n| n > 0)?;
    Some(cpu(t.http.as_ref()?)? / requests)
}

/// `ok, 123,456 responses` or the invalid counts.
fn http_checks(t: &Throughput) -> String {
    if t.stats.errors == 0 && t.stats.mismatches == 0 {
        format!("ok, {} responses", rate(t.stats.messages as f64))
    } else {
        checks(&t.stats).replace("bad ACKs", "bad responses")
    }
}
