//! The audit log: one append-only record per write request (and per refused request) in a
//! space, kept for `retention_secs` (item TTL), listed newest first.
//!
//! Records are keyed by a ULID of their time (`S#{space}#AUDIT`/`AU#{ulid}`), so a time range
//! is a key range (records of the same millisecond list in no particular order); actor and action filters are applied while reading, scanning at most
//! [`MAX_SCAN`] records per page (a page may hold fewer matches than asked, with a cursor to
//! go on from).

use serde::{Deserialize, Serialize};

use super::{Db, Error, keys, to_value};
use crate::domain::ids::{SpaceId, ulid_at};
use crate::ports::{Condition, Item, Query, cursor};

/// How long records are kept unless `SWITCHYARD_AUDIT_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_SECS: i64 = 365 * 86_400;
/// Records read per page at most, whatever the filters match.
pub const MAX_SCAN: usize = 1000;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done (a 2xx).
    Succeeded,
    /// Refused for want of a permission (a 403), or a failed login.
    Denied,
    /// Tried and not done (any other 4xx or 5xx).
    Failed,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    /// Epoch milliseconds.
    pub at: i64,
    /// `key`, `member` or `platform_admin`.
    pub actor_kind: String,
    /// The key's id, the member's id, or `admin`; never a secret.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    /// `resource.verb`, e.g. `flow.update`, `member.add`, `credentials.set`, `auth.login_failed`.
    pub action: String,
    /// The path of what was acted on, e.g. `tenants/acme/workflows/sync`.
    pub resource: String,
    pub outcome: Outcome,
    /// The HTTP status answered.
    pub status: u16,
    pub request_id: String,
}

/// Filters of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Epoch milliseconds, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Append a record.
pub async fn append(db: &Db, space: &SpaceId, mut record: AuditRecord, retention_secs: i64) -> Result<(), Error> {
    record.id = ulid_at(record.at).to_string();
    let item = Item::new(keys::audit_record(space, &record.id), to_value(&record))
        .expiring_at(record.at / 1000 + retention_secs);
    Ok(db.store.put(item, Condition::IfAbsent).await?)
}

/// One page of records, newest first.
pub async fn list(
    db: &Db,
    space: &SpaceId,
    filter: &AuditFilter,
    limit: u32,
    after: Option<String>,
) -> Result<(Vec<AuditRecord>, Option<String>), Error> {
    // Newest first: the first page of a range starts just past its end.
    let start = after.or_else(|| {
        filter.until.map(|until| {
            cursor::encode(&format!("{}{}", keys::AUDIT_PREFIX, ulid::Ulid::from_parts((until + 1).max(0) as u64, 0)))
        })
    });
    let mut query =
        Query::prefix(keys::audit_pk(space), keys::AUDIT_PREFIX).descending().limit(limit.min(200)).after(start);
    let (mut found, mut scanned) = (Vec::new(), 0usize);
    loop {
        let page = db.store.query(&query).await?;
        for item in &page.items {
            scanned += 1;
            let record: AuditRecord = item.parse()?;
            if filter.since.is_some_and(|since| record.at < since) {
                return Ok((found, None));
            }
            let wanted = filter.actor.as_ref().is_none_or(|a| a == &record.actor)
                && filter.action.as_ref().is_none_or(|a| a == &record.action);
            if wanted {
                found.push(record);
            }
            if found.len() >= limit as usize || scanned >= MAX_SCAN {
                return Ok((found, Some(cursor::encode(&item.key.sk))));
            }
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok((found, None)),
        }
    }
}
