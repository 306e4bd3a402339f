//! The status page as a person sees it: the real `guichet run` with
//! `[admin] listen`, real traffic from `guichet send` through an mTLS route
//! to `guichet listen`, refused clients, and the page rendered by headless
//! Chromium (the DOM after rendering, and a screenshot).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{
    app, free_port, have, http_get, profile, run_bounded, show, wait_http, Bench, Echo,
};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium is killed (and the test fails) after this long.
const BROWSER_WAIT: Duration = Duration::from_secs(30);

const ROUTE: &str = "from-eai";
const TCP_ROUTE: &str = "to-lab";

/// Headless Chromium with a fresh profile in `dir`, nothing fetched but
/// the page.
fn chromium(dir: &Path) -> Command {
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", dir.display()));
    cmd
}

/// The text a person reads in each table row of the section headed
/// `heading`: tags dropped, entities decoded, spaces squeezed.
fn rows(dom: &str, heading: &str) -> Vec<String> {
    let start = dom
        .find(&format!("<h2>{heading}</h2>"))
        .unwrap_or_else(|| panic!("no section {heading:?} in:\n{dom}"));
    let section = &dom[start..];
    let table = &section[..section.find("</table>").expect("end of the table")];
    table.split("<tr").skip(2).map(visible_text).collect()
}

fn visible_text(html: &str) -> String {
    // Past the `>` that closes the `<tr` the split left open.
    let html = html.split_once('>').map_or("", |(_, cells)| cells);
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The one row of `rows` holding every word of `words` (as whole words).
#[track_caller]
fn row<'a>(rows: &'a [String], words: &[&str]) -> &'a str {
    let found: Vec<&String> = rows
        .iter()
        .filter(|r| words.iter().all(|w| has_word(r, w)))
        .collect();
    assert_eq!(found.len(), 1, "one row with {words:?} in {rows:#?}");
    found[0]
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .any(|w| w == word)
        || (word.contains(' ') && text.contains(word))
}

/// Control ids of the messages `guichet send` reports answered AA.
fn accepted_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() > 6 && w[5] == "ACK" && w[6] == "AA")
        .map(|w| w[3].to_string())
        .collect()
}

/// Where a developer finds the screenshot after the run: the target
/// directory (`CARGO_TARGET_DIR` when set).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

