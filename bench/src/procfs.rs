//! What the benchmark reads from /proc: resident memory and CPU time of
//! the gateways, listening sockets, descriptor limits.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context};

/// VmRSS of /proc/PID/status, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// VmHWM of /proc/PID/status, the most it has been resident, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// A field of /proc/PID/status given in kB.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// User plus system CPU time of the process PID, all threads.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    let hz = clock_ticks_per_second();
    Some(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// CPU time of the process PID and of every process descended from it
/// (nginx's master and its workers).
pub fn tree_cpu_time(pid: u32) -> Option<Duration> {
    let own = cpu_time(pid)?;
    Some(
        descendants(pid)
            .into_iter()
            .filter_map(cpu_time)
            .fold(own, |total, cpu| total + cpu),
    )
}

/// The peak resident memory (VmHWM) of a process and its descendants
/// (nginx's workers), summed, in KiB.
pub fn tree_peak_rss_kib(pid: u32) -> Option<u64> {
    let own = peak_rss_kib(pid).ok()?;
    Some(
        descendants(pid)
            .into_iter()
            .filter_map(|p| peak_rss_kib(p).ok())
            .fold(own, |total, kib| total + kib),
    )
}

/// Every process whose chain of parents leads to `root`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let of = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == of).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent of PID, from /proc/PID/stat.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CLK_TCK, from `getconf` (no libc here: the crate forbids unsafe code).
fn clock_ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&hz| hz > 0)
            .unwrap_or(100)
    })
}

/// Whether a socket listens on `addr` (IPv4 only, which is all we use).
pub fn is_listening(addr: SocketAddr) -> anyhow::Result<bool> {
    let SocketAddr::V4(v4) = addr else {
        bail!("{addr}: only IPv4 addresses are used here");
    };
    let wanted = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").context("cannot read /proc/net/tcp")?;
    Ok(table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let local = fields.next();
        let state = fields.nth(1);
        local == Some(wanted.as_str()) && state == Some("0A")
    }))
}

/// The hard limit on open files of this process (children inherit it).
pub fn nofile_hard_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line.split_whitespace().nth(4)? {
        "unlimited" => Some(u64::MAX),
        hard => hard.parse().ok(),
    }
}

/// Raises this process's soft descriptor limit to its hard limit (with
/// `prlimit`): the load generator holds one descriptor per idle connection.
pub fn raise_own_nofile() {
    if let Some(hard) = nofile_hard_limit().filter(|&h| h != u64::MAX) {
        let _ = Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={hard}:{hard}"))
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_listener_is_seen_and_then_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(is_listening(addr).unwrap());
        drop(listener);
        assert!(!is_listening(addr).unwrap());
    }

    #[test]
    fn a_child_counts_in_its_parents_tree() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()));
        assert_eq!(parent(child.id()), Some(me));
        assert!(tree_cpu_time(me).is_some());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(cpu_time(pid).is_some());
    }
}
