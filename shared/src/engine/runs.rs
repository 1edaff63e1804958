//! Starting and resuming runs: the one way the receiver, the API, MCP, the scheduler, the
//! poller and the driver itself put a run message on the queue.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Engine;
use crate::domain::connector::ConnectorSpec;
use crate::domain::execution::{
    Execution, ExecutionStatus, FlowRef, RunMessage, Transition, TriggerInfo, TriggerKind, run_key,
};
use crate::domain::flow::FlowRecord;
use crate::domain::ids::{ExecutionId, FlowId, SpaceId, TenantId};
use crate::domain::webhook::envelope::EventEnvelope;
use crate::ports::{OutgoingMessage, PortError, QueueId, sqs_limits};
use crate::store::schedules::{self, Timer};
use crate::store::tenants::ResolvedTenant;
use crate::store::{blobs, keys};

/// Queue the start of a run of `flow` for `tenant`. `key` identifies the cause (an
/// `Idempotency-Key`, a schedule occurrence, a poll change): the same key never starts two
/// executions. Returns the execution id the run will have.
pub async fn start_run(
    engine: &Engine,
    tenant: &ResolvedTenant,
    flow: &FlowRecord,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
) -> Result<ExecutionId, PortError> {
    let execution_id = ExecutionId::generate(engine.now_ms());
    start_pinned(engine, tenant, flow.pinned(), trigger, input, key, execution_id).await
}

/// Queue the start of a run of an exact flow version with a chosen execution id.
pub async fn start_pinned(
    engine: &Engine,
    tenant: &ResolvedTenant,
    flow: FlowRef,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
    execution_id: ExecutionId,
) -> Result<ExecutionId, PortError> {
    let message = start_message(engine, tenant, flow, trigger, input, key, execution_id.clone()).await?;
    engine.queue.send(QueueId::Runs, &[message]).await?;
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
    engine: &Engine,
    tenant: &ResolvedTenant,
    requests: Vec<RunRequest>,
) -> Result<Vec<ExecutionId>, PortError> {
    let mut messages = Vec::with_capacity(requests.len());
    let mut ids = Vec::with_capacity(requests.len());
    for r in requests {
        let id = ExecutionId::generate(engine.now_ms());
        messages.push(start_message(engine, tenant, r.flow, r.trigger, r.input, Some(&r.key), id.clone()).await?);
        ids.push(id);
    }
    if !messages.is_empty() {
        engine.queue.send(QueueId::Runs, &messages).await?;
    }
    Ok(ids)
}

/// The run key of a start: the trigger kind, the tenant, the flow and the cause.
fn start_key(kind: TriggerKind, tenant: &ResolvedTenant, flow: &FlowRef, cause: &str) -> String {
    run_key(&[
        kind.as_str(),
        tenant.space.id.as_str(),
        tenant.tenant.id.as_str(),
        &keys::owner_pk(&flow.owner),
        flow.id.as_str(),
        cause,
    ])
}

/// The start message of one run; a large input goes to a blob first.
async fn start_message(
    engine: &Engine,
    tenant: &ResolvedTenant,
    flow: FlowRef,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
    execution_id: ExecutionId,
) -> Result<OutgoingMessage, PortError> {
    let run_key = match key {
        Some(cause) => start_key(trigger.kind, tenant, &flow, cause),
        None => execution_id.to_string(),
    };
    let size = serde_json::to_string(&input).map(|s| s.len()).unwrap_or(0);
    let input = if size > blobs::INLINE_LIMIT && blobs::as_ref(&input).is_none() {
        let blob = blobs::put(&engine.db, &tenant.space.id, &tenant.tenant.id, &input).await?;
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
        enqueued_at: engine.now_ms(),
    };
    let body = serde_json::to_string(&message).map_err(PortError::invalid)?;
    Ok(OutgoingMessage::new(body))
}

/// A start message as the receiver writes it: the same fields as `RunMessage::Start`, with the
/// input borrowed as JSON text so it is copied, not re-serialized, into each message.
#[derive(Serialize)]
#[serde(tag = "type", rename = "start")]
struct StartMessage<'a> {
    space: &'a SpaceId,
    tenant: &'a TenantId,
    execution_id: &'a ExecutionId,
    run_key: String,
    flow: FlowRef,
    trigger: &'a TriggerInfo,
    input: &'a RawValue,
    enqueued_at: i64,
}

/// One start message per flow a webhook event triggers, with a run key made of the delivery
/// and the flow, so a delivery queued twice still starts each run once. `input` is the event
/// as it travels (inline, or a blob reference).
pub fn webhook_starts(
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    event: &EventEnvelope,
    input: &RawValue,
    matched: &[Arc<FlowRecord>],
    now: i64,
) -> (Vec<OutgoingMessage>, Vec<(FlowId, ExecutionId)>) {
    let trigger = TriggerInfo {
        kind: TriggerKind::Webhook,
        connector: Some(spec.id.clone()),
        event_type: Some(event.event_type.clone()),
        event_id: Some(event.id.clone()),
    };
    let mut messages = Vec::with_capacity(matched.len());
    let mut runs = Vec::with_capacity(matched.len());
    for flow in matched {
        let execution_id = ExecutionId::generate(now);
        let run_key = run_key(&[
            TriggerKind::Webhook.as_str(),
            tenant.space.id.as_str(),
            tenant.tenant.id.as_str(),
            spec.id.as_str(),
            &event.id,
            &keys::owner_pk(&flow.owner),
            flow.id.as_str(),
        ]);
        let message = StartMessage {
            space: &tenant.space.id,
            tenant: &tenant.tenant.id,
            execution_id: &execution_id,
            run_key,
            flow: flow.pinned(),
            trigger: &trigger,
            input,
            enqueued_at: now,
        };
        if let Ok(body) = serde_json::to_string(&message) {
            messages.push(OutgoingMessage::new(body));
            runs.push((flow.id.clone(), execution_id));
        }
    }
    (messages, runs)
}

