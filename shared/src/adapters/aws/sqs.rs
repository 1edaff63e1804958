use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::{batch_backoff, classify, error_code};
use crate::ports::{OutgoingMessage, PortError, PortResult, Queue, QueueId, QueueUrls, ReceivedMessage, sqs_limits};

/// `Queue` over SQS. Redrive to the DLQ is done by SQS itself (the queues' RedrivePolicy).
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        SqsQueue { client, urls }
    }
}

/// Retries of the entries a SendMessageBatch reports as failed on the service side.
const SEND_ATTEMPTS: u32 = 4;

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: QueueId, messages: &[OutgoingMessage]) -> PortResult<()> {
        let url = self.urls.url(queue)?;
        for m in messages {
            sqs_limits::check_message(m)?;
        }
        for chunk in sqs_limits::batches(messages) {
            // Entry ids are indexes into the chunk, so failures map back to their messages.
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..SEND_ATTEMPTS {
                let entries = pending
                    .iter()
                    .map(|&i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&chunk[i].body)
                            .delay_seconds(chunk[i].delay_seconds as i32)
                            .build()
                            .map_err(|e| PortError::invalid(format!("SendMessageBatch entry: {e}")))
                    })
                    .collect::<PortResult<Vec<_>>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| classify("SendMessageBatch", e))?;
                if out.failed.is_empty() {
                    pending.clear();
                    break;
                }
                if let Some(bad) = out.failed.iter().find(|f| f.sender_fault) {
                    return Err(PortError::invalid(format!(
                        "SendMessageBatch refused a message: {}: {}",
                        bad.code,
                        bad.message.as_deref().unwrap_or("")
                    )));
                }
                pending = out.failed.iter().filter_map(|f| f.id.parse().ok()).collect();
                tracing::warn!(
                    queue = queue.name(),
                    failed = pending.len(),
                    attempt,
                    "SendMessageBatch partially failed, retrying"
                );
                batch_backoff(attempt).await;
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(format!(
                    "{} messages could not be sent to {}",
                    pending.len(),
                    queue.name()
                )));
            }
        }
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueId,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        let out = self
            .client
            .receive_message()
            .queue_url(self.urls.url(queue)?)
            .max_number_of_messages(max.clamp(1, sqs_limits::MAX_BATCH as u32) as i32)
            .visibility_timeout(visibility.as_secs().min(u64::from(sqs_limits::MAX_VISIBILITY_SECONDS)) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let number = |name: MessageSystemAttributeName| attrs.get(&name).and_then(|v| v.parse::<i64>().ok());
                Some(ReceivedMessage {
                    receive_count: number(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1) as u32,
                    sent_at_ms: number(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn delete(&self, queue: QueueId, receipt_handle: &str) -> PortResult<()> {
        match self.client.delete_message().queue_url(self.urls.url(queue)?).receipt_handle(receipt_handle).send().await
        {
            Ok(_) => Ok(()),
            // A receipt from an older delivery: the message was re-received and is someone
            // else's to delete now.
            Err(e) if error_code(&e) == Some("ReceiptHandleIsInvalid") => Ok(()),
            Err(e) => Err(classify("DeleteMessage", e)),
        }
    }

    async fn delete_batch(&self, queue: QueueId, receipt_handles: &[String]) -> PortResult<()> {
        let url = self.urls.url(queue)?;
        for chunk in receipt_handles.chunks(sqs_limits::MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|e| PortError::invalid(format!("DeleteMessageBatch entry: {e}")))
                })
                .collect::<PortResult<Vec<_>>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("DeleteMessageBatch", e))?;
            // Stale receipts (re-received by someone else) are not ours to delete; anything
            // else left undeleted is redelivered later, which consumers tolerate.
            for failed in out.failed.iter().filter(|f| f.code != "ReceiptHandleIsInvalid") {
                tracing::warn!(code = %failed.code, "DeleteMessageBatch entry failed; the message will be redelivered");
            }
        }
        Ok(())
    }

    async fn change_visibility(&self, queue: QueueId, receipt_handle: &str, visibility: Duration) -> PortResult<()> {
        match self
            .client
            .change_message_visibility()
            .queue_url(self.urls.url(queue)?)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility.as_secs().min(u64::from(sqs_limits::MAX_VISIBILITY_SECONDS)) as i32)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(error_code(&e), Some("ReceiptHandleIsInvalid" | "MessageNotInflight")) => Ok(()),
            Err(e) => Err(classify("ChangeMessageVisibility", e)),
        }
    }

    async fn depth(&self, queue: QueueId) -> PortResult<u64> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(self.urls.url(queue)?)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))?;
        Ok(out.attributes.unwrap_or_default().values().filter_map(|v| v.parse::<u64>().ok()).sum())
    }
}
