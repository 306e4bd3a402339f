//! Who runs a CLI command, for the journal's audit records.
//!
//! Reading a stored body is reading patient data: the record must name
//! the person, and nothing that person can choose. `USER`, `LOGNAME` and
//! `SUDO_USER` are environment variables anyone sets; the real uid comes
//! from the kernel, and the login uid (`/proc/self/loginuid`, set by
//! PAM at login and kept across `sudo` and `su`) names who logged in.
//! `SUDO_USER` is kept only as a claim, marked as such.

use std::path::Path;

/// The login uid the kernel reports when none was set (no PAM login).
const UNSET_LOGIN_UID: u32 = u32::MAX;

/// The audit actor: `NAME (uid N[, login NAME uid N][, claims SUDO_USER=X], cli)`.
pub fn actor() -> String {
    let uid = rustix::process::getuid().as_raw();
    let mut text = format!("{} (uid {uid}", user_name(uid));
    if let Some(login) = login_uid().filter(|login| *login != uid) {
        text.push_str(&format!(", login {} uid {login}", user_name(login)));
    }
    if let Some(claimed) = std::env::var("SUDO_USER").ok().map(|v| claim(&v)) {
        text.push_str(&format!(", claims SUDO_USER={claimed}"));
    }
    text.push_str(", cli)");
    text
}

/// The login uid of this process, when a login set one.
fn login_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/loginuid")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|uid| *uid != UNSET_LOGIN_UID)
}

/// The user name of `uid` from the passwd database (`/etc/passwd`, then
/// `getent` for directory users: LDAP, SSSD), or `?` when it has none.
fn user_name(uid: u32) -> String {
    let local = std::fs::read_to_string(Path::new("/etc/passwd"))
        .ok()
        .and_then(|passwd| name_in_passwd(&passwd, uid));
    local
        .or_else(|| getent(uid))
        .unwrap_or_else(|| "?".to_string())
}

fn getent(uid: u32) -> Option<String> {
    let out = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| name_in_passwd(&String::from_utf8_lossy(&out.stdout), uid))
        .flatten()
}

/// The name on the line of `uid` in passwd(5) text.
fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let line_uid: u32 = fields.nth(1)?.parse().ok()?;
        (line_uid == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// A claimed name as it may enter a record: a user name's characters
/// only, at most 32 of them, so a lie cannot forge the rest of the line.
fn claim(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_uid_field() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # comment\n\
                      alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
                      bob:x:10000:10000::/home/bob:/bin/sh\n";
        assert_eq!(name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(name_in_passwd(passwd, 10000).as_deref(), Some("bob"));
        assert_eq!(name_in_passwd(passwd, 100), None);
    }

    #[test]
    fn a_claim_cannot_forge_the_record() {
        assert_eq!(claim("alice"), "alice");
        assert_eq!(claim("root (uid 0, cli)|x"), "rootuid0clix");
        assert_eq!(claim(&"a".repeat(100)).len(), 32);
    }
}
