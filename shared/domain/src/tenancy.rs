//! Spaces (one SaaS company's project), their tenants (its customers) and plans.

use serde::{Deserialize, Serialize};

use super::ids::{SpaceId, TenantId};
use super::quota::QuotaOverrides;

/// The plan tiers of the seed, each with its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    #[default]
    Starter,
    Growth,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Growth => "growth",
            Plan::Enterprise => "enterprise",
        }
    }
}

/// A quota limit: `None` is unlimited.
pub type Limit = Option<u64>;

/// The quota dimensions of the seed's plan table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    pub events_per_day: Limit,
    pub active_integrations: Limit,
    pub flows_per_tenant: Limit,
    pub api_calls_per_minute: Limit,
    pub connectors_per_tenant: Limit,
    pub agent_sessions_per_day: Limit,
    pub llm_tokens_per_day: Limit,
    pub storage_mb: Limit,
}

impl Plan {
    pub fn quotas(self) -> Quotas {
        match self {
            Plan::Starter => Quotas {
                events_per_day: Some(1_000),
                active_integrations: Some(5),
                flows_per_tenant: Some(10),
                api_calls_per_minute: Some(60),
                connectors_per_tenant: Some(3),
                agent_sessions_per_day: Some(10),
                llm_tokens_per_day: Some(100_000),
                storage_mb: Some(100),
            },
            Plan::Growth => Quotas {
                events_per_day: Some(50_000),
                active_integrations: Some(50),
                flows_per_tenant: Some(100),
                api_calls_per_minute: Some(600),
                connectors_per_tenant: Some(20),
                agent_sessions_per_day: Some(100),
                llm_tokens_per_day: Some(1_000_000),
                storage_mb: Some(1_000),
            },
            Plan::Enterprise => Quotas {
                events_per_day: None,
                active_integrations: None,
                flows_per_tenant: None,
                api_calls_per_minute: Some(6_000),
                connectors_per_tenant: None,
                agent_sessions_per_day: None,
                llm_tokens_per_day: Some(10_000_000),
                storage_mb: Some(10_000),
            },
        }
    }
}

/// A space, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    pub id: SpaceId,
    pub name: String,
    #[serde(default)]
    pub plan: Plan,
    /// Organization-level configuration (see `domain::config`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Quota overrides for every tenant of the space (see `domain::quota`).
    #[serde(default, skip_serializing_if = "QuotaOverrides::is_empty")]
    pub quotas: QuotaOverrides,
    pub created_at: i64,
}

/// Whether a tenant may run flows and receive events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    #[default]
    Active,
    Suspended,
}

/// A tenant, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub space: SpaceId,
    pub name: String,
    #[serde(default)]
    pub status: TenantStatus,
    /// A plan for this tenant alone; the space's plan otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Tenant-level configuration (see `domain::config`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Quota overrides for this tenant alone (see `domain::quota`).
    #[serde(default, skip_serializing_if = "QuotaOverrides::is_empty")]
    pub quotas: QuotaOverrides,
    pub created_at: i64,
}

/// The tenant → space index that lets webhook URLs carry only the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRef {
    pub space: SpaceId,
}

/// Longest display name we store.
pub const MAX_NAME_LEN: usize = 200;

/// A display name: trimmed, non-empty, bounded.
pub fn parse_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_string())
}
