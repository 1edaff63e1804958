//! The MCP endpoint: Streamable HTTP, stateless, JSON responses.

use http::Method;
use serde_json::{Value, json};
use switchyard::platform::Platform;
use switchyard::platform::error::AppError;
use switchyard::platform::http::{Request, Response, empty, error, json as json_response};

/// Protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Handle one HTTP request to `/mcp`.
pub async fn handle(p: &Platform, req: Request) -> Response {
    if req.method() != Method::POST {
        return error(&AppError::MethodNotAllowed("the MCP endpoint accepts POST only".into()));
    }
    let _ = p;
    let message: Value = match serde_json::from_slice(req.body()) {
        Ok(v) => v,
        Err(_) => return json_response(400, &rpc_error(Value::Null, -32700, "parse error")),
    };
    let id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str);
    match (id, method) {
        (None, Some(_)) => empty(202),
        (Some(id), Some("initialize")) => {
            let asked = message.pointer("/params/protocolVersion").and_then(Value::as_str);
            let version = asked.filter(|v| PROTOCOL_VERSIONS.contains(v)).unwrap_or(PROTOCOL_VERSIONS[0]);
            json_response(
                200,
                &json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": version,
                    "capabilities": {"tools": {"listChanged": false}},
                    "serverInfo": {"name": "switchyard", "version": env!("CARGO_PKG_VERSION")},
                }}),
            )
        }
        (Some(id), Some("ping")) => json_response(200, &json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        (Some(id), Some("tools/list")) => {
            json_response(200, &json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}}))
        }
        (Some(id), Some(_)) => json_response(200, &rpc_error(id, -32601, "method not found")),
        (id, None) => json_response(400, &rpc_error(id.unwrap_or(Value::Null), -32600, "invalid request")),
    }
}
