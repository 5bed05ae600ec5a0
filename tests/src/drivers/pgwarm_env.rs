//! The caller's `PGWARM_*` variables, which a driver passes on to the pgwarm it starts (so that
//! a person can try a setting on the demo or a benchmark without editing it), and how a report
//! shows them. The variables a driver fixes itself never come from the caller.

/// The `PGWARM_*` variables of `vars` (the caller's environment) that reach pgwarm: all but
/// `fixed` (the ones the benchmark sets) and `PGWARM_BIN` (the harness's own: which binary to
/// run), sorted by name.
pub fn pgwarm_passthrough(
    vars: impl IntoIterator<Item = (String, String)>,
    fixed: &[&str],
) -> Vec<(String, String)> {
    let mut passed: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("PGWARM_") && k != "PGWARM_BIN" && !fixed.contains(&k.as_str())
        })
        .collect();
    passed.sort();
    passed
}

/// `NAME=VALUE ...` for a report, a password's value as `***`; "none" for no variable.
pub fn show_env(vars: &[(String, String)]) -> String {
    if vars.is_empty() {
        return "none".into();
    }
    vars.iter()
        .map(|(k, v)| match k.contains("PASSWORD") {
            true => format!("{k}=***"),
            false => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_pgwarm_variables_pass_but_the_fixed_ones_and_pgwarm_bin() {
        let vars = [
            ("PGWARM_WORKER_THREADS", "2"),
            ("PGWARM_POOL_SIZE", "9"),
            ("PGWARM_BIN", "/x/pgwarm"),
            ("PATH", "/bin"),
            ("PGWARM_CLIENT_PASSWORD", "password"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let passed = pgwarm_passthrough(vars, &["PGWARM_POOL_SIZE", "PGWARM_LISTEN"]);
        assert_eq!(
            show_env(&passed),
            "PGWARM_CLIENT_PASSWORD=*** PGWARM_WORKER_THREADS=2"
        );
        assert_eq!(show_env(&[]), "none");
    }
}
