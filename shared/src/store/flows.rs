//! Flows in the store: a head item with the current version, and one immutable item per
//! version, so an execution can always load the exact version it pinned.

use std::sync::Arc;

use super::tenants::ResolvedTenant;
use super::{Db, Error, require, to_value};
use crate::domain::flow::{FlowDefinition, FlowOwner, Trigger};
use crate::domain::ids::{ConnectorId, FlowId, TenantId};
use crate::domain::quota::{Dimension, EffectiveQuota};
use crate::ports::{Condition, Item, PortError, Query, WriteOp, query_all};
use crate::store::keys;
use crate::store::quotas::{self, Notice};

pub use crate::domain::flow::{FlowRecord, FlowStatus, FlowVersion};

/// A stored version's definition; one that does not read back is corrupt (it was validated
/// when it was stored).
pub fn definition_of(version: &FlowVersion) -> Result<FlowDefinition, Error> {
    version.parse_definition().map_err(|e| {
        Error::Port(PortError::corrupt(format!("stored flow {} v{} unreadable: {e}", version.id, version.version)))
    })
}

fn invalidate(db: &Db, owner: &FlowOwner) {
    db.caches.triggers.remove(&(crate::store::keys::owner_pk(&owner), String::new()));
}

/// Most flows a partition may hold whatever the plan says (trigger lookups read them all).
pub const MAX_FLOWS_PER_OWNER: i64 = 1000;

/// The flows quota of an owner: the tenant's `flows_per_tenant`, or for space-wide flows the
/// space plan's (see `domain::quota`), and the partition its gauge lives in.
async fn flows_quota(db: &Db, owner: &FlowOwner) -> Result<EffectiveQuota, Error> {
    Ok(match owner {
        FlowOwner::Tenant { space, tenant } => {
            let space = super::tenants::require_space(db, space).await?;
            let tenant = super::tenants::require_tenant(db, &space.id, tenant).await?;
            quotas::effective(db, &ResolvedTenant { space, tenant }, Dimension::FlowsPerTenant)
        }
        FlowOwner::Space { space } => {
            let space = super::tenants::require_space(db, space).await?;
            quotas::effective_for_space(db, &space, Dimension::FlowsPerTenant)
        }
    })
}

fn quota_owner(owner: &FlowOwner) -> quotas::Owner<'_> {
    match owner {
        FlowOwner::Tenant { space, tenant } => quotas::Owner::Tenant(space, tenant),
        FlowOwner::Space { space } => quotas::Owner::Space(space),
    }
}

/// Create a flow from a validated definition, taking one of the owner's flows quota in the
/// same transaction (refused past a hard limit with nothing written; past a soft one the
/// notice is returned).
pub async fn create_flow(
    db: &Db,
    owner: FlowOwner,
    id: Option<FlowId>,
    definition: &FlowDefinition,
) -> Result<(FlowRecord, Option<Notice>), Error> {
    let rule = flows_quota(db, &owner).await?;
    let now = db.now_ms();
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
    let result = db
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
            quotas::gauge_op(quota_owner(&owner), &rule, 1, Some(MAX_FLOWS_PER_OWNER)),
        ])
        .await;
    match result {
        Ok(()) => {
            invalidate(db, &owner);
            sync_indexes(db, &record, None).await?;
            let notice = quotas::gauge_notice(db, quota_owner(&owner), &rule, 1).await?;
            Ok((record, notice))
        }
        Err(PortError::TransactionCancelled { failed }) if failed == [2] => Err(quotas::gauge_refused(&rule)),
        Err(PortError::TransactionCancelled { .. }) => Err(Error::Conflict(format!("flow {id} already exists"))),
        Err(e) => Err(e.into()),
    }
}

/// Replace a flow's definition with a new version. With `expected_version`, refuse if someone
/// else changed it first.
pub async fn update_flow(
    db: &Db,
    owner: &FlowOwner,
    id: &FlowId,
    definition: &FlowDefinition,
    expected_version: Option<u32>,
) -> Result<FlowRecord, Error> {
    let (item, mut record): (_, FlowRecord) =
        require(db, &keys::flow(owner, id), || format!("flow {id} not found")).await?;
    if expected_version.is_some_and(|v| v != record.version) {
        return Err(Error::Conflict(format!(
            "flow {id} is at version {}, not {}",
            record.version,
            expected_version.unwrap_or(0)
        )));
    }
    let previous = record.trigger.clone();
    let now = db.now_ms();
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
    db.store
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
    invalidate(db, owner);
    sync_indexes(db, &record, Some(&previous)).await?;
    Ok(record)
}

/// Keep the scheduler's and the poller's indexes in step with a flow whose trigger is (or,
/// before this change, was) a schedule or a poll.
async fn sync_indexes(db: &Db, record: &FlowRecord, previous: Option<&Trigger>) -> Result<(), Error> {
    let was = |kind: fn(&Trigger) -> bool| kind(&record.trigger) || previous.is_some_and(kind);
    if was(|t| matches!(t, Trigger::Schedule { .. })) {
        super::schedules::sync(db, record).await?;
    }
    if was(|t| matches!(t, Trigger::Poll { .. })) {
        super::polls::sync(db, record).await?;
    }
    Ok(())
}

pub async fn set_flow_status(db: &Db, owner: &FlowOwner, id: &FlowId, status: FlowStatus) -> Result<FlowRecord, Error> {
    let (item, mut record): (_, FlowRecord) =
        require(db, &keys::flow(owner, id), || format!("flow {id} not found")).await?;
    record.status = status;
    record.updated_at = db.now_ms();
    db.store
        .put(
            Item::new(item.key.clone(), to_value(&record)).with_version(item.version + 1),
            Condition::IfVersion(item.version),
        )
        .await?;
    invalidate(db, owner);
    sync_indexes(db, &record, None).await?;
    Ok(record)
}

