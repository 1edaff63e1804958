//! What the poller reads: the index of poll-triggered flows, and each tenant's poll state.
//!
//! - `POLLS` partition, one item per active poll-triggered flow (`{owner pk}#{flow}`), kept in
//!   step with the flow by the flow repository, like the schedule index.
//! - `POLL#{connector}#{resource}` in the tenant's partition: when that tenant's resource is
//!   next due, its current (adaptive) interval, and the snapshot of record hashes the next poll
//!   diffs against.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Db, Error};
use crate::domain::flow::FlowOwner;
use crate::domain::flow::Trigger;
use crate::domain::flow::{FlowRecord, FlowStatus};
use crate::domain::ids::{ConnectorId, FlowId, SpaceId, TenantId};
use crate::ports::{Condition, Item, Key, PortResult, Query};
use crate::store::keys;

pub const POLLS_PK: &str = "POLLS";
/// A flow's poll interval when it names none.
pub const DEFAULT_INTERVAL_SECS: u32 = 300;
/// The poller ticks every minute: no resource is polled more often.
pub const MIN_INTERVAL_SECS: u32 = 60;
/// The longest an idle resource waits between polls (the largest interval a flow may ask for).
pub const MAX_INTERVAL_SECS: u32 = 86_400;

/// A poll-triggered flow in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollEntry {
    pub owner: FlowOwner,
    pub flow_id: FlowId,
    pub connector: ConnectorId,
    pub resource: String,
    pub interval_seconds: u32,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub input: Map<String, Value>,
}

pub fn entry_key(owner: &FlowOwner, flow: &FlowId) -> Key {
    Key::new(POLLS_PK, format!("{}#{flow}", crate::store::keys::owner_pk(&owner)))
}

/// Keep the index in step with a flow: present while it is active with a poll trigger.
pub async fn sync(db: &Db, flow: &FlowRecord) -> Result<(), Error> {
    let key = entry_key(&flow.owner, &flow.id);
    match (&flow.trigger, flow.status) {
        (Trigger::Poll { connector, resource, interval_seconds, input }, FlowStatus::Active) => {
            let entry = PollEntry {
                owner: flow.owner.clone(),
                flow_id: flow.id.clone(),
                connector: connector.clone(),
                resource: resource.clone(),
                interval_seconds: interval_seconds
                    .unwrap_or(DEFAULT_INTERVAL_SECS)
                    .clamp(MIN_INTERVAL_SECS, MAX_INTERVAL_SECS),
                input: input.clone(),
            };
            db.store.put(Item::new(key, serde_json::to_value(&entry).unwrap_or(Value::Null)), Condition::None).await?;
        }
        _ => db.store.delete(&key, Condition::None).await?,
    }
    Ok(())
}

pub async fn remove(db: &Db, owner: &FlowOwner, flow: &FlowId) -> Result<(), Error> {
    Ok(db.store.delete(&entry_key(owner, flow), Condition::None).await?)
}

/// Every entry of the index.
pub async fn entries(db: &Db) -> PortResult<Vec<PollEntry>> {
    let items = crate::ports::query_all(db.store.as_ref(), Query::prefix(POLLS_PK, ""), 100_000).await?;
    items.iter().map(Item::parse).collect()
}

/// One tenant's poll of one resource (with one list input): a message on the polls queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollJob {
    pub space: SpaceId,
    pub tenant: TenantId,
    pub connector: ConnectorId,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub input: Map<String, Value>,
}

impl PollJob {
    /// What identifies the poll: flows polling the same resource with the same input share it.
    pub fn identity(&self) -> String {
        format!("{}#{}", keys::tenant_pk(&self.space, &self.tenant), state_key(self).sk)
    }
}

