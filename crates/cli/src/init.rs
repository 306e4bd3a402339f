//! `guichet init`: a commented starter `guichet.toml`, and the commands that
//! make its certificates and admit its partners (or, with `--pki`, the same
//! work done in-process through the `guichet pki` and `guichet apps`
//! library code).
//!
//! A newcomer's first config should pass `guichet check` once those
//! commands have run, so every route it writes names only the test PKI it
//! announces (`DIR/pki`), and ports below the kernel's ephemeral range.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use guichet_pki::{CaOptions, IssueRequest, Usage};

/// Arguments of `guichet init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Where to write guichet.toml; its test PKI goes to DIR/pki.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Tunnel routes with a partner (the DPI side): client (clear in, mutual TLS out), server
    /// (mutual TLS in, clear out), or both. Default: both, unless --http or
    /// --store-and-forward is given.
    #[arg(long, value_enum, value_name = "SIDE")]
    pub tunnel: Option<TunnelSide>,
    /// An HTTPS gateway route: partner applications present a certificate; one rule sends
    /// /api/ to an upstream and names who may call it.
    #[arg(long)]
    pub http: bool,
    /// A [journal] and a store-and-forward MLLP route: each message stored before it is
    /// acknowledged, then delivered in order with retries.
    #[arg(long)]
    pub store_and_forward: bool,
    /// Run the printed steps too: make the test PKI in DIR/pki (kept if it exists), admit the
    /// partner, and with --store-and-forward make the journal's key.
    #[arg(long)]
    pub pki: bool,
    /// Replace an existing guichet.toml.
    #[arg(long)]
    pub force: bool,
}

/// Which side of a tunnel this gateway holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TunnelSide {
    Client,
    Server,
    Both,
}

/// The routes the config will hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    client: bool,
    server: bool,
    http: bool,
    store_and_forward: bool,
}

/// One certificate-making or allowlist step, printed as a command or run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    PkiInit,
    Issue {
        name: &'static str,
        /// This gateway's own certificate: dialled as localhost/127.0.0.1.
        local: bool,
        client_only: bool,
    },
    AppsAdd {
        name: &'static str,
        allow_on: Vec<&'static str>,
    },
    /// The key that seals the journal's stored bodies.
    JournalKey,
}

const CONFIG: &str = "guichet.toml";
/// This gateway's certificate and TLS profile.
const GATEWAY: &str = "gateway";
/// The partner of the tunnels: the patient record's side.
const DPI: &str = "dpi";
/// The partner application of an HTTPS gateway without tunnels.
const PARTNER: &str = "partner-a";
/// Seals the journal's stored bodies (patient data at rest).
const JOURNAL_KEY: &str = "journal.key";
const SERVER_ROUTE: &str = "from-dpi";
const HTTP_RULE: &str = "guichet-unique/api";

