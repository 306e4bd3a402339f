//! `guichet apps ...`: edit the `[[app]]` allowlist of a config file.
//!
//! Operators should never have to hand-edit TOML to admit a partner: a
//! typo there either locks a partner out or lets the wrong one in. The
//! edits go through `toml_edit`, so comments and layout elsewhere in the
//! file stay byte for byte; the new text is checked with the gateway's own
//! `Config::parse` before it replaces the file, so these commands never
//! write a config that `guichet run` would refuse.
//!
//! The editing functions work on text and `DocumentMut`, and the file I/O
//! is a thin layer around them, so tests drive the editing directly.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use self::add::{add, AddRequest};
use self::list::list;
use self::remove::remove;
use crate::cli::AppsCommand;

mod add;
mod document;
mod list;
mod remove;
#[cfg(test)]
mod tests;

/// A config edit ready to be written: the new text and what to tell the
/// operator about it.
struct Change {
    text: String,
    report: Vec<String>,
}

pub fn apps(command: AppsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppsCommand::Add {
            config,
            name,
            cert,
            fields,
            allow_on,
        } => {
            let request = AddRequest {
                name: &name,
                cert: &cert,
                fields: &fields,
                allow_on: &allow_on,
            };
            edit_file(&config, |text| add(&config, text, &request, &today()))?;
        }
        AppsCommand::List { config } => print!("{}", list(&config, &read_config(&config)?)?),
        AppsCommand::Remove { config, name } => {
            edit_file(&config, |text| remove(&config, text, &name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `guichet apps add -c CONFIG --name NAME --cert CERT --allow-on ...` with
/// the default `--match`, for commands that admit a partner themselves
/// (`guichet init --pki`): the same edit, checks and report.
pub fn add_app(config: &Path, name: &str, cert: &Path, allow_on: &[String]) -> anyhow::Result<()> {
    let fields: Vec<String> = add::DEFAULT_FIELDS.map(str::to_string).to_vec();
    let request = AddRequest {
        name,
        cert,
        fields: &fields,
        allow_on,
    };
    edit_file(config, |text| add(config, text, &request, &today()))
}

/// Reads the config, applies `edit`, writes the result atomically and
/// prints the report; nothing is written when `edit` fails.
fn edit_file(path: &Path, edit: impl FnOnce(&str) -> anyhow::Result<Change>) -> anyhow::Result<()> {
    let change = edit(&read_config(path)?)?;
    write_atomic(path, &change.text)?;
    for line in &change.report {
        println!("{line}");
    }
    Ok(())
}

fn read_config(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))
}

/// Replaces the file in one step (temporary file in the same directory,
/// then rename), keeping its permissions; a symlinked config stays a
/// symlink, its target is replaced.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let fail = || format!("cannot write {}; it is unchanged", path.display());
    let target = fs::canonicalize(path).with_context(fail)?;
    let permissions = fs::metadata(&target).with_context(fail)?.permissions();
    let dir = target.parent().unwrap_or(Path::new("."));
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.set_permissions(permissions)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(fail)
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}
