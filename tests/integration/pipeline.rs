//! The foundation's end-to-end path, on the embedded backend and on the AWS adapters (moto):
//! a signed webhook goes in, the flow runs (calling a mock third party), the execution and its
//! steps are read back over the API.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::domain::webhook::signature::sign;
use switchyard::ports::{OutgoingMessage, QueueId};
use switchyard_tests::{Kind, TestApp, eventually, platform, platform_with, spawn_app, system_clock, unique};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "s3cr3t-webhook-value";

fn push() -> Value {
    json!({
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/widgets"},
        "pusher": {"name": "octocat"},
        "commits": [{"id": "abc1234def", "message": "first"}, {"id": "bcd2345efa", "message": "second"}]
    })
}

/// Space, tenant, key, GitHub secret and a tenant flow calling `hook_url`.
async fn setup(app: &TestApp, hook_url: &str) -> (String, String, String) {
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let r = app
        .api(
            &key,
            &space,
            "PUT",
            &format!("/api/v1/tenants/{tenant}/connectors/github/webhook-secret"),
            Some(json!({"secret": SECRET})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["webhook_secret_set"], true);
    assert!(!r.body.to_string().contains(SECRET), "secret echoed: {r:?}");
    let flow = json!({
        "id": "push-to-hook",
        "name": "Push to hook",
        "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
        "steps": [
            {"id": "summary", "kind": "transform", "expr": "{repo: .trigger.payload.repository.full_name, commits: (.trigger.payload.commits | length)}"},
            {"id": "deliver", "kind": "http", "depends_on": ["summary"], "method": "POST", "url": hook_url,
             "headers": {"x-tenant": "${{ .execution.tenant }}"}, "body": "${{ .steps.summary.output }}"},
            {"id": "check", "kind": "transform", "depends_on": ["deliver"], "expr": ".steps.deliver.output.body.ok"}
        ]
    });
    let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    (space, tenant, key)
}

async fn send_push(
    app: &TestApp,
    tenant: &str,
    delivery: &str,
    body: &[u8],
    signature: &str,
) -> switchyard_tests::Reply {
    app.send(
        "POST",
        &format!("/webhooks/{tenant}/github"),
        &[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", signature),
        ],
        Some(body.to_vec()),
    )
    .await
}

async fn scenario(kind: Kind) {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header_exists("idempotency-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&hook)
        .await;
    let app = spawn_app(platform(kind, system_clock()).await).await;
    let (space, tenant, key) = setup(&app, &format!("{}/hook", hook.uri())).await;

    let body = serde_json::to_vec(&push()).unwrap();
    let r = send_push(&app, &tenant, "delivery-1", &body, &sign::github(SECRET, &body)).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["event_type"], "push");
    let execution_id = r.body["runs"][0]["execution_id"].as_str().expect("one run").to_string();
    assert_eq!(r.body["runs"][0]["flow_id"], "push-to-hook");

    let execution = app.wait_execution(&key, &space, &tenant, &execution_id, Duration::from_secs(30)).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let steps = execution["step_details"].as_array().unwrap();
    let statuses: Vec<(&str, &str)> =
        steps.iter().map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, vec![("summary", "succeeded"), ("deliver", "succeeded"), ("check", "succeeded")]);
    assert_eq!(steps[0]["output"], json!({"repo": "acme/widgets", "commits": 2}));
    assert_eq!(steps[2]["output"], json!(true));
    assert_eq!(execution["trigger"]["event_id"], "delivery-1");
    let transitions: Vec<&str> =
        execution["transitions"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(transitions, vec!["queued", "running", "succeeded"]);

    // What the third party received.
    let received = hook.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&received[0].body).unwrap(),
        json!({"repo": "acme/widgets", "commits": 2})
    );
    assert_eq!(received[0].headers.get("x-tenant").unwrap().to_str().unwrap(), tenant);

    // Listed, newest first, with step summaries.
    let list = app.api(&key, &space, "GET", &format!("/api/v1/tenants/{tenant}/executions"), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"][0]["id"], execution_id.as_str());
    assert_eq!(list.body["items"][0]["steps"].as_array().unwrap().len(), 3);
    assert!(list.body["items"][0].get("input").is_none(), "list omits the payload");

    // The same delivery again: 200 duplicate, nothing runs.
    let again = send_push(&app, &tenant, "delivery-1", &body, &sign::github(SECRET, &body)).await;
    assert_eq!((again.status, again.body["status"].as_str()), (200, Some("duplicate")));
    let events = app.api(&key, &space, "GET", &format!("/api/v1/tenants/{tenant}/events"), None).await;
    assert_eq!(events.body["items"].as_array().unwrap().len(), 1, "{events:?}");
    assert_eq!(events.body["items"][0]["executions"][0], execution_id.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = app.api(&key, &space, "GET", &format!("/api/v1/tenants/{tenant}/executions"), None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    hook.verify().await;
}

#[tokio::test]
async fn webhook_to_execution_embedded() {
    scenario(Kind::Embedded).await;
}

#[tokio::test]
async fn webhook_to_execution_aws() {
    scenario(Kind::Aws).await;
}

/// Bad requests get their 4xx with a JSON error body and enqueue nothing. The handlers are
/// called in-process with no consumer running, so the queue depth is exact.
async fn refusals(kind: Kind) {
    let p = platform(kind, system_clock()).await;
    let app = spawn_app_without_consumers(p).await;
    let (_space, tenant, _key) = setup(&app, "http://127.0.0.1:9/never").await;
    let body = serde_json::to_vec(&push()).unwrap();
    let cases: Vec<(&str, Vec<u8>, String, u16, &str)> = vec![
        ("wrong signature", body.clone(), sign::github("not-the-secret", &body), 401, "unauthorized"),
        ("missing signature", body.clone(), String::new(), 401, "unauthorized"),
        ("truncated signature", body.clone(), sign::github(SECRET, &body)[..40].to_string(), 401, "unauthorized"),
        ("malformed JSON", b"{\"ref\": ".to_vec(), sign::github(SECRET, b"{\"ref\": "), 400, "malformed_payload"),
    ];
    for (what, payload, signature, status, code) in cases {
        let mut headers = vec![("content-type", "application/json"), ("x-github-event", "push")];
        if !signature.is_empty() {
            headers.push(("x-hub-signature-256", signature.as_str()));
        }
        let r = app.send("POST", &format!("/webhooks/{tenant}/github"), &headers, Some(payload)).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{what}: {r:?}");
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.contains(SECRET)));
    }
    for (what, url) in [
        ("unknown tenant", "/webhooks/nobody-here/github"),
        ("connector not enabled", &*format!("/webhooks/{tenant}/shopify")),
    ] {
        let r = app.send("POST", url, &[("content-type", "application/json")], Some(body.clone())).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (404, Some("not_found")), "{what}: {r:?}");
        assert_eq!(r.body["error"]["message"], "unknown tenant or connector", "same answer for both");
    }
    assert_eq!(app.platform.engine.queue.depth(QueueId::Runs).await.unwrap(), 0, "nothing was enqueued");
}