pub fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_args(args);
    let config = shown(&args.dir, CONFIG);
    if config.exists() && !args.force {
        bail!(
            "{} already exists: refusing to overwrite it; pass --force to replace it, or choose another --dir",
            config.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    std::fs::write(&config, plan.config_text())
        .with_context(|| format!("cannot write {}", config.display()))?;
    println!("wrote {}: {}", config.display(), plan.describe());
    let steps = plan.steps();
    if args.pki {
        for step in &steps {
            step.run(&args.dir)?;
        }
        println!("Next:");
    } else {
        println!("Next, from this folder:");
        for step in &steps {
            println!("  {}", step.command(&args.dir));
        }
        println!("Then:");
    }
    println!("  guichet check -c {}", word(&config));
    println!("  guichet run -c {}", word(&config));
    Ok(ExitCode::SUCCESS)
}

impl Plan {
    fn from_args(args: &InitArgs) -> Plan {
        let tunnel = match args.tunnel {
            Some(side) => Some(side),
            None if args.http || args.store_and_forward => None,
            None => Some(TunnelSide::Both),
        };
        Plan {
            client: matches!(tunnel, Some(TunnelSide::Client | TunnelSide::Both)),
            server: matches!(tunnel, Some(TunnelSide::Server | TunnelSide::Both)),
            http: args.http,
            store_and_forward: args.store_and_forward,
        }
    }

    /// The partner of the tunnels has a certificate to make.
    fn has_dpi(self) -> bool {
        self.client || self.server || self.store_and_forward
    }

    fn describe(self) -> String {
        let mut routes = Vec::new();
        if self.client {
            routes.push("to-dpi (clear in, mutual TLS out)");
        }
        if self.server {
            routes.push("from-dpi (mutual TLS in, clear out)");
        }
        if self.store_and_forward {
            routes.push("to-dpi-stored (store-and-forward, mutual TLS out)");
        }
        if self.http {
            routes.push("guichet-unique (HTTPS gateway)");
        }
        format!("routes {}", routes.join(", "))
    }

    /// The partner application: the DPI side of the tunnels, which may
    /// also call the HTTPS gateway; with an HTTPS gateway alone, a partner
    /// application with a client certificate.
    fn partner(self) -> &'static str {
        if self.has_dpi() {
            DPI
        } else {
            PARTNER
        }
    }

    /// Where the partner is admitted, in one `apps add`: each edit must
    /// leave a config that the gateway accepts, so every empty `allow`
    /// list is filled at once.
    fn allow_on(self) -> Vec<&'static str> {
        let mut targets = Vec::new();
        if self.server {
            targets.push(SERVER_ROUTE);
        }
        if self.http {
            targets.push(HTTP_RULE);
        }
        targets
    }

    fn steps(self) -> Vec<Step> {
        let name = self.partner();
        let mut steps = vec![
            Step::PkiInit,
            Step::Issue {
                name: GATEWAY,
                local: true,
                client_only: false,
            },
            Step::Issue {
                name,
                local: false,
                client_only: !self.has_dpi(),
            },
        ];
        let allow_on = self.allow_on();
        if !allow_on.is_empty() {
            steps.push(Step::AppsAdd { name, allow_on });
        }
        if self.store_and_forward {
            steps.push(Step::JournalKey);
        }
        steps
    }

    fn config_text(self) -> String {
        let mut text = String::from(HEADER);
        text.push_str(GATEWAY_SECTION);
        if self.store_and_forward {
            text.push_str(JOURNAL_SECTION);
        }
        text.push_str(TLS_SECTION);
        let sections = [
            (self.client, CLIENT_ROUTE),
            (self.server, SERVER_ROUTE_SECTION),
            (self.store_and_forward, STORED_ROUTE),
            (self.http, HTTP_ROUTE),
        ];
        for (wanted, section) in sections {
            if wanted {
                text.push_str(section);
            }
        }
        text
    }
}

impl Step {
    /// The command a user types from the current folder.
    fn command(&self, dir: &Path) -> String {
        let pki = word(&shown(dir, "pki"));
        match self {
            Step::PkiInit => format!("guichet pki init --out {pki}"),
            Step::Issue {
                name,
                local,
                client_only,
            } => {
                let mut line = format!("guichet pki issue --ca {pki} --name {name}");
                if *local {
                    line.push_str(" --dns localhost --ip 127.0.0.1");
                }
                if *client_only {
                    line.push_str(" --client-only");
                }
                line
            }
            Step::AppsAdd { name, allow_on } => format!(
                "guichet apps add -c {} --name {name} --cert {} --allow-on {}",
                word(&shown(dir, CONFIG)),
                word(&shown(dir, &format!("pki/{name}.pem"))),
                allow_on.join(",")
            ),
            Step::JournalKey => format!(
                "guichet journal keygen --out {}",
                word(&shown(dir, JOURNAL_KEY))
            ),
        }
    }

    /// The same work, through the library code the commands call.
    fn run(&self, dir: &Path) -> anyhow::Result<()> {
        let pki = shown(dir, "pki");
        match self {
            Step::PkiInit if pki.join("ca.key").exists() => {
                println!("kept the CA in {}", pki.display());
            }
            Step::PkiInit => {
                let files = guichet_pki::init(&pki, &CaOptions::default())?;
                println!("made the test CA {}", files.cert.display());
            }
            Step::Issue { name, .. } if pki.join(format!("{name}.pem")).exists() => {
                println!("kept {}", pki.join(format!("{name}.pem")).display());
            }
            Step::Issue {
                name,
                local,
                client_only,
            } => {
                let mut req = IssueRequest::new(*name);
                if *local {
                    req.dns = vec!["localhost".to_string()];
                    req.ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
                }
                if *client_only {
                    req.usage = Usage::ClientOnly;
                }
                let files = guichet_pki::issue(&pki, &req)?;
                println!("issued {}", files.cert.display());
            }
            Step::AppsAdd { name, allow_on } => crate::apps::add_app(
                &shown(dir, CONFIG),
                name,
                &pki.join(format!("{name}.pem")),
                &allow_on.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            )?,
            Step::JournalKey if shown(dir, JOURNAL_KEY).exists() => {
                println!("kept {}", shown(dir, JOURNAL_KEY).display());
            }
            Step::JournalKey => {
                let key = shown(dir, JOURNAL_KEY);
                crate::journal::write_body_key(&key)?;
                println!(
                    "made the journal's key {} (mode 0600): keep a copy in a safe place, sealed bodies cannot be read without it",
                    key.display()
                );
            }
        }
        Ok(())
    }
}

