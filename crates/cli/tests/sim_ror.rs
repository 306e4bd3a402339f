//! `guichet sim ror` driven by curl, as an establishment's bed manager or
//! the gateway would: the national ROR's PATCH rules, searches, the
//! record, the store printed on SIGTERM, and mutual TLS.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{have, run_bounded, Bench, Proc, WAIT};

const UNIT: &str = "1350054680/SSR38888";

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bed-availability")
}

/// A simulator on the examples' referential, and the bodies of the
/// example's first record: its replace, and the same as an add.
struct Sim {
    bench: Bench,
    proc: Proc,
    base: String,
    replace: String,
    add: String,
}

impl Sim {
    fn start(extra: &[&str], scheme: &str) -> Sim {
        let bench = Bench::new();
        Sim::start_on(bench, extra, scheme)
    }

    /// A simulator started in `bench`, on its `referential.csv` (the
    /// examples' one unless the test wrote its own).
    fn start_on(bench: Bench, extra: &[&str], scheme: &str) -> Sim {
        if !bench.path("referential.csv").exists() {
            std::fs::copy(
                examples().join("referential.csv"),
                bench.path("referential.csv"),
            )
            .unwrap();
        }
        let mut args = vec!["sim", "ror", "--listen", "127.0.0.1:0"];
        args.extend([
            "--referential",
            "referential.csv",
            "--record",
            "record.jsonl",
        ]);
        args.extend_from_slice(extra);
        let (proc, port) = bench.serve(&args);
        let batch = bench.ok(&[
            "convert",
            "--to",
            "patch",
            examples()
                .join("valid/chu-rennes-ssr.xml")
                .to_str()
                .unwrap(),
        ]);
        let batch: Value = serde_json::from_str(&batch).unwrap();
        let replace = batch["entry"][0]["resource"].to_string();
        let add = replace.replacen("\"replace\"", "\"add\"", 1);
        Sim {
            base: format!("{scheme}://127.0.0.1:{port}/ws-synchro-dispo-lits-fhir/Location"),
            bench,
            proc,
            replace,
            add,
        }
    }

    /// A simulator over mutual TLS with certificates of the bench's CA:
    /// its own for ror.test, and a client one per name of `clients`.
    /// Returns it (its base URL on ror.test) and the curl options that
    /// trust it and resolve ror.test to it.
    fn start_tls(clients: &[&str], extra: &[&str]) -> (Sim, Vec<String>) {
        let bench = Bench::new();
        bench.issue("ror.test", &["--server-only"]);
        for client in clients {
            bench.issue(client, &["--client-only"]);
        }
        let mut args = vec![
            "--tls-cert",
            "pki/ror.test.pem",
            "--tls-key",
            "pki/ror.test.key",
        ];
        args.extend(["--tls-ca", "pki/ca.pem"]);
        args.extend_from_slice(extra);
        let mut sim = Sim::start_on(bench, &args, "https");
        // The certificate names ror.test: curl resolves it to the simulator.
        let port = sim.base.split(':').nth(2).and_then(|p| p.split('/').next());
        let resolve = format!("ror.test:{}:127.0.0.1", port.unwrap_or("0"));
        sim.base = sim.base.replace("127.0.0.1", "ror.test");
        let trust = vec![
            "--cacert".into(),
            sim.bench.p("pki/ca.pem"),
            "--resolve".into(),
            resolve,
        ];
        (sim, trust)
    }

    /// The curl options of client `name` (its certificate and key).
    fn client(&self, name: &str) -> Vec<String> {
        let (cert, key) = (format!("pki/{name}.pem"), format!("pki/{name}.key"));
        vec![
            "--cert".into(),
            self.bench.p(&cert),
            "--key".into(),
            self.bench.p(&key),
        ]
    }

    /// curl `METHOD url` with `body`: the status and the JSON answer.
    fn curl(&self, method: &str, query: &str, body: Option<&str>, tls: &[&str]) -> (u16, Value) {
        let out_file = self.bench.path("answer.json");
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-o"])
            .arg(&out_file)
            .args([
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: application/fhir+json",
            ])
            .args(tls)
            .arg(format!("{}{query}", self.base));
        if let Some(body) = body {
            cmd.args(["--data-binary", body]);
        }
        let out = run_bounded(cmd, WAIT);
        let status = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
        let answer = std::fs::read(&out_file).unwrap_or_default();
        let json = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        (status, json)
    }

