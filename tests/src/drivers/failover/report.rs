//! The failover comparison's runs table (a TSV line per run, written as the runs go) and its
//! report: every run, the medians per way over the rounds with their ranges, the ratios of
//! pgwarm's figures to the others', and the errors the clients saw, by kind.

use super::load::{Fault, Run, Seen};
use super::settings::FailoverSettings;
use super::ways::Way;
use crate::drivers::figures::median;

/// One run as recorded.
pub(super) struct Record {
    pub(super) round: usize,
    /// 1-based, in the order the ways of the round went.
    pub(super) position: usize,
    pub(super) way: Way,
    pub(super) run: Run,
}

impl Record {
    pub(super) fn seen(&self) -> Option<&Seen> {
        self.run.seen.as_ref().ok()
    }
}

pub(super) const TSV_HEADER: &str = "round\tposition\tway\tops\tops_after\terrors_outside\t\
    connect_errors\tkilled\tclients_with_errors\terrors_inside\tcommitted\tin_doubt\tlost\tdoubled\tunexpected\t\
    first_write_ms\tfirst_op_ms\tlast_error_ms\tunfinished\twrong\tstop_ms\tpromote_ms\tfailure";

/// The runs table's line for `r`: empty cells where it has no figure.
pub(super) fn tsv_line(r: &Record) -> String {
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    let mut cells = vec![
        r.round.to_string(),
        r.position.to_string(),
        r.way.name().to_owned(),
    ];
    match &r.run.seen {
        Ok(s) => cells.extend([
            s.ops.to_string(),
            s.ops_after.to_string(),
            s.errors_outside().to_string(),
            s.connect_errors().to_string(),
            s.killed().to_string(),
            s.clients_with_errors.to_string(),
            s.errors_inside().to_string(),
            s.rows.committed.to_string(),
            s.rows.in_doubt.to_string(),
            s.rows.lost.to_string(),
            s.rows.doubled.to_string(),
            s.rows.unexpected.to_string(),
            ms(s.first_write_ms),
            ms(s.first_op_ms),
            ms(s.last_error_ms),
            s.unfinished.to_string(),
            s.wrong_count.to_string(),
        ]),
        Err(_) => cells.extend(std::iter::repeat_n(String::new(), 17)),
    }
    let fault = r.run.fault;
    cells.push(ms(fault.map(|f| f.stop_ms)));
    cells.push(ms(fault.map(|f| f.promote_ms)));
    cells.push(match &r.run.seen {
        Ok(s) if s.wrong_count > 0 => format!("wrong answers: {}", s.wrong.join("; ")),
        Ok(_) => String::new(),
        Err(e) => e.to_string().replace(['\t', '\n'], " "),
    });
    cells.join("\t")
}

/// What the report says of the run as a whole, besides the settings.
pub(super) struct Facts {
    pub(super) date: String,
    pub(super) commit: String,
    pub(super) pgwarm: String,
    pub(super) postgres: String,
    pub(super) pgbouncer: String,
    pub(super) seconds: u64,
    pub(super) load_before: String,
    pub(super) load_after: String,
}

