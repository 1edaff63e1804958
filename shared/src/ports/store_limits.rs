//! The limits DynamoDB puts on items and transactions, enforced by both `Store` adapters so the
//! embedded backend fails where AWS would.

use std::collections::HashSet;

use super::{Key, MAX_TRANSACTION_OPS, PortError, PortResult, WriteOp};

/// DynamoDB's item size limit (names and values of all attributes).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// What our own attribute names, version and expiry take at most.
const ATTRIBUTE_OVERHEAD: usize = 64;

/// Refuse an item whose serialized document would not fit in one DynamoDB item.
pub fn check_size(key: &Key, document_bytes: usize) -> PortResult<()> {
    let size = key.pk.len() + key.sk.len() + document_bytes + ATTRIBUTE_OVERHEAD;
    if size > MAX_ITEM_BYTES {
        return Err(PortError::too_large(format!(
            "item {}/{} of {size} bytes exceeds {MAX_ITEM_BYTES} bytes",
            key.pk, key.sk
        )));
    }
    Ok(())
}

/// Refuse transactions DynamoDB would refuse: empty, too many operations, a key twice.
/// Refuse an `add_fields` that changes too many fields, or none.
pub fn check_field_deltas(deltas: &[(String, i64)]) -> PortResult<()> {
    if deltas.is_empty() || deltas.len() > super::MAX_FIELD_DELTAS {
        return Err(PortError::invalid(format!("add_fields takes 1 to {} fields", super::MAX_FIELD_DELTAS)));
    }
    if deltas.iter().any(|(name, _)| name.is_empty() || name.len() > 200) {
        return Err(PortError::invalid("field names are 1 to 200 bytes"));
    }
    Ok(())
}

pub fn check_transaction(ops: &[WriteOp]) -> PortResult<()> {
    if ops.is_empty() {
        return Err(PortError::invalid("empty transaction"));
    }
    if ops.len() > MAX_TRANSACTION_OPS {
        return Err(PortError::too_large(format!(
            "transaction of {} operations exceeds {MAX_TRANSACTION_OPS}",
            ops.len()
        )));
    }
    let mut seen = HashSet::new();
    for op in ops {
        if !seen.insert(op.key()) {
            return Err(PortError::invalid(format!(
                "transaction touches {}/{} more than once",
                op.key().pk,
                op.key().sk
            )));
        }
    }
    Ok(())
}
