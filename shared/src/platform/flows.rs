//! Flows in the store: a head item with the current version, and one immutable item per
//! version, so an execution can always load the exact version it pinned.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Platform;
use super::error::AppError;
use super::tenancy::ResolvedTenant;
use crate::domain::flow::{FlowDefinition, FlowOwner, Trigger};
use crate::domain::ids::{ConnectorId, FlowId, TenantId};
use crate::ports::{Condition, Item, PortError, Query, WriteOp, query_all};
use crate::store::keys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    #[default]
    Active,
    /// Kept but not triggered.
    Paused,
}

/// A flow's head: its current version and definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub id: FlowId,
    pub owner: FlowOwner,
    pub version: u32,
    #[serde(default)]
    pub status: FlowStatus,
    pub name: String,
    pub trigger: Trigger,
    pub definition: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One immutable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowVersion {
    pub id: FlowId,
    pub owner: FlowOwner,
    pub version: u32,
    pub definition: Value,
    pub created_at: i64,
}

impl FlowVersion {
    pub fn parse_definition(&self) -> Result<FlowDefinition, AppError> {
        FlowDefinition::from_stored(&self.definition).map_err(|e| AppError::Unavailable {
            detail: format!("stored flow {} v{} unreadable: {e}", self.id, self.version),
        })
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn invalidate(p: &Platform, owner: &FlowOwner) {
    p.caches.triggers.remove(&(crate::store::keys::owner_pk(&owner), String::new()));
}

/// Most flows a partition may hold when the plan sets no lower limit.
const MAX_FLOWS_PER_OWNER: usize = 1000;

async fn count_flows(p: &Platform, owner: &FlowOwner) -> Result<usize, AppError> {
    Ok(query_all(
        p.store.as_ref(),
        Query::prefix(crate::store::keys::owner_pk(&owner), keys::FLOW_PREFIX),
        MAX_FLOWS_PER_OWNER + 1,
    )
    .await?
    .len())
}

/// Create a flow from a validated definition. `limit` is the plan's flows-per-tenant quota.
pub async fn create_flow(
    p: &Platform,
    owner: FlowOwner,
    id: Option<FlowId>,
    definition: &FlowDefinition,
    limit: Option<u64>,
) -> Result<FlowRecord, AppError> {
    let count = count_flows(p, &owner).await?;
    let max = limit.map(|l| l as usize).unwrap_or(MAX_FLOWS_PER_OWNER).min(MAX_FLOWS_PER_OWNER);
    if count >= max {
        return Err(AppError::TooManyRequests {
            message: format!("flow limit of {max} reached for this plan"),
            retry_after_secs: 0,
        });
    }
    let now = p.now_ms();
    let id = id.unwrap_or_else(|| FlowId::generate(now));
    let definition_value = definition.to_value();
    let record = FlowRecord {
        id: id.clone(),
        owner: owner.clone(),
        version: 1,
        status: FlowStatus::Active,
        name: definition.name.clone(),
        trigger: definition.trigger.clone(),
        definition: definition_value.clone(),
        created_at: now,
        updated_at: now,
    };
    let version =
        FlowVersion { id: id.clone(), owner: owner.clone(), version: 1, definition: definition_value, created_at: now };
    let result = p
        .store
        .transact(vec![
            WriteOp::Put {
                item: Item::new(keys::flow(&owner, &id), to_value(&record)),
                condition: Condition::IfAbsent,
            },
            WriteOp::Put {
                item: Item::new(keys::flow_version(&owner, &id, 1), to_value(&version)),
                condition: Condition::IfAbsent,
            },
        ])
        .await;
    match result {
        Ok(()) => {
            invalidate(p, &owner);
            sync_indexes(p, &record, None).await?;
            Ok(record)
        }
        Err(PortError::TransactionCancelled { .. }) => Err(AppError::Conflict(format!("flow {id} already exists"))),
        Err(e) => Err(e.into()),
    }
}

/// Replace a flow's definition with a new version. With `expected_version`, refuse if someone
/// else changed it first.
pub async fn update_flow(
    p: &Platform,
    owner: &FlowOwner,
    id: &FlowId,
    definition: &FlowDefinition,
    expected_version: Option<u32>,
) -> Result<FlowRecord, AppError> {
    let item = p
        .store
        .get(&keys::flow(owner, id))
        .await?
        .ok_or_else(|| AppError::not_found(format!("flow {id} not found")))?;
    let mut record: FlowRecord = item.parse()?;
    if expected_version.is_some_and(|v| v != record.version) {
        return Err(AppError::Conflict(format!(
            "flow {id} is at version {}, not {}",
            record.version,
            expected_version.unwrap_or(0)
        )));
    }
    let previous = record.trigger.clone();
    let now = p.now_ms();
    record.version += 1;
    record.name = definition.name.clone();
    record.trigger = definition.trigger.clone();
    record.definition = definition.to_value();
    record.updated_at = now;
    let version = FlowVersion {
        id: id.clone(),
        owner: owner.clone(),
        version: record.version,
        definition: record.definition.clone(),
        created_at: now,
    };
    p.store
        .transact(vec![
            WriteOp::Put {
                item: Item::new(item.key.clone(), to_value(&record)).with_version(item.version + 1),
                condition: Condition::IfVersion(item.version),
            },
            WriteOp::Put {
                item: Item::new(keys::flow_version(owner, id, record.version), to_value(&version)),
                condition: Condition::IfAbsent,
            },
        ])
        .await?;
    invalidate(p, owner);
    sync_indexes(p, &record, Some(&previous)).await?;
    Ok(record)
}

/// Keep the scheduler's and the poller's indexes in step with a flow whose trigger is (or,
/// before this change, was) a schedule or a poll.
async fn sync_indexes(p: &Platform, record: &FlowRecord, previous: Option<&Trigger>) -> Result<(), AppError> {
    let was = |kind: fn(&Trigger) -> bool| kind(&record.trigger) || previous.is_some_and(kind);
    if was(|t| matches!(t, Trigger::Schedule { .. })) {
        super::schedules::sync(p, record).await?;
    }
    if was(|t| matches!(t, Trigger::Poll { .. })) {
        super::polls::sync(p, record).await?;
    }
    Ok(())
}

pub async fn set_flow_status(
    p: &Platform,
    owner: &FlowOwner,
    id: &FlowId,
    status: FlowStatus,
) -> Result<FlowRecord, AppError> {
    let item = p
        .store
        .get(&keys::flow(owner, id))
        .await?
        .ok_or_else(|| AppError::not_found(format!("flow {id} not found")))?;
    let mut record: FlowRecord = item.parse()?;
    record.status = status;
    record.updated_at = p.now_ms();
    p.store
        .put(
            Item::new(item.key.clone(), to_value(&record)).with_version(item.version + 1),
            Condition::IfVersion(item.version),
        )
        .await?;
    invalidate(p, owner);
    sync_indexes(p, &record, None).await?;
    Ok(record)
}

/// Delete a flow's head. Its versions stay, so executions in flight can finish.
pub async fn delete_flow(p: &Platform, owner: &FlowOwner, id: &FlowId) -> Result<(), AppError> {
    match p.store.delete(&keys::flow(owner, id), Condition::IfExists).await {
        Ok(()) => {
            invalidate(p, owner);
            super::schedules::remove(p, owner, id).await?;
            super::polls::remove(p, owner, id).await
        }
        Err(PortError::ConditionFailed) => Err(AppError::not_found(format!("flow {id} not found"))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_flow(p: &Platform, owner: &FlowOwner, id: &FlowId) -> Result<Option<FlowRecord>, AppError> {
    Ok(p.store.get(&keys::flow(owner, id)).await?.map(|i| i.parse()).transpose()?)
}

pub async fn list_flows(
    p: &Platform,
    owner: &FlowOwner,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<FlowRecord>, Option<String>), AppError> {
    let page = p
        .store
        .query(&Query::prefix(crate::store::keys::owner_pk(&owner), keys::FLOW_PREFIX).limit(limit).after(cursor))
        .await?;
    Ok((page.items.iter().map(|i| i.parse()).collect::<Result<Vec<_>, _>>()?, page.next))
}

/// A pinned version (immutable, so cached per container without expiry concerns).
pub async fn get_flow_version(
    p: &Platform,
    owner: &FlowOwner,
    id: &FlowId,
    version: u32,
) -> Result<Option<Arc<FlowVersion>>, AppError> {
    let key = keys::flow_version(owner, id, version);
    if let Some(found) = version_cache().get(&(key.pk.clone(), key.sk.clone())) {
        return Ok(Some(found));
    }
    let Some(item) = p.store.get(&key).await? else {
        return Ok(None);
    };
    let version: Arc<FlowVersion> = Arc::new(item.parse()?);
    version_cache().put((key.pk, key.sk), version.clone());
    Ok(Some(version))
}

fn version_cache() -> &'static super::caches::TtlCache<(String, String), Arc<FlowVersion>> {
    static CACHE: std::sync::OnceLock<super::caches::TtlCache<(String, String), Arc<FlowVersion>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| super::caches::TtlCache::new(std::time::Duration::from_secs(3600), 2048))
}

/// All active flows of a partition (cached per container for `CACHE_TTL`).
async fn active_flows(p: &Platform, owner: &FlowOwner) -> Result<Arc<Vec<Arc<FlowRecord>>>, AppError> {
    let key = (crate::store::keys::owner_pk(&owner), String::new());
    if let Some(found) = p.caches.triggers.get(&key) {
        return Ok(found);
    }
    let items = query_all(
        p.store.as_ref(),
        Query::prefix(crate::store::keys::owner_pk(&owner), keys::FLOW_PREFIX),
        MAX_FLOWS_PER_OWNER,
    )
    .await?;
    let flows: Vec<Arc<FlowRecord>> = items
        .iter()
        .filter_map(|i| i.parse::<FlowRecord>().ok())
        .filter(|f| f.status == FlowStatus::Active)
        .map(Arc::new)
        .collect();
    let flows = Arc::new(flows);
    p.caches.triggers.put(key, flows.clone());
    Ok(flows)
}

/// The flows a webhook event triggers for a tenant: the tenant's own and the space's shared
/// flows whose trigger matches the connector and event type.
pub async fn flows_for_webhook(
    p: &Platform,
    tenant: &ResolvedTenant,
    connector: &ConnectorId,
    event_type: &str,
) -> Result<Vec<Arc<FlowRecord>>, AppError> {
    let space_owner = FlowOwner::Space { space: tenant.space.id.clone() };
    let tenant_owner = FlowOwner::Tenant { space: tenant.space.id.clone(), tenant: tenant.tenant.id.clone() };
    let (shared, own) = futures::try_join!(active_flows(p, &space_owner), active_flows(p, &tenant_owner))?;
    Ok(shared.iter().chain(own.iter()).filter(|f| f.trigger.matches_webhook(connector, event_type)).cloned().collect())
}

/// Active flows with a given kind of trigger, for the scheduler and the poller.
pub async fn flows_with_trigger(
    p: &Platform,
    owner: &FlowOwner,
    wanted: impl Fn(&Trigger) -> bool,
) -> Result<Vec<Arc<FlowRecord>>, AppError> {
    Ok(active_flows(p, owner).await?.iter().filter(|f| wanted(&f.trigger)).cloned().collect())
}

/// Resolve a flow visible to a tenant: its own first, then the space's.
pub async fn find_flow_for_tenant(
    p: &Platform,
    tenant: &ResolvedTenant,
    id: &FlowId,
) -> Result<Option<FlowRecord>, AppError> {
    let own = FlowOwner::Tenant { space: tenant.space.id.clone(), tenant: tenant.tenant.id.clone() };
    if let Some(flow) = get_flow(p, &own, id).await? {
        return Ok(Some(flow));
    }
    get_flow(p, &FlowOwner::Space { space: tenant.space.id.clone() }, id).await
}

/// The owner of a tenant's own flows.
pub fn tenant_owner(tenant: &ResolvedTenant) -> FlowOwner {
    FlowOwner::Tenant { space: tenant.space.id.clone(), tenant: tenant.tenant.id.clone() }
}

/// The owner for a tenant id within a space.
pub fn owner_for(space: &crate::domain::ids::SpaceId, tenant: Option<&TenantId>) -> FlowOwner {
    match tenant {
        Some(t) => FlowOwner::Tenant { space: space.clone(), tenant: t.clone() },
        None => FlowOwner::Space { space: space.clone() },
    }
}
