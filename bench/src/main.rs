//! `guichet-bench run`: guichet against HAProxy, stunnel and the direct
//! path, in one run, on the EAI <-> DPI tunnel topology, and against nginx
//! and Caddy as an HTTPS gateway; writes docs/BENCHMARKS.md. See
//! `guichet-bench run --help`.

mod books;
mod children;
mod http;
mod journal;
mod load;
mod machine;
mod map;
mod message;
mod observe;
mod peers;
mod pki;
mod procfs;
mod report;
mod scenario;
mod sink;
mod timed;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use time::OffsetDateTime;

use crate::journal::Store;
use crate::peers::{Peer, Setup};
use crate::scenario::{Measurement, Outcome, Plan, Scenario};

/// Measures guichet against HAProxy, stunnel and the direct path, and
/// against nginx and Caddy as an HTTPS gateway.
#[derive(Parser, Debug)]
#[command(name = "guichet-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run every scenario on every peer and write docs/BENCHMARKS.md.
    Run(RunArgs),
    /// The MLLP ACK sink the benchmark starts as its own process.
    #[command(hide = true)]
    Sink {
        #[arg(long)]
        listen: SocketAddr,
        /// Count distinct messages; exit once this many are answered.
        #[arg(long, requires = "report")]
        expect: Option<u64>,
        /// Where the count and its time are written on exit.
        #[arg(long, requires = "expect")]
        report: Option<PathBuf>,
    },
    /// The HTTP application behind the HTTPS gateways, as its own process.
    #[command(hide = true)]
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// The HTTPS load generator, as its own process.
    #[command(hide = true)]
    HttpLoad(HttpLoadArgs),
    /// `guichet validate` on generated bed-availability files; replaces the
    /// "Bed availability" section of the report. With --http: the
    /// validating HTTP rule; replaces its subsection "Validating rule".
    Validate(ValidateArgs),
    /// `guichet test compare` of a book of bed-availability cases against
    /// two validating HTTPS gateways, each in front of its own `guichet sim
    /// ror`, and `guichet test run` against one; replaces the "Test books"
    /// section of the report.
    Books(BooksArgs),
    /// `guichet map build` and `guichet map kpis` on a synthetic hospital
    /// group, and the built page in headless Chromium; replaces the "The
    /// map" section of the report.
    Map(MapArgs),
    /// guichet's CPU per message with flow observation and without, on a
    /// plain MLLP passthrough route with a journal, rounds interleaved;
    /// replaces the "Flow observation" section of the report.
    Observe(ObserveArgs),
}