/// SHA-256 of a value's canonical JSON (object keys sorted at every depth), 16 hex digits: the
/// same record hashes the same whatever order a provider sends its fields in.
pub fn canonical_hash(value: &Value) -> String {
    fn feed(h: &mut Sha256, v: &Value) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                h.update(b"{");
                for k in keys {
                    feed(h, &Value::String(k.clone()));
                    h.update(b":");
                    feed(h, &map[k]);
                    h.update(b",");
                }
                h.update(b"}");
            }
            Value::Array(items) => {
                h.update(b"[");
                for item in items {
                    feed(h, item);
                    h.update(b",");
                }
                h.update(b"]");
            }
            other => h.update(other.to_string().as_bytes()),
        }
    }
    let mut h = Sha256::new();
    feed(&mut h, value);
    hex::encode(&h.finalize()[..8])
}

/// Where one tenant's poll of one resource stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollState {
    /// When the next poll is due (epoch ms); a tick that sends the job moves it on by a lease.
    pub next_due: i64,
    /// The current interval, between the flows' interval / 4 and × 4 (see the poller).
    pub interval_secs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_polled_at: Option<i64>,
    /// Records seen by the last complete poll.
    #[serde(default)]
    pub records: u64,
    /// Changes the last poll found.
    #[serde(default)]
    pub last_changes: u64,
    /// Record id → hash of the record, inline or as a blob reference; absent before the first
    /// poll (which takes the baseline and emits nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Value>,
    /// Counts saved snapshots: part of every change's run key, so a record that changes back
    /// and forth (A→B→A→B) starts a run each time, while a poll retried before its snapshot
    /// was saved finds the same generation and starts nothing twice.
    #[serde(default)]
    pub generation: u64,
    /// When the snapshot was last written (epoch ms): blob snapshots are rewritten before
    /// their blob expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_saved_at: Option<i64>,
    /// Consecutive failed polls, and the last failure.
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a poll last completed (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<i64>,
}

/// Consecutive failures from which a poll counts as unhealthy (`poll.unhealthy`).
pub const UNHEALTHY_AFTER: u32 = 3;

/// A tenant's poll states: (connector, resource, state), at most `limit`.
pub async fn list_states(
    db: &Db,
    space: &crate::domain::ids::SpaceId,
    tenant: &crate::domain::ids::TenantId,
    limit: usize,
) -> PortResult<Vec<(String, String, PollState)>> {
    let items =
        crate::ports::query_all(db.store.as_ref(), Query::prefix(keys::tenant_pk(space, tenant), "POLL#"), limit)
            .await?;
    items
        .iter()
        .map(|item| {
            let mut parts = item.key.sk.trim_start_matches("POLL#").splitn(3, '#');
            let connector = parts.next().unwrap_or_default().to_string();
            let resource = parts.next().unwrap_or_default().to_string();
            Ok((connector, resource, item.parse()?))
        })
        .collect()
}

pub fn state_key(job: &PollJob) -> Key {
    let mut sk = format!("POLL#{}#{}", job.connector, job.resource);
    if !job.input.is_empty() {
        sk.push('#');
        sk.push_str(&canonical_hash(&Value::Object(job.input.clone())));
    }
    Key::new(keys::tenant_pk(&job.space, &job.tenant), sk)
}

/// The stored state and its version (0 when there is none yet).
pub async fn get_state(db: &Db, job: &PollJob) -> PortResult<(PollState, u64)> {
    match db.store.get(&state_key(job)).await? {
        Some(item) => Ok((item.parse()?, item.version)),
        None => Ok((PollState::default(), 0)),
    }
}

/// Write the state if it is still at `version` (0: if there is none). `false` when someone
/// else changed it first.
pub async fn put_state(db: &Db, job: &PollJob, state: &PollState, version: u64) -> PortResult<bool> {
    let item = Item::new(state_key(job), serde_json::to_value(state).unwrap_or(Value::Null)).with_version(version + 1);
    let condition = if version == 0 { Condition::IfAbsent } else { Condition::IfVersion(version) };
    match db.store.put(item, condition).await {
        Ok(()) => Ok(true),
        Err(crate::ports::PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}
