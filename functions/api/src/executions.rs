//! Executions (with their step checkpoints) and the log of received events.

use serde_json::{Value, json};
use switchyard::domain::access::Permission;
use switchyard::domain::execution::ExecutionStatus;
use switchyard::domain::ids::{ExecutionId, FlowId};
use switchyard::domain::keys;
use switchyard::platform::error::AppError;
use switchyard::platform::executions::{self as repo, ExecutionFilter};
use switchyard::platform::http::{Response, json as json_response};
use switchyard::ports::Query;

use crate::{Call, page_response, require};

fn time(q: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<i64>, AppError> {
    q.get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .or_else(|| chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp_millis()))
                .ok_or_else(|| AppError::bad_request(format!("{name} must be epoch milliseconds or an RFC 3339 time")))
        })
        .transpose()
}

pub async fn list(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    require(call, Permission::ExecutionsRead)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let q = call.query();
    let filter = ExecutionFilter {
        flow: q
            .get("flow")
            .map(|f| FlowId::parse(f.as_str()).map_err(|e| AppError::bad_request(e.to_string())))
            .transpose()?,
        status: q
            .get("status")
            .map(|s| ExecutionStatus::parse(s).ok_or_else(|| AppError::bad_request(format!("unknown status {s:?}"))))
            .transpose()?,
        since: time(&q, "since")?,
        until: time(&q, "until")?,
    };
    let (limit, cursor) = call.page()?;
    let (executions, next) = repo::list_executions(call.p, &space, &tenant, &filter, limit, cursor).await?;
    Ok(page_response(executions.iter().map(repo::summary_json).collect(), next))
}

pub async fn get(call: &Call<'_>, tenant: &str, id: &str) -> Result<Response, AppError> {
    require(call, Permission::ExecutionsRead)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let not_found = || AppError::not_found(format!("execution {id} not found"));
    let id = ExecutionId::parse(id).map_err(|_| not_found())?;
    let stored = repo::get_execution(call.p, &space, &tenant, &id).await?.ok_or_else(not_found)?;
    let mut steps = repo::get_steps(call.p, &space, &tenant, &id).await?;
    // In the order the flow lists them.
    let flow = &stored.execution.flow.clone();
    let order = match switchyard::platform::flows::get_flow_version(call.p, &flow.owner, &flow.id, flow.version).await?
    {
        Some(version) => switchyard::engine::plan::definition_order(&version.parse_definition()?.steps),
        None => Default::default(),
    };
    steps.sort_by_key(|s| (order.get(&s.id).copied().unwrap_or(usize::MAX), s.started_at));
    let mut execution = stored.execution;
    if let Ok(input) = switchyard::platform::blobs::resolve(call.p, &space, &tenant, &execution.input).await {
        execution.input = input;
    }
    let mut body = json!(execution);
    body["step_details"] = json!(steps);
    Ok(json_response(200, &body))
}

pub async fn events(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    require(call, Permission::ExecutionsRead)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let (limit, cursor) = call.page()?;
    let page = call
        .p
        .store
        .query(
            &Query::prefix(keys::tenant_pk(&space, &tenant), keys::RECEIVED_EVENT_PREFIX)
                .descending()
                .limit(limit)
                .after(cursor),
        )
        .await?;
    Ok(page_response(page.items.into_iter().map(|i| i.data).collect::<Vec<Value>>(), page.next))
}
