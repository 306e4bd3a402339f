//! `guichet journal`: what an operator does with stored messages.
//!
//! Listings show metadata only. `show --body` prints patient data: the
//! access is recorded in the journal's audit table and logged (who, which
//! message, never what) before the body is written.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use guichet_gateway::config::JournalSpec;
use guichet_gateway::Config;
use guichet_journal::{
    BodyKey, Filter, Journal, MessageId, MessageRecord, OpenOptions, Replay, State, StoreSpec,
};
use tracing::warn;

use crate::actor::actor;
use crate::cli::{JournalArgs, JournalCommand, JournalListArgs, JournalReplayArgs, TestImportArgs};

pub fn journal_command(args: JournalArgs) -> anyhow::Result<ExitCode> {
    if let JournalCommand::Keygen { out } = &args.command {
        return keygen(out);
    }
    let Some(config_path) = &args.config else {
        bail!("give the gateway's config file with -c FILE: its [journal] section says where the journal is");
    };
    let config = Config::load(config_path)?;
    let Some(spec) = config.journal.clone() else {
        bail!("{}: no [journal] section", config_path.display());
    };
    let runtime = crate::runtime::runtime_with(Some(1))?;
    runtime.block_on(async move {
        let journal = open(&spec, config_path).await?;
        match args.command {
            JournalCommand::List(list_args) => list(&journal, list_args).await,
            JournalCommand::Show { id, body } => show(&journal, MessageId(id), body).await,
            JournalCommand::Replay(replay_args) => replay(&journal, replay_args).await,
            JournalCommand::Prune {
                bodies_older_than,
                records_older_than,
            } => prune(&journal, &spec, bodies_older_than, records_older_than).await,
            JournalCommand::Stats { json } => stats(&journal, json).await,
            JournalCommand::Keygen { .. } => Ok(ExitCode::SUCCESS),
        }
    })
}

