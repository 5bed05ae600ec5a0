//! pgbench through pgwarm, as the real-world load test: initialisation (COPY), then the TPC-B
//! like script in simple and extended mode with more clients than server connections. A run
//! counts as clean only with exit status 0, no "aborted" and 0 failed transactions (pgbench
//! reports 0 failed even when it aborted clients).

use pgwarm_tests::*;
use std::process::Command;
use std::time::Duration;

fn pgbench(target: &Target, args: &[&str]) -> String {
    let mut cmd = Command::new(tool("pgbench"));
    target.apply_libpq_env(&mut cmd);
    cmd.args(args);
    let out = output_with_timeout(&mut cmd, None, Duration::from_secs(120));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    assert!(
        !text.contains("aborted"),
        "pgbench {args:?} aborted clients:\n{text}"
    );
    text
}

#[test]
fn pgbench_simple_and_extended_through_pgwarm_have_no_failures() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::builder(&db).env("PGWARM_POOL_SIZE", "2").spawn();
    let target = pgwarm.target();
    pgbench(&target, &["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended"] {
        let out = pgbench(
            &target,
            &["-n", "-M", mode, "-c", "8", "-j", "2", "-T", "4"],
        );
        assert!(
            out.contains("number of failed transactions: 0"),
            "mode {mode}:\n{out}"
        );
        let processed = out
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        assert!(processed > 100, "mode {mode} processed {processed}:\n{out}");
    }
    assert!(cluster().backends_for(&db.user) <= 2);
    // The books balance: TPC-B moves money, it never creates or loses it.
    let sums = cluster().psql_super(&format!(
        "\\c {}\nselect (select sum(abalance) from pgbench_accounts) = (select sum(bbalance) from pgbench_branches)",
        quote_ident(&db.dbname)
    ));
    assert!(sums.ends_with('t'), "balances differ: {sums}");
}
