//! Quotas: the eight dimensions of the seed's plan table, how each is enforced (four modes),
//! and which level set a tenant's effective limit and mode (plan, space override, tenant
//! override).
//!
//! Decisions, written down once:
//! - **Events per day** count every start of a run the tenant caused: each accepted webhook
//!   delivery (one event, however many flows it triggers), each poll change, each scheduled
//!   run, each API or MCP `run_flow` start and each rerun. DLQ replays do not count: the run
//!   was counted when it was first admitted.
//! - **Flows per tenant** counts the tenant's own flows. Space-wide flows run for every tenant
//!   and are capped by the space plan's `flows_per_tenant` on a counter of their own.
//! - **Active integrations** are the tenant's connections that are enabled and connected;
//!   **connectors per tenant** are the connectors enabled for the tenant, connected or not.
//! - **API calls per minute** count every authenticated `/api/v1` call that names a tenant and
//!   every MCP `tools/call`; calls that name no tenant count on the space's own budget.
//! - **Storage** is the bytes of executions, step records and blobs a tenant's runs wrote,
//!   counted when they are written and freed when their TTL ends. It is measured after the
//!   fact, so it is enforced when a run is admitted, never while one runs.
//! - Running work is never interrupted by a quota: only new work is refused or deferred.
//! - `queue_for_later` only makes sense where there is a later: events per day. Elsewhere it
//!   is refused with a 400 when a plan or override sets it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tenancy::{Limit, Plan, Quotas};

/// One dimension of the plan table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    EventsPerDay,
    ActiveIntegrations,
    FlowsPerTenant,
    ApiCallsPerMinute,
    ConnectorsPerTenant,
    AgentSessionsPerDay,
    LlmTokensPerDay,
    StorageMb,
}

/// The fixed UTC window a dimension is counted in; gauges (flows, connections, storage) have
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Day,
    Minute,
}

impl Window {
    pub fn millis(self) -> i64 {
        match self {
            Window::Day => 86_400_000,
            Window::Minute => 60_000,
        }
    }
    /// When the window holding `now_ms` started (epoch ms).
    pub fn start(self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.millis()) * self.millis()
    }
    pub fn describe(self) -> &'static str {
        match self {
            Window::Day => "daily",
            Window::Minute => "per-minute",
        }
    }
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Dimension::EventsPerDay,
        Dimension::ActiveIntegrations,
        Dimension::FlowsPerTenant,
        Dimension::ApiCallsPerMinute,
        Dimension::ConnectorsPerTenant,
        Dimension::AgentSessionsPerDay,
        Dimension::LlmTokensPerDay,
        Dimension::StorageMb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::EventsPerDay => "events_per_day",
            Dimension::ActiveIntegrations => "active_integrations",
            Dimension::FlowsPerTenant => "flows_per_tenant",
            Dimension::ApiCallsPerMinute => "api_calls_per_minute",
            Dimension::ConnectorsPerTenant => "connectors_per_tenant",
            Dimension::AgentSessionsPerDay => "agent_sessions_per_day",
            Dimension::LlmTokensPerDay => "llm_tokens_per_day",
            Dimension::StorageMb => "storage_mb",
        }
    }

    pub fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == name)
    }

    pub fn window(self) -> Option<Window> {
        match self {
            Dimension::EventsPerDay | Dimension::AgentSessionsPerDay | Dimension::LlmTokensPerDay => Some(Window::Day),
            Dimension::ApiCallsPerMinute => Some(Window::Minute),
            Dimension::ActiveIntegrations
            | Dimension::FlowsPerTenant
            | Dimension::ConnectorsPerTenant
            | Dimension::StorageMb => None,
        }
    }

    /// The plan table's limit, in the unit the counter counts (storage: bytes).
    fn plan_limit(self, q: &Quotas) -> Limit {
        match self {
            Dimension::EventsPerDay => q.events_per_day,
            Dimension::ActiveIntegrations => q.active_integrations,
            Dimension::FlowsPerTenant => q.flows_per_tenant,
            Dimension::ApiCallsPerMinute => q.api_calls_per_minute,
            Dimension::ConnectorsPerTenant => q.connectors_per_tenant,
            Dimension::AgentSessionsPerDay => q.agent_sessions_per_day,
            Dimension::LlmTokensPerDay => q.llm_tokens_per_day,
            Dimension::StorageMb => q.storage_mb.map(|mb| mb.saturating_mul(BYTES_PER_MB)),
        }
    }

    /// What the counter counts, for messages and the usage document.
    pub fn unit(self) -> &'static str {
        match self {
            Dimension::StorageMb => "bytes",
            Dimension::LlmTokensPerDay => "tokens",
            _ => "count",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Storage limits are set in MB (as in the plan table) and counted in bytes.
pub const BYTES_PER_MB: u64 = 1024 * 1024;

/// What happens when a dimension's limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse: 429 with `Retry-After` for windowed limits, 403 `quota_exceeded` otherwise.
    #[default]
    HardBlock,
    /// Go ahead; a `quota.warning` event once per window and a `Switchyard-Quota-Warning`
    /// header.
    SoftWarning,
    /// Events are accepted and deferred to the next window with room.
    QueueForLater,
    /// Go ahead, and meter what is over the limit per tenant per day for billing.
    Overage,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::HardBlock => "hard_block",
            Mode::SoftWarning => "soft_warning",
            Mode::QueueForLater => "queue_for_later",
            Mode::Overage => "overage",
        }
    }
}

