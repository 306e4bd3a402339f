//! nginx (Debian nginx) as the HTTPS gateway: `ssl_verify_client on`
//! against the CA and its CRL, a `map` on the client certificate's SHA-1
//! fingerprint (`$ssl_client_fingerprint`) as the allowlist, 403 for any
//! other certificate, and `proxy_pass` to the upstream over a pool of
//! kept-alive connections. One worker per core, in the foreground, with
//! every path (pid, logs, temporary files) in the run's directory.

use std::path::Path;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::Round;
use crate::children::Child;
use crate::peers::{p, write_config, Setup};

pub(super) fn start(setup: &Setup, round: &Round<'_>) -> anyhow::Result<Child> {
    let program = setup
        .nginx
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("nginx not installed"))?;
    let config = write_config(round.dir, "nginx.conf", &config(setup, round)?)?;
    let prefix = format!("{}/", round.dir.display());
    let error_log = p(&round.dir.join("error.log"));
    let args = ["-p", &prefix, "-c", &config, "-e", &error_log];
    // SIGKILL would leave the workers behind, still listening: nginx
    // stops them itself on SIGTERM.
    Ok(
        Child::spawn("nginx", program, &args, &[], &round.dir.join("nginx.log"))?
            .stop_with_sigterm(),
    )
}

fn config(setup: &Setup, round: &Round<'_>) -> anyhow::Result<String> {
    let certs = &setup.certs;
    let temp = |name: &str| p(&round.dir.join("temp").join(name));
    std::fs::create_dir_all(round.dir.join("temp"))?;
    let access_log = if round.access_log {
        format!(
            "access_log {} guichet_like buffer=64k flush=1s;",
            p(&round.dir.join("access.jsonl"))
        )
    } else {
        "access_log off;".to_owned()
    };
    Ok(format!(
        r#"daemon off;
master_process on;
worker_processes auto;
pid {pid};
error_log {error_log} warn;

events {{
    worker_connections 8192;
}}

http {{
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    # One JSON line per request, with about the fields of guichet's access log.
    log_format guichet_like escape=json '{{"time":"$time_iso8601","client":"$remote_addr",'
        '"app":"$partner_app","subject":"$ssl_client_s_dn","method":"$request_method",'
        '"path":"$uri","status":$status,"bytes":$body_bytes_sent,'
        '"duration":$request_time,"upstream_duration":"$upstream_response_time"}}';
    {access_log}

    keepalive_timeout 60s;
    keepalive_requests 1000000;

    # The allowlist: SHA-1 fingerprint of the client certificate -> application.
    map $ssl_client_fingerprint $partner_app {{
        default "";
        {fingerprint} partner;
    }}

    upstream ror {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}

    server {{
        listen {listen} ssl;
        server_name localhost;

        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate {ca};
        ssl_crl {crl};
        ssl_verify_client on;

        location /ror/ {{
            if ($partner_app = "") {{
                return 403;
            }}
            proxy_pass http://ror;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Client-App $partner_app;
            proxy_set_header X-Client-Subject $ssl_client_s_dn;
            proxy_set_header X-Client-Fingerprint $ssl_client_fingerprint;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
        }}

        location / {{
            return 404;
        }}
    }}
}}
"#,
        pid = p(&round.dir.join("nginx.pid")),
        error_log = p(&round.dir.join("error.log")),
        body = temp("body"),
        proxy = temp("proxy"),
        fastcgi = temp("fastcgi"),
        uwsgi = temp("uwsgi"),
        scgi = temp("scgi"),
        fingerprint = sha1_fingerprint(&certs.eai.cert)?,
        upstream = round.upstream,
        listen = round.listen,
        cert = p(&certs.dpi.cert),
        key = p(&certs.dpi.key),
        ca = p(&certs.ca),
        crl = p(&certs.crl),
    ))
}

/// The SHA-1 of the certificate's DER in lowercase hex, as nginx's
/// `$ssl_client_fingerprint` spells it.
fn sha1_fingerprint(cert: &Path) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_file(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}
