//! The subsection "Validating rule" of "Bed availability": guichet's HTTP
//! rule with `validate = "bed-availability"` against the same rule
//! without, and the target on guichet's CPU per request. It comes from a
//! run of its own (`guichet-bench validate --http`), and each of the two
//! commands that write "Bed availability" keeps the other's part.

use std::fmt::Write;
use std::time::Duration;

use super::http::http_row;
use super::{merge_section, section_of, targets_table, times, verdict, Run, Verdict};
use crate::http::client::PATH;
use crate::http::BODY;
use crate::peers::Peer;
use crate::scenario::{Scenario, Throughput};
use crate::validate;

/// The subsection's heading, inside [`validate::HEADING`].
const HEADING: &str = "### Validating rule\n";

/// guichet's CPU per request with validation, at most this many times
/// the same rule's without.
const CPU_TARGET: f64 = 1.2;

/// `existing` with the "Bed availability" section replaced by `section`
/// (the files' figures), its subsection "Validating rule" kept.
pub fn merge_bed_availability(existing: &str, section: &str) -> String {
    let kept = section_of(existing, HEADING).unwrap_or_default();
    merge_section(existing, validate::HEADING, &format!("{section}{kept}"))
}

/// `existing` with the subsection "Validating rule" replaced by `section`;
/// the first time, it goes at the end of "Bed availability" (begun if
/// there is none).
pub fn merge_validating_rule(existing: &str, section: &str) -> String {
    if section_of(existing, HEADING).is_some() {
        return merge_section(existing, HEADING, section);
    }
    let parent = section_of(existing, validate::HEADING)
        .map_or_else(|| format!("{}\n", validate::HEADING), str::to_owned);
    merge_section(existing, validate::HEADING, &format!("{parent}{section}"))
}