/// The whole report.
pub(super) fn report(s: &FailoverSettings, facts: &Facts, records: &[Record]) -> String {
    let none = s.none_within();
    let client = records
        .iter()
        .find_map(|r| r.seen().map(|s| s.client.clone()))
        .unwrap_or_else(|| "?".into());
    let transactional = s.clients.div_ceil(4);
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "pgwarm failover comparison (failover), {}",
        facts.date
    ));
    line(format!(
        "commit: {}   nproc: {}   pgwarm: {}",
        facts.commit,
        crate::drivers::facts::nproc(),
        facts.pgwarm
    ));
    line(format!(
        "PostgreSQL {}; {}; clients: {client}, one Python thread each",
        facts.postgres, facts.pgbouncer
    ));
    line(format!(
        "Each run: a fresh primary and a streaming standby of it (pg_basebackup -R), a fresh \
         login and table; {} clients, {transactional} of them in transactions (BEGIN; INSERT a \
         unique id; COMMIT), the others a simple-protocol SELECT and a parameterised one in \
         turn, 3 ms apart; 1 s after every client had an operation succeed, pg_ctl stop -m fast \
         of the primary, then pg_ctl promote of the standby; the load goes on {} s after the \
         promotion was asked for.",
        s.clients,
        s.window.as_secs()
    ));
    line(format!(
        "Every client: psycopg, autocommit, prepare_threshold=None, sslmode=disable \
         connect_timeout=10; a client whose connection is gone connects again, {} ms later (and \
         {} ms after a failed connect).",
        s.backoff_ms, s.backoff_ms
    ));
    line(format!(
        "  pgwarm     PGWARM_DB_HOST=127.0.0.1,127.0.0.1 PGWARM_DB_PORT=<primary>,<standby> {}; \
         caller's extra env: {}",
        super::PGWARM_SETTINGS
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        crate::drivers::pgwarm_env::show_env(&s.passthrough)
    ));
    line(
        "  direct     host=127.0.0.1,127.0.0.1 port=<primary>,<standby> \
         target_session_attrs=read-write"
            .into(),
    );
    line(
        "  pgbouncer  pool_mode transaction, default_pool_size 4, its database at the primary's \
         127.0.0.1:<port> (one address, as with one host name), otherwise its defaults"
            .into(),
    );
    line(format!(
        "{} rounds, the ways in an order rotating each round; {} runs took {} s",
        s.rounds,
        records.len(),
        facts.seconds
    ));
    line(format!(
        "load average before: {}   after: {}",
        facts.load_before, facts.load_after
    ));
    line(fault_note(records));
    line(String::new());
    line(
        "Back: ms from the promotion's request to the first write (a COMMIT) and the first \
          operation of any kind that succeeded after it. Errors outside a transaction: failed \
          connects, and statements that failed (killed: the database ended them while they ran); \
          clients: how many saw one. \
          Lost: committed ids not on the new primary; doubled: ids there twice. Unfinished: \
          clients still inside an operation 5 s after the load ended. Promote: how long pg_ctl promote \
          (-w) took, part of the time back."
            .into(),
    );
    line(String::new());
    line(format!(
        "{:>5}  {:<9}  {:>7}  {:>8}  {:>8}  {:>6}  {:>7}  {:>6}  {:>9}  {:>4}  {:>7}  {:>17}  {:>17}  {:>10}  {:>10}",
        "round",
        "way",
        "ops",
        "outside",
        "connects",
        "killed",
        "clients",
        "inside",
        "committed",
        "lost",
        "doubled",
        "write back ms",
        "any back ms",
        "unfinished",
        "promote ms"
    ));
    for r in records {
        let head = format!("{:>5}  {:<9}", r.round, r.way.name());
        match &r.run.seen {
            Ok(seen) => line(format!(
                "{head}  {:>7}  {:>8}  {:>8}  {:>6}  {:>7}  {:>6}  {:>9}  {:>4}  {:>7}  {:>17}  {:>17}  {:>10}  {:>10}",
                seen.ops,
                seen.errors_outside(),
                seen.connect_errors(),
                seen.killed(),
                seen.clients_with_errors,
                seen.errors_inside(),
                seen.rows.committed,
                seen.rows.lost,
                seen.rows.doubled,
                back(seen.first_write_ms, &none),
                back(seen.first_op_ms, &none),
                seen.unfinished,
                r.run
                    .fault
                    .map(|f| format!("{:.0}", f.promote_ms))
                    .unwrap_or_default()
            )),
            Err(e) => line(format!("{head}  FAILED: {e}")),
        }
    }
    line(String::new());
    line("Medians over the rounds (min-max):".into());
    line(format!(
        "{:<9}  {:>21}  {:>21}  {:>13}  {:>13}  {:>12}  {:>29}  {:>29}",
        "way",
        "ops",
        "errors outside",
        "clients",
        "inside",
        "lost+doubled",
        "writes again (ms)",
        "any operation again (ms)"
    ));
    let ways: Vec<Way> = s.ways.clone();
    for &way in &ways {
        let runs = of_way(records, way);
        let count = |f: &dyn Fn(&Seen) -> u64| spread(&counts(&runs, f));
        line(format!(
            "{:<9}  {:>21}  {:>21}  {:>13}  {:>13}  {:>12}  {:>29}  {:>29}",
            way.name(),
            count(&|s| s.ops),
            count(&|s| s.errors_outside()),
            count(&|s| s.clients_with_errors),
            count(&|s| s.errors_inside()),
            count(&|s| s.rows.lost + s.rows.doubled),
            times(&runs, |s| s.first_write_ms, &none),
            times(&runs, |s| s.first_op_ms, &none),
        ));
    }
    if ways.contains(&Way::Pgwarm) {
        line(String::new());
        line("Ratios of the medians, another way's over pgwarm's:".into());
        let pgwarm = of_way(records, Way::Pgwarm);
        for &way in ways.iter().filter(|w| **w != Way::Pgwarm) {
            let other = of_way(records, way);
            let time = |f: fn(&Seen) -> Option<f64>| {
                ratio(
                    median_time(&other, f),
                    median_time(&pgwarm, f),
                    &none,
                    "pgwarm",
                )
            };
            let errors = ratio(
                median(&counts(&other, |s| s.errors_outside() as f64)),
                median(&counts(&pgwarm, |s| s.errors_outside() as f64)),
                "-",
                "pgwarm",
            );
            line(format!(
                "  {} / pgwarm: writes again {}; any operation again {}; errors outside a \
                 transaction {errors}",
                way.name(),
                time(|s| s.first_write_ms),
                time(|s| s.first_op_ms),
            ));
        }
    }
    line(String::new());
    line("Errors by kind, all rounds (count, where, first 200 characters):".into());
    for &way in &ways {
        line(format!("  {}:", way.name()));
        for (count, place, message) in kinds(records, way).into_iter().take(6) {
            let short: String = message.chars().take(200).collect();
            line(format!("    {count:>7}  {place:<11}  {short}"));
        }
    }
    out
}

