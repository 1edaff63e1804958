//! The defects of the hardening issue, each as the request that showed it: documents that
//! could not be carried are refused at the door (or run), poison messages stay visible and
//! replayable, different deliveries are never merged, broken framing and stalled clients get
//! their answer, and the small protocol slips (ids, versions, HEAD, key encoding, secrets).

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::domain::json::MAX_DEPTH;
use switchyard::domain::webhook::signature::sign;
use switchyard::ports::{OutgoingMessage, QueueId};
use switchyard_tests::{Kind, Reply, TestApp, eventually, platform, platform_with, spawn_app, system_clock, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "hardening-webhook-secret";

/// `[[…[1]…]]` with `depth` levels.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A space, tenant and key, GitHub enabled with a secret, and a flow on every push that
/// counts the payload's keys.
async fn github_tenant(app: &TestApp) -> (String, String, String) {
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let secret_path = format!("/api/v1/tenants/{tenant}/connectors/github/webhook-secret");
    let r = app.api(&key, &space, "PUT", &secret_path, Some(json!({"secret": SECRET}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let flow = json!({
        "id": "on-push", "name": "On push",
        "trigger": {"type": "webhook", "connector": "github", "events": ["*"]},
        "steps": [{"id": "size", "kind": "transform", "expr": ".trigger.payload | length"}]
    });
    let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    (space, tenant, key)
}

async fn push(app: &TestApp, tenant: &str, delivery: &[u8], body: &[u8]) -> Reply {
    let response = app
        .client
        .post(format!("{}/webhooks/{tenant}/github", app.base))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", reqwest::header::HeaderValue::from_bytes(delivery).expect("header bytes"))
        .header("x-hub-signature-256", sign::github(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("the dev server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = serde_json::from_slice::<Value>(&response.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    Reply { status, body, headers }
}

async fn no_consumers(kind: Kind) -> TestApp {
    let p = platform(kind, system_clock()).await;
    switchyard_tests::spawn_app_with(
        p,
        switchyard_local::LocalConfig { consumers: 0, tick: Duration::from_secs(3600), ..Default::default() },
    )
    .await
}

async fn documents_are_refused_or_run(kind: Kind) {
    let app = spawn_app(platform(kind, system_clock()).await).await;
    let (space, tenant, key) = github_tenant(&app).await;
    // What was answered 202 and then lost: now each is a 400 and nothing is queued.
    let lone_surrogate = br#"{"a": "\ud800"}"#.to_vec();
    let huge_exponent = br#"{"n": -1e999999}"#.to_vec();
    let long_number = format!(r#"{{"n": {}}}"#, "7".repeat(5000)).into_bytes();
    let too_deep = format!(r#"{{"a": {}}}"#, nested(MAX_DEPTH)).into_bytes();
    for (what, body, code) in [
        ("lone surrogate", lone_surrogate, "malformed_payload"),
        ("out-of-range number", huge_exponent, "malformed_payload"),
        ("5,000-digit number", long_number, "malformed_payload"),
        ("one level too deep", too_deep, "too_deep"),
    ] {
        let r = push(&app, &tenant, unique("d").as_bytes(), &body).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some(code)), "{what}: {r:?}");
    }
    // At the limit the event is accepted, and its run finishes.
    let deepest = format!(r#"{{"a": {}}}"#, nested(MAX_DEPTH - 1)).into_bytes();
    let r = push(&app, &tenant, b"at-the-limit", &deepest).await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.body["runs"][0]["execution_id"].as_str().expect("a run").to_string();
    let done = app.wait_execution(&key, &space, &tenant, &id, Duration::from_secs(60)).await;
    assert_eq!((done["status"].as_str(), &done["step_details"][0]["output"]), (Some("succeeded"), &json!(1)), "{done}");

    // An API run: the same rule for its input.
    let run_path = format!("/api/v1/tenants/{tenant}/workflows/on-push/run");
    let r = app
        .api(
            &key,
            &space,
            "POST",
            &run_path,
            Some(json!({"input": serde_json::from_str::<Value>(&nested(MAX_DEPTH)).unwrap()})),
        )
        .await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("too_deep")), "{r:?}");
    let input: Value = serde_json::from_str(&nested(MAX_DEPTH - 1)).unwrap();
    let r = app.api(&key, &space, "POST", &run_path, Some(json!({"input": input}))).await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.body["execution_id"].as_str().expect("execution id").to_string();
    let done = app.wait_execution(&key, &space, &tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

#[tokio::test]
async fn documents_that_cannot_be_carried_are_refused_and_the_rest_run_embedded() {
    documents_are_refused_or_run(Kind::Embedded).await;
}

#[tokio::test]
async fn documents_that_cannot_be_carried_are_refused_and_the_rest_run_aws() {
    documents_are_refused_or_run(Kind::Aws).await;
}

/// Step outputs are stored within the depth every reader handles: too deep fails the step
/// (and the execution reads back and ends); a third party's deep JSON arrives as text.
#[tokio::test]
async fn step_outputs_stay_readable() {
    let deep_api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string(nested(126)),
        )
        .mount(&deep_api)
        .await;
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let deep_item = format!("reduce range({}) as $x (1; [.])", MAX_DEPTH);
    let flow = json!({
        "id": "deep", "name": "Deep outputs", "trigger": {"type": "manual"},
        "steps": [
            {"id": "fetch", "kind": "http", "url": format!("{}/deep", deep_api.uri())},
            {"id": "each", "kind": "foreach", "depends_on": ["fetch"], "items": "[1]",
             "steps": [{"id": "item", "kind": "transform", "expr": deep_item}]},
            {"id": "after", "kind": "transform", "depends_on": ["each"], "expr": "1"}
        ]
    });
    let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r =
        app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows/deep/run"), Some(json!({}))).await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.body["execution_id"].as_str().unwrap().to_string();
    let done = app.wait_execution(&key, &space, &tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "failed", "{done}");
    let step = |id: &str| {
        done["step_details"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(step("fetch")["status"], "succeeded");
    assert!(step("fetch")["output"]["body"].as_str().is_some_and(|b| b.starts_with("[[[")), "{}", step("fetch"));
    assert_eq!(step("each")["status"], "failed");
    assert!(step("each")["error"]["message"].as_str().unwrap_or("").contains("nested deeper"), "{}", step("each"));
    assert_ne!(step("after")["status"], "succeeded");
}

/// A message the executor cannot read is retried, dead-lettered, listed in its space's DLQ
/// and can be replayed.
async fn poison_is_listed_and_replayable(kind: Kind) {
    let p = platform_with(kind, system_clock(), 2, |_| {}).await;
    let app = spawn_app(p).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let execution = "ex_01J00000000000000000000000";
    let surrogate = format!(
        r#"{{"type":"start","space":"{space}","tenant":"{tenant}","execution_id":"{execution}","input":{{"a":"\ud800"}}}}"#
    );
    let deep = format!(
        r#"{{"type":"start","space":"{space}","tenant":"{tenant}","execution_id":"{execution}","input":{}}}"#,
        nested(200)
    );
    let messages = [OutgoingMessage::new(surrogate), OutgoingMessage::new(deep)];
    app.platform.engine.queue.send(QueueId::Runs, &messages).await.unwrap();
    let queue = app.platform.engine.queue.clone();
    eventually("both poison messages are dead-lettered", Duration::from_secs(60), || {
        let queue = queue.clone();
        async move { queue.depth(QueueId::RunsDlq).await.unwrap_or(0) == 2 }
    })
    .await;
    let listed = app.api(&key, &space, "GET", "/api/v1/dlq", None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let items = listed.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{listed:?}");
    assert!(items.iter().all(|i| i["tenant"] == tenant.as_str() && i["execution_id"] == execution), "{listed:?}");
    // Another space sees none of them.
    let (other_space, other_tenant) = (unique("sp"), unique("tn"));
    let other_key = app.seed_tenant(&other_space, &other_tenant).await;
    let other = app.api(&other_key, &other_space, "GET", "/api/v1/dlq", None).await;
    assert_eq!(other.body["items"], json!([]), "{other:?}");
    let replayed = app.api(&key, &space, "POST", "/api/v1/dlq/replay", Some(json!({}))).await;
    assert_eq!((replayed.status, &replayed.body["replayed"]), (200, &json!(2)), "{replayed:?}");
}

#[tokio::test]
async fn poison_messages_are_listed_in_their_space_and_replayable_embedded() {
    poison_is_listed_and_replayable(Kind::Embedded).await;
}

#[tokio::test]
async fn poison_messages_are_listed_in_their_space_and_replayable_aws() {
    poison_is_listed_and_replayable(Kind::Aws).await;
}

#[tokio::test]
async fn deliveries_that_differ_anywhere_are_never_merged() {
    let app = no_consumers(Kind::Embedded).await;
    let (space, tenant, key) = github_tenant(&app).await;
    let body = br#"{"ref": "refs/heads/main"}"#;
    let long_a = format!("{}A", "x".repeat(200));
    let long_b = format!("{}B", "x".repeat(200));
    let longer_a = format!("{}A", "y".repeat(5000));
    let longer_b = format!("{}B", "y".repeat(5000));
    let ids: Vec<Vec<u8>> = vec![
        long_a.into_bytes(),
        long_b.into_bytes(),
        longer_a.into_bytes(),
        longer_b.into_bytes(),
        "délivery-1".as_bytes().to_vec(),
        "délivery-2".as_bytes().to_vec(),
        vec![b'i', b'd', 0xff, 0xfe],
        vec![b'i', b'd', 0xfe, 0xff],
    ];
    for id in &ids {
        let r = push(&app, &tenant, id, body).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (202, Some("accepted")),
            "{:?}: {r:?}",
            String::from_utf8_lossy(id)
        );
    }
    for id in &ids {
        let r = push(&app, &tenant, id, body).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (200, Some("duplicate")),
            "{:?}: {r:?}",
            String::from_utf8_lossy(id)
        );
    }
    // One execution per delivery.
    let (app_ref, key, space, tenant) = (&app, &key, &space, &tenant);
    eventually("an execution per delivery", Duration::from_secs(60), || async move {
        let r = app_ref.api(key, space, "GET", &format!("/api/v1/tenants/{tenant}/executions?limit=50"), None).await;
        r.body["items"].as_array().is_some_and(|items| items.len() == 8)
    })
    .await;
}

/// Raw HTTP/1.1 on a new connection; returns what the server sent until it closed.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_badly_framed_body_is_a_400_and_an_oversized_one_a_413() {
    let app = no_consumers(Kind::Embedded).await;
    let answer = raw(
        &app,
        b"POST /api/v1/spaces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
    let oversized = format!(
        "POST /api/v1/spaces HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        11 * 1024 * 1024
    );
    let answer = raw(&app, oversized.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn stalled_clients_are_cut_off_and_connections_are_capped() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let limits = switchyard_local::front::Limits {
        max_connections: 3,
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
    };
    let app = switchyard_tests::spawn_app_with(
        p,
        switchyard_local::LocalConfig { consumers: 0, tick: Duration::from_secs(3600), limits, ..Default::default() },
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // Three connections stop in the middle of their headers, filling every slot.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        stalled.push(s);
    }
    // Each is closed by the server once its headers are late.
    for mut s in stalled {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a stalled connection stayed open");
    }
    // A body that stops arriving gets a 408.
    let answer = raw(
        &app,
        b"POST /api/v1/spaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"id\":",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // And the slots are free again.
    let r = app.send("GET", "/api/v1/health", &[], None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn protocol_details_are_exact() {
    let app = no_consumers(Kind::Embedded).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    // MCP ids come back exactly as sent.
    let body = r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#;
    let response = app
        .client
        .post(format!("{}/mcp", app.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-fastn-api-key", &key)
        .header("x-fastn-space-id", &space)
        .header("x-fastn-space-tenantid", &tenant)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""id":123456789012345678901234567890"#), "{text}");
    // A version header that is not text is an unsupported version, not a missing one.
    let response = app
        .client
        .post(format!("{}/mcp", app.base))
        .header("content-type", "application/json")
        .header("x-fastn-api-key", &key)
        .header("x-fastn-space-id", &space)
        .header("x-fastn-space-tenantid", &tenant)
        .header("mcp-protocol-version", reqwest::header::HeaderValue::from_bytes("2025-06-18é".as_bytes()).unwrap())
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // HEAD is GET without a body.
    let response = app.client.head(format!("{}/api/v1/health", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(length > 0);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = app
        .client
        .head(format!("{}/api/v1/tenants/{tenant}", app.base))
        .header("x-fastn-api-key", &key)
        .header("x-fastn-space-id", &space)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // An API key that is not text is refused as such.
    let response = app
        .client
        .get(format!("{}/api/v1/tenants", app.base))
        .header("x-fastn-api-key", reqwest::header::HeaderValue::from_bytes(b"swy_\xff\xfe").unwrap())
        .header("x-fastn-space-id", &space)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("not valid text") && !message.contains("missing"), "{body}");
}

#[tokio::test]
async fn standard_webhooks_secrets_work_unpadded_and_are_checked_when_set() {
    let app = no_consumers(Kind::Embedded).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let secret_path = format!("/api/v1/tenants/{tenant}/connectors/standard_webhooks/webhook-secret");
    let r = app.api(&key, &space, "PUT", &secret_path, Some(json!({"secret": "whsec_!!not-base64!!"}))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("invalid_secret")), "{r:?}");
    // 24 bytes of key, base64 without its padding.
    let unpadded = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwCQ";
    let r = app.api(&key, &space, "PUT", &secret_path, Some(json!({"secret": unpadded}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let flow = json!({"id": "sw", "name": "sw", "trigger": {"type": "webhook", "connector": "standard_webhooks"},
                      "steps": [{"id": "a", "kind": "transform", "expr": "1"}]});
    let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let body = br#"{"type": "invoice.paid"}"#;
    let now = chrono::Utc::now().timestamp();
    let r = app
        .send(
            "POST",
            &format!("/webhooks/{tenant}/standard_webhooks"),
            &[
                ("content-type", "application/json"),
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &now.to_string()),
                ("webhook-signature", &sign::standard(unpadded, "msg_1", now, body)),
            ],
            Some(body.to_vec()),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
}

/// The flow that aborted the process: refused when it is written, and the server carries on.
#[tokio::test]
async fn flows_with_pathological_expressions_are_refused_and_the_server_lives() {
    let app = no_consumers(Kind::Embedded).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let deep = format!("{}1{}", "[".repeat(1024), "]".repeat(1024));
    let chain = vec!["1"; 2048].join("+");
    let template = format!("${{{{ {}1{} }}}}", "[".repeat(1024), "]".repeat(1024));
    for (what, step) in [
        ("nested transform", json!({"id": "a", "kind": "transform", "expr": deep})),
        ("long chain", json!({"id": "a", "kind": "transform", "expr": chain})),
        ("nested template", json!({"id": "a", "kind": "http", "url": "https://example.com", "body": {"x": template}})),
    ] {
        let flow = json!({"name": "bad", "trigger": {"type": "manual"}, "steps": [step]});
        let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("invalid_flow")), "{what}: {r:?}");
    }
    // A flow whose expression recurses without end runs, and fails cleanly.
    let flow = json!({"id": "loop", "name": "loop", "trigger": {"type": "manual"},
                      "steps": [{"id": "a", "kind": "transform", "expr": "def f: 1 + f; f"}]});
    let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r =
        app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows/loop/run"), Some(json!({}))).await;
    let id = r.body["execution_id"].as_str().expect("execution").to_string();
    let done = app.wait_execution(&key, &space, &tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error"]["message"].as_str().unwrap_or("").contains("recursed"), "{done}");
    assert_eq!(app.send("GET", "/api/v1/health", &[], None).await.status, 200);
}
