//! The real pgJDBC (Debian's libpostgresql-jdbc-java, Java being one of the most used Lambda
//! runtimes) through pgwarm in transaction mode, pool 2: `tests/java/JdbcLoad.java`, four
//! threads with server-side prepared statements from their first use, getMetaData, batch
//! inserts in transactions, every answer checked, while the pooled backends are terminated
//! midway. Only statements killed while they ran may fail, as directly.

use pgwarm_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PGJDBC: &str = "/usr/share/java/postgresql.jar";

#[test]
fn pgjdbc_with_server_prepared_statements_survives_terminated_backends() {
    assert!(
        Path::new(PGJDBC).is_file(),
        "{PGJDBC} is missing: install the Debian package libpostgresql-jdbc-java \
         (scripts/test.sh installs everything the tests need)"
    );
    let classes = TempDir::new("pgwarm-jdbc");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("java/JdbcLoad.java");
    let mut javac = Command::new(tool("javac"));
    javac
        .arg("-d")
        .arg(classes.path())
        .args(["-cp", PGJDBC])
        .arg(&source);
    run_ok(&mut javac, "javac JdbcLoad.java");

    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let target = pgwarm.target();
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/{}",
        target.port, target.dbname
    );
    let mut java = Command::new(tool("java"));
    java.arg("-cp")
        .arg(format!("{PGJDBC}:{}", classes.path().display()))
        .arg("JdbcLoad")
        .args([&url, &target.user, &target.password, "6"]);
    let killer = std::thread::spawn({
        let role = db.user.clone();
        move || {
            std::thread::sleep(Duration::from_secs(3));
            cluster().terminate_backends_for(&role)
        }
    });
    let out = output_with_timeout(&mut java, None, Duration::from_secs(120));
    let terminated = killer.join().expect("the terminating thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}terminated {terminated} backends midway");
    assert!(
        out.status.success(),
        "JdbcLoad failed ({}):\n{stdout}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        pgwarm.log()
    );
    assert!(terminated >= 1, "backends were terminated midway");
    assert!(cluster().backends_for(&db.user) <= 2, "the pool size is 2");
}
