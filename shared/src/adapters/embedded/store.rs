use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use super::{Database, TxError};
use crate::ports::{Clock, Condition, Item, Key, Page, PortError, PortResult, Query, Store, WriteOp, cursor};

/// `Store` over the `items` table.
pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedStore {
    pub fn new(db: Arc<Database>, clock: Arc<dyn Clock>) -> Self {
        EmbeddedStore { db, clock }
    }
}

/// Upper bound for a prefix range scan: every string starting with `prefix` sorts below it.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

struct Stored {
    version: u64,
}

/// The live item's version at `key`, if any.
fn live_version(tx: &Transaction<'_>, key: &Key, now: i64) -> rusqlite::Result<Option<Stored>> {
    tx.prepare_cached(
        "SELECT version FROM items WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
    )?
    .query_row(params![key.pk, key.sk, now], |row| Ok(Stored { version: row.get::<_, i64>(0)? as u64 }))
    .optional()
}

/// The live value of a counter item (0 when there is none).
fn counter_value(tx: &Transaction<'_>, key: &Key, now: i64) -> rusqlite::Result<i64> {
    let n = tx
        .prepare_cached("SELECT n FROM items WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)")?
        .query_row(params![key.pk, key.sk, now], |row| row.get::<_, Option<i64>>(0))
        .optional()?;
    Ok(n.flatten().unwrap_or(0))
}

fn condition_holds(stored: &Option<Stored>, condition: Condition) -> bool {
    match (condition, stored) {
        (Condition::None, _) => true,
        (Condition::IfAbsent, s) => s.is_none(),
        (Condition::IfExists, s) => s.is_some(),
        (Condition::IfVersion(v), Some(s)) => s.version == v,
        (Condition::IfVersion(_), None) => false,
    }
}

