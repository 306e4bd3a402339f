//! `guichet test run`: books run against real engines (guichet routes,
//! an engine built on python-hl7) with real sinks downstream (`guichet
//! listen --record`, `guichet sim ror --record`), their reports read
//! back, and bad books refused.

use std::path::Path;
use std::process::{ChildStdin, Command, Output};

use serde_json::Value;

use crate::common::{app, have, profile, run_bounded, show, Bench, Proc, WAIT};

const ADT: &str = "MSH|^~\\&|EAI|CHU|DPI|CHU|20261205||ADT^{event}^ADT_A01|{id}|P|2.5\rPID|1||{ipp}^^^CHU^PI||DOE^JOHN\r";

fn adt(event: &str, id: &str, ipp: &str) -> String {
    ADT.replace("{event}", event)
        .replace("{id}", id)
        .replace("{ipp}", ipp)
}

/// A DPI (`guichet listen --record RECORD`) behind an `mllp` route of
/// `guichet run`: the engine a book runs against. Returns the processes
/// and the route's port.
fn mllp_engine(bench: &Bench, ack: &str, record: &str) -> (Proc, Proc, u16) {
    let (dpi, dpi_port) = bench.listen(&["--record", record, "--ack", ack]);
    let config = format!(
        "[[route]]\nname = \"eai\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{dpi_port}\"\n"
    );
    let engine = bench.run("guichet.toml", &config);
    let port = engine.route_port("eai");
    (dpi, engine, port)
}

