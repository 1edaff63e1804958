//! Receiving a webhook delivery for `/webhooks/{tenant}/{connector}`.
//!
//! Verify the signature with the tenant's secret, drop duplicates, normalize, find the flows
//! the event triggers, queue one run per flow, record the delivery, answer.
//!
//! Ordering, so that no accepted event is lost and no duplicate runs twice:
//! 1. Look up the delivery record. Present: a duplicate, answer 200, queue nothing.
//! 2. Queue the runs. Each carries a run key derived from (tenant, connector, delivery, flow).
//!    If this fails nothing was recorded: answer 503 and the provider's retry goes through.
//!    Before this the event is taken from the tenant's daily quota (given back if queueing
//!    fails). Under `queue_for_later` with today full, the runs are deferred to the next day
//!    with room instead (`runs::defer_starts`), still before the answer.
//! 3. Record the delivery (one conditional write), then its event log entry (one plain write:
//!    not a transaction, see `store::events::record`). If the record fails the runs are already
//!    queued, so the event is accepted (202); should the provider deliver it again anyway, step
//!    1 lets it through and the runs are queued again, but the executor starts a run only once
//!    per run key, so nothing runs twice. If only the log entry fails, the event is accepted and
//!    runs; the log misses it.
//!
//! Per accepted event: one delivery lookup, one quota counter update (plans with a daily
//! limit), one queue call, two writes (2 write units). Tenant, connector settings, flows, secrets
//! and the tenant's stored bytes (the storage quota) come from per-container caches.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;
use sha2::Digest;

use super::{Error, Result};
use crate::domain::connector::{ConnectorSpec, HmacConfig};
use crate::domain::ids::{ExecutionId, FlowId, TenantId, ulid_at};
use crate::domain::json::JsonError;
use crate::domain::tenancy::TenantStatus;
use crate::domain::webhook::envelope::{self, EventEnvelope};
use crate::domain::webhook::signature::{SigningSecret, UnverifiedWebhook, VerifyError, VerifyOptions};
use crate::engine::{Engine, runs};
use crate::ports::{Key, PortError, QueueId};
use crate::store::events::{self, ReceivedEvent, Recorded};
use crate::store::quotas::{Admission, Notice};
use crate::store::tenants::{self, ResolvedTenant};
use crate::store::{blobs, connections, flows};
use crate::usecases::quotas;

/// Webhook receiver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub tolerance_secs: i64,
    pub max_body_bytes: usize,
    pub dedup_ttl_secs: i64,
    /// How long a replaced webhook secret keeps verifying after a rotation.
    pub rotation_window_secs: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            tolerance_secs: 300,
            max_body_bytes: 1024 * 1024,
            dedup_ttl_secs: 86_400,
            rotation_window_secs: 86_400,
        }
    }
}

/// One delivery as it arrived: the tenant and connector from the path, the request line (some
/// schemes sign it), the headers and the raw body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub tenant: String,
    pub connector: String,
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the receiver did.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Accepted {
        /// The status the connector's provider expects (202 unless the catalog says otherwise).
        status: u16,
        delivery_id: String,
        event_type: String,
        runs: Vec<(FlowId, ExecutionId)>,
        /// A `queue_for_later` quota deferred the runs to this time (epoch ms).
        queued_until: Option<i64>,
        /// Soft limits or overage this delivery passed (`Switchyard-Quota-Warning`).
        notices: Vec<Notice>,
    },
    Duplicate {
        delivery_id: String,
    },
    /// Slack's endpoint check: answer the challenge.
    Challenge(String),
    /// An unsigned setup request's token, kept for an admin (`WebhookSpec::setup_token_field`).
    SetupToken,
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

fn not_found() -> Error {
    // Same answer for an unknown tenant and a connector it has not enabled: no probing.
    Error::not_found("unknown tenant or connector")
}

fn unauthorized(e: VerifyError) -> Error {
    Error::Unauthenticated(format!("webhook signature rejected: {e}"))
}