#[derive(Args, Debug)]
struct MapArgs {
    #[arg(long, default_value_t = 20)]
    establishments: usize,
    /// Application occurrences in the whole group.
    #[arg(long, default_value_t = 3000)]
    occurrences: usize,
    /// Declared flows in the whole group.
    #[arg(long, default_value_t = 5000)]
    flows: usize,
    /// Measured rounds; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The guichet binary [default: `cargo build --release -p guichet`].
    #[arg(long, value_name = "PATH")]
    guichet: Option<PathBuf>,
    /// The report whose section is replaced [default: docs/BENCHMARKS.md].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ObserveArgs {
    /// Measured rounds per variant; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Connections, each waiting for its ACK before its next message.
    #[arg(long, default_value_t = 32)]
    conns: u32,
    /// Measured seconds per round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Warm-up seconds before each round.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The guichet binary [default: `cargo build --release -p guichet`].
    #[arg(long, value_name = "PATH")]
    guichet: Option<PathBuf>,
    /// The report whose section is replaced [default: docs/BENCHMARKS.md].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BooksArgs {
    /// Cases in the book, each a document for its own unit.
    #[arg(long, default_value_t = 1000)]
    cases: usize,
    /// The book's `concurrency` [default: the runner's].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Measured rounds of each runner; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The guichet binary [default: `cargo build --release -p guichet`].
    #[arg(long, value_name = "PATH")]
    guichet: Option<PathBuf>,
    /// The report whose section is replaced [default: docs/BENCHMARKS.md].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// Measure the validating HTTP rule instead of the files: guichet's
    /// CPU per request with `validate = "bed-availability"` against the
    /// same rule without, POSTs over HTTPS, rounds interleaved.
    #[arg(long)]
    http: bool,
    /// Files to validate.
    #[arg(long, default_value_t = 10_000, conflicts_with = "http")]
    files: usize,
    /// Units per file, or per document posted.
    #[arg(long, default_value_t = validate::UNITS)]
    units: usize,
    /// Measured rounds (with --http: per rule); the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// With --http: kept-alive connections.
    #[arg(long, default_value_t = 64, requires = "http")]
    conns: u32,
    /// With --http: measured seconds per round.
    #[arg(long, default_value_t = 5.0, requires = "http")]
    seconds: f64,
    /// With --http: warm-up seconds before each round.
    #[arg(long, default_value_t = 1.0, requires = "http")]
    warmup: f64,
    /// The guichet binary [default: `cargo build --release -p guichet`].
    #[arg(long, value_name = "PATH")]
    guichet: Option<PathBuf>,
    /// The report whose section is replaced [default: docs/BENCHMARKS.md].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct HttpLoadArgs {
    /// The gateway's HTTPS address.
    #[arg(long)]
    target: SocketAddr,
    #[arg(long, value_enum)]
    mode: http::load::Mode,
    /// Connections (keep-alive) or concurrent clients (handshake).
    #[arg(long, default_value_t = 1)]
    conns: u32,
    /// The CA that issued the gateway's certificate.
    #[arg(long)]
    ca: PathBuf,
    /// The client certificate presented, and its key.
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// POST this file's bytes (an XML document) with every request, not
    /// a GET.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// When the warm-up starts, in nanoseconds since the Unix epoch
    /// [default: now].
    #[arg(long)]
    start_at: Option<u64>,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// The tally is written here, the latencies beside it (`.latencies`).
    #[arg(long)]
    report: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A smoke run: one round of 1.5 s per scenario, 1000 idle
    /// connections. Prints the report; writes it only with --out.
    #[arg(long)]
    quick: bool,
    /// Measured seconds per round of a throughput scenario [default: 5,
    /// --quick 1.5].
    #[arg(long)]
    seconds: Option<f64>,
    /// Warm-up seconds before each round [default: 1, --quick 0.5].
    #[arg(long)]
    warmup: Option<f64>,
    /// Rounds per throughput scenario and peer; the median is reported
    /// [default: 3, --quick 1].
    #[arg(long)]
    rounds: Option<u32>,
    /// Connections of the many-connections scenario.
    #[arg(long, default_value_t = 32)]
    conns: u32,
    /// Concurrent senders of the connection-per-message scenario, and
    /// concurrent clients of the HTTPS connection-per-request one.
    #[arg(long, default_value_t = 8)]
    handshake_senders: u32,
    /// Kept-alive connections of the HTTPS many-connections scenario.
    #[arg(long, default_value_t = 64)]
    http_conns: u32,
    /// Whether the HTTPS gateways write an access log (each to a file in
    /// the run's directory; nginx's buffered).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    http_access_log: bool,
    /// Idle connections [default: 10000, --quick 1000], capped by the
    /// descriptor limit.
    #[arg(long)]
    idle_conns: Option<u32>,
    /// Messages stored with the receiver down, then delivered, by a
    /// journal-after-an-outage scenario [default: 100000, --quick 10000].
    #[arg(long, value_name = "N")]
    drain_messages: Option<u64>,
    /// Only these peers (comma-separated). The report is then printed, not
    /// written, unless --out is given.
    #[arg(long, value_enum, value_delimiter = ',')]
    peers: Vec<PeerArg>,
    /// Only these scenarios (comma-separated); as for --peers.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<ScenarioArg>,
    /// The guichet binary to measure [default: `cargo build --release -p
    /// guichet`, then target/release/guichet].
    #[arg(long, value_name = "PATH")]
    guichet: Option<PathBuf>,
    /// guichet's `[gateway] workers` [default: guichet's own, one per CPU].
    #[arg(long, value_name = "N")]
    guichet_workers: Option<u32>,
    /// Write the report here [default: docs/BENCHMARKS.md for a full run].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Store-and-forward and HTTPS scenarios only: replace the
    /// "Store-and-forward journal" and/or "HTTPS gateway" section of the
    /// existing report (--out, or docs/BENCHMARKS.md) with this run's and
    /// keep the rest of it.
    #[arg(long)]
    merge: bool,
    /// Keep the working directory (certificates, configs, gateway logs).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PeerArg {
    Guichet,
    Haproxy,
    Stunnel,
    Direct,
    Nginx,
    Caddy,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    One,
    Many,
    Handshake,
    Idle,
    /// Every store-and-forward scenario below (guichet only).
    Journal,
    /// One guichet, passthrough route, 1 connection.
    PassthroughOne,
    /// One guichet, passthrough route, --conns connections.
    PassthroughMany,
    /// One guichet, store-and-forward into SQLite, --conns connections.
    SfSqlite,
    /// The same into PostgreSQL (GUICHET_TEST_POSTGRES).
    SfPostgres,
    /// Journal after an outage: a SQLite journal filled with the receiver
    /// down, then delivered.
    DrainSqlite,
    /// The same with PostgreSQL, its tables analyzed before the receiver
    /// comes back.
    DrainPostgres,
    /// Every HTTPS gateway scenario below (guichet, nginx, Caddy).
    Http,
    /// HTTPS, one kept-alive connection.
    HttpOne,
    /// HTTPS, --http-conns kept-alive connections.
    HttpMany,
    /// HTTPS, a new connection (full handshake) per request.
    HttpHandshake,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(&args),
        Cmd::Sink {
            listen,
            expect,
            report,
        } => {
            let expect = expect
                .zip(report)
                .map(|(messages, report)| sink::Expect { messages, report });
            sink::run(listen, expect).map(|()| ExitCode::SUCCESS)
        }
        Cmd::Upstream { listen } => http::upstream::run(listen).map(|()| ExitCode::SUCCESS),
        Cmd::HttpLoad(args) => http_load(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Validate(args) => bench_validate(&args),
        Cmd::Books(args) => bench_books(&args),
        Cmd::Map(args) => bench_map(&args),
        Cmd::Observe(args) => bench_observe(&args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("guichet-bench: {e:#}");
        ExitCode::FAILURE
    })
}

