//! Operations on executions beyond reading them: cancel, re-run, and recording a synchronous
//! call (an MCP tool call) as an execution.

use serde_json::Value;

use super::{Error, Result};
use crate::domain::execution::{Execution, ExecutionStatus, TriggerKind};
use crate::domain::ids::{ExecutionId, FlowId, SpaceId, TenantId};
use crate::engine::Engine;
use crate::ports::Item;
use crate::store::tenants::ResolvedTenant;
use crate::store::{executions, flows, keys};
use crate::usecases::quotas::{self, Started};

/// Cancel an execution. A parked one (waiting on a delay or a retry) is cancelled at once and
/// its pending resume is void; a running one stops at its next step boundary.
pub async fn cancel(engine: &Engine, space: &SpaceId, tenant: &TenantId, id: &ExecutionId) -> Result<Execution> {
    for _ in 0..5 {
        let stored = executions::get_execution(&engine.db, space, tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("execution {id} not found")))?;
        let mut e = stored.execution;
        if e.status.is_terminal() {
            return Err(Error::Conflict(format!("execution {id} already {}", e.status.as_str())));
        }
        e.cancel_requested = true;
        let parked = e.wake_token.take().is_some();
        if parked {
            e.error = Some(crate::domain::execution::ExecutionError { step: None, message: "cancelled".into() });
            e.transition(ExecutionStatus::Cancelled, engine.now_ms());
        }
        let item = Item::new(keys::execution(space, tenant, id), serde_json::to_value(&e).unwrap_or(Value::Null))
            .with_version(stored.version + 1);
        match engine.db.store.put(item, crate::ports::Condition::IfVersion(stored.version)).await {
            Ok(()) => {
                if parked {
                    let event = crate::ports::PlatformEvent {
                        detail_type: "execution.cancelled".into(),
                        detail: serde_json::json!({"space": space, "tenant": tenant, "execution_id": id, "flow_id": e.flow.id, "status": "cancelled"}),
                    };
                    if let Err(err) = crate::engine::events::publish(engine, space, Some(tenant), &[event]).await {
                        tracing::warn!(error = %err, "execution.cancelled not published");
                    }
                }
                return Ok(e);
            }
            Err(crate::ports::PortError::ConditionFailed) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Conflict("the execution is changing; retry".into()))
}

/// Where a re-run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RerunFrom {
    /// From the first step, on the flow's current version.
    Start,
    /// From the failed step, on the version the execution ran, keeping completed steps.
    Failed,
}

/// Start a new execution from an old one's input.
pub async fn rerun(engine: &Engine, tenant: &ResolvedTenant, id: &ExecutionId, from: RerunFrom) -> Result<Started> {
    let (space, tenant_id) = (&tenant.space.id, &tenant.tenant.id);
    let original = executions::get_execution(&engine.db, space, tenant_id, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("execution {id} not found")))?
        .execution;
    // A recorded tool call ran no flow: there is nothing to run again (and a flow the tenant
    // happens to call `mcp` must not be run with the call's arguments).
    if original.trigger.is_recorded_call(&original.flow) {
        return Err(Error::Conflict(format!("execution {id} records an MCP tool call; call the tool again instead")));
    }
    let trigger = crate::domain::execution::TriggerInfo {
        kind: TriggerKind::Rerun,
        connector: original.trigger.connector.clone(),
        event_type: original.trigger.event_type.clone(),
        event_id: Some(id.to_string()),
    };
    match from {
        RerunFrom::Start => {
            let flow = flows::get_flow(&engine.db, &original.flow.owner, &original.flow.id)
                .await?
                .ok_or_else(|| Error::Conflict(format!("flow {} no longer exists", original.flow.id)))?;
            let new_id = ExecutionId::generate(engine.now_ms());
            let input = original.input.clone();
            quotas::start_counted(engine, tenant, flow.pinned(), trigger, input, None, new_id).await
        }
        RerunFrom::Failed => {
            if !matches!(original.status, ExecutionStatus::Failed | ExecutionStatus::Cancelled) {
                return Err(Error::Conflict(format!("execution {id} did not fail; re-run it from the start")));
            }
            let new_id = ExecutionId::generate(engine.now_ms());
            executions::copy_finished_steps(&engine.db, space, tenant_id, id, &new_id).await?;
            let input = original.input.clone();
            let flow = original.flow.clone();
            quotas::start_counted(engine, tenant, flow, trigger, input, None, new_id).await
        }
    }
}

