//! Running a batch of run messages (the executor's invocation). Messages of a batch run
//! concurrently; the result lists exactly the messages whose effects are not durable, so the
//! queue redelivers only those (and dead-letters them after its max receive count).

use std::time::Duration;

use super::BatchMessage;
use crate::engine::Engine;
use crate::engine::run::{self, Budget, Disposition};
use crate::ports::QueueId;

/// How long a failed message stays hidden before its next attempt: doubling from the base
/// (5 s by default) per receive, capped at 5 minutes. Without this it would wait out the whole
/// visibility timeout, six times the function timeout.
pub fn retry_delay(base_secs: u64, receive_count: u32) -> Duration {
    Duration::from_secs((base_secs.max(1) << receive_count.saturating_sub(1).min(6)).min(300))
}

async fn delay_retry(engine: &Engine, retry_base_secs: u64, message: &BatchMessage) {
    let Some(receipt) = message.receipt_handle.as_deref() else {
        return;
    };
    let delay = retry_delay(retry_base_secs, message.receive_count);
    if let Err(e) = engine.queue.change_visibility(QueueId::Runs, receipt, delay).await {
        tracing::warn!(error = %e, "could not shorten the retry delay; the visibility timeout applies");
    }
}

/// Drive every message of a batch within `budget`. Returns the ids of the messages to
/// redeliver.
pub async fn run_batch(
    engine: &Engine,
    retry_base_secs: u64,
    messages: Vec<BatchMessage>,
    budget: Budget,
) -> Vec<String> {
    let work = messages.into_iter().map(|message| async move {
        let disposition = match message.body.as_deref() {
            Some(body) => run::process(engine, body, budget).await,
            None => Disposition::Retry("message without a body".into()),
        };
        if matches!(disposition, Disposition::Retry(_)) {
            delay_retry(engine, retry_base_secs, &message).await;
        }
        (message.id, disposition)
    });
    let mut failed = Vec::new();
    for (message_id, disposition) in futures::future::join_all(work).await {
        if let Disposition::Retry(reason) = disposition {
            match message_id {
                Some(id) => {
                    tracing::warn!(message_id = %id, %reason, "run message left for redelivery");
                    failed.push(id);
                }
                None => tracing::error!(%reason, "failed message has no id; SQS will redeliver the batch"),
            }
        }
    }
    failed
}
