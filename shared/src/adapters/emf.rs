//! Metrics as CloudWatch Embedded Metric Format: one JSON object per record on stdout, which
//! Lambda sends to CloudWatch Logs, where CloudWatch extracts the metrics (no API call, no
//! SDK client). The namespace is `Switchyard`; each record names its dimension sets, so
//! tenant-level aggregates are kept and ids that would explode cardinality (executions) stay
//! properties.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::ports::{Clock, MetricRecord, MetricsSink};

pub const NAMESPACE: &str = "Switchyard";

/// The EMF document of a record at `timestamp_ms`.
pub fn document(record: &MetricRecord, timestamp_ms: i64) -> Value {
    let mut root = Map::new();
    for (name, value) in &record.dimensions {
        root.insert((*name).to_string(), Value::String(value.clone()));
    }
    for (name, value) in &record.properties {
        root.insert((*name).to_string(), value.clone());
    }
    for (name, _, value) in &record.values {
        root.insert((*name).to_string(), json!(value));
    }
    let metrics: Vec<Value> =
        record.values.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": record.dimension_sets, "Metrics": metrics}],
        }),
    );
    Value::Object(root)
}

/// Writes each record as one EMF line on stdout.
pub struct EmfStdout {
    clock: Arc<dyn Clock>,
}

impl EmfStdout {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        EmfStdout { clock }
    }
}

impl MetricsSink for EmfStdout {
    fn emit(&self, record: MetricRecord) {
        let line = document(&record, self.clock.now_ms()).to_string();
        // A lost metric line must not fail the work it measures.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MetricUnit;

    #[test]
    fn records_follow_the_embedded_metric_format() {
        let record = MetricRecord {
            dimension_sets: vec![vec!["space", "tenant"]],
            dimensions: vec![("space", "s".into()), ("tenant", "t".into())],
            properties: vec![("execution_id", json!("ex_1"))],
            values: vec![("ExecutionDuration", MetricUnit::Milliseconds, 12.0)],
        };
        let doc = document(&record, 1_700_000_000_000);
        assert_eq!(
            doc,
            json!({
                "space": "s", "tenant": "t", "execution_id": "ex_1", "ExecutionDuration": 12.0,
                "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "Switchyard", "Dimensions": [["space", "tenant"]],
                    "Metrics": [{"Name": "ExecutionDuration", "Unit": "Milliseconds"}]}]}
            })
        );
        // Every dimension a set names is a root member (CloudWatch drops the record otherwise).
        for set in record.dimension_sets {
            for name in set {
                assert!(doc.get(name).is_some_and(Value::is_string));
            }
        }
    }
}
