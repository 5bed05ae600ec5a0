//! What reaches CloudWatch without an agent: Embedded Metric Format lines on stdout that parse
//! against the documented structure and add up to the admin console's counters, the database's
//! connection use among them; and, under the Lambda simulator, log lines that carry the request
//! id of the invocation they belong to, and `SHOW LAMBDA`.

use pgwarm_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_lines_add_up_to_the_admin_counters() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_METRICS_INTERVAL", "1s"),
            ("PGWARM_METRICS_NAMESPACE", "pgwarm/test"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "600ms"),
        ],
    );
    let console = pgwarm.admin_target().connect().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(pgwarm.target().connect().await);
    }
    for client in &clients {
        for _ in 0..10 {
            client
                .simple_query("BEGIN; SELECT 1; COMMIT")
                .await
                .expect("a transaction");
        }
    }
    // One wait that runs out: a client held the only connection.
    clients[0].simple_query("BEGIN").await.expect("BEGIN");
    let late = pgwarm.target().connect().await;
    let e = late
        .simple_query("SELECT 1")
        .await
        .expect_err("the wait runs out");
    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e:?}");
    clients[0].simple_query("COMMIT").await.expect("COMMIT");
    // A line while the clients are connected (and a connection is idle to read the database).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = show(&console, "STATS").await.remove(0);
    drop(clients);
    drop(late);
    // Every client gone before the stop: one still connected then would be told pgwarm is
    // stopping, an error of its own.
    wait_for_pool(&console, "the clients to leave", |p| {
        number(p, "cl_active") + number(p, "cl_waiting") == 0
    })
    .await;
    drop(console);
    let (status, log) = pgwarm.terminate();
    assert!(status.success(), "{log}");

    let lines = emf_lines(&log, "pgwarm/test");
    assert!(lines.len() >= 2, "a periodic line and the last one: {log}");
    assert_eq!(lines[0]["FunctionName"], "standalone");
    assert_eq!(
        emf_sum(&lines, "Transactions") as i64,
        number(&stats, "total_xact_count")
    );
    assert_eq!(
        emf_sum(&lines, "Queries") as i64,
        number(&stats, "total_query_count")
    );
    assert_eq!(
        emf_sum(&lines, "ServerLogins") as i64,
        number(&stats, "total_server_logins")
    );
    assert_eq!(emf_sum(&lines, "ErrorsQueryWaitTimeout"), 1.0);
    assert_eq!(emf_sum(&lines, "Errors"), 1.0);
    let waited = lines
        .iter()
        .filter_map(|l| l["MaxWaitMs"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        waited >= 500.0,
        "the timed-out wait is the longest: {waited}"
    );
    assert!(lines
        .iter()
        .any(|l| l["WaitingClients"].as_f64() >= Some(1.0)));
    let read = lines
        .iter()
        .find(|l| l.get("DatabaseConnectionUse").is_some())
        .unwrap_or_else(|| panic!("the database's connection use was read: {log}"));
    let max: f64 = cluster()
        .psql_super("show max_connections")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(read["DatabaseMaxConnections"].as_f64(), Some(max));
    let used = read["DatabaseConnections"].as_f64().expect("a count");
    assert!(used >= 1.0, "{read}");
    let percent = read["DatabaseConnectionUse"]
        .as_f64()
        .expect("a percentage");
    assert!((percent - 100.0 * used / max).abs() < 0.01, "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_writes_no_line() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[("PGWARM_METRICS", "off"), ("PGWARM_METRICS_INTERVAL", "1s")],
    );
    pgwarm.target().psql_ok("select 1");
    let (status, log) = pgwarm.terminate();
    assert!(status.success());
    assert!(!log.contains("\"_aws\""), "{log}");
}

