//! `guichet-bench observe`: what flow observation costs the message path.
//! One guichet with one plain `mllp` passthrough route and a SQLite
//! journal between the load generator and the sink; the same config with
//! `[observe] enabled = false`, and with observation on (its default with a
//! journal, flushed every 5 s). Rounds interleave (without, with, without,
//! with...), so both are measured minutes apart at most. guichet logs at
//! its default level, one line per message, as users run it.
//!
//! CPU time on a shared machine moves by more than the 2 % this measures,
//! so each variant also runs once under callgrind (when valgrind is on the
//! `PATH`): the instructions guichet executes per message do not depend on
//! what else runs. The counters are zeroed after the warm-up and dumped at
//! the end of the window (`callgrind_control`), so start-up is not counted.
//!
//! ```text
//! load generator (N connections) -> guichet (mllp, passthrough, journal) -> MLLP ACK sink
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::children::{free_port, Child};
use crate::load::{self, Window};
use crate::message::LoadMessage;
use crate::procfs::cpu_time;

/// The report section this run writes.
pub const HEADING: &str = "## Flow observation\n";

/// How long guichet and the sink may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Under callgrind guichet runs tens of times slower: a longer start, a
/// warm-up that translates the message path, and a window long enough for
/// thousands of messages.
const CALLGRIND_START_TIMEOUT: Duration = Duration::from_secs(120);
const CALLGRIND_WARMUP: Duration = Duration::from_secs(5);
const CALLGRIND_WINDOW: Duration = Duration::from_secs(20);

/// The sizes of a run.
pub struct Plan {
    pub rounds: usize,
    pub conns: u32,
    pub warmup: Duration,
    pub measured: Duration,
    /// The bench binary itself, which runs the sink.
    pub exe: PathBuf,
    /// Where callgrind's profiles are kept for `callgrind_annotate`.
    pub profiles: PathBuf,
}

/// Whether the round's guichet observes flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Without,
    With,
}

/// What a round reads off guichet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meter {
    /// Its process's CPU time, from /proc.
    Cpu,
    /// The instructions it executes, counted by callgrind.
    Instructions,
}

/// One round's figures.
#[derive(Debug, Clone, Copy)]
struct Round {
    per_second: f64,
    /// guichet's cost per message answered: CPU time in microseconds, or
    /// instructions under [`Meter::Instructions`].
    per_message: f64,
}

/// Instructions per message, without and with observation, or why they
/// were not counted.
type Instructions = Result<(f64, f64), String>;

/// Runs the rounds; returns the report's section.
pub async fn run(guichet: &Path, plan: &Plan, dir: &Path, date: &str) -> anyhow::Result<String> {
    let mut without = Vec::new();
    let mut with = Vec::new();
    for round in 0..plan.rounds {
        for variant in [Variant::Without, Variant::With] {
            let tag = format!("{variant:?}-{round}").to_lowercase();
            let measured = measure(guichet, plan, &dir.join(tag), variant, Meter::Cpu).await?;
            eprintln!(
                "observe {variant:?} round {}: {:.0} msg/s, {:.1} µs CPU per message",
                round + 1,
                measured.per_second,
                measured.per_message
            );
            match variant {
                Variant::Without => without.push(measured),
                Variant::With => with.push(measured),
            }
        }
    }
    let instructions = if valgrind_found() {
        std::fs::create_dir_all(&plan.profiles)
            .with_context(|| format!("cannot create {}", plan.profiles.display()))?;
        let mut counted = Vec::new();
        for variant in [Variant::Without, Variant::With] {
            let tag = format!("callgrind-{variant:?}").to_lowercase();
            let round =
                measure(guichet, plan, &dir.join(tag), variant, Meter::Instructions).await?;
            counted.push(round.per_message);
        }
        eprintln!(
            "observe under callgrind: {:.0} instructions per message without, {:.0} with",
            counted[0], counted[1]
        );
        Ok((counted[0], counted[1]))
    } else {
        Err("valgrind is not on the PATH".to_owned())
    };
    Ok(section(plan, &without, &with, &instructions, date))
}