/// The seen figures of `way`'s runs, one per round (`None`: the run failed).
fn of_way(records: &[Record], way: Way) -> Vec<Option<&Seen>> {
    records
        .iter()
        .filter(|r| r.way == way)
        .map(Record::seen)
        .collect()
}

fn counts<T>(runs: &[Option<&Seen>], f: impl Fn(&Seen) -> T) -> Vec<T> {
    runs.iter().flatten().map(|s| f(s)).collect()
}

/// "median (min-max)" of whole numbers.
fn spread(values: &[u64]) -> String {
    let floats: Vec<f64> = values.iter().map(|v| *v as f64).collect();
    match (median(&floats), values.iter().min(), values.iter().max()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.0} ({lo}-{hi})"),
        _ => "-".into(),
    }
}

/// A time back, or `none`.
fn back(ms: Option<f64>, none: &str) -> String {
    ms.map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| none.to_owned())
}

/// The median of the times, a run with none counting as longer than any; `None` when that
/// median is such a run (or no run measured).
fn median_time(runs: &[Option<&Seen>], f: fn(&Seen) -> Option<f64>) -> Option<f64> {
    let values = counts(runs, |s| f(s).unwrap_or(f64::INFINITY));
    median(&values).filter(|m| m.is_finite())
}

/// "median (min-max)" of the times, `none` for a run that had none; the median alone when
/// every run had the same.
fn times(runs: &[Option<&Seen>], f: fn(&Seen) -> Option<f64>, none: &str) -> String {
    let values = counts(runs, |s| f(s).unwrap_or(f64::INFINITY));
    let show = |v: f64| match v.is_finite() {
        true => format!("{v:.1}"),
        false => "none".to_owned(),
    };
    let lo = values.iter().copied().min_by(f64::total_cmp);
    let hi = values.iter().copied().max_by(f64::total_cmp);
    match (median(&values), lo, hi) {
        (Some(m), Some(lo), Some(hi)) if lo == hi && !m.is_finite() => none.to_owned(),
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}-{})", show(m), show(lo), show(hi)),
        _ => "-".into(),
    }
}

