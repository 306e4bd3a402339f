//! The drop-folder route end to end, as a regional agency runs it: files
//! an establishment's connector drops in an inbox, judged, sent as PATCHes
//! to `guichet sim ror` (over mutual TLS with an access token, or plain),
//! and moved to `done/` or `rejected/` with their reports; bad files; the
//! ROR down; guichet killed with SIGKILL at random points.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use guichet_testsupport::wait::until_blocking;
use serde_json::Value;

use crate::common::{app, free_port, have, http_get, profile, run_bounded, show, Bench, Proc};

const ROUTE: &str = "ror-files";

/// Long enough for a file to be judged and delivered a few times over on
/// a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(30);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bed-availability")
}

/// A bench with `guichet sim ror` and the config of a folder route in
/// front of it.
struct Chain {
    bench: Bench,
    sim: Option<Proc>,
    sim_port: u16,
    admin: u16,
    tls: bool,
}

impl Chain {
    /// The simulator knows the units of `sim_units` (CSV rows); guichet's
    /// referential is `referential.csv`, written by the caller or the
    /// examples' one.
    fn new(tls: bool) -> Chain {
        let bench = Bench::new();
        if tls {
            bench.issue("ror.test", &["--server-only"]);
            bench.issue("guichet-ror", &["--client-only"]);
        }
        Chain {
            bench,
            sim: None,
            sim_port: free_port(),
            admin: free_port(),
            tls,
        }
    }

    /// Starts the simulator on its port with `referential` (a file of the
    /// bench); with TLS, it grants tokens to guichet's certificate only.
    fn start_sim(&mut self, referential: &str) {
        let listen = format!("127.0.0.1:{}", self.sim_port);
        let mut args = vec!["sim", "ror", "--listen", &listen];
        args.extend(["--referential", referential, "--record", "record.jsonl"]);
        let tls = [
            "--tls-cert",
            "pki/ror.test.pem",
            "--tls-key",
            "pki/ror.test.key",
            "--tls-ca",
            "pki/ca.pem",
            "--token-client",
            "guichet-ror",
        ];
        if self.tls {
            args.extend(tls);
        }
        let (proc, _) = self.bench.serve(&args);
        self.sim = Some(proc);
    }

    /// The config: the journal, the admin listener and the folder route,
    /// with `extra` lines added to the route.
    fn config(&self, extra: &str) -> String {
        let port = self.sim_port;
        let upstream = if self.tls {
            format!(
                "upstream = \"https://127.0.0.1:{port}/\"\nupstream_tls = \"ror\"\nserver_name = \"ror.test\"\ntoken_url = \"https://127.0.0.1:{port}/token\"\n"
            )
        } else {
            format!("upstream = \"http://127.0.0.1:{port}/\"\n")
        };
        let tls = if self.tls {
            profile("ror", &self.bench, Some("guichet-ror"), true)
        } else {
            String::new()
        };
        let settle = match extra.contains("settle_time") {
            true => "",
            false => "settle_time = \"200ms\"\n",
        };
        format!(
            "[journal]\nstore = \"journal.db\"\n\n[admin]\nlisten = \"127.0.0.1:{}\"\n\n{tls}\n[[route]]\nname = \"{ROUTE}\"\nkind = \"folder\"\ninbox = \"drop/inbox\"\n{upstream}validate = \"bed-availability\"\nreferential = \"referential.csv\"\nconvert = \"patch\"\npoll_interval = \"100ms\"\n{settle}retry_initial = \"200ms\"\nretry_max = \"1s\"\n{extra}",
            self.admin
        )
    }

    /// Starts `guichet run` and waits for its admin listener.
    fn start_gateway(&self, extra: &str) -> Proc {
        self.start_with(&self.config(extra))
    }

    fn start_with(&self, config: &str) -> Proc {
        let proc = self.bench.run("guichet.toml", config);
        proc.wait_line("the folder route", |l| {
            l.contains("folder route watching its inbox")
        });
        crate::common::wait_http(
            self.admin,
            "/api/status",
            "the admin listener",
            |code, _| code == 200,
        );
        proc
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.bench.path(&format!("drop/{name}"))
    }

