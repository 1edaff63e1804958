//! MCP for one tenant (the gateway function `functions/mcp` decodes HTTP and calls `answer`).
//!
//! Each request is authenticated like the API and scoped to exactly one tenant
//! (`authenticate`): the tools are that tenant's enabled, connected connector actions
//! (`{connector}_{action}`) plus the platform tools, narrowed by the key's tool allow-list.
//! Every tool call is recorded as an execution, like any other run.
//!
//! Protocol rules (MCP 2025-03-26, 2025-06-18, 2025-11-25); the HTTP ones (methods, `Origin`,
//! the version header, body size, parse errors) are the gateway's:
//! - `initialize` echoes a supported requested version, else offers the latest.
//! - Notifications and client responses get 202 with no body.
//! - JSON-RPC batches only under 2025-03-26, at most `MAX_BATCH`, without `initialize`.
//! - A suspended tenant is refused (403).
//! - Unknown methods -32601, invalid requests -32600, unknown tools -32602; arguments that do
//!   not match the tool's schema -32602 before 2025-11-25, and from 2025-11-25 an
//!   `isError: true` result (so the model can correct them); failures of the called API are
//!   `isError: true` results.
//! - A successful `initialize` is one of the plan's agent sessions of the day (429 past them).

mod tools;

use http::HeaderMap;
use serde_json::{Value, json};

use super::auth::{self, Principal};
use super::{Error, Result};
use crate::domain::access::Permission;
use crate::domain::quota::Dimension;
use crate::domain::tenancy::TenantStatus;
use crate::engine::Engine;
use crate::store::tenants::{self, ResolvedTenant};
use crate::usecases::quotas;

pub use tools::PAGE_SIZE;

/// Protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// The version assumed when a request carries no `MCP-Protocol-Version` header.
pub const DEFAULT_VERSION: &str = "2025-03-26";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// Most messages in one batch (2025-03-26): each may be a tool call.
pub const MAX_BATCH: usize = 20;
/// Time for all the work of one request (the function and API Gateway stop at 30 s).
pub const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);

/// A JSON-RPC error response.
pub fn rpc_error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

fn rpc_result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error a method handler returns.
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError { code: INVALID_PARAMS, message: message.into() }
    }
}

/// The caller of one request: who, for which tenant.
pub struct Caller {
    pub who: Principal,
    pub tenant: ResolvedTenant,
    /// The protocol version of this request (its header, or the default).
    pub version: &'static str,
    /// When the answer to this request must be on its way: calls of a batch share it.
    pub deadline: tokio::time::Instant,
    /// How long audit records of state-changing tool calls are kept.
    pub audit_retention_secs: i64,
}

/// What to send back: a status and a JSON body, or 202 with none (notifications, responses).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Json(u16, Value),
    Accepted,
}

/// The caller of a request: authenticated before any method, `initialize` included (every
/// session is one tenant's), with the MCP permission, for one active tenant.
pub async fn authenticate(
    engine: &Engine,
    access: auth::AuthContext<'_>,
    headers: &HeaderMap,
    version: &'static str,
) -> Result<Caller> {
    let who = auth::authenticate(access, headers).await?;
    who.require(Permission::ToolsRead)?;
    let tenant_id = who.tenant_from(None).map_err(|_| {
        Error::bad_request(format!("MCP sessions act for one tenant: send {} or use a tenant key", auth::TENANT_HEADER))
    })?;
    let space = who.space()?.clone();
    let tenant = tenants::resolve_tenant(&engine.db, &tenant_id)
        .await?
        .filter(|t| t.space.id == space)
        .ok_or_else(|| Error::not_found(format!("tenant {tenant_id} not found")))?;
    // As for its webhooks and polls: a suspended tenant's credentials are not used.
    if tenant.tenant.status != TenantStatus::Active {
        return Err(Error::Forbidden(format!("tenant {tenant_id} is suspended")));
    }
    Ok(Caller {
        who,
        tenant,
        version,
        deadline: tokio::time::Instant::now() + REQUEST_BUDGET,
        audit_retention_secs: access.audit_retention_secs,
    })
}

