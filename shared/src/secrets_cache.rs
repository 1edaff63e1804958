//! The in-process cache in front of `Secrets`: one read per tenant per container per TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::ports::{PortResult, SecretDocument, SecretOwner, Secrets};

/// Caches each tenant's document (or its absence) for `ttl`. Writes go through and refresh the
/// entry, so a container always reads its own writes; other containers see a change within
/// `ttl` (webhook secret rotation keeps the previous secret valid for longer than that).
pub struct CachedSecrets {
    inner: Arc<dyn Secrets>,
    ttl: Duration,
    entries: Mutex<HashMap<SecretOwner, (Instant, Option<SecretDocument>)>>,
}

/// Upper bound on cached tenants per container; past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

impl CachedSecrets {
    pub fn new(inner: Arc<dyn Secrets>, ttl: Duration) -> Self {
        CachedSecrets { inner, ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn cached(&self, owner: &SecretOwner) -> Option<Option<SecretDocument>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(owner).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, doc)| doc.clone())
    }

    fn remember(&self, owner: &SecretOwner, document: Option<SecretDocument>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(owner.clone(), (Instant::now(), document));
    }

    /// Read past the cache (for read-modify-write under a lease) and refresh it.
    pub async fn get_fresh(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        let document = self.inner.get(owner).await?;
        self.remember(owner, document.clone());
        Ok(document)
    }

    /// Forget everything (tests that change secrets behind the cache's back).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[async_trait]
impl Secrets for CachedSecrets {
    async fn get(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        match self.cached(owner) {
            Some(document) => Ok(document),
            None => self.get_fresh(owner).await,
        }
    }

    async fn put(&self, owner: &SecretOwner, document: &SecretDocument) -> PortResult<()> {
        self.inner.put(owner, document).await?;
        self.remember(owner, Some(document.clone()));
        Ok(())
    }

    async fn delete(&self, owner: &SecretOwner) -> PortResult<()> {
        self.inner.delete(owner).await?;
        self.remember(owner, None);
        Ok(())
    }
}
