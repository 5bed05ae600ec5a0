//! Reading the Embedded Metric Format lines pgwarm writes to stdout, each checked against the
//! format CloudWatch reads, so a test that counts a metric also proves its line is well formed.

use serde_json::{json, Value};

/// The EMF lines of a pgwarm's output, each checked against the format: `_aws` with a
/// millisecond timestamp and one directive (namespace, the FunctionName dimension, metrics with
/// units), and a numeric value for every metric it names.
pub fn emf_lines(log: &str, namespace: &str) -> Vec<Value> {
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        let aws = &line["_aws"];
        assert!(
            aws["Timestamp"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000),
            "{line}"
        );
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert_eq!(directives.len(), 1, "{line}");
        let d = &directives[0];
        assert_eq!(d["Namespace"], namespace, "{line}");
        assert_eq!(d["Dimensions"], json!([["FunctionName"]]), "{line}");
        assert!(
            line["FunctionName"].as_str().is_some_and(|f| !f.is_empty()),
            "{line}"
        );
        let metrics = d["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty(), "{line}");
        for m in metrics {
            let name = m["Name"].as_str().expect("a metric name");
            let unit = m["Unit"].as_str().expect("a unit");
            assert!(
                ["Count", "Milliseconds", "Percent"].contains(&unit),
                "{line}"
            );
            assert!(line[name].is_number(), "no value for {name}: {line}");
        }
    }
    lines
}

/// The sum of `metric` over `lines`: what CloudWatch would count for the interval.
pub fn emf_sum(lines: &[Value], metric: &str) -> f64 {
    lines.iter().filter_map(|l| l[metric].as_f64()).sum()
}
