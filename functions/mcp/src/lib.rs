//! The MCP gateway: `POST /mcp`, Streamable HTTP, stateless (no session id), JSON responses.
//! The HTTP rules are here; the protocol, the tenant's tools and their calls are
//! `usecases::mcp`'s (whose module doc states its rules).
//!
//! - GET and DELETE are 405: no server-initiated stream, no sessions.
//! - A present `Origin` not in the allow-list is 403 (DNS-rebinding protection).
//! - A present but unsupported `MCP-Protocol-Version` header is 400; absent means 2025-03-26.
//! - A body over `MAX_BODY` is 413; one that is not JSON is -32700, one nested too deeply
//!   -32600 (both 400).
//! - Ids are echoed exactly as sent, even numbers a double cannot hold (`ids`).

mod ids;

use http::Method;
use serde_json::{Value, json};
use switchyard::domain::json::{self, JsonError};
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, empty, error_allowing, header, header_text, json as json_response};
use switchyard::usecases::mcp::{self, Answer, rpc_error};
pub use switchyard::usecases::mcp::{
    DEFAULT_VERSION, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, MAX_BATCH, METHOD_NOT_FOUND, PAGE_SIZE,
    PARSE_ERROR, PROTOCOL_VERSIONS, REQUEST_BUDGET,
};

/// Largest request accepted.
const MAX_BODY: usize = 1024 * 1024;

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
    let mut message: Value = match json::parse(req.body()) {
        Ok(v) => v,
        Err(JsonError::TooDeep) => {
            let message = format!("the request nests deeper than {} levels", json::MAX_DEPTH);
            return Ok(json_response(400, &rpc_error(Value::Null, INVALID_REQUEST, message)));
        }
        Err(_) => {
            return Ok(json_response(400, &rpc_error(Value::Null, PARSE_ERROR, "parse error: the body is not JSON")));
        }
    };
    let exact = ids::ExactIds::protect(&mut message, req.body());
    let caller = mcp::authenticate(&p.engine, p.auth(), req.headers(), version).await?;
    let response = match mcp::answer(&p.engine, &caller, message).await? {
        Answer::Json(status, body) => json_response(status, &body),
        Answer::Accepted => empty(202),
    };
    Ok(exact.restore(response))
}