fn write_item(tx: &Transaction<'_>, item: &Item) -> Result<(), TxError> {
    let data =
        serde_json::to_string(&item.data).map_err(|e| PortError::invalid(format!("unserializable item: {e}")))?;
    crate::ports::store_limits::check_size(&item.key, data.len())?;
    tx.prepare_cached(
        "INSERT INTO items (pk, sk, data, n, version, expires_at) VALUES (?1, ?2, ?3, NULL, ?4, ?5)
         ON CONFLICT (pk, sk) DO UPDATE SET data = excluded.data, n = NULL, version = excluded.version,
         expires_at = excluded.expires_at",
    )?
    .execute(params![item.key.pk, item.key.sk, data, item.version as i64, item.expires_at])?;
    Ok(())
}

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Key, Option<String>, Option<i64>, i64, Option<i64>)> {
    Ok((
        Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn into_item(raw: (Key, Option<String>, Option<i64>, i64, Option<i64>)) -> PortResult<Item> {
    let (key, data, n, version, expires_at) = raw;
    let data = match (data, n) {
        (Some(text), _) => serde_json::from_str(&text)
            .map_err(|e| PortError::corrupt(format!("corrupt item {}/{}: {e}", key.pk, key.sk)))?,
        (None, Some(n)) => Value::from(n),
        (None, None) => Value::Null,
    };
    Ok(Item { key, data, version: version as u64, expires_at })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        let now = self.clock.now_secs();
        let raw = self.db.read(|conn| {
            conn.prepare_cached(
                "SELECT pk, sk, data, n, version, expires_at FROM items
                     WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![key.pk, key.sk, now], row_to_item)
            .optional()
        })?;
        raw.map(into_item).transpose()
    }

    async fn put(&self, item: Item, condition: Condition) -> PortResult<()> {
        let now = self.clock.now_secs();
        self.db.transaction(|tx| {
            if condition != Condition::None && !condition_holds(&live_version(tx, &item.key, now)?, condition) {
                return Err(PortError::ConditionFailed.into());
            }
            write_item(tx, &item)
        })
    }

    async fn delete(&self, key: &Key, condition: Condition) -> PortResult<()> {
        let now = self.clock.now_secs();
        self.db.transaction(|tx| {
            if condition != Condition::None && !condition_holds(&live_version(tx, key, now)?, condition) {
                return Err(PortError::ConditionFailed.into());
            }
            tx.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")?.execute(params![key.pk, key.sk])?;
            Ok(())
        })
    }

    async fn query(&self, query: &Query) -> PortResult<Page> {
        let now = self.clock.now_secs();
        let limit = query.limit.clamp(1, crate::ports::MAX_PAGE_SIZE);
        let after = query.cursor.as_deref().map(|c| cursor::decode(c, &query.sk_prefix)).transpose()?;
        let start = query.sk_prefix.clone();
        let end = prefix_end(&query.sk_prefix);
        // Ascending pages continue strictly after the cursor; descending ones strictly before it.
        let (lower, lower_op, upper) = match (&after, query.descending) {
            (Some(after), false) => (after.clone(), ">", end),
            (Some(after), true) => (start, ">=", after.clone()),
            (None, _) => (start, ">=", end),
        };
        let order = if query.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT pk, sk, data, n, version, expires_at FROM items
             WHERE pk = ?1 AND sk {lower_op} ?2 AND sk < ?3 AND (expires_at IS NULL OR expires_at > ?4)
             ORDER BY sk {order} LIMIT ?5"
        );
        let raws = self.db.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![query.pk, lower, upper, now, limit as i64 + 1], row_to_item)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let mut items = raws.into_iter().map(into_item).collect::<PortResult<Vec<_>>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|i| cursor::encode(&i.key.sk))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn add_counter(
        &self,
        key: &Key,
        delta: i64,
        ceiling: Option<i64>,
        expires_at: Option<i64>,
    ) -> PortResult<Option<i64>> {
        let now = self.clock.now_secs();
        self.db.transaction(|tx| {
            let current: Option<(Option<i64>, Option<i64>)> = tx
                .prepare_cached("SELECT n, expires_at FROM items WHERE pk = ?1 AND sk = ?2")?
                .query_row(params![key.pk, key.sk], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (value, existing_expiry) = match current {
                Some((n, exp)) if exp.is_none_or(|e| e > now) => (n.unwrap_or(0), exp),
                _ => (0, None),
            };
            let next = value.saturating_add(delta);
            if ceiling.is_some_and(|c| next > c) {
                return Ok(None);
            }
            // The first writer of a window sets its expiry; later adds keep it.
            let expiry = existing_expiry.or(expires_at);
            tx.prepare_cached(
                "INSERT INTO items (pk, sk, data, n, version, expires_at) VALUES (?1, ?2, NULL, ?3, 1, ?4)
                 ON CONFLICT (pk, sk) DO UPDATE SET data = NULL, n = excluded.n, expires_at = excluded.expires_at",
            )?
            .execute(params![key.pk, key.sk, next, expiry])?;
            Ok(Some(next))
        })
    }

    async fn add_fields(&self, key: &Key, deltas: &[(String, i64)], expires_at: Option<i64>) -> PortResult<()> {
        crate::ports::store_limits::check_field_deltas(deltas)?;
        let now = self.clock.now_secs();
        self.db.transaction(|tx| {
            let current: Option<(Option<String>, Option<i64>)> = tx
                .prepare_cached("SELECT data, expires_at FROM items WHERE pk = ?1 AND sk = ?2")?
                .query_row(params![key.pk, key.sk], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (mut fields, expiry) = match current {
                Some((text, exp)) if exp.is_none_or(|e| e > now) => {
                    let fields = match text.as_deref().map(serde_json::from_str::<Value>) {
                        Some(Ok(Value::Object(map))) => map,
                        None => serde_json::Map::new(),
                        Some(_) => {
                            return Err(PortError::corrupt(format!("{}/{} holds no fields", key.pk, key.sk)).into());
                        }
                    };
                    (fields, exp.or(expires_at))
                }
                _ => (serde_json::Map::new(), expires_at),
            };
            for (name, delta) in deltas {
                let value = fields.get(name).and_then(Value::as_i64).unwrap_or(0).saturating_add(*delta);
                fields.insert(name.clone(), Value::from(value));
            }
            let text = Value::Object(fields).to_string();
            crate::ports::store_limits::check_size(key, text.len())?;
            tx.prepare_cached(
                "INSERT INTO items (pk, sk, data, n, version, expires_at) VALUES (?1, ?2, ?3, NULL, 1, ?4)
                 ON CONFLICT (pk, sk) DO UPDATE SET data = excluded.data, n = NULL, expires_at = excluded.expires_at",
            )?
            .execute(params![key.pk, key.sk, text, expiry])?;
            Ok(())
        })
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        crate::ports::store_limits::check_transaction(&ops)?;
        let now = self.clock.now_secs();
        self.db.transaction(|tx| {
            let mut failed = Vec::new();
            for (index, op) in ops.iter().enumerate() {
                let holds = match op {
                    WriteOp::Put { condition, .. }
                    | WriteOp::Delete { condition, .. }
                    | WriteOp::Check { condition, .. } => {
                        *condition == Condition::None || condition_holds(&live_version(tx, op.key(), now)?, *condition)
                    }
                    WriteOp::Add { key, delta, ceiling } => match ceiling {
                        Some(c) => counter_value(tx, key, now)?.saturating_add(*delta) <= *c,
                        None => true,
                    },
                };
                if !holds {
                    failed.push(index);
                }
            }
            if !failed.is_empty() {
                return Err(PortError::TransactionCancelled { failed }.into());
            }
            for op in &ops {
                match op {
                    WriteOp::Put { item, .. } => write_item(tx, item)?,
                    WriteOp::Delete { key, .. } => {
                        tx.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")?
                            .execute(params![key.pk, key.sk])?;
                    }
                    WriteOp::Check { .. } => {}
                    WriteOp::Add { key, delta, .. } => {
                        let next = counter_value(tx, key, now)?.saturating_add(*delta);
                        tx.prepare_cached(
                            "INSERT INTO items (pk, sk, data, n, version, expires_at) VALUES (?1, ?2, NULL, ?3, 1, NULL)
                             ON CONFLICT (pk, sk) DO UPDATE SET data = NULL, n = excluded.n, expires_at = NULL",
                        )?
                        .execute(params![key.pk, key.sk, next])?;
                    }
                }
            }
            Ok(())
        })
    }
}
