//! CloudWatch's Embedded Metric Format: one JSON object whose `_aws` member tells CloudWatch
//! which of its other members are metrics (with their unit), under which namespace and
//! dimensions. Values are plain members next to it, so the line also reads as a log line.

use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The dimension every metric is filed under.
pub(super) const DIMENSION: &str = "FunctionName";

#[derive(Debug, Clone, Copy)]
pub(super) enum Unit {
    Count,
    Milliseconds,
    Percent,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Percent => "Percent",
        }
    }
}

pub(super) struct Line {
    namespace: String,
    definitions: Vec<Value>,
    members: Map<String, Value>,
}

impl Line {
    pub(super) fn new(namespace: &str, function: &str) -> Line {
        let mut members = Map::new();
        members.insert(DIMENSION.into(), Value::from(function));
        Line {
            namespace: namespace.to_owned(),
            definitions: Vec::new(),
            members,
        }
    }

    pub(super) fn metric(&mut self, name: &str, unit: Unit, value: f64) {
        self.definitions
            .push(json!({ "Name": name, "Unit": unit.as_str() }));
        // Whole numbers print as integers; a non-finite value (never expected) as 0.
        let value = match value.fract() == 0.0 && value.abs() < 9e15 {
            true => Value::from(value as i64),
            false => serde_json::Number::from_f64((value * 1000.0).round() / 1000.0)
                .map_or(Value::from(0), Value::Number),
        };
        self.members.insert(name.to_owned(), value);
    }

    /// A member that is not a metric (CloudWatch keeps it in the log line, searchable).
    pub(super) fn property(&mut self, name: &str, value: &str) {
        self.members.insert(name.to_owned(), Value::from(value));
    }

    pub(super) fn to_json(&self) -> String {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut root = self.members.clone();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": self.definitions,
                }],
            }),
        );
        Value::Object(root).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_follows_the_embedded_metric_format() {
        let mut line = Line::new("pgwarm", "orders-api");
        line.metric("Transactions", Unit::Count, 30.0);
        line.metric("MaxWaitMs", Unit::Milliseconds, 12.3456);
        line.property("requestId", "abc");
        let v: Value = serde_json::from_str(&line.to_json()).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "pgwarm");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(
            directive["Metrics"][0],
            json!({"Name": "Transactions", "Unit": "Count"})
        );
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(v["FunctionName"], "orders-api");
        assert_eq!(v["Transactions"], 30);
        assert_eq!(v["MaxWaitMs"], 12.346);
        assert_eq!(v["requestId"], "abc");
    }
}