    /// Drops `bytes` as `name` the way a connector does: written under a
    /// temporary name, then renamed.
    fn drop_file(&self, name: &str, bytes: &[u8]) {
        let inbox = self.folder("inbox");
        let temporary = inbox.join(format!(".{name}.part"));
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, inbox.join(name)).unwrap();
    }

    /// The files of `done/` or `rejected/` (not their reports), by the
    /// name they were dropped under.
    fn finished(&self, folder: &str) -> BTreeMap<String, Value> {
        let mut files = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.folder(folder)) else {
            return files;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stored) = name.strip_suffix(".report.json") {
                let report: Value =
                    serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
                assert!(
                    self.folder(folder).join(stored).symlink_metadata().is_ok(),
                    "{stored}: a report without its file"
                );
                files.insert(report["file"].as_str().unwrap().to_string(), report);
            }
        }
        files
    }

    /// Waits until `n` files are finished; returns done/ and rejected/.
    fn wait_finished(&self, n: usize) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
        until_blocking(
            SETTLE,
            "files finished",
            || (self.finished("done"), self.finished("rejected")),
            |(done, rejected)| done.len() + rejected.len() >= n,
        )
    }

    /// The simulator's record: one JSON line per operation it applied.
    fn record(&self) -> Vec<Value> {
        record_in(&self.bench, "record.jsonl")
    }

    fn status(&self) -> Value {
        let (code, body) = http_get(self.admin, "/api/status").unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").unwrap().1
    }
}

