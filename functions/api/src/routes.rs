//! The routes of `/api/v1`: public ones first, then every authenticated operation.

use http::Method;
use serde_json::json;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, json as json_response};
use switchyard::usecases::auth;

use crate::call::Call;
use crate::{connectors, executions, flows, oauth, openapi, schemas, tenancy};

pub async fn route(p: &Platform, req: Request, segs: &[String]) -> Result<Response, AppError> {
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
    let who = auth::authenticate(p.db(), p.admin_key.as_ref(), req.headers()).await?;
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
