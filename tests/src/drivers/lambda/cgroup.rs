//! The Lambda environment's CPU share, made with a cgroup: Lambda gives a function CPU in
//! proportion to its memory, one vCPU at 1,769 MB, so 128 MB is about 7.2 % of one, enforced
//! per 100 ms period like a CFS quota. The handler and pgwarm share it, as they share the
//! environment; the database, the delay relay and this driver stay outside. cgroup v2 (`cpu.max`)
//! when a v2 hierarchy has the `cpu` controller, else v1 (`cpu.cfs_quota_us`); which one is in
//! the report. The group is removed on drop, and empty groups an interrupted run left behind are
//! removed at the next start.

use std::fs;
use std::path::{Path, PathBuf};

/// The CFS period: Lambda's, and the kernel's default.
pub const PERIOD_US: u64 = 100_000;

/// The memory that buys one whole vCPU.
pub const ONE_VCPU_MB: u32 = 1_769;

/// Where the groups of this benchmark are made, under the hierarchy's root.
const PREFIX: &str = "pgwarm-bench-lambda-";

/// The quota in µs per [`PERIOD_US`] for a function of `memory_mb`, at most the whole period.
pub fn quota_us(memory_mb: u32) -> u64 {
    (PERIOD_US * u64::from(memory_mb) / u64::from(ONE_VCPU_MB)).clamp(1_000, PERIOD_US)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One cgroup with a CPU quota.
#[derive(Debug)]
pub struct CpuGroup {
    version: Version,
    path: PathBuf,
}

impl CpuGroup {
    /// A new group under the first hierarchy that can limit CPU (see the module's doc).
    pub fn create() -> Result<CpuGroup, String> {
        let v2_roots = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
        let v2 = v2_roots.iter().map(Path::new).find(|root| {
            fs::read_to_string(root.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "cpu"))
        });
        let v1 = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
            .iter()
            .map(Path::new)
            .find(|root| root.join("cpu.cfs_quota_us").is_file());
        let (version, root) = match (v2, v1) {
            (Some(root), _) => (Version::V2, root),
            (None, Some(root)) => (Version::V1, root),
            (None, None) => {
                return Err(
                    "no cgroup hierarchy with the cpu controller (neither cgroup v2's \
                            cpu.max nor v1's cpu.cfs_quota_us under /sys/fs/cgroup)"
                        .into(),
                )
            }
        };
        remove_leftovers(root);
        if version == Version::V2 {
            // The controller must be on for the root's children; already on is fine.
            let _ = fs::write(root.join("cgroup.subtree_control"), "+cpu");
        }
        let path = root.join(format!("{PREFIX}{}", std::process::id()));
        fs::create_dir(&path).map_err(|e| {
            format!(
                "cannot create the cgroup {} (run as root): {e}",
                path.display()
            )
        })?;
        Ok(CpuGroup { version, path })
    }

    /// "cgroup v1, cpu.cfs_quota_us / cpu.cfs_period_us, /sys/fs/cgroup/cpu/pgwarm-bench-...".
    pub fn describe(&self) -> String {
        let files = match self.version {
            Version::V1 => "cpu.cfs_quota_us / cpu.cfs_period_us",
            Version::V2 => "cpu.max",
        };
        let v = match self.version {
            Version::V1 => 1,
            Version::V2 => 2,
        };
        format!("cgroup v{v}, {files}, {}", self.path.display())
    }

    /// The share of a function with `memory_mb`: [`quota_us`] per [`PERIOD_US`].
    pub fn set_memory(&self, memory_mb: u32) -> Result<(), String> {
        let quota = quota_us(memory_mb);
        match self.version {
            Version::V1 => {
                self.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
                self.write("cpu.cfs_quota_us", &quota.to_string())
            }
            Version::V2 => self.write("cpu.max", &format!("{quota} {PERIOD_US}")),
        }
    }

    /// Moves the process `pid` (all its threads) into the group, and checks it is there.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())?;
        let procs = fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        match procs.lines().any(|l| l.trim() == pid.to_string()) {
            true => Ok(()),
            false => Err(format!("pid {pid} is not in {}", self.path.display())),
        }
    }

    /// The file a process writes its pid to, to enter the group (a wrapper does, before exec).
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// How many periods the group was throttled in so far (`nr_throttled` of `cpu.stat`).
    pub fn throttled(&self) -> Option<u64> {
        let stat = fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.path.join(file);
        fs::write(&path, value).map_err(|e| format!("write {value} to {}: {e}", path.display()))
    }
}

impl Drop for CpuGroup {
    /// A group goes only once empty: its processes are moved back to the root first.
    fn drop(&mut self) {
        let root = self.path.parent().expect("a group has a parent");
        if let Ok(procs) = fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = fs::write(root.join("cgroup.procs"), pid);
            }
        }
        if let Err(e) = fs::remove_dir(&self.path) {
            eprintln!("bench-lambda: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Removes the empty groups of earlier runs (a group with a process in it fails to go, and
/// stays).
fn remove_leftovers(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(PREFIX) {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_cpu_share_per_100_ms() {
        assert_eq!(quota_us(128), 7_235);
        assert_eq!(quota_us(512), 28_942);
        assert_eq!(quota_us(1_769), PERIOD_US);
        assert_eq!(quota_us(10_240), PERIOD_US);
    }
}