/// `guichet-bench validate`: the files, or with --http the validating
/// rule; writes its part of the "Bed availability" section and keeps the
/// other.
fn bench_validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let workspace = workspace_root();
    let guichet = guichet_binary(args.guichet.as_ref(), &workspace)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace.join("docs/BENCHMARKS.md"));
    let existing = std::fs::read_to_string(&out).unwrap_or_default();
    let (merged, code) = if args.http {
        let (section, code) = validating_rule(args, guichet, &workspace)?;
        print!("{section}");
        (report::merge_validating_rule(&existing, &section), code)
    } else {
        let plan = validate::Plan {
            files: args.files,
            units: args.units,
            rounds: args.rounds.max(1),
        };
        let section = validate::run(&guichet, &plan, &now())?;
        print!("{section}");
        (
            report::merge_bed_availability(&existing, &section),
            ExitCode::SUCCESS,
        )
    };
    std::fs::write(&out, merged).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("section written to {}", out.display());
    Ok(code)
}

/// `guichet-bench observe`: flow observation's cost; writes the "Flow
/// observation" section.
fn bench_observe(args: &ObserveArgs) -> anyhow::Result<ExitCode> {
    if args.seconds <= 0.0 || args.warmup < 0.0 {
        bail!("--seconds must be positive and --warmup not negative");
    }
    procfs::raise_own_nofile();
    let workspace = workspace_root();
    let guichet = guichet_binary(args.guichet.as_ref(), &workspace)?;
    let plan = observe::Plan {
        rounds: args.rounds.max(1),
        conns: args.conns.max(1),
        warmup: Duration::from_secs_f64(args.warmup),
        measured: Duration::from_secs_f64(args.seconds),
        exe: std::env::current_exe().context("cannot find the benchmark's own binary")?,
        profiles: workspace.join("target/bench-profiles"),
    };
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-observe-")
        .tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let section = runtime.block_on(observe::run(&guichet, &plan, dir.path(), &now()))?;
    write_section(args.out.as_ref(), &workspace, observe::HEADING, &section)
}