#[test]
fn status_page_in_a_browser_shows_routes_messages_refusals_and_certificates() {
    if !Path::new(CHROMIUM).is_file() {
        eprintln!("SKIPPED: chromium not installed");
        return;
    }
    let bench = Bench::new();
    bench.issue("gw", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    bench.issue("eai", &["--client-only"]);
    let (listen, listen_port) = bench.listen(&[]);
    let echo = Echo::start();
    let admin = free_port();
    let gateway = bench.run(
        "guichet.toml",
        &format!(
            "[gateway]\nwatch_interval = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{}{}\
             [[route]]\nname = \"{ROUTE}\"\nkind = \"mllp\"\nlisten = \"127.0.0.1:0\"\n\
             listen_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"127.0.0.1:{listen_port}\"\n\n\
             [[route]]\nname = \"{TCP_ROUTE}\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\n",
            profile("gw", &bench, Some("gw"), true),
            app("eai", "eai"),
            echo.addr(),
        ),
    );
    let port = gateway.route_port(ROUTE).to_string();
    wait_http(admin, "/readyz", "200", |code, _| code == 200);

    // Two messages from the admitted application.
    let to = format!("127.0.0.1:{port}");
    let tls = ["--tls-ca", "pki/ca.pem", "--server-name", "localhost"];
    let mut args = vec![
        "send",
        "--to",
        to.as_str(),
        "--template",
        "adt-a01",
        "--count",
        "2",
    ];
    args.extend_from_slice(&tls);
    args.extend_from_slice(&["--tls-cert", "pki/eai.pem", "--tls-key", "pki/eai.key"]);
    let sent = bench.ok(&args);
    let ids = accepted_ids(&sent);
    assert_eq!(ids.len(), 2, "{sent}");
    assert_ne!(ids[0], ids[1]);

    // A client without a certificate.
    let mut args = vec!["send", "--to", to.as_str(), "--template", "adt-a01"];
    args.extend_from_slice(&tls);
    let out = bench.guichet(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // And one whose certificate comes from another CA.
    let openssl = have("openssl");
    if openssl {
        bench.ok(&["pki", "init", "--out", "other", "--cn", "Other CA"]);
        bench.ok(&[
            "pki",
            "issue",
            "--ca",
            "other",
            "--name",
            "intruder",
            "--client-only",
        ]);
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            to.as_str(),
            "-servername",
            "localhost",
        ])
        .args(["-CAfile", &bench.p("pki/ca.pem")])
        .args(["-cert", &bench.p("other/intruder.pem")])
        .args(["-key", &bench.p("other/intruder.key")])
        .current_dir(bench.dir.path())
        .env("OPENSSL_CONF", "/dev/null");
        let _ = run_bounded(cmd, crate::common::WAIT);
    }
    let refusals = 1 + usize::from(openssl);
    let metrics = wait_http(admin, "/metrics", "the messages and refusals", |_, text| {
        text.contains(&format!(
            "guichet_messages_total{{route=\"{ROUTE}\",outcome=\"AA\"}} 2\n"
        )) && text.contains(&format!(
            "guichet_connections_total{{route=\"{ROUTE}\",outcome=\"refused_tls\"}} {refusals}\n"
        ))
    });
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let (code, _) = http_get(admin, "/nope").expect("admin server");
    assert_eq!(code, 404);

    // What the browser renders.
    let url = format!("http://127.0.0.1:{admin}/status");
    let mut cmd = chromium(&bench.path("chromium-dom"));
    cmd.arg("--dump-dom").arg(&url);
    let out = run_bounded(cmd, BROWSER_WAIT);
    assert!(out.status.success(), "{}", show(&out));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("<title>guichet status</title>"), "{dom}");
    assert!(
        dom.contains(&format!("<h1>guichet {}</h1>", env!("CARGO_PKG_VERSION"))),
        "{dom}"
    );
    assert!(dom.contains("<span class=\"ok\">ready</span>"), "{dom}");
    assert!(!dom.contains("SECRET") && !dom.contains("DOE^"), "{dom}");

    let routes = rows(&dom, "Routes");
    assert_eq!(routes.len(), 2, "{routes:#?}");
    let mllp = row(&routes, &[ROUTE, "mllp", "mtls", "eai"]);
    assert!(
        mllp.contains(&format!("plain 127.0.0.1:{listen_port}")),
        "{mllp}"
    );
    assert!(mllp.contains("AA 2"), "{mllp}");
    assert!(mllp.contains(&format!("refused_tls {refusals}")), "{mllp}");
    let tcp = row(&routes, &[TCP_ROUTE, "tcp"]);
    assert!(tcp.contains(&format!("plain {}", echo.addr())), "{tcp}");

    let messages = rows(&dom, "Recent messages");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for id in &ids {
        row(&messages, &[id, ROUTE, "AA", "ADT^A01^ADT_A01", "(eai)"]);
    }

    let refused = rows(&dom, "Recent refusals");
    assert_eq!(refused.len(), refusals, "{refused:#?}");
    let none = row(&refused, &[ROUTE, "listen", "no_certificate"]);
    assert!(none.contains("no client certificate presented"), "{none}");
    assert!(none.ends_with(" —"), "no certificate to show: {none}");
    if openssl {
        let intruder = row(&refused, &[ROUTE, "listen", "unknown_ca"]);
        assert!(
            intruder.contains("certificate not issued by a trusted CA"),
            "{intruder}"
        );
        assert!(intruder.contains("CN=intruder"), "{intruder}");
    }

    let certs = rows(&dom, "Certificates");
    assert_eq!(certs.len(), 2, "{certs:#?}");
    let ours = row(&certs, &["gw", "certificate"]);
    assert!(ours.contains("CN=gw"), "{ours}");
    assert!(
        has_word(ours, &(guichet_pki::DEFAULT_LEAF_DAYS - 1).to_string()),
        "days left: {ours}"
    );
    let ca = row(&certs, &["gw", "ca"]);
    assert!(ca.contains("CN=guichet test CA"), "{ca}");

    // A screenshot, for a person to look at.
    let shot = bench.path("status-page.png");
    let mut cmd = chromium(&bench.path("chromium-shot"));
    cmd.arg("--window-size=1400,1000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url);
    let out = run_bounded(cmd, BROWSER_WAIT);
    assert!(out.status.success(), "{}", show(&out));
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10 * 1024,
        "a nearly blank page: {} bytes",
        png.len()
    );
    let kept = target_dir().join("status-page.png");
    if let Some(dir) = kept.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::copy(&shot, &kept).unwrap_or_else(|e| panic!("{}: {e}", kept.display()));
    println!("status page screenshot: {}", kept.display());

    drop(gateway);
    drop(listen);
}

