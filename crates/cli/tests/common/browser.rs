//! Headless Chromium as a reader of guichet's pages: the DOM after the
//! page's script ran, a screenshot, and the requests the page made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{have, run_bounded, show};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium with its own profile under `dir`; `None` (after a
/// SKIPPED line, or a failure under CI) where Chromium is missing.
pub struct Browser {
    dir: PathBuf,
    runs: std::cell::Cell<u32>,
}

impl Browser {
    pub fn new(dir: &Path) -> Option<Browser> {
        have("chromium").then(|| Browser {
            dir: dir.to_path_buf(),
            runs: std::cell::Cell::new(0),
        })
    }

    fn run(&self, url: &str, extra: &[String]) -> String {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let mut cmd = Command::new(CHROMIUM);
        cmd.args(guichet_testsupport::peers::CHROMIUM_HEADLESS)
            .arg(format!(
                "--user-data-dir={}",
                self.dir.join(format!("profile-{n}")).display()
            ))
            .args(extra)
            .arg(url);
        let out = run_bounded(cmd, Duration::from_secs(40));
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The DOM once the page's script has run.
    pub fn dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom".into()])
    }

    /// A screenshot of the page, checked not blank, kept beside the
    /// build's outputs as `name` for a person to look at.
    pub fn screenshot(&self, url: &str, name: &str) -> PathBuf {
        let shot = self.dir.join(name);
        self.run(
            url,
            &[
                "--window-size=1400,1000".into(),
                format!("--screenshot={}", shot.display()),
            ],
        );
        let png = std::fs::read(&shot).expect("a screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10 * 1024,
            "a blank page"
        );
        let kept = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join(name);
        let _ = std::fs::copy(&shot, &kept);
        println!("screenshot: {}", kept.display());
        kept
    }

    /// Every address the page itself asked for (not Chromium's own
    /// traffic, which has no origin), read from Chromium's network log,
    /// `file:`, `data:` and `blob:` ones left out.
    pub fn requests(&self, url: &str) -> Vec<String> {
        let log = self.dir.join("netlog.json");
        self.run(
            url,
            &[
                "--dump-dom".into(),
                format!("--log-net-log={}", log.display()),
            ],
        );
        let text = std::fs::read_to_string(&log).expect("Chromium's network log");
        let log: serde_json::Value = serde_json::from_str(&text).expect("a complete network log");
        let start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
        log["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["type"] == start)
            .filter(|e| e["params"]["initiator"] != "not an origin")
            .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
            .filter(|u| !["file:", "data:", "blob:"].iter().any(|s| u.starts_with(s)))
            .collect()
    }
}
