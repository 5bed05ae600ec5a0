//! The facts a benchmark report starts with, so that two reports can be told apart: when, which
//! commit (and whether the tree had changes), how many CPUs and how busy the machine was. The
//! versions of the servers come from their own types
//! ([`crate::harness::Pgbouncer::version`], ...).

use std::path::Path;
use std::process::Command;

/// Now, as `2026-12-01 10:00:00 UTC`.
pub fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "(date unknown)".into())
}

/// The commit of the working directory's repository, short, with " (+ uncommitted changes)"
/// when tracked files differ from it; "unknown" outside a repository.
pub fn commit() -> String {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let Some(head) = head else {
        return "unknown".into();
    };
    let clean = Command::new("git")
        .args(["diff-index", "--quiet", "HEAD", "--"])
        .status()
        .is_ok_and(|s| s.success());
    match clean {
        true => head,
        false => format!("{head} (+ uncommitted changes)"),
    }
}

/// The CPUs this process may run on (what `nproc` prints).
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg has them; "?" without /proc.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A binary's size in bytes and the first 12 hex digits of its SHA-256 (`sha256sum`), to tell
/// which build a report measured.
pub fn file_digest(path: &Path) -> Result<(u64, String), String> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.get(..12) {
        Some(digest) if out.status.success() => Ok((bytes, digest.to_owned())),
        _ => Err(format!("sha256sum {} failed", path.display())),
    }
}
