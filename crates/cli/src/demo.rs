//! `guichet demo`: the EAI <-> DPI scenario on one machine.
//!
//! A throwaway PKI, the two gateways of `examples/tunnel/` (mllp routes,
//! mutual TLS both ways), a simulated EAI and DPI that each send every few
//! seconds (ADT^A01 one way, MDM^T02 the other), and a trace of every
//! message crossing both tunnels with its ACK.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use guichet_gateway::{AdminServer, Config, Gateway, MessageEvent, MessageOutcome, Metrics};
use guichet_pki::{CaOptions, IssueRequest};
use guichet_testkit::{
    listen, send, Input, ListenEvent, ListenOptions, SendOptions, SendResult, SendSummary,
    Template, TemplateContext,
};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::runtime::{cancel_on_ctrl_c, runtime};

/// The example configurations, used as they are: the demo shows exactly
/// what a user would deploy.
const EAI_TOML: &str = include_str!("../../../examples/tunnel/eai.toml");
const DPI_TOML: &str = include_str!("../../../examples/tunnel/dpi.toml");

/// Where the simulated applications sit (see examples/tunnel/*.toml).
const EAI_SENDS_TO: &str = "127.0.0.1:21010";
const DPI_SENDS_TO: &str = "127.0.0.1:22010";
const DPI_APP_ON: &str = "127.0.0.1:21011";
const EAI_APP_ON: &str = "127.0.0.1:22011";

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (dir, _temporary) = match &args.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("guichet-demo-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    prepare(&dir)?;
    runtime()?.block_on(run(&dir, &args))
}

/// A test PKI (CA, `eai` and `dpi` certificates) and the two configs.
fn prepare(dir: &Path) -> anyhow::Result<()> {
    let pki = dir.join("pki");
    if !pki.join("ca.pem").exists() {
        guichet_pki::init(&pki, &CaOptions::default())?;
        for name in ["eai", "dpi"] {
            let mut req = IssueRequest::new(name);
            req.dns = vec!["localhost".into()];
            req.ips = vec![[127, 0, 0, 1].into()];
            guichet_pki::issue(&pki, &req)?;
        }
    }
    for (file, text) in [("eai.toml", EAI_TOML), ("dpi.toml", DPI_TOML)] {
        std::fs::write(dir.join(file), text)
            .with_context(|| format!("cannot write {}", dir.join(file).display()))?;
    }
    Ok(())
}

