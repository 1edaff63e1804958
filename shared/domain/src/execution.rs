//! Executions, their steps, and the run messages on the runs queue.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{ConnectorId, ExecutionId, FlowId, SpaceId, StepId, TenantId};
use crate::flow::FlowOwner;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    /// Parked until a delay or a retry is due.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Waiting => "waiting",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        [Self::Queued, Self::Running, Self::Waiting, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Failed an attempt; the next one is scheduled.
    Retrying,
    /// A delay step whose time has not come.
    Waiting,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn is_final(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped | StepStatus::Cancelled)
    }
}

/// A status change, timestamped (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub status: ExecutionStatus,
    pub at: i64,
}

/// What kind of cause started an execution. Matches on it are exhaustive: a new kind is a
/// compile error wherever it must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Webhook,
    Schedule,
    Poll,
    /// The API's `POST .../run`.
    Manual,
    /// An AI agent over MCP: a flow it started with `switchyard_run_flow`, or one of its tool
    /// calls recorded as an execution (`is_recorded_call`: no flow ran).
    Mcp,
    /// A re-run of an earlier execution.
    Rerun,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Webhook => "webhook",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Poll => "poll",
            TriggerKind::Manual => "manual",
            TriggerKind::Mcp => "mcp",
            TriggerKind::Rerun => "rerun",
        }
    }
}

/// What started an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInfo {
    pub kind: TriggerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The webhook delivery id or poll change id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl TriggerInfo {
    /// A cause with nothing more to say about it (a manual run).
    pub fn of(kind: TriggerKind) -> Self {
        TriggerInfo { kind, connector: None, event_type: None, event_id: None }
    }
    pub fn manual() -> Self {
        TriggerInfo::of(TriggerKind::Manual)
    }
}

impl TriggerInfo {
    /// Whether this started no flow but records a synchronous call (an MCP tool call): such
    /// executions pin version 0 of a pseudo-flow, and real versions start at 1.
    pub fn is_recorded_call(&self, flow: &FlowRef) -> bool {
        self.kind == TriggerKind::Mcp && flow.version == 0
    }
}

/// The flow version an execution runs, pinned when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRef {
    pub owner: FlowOwner,
    pub id: FlowId,
    pub version: u32,
}

/// Where an execution failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    pub message: String,
}

/// A step's status in the execution summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub id: StepId,
    pub status: StepStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// An execution as stored (the trigger payload included) and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: ExecutionId,
    pub space: SpaceId,
    pub tenant: TenantId,
    pub flow: FlowRef,
    pub flow_name: String,
    pub status: ExecutionStatus,
    pub trigger: TriggerInfo,
    /// The key that makes the start of this run exactly-once.
    pub run_key: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    pub transitions: Vec<Transition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    #[serde(default)]
    pub steps: Vec<StepSummary>,
    /// Invocations that worked on this execution (1 + continuations and resumptions).
    #[serde(default)]
    pub invocations: u32,
    /// Input of the run: the webhook envelope, the schedule tick, the manual input.
    #[serde(default)]
    pub input: Value,
    /// Set when a cancel was requested; the executor stops at the next step boundary.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The token of the one resume message allowed to continue this execution (see
    /// `engine::run`); `None` while an invocation is driving it or once it is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_token: Option<String>,
}

impl Execution {
    pub fn transition(&mut self, status: ExecutionStatus, at: i64) {
        if self.status != status {
            self.status = status;
            self.transitions.push(Transition { status, at });
        }
        self.updated_at = at;
        if status.is_terminal() {
            self.finished_at = Some(at);
        }
    }
}

/// Why a step failed, as recorded and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
    /// The third party's HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl StepRecord {
    /// The record of a step that will not run (its branch was not taken, or what it depends on
    /// failed).
    pub fn skipped(id: StepId, kind: &str, at: i64) -> StepRecord {
        StepRecord {
            id,
            kind: kind.to_string(),
            status: StepStatus::Skipped,
            attempt: 0,
            started_at: at,
            finished_at: at,
            duration_ms: 0,
            input: None,
            output: None,
            output_spilled: false,
            error: None,
            resume_at: None,
        }
    }
}

/// A step checkpoint: written once per attempt outcome, never re-run once final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: StepId,
    pub kind: String,
    pub status: StepStatus,
    pub attempt: u32,
    pub started_at: i64,
    pub finished_at: i64,
    pub duration_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The output was larger than the inline limit and is stored in chunks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_spilled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// When the next attempt (retry) or the end of a delay is due, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<i64>,
}

/// A message on the runs queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunMessage {
    /// Start a run. `execution_id` is chosen by the producer; `run_key` makes the start
    /// exactly-once even when the producer sends the same run twice.
    Start {
        space: SpaceId,
        tenant: TenantId,
        execution_id: ExecutionId,
        run_key: String,
        flow: FlowRef,
        trigger: TriggerInfo,
        input: Value,
        enqueued_at: i64,
    },
    /// Continue an execution that already exists (continuation, retry, end of a delay). Only
    /// the message whose `token` is the execution's current `wake_token` may drive it.
    Resume { space: SpaceId, tenant: TenantId, execution_id: ExecutionId, token: String },
}

impl RunMessage {
    pub fn execution(&self) -> (&SpaceId, &TenantId, &ExecutionId) {
        match self {
            RunMessage::Start { space, tenant, execution_id, .. }
            | RunMessage::Resume { space, tenant, execution_id, .. } => (space, tenant, execution_id),
        }
    }
}

/// A run key from its parts: the same event for the same flow always gives the same key.
pub fn run_key(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update((p.len() as u64).to_be_bytes());
        hasher.update(p.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}
