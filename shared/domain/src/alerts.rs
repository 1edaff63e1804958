//! Alert rules of a space: a metric of a tenant (or a flow of it), or of the whole space, over
//! a window of hours, against a threshold. The scheduler's tick measures every rule; crossing
//! the threshold fires it, coming back resolves it, each once.
//!
//! Metrics come from the hourly rollups (`domain::metrics`), so windows are whole hours and
//! the current hour counts as it stands. A rule with fewer than `min_executions` executions in
//! its window (error rate, durations) or in the window before it (throughput drop) measures
//! nothing and keeps its state: a quiet tenant neither fires nor resolves.

use serde::{Deserialize, Serialize};

use super::ids::{FlowId, TenantId};
use super::quota::Dimension;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    /// Failed executions, in percent of those finished: fires above `threshold`.
    ErrorRate,
    /// p95 execution duration in ms: fires above `threshold`.
    DurationP95,
    /// p99 execution duration in ms: fires above `threshold`.
    DurationP99,
    /// Executions finished in the window against the window before, in percent fewer: fires
    /// at or above `threshold`.
    ThroughputDrop,
    /// Messages in the space's runs DLQ: fires above `threshold` (space-wide).
    DlqDepth,
    /// A quota dimension's use in percent of its limit: fires at or above `threshold`.
    QuotaUsage,
}

/// A rule as the API takes and returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub metric: AlertMetric,
    pub threshold: f64,
    /// `quota_usage` only: the dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<Dimension>,
    /// Hours the metric is measured over (1 to 24).
    #[serde(default = "one")]
    pub window_hours: u32,
    /// The tenant measured (required except for `dlq_depth`, which is the space's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// Only this flow of the tenant (execution metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowId>,
    /// Fewest executions a window needs to be measured (execution metrics).
    #[serde(default = "five")]
    pub min_executions: u64,
    /// Where firing and resolving are POSTed, signed as Standard Webhooks with the space's
    /// alert signing secret, through the outbound guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn one() -> u32 {
    1
}
fn five() -> u64 {
    5
}
fn yes() -> bool {
    true
}

/// Most rules a space may have.
pub const MAX_RULES: usize = 100;

impl AlertRule {
    pub fn validate(&self) -> Result<(), String> {
        super::tenancy::parse_name(&self.name).map_err(|e| format!("name {e}"))?;
        if !self.threshold.is_finite() || self.threshold < 0.0 {
            return Err("threshold must be a number of at least 0".into());
        }
        let percent =
            matches!(self.metric, AlertMetric::ErrorRate | AlertMetric::ThroughputDrop | AlertMetric::QuotaUsage);
        if percent && self.threshold > 100.0 {
            return Err("threshold is a percentage: at most 100".into());
        }
        if !(1..=24).contains(&self.window_hours) {
            return Err("window_hours must be between 1 and 24".into());
        }
        match self.metric {
            AlertMetric::DlqDepth if self.tenant.is_some() || self.flow.is_some() => {
                return Err("dlq_depth is measured for the whole space: no tenant or flow".into());
            }
            AlertMetric::DlqDepth => {}
            _ if self.tenant.is_none() => return Err(format!("{:?} needs a tenant", self.metric).to_lowercase()),
            AlertMetric::QuotaUsage if self.flow.is_some() => return Err("quota_usage is per tenant: no flow".into()),
            _ => {}
        }
        if (self.metric == AlertMetric::QuotaUsage) != self.dimension.is_some() {
            return Err("dimension is required for quota_usage, and only for it".into());
        }
        if let Some(url) = &self.webhook_url {
            let parsed = url::Url::parse(url).map_err(|e| format!("webhook_url: {e}"))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() || url.len() > 2048 {
                return Err("webhook_url must be an http(s) URL of at most 2048 characters".into());
            }
        }
        Ok(())
    }

    /// Whether `value` is past the threshold.
    pub fn breached(&self, value: f64) -> bool {
        match self.metric {
            AlertMetric::ThroughputDrop | AlertMetric::QuotaUsage => value >= self.threshold,
            _ => value > self.threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: serde_json::Value) -> Result<AlertRule, String> {
        let rule: AlertRule = serde_json::from_value(v).map_err(|e| e.to_string())?;
        rule.validate().map(|_| rule)
    }

    #[test]
    fn rules_are_validated() {
        assert!(rule(json!({"name": "errors", "metric": "error_rate", "threshold": 10, "tenant": "acme"})).is_ok());
        assert!(rule(json!({"name": "dlq", "metric": "dlq_depth", "threshold": 0})).is_ok());
        assert!(rule(json!({"name": "errors", "metric": "error_rate", "threshold": 10})).is_err(), "needs a tenant");
        assert!(rule(json!({"name": "dlq", "metric": "dlq_depth", "threshold": 1, "tenant": "acme"})).is_err());
        assert!(rule(json!({"name": "q", "metric": "quota_usage", "threshold": 80, "tenant": "a"})).is_err());
        assert!(rule(json!({"name": "q", "metric": "quota_usage", "threshold": 80, "tenant": "a", "dimension": "events_per_day"})).is_ok());
        assert!(rule(json!({"name": "e", "metric": "error_rate", "threshold": 101, "tenant": "a"})).is_err());
        assert!(
            rule(json!({"name": "e", "metric": "error_rate", "threshold": 1, "tenant": "a", "window_hours": 0}))
                .is_err()
        );
        assert!(
            rule(json!({"name": "e", "metric": "error_rate", "threshold": 1, "tenant": "a", "webhook_url": "ftp://x"}))
                .is_err()
        );
        assert!(
            rule(json!({"name": "e", "metric": "error_rate", "threshold": 1, "tenant": "a", "colour": "red"})).is_err()
        );
        assert!(rule(json!({"name": "", "metric": "error_rate", "threshold": 1, "tenant": "a"})).is_err());
    }

    #[test]
    fn thresholds_compare_by_metric() {
        let r = rule(json!({"name": "e", "metric": "error_rate", "threshold": 10, "tenant": "a"})).unwrap();
        assert!(!r.breached(10.0) && r.breached(10.5));
        let r = rule(json!({"name": "t", "metric": "throughput_drop", "threshold": 50, "tenant": "a"})).unwrap();
        assert!(r.breached(50.0) && !r.breached(49.0));
    }
}
