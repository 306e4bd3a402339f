//! The "Store-and-forward journal" section: guichet alone, its journal's
//! ingest and drain rates against its own passthrough route, the targets.

use std::fmt::Write;

use super::{
    checks, latency_or_dash, problems_list, quantile, rate, throughput_cells, times, verdict, Run,
    Verdict,
};
use crate::journal::{Store, NO_JOURNAL};
use crate::peers::Peer;
use crate::scenario::{Drain, Outcome, Scenario, Throughput};

/// The section's heading, by which [`super::merge_section`] finds it.
pub(super) const HEADING: &str = "## Store-and-forward journal\n";

/// Acknowledged messages per second wanted from 32 senders.
const INGEST_TARGET: [(Store, f64); 2] = [(Store::Sqlite, 25_000.0), (Store::Postgres, 15_000.0)];
/// Durable ingest into SQLite with the receiver down (the outage's fill).
const SQLITE_FILL_TARGET: f64 = 25_000.0;
/// Drain rate on one connection, as a share of passthrough on one.
const DRAIN_TARGET: f64 = 0.8;
/// Drain rate of a PostgreSQL journal after an outage, once analyzed.
const POSTGRES_DRAIN_TARGET: f64 = 10_000.0;

impl Run<'_> {
    /// The whole section, self-contained (date, command, machine), so it
    /// can replace its previous version in a report from another run.
    pub fn journal_section(&self) -> String {
        let mut out = String::new();
        self.journal_header(&mut out);
        self.journal_table(&mut out);
        self.journal_cost(&mut out);
        self.journal_targets(&mut out);
        self.journal_problems(&mut out);
        out
    }

    fn journal_header(&self, out: &mut String) {
        let p = self.plan;
        let _ = write!(
            out,
            "{HEADING}
guichet alone: HAProxy, stunnel and the direct path have no journal
(only guichet acknowledges a message on the receiver's behalf), so the
comparison is guichet's own passthrough route, measured in the same run.

```text
load generator -> guichet (one plain MLLP route) -> MLLP ACK sink
```

{provenance}
- guichet: {guichet}, one process, logging at its default level (`info`:
  a line per message, to a file); the route is
  `kind = \"mllp\"` with `delivery = \"store-and-forward\"`, or
  `\"passthrough\"` for the baselines; `duplicate_window` at its default
  (24h: each message is looked up among the earlier ones), no body key
- SQLite: a fresh journal file per round in the run's temporary directory
  ({disk}); every ACK waits for an fsync'd commit, shared by concurrent
  senders
- PostgreSQL: {postgres}; a throwaway database per round (from
  `GUICHET_TEST_POSTGRES`, default `postgres://guichet:***@127.0.0.1:5432/postgres`),
  dropped after it
- Senders: each waits for guichet's ACK (AA, MSA-2 checked) before its next
  message. While they store, the route's worker delivers to the sink (one
  connection, one message outstanding), on the same cores; what it had not
  delivered when the window ended is the journal's queue depth then
  (`guichet journal stats`).
- Journal after an outage (`drain-sqlite`, `drain-postgres`): guichet
  starts with the sink down; {drain} messages are sent through {many}
  connections and acknowledged, stored with the receiver down (the rate
  of this fill is the ingest rate with the receiver down, in the checks
  column). For PostgreSQL, `ANALYZE` then runs on the journal's database,
  as autoanalyze would have during such an outage, so the drain is
  measured with the planner's statistics of a full queue. Then the sink
  starts. The rate is the messages over the time from the sink's first
  message to its last ACK: one connection, one message outstanding, each
  outcome recorded in the journal. Every message must arrive;
  redeliveries are counted.
- One connection is latency-bound, the figure most sensitive to the
  machine's state (on a virtual machine, an idle vCPU is slow to wake):
  compare the drain with passthrough in the same run, not across runs.
- Each scenario: {rounds} round(s), the median reported with the range of
  all rounds, each with a fresh guichet, journal and sink; {warmup:?} of
  warm-up, then {measured:?} measured. The scenarios' rounds interleave
  (round 1 of each, then round 2...), so that a ratio compares figures
  taken minutes apart at most

| scenario | guichet CPU/msg | msgs/s | p50 | p99 | p99.9 | peak memory | checks |
|---|---:|---:|---:|---:|---:|---:|---|
",
            provenance = self.provenance(
                "guichet, its journal (SQLite in guichet's process, or the
  PostgreSQL server) and the sink"
            ),
            guichet = self.machine.guichet,
            disk = self.machine.disk,
            postgres = self.machine.postgres,
            drain = rate(p.drain_messages as f64),
            many = p.many_conns,
            rounds = p.rounds,
            warmup = p.warmup,
            measured = p.measured,
        );
    }

    fn journal_table(&self, out: &mut String) {
        for m in self.measurements.iter().filter(|m| m.scenario.is_journal()) {
            let _ = writeln!(
                out,
                "| {} | {} |",
                m.scenario.label(self.plan),
                journal_row(&m.outcome)
            );
        }
        let _ = writeln!(
            out,
            "| HAProxy, stunnel, direct | — | — | — | — | — | — | not measured: {NO_JOURNAL} |\n"
        );
    }

    fn journal_cost(&self, out: &mut String) {
        out.push_str(
            "### What store-and-forward costs

The same route with `delivery = \"passthrough\"`, in the same run. Ratio:
store-and-forward divided by passthrough (below 1: store-and-forward is
slower).

| comparison | store-and-forward | passthrough | ratio |
|---|---:|---:|---:|
",
        );
        let many = self.plan.many_conns;
        let passthrough = self.journal_throughput(Scenario::PassthroughMany);
        for store in [Store::Sqlite, Store::Postgres] {
            let stored = self.journal_throughput(Scenario::StoreAndForward(store));
            let (Some(stored), Some(passthrough)) = (stored, passthrough) else {
                continue;
            };
            let q = |t: &Throughput, q| quantile(&t.stats, q);
            let cpu = |t: &Throughput| latency_or_dash(t.cpu_per_message());
            let cpu_ratio = stored
                .cpu_per_message()
                .zip(passthrough.cpu_per_message())
                .map_or("—".to_owned(), |(s, p)| {
                    times(s.as_secs_f64() / p.as_secs_f64().max(f64::EPSILON))
                });
            let _ = writeln!(
                out,
                "| {store}, {many} connections: msgs/s | {} | {} | {} |
| {store}, {many} connections: p50 / p99 | {} / {} | {} / {} | — |
| {store}, {many} connections: guichet CPU/msg | {} | {} | {cpu_ratio} |",
                rate(stored.per_second()),
                rate(passthrough.per_second()),
                times(stored.per_second() / passthrough.per_second()),
                q(stored, 0.5),
                q(stored, 0.99),
                q(passthrough, 0.5),
                q(passthrough, 0.99),
                cpu(stored),
                cpu(passthrough),
            );
        }
        let one = self.journal_throughput(Scenario::PassthroughOne);
        for store in [Store::Sqlite, Store::Postgres] {
            let (Some(drain), Some(one)) = (self.drain(store), one) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {store}, journal after an outage vs passthrough, 1 connection: msgs/s | {} | {} | {} |",
                rate(drain.per_second()),
                rate(one.per_second()),
                times(drain.per_second() / one.per_second()),
            );
        }
        out.push('\n');
    }

    fn journal_targets(&self, out: &mut String) {
        super::targets_table(
            out,
            "### Targets (store-and-forward)",
            self.journal_verdicts(),
        );
    }

    /// The target `text`: a rate of `store`'s outage scenario (its fill or
    /// its drain) at least `wanted` msgs/s.
    fn outage_target(
        &self,
        store: Store,
        text: String,
        figure: fn(&Drain) -> f64,
        wanted: f64,
    ) -> (String, String, Verdict) {
        match self.drain(store) {
            Some(drain) => (text, rate(figure(drain)), verdict(figure(drain) >= wanted)),
            None => (
                text,
                "—".to_owned(),
                self.journal_unknown(&[Scenario::Drain(store)]),
            ),
        }
    }

    fn journal_verdicts(&self) -> Vec<(String, String, Verdict)> {
        let many = self.plan.many_conns;
        let mut verdicts = Vec::new();
        for (store, wanted) in INGEST_TARGET {
            let scenario = Scenario::StoreAndForward(store);
            let text = format!(
                "store-and-forward into {store}, {many} senders each waiting for its ACK: \
                 at least {} acknowledged msgs/s",
                rate(wanted)
            );
            verdicts.push(match self.journal_throughput(scenario) {
                Some(t) => (
                    text,
                    rate(t.per_second()),
                    verdict(t.per_second() >= wanted),
                ),
                None => (text, "—".to_owned(), self.journal_unknown(&[scenario])),
            });
        }
        let text = format!(
            "store-and-forward into SQLite with the receiver down (an outage's {} messages), \
             {many} senders each waiting for its ACK: at least {} acknowledged msgs/s",
            rate(self.plan.drain_messages as f64),
            rate(SQLITE_FILL_TARGET)
        );
        verdicts.push(self.outage_target(
            Store::Sqlite,
            text,
            Drain::fill_per_second,
            SQLITE_FILL_TARGET,
        ));
        let text = format!(
            "{} PostgreSQL messages stored during an outage, after ANALYZE, delivered to a fast \
             receiver on one connection: at least {} msgs/s",
            rate(self.plan.drain_messages as f64),
            rate(POSTGRES_DRAIN_TARGET)
        );
        verdicts.push(self.outage_target(
            Store::Postgres,
            text,
            Drain::per_second,
            POSTGRES_DRAIN_TARGET,
        ));
        for store in [Store::Sqlite, Store::Postgres] {
            let text = format!(
                "{store} journal after an outage, drained to a fast receiver on one connection: \
                 at least {DRAIN_TARGET}x passthrough on one connection"
            );
            let one = self.journal_throughput(Scenario::PassthroughOne);
            verdicts.push(match (self.drain(store), one) {
                (Some(drain), Some(one)) => {
                    let ratio = drain.per_second() / one.per_second();
                    let measured = format!(
                        "{} ({} vs {} msgs/s)",
                        times(ratio),
                        rate(drain.per_second()),
                        rate(one.per_second())
                    );
                    (text, measured, verdict(ratio >= DRAIN_TARGET))
                }
                _ => (
                    text,
                    "—".to_owned(),
                    self.journal_unknown(&[Scenario::Drain(store), Scenario::PassthroughOne]),
                ),
            });
        }
        verdicts
    }

    /// Why a target has no figure: the first of `scenarios` that was not
    /// measured, skipped, or failed.
    fn journal_unknown(&self, scenarios: &[Scenario]) -> Verdict {
        for &scenario in scenarios {
            match self.guichet_outcome(scenario) {
                None => return Verdict::Unknown("scenario not run"),
                Some(Outcome::Skipped(_)) => return Verdict::Unknown("skipped: see below"),
                Some(Outcome::Failed(_)) => return Verdict::Unknown("failed: see below"),
                Some(outcome) if outcome_is_invalid(outcome) => {
                    return Verdict::Unknown("the run was invalid: see below")
                }
                Some(_) => {}
            }
        }
        Verdict::Unknown("a run failed or was invalid")
    }

    fn journal_problems(&self, out: &mut String) {
        let problems: Vec<String> = self
            .measurements
            .iter()
            .filter(|m| m.scenario.is_journal())
            .filter_map(|m| {
                let label = m.scenario.label(self.plan);
                match &m.outcome {
                    Outcome::Skipped(why) => Some(format!("- {label}: skipped: {why}")),
                    Outcome::Drain(d) if !d.is_valid() => Some(format!(
                        "- {label}: invalid: {} of {} messages delivered; filling: {} errors, \
                         {} bad ACKs; first error: {}",
                        d.count.messages,
                        d.expected,
                        d.fill.errors,
                        d.fill.mismatches,
                        d.fill.first_error.as_deref().unwrap_or("none")
                    )),
                    other => super::problem(other).map(|p| format!("- {label}: {p}")),
                }
            })
            .collect();
        problems_list(
            out,
            "### Failed, invalid or skipped (store-and-forward)",
            &problems,
        );
    }

    fn guichet_outcome(&self, scenario: Scenario) -> Option<&Outcome> {
        self.outcome(scenario, Peer::Guichet)
    }

    fn journal_throughput(&self, scenario: Scenario) -> Option<&Throughput> {
        self.throughput(scenario, Peer::Guichet)
    }

    fn drain(&self, store: Store) -> Option<&Drain> {
        match self.guichet_outcome(Scenario::Drain(store))? {
            Outcome::Drain(d) if d.is_valid() => Some(d),
            _ => None,
        }
    }
}