/// Record a synchronous call (an MCP tool call) as an execution with one step, so it shows up
/// with every other run. Its flow reference is the `mcp` pseudo-flow (version 0). The step is
/// written first (large outputs go to a blob, as for flow steps), so an execution is never
/// listed without its step.
#[allow(clippy::too_many_arguments)]
pub async fn record_call(
    engine: &Engine,
    tenant: &ResolvedTenant,
    tool: &str,
    kind: &str,
    input: &Value,
    outcome: &Result<Value, crate::domain::execution::StepError>,
    started: i64,
    finished: i64,
) -> Result<ExecutionId> {
    use crate::domain::execution::{
        ExecutionError, FlowRef, StepRecord, StepStatus, StepSummary, Transition, TriggerInfo,
    };
    let (space, tenant_id) = (&tenant.space.id, &tenant.tenant.id);
    let id = ExecutionId::generate(started);
    let step = crate::domain::ids::StepId::parse("call").map_err(|e| Error::bad_request(e.to_string()))?;
    let record = StepRecord {
        id: step.clone(),
        kind: kind.to_string(),
        status: if outcome.is_ok() { StepStatus::Succeeded } else { StepStatus::Failed },
        attempt: 1,
        started_at: started,
        finished_at: finished,
        duration_ms: finished - started,
        input: Some(input.clone()),
        output: outcome.as_ref().ok().cloned(),
        output_spilled: false,
        error: outcome.as_ref().err().cloned(),
        resume_at: None,
    };
    let mut execution = Execution {
        id: id.clone(),
        space: space.clone(),
        tenant: tenant_id.clone(),
        flow: FlowRef {
            owner: flows::tenant_owner(tenant),
            id: FlowId::parse("mcp").map_err(|e| Error::bad_request(e.to_string()))?,
            version: 0,
        },
        flow_name: format!("MCP tool {tool}"),
        status: ExecutionStatus::Running,
        trigger: TriggerInfo {
            kind: TriggerKind::Mcp,
            connector: None,
            event_type: Some(tool.to_string()),
            event_id: None,
        },
        run_key: id.to_string(),
        created_at: started,
        updated_at: finished,
        finished_at: Some(finished),
        transitions: Vec::new(),
        error: None,
        steps: Vec::new(),
        invocations: 1,
        // The arguments are the step's input; the execution keeps only what was called.
        input: serde_json::json!({"tool": tool}),
        cancel_requested: false,
        wake_token: None,
    };
    let record = executions::write_step_record(&engine.db, &execution, record).await?;
    let status =
        if record.status == StepStatus::Succeeded { ExecutionStatus::Succeeded } else { ExecutionStatus::Failed };
    execution.status = status;
    execution.transitions =
        vec![Transition { status: ExecutionStatus::Running, at: started }, Transition { status, at: finished }];
    execution.error =
        record.error.as_ref().map(|e| ExecutionError { step: Some(step.clone()), message: e.message.clone() });
    execution.steps =
        vec![StepSummary { id: step, status: record.status, attempts: 1, duration_ms: Some(finished - started) }];
    let item =
        Item::new(keys::execution(space, tenant_id, &id), serde_json::to_value(&execution).unwrap_or(Value::Null));
    engine.db.store.put(item, crate::ports::Condition::IfAbsent).await?;
    Ok(id)
}
