//! The executor: consumes batches from the runs queue and drives each execution
//! (`switchyard::engine::run`). Messages of a batch run concurrently; the response lists exactly
//! the messages whose effects are not durable, so SQS redelivers only those (and dead-letters
//! them after the queue's max receive count).

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use switchyard::engine::run::{self, Budget, Disposition};
use switchyard::platform::Platform;
use switchyard::ports::QueueId;

/// How long a failed message stays hidden before its next attempt: doubling from the base
/// (5 s by default) per receive, capped at 5 minutes. Without this it would wait out the whole
/// visibility timeout, six times the function timeout.
pub fn retry_delay(base_secs: u64, receive_count: u32) -> Duration {
    Duration::from_secs((base_secs.max(1) << receive_count.saturating_sub(1).min(6)).min(300))
}

async fn delay_retry(p: &Platform, message: &SqsMessage) {
    let Some(receipt) = message.receipt_handle.as_deref() else {
        return;
    };
    let count = message.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
    if let Err(e) =
        p.queue.change_visibility(QueueId::Runs, receipt, retry_delay(p.settings.retry_base_secs, count)).await
    {
        tracing::warn!(error = %e, "could not shorten the retry delay; the visibility timeout applies");
    }
}

/// Process one SQS batch within `budget`.
pub async fn handle(p: &Platform, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let work = event.records.into_iter().map(|message| async move {
        let disposition = match message.body.as_deref() {
            Some(body) => run::process(p, body, budget).await,
            None => Disposition::Retry("message without a body".into()),
        };
        if matches!(disposition, Disposition::Retry(_)) {
            delay_retry(p, &message).await;
        }
        (message.message_id, disposition)
    });
    let mut response = SqsBatchResponse::default();
    for (message_id, disposition) in futures::future::join_all(work).await {
        if let Disposition::Retry(reason) = disposition {
            match message_id {
                Some(id) => {
                    tracing::warn!(message_id = %id, %reason, "run message left for redelivery");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
                None => {
                    tracing::error!(%reason, "failed message has no id; SQS will redeliver the batch")
                }
            }
        }
    }
    response
}
