//! Large JSON values kept in the table in chunks, referenced from messages and items.
//!
//! SQS messages stop at 256 KiB and DynamoDB items at 400 KB, while a webhook may carry 1 MiB.
//! A value too large to travel inline is written once, as chunk items in its own partition
//! (`S#{space}#T#{tenant}#B#{id}`) in one transaction, and replaced by
//! `{"$blob": {"id", "size", "chunks"}}` wherever it would have gone.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::Db;
use crate::domain::ids::{SpaceId, TenantId, ulid_at};
use crate::ports::{Condition, Item, Key, PortError, PortResult, WriteOp};
use crate::store::keys;

/// Bytes of JSON text per chunk item (below the 400 KB item limit with room to spare).
pub const CHUNK_BYTES: usize = 300 * 1024;
/// Values larger than this are stored as blobs instead of inline.
pub const INLINE_LIMIT: usize = 200 * 1024;
/// How long blobs are kept: executions reference their input for this long.
pub const BLOB_TTL_SECS: i64 = 30 * 86_400;
/// Largest blob: 10 MiB (34 chunks, well within one transaction).
pub const MAX_BLOB_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub id: String,
    pub size: usize,
    pub chunks: usize,
}

fn chunk_key(space: &SpaceId, tenant: &TenantId, id: &str, index: usize) -> Key {
    Key::new(format!("{}#B#{id}", keys::tenant_pk(space, tenant)), format!("C#{index:04}"))
}

/// Split text into pieces of at most `max` bytes without cutting a UTF-8 character.
fn split(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(&rest[..end]);
        rest = &rest[end..];
    }
    parts
}

/// Store a value as a blob.
pub async fn put(db: &Db, space: &SpaceId, tenant: &TenantId, value: &Value) -> PortResult<BlobRef> {
    let text = serde_json::to_string(value).map_err(PortError::invalid)?;
    put_text(db, space, tenant, &text).await
}

/// Store JSON text as a blob.
pub async fn put_text(db: &Db, space: &SpaceId, tenant: &TenantId, text: &str) -> PortResult<BlobRef> {
    if text.len() > MAX_BLOB_BYTES {
        return Err(PortError::too_large(format!("value of {} bytes exceeds {MAX_BLOB_BYTES} bytes", text.len())));
    }
    let id = ulid_at(db.now_ms()).to_string();
    let expires = db.clock.now_secs() + BLOB_TTL_SECS;
    let parts = split(text, CHUNK_BYTES);
    let ops = parts
        .iter()
        .enumerate()
        .map(|(i, part)| WriteOp::Put {
            item: Item::new(chunk_key(space, tenant, &id, i), json!({ "part": part })).expiring_at(expires),
            condition: Condition::IfAbsent,
        })
        .collect();
    db.store.transact(ops).await?;
    let owner = super::quotas::Owner::Tenant(space, tenant);
    if let Err(e) = super::quotas::add_storage(db, owner, text.len() as u64, Some(expires)).await {
        tracing::warn!(error = %e, bytes = text.len(), "blob storage not counted");
    }
    Ok(BlobRef { id, size: text.len(), chunks: parts.len() })
}

/// Read a blob back.
pub async fn get(db: &Db, space: &SpaceId, tenant: &TenantId, blob: &BlobRef) -> PortResult<Value> {
    let reads = (0..blob.chunks).map(|i| db.store.get_owned(chunk_key(space, tenant, &blob.id, i)));
    let mut text = String::with_capacity(blob.size);
    for item in futures::future::try_join_all(reads).await? {
        let item = item.ok_or_else(|| PortError::corrupt(format!("blob {} is incomplete or expired", blob.id)))?;
        text.push_str(item.data.get("part").and_then(Value::as_str).unwrap_or_default());
    }
    serde_json::from_str(&text).map_err(|e| PortError::corrupt(format!("blob {} is corrupt: {e}", blob.id)))
}

/// The blob a value stands for, if it is a reference.
pub fn as_ref(value: &Value) -> Option<BlobRef> {
    value.get("$blob").and_then(|b| serde_json::from_value(b.clone()).ok())
}

/// `json`, or a reference to it stored as a blob when it is larger than `INLINE_LIMIT`.
pub async fn inline_or_blob(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    json: Box<RawValue>,
) -> PortResult<Box<RawValue>> {
    if json.get().len() <= INLINE_LIMIT {
        return Ok(json);
    }
    let blob = put_text(db, space, tenant, json.get()).await?;
    serde_json::value::to_raw_value(&json!({ "$blob": blob })).map_err(PortError::invalid)
}

/// Delete a blob's chunks (before its expiry, when a newer one replaces it).
pub async fn delete(db: &Db, space: &SpaceId, tenant: &TenantId, blob: &BlobRef) -> PortResult<()> {
    for index in 0..blob.chunks {
        db.store.delete(&chunk_key(space, tenant, &blob.id, index), Condition::None).await?;
    }
    Ok(())
}

/// The value itself, reading the blob if `value` is a reference.
pub async fn resolve(db: &Db, space: &SpaceId, tenant: &TenantId, value: &Value) -> PortResult<Value> {
    match as_ref(value) {
        Some(blob) => get(db, space, tenant, &blob).await,
        None => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_on_character_boundaries() {
        let text = "aé€😀".repeat(1000);
        let parts = split(&text, 7);
        assert!(parts.iter().all(|p| p.len() <= 7 && !p.is_empty()));
        assert_eq!(parts.concat(), text);
    }
}