fn valgrind_found() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// One round: a fresh sink, guichet and journal, `plan.conns` senders.
async fn measure(
    guichet: &Path,
    plan: &Plan,
    dir: &Path,
    variant: Variant,
    meter: Meter,
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
    let run = ["run", "-c", config.as_str()];
    // Under callgrind, its dump is kept as the variant's profile.
    let profile = plan
        .profiles
        .join(format!("observe-{variant:?}.callgrind").to_lowercase());
    let out = format!(
        "--callgrind-out-file={}",
        dir.join("callgrind.out").display()
    );
    let program = guichet.display().to_string();
    let (name, exe, args, start, warmup, measured) = match meter {
        Meter::Cpu => (
            "guichet",
            guichet,
            run.to_vec(),
            START_TIMEOUT,
            plan.warmup,
            plan.measured,
        ),
        Meter::Instructions => {
            let mut args = vec!["--tool=callgrind", out.as_str(), program.as_str()];
            args.extend(run);
            let valgrind = Path::new("valgrind");
            let timeout = CALLGRIND_START_TIMEOUT;
            (
                "guichet under callgrind",
                valgrind,
                args,
                timeout,
                CALLGRIND_WARMUP,
                CALLGRIND_WINDOW,
            )
        }
    };
    let mut gateway = Child::spawn(name, exe, &args, &[], &dir.join("guichet.log"))?;
    gateway.wait_listening(entry, start).await?;
    let window = Window::starting_now(warmup, measured);
    let pid = gateway.pid();
    let round = match meter {
        Meter::Cpu => senders(plan, entry, window, cpu(pid, window)).await?,
        Meter::Instructions => {
            let dump = dir.join("callgrind.out.1");
            senders(
                plan,
                entry,
                window,
                instructions(pid, window, &dump, &profile),
            )
            .await?
        }
    };
    gateway.check_alive()?;
    sink.check_alive()?;
    Ok(round)
}

/// guichet's CPU time inside the window.
async fn cpu(pid: u32, window: Window) -> anyhow::Result<f64> {
    tokio::time::sleep_until(window.measure_from.into()).await;
    let before = cpu_time(pid);
    tokio::time::sleep_until(window.end.into()).await;
    let spent = cpu_time(pid)
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before))
        .context("cannot read guichet's CPU time")?;
    Ok(spent.as_secs_f64() * 1e6)
}

