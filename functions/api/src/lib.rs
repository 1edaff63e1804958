//! The control plane: `/api/v1/...` — spaces, API keys, tenants, connectors, flows,
//! executions, received events. Described by `openapi.yaml` (served at
//! `/api/v1/openapi.json`).
//!
//! Every request is authenticated (`x-fastn-api-key` or a bearer API key, scoped by
//! `x-fastn-space-id` / `x-fastn-space-tenantid`) except health and the OpenAPI document.

mod connectors;
mod executions;
mod flows;
mod oauth;
mod openapi;
mod schemas;
mod tenancy;

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard::domain::access::Permission;
use switchyard::domain::ids::{SpaceId, TenantId};
use switchyard::platform::Platform;
use switchyard::platform::auth::{self, Principal};
use switchyard::platform::error::AppError;
use switchyard::platform::http::{Request, Response, error_allowing, json as json_response, query, segments};

pub use openapi::document as openapi_document;

/// One authenticated request on its way through the router.
pub(crate) struct Call<'a> {
    pub p: &'a Platform,
    pub who: Principal,
    pub req: Request,
}

impl Call<'_> {
    pub fn space(&self) -> Result<SpaceId, AppError> {
        self.who.space().cloned()
    }

    /// A tenant named in the path, checked against the key, and known to exist in the space.
    pub async fn tenant(&self, id: &str) -> Result<(SpaceId, TenantId), AppError> {
        let space = self.space()?;
        let tenant = self.who.tenant_from(Some(id))?;
        switchyard::platform::tenancy::require_tenant(self.p, &space, &tenant).await?;
        Ok((space, tenant))
    }

    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, AppError> {
        switchyard::platform::http::json_body(&self.req)
    }

    pub fn query(&self) -> std::collections::HashMap<String, String> {
        query(&self.req)
    }

    /// `limit` (1–200, default 50) and `cursor` query parameters.
    pub fn page(&self) -> Result<(u32, Option<String>), AppError> {
        let q = self.query();
        let limit = match q.get("limit") {
            None => 50,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=200).contains(l))
                .ok_or_else(|| AppError::bad_request("limit must be an integer between 1 and 200"))?,
        };
        Ok((limit, q.get("cursor").cloned()))
    }
}

/// A list response with its next-page cursor.
pub(crate) fn page_response(items: Vec<Value>, next: Option<String>) -> Response {
    json_response(200, &json!({"items": items, "next_cursor": next}))
}

/// Handle one HTTP request to the API function. `HEAD` is answered as `GET` without the body
/// (RFC 9110 §9.3.2): same status and headers, `Content-Length` the body's.
pub async fn handle(p: &Platform, req: Request) -> Response {
    if req.method() != Method::HEAD {
        return answer(p, req).await;
    }
    let (mut parts, body) = req.into_parts();
    parts.method = Method::GET;
    let (mut parts, body) = answer(p, http::Request::from_parts(parts, body)).await.into_parts();
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
    http::Response::from_parts(parts, bytes::Bytes::new())
}

async fn answer(p: &Platform, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Decoded once: routing and the 405's Allow header see the same path.
    let segs = segments(&req);
    match route(p, req, &segs).await {
        Ok(response) => response,
        Err(e) => {
            if e.status() >= 500 {
                tracing::warn!(%method, %path, status = e.status(), code = e.code(), "request failed");
            }
            let allowed = if matches!(e, AppError::MethodNotAllowed(_)) {
                let rest: Vec<&str> = segs.iter().skip(2).map(String::as_str).collect();
                openapi::methods_at(&rest).join(", ")
            } else {
                String::new()
            };
            error_allowing(&e, &allowed)
        }
    }
}

