//! Appending to a space's audit log, for the API's writes, MCP's state-changing tools, refused
//! requests and failed logins (`store::audit` keeps the records).
//!
//! The record is written after the operation answered, so it states the outcome; a failure
//! to write it is logged and does not change the answer (the change is made either way, and
//! failing the request would invite a retry that makes it twice).

use super::auth::{Actor, Principal};
use crate::domain::ids::SpaceId;
use crate::store::audit::{self, AuditRecord, Outcome};
use crate::store::{Db, tenants};

/// What one request did, for its record.
pub struct Entry<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub status: u16,
    pub request_id: &'a str,
}

/// The outcome an HTTP status stands for.
pub fn outcome_of(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Succeeded,
        401 | 403 => Outcome::Denied,
        _ => Outcome::Failed,
    }
}

fn record(actor: &Actor, entry: &Entry<'_>, now: i64) -> AuditRecord {
    AuditRecord {
        id: String::new(),
        at: now,
        actor_kind: actor.kind().to_string(),
        actor: actor.id(),
        actor_email: actor.email().map(str::to_string),
        action: entry.action.to_string(),
        resource: entry.resource.chars().take(512).collect(),
        outcome: outcome_of(entry.status),
        status: entry.status,
        request_id: entry.request_id.to_string(),
    }
}

async fn append(db: &Db, space: &SpaceId, record: AuditRecord, retention_secs: i64) {
    if let Err(e) = audit::append(db, space, record, retention_secs).await {
        tracing::warn!(error = %e, %space, "writing an audit record failed");
    }
}

/// Record what an authenticated caller did in its space (nothing when it acted on none).
pub async fn note(db: &Db, who: &Principal, entry: Entry<'_>, retention_secs: i64) {
    if let Some(space) = &who.space {
        note_in(db, space, &who.actor, entry, retention_secs).await;
    }
}

/// Record what an actor did in a given space (one it just created, say).
pub async fn note_in(db: &Db, space: &SpaceId, actor: &Actor, entry: Entry<'_>, retention_secs: i64) {
    append(db, space, record(actor, &entry, db.now_ms()), retention_secs).await;
}

/// Record a failed login in the space the request named, when that space exists (so a
/// stranger cannot create audit logs for spaces that are not there).
pub async fn note_failed_login(db: &Db, space: &SpaceId, entry: Entry<'_>, retention_secs: i64) {
    if !matches!(tenants::get_space(db, space).await, Ok(Some(_))) {
        return;
    }
    let mut record = record(&Actor::PlatformAdmin, &entry, db.now_ms());
    record.actor_kind = "anonymous".into();
    record.actor = "anonymous".into();
    record.outcome = Outcome::Denied;
    append(db, space, record, retention_secs).await;
}
