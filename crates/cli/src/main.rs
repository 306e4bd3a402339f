//! `guichet`: secure tunnels and flow checks for hospital information
//! systems. This file parses arguments and hands off to the libraries.

mod apps;
mod cli;
mod logging;
mod pki;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let log_format = args.log_format;
    logging::init(log_format);
    let result = match args.command {
        cli::Command::Run(a) => run::run(&a),
        cli::Command::Check(a) => run::check(&a),
        cli::Command::Pki(a) => pki::pki(a),
        cli::Command::Apps(a) => apps::apps(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match log_format {
                cli::LogFormat::Text => eprintln!("error: {e:#}"),
                cli::LogFormat::Json => tracing::error!("{e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