/// The JSON log lines of a pgwarm's output.
fn json_log(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.starts_with('{') && !l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_during_an_invocation_carry_its_request_id() {
    let db = cluster().fresh_target();
    let env = [("PGWARM_POOL_SIZE", "2"), ("PGWARM_LOG_FORMAT", "json")];
    let mut lambda = Lambda::start(&db, &env, true).await;
    lambda.start_handler(&lambda.pgwarm().target().conn_string());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let state = lambda.invoke(json!({})).await;
        assert!(state.error.is_none(), "{:?}", state.error);
        ids.push(state.invocation.request_id.clone());
        // Frozen for a while, as between real invocations.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let mut pgwarm = lambda.shutdown().await.expect("pgwarm ran");
    pgwarm
        .wait_exit(Duration::from_secs(2))
        .expect("pgwarm exits");
    let log = pgwarm.log();
    let lines = json_log(&log);
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
    }
    let first_invoke = lines
        .iter()
        .position(|l| l["message"] == "INVOKE")
        .expect("an INVOKE");
    assert!(
        lines[..first_invoke]
            .iter()
            .all(|l| l.get("requestId").is_none()),
        "no request id before the first invocation"
    );
    // From each INVOKE to the next, every line carries that invocation's id, and the handler's
    // session ended among them; from SHUTDOWN on, none.
    let mut current: Option<&str> = None;
    let mut sessions = std::collections::BTreeMap::new();
    for line in &lines[first_invoke..] {
        if line["message"] == "INVOKE" {
            current = line["request"].as_str();
        }
        if line["message"] == "SHUTDOWN" {
            current = None;
        }
        let Some(id) = current else {
            assert!(line.get("requestId").is_none(), "after SHUTDOWN: {line}");
            continue;
        };
        assert_eq!(line["requestId"], id, "{line}");
        if line["message"] == "session ends" {
            *sessions.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            sessions.get(id),
            Some(&1),
            "one session in invocation {id}: {log}"
        );
    }
    assert!(
        lines.iter().any(|l| l["message"] == "thawed"),
        "freezes are seen: {log}"
    );
    let emf = emf_lines(&log, "pgwarm");
    let last = emf.last().expect("a metrics line at SHUTDOWN");
    assert_eq!(last["FunctionName"], "pgwarm-test");
    let stopped = lines
        .iter()
        .find(|l| l["message"] == "pgwarm stopped")
        .expect("the last line");
    let transactions = stopped["transactions"].as_f64().expect("a total");
    assert!(transactions >= 3.0, "{stopped}");
    assert_eq!(emf_sum(&emf, "Transactions"), transactions, "{emf:?}");
    assert_eq!(stopped["client_logins"], 3, "{stopped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lambda_tells_the_lifecycle() {
    let db = cluster().fresh_target();
    let mut lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], false).await;
    lambda.start_handler(&lambda.pgwarm().target().conn_string());
    let mut last = String::new();
    for _ in 0..2 {
        let state = lambda.invoke(json!({})).await;
        assert!(state.error.is_none(), "{:?}", state.error);
        last = state.invocation.request_id.clone();
    }
    let console = lambda.pgwarm().admin_target().connect().await;
    // lambda-simulator lets the runtime take the next invocation before every extension has
    // asked for it (Lambda does not): after an environment's first invocation pgwarm waits for
    // its runtimeDone, so the second INVOKE may reach it a little after the runtime is done.
    let mut rows = show(&console, "LAMBDA").await;
    let began = std::time::Instant::now();
    while !rows
        .iter()
        .any(|r| r["key"] == "invocations" && r["value"] == "2")
        && began.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        rows = show(&console, "LAMBDA").await;
    }
    let value = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .map(|r| r["value"].clone())
            .unwrap_or_else(|| panic!("{key} in {rows:?}"))
    };
    assert_eq!(value("mode"), "lambda");
    assert_eq!(value("function_name"), "pgwarm-test");
    assert_eq!(value("events"), "INVOKE,SHUTDOWN");
    assert_eq!(value("invocations"), "2");
    assert_eq!(value("last_request_id"), last);
    assert_eq!(value("shutdown_reason"), "");
    assert!(value("registered_at").ends_with(" UTC"));
}

/// The names in the quoted strings of `text` that follow `after`.
fn quoted_after<'a>(text: &'a str, after: &str) -> Vec<&'a str> {
    text.match_indices(after)
        .filter_map(|(i, _)| text[i + after.len()..].split('"').nth(1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_alarms_on_metrics_pgwarm_writes() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml");
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    pgwarm.target().psql_ok("select 1");
    let (_, log) = pgwarm.terminate();
    let mut written: Vec<String> = Vec::new();
    for line in emf_lines(&log, "pgwarm") {
        for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
        {
            written.push(m["Name"].as_str().expect("a name").to_owned());
        }
    }
    // The alarms' metrics; the database's connection use is written only when it was read.
    written.extend(["DatabaseConnectionUse".to_owned()]);
    let alarmed: Vec<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MetricName: "))
        .collect();
    assert_eq!(alarmed, ["WaitingClients", "DatabaseConnectionUse"]);
    let body_start = template.find("{\"widgets\"").expect("the dashboard");
    let body_end = template[body_start..].find("- Fn:").expect("its end") + body_start;
    let body = &template[body_start..body_end];
    let mut charted = quoted_after(body, "[\"pgwarm\", ");
    charted.extend(quoted_after(body, "[\".\", "));
    assert!(charted.len() >= 8, "{charted:?}");
    for name in alarmed.iter().chain(&charted) {
        assert!(
            written.iter().any(|w| w == name),
            "pgwarm writes no metric {name}: {written:?}"
        );
    }
    // The body is JSON once CloudFormation has put the values in.
    let filled: String = body
        .split("${")
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_owned(),
            _ => format!("1{}", part.split_once('}').map_or("", |(_, rest)| rest)),
        })
        .collect();
    serde_json::from_str::<Value>(&filled).unwrap_or_else(|e| panic!("{e}: {filled}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_read_only_after_queries_ran() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_METRICS_INTERVAL", "1s")]);
    let client = pgwarm.target().connect().await;
    // Connected and silent: lines come (a client is there), and none reads the database.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let quiet = emf_lines(&pgwarm.log(), "pgwarm");
    assert!(!quiet.is_empty(), "a line while a client is connected");
    assert!(
        quiet
            .iter()
            .all(|l| l.get("DatabaseConnectionUse").is_none()),
        "{quiet:?}"
    );
    client.simple_query("SELECT 1").await.expect("a query");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lines = emf_lines(&pgwarm.log(), "pgwarm");
    assert!(
        lines
            .iter()
            .any(|l| l.get("DatabaseConnectionUse").is_some()),
        "read once queries ran: {lines:?}"
    );
}
