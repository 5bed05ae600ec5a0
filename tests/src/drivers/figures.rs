//! The arithmetic of every driver's report (benchmarks, demo, fleet): the rounds' rotating order,
//! medians and quantiles, min-max ranges and "ratio of the medians (min-max of the per-round
//! ratios)" cells. A figure per round is an
//! `Option<f64>`: `None` for a failed run, which makes its cell FAILED rather than a median of
//! the others.

/// `items` in the order of round `round` (1-based): rotated left by `step` × (round - 1), so
/// that from round to round each item runs first in turn and drift or position effects hit
/// them all alike.
pub fn round_order<T: Copy>(items: &[T], round: usize, step: usize) -> Vec<T> {
    let n = items.len();
    (0..n)
        .map(|i| items[(i + step * round.saturating_sub(1)) % n])
        .collect()
}

/// The median (the mean of the middle two for an even count), `None` for no value.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The `q` quantile (0 to 1) by nearest rank on the sorted values: index `(n - 1) × q` rounded;
/// `None` for no value.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let last = v.len().checked_sub(1)?;
    v.get(((last as f64) * q.clamp(0.0, 1.0)).round() as usize)
        .copied()
}

/// "a / b" of two medians to `decimals`, followed by "×", or "-" when either has no value or
/// `b`'s median is 0.
pub fn median_ratio(a: &[f64], b: &[f64], decimals: usize) -> String {
    match (median(a), median(b)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.decimals$}×", a / b),
        _ => "-".into(),
    }
}

/// One cell of a report over the rounds: the median, or how many of its runs failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Median(f64),
    Failed { failed: usize, rounds: usize },
}

impl Cell {
    /// The cell of one figure's per-round values.
    pub fn of(rounds: &[Option<f64>]) -> Cell {
        let values: Vec<f64> = rounds.iter().flatten().copied().collect();
        match (values.len() == rounds.len(), median(&values)) {
            (true, Some(m)) => Cell::Median(m),
            _ => Cell::Failed {
                failed: rounds.len() - values.len(),
                rounds: rounds.len(),
            },
        }
    }

    pub fn value(self) -> Option<f64> {
        match self {
            Cell::Median(m) => Some(m),
            Cell::Failed { .. } => None,
        }
    }

    /// The median rounded to `decimals`, or "FAILED k/N".
    pub fn show(self, decimals: usize) -> String {
        match self {
            Cell::Median(m) => format!("{m:.decimals$}"),
            Cell::Failed { failed, rounds } => format!("FAILED {failed}/{rounds}"),
        }
    }
}

/// "min-max" of the per-round values rounded to `decimals`, or "-" when a run failed.
pub fn range(rounds: &[Option<f64>], decimals: usize) -> String {
    let values: Option<Vec<f64>> = rounds.iter().copied().collect();
    match values.as_deref().and_then(min_max) {
        Some((lo, hi)) => format!("{lo:.decimals$}-{hi:.decimals$}"),
        None => "-".into(),
    }
}

/// `num` over `den`: the ratio of their medians to 2 decimals, then in brackets the min-max of
/// the ratios of the rounds where both ran (and `den` is above 0); "-" when either cell has a
/// failed run or `den`'s median is 0.
pub fn ratio_cell(num: &[Option<f64>], den: &[Option<f64>]) -> String {
    let (Some(a), Some(b)) = (Cell::of(num).value(), Cell::of(den).value()) else {
        return "-".into();
    };
    if b <= 0.0 {
        return "-".into();
    }
    let per_round: Vec<f64> = num
        .iter()
        .zip(den)
        .filter_map(|(a, b)| Some((*a)? / (*b).filter(|b| *b > 0.0)?))
        .collect();
    let spread = match min_max(&per_round) {
        Some((lo, hi)) => format!("{lo:.2}-{hi:.2}"),
        None => "-".into(),
    };
    format!("{:.2} ({spread})", a / b)
}