/// Delete a flow's head. Its versions stay, so executions in flight can finish.
pub async fn delete_flow(db: &Db, owner: &FlowOwner, id: &FlowId) -> Result<(), Error> {
    let ops = vec![
        WriteOp::Delete { key: keys::flow(owner, id), condition: Condition::IfExists },
        WriteOp::Add {
            key: quotas::gauge_key(quota_owner(owner), Dimension::FlowsPerTenant),
            delta: -1,
            ceiling: None,
        },
    ];
    match db.store.transact(ops).await {
        Ok(()) => {
            invalidate(db, owner);
            super::schedules::remove(db, owner, id).await?;
            super::polls::remove(db, owner, id).await
        }
        Err(PortError::TransactionCancelled { .. }) => Err(Error::NotFound(format!("flow {id} not found"))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_flow(db: &Db, owner: &FlowOwner, id: &FlowId) -> Result<Option<FlowRecord>, Error> {
    Ok(db.store.get(&keys::flow(owner, id)).await?.map(|i| i.parse()).transpose()?)
}

pub async fn list_flows(
    db: &Db,
    owner: &FlowOwner,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<FlowRecord>, Option<String>), Error> {
    let page = db
        .store
        .query(&Query::prefix(crate::store::keys::owner_pk(&owner), keys::FLOW_PREFIX).limit(limit).after(cursor))
        .await?;
    Ok((page.items.iter().map(|i| i.parse()).collect::<Result<Vec<_>, _>>()?, page.next))
}

/// A pinned version (immutable, so cached per container without expiry concerns).
pub async fn get_flow_version(
    db: &Db,
    owner: &FlowOwner,
    id: &FlowId,
    version: u32,
) -> Result<Option<Arc<FlowVersion>>, Error> {
    let key = keys::flow_version(owner, id, version);
    if let Some(found) = version_cache().get(&(key.pk.clone(), key.sk.clone())) {
        return Ok(Some(found));
    }
    let Some(item) = db.store.get(&key).await? else {
        return Ok(None);
    };
    let version: Arc<FlowVersion> = Arc::new(item.parse()?);
    version_cache().put((key.pk, key.sk), version.clone());
    Ok(Some(version))
}

fn version_cache() -> &'static crate::ports::TtlCache<(String, String), Arc<FlowVersion>> {
    static CACHE: std::sync::OnceLock<crate::ports::TtlCache<(String, String), Arc<FlowVersion>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| crate::ports::TtlCache::new(std::time::Duration::from_secs(3600), 2048))
}

/// All active flows of a partition (cached per container for `CACHE_TTL`).
async fn active_flows(db: &Db, owner: &FlowOwner) -> Result<Arc<Vec<Arc<FlowRecord>>>, Error> {
    let key = (crate::store::keys::owner_pk(&owner), String::new());
    if let Some(found) = db.caches.triggers.get(&key) {
        return Ok(found);
    }
    let items = query_all(
        db.store.as_ref(),
        Query::prefix(crate::store::keys::owner_pk(&owner), keys::FLOW_PREFIX),
        MAX_FLOWS_PER_OWNER as usize,
    )
    .await?;
    let flows: Vec<Arc<FlowRecord>> = items
        .iter()
        .filter_map(|i| i.parse::<FlowRecord>().ok())
        .filter(|f| f.status == FlowStatus::Active)
        .map(Arc::new)
        .collect();
    let flows = Arc::new(flows);
    db.caches.triggers.put(key, flows.clone());
    Ok(flows)
}

/// The flows a webhook event triggers for a tenant: the tenant's own and the space's shared
/// flows whose trigger matches the connector and event type.
pub async fn flows_for_webhook(
    db: &Db,
    tenant: &ResolvedTenant,
    connector: &ConnectorId,
    event_type: &str,
) -> Result<Vec<Arc<FlowRecord>>, Error> {
    let space_owner = FlowOwner::Space { space: tenant.space.id.clone() };
    let tenant_owner = FlowOwner::Tenant { space: tenant.space.id.clone(), tenant: tenant.tenant.id.clone() };
    let (shared, own) = futures::try_join!(active_flows(db, &space_owner), active_flows(db, &tenant_owner))?;
    Ok(shared.iter().chain(own.iter()).filter(|f| f.trigger.matches_webhook(connector, event_type)).cloned().collect())
}

/// Active flows with a given kind of trigger, for the scheduler and the poller.
pub async fn flows_with_trigger(
    db: &Db,
    owner: &FlowOwner,
    wanted: impl Fn(&Trigger) -> bool,
) -> Result<Vec<Arc<FlowRecord>>, Error> {
    Ok(active_flows(db, owner).await?.iter().filter(|f| wanted(&f.trigger)).cloned().collect())
}

/// Resolve a flow visible to a tenant: its own first, then the space's.
pub async fn find_flow_for_tenant(db: &Db, tenant: &ResolvedTenant, id: &FlowId) -> Result<Option<FlowRecord>, Error> {
    let own = FlowOwner::Tenant { space: tenant.space.id.clone(), tenant: tenant.tenant.id.clone() };
    if let Some(flow) = get_flow(db, &own, id).await? {
        return Ok(Some(flow));
    }
    get_flow(db, &FlowOwner::Space { space: tenant.space.id.clone() }, id).await
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
