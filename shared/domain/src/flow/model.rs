//! The flow format's types: triggers, steps and their kinds, the definition, its errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::config::RetryPolicy;
use crate::ids::{ConnectorId, SpaceId, StepId, TenantId};

/// The JSON Schema of the format (served at `/api/v1/schemas/flow.json`).
pub const SCHEMA: &str = include_str!("flow.schema.json");

/// The only format version so far.
pub const FORMAT_VERSION: u32 = 1;
/// Most steps in a flow, `foreach` bodies included.
pub const MAX_STEPS: usize = 100;
/// Largest definition accepted, in bytes of JSON.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Most concurrent items a `foreach` may run.
pub const MAX_FOREACH_CONCURRENCY: u32 = 50;

/// Where a flow lives: shared by every tenant of the space, or owned by one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum FlowOwner {
    Space { space: SpaceId },
    Tenant { space: SpaceId, tenant: TenantId },
}

impl FlowOwner {
    pub fn space(&self) -> &SpaceId {
        match self {
            FlowOwner::Space { space } | FlowOwner::Tenant { space, .. } => space,
        }
    }
    /// The owner of one tenant's own flows, or (no tenant) of the space's shared ones.
    pub fn of(space: &SpaceId, tenant: Option<&TenantId>) -> FlowOwner {
        match tenant {
            Some(t) => FlowOwner::Tenant { space: space.clone(), tenant: t.clone() },
            None => FlowOwner::Space { space: space.clone() },
        }
    }
}

/// What starts a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A webhook from a connector. `events` are event-type patterns: exact (`push`), a trailing
    /// wildcard (`pull_request.*`, `orders/*`) or `*` for all.
    Webhook {
        connector: ConnectorId,
        #[serde(default = "all_events")]
        events: Vec<String>,
    },
    /// A cron schedule (5 fields, or 6 with seconds) in an IANA time zone.
    Schedule {
        cron: String,
        #[serde(default = "utc")]
        timezone: String,
    },
    /// Changes detected by the poller on a connector resource. `input` is given to the
    /// resource's list action (e.g. the GitHub repository, the Slack channel).
    Poll {
        connector: ConnectorId,
        resource: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_seconds: Option<u32>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        input: Map<String, Value>,
    },
    /// Only over the API (`POST …/workflows/{id}/run`) or MCP (`switchyard_run_flow`).
    Manual,
}

fn all_events() -> Vec<String> {
    vec!["*".to_string()]
}

fn utc() -> String {
    "UTC".to_string()
}

impl Trigger {
    /// Whether this trigger fires for an event of `event_type` from `connector`.
    pub fn matches_webhook(&self, connector: &ConnectorId, event_type: &str) -> bool {
        match self {
            Trigger::Webhook { connector: c, events } => {
                c == connector && events.iter().any(|pattern| event_matches(pattern, event_type))
            }
            _ => false,
        }
    }
}

/// `*` matches everything; `prefix*` matches by prefix; anything else must be equal.
pub fn event_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    /// jq over the execution context; its first output is the step's output.
    pub expr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(default = "get")]
    pub method: String,
    /// Template for the URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub query: Map<String, Value>,
    /// Template for the body: objects and arrays are sent as JSON, strings as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Authenticate as this connector, with the tenant's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectorId>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn get() -> String {
    "GET".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionStep {
    pub connector: ConnectorId,
    pub action: String,
    /// Template for the action's input (`{}` when absent).
    #[serde(default = "empty_object")]
    pub input: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionStep {
    /// jq; truthy takes `then`, otherwise `else`.
    pub expr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<StepId>,
    #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub otherwise: Vec<StepId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeachStep {
    /// jq producing an array; the body runs once per element (`.item`, `.index`).
    pub items: String,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The body: steps with their own `depends_on` among themselves.
    pub steps: Vec<Value>,
}

fn default_concurrency() -> u32 {
    4
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// jq producing an RFC 3339 time or epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdmStep {
    pub connector: ConnectorId,
    /// Canonical entity: contact, product, order, invoice, inventory_level, fulfillment.
    pub entity: String,
    /// Template for the connector payload to map.
    pub input: Value,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    Transform(TransformStep),
    Http(HttpStep),
    Action(ActionStep),
    Condition(ConditionStep),
    Foreach(ForeachStep),
    Delay(DelayStep),
    Cdm(CdmStep),
}

/// The name of a step kind, as flows spell it (`"kind": "http"`). Parsing a step goes through
/// it, and every match on it or on `StepKind` is exhaustive: a new kind is a compile error
/// wherever it must be handled (`docs/extending.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKindName {
    Transform,
    Http,
    Action,
    Condition,
    Foreach,
    Delay,
    Cdm,
}

impl StepKindName {
    /// Every kind, for messages (the schema's `kind` enum lists the same; a test compares them).
    pub const ALL: [StepKindName; 7] = [
        StepKindName::Transform,
        StepKindName::Http,
        StepKindName::Action,
        StepKindName::Condition,
        StepKindName::Foreach,
        StepKindName::Delay,
        StepKindName::Cdm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKindName::Transform => "transform",
            StepKindName::Http => "http",
            StepKindName::Action => "action",
            StepKindName::Condition => "condition",
            StepKindName::Foreach => "foreach",
            StepKindName::Delay => "delay",
            StepKindName::Cdm => "cdm",
        }
    }
}

impl StepKind {
    pub fn kind_name(&self) -> StepKindName {
        match self {
            StepKind::Transform(_) => StepKindName::Transform,
            StepKind::Http(_) => StepKindName::Http,
            StepKind::Action(_) => StepKindName::Action,
            StepKind::Condition(_) => StepKindName::Condition,
            StepKind::Foreach(_) => StepKindName::Foreach,
            StepKind::Delay(_) => StepKindName::Delay,
            StepKind::Cdm(_) => StepKindName::Cdm,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind_name().as_str()
    }

    /// The connector whose credentials and integration configuration the step uses, if any.
    pub fn connector(&self) -> Option<&ConnectorId> {
        match self {
            StepKind::Action(a) => Some(&a.connector),
            StepKind::Cdm(c) => Some(&c.connector),
            StepKind::Http(h) => h.auth.as_ref(),
            StepKind::Transform(_) | StepKind::Condition(_) | StepKind::Foreach(_) | StepKind::Delay(_) => None,
        }
    }
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDef {
    pub id: StepId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<StepId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// A flow definition as the API accepts and returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowDefinition {
    pub format: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    pub steps: Vec<StepDef>,
}

/// Why a definition is invalid: which step and which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}{}{message}", step.as_ref().map(|s| format!("step {s:?}: ")).unwrap_or_default(), field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct FlowError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl FlowError {
    pub(super) fn flow(field: &str, message: impl Into<String>) -> Self {
        FlowError { step: None, field: Some(field.to_string()), message: message.into() }
    }
    pub(super) fn step(step: &str, field: &str, message: impl Into<String>) -> Self {
        FlowError { step: Some(step.to_string()), field: Some(field.to_string()), message: message.into() }
    }
}
