//! The command line, as clap reads it.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// guichet: one gateway for the data flows of a hospital information system.
///
/// It wraps plain TCP links (HL7 v2 over MLLP, DICOM, ...) in mutual TLS
/// without changing either application, admits only the partner
/// applications listed by certificate, and reloads certificates live.
#[derive(Parser, Debug)]
#[command(name = "guichet", version, propagate_version = true)]
#[command(
    after_help = "Start with `guichet pki init`, `guichet pki issue`, write a guichet.toml \
(see examples/tunnel/), check it with `guichet check -c guichet.toml`, then `guichet run -c guichet.toml`."
)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line for shipping.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway: every route of the config file (SIGHUP reloads, SIGTERM drains and stops).
    Run(ConfigArgs),
    /// Validate a config file without running it: syntax, certificates, keys, chains, expiry, names.
    Check(ConfigArgs),
    /// A test PKI: a CA, certificates for gateways and partners, revocation, inspection.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The allowlist of partner applications, recognised by certificate.
    #[command(subcommand)]
    Apps(AppsCommand),
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
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "guichet test CA")]
        cn: String,
        /// The CA's organisation.
        #[arg(long)]
        o: Option<String>,
        #[arg(long, default_value_t = 3650)]
        days: u32,
        #[arg(long, value_enum, default_value_t = KeyTypeArg::P256)]
        key_type: KeyTypeArg,
    },
    /// Issue a certificate signed by the CA in DIR: DIR/NAME.pem and DIR/NAME.key (0600).
    ///
    /// By default it is valid for both server and client use, with SAN DNS=NAME.
    Issue {
        /// The CA directory (made by `pki init`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// Certificate name: subject CN, first DNS SAN and file name.
        #[arg(long)]
        name: String,
        /// Extra DNS name in the SAN (repeatable).
        #[arg(long = "dns", value_name = "HOST")]
        dns: Vec<String>,
        /// IP address in the SAN (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<IpAddr>,
        #[arg(long, default_value_t = guichet_pki::DEFAULT_LEAF_DAYS)]
        days: u32,
        /// Only clientAuth in the extended key usage.
        #[arg(long, conflicts_with = "server_only")]
        client_only: bool,
        /// Only serverAuth in the extended key usage.
        #[arg(long)]
        server_only: bool,
        /// Organisational unit (IGC Santé puts 1+FINESS or 3+SIRET here).
        #[arg(long)]
        ou: Option<String>,
        /// Organisation.
        #[arg(long)]
        o: Option<String>,
        /// Certify this existing PKCS#8 key (e.g. RSA from openssl) instead of generating one.
        #[arg(long, value_name = "KEY.pem", conflicts_with = "key_type")]
        key: Option<PathBuf>,
        #[arg(long, value_enum)]
        key_type: Option<KeyTypeArg>,
    },
    /// Revoke DIR/NAME.pem and rewrite DIR/ca.crl.
    Revoke {
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Show a certificate: subject, issuer, SANs, usage, validity, SHA-256 fingerprint, SPKI pin.
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
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
        /// Name of the application, used in route `allow` lists.
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
        /// Also admit the application on these routes (repeatable).
        #[arg(long = "allow-on", value_name = "ROUTE")]
        allow_on: Vec<String>,
    },
    /// List the applications and the routes that admit each.
    List {
        /// The configuration file (TOML) to read or edit.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove an application and take it off every route's allow list.
    Remove {
        /// The configuration file (TOML) to read or edit.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
}
