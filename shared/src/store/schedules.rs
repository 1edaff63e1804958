//! What the scheduler reads every minute: the index of cron-triggered flows, and the timers of
//! executions waiting longer than an SQS delay can (15 minutes).
//!
//! - `SCHEDULES` partition, one item per active scheduled flow (`{owner pk}#{flow}`), kept in
//!   step with the flow by the flow repository; it carries the next due time.
//! - `TIMERS#{shard}` partitions, one item per parked execution (`T#{due ms}#{execution}`),
//!   sorted by due time so a tick reads only what is due. A run deferred by a
//!   `queue_for_later` quota is a timer too, carrying its start message.
//! - `DEFER#{execution}` in the tenant's partition: what a deferred run shows until it starts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Db, Error};
use crate::domain::flow::FlowOwner;
use crate::domain::flow::Trigger;
use crate::domain::flow::{FlowRecord, FlowStatus};
use crate::domain::ids::{ExecutionId, FlowId, SpaceId, TenantId};
use crate::domain::schedule::CronSchedule;
use crate::ports::{Condition, Item, Key, PortResult, Query};

pub const SCHEDULES_PK: &str = "SCHEDULES";
/// Timer partitions (spreads writes of many parked executions).
pub const TIMER_SHARDS: u32 = 8;

/// A scheduled flow in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    pub owner: FlowOwner,
    pub flow_id: FlowId,
    pub cron: String,
    pub timezone: String,
    /// The last occurrence runs were started for (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_due: Option<i64>,
    pub next_due: i64,
}

pub fn schedule_key(owner: &FlowOwner, flow: &FlowId) -> Key {
    Key::new(SCHEDULES_PK, format!("{}#{flow}", crate::store::keys::owner_pk(&owner)))
}

/// Keep the index in step with a flow: present while it is active with a schedule trigger.
pub async fn sync(db: &Db, flow: &FlowRecord) -> Result<(), Error> {
    let key = schedule_key(&flow.owner, &flow.id);
    match (&flow.trigger, flow.status) {
        (Trigger::Schedule { cron, timezone }, FlowStatus::Active) => {
            let schedule = CronSchedule::parse(cron, timezone).map_err(|m| Error::invalid("bad_request", m))?;
            let now = db.now_ms();
            let Some(next_due) = schedule.next_after(now) else {
                db.store.delete(&key, Condition::None).await?;
                return Ok(());
            };
            let entry = ScheduleEntry {
                owner: flow.owner.clone(),
                flow_id: flow.id.clone(),
                cron: cron.clone(),
                timezone: timezone.clone(),
                last_due: None,
                next_due,
            };
            db.store.put(Item::new(key, serde_json::to_value(&entry).unwrap_or(Value::Null)), Condition::None).await?;
        }
        _ => db.store.delete(&key, Condition::None).await?,
    }
    Ok(())
}

pub async fn remove(db: &Db, owner: &FlowOwner, flow: &FlowId) -> Result<(), Error> {
    Ok(db.store.delete(&schedule_key(owner, flow), Condition::None).await?)
}

/// A parked execution's wake-up call, or a deferred start (`start` holds its message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub space: SpaceId,
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
    pub token: String,
    pub due: i64,
    /// The start message of a run deferred by a `queue_for_later` quota, sent as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// A run deferred to a later quota window: the execution as `GET …/executions/{id}` shows it
/// until it starts (status `queued`, no input), and when it will be queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredStart {
    pub execution: crate::domain::execution::Execution,
    /// When it will be queued (epoch ms).
    pub runs_at: i64,
}

fn deferred_key(space: &SpaceId, tenant: &TenantId, execution: &ExecutionId) -> Key {
    Key::new(crate::store::keys::tenant_pk(space, tenant), format!("DEFER#{execution}"))
}

/// Record a deferred start where its tenant can see it (kept a day past its start).
pub async fn add_deferred(db: &Db, space: &SpaceId, tenant: &TenantId, start: &DeferredStart) -> PortResult<()> {
    let item =
        Item::new(deferred_key(space, tenant, &start.execution.id), serde_json::to_value(start).unwrap_or(Value::Null))
            .expiring_at(start.runs_at / 1000 + 86_400);
    db.store.put(item, Condition::None).await
}

pub async fn get_deferred(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    execution: &ExecutionId,
) -> PortResult<Option<DeferredStart>> {
    db.store.get(&deferred_key(space, tenant, execution)).await?.map(|i| i.parse()).transpose()
}

/// A tenant's deferred starts, by execution id (at most `limit`).
pub async fn list_deferred(db: &Db, space: &SpaceId, tenant: &TenantId, limit: u32) -> PortResult<Vec<DeferredStart>> {
    let page =
        db.store.query(&Query::prefix(crate::store::keys::tenant_pk(space, tenant), "DEFER#").limit(limit)).await?;
    page.items.iter().map(|i| i.parse()).collect()
}

fn timer_shard(execution: &ExecutionId) -> u32 {
    execution.as_str().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % TIMER_SHARDS
}

pub fn timer_key(execution: &ExecutionId, due: i64) -> Key {
    Key::new(format!("TIMERS#{}", timer_shard(execution)), format!("T#{due:013}#{execution}"))
}

/// Park an execution until `due` (the scheduler sends its resume message when it is near).
pub async fn add_timer(db: &Db, timer: &Timer) -> PortResult<()> {
    let key = timer_key(&timer.execution_id, timer.due);
    db.store.put(Item::new(key, serde_json::to_value(timer).unwrap_or(Value::Null)), Condition::None).await
}

/// Timers due at or before `until`, oldest first, at most `limit` per shard.
pub async fn due_timers(db: &Db, until: i64, limit: u32) -> PortResult<Vec<(Key, Timer)>> {
    let mut due = Vec::new();
    for shard in 0..TIMER_SHARDS {
        let page = db.store.query(&Query::prefix(format!("TIMERS#{shard}"), "T#").limit(limit)).await?;
        for item in page.items {
            let timer: Timer = item.parse()?;
            if timer.due > until {
                break;
            }
            due.push((item.key, timer));
        }
    }
    Ok(due)
}

/// Every schedule entry (a tick walks them all; the index holds only active scheduled flows).
pub async fn entries(db: &Db) -> PortResult<Vec<(Item, ScheduleEntry)>> {
    let items = crate::ports::query_all(db.store.as_ref(), Query::prefix(SCHEDULES_PK, ""), 100_000).await?;
    items
        .into_iter()
        .map(|item| {
            let entry = item.parse()?;
            Ok((item, entry))
        })
        .collect()
}

/// Move a schedule entry on (its next and last occurrences), if nobody did since `current`
/// was read: `ConditionFailed` otherwise.
pub async fn advance(db: &Db, current: &Item, next: &ScheduleEntry) -> PortResult<()> {
    let updated = Item::new(current.key.clone(), serde_json::to_value(next).unwrap_or(Value::Null))
        .with_version(current.version + 1);
    db.store.put(updated, Condition::IfVersion(current.version)).await
}

/// Drop a timer whose resume message was sent.
pub async fn remove_timer(db: &Db, key: &Key) -> PortResult<()> {
    db.store.delete(key, Condition::None).await
}