/// Answer one request's message (or batch).
pub async fn answer(engine: &Engine, caller: &Caller, message: Value) -> Result<Answer> {
    let version = caller.version;
    match message {
        // Batches exist in 2025-03-26 only (later versions removed them), and not for
        // `initialize`; answer every request in one array.
        Value::Array(_) if version != "2025-03-26" => Ok(Answer::Json(
            400,
            rpc_error(Value::Null, INVALID_REQUEST, format!("MCP {version} has no JSON-RPC batches")),
        )),
        Value::Array(batch) if batch.len() > MAX_BATCH => Ok(Answer::Json(
            400,
            rpc_error(Value::Null, INVALID_REQUEST, format!("a batch holds at most {MAX_BATCH} messages")),
        )),
        Value::Array(batch) if !batch.is_empty() => {
            let mut answers = Vec::new();
            for m in batch {
                if m.get("method").and_then(Value::as_str) == Some("initialize") {
                    let id = m.get("id").cloned().unwrap_or(Value::Null);
                    answers.push(rpc_error(id, INVALID_REQUEST, "initialize cannot be part of a batch"));
                } else if let Some(answer) = dispatch(engine, caller, m).await {
                    answers.push(answer);
                }
            }
            Ok(if answers.is_empty() { Answer::Accepted } else { Answer::Json(200, Value::Array(answers)) })
        }
        Value::Array(_) => Ok(Answer::Json(400, rpc_error(Value::Null, INVALID_REQUEST, "empty batch"))),
        single => {
            // A successful `initialize` is one of the plan's agent sessions of the day (429 with
            // `Retry-After` past them). Stateless, the server counts handshakes: it cannot tell
            // which later requests belong to a session.
            let handshake =
                single.get("method").and_then(Value::as_str) == Some("initialize") && single.get("id").is_some();
            let session = match handshake {
                true => Some(quotas::admit(engine, &caller.tenant, Dimension::AgentSessionsPerDay, 1).await?),
                false => None,
            };
            let answer = answer_single(engine, caller, single).await;
            if let Some(session) = session.filter(|_| !matches!(answer, Answer::Json(200, _))) {
                session.refund(&engine.db).await;
            }
            Ok(answer)
        }
    }
}

/// One message's answer: 200 with the response, 400 for an invalid request, 202 for a
/// notification.
async fn answer_single(engine: &Engine, caller: &Caller, message: Value) -> Answer {
    match dispatch(engine, caller, message).await {
        Some(answer) => {
            let invalid = answer.pointer("/error/code").and_then(Value::as_i64) == Some(INVALID_REQUEST);
            Answer::Json(if invalid { 400 } else { 200 }, answer)
        }
        None => Answer::Accepted,
    }
}

/// One JSON-RPC message; `None` for notifications and responses (nothing to answer).
async fn dispatch(engine: &Engine, caller: &Caller, message: Value) -> Option<Value> {
    let Value::Object(fields) = &message else {
        return Some(rpc_error(Value::Null, INVALID_REQUEST, "a JSON-RPC message is an object"));
    };
    let id = fields.get("id").cloned();
    if fields.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(rpc_error(id.unwrap_or(Value::Null), INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = fields.get("method").and_then(Value::as_str) else {
        // A response from the client (we never send requests): nothing to do.
        if id.is_some() && (fields.contains_key("result") || fields.contains_key("error")) {
            return None;
        }
        return Some(rpc_error(id.unwrap_or(Value::Null), INVALID_REQUEST, "missing method"));
    };
    let Some(id) = id else {
        // Notifications (`notifications/initialized`, `notifications/cancelled`...) are accepted.
        return None;
    };
    if !matches!(id, Value::String(_) | Value::Number(_)) {
        return Some(rpc_error(Value::Null, INVALID_REQUEST, "id must be a string or a number"));
    }
    let params = fields.get("params").cloned().unwrap_or(Value::Null);
    if !matches!(params, Value::Object(_) | Value::Null) {
        return Some(rpc_error(id, INVALID_PARAMS, "params must be an object"));
    }
    let outcome = match method {
        "initialize" => Ok(initialize(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => tools::list(engine, caller, &params).await,
        "tools/call" => tools::call(engine, caller, &params).await,
        _ => Err(RpcError {
            code: METHOD_NOT_FOUND,
            message: format!("method not found: {}", method.chars().take(80).collect::<String>()),
        }),
    };
    Some(match outcome {
        Ok(result) => rpc_result(id, result),
        Err(e) => rpc_error(id, e.code, e.message),
    })
}

fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked.filter(|v| PROTOCOL_VERSIONS.contains(v)).unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "switchyard", "title": "Switchyard", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Tools act for one tenant: its connected apps' actions ({connector}_{action}) and the switchyard_* platform tools."
    })
}
