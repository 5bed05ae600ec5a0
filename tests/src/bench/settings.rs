//! A benchmark's settings from its `BENCH_*` environment variables (a bad value is a message
//! naming the variable, for an exit status of 2), and the output folders.

use std::fs;
use std::path::{Path, PathBuf};

/// The variable's value, `None` when unset or empty (empty means the default, as `${VAR:-x}`
/// does in a shell).
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A positive integer from `name`, `default` when unset.
pub fn env_positive(name: &str, default: u32) -> Result<u32, String> {
    parse_positive(name, env_value(name).as_deref(), default)
}

fn parse_positive(name: &str, value: Option<&str>, default: u32) -> Result<u32, String> {
    let Some(value) = value else {
        return Ok(default);
    };
    value
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{name} must be a positive integer, got '{value}'"))
}

/// The space-separated words of `name`, `default` when unset; at least one.
pub fn env_words(name: &str, default: &str) -> Result<Vec<String>, String> {
    let value = env_value(name).unwrap_or_else(|| default.to_owned());
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    match words.is_empty() {
        true => Err(format!("{name} is empty")),
        false => Ok(words),
    }
}

/// `name`'s value, which must be one of `choices`; `default` when unset.
pub fn env_choice(name: &str, default: &str, choices: &[&str]) -> Result<String, String> {
    let value = env_value(name).unwrap_or_else(|| default.to_owned());
    match choices.contains(&value.as_str()) {
        true => Ok(value),
        false => Err(format!(
            "{name} must be {}, got '{value}'",
            choices.join(" or ")
        )),
    }
}

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
        let root = env_value("BENCH_OUT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("bench"));
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

/// The workspace's target folder: `$CARGO_TARGET_DIR` (relative to the workspace when
/// relative), else `<workspace>/target`.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent (the workspace)")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_integers_or_a_message_naming_the_variable() {
        assert_eq!(parse_positive("BENCH_ROUNDS", None, 3), Ok(3));
        assert_eq!(parse_positive("BENCH_ROUNDS", Some("12"), 3), Ok(12));
        for bad in ["x", "0", "-1", "+2", "1.5", " 2"] {
            assert_eq!(
                parse_positive("BENCH_ROUNDS", Some(bad), 3),
                Err(format!(
                    "BENCH_ROUNDS must be a positive integer, got '{bad}'"
                ))
            );
        }
    }
}
