//! The MCP gateway: `POST /mcp`, Streamable HTTP, stateless (no session id), JSON responses.
//!
//! Each request is authenticated like the API (`x-fastn-api-key` + `x-fastn-space-id` +
//! `x-fastn-space-tenantid`, or a bearer API key) and scoped to exactly one tenant: the tools
//! are that tenant's enabled, connected connector actions (`{connector}_{action}`) plus the
//! platform tools, narrowed by the key's tool allow-list. Every tool call is recorded as an
//! execution, like any other run.
//!
//! Protocol rules (MCP 2025-03-26, 2025-06-18, 2025-11-25):
//! - `initialize` echoes a supported requested version, else offers the latest.
//! - Notifications and client responses get 202 with no body.
//! - A present but unsupported `MCP-Protocol-Version` header is 400; absent means 2025-03-26.
//! - JSON-RPC batches only under 2025-03-26, at most `MAX_BATCH`, without `initialize`.
//! - A suspended tenant is refused (403).
//! - A present `Origin` not in the allow-list is 403 (DNS-rebinding protection).
//! - GET and DELETE are 405: no server-initiated stream, no sessions.
//! - Unknown methods -32601, malformed JSON -32700, invalid requests -32600, unknown tools
//!   -32602; arguments that do not match the tool's schema -32602 before 2025-11-25, and from
//!   2025-11-25 an `isError: true` result (so the model can correct them); failures of the
//!   called API are `isError: true` results.

mod tools;

use http::Method;
use serde_json::{Value, json};
use switchyard::domain::access::Permission;
use switchyard::domain::tenancy::TenantStatus;
use switchyard::platform::auth::{self, Principal};
use switchyard::platform::error::AppError;
use switchyard::platform::http::{
    Request, Response, empty, error_allowing, header, header_text, json as json_response,
};
use switchyard::platform::tenancy::{self, ResolvedTenant};
use switchyard::platform::{Platform, quotas};

/// Protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// The version assumed when a request carries no `MCP-Protocol-Version` header.
pub const DEFAULT_VERSION: &str = "2025-03-26";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// Largest request accepted.
const MAX_BODY: usize = 1024 * 1024;
/// Most messages in one batch (2025-03-26): each may be a tool call.
pub const MAX_BATCH: usize = 20;
/// Time for all the work of one request (the function and API Gateway stop at 30 s).
pub const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);

fn rpc_error(id: Value, code: i64, message: impl Into<String>) -> Value {
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
}

/// Handle one HTTP request to `/mcp`.
pub async fn handle(p: &Platform, req: Request) -> Response {
    match serve(p, req).await {
        Ok(response) => response,
        Err(e) => error_allowing(&e, "POST"),
    }
}

async fn serve(p: &Platform, req: Request) -> Result<Response, AppError> {
    if req.method() == Method::GET || req.method() == Method::DELETE {
        return Err(AppError::MethodNotAllowed(
            "this MCP server offers no stream and keeps no sessions: POST only".into(),
        ));
    }
    if req.method() != Method::POST {
        return Err(AppError::MethodNotAllowed("the MCP endpoint accepts POST".into()));
    }
    if let Some(origin) = header(&req, "origin") {
        let origin = origin.trim_end_matches('/');
        if !p.settings.mcp_allowed_origins.iter().any(|o| o == origin) {
            return Err(AppError::Forbidden("origin not allowed".into()));
        }
    }
    // A header that is present but not text is an unsupported version too, not an absent one.
    let asked = header_text(&req, "mcp-protocol-version").map_err(|_| "(not text)");
    let version: &'static str = match asked {
        Ok(None) => DEFAULT_VERSION,
        Ok(Some(v)) if let Some(known) = PROTOCOL_VERSIONS.iter().find(|known| **known == v) => known,
        Ok(Some(v)) | Err(v) => {
            let shown: String = v.chars().take(40).collect();
            let mut answer = rpc_error(
                Value::Null,
                INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version {shown:?}; supported: {}", PROTOCOL_VERSIONS.join(", ")),
            );
            // Newer clients read the supported list and fall back to `initialize` with one of them.
            answer["error"]["data"] = json!({"supported": PROTOCOL_VERSIONS, "requested": shown});
            return Ok(json_response(400, &answer));
        }
    };
    if req.body().len() > MAX_BODY {
        return Err(AppError::PayloadTooLarge(format!("request larger than {MAX_BODY} bytes")));
    }
    let mut message: Value = match switchyard::domain::json::parse(req.body()) {
        Ok(v) => v,
        Err(switchyard::domain::json::JsonError::TooDeep) => {
            let message = format!("the request nests deeper than {} levels", switchyard::domain::json::MAX_DEPTH);
            return Ok(json_response(400, &rpc_error(Value::Null, INVALID_REQUEST, message)));
        }
        Err(_) => {
            return Ok(json_response(400, &rpc_error(Value::Null, PARSE_ERROR, "parse error: the body is not JSON")));
        }
    };
    // Ids are echoed exactly as sent, even numbers a double cannot hold.
    let exact = ExactIds::protect(&mut message, req.body());
    // Authenticate before any method, `initialize` included: every session is one tenant's.
    let caller = authenticate(p, &req, version).await?;
    let response = answer(p, &caller, version, message).await?;
    Ok(exact.restore(response))
}

