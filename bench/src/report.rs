//! docs/BENCHMARKS.md: the table, the ratios, the targets, the machine and
//! the command, written from one run. The store-and-forward section is in
//! [`journal`], the HTTPS gateway one in [`http`]: both are
//! self-contained, so `--merge` can replace either in an existing report.
//! The validating rule's subsection of "Bed availability", from a run of
//! its own, is in [`validating`].

mod http;
mod journal;
mod validating;

pub use validating::{merge_bed_availability, merge_validating_rule};

use std::fmt::Write;
use std::time::Duration;

use crate::load::Stats;
use crate::machine::Machine;
use crate::message::MESSAGE_BYTES;
use crate::peers::Peer;
use crate::scenario::{Measurement, Outcome, Plan, Scenario, Throughput};

/// Everything the report is written from.
pub struct Run<'a> {
    pub plan: &'a Plan,
    pub machine: &'a Machine,
    pub command: &'a str,
    pub date: &'a str,
    pub measurements: &'a [Measurement],
}

/// Whether a target was reached.
enum Verdict {
    Met,
    NotMet,
    Unknown(&'static str),
}

impl Run<'_> {
    pub fn markdown(&self) -> String {
        if !self.measured_any(Scenario::is_tunnel) {
            return self
                .own_sections()
                .into_iter()
                .map(|(_, section)| section)
                .collect();
        }
        let mut out = String::new();
        self.header(&mut out);
        self.results(&mut out);
        self.ratios(&mut out);
        self.targets(&mut out);
        self.idle_detail(&mut out);
        self.problems(&mut out);
        for (_, section) in self.own_sections() {
            out.push_str(&section);
        }
        self.method(&mut out);
        out
    }

    /// The self-contained sections this run measured, each with its
    /// heading: store-and-forward, HTTPS gateway.
    pub fn own_sections(&self) -> Vec<(&'static str, String)> {
        let mut sections = Vec::new();
        if self.measured_any(Scenario::is_journal) {
            sections.push((journal::HEADING, self.journal_section()));
        }
        if self.measured_any(Scenario::is_http) {
            sections.push((http::HEADING, self.http_section()));
        }
        sections
    }

    /// Whether any scenario of a kind (`Scenario::is_tunnel`...) was
    /// measured.
    fn measured_any(&self, kind: fn(Scenario) -> bool) -> bool {
        self.measurements.iter().any(|m| kind(m.scenario))
    }

    /// The lines every section's header starts with: the date, the
    /// command, and the machine, whose cores the load generator shares
    /// with `others`.
    fn provenance(&self, others: &str) -> String {
        let m = self.machine;
        format!(
            "- Date: {date}
- Command (from the repository root): `{command}`
- Machine: {cores} cores ({cpu}), {memory}, Linux {kernel}; the load
  generator, {others} share these cores",
            date = self.date,
            command = self.command,
            cores = m.cores,
            cpu = m.cpu,
            memory = m.memory,
            kernel = m.kernel,
        )
    }

    fn header(&self, out: &mut String) {
        let m = self.machine;
        let p = self.plan;
        let _ = write!(
            out,
            "# Benchmarks

guichet against the tunnels a hospital would deploy instead, measured in
the same run on the same machine, on the EAI <-> DPI tunnel topology:

```text
load generator -> client-side gateway (plain in, mTLS out) -> server-side gateway (mTLS in, plain out) -> MLLP ACK sink
```

Each gateway is its own process. Figures from a shared machine are noisy:
compare the ratios between peers of one run, not absolute numbers across
runs.

{provenance}
- guichet: {guichet}
- HAProxy: {haproxy}
- stunnel: {stunnel}
- Message: a {MESSAGE_BYTES}-byte HL7 v2.5 ADT^A01 (IHE PAM FR), a fresh MSH-10 each;
  the sink answers each with an AA; the load generator checks every ACK's
  MSA-1 and MSA-2
- TLS: 1.3 only, ECDSA P-256 certificates from `guichet pki`, client
  certificates required, server name and CRL checked, on every peer
- Each throughput scenario: {rounds} round(s) per peer, the peers
  interleaved; each round {warmup:?} of warm-up, then {measured:?} measured,
  with a fresh sink and a fresh pair of gateways; the median round is
  reported, with the range of all rounds

",
            provenance = self.provenance("both gateways and the sink"),
            guichet = m.guichet,
            haproxy = m.haproxy,
            stunnel = m.stunnel,
            rounds = p.rounds,
            warmup = p.warmup,
            measured = p.measured,
        );
    }

