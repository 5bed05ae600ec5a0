//! How long a client may wait for a server connection: `PGWARM_QUERY_WAIT_TIMEOUT`, or less
//! inside a Lambda invocation whose deadline comes first.
//!
//! Lambda kills an invocation at its deadline. A handler killed while it waits for pgwarm has
//! nothing to log and returns nothing but `Task timed out`; one that gets pgwarm's error a little
//! before can log it, answer, or retry. So a wait inside an invocation ends a margin before its
//! deadline: a tenth of the invocation's time, at least 100 ms and at most 1 s (300 ms of the
//! default 3 s timeout). A wait that begins inside that margin ends at once, as it could not be
//! served in time. Outside Lambda, and on Managed Instances (whose extensions are not told of
//! invocations), only `PGWARM_QUERY_WAIT_TIMEOUT` bounds it.

use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

const MIN_MARGIN: Duration = Duration::from_millis(100);
const MAX_MARGIN: Duration = Duration::from_secs(1);

/// What ended a client's wait, for the error it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// `PGWARM_QUERY_WAIT_TIMEOUT`.
    QueryWait,
    /// The invocation's deadline, `margin` before it.
    Invocation { margin: Duration },
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::QueryWait => f.write_str("PGWARM_QUERY_WAIT_TIMEOUT"),
            Bound::Invocation { margin } => write!(
                f,
                "{}ms before the Lambda invocation's deadline",
                margin.as_millis()
            ),
        }
    }
}

/// The deadline of the invocation under way, as INVOKE gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InvocationDeadline {
    deadline: Instant,
    margin: Duration,
}

impl InvocationDeadline {
    /// An invocation that began `now` and is killed at `deadline`.
    pub(crate) fn new(now: Instant, deadline: Instant) -> InvocationDeadline {
        let margin = (deadline.saturating_duration_since(now) / 10).clamp(MIN_MARGIN, MAX_MARGIN);
        InvocationDeadline { deadline, margin }
    }
}

/// One client's wait: when it began, when it ends, and why then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub(crate) since: Instant,
    pub(crate) until: Instant,
    pub(crate) bound: Bound,
}

impl Wait {
    /// A wait that begins `since`, for at most `query_wait`, inside `invocation` if one is under
    /// way. An invocation whose deadline has passed is over (the next INVOKE is on its way, or
    /// the environment is stopping): it bounds nothing.
    pub(crate) fn new(
        since: Instant,
        query_wait: Duration,
        invocation: Option<InvocationDeadline>,
    ) -> Wait {
        let by_setting = Wait {
            since,
            until: since + query_wait,
            bound: Bound::QueryWait,
        };
        let Some(invocation) = invocation.filter(|i| i.deadline > since) else {
            return by_setting;
        };
        let give_up = invocation
            .deadline
            .checked_sub(invocation.margin)
            .unwrap_or(since)
            .max(since);
        if give_up >= by_setting.until {
            return by_setting;
        }
        Wait {
            since,
            until: give_up,
            bound: Bound::Invocation {
                margin: invocation.margin,
            },
        }
    }

    /// How long the client has waited (when it gave up: how long it waited in all).
    pub(crate) fn waited(&self) -> Duration {
        self.since.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn the_margin_is_a_tenth_of_the_invocation_within_bounds() {
        let now = Instant::now();
        let margin = |left| InvocationDeadline::new(now, now + left).margin;
        assert_eq!(margin(3 * SEC), Duration::from_millis(300));
        assert_eq!(margin(SEC / 2), MIN_MARGIN);
        assert_eq!(margin(900 * SEC), MAX_MARGIN);
    }

    #[test]
    fn the_nearer_of_the_setting_and_the_invocation_bounds_a_wait() {
        let now = Instant::now();
        let invocation = InvocationDeadline::new(now, now + 3 * SEC);
        let wait = Wait::new(now, 30 * SEC, Some(invocation));
        assert_eq!(wait.until, now + Duration::from_millis(2700));
        assert_eq!(
            wait.bound,
            Bound::Invocation {
                margin: Duration::from_millis(300)
            }
        );
        let short = Wait::new(now, SEC, Some(invocation));
        assert_eq!((short.until, short.bound), (now + SEC, Bound::QueryWait));
        assert_eq!(Wait::new(now, SEC, None).bound, Bound::QueryWait);
    }

    #[test]
    fn a_wait_inside_the_margin_ends_at_once_and_a_past_invocation_bounds_nothing() {
        let now = Instant::now();
        let invocation = InvocationDeadline::new(now, now + 3 * SEC);
        let late = now + Duration::from_millis(2900);
        assert_eq!(Wait::new(late, 30 * SEC, Some(invocation)).until, late);
        let after = now + 4 * SEC;
        let wait = Wait::new(after, 30 * SEC, Some(invocation));
        assert_eq!(
            (wait.until, wait.bound),
            (after + 30 * SEC, Bound::QueryWait)
        );
    }
}