    fn patch(&self, identifier: &str, body: &str) -> (u16, Value) {
        self.curl(
            "PATCH",
            &format!("?identifier={identifier}"),
            Some(body),
            &[],
        )
    }
}

fn issue_code(answer: &Value) -> (&str, &str) {
    let issue = &answer["issue"][0];
    (
        issue["code"].as_str().unwrap_or(""),
        issue["expression"][0].as_str().unwrap_or(""),
    )
}

#[test]
fn replace_then_add_then_replace_as_the_national_ror_answers() {
    if !have("curl") {
        return;
    }
    let sim = Sim::start(&[], "http");
    let (status, answer) = sim.patch(UNIT, &sim.replace);
    assert_eq!(status, 404, "{answer}");
    let (code, expression) = issue_code(&answer);
    assert_eq!(code, "not-found");
    assert!(
        expression.contains("ror-location-supported-capacity"),
        "{expression}"
    );

    let (status, location) = sim.patch(UNIT, &sim.add);
    assert_eq!(status, 200, "{location}");
    assert_eq!(location["resourceType"], "Location");
    assert_eq!(location["identifier"][0]["value"], UNIT);
    assert_eq!(location["meta"]["versionId"], "1");

    let (status, location) = sim.patch(UNIT, &sim.replace);
    assert_eq!(status, 200, "{location}");
    assert_eq!(location["meta"]["versionId"], "2");
    assert_eq!(location["extension"].as_array().unwrap().len(), 1);

    let (status, answer) = sim.patch(UNIT, &sim.add);
    assert_eq!(
        (status, issue_code(&answer).0),
        (400, "business-rule"),
        "{answer}"
    );
}

#[test]
fn unknown_units_bad_bodies_and_other_paths_are_refused() {
    if !have("curl") {
        return;
    }
    let sim = Sim::start(&[], "http");
    let (status, answer) = sim.patch("1350054680/NOPE", &sim.add);
    assert_eq!(
        (status, issue_code(&answer)),
        (404, ("not-found", "Location")),
        "{answer}"
    );
    let (status, answer) = sim.patch(UNIT, "{\"resourceType\": \"Parameters\",");
    assert_eq!(
        (status, issue_code(&answer).0),
        (400, "invalid"),
        "{answer}"
    );
    let (status, answer) = sim.curl("DELETE", &format!("?identifier={UNIT}"), None, &[]);
    assert_eq!(
        (status, issue_code(&answer).0),
        (404, "not-supported"),
        "{answer}"
    );
}

