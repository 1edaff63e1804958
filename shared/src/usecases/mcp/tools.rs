//! The tools one tenant sees, and calling them.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Caller, RpcError};
use crate::domain::access::Permission;
use crate::domain::connector::{ActionSpec, ConnectorSpec};
use crate::domain::execution::{StepError, TriggerInfo, TriggerKind};
use crate::domain::flow::{FlowOwner, FlowStatus};
use crate::domain::ids::{ExecutionId, FlowId};
use crate::domain::quota::Dimension;
use crate::engine::Engine;
use crate::engine::actions::{self, ActionCall, ActionError};
use crate::store::{connections, executions, flows};
use crate::usecases::Error;
use crate::usecases::audit;
use crate::usecases::executions::record_call;

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 50;
/// Attempts of a tool call whose failure is retryable (network, 429, 5xx).
const MAX_ATTEMPTS: u32 = 3;
/// An attempt is not started with less time than this left of the request's budget
/// (`super::REQUEST_BUDGET`, shared by the attempts of a call and the calls of a batch).
const MIN_ATTEMPT: Duration = Duration::from_secs(2);

/// The platform's own tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlatformTool {
    ListConnectors,
    ListFlows,
    RunFlow,
    GetExecution,
    Usage,
}

#[derive(Debug, Clone)]
enum Kind<'c> {
    Action { spec: &'c ConnectorSpec, action: &'c ActionSpec },
    Platform(PlatformTool),
}

#[derive(Debug, Clone)]
struct Tool<'c> {
    name: String,
    title: String,
    description: String,
    input_schema: Value,
    output_schema: Option<Value>,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    kind: Kind<'c>,
}

impl Tool<'_> {
    fn to_json(&self) -> Value {
        let mut tool = json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                "openWorldHint": matches!(self.kind, Kind::Action { .. }),
            },
        });
        if let Some(schema) = &self.output_schema {
            tool["outputSchema"] = schema.clone();
        }
        tool
    }
}

