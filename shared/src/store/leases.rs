//! Leases: one holder at a time for a read-modify-write that spans two services (a tenant's
//! credentials document in Secrets Manager, serialized through an item in the table).
//!
//! A lease is an item written if absent, with an expiry so a crashed holder cannot block the
//! others for longer than `ttl`; the holder releases it by deleting the exact version it wrote.

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use super::Db;
use crate::ports::{Condition, Item, Key, PortError};

/// A held lease.
pub struct Lease {
    key: Key,
    version: u64,
}

/// Take the lease at `key`, waiting up to `wait` for the current holder.
pub async fn acquire(db: &Db, key: Key, ttl: Duration, wait: Duration) -> Result<Lease, PortError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(20);
    loop {
        let now = db.clock.now_ms();
        // A random version tells our lease from a successor's when releasing.
        let version = u64::from(rand::random::<u32>()) + 1;
        let expires = now.div_euclid(1000) + ttl.as_secs().max(1) as i64;
        let item = Item::new(key.clone(), json!({"acquired_at": now})).with_version(version).expiring_at(expires);
        match db.store.put(item, Condition::IfAbsent).await {
            Ok(()) => return Ok(Lease { key, version }),
            Err(PortError::ConditionFailed) => {
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(PortError::Unavailable(format!("lease {} is busy", key.sk)));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Lease {
    /// Give the lease back (if it expired and someone else holds it now, leave theirs alone).
    pub async fn release(self, db: &Db) {
        match db.store.delete(&self.key, Condition::IfVersion(self.version)).await {
            Ok(()) | Err(PortError::ConditionFailed) => {}
            Err(e) => {
                tracing::warn!(lease = %self.key.sk, error = %e, "lease release failed; it will expire")
            }
        }
    }
}

/// Run `f` while holding the lease at `key`.
pub async fn with_lease<T, E, F, Fut>(db: &Db, key: Key, ttl: Duration, wait: Duration, f: F) -> Result<T, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<PortError>,
{
    let lease = acquire(db, key, ttl, wait).await?;
    let result = f().await;
    lease.release(db).await;
    result
}