/// `name` in `dir` as a user would write it: `pki`, not `./pki`.
fn shown(dir: &Path, name: &str) -> PathBuf {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
}

/// A path as one shell word, quoted only when it needs to be.
fn word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text;
    }
    let mut quoted = String::from("'");
    for c in text.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

const HEADER: &str = r#"# guichet.toml, written by `guichet init`: a starting point to edit.
# Relative paths are relative to this file; unknown keys are errors.
# Check it with `guichet check -c guichet.toml`, run it with
# `guichet run -c guichet.toml` (SIGHUP reloads, SIGTERM drains and stops).
# Every key is described in the README's "Configuration reference".
#
# Certificates come from pki/ beside this file: a test PKI made by
# `guichet pki init` and `guichet pki issue`. With real partners, `cert` and
# `key` are this host's IGC Santé certificate and `ca` the IGC Santé bundle
# (see the README's "IGC Santé material").
"#;

const GATEWAY_SECTION: &str = r#"
[gateway]
drain_timeout = "30s"      # on SIGTERM: stop accepting, let connections finish this long

# Metrics, health checks and a status page for people ("Watching it run"):
# [admin]
# listen = "127.0.0.1:9010"
"#;

const JOURNAL_SECTION: &str = r#"
# Store-and-forward routes keep each message here before acknowledging it:
# one SQLite file beside this config, created 0600 on first start (for
# several gateway nodes, PostgreSQL: see the README's "Store-and-forward").
[journal]
store = "journal.db"
retain_bodies = "7d"       # bodies are deleted this long after delivery
# Stored bodies are sealed (AES-256-GCM) with this key, made by
# `guichet journal keygen --out journal.key`: keep a copy in a safe place.
body_key = "journal.key"
"#;

const TLS_SECTION: &str = r#"
# This gateway's identity, and the CA that partners' certificates must
# chain to.
[tls.gateway]
cert = "pki/gateway.pem"
key = "pki/gateway.key"    # refused if others can read it (the PKI writes it 0600)
ca = "pki/ca.pem"
crl = ["pki/ca.crl"]       # revoked partners are refused (`guichet pki revoke`)

# Partner applications are recognised by their certificate (issuer + CN +
# OU); `guichet apps add` writes their [[app]] entries at the end of this
# file and adds them to the `allow` lists it is given, e.g.
#   guichet apps add -c guichet.toml --name dpi --cert pki/dpi.pem --allow-on from-dpi
"#;

const CLIENT_ROUTE: &str = r#"
# Client side of a tunnel: the EAI sends in clear to a port on loopback;
# guichet carries the messages in mutual TLS to the DPI side's gateway, whose
# certificate must name "dpi".
#
#   EAI --MLLP--> 127.0.0.1:2575 [guichet] ==mTLS==> 127.0.0.1:3575 (DPI side)
[[route]]
name = "to-dpi"
kind = "mllp"              # HL7-aware; "tcp" carries any protocol's bytes untouched
listen = "127.0.0.1:2575"
forward = "127.0.0.1:3575" # the DPI side's gateway: its host and port
forward_tls = "gateway"    # present our certificate; the server's must chain to `ca`
server_name = "dpi"        # the name its certificate must carry
"#;

const SERVER_ROUTE_SECTION: &str = r#"
# Server side of a tunnel: the DPI side's gateway connects in mutual TLS;
# only the applications in `allow` are admitted; guichet hands the
# messages in clear to the EAI on loopback.
#
#   DPI side ==mTLS==> 0.0.0.0:3576 [guichet] --MLLP--> 127.0.0.1:2576 (EAI)
[[route]]
name = "from-dpi"
kind = "mllp"
listen = "0.0.0.0:3576"
listen_tls = "gateway"
# `guichet apps add ... --allow-on from-dpi` adds partners to this list.
allow = []
forward = "127.0.0.1:2576" # the EAI's inbound port
"#;

