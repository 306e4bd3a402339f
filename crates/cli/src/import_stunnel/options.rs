//! Every stunnel option guichet knows of, and why those it does not carry
//! over are left out: an option is mapped, or reported with a reason,
//! never dropped without a word.

/// Options that only make sense for the whole stunnel process.
const PROCESS: [(&str, &str); 22] = [
    ("foreground", "guichet run always stays in the foreground; run it under systemd (deploy/guichet.service) to detach"),
    ("pid", "guichet writes no pid file; systemd (or the shell) tracks its process"),
    ("output", "guichet logs to stderr (text or --log-format json); redirect it, or let journald keep it"),
    ("syslog", "guichet logs to stderr; journald forwards it to syslog"),
    ("debug", "set the level with RUST_LOG (e.g. RUST_LOG=debug); message content never enters a log"),
    ("log", "guichet logs to stderr; redirect it to keep a file"),
    ("chroot", "run guichet under systemd with its own sandboxing instead"),
    ("setuid", "run guichet as the user of its systemd unit (User=)"),
    ("setgid", "run guichet with the group of its systemd unit (Group=)"),
    ("fips", "guichet's TLS policy (ANSSI) is fixed; there is no FIPS mode"),
    ("compression", "TLS compression is never used (CRIME); guichet has none"),
    ("egd", "guichet uses the operating system's random source"),
    ("rndbytes", "guichet uses the operating system's random source"),
    ("rndfile", "guichet uses the operating system's random source"),
    ("rndoverwrite", "guichet uses the operating system's random source"),
    ("engine", "guichet uses no OpenSSL engine; keys are files (PEM or PKCS#12)"),
    ("enginectrl", "guichet uses no OpenSSL engine; keys are files (PEM or PKCS#12)"),
    ("enginedefault", "guichet uses no OpenSSL engine; keys are files (PEM or PKCS#12)"),
    ("service", "a Windows/inetd service name; guichet runs as one daemon"),
    ("taskbar", "a Windows tray icon; guichet has none"),
    ("include", "included files are not followed: import them by naming them on the command line"),
    ("socket", "guichet sets its own socket options (keepalive, no delay)"),
];

/// Service options guichet does not carry over, with the reason.
const SERVICE: [(&str, &str); 38] = [
    ("options", "OpenSSL options: guichet's TLS policy is fixed (TLS 1.2 and 1.3, no compression, no renegotiation)"),
    ("ciphers", "guichet's cipher suites are fixed by its policy (ANSSI: ECDHE with AEAD only)"),
    ("ciphersuites", "guichet's TLS 1.3 suites are fixed by its policy (AEAD only)"),
    ("curves", "guichet's key exchange groups are fixed by its policy (X25519, P-256, P-384)"),
    ("securitylevel", "guichet's TLS policy is fixed; it is stricter than OpenSSL's security level 2"),
    ("renegotiation", "guichet never renegotiates"),
    ("sessioncachesize", "guichet keeps its own bounded session cache"),
    ("sessioncachetimeout", "guichet keeps its own bounded session cache"),
    ("sessionresume", "guichet resumes sessions within its own bounded cache"),
    ("sessiond", "guichet keeps sessions in memory; there is no shared session daemon"),
    ("ticketkeysecret", "guichet makes and rotates its own session ticket keys"),
    ("ticketmacsecret", "guichet makes and rotates its own session ticket keys"),
    ("timeoutbusy", "guichet closes a connection after idle_timeout without a byte either way"),
    ("timeoutclose", "guichet closes both sides together and bounds the close itself"),
    ("timeoutocsp", "guichet bounds OCSP queries itself (5 s, within handshake_timeout)"),
    ("delay", "guichet resolves the forward host at every connection"),
    ("retry", "guichet does not reconnect a tcp route; an mllp route can store and forward (delivery = \"store-and-forward\")"),
    ("failover", "guichet forwards to one target; put a load balancer or a DNS name in front for several"),
    ("local", "guichet lets the system choose the source address of forward connections"),
    ("transparent", "guichet does not spoof source addresses; it logs the client's address itself"),
    ("protocol", "guichet does not negotiate STARTTLS or proxy protocols: it carries TLS from the first byte"),
    ("protocolauthentication", "guichet does not negotiate STARTTLS or proxy protocols"),
    ("protocoldomain", "guichet does not negotiate STARTTLS or proxy protocols"),
    ("protocolhost", "guichet does not negotiate STARTTLS or proxy protocols"),
    ("protocolpassword", "guichet does not negotiate STARTTLS or proxy protocols"),
    ("protocolusername", "guichet does not negotiate STARTTLS or proxy protocols"),
    ("exec", "guichet forwards to a network address; it does not start programs"),
    ("execargs", "guichet forwards to a network address; it does not start programs"),
    ("pty", "guichet forwards to a network address; it does not start programs"),
    ("redirect", "guichet refuses a peer that fails verification; it never redirects it elsewhere"),
    ("reset", "guichet closes connections the usual way"),
    ("stack", "guichet sizes its own tasks"),
    ("ident", "IDENT (RFC 1413) checks are not supported; peers are identified by certificate"),
    ("libwrap", "TCP wrappers are not supported; guichet admits peers by certificate (and budgets per source)"),
    ("pskidentity", "pre-shared keys are not supported: guichet authenticates peers by certificate"),
    ("psksecrets", "pre-shared keys are not supported: guichet authenticates peers by certificate"),
    ("checkemail", "guichet does not match e-mail addresses of client certificates; match them with an [[app]] (cn, san_dns, fingerprint, ...)"),
    ("logid", "guichet's log lines carry the route and the peer's address"),
];

/// Service options stunnel has and guichet reads.
pub(super) const MAPPED: [&str; 22] = [
    "client",
    "accept",
    "connect",
    "cert",
    "key",
    "cafile",
    "capath",
    "crlfile",
    "crlpath",
    "verify",
    "verifychain",
    "verifypeer",
    "requirecert",
    "checkhost",
    "checkip",
    "sni",
    "sslversion",
    "sslversionmin",
    "sslversionmax",
    "timeoutidle",
    "timeoutconnect",
    "ocsp",
];

/// OCSP options whose meaning guichet has in its own words.
const OCSP: [(&str, &str); 3] = [
    ("ocspaia", "guichet asks the responder a certificate names when the profile says ocsp = \"soft\" or \"hard\""),
    ("ocspflag", "guichet's OCSP checks have no OpenSSL flags; see ocsp = \"soft\" or \"hard\""),
    ("ocspnonce", "guichet's OCSP queries carry no nonce; answers are checked by signature and freshness"),
];

/// Why a process option is not carried over; `None` if it is not one.
pub(super) fn process_reason(lower: &str) -> Option<&'static str> {
    PROCESS.iter().find(|(n, _)| *n == lower).map(|(_, r)| *r)
}

/// Why a service option is not carried over; `None` if guichet maps it or
/// does not know it.
pub(super) fn service_reason(lower: &str) -> Option<&'static str> {
    SERVICE
        .iter()
        .chain(OCSP.iter())
        .find(|(n, _)| *n == lower)
        .map(|(_, r)| *r)
        .or_else(|| {
            lower
                .starts_with("session")
                .then_some("guichet keeps its own bounded session cache")
        })
        .or_else(|| {
            lower
                .starts_with("engine")
                .then_some("guichet uses no OpenSSL engine; keys are files (PEM or PKCS#12)")
        })
}

/// Whether guichet maps this service option.
pub(super) fn is_mapped(lower: &str) -> bool {
    MAPPED.contains(&lower)
}
