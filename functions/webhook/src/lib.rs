//! The webhook receiver: `POST /webhooks/{tenant}/{connector}`.
//!
//! Verify the signature with the tenant's secret, drop duplicates, normalize, find the flows
//! the event triggers, queue one run per flow, record the delivery, answer.
//!
//! Ordering, so that no accepted event is lost and no duplicate runs twice:
//! 1. Look up the delivery record. Present: a duplicate, answer 200, queue nothing.
//! 2. Queue the runs. Each carries a run key derived from (tenant, connector, delivery, flow).
//!    If this fails nothing was recorded: answer 503 and the provider's retry goes through.
//! 3. Record the delivery (one conditional write). If this fails the runs are already queued,
//!    so the event is accepted (202); should the provider deliver it again anyway, step 1 lets
//!    it through and the runs are queued again, but the executor starts a run only once per
//!    run key, so nothing runs twice.
//!
//! Per accepted event: one delivery lookup, one quota counter update (plans with a daily
//! limit), one queue call, one conditional write. Tenant, connector settings, flows and
//! secrets come from per-container caches.

use std::sync::Arc;
use std::time::Instant;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchyard::domain::connector::{ConnectorSpec, HmacConfig};
use switchyard::domain::execution::{FlowRef, TriggerInfo, run_key};
use switchyard::domain::ids::{ConnectorId, ExecutionId, FlowId, SpaceId, TenantId, ulid_at};
use switchyard::domain::json::JsonError;
use switchyard::domain::tenancy::TenantStatus;
use switchyard::domain::webhook::envelope::{self, EventEnvelope};
use switchyard::domain::webhook::signature::{SigningSecret, UnverifiedWebhook, VerifyError, VerifyOptions};
use switchyard::platform::error::AppError;
use switchyard::platform::http::{Request, Response, error_allowing, header, json as json_response, segments};
use switchyard::platform::tenancy::ResolvedTenant;
use switchyard::platform::{Platform, blobs, connections, flows, quotas, tenancy};
use switchyard::ports::{Condition, Item, Key, OutgoingMessage, PortError, QueueId, WriteOp};
use switchyard::store::keys;

/// How long the log of received events is kept.
pub const EVENT_LOG_TTL_SECS: i64 = 7 * 86_400;

/// A received event as listed over the API: metadata only, never the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedEvent {
    pub id: String,
    pub delivery_id: String,
    pub connector: ConnectorId,
    pub event_type: String,
    pub received_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub size: usize,
    pub payload_sha256: String,
    pub flows: Vec<FlowId>,
    pub executions: Vec<ExecutionId>,
}

/// What the receiver did, for the log line and the response.
enum Outcome {
    Accepted {
        status: u16,
        delivery_id: String,
        event_type: String,
        runs: Vec<(FlowId, ExecutionId)>,
    },
    Duplicate {
        delivery_id: String,
    },
    Challenge(String),
    /// An unsigned setup request's token, kept for an admin (`WebhookSpec::setup_token_field`).
    SetupToken,
}

/// Handle one HTTP request to the webhook function.
pub async fn handle(p: &Platform, req: Request) -> Response {
    let started = Instant::now();
    let path = segments(&req);
    let (tenant, connector) = (path.get(1).cloned().unwrap_or_default(), path.get(2).cloned().unwrap_or_default());
    // Known once the signature is verified; error lines after that carry it too.
    let mut delivery: Option<String> = None;
    let result = receive(p, req, &path, &mut delivery).await;
    let latency_us = started.elapsed().as_micros() as u64;
    match result {
        Ok(Outcome::Accepted { status, delivery_id, event_type, runs }) => {
            tracing::info!(%tenant, %connector, %delivery_id, %event_type, runs = runs.len(), outcome = "accepted", latency_us);
            let runs: Vec<Value> = runs.iter().map(|(f, e)| json!({"flow_id": f, "execution_id": e})).collect();
            json_response(
                status,
                &json!({"status": "accepted", "delivery_id": delivery_id, "event_type": event_type, "runs": runs}),
            )
        }
        Ok(Outcome::Duplicate { delivery_id }) => {
            tracing::info!(%tenant, %connector, %delivery_id, outcome = "duplicate", latency_us);
            json_response(200, &json!({"status": "duplicate", "delivery_id": delivery_id}))
        }
        Ok(Outcome::Challenge(challenge)) => {
            tracing::info!(%tenant, %connector, outcome = "challenge", latency_us);
            json_response(200, &json!({"challenge": challenge}))
        }
        Ok(Outcome::SetupToken) => {
            tracing::info!(%tenant, %connector, outcome = "setup_token", latency_us);
            json_response(200, &json!({"status": "setup_token_received"}))
        }
        Err(e) => {
            let delivery_id = delivery.as_deref().unwrap_or("");
            if e.status() >= 500 {
                tracing::warn!(%tenant, %connector, delivery_id, outcome = e.code(), status = e.status(), latency_us, reason = %e);
            } else {
                tracing::info!(%tenant, %connector, delivery_id, outcome = e.code(), status = e.status(), latency_us, reason = %e);
            }
            error_allowing(&e, "POST")
        }
    }
}

