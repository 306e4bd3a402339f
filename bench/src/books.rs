//! `guichet-bench books`: a test book of bed-availability cases, each a
//! valid document for its own unit, run by `guichet test compare` against
//! two validating HTTPS gateways (mutual TLS), each in front of its own
//! `guichet sim ror --record`, and by `guichet test run` against one of
//! them. What is measured is the runner: its wall time from start to exit
//! and its peak resident memory (VmHWM, sampled from /proc while it runs),
//! the median of several rounds, each against fresh RORs and gateways (a
//! ROR keeps what it was sent); the section "Test books" of
//! docs/BENCHMARKS.md.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::children::{free_port, Child};
use crate::peers::{p, write_config};
use crate::pki::Certs;
use crate::{procfs, validate};

/// The section's heading in docs/BENCHMARKS.md.
pub const HEADING: &str = "## Test books\n";

/// The runner's longest wall time for the comparison, and its most
/// resident memory, that the product promises.
const WALL_TARGET: Duration = Duration::from_secs(10);
const PEAK_TARGET_KIB: u64 = 20 * 1024;

/// How long a sim ror or a gateway may take to listen.
const START: Duration = Duration::from_secs(10);

/// What a run measures.
pub struct Plan {
    pub cases: usize,
    pub rounds: usize,
    /// The book's `concurrency`; the runner's default when absent.
    pub concurrency: Option<usize>,
}

/// One run of the runner.
#[derive(Debug, Clone, Copy)]
struct Round {
    wall: Duration,
    peak_kib: u64,
}

/// What every round shares: the folder, certificates, referential and
/// book.
struct Bench<'a> {
    guichet: &'a Path,
    dir: PathBuf,
    certs: Certs,
    referential: PathBuf,
    book: PathBuf,
    /// The ROR operations the book's cases cause on one target.
    operations: usize,
}

/// One engine under test: a sim ror and the gateway in front of it,
/// stopped when dropped.
struct Engine {
    url: String,
    record: PathBuf,
    _ror: Child,
    _gateway: Child,
}

/// Writes the book, runs the rounds, returns the report section.
pub fn run(guichet: &Path, plan: &Plan, date: &str) -> anyhow::Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-books-")
        .tempdir()?;
    let bench = Bench::new(guichet, dir.path(), plan)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut compared, mut alone) = (Vec::new(), Vec::new());
    for round in 1..=plan.rounds {
        let old = runtime.block_on(bench.engine(&format!("old-{round}")))?;
        let new = runtime.block_on(bench.engine(&format!("new-{round}")))?;
        compared.push(bench.compare(&old, &new, round)?);
        drop((old, new));
        let only = runtime.block_on(bench.engine(&format!("only-{round}")))?;
        alone.push(bench.run_one(&only, round)?);
        for (what, r) in [("compare", compared[round - 1]), ("run", alone[round - 1])] {
            eprintln!(
                "round {round}/{}: test {what}: {:.2} s, peak {}",
                plan.rounds,
                r.wall.as_secs_f64(),
                mib(r.peak_kib)
            );
        }
    }
    Ok(section(plan, &compared, &alone, date))
}