    fn results(&self, out: &mut String) {
        out.push_str(
            "## Results

Gateway CPU/msg comes first: the user + system time of both gateway
processes during the measured window, divided by the messages answered,
is the figure a shared machine leaves steady (rates move with whatever
else runs). msgs/s is the median round, with the lowest and highest
rounds in parentheses; the latencies, CPU and memory are those of the
median round. Latencies are from the load generator: sending the message
to reading its whole ACK (for a connection per message, connecting
included). Peak memory is the most both gateway processes have been
resident (VmHWM, summed) by the end of the round. KiB/conn is the growth
of the resident memory (VmRSS) of both gateway processes, client side +
server side, divided by the connections held open.

| scenario | peer | gateway CPU/msg | msgs/s | p50 | p99 | p99.9 | peak memory | KiB/conn | ACK checks |
|---|---|---:|---:|---:|---:|---:|---:|---:|---|
",
        );
        for m in self.measurements.iter().filter(|m| m.scenario.is_tunnel()) {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                m.scenario.label(self.plan),
                m.peer,
                row(&m.outcome)
            );
        }
        out.push('\n');
    }

    fn ratios(&self, out: &mut String) {
        out.push_str(
            "## Ratios

Messages per second of guichet divided by the other peer's (above 1:
guichet is faster). For idle connections, guichet's KiB per connection
divided by the other's (below 1: guichet uses less memory).

| scenario | guichet / HAProxy | guichet / stunnel | guichet / direct |
|---|---:|---:|---:|
",
        );
        for scenario in self.scenarios() {
            let cells: Vec<String> = [Peer::Haproxy, Peer::Stunnel, Peer::Direct]
                .into_iter()
                .map(|other| self.ratio(scenario, other).map_or("—".to_owned(), times))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} |",
                scenario.label(self.plan),
                cells.join(" | ")
            );
        }
        out.push('\n');
    }

    fn targets(&self, out: &mut String) {
        targets_table(out, "## Targets (tunnels)", self.verdicts());
    }

    fn verdicts(&self) -> Vec<(String, String, Verdict)> {
        let many = self.plan.many_conns;
        vec![
            self.rate_target(
                Scenario::OneConnection,
                Peer::Haproxy,
                1.2,
                "1 connection: at least 1.2x HAProxy's messages/s".to_owned(),
                Self::unknown,
            ),
            self.rate_and_p99_target(
                Scenario::ManyConnections,
                Peer::Haproxy,
                1.5,
                format!("{many} connections: at least 1.5x HAProxy's messages/s, with a lower p99"),
                Self::unknown,
            ),
            self.rate_target(
                Scenario::HandshakePerMessage,
                Peer::Haproxy,
                1.5,
                "a connection (handshake) per message: at least 1.5x HAProxy (guichet \
                 resumes sessions, HAProxy does full handshakes: see below)"
                    .to_owned(),
                Self::unknown,
            ),
            self.idle_target(),
            self.cpu_and_p99_target(
                Scenario::ManyConnections,
                Peer::Haproxy,
                0.85,
                format!(
                    "{many} connections: gateway CPU per message at most 0.85x HAProxy's, \
                     with a p99 no higher"
                ),
                Self::unknown,
            ),
        ]
    }

    /// The target `text`: guichet's CPU per message in `scenario` at most
    /// `factor` times `other`'s, and its p99 no higher.
    fn cpu_and_p99_target(
        &self,
        scenario: Scenario,
        other: Peer,
        factor: f64,
        text: String,
        unknown: fn(&Self, Scenario) -> Verdict,
    ) -> (String, String, Verdict) {
        let figures = |peer| {
            let t = self.throughput(scenario, peer)?;
            Some((t.cpu_per_message()?, t.stats.latency.quantile(0.99)?))
        };
        match (figures(Peer::Guichet), figures(other)) {
            (Some((ours, our_p99)), Some((theirs, their_p99))) if !theirs.is_zero() => {
                let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
                (
                    text,
                    format!(
                        "{} ({} vs {}), p99 {} vs {}",
                        times(ratio),
                        latency(ours),
                        latency(theirs),
                        latency(our_p99),
                        latency(their_p99)
                    ),
                    verdict(ratio <= factor && our_p99 <= their_p99),
                )
            }
            _ => (text, "—".to_owned(), unknown(self, scenario)),
        }
    }

    /// The target `text`: guichet's messages/s in `scenario` at least
    /// `factor` times `other`'s; `unknown` says why when either is missing.
    fn rate_target(
        &self,
        scenario: Scenario,
        other: Peer,
        factor: f64,
        text: String,
        unknown: fn(&Self, Scenario) -> Verdict,
    ) -> (String, String, Verdict) {
        match self.throughput_ratio(scenario, Peer::Guichet, other) {
            Some(r) => (text, times(r), verdict(r >= factor)),
            None => (text, "—".to_owned(), unknown(self, scenario)),
        }
    }

    /// [`Self::rate_target`], and guichet's p99 lower than `other`'s.
    fn rate_and_p99_target(
        &self,
        scenario: Scenario,
        other: Peer,
        factor: f64,
        text: String,
        unknown: fn(&Self, Scenario) -> Verdict,
    ) -> (String, String, Verdict) {
        let p99 = |peer| {
            self.throughput(scenario, peer)
                .and_then(|t| t.stats.latency.quantile(0.99))
        };
        match (
            self.throughput_ratio(scenario, Peer::Guichet, other),
            p99(Peer::Guichet),
            p99(other),
        ) {
            (Some(r), Some(ours), Some(theirs)) => (
                text,
                format!("{}, p99 {} vs {}", times(r), latency(ours), latency(theirs)),
                verdict(r >= factor && ours < theirs),
            ),
            _ => (text, "—".to_owned(), unknown(self, scenario)),
        }
    }

    fn idle_target(&self) -> (String, String, Verdict) {
        let text =
            "idle connections: less resident memory per connection than HAProxy and than stunnel"
                .to_owned();
        let kib = |peer| self.idle_kib(peer);
        match (kib(Peer::Guichet), kib(Peer::Haproxy), kib(Peer::Stunnel)) {
            (Some(ours), Some(h), Some(s)) => (
                text,
                format!("{ours:.1} vs {h:.1} (HAProxy) and {s:.1} (stunnel) KiB/conn"),
                verdict(ours < h && ours < s),
            ),
            _ => (text, "—".to_owned(), self.unknown(Scenario::Idle)),
        }
    }

    fn unknown(&self, scenario: Scenario) -> Verdict {
        let missing = |peer| self.outcome(scenario, peer);
        match (missing(Peer::Guichet), missing(Peer::Haproxy)) {
            (_, Some(Outcome::Skipped(_))) => Verdict::Unknown("HAProxy not installed"),
            (None, _) | (_, None) => Verdict::Unknown("scenario not run"),
            _ => Verdict::Unknown("a run failed or was invalid"),
        }
    }

    fn idle_detail(&self, out: &mut String) {
        let idle: Vec<_> = self
            .measurements
            .iter()
            .filter_map(|m| match &m.outcome {
                Outcome::Idle(idle) => Some((m.peer, idle)),
                _ => None,
            })
            .collect();
        if idle.is_empty() {
            return;
        }
        out.push_str(
            "## Idle connections in detail

Each connection carried one message and its ACK, then stayed open, so every
hop (load -> client side -> server side -> sink) is established and has
carried data.

| peer | process | VmRSS before | VmRSS after | KiB/conn | opening time |
|---|---|---:|---:|---:|---:|
",
        );
        for (peer, memory) in idle {
            for ((name, before, after), per_conn) in memory.sides.iter().zip(memory.per_conn()) {
                let _ = writeln!(
                    out,
                    "| {peer} | {name} | {} | {} | {per_conn:.1} | {:.1} s |",
                    mib(*before),
                    mib(*after),
                    memory.opening.as_secs_f64()
                );
            }
        }
        out.push('\n');
    }

    fn problems(&self, out: &mut String) {
        let problems: Vec<String> = self
            .measurements
            .iter()
            .filter(|m| m.scenario.is_tunnel())
            .filter_map(|m| {
                problem(&m.outcome)
                    .map(|p| format!("- {}, {}: {p}", m.scenario.label(self.plan), m.peer))
            })
            .collect();
        problems_list(out, "## Failed, invalid or skipped measurements", &problems);
    }

    fn method(&self, out: &mut String) {
        let _ = write!(
            out,
            "## How it is measured

- guichet: two `guichet run` processes with `kind = \"mllp\"` routes (every
  message parsed, its ACK matched and an event published), logging at the
  default level (`info`: one line per message, to a file),
  `min_version = \"1.3\"`, the server side admitting only app `eai`.
- HAProxy: `mode tcp`, `nbthread` = cores (guichet's worker threads);
  client side `server ... ssl verify required ca-file crl-file crt sni
  str(dpi) verifyhost dpi`, server side `bind ... ssl crt ca-file crl-file
  verify required` and a rule admitting only CN `eai`; `ssl-min-ver TLSv1.3`.
- stunnel: `client = yes`, `verifyChain`, `CAfile`, `CRLfile`,
  `checkHost = dpi` on the client side; `verifyChain`, `requireCert`,
  `checkHost = eai` on the server side; `sslVersionMin = TLSv1.3`;
  `socket = l:TCP_NODELAY=1`, `socket = r:TCP_NODELAY=1`; `debug = warning`.
- direct: the load generator talks to the sink; the physical limit of this
  machine for the load generator and sink alone.
- The load generator (Rust, tokio) keeps one message in flight per
  connection, as an MLLP sender waiting for its ACK does; {many} connections
  for the many-connections scenario; {senders} concurrent senders for the
  connection-per-message one. A run with any connection error or any ACK
  whose MSA-2 is not the message's MSH-10 is marked invalid.
- Instructions per message: a `perf stat` count would be steadier than CPU
  time under noise, but this machine's virtual CPUs expose no hardware
  counters (`perf stat -e instructions true` answers `<not supported>`).
  `cargo run --release -p guichet-bench -- observe` counts guichet's
  instructions per message under callgrind instead (user space only; see
  \"Flow observation\").
- Targets not met: the profiles that show why, and what would move them,
  are in `docs/PERFORMANCE.md`.
- Connection per message: each peer keeps its TLS session defaults.
  guichet (rustls: client session cache, server stateful tickets) resumes
  TLS 1.3 sessions between its two gateways: a fresh ECDHE exchange, but
  no certificate sent, signed or verified again. HAProxy and stunnel, as
  configured here, were seen on the wire (record sizes under strace) to
  run a full handshake with certificates on every connection. The ratio
  for this scenario is therefore guichet's default against theirs, not
  full handshake against full handshake.
- Idle connections: {idle} connections. Each gateway process holds two
  descriptors per proxied connection, and stunnel admits at most
  125/256 of its descriptor limit as clients: the count is capped by the
  machine's hard `RLIMIT_NOFILE` ({limit}).
- Bed availability has runs of its own, which a full run keeps as they
  are: `guichet validate` on files is measured by
  `cargo run --release -p guichet-bench -- validate`, the validating HTTP
  rule against the same rule without validation by
  `cargo run --release -p guichet-bench -- validate --http`; each
  replaces only its own part of the section.
- The map (`cargo run --release -p guichet-bench -- map`) and flow
  observation (`cargo run --release -p guichet-bench -- observe`) have
  runs of their own, which a full run keeps as they are.
- Test books have a run of their own, which a full run keeps as it is:
  `cargo run --release -p guichet-bench -- books` writes a book of 1000
  bed-availability cases, starts two validating HTTPS gateways each in
  front of its own `guichet sim ror --record`, and measures
  `guichet test compare` against both and `guichet test run` against one:
  the runner's wall time and peak resident memory (VmHWM from /proc),
  fresh RORs each round.

",
            many = self.plan.many_conns,
            senders = self.plan.handshake_senders,
            idle = self.plan.idle_conns,
            limit = crate::procfs::nofile_hard_limit()
                .map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
        );
    }

    fn scenarios(&self) -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|s| s.is_tunnel() && self.measurements.iter().any(|m| m.scenario == *s))
            .collect()
    }

    /// What (`scenario`, `peer`) gave, if it was measured.
    fn outcome(&self, scenario: Scenario, peer: Peer) -> Option<&Outcome> {
        self.measurements
            .iter()
            .find(|m| m.scenario == scenario && m.peer == peer)
            .map(|m| &m.outcome)
    }

    fn throughput(&self, scenario: Scenario, peer: Peer) -> Option<&Throughput> {
        self.measurements.iter().find_map(|m| match &m.outcome {
            Outcome::Throughput(t)
                if m.scenario == scenario && m.peer == peer && t.stats.is_valid() =>
            {
                Some(t)
            }
            _ => None,
        })
    }

    fn idle_kib(&self, peer: Peer) -> Option<f64> {
        self.measurements.iter().find_map(|m| match &m.outcome {
            Outcome::Idle(idle)
                if m.peer == peer && idle.stats.errors == 0 && idle.stats.mismatches == 0 =>
            {
                Some(idle.pair_per_conn())
            }
            _ => None,
        })
    }

    /// guichet divided by `other`: messages/s, or KiB/conn when idle.
    fn ratio(&self, scenario: Scenario, other: Peer) -> Option<f64> {
        match scenario {
            Scenario::Idle => quotient(self.idle_kib(Peer::Guichet), self.idle_kib(other)),
            _ => self.throughput_ratio(scenario, Peer::Guichet, other),
        }
    }

    /// `ours`'s messages (or requests) per second over `theirs`'s, both
    /// valid, in `scenario`.
    fn throughput_ratio(&self, scenario: Scenario, ours: Peer, theirs: Peer) -> Option<f64> {
        let per_second = |peer| self.throughput(scenario, peer).map(Throughput::per_second);
        quotient(per_second(ours), per_second(theirs))
    }
}

