//! `guichet run` and `guichet check`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use guichet_atlas::mapping::{Mapping, MappingError};
use guichet_atlas::ReadError;
use guichet_gateway::check::{Level, Report};
use guichet_gateway::config::MapSpec;
use guichet_gateway::{check, AdminServer, Config, Gateway, Metrics, Reloader};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::ConfigArgs;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    crate::runtime::runtime_with(config.workers)?.block_on(async {
        // Handlers first: a SIGHUP sent as soon as a port answers must
        // reload, not kill the process.
        let signals = Signals::install()?;
        // Bound and checked before the routes: an exposed admin listener
        // stops start-up before any route accepts.
        let admin = AdminServer::prepare(&config)?;
        let map = config.map.clone();
        let gateway = Gateway::bind(config, Metrics::default()).await?;
        // Started once the material is loaded: /readyz turns 200 when the
        // routes accept.
        let _admin = admin
            .map(|admin| {
                let admin = match &map {
                    Some(spec) => admin.serve_map(
                        Arc::new(crate::map::live::LiveSite::new(spec)),
                        gateway.journal(),
                    ),
                    None => admin,
                };
                admin.start(gateway.status())
            })
            .transpose()?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signals.serve(gateway.reloader(), shutdown.clone()));
        gateway.run(shutdown).await;
        Ok(ExitCode::SUCCESS)
    })
}

struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let install = |kind| signal(kind).context("cannot install signal handlers");
        Ok(Signals {
            hup: install(SignalKind::hangup())?,
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }

    /// SIGHUP reloads; SIGTERM or SIGINT starts the graceful shutdown.
    async fn serve(mut self, reloader: Reloader, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => { let _ = reloader.reload("SIGHUP").await; }
                _ = self.term.recv() => { info!("SIGTERM: shutting down"); break; }
                _ = self.int.recv() => { info!("SIGINT: shutting down"); break; }
            }
        }
        shutdown.cancel();
    }
}

pub fn check(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let mut report = check::check(&args.config)?;
    if let Some(map) = Config::load(&args.config)?.map {
        check_map_data(&map, &mut report);
    }
    println!("{report}");
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `[map]`'s data folder and mapping file read as `/map` will read them
/// (the gateway's own check has said whether they can be opened).
fn check_map_data(spec: &MapSpec, report: &mut Report) {
    let subject = "[map]";
    match guichet_atlas::read_dir(&spec.data) {
        Ok(atlas) => report.push(
            Level::Ok,
            subject,
            format!(
                "data {}: {} establishment(s), {} declared flow(s)",
                spec.data.display(),
                atlas.establishments.len(),
                atlas.all_flows().count()
            ),
        ),
        Err(ReadError::Io { path, .. }) if path == spec.data => {}
        Err(e) => report.push(Level::Error, subject, format!("data: {e}")),
    }
    match spec.mapping.as_deref().map(Mapping::read) {
        None | Some(Ok(_)) | Some(Err(MappingError::Io { .. })) => {}
        Some(Err(e)) => report.push(Level::Error, subject, format!("mapping: {e}")),
    }
}