/// `a / b` as "N.N×", or why there is none.
fn ratio(a: Option<f64>, b: Option<f64>, none: &str, b_name: &str) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}× ({a:.1} against {b:.1})", a / b),
        (Some(a), Some(_)) => format!("- ({a:.1} against {b_name}'s 0)"),
        (None, _) => format!("- ({none})"),
        (Some(_), None) => format!("- ({b_name}: {none})"),
    }
}

/// `way`'s errors by kind over every round, most frequent first: (count, where, message).
fn kinds(records: &[Record], way: Way) -> Vec<(u64, String, String)> {
    let mut all: Vec<(u64, String, String)> = Vec::new();
    let seen = records
        .iter()
        .filter(|r| r.way == way)
        .filter_map(Record::seen);
    for e in seen.flat_map(|s| &s.errors) {
        match all
            .iter_mut()
            .find(|(_, p, m)| *p == e.place && *m == e.message)
        {
            Some(kind) => kind.0 += e.count,
            None => all.push((e.count, e.place.clone(), e.message.clone())),
        }
    }
    all.sort_by_key(|kind| std::cmp::Reverse(kind.0));
    all
}

/// The fault's figures for the report's note: the median time of each step.
fn fault_note(records: &[Record]) -> String {
    let faults: Vec<Fault> = records.iter().filter_map(|r| r.run.fault).collect();
    let stop: Vec<f64> = faults.iter().map(|f| f.stop_ms).collect();
    let promote: Vec<f64> = faults.iter().map(|f| f.promote_ms).collect();
    match (median(&stop), median(&promote)) {
        (Some(stop), Some(promote)) => format!(
            "pg_ctl stop -m fast took {stop:.0} ms and pg_ctl promote (-w) {promote:.0} ms \
             (medians over the runs)"
        ),
        _ => "no run reached the fault".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::failover::load::{Rows, Seen};

    fn seen(first_write_ms: Option<f64>) -> Seen {
        Seen {
            ops: 1,
            ops_after: 1,
            errors: Vec::new(),
            first_op_ms: first_write_ms,
            first_write_ms,
            clients_with_errors: 0,
            last_error_ms: None,
            unfinished: 0,
            wrong_count: 0,
            wrong: Vec::new(),
            rows: Rows::default(),
            client: String::new(),
        }
    }

    #[test]
    fn a_way_that_never_came_back_counts_as_slower_than_any_that_did() {
        let runs = [seen(Some(80.0)), seen(None), seen(Some(60.0))];
        let runs: Vec<Option<&Seen>> = runs.iter().map(Some).collect();
        let first_write = |s: &Seen| s.first_write_ms;
        assert_eq!(median_time(&runs, first_write), Some(80.0));
        assert_eq!(
            times(&runs, first_write, "none within 10 s"),
            "80.0 (60.0-none)"
        );
        let never = [seen(None), seen(None), seen(Some(60.0))];
        let never: Vec<Option<&Seen>> = never.iter().map(Some).collect();
        assert_eq!(median_time(&never, first_write), None);
        let all_none = [seen(None)];
        let all_none: Vec<Option<&Seen>> = all_none.iter().map(Some).collect();
        assert_eq!(
            times(&all_none, first_write, "none within 10 s"),
            "none within 10 s"
        );
    }

    #[test]
    fn ratios_say_why_there_is_none() {
        let none = "none within 10 s";
        assert_eq!(
            ratio(Some(90.0), Some(60.0), none, "pgwarm"),
            "1.5× (90.0 against 60.0)"
        );
        assert_eq!(
            ratio(None, Some(60.0), none, "pgwarm"),
            "- (none within 10 s)"
        );
        assert_eq!(
            ratio(Some(3.0), Some(0.0), none, "pgwarm"),
            "- (3.0 against pgwarm's 0)"
        );
    }
}
