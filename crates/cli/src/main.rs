//! `guichet`: secure tunnels and flow checks for hospital information
//! systems. This file parses arguments and hands off to the libraries.

mod actor;
mod apps;
mod cli;
mod demo;
mod import_stunnel;
mod init;
mod journal;
mod listen;
mod logging;
mod map;
mod map_import;
mod map_incident;
mod observed;
mod pki;
mod run;
mod runtime;
mod send;
mod sim;
mod test;
mod validate;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // While this is the only thread: pages and traces show local time.
    guichet_gateway::localtime::init();
    let args = cli::Cli::parse();
    let log_format = args.log_format;
    // The demo prints its own trace; gateway logs would drown it.
    let default_level = match args.command {
        cli::Command::Demo(_) => "warn",
        _ => "info",
    };
    let log_flush = logging::init(log_format, default_level);
    let result = match args.command {
        cli::Command::Init(a) => init::init(&a),
        cli::Command::Run(a) => run::run(&a),
        cli::Command::Check(a) => run::check(&a),
        cli::Command::Pki(a) => pki::pki(a),
        cli::Command::Apps(a) => apps::apps(a),
        cli::Command::Send(a) => send::send_command(a),
        cli::Command::Listen(a) => listen::listen_command(a),
        cli::Command::Journal(a) => journal::journal_command(a),
        cli::Command::Demo(a) => demo::demo(a),
        cli::Command::Validate(a) => validate::validate_command(&a),
        cli::Command::Convert(a) => validate::convert_command(&a),
        cli::Command::Sim(cli::SimCommand::Ror(a)) => sim::ror_command(a),
        cli::Command::Test(cli::TestCommand::Run(a)) => test::run_command(&a),
        cli::Command::Test(cli::TestCommand::Compare(a)) => test::compare_command(&a),
        cli::Command::Test(cli::TestCommand::Import(a)) => journal::import_command(&a),
        cli::Command::Test(cli::TestCommand::Generate(cli::GenerateCommand::BedAvailability(
            a,
        ))) => test::generate_command(&a),
        cli::Command::Map(cli::MapCommand::Kpis(a)) => map::kpis_command(&a),
        cli::Command::Map(cli::MapCommand::Check(a)) => map::check::check_command(&a),
        cli::Command::Map(cli::MapCommand::Export(a)) => map::export_command(&a),
        cli::Command::Map(cli::MapCommand::Build(a)) => map::build_command(&a),
        cli::Command::Map(cli::MapCommand::ImportFlows(a)) => map_import::import_flows_command(&a),
        cli::Command::Map(cli::MapCommand::Incident(a)) => map_incident::incident_command(&a),
        cli::Command::Map(cli::MapCommand::Observed(a)) => observed::observed_command(&a),
        cli::Command::Import(cli::ImportCommand::Stunnel(a)) => {
            import_stunnel::import_stunnel_command(&a)
        }
    };
    // The lines still queued are written before the error, and the
    // error's own line (JSON) after them, straight to stderr.
    drop(log_flush);
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
