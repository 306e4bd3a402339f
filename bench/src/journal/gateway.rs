//! One `guichet run` with one plain `mllp` route, passthrough or
//! store-and-forward, in front of the sink.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::children::{free_port, Child};
use crate::peers::{local, write_config, Pair, Setup};

/// How long guichet may take to open its journal and listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running guichet and its config file.
pub(super) struct Gateway {
    pub pair: Pair,
    pub config: String,
}

/// Starts guichet (store-and-forward into `store` when given) and waits
/// until it listens; the pair has this one gateway.
pub(super) async fn start(
    setup: &Setup,
    dir: &Path,
    sink: SocketAddr,
    store: Option<&str>,
) -> anyhow::Result<Gateway> {
    let entry = local(free_port()?);
    let config = write_config(dir, "guichet.toml", &config(setup, entry, sink, store))?;
    let mut guichet = Child::spawn(
        "guichet",
        &setup.guichet,
        &["run", "-c", &config],
        &[("RUST_LOG", "info")],
        &dir.join("guichet.log"),
    )?;
    guichet.wait_listening(entry, START_TIMEOUT).await?;
    let pair = Pair {
        entry,
        gateways: vec![guichet],
    };
    Ok(Gateway { pair, config })
}

/// The route's queue depth, from `guichet journal stats` (a second
/// process reading the journal beside the running one).
pub(super) async fn queue_depth(setup: &Setup, config: &str) -> anyhow::Result<u64> {
    let mut command = Command::new(&setup.guichet);
    command.args(["journal", "-c", config, "stats", "--json"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "guichet journal stats failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    depth(&text).with_context(|| format!("no queue depth in `guichet journal stats`: {text}"))
}

/// The sum of `"depth":N` over the JSON lines (a route with an empty
/// queue may have no line).
fn depth(json_lines: &str) -> Option<u64> {
    json_lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let rest = line.split_once("\"depth\":")?.1;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// The config: the route's delivery is the only difference between a
/// store-and-forward round and its passthrough baseline. Retries are
/// short so a drain starts soon after the receiver comes up (the drain
/// is timed from the receiver's first message, not from its start).
fn config(setup: &Setup, entry: SocketAddr, sink: SocketAddr, store: Option<&str>) -> String {
    let workers = setup
        .guichet_workers
        .map_or_else(String::new, |n| format!("workers = {n}\n"));
    let (journal, delivery) = match store {
        Some(store) => (
            format!("[journal]\nstore = \"{store}\"\nnode = \"bench\"\n\n"),
            "delivery = \"store-and-forward\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n",
        ),
        None => (String::new(), "delivery = \"passthrough\"\n"),
    };
    format!(
        r#"[gateway]
drain_timeout = "1s"
{workers}
[defaults]
connect_timeout = "5s"
idle_timeout = "15m"

{journal}[[route]]
name = "adt"
kind = "mllp"
listen = "{entry}"
forward = "{sink}"
{delivery}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_is_read_from_the_json_lines() {
        let json = r#"{"dead":0,"depth":1234,"failed":0,"in_flight":32,"oldest_pending_age_seconds":3,"route":"adt"}"#;
        assert_eq!(depth(json), Some(1234));
        assert_eq!(depth(""), Some(0));
        assert_eq!(depth("{\"route\":\"adt\"}"), None);
    }
}
