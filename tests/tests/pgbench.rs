//! pgbench through pgwarm, as the real-world load test: initialisation (COPY), then the TPC-B
//! like script in simple and extended mode with more clients than server connections. A run
//! counts as clean only with exit status 0, no "aborted" and 0 failed transactions (pgbench
//! reports 0 failed even when it aborted clients).

use pgwarm_tests::*;

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
        let processed = pgbench_processed(&out);
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