/// `guichet test import`: the route's stored messages as a book's cases,
/// each read with its access recorded in the journal's audit.
pub fn import_command(args: &TestImportArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.journal)?;
    let Some(spec) = config.journal.clone() else {
        bail!("{}: no [journal] section", args.journal.display());
    };
    let cases = args.out.join("cases");
    std::fs::create_dir_all(&cases).with_context(|| format!("cannot make {}", cases.display()))?;
    let runtime = crate::runtime::runtime_with(Some(1))?;
    let written = runtime.block_on(async {
        let journal = open(&spec, &args.journal).await?;
        let filter = Filter {
            route: Some(args.route.clone()),
            since_ms: args.since.map(|d| now_ms() - d.as_millis() as i64),
            limit: args.limit,
            ..Filter::default()
        };
        let mut records = journal.list(filter).await?;
        records.reverse();
        let actor = actor();
        for record in &records {
            export(&journal, record, &cases, &actor).await?;
        }
        anyhow::Ok(records.len())
    })?;
    let book = format!(
        "# Messages of route {:?}, imported from the journal by guichet test import.\n\
         # PATIENT DATA: the cases hold real messages. Keep this book as the journal is kept.\n\
         name = \"{} (imported)\"\n",
        args.route, args.route
    );
    std::fs::write(args.out.join("book.toml"), book)?;
    warn!(
        route = %args.route,
        messages = written,
        book = %args.out.display(),
        "messages exported from the journal into a test book: the book holds patient data"
    );
    println!(
        "{}: {written} case(s); the cases are real messages: patient data",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One stored message as a case: its body, and what it got when stored
/// (an accept ACK from the gateway).
async fn export(
    journal: &Journal,
    record: &MessageRecord,
    cases: &Path,
    actor: &str,
) -> anyhow::Result<()> {
    journal
        .audit(now_ms(), actor, "export_body", Some(record.id))
        .await
        .context("the access could not be recorded, so the body is not exported")?;
    let body = journal.body(record.id).await?;
    let kind: String = record
        .meta
        .message_type
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = format!("{:08}-{kind}", record.id.0);
    std::fs::write(cases.join(format!("{name}.hl7")), &body)?;
    let expect =
        "# Stored and acknowledged by the gateway when it was received.\n[expect]\nack = \"AA\"\n";
    std::fs::write(cases.join(format!("{name}.toml")), expect)?;
    Ok(())
}

/// The journal that `config`'s `[journal] store` names. A SQLite file
/// must exist already: reading never creates one (`guichet run` does,
/// when its routes start).
async fn open(spec: &JournalSpec, config: &Path) -> anyhow::Result<Journal> {
    if let StoreSpec::Sqlite(path) = &spec.store {
        if !path.exists() {
            bail!(
                "no journal at {}: the [journal] store setting of {} names it, and `guichet run` \
                 creates it when it starts; check the setting, or start the gateway once",
                path.display(),
                config.display()
            );
        }
    }
    let key = spec.body_key.as_deref().map(BodyKey::load).transpose()?;
    let options = OpenOptions {
        key,
        ..OpenOptions::default()
    };
    guichet_journal::open(&spec.store, options)
        .await
        .with_context(|| format!("cannot open the journal {}", spec.store))
}

async fn list(journal: &Journal, args: JournalListArgs) -> anyhow::Result<ExitCode> {
    let filter = Filter {
        route: args.route,
        state: args.state,
        since_ms: args.since.map(|d| now_ms() - d.as_millis() as i64),
        message_type: args.message_type,
        control_id: args.control_id,
        limit: args.limit,
    };
    let records = journal.list(filter).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &records {
            writeln!(out, "{}", record_json(r))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:>8}  {:<20}  {:<12}  {:<10}  {:<16}  {:<20}  {:>3}  {:<4}",
        "ID", "RECEIVED", "ROUTE", "STATE", "TYPE", "CONTROL ID", "TRY", "ACK"
    )?;
    for r in &records {
        writeln!(
            out,
            "{:>8}  {:<20}  {:<12}  {:<10}  {:<16}  {:<20}  {:>3}  {:<4}{}",
            r.id.0,
            time_text(r.received_at_ms),
            r.route,
            r.state.as_str(),
            r.meta.message_type,
            r.meta.control_id,
            r.attempts,
            r.ack_code.as_deref().unwrap_or("-"),
            if r.redelivered { "  redelivered" } else { "" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(journal: &Journal, id: MessageId, with_body: bool) -> anyhow::Result<ExitCode> {
    let record = journal.get(id).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", record_text(&record))?;
    if with_body {
        let actor = actor();
        journal
            .audit(now_ms(), &actor, "show_body", Some(id))
            .await
            .context("the access could not be recorded, so the body is not shown")?;
        warn!(id = %id, actor = %actor, "message body printed (recorded in the journal's audit)");
        let body = journal.body(id).await?;
        writeln!(out, "--- body ---")?;
        for segment in body.split(|&b| b == b'\r').filter(|s| !s.is_empty()) {
            out.write_all(segment)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(journal: &Journal, args: JournalReplayArgs) -> anyhow::Result<ExitCode> {
    let which = match (args.id, args.route) {
        (Some(id), _) => Replay::One(MessageId(id)),
        (None, Some(route)) => {
            let mut states = vec![State::Dead];
            if args.failed {
                states.push(State::Failed);
            }
            Replay::Route { route, states }
        }
        (None, None) => bail!("give a message id, or --route"),
    };
    let count = journal.replay(which.clone()).await?;
    journal
        .audit(
            now_ms(),
            &actor(),
            "replay",
            match which {
                Replay::One(id) => Some(id),
                Replay::Route { .. } => None,
            },
        )
        .await?;
    println!("{count} message(s) back in line; a running gateway delivers them within a second");
    Ok(ExitCode::SUCCESS)
}

async fn prune(
    journal: &Journal,
    spec: &JournalSpec,
    bodies: Option<Duration>,
    records: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let bodies = bodies.unwrap_or(spec.retain_bodies);
    let records = records.unwrap_or(spec.retain_events);
    let report = journal
        .prune(
            now - bodies.as_millis() as i64,
            now - records.as_millis() as i64,
        )
        .await?;
    println!(
        "{} bod(ies) and {} record(s) deleted; messages not yet delivered are never pruned",
        report.bodies_deleted, report.records_deleted
    );
    Ok(ExitCode::SUCCESS)
}

async fn stats(journal: &Journal, json: bool) -> anyhow::Result<ExitCode> {
    let stats = journal.stats().await?;
    let now = now_ms();
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:<16}  {:>8}  {:>9}  {:>7}  {:>6}  {:>12}",
            "ROUTE", "DEPTH", "IN FLIGHT", "FAILED", "DEAD", "OLDEST (s)"
        )?;
    }
    for s in &stats {
        let oldest = s.oldest_pending_ms.map(|at| (now - at).max(0) / 1000);
        if json {
            let line = serde_json::json!({
                "route": s.route,
                "depth": s.depth,
                "in_flight": s.in_flight,
                "failed": s.failed,
                "dead": s.dead,
                "oldest_pending_age_seconds": oldest,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{:<16}  {:>8}  {:>9}  {:>7}  {:>6}  {:>12}",
                s.route,
                s.depth,
                s.in_flight,
                s.failed,
                s.dead,
                oldest.map_or("-".to_string(), |o| o.to_string())
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    write_body_key(out)?;
    println!(
        "wrote {} (mode 0600); set [journal] body_key = \"{}\" and keep a copy in a safe place: without it, sealed bodies cannot be read",
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A new random body key in `out` (mode 0600; refused if the file exists).
pub(crate) fn write_body_key(out: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = BodyKey::generate_hex()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    writeln!(file, "{key}")?;
    Ok(())
}

fn record_text(r: &MessageRecord) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let time = |v: Option<i64>| v.map_or("-".into(), time_text);
    let m = &r.meta;
    [
        format!("id:                 {}", r.id),
        format!("route:              {}", r.route),
        format!("received:           {}", time_text(r.received_at_ms)),
        format!("sender:             {} ({})", opt(&r.peer_app), r.peer_addr),
        format!(
            "MSH-3/4:            {} / {}",
            m.sending_application, m.sending_facility
        ),
        format!(
            "MSH-5/6:            {} / {}",
            m.receiving_application, m.receiving_facility
        ),
        format!("MSH-9:              {}", m.message_type),
        format!("MSH-10:             {}", m.control_id),
        format!("MSH-12:             {}", m.version),
        format!("state:              {}", r.state),
        format!("attempts:           {}", r.attempts),
        format!("redelivered:        {}", r.redelivered),
        format!("receiver ACK:       {}", opt(&r.ack_code)),
        format!("last error:         {}", opt(&r.last_error)),
        format!("next attempt:       {}", time(r.next_attempt_at_ms)),
        format!("finished:           {}", time(r.finished_at_ms)),
        format!(
            "body:               {}",
            match r.body_len {
                Some(n) => format!("{n} bytes{}", if r.sealed { ", sealed" } else { "" }),
                None => "pruned".into(),
            }
        ),
    ]
    .join("\n")
}

fn record_json(r: &MessageRecord) -> serde_json::Value {
    let m = &r.meta;
    serde_json::json!({
        "id": r.id.0,
        "route": r.route,
        "received_at": time_text(r.received_at_ms),
        "peer_app": r.peer_app,
        "peer_addr": r.peer_addr,
        "sending_application": m.sending_application,
        "sending_facility": m.sending_facility,
        "receiving_application": m.receiving_application,
        "receiving_facility": m.receiving_facility,
        "message_type": m.message_type,
        "control_id": m.control_id,
        "version": m.version,
        "state": r.state.as_str(),
        "attempts": r.attempts,
        "redelivered": r.redelivered,
        "ack_code": r.ack_code,
        "last_error": r.last_error,
        "next_attempt_at_ms": r.next_attempt_at_ms,
        "finished_at_ms": r.finished_at_ms,
        "body_len": r.body_len,
        "sealed": r.sealed,
    })
}

fn time_text(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    t.ok()
        .and_then(|t| {
            t.replace_nanosecond(0)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
