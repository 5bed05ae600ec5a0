//! What the connect benchmark checks before it measures: that every case answers a query, that
//! the relays' server connections use TLS (pg_stat_ssl), and what TLS a client negotiates with
//! each target, which its report states.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::cases::{Case, CASES, WAYS};
use super::{say, SCALE};
use crate::drivers::bench::pgbench::Client;
use crate::drivers::bench::relays::Relays;
use crate::drivers::bench::stop::Halt;
use crate::drivers::bench::way::Way;
use crate::harness::{cluster, negotiated_tls, Target};

/// The TLS the checks saw, for the report.
pub(super) struct Tls {
    /// What a client negotiates with each target (a probe's SSLRequest and rustls handshake).
    pub(super) client: Vec<(Way, String)>,
    /// The relays' server connections' protocol and cipher, as pg_stat_ssl shows them.
    pub(super) server: String,
}

/// The client for `case`: its target, and the sslmode libpq asks with.
pub(super) fn client(relays: &Relays, db: &Target, case: Case) -> Client {
    Client::new(relays.target(case.way, db), case.sslmode)
}

/// A query through each case, then the relays' server connections' TLS, then the client's.
pub(super) fn check(relays: &Relays, db: &Target) -> Result<Tls, Halt> {
    // One query through each case before measuring: a broken path fails here, clearly. It also
    // opens the relays' first server connections.
    for case in CASES {
        if let Err(answer) = client(relays, db, case).check_branches(SCALE) {
            return Err(Halt::Failed(format!(
                "sanity query, {} (port {}, sslmode {}), failed: {answer}",
                case.name(),
                relays.target(case.way, db).port,
                case.sslmode.as_str()
            )));
        }
    }
    let server = server_tls()?;
    let client = WAYS
        .iter()
        .map(|&way| {
            let addr = SocketAddr::from(([127, 0, 0, 1], relays.target(way, db).port));
            let seen = negotiated_tls(addr).unwrap_or_else(|e| format!("? ({e})"));
            (way, seen)
        })
        .collect();
    Ok(Tls { client, server })
}

/// The relays' server connections must use TLS: every backend of `bench` still open once the
/// sanity queries' own backends have gone (they may take a moment) is one. Their protocols and
/// ciphers.
fn server_tls() -> Result<String, Halt> {
    let count_tls = || {
        let ssl = cluster().psql_super(
            "SELECT count(*), count(*) FILTER (WHERE NOT s.ssl), \
             coalesce(string_agg(DISTINCT s.version || '/' || s.cipher, ','), '-') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'bench'",
        );
        let fields: Vec<&str> = ssl.split('|').collect();
        match fields[..] {
            [n, plain, tls] => Ok((
                n.parse::<u32>().unwrap_or(0),
                plain.parse::<u32>().unwrap_or(u32::MAX),
                tls.to_owned(),
            )),
            _ => Err(Halt::Failed(format!("pg_stat_ssl answered {ssl:?}"))),
        }
    };
    let mut seen = count_tls()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.1 != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = count_tls()?;
    }
    let (n_server, n_plain, server_tls) = seen;
    if n_server < 2 {
        return Err(Halt::Failed(format!(
            "expected the poolers' server connections in pg_stat_activity, found {n_server}"
        )));
    }
    if n_plain != 0 {
        return Err(Halt::Failed(format!(
            "{n_plain} of the poolers' {n_server} server connections do not use TLS"
        )));
    }
    say(format!(
        "the poolers' {n_server} server connections use TLS ({server_tls})"
    ));
    Ok(server_tls)
}
