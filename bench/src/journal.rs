//! The store-and-forward scenarios, guichet's alone (the other peers have
//! no journal): one guichet between the load generator and the sink,
//! plain MLLP, one `mllp` route.
//!
//! ```text
//! load generator -> guichet (store-and-forward: journal, fsync, AA) ... delivery worker -> MLLP ACK sink
//! ```
//!
//! Every round gets a fresh journal: a SQLite file in the run's
//! temporary directory, or a throwaway PostgreSQL database on the server
//! `./scripts/setup` starts (`GUICHET_TEST_POSTGRES`), dropped after the
//! round. The passthrough baselines run the same route with
//! `delivery = "passthrough"`, in the same run.

mod gateway;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use guichet_testsupport::postgres::TestDatabase;

use crate::children::free_port;
use crate::load;
use crate::message::LoadMessage;
use crate::peers::{Peer, Setup};
use crate::scenario::{self, pair_cpu, Drain, Outcome, Plan, Scenario};
use crate::sink::Count;

/// Why HAProxy, stunnel and the direct path have no row here.
pub const NO_JOURNAL: &str =
    "no journal (only guichet acknowledges a message on the receiver's behalf)";

/// The slowest drain that still finishes: below this many messages per
/// second the round fails rather than waiting on.
const SLOWEST_DRAIN: u64 = 500;

/// Tries to drop a round's PostgreSQL database, a second apart.
const DROP_ATTEMPTS: u32 = 10;

/// A journal backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// One round's journal; a PostgreSQL database is dropped with
/// [`Journal::remove`].
enum Journal {
    Sqlite(PathBuf),
    Postgres(TestDatabase),
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Store::Sqlite => "SQLite",
            Store::Postgres => "PostgreSQL",
        })
    }
}

impl Journal {
    /// A fresh, empty journal; `Err` holds why the round is skipped.
    async fn create(store: Store, dir: &Path) -> Result<Journal, String> {
        match store {
            Store::Sqlite => Ok(Journal::Sqlite(dir.join("journal.db"))),
            // The testkit panics when the server refuses CREATE DATABASE:
            // caught here so one round fails, not the whole run.
            Store::Postgres => match tokio::spawn(TestDatabase::try_create()).await {
                Ok(created) => created.map(Journal::Postgres),
                Err(e) => Err(format!("creating a PostgreSQL database: {e}")),
            },
        }
    }

    /// The `[journal] store` value.
    fn setting(&self) -> String {
        match self {
            Journal::Sqlite(path) => path.display().to_string(),
            Journal::Postgres(database) => database.url().to_owned(),
        }
    }

    /// Gathers the planner's statistics on a PostgreSQL journal's tables,
    /// as autoanalyze does after many inserts: the drain must not depend
    /// on whether it ran yet.
    async fn analyze(&self) -> anyhow::Result<()> {
        let Journal::Postgres(database) = self else {
            return Ok(());
        };
        let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
            .await
            .context("connecting to the journal database to ANALYZE it")?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute("ANALYZE")
            .await
            .context("ANALYZE on the journal database")?;
        drop(client);
        let _ = connection.await;
        Ok(())
    }

