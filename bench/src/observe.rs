//! `guichet-bench observe`: what flow observation costs the message path.
//! One guichet with one plain `mllp` passthrough route and a SQLite
//! journal between the load generator and the sink; the same config with
//! `[observe] enabled = false`, and with observation on (its default with a
//! journal, flushed every 5 s). Rounds interleave (without, with, without,
//! with...), so both are measured minutes apart at most.
//!
//! ```text
//! load generator (N connections) -> guichet (mllp, passthrough, journal) -> MLLP ACK sink
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::children::{free_port, Child};
use crate::load::{self, Window};
use crate::message::LoadMessage;
use crate::procfs::cpu_time;

/// How long guichet and the sink may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The sizes of a run.
pub struct Plan {
    pub rounds: usize,
    pub conns: u32,
    pub warmup: Duration,
    pub measured: Duration,
    /// The bench binary itself, which runs the sink.
    pub exe: PathBuf,
}

/// Whether the round's guichet observes flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Without,
    With,
}

/// One round's figures.
#[derive(Debug, Clone, Copy)]
struct Round {
    per_second: f64,
    /// guichet's CPU time per message answered, in microseconds.
    cpu_us: f64,
}

/// Runs the rounds; returns the report's section.
pub async fn run(guichet: &Path, plan: &Plan, dir: &Path, date: &str) -> anyhow::Result<String> {
    let mut without = Vec::new();
    let mut with = Vec::new();
    for round in 0..plan.rounds {
        for variant in [Variant::Without, Variant::With] {
            let tag = format!("{variant:?}-{round}").to_lowercase();
            let measured = measure(guichet, plan, &dir.join(tag), variant).await?;
            eprintln!(
                "observe {variant:?} round {}: {:.0} msg/s, {:.1} µs CPU per message",
                round + 1,
                measured.per_second,
                measured.cpu_us
            );
            match variant {
                Variant::Without => without.push(measured),
                Variant::With => with.push(measured),
            }
        }
    }
    Ok(section(plan, &without, &with, date))
}

/// One round: a fresh sink, guichet and journal, `plan.conns` senders.
async fn measure(
    guichet: &Path,
    plan: &Plan,
    dir: &Path,
    variant: Variant,
) -> anyhow::Result<Round> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let sink_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let sink_listen = sink_addr.to_string();
    let mut sink = Child::spawn(
        "sink",
        &plan.exe,
        &["sink", "--listen", &sink_listen],
        &[],
        &dir.join("sink.log"),
    )?;
    sink.wait_listening(sink_addr, START_TIMEOUT).await?;
    let entry = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let config = dir.join("guichet.toml");
    std::fs::write(&config, config_text(dir, entry, sink_addr, variant))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let config = config.display().to_string();
    let mut gateway = Child::spawn(
        "guichet",
        guichet,
        &["run", "-c", &config],
        &[("RUST_LOG", "warn")],
        &dir.join("guichet.log"),
    )?;
    gateway.wait_listening(entry, START_TIMEOUT).await?;
    let round = window(plan, entry, gateway.pid()).await?;
    gateway.check_alive()?;
    sink.check_alive()?;
    Ok(round)
}

/// Senders for the warm-up and the window; guichet's CPU inside it.
async fn window(plan: &Plan, entry: SocketAddr, pid: u32) -> anyhow::Result<Round> {
    let message = LoadMessage::adt_a01();
    let window = Window::starting_now(plan.warmup, plan.measured);
    let load = load::persistent(entry, plan.conns, window, &message);
    let cpu = async {
        tokio::time::sleep_until(window.measure_from.into()).await;
        let before = cpu_time(pid);
        tokio::time::sleep_until(window.end.into()).await;
        Some(cpu_time(pid)?.saturating_sub(before?))
    };
    let (stats, cpu) = tokio::join!(load, cpu);
    if !stats.is_valid() || stats.messages == 0 {
        anyhow::bail!(
            "the senders failed: {} errors, {} mismatched ACKs ({})",
            stats.errors,
            stats.mismatches,
            stats.first_error.as_deref().unwrap_or("-")
        );
    }
    let cpu = cpu.context("cannot read guichet's CPU time")?;
    Ok(Round {
        per_second: stats.messages as f64 / window.measured().as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / stats.messages as f64,
    })
}

