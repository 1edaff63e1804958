//! Spaces, tenants and API keys in the store.

use serde_json::Value;

use super::{Db, Error, require, to_value};
use crate::domain::access::{ApiKeyRecord, Role, generate_api_key, hash_api_key};
use crate::domain::flow::FlowOwner;
use crate::domain::ids::{ApiKeyId, SpaceId, TenantId};
use crate::domain::quota::QuotaOverrides;
use crate::domain::tenancy::{Plan, Space, Tenant, TenantRef, TenantStatus};
use crate::ports::{Condition, Item, PortError, Query, WriteOp};
use crate::store::keys;

/// A tenant with its space: what the webhook receiver and the executor need.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTenant {
    pub space: Space,
    pub tenant: Tenant,
}

impl ResolvedTenant {
    pub fn plan(&self) -> Plan {
        self.tenant.plan.unwrap_or(self.space.plan)
    }
}

pub async fn create_space(db: &Db, id: SpaceId, name: String, plan: Plan) -> Result<Space, Error> {
    let space = Space {
        id: id.clone(),
        name,
        plan,
        config: Default::default(),
        quotas: Default::default(),
        created_at: db.now_ms(),
    };
    match db.store.put(Item::new(keys::space(&id), to_value(&space)), Condition::IfAbsent).await {
        Ok(()) => Ok(space),
        Err(PortError::ConditionFailed) => Err(Error::Conflict(format!("space {id} already exists"))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_space(db: &Db, id: &SpaceId) -> Result<Option<Space>, Error> {
    Ok(db.store.get(&keys::space(id)).await?.map(|item| item.parse()).transpose()?)
}

pub async fn require_space(db: &Db, id: &SpaceId) -> Result<Space, Error> {
    get_space(db, id).await?.ok_or_else(|| Error::NotFound(format!("space {id} not found")))
}

pub async fn update_space_plan(db: &Db, id: &SpaceId, plan: Plan) -> Result<Space, Error> {
    update_space(db, id, |s| s.plan = plan).await
}

/// Set the space's configuration level.
pub async fn set_space_config(db: &Db, id: &SpaceId, config: serde_json::Map<String, Value>) -> Result<Space, Error> {
    crate::domain::config::validate(&config).map_err(|m| Error::invalid("invalid_config", m))?;
    update_space(db, id, |s| s.config = config.clone()).await
}

/// Set the space's quota overrides (for every tenant of the space).
pub async fn set_space_quotas(db: &Db, id: &SpaceId, quotas: QuotaOverrides) -> Result<Space, Error> {
    crate::domain::quota::validate(&quotas).map_err(|m| Error::invalid("invalid_quotas", m))?;
    update_space(db, id, |s| s.quotas = quotas.clone()).await
}

async fn update_space(db: &Db, id: &SpaceId, change: impl Fn(&mut Space)) -> Result<Space, Error> {
    let (item, mut space): (_, Space) = require(db, &keys::space(id), || format!("space {id} not found")).await?;
    change(&mut space);
    db.store
        .put(
            Item::new(item.key.clone(), to_value(&space)).with_version(item.version + 1),
            Condition::IfVersion(item.version),
        )
        .await?;
    db.caches.tenants.clear();
    Ok(space)
}

/// Create a tenant. Its id must be unused in the whole deployment, because webhook URLs name
/// the tenant alone (`/webhooks/{tenant}/{connector}`).
pub async fn create_tenant(
    db: &Db,
    space: &SpaceId,
    id: TenantId,
    name: String,
    plan: Option<Plan>,
) -> Result<Tenant, Error> {
    require_space(db, space).await?;
    let tenant = Tenant {
        id: id.clone(),
        space: space.clone(),
        name,
        status: TenantStatus::Active,
        plan,
        config: Default::default(),
        quotas: Default::default(),
        created_at: db.now_ms(),
    };
    let ops = vec![
        WriteOp::Put { item: Item::new(keys::tenant(space, &id), to_value(&tenant)), condition: Condition::IfAbsent },
        WriteOp::Put {
            item: Item::new(keys::tenant_ref(&id), to_value(&TenantRef { space: space.clone() })),
            condition: Condition::IfAbsent,
        },
    ];
    match db.store.transact(ops).await {
        Ok(()) => {
            db.caches.tenants.remove(&id.to_string());
            Ok(tenant)
        }
        Err(PortError::TransactionCancelled { failed }) if failed.contains(&0) => {
            Err(Error::Conflict(format!("tenant {id} already exists in this space")))
        }
        Err(PortError::TransactionCancelled { .. }) => Err(Error::Conflict(format!(
            "tenant id {id} is taken (by another space of this deployment, or by a deleted tenant); choose another id"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_tenant(db: &Db, space: &SpaceId, id: &TenantId) -> Result<Option<Tenant>, Error> {
    Ok(db.store.get(&keys::tenant(space, id)).await?.map(|item| item.parse()).transpose()?)
}

pub async fn require_tenant(db: &Db, space: &SpaceId, id: &TenantId) -> Result<Tenant, Error> {
    get_tenant(db, space, id).await?.ok_or_else(|| Error::NotFound(format!("tenant {id} not found")))
}

pub async fn list_tenants(
    db: &Db,
    space: &SpaceId,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<Tenant>, Option<String>), Error> {
    let page =
        db.store.query(&Query::prefix(keys::space_pk(space), keys::TENANT_PREFIX).limit(limit).after(cursor)).await?;
    let tenants = page.items.iter().map(|i| i.parse()).collect::<Result<Vec<Tenant>, _>>()?;
    Ok((tenants, page.next))
}

/// Delete a tenant: its record and its credentials (the secret document) go now, so nothing
/// reaches it any more (webhooks, polls, MCP and the API answer 404; queued runs are
/// cancelled). Its id stays taken (the tenant → space index is kept), so a new tenant can
/// never inherit what is left in its partition (flows, execution history), which expires
/// with its TTLs or stays unreachable.
pub async fn delete_tenant(db: &Db, space: &SpaceId, id: &TenantId) -> Result<(), Error> {
    require_tenant(db, space, id).await?;
    db.secrets.delete(&crate::store::connections::owner(space, id)).await?;
    db.store.delete(&keys::tenant(space, id), Condition::None).await?;
    db.caches.tenants.remove(&id.to_string());
    Ok(())
}

pub async fn set_tenant_status(db: &Db, space: &SpaceId, id: &TenantId, status: TenantStatus) -> Result<Tenant, Error> {
    update_tenant(db, space, id, |t| t.status = status).await
}

/// Set the tenant's configuration level.
pub async fn set_tenant_config(
    db: &Db,
    space: &SpaceId,
    id: &TenantId,
    config: serde_json::Map<String, Value>,
) -> Result<Tenant, Error> {
    crate::domain::config::validate(&config).map_err(|m| Error::invalid("invalid_config", m))?;
    update_tenant(db, space, id, |t| t.config = config.clone()).await
}

/// Set the tenant's own quota overrides.
pub async fn set_tenant_quotas(
    db: &Db,
    space: &SpaceId,
    id: &TenantId,
    quotas: QuotaOverrides,
) -> Result<Tenant, Error> {
    crate::domain::quota::validate(&quotas).map_err(|m| Error::invalid("invalid_quotas", m))?;
    update_tenant(db, space, id, |t| t.quotas = quotas.clone()).await
}

async fn update_tenant(db: &Db, space: &SpaceId, id: &TenantId, change: impl Fn(&mut Tenant)) -> Result<Tenant, Error> {
    let (item, mut tenant): (_, Tenant) =
        require(db, &keys::tenant(space, id), || format!("tenant {id} not found")).await?;
    change(&mut tenant);
    db.store
        .put(
            Item::new(item.key.clone(), to_value(&tenant)).with_version(item.version + 1),
            Condition::IfVersion(item.version),
        )
        .await?;
    db.caches.tenants.remove(&id.to_string());
    Ok(tenant)
}

/// Find a tenant and its space from the tenant id alone (cached per container).
pub async fn resolve_tenant(db: &Db, id: &TenantId) -> Result<Option<ResolvedTenant>, Error> {
    if let Some(cached) = db.caches.tenants.get(&id.to_string()) {
        return Ok(cached);
    }
    let resolved = match db.store.get(&keys::tenant_ref(id)).await? {
        None => None,
        Some(item) => {
            let tref: TenantRef = item.parse()?;
            match (get_space(db, &tref.space).await?, get_tenant(db, &tref.space, id).await?) {
                (Some(space), Some(tenant)) => Some(ResolvedTenant { space, tenant }),
                _ => None,
            }
        }
    };
    db.caches.tenants.put(id.to_string(), resolved.clone());
    Ok(resolved)
}

/// Create an API key; the key itself is returned once and never stored.
pub async fn create_api_key(
    db: &Db,
    space: &SpaceId,
    name: String,
    role: Role,
    tenant: Option<TenantId>,
    tools: Option<Vec<String>>,
    expires_at: Option<i64>,
) -> Result<(ApiKeyRecord, String), Error> {
    if role == Role::Tenant && tenant.is_none() {
        return Err(Error::invalid("bad_request", "a tenant key needs `tenant`"));
    }
    if role != Role::Tenant && tenant.is_some() {
        return Err(Error::invalid("bad_request", "only keys with role `tenant` are bound to a tenant"));
    }
    if let Some(t) = &tenant {
        require_tenant(db, space, t).await?;
    }
    let key = generate_api_key();
    let hash = hash_api_key(&key);
    let record = ApiKeyRecord {
        id: ApiKeyId::generate(db.now_ms()),
        space: space.clone(),
        name,
        role,
        tenant,
        tools,
        created_at: db.now_ms(),
        expires_at,
        last_used_at: None,
        prefix: key.chars().take(10).collect(),
        key_hash: hash.clone(),
    };
    if expires_at.is_some_and(|at| at <= record.created_at) {
        return Err(Error::invalid("bad_request", "expires_at must be in the future"));
    }
    let value = to_value(&record);
    // An expiring key's items go with it (the check at authentication is exact; the TTL only
    // tidies up).
    let item = |key| {
        let item = Item::new(key, value.clone());
        match expires_at {
            Some(at) => item.expiring_at(at / 1000 + 1),
            None => item,
        }
    };
    db.store
        .transact(vec![
            WriteOp::Put { item: item(keys::api_key_by_hash(&hash)), condition: Condition::IfAbsent },
            WriteOp::Put { item: item(keys::api_key_listing(space, &record.id)), condition: Condition::IfAbsent },
        ])
        .await?;
    Ok((record, key))
}

/// A space's keys, each with when it was last used (to within [`KEY_USE_INTERVAL`]).
pub async fn list_api_keys(db: &Db, space: &SpaceId) -> Result<Vec<ApiKeyRecord>, Error> {
    let store = db.store.as_ref();
    let items =
        crate::ports::query_all(store, Query::prefix(keys::space_pk(space), keys::API_KEY_PREFIX), 1000).await?;
    let uses =
        crate::ports::query_all(store, Query::prefix(keys::space_pk(space), keys::API_KEY_USE_PREFIX), 1000).await?;
    let mut records = items.iter().map(|i| i.parse()).collect::<Result<Vec<ApiKeyRecord>, _>>()?;
    for record in &mut records {
        let used = keys::api_key_use(space, &record.id);
        record.last_used_at = uses.iter().find(|u| u.key == used).and_then(|u| u.data.get("at")?.as_i64());
    }
    Ok(records)
}

/// How often a key's last use is written, per container: at most once per this interval, so
/// using a key costs no write per request.
pub const KEY_USE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Note that a key was used now, unless this container did within [`KEY_USE_INTERVAL`]. A
/// failure to write is logged and not the request's: the use was real either way.
pub async fn note_key_use(db: &Db, record: &ApiKeyRecord) {
    let id = record.id.to_string();
    if db.caches.key_uses.get(&id).is_some() {
        return;
    }
    db.caches.key_uses.put(id, ());
    let mut item = Item::new(keys::api_key_use(&record.space, &record.id), serde_json::json!({"at": db.now_ms()}));
    if let Some(at) = record.expires_at {
        item = item.expiring_at(at / 1000 + 1);
    }
    if let Err(e) = db.store.put(item, Condition::None).await {
        tracing::warn!(error = %e, key = %record.id, "recording an API key's last use failed");
    }
}

pub async fn revoke_api_key(db: &Db, space: &SpaceId, id: &ApiKeyId) -> Result<(), Error> {
    let listing = keys::api_key_listing(space, id);
    let item = db.store.get(&listing).await?.ok_or_else(|| Error::NotFound(format!("api key {id} not found")))?;
    let record: ApiKeyRecord = item.parse()?;
    db.store
        .transact(vec![
            WriteOp::Delete { key: listing, condition: Condition::None },
            WriteOp::Delete { key: keys::api_key_by_hash(&record.key_hash), condition: Condition::None },
            WriteOp::Delete { key: keys::api_key_use(space, id), condition: Condition::None },
        ])
        .await?;
    db.caches.api_keys.remove(&record.key_hash);
    Ok(())
}

/// A key's record by its id (for the console, whose session names the key, never holds it).
pub async fn get_api_key(db: &Db, space: &SpaceId, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, Error> {
    Ok(db.store.get(&keys::api_key_listing(space, id)).await?.map(|i| i.parse()).transpose()?)
}

/// The record of an API key, if it exists (cached per container for a few seconds: a revoked
/// key stops working everywhere within `CACHE_TTL`).
pub async fn find_api_key(db: &Db, key: &str) -> Result<Option<ApiKeyRecord>, Error> {
    let hash = hash_api_key(key);
    if let Some(cached) = db.caches.api_keys.get(&hash) {
        return Ok(cached);
    }
    let record: Option<ApiKeyRecord> =
        db.store.get(&keys::api_key_by_hash(&hash)).await?.map(|i| i.parse()).transpose()?;
    db.caches.api_keys.put(hash, record.clone());
    Ok(record)
}

/// The active tenants a flow of `owner` runs for: its tenant, or every tenant of its space.
pub async fn active_tenants_of(db: &Db, owner: &FlowOwner) -> Result<Vec<ResolvedTenant>, Error> {
    match owner {
        FlowOwner::Tenant { tenant, .. } => Ok(resolve_tenant(db, tenant)
            .await?
            .filter(|t| t.tenant.status == TenantStatus::Active)
            .into_iter()
            .collect()),
        FlowOwner::Space { space } => {
            let space_record = require_space(db, space).await?;
            let mut all = Vec::new();
            let mut cursor = None;
            loop {
                let (page, next) = list_tenants(db, space, 200, cursor).await?;
                all.extend(
                    page.into_iter()
                        .filter(|t| t.status == TenantStatus::Active)
                        .map(|tenant| ResolvedTenant { space: space_record.clone(), tenant }),
                );
                match next {
                    Some(n) => cursor = Some(n),
                    None => return Ok(all),
                }
            }
        }
    }
}