impl Bench<'_> {
    /// Certificates, the referential of the book's units, and the book.
    fn new<'a>(guichet: &'a Path, dir: &Path, plan: &Plan) -> anyhow::Result<Bench<'a>> {
        let referential = dir.join("referential.csv");
        std::fs::write(&referential, validate::referential_csv(plan.cases))?;
        let book = dir.join("book");
        let operations = write_book(&book, plan)?;
        Ok(Bench {
            guichet,
            dir: dir.to_path_buf(),
            certs: crate::pki::create(dir)?,
            referential,
            book,
            operations,
        })
    }

    /// A fresh sim ror, and a gateway in front of it, both listening.
    async fn engine(&self, name: &str) -> anyhow::Result<Engine> {
        let (ror_port, api_port) = (free_port()?, free_port()?);
        let ror_addr = format!("127.0.0.1:{ror_port}");
        let record = self.dir.join(format!("{name}-ror.jsonl"));
        let (referential, recorded) = (p(&self.referential), p(&record));
        let mut ror = Child::spawn(
            &format!("sim ror {name}"),
            self.guichet,
            &[
                "sim",
                "ror",
                "--listen",
                &ror_addr,
                "--referential",
                &referential,
                "--record",
                &recorded,
            ],
            &[("RUST_LOG", "warn")],
            &self.dir.join(format!("{name}-ror.log")),
        )?;
        let config = write_config(
            &self.dir,
            &format!("{name}.toml"),
            &self.gateway_config(name, ror_port, api_port),
        )?;
        let mut gateway = Child::spawn(
            &format!("gateway {name}"),
            self.guichet,
            &["run", "-c", &config],
            &[("RUST_LOG", "warn")],
            &self.dir.join(format!("{name}.log")),
        )?;
        ror.wait_listening(ror_addr.parse()?, START).await?;
        let api = format!("127.0.0.1:{api_port}");
        gateway.wait_listening(api.parse()?, START).await?;
        Ok(Engine {
            url: format!("https://{api}/dispo"),
            record,
            _ror: ror,
            _gateway: gateway,
        })
    }

    /// One `http` route, mutual TLS, admitting the book's client, its rule
    /// validating each document and sending it to the ROR as a PATCH.
    fn gateway_config(&self, name: &str, ror_port: u16, api_port: u16) -> String {
        let certs = &self.certs;
        format!(
            r#"[gateway]
drain_timeout = "1s"

[tls.gateway]
cert = "{cert}"
key = "{key}"
ca = "{ca}"
crl = ["{crl}"]

[[app]]
name = "etab"
cn = "eai"
issuer_dn = "CN=guichet test CA"

[[route]]
name = "{name}-api"
kind = "http"
listen = "127.0.0.1:{api_port}"
listen_tls = "gateway"

[[route.rule]]
name = "dispo"
path = "/dispo"
upstream = "http://127.0.0.1:{ror_port}/"
allow = ["etab"]
validate = "bed-availability"
referential = "{referential}"
convert = "patch"
"#,
            cert = p(&certs.dpi.cert),
            key = p(&certs.dpi.key),
            ca = p(&certs.ca),
            crl = p(&certs.crl),
            referential = p(&self.referential),
        )
    }

    /// `guichet test compare` of the book, old against new; each ROR must
    /// have received every operation.
    fn compare(&self, old: &Engine, new: &Engine, round: usize) -> anyhow::Result<Round> {
        let mut args = vec!["test".to_owned(), "compare".to_owned(), p(&self.book)];
        for (side, engine) in [("old", old), ("new", new)] {
            args.extend([format!("--{side}"), engine.url.clone()]);
            args.extend([format!("--{side}-sink"), p(&engine.record)]);
        }
        let measured = self.measure(&args, &format!("compare-{round}"))?;
        for engine in [old, new] {
            engine.check(self.operations)?;
        }
        Ok(measured)
    }

    /// `guichet test run` of the book against one engine: every case must
    /// pass (its status and its ROR operations).
    fn run_one(&self, engine: &Engine, round: usize) -> anyhow::Result<Round> {
        let args = [
            "test".to_owned(),
            "run".to_owned(),
            p(&self.book),
            "--target".to_owned(),
            format!("only={}", engine.url),
            "--sink".to_owned(),
            format!("only={}", p(&engine.record)),
        ];
        let measured = self.measure(&args, &format!("run-{round}"))?;
        engine.check(self.operations)?;
        Ok(measured)
    }

    /// Runs `guichet ARGS --ca --cert --key`, which must succeed: its wall
    /// time, and its VmHWM read every 2 ms until it exits.
    fn measure(&self, args: &[String], name: &str) -> anyhow::Result<Round> {
        let log = self.dir.join(format!("{name}.log"));
        let certs = &self.certs;
        let started = Instant::now();
        let mut child = Command::new(self.guichet)
            .args(args)
            .arg("--ca")
            .arg(&certs.ca)
            .arg("--cert")
            .arg(&certs.eai.cert)
            .arg("--key")
            .arg(&certs.eai.key)
            .stdin(Stdio::null())
            .stdout(File::create(&log)?)
            .stderr(File::create(self.dir.join(format!("{name}.err")))?)
            .spawn()
            .with_context(|| format!("cannot run guichet {}", args[..2].join(" ")))?;
        let pid = child.id();
        let mut peak_kib = 0;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Ok(kib) = procfs::peak_rss_kib(pid) {
                peak_kib = peak_kib.max(kib);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let wall = started.elapsed();
        if !status.success() {
            let end = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = end.lines().rev().take(10).collect();
            bail!(
                "guichet {} failed ({status}); its output ends with:\n{}",
                args[..2].join(" "),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(Round { wall, peak_kib })
    }
}

impl Engine {
    /// The ROR recorded exactly `operations` operations.
    fn check(&self, operations: usize) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.record)
            .with_context(|| format!("cannot read {}", self.record.display()))?;
        let recorded = text.lines().count();
        if recorded != operations {
            bail!(
                "{} holds {recorded} operations, not {operations}",
                self.record.display()
            );
        }
        Ok(())
    }
}