/// The route and journal are the same in both variants; only `[observe]`
/// differs.
fn config_text(dir: &Path, entry: SocketAddr, sink: SocketAddr, variant: Variant) -> String {
    let observe = match variant {
        Variant::Without => "[observe]\nenabled = false\n\n",
        Variant::With => "[observe]\nenabled = true\nflush = \"5s\"\n\n",
    };
    let journal = dir.join("journal.db");
    format!(
        "[gateway]\ndrain_timeout = \"1s\"\n\n[defaults]\nconnect_timeout = \"5s\"\nidle_timeout = \"15m\"\n\n\
         [journal]\nstore = \"{}\"\nnode = \"bench\"\n\n{observe}\
         [[route]]\nname = \"adt\"\nkind = \"mllp\"\nlisten = \"{entry}\"\nforward = \"{sink}\"\n\
         delivery = \"passthrough\"\n",
        journal.display()
    )
}

/// The median of `rounds` by CPU per message, and the range of both figures.
fn median(rounds: &[Round]) -> (Round, (f64, f64), (f64, f64)) {
    let mut by_cpu = rounds.to_vec();
    by_cpu.sort_by(|a, b| a.cpu_us.total_cmp(&b.cpu_us));
    let mid = by_cpu.get(by_cpu.len() / 2).copied().unwrap_or(Round {
        per_second: 0.0,
        cpu_us: 0.0,
    });
    let range = |f: fn(&Round) -> f64| {
        let values = rounds.iter().map(f);
        let lo = values.clone().fold(f64::INFINITY, f64::min);
        (lo, values.fold(0.0, f64::max))
    };
    (mid, range(|r| r.cpu_us), range(|r| r.per_second))
}

fn section(plan: &Plan, without: &[Round], with: &[Round], date: &str) -> String {
    let (off, off_cpu, off_rate) = median(without);
    let (on, on_cpu, on_rate) = median(with);
    let overhead = if off.cpu_us > 0.0 {
        (on.cpu_us - off.cpu_us) / off.cpu_us * 100.0
    } else {
        0.0
    };
    let row = |name: &str, r: &Round, cpu: (f64, f64), rate: (f64, f64)| {
        format!(
            "| {name} | {:.1} µs ({:.1}–{:.1}) | {:.0} msg/s ({:.0}–{:.0}) |\n",
            r.cpu_us, cpu.0, cpu.1, r.per_second, rate.0, rate.1
        )
    };
    format!(
        "## Flow observation\n\n\
         What counting observed flows costs guichet's message path: one guichet, one plain \
         `mllp` passthrough route and a SQLite journal, with `[observe] enabled = false` and \
         with observation on (flushed every 5 s), {conns} connections each waiting for its \
         ACK.\n\n\
         ```text\nload generator ({conns} connections) -> guichet (mllp, passthrough) -> MLLP ACK sink\n```\n\n\
         - Date: {date}\n\
         - Command (from the repository root): `cargo run --release -p guichet-bench -- observe \
         --rounds {rounds} --conns {conns} --seconds {secs}`\n\
         - Each variant: {rounds} rounds, interleaved (without, with, without...), each with a \
         fresh guichet, journal and sink; {warmup}s of warm-up, then {secs}s measured; the \
         median round by CPU per message, with the range of all rounds. CPU is guichet's \
         process (user + system) inside the window, over the messages answered in it; the \
         load generator and the sink share the machine's cores.\n\n\
         | guichet | CPU per message | messages per second |\n|---|---|---|\n{}{}\n\
         Observation costs **{overhead:+.1} %** of guichet's CPU per message (target: under 2 %).\n",
        row("without observation", &off, off_cpu, off_rate),
        row("with observation", &on, on_cpu, on_rate),
        conns = plan.conns,
        rounds = plan.rounds,
        secs = plan.measured.as_secs_f64(),
        warmup = plan.warmup.as_secs_f64(),
    )
}
