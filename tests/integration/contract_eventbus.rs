//! The `EventBus` contract: the embedded bus records what was published; EventBridge (moto)
//! delivers it to a rule's SQS target, which shows the events really went out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard::adapters::aws::EventBridgeBus;
use switchyard::adapters::embedded::{Database, EmbeddedEventBus};
use switchyard::ports::{EventBus, PlatformEvent, SystemClock};
use switchyard_tests::{aws_resources, unique};

fn events(n: usize) -> Vec<PlatformEvent> {
    (0..n).map(|i| PlatformEvent { detail_type: "execution.succeeded".into(), detail: json!({"i": i}) }).collect()
}

#[tokio::test]
async fn eventbus_contract_embedded() {
    let db = Database::in_memory();
    let bus = EmbeddedEventBus::new(db, Arc::new(SystemClock));
    bus.publish(&events(25)).await.unwrap();
    let published = bus.published_since(0, 100).unwrap();
    assert_eq!(published.len(), 25);
    assert_eq!(published[24].1.detail, json!({"i": 24}));
}

#[tokio::test]
async fn eventbus_contract_eventbridge() {
    let (sdk, settings) = aws_resources(5).await;
    let events_client = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let target = sqs.create_queue().queue_name(unique("bus-target")).send().await.unwrap().queue_url.unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&target)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = unique("rule");
    events_client
        .put_rule()
        .name(&rule)
        .event_bus_name(&settings.event_bus)
        .event_pattern(json!({"source": ["switchyard"]}).to_string())
        .send()
        .await
        .unwrap();
    events_client
        .put_targets()
        .rule(&rule)
        .event_bus_name(&settings.event_bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    let bus = EventBridgeBus::new(events_client, settings.event_bus.clone());
    bus.publish(&events(25)).await.unwrap();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while received.len() < 25 && tokio::time::Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(&target)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let body: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap_or("{}")).unwrap();
            received.push(body);
            sqs.delete_message().queue_url(&target).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
    assert_eq!(received.len(), 25, "all 25 events (three PutEvents batches) reached the rule target");
    assert!(received.iter().all(|e| e["source"] == "switchyard" && e["detail-type"] == "execution.succeeded"));
}
