//! Received webhook deliveries: the dedup record of each (by connector and delivery id, kept
//! for the dedup window) and the tenant's log of received events (metadata only, never the
//! payload, kept for `EVENT_LOG_TTL_SECS`). The record is a conditional write and the log entry
//! a plain one, both after the runs are queued (the receiver's ordering: `usecases::webhooks`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Db, Error, keys, to_value};
use crate::domain::ids::{ConnectorId, ExecutionId, FlowId, SpaceId, TenantId};
use crate::ports::{Condition, Item, Key, PortError, Query};

/// How long the log of received events is kept.
pub const EVENT_LOG_TTL_SECS: i64 = 7 * 86_400;

/// A received event as logged and listed over the API.
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

/// The dedup record's key of a delivery (`delivery_key`: the hash of its id).
pub fn delivery_key(space: &SpaceId, tenant: &TenantId, connector: &ConnectorId, delivery_key: &str) -> Key {
    keys::webhook_delivery(space, tenant, connector, delivery_key)
}

/// Whether a delivery was recorded within the dedup window.
pub async fn seen(db: &Db, delivery: &Key) -> Result<bool, PortError> {
    Ok(db.store.get(delivery).await?.is_some())
}

/// What recording a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Written,
    /// A concurrent delivery of the same event recorded it first.
    AlreadyThere,
}

/// Write the dedup record (kept `dedup_ttl_secs`), one conditional write, then the log entry:
/// two plain writes (2 write units) rather than a transaction of both (4). The runs are queued
/// before either (`usecases::webhooks`), so neither guards them: the dedup record stops a
/// redelivery from queueing them again, and the executor's run claim drops a copy if it is lost.
/// A receiver that dies between the two leaves a delivery without its log entry; its
/// executions are there all the same.
pub async fn record(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    delivery: Key,
    event: &ReceivedEvent,
    dedup_ttl_secs: i64,
) -> Result<Recorded, PortError> {
    let now_secs = db.clock.now_secs();
    let dedup = Item::new(delivery.clone(), json!({"event": event.id, "received_at": event.received_at}))
        .expiring_at(now_secs + dedup_ttl_secs);
    match db.store.put(dedup, Condition::IfAbsent).await {
        Ok(()) => {}
        // Refused, or failed: it may be this very write, committed before its reply was lost
        // (and retried by the SDK). The record names the attempt that wrote it.
        Err(e) => {
            let ours = match db.store.get(&delivery).await {
                Ok(found) => {
                    found.is_some_and(|r| r.data.get("event").and_then(serde_json::Value::as_str) == Some(&event.id))
                }
                Err(_) => false,
            };
            match (ours, e) {
                (true, _) => {}
                // A concurrent delivery of the same event recorded it (and its log entry) first.
                (false, PortError::ConditionFailed) => return Ok(Recorded::AlreadyThere),
                (false, e) => return Err(e),
            }
        }
    }
    let entry = Item::new(keys::received_event(space, tenant, &event.id), to_value(event))
        .expiring_at(now_secs + EVENT_LOG_TTL_SECS);
    db.store.put(entry, Condition::None).await?;
    Ok(Recorded::Written)
}

/// A page of a tenant's received events, newest first.
pub async fn list(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<ReceivedEvent>, Option<String>), Error> {
    let page = db
        .store
        .query(
            &Query::prefix(keys::tenant_pk(space, tenant), keys::RECEIVED_EVENT_PREFIX)
                .descending()
                .limit(limit)
                .after(cursor),
        )
        .await?;
    let events = page.items.iter().map(Item::parse).collect::<Result<Vec<ReceivedEvent>, PortError>>()?;
    Ok((events, page.next))
}
