use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{batch_backoff, classify};
use crate::ports::{EventBus, MAX_EVENTS_PER_PUT, PlatformEvent, PortError, PortResult};

/// The `source` of every platform event, for EventBridge rules to match on.
pub const EVENT_SOURCE: &str = "switchyard";

/// `EventBus` over one EventBridge bus.
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus { client, bus_name: bus_name.into() }
    }
}

const PUT_ATTEMPTS: u32 = 4;

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[PlatformEvent]) -> PortResult<()> {
        for chunk in events.chunks(MAX_EVENTS_PER_PUT) {
            let mut pending: Vec<&PlatformEvent> = chunk.iter().collect();
            for attempt in 0..PUT_ATTEMPTS {
                let entries = pending
                    .iter()
                    .map(|e| {
                        PutEventsRequestEntry::builder()
                            .event_bus_name(&self.bus_name)
                            .source(EVENT_SOURCE)
                            .detail_type(&e.detail_type)
                            .detail(e.detail.to_string())
                            .build()
                    })
                    .collect::<Vec<_>>();
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| classify("PutEvents", e))?;
                if out.failed_entry_count == 0 {
                    pending.clear();
                    break;
                }
                // Result entries are positional: an entry with an error code failed.
                let results = out.entries.unwrap_or_default();
                pending = pending
                    .into_iter()
                    .zip(results.iter().map(Some).chain(std::iter::repeat(None)))
                    .filter(|(_, r)| r.is_none_or(|r| r.error_code.is_some()))
                    .map(|(e, _)| e)
                    .collect();
                tracing::warn!(failed = pending.len(), attempt, "PutEvents partially failed, retrying");
                batch_backoff(attempt).await;
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(format!(
                    "{} platform events could not be published",
                    pending.len()
                )));
            }
        }
        Ok(())
    }
}
