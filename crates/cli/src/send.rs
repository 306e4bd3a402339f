//! `guichet send`: a sending application that checks every ACK.

use std::process::ExitCode;

use anyhow::Context;
use guichet_testkit::{
    send, Input, Outcome, SendOptions, SendResult, Template, TemplateContext, TlsClientOptions,
};
use tokio_util::sync::CancellationToken;

use crate::cli::{ClientTlsArgs, SendArgs};
use crate::runtime::{cancel_on_ctrl_c, runtime};

pub fn send_command(args: SendArgs) -> anyhow::Result<ExitCode> {
    let input = input(&args)?;
    let mut opts = SendOptions::new(args.to.clone());
    opts.count = args.count;
    opts.every = args.every;
    opts.conns = usize::try_from(args.conns).unwrap_or(1);
    opts.ack_timeout = args.ack_timeout;
    opts.tls = client_tls(&args.tls);
    runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        cancel_on_ctrl_c(shutdown.clone());
        let summary = send(&opts, input, shutdown, print_result).await?;
        println!("{summary}");
        Ok(if summary.all_accepted() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn input(args: &SendArgs) -> anyhow::Result<Input> {
    if let Some(file) = &args.file {
        return Ok(Input::from_file(file)?);
    }
    let name = args
        .template
        .as_deref()
        .context("give a FILE or --template")?;
    let template: Template = name.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let from = split_hd(&args.from);
    let to = split_hd(&args.to_app);
    Ok(Input::template(template, TemplateContext::new(from, to)))
}

/// `APP^FACILITY` into its two parts (facility may be empty).
fn split_hd(value: &str) -> (&str, &str) {
    value.split_once('^').unwrap_or((value, ""))
}

pub(crate) fn client_tls(args: &ClientTlsArgs) -> Option<TlsClientOptions> {
    args.tls_ca.as_ref().map(|ca| TlsClientOptions {
        ca: ca.clone(),
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
        server_name: args.server_name.clone(),
    })
}

/// One line per message: sequence, connection, control id, type, ACK, latency.
fn print_result(r: &SendResult) {
    let ack = r.ack.map_or("-", |a| a.as_str());
    let verdict = match r.outcome {
        Outcome::Accepted => "ok",
        Outcome::Rejected => "REJECTED",
        Outcome::NoAck => "NO ACK",
        Outcome::Mismatched => "MSA-2 MISMATCH",
        Outcome::NotSent => "NOT SENT",
    };
    let detail = r
        .error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    println!(
        "#{:<5} conn {:<3} {:<20} {:<18} ACK {:<2} {:>9.2} ms  {verdict}{detail}",
        r.seq,
        r.conn,
        r.control_id,
        r.message_type,
        ack,
        r.latency.as_secs_f64() * 1e3
    );
}