/// The cells after scenario and peer.
fn row(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Throughput(t) => format!("{} | — | {}", throughput_cells(t), checks(&t.stats)),
        Outcome::Idle(idle) => {
            let sides = idle.per_conn();
            let split = sides
                .iter()
                .map(|k| format!("{k:.1}"))
                .collect::<Vec<_>>()
                .join(" + ");
            format!(
                "— | — | — | — | — | — | **{:.1}** ({split}) | {}",
                idle.pair_per_conn(),
                checks(&idle.stats)
            )
        }
        Outcome::Drain(d) => format!(
            "— | {} | — | — | — | — | — | {} delivered",
            rates(d.per_second(), &d.rounds),
            rate(d.count.messages as f64)
        ),
        Outcome::Skipped(why) => format!("— | — | — | — | — | — | — | skipped: {why}"),
        Outcome::Failed(_) => "— | — | — | — | — | — | — | **failed** (below)".to_owned(),
    }
}

/// `ours / theirs`, when both are known and `theirs` is above zero.
fn quotient(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    let theirs = theirs.filter(|&t| t > 0.0)?;
    Some(ours? / theirs)
}

/// The cells every throughput row starts with: the gateway's CPU per
/// message first (the figure a shared machine leaves steady), then
/// [`rate_cells`] and the gateway's peak memory.
fn throughput_cells(t: &Throughput) -> String {
    format!(
        "{} | {} | {}",
        latency_or_dash(t.cpu_per_message()),
        rate_cells(t),
        peak_memory(t)
    )
}

