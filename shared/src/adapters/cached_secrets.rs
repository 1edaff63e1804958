//! The in-process cache in front of `Secrets`: one read per tenant per container per TTL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{PortResult, SecretDocument, SecretOwner, Secrets, TtlCache};

/// Caches each tenant's document (or its absence) for `ttl`. Writes go through and refresh the
/// entry, so a container always reads its own writes; other containers see a change within
/// `ttl` (webhook secret rotation keeps the previous secret valid for longer than that).
pub struct CachedSecrets {
    inner: Arc<dyn Secrets>,
    entries: TtlCache<SecretOwner, Option<SecretDocument>>,
}

/// Upper bound on cached tenants per container; past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

impl CachedSecrets {
    pub fn new(inner: Arc<dyn Secrets>, ttl: Duration) -> Self {
        CachedSecrets { inner, entries: TtlCache::new(ttl, MAX_ENTRIES) }
    }

    fn remember(&self, owner: &SecretOwner, document: Option<SecretDocument>) {
        self.entries.put(owner.clone(), document);
    }

    /// Forget everything (tests that change secrets behind the cache's back).
    pub fn clear(&self) {
        self.entries.clear();
    }
}

#[async_trait]
impl Secrets for CachedSecrets {
    async fn get(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        match self.entries.get(owner) {
            Some(document) => Ok(document),
            None => self.get_fresh(owner).await,
        }
    }

    /// Read past the cache (for read-modify-write under a lease) and refresh it.
    async fn get_fresh(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        let document = self.inner.get_fresh(owner).await?;
        self.remember(owner, document.clone());
        Ok(document)
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
