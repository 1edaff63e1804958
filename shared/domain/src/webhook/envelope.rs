//! Normalization: every verified webhook becomes one envelope, whatever the provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::signature::VerifiedWebhook;
use crate::connector::{EventTypeSource, WebhookSpec};
use crate::expr::Expr;
use crate::ids::{ConnectorId, SpaceId, TenantId};
use crate::json::{self, JsonError};

/// The normalized event: what flows see as `.trigger`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// The delivery id: the provider's, or the SHA-256 of the body when it sends none.
    pub id: String,
    pub space: SpaceId,
    pub tenant: TenantId,
    pub connector: ConnectorId,
    pub event_type: String,
    /// Epoch milliseconds.
    pub received_at: i64,
    /// The headers the catalog selects, lower-cased.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as the provider sent it (validated JSON, kept as text: the receiver never
    /// needs to build or re-serialize the tree).
    pub payload: Box<RawValue>,
}

/// A change a poll found in a resource: `created` (a new id), `updated` (same id, another
/// hash) or `deleted` (gone from a complete listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
        }
    }
}

/// The event of a poll change: what a poll-triggered flow sees as `.trigger`. The envelope's
/// fields (no headers: nothing was received), then which resource, what change, which record,
/// and the record itself as the payload (`null` for a deletion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// `<connector>:<resource>:<record id>:<change>:<hash>:<generation>`.
    pub id: String,
    pub space: SpaceId,
    pub tenant: TenantId,
    pub connector: ConnectorId,
    /// `<resource>.<change>`.
    pub event_type: String,
    /// Epoch milliseconds.
    pub received_at: i64,
    pub resource: String,
    pub change: Change,
    pub record_id: String,
    pub payload: Value,
}

/// Event type used when the provider's cannot be found.
pub const UNKNOWN_EVENT_TYPE: &str = "unknown";

/// The body as JSON text: JSON bodies checked against the platform's rules
/// (`domain::json`: depth, Unicode, number range) and kept as they are, form fields (Slack
/// commands) as an object, other text as a string. A body that claims to be JSON but is not,
/// or that breaks the rules, is refused.
pub fn payload_json(content_type: Option<&str>, body: &[u8]) -> Result<Box<RawValue>, JsonError> {
    let media = media_type(content_type);
    if is_json_media(&media) {
        if body.iter().all(u8::is_ascii_whitespace) {
            return if media.is_empty() { Ok(null()) } else { Err(JsonError::Invalid("empty JSON body".into())) };
        }
        json::check_text(body).map_err(|e| match e {
            JsonError::Invalid(m) => JsonError::Invalid(format!("body is not valid JSON: {m}")),
            other => other,
        })?;
        let raw: &RawValue =
            serde_json::from_slice(body).map_err(|e| JsonError::Invalid(format!("body is not valid JSON: {e}")))?;
        return Ok(raw.to_owned());
    }
    let value = parse_payload(content_type, body)?;
    json::check_value(&value)?;
    serde_json::value::to_raw_value(&value).map_err(|e| JsonError::Invalid(e.to_string()))
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn is_json_media(media: &str) -> bool {
    media.is_empty() || media == "application/json" || media.ends_with("+json")
}

/// Parse the body by content type into a JSON value: JSON, form fields (Slack commands), or
/// text. A body that claims to be JSON but is not, or breaks the platform's rules, is refused.
pub fn parse_payload(content_type: Option<&str>, body: &[u8]) -> Result<Value, JsonError> {
    let media = media_type(content_type);
    if media == "application/x-www-form-urlencoded" {
        let mut fields = serde_json::Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            // Slack interactivity sends JSON inside a `payload` field.
            let value = match (k.as_ref(), json::parse(v.as_bytes())) {
                ("payload", Ok(parsed)) => parsed,
                ("payload", Err(JsonError::TooDeep)) => return Err(JsonError::TooDeep),
                _ => Value::String(v.into_owned()),
            };
            fields.insert(k.into_owned(), value);
        }
        return Ok(Value::Object(fields));
    }
    if is_json_media(&media) {
        if body.iter().all(u8::is_ascii_whitespace) {
            return if media.is_empty() { Ok(Value::Null) } else { Err(JsonError::Invalid("empty JSON body".into())) };
        }
        return json::parse(body).map_err(|e| match e {
            JsonError::Invalid(m) => JsonError::Invalid(format!("body is not valid JSON: {m}")),
            other => other,
        });
    }
    match std::str::from_utf8(body) {
        Ok(text) => Ok(Value::String(text.to_string())),
        Err(_) => Err(JsonError::Invalid("body is neither JSON nor UTF-8 text".into())),
    }
}

fn extract(source: &EventTypeSource, webhook: &VerifiedWebhook, payload: &Value) -> Option<String> {
    match source {
        EventTypeSource::Header(name) => webhook.id_header(&name.to_ascii_lowercase()),
        EventTypeSource::Fixed(value) => Some(value.clone()),
        EventTypeSource::Body(expr) => match Expr::compile(expr).and_then(|e| e.eval(payload)) {
            Ok(Value::String(s)) if !s.is_empty() => Some(s),
            Ok(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        },
    }
}

/// Whether the catalog reads the event type or id from the body (then it must be parsed).
pub fn needs_body(spec: &WebhookSpec) -> bool {
    matches!(spec.event_type, EventTypeSource::Body(_)) || matches!(spec.event_id, Some(EventTypeSource::Body(_)))
}

/// The event type, per the catalog (`unknown` when absent, so the event is still recorded and
/// `*` triggers still run). `payload` is the parsed body when `needs_body`, else `null`.
pub fn event_type(spec: &WebhookSpec, webhook: &VerifiedWebhook, payload: &Value) -> String {
    extract(&spec.event_type, webhook, payload)
        .map(|t| t.chars().take(200).collect())
        .unwrap_or_else(|| UNKNOWN_EVENT_TYPE.to_string())
}

/// Longest delivery id kept as it is; a longer one is kept as `long:` and its SHA-256.
pub const MAX_DELIVERY_ID_CHARS: usize = 256;

/// The delivery id: the scheme's, else the provider's event id per the catalog, else the
/// SHA-256 of the body (so an identical redelivery is still recognised). Ids are never cut:
/// two deliveries whose ids differ anywhere stay two deliveries.
pub fn delivery_id(spec: &WebhookSpec, webhook: &VerifiedWebhook, payload: &Value) -> String {
    let id = webhook
        .scheme_delivery_id()
        .map(str::to_string)
        .or_else(|| spec.event_id.as_ref().and_then(|s| extract(s, webhook, payload)));
    match id {
        Some(id) if id.chars().count() <= MAX_DELIVERY_ID_CHARS => id,
        Some(long) => format!("long:{}", hex::encode(Sha256::digest(long.as_bytes()))),
        None => format!("sha256:{}", hex::encode(Sha256::digest(webhook.body()))),
    }
}

/// The key under which a delivery is deduplicated: fixed length, safe in a store key.
pub fn delivery_key(delivery_id: &str) -> String {
    hex::encode(&Sha256::digest(delivery_id.as_bytes())[..16])
}

/// The headers the catalog selects.
pub fn selected_headers(spec: &WebhookSpec, webhook: &VerifiedWebhook) -> BTreeMap<String, String> {
    spec.headers
        .iter()
        .filter_map(|name| {
            let lower = name.to_ascii_lowercase();
            webhook.header(&lower).map(|v| (lower, v.chars().take(1024).collect()))
        })
        .collect()
}
