//! `guichet init`: the README's "Using it" block run line by line from an
//! empty folder, each kind of starter config accepted by `guichet check`,
//! and no config overwritten by accident.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{connect, guichet_bin, run_bounded, show, Proc, WAIT};

/// The commands of the README's "Using it" block, each split into words,
/// its trailing comment dropped.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let section = text
        .split_once("\n## Using it\n")
        .expect("a \"## Using it\" section in README.md")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("a ```sh block in \"Using it\"")
        .0;
    block
        .lines()
        .map(|line| line.split_once(" #").map_or(line, |(code, _)| code).trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            assert!(
                !line.contains(['\'', '"', '$', '\\']),
                "the test splits README lines on spaces only: {line:?}"
            );
            line.split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

/// `guichet ARGS` (the leading `guichet` dropped) in `dir`, bounded.
fn guichet_in(dir: &Path, words: &[String]) -> Output {
    assert_eq!(words[0], "guichet", "not a guichet command: {words:?}");
    let mut cmd = Command::new(guichet_bin());
    cmd.args(&words[1..]).current_dir(dir);
    run_bounded(cmd, WAIT)
}

fn ok_in(dir: &Path, words: &[String]) -> String {
    let out = guichet_in(dir, words);
    assert!(
        out.status.success(),
        "`{}` failed:\n{}",
        words.join(" "),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// The commands `init` printed (indented `guichet ...` lines).
fn printed_commands(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| l.starts_with("guichet "))
        .map(words)
        .collect()
}

fn config_is_accepted(dir: &Path, config: &str) {
    let report = ok_in(dir, &words(&format!("guichet check -c {config}")));
    assert!(report.contains("\n0 error(s), 0 warning(s)"), "{report}");
}

#[test]
fn readme_using_it_runs_line_by_line_from_an_empty_folder() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let commands = readme_commands();
    let (run, setup) = commands.split_last().expect("commands");
    assert_eq!(setup[0][..2], ["guichet", "init"], "{commands:?}");
    assert_eq!(run[..2], ["guichet", "run"], "{commands:?}");
    let mut printed = Vec::new();
    for command in setup {
        let stdout = ok_in(dir.path(), command);
        if command[1] == "init" {
            printed = printed_commands(&stdout);
        }
    }
    // What `init` tells a newcomer to type is what the README shows, in
    // the same order (the README adds `pki show`).
    let mut rest = commands.iter();
    for line in &printed {
        assert!(
            rest.any(|c| c == line),
            "`init` prints `{}`, which the README does not show in this order",
            line.join(" ")
        );
    }
    assert!(printed.len() >= 5, "{printed:?}");
    // `check` was among the lines: the config is complete.
    let mut cmd = Command::new(guichet_bin());
    cmd.args(&run[1..]).current_dir(dir.path());
    let mut gateway = Proc::spawn("guichet run", cmd);
    for route in ["to-dpi", "from-dpi"] {
        let port = gateway.route_port(route);
        drop(connect(port));
    }
    gateway.signal("TERM");
    let status = gateway.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "{status}\n{}", gateway.log());
}

#[test]
fn each_kind_of_starter_config_passes_check() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let kinds: [(&str, &[&str], &[&str]); 6] = [
        ("client", &["--tunnel", "client"], &["to-dpi"]),
        ("server", &["--tunnel", "server"], &["from-dpi"]),
        ("both", &["--tunnel", "both"], &["to-dpi", "from-dpi"]),
        ("http", &["--http"], &["guichet-unique"]),
        ("stored", &["--store-and-forward"], &["to-dpi-stored"]),
        (
            "all",
            &["--tunnel", "both", "--http", "--store-and-forward"],
            &["to-dpi", "from-dpi", "guichet-unique", "to-dpi-stored"],
        ),
    ];
    let all_routes = ["to-dpi", "from-dpi", "guichet-unique", "to-dpi-stored"];
    for (name, options, routes) in kinds {
        // --pki: init makes the certificates and admits the partner itself.
        let with_pki = format!("{name}-pki");
        let mut init = words(&format!("guichet init --dir {with_pki} --pki"));
        init.extend(options.iter().map(|o| o.to_string()));
        let stdout = ok_in(dir.path(), &init);
        assert_eq!(
            printed_commands(&stdout).len(),
            2,
            "only check and run are left:\n{stdout}"
        );
        let config = format!("{with_pki}/guichet.toml");
        config_is_accepted(dir.path(), &config);
        let text = std::fs::read_to_string(dir.path().join(&config)).expect("config");
        for route in all_routes {
            let line = format!("name = \"{route}\"\n");
            assert_eq!(
                text.contains(&line),
                routes.contains(&route),
                "{name}: route {route}:\n{text}"
            );
        }
        // Without --pki: the printed commands, typed in order, get there too.
        let mut init = words(&format!("guichet init --dir {name}"));
        init.extend(options.iter().map(|o| o.to_string()));
        let stdout = ok_in(dir.path(), &init);
        let commands = printed_commands(&stdout);
        let (run, steps) = commands.split_last().expect("commands");
        assert_eq!(run, &words(&format!("guichet run -c {name}/guichet.toml")));
        for step in steps {
            ok_in(dir.path(), step);
        }
        config_is_accepted(dir.path(), &format!("{name}/guichet.toml"));
    }
}

#[test]
fn init_refuses_to_overwrite_a_config_without_force() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("guichet.toml");
    ok_in(dir.path(), &words("guichet init"));
    let fresh = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, "# mine\n").expect("write");
    let out = guichet_in(dir.path(), &words("guichet init --http"));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "error: guichet.toml already exists: refusing to overwrite it; pass --force to replace it"
        ),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "# mine\n"
    );
    ok_in(dir.path(), &words("guichet init --force"));
    assert_eq!(std::fs::read_to_string(&config).expect("config"), fresh);
}

/// The config the Debian package installs as /etc/guichet/guichet.toml
/// passes `guichet check` as it stands (scripts/package-check checks it
/// again once installed).
#[test]
fn the_packaged_config_passes_check() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/debian/guichet.toml");
    std::fs::copy(&packaged, dir.path().join("guichet.toml")).expect("copy the packaged config");
    config_is_accepted(dir.path(), "guichet.toml");
}

/// An example script finds `guichet` on the PATH when GUICHET is unset
/// (examples/guichet.sh), instead of stopping on `guichet: not found`.
#[test]
fn example_scripts_find_guichet_on_the_path() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let copy = dir.path().join("examples/guichet-unique");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::copy(
        examples.join("guichet.sh"),
        dir.path().join("examples/guichet.sh"),
    )
    .expect("copy guichet.sh");
    std::fs::copy(
        examples.join("guichet-unique/make-pki.sh"),
        copy.join("make-pki.sh"),
    )
    .expect("copy make-pki.sh");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir bin");
    std::os::unix::fs::symlink(guichet_bin(), bin.join("guichet")).expect("symlink");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg(copy.join("make-pki.sh"))
        .env("PATH", path)
        .env_remove("GUICHET");
    let out = run_bounded(cmd, WAIT);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("from the sources"),
        "{}",
        show(&out)
    );
    for file in ["ca.pem", "gateway.pem", "partner-c.key"] {
        assert!(copy.join("pki").join(file).is_file(), "{file}");
    }
}