/// The validating rule of an `http` route, `convert = "patch"`: what an
/// establishment POSTs to guichet goes to the ROR record by record, over
/// mutual TLS with an access token; the answer is the ROR's, as a FHIR
/// batch-response. A ROR that forgot its tokens (restarted) answers 401:
/// guichet asks for a new token and sends again, once.
#[test]
fn a_validating_rule_sends_documents_to_the_ror_as_patches_with_a_token() {
    if !have("curl") {
        return;
    }
    let mut chain = Chain::new(true);
    std::fs::copy(
        examples().join("referential.csv"),
        chain.bench.path("referential.csv"),
    )
    .unwrap();
    chain.bench.issue("gw", &["--server-only"]);
    chain.bench.issue("etab-35", &["--client-only"]);
    chain.start_sim("referential.csv");
    let port = chain.sim_port;
    let http = format!(
        "{}{}[[route]]\nname = \"api\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\n\n[[route.rule]]\nname = \"dispo\"\npath = \"/dispo\"\nupstream = \"https://127.0.0.1:{port}/\"\nupstream_tls = \"ror\"\nserver_name = \"ror.test\"\ntoken_url = \"https://127.0.0.1:{port}/token\"\nallow = [\"etab-35\"]\nvalidate = \"bed-availability\"\nreferential = \"referential.csv\"\nconvert = \"patch\"\n",
        profile("gw", &chain.bench, Some("gw"), true),
        app("etab-35", "etab-35"),
    );
    let config = chain
        .config("")
        .replacen("[[route]]", &format!("{http}\n[[route]]"), 1);
    let guichet = chain.start_with(&config);
    let api = guichet.route_port("api");
    let post = |chain: &Chain, file: &str| curl_post(&chain.bench, api, &examples().join(file));

    let (status, answer) = post(&chain, "valid/chu-rennes-ssr.xml");
    assert_eq!(status, 200, "{answer:#}\n{}", guichet.log());
    assert_eq!(answer["type"], "batch-response");
    let statuses: Vec<&str> = answer["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    // Each record: replace (404, the ROR holds none yet), then add.
    assert_eq!(
        statuses,
        [
            "404 Not Found",
            "200 OK",
            "404 Not Found",
            "200 OK",
            "404 Not Found",
            "200 OK"
        ]
    );
    let applied = chain.record().len();
    assert_eq!(applied, 3);

    let (status, answer) = post(&chain, "invalid/negative-beds.xml");
    assert_eq!(status, 422, "{answer:#}");
    assert_eq!(
        chain.record().len(),
        applied,
        "an invalid document reached the ROR"
    );

    // The ROR restarts: its tokens are gone, guichet's is refused once.
    let mut sim = chain.sim.take().unwrap();
    sim.signal("KILL");
    sim.wait_exit(Duration::from_secs(10));
    chain.start_sim("referential.csv");
    let (status, answer) = post(&chain, "valid/chu-rennes-ssr.xml");
    assert_eq!(status, 200, "{answer:#}\n{}", guichet.log());
    assert_eq!(chain.record().len(), applied + 3);
}

/// curl POSTs `file` to guichet's `/dispo` as etab-35: the status and the
/// JSON answer.
fn curl_post(bench: &Bench, port: u16, file: &Path) -> (u16, Value) {
    curl_post_to(bench, "gw", port, "etab-35", file)
}

/// curl POSTs `file` to `https://HOST:PORT/dispo` (HOST resolved to
/// 127.0.0.1) with the certificate `client`: the status and the JSON
/// answer.
fn curl_post_to(bench: &Bench, host: &str, port: u16, client: &str, file: &Path) -> (u16, Value) {
    let mut cmd = std::process::Command::new("curl");
    cmd.current_dir(bench.dir.path())
        .args(["-sS", "--max-time", "30", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["--cacert", "pki/ca.pem", "--cert"])
        .arg(format!("pki/{client}.pem"))
        .arg("--key")
        .arg(format!("pki/{client}.key"))
        .args(["-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/xml", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("https://{host}:{port}/dispo"));
    let out = run_bounded(cmd, Duration::from_secs(40));
    assert!(out.status.success(), "curl failed:\n{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// The lines of a record file of `guichet sim ror`.
fn record_in(bench: &Bench, file: &str) -> Vec<Value> {
    std::fs::read_to_string(bench.path(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A document of one unit and one capacity record of `beds` beds.
fn document(unit: &str, beds: i64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bedAvailability xmlns="urn:guichet:bed-availability:1" id="{unit}-1" time="2026-12-05T10:00:00+01:00">
  <establishment finessEg="350054680"/>
  <unit id="{unit}">
    <capacity>
      <capacityType>01</capacityType>
      <capacityStatus>02</capacityStatus>
      <temporalityCapacity>01</temporalityCapacity>
      <nbCapacity>{beds}</nbCapacity>
      <capacitySourceType>02</capacitySourceType>
      <capacityUpdateDate>2026-12-05T09:58:00+01:00</capacityUpdateDate>
      <temporaryAssignement>01</temporaryAssignement>
    </capacity>
  </unit>
</bedAvailability>
"#
    )
}

/// A referential of establishment 350054680 with `units`.
fn referential(units: &[&str]) -> String {
    let mut csv = String::from("finess_eg,unit_id,label\n");
    for unit in units {
        csv.push_str(&format!("350054680,{unit},Unité {unit}\n"));
    }
    csv
}

fn example(rel: &str) -> Vec<u8> {
    std::fs::read(examples().join(rel)).unwrap()
}

/// The whole chain: valid files (XML and FHIR) reach the simulator as
/// PATCHes over mutual TLS with an access token; invalid ones are
/// rejected with their violations and never sent; a file the ROR refuses
/// (a unit guichet's referential has but the ROR's has not) is rejected
/// with the ROR's answer; the status page and /metrics count them.
#[test]
fn files_reach_the_ror_over_mutual_tls_or_are_rejected_with_their_reason() {
    let mut chain = Chain::new(true);
    std::fs::copy(
        examples().join("referential.csv"),
        chain.bench.path("ror-referential.csv"),
    )
    .unwrap();
    let mut ours = std::fs::read_to_string(examples().join("referential.csv")).unwrap();
    ours.push_str("350054680,NOT-AT-ROR,Unité inconnue du ROR\n");
    chain.bench.write("referential.csv", &ours);
    chain.start_sim("ror-referential.csv");
    let _guichet = chain.start_gateway("");

    chain.drop_file("chu-rennes.xml", &example("valid/chu-rennes-ssr.xml"));
    chain.drop_file(
        "chu-rennes.fhir.json",
        &example("valid/chu-rennes-ssr.fhir.json"),
    );
    chain.drop_file("finess-key.xml", &example("invalid/finess-key.xml"));
    chain.drop_file("negative-beds.xml", &example("invalid/negative-beds.xml"));
    chain.drop_file("unknown-unit.json", &example("invalid/unknown-unit.json"));
    chain.drop_file("not-at-ror.xml", document("NOT-AT-ROR", 3).as_bytes());
    let (done, rejected) = chain.wait_finished(6);

    let names: Vec<&str> = done.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["chu-rennes.fhir.json", "chu-rennes.xml"],
        "{rejected:#?}"
    );
    for report in done.values() {
        assert_eq!(report["reason"], "delivered");
        assert_eq!(report["delivery"]["status"], 200, "{report:#}");
        let ops: Vec<&str> = report["delivery"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["op"].as_str().unwrap())
            .collect();
        assert!(ops.contains(&"replace"), "{report:#}");
    }
    let codes = |name: &str| -> Vec<String> {
        rejected[name]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["severity"] == "error")
            .map(|v| v["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(codes("finess-key.xml"), ["finess.key"]);
    assert_eq!(codes("negative-beds.xml"), ["capacity.negative"]);
    assert_eq!(codes("unknown-unit.json"), ["unit.unknown"]);
    for name in ["finess-key.xml", "negative-beds.xml", "unknown-unit.json"] {
        assert_eq!(rejected[name]["reason"], "invalid");
        assert!(rejected[name]["delivery"].is_null(), "sent: {name}");
    }
    let refused = &rejected["not-at-ror.xml"];
    assert_eq!(refused["reason"], "refused", "{refused:#}");
    assert_eq!(refused["delivery"]["status"], 404, "{refused:#}");

    // Only the valid files' records reached the ROR: its units, no other.
    let record = chain.record();
    assert!(!record.is_empty());
    for line in &record {
        let unit = line["unit"].as_str().unwrap();
        assert!(
            ["1350054680/SSR38888", "1350054680/REA-1"].contains(&unit),
            "{line}"
        );
    }
    let status = chain.status();
    let folder = &status["folders"][0];
    assert_eq!(folder["name"], ROUTE);
    assert_eq!(folder["convert"], "patch");
    assert_eq!(folder["files"]["done"], 2, "{folder:#}");
    assert_eq!(folder["files"]["rejected"], 4, "{folder:#}");
    let (_, page) = http_get(chain.admin, "/status").unwrap();
    assert!(page.contains("<h2>Drop folders</h2>"), "{page}");
    assert!(page.contains("bed-availability, sent as patch"), "{page}");
    let metrics = chain.metrics();
    for line in [
        "guichet_folder_files_total{route=\"ror-files\",outcome=\"done\",reason=\"delivered\"} 2",
        "guichet_folder_files_total{route=\"ror-files\",outcome=\"rejected\",reason=\"invalid\"} 3",
        "guichet_folder_files_total{route=\"ror-files\",outcome=\"rejected\",reason=\"refused\"} 1",
        "guichet_folder_violations_total{route=\"ror-files\",code=\"capacity.negative\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    assert!(
        std::fs::read_dir(chain.folder("inbox/.guichet"))
            .unwrap()
            .next()
            .is_none(),
        "files left in the work folder"
    );

    // The unit is attached in the ROR; an operator sends the refused file
    // again: it moves from rejected/ to done/.
    std::fs::copy(
        chain.bench.path("referential.csv"),
        chain.bench.path("ror-referential.csv"),
    )
    .unwrap();
    let mut sim = chain.sim.take().unwrap();
    sim.signal("KILL");
    sim.wait_exit(Duration::from_secs(10));
    chain.start_sim("ror-referential.csv");
    chain
        .bench
        .ok(&["journal", "-c", "guichet.toml", "replay", "--route", ROUTE]);
    let done = until_blocking(
        SETTLE,
        "the replayed file in done/",
        || chain.finished("done"),
        |done| done.contains_key("not-at-ror.xml"),
    );
    assert_eq!(done["not-at-ror.xml"]["reason"], "delivered");
    assert!(!chain.finished("rejected").contains_key("not-at-ror.xml"));
}

/// A link, a 1 GB file, odd names, a file still being written, an
/// unreadable file: each ends in `rejected/` (or `done/`) with its reason,
/// nothing is lost, and what a writer has not renamed yet is left alone.
#[test]
fn bad_files_are_rejected_with_their_reason_and_nothing_is_lost() {
    let mut chain = Chain::new(false);
    chain
        .bench
        .write("referential.csv", &referential(&["U1", "U2", "U3"]));
    chain.start_sim("referential.csv");
    let guichet = chain.start_gateway("max_file_bytes = 1048576\nsettle_time = \"600ms\"\n");

    let inbox = chain.folder("inbox");
    std::os::unix::fs::symlink(
        examples().join("valid/chu-rennes-ssr.xml"),
        inbox.join("link.xml"),
    )
    .unwrap();
    // Sparse: a 1 GB file that takes no room, refused unread.
    let huge = std::fs::File::create(inbox.join("huge.xml")).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);
    chain.drop_file("lits dispo #2 été.xml", document("U2", 4).as_bytes());
    chain.drop_file("broken.xml", b"<bedAvailability><unit");
    let unreadable = inbox.join("unreadable.xml");
    std::fs::write(&unreadable, document("U3", 5)).unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::write(inbox.join("writing.xml.tmp"), "not yet").unwrap();
    std::fs::write(inbox.join(".hidden.xml"), "not yet").unwrap();
    std::fs::create_dir(inbox.join("a-folder")).unwrap();

    // A file written in place, a piece every 100 ms for 1.5 s: not taken
    // before it is still for settle_time.
    let growing = inbox.join("growing.xml");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&growing).unwrap();
        let text = document("U1", 7);
        let pieces: Vec<&[u8]> = text.as_bytes().chunks(text.len() / 15 + 1).collect();
        for piece in pieces {
            file.write_all(piece).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            assert!(growing.exists(), "taken while still being written");
        }
    }

    let (done, rejected) = chain.wait_finished(6);
    let reason = |name: &str| rejected.get(name).map(|r| r["reason"].clone());
    assert_eq!(reason("link.xml"), Some("link".into()), "{rejected:#?}");
    assert_eq!(reason("huge.xml"), Some("too_large".into()));
    assert_eq!(rejected["huge.xml"]["bytes"], 1u64 << 30);
    assert_eq!(reason("broken.xml"), Some("invalid".into()));
    assert_eq!(
        rejected["broken.xml"]["violations"][0]["code"],
        "xml.invalid"
    );
    assert!(done.contains_key("lits dispo #2 été.xml"), "{done:#?}");
    assert!(done.contains_key("growing.xml"), "{done:#?} {rejected:#?}");
    // Root reads a file of mode 000; anyone else gets it back rejected.
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if is_root {
        assert!(done.contains_key("unreadable.xml"), "{done:#?}");
    } else {
        assert_eq!(reason("unreadable.xml"), Some("unreadable".into()));
    }
    // The link was moved, never followed: its target is where it was.
    assert!(examples().join("valid/chu-rennes-ssr.xml").exists());
    let link = chain
        .folder("rejected")
        .join(rejected["link.xml"]["stored_as"].as_str().unwrap());
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    for left in ["writing.xml.tmp", ".hidden.xml", "a-folder"] {
        assert!(inbox.join(left).exists(), "{left} was taken");
    }
    let log = guichet.log();
    assert!(log.contains("reason=\"too_large\""), "{log}");
    assert!(
        !log.contains("nbCapacity"),
        "document content in the log:\n{log}"
    );
}

/// With the ROR down, valid files wait in the journal's queue (shown on
/// /api/status and /metrics) and are retried; once it is up they reach it,
/// in the order they were dropped.
#[test]
fn files_wait_for_an_unavailable_ror_and_reach_it_in_order() {
    let mut chain = Chain::new(false);
    chain.bench.write("referential.csv", &referential(&["U1"]));
    let _guichet = chain.start_gateway("");
    for (i, beds) in [3, 5, 8].iter().enumerate() {
        chain.drop_file(&format!("{i}.xml"), document("U1", *beds).as_bytes());
        std::thread::sleep(Duration::from_millis(300));
    }
    let queued = until_blocking(
        SETTLE,
        "the queue on /api/status",
        || chain.status()["folders"][0]["queue"].clone(),
        |queue| queue["depth"] == 3,
    );
    assert_eq!(queued["delivering_here"], true, "{queued}");
    until_blocking(
        SETTLE,
        "retries on /metrics",
        || chain.metrics(),
        |m| {
            m.contains("guichet_folder_retries_total{route=\"ror-files\"}")
                && m.contains("guichet_queue_depth{route=\"ror-files\"} 3")
        },
    );
    assert!(chain.finished("done").is_empty());

    chain.start_sim("referential.csv");
    let (done, rejected) = chain.wait_finished(3);
    assert_eq!(done.len(), 3, "{rejected:#?}");
    let beds: Vec<i64> = chain
        .record()
        .iter()
        .map(|line| {
            let capacity = line["capacity"]["extension"].as_array().unwrap();
            let count = capacity.iter().find(|e| e["url"] == "nbCapacity").unwrap();
            count["valueInteger"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(beds, [3, 5, 8], "not in the order dropped");
    assert!(done["0.xml"]["delivery"]["attempts"].as_u64().unwrap() > 1);
}

/// Eight connectors drop files while guichet is killed with SIGKILL at
/// random points and started again: every file ends in `done/`, and the
/// ROR applied each one once.
#[test]
fn no_file_is_lost_or_delivered_twice_when_guichet_is_killed() {
    const WRITERS: usize = 8;
    const FILES: usize = 12;
    let units: Vec<String> = (0..WRITERS * FILES).map(|i| format!("U{i:03}")).collect();
    let unit_refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let mut chain = Chain::new(false);
    chain
        .bench
        .write("referential.csv", &referential(&unit_refs));
    chain.start_sim("referential.csv");
    let config = chain.config("settle_time = \"50ms\"\n");
    let mut guichet = chain.start_gateway("settle_time = \"50ms\"\n");

    let inbox = chain.folder("inbox");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                for f in 0..FILES {
                    let unit = format!("U{:03}", w * FILES + f);
                    let temporary = inbox.join(format!("{unit}.xml.tmp"));
                    std::fs::write(&temporary, document(&unit, (w + f) as i64)).unwrap();
                    std::fs::rename(&temporary, inbox.join(format!("{unit}.xml"))).unwrap();
                    std::thread::sleep(Duration::from_millis(60 + random_below(120)));
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut kills = 0;
    while kills < 10 && started.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(50 + random_below(350)));
        guichet.signal("KILL");
        guichet.wait_exit(Duration::from_secs(10));
        kills += 1;
        guichet = chain.bench.run("guichet.toml", &config);
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let (done, rejected) = chain.wait_finished(units.len());
    assert!(rejected.is_empty(), "{rejected:#?}");
    assert_eq!(done.len(), units.len());
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for line in chain.record() {
        *applied
            .entry(line["unit"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    assert_eq!(applied.len(), units.len(), "{applied:?}");
    let log = guichet.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// A number in `0..n`, from the clock: the kill points differ each run.
fn random_below(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) % n
}

/// `examples/bed-availability` as its README runs it (on free ports): the
/// certificates it issues, `guichet sim ror` with its options, `guichet
/// run` with its guichet.toml; a file dropped ends in done/, an invalid
/// one in rejected/, and a POST to the API reaches the ROR.
#[test]
fn the_example_runs_as_its_readme_says() {
    if !have("curl") {
        return;
    }
    let bench = Bench::new();
    for rel in ["referential.csv", "rules.toml"] {
        std::fs::copy(examples().join(rel), bench.path(rel)).unwrap();
    }
    bench.issue("ror-sim", &["--ip", "127.0.0.1", "--server-only"]);
    bench.issue("guichet-ror", &["--client-only"]);
    bench.issue("localhost", &["--server-only"]);
    bench.issue("chu-rennes", &["--client-only"]);
    let (ror, api, admin) = (free_port(), free_port(), free_port());
    let config = std::fs::read_to_string(examples().join("guichet.toml"))
        .unwrap()
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{ror}"))
        .replace("127.0.0.1:8444", &format!("127.0.0.1:{api}"))
        .replace("127.0.0.1:9010", &format!("127.0.0.1:{admin}"));
    let listen = format!("127.0.0.1:{ror}");
    let (_sim, _) = bench.serve(&[
        "sim",
        "ror",
        "--listen",
        &listen,
        "--referential",
        "referential.csv",
        "--tls-cert",
        "pki/ror-sim.pem",
        "--tls-key",
        "pki/ror-sim.key",
        "--tls-ca",
        "pki/ca.pem",
        "--token-client",
        "guichet-ror",
        "--record",
        "ror.jsonl",
    ]);
    let guichet = bench.run("guichet.toml", &config);
    guichet.wait_line("the folder route", |l| {
        l.contains("folder route watching its inbox")
    });
    guichet.route_port("ror-api");
    let inbox = bench.path("drop/inbox");
    std::fs::copy(
        examples().join("valid/chu-rennes-ssr.xml"),
        inbox.join(".dispo.tmp"),
    )
    .unwrap();
    std::fs::rename(inbox.join(".dispo.tmp"), inbox.join("dispo.xml")).unwrap();
    std::fs::copy(
        examples().join("invalid/negative-beds.xml"),
        inbox.join("negative-beds.xml"),
    )
    .unwrap();
    let chain = Chain {
        bench,
        sim: None,
        sim_port: ror,
        admin,
        tls: true,
    };
    let (done, rejected) = chain.wait_finished(2);
    assert!(
        done.contains_key("dispo.xml"),
        "{done:#?}\n{}",
        guichet.log()
    );
    assert!(rejected.contains_key("negative-beds.xml"), "{rejected:#?}");
    let applied = record_in(&chain.bench, "ror.jsonl").len();
    assert_eq!(applied, 3);
    let (status, answer) = curl_post_to(
        &chain.bench,
        "localhost",
        api,
        "chu-rennes",
        &examples().join("valid/chu-rennes-ssr.xml"),
    );
    assert_eq!(status, 200, "{answer:#}\n{}", guichet.log());
    assert_eq!(record_in(&chain.bench, "ror.jsonl").len(), applied + 3);
}