/// `plan.cases` cases in `dir/cases`, each a document of the unit of its
/// number and its expectations beside it; the ROR operations they cause.
fn write_book(dir: &Path, plan: &Plan) -> anyhow::Result<usize> {
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases)?;
    let mut book = format!("name = \"{} bed-availability cases\"\n", plan.cases);
    if let Some(n) = plan.concurrency {
        let _ = writeln!(book, "concurrency = {n}");
    }
    std::fs::write(dir.join("book.toml"), book)?;
    let mut operations = 0;
    for i in 0..plan.cases {
        let (document, records) = validate::unit_document(i);
        std::fs::write(cases.join(format!("u{i:05}.xml")), document)?;
        let expect = format!("[expect]\nstatus = 200\ndownstream = {{ count = {records} }}\n");
        std::fs::write(cases.join(format!("u{i:05}.toml")), expect)?;
        operations += records;
    }
    Ok(operations)
}

/// The median, lowest and highest.
fn spread<T: Ord + Copy>(mut values: Vec<T>) -> (T, T, T) {
    values.sort();
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// A table row: the runner's command, wall and peak, median (range).
fn row(command: &str, targets: usize, rounds: &[Round]) -> (String, Duration, u64) {
    let (wall, wall_low, wall_high) = spread(rounds.iter().map(|r| r.wall).collect());
    let (peak, peak_low, peak_high) = spread(rounds.iter().map(|r| r.peak_kib).collect());
    let text = format!(
        "| `guichet test {command}` | {targets} | {:.2} s ({:.2}–{:.2}) | {} ({:.1}–{:.1}) |\n",
        wall.as_secs_f64(),
        wall_low.as_secs_f64(),
        wall_high.as_secs_f64(),
        mib(peak),
        peak_low as f64 / 1024.0,
        peak_high as f64 / 1024.0,
    );
    (text, wall, peak)
}

fn section(plan: &Plan, compared: &[Round], alone: &[Round], date: &str) -> String {
    let (compare_row, wall, peak) = row("compare", 2, compared);
    let (run_row, _, _) = row("run", 1, alone);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let concurrency = plan.concurrency.map_or_else(
        || "`concurrency` left at the runner's default".to_owned(),
        |n| format!("`concurrency = {n}`"),
    );
    let mut out = format!(
        "{HEADING}\n\
         A book of {cases} bed-availability cases, each a valid document in\n\
         guichet's XML for its own unit (one capacity record), expecting\n\
         `status = 200` and `downstream = {{ count = 1 }}`;\n\
         {concurrency}. Each target is a `guichet run` gateway, one `http` route\n\
         with TLS and a client certificate (mutual TLS, CRL checked), its rule\n\
         `validate = \"bed-availability\"` with a referential of the {cases} units\n\
         and `convert = \"patch\"`, in front of its own `guichet sim ror\n\
         --record`, whose record is the target's sink. `test compare` runs the\n\
         book against both targets (old, then new) and compares them; `test run`\n\
         against one, checking each case's expectations. Each round starts\n\
         fresh RORs and gateways; the runner must succeed and every ROR must\n\
         have recorded one operation per case. Wall: the runner's process from\n\
         start to exit (book read, every exchange, each case's ROR operations\n\
         read back from the sink). Peak: its VmHWM, read from /proc every 2 ms.\n\
         The median of {rounds} rounds, the lowest and highest in parentheses.\n\
         Measured {date}; {cores} cores, shared by the runner, the gateways and\n\
         the RORs.\n\n\
         | runner | targets | wall | peak resident |\n\
         |---|---:|---:|---:|\n\
         {compare_row}{run_row}\n",
        cases = plan.cases,
        rounds = plan.rounds,
    );
    let _ = write!(
        out,
        "### Targets (test books)\n\n\
         | target | measured | verdict |\n\
         |---|---|---|\n\
         | {cases} cases against two mTLS HTTP targets: under 10 s | {:.2} s | {} |\n\
         | the runner's resident memory: at most 20 MiB | {} | {} |\n\n\
         Reproduce: `cargo run --release -p guichet-bench -- books`.\n\n",
        wall.as_secs_f64(),
        verdict(plan.cases >= 1000 && wall < WALL_TARGET),
        mib(peak),
        verdict(peak <= PEAK_TARGET_KIB),
        cases = plan.cases,
    );
    out
}