async fn spawn_app_without_consumers(p: switchyard::runtime::Platform) -> TestApp {
    switchyard_tests::spawn_app_with(
        p,
        switchyard_local::LocalConfig { consumers: 0, tick: Duration::from_secs(3600), ..Default::default() },
    )
    .await
}

#[tokio::test]
async fn refusals_enqueue_nothing_embedded() {
    refusals(Kind::Embedded).await;
}

#[tokio::test]
async fn refusals_enqueue_nothing_aws() {
    refusals(Kind::Aws).await;
}

/// A run message that keeps failing is retried, then lands in the runs DLQ.
async fn poison_to_dlq(kind: Kind) {
    let p = platform_with(kind, system_clock(), 2, |_| {}).await;
    let poison = json!({"type": "resume", "space": "nowhere", "tenant": "nobody", "execution_id": "ex_01J0000000000000000000000", "token": "t"}).to_string();
    p.engine.queue.send(QueueId::Runs, &[OutgoingMessage::new(poison.clone())]).await.unwrap();
    let app = spawn_app(p).await;
    let queue = app.platform.engine.queue.clone();
    eventually("the poison message reaches the runs DLQ", Duration::from_secs(30), || {
        let queue = queue.clone();
        async move { queue.depth(QueueId::RunsDlq).await.unwrap_or(0) == 1 }
    })
    .await;
    drop(app);
    let dead = queue.receive(QueueId::RunsDlq, 10, Duration::from_secs(30), Duration::from_secs(2)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, poison);
    assert_eq!(queue.depth(QueueId::Runs).await.unwrap(), 0);
}

#[tokio::test]
async fn failing_run_ends_in_dlq_embedded() {
    poison_to_dlq(Kind::Embedded).await;
}

#[tokio::test]
async fn failing_run_ends_in_dlq_aws() {
    poison_to_dlq(Kind::Aws).await;
}
