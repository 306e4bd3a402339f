//! `guichet demo`: the EAI <-> DPI scenario on one machine.
//!
//! A throwaway PKI, the two gateways of `examples/tunnel/` (mllp routes,
//! mutual TLS both ways), a simulated EAI and DPI that each send every few
//! seconds (ADT^A01 one way, MDM^T02 the other), and a trace of every
//! message crossing both tunnels with its ACK.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use guichet_gateway::{
    localtime, AdminServer, Config, Gateway, MessageEvent, MessageOutcome, Metrics, StatusBoard,
};
use guichet_pki::{CaOptions, IssueRequest};
use guichet_testkit::{
    listen, send, AckPolicy, Input, ListenEvent, ListenOptions, SendOptions, SendResult,
    SendSummary, Template, TemplateContext, TlsClientOptions,
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
/// The DPI side's tunnel, where the EAI-side gateway dials in.
const DPI_TUNNEL: &str = "127.0.0.1:32100";

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
    // A certificate of the same CA that no [[app]] names: refused.
    if !pki.join("intruder.pem").exists() {
        guichet_pki::issue(&pki, &IssueRequest::new("intruder"))?;
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
    let boards = Boards {
        eai: eai_gw.status(),
        dpi: dpi_gw.status(),
    };
    let trace_gw = (eai_gw.events().subscribe(), dpi_gw.events().subscribe());
    let gateways_stop = CancellationToken::new();
    let gateways = [
        tokio::spawn(eai_gw.run(gateways_stop.clone())),
        tokio::spawn(dpi_gw.run(gateways_stop.clone())),
    ];

    let apps_stop = CancellationToken::new();
    let (dpi_tx, dpi_rx) = mpsc::channel(256);
    let (eai_tx, eai_rx) = mpsc::channel(256);
    let eai_app = listen(
        ListenOptions::new(EAI_APP_ON.parse()?),
        eai_tx,
        apps_stop.clone(),
    )
    .await?;
    let (trace, trace_rx) = mpsc::unbounded_channel();
    let trace_done = CancellationToken::new();
    let printer = tokio::spawn(print_trace(
        trace_gw,
        (eai_rx, dpi_rx),
        trace_rx,
        trace_done.clone(),
    ));

    banner(dir, args, &admins);
    let senders_stop = CancellationToken::new();
    cancel_on_ctrl_c(senders_stop.clone());
    let once = Once {
        trace: &trace,
        boards: &boards,
        stop: &senders_stop,
    };
    once.application_error(&dpi_tx, &apps_stop).await?;
    once.refused(dir).await;
    let dpi_app = listen(
        ListenOptions::new(DPI_APP_ON.parse()?),
        dpi_tx,
        apps_stop.clone(),
    )
    .await?;
    note(
        &trace,
        format!(
            "Every {}: one ADT^A01 and one MDM^T02, each one's four lines together\n",
            humantime::format_duration(args.every)
        ),
    );
    let (eai, dpi) = tokio::join!(
        simulate(
            "EAI app",
            EAI_SENDS_TO,
            Template::AdtA01,
            ("EAI", "CHU"),
            ("DPI", "CHU"),
            args,
            (&senders_stop, &trace)
        ),
        simulate(
            "DPI app",
            DPI_SENDS_TO,
            Template::MdmT02,
            ("DPI", "CHU"),
            ("EAI", "CHU"),
            args,
            (&senders_stop, &trace)
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

/// The two gateways' status boards: what they counted and refused.
struct Boards {
    eai: Arc<StatusBoard>,
    dpi: Arc<StatusBoard>,
}

/// What the demo shows once per run, before the regular traffic.
struct Once<'a> {
    trace: &'a Trace,
    boards: &'a Boards,
    stop: &'a CancellationToken,
}

impl Once<'_> {
    /// The DPI application answers one ADT^A01 with an application error
    /// (AE): it crosses both tunnels like any ACK, and both gateways count
    /// it (`guichet_messages_total{outcome="AE"}`, the status pages).
    async fn application_error(
        &self,
        dpi_events: &mpsc::Sender<ListenEvent>,
        apps_stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        note(
            self.trace,
            "Once: the DPI app answers an application error (AE)".into(),
        );
        let mut options = ListenOptions::new(DPI_APP_ON.parse()?);
        options.ack = AckPolicy::Ae;
        let failing = listen(options, dpi_events.clone(), apps_stop.clone()).await?;
        let mut opts = SendOptions::new(EAI_SENDS_TO);
        opts.count = Some(1);
        let context = TemplateContext::new(("EAI", "CHU"), ("DPI", "CHU"));
        let input = Input::template(Template::AdtA01, context);
        let trace = self.trace.clone();
        send(&opts, input, self.stop.clone(), |r| {
            sent(&trace, "EAI app", r)
        })
        .await?;
        failing.stop();
        failing.join().await;
        let counted = |board: &StatusBoard, route: &str| {
            board
                .snapshot()
                .routes
                .iter()
                .find(|r| r.name == route)
                .and_then(|r| r.messages.get("AE").copied())
                .unwrap_or(0)
        };
        let (eai, dpi) = wait_for(|| {
            let counts = (
                counted(&self.boards.eai, "to-dpi"),
                counted(&self.boards.dpi, "from-eai"),
            );
            (counts.0 > 0 && counts.1 > 0).then_some(counts)
        })
        .await
        .unwrap_or_default();
        note(
            self.trace,
            format!(
                "  counted: AE {eai} on EAI gw route to-dpi, AE {dpi} on DPI gw route from-eai \
                 (guichet_messages_total{{outcome=\"AE\"}}, status pages)\n"
            ),
        );
        Ok(())
    }

    /// An application whose certificate (from the same CA) is on no
    /// allowlist tries the DPI side's tunnel directly: the DPI gateway
    /// refuses it at the handshake, with its reason.
    async fn refused(&self, dir: &Path) {
        note(
            self.trace,
            format!("Once: an application not on the allowlist (certificate CN=intruder) dials {DPI_TUNNEL} directly"),
        );
        let pki = dir.join("pki");
        let mut opts = SendOptions::new(DPI_TUNNEL);
        opts.count = Some(1);
        opts.ack_timeout = Duration::from_secs(2);
        opts.connect_timeout = Duration::from_secs(2);
        opts.tls = Some(TlsClientOptions {
            ca: pki.join("ca.pem"),
            cert: Some(pki.join("intruder.pem")),
            key: Some(pki.join("intruder.key")),
            server_name: Some("dpi".into()),
        });
        let context = TemplateContext::new(("INTRUDER", "X"), ("DPI", "CHU"));
        let input = Input::template(Template::AdtA01, context);
        let accepted = send(&opts, input, self.stop.clone(), |_| {})
            .await
            .is_ok_and(|s| s.accepted > 0);
        let refusal = wait_for(|| {
            self.boards
                .dpi
                .snapshot()
                .recent_refusals
                .into_iter()
                .find(|r| {
                    r.route == "from-eai"
                        && r.subject.as_deref().is_some_and(|s| s.contains("intruder"))
                })
        })
        .await;
        let line = match refusal {
            Some(r) => format!(
                "{} [DPI gw ] route from-eai refused {}: {} ({})",
                now(),
                r.subject.as_deref().unwrap_or("no certificate"),
                r.reason,
                r.description
            ),
            None if accepted => {
                "  the DPI gateway let it through: check [[app]] in dpi.toml".into()
            }
            None => "  refused, but the DPI gateway did not say why in time".into(),
        };
        note(self.trace, format!("{line}\n"));
    }
}

/// `found()` once it gives something, within 5 seconds.
async fn wait_for<T>(mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = found() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    println!("  first, once: an application error (AE) answered and counted, and an application not on the allowlist refused");
    if !admins.is_empty() {
        println!(
            "  status pages: {} (metrics at /metrics)",
            admins.join(" and ")
        );
    }
    println!("  times are local");
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
    (stop, trace): (&CancellationToken, &Trace),
) -> anyhow::Result<SendSummary> {
    let mut opts = SendOptions::new(to);
    opts.count = Some(args.count.unwrap_or(u64::MAX));
    opts.every = Some(args.every);
    let input = Input::template(template, TemplateContext::new(from, dest));
    let trace = trace.clone();
    let summary = send(&opts, input, stop.clone(), |r| sent(&trace, who, r)).await?;
    Ok(summary)
}

type GatewayEvents = broadcast::Receiver<Arc<MessageEvent>>;

/// What the senders and the once-per-run scenes hand the printer.
enum Line {
    /// A sending application got its ACK back: the last of a message's
    /// four lines.
    Sent { id: String, text: String },
    /// Text printed as it comes, after any message still being gathered.
    Note(String),
}

type Trace = mpsc::UnboundedSender<Line>;

fn note(trace: &Trace, text: String) {
    let _ = trace.send(Line::Note(text));
}

/// A message's lines as they arrive, printed together once all four are
/// in (or after `GROUP_WAIT`, or at the end): lines of the two directions
/// never interleave.
#[derive(Default)]
struct Groups {
    pending: BTreeMap<String, Group>,
}

struct Group {
    since: Instant,
    /// (place in the story, text)
    lines: Vec<(u8, String)>,
}

/// A message whose four lines are not all in after this is printed as it is.
const GROUP_WAIT: Duration = Duration::from_secs(3);

/// Where a line stands in a message's story: received by the application
/// at the far end, seen by that side's gateway, seen by the sending side's
/// gateway, back at the sender.
const RECEIVED: u8 = 0;
const FAR_GATEWAY: u8 = 1;
const NEAR_GATEWAY: u8 = 2;
const SENT: u8 = 3;

impl Groups {
    fn add(&mut self, id: &str, place: u8, text: String) {
        if id.is_empty() {
            return println!("{text}");
        }
        let group = self.pending.entry(id.to_string()).or_insert_with(|| Group {
            since: Instant::now(),
            lines: Vec::with_capacity(4),
        });
        group.lines.push((place, text));
        if group.lines.len() == 4 {
            if let Some(group) = self.pending.remove(id) {
                group.print();
            }
        }
    }

    /// Prints the groups waiting longer than `older_than`, oldest first.
    fn flush(&mut self, older_than: Duration) {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, g)| g.since.elapsed() >= older_than)
            .map(|(id, _)| id.clone())
            .collect();
        let mut groups: Vec<Group> = due
            .iter()
            .filter_map(|id| self.pending.remove(id))
            .collect();
        groups.sort_by_key(|g| g.since);
        for group in groups {
            group.print();
        }
    }
}