async fn route(p: &Platform, req: Request, segs: &[String]) -> Result<Response, AppError> {
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest.to_vec(),
        _ => return Err(AppError::not_found("no such endpoint")),
    };
    // Public endpoints.
    match (&method, rest.as_slice()) {
        (&Method::GET, ["health"]) => return Ok(json_response(200, &json!({"status": "ok"}))),
        (&Method::GET, ["openapi.json"]) => return Ok(json_response(200, openapi::document())),
        (&Method::GET, ["oauth", "callback"]) => return oauth::callback(p, &req).await,
        (&Method::GET, ["schemas", "flow.json"]) => return Ok(json_response(200, schemas::flow())),
        (&Method::GET, ["schemas", "cdm.json"]) => return Ok(json_response(200, schemas::cdm())),
        _ => {}
    }
    let who = auth::authenticate(p, &req).await?;
    let call = Call { p, who, req };
    let m = &method;
    match rest.as_slice() {
        ["connectors"] if m == Method::GET => connectors::catalog(&call).await,
        ["connectors", id] if m == Method::GET => connectors::catalog_entry(&call, id).await,
        ["connectors", id, "oauth-app"] if m == Method::PUT => connectors::put_oauth_app(&call, id).await,
        ["connectors", id, "oauth-app"] if m == Method::GET => connectors::get_oauth_app(&call, id).await,

        ["spaces"] if m == Method::POST => tenancy::create_space(&call).await,
        ["spaces", id] if m == Method::GET => tenancy::get_space(&call, id).await,
        ["spaces", id] if m == Method::PATCH => tenancy::update_space(&call, id).await,

        ["api-keys"] if m == Method::POST => tenancy::create_key(&call).await,
        ["api-keys"] if m == Method::GET => tenancy::list_keys(&call).await,
        ["api-keys", id] if m == Method::DELETE => tenancy::revoke_key(&call, id).await,

        ["tenants"] if m == Method::POST => tenancy::create_tenant(&call).await,
        ["tenants"] if m == Method::GET => tenancy::list_tenants(&call).await,
        ["tenants", t] if m == Method::GET => tenancy::get_tenant(&call, t).await,
        ["tenants", t] if m == Method::PATCH => tenancy::update_tenant(&call, t).await,
        ["tenants", t, "config"] if m == Method::GET => tenancy::get_tenant_config(&call, t).await,
        ["tenants", t, "config"] if m == Method::PUT => tenancy::put_tenant_config(&call, t).await,
        ["config"] if m == Method::GET => tenancy::get_space_config(&call).await,
        ["config"] if m == Method::PUT => tenancy::put_space_config(&call).await,
        ["dlq"] if m == Method::GET => executions::dlq_list(&call).await,
        ["dlq", "replay"] if m == Method::POST => executions::dlq_replay(&call).await,

        ["tenants", t, "connectors"] if m == Method::GET => connectors::list(&call, t).await,
        ["tenants", t, "connectors", c] if m == Method::GET => connectors::get(&call, t, c).await,
        ["tenants", t, "connectors", c] if m == Method::PUT => connectors::put(&call, t, c).await,
        ["tenants", t, "connectors", c, "webhook-secret"] if m == Method::PUT => {
            connectors::put_webhook_secret(&call, t, c).await
        }
        ["tenants", t, "connectors", c, "webhook-setup-tokens"] if m == Method::GET => {
            connectors::webhook_setup_tokens(&call, t, c).await
        }
        ["tenants", t, "connectors", c, "connect"] if m == Method::POST => connectors::connect(&call, t, c).await,
        ["tenants", t, "connectors", c, "credentials"] if m == Method::PUT => {
            connectors::put_credentials(&call, t, c).await
        }
        ["tenants", t, "connectors", c, "credentials"] if m == Method::DELETE => {
            connectors::delete_credentials(&call, t, c).await
        }
        ["tenants", t, "connectors", c, "actions", a] if m == Method::POST => {
            connectors::run_action(&call, t, c, a).await
        }

        ["workflows"] if m == Method::POST => flows::create(&call, None).await,
        ["workflows"] if m == Method::GET => flows::list(&call, None).await,
        ["workflows", f] if m == Method::GET => flows::get(&call, None, f).await,
        ["workflows", f] if m == Method::PUT => flows::update(&call, None, f).await,
        ["workflows", f] if m == Method::PATCH => flows::set_status(&call, None, f).await,
        ["workflows", f] if m == Method::DELETE => flows::delete(&call, None, f).await,
        ["tenants", t, "workflows"] if m == Method::POST => flows::create(&call, Some(t)).await,
        ["tenants", t, "workflows"] if m == Method::GET => flows::list(&call, Some(t)).await,
        ["tenants", t, "workflows", f] if m == Method::GET => flows::get(&call, Some(t), f).await,
        ["tenants", t, "workflows", f] if m == Method::PUT => flows::update(&call, Some(t), f).await,
        ["tenants", t, "workflows", f] if m == Method::PATCH => flows::set_status(&call, Some(t), f).await,
        ["tenants", t, "workflows", f] if m == Method::DELETE => flows::delete(&call, Some(t), f).await,
        ["tenants", t, "workflows", f, "run"] if m == Method::POST => flows::run(&call, t, f).await,

        ["tenants", t, "executions"] if m == Method::GET => executions::list(&call, t).await,
        ["tenants", t, "executions", e] if m == Method::GET => executions::get(&call, t, e).await,
        ["tenants", t, "executions", e, "cancel"] if m == Method::POST => executions::cancel(&call, t, e).await,
        ["tenants", t, "executions", e, "rerun"] if m == Method::POST => executions::rerun(&call, t, e).await,
        ["tenants", t, "events"] if m == Method::GET => executions::events(&call, t).await,

        _ => Err(if openapi::path_exists(&rest) {
            AppError::MethodNotAllowed(format!("{method} is not allowed here"))
        } else {
            AppError::not_found("no such endpoint")
        }),
    }
}

/// Names in request bodies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Named {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub plan: Option<switchyard::domain::tenancy::Plan>,
}

pub(crate) fn require(call: &Call<'_>, permission: Permission) -> Result<(), AppError> {
    call.who.require(permission)
}