async fn answer(p: &Platform, caller: &Caller, version: &'static str, message: Value) -> Result<Response, AppError> {
    match message {
        // Batches exist in 2025-03-26 only (later versions removed them), and not for
        // `initialize`; answer every request in one array.
        Value::Array(_) if version != "2025-03-26" => Ok(json_response(
            400,
            &rpc_error(Value::Null, INVALID_REQUEST, format!("MCP {version} has no JSON-RPC batches")),
        )),
        Value::Array(batch) if batch.len() > MAX_BATCH => Ok(json_response(
            400,
            &rpc_error(Value::Null, INVALID_REQUEST, format!("a batch holds at most {MAX_BATCH} messages")),
        )),
        Value::Array(batch) if !batch.is_empty() => {
            let mut answers = Vec::new();
            for m in batch {
                if m.get("method").and_then(Value::as_str) == Some("initialize") {
                    let id = m.get("id").cloned().unwrap_or(Value::Null);
                    answers.push(rpc_error(id, INVALID_REQUEST, "initialize cannot be part of a batch"));
                } else if let Some(answer) = dispatch(p, caller, m).await {
                    answers.push(answer);
                }
            }
            Ok(if answers.is_empty() { empty(202) } else { json_response(200, &Value::Array(answers)) })
        }
        Value::Array(_) => Ok(json_response(400, &rpc_error(Value::Null, INVALID_REQUEST, "empty batch"))),
        single => {
            // A successful `initialize` is one of the plan's agent sessions of the day (429 with
            // `Retry-After` past them). Stateless, the server counts handshakes: it cannot tell
            // which later requests belong to a session.
            let handshake =
                single.get("method").and_then(Value::as_str) == Some("initialize") && single.get("id").is_some();
            let session = if handshake { quotas::reserve_agent_session(p, &caller.tenant).await? } else { None };
            let response = answer_single(p, caller, single).await?;
            if let Some(session) = session.filter(|_| response.status() != 200) {
                session.refund(p).await;
            }
            Ok(response)
        }
    }
}

/// JSON-RPC ids that would not come back as sent once parsed (numbers beyond what a double
/// holds exactly, `1e2`…): each is swapped for a unique string while the request is handled,
/// and the id's own text put back in the answer.
struct ExactIds {
    swapped: Vec<(String, String)>,
}

impl ExactIds {
    fn protect(message: &mut Value, body: &[u8]) -> ExactIds {
        use serde_json::value::RawValue;
        #[derive(serde::Deserialize)]
        struct IdOf<'a> {
            #[serde(borrow, default)]
            id: Option<&'a RawValue>,
        }
        let raw: Vec<Option<&RawValue>> = match message {
            Value::Array(_) => serde_json::from_slice::<Vec<IdOf<'_>>>(body)
                .map(|ids| ids.into_iter().map(|i| i.id).collect())
                .unwrap_or_default(),
            _ => serde_json::from_slice::<IdOf<'_>>(body).map(|i| vec![i.id]).unwrap_or_default(),
        };
        let mut swapped = Vec::new();
        let nonce: u64 = rand::random();
        let messages: Vec<&mut Value> = match message {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for (i, (m, raw)) in messages.into_iter().zip(raw).enumerate() {
            let (Some(id @ Value::Number(_)), Some(raw)) = (m.get_mut("id"), raw) else { continue };
            if serde_json::to_string(id).is_ok_and(|shown| shown != raw.get()) {
                let placeholder = format!("\u{1}swy-id-{nonce:016x}-{i}");
                *id = Value::String(placeholder.clone());
                swapped.push((serde_json::to_string(&placeholder).unwrap_or_default(), raw.get().to_string()));
            }
        }
        ExactIds { swapped }
    }

    fn restore(self, response: Response) -> Response {
        if self.swapped.is_empty() {
            return response;
        }
        let (parts, body) = response.into_parts();
        let mut text = String::from_utf8_lossy(&body).into_owned();
        for (placeholder, raw) in &self.swapped {
            text = text.replace(placeholder.as_str(), raw);
        }
        http::Response::from_parts(parts, bytes::Bytes::from(text))
    }
}

/// One message's answer: 200 with the response, 400 for an invalid request, 202 for a
/// notification.
async fn answer_single(p: &Platform, caller: &Caller, message: Value) -> Result<Response, AppError> {
    Ok(match dispatch(p, caller, message).await {
        Some(answer) => {
            let invalid = answer.pointer("/error/code").and_then(Value::as_i64) == Some(INVALID_REQUEST);
            json_response(if invalid { 400 } else { 200 }, &answer)
        }
        None => empty(202),
    })
}

async fn authenticate(p: &Platform, req: &Request, version: &'static str) -> Result<Caller, AppError> {
    let who = auth::authenticate(p, req).await?;
    who.require(Permission::McpUse)?;
    let tenant_id = who.tenant_from(None).map_err(|_| {
        AppError::bad_request(format!(
            "MCP sessions act for one tenant: send {} or use a tenant key",
            auth::TENANT_HEADER
        ))
    })?;
    let space = who.space()?.clone();
    let tenant = tenancy::resolve_tenant(p, &tenant_id)
        .await?
        .filter(|t| t.space.id == space)
        .ok_or_else(|| AppError::not_found(format!("tenant {tenant_id} not found")))?;
    // As for its webhooks and polls: a suspended tenant's credentials are not used.
    if tenant.tenant.status != TenantStatus::Active {
        return Err(AppError::Forbidden(format!("tenant {tenant_id} is suspended")));
    }
    Ok(Caller { who, tenant, version, deadline: tokio::time::Instant::now() + REQUEST_BUDGET })
}

/// One JSON-RPC message; `None` for notifications and responses (nothing to answer).
async fn dispatch(p: &Platform, caller: &Caller, message: Value) -> Option<Value> {
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
        "tools/list" => tools::list(p, caller, &params).await,
        "tools/call" => tools::call(p, caller, &params).await,
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