/// Outputs may grow fields over time: their schemas name what is promised, nothing more.
fn output_schema(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

/// Inputs are strict: an unknown argument is a mistake worth reporting.
fn object_schema(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn platform_tools() -> Vec<Tool<'static>> {
    let tool = |name: &str,
                title: &str,
                description: &str,
                input: Value,
                output: Value,
                read_only: bool,
                kind: PlatformTool| Tool {
        name: name.into(),
        title: title.into(),
        description: description.into(),
        input_schema: input,
        output_schema: Some(output),
        read_only,
        destructive: false,
        idempotent: read_only,
        kind: Kind::Platform(kind),
    };
    vec![
        tool(
            "switchyard_list_connectors",
            "List connectors",
            "The apps this tenant has set up, whether each is connected, and whether it needs to be connected again.",
            object_schema(json!({}), &[]),
            output_schema(json!({"connectors": {"type": "array", "items": {"type": "object"}}}), &["connectors"]),
            true,
            PlatformTool::ListConnectors,
        ),
        tool(
            "switchyard_list_flows",
            "List flows",
            "The flows this tenant can run: its own and the space's shared ones.",
            object_schema(json!({}), &[]),
            output_schema(json!({"flows": {"type": "array", "items": {"type": "object"}}}), &["flows"]),
            true,
            PlatformTool::ListFlows,
        ),
        tool(
            "switchyard_run_flow",
            "Run a flow",
            "Start a run of a flow with an input; returns the execution id to follow it with switchyard_get_execution.",
            object_schema(json!({"flow_id": {"type": "string"}, "input": {"type": "object"}}), &["flow_id"]),
            output_schema(
                json!({"execution_id": {"type": "string"}, "flow_id": {"type": "string"}, "flow_version": {"type": "integer"}}),
                &["execution_id", "flow_id", "flow_version"],
            ),
            false,
            PlatformTool::RunFlow,
        ),
        tool(
            "switchyard_get_execution",
            "Get an execution",
            "The status of an execution and of each of its steps.",
            object_schema(json!({"execution_id": {"type": "string"}}), &["execution_id"]),
            output_schema(
                json!({"id": {"type": "string"}, "status": {"type": "string"}, "flow_id": {"type": "string"}, "steps": {"type": "array"}, "error": {}}),
                &["id", "status", "steps"],
            ),
            true,
            PlatformTool::GetExecution,
        ),
        tool(
            "switchyard_usage",
            "Usage summary",
            "The tenant's plan, and for each quota dimension its limit, use, enforcement mode and daily history.",
            object_schema(json!({}), &[]),
            output_schema(
                json!({"tenant": {"type": "string"}, "plan": {"type": "string"}, "dimensions": {"type": "array"},
                       "deferred": {"type": "array"}}),
                &["tenant", "plan", "dimensions", "deferred"],
            ),
            true,
            PlatformTool::Usage,
        ),
    ]
}

fn permission(tool: PlatformTool) -> Permission {
    match tool {
        PlatformTool::ListConnectors => Permission::ConnectorsRead,
        PlatformTool::ListFlows => Permission::WorkflowsRead,
        PlatformTool::RunFlow => Permission::WorkflowsExecute,
        PlatformTool::GetExecution => Permission::ExecutionsRead,
        PlatformTool::Usage => Permission::QuotasRead,
    }
}

fn unavailable(e: impl std::fmt::Debug) -> RpcError {
    // Debug: the display of an unavailable error hides its detail, which the log needs.
    tracing::warn!(error = ?e, "MCP tool lookup failed");
    RpcError { code: super::INTERNAL_ERROR, message: "the service is temporarily unavailable; retry".into() }
}

/// The tools of this caller: platform tools it may use, then every action of each connector
/// the tenant has enabled and connected, narrowed by the key's allow-list. Sorted, so pages
/// are stable.
async fn available<'c>(engine: &'c Engine, caller: &Caller) -> Result<Vec<Tool<'c>>, RpcError> {
    let mut tools: Vec<Tool<'c>> = platform_tools()
        .into_iter()
        .filter(|t| matches!(t.kind, Kind::Platform(k) if caller.who.allows(permission(k))))
        .collect();
    let settings = connections::list_settings(&engine.db, &caller.tenant.space.id, &caller.tenant.tenant.id)
        .await
        .map_err(unavailable)?;
    let mut connectors: Vec<&ConnectorSpec> = settings
        .iter()
        .filter(|s| s.enabled)
        .filter_map(|s| engine.catalog.get(&s.connector).map(|spec| (s, spec)))
        .filter(|(s, spec)| s.has_credentials_for(spec))
        .map(|(_, spec)| spec)
        .collect();
    connectors.sort_by(|a, b| a.id.cmp(&b.id));
    for spec in connectors {
        for action in &spec.actions {
            tools.push(Tool {
                name: format!("{}_{}", spec.id, action.id),
                title: format!("{}: {}", spec.name, action.title),
                description: action.description.clone(),
                input_schema: action.input_schema.clone(),
                output_schema: action
                    .output_schema
                    .clone()
                    .filter(|s| s.get("type").and_then(Value::as_str) == Some("object")),
                read_only: action.hints.read_only,
                destructive: action.hints.destructive,
                idempotent: action.hints.idempotent,
                kind: Kind::Action { spec, action },
            });
        }
    }
    if let Some(allowed) = &caller.who.tools {
        tools.retain(|t| allowed.contains(&t.name));
    }
    Ok(tools)
}

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    text.strip_prefix("o:")?.parse().ok()
}

pub async fn list(engine: &Engine, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
    let offset = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => decode_cursor(c).ok_or_else(|| RpcError::invalid_params("invalid cursor"))?,
        Some(_) => return Err(RpcError::invalid_params("cursor must be a string")),
    };
    let tools = available(engine, caller).await?;
    if offset > tools.len() {
        return Err(RpcError::invalid_params("invalid cursor"));
    }
    let page: Vec<Value> = tools.iter().skip(offset).take(PAGE_SIZE).map(Tool::to_json).collect();
    let mut result = json!({"tools": page});
    if offset + PAGE_SIZE < tools.len() {
        result["nextCursor"] = json!(encode_cursor(offset + PAGE_SIZE));
    }
    Ok(result)
}

/// What is wrong with `value` under `schema` (at most five problems, each with its location).
fn schema_problems(schema: &Value, value: &Value) -> Result<Vec<String>, String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
    Ok(validator
        .iter_errors(value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
        })
        .collect())
}

fn validate(schema: &Value, arguments: &Value) -> Result<(), RpcError> {
    let problems =
        schema_problems(schema, arguments).map_err(|e| RpcError::invalid_params(format!("tool schema: {e}")))?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!("invalid arguments: {}", problems.join("; "))))
    }
}