/// The rate with its range, p50, p99 and p99.9.
fn rate_cells(t: &Throughput) -> String {
    format!(
        "{} | {} | {} | {}",
        rates(t.per_second(), &t.rounds),
        quantile(&t.stats, 0.5),
        quantile(&t.stats, 0.99),
        quantile(&t.stats, 0.999),
    )
}

/// The gateway processes' peak resident memory, in MiB.
fn peak_memory(t: &Throughput) -> String {
    t.gateway_peak_kib.map_or("—".to_owned(), |kib| {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    })
}

/// `6,452 (6,300–6,700)`: the median and the range of the rounds.
fn rates(median: f64, rounds: &[f64]) -> String {
    let median = rate(median);
    let low = rounds.iter().copied().reduce(f64::min);
    let high = rounds.iter().copied().reduce(f64::max);
    match (low, high) {
        (Some(low), Some(high)) if rounds.len() > 1 => {
            format!("{median} ({}–{})", rate(low), rate(high))
        }
        _ => median,
    }
}

fn checks(stats: &Stats) -> String {
    if stats.errors == 0 && stats.mismatches == 0 {
        format!("ok, {} ACKs", rate(stats.messages as f64))
    } else {
        format!(
            "**invalid**: {} errors, {} bad ACKs",
            stats.errors, stats.mismatches
        )
    }
}