const STORED_ROUTE: &str = r#"
# Store-and-forward: guichet acknowledges each message once it is in the
# journal, then delivers it in order, with retries, while the DPI side is
# down or guichet restarts (`guichet journal -c guichet.toml stats`).
#
#   EAI --MLLP--> 127.0.0.1:2577 [guichet + journal] ==mTLS==> 127.0.0.1:3577 (DPI side)
[[route]]
name = "to-dpi-stored"
kind = "mllp"
delivery = "store-and-forward"
listen = "127.0.0.1:2577"
forward = "127.0.0.1:3577"
forward_tls = "gateway"
server_name = "dpi"
ack_timeout = "10s"        # the receiver's ACK; without it the attempt is retried
retry_max = "60s"          # retries back off, doubling, up to this
"#;

const HTTP_ROUTE: &str = r#"
# An HTTPS "guichet unique": partner applications present their
# certificate; each rule (a path prefix) names its upstream and the
# applications it admits (403 for the others). The upstream learns who
# called from headers only guichet sets.
#
#   partner ==HTTPS, client certificate==> 0.0.0.0:8443 [guichet] --HTTP--> 127.0.0.1:8080
[[route]]
name = "guichet-unique"
kind = "http"
listen = "0.0.0.0:8443"
listen_tls = "gateway"
rate_limit = 50            # requests per second per application
rate_burst = 100           # what one may spend at once

[[route.rule]]
name = "api"
path = "/api/"
upstream = "http://127.0.0.1:8080"
# `guichet apps add ... --allow-on guichet-unique/api` adds partners to this list.
allow = []
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(tunnel: Option<TunnelSide>, http: bool, store_and_forward: bool) -> Plan {
        Plan::from_args(&InitArgs {
            dir: PathBuf::from("."),
            tunnel,
            http,
            store_and_forward,
            pki: false,
            force: false,
        })
    }

    #[test]
    fn no_option_means_a_tunnel_both_ways() {
        let both = plan(None, false, false);
        assert!(both.client && both.server && !both.http && !both.store_and_forward);
        let http = plan(None, true, false);
        assert!(!http.client && !http.server && http.http);
        let client = plan(Some(TunnelSide::Client), false, true);
        assert!(client.client && !client.server && client.store_and_forward);
    }

    #[test]
    fn commands_name_the_folder_and_quote_it_when_needed() {
        let lines = |plan: Plan| -> Vec<String> {
            let steps = plan.steps();
            steps.iter().map(|s| s.command(Path::new("."))).collect()
        };
        assert_eq!(
            lines(plan(Some(TunnelSide::Both), true, false)),
            [
                "guichet pki init --out pki",
                "guichet pki issue --ca pki --name gateway --dns localhost --ip 127.0.0.1",
                "guichet pki issue --ca pki --name dpi",
                "guichet apps add -c guichet.toml --name dpi --cert pki/dpi.pem --allow-on from-dpi,guichet-unique/api",
            ]
        );
        assert_eq!(
            lines(plan(None, true, false))[2..],
            [
                "guichet pki issue --ca pki --name partner-a --client-only",
                "guichet apps add -c guichet.toml --name partner-a --cert pki/partner-a.pem --allow-on guichet-unique/api",
            ]
        );
        assert_eq!(
            lines(plan(Some(TunnelSide::Client), false, true))[2..],
            [
                "guichet pki issue --ca pki --name dpi",
                "guichet journal keygen --out journal.key",
            ]
        );
        assert_eq!(
            Step::PkiInit.command(Path::new("my gw")),
            "guichet pki init --out 'my gw/pki'"
        );
        assert_eq!(word(Path::new("it's")), "'it'\\''s'");
    }

    #[test]
    fn the_config_holds_only_the_routes_asked_for() {
        let client = plan(Some(TunnelSide::Client), false, false).config_text();
        assert!(client.contains("name = \"to-dpi\""), "{client}");
        for absent in ["from-dpi\"", "[journal]", "kind = \"http\""] {
            assert!(!client.contains(absent), "{absent} in {client}");
        }
        let stored = plan(None, false, true).config_text();
        assert!(stored.contains("\n[journal]\n") && stored.contains("to-dpi-stored"));
        assert!(!stored.contains("name = \"to-dpi\""), "{stored}");
    }
}