/// `guichet-bench books`: the test-book runner; writes the "Test books"
/// section.
fn bench_books(args: &BooksArgs) -> anyhow::Result<ExitCode> {
    let workspace = workspace_root();
    let guichet = guichet_binary(args.guichet.as_ref(), &workspace)?;
    let plan = books::Plan {
        cases: args.cases.max(1),
        rounds: args.rounds.max(1),
        concurrency: args.concurrency,
    };
    let section = books::run(&guichet, &plan, &now())?;
    write_section(args.out.as_ref(), &workspace, books::HEADING, &section)
}

/// Prints `section` and puts it in the report (`out`, else
/// docs/BENCHMARKS.md) in place of the one under `heading`.
fn write_section(
    out: Option<&PathBuf>,
    workspace: &Path,
    heading: &str,
    section: &str,
) -> anyhow::Result<ExitCode> {
    print!("{section}");
    let out = out
        .cloned()
        .unwrap_or_else(|| workspace.join("docs/BENCHMARKS.md"));
    let existing = std::fs::read_to_string(&out).unwrap_or_default();
    let merged = report::merge_section(&existing, heading, section);
    std::fs::write(&out, merged).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("section written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `guichet-bench map`: writes the section "The map".
fn bench_map(args: &MapArgs) -> anyhow::Result<ExitCode> {
    let workspace = workspace_root();
    let guichet = guichet_binary(args.guichet.as_ref(), &workspace)?;
    let plan = map::Plan {
        establishments: args.establishments.max(1),
        occurrences: args.occurrences.max(args.establishments.max(1)),
        flows: args.flows,
        rounds: args.rounds.max(1),
    };
    let section = map::run(&guichet, &plan, &now())?;
    write_section(args.out.as_ref(), &workspace, map::HEADING, &section)
}

/// The validating rule and the same rule forwarding, rounds interleaved:
/// the subsection "Validating rule", and whether every round was valid.
fn validating_rule(
    args: &ValidateArgs,
    guichet: PathBuf,
    workspace: &Path,
) -> anyhow::Result<(String, ExitCode)> {
    procfs::raise_own_nofile();
    let plan = validating_plan(args)?;
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-rule-")
        .tempdir()?;
    let setup = setup(dir.path(), guichet, &plan, None)?;
    let measured = Measured::take(&plan, &setup, workspace)?;
    let section = measured.report(&plan).validating_rule_section();
    Ok((section, exit_code(&measured.measurements)))
}

/// The sizes of a `validate --http` run.
fn validating_plan(args: &ValidateArgs) -> anyhow::Result<Plan> {
    if args.seconds <= 0.0 || args.warmup < 0.0 {
        bail!("--seconds must be positive and --warmup not negative");
    }
    Ok(Plan {
        warmup: Duration::from_secs_f64(args.warmup),
        measured: Duration::from_secs_f64(args.seconds),
        many_conns: 1,
        handshake_senders: 1,
        idle_conns: 1,
        http_conns: args.conns.max(1),
        http_access_log: true,
        drain_messages: 1,
        document_units: args.units.max(1),
        rounds: u32::try_from(args.rounds.max(1)).unwrap_or(u32::MAX),
        peers: vec![Peer::Guichet],
        scenarios: Scenario::VALIDATING.to_vec(),
        exe: std::env::current_exe().context("cannot find the benchmark's own binary")?,
    })
}

fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    procfs::raise_own_nofile();
    let workspace = workspace_root();
    let plan = plan(args)?;
    if args.merge && plan.scenarios.iter().any(|s| s.is_tunnel()) {
        bail!(
            "--merge replaces only the store-and-forward and HTTPS gateway sections: give \
             --scenarios journal and/or http (or some of their scenarios); the tunnel scenarios \
             are written by a full run"
        );
    }
    let guichet = guichet_binary(args.guichet.as_ref(), &workspace)?;
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-")
        .tempdir()?;
    let setup = setup(dir.path(), guichet, &plan, args.guichet_workers)?;
    announce_missing(&plan, &setup);
    let measured = Measured::take(&plan, &setup, &workspace)?;
    let run = measured.report(&plan);
    if args.merge {
        merge_report(&run, args, &workspace)?;
    } else {
        let markdown = run.markdown();
        println!("{markdown}");
        if let Some(out) = report_path(args, &workspace) {
            // Bed availability, test books, the map and flow observation
            // have runs of their own: kept.
            let existing = std::fs::read_to_string(&out).unwrap_or_default();
            let kept = [
                validate::HEADING,
                books::HEADING,
                map::HEADING,
                observe::HEADING,
            ];
            let markdown = kept.into_iter().fold(markdown, |markdown, heading| {
                match report::section_of(&existing, heading) {
                    Some(kept) => report::merge_section(&markdown, heading, kept),
                    None => markdown,
                }
            });
            std::fs::write(&out, &markdown)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("report written to {}", out.display());
        }
    }
    if args.keep {
        eprintln!("working directory kept: {}", dir.keep().display());
    }
    Ok(exit_code(&measured.measurements))
}

/// What a run measured, and what its report says of when, how and where.
struct Measured {
    date: String,
    command: String,
    machine: machine::Machine,
    measurements: Vec<Measurement>,
}

impl Measured {
    /// Measures every scenario of `plan`.
    fn take(plan: &Plan, setup: &Setup, workspace: &Path) -> anyhow::Result<Measured> {
        let date = now();
        let measurements = measure_all(plan, setup)?;
        Ok(Measured {
            date,
            command: command_line(),
            machine: machine::describe(setup, workspace),
            measurements,
        })
    }

    fn report<'a>(&'a self, plan: &'a Plan) -> report::Run<'a> {
        report::Run {
            plan,
            machine: &self.machine,
            command: &self.command,
            date: &self.date,
            measurements: &self.measurements,
        }
    }
}

/// What every peer's configuration is made from, written in `dir`.
fn setup(
    dir: &Path,
    guichet: PathBuf,
    plan: &Plan,
    guichet_workers: Option<u32>,
) -> anyhow::Result<Setup> {
    Ok(Setup {
        dir: dir.to_path_buf(),
        certs: pki::create(dir)?,
        guichet,
        haproxy: find_program("haproxy"),
        stunnel: find_program("stunnel4").or_else(|| find_program("stunnel")),
        nginx: find_program("nginx"),
        caddy: find_program("caddy"),
        max_connections: plan.idle_conns,
        guichet_workers,
    })
}

/// The sizes of the run, from the arguments and the descriptor limit.
fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let (seconds, warmup, rounds, idle, drain) = if args.quick {
        (1.5, 0.5, 1, 1000, 10_000)
    } else {
        (5.0, 1.0, 3, 10_000, 100_000)
    };
    let seconds = args.seconds.unwrap_or(seconds);
    let warmup = args.warmup.unwrap_or(warmup);
    if seconds <= 0.0 || warmup < 0.0 {
        bail!("--seconds must be positive and --warmup not negative");
    }
    Ok(Plan {
        warmup: Duration::from_secs_f64(warmup),
        measured: Duration::from_secs_f64(seconds),
        many_conns: args.conns.max(1),
        handshake_senders: args.handshake_senders.max(1),
        idle_conns: capped_idle(args.idle_conns.unwrap_or(idle)),
        http_conns: args.http_conns.max(1),
        http_access_log: args.http_access_log,
        drain_messages: args.drain_messages.unwrap_or(drain).max(1),
        document_units: validate::UNITS,
        rounds: args.rounds.unwrap_or(rounds).max(1),
        peers: selected(&args.peers, &Peer::ALL, peer),
        scenarios: selected_scenarios(&args.scenarios),
        exe: std::env::current_exe().context("cannot find the benchmark's own binary")?,
    })
}

