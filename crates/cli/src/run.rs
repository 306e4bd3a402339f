//! `guichet run` and `guichet check`.

use std::process::ExitCode;

use anyhow::Context;
use guichet_gateway::{check, Config, Gateway, Metrics};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::ConfigArgs;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("guichet")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let gateway = Gateway::bind(config, Metrics::default()).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(gateway.reloader(), shutdown.clone()));
        gateway.run(shutdown).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGHUP reloads; SIGTERM or SIGINT starts the graceful shutdown.
async fn signals(
    reloader: guichet_gateway::Reloader,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = reloader.reload("SIGHUP").await; }
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
        }
    }
    shutdown.cancel();
    Ok(())
}

pub fn check(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let report = check::check(&args.config)?;
    println!("{report}");
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
