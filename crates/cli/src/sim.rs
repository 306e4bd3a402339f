//! `guichet sim ror`: the national ROR's bed-availability API, stood in.

use std::process::ExitCode;

use anyhow::Context as _;
use guichet_ror::referential::{Indicators, Referential};
use guichet_testkit::{serve_ror, RorOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::SimRorArgs;
use crate::runtime::{cancel_on_ctrl_c, runtime};

pub fn ror_command(args: SimRorArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.referential)
        .with_context(|| format!("cannot read {}", args.referential.display()))?;
    let referential = Referential::read(&text)
        .with_context(|| format!("referential {}", args.referential.display()))?;
    let indicators = match &args.indicators {
        None => None,
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                Indicators::from_csv(&text)
                    .with_context(|| format!("indicators {}", path.display()))?,
            )
        }
    };
    let tls = args.tls.options();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let units = referential.len();
    let opts = RorOptions {
        on: args.listen,
        tls,
        referential,
        indicators,
        record: args.record,
        token_clients: args.token_clients,
        token_lifetime: args.token_lifetime,
    };
    runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        cancel_on_ctrl_c(shutdown.clone());
        let handle = serve_ror(opts, shutdown.clone()).await?;
        println!(
            "listening on {} ({scheme}, {units} units); Ctrl-C stops and prints the store",
            handle.local_addr(),
        );
        shutdown.cancelled().await;
        let dump = handle.dump();
        handle.join().await;
        println!("{}", serde_json::to_string_pretty(&dump)?);
        Ok(ExitCode::SUCCESS)
    })
}
