use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use tokio::sync::Notify;

use super::Database;
use crate::ports::{Clock, OutgoingMessage, PortResult, Queue, QueueId, ReceivedMessage, sqs_limits};

/// Per-queue settings that SQS keeps as queue attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Receives after which the next receive moves the message to the DLQ (SQS maxReceiveCount).
    pub max_receives: u32,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        // The SAM template uses the same value for both redrive policies.
        QueuePolicy { max_receives: 5 }
    }
}

/// `Queue` over the `queue_messages` table, with the consumer semantics of SQS: a received
/// message is hidden for the visibility timeout, counts its receives, and once received
/// `max_receives` times without being deleted, the next receive attempt moves it to the DLQ.
pub struct EmbeddedQueue {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    policies: HashMap<QueueId, QueuePolicy>,
    arrived: Notify,
}

impl EmbeddedQueue {
    pub fn new(db: Arc<Database>, clock: Arc<dyn Clock>) -> Self {
        let policies = [(QueueId::Runs, QueuePolicy::default()), (QueueId::Polls, QueuePolicy::default())].into();
        EmbeddedQueue { db, clock, policies, arrived: Notify::new() }
    }

    pub fn with_policy(mut self, queue: QueueId, policy: QueuePolicy) -> Self {
        self.policies.insert(queue, policy);
        self
    }

    /// Receive without waiting; also returns when the next hidden message becomes visible.
    fn try_receive(
        &self,
        queue: QueueId,
        max: u32,
        visibility: Duration,
    ) -> PortResult<(Vec<ReceivedMessage>, Option<i64>)> {
        let now = self.clock.now_ms();
        let max_receives = self.policies.get(&queue).map(|p| p.max_receives);
        let dlq = queue.dead_letter();
        let visibility_ms = visibility.as_millis().min(u128::from(sqs_limits::MAX_VISIBILITY_SECONDS) * 1000) as i64;
        self.db.transaction(|tx| {
            let mut received = Vec::new();
            // Candidates beyond `max` are needed when some of them move to the DLQ instead.
            let candidates: Vec<(String, String, i64, i64)> = tx
                .prepare_cached(
                    "SELECT id, body, receive_count, sent_at FROM queue_messages
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                )?
                .query_map(params![queue.name(), now, i64::from(max) * 4 + 10], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (id, body, receive_count, sent_at) in candidates {
                if received.len() >= max as usize {
                    break;
                }
                if let (Some(limit), Some(dlq)) = (max_receives, dlq) {
                    if receive_count >= i64::from(limit) {
                        tx.prepare_cached(
                            "UPDATE queue_messages SET queue = ?2, visible_at = ?3, receipt = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, dlq.name(), now])?;
                        tracing::warn!(queue = queue.name(), message_id = %id, receive_count, "message moved to dead-letter queue");
                        continue;
                    }
                }
                let receipt = format!("{id}:{:032x}", rand::random::<u128>());
                tx.prepare_cached(
                    "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3
                     WHERE id = ?1",
                )?
                .execute(params![id, now + visibility_ms, receipt])?;
                received.push(ReceivedMessage {
                    message_id: id,
                    receipt_handle: receipt,
                    body,
                    receive_count: (receive_count + 1) as u32,
                    sent_at_ms: sent_at,
                });
            }
            let next_visible: Option<i64> = tx
                .prepare_cached("SELECT MIN(visible_at) FROM queue_messages WHERE queue = ?1 AND visible_at > ?2")?
                .query_row(params![queue.name(), now], |row| row.get(0))?;
            Ok((received, next_visible))
        })
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send(&self, queue: QueueId, messages: &[OutgoingMessage]) -> PortResult<()> {
        for m in messages {
            sqs_limits::check_message(m)?;
        }
        let now = self.clock.now_ms();
        self.db.transaction(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO queue_messages (id, queue, body, sent_at, visible_at, receive_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            )?;
            for m in messages {
                let id = crate::domain::ids::ulid_at(now).to_string();
                stmt.execute(params![id, queue.name(), m.body, now, now + i64::from(m.delay_seconds) * 1000])?;
            }
            Ok(())
        })?;
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueId,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        let max = max.clamp(1, sqs_limits::MAX_BATCH as u32);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a send between the look and the wait is seen.
            let arrived = self.arrived.notified();
            let (received, next_visible) = self.try_receive(queue, max, visibility)?;
            let now = tokio::time::Instant::now();
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let mut sleep_until = deadline;
            if let Some(at) = next_visible {
                let in_ms = (at - self.clock.now_ms()).max(1) as u64;
                sleep_until = sleep_until.min(now + Duration::from_millis(in_ms));
            }
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
    }

    async fn delete(&self, queue: QueueId, receipt_handle: &str) -> PortResult<()> {
        self.db.transaction(|tx| {
            tx.prepare_cached("DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2")?
                .execute(params![queue.name(), receipt_handle])?;
            Ok(())
        })
    }

    async fn delete_batch(&self, queue: QueueId, receipt_handles: &[String]) -> PortResult<()> {
        self.db.transaction(|tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2")?;
            for receipt in receipt_handles {
                stmt.execute(params![queue.name(), receipt])?;
            }
            Ok(())
        })
    }

    async fn change_visibility(&self, queue: QueueId, receipt_handle: &str, visibility: Duration) -> PortResult<()> {
        let visible_at = self.clock.now_ms() + visibility.as_millis() as i64;
        self.db.transaction(|tx| {
            tx.prepare_cached("UPDATE queue_messages SET visible_at = ?3 WHERE queue = ?1 AND receipt = ?2")?
                .execute(params![queue.name(), receipt_handle, visible_at])?;
            Ok(())
        })?;
        if visibility.is_zero() {
            self.arrived.notify_waiters();
        }
        Ok(())
    }

    async fn depth(&self, queue: QueueId) -> PortResult<u64> {
        self.db.transaction(|tx| {
            let n: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM queue_messages WHERE queue = ?1")?
                .query_row([queue.name()], |row| row.get(0))?;
            Ok(n as u64)
        })
    }
}
