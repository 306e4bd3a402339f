//! `guichet pki ...`: thin wrappers over the `guichet-pki` library.

use std::process::ExitCode;

use guichet_pki::{CaOptions, IssueRequest, KeySource, KeyType, Usage};

use crate::cli::{KeyTypeArg, PkiCommand};

fn key_type(arg: KeyTypeArg) -> KeyType {
    match arg {
        KeyTypeArg::P256 => KeyType::EcdsaP256,
        KeyTypeArg::P384 => KeyType::EcdsaP384,
    }
}

pub fn pki(command: PkiCommand) -> anyhow::Result<ExitCode> {
    match command {
        PkiCommand::Init {
            out,
            cn,
            o,
            days,
            key_type: kt,
        } => {
            let files = guichet_pki::init(
                &out,
                &CaOptions {
                    common_name: cn,
                    organization: o,
                    days,
                    key_type: key_type(kt),
                },
            )?;
            println!("CA certificate: {}", files.cert.display());
            println!("CA key (0600):  {}", files.key.display());
            println!("CRL:            {}", files.crl.display());
        }
        PkiCommand::Issue {
            ca,
            name,
            dns,
            ip,
            days,
            client_only,
            server_only,
            ou,
            o,
            key,
            key_type: kt,
        } => {
            let mut req = IssueRequest::new(name);
            req.dns = dns;
            req.ips = ip;
            req.days = days;
            req.ou = ou;
            req.o = o;
            req.usage = match (client_only, server_only) {
                (true, _) => Usage::ClientOnly,
                (_, true) => Usage::ServerOnly,
                _ => Usage::Both,
            };
            req.key = match (key, kt) {
                (Some(path), _) => KeySource::Existing(path),
                (None, Some(kt)) => KeySource::Generate(key_type(kt)),
                (None, None) => KeySource::default(),
            };
            let files = guichet_pki::issue(&ca, &req)?;
            println!("certificate: {}", files.cert.display());
            println!("key:         {}", files.key.display());
        }
        PkiCommand::Revoke { ca, name } => {
            let crl = guichet_pki::revoke(&ca, &name)?;
            println!("revoked {name}; CRL written to {}", crl.display());
            println!("gateways using this CRL pick it up on their next reload (automatic when the file changes)");
        }
        PkiCommand::Show { file } => {
            print!("{}", guichet_pki::show_file(&file)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