fn problem(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Failed(e) => Some(format!("failed: {e}")),
        Outcome::Throughput(Throughput { stats, .. })
        | Outcome::Idle(crate::scenario::IdleMemory { stats, .. })
            if stats.errors > 0 || stats.mismatches > 0 =>
        {
            Some(format!(
                "invalid: {} errors, {} bad ACKs; first error: {}",
                stats.errors,
                stats.mismatches,
                stats.first_error.as_deref().unwrap_or("none")
            ))
        }
        _ => None,
    }
}

fn verdict(met: bool) -> Verdict {
    if met {
        Verdict::Met
    } else {
        Verdict::NotMet
    }
}

/// `12,345`.
pub fn rate(per_second: f64) -> String {
    let n = per_second.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `87 µs`, `1.25 ms`, `1.50 s`.
pub fn latency(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

/// [`latency`], or `—` when there is none.
pub fn latency_or_dash(d: Option<Duration>) -> String {
    d.map_or("—".to_owned(), latency)
}

/// The latency at quantile `q` of a run, or `—`.
pub fn quantile(stats: &Stats, q: f64) -> String {
    latency_or_dash(stats.latency.quantile(q))
}

fn times(ratio: f64) -> String {
    format!("{ratio:.2}x")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The heading before which a self-contained section goes the first
/// time, in a full report.
const METHOD: &str = "## How it is measured\n";

/// The section under `heading` in `existing` (its heading included, up
/// to the next heading of its level or above), if there is one.
pub fn section_of<'a>(existing: &'a str, heading: &str) -> Option<&'a str> {
    let start = heading_at(existing, heading)?;
    let body = start + heading.len();
    let level = heading.bytes().take_while(|&b| b == b'#').count();
    let end = (2..=level)
        .filter_map(|l| existing[body..].find(&format!("\n{} ", "#".repeat(l))))
        .min()
        .map_or(existing.len(), |i| body + i + 1);
    Some(&existing[start..end])
}

/// `existing` with the section under `heading` (as [`section_of`] finds
/// it) replaced by `section`; without one, `section` goes before "How it
/// is measured", or at the end.
pub fn merge_section(existing: &str, heading: &str, section: &str) -> String {
    let (before, after) = match section_of(existing, heading) {
        Some(old) => {
            let start = heading_at(existing, heading).unwrap_or(0);
            (&existing[..start], &existing[start + old.len()..])
        }
        None => {
            let at = heading_at(existing, METHOD).unwrap_or(existing.len());
            (&existing[..at], &existing[at..])
        }
    };
    let mut merged = before.to_owned();
    if !merged.is_empty() && !merged.ends_with("\n\n") {
        merged.push_str(if merged.ends_with('\n') { "\n" } else { "\n\n" });
    }
    merged.push_str(section);
    merged.push_str(after);
    merged
}

/// Where the line `heading` starts in `text`.
fn heading_at(text: &str, heading: &str) -> Option<usize> {
    if text.starts_with(heading) {
        return Some(0);
    }
    text.find(&format!("\n{heading}")).map(|i| i + 1)
}

/// A heading and a table of targets with what was measured and the verdict.
fn targets_table(out: &mut String, heading: &str, verdicts: Vec<(String, String, Verdict)>) {
    let _ = write!(
        out,
        "{heading}\n\n| target | measured | verdict |\n|---|---|---|\n"
    );
    for (target, measured, verdict) in verdicts {
        let verdict = match verdict {
            Verdict::Met => "met".to_owned(),
            Verdict::NotMet => "**not met**".to_owned(),
            Verdict::Unknown(why) => format!("not measured ({why})"),
        };
        let _ = writeln!(out, "| {target} | {measured} | {verdict} |");
    }
    out.push('\n');
}

/// A heading and a list of what failed, was invalid or skipped; nothing
/// when all went well.
fn problems_list(out: &mut String, heading: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let _ = write!(out, "{heading}\n\n{}\n\n", problems.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(rate(1234567.4), "1,234,567");
        assert_eq!(rate(999.0), "999");
        assert_eq!(latency(Duration::from_micros(87)), "87 µs");
        assert_eq!(latency(Duration::from_micros(1250)), "1.25 ms");
        assert_eq!(times(1.234), "1.23x");
    }

    const HEADING: &str = "## Store-and-forward journal\n";
    const SECTION: &str = "## Store-and-forward journal\n\nnew figures\n\n";

    #[test]
    fn the_section_goes_before_the_method_the_first_time() {
        let report = "# Benchmarks\n\n## Targets (tunnels)\n\nt\n\n## How it is measured\n\nm\n";
        assert_eq!(
            merge_section(report, HEADING, SECTION),
            "# Benchmarks\n\n## Targets (tunnels)\n\nt\n\n## Store-and-forward journal\n\n\
             new figures\n\n## How it is measured\n\nm\n"
        );
    }

    #[test]
    fn a_previous_section_is_replaced_with_its_subsections_and_the_rest_kept() {
        let report =
            "# B\n\n## Store-and-forward journal\n\nold\n\n### Targets (store-and-forward)\n\n\
                      old targets\n\n## How it is measured\n\nm\n";
        assert_eq!(
            merge_section(report, HEADING, SECTION),
            "# B\n\n## Store-and-forward journal\n\nnew figures\n\n## How it is measured\n\nm\n"
        );
    }

    #[test]
    fn a_report_without_the_method_gets_the_section_at_the_end() {
        assert_eq!(
            merge_section("# B\n\ntext\n", HEADING, SECTION),
            format!("# B\n\ntext\n\n{SECTION}")
        );
    }

    #[test]
    fn a_subsection_ends_at_the_next_heading_of_its_level_or_above() {
        let report = "## A\n\na\n\n### B\n\nb\n\n#### B1\n\nb1\n\n### C\n\nc\n\n## D\n";
        assert_eq!(
            section_of(report, "### B\n"),
            Some("### B\n\nb\n\n#### B1\n\nb1\n\n")
        );
        assert_eq!(section_of(report, "### C\n"), Some("### C\n\nc\n\n"));
        assert_eq!(
            section_of(report, "## A\n"),
            Some("## A\n\na\n\n### B\n\nb\n\n#### B1\n\nb1\n\n### C\n\nc\n\n")
        );
    }

    #[test]
    fn two_sections_merge_one_after_the_other_and_each_replaces_only_its_own() {
        let http = "## HTTPS gateway\n\nhttp figures\n\n";
        let report = "# B\n\n## Store-and-forward journal\n\nold\n\n## How it is measured\n\nm\n";
        let once = merge_section(report, "## HTTPS gateway\n", http);
        assert_eq!(
            once,
            "# B\n\n## Store-and-forward journal\n\nold\n\n## HTTPS gateway\n\nhttp figures\n\n\
             ## How it is measured\n\nm\n"
        );
        let twice = merge_section(&once, HEADING, SECTION);
        assert_eq!(
            twice,
            "# B\n\n## Store-and-forward journal\n\nnew figures\n\n## HTTPS gateway\n\n\
             http figures\n\n## How it is measured\n\nm\n"
        );
    }
}
