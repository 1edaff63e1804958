//! Per-tenant execution metrics as rollups: counts by outcome, a duration histogram and step
//! failures by connector and action, one rollup per (tenant, flow, hour). A rollup is a flat
//! map of number fields, so the store adds a finished execution to it in one write, and any
//! number of rollups merge by adding fields.
//!
//! Durations are counted in fixed buckets, so percentiles are read as the upper bound of the
//! bucket they fall in (within a factor of 2.5 of the true value); the mean is exact.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::execution::ExecutionStatus;

/// Upper bounds (ms) of the duration buckets; a last bucket holds everything slower.
pub const DURATION_BUCKETS_MS: [u64; 14] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000];

const STARTED: &str = "started";
const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";
const CANCELLED: &str = "cancelled";
const DURATION_SUM: &str = "duration_ms_sum";
const BUCKET: &str = "d_le_";
const STEP_FAILED: &str = "step_failed:";

fn bucket_field(index: usize) -> String {
    match DURATION_BUCKETS_MS.get(index) {
        Some(bound) => format!("{BUCKET}{bound}"),
        None => format!("{BUCKET}inf"),
    }
}

/// The field deltas one finished execution adds to its rollup. `failed_steps` are the
/// (connector, action) of its failed action steps (at most 20 are counted).
pub fn execution_fields(
    status: ExecutionStatus,
    duration_ms: i64,
    failed_steps: &[(String, String)],
) -> Vec<(String, i64)> {
    let outcome = match status {
        ExecutionStatus::Succeeded => SUCCEEDED,
        ExecutionStatus::Failed => FAILED,
        _ => CANCELLED,
    };
    let duration = duration_ms.max(0);
    let bucket = DURATION_BUCKETS_MS.iter().position(|b| duration as u64 <= *b).unwrap_or(DURATION_BUCKETS_MS.len());
    let mut fields = vec![
        (STARTED.to_string(), 1),
        (outcome.to_string(), 1),
        (DURATION_SUM.to_string(), duration),
        (bucket_field(bucket), 1),
    ];
    let mut by_action: BTreeMap<String, i64> = BTreeMap::new();
    for (connector, action) in failed_steps.iter().take(20) {
        *by_action.entry(format!("{STEP_FAILED}{connector}.{action}")).or_default() += 1;
    }
    fields.extend(by_action);
    fields
}

/// Rollups read back and merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rollup {
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    #[serde(skip)]
    duration_ms_sum: u64,
    #[serde(skip)]
    buckets: [u64; DURATION_BUCKETS_MS.len() + 1],
    /// Failed steps by `connector.action`.
    pub step_failures: BTreeMap<String, u64>,
}

/// Duration statistics of a rollup (absent without executions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Durations {
    pub mean_ms: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

impl Rollup {
    /// A rollup from a stored item's fields (unknown fields are ignored).
    pub fn from_fields(fields: &Map<String, Value>) -> Rollup {
        let mut r = Rollup::default();
        for (name, value) in fields {
            let n = value.as_i64().unwrap_or(0).max(0) as u64;
            match name.as_str() {
                STARTED => r.started = n,
                SUCCEEDED => r.succeeded = n,
                FAILED => r.failed = n,
                CANCELLED => r.cancelled = n,
                DURATION_SUM => r.duration_ms_sum = n,
                other => {
                    if let Some(step) = other.strip_prefix(STEP_FAILED) {
                        r.step_failures.insert(step.to_string(), n);
                    } else if let Some(i) = (0..r.buckets.len()).find(|i| bucket_field(*i) == other) {
                        r.buckets[i] = n;
                    }
                }
            }
        }
        r
    }

    pub fn merge(&mut self, other: &Rollup) {
        self.started += other.started;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.duration_ms_sum += other.duration_ms_sum;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        for (step, n) in &other.step_failures {
            *self.step_failures.entry(step.clone()).or_default() += n;
        }
    }

    /// The upper bound of the bucket holding the `q` quantile (the slowest bucket reads as
    /// its lower bound's successor: more than 15 minutes).
    fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().sum();
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return DURATION_BUCKETS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(DURATION_BUCKETS_MS[DURATION_BUCKETS_MS.len() - 1] + 1);
            }
        }
        0
    }

    pub fn durations(&self) -> Option<Durations> {
        let total: u64 = self.buckets.iter().sum();
        (total > 0).then(|| Durations {
            mean_ms: self.duration_ms_sum / total,
            p50_ms: self.quantile(0.50),
            p95_ms: self.quantile(0.95),
            p99_ms: self.quantile(0.99),
        })
    }

    /// Failed / finished, in percent (absent without executions).
    pub fn error_rate(&self) -> Option<f64> {
        (self.started > 0).then(|| (self.failed as f64 * 10_000.0 / self.started as f64).round() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollup(executions: &[(ExecutionStatus, i64)]) -> Rollup {
        let mut total = Rollup::default();
        for (status, ms) in executions {
            let fields: Map<String, Value> = execution_fields(*status, *ms, &[("slack".into(), "post_message".into())])
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect();
            total.merge(&Rollup::from_fields(&fields));
        }
        total
    }

    #[test]
    fn rollups_merge_and_read_percentiles_from_buckets() {
        let mut runs: Vec<(ExecutionStatus, i64)> = (0..98).map(|i| (ExecutionStatus::Succeeded, 20 + i % 5)).collect();
        runs.push((ExecutionStatus::Failed, 4_000));
        runs.push((ExecutionStatus::Failed, 70_000));
        let r = rollup(&runs);
        assert_eq!((r.started, r.succeeded, r.failed), (100, 98, 2));
        let d = r.durations().unwrap();
        assert_eq!((d.p50_ms, d.p95_ms, d.p99_ms), (25, 25, 5_000));
        assert_eq!(d.mean_ms, (98 * 22 + 4_000 + 70_000) / 100);
        assert_eq!(r.step_failures["slack.post_message"], 100);
        assert_eq!(r.error_rate(), Some(2.0));
        assert_eq!(Rollup::default().durations(), None);
    }

    #[test]
    fn the_slowest_bucket_is_open_ended() {
        let r = rollup(&[(ExecutionStatus::Succeeded, 2_000_000)]);
        assert_eq!(r.durations().unwrap().p99_ms, 900_001);
    }
}