impl Group {
    fn print(mut self) {
        self.lines.sort_by_key(|(place, _)| *place);
        let mut out = String::new();
        for (_, line) in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        println!("{out}");
    }
}

/// Prints what both gateways, both receiving applications and the senders
/// report until `done`, then what is still queued. (The gateways' event
/// streams stay open while their status boards live, so their end cannot
/// be awaited.)
async fn print_trace(
    (mut eai_gw, mut dpi_gw): (GatewayEvents, GatewayEvents),
    (mut eai_app, mut dpi_app): (mpsc::Receiver<ListenEvent>, mpsc::Receiver<ListenEvent>),
    mut lines: mpsc::UnboundedReceiver<Line>,
    done: CancellationToken,
) {
    let mut groups = Groups::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            Ok(e) = eai_gw.recv() => gateway_line(&mut groups, "EAI gw ", &e),
            Ok(e) = dpi_gw.recv() => gateway_line(&mut groups, "DPI gw ", &e),
            Some(e) = eai_app.recv() => app_line(&mut groups, "EAI app", &e),
            Some(e) = dpi_app.recv() => app_line(&mut groups, "DPI app", &e),
            Some(line) = lines.recv() => take(&mut groups, line),
            _ = tick.tick() => groups.flush(GROUP_WAIT),
            () = done.cancelled() => break,
        }
    }
    while let Ok(e) = dpi_app.try_recv() {
        app_line(&mut groups, "DPI app", &e);
    }
    while let Ok(e) = eai_app.try_recv() {
        app_line(&mut groups, "EAI app", &e);
    }
    while let Ok(e) = dpi_gw.try_recv() {
        gateway_line(&mut groups, "DPI gw ", &e);
    }
    while let Ok(e) = eai_gw.try_recv() {
        gateway_line(&mut groups, "EAI gw ", &e);
    }
    while let Ok(line) = lines.try_recv() {
        take(&mut groups, line);
    }
    groups.flush(Duration::ZERO);
}