/// The instructions guichet executed inside the window: callgrind's
/// counters zeroed at its start, dumped at its end into `dump`, which is
/// then kept as `profile` for `callgrind_annotate`.
async fn instructions(
    pid: u32,
    window: Window,
    dump: &Path,
    profile: &Path,
) -> anyhow::Result<f64> {
    tokio::time::sleep_until(window.measure_from.into()).await;
    callgrind_control("-z", pid).await?;
    tokio::time::sleep_until(window.end.into()).await;
    callgrind_control("-d", pid).await?;
    let text = std::fs::read_to_string(dump)
        .with_context(|| format!("callgrind wrote no dump at {}", dump.display()))?;
    let summary = text
        .lines()
        .find_map(|line| line.strip_prefix("summary: "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .with_context(|| format!("no instruction summary in {}", dump.display()))?;
    std::fs::copy(dump, profile)
        .with_context(|| format!("cannot keep {} as {}", dump.display(), profile.display()))?;
    eprintln!("callgrind profile kept: {}", profile.display());
    Ok(summary as f64)
}

async fn callgrind_control(command: &'static str, pid: u32) -> anyhow::Result<()> {
    let status = tokio::task::spawn_blocking(move || {
        Command::new("callgrind_control")
            .arg(command)
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await?
    .context("cannot run callgrind_control")?;
    anyhow::ensure!(
        status.success(),
        "callgrind_control {command} {pid} failed: {status}"
    );
    Ok(())
}

/// Senders for the warm-up and the window, while `meter` reads guichet's
/// cost inside the window; the cost per message answered.
async fn senders(
    plan: &Plan,
    entry: SocketAddr,
    window: Window,
    meter: impl std::future::Future<Output = anyhow::Result<f64>>,
) -> anyhow::Result<Round> {
    let message = LoadMessage::adt_a01();
    let load = load::persistent(entry, plan.conns, window, &message);
    let (stats, cost) = tokio::join!(load, meter);
    if !stats.is_valid() || stats.messages == 0 {
        anyhow::bail!(
            "the senders failed: {} errors, {} mismatched ACKs ({})",
            stats.errors,
            stats.mismatches,
            stats.first_error.as_deref().unwrap_or("-")
        );
    }
    Ok(Round {
        per_second: stats.messages as f64 / window.measured().as_secs_f64(),
        per_message: cost? / stats.messages as f64,
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
    by_cpu.sort_by(|a, b| a.per_message.total_cmp(&b.per_message));
    let mid = by_cpu.get(by_cpu.len() / 2).copied().unwrap_or(Round {
        per_second: 0.0,
        per_message: 0.0,
    });
    let range = |f: fn(&Round) -> f64| {
        let values = rounds.iter().map(f);
        let lo = values.clone().fold(f64::INFINITY, f64::min);
        (lo, values.fold(0.0, f64::max))
    };
    (mid, range(|r| r.per_message), range(|r| r.per_second))
}

fn section(
    plan: &Plan,
    without: &[Round],
    with: &[Round],
    instructions: &Instructions,
    date: &str,
) -> String {
    let (off, off_cpu, off_rate) = median(without);
    let (on, on_cpu, on_rate) = median(with);
    let overhead = if off.per_message > 0.0 {
        (on.per_message - off.per_message) / off.per_message * 100.0
    } else {
        0.0
    };
    let counted = match instructions {
        Ok((off, on)) => format!(
            "Under callgrind (one guichet per variant, {warmup}s of warm-up, then {window}s \
             counted; instructions of every guichet thread over the messages answered):\n\n\
             | guichet | instructions per message |\n|---|---|\n\
             | without observation | {off:.0} |\n| with observation | {on:.0} |\n\n\
             Observation costs **{:+.1} %** of guichet's instructions per message. This figure \
             does not move with the machine's load; the CPU time above does. It counts guichet's \
             own instructions only: the kernel's work for its sockets, which CPU time includes, \
             is not in it, so the share is larger than in CPU time. The profiles are kept in \
             `target/bench-profiles/` for `callgrind_annotate`.\n\n",
            (on - off) / off * 100.0,
            warmup = CALLGRIND_WARMUP.as_secs(),
            window = CALLGRIND_WINDOW.as_secs(),
        ),
        Err(why) => format!("Instructions per message were not counted: {why}.\n\n"),
    };
    let row = |name: &str, r: &Round, cpu: (f64, f64), rate: (f64, f64)| {
        format!(
            "| {name} | {:.1} µs ({:.1}–{:.1}) | {:.0} msg/s ({:.0}–{:.0}) |\n",
            r.per_message, cpu.0, cpu.1, r.per_second, rate.0, rate.1
        )
    };
    format!(
        "## Flow observation\n\n\
         What counting observed flows costs guichet's message path: one guichet, one plain \
         `mllp` passthrough route and a SQLite journal, with `[observe] enabled = false` and \
         with observation on (flushed every 5 s), {conns} connections each waiting for its \
         ACK. guichet logs at its default level (one line per message), as users run it.\n\n\
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
         Observation costs **{overhead:+.1} %** of guichet's CPU per message (target: under 2 %).\n\n\
         {counted}",
        row("without observation", &off, off_cpu, off_rate),
        row("with observation", &on, on_cpu, on_rate),
        conns = plan.conns,
        rounds = plan.rounds,
        secs = plan.measured.as_secs_f64(),
        warmup = plan.warmup.as_secs_f64(),
    )
}