    /// Drops a PostgreSQL journal. The testkit drops `WITH (FORCE)`, which
    /// PostgreSQL refuses while autovacuum (a superuser's process) works on
    /// the database, as it does after a round's inserts; a plain `DROP`
    /// ends autovacuum itself, and guichet is stopped by now.
    async fn remove(self) {
        let Journal::Postgres(database) = self else {
            return;
        };
        // In a task of its own: the testkit panics if the server went away.
        let dropped = tokio::spawn(async move {
            let sql = format!("DROP DATABASE IF EXISTS {}", database.name());
            let admin = database.admin().await;
            for _ in 0..DROP_ATTEMPTS {
                match admin.batch_execute(&sql).await {
                    Ok(()) => break,
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
            database.drop_db().await;
        });
        if let Err(e) = dropped.await {
            eprintln!("could not drop a benchmark database: {e}");
        }
    }
}

impl Scenario {
    /// The journal a scenario stores in; `None` for passthrough.
    fn store(self) -> Option<Store> {
        match self {
            Scenario::StoreAndForward(store) | Scenario::Drain(store) => Some(store),
            _ => None,
        }
    }
}

/// Measures one round of a store-and-forward scenario on `peer`.
pub async fn measure(plan: &Plan, setup: &Setup, scenario: Scenario, peer: Peer) -> Outcome {
    if peer != Peer::Guichet {
        return Outcome::Skipped(NO_JOURNAL.to_owned());
    }
    let tag = format!("{}-guichet", scenario.key());
    let dir = setup.dir.join(&tag);
    if let Err(e) = fresh_dir(&dir) {
        return Outcome::Failed(format!("{e:#}"));
    }
    let journal = match scenario.store() {
        None => None,
        Some(store) => match Journal::create(store, &dir).await {
            Ok(journal) => Some(journal),
            Err(why) => return Outcome::Skipped(why),
        },
    };
    let result = match (scenario, &journal) {
        (Scenario::Drain(_), Some(journal)) => after_outage(plan, setup, &tag, &dir, journal).await,
        _ => {
            let setting = journal.as_ref().map(Journal::setting);
            ingest(plan, setup, scenario, &tag, &dir, setting.as_deref()).await
        }
    };
    if let Some(journal) = journal {
        journal.remove().await;
    }
    result.unwrap_or_else(|e| Outcome::Failed(format!("{e:#}")))
}

/// Senders through one guichet (store-and-forward when `store` is set)
/// to the sink, for the plan's window.
async fn ingest(
    plan: &Plan,
    setup: &Setup,
    scenario: Scenario,
    tag: &str,
    dir: &Path,
    store: Option<&str>,
) -> anyhow::Result<Outcome> {
    let (_sink, sink_addr) = scenario::start_sink(plan, setup, tag).await?;
    let mut gateway = gateway::start(setup, dir, sink_addr, store).await?;
    let message = LoadMessage::adt_a01();
    let mut throughput = scenario::throughput(plan, &gateway.pair, scenario, &message).await;
    if store.is_some() {
        throughput.backlog = Some(gateway::queue_depth(setup, &gateway.config).await?);
    }
    gateway.pair.check_alive()?;
    Ok(Outcome::Throughput(throughput))
}

/// The journal after an outage: fills it with the receiver down (the
/// fill rate is ingest with the receiver down), analyzes a PostgreSQL
/// journal's tables as autoanalyze would have during the outage, then
/// starts the receiver and times how long it takes to receive every
/// message.
async fn after_outage(
    plan: &Plan,
    setup: &Setup,
    tag: &str,
    dir: &Path,
    journal: &Journal,
) -> anyhow::Result<Outcome> {
    let sink_addr = crate::peers::local(free_port()?);
    let store = journal.setting();
    let gateway::Gateway {
        pair: mut gateway, ..
    } = gateway::start(setup, dir, sink_addr, Some(&store)).await?;
    let message = LoadMessage::adt_a01();
    let expected = plan.drain_messages;
    let started = Instant::now();
    let fill = load::exactly(gateway.entry, plan.many_conns, expected, &message).await;
    let fill_took = started.elapsed();
    gateway.check_alive()?;
    let mut drain = Drain {
        fill,
        fill_took,
        count: Count::default(),
        expected,
        gateway_cpu: None,
        rounds: Vec::new(),
    };
    if !drain.fill.is_valid() {
        return Ok(Outcome::Drain(drain));
    }
    journal.analyze().await?;
    let report = dir.join("sink-count");
    let cpu_before = pair_cpu(&gateway);
    let (n, path) = (expected.to_string(), report.display().to_string());
    let extra = ["--expect", n.as_str(), "--report", path.as_str()];
    let mut sink = scenario::start_sink_at(plan, setup, tag, sink_addr, &extra).await?;
    let within = Duration::from_secs(30 + expected / SLOWEST_DRAIN);
    sink.wait_exit(within)
        .await
        .context("the sink did not receive every stored message")?;
    drain.gateway_cpu = pair_cpu(&gateway)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    gateway.check_alive()?;
    drain.count = Count::read(&report)?;
    drain.rounds.push(drain.per_second());
    Ok(Outcome::Drain(drain))
}

/// An empty directory for one round (a previous round's journal removed).
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
