//! Where a benchmark writes: its report, its per-run table, every pgbench output and the
//! servers' logs.

use std::fs;
use std::path::PathBuf;

/// Where a benchmark writes: `root` (BENCH_OUT_DIR, default `<target>/bench`) for the report and
/// the per-run table, `runs` for every pgbench output and `logs` for the servers' logs; `runs`
/// and `logs` are emptied at the start.
#[derive(Clone, Debug)]
pub struct OutDirs {
    pub root: PathBuf,
    pub runs: PathBuf,
    pub logs: PathBuf,
}

impl OutDirs {
    /// `prefix` names the folders: `""` gives runs/ and logs/, `"connect-"` connect-runs/ and
    /// connect-logs/.
    pub fn create(prefix: &str) -> Result<OutDirs, String> {
        let root = crate::drivers::vars::value("BENCH_OUT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::harness::target_dir().join("bench"));
        fs::create_dir_all(&root).map_err(|e| format!("BENCH_OUT_DIR {}: {e}", root.display()))?;
        let root = fs::canonicalize(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let dirs = OutDirs {
            runs: root.join(format!("{prefix}runs")),
            logs: root.join(format!("{prefix}logs")),
            root,
        };
        for dir in [&dirs.runs, &dirs.logs] {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(|e| format!("empty {}: {e}", dir.display()))?;
            }
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(dirs)
    }

    /// Writes a server's log into `logs`.
    pub fn save_log(&self, name: &str, text: &str) {
        let path = self.logs.join(name);
        if let Err(e) = fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}
