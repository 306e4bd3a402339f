//! The command line, as clap reads it.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// guichet: one gateway for the data flows of a hospital information system.
#[derive(Parser, Debug)]
#[command(long_about = LONG_ABOUT)]
#[command(name = "guichet", version, propagate_version = true)]
#[command(
    after_help = "Start with `guichet init`: it writes a commented guichet.toml and prints the \
`guichet pki` and `guichet apps` commands to run, then `guichet check -c guichet.toml` and \
`guichet run -c guichet.toml`."
)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line for shipping.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// What `guichet --help` says first: every capability, and its commands.
const LONG_ABOUT: &str = "\
guichet: one gateway for the data flows of a hospital information system.

  - Tunnels: plain TCP links (HL7 v2 over MLLP, DICOM, ...) in mutual TLS without
    changing either application, admitting only the partner applications listed
    by certificate, certificates reloaded live (run, check, pki, apps).
  - HL7 events: on mllp routes, each message's type, control id and ACK, never its
    content (status page, metrics; simulators: send, listen).
  - Store-and-forward journal: messages stored before they are acknowledged, then
    delivered in order with retries (journal).
  - The HTTPS gateway, the \"guichet unique\": partner applications reach regional
    services such as the ROR by certificate, rule by rule (http routes of run).
  - Bed-availability validation and a ROR simulator (validate, convert, sim ror).
  - Test books, replayed against one engine or compared between two (test).
  - The map of the information system, declared and observed (map).
  - Getting started: a commented starter config (init), or one made from
    stunnel's configs with what changes in meaning (import stunnel).
  - The whole EAI <-> DPI scenario on this machine (demo).";

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a commented starter guichet.toml (tunnel routes, an HTTPS gateway, a
    /// store-and-forward route) and print the commands that make its test certificates.
    Init(crate::init::InitArgs),
    /// Run the gateway: every route of the config file (SIGHUP reloads, SIGTERM drains and stops).
    Run(ConfigArgs),
    /// Validate a config file without running it: syntax, certificates, keys, chains, expiry, names.
    Check(ConfigArgs),
    /// A test PKI (CA, certificates for gateways and partners, revocation), inspection of
    /// certificates and PKCS#12 files, and requests (CSR) for real IGC Santé certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The allowlist of partner applications, recognised by certificate.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Send HL7 messages over MLLP and check every ACK (a sending application simulator).
    Send(SendArgs),
    /// Receive HL7 messages over MLLP and answer ACKs (a receiving application simulator).
    Listen(ListenArgs),
    /// The store-and-forward journal: list, show, replay and prune stored messages, queue figures.
    Journal(JournalArgs),
    /// The whole EAI <-> DPI scenario on this machine: throwaway PKI, two gateways with
    /// mutual TLS both ways, simulated applications, and a live trace of every message.
    Demo(DemoArgs),
    /// Check bed-availability files for the ROR (guichet's XML or FHIR), offline: FINESS,
    /// units against a referential, value sets, counts, dates. Exit 0 when no file has an
    /// error, 1 when one does, 2 on a usage error.
    Validate(ValidateArgs),
    /// Print a bed-availability file in another form: FHIR Bundle, guichet's XML, or the
    /// PATCH requests the national ROR takes (a FHIR batch).
    Convert(ConvertArgs),
    /// Stand-ins for outside services, to test flows end to end without them.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Test books: cases (messages and what they must give) replayed against an
    /// integration engine over MLLP, HTTP(S) or a drop folder.
    #[command(subcommand)]
    Test(TestCommand),
    /// The map of the information system (it-lanscape's data folder): indicators, data
    /// quality, incident simulation, flows observed by the gateway, static site, exports.
    #[command(subcommand)]
    Map(MapCommand),
    /// Turn another tool's configuration into guichet's.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// stunnel configuration files into one guichet config: each section becomes a route
    /// (client = yes: plain in, TLS out; otherwise TLS in, plain out), its certificate files a
    /// TLS profile, and the partner certificates it can read [[app]] entries. What changes
    /// in meaning (allowlist instead of any certificate of the CA, server names checked,
    /// TLS 1.2 no longer pinned) and every option not carried over are printed on stderr.
    /// Exit 0 when written, 1 on bad input (unreadable file, syntax error, section without
    /// accept or connect, two sections on one listen address), 2 on a usage error.
    Stunnel(ImportStunnelArgs),
}

