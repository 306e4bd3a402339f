//! `guichet pki ...`: thin wrappers over the `guichet-pki` library.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use guichet_pki::{
    CaOptions, CsrKeyType, CsrRequest, IssueRequest, KeySource, KeyType, Registry, Usage,
};
use guichet_tls::PasswordSource;

use crate::cli::{CsrKeyTypeArg, KeyTypeArg, PkiCommand};

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
        PkiCommand::Show {
            file,
            password_file,
            password_env,
        } => show(&file, password_source(password_file, password_env))?,
        command @ PkiCommand::Csr { .. } => csr(command)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A PKCS#12 file (by name, by a password given, or DER that is no
/// certificate) is shown with its chain; anything else as certificates.
fn show(file: &Path, password: Option<PasswordSource>) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let text = if password.is_some() || guichet_pki::is_pkcs12(file, &bytes) {
        guichet_pki::show_pkcs12(file, password.as_ref())?
    } else {
        guichet_pki::show_file(file)?
    };
    print!("{text}");
    Ok(())
}

fn password_source(file: Option<PathBuf>, env: Option<String>) -> Option<PasswordSource> {
    file.map(PasswordSource::File)
        .or(env.map(PasswordSource::Env))
}

fn csr(command: PkiCommand) -> anyhow::Result<()> {
    let req = csr_request(command)?;
    let files = guichet_pki::csr(&req)?;
    println!("private key (0600): {}", files.key.display());
    println!("request:            {}", files.csr.display());
    println!("subject:            {}", files.subject);
    println!();
    println!("Next:");
    println!(
        "  1. Check the request: openssl req -in {} -noout -text -verify",
        files.csr.display()
    );
    println!("  2. Order the certificate with this request from the ANS (IGC Santé), for the");
    println!("     structure whose FINESS/SIRET is in OU; send the .csr only.");
    println!(
        "  3. Keep {} where it is, readable by the gateway's user only: the",
        files.key.display()
    );
    println!("     certificate is useless without it, and it must never leave this host.");
    println!("  4. When the certificate arrives, name both in a TLS profile:");
    println!("     cert = \"CERT.pem\" (the certificate, then the IGC Santé intermediates), key = \"{}\"", files.key.display());
    println!("     and run `guichet check -c guichet.toml`.");
    Ok(())
}

/// What `pki csr` arguments describe; files go to DIR/STEM.key and
/// DIR/STEM.csr unless --key and --csr name them.
fn csr_request(command: PkiCommand) -> anyhow::Result<CsrRequest> {
    let PkiCommand::Csr {
        o,
        finess,
        siret,
        cn,
        dns,
        key_type,
        out,
        key,
        csr,
    } = command
    else {
        anyhow::bail!("not a `pki csr` command");
    };
    let (registry, number) = match (finess, siret) {
        (Some(n), None) => (Registry::Finess, n),
        (None, Some(n)) => (Registry::Siret, n),
        _ => anyhow::bail!("give exactly one of --finess and --siret"),
    };
    let (key_path, csr_path) = match (key, csr) {
        (Some(key), Some(csr)) => (key, csr),
        _ => {
            let dir = out.unwrap_or_else(|| PathBuf::from("."));
            let stem = file_stem(&cn);
            (
                dir.join(format!("{stem}.key")),
                dir.join(format!("{stem}.csr")),
            )
        }
    };
    Ok(CsrRequest {
        organization: o,
        registry,
        number,
        common_name: cn,
        dns,
        key_type: match key_type {
            CsrKeyTypeArg::Rsa2048 => CsrKeyType::Rsa2048,
            CsrKeyTypeArg::Rsa3072 => CsrKeyType::Rsa3072,
            CsrKeyTypeArg::P256 => CsrKeyType::P256,
            CsrKeyTypeArg::P384 => CsrKeyType::P384,
        },
        key_path,
        csr_path,
    })
}

/// The CN as a file name: `ROR client` -> `ROR-client`.
fn file_stem(cn: &str) -> String {
    let stem: String = cn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    match stem.trim_start_matches('.') {
        "" => "request".to_string(),
        s => s.to_string(),
    }
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

    fn csr(args: &[&str]) -> anyhow::Result<CsrRequest> {
        let argv = [
            "guichet",
            "pki",
            "csr",
            "--o",
            "CH EXAMPLE",
            "--cn",
            "ROR client",
        ]
        .iter()
        .chain(args);
        let Command::Pki(command) = Cli::try_parse_from(argv)?.command else {
            panic!("not a pki command");
        };
        csr_request(command)
    }

    #[test]
    fn csr_takes_one_structure_number_and_names_files_after_the_cn() {
        let req = csr(&["--finess", "750000001", "--out", "/etc/guichet"]).unwrap();
        assert_eq!(req.registry, Registry::Finess);
        assert_eq!(req.key_path, Path::new("/etc/guichet/ROR-client.key"));
        assert_eq!(req.csr_path, Path::new("/etc/guichet/ROR-client.csr"));
        assert_eq!(req.key_type, CsrKeyType::P256);
        let req = csr(&["--siret", "12345678900012", "--key", "k", "--csr", "c"]).unwrap();
        assert_eq!(
            (req.registry, req.number.as_str()),
            (Registry::Siret, "12345678900012")
        );
        assert_eq!(req.key_path, Path::new("k"));
        for args in [
            &[][..],
            &["--finess", "750000001", "--siret", "12345678900012"][..],
            &["--finess", "750000001", "--key", "k"][..],
            &[
                "--finess",
                "750000001",
                "--out",
                "d",
                "--key",
                "k",
                "--csr",
                "c",
            ][..],
        ] {
            assert!(csr(args).is_err(), "{args:?}");
        }
        assert_eq!(file_stem("..a/b c"), "a-b-c");
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
