//! The `Queue` contract, run against the embedded queue and SQS (moto): batches, delays,
//! visibility timeout, receive counts and redrive to the DLQ.

use std::sync::Arc;
use std::time::Duration;

use switchyard::adapters::aws::SqsQueue;
use switchyard::adapters::embedded::{Database, EmbeddedQueue, QueuePolicy};
use switchyard::ports::{OutgoingMessage, PortError, Queue, QueueId, SystemClock, sqs_limits};
use switchyard_tests::aws_resources;

const SHORT: Duration = Duration::from_secs(1);

async fn receive_all(queue: &dyn Queue, id: QueueId, visibility: Duration) -> Vec<switchyard::ports::ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(id, 10, visibility, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        assert!(batch.len() <= 10);
        all.extend(batch);
    }
}

/// Long-poll until one message arrives (the emulator can be slow under the parallel suite).
async fn receive_one(queue: &dyn Queue, id: QueueId, visibility: Duration) -> switchyard::ports::ReceivedMessage {
    for _ in 0..6 {
        let mut got = queue.receive(id, 1, visibility, Duration::from_secs(5)).await.unwrap();
        if let Some(m) = got.pop() {
            return m;
        }
    }
    panic!("no message on {} after 30 s", id.name());
}

/// `max_receives` of the queues under test is 2.
async fn contract(queue: Arc<dyn Queue>) {
    // batches larger than ten are split; bodies arrive intact
    let messages: Vec<OutgoingMessage> = (0..23).map(|i| OutgoingMessage::new(format!("m{i}"))).collect();
    queue.send(QueueId::Runs, &messages).await.unwrap();
    let got = receive_all(queue.as_ref(), QueueId::Runs, Duration::from_secs(30)).await;
    let mut bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    let mut expected: Vec<_> = (0..23).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected);
    assert!(got.iter().all(|m| m.receive_count == 1));
    for m in &got {
        queue.delete(QueueId::Runs, &m.receipt_handle).await.unwrap();
    }
    assert!(queue.receive(QueueId::Runs, 10, SHORT, Duration::ZERO).await.unwrap().is_empty());

    // limits are refused before anything is sent
    let huge = OutgoingMessage::new("x".repeat(sqs_limits::MAX_MESSAGE_BYTES + 1));
    assert!(matches!(queue.send(QueueId::Runs, &[huge]).await, Err(PortError::Rejected(_))));

    // per-message delay
    queue.send(QueueId::Runs, &[OutgoingMessage::new("later").delayed(2)]).await.unwrap();
    assert!(
        queue.receive(QueueId::Runs, 10, SHORT, Duration::ZERO).await.unwrap().is_empty(),
        "delayed message visible early"
    );
    let mut later = Vec::new();
    for _ in 0..5 {
        later = queue.receive(QueueId::Runs, 10, SHORT, Duration::from_secs(5)).await.unwrap();
        if !later.is_empty() {
            break;
        }
    }
    assert_eq!(later.len(), 1, "delayed message arrives after its delay (long poll)");
    queue.delete(QueueId::Runs, &later[0].receipt_handle).await.unwrap();

    // visibility timeout hides, then redelivers with a higher receive count
    let hide = Duration::from_secs(3);
    queue.send(QueueId::Runs, &[OutgoingMessage::new("poison")]).await.unwrap();
    let first = queue.receive(QueueId::Runs, 1, hide, Duration::from_secs(5)).await.unwrap();
    assert_eq!((first.len(), first[0].receive_count), (1, 1));
    assert!(queue.receive(QueueId::Runs, 1, hide, Duration::ZERO).await.unwrap().is_empty(), "hidden while in flight");
    let second = receive_one(queue.as_ref(), QueueId::Runs, SHORT).await;
    assert_eq!((second.message_id.clone(), second.receive_count), (first[0].message_id.clone(), 2));
    // after max receives, the next receive moves it to the DLQ
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = queue.receive(QueueId::Runs, 1, SHORT, Duration::from_secs(2)).await.unwrap();
    assert!(third.is_empty(), "a message past max receives is not delivered again: {third:?}");
    let dead = vec![receive_one(queue.as_ref(), QueueId::RunsDlq, SHORT).await];
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    queue.delete(QueueId::RunsDlq, &dead[0].receipt_handle).await.unwrap();

    // change_visibility(0) makes an in-flight message visible again at once
    queue.send(QueueId::Polls, &[OutgoingMessage::new("again")]).await.unwrap();
    let m = receive_one(queue.as_ref(), QueueId::Polls, Duration::from_secs(60)).await;
    queue.change_visibility(QueueId::Polls, &m.receipt_handle, Duration::ZERO).await.unwrap();
    let again = receive_one(queue.as_ref(), QueueId::Polls, Duration::from_secs(60)).await;
    assert_eq!(again.message_id, m.message_id);
    assert!(queue.depth(QueueId::Polls).await.unwrap() >= 1);
    queue.delete(QueueId::Polls, &again.receipt_handle).await.unwrap();
}

#[tokio::test]
async fn queue_contract_embedded() {
    let queue = EmbeddedQueue::new(Database::in_memory(), Arc::new(SystemClock))
        .with_policy(QueueId::Runs, QueuePolicy { max_receives: 2 })
        .with_policy(QueueId::Polls, QueuePolicy { max_receives: 2 });
    contract(Arc::new(queue)).await;
}

#[tokio::test]
async fn queue_contract_sqs() {
    let (sdk, settings) = aws_resources(2).await;
    contract(Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), settings.queue_urls))).await;
}

#[tokio::test]
async fn embedded_long_poll_wakes_on_send() {
    let queue = Arc::new(EmbeddedQueue::new(Database::in_memory(), Arc::new(SystemClock)));
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.receive(QueueId::Runs, 10, SHORT, Duration::from_secs(10)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    queue.send(QueueId::Runs, &[OutgoingMessage::new("wake")]).await.unwrap();
    let got = waiter.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2), "the waiting receive returned on send, not on timeout");
}