fn take(groups: &mut Groups, line: Line) {
    match line {
        Line::Sent { id, text } => groups.add(&id, SENT, text),
        Line::Note(text) => {
            groups.flush(Duration::ZERO);
            println!("{text}");
        }
    }
}

/// Local wall-clock time of day (read once at start-up; see
/// `guichet_gateway::localtime`).
fn now() -> String {
    localtime::time_of_day(SystemTime::now())
}

fn gateway_line(groups: &mut Groups, who: &str, e: &MessageEvent) {
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
    // The routes of examples/tunnel: `from-*` listens for the other side's
    // gateway (the far end of the message), `to-*` for the local sender.
    let place = if e.route.as_str().starts_with("from-") {
        FAR_GATEWAY
    } else {
        NEAR_GATEWAY
    };
    let text = format!(
        "{} [{who}] route {:<8} {kind:<16} {id:<16} {outcome}{from}",
        now(),
        e.route.as_str()
    );
    groups.add(id, place, text);
}

fn app_line(groups: &mut Groups, who: &str, event: &ListenEvent) {
    if let ListenEvent::Message(r) = event {
        let ack = r.ack.map_or("none", |a| a.as_str());
        if let Some(h) = &r.header {
            let text = format!(
                "{} [{who}] received {:<16} {:<16} from {}, {} bytes, answered {ack}",
                now(),
                h.message_type,
                h.control_id,
                h.sending_application,
                r.size
            );
            groups.add(&h.control_id, RECEIVED, text);
        }
    }
}

fn sent(trace: &Trace, who: &str, r: &SendResult) {
    let ack = r.ack.map_or("none", |a| a.as_str());
    let text = format!(
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
    let _ = trace.send(Line::Sent {
        id: r.control_id.clone(),
        text,
    });
}
