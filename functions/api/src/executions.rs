//! Executions (with their step checkpoints) and the log of received events.

use serde_json::{Value, json};
use switchyard::domain::execution::ExecutionStatus;
use switchyard::domain::ids::{ExecutionId, FlowId};
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, json as json_response, with_quota_warnings};
use switchyard::store::events;
use switchyard::store::executions::{self as repo, ExecutionFilter};
use switchyard::usecases::{dead_letters, executions as operations};

use crate::{Call, page_response};

/// A query parameter that is an instant: epoch milliseconds or RFC 3339.
pub(crate) fn time(q: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<i64>, AppError> {
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
    let (executions, next) = repo::list_executions(call.db(), &space, &tenant, &filter, limit, cursor).await?;
    Ok(page_response(executions.iter().map(repo::summary_json).collect(), next))
}

pub async fn get(call: &Call<'_>, tenant: &str, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let not_found = || AppError::not_found(format!("execution {id} not found"));
    let id = ExecutionId::parse(id).map_err(|_| not_found())?;
    let Some(stored) = repo::get_execution(call.db(), &space, &tenant, &id).await? else {
        // A run a `queue_for_later` quota deferred shows as queued until it starts.
        let deferred = switchyard::store::schedules::get_deferred(call.db(), &space, &tenant, &id).await?;
        let deferred = deferred.ok_or_else(not_found)?;
        let mut body = json!(deferred.execution);
        body["queued_until"] = json!(deferred.runs_at);
        body["step_details"] = json!([]);
        return Ok(json_response(200, &body));
    };
    let mut steps = repo::load_records(call.db(), &stored.execution).await?;
    // In the order the flow lists them.
    let flow = &stored.execution.flow.clone();
    let definition =
        match switchyard::store::flows::get_flow_version(call.db(), &flow.owner, &flow.id, flow.version).await? {
            Some(version) => Some(switchyard::store::flows::definition_of(&version)?),
            None => None,
        };
    let order = definition.as_ref().map(|d| switchyard::engine::plan::definition_order(&d.steps)).unwrap_or_default();
    steps.sort_by_key(|s| (order.get(&s.id).copied().unwrap_or(usize::MAX), s.started_at));
    let mut execution = stored.execution;
    if let Ok(input) = switchyard::store::blobs::resolve(call.db(), &space, &tenant, &execution.input).await {
        execution.input = input;
    }
    let mut body = json!(execution);
    body["step_details"] = json!(steps);
    // The executed version's top-level steps and what each waits for: enough to draw the DAG.
    body["graph"] = json!(definition.map(|d| {
        d.steps
            .iter()
            .map(|step| json!({"id": step.id, "kind": step.kind.name(), "depends_on": step.depends_on}))
            .collect::<Vec<_>>()
    }));
    Ok(json_response(200, &body))
}

pub async fn events(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let (limit, cursor) = call.page()?;
    let (page, next) = events::list(call.db(), &space, &tenant, limit, cursor).await?;
    Ok(page_response(page.iter().map(|e| json!(e)).collect(), next))
}

pub async fn cancel(call: &Call<'_>, tenant: &str, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let id = ExecutionId::parse(id).map_err(|_| AppError::not_found(format!("execution {id} not found")))?;
    let execution = operations::cancel(call.engine(), &space, &tenant, &id).await?;
    Ok(json_response(202, &repo::summary_json(&execution)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RerunPost {
    from: operations::RerunFrom,
}

pub async fn rerun(call: &Call<'_>, tenant: &str, id: &str) -> Result<Response, AppError> {
    let resolved = call.active_tenant(tenant).await?;
    let id = ExecutionId::parse(id).map_err(|_| AppError::not_found(format!("execution {id} not found")))?;
    let body: RerunPost = call.body()?;
    let started = operations::rerun(call.engine(), &resolved, &id, body.from).await?;
    let mut out = json!({"execution_id": started.execution_id, "rerun_of": id});
    if let Some(at) = started.queued_until {
        out["status"] = json!("queued");
        out["queued_until"] = json!(at);
    }
    Ok(with_quota_warnings(json_response(202, &out), &started.notices))
}

fn dlq_of(q: &std::collections::HashMap<String, String>) -> Result<switchyard::ports::QueueId, AppError> {
    match q.get("queue").map(String::as_str).unwrap_or("runs") {
        "runs" => Ok(switchyard::ports::QueueId::RunsDlq),
        "polls" => Ok(switchyard::ports::QueueId::PollsDlq),
        other => Err(AppError::bad_request(format!("unknown queue {other:?}: runs or polls"))),
    }
}

/// The caller's space filter: the admin key sees every space's messages.
fn dlq_scope(call: &Call<'_>) -> Result<Option<switchyard::domain::ids::SpaceId>, AppError> {
    if call.who.is_platform_admin() && call.who.space.is_none() { Ok(None) } else { Ok(Some(call.space()?)) }
}

pub async fn dlq_list(call: &Call<'_>) -> Result<Response, AppError> {
    let q = call.query();
    let (limit, _) = call.page()?;
    let letters =
        dead_letters::list(call.engine().queue.as_ref(), dlq_of(&q)?, dlq_scope(call)?.as_ref(), limit as usize)
            .await?;
    Ok(page_response(letters.iter().map(|l| json!(l)).collect(), None))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayPost {
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    until: Option<Value>,
    #[serde(default)]
    max: Option<usize>,
    /// Only this message (as `GET /dlq` names it).
    #[serde(default)]
    message_id: Option<String>,
}

fn instant(v: &Option<Value>, name: &str) -> Result<Option<i64>, AppError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| AppError::bad_request(format!("{name}: epoch milliseconds")))
        }
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| AppError::bad_request(format!("{name}: RFC 3339 or epoch milliseconds"))),
        Some(_) => Err(AppError::bad_request(format!("{name}: RFC 3339 or epoch milliseconds"))),
    }
}

pub async fn dlq_replay(call: &Call<'_>) -> Result<Response, AppError> {
    let body: ReplayPost = call.body()?;
    let mut q = std::collections::HashMap::new();
    if let Some(queue) = body.queue.clone() {
        q.insert("queue".to_string(), queue);
    }
    let max = body.max.unwrap_or(1000).clamp(1, 10_000);
    let result = dead_letters::replay(
        call.engine().queue.as_ref(),
        dlq_of(&q)?,
        dlq_scope(call)?.as_ref(),
        instant(&body.since, "since")?,
        instant(&body.until, "until")?,
        body.message_id.as_deref(),
        max,
    )
    .await?;
    Ok(json_response(200, &json!(result)))
}