async fn run(dir: &Path, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let (eai_gw, eai_admin) = gateway(&dir.join("eai.toml"))
        .await
        .context("EAI-side gateway")?;
    let (dpi_gw, dpi_admin) = gateway(&dir.join("dpi.toml"))
        .await
        .context("DPI-side gateway")?;
    let admins: Vec<String> = [&eai_admin, &dpi_admin]
        .into_iter()
        .flatten()
        .map(|a| format!("http://{}/status", a.local_addr()))
        .collect();
    let trace_gw = (eai_gw.events().subscribe(), dpi_gw.events().subscribe());
    let gateways_stop = CancellationToken::new();
    let gateways = [
        tokio::spawn(eai_gw.run(gateways_stop.clone())),
        tokio::spawn(dpi_gw.run(gateways_stop.clone())),
    ];

    let apps_stop = CancellationToken::new();
    let (dpi_tx, dpi_rx) = mpsc::channel(256);
    let (eai_tx, eai_rx) = mpsc::channel(256);
    let dpi_app = listen(
        ListenOptions::new(DPI_APP_ON.parse()?),
        dpi_tx,
        apps_stop.clone(),
    )
    .await?;
    let eai_app = listen(
        ListenOptions::new(EAI_APP_ON.parse()?),
        eai_tx,
        apps_stop.clone(),
    )
    .await?;
    let trace_done = CancellationToken::new();
    let printer = tokio::spawn(print_trace(trace_gw, (eai_rx, dpi_rx), trace_done.clone()));

    banner(dir, args, &admins);
    let senders_stop = CancellationToken::new();
    cancel_on_ctrl_c(senders_stop.clone());
    let (eai, dpi) = tokio::join!(
        simulate(
            "EAI app",
            EAI_SENDS_TO,
            Template::AdtA01,
            ("EAI", "CHU"),
            ("DPI", "CHU"),
            args,
            &senders_stop
        ),
        simulate(
            "DPI app",
            DPI_SENDS_TO,
            Template::MdmT02,
            ("DPI", "CHU"),
            ("EAI", "CHU"),
            args,
            &senders_stop
        ),
    );
    let (eai, dpi) = (eai?, dpi?);

    dpi_app.stop();
    eai_app.stop();
    dpi_app.join().await;
    eai_app.join().await;
    gateways_stop.cancel();
    for gateway in gateways {
        let _ = gateway.await;
    }
    trace_done.cancel();
    let _ = printer.await;
    println!("EAI app: {eai}");
    println!("DPI app: {dpi}");
    Ok(if eai.all_accepted() && dpi.all_accepted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A gateway and its admin server (status page, metrics).
async fn gateway(config: &Path) -> anyhow::Result<(Gateway, Option<AdminServer>)> {
    let config = Config::load(config)?;
    let admin = AdminServer::prepare(&config)?;
    let gateway = Gateway::bind(config, Metrics::default()).await?;
    let admin = admin
        .map(|admin| admin.start(gateway.status()))
        .transpose()?;
    Ok((gateway, admin))
}

fn banner(dir: &Path, args: &DemoArgs, admins: &[String]) {
    println!(
        "guichet demo: EAI <-> DPI over mutual TLS, files in {}",
        dir.display()
    );
    println!("  EAI app -> 127.0.0.1:21010 [EAI gw to-dpi] =mTLS=> [DPI gw from-eai] -> DPI app 127.0.0.1:21011");
    println!("  DPI app -> 127.0.0.1:22010 [DPI gw to-eai] =mTLS=> [EAI gw from-dpi] -> EAI app 127.0.0.1:22011");
    let count = args
        .count
        .map_or("until Ctrl-C".to_string(), |n| format!("{n} each way"));
    println!(
        "  one ADT^A01 and one MDM^T02 every {}, {count}",
        humantime::format_duration(args.every)
    );
    if !admins.is_empty() {
        println!(
            "  status pages: {} (metrics at /metrics)",
            admins.join(" and ")
        );
    }
    println!();
}

/// One simulated application sending `template` through its gateway.
async fn simulate(
    who: &'static str,
    to: &str,
    template: Template,
    from: (&str, &str),
    dest: (&str, &str),
    args: &DemoArgs,
    stop: &CancellationToken,
) -> anyhow::Result<SendSummary> {
    let mut opts = SendOptions::new(to);
    opts.count = Some(args.count.unwrap_or(u64::MAX));
    opts.every = Some(args.every);
    let input = Input::template(template, TemplateContext::new(from, dest));
    let summary = send(&opts, input, stop.clone(), |r| print_sent(who, r)).await?;
    Ok(summary)
}

type GatewayEvents = broadcast::Receiver<Arc<MessageEvent>>;

/// Prints what both gateways and both receiving applications report until
/// `done`, then what is still queued. (The gateways' event streams stay
/// open while their status boards live, so their end cannot be awaited.)
async fn print_trace(
    (mut eai_gw, mut dpi_gw): (GatewayEvents, GatewayEvents),
    (mut eai_app, mut dpi_app): (mpsc::Receiver<ListenEvent>, mpsc::Receiver<ListenEvent>),
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            Ok(e) = eai_gw.recv() => print_gateway("EAI gw ", &e),
            Ok(e) = dpi_gw.recv() => print_gateway("DPI gw ", &e),
            Some(e) = eai_app.recv() => print_app("EAI app", &e),
            Some(e) = dpi_app.recv() => print_app("DPI app", &e),
            () = done.cancelled() => break,
        }
    }
    while let Ok(e) = dpi_app.try_recv() {
        print_app("DPI app", &e);
    }
    while let Ok(e) = eai_app.try_recv() {
        print_app("EAI app", &e);
    }
    while let Ok(e) = dpi_gw.try_recv() {
        print_gateway("DPI gw ", &e);
    }
    while let Ok(e) = eai_gw.try_recv() {
        print_gateway("EAI gw ", &e);
    }
}

/// Wall-clock time in UTC (the local offset cannot be read safely once
/// threads run).
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn print_gateway(who: &str, e: &MessageEvent) {
    let (kind, id) = e.header.as_ref().map_or(("(not HL7)", ""), |h| {
        (h.message_type.as_str(), h.control_id.as_str())
    });
    let from = e
        .peer_app
        .as_ref()
        .map_or(String::new(), |app| format!(" from app \"{app}\""));
    let outcome = match &e.outcome {
        MessageOutcome::Acknowledged {
            code,
            id_matches,
            latency,
        } => format!(
            "ACK {} {:.1} ms{}",
            code.map_or("?", |c| c.as_str()),
            latency.as_secs_f64() * 1e3,
            if *id_matches { "" } else { " MSA-2 MISMATCH" }
        ),
        other => other.label().to_string(),
    };
    println!(
        "{} [{who}] route {:<8} {kind:<16} {id:<16} {outcome}{from}",
        now(),
        e.route.as_str()
    );
}

fn print_app(who: &str, event: &ListenEvent) {
    if let ListenEvent::Message(r) = event {
        let ack = r.ack.map_or("none", |a| a.as_str());
        if let Some(h) = &r.header {
            println!(
                "{} [{who}] received {:<16} {:<16} from {}, {} bytes, answered {ack}",
                now(),
                h.message_type,
                h.control_id,
                h.sending_application,
                r.size
            );
        }
    }
}

fn print_sent(who: &str, r: &SendResult) {
    let ack = r.ack.map_or("none", |a| a.as_str());
    println!(
        "{} [{who}] sent     {:<16} {:<16} ACK {ack} in {:.1} ms end to end{}",
        now(),
        r.message_type,
        r.control_id,
        r.latency.as_secs_f64() * 1e3,
        if r.msa2_matches {
            ""
        } else {
            " (MSA-2 MISMATCH)"
        }
    );
    println!();
}
