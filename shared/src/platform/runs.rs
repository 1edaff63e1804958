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
    let message = start_message(p, tenant, flow, trigger, input, key, execution_id.clone()).await?;
    p.queue.send(QueueId::Runs, &[message]).await?;
    Ok(execution_id)
}

/// One run to start with `start_many`.
pub struct RunRequest {
    pub flow: FlowRef,
    pub trigger: TriggerInfo,
    pub input: Value,
    /// What caused it (see `start_run`).
    pub key: String,
}

/// Queue several starts for one tenant in as few queue calls as the queue allows (batches of
/// 10 on SQS). Returns their execution ids, in order.
pub async fn start_many(
    p: &Platform,
    tenant: &ResolvedTenant,
    requests: Vec<RunRequest>,
) -> Result<Vec<ExecutionId>, AppError> {
    let mut messages = Vec::with_capacity(requests.len());
    let mut ids = Vec::with_capacity(requests.len());
    for r in requests {
        let id = ExecutionId::generate(p.now_ms());
        messages.push(start_message(p, tenant, r.flow, r.trigger, r.input, Some(&r.key), id.clone()).await?);
        ids.push(id);
    }
    if !messages.is_empty() {
        p.queue.send(QueueId::Runs, &messages).await?;
    }
    Ok(ids)
}

/// The start message of one run; a large input goes to a blob first.
async fn start_message(
    p: &Platform,
    tenant: &ResolvedTenant,
    flow: FlowRef,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
    execution_id: ExecutionId,
) -> Result<OutgoingMessage, AppError> {
    let now = p.now_ms();
    let run_key = match key {
        Some(k) => run_key(&[
            &trigger.kind,
            tenant.space.id.as_str(),
            tenant.tenant.id.as_str(),
            &crate::store::keys::owner_pk(&flow.owner),
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
        execution_id,
        run_key,
        flow,
        trigger,
        input,
        enqueued_at: now,
    };
    let body = serde_json::to_string(&message).map_err(|e| AppError::bad_request(e.to_string()))?;
    Ok(OutgoingMessage::new(body))
}
