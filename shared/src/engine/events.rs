//! Publishing platform events, only those a space consumes: the configuration key
//! `platform_events` (`domain::config::PlatformEvents`) of the platform, space and tenant levels
//! decides, and unset is none, so a space with no consumer costs no `PutEvents`. Every
//! publisher goes through here.

use crate::domain::config::{self, PlatformEvents};
use crate::domain::ids::{SpaceId, TenantId};
use crate::engine::Engine;
use crate::ports::PlatformEvent;
use crate::store::{self, tenants};

/// What the space (and, when named, the tenant) has `platform_events` set to. The tenant and
/// space come from the per-container cache the executor and receiver already fill.
async fn wanted(engine: &Engine, space: &SpaceId, tenant: Option<&TenantId>) -> Result<PlatformEvents, store::Error> {
    let db = &engine.db;
    let platform = &db.deployment.platform_config;
    let effective = match tenant {
        Some(tenant) => match tenants::resolve_tenant(db, tenant).await? {
            Some(resolved) if &resolved.space.id == space => {
                config::cascade(&[platform, &resolved.space.config, &resolved.tenant.config])
            }
            // A tenant deleted meanwhile: its space decides.
            _ => space_level(engine, space).await?,
        },
        None => space_level(engine, space).await?,
    };
    Ok(config::platform_events(&effective))
}

/// The platform and space levels (the platform's alone when the space is gone).
async fn space_level(engine: &Engine, space: &SpaceId) -> Result<serde_json::Value, store::Error> {
    let platform = &engine.db.deployment.platform_config;
    Ok(match tenants::get_space(&engine.db, space).await? {
        Some(found) => config::cascade(&[platform, &found.config]),
        None => config::cascade(&[platform]),
    })
}

/// Publish the events of `space` (and `tenant`) that its configuration asks for; none is one
/// call less.
pub async fn publish(
    engine: &Engine,
    space: &SpaceId,
    tenant: Option<&TenantId>,
    events: &[PlatformEvent],
) -> Result<(), store::Error> {
    let wanted = wanted(engine, space, tenant).await?;
    let chosen: Vec<PlatformEvent> = events.iter().filter(|e| wanted.allows(&e.detail_type)).cloned().collect();
    if chosen.is_empty() {
        return Ok(());
    }
    engine.bus.publish(&chosen).await?;
    Ok(())
}
