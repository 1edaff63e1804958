//! Executions and their step checkpoints in the store.

use serde_json::Value;

use super::Platform;
use super::error::AppError;
use crate::domain::execution::{Execution, ExecutionStatus, StepRecord};
use crate::domain::ids::{ExecutionId, FlowId, SpaceId, TenantId};
use crate::ports::{Item, Query, cursor, query_all};
use crate::store::keys;

/// An execution with the version of its stored item (for optimistic updates).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExecution {
    pub execution: Execution,
    pub version: u64,
}

pub async fn get_execution(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    id: &ExecutionId,
) -> Result<Option<StoredExecution>, AppError> {
    Ok(p.store
        .get(&keys::execution(space, tenant, id))
        .await?
        .map(|item: Item| Ok::<_, AppError>(StoredExecution { execution: item.parse()?, version: item.version }))
        .transpose()?)
}

/// Step checkpoints of an execution, in step-id order.
pub async fn get_steps(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    id: &ExecutionId,
) -> Result<Vec<StepRecord>, AppError> {
    let items = query_all(
        p.store.as_ref(),
        Query::prefix(keys::execution_steps_pk(space, tenant, id), keys::STEP_PREFIX),
        2000,
    )
    .await?;
    Ok(items.iter().map(|i| i.parse()).collect::<Result<Vec<_>, _>>()?)
}

/// Filters of the execution listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    pub flow: Option<FlowId>,
    pub status: Option<ExecutionStatus>,
    /// Created at or after (epoch ms).
    pub since: Option<i64>,
    /// Created before (epoch ms).
    pub until: Option<i64>,
}

impl ExecutionFilter {
    fn matches(&self, e: &Execution) -> bool {
        self.flow.as_ref().is_none_or(|f| f == &e.flow.id)
            && self.status.is_none_or(|s| s == e.status)
            && self.since.is_none_or(|t| e.created_at >= t)
            && self.until.is_none_or(|t| e.created_at < t)
    }
}

/// Most items examined for one page of a filtered listing; past it the page ends early with a
/// cursor, so a rare filter never turns into an unbounded scan.
const MAX_SCANNED: usize = 2000;

/// Executions, newest first. Execution ids are ULIDs, so the sort key order is time order and
/// `until` becomes the starting point of the scan and `since` its end.
pub async fn list_executions(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    filter: &ExecutionFilter,
    limit: u32,
    after: Option<String>,
) -> Result<(Vec<Execution>, Option<String>), AppError> {
    let limit = limit.clamp(1, 200) as usize;
    let mut next = match (after, filter.until) {
        (Some(c), _) => Some(c),
        (None, Some(until)) => {
            // The smallest id at `until`: everything before it was created earlier.
            let bound = ulid::Ulid::from_parts(until.max(0) as u64, 0);
            Some(cursor::encode(&format!("{}ex_{bound}", keys::EXECUTION_PREFIX)))
        }
        (None, None) => None,
    };
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let query = Query::prefix(keys::tenant_pk(space, tenant), keys::EXECUTION_PREFIX)
            .descending()
            .limit(100)
            .after(next.take());
        let page = p.store.query(&query).await?;
        for item in &page.items {
            scanned += 1;
            let execution: Execution = item.parse()?;
            if filter.since.is_some_and(|t| execution.created_at < t) {
                return Ok((found, None));
            }
            if filter.matches(&execution) {
                found.push(execution);
                if found.len() == limit {
                    return Ok((found, Some(cursor::encode(&item.key.sk))));
                }
            }
            if scanned >= MAX_SCANNED {
                return Ok((found, Some(cursor::encode(&item.key.sk))));
            }
        }
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok((found, None)),
        }
    }
}

/// The API view of an execution: everything but the (possibly large) input.
pub fn summary_json(e: &Execution) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.remove("input");
    }
    v
}

