//! Short-lived per-container caches of hot, rarely changing reads, all following the one
//! policy of [`TtlCache`].

use std::sync::Arc;
use std::time::Duration;

use super::connections::ConnectorSettings;
use super::flows::FlowRecord;
use super::tenants::ResolvedTenant;
use crate::domain::access::{ApiKeyRecord, CustomRole, Member};
use crate::ports::TtlCache;

/// How long per-container caches of tenants, keys, triggers and connector settings live: a
/// change made in another container is seen within this.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Upper bound on the entries of each cache.
const MAX_ENTRIES: usize = 10_000;

/// The caches a container keeps. Writers in this container invalidate what they change;
/// other containers see changes within the TTL.
pub struct Caches {
    pub tenants: TtlCache<String, Option<ResolvedTenant>>,
    pub api_keys: TtlCache<String, Option<ApiKeyRecord>>,
    pub triggers: TtlCache<(String, String), Arc<Vec<Arc<FlowRecord>>>>,
    pub connector_settings: TtlCache<(String, String), Option<ConnectorSettings>>,
    /// A person's memberships, by member id: how long a removed member keeps access elsewhere.
    pub memberships: TtlCache<String, Vec<Member>>,
    /// Custom roles by (space, name).
    pub custom_roles: TtlCache<(String, String), Option<CustomRole>>,
    /// Keys whose last use this container wrote recently (`tenants::KEY_USE_INTERVAL`).
    pub key_uses: TtlCache<String, ()>,
    /// Bytes a tenant stores, by tenant partition: the storage quota is checked against this
    /// at every admission, so it is read from the store at most once per TTL.
    pub storage: TtlCache<String, u64>,
}

impl Caches {
    pub fn new(ttl: Duration) -> Self {
        Caches {
            tenants: TtlCache::new(ttl, MAX_ENTRIES),
            api_keys: TtlCache::new(ttl, MAX_ENTRIES),
            triggers: TtlCache::new(ttl, MAX_ENTRIES),
            connector_settings: TtlCache::new(ttl, MAX_ENTRIES),
            memberships: TtlCache::new(ttl, MAX_ENTRIES),
            custom_roles: TtlCache::new(ttl, MAX_ENTRIES),
            key_uses: TtlCache::new(super::tenants::KEY_USE_INTERVAL, MAX_ENTRIES),
            storage: TtlCache::new(ttl, MAX_ENTRIES),
        }
    }
    pub fn clear(&self) {
        self.tenants.clear();
        self.api_keys.clear();
        self.triggers.clear();
        self.connector_settings.clear();
        self.memberships.clear();
        self.custom_roles.clear();
        self.key_uses.clear();
        self.storage.clear();
    }
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new(CACHE_TTL)
    }
}