pub async fn call(engine: &Engine, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
    let name =
        params.get("name").and_then(Value::as_str).ok_or_else(|| RpcError::invalid_params("missing tool name"))?;
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(RpcError::invalid_params("arguments must be an object")),
    };
    if !caller.who.allows(Permission::ToolsExecute) {
        return Err(RpcError {
            code: super::INVALID_REQUEST,
            message: "this role may list tools but not call them".into(),
        });
    }
    let tools = available(engine, caller).await?;
    let tool = tools.iter().find(|t| t.name == name).ok_or_else(|| {
        RpcError::invalid_params(format!("unknown tool: {}", name.chars().take(128).collect::<String>()))
    })?;
    if let Err(e) = validate(&tool.input_schema, &arguments) {
        // SEP-1303 (2025-11-25): argument errors are tool errors the model can act on.
        if caller.version >= "2025-11-25" {
            return Ok(json!({"content": [{"type": "text", "text": e.message}], "isError": true}));
        }
        return Err(e);
    }
    // Every call counts against the plan's API calls per minute; one over it does not run.
    match crate::usecases::quotas::admit(engine, &caller.tenant, Dimension::ApiCallsPerMinute, 1).await {
        Ok(_) => {}
        Err(Error::Limited { message, retry_after_secs }) => {
            let text = format!("{message}; retry in {retry_after_secs} s");
            return Ok(json!({"content": [{"type": "text", "text": text}], "isError": true}));
        }
        Err(e) => return Err(unavailable(e)),
    }
    let started = engine.now_ms();
    let outcome = match &tool.kind {
        Kind::Action { spec, action } => call_action(engine, caller, spec, action, &arguments).await,
        Kind::Platform(which) => call_platform(engine, caller, *which, &arguments).await,
    };
    let finished = engine.now_ms();
    let kind = match tool.kind {
        Kind::Action { .. } => "action",
        Kind::Platform(_) => "platform",
    };
    if let Err(e) = record_call(engine, &caller.tenant, &tool.name, kind, &arguments, &outcome, started, finished).await
    {
        tracing::warn!(tool = %tool.name, error = %e, "tool call not recorded");
    }
    Ok(result(tool, outcome))
}

/// A tool result: the output as text, and as `structuredContent` when the tool declares an
/// output schema (clients of 2025-03-26 ignore the extra field).
///
/// The specification requires structured results to conform to the declared schema, and SDKs
/// reject ones that do not. When a provider answers with something else, the call itself has
/// happened, so the result says so (in text, with the output) and is flagged `isError` rather
/// than presenting a non-conforming `structuredContent`.
fn result(tool: &Tool<'_>, outcome: Result<Value, StepError>) -> Value {
    let text_result =
        |text: String, is_error: bool| json!({"content": [{"type": "text", "text": text}], "isError": is_error});
    let output = match outcome {
        Ok(output) => output,
        Err(e) => return text_result(e.message, true),
    };
    let text = serde_json::to_string_pretty(&output).unwrap_or_default();
    let Some(schema) = &tool.output_schema else {
        return text_result(text, false);
    };
    match schema_problems(schema, &output) {
        Ok(problems) if problems.is_empty() => {
            let mut result = text_result(text, false);
            result["structuredContent"] = output;
            result
        }
        Ok(problems) => text_result(
            format!(
                "The call succeeded, but its response does not match the tool's output schema ({}). Response:\n{text}",
                problems.join("; ")
            ),
            true,
        ),
        Err(e) => text_result(
            format!("The call succeeded; the tool's output schema is invalid ({e}). Response:\n{text}"),
            true,
        ),
    }
}

async fn call_action(
    engine: &Engine,
    caller: &Caller,
    spec: &ConnectorSpec,
    action: &ActionSpec,
    input: &Value,
) -> Result<Value, StepError> {
    let idempotency_key = format!("mcp-{}", crate::domain::ids::ulid_at(engine.now_ms()));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let left = caller.deadline.saturating_duration_since(tokio::time::Instant::now());
        if left < MIN_ATTEMPT {
            return Err(fail("no time left in this request for the call; send it again on its own"));
        }
        let call = ActionCall {
            space: &caller.tenant.space.id,
            tenant: &caller.tenant.tenant.id,
            spec,
            action,
            input,
            // One key for every attempt of this call: a retried write is applied once.
            idempotency_key: Some(idempotency_key.clone()),
            timeout: left,
            page: None,
        };
        match actions::call(engine, call).await {
            Ok(result) => return Ok(result.output),
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                let wait = e.retry_after().unwrap_or(Duration::from_millis(200 << attempt)).min(Duration::from_secs(3));
                if caller.deadline.saturating_duration_since(tokio::time::Instant::now()) < wait + MIN_ATTEMPT {
                    return Err(step_error(&e));
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(step_error(&e)),
        }
    }
}

