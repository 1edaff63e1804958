//! Starting runs: the one way the API, MCP, the scheduler and the poller put a run on the queue.

use serde_json::Value;

use super::error::AppError;
use super::flows::FlowRecord;
use super::tenancy::ResolvedTenant;
use super::{Platform, blobs};
use crate::domain::execution::{FlowRef, RunMessage, TriggerInfo, run_key};
use crate::domain::ids::ExecutionId;
use crate::ports::{OutgoingMessage, QueueId};

/// Queue the start of a run of `flow` for `tenant`. `key` identifies the cause (an
/// `Idempotency-Key`, a schedule occurrence, a poll change): the same key never starts two
/// executions. Returns the execution id the run will have.
pub async fn start_run(
    p: &Platform,
    tenant: &ResolvedTenant,
    flow: &FlowRecord,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
) -> Result<ExecutionId, AppError> {
    let execution_id = ExecutionId::generate(p.now_ms());
    let flow_ref = FlowRef { owner: flow.owner.clone(), id: flow.id.clone(), version: flow.version };
    start_pinned(p, tenant, flow_ref, trigger, input, key, execution_id).await
}

/// Queue the start of a run of an exact flow version with a chosen execution id.
pub async fn start_pinned(
    p: &Platform,
    tenant: &ResolvedTenant,
    flow: FlowRef,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
    execution_id: ExecutionId,
) -> Result<ExecutionId, AppError> {
    let now = p.now_ms();
    let run_key = match key {
        Some(k) => run_key(&[
            &trigger.kind,
            tenant.space.id.as_str(),
            tenant.tenant.id.as_str(),
            &flow.owner.pk(),
            flow.id.as_str(),
            k,
        ]),
        None => execution_id.to_string(),
    };
    let size = serde_json::to_string(&input).map(|s| s.len()).unwrap_or(0);
    let input = if size > blobs::INLINE_LIMIT && blobs::as_ref(&input).is_none() {
        let blob = blobs::put(p, &tenant.space.id, &tenant.tenant.id, &input).await?;
        serde_json::json!({ "$blob": blob })
    } else {
        input
    };
    let message = RunMessage::Start {
        space: tenant.space.id.clone(),
        tenant: tenant.tenant.id.clone(),
        execution_id: execution_id.clone(),
        run_key,
        flow,
        trigger,
        input,
        enqueued_at: now,
    };
    let body = serde_json::to_string(&message).map_err(|e| AppError::bad_request(e.to_string()))?;
    p.queue.send(QueueId::Runs, &[OutgoingMessage::new(body)]).await?;
    Ok(execution_id)
}
