//! Where a benchmark writes: its report, its per-run table, every pgbench output and the
//! servers' logs; and the report's publication, the same for both benchmarks.

use std::fs;
use std::path::PathBuf;

/// Where a benchmark writes: `root` (BENCH_OUT_DIR, default `<target>/bench`) for the `report`
/// and the per-run `table`, `runs` for every pgbench output and `logs` for the servers' logs;
/// `runs` and `logs` are emptied at the start.
#[derive(Clone, Debug)]
pub(crate) struct OutDirs {
    pub(crate) root: PathBuf,
    pub(crate) report: PathBuf,
    pub(crate) table: PathBuf,
    pub(crate) runs: PathBuf,
    pub(crate) logs: PathBuf,
}

impl OutDirs {
    /// `prefix` names the files and folders: `""` gives report.txt, runs.tsv, runs/ and logs/,
    /// `"connect-"` connect-report.txt, connect-runs.tsv, connect-runs/ and connect-logs/.
    pub(crate) fn create(prefix: &str) -> Result<OutDirs, String> {
        let root = crate::drivers::vars::value("BENCH_OUT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::harness::target_dir().join("bench"));
        fs::create_dir_all(&root).map_err(|e| format!("BENCH_OUT_DIR {}: {e}", root.display()))?;
        let root = fs::canonicalize(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let dirs = OutDirs {
            report: root.join(format!("{prefix}report.txt")),
            table: root.join(format!("{prefix}runs.tsv")),
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
    pub(crate) fn save_log(&self, name: &str, text: &str) {
        save(&self.logs.join(name), text);
    }

    /// Writes one run's output into `runs`.
    pub(crate) fn save_run(&self, name: &str, text: &str) {
        save(&self.runs.join(name), text);
    }

    /// Writes the whole per-run `table` at once (for a benchmark that does not add to it run by
    /// run).
    pub(crate) fn write_table(&self, text: &str) -> Result<(), String> {
        fs::write(&self.table, text).map_err(|e| format!("{}: {e}", self.table.display()))
    }

    /// The benchmark `program`'s report: written to `report`, printed on stdout (what the
    /// scripts show), and where both files are said on stderr.
    pub(crate) fn publish(&self, program: &str, report: &str) -> Result<(), String> {
        fs::write(&self.report, report).map_err(|e| format!("{}: {e}", self.report.display()))?;
        println!("\n{report}");
        super::say(
            program,
            format!(
                "report written to {} (per-run figures in {})",
                self.report.display(),
                self.table.display()
            ),
        );
        Ok(())
    }
}

/// Writes `text` to `path`, or says on stderr why it could not.
fn save(path: &std::path::Path, text: &str) {
    if let Err(e) = fs::write(path, text) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