/// Make `timer`'s execution resume at `timer.due`: a delayed resume message when the queue can
/// hold it that long, else the timer itself, which the scheduler turns into the message when it
/// comes within reach (`release_timer`).
pub async fn resume_at(engine: &Engine, timer: Timer) -> Result<(), PortError> {
    let wait_ms = timer.due - engine.now_ms();
    if wait_ms > i64::from(sqs_limits::MAX_DELAY_SECONDS) * 1000 {
        return schedules::add_timer(&engine.db, &timer).await;
    }
    send_resume(engine, timer, wait_ms).await
}

/// Send a due timer's message (a resume, or a deferred start), with the seconds it has left as
/// the delay.
pub async fn release_timer(engine: &Engine, timer: Timer) -> Result<(), PortError> {
    let wait_ms = timer.due - engine.now_ms();
    send_resume(engine, timer, wait_ms).await
}

async fn send_resume(engine: &Engine, timer: Timer, wait_ms: i64) -> Result<(), PortError> {
    let delay = sqs_limits::delay_secs(wait_ms);
    if let Some(start) = timer.start {
        return engine.queue.send(QueueId::Runs, &[OutgoingMessage::new(start).delayed(delay)]).await;
    }
    let message = RunMessage::Resume {
        space: timer.space,
        tenant: timer.tenant,
        execution_id: timer.execution_id,
        token: timer.token,
    };
    let body = serde_json::to_string(&message).map_err(PortError::invalid)?;
    engine.queue.send(QueueId::Runs, &[OutgoingMessage::new(body).delayed(delay)]).await
}

/// Start runs at `at_ms` instead of now (a `queue_for_later` quota deferred them): each is
/// first recorded where its tenant sees it as queued, then becomes a delayed message when the
/// queue can hold it that long, else a timer the scheduler releases. A failure is returned
/// before the caller answers, so nothing accepted is lost (a recorded deferral whose timer was
/// not written shows as queued until it expires, and the caller's retry defers it again).
pub async fn defer_starts(
    engine: &Engine,
    tenant: &ResolvedTenant,
    messages: Vec<OutgoingMessage>,
    at_ms: i64,
) -> Result<(), PortError> {
    let now = engine.now_ms();
    for message in messages {
        let Ok(RunMessage::Start { space, tenant: tenant_id, execution_id, run_key, flow, trigger, .. }) =
            serde_json::from_str::<RunMessage>(&message.body)
        else {
            return Err(PortError::invalid("a deferred message is not a run start"));
        };
        let flow_name =
            match crate::store::flows::get_flow_version(&engine.db, &flow.owner, &flow.id, flow.version).await {
                Ok(Some(v)) => v.definition.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                Ok(None) => String::new(),
                Err(crate::store::Error::Port(e)) => return Err(e),
                Err(e) => return Err(PortError::unavailable(e)),
            };
        let execution = Execution {
            id: execution_id.clone(),
            space: space.clone(),
            tenant: tenant_id.clone(),
            flow,
            flow_name,
            status: ExecutionStatus::Queued,
            trigger,
            run_key,
            created_at: now,
            updated_at: now,
            finished_at: None,
            transitions: vec![Transition { status: ExecutionStatus::Queued, at: now }],
            error: None,
            steps: Vec::new(),
            invocations: 0,
            input: Value::Null,
            cancel_requested: false,
            wake_token: None,
        };
        let visible = schedules::DeferredStart { execution, runs_at: at_ms };
        schedules::add_deferred(&engine.db, &tenant.space.id, &tenant.tenant.id, &visible).await?;
        let timer = Timer {
            space,
            tenant: tenant_id,
            execution_id,
            token: String::new(),
            due: at_ms,
            start: Some(message.body),
        };
        resume_at(engine, timer).await?;
    }
    Ok(())
}

/// The start of one run deferred to `at_ms` (see `defer_starts`).
#[allow(clippy::too_many_arguments)]
pub async fn start_deferred(
    engine: &Engine,
    tenant: &ResolvedTenant,
    flow: FlowRef,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
    execution_id: ExecutionId,
    at_ms: i64,
) -> Result<ExecutionId, PortError> {
    let message = start_message(engine, tenant, flow, trigger, input, key, execution_id.clone()).await?;
    defer_starts(engine, tenant, vec![message], at_ms).await?;
    Ok(execution_id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::flow::FlowOwner;

    #[test]
    fn webhook_start_messages_parse_as_run_messages() {
        let space = SpaceId::parse("s").unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let execution_id = ExecutionId::generate(1_000);
        let trigger = TriggerInfo {
            kind: TriggerKind::Webhook,
            connector: None,
            event_type: Some("push".into()),
            event_id: Some("d".into()),
        };
        let input = serde_json::value::to_raw_value(&json!({"payload": {"a": [1, 2]}})).unwrap();
        let message = StartMessage {
            space: &space,
            tenant: &tenant,
            execution_id: &execution_id,
            run_key: "k".into(),
            flow: FlowRef {
                owner: FlowOwner::Space { space: space.clone() },
                id: FlowId::parse("f").unwrap(),
                version: 3,
            },
            trigger: &trigger,
            input: &input,
            enqueued_at: 7,
        };
        let parsed: RunMessage = serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        let RunMessage::Start { input, flow, enqueued_at, execution_id: id, .. } = parsed else {
            panic!("not a start")
        };
        assert_eq!((input, flow.version, enqueued_at, id), (json!({"payload": {"a": [1, 2]}}), 3, 7, execution_id));
    }
}
