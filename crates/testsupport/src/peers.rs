//! Outside programs the tests talk to (openssl, stunnel, curl, chromium,
//! python3...), which `./scripts/setup` installs.
//!
//! A developer without one sees `SKIPPED: ...` and the test passes; under
//! `CI=true` the same absence fails the test, since CI runs the setup and
//! a skip there would prove nothing.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Whether this run is CI's: `CI` set to anything but empty, `0` or
/// `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

/// Where `program` is: on the `PATH`, or in `/usr/sbin` (where Debian puts
/// daemons such as haproxy, outside a user's `PATH`).
pub fn find(program: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin").join(program);
        sbin.is_file().then_some(sbin)
    })
}

/// Whether `program` can run here. When it cannot: prints `SKIPPED` and
/// returns `false`, or, under CI, panics.
pub fn have(program: &str) -> bool {
    if find(program).is_some() {
        return true;
    }
    skip(&format!("{program} not installed"));
    false
}

/// Reports why a test cannot run here: `SKIPPED: why` for a developer, a
/// failure under CI.
///
/// # Panics
/// Under CI, always.
pub fn skip(why: &str) {
    assert!(
        !in_ci(),
        "{why}: CI must run this test (run ./scripts/setup)"
    );
    eprintln!("SKIPPED: {why}");
}

/// Runs `command` to its end and returns its output.
///
/// # Panics
/// When it cannot start or exits with a failure, with its stderr.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Headless Chromium as tests and the benchmark start it: no sandbox (it
/// may run as root), and none of its own background traffic, so that what
/// it fetches is what the page asks for.
pub const CHROMIUM_HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
];