/// Cancel an execution. A parked one (waiting on a delay or a retry) is cancelled at once and
/// its pending resume is void; a running one stops at its next step boundary.
pub async fn cancel(p: &Platform, space: &SpaceId, tenant: &TenantId, id: &ExecutionId) -> Result<Execution, AppError> {
    for _ in 0..5 {
        let stored = get_execution(p, space, tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("execution {id} not found")))?;
        let mut e = stored.execution;
        if e.status.is_terminal() {
            return Err(AppError::Conflict(format!("execution {id} already {}", e.status.as_str())));
        }
        e.cancel_requested = true;
        let parked = e.wake_token.take().is_some();
        if parked {
            e.error = Some(crate::domain::execution::ExecutionError { step: None, message: "cancelled".into() });
            e.transition(ExecutionStatus::Cancelled, p.now_ms());
        }
        let item = Item::new(keys::execution(space, tenant, id), serde_json::to_value(&e).unwrap_or(Value::Null))
            .with_version(stored.version + 1);
        match p.store.put(item, crate::ports::Condition::IfVersion(stored.version)).await {
            Ok(()) => {
                if parked {
                    let event = crate::ports::PlatformEvent {
                        detail_type: "execution.cancelled".into(),
                        detail: serde_json::json!({"space": space, "tenant": tenant, "execution_id": id, "flow_id": e.flow.id, "status": "cancelled"}),
                    };
                    if let Err(err) = p.bus.publish(&[event]).await {
                        tracing::warn!(error = %err, "execution.cancelled not published");
                    }
                }
                return Ok(e);
            }
            Err(crate::ports::PortError::ConditionFailed) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(AppError::Conflict("the execution is changing; retry".into()))
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

/// The trigger kind of executions that record MCP tool calls.
pub const MCP_TRIGGER: &str = "mcp";

/// Start a new execution from an old one's input.
pub async fn rerun(
    p: &Platform,
    tenant: &super::tenancy::ResolvedTenant,
    id: &ExecutionId,
    from: RerunFrom,
) -> Result<ExecutionId, AppError> {
    let (space, tenant_id) = (&tenant.space.id, &tenant.tenant.id);
    let original = get_execution(p, space, tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("execution {id} not found")))?
        .execution;
    // A recorded tool call ran no flow: there is nothing to run again (and a flow the tenant
    // happens to call `mcp` must not be run with the call's arguments).
    if original.trigger.kind == MCP_TRIGGER {
        return Err(AppError::Conflict(format!(
            "execution {id} records an MCP tool call; call the tool again instead"
        )));
    }
    let trigger = crate::domain::execution::TriggerInfo {
        kind: crate::engine::run::RERUN_TRIGGER.into(),
        connector: original.trigger.connector.clone(),
        event_type: original.trigger.event_type.clone(),
        event_id: Some(id.to_string()),
    };
    match from {
        RerunFrom::Start => {
            let flow = super::flows::get_flow(p, &original.flow.owner, &original.flow.id)
                .await?
                .ok_or_else(|| AppError::Conflict(format!("flow {} no longer exists", original.flow.id)))?;
            super::runs::start_run(p, tenant, &flow, trigger, original.input.clone(), None).await
        }
        RerunFrom::Failed => {
            if !matches!(original.status, ExecutionStatus::Failed | ExecutionStatus::Cancelled) {
                return Err(AppError::Conflict(format!("execution {id} did not fail; re-run it from the start")));
            }
            let new_id = ExecutionId::generate(p.now_ms());
            // Completed steps carry over as they are (spilled outputs keep their blobs).
            let items = query_all(
                p.store.as_ref(),
                Query::prefix(keys::execution_steps_pk(space, tenant_id, id), keys::STEP_PREFIX),
                2000,
            )
            .await?;
            let kept: Vec<Item> = items
                .into_iter()
                .filter(|i| matches!(i.data.get("status").and_then(Value::as_str), Some("succeeded" | "skipped")))
                .map(|i| {
                    Item::new(
                        crate::ports::Key::new(keys::execution_steps_pk(space, tenant_id, &new_id), i.key.sk.clone()),
                        i.data,
                    )
                })
                .collect();
            for chunk in kept.chunks(crate::ports::MAX_TRANSACTION_OPS) {
                let ops = chunk
                    .iter()
                    .map(|item| crate::ports::WriteOp::Put {
                        item: item.clone(),
                        condition: crate::ports::Condition::None,
                    })
                    .collect();
                p.store.transact(ops).await?;
            }
            super::runs::start_pinned(p, tenant, original.flow.clone(), trigger, original.input.clone(), None, new_id)
                .await
        }
    }
}

/// Record a synchronous call (an MCP tool call) as an execution with one step, so it shows up
/// with every other run. Its flow reference is the `mcp` pseudo-flow (version 0). The step is
/// written first (large outputs go to a blob, as for flow steps), so an execution is never
/// listed without its step.
#[allow(clippy::too_many_arguments)]
pub async fn record_call(
    p: &Platform,
    tenant: &super::tenancy::ResolvedTenant,
    tool: &str,
    kind: &str,
    input: &Value,
    outcome: &Result<Value, crate::domain::execution::StepError>,
    started: i64,
    finished: i64,
) -> Result<ExecutionId, AppError> {
    use crate::domain::execution::{
        ExecutionError, FlowRef, StepRecord, StepStatus, StepSummary, Transition, TriggerInfo,
    };
    let (space, tenant_id) = (&tenant.space.id, &tenant.tenant.id);
    let id = ExecutionId::generate(started);
    let step = crate::domain::ids::StepId::parse("call").map_err(|e| AppError::bad_request(e.to_string()))?;
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
            owner: super::flows::tenant_owner(tenant),
            id: FlowId::parse("mcp").map_err(|e| AppError::bad_request(e.to_string()))?,
            version: 0,
        },
        flow_name: format!("MCP tool {tool}"),
        status: ExecutionStatus::Running,
        trigger: TriggerInfo {
            kind: MCP_TRIGGER.into(),
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
    let record = crate::engine::run::write_step_record(p, &execution, record).await?;
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
    p.store.put(item, crate::ports::Condition::IfAbsent).await?;
    Ok(id)
}