/// The smallest and the largest of `values`, `None` for no value.
pub fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let lo = values.iter().copied().min_by(f64::total_cmp)?;
    let hi = values.iter().copied().max_by(f64::total_cmp)?;
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_rotates_by_the_step_each_round() {
        let targets = ["direct", "pgwarm", "pgbouncer", "haproxy"];
        assert_eq!(round_order(&targets, 1, 1), targets);
        assert_eq!(
            round_order(&targets, 2, 1),
            ["pgwarm", "pgbouncer", "haproxy", "direct"]
        );
        assert_eq!(round_order(&targets, 5, 1), targets, "back after 4 rounds");
        // Six cases, rotated by one target (two cases) a round.
        let cases = ["dt", "dp", "wt", "wp", "bt", "bp"];
        assert_eq!(
            round_order(&cases, 2, 2),
            ["wt", "wp", "bt", "bp", "dt", "dp"]
        );
        assert_eq!(
            round_order(&cases, 3, 2),
            ["bt", "bp", "dt", "dp", "wt", "wp"]
        );
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(51.0));
        assert_eq!(quantile(&v, 0.99), Some(100.0));
        assert_eq!(quantile(&v, 1.0), Some(101.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[2.0, 1.0], 0.95), Some(2.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn ratios_of_medians_and_extremes() {
        assert_eq!(median_ratio(&[7.0, 8.0, 9.0], &[2.0, 1.0, 3.0], 1), "4.0×");
        assert_eq!(median_ratio(&[1.0], &[], 1), "-");
        assert_eq!(median_ratio(&[1.0], &[0.0], 1), "-");
        assert_eq!(min_max(&[3.0, -1.0, 2.0]), Some((-1.0, 3.0)));
        assert_eq!(min_max(&[]), None);
    }

    #[test]
    fn a_failed_round_makes_the_cell_failed() {
        assert_eq!(Cell::of(&[Some(1.0), Some(3.0), Some(2.0)]).show(1), "2.0");
        let failed = Cell::of(&[Some(1.0), None, Some(2.0)]);
        assert_eq!(
            failed,
            Cell::Failed {
                failed: 1,
                rounds: 3
            }
        );
        assert_eq!(failed.show(0), "FAILED 1/3");
        assert_eq!(failed.value(), None);
    }

    #[test]
    fn ranges_round_and_need_every_round() {
        assert_eq!(
            range(&[Some(2.291), Some(2.5), Some(1.9994)], 3),
            "1.999-2.500"
        );
        assert_eq!(range(&[Some(2.0), None], 3), "-");
    }

    /// The figures of one row of a real report: pgwarm 5554, 6743, 7000 TPS against
    /// PgBouncer's 4838, 5000, 5200 over three rounds.
    #[test]
    fn a_ratio_cell_is_the_ratio_of_medians_and_the_per_round_spread() {
        let pgwarm = [Some(5554.0), Some(6743.0), Some(7000.0)];
        let pgbouncer = [Some(4838.0), Some(5000.0), Some(5200.0)];
        // 6743 / 5000 = 1.3486; per round 1.148, 1.3486, 1.346.
        assert_eq!(ratio_cell(&pgwarm, &pgbouncer), "1.35 (1.15-1.35)");
        // Not the median of the per-round ratios (1.346): the ratio of the medians.
        let den = [Some(1.0), Some(4.0), Some(1.0)];
        let num = [Some(1.0), Some(2.0), Some(3.0)];
        assert_eq!(ratio_cell(&num, &den), "2.00 (0.50-3.00)");
    }

    #[test]
    fn a_ratio_with_a_failed_side_or_a_zero_is_a_dash() {
        assert_eq!(ratio_cell(&[Some(1.0), None], &[Some(1.0), Some(1.0)]), "-");
        assert_eq!(ratio_cell(&[Some(1.0)], &[Some(0.0)]), "-");
    }
}
