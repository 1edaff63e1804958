use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::params;

use super::Database;
use crate::ports::{Clock, EventBus, PlatformEvent, PortResult};

/// `EventBus` that appends to the `platform_events` table, where the dev server and tests read
/// what would have gone to EventBridge.
pub struct EmbeddedEventBus {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedEventBus {
    pub fn new(db: Arc<Database>, clock: Arc<dyn Clock>) -> Self {
        EmbeddedEventBus { db, clock }
    }

    /// Events published after sequence number `after`, oldest first, with their sequence numbers.
    pub fn published_since(&self, after: i64, limit: u32) -> PortResult<Vec<(i64, PlatformEvent)>> {
        self.db.transaction(|tx| {
            let rows = tx
                .prepare_cached(
                    "SELECT seq, detail_type, detail FROM platform_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![after, limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .map(|(seq, detail_type, detail)| {
                    let detail = serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null);
                    (seq, PlatformEvent { detail_type, detail })
                })
                .collect())
        })
    }
}

#[async_trait]
impl EventBus for EmbeddedEventBus {
    async fn publish(&self, events: &[PlatformEvent]) -> PortResult<()> {
        let now = self.clock.now_ms();
        self.db.transaction(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO platform_events (detail_type, detail, published_at) VALUES (?1, ?2, ?3)",
            )?;
            for event in events {
                stmt.execute(params![event.detail_type, event.detail.to_string(), now])?;
            }
            Ok(())
        })
    }
}