/// A limit as it is written in a plan or an override: a number (MB for storage) or
/// `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LimitSetting {
    Count(u64),
    Unlimited(Unlimited),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlimited {
    Unlimited,
}

impl LimitSetting {
    fn to_limit(self, dimension: Dimension) -> Limit {
        match self {
            LimitSetting::Count(n) if dimension == Dimension::StorageMb => Some(n.saturating_mul(BYTES_PER_MB)),
            LimitSetting::Count(n) => Some(n),
            LimitSetting::Unlimited(_) => None,
        }
    }
}

/// One level's say on one dimension: either part may be left to the level below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitSetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// A level's overrides, by dimension.
pub type QuotaOverrides = BTreeMap<Dimension, QuotaOverride>;

/// Largest limit a level may set (beyond it, "unlimited" says it better).
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// Check a level's overrides before they are stored.
pub fn validate(overrides: &QuotaOverrides) -> Result<(), String> {
    for (dimension, o) in overrides {
        if let Some(LimitSetting::Count(n)) = o.limit {
            if n > MAX_LIMIT {
                return Err(format!("{dimension}.limit must be at most {MAX_LIMIT} (or \"unlimited\")"));
            }
        }
        if o.mode == Some(Mode::QueueForLater) && *dimension != Dimension::EventsPerDay {
            return Err(format!("{dimension}: queue_for_later applies to events_per_day only"));
        }
    }
    Ok(())
}

/// The level a value came from, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaSource {
    Plan,
    Space,
    Tenant,
}

/// The deployment's plan table: the seed's limits, each with its mode, as overridden by the
/// deployment's configuration (`SWITCHYARD_PLAN_QUOTAS`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanTable {
    overrides: BTreeMap<Plan, QuotaOverrides>,
}

impl PlanTable {
    /// Parse `{"starter": {"events_per_day": {"limit": 500, "mode": "soft_warning"}}, …}`.
    pub fn parse(text: &str) -> Result<PlanTable, String> {
        let overrides: BTreeMap<Plan, QuotaOverrides> =
            serde_json::from_str(text).map_err(|e| format!("plan quotas: {e}"))?;
        for (plan, o) in &overrides {
            validate(o).map_err(|e| format!("plan {}: {e}", plan.as_str()))?;
        }
        Ok(PlanTable { overrides })
    }

    fn rule(&self, plan: Plan, dimension: Dimension) -> (Limit, Mode) {
        let o = self.overrides.get(&plan).and_then(|m| m.get(&dimension)).copied().unwrap_or_default();
        let limit = match o.limit {
            Some(l) => l.to_limit(dimension),
            None => dimension.plan_limit(&plan.quotas()),
        };
        (limit, o.mode.unwrap_or_default())
    }
}