#[test]
fn a_unit_named_twice_is_412_and_an_unlisted_indicator_400() {
    if !have("curl") {
        return;
    }
    let bench = Bench::new();
    bench.write(
        "indicators.csv",
        "capacityStatus,temporalityCapacity,genderCapacityAvailable,capacityClosingType,additionalBedType,crisisType,temporaryAssignement\n02,01,01,,,,01\n",
    );
    let referential = std::fs::read_to_string(examples().join("referential.csv")).unwrap()
        + "350054680,SSR38888,Doublon\n350054680,REA-2,Réanimation\n";
    bench.write("referential.csv", &referential);
    let sim = Sim::start_on(bench, &["--indicators", "indicators.csv"], "http");
    let (status, answer) = sim.patch(UNIT, &sim.add);
    assert_eq!(
        (status, issue_code(&answer).0),
        (412, "multiple-matches"),
        "{answer}"
    );
    // The example's first record is an installed count (status 01): not listed.
    let (status, answer) = sim.patch("1350054680/REA-2", &sim.add);
    assert_eq!(
        (status, issue_code(&answer).0),
        (400, "business-rule"),
        "{answer}"
    );
    let diagnostics = answer["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("capacityStatus=01"), "{diagnostics}");
    let listed = sim.add.replacen(
        "\"code\":\"01\",\"display\":\"Installé\"",
        "\"code\":\"02\",\"display\":\"Disponible\"",
        1,
    );
    assert_ne!(listed, sim.add);
    let (status, answer) = sim.patch("1350054680/REA-2", &listed);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn searches_the_record_and_the_store_printed_on_sigterm() {
    if !have("curl") {
        return;
    }
    let mut sim = Sim::start(&[], "http");
    assert_eq!(sim.patch(UNIT, &sim.add).0, 200);
    assert_eq!(sim.patch(UNIT, &sim.replace).0, 200);

    let (status, page) = sim.curl("GET", &format!("?identifier={UNIT}"), None, &[]);
    assert_eq!((status, page["total"].as_u64()), (200, Some(1)), "{page}");
    assert_eq!(page["type"], "searchset");
    let (_, page) = sim.curl(
        "GET",
        "?_lastUpdated=ge2000-01-01T00:00:00%2B01:00",
        None,
        &[],
    );
    assert_eq!(page["total"], 1, "{page}");
    let (_, page) = sim.curl("GET", "?_lastUpdated=ge2999-01-01T00:00:00Z", None, &[]);
    assert_eq!(page["total"], 0, "{page}");

    let record = std::fs::read_to_string(sim.bench.path("record.jsonl")).unwrap();
    let lines: Vec<Value> = record
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let operations: Vec<&str> = lines
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["add", "replace"]);
    assert_eq!(lines[0]["unit"], UNIT);
    assert!(lines[0]["time"].as_str().unwrap().starts_with("20"));
    assert_eq!(lines[1]["capacity"]["extension"][3]["valueInteger"], 30);

    sim.proc.signal("TERM");
    assert!(sim.proc.wait_exit(WAIT).success(), "{}", sim.proc.log());
    let log = sim.proc.log();
    let dump: Value = serde_json::from_str(&log[log.find("\n{").unwrap()..]).unwrap();
    assert_eq!(dump[UNIT]["meta"]["versionId"], "2");
}

#[test]
fn with_mutual_tls_only_clients_of_its_ca_are_served() {
    if !have("curl") {
        return;
    }
    let (sim, trust) = Sim::start_tls(&["eai"], &[]);
    let trust: Vec<&str> = trust.iter().map(String::as_str).collect();
    let query = format!("?identifier={UNIT}");
    let (status, _) = sim.curl("PATCH", &query, Some(&sim.add), &trust);
    assert_eq!(status, 0, "a client without a certificate was served");

    let mut client: Vec<String> = trust.iter().map(|t| t.to_string()).collect();
    client.extend(sim.client("eai"));
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    let (status, location) = sim.curl("PATCH", &query, Some(&sim.add), &client);
    assert_eq!(status, 200, "{location}\n{}", sim.proc.log());
}

/// With `--token-client`, a listed client certificate gets a token at
/// `POST /token` (client credentials); requests on Location need it, from
/// the same certificate, while it lives.
#[test]
fn tokens_go_to_listed_certificates_and_are_bound_to_them() {
    if !have("curl") {
        return;
    }
    let extra = ["--token-client", "eai", "--token-lifetime", "2s"];
    let (sim, trust) = Sim::start_tls(&["eai", "other"], &extra);
    let as_client = |name: &str| [trust.clone(), sim.client(name)].concat();
    let port = trust[3].split(':').nth(1).unwrap_or("0").to_string();
    let token_url = format!("https://ror.test:{port}/token");
    let grant = |name: &str, form: &str| -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "-d", form])
            .args(as_client(name))
            .arg(&token_url);
        let out = run_bounded(cmd, WAIT);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            status.parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let (status, answer) = grant("other", "grant_type=client_credentials");
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client")),
        "{answer}"
    );
    let (status, answer) = grant("eai", "grant_type=password");
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, answer) = grant("eai", "grant_type=client_credentials");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 2);
    let token = answer["access_token"].as_str().unwrap().to_string();

    let query = format!("?identifier={UNIT}");
    let bearer = format!("Authorization: Bearer {token}");
    let with = |name: &str, header: Option<&str>| {
        let mut args = as_client(name);
        if let Some(header) = header {
            args.extend(["-H".to_string(), header.to_string()]);
        }
        args
    };
    let call = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sim.curl("PATCH", &query, Some(&sim.add), &args)
    };
    let (status, answer) = call(with("eai", None));
    assert_eq!((status, issue_code(&answer).0), (401, "login"), "{answer}");
    let (status, answer) = call(with("other", Some(&bearer)));
    assert_eq!(
        status, 401,
        "a token went with another certificate: {answer}"
    );
    let (status, answer) = call(with("eai", Some(&bearer)));
    assert_eq!(status, 200, "{answer}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (status, _) = call(with("eai", Some(&bearer)));
    assert_eq!(status, 401, "an expired token was taken");
}

#[test]
fn tokens_need_mutual_tls() {
    let bench = Bench::new();
    let referential = examples().join("referential.csv");
    let out = bench.guichet(&[
        "sim",
        "ror",
        "--listen",
        "127.0.0.1:0",
        "--referential",
        referential.to_str().unwrap(),
        "--token-client",
        "eai",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-client needs --tls-cert"));
}