impl Run<'_> {
    /// The whole subsection, self-contained (date, command, machine).
    pub fn validating_rule_section(&self) -> String {
        let mut out = String::new();
        self.validating_header(&mut out);
        self.validating_table(&mut out);
        targets_table(
            &mut out,
            "#### Target (validating rule)",
            vec![self.validating_verdict()],
        );
        self.https_problems(
            &mut out,
            Scenario::is_validating,
            "#### Failed or invalid (validating rule)",
        );
        out
    }

    fn validating_header(&self, out: &mut String) {
        let p = self.plan;
        let units = p.document_units;
        let _ = write!(
            out,
            "{HEADING}
guichet's HTTP rule with `validate = \"bed-availability\"` and a
referential, against the same rule without validation (the body
forwarded as received), in the same run, the two rules' rounds
interleaved: what checking each document costs guichet.

```text
load generator (HTTPS POST, client certificate) -> guichet (mTLS in, allowlist, document checked or not, HTTP/1.1 out, pooled) -> upstream (plain HTTP/1.1)
```

{provenance}
- guichet: {guichet}
- Set-up: one `guichet run` as for the HTTPS gateway above (one `http`
  route, client certificate and CRL checked, the rule `path = \"/ror/\"`
  admitting `partner`, identity headers, access log to a file, one worker
  thread per core), logging at its default level (`info`); the rule adds
  `validate = \"bed-availability\"` and `referential` (a CSV naming the
  document's {units} units), or nothing
- Request: `POST {PATH}` over HTTP/1.1 with a client certificate, keep-alive,
  {conns} connections, one request outstanding on each; the body a
  {bytes}-byte document in guichet's XML, {units} units of one capacity
  record each, every unit in the referential, dated two minutes before
  the round: valid, so the validating rule sends it on; the upstream reads
  it and answers 200 and a {answer}-byte JSON document; the load generator
  checks the status and the body of every response (a refused document
  would get 422)
- {rounds} round(s) per rule, the rules interleaved; each round {warmup:?}
  of warm-up, then {measured:?} measured, with a fresh upstream and a
  fresh guichet; the median round is reported, with the range of all
  rounds

req/s is the median round, the lowest and highest in parentheses.
CPU/req is a process's user + system time during the measured window
(from /proc) divided by the requests answered. vs without validation:
guichet's CPU per request divided by the rule's without validation.

| rule | req/s | p50 | p99 | p99.9 | CPU/req: guichet | load generator | upstream | vs without validation | checks |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
",
            provenance = self.provenance("guichet and the upstream"),
            guichet = self.machine.guichet,
            conns = p.http_conns,
            bytes = validate::posted_document(units).len(),
            answer = BODY.len(),
            rounds = p.rounds,
            warmup = p.warmup,
            measured = p.measured,
        );
    }

    fn validating_table(&self, out: &mut String) {
        for scenario in Scenario::VALIDATING {
            let Some(outcome) = self.outcome(scenario, Peer::Guichet) else {
                continue;
            };
            let vs = self
                .cpu_ratio(scenario, Scenario::HttpForward)
                .map_or("—".to_owned(), times);
            let label = scenario.label(self.plan);
            let _ = writeln!(out, "| {label} | {} |", http_row(outcome, &vs));
        }
        out.push('\n');
    }

    fn validating_verdict(&self) -> (String, String, Verdict) {
        let text = format!(
            "the validating rule, keep-alive, {} connections: guichet's CPU per request at most \
             {CPU_TARGET}x the same rule's without validation",
            self.plan.http_conns
        );
        let with = self.guichet_cpu(Scenario::HttpValidate);
        let without = self.guichet_cpu(Scenario::HttpForward);
        match (
            self.cpu_ratio(Scenario::HttpValidate, Scenario::HttpForward),
            with,
            without,
        ) {
            (Some(r), Some(with), Some(without)) => (
                text,
                format!("{} ({} vs {})", times(r), micros(with), micros(without)),
                verdict(r <= CPU_TARGET),
            ),
            _ => (
                text,
                "—".to_owned(),
                Verdict::Unknown("a round failed or was invalid: see below"),
            ),
        }
    }

    /// guichet's CPU per request in a valid round of `scenario`.
    fn guichet_cpu(&self, scenario: Scenario) -> Option<Duration> {
        self.throughput(scenario, Peer::Guichet)
            .and_then(Throughput::cpu_per_message)
    }

    /// guichet's CPU per request in `scenario` over that in `baseline`.
    fn cpu_ratio(&self, scenario: Scenario, baseline: Scenario) -> Option<f64> {
        let [ours, theirs] =
            [scenario, baseline].map(|s| self.guichet_cpu(s).map(|d| d.as_secs_f64()));
        super::quotient(ours, theirs)
    }
}

/// `25.3 µs`: one decimal, for a ratio between close figures.
fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &str = "## Bed availability\n\nfiles\n\n";
    const RULE: &str = "### Validating rule\n\nrule\n\n";

    #[test]
    fn each_part_of_bed_availability_keeps_the_other() {
        let report = "# B\n\n## Bed availability\n\nold files\n\n## How it is measured\n\nm\n";
        let with_rule = merge_validating_rule(report, RULE);
        assert_eq!(
            with_rule,
            "# B\n\n## Bed availability\n\nold files\n\n### Validating rule\n\nrule\n\n\
             ## How it is measured\n\nm\n"
        );
        let new_files = merge_bed_availability(&with_rule, FILES);
        assert_eq!(
            new_files,
            "# B\n\n## Bed availability\n\nfiles\n\n### Validating rule\n\nrule\n\n\
             ## How it is measured\n\nm\n"
        );
        let new_rule = merge_validating_rule(&new_files, "### Validating rule\n\nnew\n\n");
        assert!(new_rule.contains("files\n\n### Validating rule\n\nnew\n\n## How"));
    }

    #[test]
    fn the_rule_begins_bed_availability_when_there_is_none() {
        let report = "# B\n\n## How it is measured\n\nm\n";
        assert_eq!(
            merge_validating_rule(report, RULE),
            "# B\n\n## Bed availability\n\n### Validating rule\n\nrule\n\n## How it is measured\n\nm\n"
        );
    }
}