/// A dimension's effective limit and mode for one tenant, and where each came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveQuota {
    pub dimension: Dimension,
    /// `None` is unlimited (storage: bytes).
    pub limit: Limit,
    pub mode: Mode,
    pub limit_source: QuotaSource,
    pub mode_source: QuotaSource,
}

/// Resolve a dimension: the tenant's override wins over the space's, which wins over the plan.
pub fn effective(
    table: &PlanTable,
    plan: Plan,
    space: &QuotaOverrides,
    tenant: &QuotaOverrides,
    dimension: Dimension,
) -> EffectiveQuota {
    let (mut limit, mut mode) = table.rule(plan, dimension);
    let (mut limit_source, mut mode_source) = (QuotaSource::Plan, QuotaSource::Plan);
    for (source, level) in [(QuotaSource::Space, space), (QuotaSource::Tenant, tenant)] {
        if let Some(o) = level.get(&dimension) {
            if let Some(l) = o.limit {
                (limit, limit_source) = (l.to_limit(dimension), source);
            }
            if let Some(m) = o.mode {
                (mode, mode_source) = (m, source);
            }
        }
    }
    EffectiveQuota { dimension, limit, mode, limit_source, mode_source }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn overrides(v: serde_json::Value) -> QuotaOverrides {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_most_specific_level_wins_and_says_so() {
        let table = PlanTable::parse(r#"{"starter": {"events_per_day": {"mode": "soft_warning"}}}"#).unwrap();
        let none = QuotaOverrides::new();
        let e = effective(&table, Plan::Starter, &none, &none, Dimension::EventsPerDay);
        assert_eq!(
            (e.limit, e.mode, e.limit_source, e.mode_source),
            (Some(1000), Mode::SoftWarning, QuotaSource::Plan, QuotaSource::Plan)
        );
        let space = overrides(json!({"events_per_day": {"limit": 5000}}));
        let tenant = overrides(json!({"events_per_day": {"mode": "overage"}}));
        let e = effective(&table, Plan::Starter, &space, &tenant, Dimension::EventsPerDay);
        assert_eq!(
            (e.limit, e.mode, e.limit_source, e.mode_source),
            (Some(5000), Mode::Overage, QuotaSource::Space, QuotaSource::Tenant)
        );
        let tenant = overrides(json!({"events_per_day": {"limit": "unlimited"}}));
        assert_eq!(effective(&table, Plan::Starter, &space, &tenant, Dimension::EventsPerDay).limit, None);
        let storage = effective(&table, Plan::Starter, &none, &none, Dimension::StorageMb);
        assert_eq!(storage.limit, Some(100 * BYTES_PER_MB), "storage is counted in bytes");
    }

    #[test]
    fn levels_are_validated() {
        assert!(validate(&overrides(json!({"events_per_day": {"mode": "queue_for_later"}}))).is_ok());
        assert!(validate(&overrides(json!({"flows_per_tenant": {"mode": "queue_for_later"}}))).is_err());
        assert!(validate(&overrides(json!({"flows_per_tenant": {"limit": MAX_LIMIT + 1}}))).is_err());
        assert!(serde_json::from_value::<QuotaOverrides>(json!({"colours": {"limit": 1}})).is_err());
        assert!(serde_json::from_value::<QuotaOverrides>(json!({"flows_per_tenant": {"limit": -1}})).is_err());
        assert!(serde_json::from_value::<QuotaOverrides>(json!({"flows_per_tenant": {"limit": "lots"}})).is_err());
        assert!(PlanTable::parse(r#"{"gold": {}}"#).is_err());
        assert!(PlanTable::parse(r#"{"growth": {"storage_mb": {"mode": "queue_for_later"}}}"#).is_err());
    }

    #[test]
    fn windows_start_at_utc_boundaries() {
        assert_eq!(Window::Day.start(86_400_000 + 5), 86_400_000);
        assert_eq!(Window::Minute.start(125_000), 120_000);
        assert_eq!(Dimension::ALL.map(|d| Dimension::parse(d.as_str())), Dimension::ALL.map(Some));
    }
}
