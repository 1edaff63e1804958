//! Every sample event in `events/` (the files `cargo lambda invoke --data-file` takes) goes
//! through the same parsing the Lambda runtime does and reaches its handler.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use switchyard::domain::ids::{SpaceId, TenantId};
use switchyard::engine::run::Budget;
use switchyard::runtime::Platform;
use switchyard_tests::{Kind, platform, system_clock};

static USED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn load(name: &str) -> String {
    USED.lock().unwrap().insert(name.to_string());
    std::fs::read_to_string(events_dir().join(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

async fn sample_platform() -> Platform {
    let p = platform(Kind::Embedded, system_clock()).await;
    switchyard_local::demo::ensure_samples(&p).await.expect("sample fixtures");
    p
}

async fn http_sample(p: &Platform, name: &str) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(&load(name))
        .unwrap_or_else(|e| panic!("events/{name} is not an API Gateway event: {e}"));
    let response = switchyard_local::route(p, switchyard::runtime::lambda::from_lambda_request(request)).await;
    (response.status().as_u16(), switchyard_local::body_json(&response))
}

#[tokio::test]
async fn every_sample_event_reaches_its_handler() {
    let p = sample_platform().await;

    let (status, body) = http_sample(&p, "webhook-github-push.json").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["runs"][0]["flow_id"], "sample-flow");
    // The base64-encoded body (as API Gateway may deliver it) verifies against the same bytes.
    let (status, body) = http_sample(&p, "webhook-github-push-base64.json").await;
    assert_eq!(status, 202, "{body}");
    // The webhook function's URL (no API Gateway) delivers the same payload format.
    let (status, body) = http_sample(&p, "webhook-function-url.json").await;
    assert_eq!((status, body["status"].as_str()), (202, Some("accepted")), "{body}");

    let (status, body) = http_sample(&p, "api-list-executions.json").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["items"].is_array());

    let (status, body) = http_sample(&p, "mcp-initialize.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18");

    let batch: SqsEvent = serde_json::from_str(&load("executor-sqs-batch.json")).unwrap();
    let response = switchyard_executor::handle(&p, batch, Budget::unlimited()).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, vec!["2e1424d4-f796-459a-8184-9c92662be6da"], "only the malformed record fails");
    let execution = switchyard::store::executions::get_execution(
        p.db(),
        &SpaceId::parse("sample").unwrap(),
        &TenantId::parse("sample-tenant").unwrap(),
        &switchyard::domain::ids::ExecutionId::parse("ex_01KZ0000000000000000000001").unwrap(),
    )
    .await
    .unwrap()
    .expect("the sample run was executed");
    assert_eq!(execution.execution.status.as_str(), "succeeded");

    let tick: EventBridgeEvent = serde_json::from_str(&load("scheduler-tick.json")).unwrap();
    switchyard_scheduler::handle(&p, tick).await.expect("scheduler accepts its event");
    let tick: EventBridgeEvent = serde_json::from_str(&load("poller-tick.json")).unwrap();
    switchyard_poller::handle(&p, tick).await.expect("poller accepts its event");
    // The poller's Lambda entrypoint takes both its events as they arrive.
    let tick: Value = serde_json::from_str(&load("poller-tick.json")).unwrap();
    assert_eq!(switchyard_poller::handle_event(&p, tick).await.unwrap()["enqueued"], 0);
    let batch: Value = serde_json::from_str(&load("poller-sqs-batch.json")).unwrap();
    let response = switchyard_poller::handle_event(&p, batch).await.unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "9f1e2d3c-4b5a-4678-8899-aabbccddeeff"}]),
        "only the malformed job is redelivered"
    );
    // The sample tenant has not connected GitHub: the poll is recorded as failed, not retried.
    let job = switchyard::store::polls::PollJob {
        space: SpaceId::parse("sample").unwrap(),
        tenant: TenantId::parse("sample-tenant").unwrap(),
        connector: switchyard::domain::ids::ConnectorId::parse("github").unwrap(),
        resource: "issues".into(),
        input: json!({"owner": "acme", "repo": "hello-world"}).as_object().unwrap().clone(),
    };
    let (state, _) = switchyard::store::polls::get_state(p.db(), &job).await.unwrap();
    assert_eq!(state.failures, 1, "{state:?}");

    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(*USED.lock().unwrap(), on_disk, "every file in events/ is exercised here");
}