/// `guichet import stunnel`.
#[derive(Args, Debug)]
pub struct ImportStunnelArgs {
    /// stunnel configuration files (e.g. each host's stunnel.conf), merged into one config.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Write the config here (paths in it relative to its folder) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Make `mllp` routes (HL7 over MLLP: each message and ACK recorded) instead of `tcp`.
    #[arg(long)]
    pub mllp: bool,
}

#[derive(Subcommand, Debug)]
pub enum MapCommand {
    /// The dashboard's figures (it-lanscape's rules: occurrences, process and application
    /// alignment, mutualisation, completeness) and guichet's own: encrypted flows, EAI
    /// dependency, most connected applications, critical applications in clear.
    Kpis(MapKpisArgs),
    /// The data-quality score (it-lanscape's checks and weights: completeness, coherence,
    /// validity, exploitability) and its findings by severity, with guichet's own checks
    /// apart. Exit 1 when a finding is critical, 0 otherwise, 2 when the folder cannot be
    /// read.
    Check(MapCheckArgs),
    /// What an outage (application, server, flow, hosting provider; with --eai-nodes an
    /// EAI or a gateway route) does downstream: it-lanscape's rules, or guichet's.
    Incident(crate::map_incident::MapIncidentArgs),
    /// The map in other tools' forms: the flow matrix as CSV, the business map as a draw.io
    /// file, the flows as a Mermaid flowchart, or the whole model with its indicators as JSON.
    Export(MapExportArgs),
    /// The map as a static, self-contained site for a nightly job: indicators with filters,
    /// business map, applications, flows, flow matrix, incident simulation, data quality.
    /// It opens from disk; nothing is fetched from anywhere.
    Build(MapBuildArgs),
    /// Flows from a spreadsheet (CSV, XLSX, XLS, ODS) into an establishment's <etab>.flux.json,
    /// as it-lanscape's flow import does: its columns guessed or mapped, replace or merge.
    ImportFlows(MapImportFlowsArgs),
    /// The flows the gateway observed (route, parties, message type, TLS on each side,
    /// counts, first and last seen, ACK codes or status classes), read from its journal;
    /// with --mapping, each party's trigramme.
    Observed(MapObservedArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportMode {
    /// The sheet's flows replace the file's.
    Replace,
    /// Same id (or, for rows without one, same source|target|protocol|messageType): updated;
    /// others added.
    Merge,
}

#[derive(Args, Debug)]
pub struct MapImportFlowsArgs {
    /// The spreadsheet: .csv (comma or semicolon), .xlsx, .xls or .ods.
    #[arg(value_name = "SHEET")]
    pub sheet: PathBuf,
    /// The establishment's flow file in the data folder (created if missing).
    #[arg(long, value_name = "FILE")]
    pub into: PathBuf,
    /// The establishment's name, for a new file (else the file's own, else its name).
    #[arg(long, value_name = "NAME")]
    pub etab: Option<String>,
    /// A column for a field, FIELD=HEADER (fields: id, sourceTrigramme, targetTrigramme,
    /// protocol, port, messageType, interfaceType, eaiName, description); others are guessed.
    #[arg(long = "column", value_name = "FIELD=HEADER")]
    pub columns: Vec<String>,
    /// The workbook's sheet (default: the first whose name holds "flux", else the first).
    #[arg(long = "sheet", value_name = "NAME")]
    pub sheet_name: Option<String>,
    /// replace: the sheet's flows replace the file's; merge: same id (or same ends,
    /// protocol and type) updated, others added.
    #[arg(long, value_enum, default_value_t = ImportMode::Replace)]
    pub mode: ImportMode,
    /// Print what would be written; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct MapBuildArgs {
    /// it-lanscape's data folder.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// The site's folder (created; its index.html replaced).
    #[arg(long, value_name = "SITE")]
    pub out: PathBuf,
    /// Flows the gateway observed (its journal), shown beside the declared ones.
    #[command(flatten)]
    pub observed: ObservedSource,
    /// The language the site opens in (the other is a click away).
    #[arg(long, value_enum, default_value_t = Lang::Fr)]
    pub lang: Lang,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Drawio,
    Mermaid,
    Json,
}

#[derive(Args, Debug)]
pub struct MapExportArgs {
    /// it-lanscape's data folder.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// csv: the flow matrix; drawio: the business map; mermaid: the flows as a
    /// flowchart; json: the whole model with its indicators.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Flows the gateway observed (its journal): the matrix's observed and shadow cells.
    #[command(flatten)]
    pub observed: ObservedSource,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The language of headings and labels.
    #[arg(long, value_enum, default_value_t = Lang::Fr)]
    pub lang: Lang,
}

/// Where observed flows are read, and how their parties are named.
#[derive(Args, Debug, Clone, Default)]
pub struct ObservedSource {
    /// The gateway's journal: its SQLite file, or a postgres:// URL.
    #[arg(long, value_name = "PATH_OR_URL", group = "journal_store")]
    pub journal: Option<String>,
    /// The gateway's configuration file: the journal its [journal] section names, as
    /// `guichet journal -c` reads it (a PostgreSQL password stays off the command line).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        group = "journal_store"
    )]
    pub config: Option<PathBuf>,
    /// A TOML file naming observed parties by trigramme ([parties] "EAI^CHU" = "ENO",
    /// [routes] "to-dpi" = "ORB").
    #[arg(long, value_name = "FILE", requires = "journal_store")]
    pub mapping: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MapObservedArgs {
    #[command(flatten)]
    pub source: ObservedSource,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The dashboard's filters, as it-lanscape offers them (not the search box).
#[derive(Args, Debug, Clone, Default)]
pub struct MapFilterArgs {
    /// Only this establishment (repeat for several).
    #[arg(long = "etab", value_name = "NAME")]
    pub etab: Vec<String>,
    /// Only this domain (repeat for several).
    #[arg(long = "domain", value_name = "NAME")]
    pub domain: Vec<String>,
    /// Only critical applications, or only the others.
    #[arg(long, value_enum)]
    pub criticality: Option<CriticalityArg>,
    /// Only applications hosted here (`hebergement`, exactly).
    #[arg(long, value_name = "HOSTING")]
    pub hosting: Option<String>,
    /// Only applications with this interface family (Medicale, Administrative, ...).
    #[arg(long, value_name = "FAMILY")]
    pub interface: Option<String>,
    /// Only applications shared between establishments (yes), or only the others (no).
    #[arg(long, value_enum)]
    pub multi: Option<YesNo>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CriticalityArg {
    #[value(alias = "critique")]
    Critical,
    Standard,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum YesNo {
    #[value(alias = "oui")]
    Yes,
    #[value(alias = "non")]
    No,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum MapFormat {
    Human,
    Json,
}

#[derive(Args, Debug)]
pub struct MapKpisArgs {
    /// it-lanscape's data folder (<etab>.json, .flux.json, .infra.json, .network.json,
    /// trigrammes.json).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    #[command(flatten)]
    pub filters: MapFilterArgs,
    /// human: a line per figure; json: one object.
    #[arg(long, value_enum, default_value_t = MapFormat::Human)]
    pub format: MapFormat,
    /// Observed flows for guichet's figures (share observed, shadow flows).
    #[command(flatten)]
    pub observed: ObservedSource,
}

#[derive(Args, Debug)]
pub struct MapCheckArgs {
    /// it-lanscape's data folder (<etab>.json, .flux.json, .infra.json, .network.json,
    /// trigrammes.json).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// human: the score, the dimensions, the findings by severity; json: one object
    /// (`score`, `dimensions`, `findings`).
    #[arg(long, value_enum, default_value_t = MapFormat::Human)]
    pub format: MapFormat,
    /// Language of the findings and of the Markdown report.
    #[arg(long, value_enum, default_value_t = Lang::Fr)]
    pub lang: Lang,
    /// Also write the quality report in Markdown to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TestCommand {
    /// Run every case of a book against its targets and check each expectation: the
    /// answer (ACK code, HTTP status, drop-folder verdict, violations, fields) and what
    /// reached the target's recording sink. Exit 0 when every case passes, 1 when one
    /// fails, 2 on a bad book.
    Run(TestRunArgs),
    /// Run every case against an old engine and a new one and report, per case, the
    /// differences in outcome, answer fields and what each sent downstream, after
    /// normalisation (MSH-7, MSH-10, MSA-2, times...) and, with --learn-noise, fields
    /// that differ between two runs against the old one. Exit 0 when no case differs
    /// unexpectedly, 1 when one does, 2 on a bad book.
    Compare(TestCompareArgs),
    /// Write a book of cases.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Turn the messages a store-and-forward route stored into a book's cases, so real
    /// traffic can be replayed against a new engine. The bodies are patient data: the
    /// book must be kept as such.
    Import(TestImportArgs),
}

/// `guichet test import`.
#[derive(Args, Debug)]
pub struct TestImportArgs {
    /// The gateway's configuration file: its [journal] section says where the journal is.
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// The store-and-forward route whose messages become cases.
    #[arg(long)]
    pub route: String,
    /// Only messages received within this long, e.g. 7d.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// The book's folder, made if absent.
    #[arg(long, value_name = "BOOK")]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// The boundary book of a referential: a valid document per unit, each rule broken
    /// once, edge values (0 beds, the largest count, 2A/2B FINESS, no unit); each case
    /// expects what guichet's own rules say of it.
    BedAvailability(GenerateBedArgs),
}

/// `guichet test generate bed-availability`.
#[derive(Args, Debug)]
pub struct GenerateBedArgs {
    /// The units the ROR knows: CSV `finess_eg,unit_id,label`, or the same as JSON.
    #[arg(long, value_name = "FILE")]
    pub referential: PathBuf,
    /// The book's folder, made if absent.
    #[arg(long, value_name = "BOOK")]
    pub out: PathBuf,
    /// Date the documents as of this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<time::OffsetDateTime>,
}

/// TLS of the targets given on the command line of `guichet test`.
#[derive(Args, Debug)]
pub struct BookTlsArgs {
    /// The CA that issued the TLS targets' certificates, for the targets given on the
    /// command line.
    #[arg(long, value_name = "CA.pem")]
    pub ca: Option<PathBuf>,
    /// The client certificate presented to those targets (mutual TLS).
    #[arg(long, value_name = "CERT.pem", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "KEY.pem", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// The HTML report of `guichet test run` and `guichet test compare`.
#[derive(Args, Debug)]
pub struct HtmlArgs {
    /// Write a self-contained HTML report here (no outside resource; opens from disk).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Keep message content out of the HTML report: where values differ or failed,
    /// not the values (for books replaying real traffic).
    #[arg(long)]
    pub no_bodies: bool,
    /// The HTML report's language.
    #[arg(long, value_enum, default_value = "fr")]
    pub lang: HtmlLang,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HtmlLang {
    Fr,
    En,
}

/// `guichet test compare`.
#[derive(Args, Debug)]
pub struct TestCompareArgs {
    /// The book's folder.
    pub book: PathBuf,
    /// The engine in place: a target of the book, or a URL.
    #[arg(long, value_name = "NAME|URL")]
    pub old: String,
    /// The engine replacing it: a target of the book, or a URL.
    #[arg(long, value_name = "NAME|URL")]
    pub new: String,
    /// The record file of the sink downstream of the old engine.
    #[arg(long, value_name = "FILE")]
    pub old_sink: Option<PathBuf>,
    /// The record file of the sink downstream of the new engine.
    #[arg(long, value_name = "FILE")]
    pub new_sink: Option<PathBuf>,
    /// Run the book twice against the old engine first: fields that differ between
    /// those runs are noise, left out of the comparison.
    #[arg(long)]
    pub learn_noise: bool,
    #[command(flatten)]
    pub tls: BookTlsArgs,
    /// Write a JUnit XML report here (a failure per unexpected difference).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub html: HtmlArgs,
}

/// `guichet test run`.
#[derive(Args, Debug)]
pub struct TestRunArgs {
    /// The book's folder (its book.toml, its cases).
    pub book: PathBuf,
    /// Defines or overrides a target: NAME=URL with mllp://, mllps://, http://,
    /// https:// or folder:///path (repeatable).
    #[arg(long = "target", value_name = "NAME=URL")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub tls: BookTlsArgs,
    /// The record file of the sink downstream of target NAME: NAME=FILE, a record of
    /// `guichet sim ror --record` or `guichet listen --record` (repeatable).
    #[arg(long = "sink", value_name = "NAME=FILE")]
    pub sinks: Vec<String>,
    /// Write a JUnit XML report here (one test case per case and target).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub html: HtmlArgs,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// The national ROR's bed-availability API: PATCH and GET on
    /// /ws-synchro-dispo-lits-fhir/Location, answered as the ROR does (404, 412, 400
    /// OperationOutcome). Its store is printed as JSON when it stops (Ctrl-C, SIGTERM).
    Ror(SimRorArgs),
}

#[derive(Args, Debug)]
pub struct SimRorArgs {
    /// Address to listen on, e.g. 127.0.0.1:8443 (port 0 picks one, printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// The units the ROR knows (CSV finess_eg,unit_id,label, or JSON): others get 404,
    /// units named twice 412.
    #[arg(long, value_name = "FILE")]
    pub referential: PathBuf,
    /// The indicator tuples it accepts (CSV named by slice): others get 400 business-rule.
    #[arg(long, value_name = "FILE")]
    pub indicators: Option<PathBuf>,
    /// Append every accepted operation to this file, one JSON line each (time, unit,
    /// operation, capacity).
    #[arg(long, value_name = "FILE.jsonl")]
    pub record: Option<PathBuf>,
    /// The CN of a client certificate that may get an access token at POST /token
    /// (OAuth2 client credentials over mutual TLS, RFC 8705; repeatable). With it, every
    /// request on Location needs a token bound to its certificate.
    #[arg(long = "token-client", value_name = "CN")]
    pub token_clients: Vec<String>,
    /// How long a token is good for.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_lifetime: std::time::Duration,
    #[command(flatten)]
    pub tls: TlsServerArgs,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Files, or folders whose .xml and .json files are read (sub-folders included).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The units the ROR knows: CSV with the header finess_eg,unit_id,label, or the same
    /// as a JSON array. Without it, units and establishments are not checked.
    #[arg(long, value_name = "FILE")]
    pub referential: Option<PathBuf>,
    /// The indicator tuples the national ROR accepts (CSV named by slice). Without it,
    /// indicator.invalid is not checked.
    #[arg(long, value_name = "FILE")]
    pub indicators: Option<PathBuf>,
    /// Severities per rule code, stale_after and future_tolerance (TOML).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// human: a line per file and per violation; json: one array, a record per file;
    /// junit: one test case per file, for CI.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
    /// The language of messages.
    #[arg(long, value_enum, default_value_t = Lang::Fr)]
    pub lang: Lang,
    /// A larger file is refused unread (file.too_large).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_bytes: u64,
    /// Check dates (date.future, date.stale) as of this time instead of now, to replay old
    /// files: ISO 8601 with offset (2026-12-05T10:00:00+01:00).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<time::OffsetDateTime>,
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an ISO 8601 date and time with offset: {e}"))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
    Junit,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Fr,
    En,
}

impl From<Lang> for guichet_atlas::Lang {
    fn from(lang: Lang) -> Self {
        match lang {
            Lang::Fr => guichet_atlas::Lang::Fr,
            Lang::En => guichet_atlas::Lang::En,
        }
    }
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The form to print.
    #[arg(long, value_enum)]
    pub to: FormArg,
    /// How FHIR coded slices are written: valueCodeableConcept (as the ANS documentation
    /// writes them) or valueCode.
    #[arg(long, value_enum, default_value_t = CodingArg::CodeableConcept)]
    pub coding: CodingArg,
    /// A bed-availability file in any form.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormArg {
    Fhir,
    Xml,
    Patch,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodingArg {
    CodeableConcept,
    Code,
}

#[derive(Args, Debug)]
pub struct JournalArgs {
    /// The gateway's configuration file: its [journal] section says where the journal is
    /// (needed by every command but keygen; before or after the command).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: JournalCommand,
}

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Stored messages, newest first (metadata only: MSH fields, state, ACK codes).
    List(JournalListArgs),
    /// One message's metadata; --body also prints the message itself (patient data: audited).
    Show {
        /// The message's id (first column of `journal list`).
        id: i64,
        /// Print the stored message too. The access is recorded in the journal and logged.
        #[arg(long)]
        body: bool,
    },
    /// Put messages back in line for delivery: one by id, or a route's dead (and failed) ones.
    Replay(JournalReplayArgs),
    /// Delete delivered bodies and old records now, per the retention settings or the given ages.
    Prune {
        /// Delete bodies of messages delivered longer ago than this (default: [journal] retain_bodies).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        bodies_older_than: Option<std::time::Duration>,
        /// Delete whole records received longer ago than this (default: [journal] retain_events).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        records_older_than: Option<std::time::Duration>,
    },
    /// Queue depth, oldest message waiting and dead messages, per route (routes with nothing owed are not listed).
    Stats {
        /// One JSON object per route and line.
        #[arg(long)]
        json: bool,
    },
    /// Write a new random key for sealing stored bodies ([journal] body_key), mode 0600.
    Keygen {
        /// The key file to create (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct JournalListArgs {
    /// Only this route's messages.
    #[arg(long)]
    pub route: Option<String>,
    /// queued, in_flight, failed, delivered or dead.
    #[arg(long, value_parser = |s: &str| s.parse::<guichet_journal::State>())]
    pub state: Option<guichet_journal::State>,
    /// Only messages received within this long, e.g. 2h, 3d.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// MSH-9, e.g. ADT^A01 (also matches ADT^A01^ADT_A01).
    #[arg(long = "type", value_name = "MSH-9")]
    pub message_type: Option<String>,
    /// MSH-10.
    #[arg(long, value_name = "MSH-10")]
    pub control_id: Option<String>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JournalReplayArgs {
    /// The message to send again.
    #[arg(required_unless_present = "route", conflicts_with = "route")]
    pub id: Option<i64>,
    /// Every dead message of this route (add --failed for those waiting for a retry too).
    #[arg(long)]
    pub route: Option<String>,
    /// Also the route's failed messages, waiting for a retry.
    #[arg(long, requires = "route")]
    pub failed: bool,
}

/// TLS towards a receiver or gateway.
#[derive(Args, Debug)]
pub struct ClientTlsArgs {
    /// CA bundle to verify the server with; enables TLS.
    #[arg(long, value_name = "CA.pem")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate to present (mutual TLS).
    #[arg(
        long,
        value_name = "CERT.pem",
        requires = "tls_ca",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the server certificate must carry (default: the host of --to).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub server_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where to send: the receiver, or a gateway in front of it.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// A file of HL7 messages (several allowed; \n or \r\n line ends are fine).
    #[arg(
        value_name = "FILE",
        required_unless_present = "template",
        conflicts_with = "template"
    )]
    pub file: Option<PathBuf>,
    /// A built-in French (IHE PAM FR) message, fresh control id and time on every send.
    #[arg(long, value_name = "NAME", value_parser = guichet_testkit::Template::NAMES)]
    pub template: Option<String>,
    /// Messages to send in all (default: each message of the file, or one template message).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Pace between messages, e.g. 20s, 500ms (default: as fast as ACKs come back).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Connections side by side, each with one message in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub conns: u64,
    /// How long to wait for each ACK.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ack_timeout: std::time::Duration,
    /// Sending application^facility (templates only).
    #[arg(long, default_value = "EAI^CHU", value_name = "APP^FACILITY")]
    pub from: String,
    /// Receiving application^facility (templates only).
    #[arg(long, default_value = "DPI^CHU", value_name = "APP^FACILITY")]
    pub to_app: String,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Address to listen on, e.g. 127.0.0.1:2575.
    #[arg(long, value_name = "ADDR")]
    pub on: std::net::SocketAddr,
    /// ACK code to answer with; "none" never answers.
    #[arg(long, default_value = "aa", value_parser = guichet_testkit::AckPolicy::NAMES)]
    pub ack: String,
    /// Wait this many milliseconds before each ACK.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay: u64,
    /// Print each whole message, not only its header (the messages are test data).
    #[arg(long)]
    pub show: bool,
    /// Append every message received to FILE, one JSON line each (time,
    /// MSH fields, ACK, the whole message): what a test book reads as
    /// what an engine sent downstream. The messages are test data.
    #[arg(long, value_name = "FILE.jsonl")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsServerArgs,
}

/// TLS for a simulator's listener.
#[derive(Args, Debug)]
pub struct TlsServerArgs {
    /// Certificate to present: enables TLS.
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (mutual TLS).
    #[arg(long, value_name = "CA.pem", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsServerArgs {
    /// The listener's TLS, when a certificate is given.
    pub fn options(self) -> Option<guichet_testkit::TlsServerOptions> {
        match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(guichet_testkit::TlsServerOptions {
                cert,
                key,
                ca: self.tls_ca,
            }),
            _ => None,
        }
    }
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Pace of each simulated application.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    pub every: std::time::Duration,
    /// Stop after this many messages each way (default: until Ctrl-C).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Keep the generated PKI and configurations in this directory (default: a temporary one).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The configuration file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a CA: DIR/ca.pem, DIR/ca.key (mode 0600) and an empty DIR/ca.crl.
    Init {
        /// The CA's folder (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "guichet test CA")]
        cn: String,
        /// The CA's organisation.
        #[arg(long)]
        o: Option<String>,
        /// Days the CA is valid for.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// The CA key's curve.
        #[arg(long, value_enum, default_value_t = KeyTypeArg::P256)]
        key_type: KeyTypeArg,
    },
    /// Issue a certificate signed by the CA in DIR: DIR/NAME.pem and DIR/NAME.key (0600).
    ///
    /// By default it is valid for both server and client use, with SAN DNS=NAME.
    ///
    /// A partner's test certificate shaped like an IGC Santé organisation certificate
    /// (AUTH_CLI): --client-only --o "CH EXAMPLE" --finess 750000001 --cn "ROR client".
    Issue {
        /// The CA directory (made by `pki init`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// Certificate name: file name, first DNS SAN, and subject CN unless --cn is given.
        #[arg(long)]
        name: String,
        /// Subject common name when it differs from NAME (any text up to 64 characters).
        #[arg(long, value_name = "TEXT")]
        cn: Option<String>,
        /// Extra DNS name in the SAN (repeatable).
        #[arg(long = "dns", value_name = "HOST")]
        dns: Vec<String>,
        /// IP address in the SAN (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<IpAddr>,
        /// Days the certificate is valid for.
        #[arg(long, default_value_t = guichet_pki::DEFAULT_LEAF_DAYS)]
        days: u32,
        /// Only clientAuth in the extended key usage.
        #[arg(long, conflicts_with = "server_only")]
        client_only: bool,
        /// Only serverAuth in the extended key usage.
        #[arg(long)]
        server_only: bool,
        /// Organisational unit (IGC Santé puts 1+FINESS or 3+SIRET here).
        #[arg(long, value_name = "TEXT")]
        ou: Option<String>,
        /// Set OU to 1+FINESS, as IGC Santé does for a health establishment (9 characters).
        #[arg(long, value_name = "NUMBER", conflicts_with_all = ["ou", "siret"])]
        finess: Option<String>,
        /// Set OU to 3+SIRET, as IGC Santé does for a company (14 digits).
        #[arg(long, value_name = "NUMBER", conflicts_with = "ou")]
        siret: Option<String>,
        /// Organisation (up to 64 characters).
        #[arg(long, value_name = "TEXT")]
        o: Option<String>,
        /// Certify this existing PKCS#8 key (e.g. RSA from openssl) instead of generating one.
        #[arg(long, value_name = "KEY.pem", conflicts_with = "key_type")]
        key: Option<PathBuf>,
        /// The new key's curve (default: p256).
        #[arg(long, value_enum)]
        key_type: Option<KeyTypeArg>,
        /// OCSP responder named in the certificate (Authority Information Access), e.g. http://ocsp.example.org/.
        #[arg(long, value_name = "URL")]
        ocsp_url: Option<String>,
        /// Add the OCSPSigning usage: a delegated responder that signs OCSP answers for this CA.
        #[arg(long)]
        ocsp_signing: bool,
    },
    /// Revoke DIR/NAME.pem and rewrite DIR/ca.crl.
    Revoke {
        /// The CA directory (made by `pki init`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The certificate to revoke: DIR/NAME.pem.
        #[arg(long)]
        name: String,
    },
    /// Show a certificate: subject, issuer, SANs, usage, validity, SHA-256 fingerprint, SPKI pin.
    ///
    /// A PKCS#12 file (.p12/.pfx, e.g. an IGC Santé software certificate) shows every
    /// certificate it holds, the chain, and whether the private key matches.
    Show {
        /// A certificate (PEM or DER) or a PKCS#12 file (.p12, .pfx).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The password of a PKCS#12 FILE, in this file (trailing newline ignored; mode 0600).
        #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
        password_file: Option<PathBuf>,
        /// The password of a PKCS#12 FILE, in this environment variable.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Write a new private key (mode 0600) and a certificate signing request (PKCS#10) to
    /// order an IGC Santé organisation certificate (server or AUTH_CLI) from the ANS.
    ///
    /// The subject is C=FR, O=ORG, OU=1+FINESS (or 3+SIRET), CN=NAME. Existing files are
    /// never overwritten. Example:
    /// guichet pki csr --o "CH EXAMPLE" --finess 750000001 --cn hl7.ch-example.fr --key-type rsa2048
    Csr {
        /// Organisation (O), as registered for the structure.
        #[arg(long, value_name = "ORG")]
        o: String,
        /// The structure's FINESS number (9 characters): OU becomes 1+FINESS.
        #[arg(
            long,
            value_name = "NUMBER",
            required_unless_present = "siret",
            conflicts_with = "siret"
        )]
        finess: Option<String>,
        /// The structure's SIRET number (14 digits): OU becomes 3+SIRET.
        #[arg(long, value_name = "NUMBER")]
        siret: Option<String>,
        /// Common name (CN): the server's host name, or the application's name for AUTH_CLI.
        #[arg(long, value_name = "NAME")]
        cn: String,
        /// DNS name in the subjectAltName (repeatable); default: the CN if it is a host name.
        #[arg(long = "dns", value_name = "HOST")]
        dns: Vec<String>,
        /// Key type: rsa2048 is what IGC Santé has long issued (needs the openssl command);
        /// p256/p384 are generated in-process.
        #[arg(long, value_enum, default_value_t = CsrKeyTypeArg::P256)]
        key_type: CsrKeyTypeArg,
        /// Directory for NAME.key and NAME.csr (NAME from the CN); default: the current directory.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["key", "csr"])]
        out: Option<PathBuf>,
        /// Where to write the new private key (instead of --out).
        #[arg(long, value_name = "KEY.pem", requires = "csr")]
        key: Option<PathBuf>,
        /// Where to write the request (instead of --out).
        #[arg(long, value_name = "REQ.csr", requires = "key")]
        csr: Option<PathBuf>,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum CsrKeyTypeArg {
    Rsa2048,
    Rsa3072,
    P256,
    P384,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum KeyTypeArg {
    P256,
    P384,
}

#[derive(Subcommand, Debug)]
pub enum AppsCommand {
    /// Add an application recognised by a certificate (comments and layout of the file are kept).
    Add {
        /// The configuration file (TOML) to read or edit.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Name of the application, used in the `allow` lists of routes and rules.
        #[arg(long)]
        name: String,
        /// A certificate of the application (PEM).
        #[arg(long, value_name = "CERT.pem")]
        cert: PathBuf,
        /// Which certificate fields to match, comma-separated: cn, o, ou, issuer, dns, uri,
        /// fingerprint, spki. "cn,ou,issuer" survives renewal; "fingerprint" pins one certificate.
        #[arg(
            long = "match",
            value_name = "FIELDS",
            default_value = "cn,ou,issuer",
            value_delimiter = ','
        )]
        fields: Vec<String>,
        /// Also admit the application on these routes (repeatable, or comma-separated). On an
        /// http route, name a rule: ROUTE/RULE adds it to that rule's allow list.
        #[arg(
            long = "allow-on",
            visible_alias = "routes",
            value_name = "ROUTE[/RULE]",
            value_delimiter = ','
        )]
        allow_on: Vec<String>,
    },
    /// List the applications and the routes (ROUTE, or ROUTE/RULE on http routes) that admit each.
    List {
        /// The configuration file (TOML) to read or edit.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove an application and take it off every allow list (routes and http rules).
    Remove {
        /// The configuration file (TOML) to read or edit.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The application's name, as in its [[app]] section.
        #[arg(long)]
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every command says what it is for in `--help`:
    /// an option added without a doc comment fails here.
    #[test]
    fn every_argument_has_help() {
        let mut missing = Vec::new();
        walk(&Cli::command(), "guichet", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help text (add a /// line above each):\n{}",
            missing.join("\n")
        );
    }

    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                let name = arg
                    .get_long()
                    .map_or_else(|| id.to_uppercase(), |long| format!("--{long}"));
                missing.push(format!("{path} {name}"));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
}