/// An HTTP service on 127.0.0.1 that answers 200 `ok` to every request,
/// one connection at a time, on a thread of its own.
fn plain_upstream() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = tcp.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            );
        }
    });
    addr
}

/// curl as the application whose certificate is `pki/CERT.pem`: the
/// status code it got (`000` when the handshake was refused).
fn curl_as(bench: &Bench, cert: &str, port: u16, path: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.current_dir(bench.dir.path())
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .args(["--resolve", &format!("gw:{port}:127.0.0.1")])
        .args(["--cacert", "pki/ca.pem"])
        .args(["--cert", &format!("pki/{cert}.pem")])
        .args(["--key", &format!("pki/{cert}.key")])
        .arg(format!("https://gw:{port}{path}"));
    let out = run_bounded(cmd, Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The rows of the first table after `marker` in `dom`.
fn rows_after(dom: &str, marker: &str) -> Vec<String> {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{dom}"));
    let section = &dom[start..];
    let table = &section[..section.find("</table>").expect("end of the table")];
    table.split("<tr").skip(2).map(visible_text).collect()
}

#[test]
fn status_page_shows_each_http_rule_its_requests_and_refusals_in_local_time() {
    let bench = Bench::new();
    let Some(browser) = crate::common::browser::Browser::new(&bench.path("chromium")) else {
        return;
    };
    if !have("curl") {
        return;
    }
    bench.issue("gw", &["--server-only", "--dns", "gw"]);
    for partner in ["partner-a", "partner-b", "intruder"] {
        bench.issue(partner, &["--client-only"]);
    }
    let upstream = plain_upstream();
    let admin = free_port();
    // intruder's certificate comes from the same CA but is no [[app]].
    let config = bench.write(
        "guichet.toml",
        &format!(
            "[gateway]\nname = \"DPI side\"\nwatch_interval = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{}{}{}\
             [[route]]\nname = \"web\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\n\
             access_log = \"access.jsonl\"\n\n\
             [[route.rule]]\nname = \"ror\"\npath = \"/ror/\"\nupstream = \"http://{upstream}\"\nallow = [\"partner-a\"]\n\n\
             [[route.rule]]\nname = \"annuaire\"\nhost = \"gw\"\npath = \"/annuaire/\"\nupstream = \"http://{upstream}\"\nallow = [\"partner-b\"]\n",
            profile("gw", &bench, Some("gw"), true),
            app("partner-a", "partner-a"),
            app("partner-b", "partner-b"),
        ),
    );
    // A fixed local offset (POSIX TZ: one hour east of UTC, no summer time).
    let mut cmd = Command::new(crate::common::guichet_bin());
    cmd.arg("run")
        .arg("-c")
        .arg(&config)
        .current_dir(bench.dir.path())
        .env("TZ", "CET-1")
        .env_remove("RUST_LOG");
    let gateway = crate::common::Proc::spawn("guichet run", cmd);
    let port = gateway.route_port("web");
    wait_http(admin, "/readyz", "200", |code, _| code == 200);

    // Admitted, with a query string that must show nowhere.
    assert_eq!(
        curl_as(&bench, "partner-a", port, "/ror/Location?name=DOE"),
        "200"
    );
    // A listed application on a rule that does not admit it.
    assert_eq!(curl_as(&bench, "partner-b", port, "/ror/Location"), "403");
    // A certificate that is on no allowlist: refused at the handshake.
    assert_eq!(curl_as(&bench, "intruder", port, "/ror/Location"), "000");
    wait_http(admin, "/api/status", "the three requests", |_, text| {
        text.contains("\"handshakes_refused\": 1") && text.contains("\"not_admitted\"")
    });

    let (_, json) = http_get(admin, "/api/status").expect("admin server");
    let status: serde_json::Value = serde_json::from_str(&json).expect("JSON status");
    assert_eq!(status["name"], "DPI side");
    let web = &status["routes"][0]["http"];
    assert_eq!(web["rules"][0]["name"], "ror");
    assert_eq!(web["rules"][0]["path"], "/ror/");
    assert_eq!(web["rules"][0]["allow"], serde_json::json!(["partner-a"]));
    assert_eq!(
        web["rules"][0]["requests"],
        serde_json::json!({"2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0, "refused": 1})
    );
    assert_eq!(web["rules"][1]["host"], "gw");
    assert_eq!(web["handshakes_refused"], 1);
    let refusals = web["recent_refusals"].as_array().expect("refusals");
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert_eq!(refusals[1]["reason"], "not_admitted");
    assert_eq!(refusals[1]["application"], "partner-b");
    assert_eq!(refusals[1]["status"], 403);
    assert_eq!(refusals[0]["reason"], "not_allowed");
    assert!(refusals[0]["subject"]
        .as_str()
        .is_some_and(|s| s.contains("CN=intruder")));
    assert!(
        !json.contains("DOE") && !json.contains("Location"),
        "{json}"
    );

    let url = format!("http://127.0.0.1:{admin}/status");
    let dom = browser.dom(&url);
    assert!(dom.contains("<title>DPI side · guichet</title>"), "{dom}");
    assert!(dom.contains("<h1>DPI side <span"), "{dom}");
    assert!(!dom.contains("DOE") && !dom.contains("Location"), "{dom}");
    let rules = rows_after(&dom, "<h2>HTTPS gateway <code>web</code></h2>");
    assert_eq!(rules.len(), 4, "{rules:#?}");
    assert_eq!(
        rules[0],
        format!("ror */ror/ http://{upstream} partner-a 1 0 0 0 1")
    );
    assert_eq!(
        rules[1],
        format!("annuaire gw/annuaire/ http://{upstream} partner-b 0 0 0 0 0")
    );
    assert!(
        rules[3].starts_with("TLS handshake") && rules[3].ends_with(" 1"),
        "{rules:#?}"
    );
    let refused = rows_after(&dom, "<h3>Last refusals</h3>");
    assert_eq!(refused.len(), 2, "{refused:#?}");
    let local = |row: &str| {
        let words: Vec<&str> = row.split(' ').collect();
        words.len() > 3 && words[0].len() == 10 && words[1].len() == 8 && words[2] == "+01:00"
    };
    assert!(local(&refused[0]), "local time with offset: {}", refused[0]);
    assert!(
        refused[0].contains("— — ")
            && refused[0].contains("CN=intruder")
            && refused[0].ends_with("not_allowed certificate not on this route's allowlist"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].ends_with("ror */ror/ partner-b not_admitted (403)"),
        "{}",
        refused[1]
    );
    assert!(local(&refused[1]), "{}", refused[1]);
    let shot = browser.screenshot(&url, "status-page-http.png");
    println!("http status page screenshot: {}", shot.display());
    drop(gateway);
}