fn step_error(e: &ActionError) -> StepError {
    StepError { message: e.to_string(), retryable: e.is_retryable(), status: e.status() }
}

fn fail(message: impl Into<String>) -> StepError {
    StepError { message: message.into(), retryable: false, status: None }
}

async fn call_platform(
    engine: &Engine,
    caller: &Caller,
    tool: PlatformTool,
    arguments: &Value,
) -> Result<Value, StepError> {
    let (t, db) = (&caller.tenant, &engine.db);
    let unavailable = |e: crate::store::Error| StepError { message: e.to_string(), retryable: true, status: None };
    let failed = |e: Error| StepError { message: e.to_string(), retryable: true, status: None };
    match tool {
        PlatformTool::ListConnectors => {
            let settings = connections::list_settings(db, &t.space.id, &t.tenant.id).await.map_err(unavailable)?;
            let connectors: Vec<Value> = settings
                .iter()
                .map(|s| {
                    let spec = engine.catalog.get(&s.connector);
                    json!({
                        "id": s.connector, "name": spec.map(|c| c.name.clone()), "enabled": s.enabled,
                        "connected": spec.map_or(s.credentials.connected, |c| s.has_credentials_for(c)),
                        "needs_reauthorization": s.credentials.needs_reauthorization,
                        "actions": spec.map(|c| c.actions.len()).unwrap_or(0),
                    })
                })
                .collect();
            Ok(json!({"connectors": connectors}))
        }
        PlatformTool::ListFlows => {
            let mut all = Vec::new();
            for owner in [flows::tenant_owner(t), FlowOwner::Space { space: t.space.id.clone() }] {
                let (page, _) = flows::list_flows(db, &owner, 200, None).await.map_err(unavailable)?;
                all.extend(page.into_iter().map(|f| {
                    json!({"id": f.id, "name": f.name, "version": f.version, "status": f.status, "trigger": f.trigger,
                           "scope": if matches!(f.owner, FlowOwner::Space { .. }) { "space" } else { "tenant" }})
                }));
            }
            Ok(json!({"flows": all}))
        }
        PlatformTool::RunFlow => {
            let id = arguments.get("flow_id").and_then(Value::as_str).unwrap_or_default();
            let id = FlowId::parse(id).map_err(|e| fail(e.to_string()))?;
            let flow = flows::find_flow_for_tenant(db, t, &id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| fail(format!("flow {id} not found")))?;
            if flow.status != FlowStatus::Active {
                return Err(fail(format!("flow {id} is paused")));
            }
            let input = json!({"input": arguments.get("input").cloned().unwrap_or_else(|| json!({}))});
            let trigger = TriggerInfo::of(TriggerKind::Mcp);
            let id = crate::domain::ids::ExecutionId::generate(engine.now_ms());
            let started = match crate::usecases::quotas::start_counted(
                engine,
                t,
                flow.pinned(),
                trigger,
                input,
                None,
                id,
            )
            .await
            {
                Ok(started) => started,
                Err(Error::Limited { message, .. } | Error::QuotaExceeded(message)) => return Err(fail(message)),
                Err(e) => return Err(failed(e)),
            };
            let execution = started.execution_id;
            let resource = format!("tenants/{}/workflows/{}", t.tenant.id, flow.id);
            let request_id = crate::domain::ids::ulid_at(engine.now_ms()).to_string();
            let entry = audit::Entry { action: "flow.run", resource: &resource, status: 200, request_id: &request_id };
            audit::note(db, &caller.who, entry, caller.audit_retention_secs).await;
            Ok(json!({"execution_id": execution, "flow_id": flow.id, "flow_version": flow.version}))
        }
        PlatformTool::GetExecution => {
            let id = arguments.get("execution_id").and_then(Value::as_str).unwrap_or_default();
            let id = ExecutionId::parse(id).map_err(|_| fail(format!("execution {id} not found")))?;
            let stored = executions::get_execution(db, &t.space.id, &t.tenant.id, &id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| fail(format!("execution {id} not found")))?;
            let e = stored.execution;
            Ok(json!({
                "id": e.id, "status": e.status, "flow_id": e.flow.id, "created_at": e.created_at, "finished_at": e.finished_at,
                "error": e.error, "steps": e.steps,
            }))
        }
        PlatformTool::Usage => crate::usecases::quotas::tenant_usage(engine, t).await.map_err(failed),
    }
}