fn selected<A: Copy, T: Copy>(chosen: &[A], all: &[T], map: fn(A) -> T) -> Vec<T> {
    if chosen.is_empty() {
        all.to_vec()
    } else {
        chosen.iter().copied().map(map).collect()
    }
}

/// The scenarios chosen, in the order given, each once.
fn selected_scenarios(chosen: &[ScenarioArg]) -> Vec<Scenario> {
    if chosen.is_empty() {
        return Scenario::ALL.to_vec();
    }
    let mut scenarios = Vec::new();
    for s in chosen.iter().flat_map(|&arg| scenario(arg)) {
        if !scenarios.contains(&s) {
            scenarios.push(s);
        }
    }
    scenarios
}

fn peer(arg: PeerArg) -> Peer {
    match arg {
        PeerArg::Guichet => Peer::Guichet,
        PeerArg::Haproxy => Peer::Haproxy,
        PeerArg::Stunnel => Peer::Stunnel,
        PeerArg::Direct => Peer::Direct,
        PeerArg::Nginx => Peer::Nginx,
        PeerArg::Caddy => Peer::Caddy,
    }
}

fn scenario(arg: ScenarioArg) -> Vec<Scenario> {
    let one = match arg {
        ScenarioArg::One => Scenario::OneConnection,
        ScenarioArg::Many => Scenario::ManyConnections,
        ScenarioArg::Handshake => Scenario::HandshakePerMessage,
        ScenarioArg::Idle => Scenario::Idle,
        ScenarioArg::Journal => return Scenario::JOURNAL.to_vec(),
        ScenarioArg::PassthroughOne => Scenario::PassthroughOne,
        ScenarioArg::PassthroughMany => Scenario::PassthroughMany,
        ScenarioArg::SfSqlite => Scenario::StoreAndForward(Store::Sqlite),
        ScenarioArg::SfPostgres => Scenario::StoreAndForward(Store::Postgres),
        ScenarioArg::DrainSqlite => Scenario::Drain(Store::Sqlite),
        ScenarioArg::DrainPostgres => Scenario::Drain(Store::Postgres),
        ScenarioArg::Http => return Scenario::HTTP.to_vec(),
        ScenarioArg::HttpOne => Scenario::HttpOne,
        ScenarioArg::HttpMany => Scenario::HttpMany,
        ScenarioArg::HttpHandshake => Scenario::HttpHandshake,
    };
    vec![one]
}

