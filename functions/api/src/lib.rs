//! The control plane: `/api/v1/...` — spaces, API keys, tenants, connectors, flows,
//! executions, received events. Described by `openapi.yaml` (served at
//! `/api/v1/openapi.json`). The console (`/console`, `console`) is served here too, on the
//! same operations.
//!
//! Every request is authenticated (`x-fastn-api-key`, a bearer API key or a bearer OIDC token,
//! scoped by `x-fastn-space-id` / `x-fastn-space-tenantid`: `usecases::auth`) except health,
//! the OpenAPI document, the schemas and the OAuth callback; each operation checks one
//! permission and writes leave an audit record (`routes`).

mod access;
mod alerts;
mod call;
mod connectors;
pub mod console;
mod executions;
mod flows;
mod oauth;
mod observability;
mod openapi;
mod routes;
mod schemas;
mod tenancy;
mod usage;

use http::Method;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, error_allowing, segments};

pub(crate) use call::{Call, Named, page_response};

pub use openapi::document as openapi_document;

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
    if segs.first().is_some_and(|s| s == "console") {
        return console::handle(p, req, &segs).await;
    }
    match routes::route(p, req, &segs).await {
        Ok(response) => response,
        Err(e) => {
            log_failure(&method, &path, &e);
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

/// Failures on our side are logged (without the request's content); the client's are not.
pub(crate) fn log_failure(method: &Method, path: &str, e: &AppError) {
    if e.status() >= 500 {
        tracing::warn!(%method, %path, status = e.status(), code = e.code(), "request failed");
    }
}
