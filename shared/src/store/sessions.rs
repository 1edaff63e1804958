//! Console sessions that were signed out before they expired. A session is a signed cookie the
//! server keeps nothing of (`usecases::signed`); signing out records its id here until the
//! session would have expired, so a copy of the cookie stops working too. One read per console
//! request; the item expires with the session (TTL).

use super::{Db, Error, keys};
use crate::ports::{Condition, Item};

/// Record that session `id` (valid until `expires_at`, epoch seconds) was signed out.
pub async fn end(db: &Db, id: &str, expires_at: i64) -> Result<(), Error> {
    let item = Item::new(keys::ended_session(id), serde_json::json!({"ended_at": db.now_ms()})).expiring_at(expires_at);
    db.store.put(item, Condition::None).await?;
    Ok(())
}

/// Whether session `id` was signed out.
pub async fn ended(db: &Db, id: &str) -> Result<bool, Error> {
    Ok(db.store.get(&keys::ended_session(id)).await?.is_some())
}