/// Every gateway holds two descriptors per proxied connection, and
/// stunnel admits 125/256 of its descriptor limit as clients: the idle
/// count must fit both under the hard limit children inherit.
fn capped_idle(wanted: u32) -> u32 {
    let Some(hard) = procfs::nofile_hard_limit() else {
        return wanted;
    };
    let cap = (hard.saturating_mul(125) / 256).saturating_sub(50) / 100 * 100;
    let cap = u32::try_from(cap).unwrap_or(u32::MAX);
    if wanted > cap {
        eprintln!(
            "idle connections capped at {cap} (not {wanted}): the hard limit on open files is {hard} \
             and cannot be raised here (each gateway needs two descriptors per connection)"
        );
    }
    wanted.min(cap).max(1)
}

/// Every (scenario, peer), one after the other; Ctrl-C or SIGTERM stops
/// the run and, by dropping it, every process it started.
fn measure_all(plan: &Plan, setup: &Setup) -> anyhow::Result<Vec<Measurement>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            measurements = measure_each(plan, setup) => Ok(measurements),
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = terminate.recv() => bail!("terminated"),
        }
    })
}

/// Rounds of one scenario interleave the peers, each round in a rotated
/// order, so a slow patch of the machine does not fall on one peer. The
/// store-and-forward scenarios, compared with one another rather than
/// with peers, interleave with each other the same way: round 1 of each,
/// then round 2 of each...; so do the validating rule and its baseline.
async fn measure_each(plan: &Plan, setup: &Setup) -> Vec<Measurement> {
    let groups: [fn(Scenario) -> bool; 2] = [Scenario::is_journal, Scenario::is_validating];
    let mut measurements = Vec::new();
    let alone = plan
        .scenarios
        .iter()
        .filter(|&&s| !groups.iter().any(|g| g(s)));
    for &scenario in alone {
        measurements.extend(measure_rounds(plan, setup, &[scenario]).await);
    }
    for group in groups {
        let scenarios: Vec<Scenario> = plan
            .scenarios
            .iter()
            .copied()
            .filter(|&s| group(s))
            .collect();
        measurements.extend(measure_rounds(plan, setup, &scenarios).await);
    }
    measurements
}

