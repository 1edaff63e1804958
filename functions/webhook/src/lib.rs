//! The webhook receiver: `POST /webhooks/{tenant}/{connector}`. Decodes the request, calls
//! `usecases::webhooks::receive` (whose module doc states the ordering that loses nothing and
//! runs nothing twice), and answers with one log line per delivery.

use std::time::Instant;

use http::Method;
use serde_json::{Value, json};
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{
    Request, Response, error_allowing, json as json_response, segments, with_quota_warnings,
};
use switchyard::usecases::webhooks::{self, Delivery, Outcome, Received};

/// Handle one HTTP request to the webhook function.
pub async fn handle(p: &Platform, req: Request) -> Response {
    let started = Instant::now();
    let path = segments(&req);
    let (tenant, connector) = (path.get(1).cloned().unwrap_or_default(), path.get(2).cloned().unwrap_or_default());
    // Known once the signature is verified; error lines after that carry it too.
    let mut delivery_id: Option<String> = None;
    let result = match decode(req, &path) {
        Ok(delivery) => {
            webhooks::receive(&p.engine, &p.settings.webhook, delivery, &mut delivery_id).await.map_err(AppError::from)
        }
        Err(e) => Err(e),
    };
    let latency_us = started.elapsed().as_micros() as u64;
    let outcome = match &result {
        Ok(Received::Accepted { .. }) => Some(Outcome::Accepted),
        Ok(Received::Duplicate { .. }) => Some(Outcome::Duplicate),
        Ok(Received::Challenge(_) | Received::SetupToken) => None,
        Err(_) => Some(Outcome::Refused),
    };
    if let Some(outcome) = outcome {
        webhooks::observe(&p.engine, &tenant, outcome, latency_us);
    }
    match result {
        Ok(Received::Accepted { status, delivery_id, event_type, runs, queued_until, notices }) => {
            tracing::info!(%tenant, %connector, %delivery_id, %event_type, runs = runs.len(), outcome = "accepted", latency_us);
            let runs: Vec<Value> = runs.iter().map(|(f, e)| json!({"flow_id": f, "execution_id": e})).collect();
            let mut body =
                json!({"status": "accepted", "delivery_id": delivery_id, "event_type": event_type, "runs": runs});
            if let Some(at) = queued_until {
                body["status"] = json!("queued");
                body["queued_until"] = json!(at);
            }
            with_quota_warnings(json_response(status, &body), &notices)
        }
        Ok(Received::Duplicate { delivery_id }) => {
            tracing::info!(%tenant, %connector, %delivery_id, outcome = "duplicate", latency_us);
            json_response(200, &json!({"status": "duplicate", "delivery_id": delivery_id}))
        }
        Ok(Received::Challenge(challenge)) => {
            tracing::info!(%tenant, %connector, outcome = "challenge", latency_us);
            json_response(200, &json!({"challenge": challenge}))
        }
        Ok(Received::SetupToken) => {
            tracing::info!(%tenant, %connector, outcome = "setup_token", latency_us);
            json_response(200, &json!({"status": "setup_token_received"}))
        }
        Err(e) => {
            let delivery_id = delivery_id.as_deref().unwrap_or("");
            if e.status() >= 500 {
                tracing::warn!(%tenant, %connector, delivery_id, outcome = e.code(), status = e.status(), latency_us, reason = %e);
            } else {
                tracing::info!(%tenant, %connector, delivery_id, outcome = e.code(), status = e.status(), latency_us, reason = %e);
            }
            error_allowing(&e, "POST")
        }
    }
}

/// The delivery a request carries: `POST /webhooks/{tenant}/{connector}` only.
pub fn decode(req: Request, path: &[String]) -> Result<Delivery, AppError> {
    let [root, tenant, connector] = path else { return Err(AppError::not_found("unknown tenant or connector")) };
    if root != "webhooks" {
        return Err(AppError::not_found("unknown tenant or connector"));
    }
    if req.method() != Method::POST {
        return Err(AppError::MethodNotAllowed("webhooks are delivered with POST".into()));
    }
    let (parts, body) = req.into_parts();
    Ok(Delivery {
        tenant: tenant.clone(),
        connector: connector.clone(),
        method: parts.method.as_str().to_string(),
        path_and_query: parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
        headers: parts.headers,
        body,
    })
}