/// The CPU path, with no I/O: verify the signature over the raw body, parse it, find the
/// event type and delivery id, normalize into the envelope.
pub fn prepare(
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    hmac: Option<&HmacConfig>,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
    delivery: Delivery,
    now_ms: i64,
) -> Result<Prepared> {
    let webhook_spec = spec.webhook.as_ref().ok_or_else(not_found)?;
    let content_type = delivery
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let verified = UnverifiedWebhook::new(delivery.headers, delivery.body)
        .with_request_line(&delivery.method, &delivery.path_and_query)
        .verify(webhook_spec.scheme, hmac, secrets, options)
        .map_err(unauthorized)?;
    let payload = envelope::payload_json(content_type.as_deref(), verified.body()).map_err(|e| match e {
        JsonError::TooDeep => Error::invalid("too_deep", e.to_string(), Value::Null),
        JsonError::Invalid(m) => Error::invalid("malformed_payload", m, Value::Null),
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

/// Receive one delivery. `delivery_id` is set as soon as the signature is verified, so the
/// caller's log line carries it whatever happens next.
pub async fn receive(
    engine: &Engine,
    settings: &WebhookSettings,
    delivery: Delivery,
    delivery_id: &mut Option<String>,
) -> Result<Received> {
    let db = &engine.db;
    if delivery.body.len() > settings.max_body_bytes {
        return Err(Error::TooLarge(format!("body larger than {} bytes", settings.max_body_bytes)));
    }
    let tenant_id = TenantId::parse(delivery.tenant.as_str()).map_err(|_| not_found())?;
    let spec = engine.catalog.find(&delivery.connector).filter(|s| s.webhook.is_some()).ok_or_else(not_found)?;
    let resolved = tenants::resolve_tenant(db, &tenant_id).await?.ok_or_else(not_found)?;
    if resolved.tenant.status != TenantStatus::Active {
        return Err(not_found());
    }
    let (space_id, connector_id) = (&resolved.space.id, &spec.id);
    let connection = connections::cached_settings(db, space_id, &tenant_id, connector_id)
        .await?
        .filter(|s| s.enabled)
        .ok_or_else(not_found)?;
    let secrets = connections::webhook_secrets(db, space_id, &tenant_id, connector_id).await?;
    let hmac = connection.hmac.as_ref().or(spec.webhook.as_ref().and_then(|w| w.hmac.as_ref()));
    if let Some(field) = spec.webhook.as_ref().and_then(|w| w.setup_token_field.as_deref()) {
        if let Some(token) = setup_token(&delivery, hmac, field) {
            connections::add_setup_token(db, space_id, &tenant_id, connector_id, &token).await?;
            return Ok(Received::SetupToken);
        }
    }
    let mut options = VerifyOptions::at(db.clock.now_secs());
    options.tolerance_secs = settings.tolerance_secs;
    let prepared = match prepare(&resolved, spec, hmac, &secrets, &options, delivery, engine.now_ms())? {
        Prepared::Challenge(challenge) => return Ok(Received::Challenge(challenge)),
        Prepared::Event(prepared) => prepared,
    };
    let delivery_key = events::delivery_key(space_id, &tenant_id, connector_id, &prepared.delivery_key);
    *delivery_id = Some(prepared.event.id.clone());
    if events::seen(db, &delivery_key).await? {
        return Ok(Received::Duplicate { delivery_id: prepared.event.id.clone() });
    }
    let (admission, notices) = quotas::admit_events(engine, &resolved, 1).await?;
    let queued_until = match &admission {
        Admission::Later { at_ms, .. } => Some(*at_ms),
        Admission::Now { .. } => None,
    };
    let runs = match route(engine, &resolved, spec, &prepared.event, queued_until).await {
        Ok(runs) => runs,
        Err(e) => {
            admission.refund(db).await;
            return Err(e);
        }
    };
    record_delivery(engine, settings, &prepared, delivery_key, &runs).await;
    let status = spec.webhook.as_ref().map(|w| w.accepted_status).unwrap_or(202);
    Ok(Received::Accepted {
        status,
        delivery_id: prepared.event.id.clone(),
        event_type: prepared.event.event_type.clone(),
        runs,
        queued_until,
        notices,
    })
}

/// What became of a delivery, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    /// Answered 4xx or 5xx.
    Refused,
}

/// A delivery for CloudWatch (EMF in Lambda): accepted and duplicate deliveries by tenant (the
/// tenant exists: it was resolved), refused ones without dimensions, since their tenant id is
/// whatever a stranger put in the URL.
pub fn observe(engine: &Engine, tenant: &str, outcome: Outcome, latency_us: u64) {
    use crate::ports::{MetricRecord, MetricUnit};
    let (name, dimension_sets, dimensions) = match outcome {
        Outcome::Accepted => ("WebhooksAccepted", vec![vec!["tenant"]], vec![("tenant", tenant.to_string())]),
        Outcome::Duplicate => ("WebhooksDuplicate", vec![vec!["tenant"]], vec![("tenant", tenant.to_string())]),
        Outcome::Refused => ("WebhooksRefused", vec![vec![]], Vec::new()),
    };
    engine.metrics.emit(MetricRecord {
        dimension_sets,
        dimensions,
        properties: Vec::new(),
        values: vec![
            (name, MetricUnit::Count, 1.0),
            ("WebhookLatency", MetricUnit::Milliseconds, latency_us as f64 / 1000.0),
        ],
    });
}

/// The token of a provider's setup request: unsigned (no signature header at all) and a JSON
/// object of exactly `field`, a string of 8 to 1024 characters. Anything else is verified as
/// a delivery (and, unsigned, refused).
fn setup_token(delivery: &Delivery, hmac: Option<&HmacConfig>, field: &str) -> Option<String> {
    if hmac.is_some_and(|h| delivery.headers.contains_key(h.header.as_str())) {
        return None;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&delivery.body) else { return None };
    match (body.len(), body.get(field)) {
        (1, Some(Value::String(token))) if (8..=1024).contains(&token.chars().count()) => Some(token.clone()),
        _ => None,
    }
}

/// Find the flows the event triggers and queue one run for each (or defer them to
/// `queued_until`). An event too large to travel in a message goes to a blob first; the runs
/// carry its reference.
async fn route(
    engine: &Engine,
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    event: &EventEnvelope,
    queued_until: Option<i64>,
) -> Result<Vec<(FlowId, ExecutionId)>> {
    let matched = flows::flows_for_webhook(&engine.db, tenant, &spec.id, &event.event_type).await?;
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let input = serde_json::value::to_raw_value(event).map_err(Error::unavailable)?;
    let input = blobs::inline_or_blob(&engine.db, &tenant.space.id, &tenant.tenant.id, input).await?;
    let (messages, runs) = runs::webhook_starts(tenant, spec, event, &input, &matched, engine.now_ms());
    if let Some(at_ms) = queued_until {
        runs::defer_starts(engine, tenant, messages, at_ms).await?;
        return Ok(runs);
    }
    engine.queue.send(QueueId::Runs, &messages).await.map_err(|e| match e {
        PortError::Rejected(_) => Error::TooLarge("event too large to queue".into()),
        other => other.into(),
    })?;
    Ok(runs)
}

/// Record the delivery (dedup record and log entry). The runs are already queued, so a
/// failure here is logged, not returned.
async fn record_delivery(
    engine: &Engine,
    settings: &WebhookSettings,
    prepared: &PreparedEvent,
    delivery_key: Key,
    runs: &[(FlowId, ExecutionId)],
) {
    let event = &prepared.event;
    let record = ReceivedEvent {
        id: ulid_at(event.received_at).to_string(),
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
    match events::record(&engine.db, &event.space, &event.tenant, delivery_key, &record, settings.dedup_ttl_secs).await
    {
        Ok(Recorded::Written) => {}
        Ok(Recorded::AlreadyThere) => {
            tracing::info!(delivery_id = %event.id, "concurrent duplicate delivery; the executor starts its runs once");
        }
        Err(e) => tracing::warn!(delivery_id = %event.id, error = %e, "delivery record not written; runs are queued"),
    }
}
