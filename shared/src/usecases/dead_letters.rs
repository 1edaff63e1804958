//! Listing and replaying dead-lettered messages. SQS has no peek: listing receives the messages
//! (hiding them for a moment) and makes them visible again at once; replay sends each chosen
//! message back to its source queue before deleting it from the DLQ (at-least-once: a crash in
//! between leaves a copy in both, and the executor's run claims make the copy harmless).

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::Error;
use crate::domain::ids::SpaceId;
use crate::domain::json;
use crate::ports::{OutgoingMessage, Queue, QueueId, ReceivedMessage};

/// A dead-lettered message, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub sent_at: i64,
    pub receive_count: u32,
    /// The space, tenant and execution the message is about, when it parses.
    pub space: Option<String>,
    pub tenant: Option<String>,
    pub execution_id: Option<String>,
    pub kind: Option<String>,
    pub size: usize,
}

/// What a message is about, read from its top-level fields only: a message nobody could parse
/// whole (which is why it is here) still shows in its space's listing.
fn describe(m: &ReceivedMessage) -> DeadLetter {
    let [space, tenant, execution_id, kind] = match <[Option<String>; 4]>::try_from(json::top_level_strings(
        &m.body,
        &["space", "tenant", "execution_id", "type"],
    )) {
        Ok(fields) => fields,
        Err(_) => [None, None, None, None],
    };
    DeadLetter {
        message_id: m.message_id.clone(),
        sent_at: m.sent_at_ms,
        receive_count: m.receive_count,
        space,
        tenant,
        execution_id,
        kind,
        size: m.body.len(),
    }
}

/// Which messages a caller may see: a space's own, or (the admin) all.
fn visible(letter: &DeadLetter, space: Option<&SpaceId>) -> bool {
    space.is_none_or(|s| letter.space.as_deref() == Some(s.as_str()))
}

/// Receive every message of a DLQ once (up to `max`), hidden for `hold`.
async fn sweep(queue: &dyn Queue, dlq: QueueId, max: usize, hold: Duration) -> Result<Vec<ReceivedMessage>, Error> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    while all.len() < max {
        let batch = queue.receive(dlq, 10, hold, Duration::ZERO).await?;
        let fresh: Vec<ReceivedMessage> = batch.into_iter().filter(|m| seen.insert(m.message_id.clone())).collect();
        if fresh.is_empty() {
            break;
        }
        all.extend(fresh);
    }
    Ok(all)
}

pub async fn list(
    queue: &dyn Queue,
    dlq: QueueId,
    space: Option<&SpaceId>,
    max: usize,
) -> Result<Vec<DeadLetter>, Error> {
    let messages = sweep(queue, dlq, max, Duration::from_secs(30)).await?;
    let mut letters = Vec::new();
    for m in &messages {
        queue.change_visibility(dlq, &m.receipt_handle, Duration::ZERO).await?;
        let letter = describe(m);
        if visible(&letter, space) {
            letters.push(letter);
        }
    }
    letters.sort_by_key(|l| l.sent_at);
    Ok(letters)
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub replayed: usize,
    pub skipped: usize,
}

/// Send dead-lettered messages back to their queue: all the caller may see, those first sent
/// within `[since, until)`, or the one named `message_id`.
pub async fn replay(
    queue: &dyn Queue,
    dlq: QueueId,
    space: Option<&SpaceId>,
    since: Option<i64>,
    until: Option<i64>,
    message_id: Option<&str>,
    max: usize,
) -> Result<Replayed, Error> {
    let source = dlq.source().ok_or_else(|| Error::bad_request("not a dead-letter queue"))?;
    let messages = sweep(queue, dlq, max, Duration::from_secs(60)).await?;
    let mut result = Replayed::default();
    for m in &messages {
        let letter = describe(m);
        let in_window = since.is_none_or(|s| m.sent_at_ms >= s) && until.is_none_or(|u| m.sent_at_ms < u);
        let named = message_id.is_none_or(|id| id == m.message_id);
        if visible(&letter, space) && in_window && named {
            queue.send(source, &[OutgoingMessage::new(m.body.clone())]).await?;
            queue.delete(dlq, &m.receipt_handle).await?;
            result.replayed += 1;
        } else {
            queue.change_visibility(dlq, &m.receipt_handle, Duration::ZERO).await?;
            result.skipped += 1;
        }
    }
    Ok(result)
}