/// Every round of `scenarios` on the peers each runs on, interleaved.
async fn measure_rounds(plan: &Plan, setup: &Setup, scenarios: &[Scenario]) -> Vec<Measurement> {
    let rounds = match scenarios {
        [Scenario::Idle] => 1,
        _ => plan.rounds,
    };
    let runs: Vec<(Scenario, Vec<Peer>)> = scenarios
        .iter()
        .map(|&s| {
            (
                s,
                plan.peers
                    .iter()
                    .copied()
                    .filter(|&p| s.runs_on(p))
                    .collect(),
            )
        })
        .collect();
    let mut outcomes: Vec<Vec<Vec<Outcome>>> = runs
        .iter()
        .map(|(_, peers)| peers.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds as usize {
        for ((scenario, peers), outcomes) in runs.iter().zip(&mut outcomes) {
            for i in 0..peers.len() {
                let at = (i + round) % peers.len();
                let peer = peers[at];
                eprint!(
                    "{} / {peer} (round {}/{rounds}): ",
                    scenario.label(plan),
                    round + 1
                );
                let outcome = scenario::measure(plan, setup, *scenario, peer).await;
                eprintln!("{}", summary(&outcome));
                outcomes[at].push(outcome);
            }
        }
    }
    let mut measurements = Vec::new();
    for ((scenario, peers), outcomes) in runs.into_iter().zip(outcomes) {
        for (peer, outcomes) in peers.into_iter().zip(outcomes) {
            measurements.push(Measurement {
                scenario,
                peer,
                outcome: scenario::combine(outcomes),
            });
        }
    }
    measurements
}

/// One line of progress.
fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Throughput(t) if t.http.is_some() => format!(
            "{} req/s, p50 {}, p99 {}, gateway CPU/req {}, {} errors, {} bad responses",
            report::rate(t.per_second()),
            report::quantile(&t.stats, 0.5),
            report::quantile(&t.stats, 0.99),
            report::latency_or_dash(t.cpu_per_message()),
            t.stats.errors,
            t.stats.mismatches,
        ),
        Outcome::Throughput(t) => format!(
            "{} msgs/s, p99 {}, {} errors, {} bad ACKs{}",
            report::rate(t.per_second()),
            report::quantile(&t.stats, 0.99),
            t.stats.errors,
            t.stats.mismatches,
            t.backlog
                .map_or(String::new(), |n| format!(", {n} not yet delivered"))
        ),
        Outcome::Idle(idle) => format!(
            "{:.1} KiB/conn for the pair, {} errors",
            idle.pair_per_conn(),
            idle.stats.errors
        ),
        Outcome::Drain(drain) => format!(
            "filled at {} msgs/s, then {} of {} delivered at {} msgs/s, {} duplicates",
            report::rate(drain.fill_per_second()),
            drain.count.messages,
            drain.expected,
            report::rate(drain.per_second()),
            drain.count.duplicates
        ),
        Outcome::Skipped(why) => format!("skipped: {why}"),
        Outcome::Failed(e) => format!("FAILED: {e}"),
    }
}