fn write(bench: &Bench, rel: &str, text: &str) {
    let path = bench.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn test_run(bench: &Bench, args: &[&str]) -> Output {
    let mut cmd = Command::new(crate::common::guichet_bin());
    cmd.arg("test")
        .arg("run")
        .args(args)
        .current_dir(bench.dir.path());
    run_bounded(cmd, WAIT * 3)
}

fn json_report(bench: &Bench) -> Value {
    serde_json::from_slice(&std::fs::read(bench.path("report.json")).unwrap()).unwrap()
}

/// The counts a JUnit consumer reads: Python's XML parser over the
/// report (tests, failures, errors of the suite; the case names).
fn junit_counts(path: &Path) -> String {
    let script = "import sys, xml.etree.ElementTree as E\n\
        s = E.parse(sys.argv[1]).getroot().find('testsuite')\n\
        cases = s.findall('testcase')\n\
        print(s.get('tests'), s.get('failures'), s.get('errors'), len(cases), \
        sum(1 for c in cases if c.find('failure') is not None), \
        sum(1 for c in cases if c.find('error') is not None))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A book of HL7 cases (a file with its expectations, an inline case,
/// three cases from a template and a CSV) against an MLLP route: each
/// ACK and what reached the DPI are checked; JSON and JUnit reports.
#[test]
fn a_hl7_book_checks_acks_and_what_reached_the_dpi() {
    let bench = Bench::new();
    let (_dpi, _engine, port) = mllp_engine(&bench, "aa", "received.jsonl");
    write(
        &bench,
        "book/cases/a01.hl7",
        &adt("A01", "CASE-A01", "1001"),
    );
    write(
        &bench,
        "book/cases/a01.toml",
        "[expect]\nack = \"AA\"\nfields = { \"MSA-2\" = \"CASE-A01\" }\ndownstream = { count = 1, fields = { \"MSH-9.2\" = \"A01\", \"PID-3.1\" = \"1001\" } }\n",
    );
    write(
        &bench,
        "book/template.hl7",
        &adt("{{event}}", "ROW-{{event}}", "{{ipp}}"),
    );
    write(
        &bench,
        "book/rows.csv",
        "event,ipp\nA03,2003\nA08,2008\nA11,2011\n",
    );
    let book = format!(
        "name = \"ADT\"\nconcurrency = 3\n\n[targets.new]\nurl = \"mllp://127.0.0.1:{port}\"\nsink = \"../received.jsonl\"\n\n\
         [[case]]\nname = \"event {{{{event}}}}\"\ntemplate = \"template.hl7\"\ndata = \"rows.csv\"\n\
         expect = {{ ack = \"AA\", downstream = {{ count = 1, fields = {{ \"MSH-9.2\" = \"{{{{event}}}}\", \"PID-3.1\" = \"{{{{ipp}}}}\" }} }} }}\n"
    );
    write(&bench, "book/book.toml", &book);
    let out = test_run(
        &bench,
        &["book", "--json", "report.json", "--junit", "junit.xml"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 case(s): 4 passed"), "{stdout}");

    let report = json_report(&bench);
    assert_eq!(report["book"], "ADT");
    let names: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["event A03", "event A08", "event A11", "a01.hl7"]);
    let a01 = &report["cases"][3]["targets"]["new"];
    assert_eq!(a01["outcome"], "AA");
    assert_eq!(a01["downstream"].as_array().unwrap().len(), 1);
    if have("python3") {
        assert_eq!(junit_counts(&bench.path("junit.xml")), "4 0 0 4 0 0");
    }
}

/// A wrong expectation fails its case; a target that never answers, one
/// that refuses TLS and a sink that is down are errors against their
/// cases; the run goes on and exits 1, and the JUnit report says so.
#[test]
fn failures_and_errors_are_reported_per_case_and_the_run_goes_on() {
    let bench = Bench::new();
    let (_dpi, _engine, port) = mllp_engine(&bench, "aa", "received.jsonl");
    let (_mute, mute_port) = bench.listen(&["--ack", "none"]);
    // A TLS peer whose certificate another CA issued: refused at once.
    bench.ok(&["pki", "init", "--out", "other-ca"]);
    bench.ok(&[
        "pki",
        "issue",
        "--ca",
        "other-ca",
        "--name",
        "stranger",
        "--ip",
        "127.0.0.1",
    ]);
    let (_stranger, stranger_port) = bench.listen(&[
        "--tls-cert",
        "other-ca/stranger.pem",
        "--tls-key",
        "other-ca/stranger.key",
    ]);
    write(&bench, "book/a08.hl7", &adt("A08", "CASE-A08", "42"));
    let book = format!(
        "timeout = \"1s\"\n\n[targets.new]\nurl = \"mllp://127.0.0.1:{port}\"\n\
         [targets.mute]\nurl = \"mllp://127.0.0.1:{mute_port}\"\n\
         [targets.tls]\nurl = \"mllps://127.0.0.1:{stranger_port}\"\nca = \"../pki/ca.pem\"\n\
         [targets.nosink]\nurl = \"mllp://127.0.0.1:{port}\"\nsink = \"../nowhere.jsonl\"\n\n\
         [[case]]\nname = \"expects AE\"\nfile = \"a08.hl7\"\ntargets = [\"new\"]\nexpect = {{ ack = \"AE\" }}\n\n\
         [[case]]\nname = \"never answered\"\nfile = \"a08.hl7\"\ntargets = [\"mute\"]\nexpect = {{ ack = \"AA\" }}\n\n\
         [[case]]\nname = \"plain peer\"\nfile = \"a08.hl7\"\ntargets = [\"tls\"]\nexpect = {{ ack = \"AA\" }}\n\n\
         [[case]]\nname = \"sink down\"\nfile = \"a08.hl7\"\ntargets = [\"nosink\"]\nexpect = {{ ack = \"AA\", downstream = {{ count = 1 }} }}\n\n\
         [[case]]\nname = \"fine\"\nfile = \"a08.hl7\"\ntargets = [\"new\"]\nexpect = {{ ack = \"AA\" }}\n"
    );
    write(&bench, "book/book.toml", &book);
    let out = test_run(
        &bench,
        &["book", "--json", "report.json", "--junit", "junit.xml"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json_report(&bench);
    let case = |i: usize| report["cases"][i].clone();
    assert_eq!(case(0)["status"], "fail");
    assert_eq!(
        case(0)["targets"]["new"]["failures"][0],
        "ACK (MSA-1): expected AE, got AA"
    );
    let error = |i: usize, target: &str| {
        assert_eq!(case(i)["status"], "error", "{:#}", case(i));
        case(i)["targets"][target]["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(error(1, "mute").contains("no answer within 1s"));
    assert!(error(2, "tls").contains("TLS"));
    assert!(error(3, "nosink").contains("is the recording sink running?"));
    assert_eq!(case(4)["status"], "pass");
    if have("python3") {
        assert_eq!(junit_counts(&bench.path("junit.xml")), "5 1 3 5 1 3");
    }
}

/// A book that cannot be run says which file and why, and exits 2.
#[test]
fn a_bad_book_is_refused_with_the_file_and_the_reason() {
    let bench = Bench::new();
    let target = "[targets.new]\nurl = \"mllp://127.0.0.1:9\"\n";
    for (book, expected) in [
        (
            format!("{target}[[case]]\nfile = \"missing.hl7\"\n"),
            "missing.hl7: cannot be read",
        ),
        (
            format!("{target}[[case]]\nbody = \"MSH\"\ntargets = [\"old\"]\n"),
            "no target \"old\"",
        ),
        (
            format!("{target}[[case]]\ntemplate = \"t.hl7\"\ndata = \"rows.csv\"\n"),
            "no column \"ipp\"",
        ),
        (
            format!("{target}[[case]]\nbody = \"MSH\"\nexpect = {{ acks = \"AA\" }}\n"),
            "unknown field `acks`",
        ),
        (
            format!("{target}[[case]]\nbody = \"MSH\"\nexpect = {{ fields = {{ \"MSA1\" = \"AA\" }} }}\n"),
            "field \"MSA1\"",
        ),
    ] {
        write(&bench, "book/t.hl7", "MSH|^~\\&|{{event}}|{{ipp}}\r");
        write(&bench, "book/rows.csv", "event\nA01\n");
        write(&bench, "book/book.toml", &book);
        let out = test_run(&bench, &["book"]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    write(&bench, "book/book.toml", "[[case]]\nbody = \"MSH\"\n");
    let out = test_run(&bench, &["book"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target"));
}

/// A bed-availability book over mutual TLS against guichet's validating
/// rule in front of `guichet sim ror`, and against a drop folder: the
/// status, the verdict, the violations and the ROR operations each case
/// caused.
#[test]
fn a_bed_availability_book_checks_the_rule_the_folder_and_the_ror() {
    let (bench, examples) = ror_bench(&["--server-only"]);
    let (_ror, ror_port) = bench.serve(&[
        "sim",
        "ror",
        "--listen",
        "127.0.0.1:0",
        "--referential",
        "referential.csv",
        "--record",
        "ror.jsonl",
    ]);
    let config = format!(
        "[journal]\nstore = \"journal.db\"\n\n{}{}[[route]]\nname = \"api\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\n\n\
         [[route.rule]]\nname = \"dispo\"\npath = \"/dispo\"\nupstream = \"http://127.0.0.1:{ror_port}/\"\nallow = [\"etab\"]\n\
         validate = \"bed-availability\"\nreferential = \"referential.csv\"\nconvert = \"patch\"\n\n\
         [[route]]\nname = \"files\"\nkind = \"folder\"\ninbox = \"drop/inbox\"\nupstream = \"http://127.0.0.1:{ror_port}/\"\n\
         validate = \"bed-availability\"\nreferential = \"referential.csv\"\nconvert = \"patch\"\npoll_interval = \"100ms\"\nsettle_time = \"100ms\"\n",
        profile("gw", &bench, Some("gw"), true),
        app("etab", "etab"),
    );
    let engine = bench.run("guichet.toml", &config);
    let api = engine.route_port("api");
    engine.wait_line("the folder route", |l| {
        l.contains("folder route watching its inbox")
    });
    let valid = examples.join("valid/chu-rennes-ssr.xml");
    let invalid = examples.join("invalid/negative-beds.xml");
    let book = format!(
        "concurrency = 2\n\n[targets.api]\nurl = \"https://127.0.0.1:{api}/dispo\"\nserver_name = \"gw\"\n\
         ca = \"../pki/ca.pem\"\ncert = \"../pki/etab.pem\"\nkey = \"../pki/etab.key\"\nsink = \"../ror.jsonl\"\n\
         [targets.folder]\nurl = \"folder://../drop/inbox\"\nsink = \"../ror.jsonl\"\n\n\
         [[case]]\nname = \"valid\"\nfile = \"{}\"\nsequence = true\n\
         expect = {{ status = 200, valid = true, fields = {{ \"$.type\" = \"batch-response\" }}, downstream = {{ count = 3, fields = {{ \"$.operation\" = \"add\" }} }} }}\n\
         targets = [\"api\"]\n\n\
         [[case]]\nname = \"negative beds\"\nfile = \"{}\"\ntargets = [\"api\"]\n\
         expect = {{ status = 422, valid = false, violations = [\"capacity.negative\"], downstream = {{ nothing = true }} }}\n\n\
         [[case]]\nname = \"dropped, negative beds\"\nfile = \"{}\"\ntargets = [\"folder\"]\n\
         expect = {{ verdict = \"rejected\", valid = false, violations = [\"capacity.negative\"], fields = {{ \"$.reason\" = \"invalid\" }} }}\n",
        valid.display(),
        invalid.display(),
        invalid.display(),
    );
    write(&bench, "book/book.toml", &book);
    let out = test_run(&bench, &["book", "--json", "report.json"]);
    let report = std::fs::read_to_string(bench.path("report.json")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{report}\n{}",
        show(&out),
        engine.log()
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    let emitted = report["cases"][0]["targets"]["api"]["downstream"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(emitted, 3, "{report:#}");
}

/// `page` (a report of the bench) as headless Chromium renders it from
/// disk: every one of `shown` is in its text; a screenshot is kept in the
/// target directory for a person to look at.
fn page_in_a_browser(bench: &Bench, page: &str, shown: &[&str]) {
    let Some(browser) = crate::common::browser::Browser::new(bench.dir.path()) else {
        return;
    };
    let url = format!("file://{}", bench.path(page).display());
    let dom = browser.dom(&url);
    for text in shown {
        assert!(dom.contains(text), "{text:?} not on the page:\n{dom}");
    }
    browser.screenshot(&url, &format!("test-book-{page}.png"));
}

/// A bench with the examples' referential, a server certificate `gw`
/// (with `gw_extra`) and a client one `etab`; and the examples' folder.
fn ror_bench(gw_extra: &[&str]) -> (Bench, std::path::PathBuf) {
    let bench = Bench::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bed-availability");
    std::fs::copy(
        examples.join("referential.csv"),
        bench.path("referential.csv"),
    )
    .unwrap();
    bench.issue("gw", gw_extra);
    bench.issue("etab", &["--client-only"]);
    (bench, examples)
}

/// One engine of a comparison: a validating rule (with `rules`) over
/// mutual TLS in front of its own `sim ror`, recording to `record`.
fn ror_engine(bench: &Bench, name: &str, rules: &str, record: &str) -> (Proc, Proc, u16) {
    let rules_file = format!("{name}-rules.toml");
    write(bench, &rules_file, rules);
    let (ror, ror_port) = bench.serve(&[
        "sim",
        "ror",
        "--listen",
        "127.0.0.1:0",
        "--referential",
        "referential.csv",
        "--record",
        record,
    ]);
    let config = format!(
        "{}{}[[route]]\nname = \"api\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\n\n\
         [[route.rule]]\nname = \"dispo\"\npath = \"/dispo\"\nupstream = \"http://127.0.0.1:{ror_port}/\"\nallow = [\"etab\"]\n\
         validate = \"bed-availability\"\nreferential = \"referential.csv\"\nrules = \"{rules_file}\"\nconvert = \"patch\"\n",
        profile("gw", bench, Some("gw"), true),
        app("etab", "etab"),
    );
    let engine = bench.run(&format!("{name}.toml"), &config);
    let port = engine.route_port("api");
    (ror, engine, port)
}

/// Two engines that differ in one rule (the new one refuses inconsistent
/// counts): the comparison reports exactly the case that rule touches, in
/// its status and in what reached each engine's ROR; a difference the
/// book expects is not counted; the old engine against itself is the
/// same, noise learned or not.
#[test]
fn compare_reports_exactly_the_cases_a_changed_rule_touches() {
    let (bench, examples) = ror_bench(&["--server-only"]);
    let (_old_ror, _old, old_port) = ror_engine(&bench, "old", "", "old-ror.jsonl");
    let stricter = "[severity]\n\"counts.inconsistent\" = \"error\"\n";
    let (_new_ror, _new, new_port) = ror_engine(&bench, "new", stricter, "new-ror.jsonl");
    let valid = std::fs::read_to_string(examples.join("valid/chu-rennes-ssr.xml")).unwrap();
    write(&bench, "book/cases/valid.xml", &valid);
    write(&bench, "book/cases/valid.toml", "[expect]\nstatus = 200\n");
    // Its own unit: what one case leaves in a ROR must not change another.
    let start = valid.find("<unit id=\"REA-1\">").unwrap();
    let end = valid.find("</bedAvailability>").unwrap();
    let inconsistent = format!("{}{}", &valid[..start], &valid[end..])
        .replace("SSR38888", "MCO-CARDIO")
        .replace("<nbCapacity>12</nbCapacity>", "<nbCapacity>45</nbCapacity>");
    write(&bench, "book/cases/inconsistent.xml", &inconsistent);
    write(
        &bench,
        "book/cases/inconsistent.toml",
        "[expect]\nvalid = true\n",
    );
    let negative = std::fs::read_to_string(examples.join("invalid/negative-beds.xml")).unwrap();
    write(&bench, "book/cases/negative.xml", &negative);
    write(
        &bench,
        "book/cases/negative.toml",
        "[expect]\nstatus = 422\n",
    );
    let target = |port: u16, sink: &str| {
        format!(
            "url = \"https://127.0.0.1:{port}/dispo\"\nserver_name = \"gw\"\nca = \"../pki/ca.pem\"\n\
             cert = \"../pki/etab.pem\"\nkey = \"../pki/etab.key\"\nsink = \"../{sink}\"\n"
        )
    };
    write(
        &bench,
        "book/book.toml",
        &format!(
            "name = \"migration\"\nconcurrency = 1\nsettle = \"300ms\"\n\n[targets.old]\n{}\n[targets.new]\n{}",
            target(old_port, "old-ror.jsonl"),
            target(new_port, "new-ror.jsonl")
        ),
    );
    let compare = |extra: &[&str]| {
        let mut cmd = Command::new(crate::common::guichet_bin());
        cmd.args(["test", "compare", "book"])
            .args(extra)
            .current_dir(bench.dir.path());
        run_bounded(cmd, WAIT * 3)
    };
    let out = compare(&[
        "--old",
        "old",
        "--new",
        "new",
        "--json",
        "compare.json",
        "--junit",
        "compare.xml",
        "--html",
        "compare.html",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report: Value =
        serde_json::from_slice(&std::fs::read(bench.path("compare.json")).unwrap()).unwrap();
    let verdicts: Vec<(&str, &str)> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("inconsistent.xml", "different"),
            ("negative.xml", "same"),
            ("valid.xml", "same")
        ],
        "{report:#}"
    );
    let differences = &report["cases"][0]["differences"];
    let parts: Vec<String> = differences
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["part"].as_str().unwrap(),
                d["field"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(parts.contains(&"outcome ".to_string()), "{parts:?}");
    assert!(parts.contains(&"downstream count".to_string()), "{parts:?}");
    assert_eq!(report["cases"][0]["differences"][0]["old"], "200");
    if have("python3") {
        assert_eq!(junit_counts(&bench.path("compare.xml")), "3 1 0 3 1 0");
    }

    // The book says the new engine is meant to refuse it: exit 0.
    write(
        &bench,
        "book/cases/inconsistent.toml",
        "expect_difference = \"the new engine refuses inconsistent counts\"\n[expect]\nvalid = true\n",
    );
    let out = compare(&[
        "--old",
        "old",
        "--new",
        "new",
        "--html",
        "hidden.html",
        "--no-bodies",
        "--lang",
        "en",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("EXPECTED  inconsistent.xml"));
    let hidden = std::fs::read_to_string(bench.path("hidden.html")).unwrap();
    assert!(hidden.contains("(value hidden)"), "{hidden}");
    assert!(
        !hidden.contains("Location?identifier"),
        "a value shown: {hidden}"
    );
    let shown = [
        "Comparaison",
        "1 différence(s)",
        "inconsistent.xml",
        "200",
        "422",
    ];
    page_in_a_browser(&bench, "compare.html", &shown);

    // The old engine against itself, noise learned: nothing differs.
    let out = compare(&["--old", "old", "--new", "old", "--learn-noise"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 the same"));
}

/// A new integration engine built on python-hl7's asyncio MLLP module
/// (Debian's python3-hl7), misconfigured as a migration finds them: it
/// answers AA at once, then forwards each message to its DPI with the
/// patient class (PV1-2) mapped by a wrong table, inpatients (`I`) sent
/// as outpatients (`O`). Listens on 127.0.0.1 on the port given first,
/// forwards to the port given second; stops when its stdin closes, or
/// after five minutes.
const PYTHON_HL7_ENGINE: &str = r#"
import asyncio, os, sys, threading
from hl7.mllp import open_hl7_connection, start_hl7_server

PORT, DPI = int(sys.argv[1]), int(sys.argv[2])
PATIENT_CLASS = {"I": "O"}
ENCODING = "iso-8859-15"

def rewrite(message):
    try:
        given = str(message["PV1.F2"])
    except KeyError:
        return message
    message["PV1.F2"] = PATIENT_CLASS.get(given, given)
    return message

async def forward(message):
    reader, writer = await open_hl7_connection("127.0.0.1", DPI, encoding=ENCODING)
    try:
        writer.writemessage(rewrite(message))
        await writer.drain()
        await reader.readmessage()
    finally:
        writer.close()

async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack("AA"))
            await writer.drain()
            await forward(message)
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()

def stop_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)

async def main():
    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    server = await start_hl7_server(handle, "127.0.0.1", PORT, encoding=ENCODING)
    print(f"listening on 127.0.0.1:{PORT}", flush=True)
    async with server:
        await asyncio.sleep(300)

asyncio.run(main())
"#;

/// [`PYTHON_HL7_ENGINE`] in front of its own DPI (`guichet listen
/// --record RECORD`): the processes, the pipe whose closing stops the
/// engine, and its port. `None` when python3-hl7 is not installed (a
/// failure under CI).
fn python_hl7_engine(bench: &Bench, record: &str) -> Option<(Proc, Proc, ChildStdin, u16)> {
    // python3-hl7 brings mllp_send; its module is the system Python's.
    if !have("mllp_send") {
        return None;
    }
    let (dpi, dpi_port) = bench.listen(&["--record", record]);
    write(bench, "engine.py", PYTHON_HL7_ENGINE);
    let port = crate::common::free_port();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(bench.path("engine.py"))
        .arg(port.to_string())
        .arg(dpi_port.to_string())
        .current_dir(bench.dir.path());
    let (engine, stdin) = Proc::spawn_with_stdin("python-hl7 engine", cmd);
    engine.wait_line("`listening on`", |l| l.starts_with("listening on "));
    Some((dpi, engine, stdin, port))
}

/// Three ADT cases, each expecting an AA and one message at the DPI: an
/// admission and an update of an inpatient, the registration of an
/// outpatient; against both engines, each with its DPI's record as sink.
fn adt_migration_book(bench: &Bench, old_port: u16, new_port: u16) {
    for (case, event, class) in [
        ("a01", "A01", "I"),
        ("a08", "A08", "I"),
        ("a04", "A04", "O"),
    ] {
        let id = format!("CASE-{event}");
        let message = format!("{}PV1|1|{class}|CARDIO^101^1\r", adt(event, &id, "1001"));
        write(bench, &format!("book/cases/{case}.hl7"), &message);
        write(
            bench,
            &format!("book/cases/{case}.toml"),
            "[expect]\nack = \"AA\"\ndownstream = { count = 1 }\n",
        );
    }
    let target = |port: u16, sink: &str| {
        format!("url = \"mllp://127.0.0.1:{port}\"\nsink = \"../{sink}\"\n")
    };
    write(
        bench,
        "book/book.toml",
        &format!(
            "name = \"EAI migration\"\n\n[targets.old]\n{}\n[targets.new]\n{}",
            target(old_port, "old-dpi.jsonl"),
            target(new_port, "new-dpi.jsonl")
        ),
    );
}

/// The differences of each compared case, `part field: old -> new`.
fn differences(report: &Value) -> Vec<(String, Vec<String>)> {
    let cases = report["cases"].as_array().unwrap();
    cases
        .iter()
        .map(|case| {
            let found = case["differences"].as_array().unwrap().iter().map(|d| {
                format!(
                    "{} {}: {} -> {}",
                    d["part"].as_str().unwrap(),
                    d["field"].as_str().unwrap_or(""),
                    d["old"].as_str().unwrap_or("(absent)"),
                    d["new"].as_str().unwrap_or("(absent)")
                )
            });
            (
                format!(
                    "{} {}",
                    case["name"].as_str().unwrap(),
                    case["verdict"].as_str().unwrap()
                ),
                found.collect(),
            )
        })
        .collect()
}

/// The old engine (a guichet `mllp` route) and a new one from another
/// maker (python-hl7) both answer AA to every case and each sends one
/// message to its DPI, so every expectation of the book holds on both;
/// the new one maps the patient class wrongly on its way downstream, and
/// the comparison reports exactly the cases it touched, by that field.
#[test]
fn a_case_whose_downstream_emission_differs_while_both_answers_are_aa_is_caught() {
    let bench = Bench::new();
    let Some((_new_dpi, _new, _stdin, new_port)) = python_hl7_engine(&bench, "new-dpi.jsonl")
    else {
        return;
    };
    let (_old_dpi, _old, old_port) = mllp_engine(&bench, "aa", "old-dpi.jsonl");
    adt_migration_book(&bench, old_port, new_port);

    // Run, each case passes on both: an AA, one message at the DPI.
    let out = test_run(&bench, &["book", "--json", "report.json"]);
    assert!(out.status.success(), "{}", show(&out));
    let report = json_report(&bench);
    let outcomes: Vec<String> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let t = &c["targets"];
            format!(
                "{} {} {}",
                c["name"].as_str().unwrap(),
                t["old"]["outcome"],
                t["new"]["outcome"]
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "a01.hl7 \"AA\" \"AA\"",
            "a04.hl7 \"AA\" \"AA\"",
            "a08.hl7 \"AA\" \"AA\""
        ],
        "{report:#}"
    );

    // Compared, the two inpatients' messages differ downstream only.
    let mut cmd = Command::new(crate::common::guichet_bin());
    cmd.args(["test", "compare", "book", "--old", "old", "--new", "new"])
        .args(["--json", "compare.json"])
        .current_dir(bench.dir.path());
    let out = run_bounded(cmd, WAIT * 3);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report: Value =
        serde_json::from_slice(&std::fs::read(bench.path("compare.json")).unwrap()).unwrap();
    let parts = report["cases"].as_array().unwrap().iter();
    let outcome = parts
        .flat_map(|c| c["differences"].as_array().unwrap())
        .any(|d| d["part"] == "outcome");
    assert!(!outcome, "an outcome differs: {report:#}");
    let pv1 = || vec!["downstream 1 PV1-2: I -> O".to_string()];
    assert_eq!(
        differences(&report),
        [
            ("a01.hl7 different".to_string(), pv1()),
            ("a04.hl7 same".to_string(), vec![]),
            ("a08.hl7 different".to_string(), pv1()),
        ],
        "{report:#}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "DIFFERENT a01.hl7\n        downstream 1 PV1-2: I -> O\n",
        "SAME      a04.hl7\n",
        "3 case(s): 1 the same, 0 different as expected, 2 different (",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
}

/// The boundary book of the examples' referential passes against guichet
/// itself: its validating rule in front of `sim ror`, over mutual TLS.
#[test]
fn the_generated_boundary_book_passes_against_guichet() {
    let (bench, _) = ror_bench(&["--server-only", "--ip", "127.0.0.1"]);
    let (_ror, _engine, port) = ror_engine(&bench, "guichet", "", "ror.jsonl");
    let generated = bench.ok(&[
        "test",
        "generate",
        "bed-availability",
        "--referential",
        "referential.csv",
        "--out",
        "boundaries",
    ]);
    assert!(generated.contains("21 case(s)"), "{generated}");
    let url = format!("rule=https://127.0.0.1:{port}/dispo");
    let out = test_run(
        &bench,
        &[
            "boundaries",
            "--target",
            &url,
            "--ca",
            "pki/ca.pem",
            "--cert",
            "pki/etab.pem",
            "--key",
            "pki/etab.key",
            "--json",
            "report.json",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let report = json_report(&bench);
    let outcomes: Vec<String> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["targets"]["rule"]["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        outcomes.contains(&"capacity-negative.xml 422".to_string()),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&"valid-750712184-URG.xml 200".to_string()),
        "{outcomes:?}"
    );
}

/// Messages a store-and-forward route stored become a book's cases, and
/// the book replays them against the route.
#[test]
fn stored_messages_become_a_book_that_replays_against_the_route() {
    let bench = Bench::new();
    let (dpi, dpi_port) = bench.listen(&["--record", "received.jsonl"]);
    let config = format!(
        "[journal]\nstore = \"journal.db\"\n\n[[route]]\nname = \"eai\"\nkind = \"mllp\"\ndelivery = \"store-and-forward\"\n\
         listen = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{dpi_port}\"\n"
    );
    let engine = bench.run("guichet.toml", &config);
    let port = engine.route_port("eai");
    let to = format!("127.0.0.1:{port}");
    bench.ok(&["send", "--to", &to, "--template", "adt-a01", "--count", "3"]);
    guichet_testsupport::wait::until_blocking(
        WAIT,
        "three messages at the DPI",
        || {
            std::fs::read_to_string(bench.path("received.jsonl"))
                .unwrap_or_default()
                .lines()
                .count()
        },
        |n| *n == 3,
    );
    let out = bench.ok(&[
        "test",
        "import",
        "--journal",
        "guichet.toml",
        "--route",
        "eai",
        "--out",
        "imported",
    ]);
    assert!(
        out.contains("3 case(s)") && out.contains("patient data"),
        "{out}"
    );
    let cases = std::fs::read_dir(bench.path("imported/cases"))
        .unwrap()
        .count();
    assert_eq!(cases, 6, "a message and its expectations each");
    let target = format!("new=mllp://127.0.0.1:{port}");
    let out = test_run(&bench, &["imported", "--target", &target]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 case(s): 3 passed"));
    drop(dpi);
}

/// A field that changes on every run (the version of a ROR record, one
/// more at each replace) differs between two engines; learned as noise
/// (two runs against the old one differ in it), it is left out.
#[test]
fn learned_noise_leaves_out_a_field_that_changes_on_every_run() {
    let bench = Bench::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bed-availability");
    std::fs::copy(
        examples.join("referential.csv"),
        bench.path("referential.csv"),
    )
    .unwrap();
    let sim = |record: &str| {
        bench.serve(&[
            "sim",
            "ror",
            "--listen",
            "127.0.0.1:0",
            "--referential",
            "referential.csv",
            "--record",
            record,
        ])
    };
    let ((_old, old_port), (_new, new_port)) = (sim("old.jsonl"), sim("new.jsonl"));
    let batch: Value = serde_json::from_str(&bench.ok(&[
        "convert",
        "--to",
        "patch",
        examples.join("valid/chu-rennes-ssr.xml").to_str().unwrap(),
    ]))
    .unwrap();
    let replace = batch["entry"][0]["resource"].to_string();
    let add = replace.replacen("\"replace\"", "\"add\"", 1);
    let location = "/ws-synchro-dispo-lits-fhir/Location?identifier=1350054680/SSR38888";
    // Both hold the record; the old one has been replaced three times more.
    for (port, replaces) in [(old_port, 3), (new_port, 0)] {
        let send = |body: &str| {
            let mut cmd = Command::new("curl");
            cmd.args([
                "-sf",
                "-X",
                "PATCH",
                "-H",
                "Content-Type: application/fhir+json",
                "--data-binary",
                body,
            ])
            .arg(format!("http://127.0.0.1:{port}{location}"));
            assert!(run_bounded(cmd, WAIT).status.success());
        };
        send(&add);
        (0..replaces).for_each(|_| send(&replace));
    }
    write(&bench, "book/replace.json", &replace);
    let target =
        |port: u16| format!("url = \"http://127.0.0.1:{port}{location}\"\nmethod = \"PATCH\"\n");
    write(
        &bench,
        "book/book.toml",
        &format!(
            "[targets.old]\n{}\n[targets.new]\n{}\n[[case]]\nname = \"replace\"\nfile = \"replace.json\"\nexpect = {{ status = 200 }}\n",
            target(old_port),
            target(new_port)
        ),
    );
    let compare = |extra: &[&str]| {
        let mut cmd = Command::new(crate::common::guichet_bin());
        cmd.args(["test", "compare", "book", "--old", "old", "--new", "new"])
            .args(extra)
            .current_dir(bench.dir.path());
        run_bounded(cmd, WAIT * 3)
    };
    let out = compare(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/meta/versionId"),
        "{}",
        show(&out)
    );
    let out = compare(&["--learn-noise", "--json", "noise.json"]);
    assert!(out.status.success(), "{}", show(&out));
    let report: Value =
        serde_json::from_slice(&std::fs::read(bench.path("noise.json")).unwrap()).unwrap();
    assert_eq!(
        report["noise"],
        serde_json::json!(["/meta/versionId"]),
        "{report:#}"
    );
}

/// `examples/test-book/run.sh` as its README runs it (on ports of its
/// own): the books compared between two engines, then run against the
/// old one; it exits 0, the one difference being the expected one.
#[test]
fn the_test_book_example_runs_as_its_readme_says() {
    let bench = Bench::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/test-book/run.sh");
    let base = crate::common::free_block(9);
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env("GUICHET", crate::common::guichet_bin())
        .env("WORK", bench.path("work"))
        .env("PORT_BASE", base.to_string());
    let out = run_bounded(cmd, std::time::Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(bench.path("work/engines.log")).unwrap_or_default();
    assert!(out.status.success(), "{}\n{log}", show(&out));
    for line in [
        "20 case(s): 19 the same, 1 different as expected, 0 different",
        "10 case(s): 10 the same, 0 different as expected, 0 different",
        "20 case(s): 20 passed, 0 failed, 0 could not run",
        "10 case(s): 10 passed, 0 failed, 0 could not run",
        "EXPECTED  inconsistent-counts.xml",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
    assert!(bench.path("work/bed-availability.html").is_file());
}