fn outcome_is_invalid(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Throughput(t) => !t.stats.is_valid(),
        Outcome::Drain(d) => !d.is_valid(),
        _ => false,
    }
}

/// The cells after the scenario.
fn journal_row(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Throughput(t) => {
            let backlog = t.backlog.map_or(String::new(), |n| {
                format!(
                    "; {} acknowledged, not yet delivered at the end",
                    rate(n as f64)
                )
            });
            format!("{} | {}{backlog}", throughput_cells(t), checks(&t.stats))
        }
        Outcome::Drain(d) => {
            format!(
                "{} | {} | — | — | — | — | {}",
                latency_or_dash(d.cpu_per_message()),
                super::rates(d.per_second(), &d.rounds),
                drain_checks(d)
            )
        }
        Outcome::Idle(_) => "— | — | — | — | — | — | —".to_owned(),
        Outcome::Skipped(why) => format!("— | — | — | — | — | — | skipped: {why}"),
        Outcome::Failed(_) => "— | — | — | — | — | — | **failed** (below)".to_owned(),
    }
}

/// `ok, 100,000 delivered, 0 redelivered; stored (sink down) at 23,000 msgs/s`.
fn drain_checks(d: &Drain) -> String {
    if d.is_valid() {
        format!(
            "ok, {} delivered, {} redelivered; stored (sink down) at {} msgs/s",
            rate(d.count.messages as f64),
            d.count.duplicates,
            rate(d.fill_per_second())
        )
    } else {
        "**invalid** (below)".to_owned()
    }
}