fn announce_missing(plan: &Plan, setup: &Setup) {
    for peer in &plan.peers {
        if !plan.scenarios.iter().any(|s| s.runs_on(*peer)) {
            continue;
        }
        if let Some(why) = peer.missing(setup) {
            eprintln!("{why}: skipping {peer}");
        }
    }
    let journal = plan.scenarios.iter().any(|s| s.is_journal());
    if journal && !plan.peers.contains(&Peer::Guichet) {
        eprintln!("the store-and-forward scenarios run on guichet only, which --peers leaves out");
    }
}

/// The guichet binary given, or else built.
fn guichet_binary(given: Option<&PathBuf>, workspace: &Path) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path.clone()),
        None => build_guichet(workspace),
    }
}

/// Builds the guichet binary next to this one's build and returns it.
fn build_guichet(workspace: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("building guichet: cargo build --release -p guichet");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "guichet"])
        .current_dir(workspace)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p guichet failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    Ok(target.join("release").join("guichet"))
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A program on PATH, or in the sbin directories root's PATH has.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// docs/BENCHMARKS.md for a full run; `--out` wins; nothing for a quick
/// or partial run.
fn report_path(args: &RunArgs, workspace: &Path) -> Option<PathBuf> {
    if let Some(out) = &args.out {
        return Some(out.clone());
    }
    let full = !args.quick
        && args.peers.is_empty()
        && args.scenarios.is_empty()
        && args.guichet_workers.is_none();
    full.then(|| workspace.join("docs").join("BENCHMARKS.md"))
}

/// Replaces the store-and-forward and/or HTTPS gateway section of the
/// existing report with this run's and keeps the rest; each section
/// carries its own date and command.
fn merge_report(run: &report::Run<'_>, args: &RunArgs, workspace: &Path) -> anyhow::Result<()> {
    let sections = run.own_sections();
    for (_, section) in &sections {
        println!("{section}");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace.join("docs").join("BENCHMARKS.md"));
    let existing = std::fs::read_to_string(&out).with_context(|| {
        format!(
            "cannot read {} to merge into (run the full benchmark first, or give --out)",
            out.display()
        )
    })?;
    let merged = sections.iter().fold(existing, |text, (heading, section)| {
        report::merge_section(&text, heading, section)
    });
    std::fs::write(&out, merged).with_context(|| format!("cannot write {}", out.display()))?;
    let names: Vec<&str> = sections
        .iter()
        .map(|(heading, _)| heading.trim_start_matches('#').trim())
        .collect();
    eprintln!("{} written to {}", names.join(" and "), out.display());
    Ok(())
}

/// `guichet-bench http-load`: the load generator's own process.
fn http_load(args: &HttpLoadArgs) -> anyhow::Result<()> {
    if args.seconds <= 0.0 || args.warmup < 0.0 {
        bail!("--seconds must be positive and --warmup not negative");
    }
    let spec = http::load::Spec {
        target: args.target,
        mode: args.mode,
        conns: args.conns.max(1),
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        body: args.body.clone(),
        start_at: args
            .start_at
            .unwrap_or_else(|| http::load::start_at(Duration::ZERO)),
        warmup: Duration::from_secs_f64(args.warmup),
        measured: Duration::from_secs_f64(args.seconds),
        report: args.report.clone(),
    };
    http::load::run(&spec)
}

/// The command as a person types it from the repository root.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p guichet-bench -- {}", args.join(" "))
}

fn now() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Non-zero when a measurement failed or a run was invalid.
fn exit_code(measurements: &[Measurement]) -> ExitCode {
    let bad = measurements.iter().any(|m| match &m.outcome {
        Outcome::Failed(_) => true,
        Outcome::Throughput(t) => !t.stats.is_valid(),
        Outcome::Idle(idle) => idle.stats.errors > 0 || idle.stats.mismatches > 0,
        Outcome::Drain(drain) => !drain.is_valid(),
        Outcome::Skipped(_) => false,
    });
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
