//! The admin console's commands, parsed from a simple query's text the way PgBouncer reads
//! them: one command, any case, an optional trailing semicolon.

use crate::protocol::{sqlstate, PgError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// An empty query (`;`), answered with EmptyQueryResponse.
    Empty,
    Show(Show),
    /// Read the secret (or sign a token) again now.
    Reload,
    /// Wait for transactions under way, hold new ones; the database name is optional.
    Pause(Option<String>),
    Resume(Option<String>),
    /// End every client of a database.
    Kill(String),
    /// End one client, by the id `SHOW CLIENTS` gives.
    KillClient(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    Help,
    Pools,
    Stats,
    StatsTotals,
    StatsAverages,
    Servers,
    Clients,
    Config,
    Databases,
    Lists,
    Version,
    Prepared,
    Lambda,
    Hosts,
}

impl Show {
    /// Every SHOW with what it tells, for `SHOW HELP` and the error that lists them.
    pub(super) const ALL: [(&'static str, Show, &'static str); 14] = [
        ("HELP", Show::Help, "this list"),
        ("POOLS", Show::Pools, "clients and server connections by state, and the longest wait"),
        ("STATS", Show::Stats, "totals and averages of transactions, queries, bytes and time, and pgwarm's own counters"),
        ("STATS_TOTALS", Show::StatsTotals, "the totals of SHOW STATS"),
        ("STATS_AVERAGES", Show::StatsAverages, "the averages of SHOW STATS, over the last PGWARM_STATS_PERIOD"),
        ("SERVERS", Show::Servers, "each server connection"),
        ("CLIENTS", Show::Clients, "each client connection"),
        ("CONFIG", Show::Config, "the settings in effect (secrets as ***)"),
        ("DATABASES", Show::Databases, "the database pgwarm pools"),
        ("LISTS", Show::Lists, "counts of databases, pools, clients and servers"),
        ("VERSION", Show::Version, "pgwarm's version"),
        ("PREPARED", Show::Prepared, "prepared statements per server connection: hits and re-prepares"),
        ("LAMBDA", Show::Lambda, "the Lambda lifecycle: registration, invocations, thaw checks, freezes, shutdown"),
        ("HOSTS", Show::Hosts, "each database host, what the last login there found, and where logins go first"),
    ];
}

/// The commands besides SHOW, for `SHOW HELP`.
pub(super) const OTHERS: [(&str, &str); 6] = [
    (
        "RELOAD",
        "read the database secret again now (or sign a new IAM token)",
    ),
    (
        "PAUSE [db]",
        "wait for transactions under way to finish; new ones wait for RESUME",
    ),
    ("RESUME [db]", "let the transactions held by PAUSE run"),
    ("KILL db", "close every client of the database"),
    (
        "KILL_CLIENT id",
        "close one client (its id from SHOW CLIENTS)",
    ),
    ("SHOW ...", "the SHOW commands above"),
];

pub(super) fn parse(query: &str) -> Result<Command, PgError> {
    let text = query.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let arg = |i: usize| words.get(i).map(|w| unquote(w));
    match upper.as_slice() {
        [] => Ok(Command::Empty),
        ["SHOW", what] => Show::ALL
            .iter()
            .find(|(name, _, _)| name == what)
            .map(|(_, show, _)| Command::Show(*show))
            .ok_or_else(|| {
                invalid(format!(
                    "unknown SHOW item \"{}\"",
                    words.get(1).unwrap_or(&"")
                ))
            }),
        ["RELOAD"] => Ok(Command::Reload),
        ["PAUSE"] | ["PAUSE", _] => Ok(Command::Pause(arg(1))),
        ["RESUME"] | ["RESUME", _] => Ok(Command::Resume(arg(1))),
        ["KILL", _] => Ok(Command::Kill(arg(1).unwrap_or_default())),
        ["KILL_CLIENT", _] => match arg(1).and_then(|id| id.parse().ok()) {
            Some(id) => Ok(Command::KillClient(id)),
            None => Err(invalid(format!(
                "KILL_CLIENT takes a client id from SHOW CLIENTS, not \"{}\"",
                words.get(1).unwrap_or(&"")
            ))),
        },
        _ => Err(invalid(format!("unknown admin command \"{text}\""))),
    }
}

/// `"name"` or `name`.
fn unquote(word: &str) -> String {
    word.strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .unwrap_or(word)
        .to_owned()
}

fn invalid(message: String) -> PgError {
    PgError::error(sqlstate::SYNTAX_ERROR, message).with_hint("SHOW HELP lists the commands.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_like_pgbouncer_reads_them() {
        assert_eq!(parse("show pools;").unwrap(), Command::Show(Show::Pools));
        assert_eq!(parse("  SHOW Stats ").unwrap(), Command::Show(Show::Stats));
        assert_eq!(parse(";").unwrap(), Command::Empty);
        assert_eq!(parse("PAUSE").unwrap(), Command::Pause(None));
        assert_eq!(
            parse("pause \"app\"").unwrap(),
            Command::Pause(Some("app".into()))
        );
        assert_eq!(
            parse("KILL_CLIENT 4194305").unwrap(),
            Command::KillClient(4194305)
        );
        assert_eq!(parse("reload;").unwrap(), Command::Reload);
    }

    #[test]
    fn anything_else_is_a_syntax_error_that_points_to_help() {
        for bad in [
            "SHOW",
            "SHOW nothing",
            "DROP TABLE x",
            "KILL_CLIENT x",
            "select 1",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, sqlstate::SYNTAX_ERROR, "{bad}");
            assert!(e.hint.as_deref().unwrap().contains("SHOW HELP"));
        }
    }
}
