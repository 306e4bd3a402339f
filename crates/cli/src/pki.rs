//! `guichet pki ...`: thin wrappers over the `guichet-pki` library.

use std::process::ExitCode;

use std::path::PathBuf;

use guichet_pki::{CaOptions, IssueRequest, KeySource, KeyType, Registry, Usage};

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
        command @ PkiCommand::Issue { .. } => {
            let (ca, req) = issue_request(command)?;
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

/// The CA directory and the request that `pki issue` arguments describe.
fn issue_request(command: PkiCommand) -> anyhow::Result<(PathBuf, IssueRequest)> {
    let PkiCommand::Issue {
        ca,
        name,
        cn,
        dns,
        ip,
        days,
        client_only,
        server_only,
        ou,
        finess,
        siret,
        o,
        key,
        key_type: kt,
        ocsp_url,
        ocsp_signing,
    } = command
    else {
        anyhow::bail!("not a `pki issue` command");
    };
    let ou = match (finess, siret) {
        (Some(number), _) => Some(Registry::Finess.ou(&number)?),
        (_, Some(number)) => Some(Registry::Siret.ou(&number)?),
        _ => ou,
    };
    let mut req = IssueRequest::new(name);
    req.cn = cn;
    req.dns = dns;
    req.ips = ip;
    req.days = days;
    req.ou = ou;
    req.o = o;
    req.ocsp_url = ocsp_url;
    req.ocsp_signing = ocsp_signing;
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
    Ok((ca, req))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn request(args: &[&str]) -> anyhow::Result<IssueRequest> {
        let argv = ["guichet", "pki", "issue", "--ca", "pki"]
            .iter()
            .chain(args);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Pki(command) = cli.command else {
            panic!("not a pki command");
        };
        Ok(issue_request(command)?.1)
    }

    #[test]
    fn issue_builds_an_igc_sante_shaped_client_request() {
        let req = request(&[
            "--name",
            "partner-a",
            "--client-only",
            "--o",
            "CH EXAMPLE",
            "--finess",
            "750000001",
            "--cn",
            "ROR client",
        ])
        .unwrap();
        assert_eq!(req.name, "partner-a");
        assert_eq!(req.cn.as_deref(), Some("ROR client"));
        assert_eq!(req.o.as_deref(), Some("CH EXAMPLE"));
        assert_eq!(req.ou.as_deref(), Some("1750000001"));
        assert_eq!(req.usage, Usage::ClientOnly);
        let siret = request(&["--name", "p", "--siret", "12345678900012"]).unwrap();
        assert_eq!(siret.ou.as_deref(), Some("312345678900012"));
        assert_eq!((siret.cn, siret.usage), (None, Usage::Both));
        let ou = request(&["--name", "p", "--ou", "Laboratoire"]).unwrap();
        assert_eq!(ou.ou.as_deref(), Some("Laboratoire"));
    }

    #[test]
    fn issue_refuses_two_sources_of_ou_and_bad_numbers() {
        for args in [
            ["--ou", "x", "--finess", "750000001"],
            ["--ou", "x", "--siret", "12345678900012"],
            ["--finess", "750000001", "--siret", "12345678900012"],
        ] {
            let err = request(&[&["--name", "p"][..], &args].concat()).unwrap_err();
            assert!(err.to_string().contains("cannot be used with"), "{err}");
        }
        let err = request(&["--name", "p", "--finess", "75000001"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FINESS number \"75000001\" is not 9 digits (or 2A/2B and 7 digits), e.g. 750000001"
        );
    }
}