fn not_found() -> AppError {
    // Same answer for an unknown tenant and a connector it has not enabled: no probing.
    AppError::not_found("unknown tenant or connector")
}

fn unauthorized(e: VerifyError) -> AppError {
    AppError::Unauthorized(format!("webhook signature rejected: {e}"))
}

/// An event that passed verification and normalization, ready to be routed.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event: EventEnvelope,
    /// Hash of the delivery id, the dedup key.
    pub delivery_key: String,
    pub content_type: Option<String>,
    pub size: usize,
    pub body_sha256: String,
}

/// The result of the CPU path.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Slack's endpoint check: answer the challenge.
    Challenge(String),
    Event(Box<PreparedEvent>),
}

/// The CPU path, with no I/O: verify the signature over the raw body, parse it, find the
/// event type and delivery id, normalize into the envelope.
pub fn prepare(
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    hmac: Option<&HmacConfig>,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
    req: Request,
    now_ms: i64,
) -> Result<Prepared, AppError> {
    use sha2::Digest;
    let webhook_spec = spec.webhook.as_ref().ok_or_else(not_found)?;
    let content_type = header(&req, "content-type").map(str::to_string);
    let (parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let verified = UnverifiedWebhook::new(parts.headers, body)
        .with_request_line(parts.method.as_str(), &path_and_query)
        .verify(webhook_spec.scheme, hmac, secrets, options)
        .map_err(unauthorized)?;
    let payload = envelope::payload_json(content_type.as_deref(), verified.body()).map_err(|e| match e {
        JsonError::TooDeep => AppError::invalid("too_deep", e.to_string(), Value::Null),
        JsonError::Invalid(m) => AppError::invalid("malformed_payload", m, Value::Null),
    })?;
    // The tree is only built when the catalog reads the event type or id from the body.
    let parsed = if envelope::needs_body(webhook_spec) {
        serde_json::from_str(payload.get()).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    if parsed.get("type").and_then(Value::as_str) == Some("url_verification") {
        if let Some(challenge) = parsed.get("challenge").and_then(Value::as_str) {
            return Ok(Prepared::Challenge(challenge.to_string()));
        }
    }
    let event_type = envelope::event_type(webhook_spec, &verified, &parsed);
    let delivery_id = envelope::delivery_id(webhook_spec, &verified, &parsed);
    let event = EventEnvelope {
        id: delivery_id.clone(),
        space: tenant.space.id.clone(),
        tenant: tenant.tenant.id.clone(),
        connector: spec.id.clone(),
        event_type,
        received_at: now_ms,
        headers: envelope::selected_headers(webhook_spec, &verified),
        payload,
    };
    Ok(Prepared::Event(Box::new(PreparedEvent {
        delivery_key: envelope::delivery_key(&delivery_id),
        content_type,
        size: verified.body().len(),
        body_sha256: hex::encode(sha2::Sha256::digest(verified.body())),
        event,
    })))
}

async fn receive(
    p: &Platform,
    req: Request,
    path: &[String],
    delivery: &mut Option<String>,
) -> Result<Outcome, AppError> {
    let [root, tenant, connector] = path else { return Err(not_found()) };
    if root != "webhooks" {
        return Err(not_found());
    }
    if req.method() != Method::POST {
        return Err(AppError::MethodNotAllowed("webhooks are delivered with POST".into()));
    }
    let limit = p.settings.webhook.max_body_bytes;
    if req.body().len() > limit {
        return Err(AppError::PayloadTooLarge(format!("body larger than {limit} bytes")));
    }
    let tenant_id = TenantId::parse(tenant.as_str()).map_err(|_| not_found())?;
    let spec = p.catalog.find(connector).filter(|s| s.webhook.is_some()).ok_or_else(not_found)?;
    let resolved = tenancy::resolve_tenant(p, &tenant_id).await?.ok_or_else(not_found)?;
    if resolved.tenant.status != TenantStatus::Active {
        return Err(not_found());
    }
    let (space_id, connector_id) = (&resolved.space.id, &spec.id);
    let settings = connections::cached_settings(p, space_id, &tenant_id, connector_id)
        .await?
        .filter(|s| s.enabled)
        .ok_or_else(not_found)?;
    let secrets = connections::webhook_secrets(p, space_id, &tenant_id, connector_id).await?;
    let hmac = settings.hmac.as_ref().or(spec.webhook.as_ref().and_then(|w| w.hmac.as_ref()));
    if let Some(field) = spec.webhook.as_ref().and_then(|w| w.setup_token_field.as_deref()) {
        if let Some(token) = setup_token(&req, hmac, field) {
            connections::add_setup_token(p, space_id, &tenant_id, connector_id, &token).await?;
            return Ok(Outcome::SetupToken);
        }
    }
    let mut options = VerifyOptions::at(p.clock.now_secs());
    options.tolerance_secs = p.settings.webhook.tolerance_secs;
    let prepared = match prepare(&resolved, spec, hmac, &secrets, &options, req, p.now_ms())? {
        Prepared::Challenge(challenge) => return Ok(Outcome::Challenge(challenge)),
        Prepared::Event(prepared) => prepared,
    };
    let delivery_key = keys::webhook_delivery(space_id, &tenant_id, connector_id, &prepared.delivery_key);
    let delivery_id = prepared.event.id.clone();
    *delivery = Some(delivery_id.clone());
    if p.store.get(&delivery_key).await?.is_some() {
        return Ok(Outcome::Duplicate { delivery_id });
    }
    let reservation = quotas::reserve_event(p, &resolved).await?;
    let queued = route(p, &resolved, spec, &prepared.event).await;
    let runs = match queued {
        Ok(runs) => runs,
        Err(e) => {
            if let Some(r) = reservation {
                r.refund(p).await;
            }
            return Err(e);
        }
    };
    record_delivery(p, &prepared, delivery_key, &runs).await;
    let status = spec.webhook.as_ref().map(|w| w.accepted_status).unwrap_or(202);
    Ok(Outcome::Accepted { status, delivery_id, event_type: prepared.event.event_type.clone(), runs })
}

/// The token of a provider's setup request: unsigned (no signature header at all) and a JSON
/// object of exactly `field`, a string of 8 to 1024 characters. Anything else is verified as
/// a delivery (and, unsigned, refused).
fn setup_token(req: &Request, hmac: Option<&HmacConfig>, field: &str) -> Option<String> {
    if hmac.is_some_and(|h| req.headers().contains_key(h.header.as_str())) {
        return None;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(req.body()) else { return None };
    match (body.len(), body.get(field)) {
        (1, Some(Value::String(token))) if (8..=1024).contains(&token.chars().count()) => Some(token.clone()),
        _ => None,
    }
}

/// Find the flows the event triggers and queue one run for each. An event too large to travel
/// in a message goes to a blob first; the runs carry its reference.
async fn route(
    p: &Platform,
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    event: &EventEnvelope,
) -> Result<Vec<(FlowId, ExecutionId)>, AppError> {
    let matched = flows::flows_for_webhook(p, tenant, &spec.id, &event.event_type).await?;
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let input = serde_json::value::to_raw_value(event).map_err(|e| AppError::Unavailable { detail: e.to_string() })?;
    let input = blobs::inline_or_blob(p, &tenant.space.id, &tenant.tenant.id, input).await?;
    let (messages, runs) = run_messages(tenant, spec, event, &input, &matched, p.now_ms());
    p.queue.send(QueueId::Runs, &messages).await.map_err(|e| match e {
        PortError::Rejected(_) => AppError::PayloadTooLarge("event too large to queue".into()),
        other => other.into(),
    })?;
    Ok(runs)
}

/// A start message as the receiver writes it: the same fields as `RunMessage::Start`, with the
/// input borrowed as JSON text so it is copied, not re-serialized, into each message.
#[derive(Serialize)]
#[serde(tag = "type", rename = "start")]
struct StartMessage<'a> {
    space: &'a SpaceId,
    tenant: &'a TenantId,
    execution_id: &'a ExecutionId,
    run_key: String,
    flow: FlowRef,
    trigger: &'a TriggerInfo,
    input: &'a RawValue,
    enqueued_at: i64,
}

/// One start message per matched flow, with a run key that makes duplicates harmless.
pub fn run_messages(
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    event: &EventEnvelope,
    input: &RawValue,
    matched: &[Arc<flows::FlowRecord>],
    now: i64,
) -> (Vec<OutgoingMessage>, Vec<(FlowId, ExecutionId)>) {
    let trigger = TriggerInfo {
        kind: "webhook".into(),
        connector: Some(spec.id.clone()),
        event_type: Some(event.event_type.clone()),
        event_id: Some(event.id.clone()),
    };
    let mut messages = Vec::with_capacity(matched.len());
    let mut runs = Vec::with_capacity(matched.len());
    for flow in matched {
        let execution_id = ExecutionId::generate(now);
        let run_key = run_key(&[
            "webhook",
            tenant.space.id.as_str(),
            tenant.tenant.id.as_str(),
            spec.id.as_str(),
            &event.id,
            &switchyard::store::keys::owner_pk(&flow.owner),
            flow.id.as_str(),
        ]);
        let message = StartMessage {
            space: &tenant.space.id,
            tenant: &tenant.tenant.id,
            execution_id: &execution_id,
            run_key,
            flow: FlowRef { owner: flow.owner.clone(), id: flow.id.clone(), version: flow.version },
            trigger: &trigger,
            input,
            enqueued_at: now,
        };
        if let Ok(body) = serde_json::to_string(&message) {
            messages.push(OutgoingMessage::new(body));
            runs.push((flow.id.clone(), execution_id));
        }
    }
    (messages, runs)
}

/// Write the dedup record and the event log entry in one conditional write. The runs are
/// already queued, so a failure here is logged, not returned.
async fn record_delivery(p: &Platform, prepared: &PreparedEvent, delivery_key: Key, runs: &[(FlowId, ExecutionId)]) {
    let event = &prepared.event;
    let now_secs = p.clock.now_secs();
    let log_id = ulid_at(event.received_at).to_string();
    let record = ReceivedEvent {
        id: log_id.clone(),
        delivery_id: event.id.clone(),
        connector: event.connector.clone(),
        event_type: event.event_type.clone(),
        received_at: event.received_at,
        content_type: prepared.content_type.clone(),
        size: prepared.size,
        payload_sha256: prepared.body_sha256.clone(),
        flows: runs.iter().map(|(f, _)| f.clone()).collect(),
        executions: runs.iter().map(|(_, e)| e.clone()).collect(),
    };
    let value = serde_json::to_value(&record).unwrap_or(Value::Null);
    let ops = vec![
        WriteOp::Put {
            item: Item::new(delivery_key, json!({"event": log_id, "received_at": event.received_at}))
                .expiring_at(now_secs + p.settings.webhook.dedup_ttl_secs),
            condition: Condition::IfAbsent,
        },
        WriteOp::Put {
            item: Item::new(keys::received_event(&event.space, &event.tenant, &log_id), value)
                .expiring_at(now_secs + EVENT_LOG_TTL_SECS),
            condition: Condition::None,
        },
    ];
    match p.store.transact(ops).await {
        Ok(()) => {}
        Err(PortError::TransactionCancelled { .. }) => {
            tracing::info!(delivery_id = %event.id, "concurrent duplicate delivery; the executor starts its runs once");
        }
        Err(e) => tracing::warn!(delivery_id = %event.id, error = %e, "delivery record not written; runs are queued"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchyard::domain::execution::RunMessage;
    use switchyard::domain::flow::FlowOwner;

    use super::*;

    #[test]
    fn start_messages_parse_as_run_messages() {
        let space = SpaceId::parse("s").unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let execution_id = ExecutionId::generate(1_000);
        let trigger = TriggerInfo {
            kind: "webhook".into(),
            connector: None,
            event_type: Some("push".into()),
            event_id: Some("d".into()),
        };
        let input = serde_json::value::to_raw_value(&json!({"payload": {"a": [1, 2]}})).unwrap();
        let message = StartMessage {
            space: &space,
            tenant: &tenant,
            execution_id: &execution_id,
            run_key: "k".into(),
            flow: FlowRef {
                owner: FlowOwner::Space { space: space.clone() },
                id: FlowId::parse("f").unwrap(),
                version: 3,
            },
            trigger: &trigger,
            input: &input,
            enqueued_at: 7,
        };
        let parsed: RunMessage = serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        let RunMessage::Start { input, flow, enqueued_at, execution_id: id, .. } = parsed else {
            panic!("not a start")
        };
        assert_eq!((input, flow.version, enqueued_at, id), (json!({"payload": {"a": [1, 2]}}), 3, 7, execution_id));
    }
}
