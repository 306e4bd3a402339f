//! The HTTPS gateway through the real binary: `guichet run` with an `http` route
//! streams a 50 MB upload from curl to the service behind it without
//! holding it in memory.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::{app, have, profile, run_bounded, show, Bench, Proc};
use guichet_testsupport::http::drain;
use guichet_testsupport::samples::hex;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::digest::{Context, SHA256};
use serde_json::{json, Value};

const ROUTE: &str = "web";
const MB: usize = 1024 * 1024;

/// A service on 127.0.0.1 that reads each request body as it comes and
/// answers with its size and SHA-256. It runs on its own runtime, which
/// stops when the value drops.
struct Digester {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Digester {
    fn start() -> Digester {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the service");
        let addr = listener.local_addr().expect("service address");
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service =
                        service_fn(|request| async { Ok::<_, Infallible>(digest(request).await) });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Digester {
            addr,
            _runtime: runtime,
        }
    }
}

async fn digest(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut sha = Context::new(&SHA256);
    let (bytes, error) = drain(request.into_body(), |data| sha.update(data)).await;
    let report = json!({ "bytes": bytes, "sha256": hex(sha.finish().as_ref()), "error": error });
    Response::new(Full::new(Bytes::from(report.to_string())))
}

/// `len` bytes that do not compress or repeat (xorshift), written to
/// `path`; returns their SHA-256.
fn write_noise(path: &std::path::Path, len: usize) -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).expect("write the upload");
    let mut sha = Context::new(&SHA256);
    sha.update(&data);
    hex(sha.finish().as_ref())
}

/// A line of /proc/PID/status in kB (`VmHWM`: peak resident set).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
}

struct Gateway {
    bench: Bench,
    proc: Proc,
    port: u16,
}

impl Gateway {
    /// `guichet run` with one `http` route, rule `upload` (`/upload/`) to
    /// `service`, admitting partner-a, bodies up to `max_body` bytes.
    fn start(service: SocketAddr, max_body: usize) -> Gateway {
        let bench = Bench::new();
        bench.issue("gw", &["--server-only"]);
        bench.issue("partner-a", &["--client-only"]);
        let text = format!(
            "[gateway]\nwatch_interval = \"0s\"\n\n{}{}[[route]]\nname = \"{ROUTE}\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nmax_body_bytes = {max_body}\naccess_log = \"access.jsonl\"\n\n[[route.rule]]\nname = \"upload\"\npath = \"/upload/\"\nupstream = \"http://{service}\"\nallow = [\"partner-a\"]\n",
            profile("gw", &bench, Some("gw"), true),
            app("partner-a", "partner-a"),
        );
        let proc = bench.run("guichet.toml", &text);
        let port = proc.route_port(ROUTE);
        Gateway { bench, proc, port }
    }

    /// curl as partner-a: `curl EXTRA https://gw:PORT/PATH`; returns the
    /// `-w` line (`<http version> <status>`) and the body.
    fn curl(&self, path: &str, extra: &[&str]) -> (String, Value) {
        let mut cmd = Command::new("curl");
        cmd.current_dir(self.bench.dir.path())
            .args(["-sS", "--max-time", "120", "--resolve"])
            .arg(format!("gw:{}:127.0.0.1", self.port))
            .args(["--cacert", "pki/ca.pem", "--cert", "pki/partner-a.pem"])
            .args([
                "--key",
                "pki/partner-a.key",
                "-w",
                "\n%{http_version} %{http_code}",
            ])
            .args(extra)
            .arg(format!("https://gw:{}{path}", self.port));
        let out = run_bounded(cmd, Duration::from_secs(150));
        assert!(out.status.success(), "curl failed:\n{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("no -w line in {text:?}"));
        let body = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{e}: {text}\n{}", self.proc.log()));
        (status.to_string(), body)
    }
}

impl Gateway {
    /// The access log once it holds `n` lines (its writer is a thread of
    /// its own).
    fn access_lines(&self, n: usize) -> Vec<Value> {
        let path = self.bench.path("access.jsonl");
        let deadline = std::time::Instant::now() + crate::common::WAIT;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() >= n || std::time::Instant::now() >= deadline {
                assert_eq!(text.lines().count(), n, "{text}");
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_50_mb_upload_streams_through_with_flat_memory() {
    if !have("curl") {
        return;
    }
    let service = Digester::start();
    let gateway = Gateway::start(service.addr, 100 * MB);
    // Warm up both protocols: TLS, the pools, the access log writer.
    for protocol in ["--http1.1", "--http2"] {
        for _ in 0..3 {
            let (status, body) = gateway.curl("/upload/warm", &[protocol, "--data-binary", "x"]);
            assert!(status.ends_with(" 200"), "{status} {body}");
            assert_eq!(body["bytes"], 1);
        }
    }
    let pid = gateway.proc.pid();
    let before = status_kb(pid, "VmHWM");

    let upload = gateway.bench.path("upload.bin");
    let want = write_noise(&upload, 50 * MB);
    let file = upload.display().to_string();
    for (protocol, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (status, body) = gateway.curl("/upload/big", &[protocol, "-X", "POST", "-T", &file]);
        assert_eq!(status, format!("{version} 200"), "{body}");
        assert_eq!(body["error"], Value::Null, "{protocol}: {body}");
        assert_eq!(body["bytes"], 50 * MB, "{protocol}: {body}");
        assert_eq!(
            body["sha256"], want,
            "{protocol}: the body changed on the way"
        );
    }

    let after = status_kb(pid, "VmHWM");
    let grown = after.saturating_sub(before);
    assert!(
        grown < 20 * 1024,
        "guichet's peak RSS grew by {grown} kB ({before} -> {after} kB) for two 50 MB uploads"
    );
    eprintln!("peak RSS {before} kB -> {after} kB (+{grown} kB)");

    // The access log counted every byte of both.
    let big = gateway
        .access_lines(8)
        .into_iter()
        .filter(|l| l["path"] == "/upload/big");
    let big: Vec<Value> = big.collect();
    assert_eq!(big.len(), 2, "{big:?}");
    for line in big {
        assert_eq!(line["bytes_in"], 50 * MB, "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["complete"], true, "{line}");
    }
}
