//! Per-tenant metrics as an operator reads them: executions by outcome with durations and step
//! failures by connector and action, from the store's rollups over the API (totals, per flow,
//! a series), the same runs as CloudWatch EMF records, and a tenant's health document.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::domain::connector::Catalog;
use switchyard::ports::{ManualClock, MetricRecord};
use switchyard_tests::{ADMIN_KEY, CapturedMetrics as Captured, Kind, TestApp, platform, spawn_app, unique};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn catalog(base: &str) -> &'static Catalog {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        r#"id: mock_ops
name: Mock ops
description: A provider that refuses pings.
docs_url: https://example.com/ops
base_url: {base}
auth: {{kind: bearer}}
actions:
  - id: ping
    title: Ping
    description: Ping the provider.
    method: GET
    path: /ping
    input_schema: {{type: object}}
"#
    );
    std::fs::write(dir.path().join("mock_ops.yaml"), spec).unwrap();
    Box::leak(Box::new(Catalog::with_extra_dir(dir.path()).unwrap()))
}

struct Ctx {
    app: TestApp,
    key: String,
    space: String,
    tenant: String,
    captured: Arc<Captured>,
    _server: MockServer,
}

impl Ctx {
    async fn new() -> Ctx {
        let server = MockServer::start().await;
        Mock::given(path("/ping")).respond_with(ResponseTemplate::new(400).set_body_string("no")).mount(&server).await;
        let now = chrono::Utc::now().timestamp_millis();
        let clock = ManualClock::at(now - now.rem_euclid(86_400_000) + 3_600_000 + 10_000);
        let mut p = platform(Kind::Embedded, Arc::new(clock)).await;
        p.engine.catalog = catalog(&server.uri());
        let captured = Arc::new(Captured::default());
        p.engine.metrics = captured.clone();
        let app = spawn_app(p).await;
        let (space, tenant) = (unique("sp"), unique("tn"));
        let key = app.seed_tenant(&space, &tenant).await;
        Ctx { app, key, space, tenant, captured, _server: server }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.app.api(&self.key, &self.space, method, path, body).await;
        (r.status, r.body)
    }

    async fn flow(&self, id: &str, step: Value) {
        let flow = json!({"id": id, "name": id, "trigger": {"type": "manual"}, "steps": [step]});
        let (status, body) = self.call("POST", &format!("/api/v1/tenants/{}/workflows", self.tenant), Some(flow)).await;
        assert_eq!(status, 201, "{body}");
    }

    async fn run(&self, flow: &str) -> Value {
        let path = format!("/api/v1/tenants/{}/workflows/{flow}/run", self.tenant);
        let (status, body) = self.call("POST", &path, Some(json!({"input": {}}))).await;
        assert_eq!(status, 202, "{body}");
        let id = body["execution_id"].as_str().unwrap().to_string();
        self.app.wait_execution(ADMIN_KEY, &self.space, &self.tenant, &id, Duration::from_secs(30)).await
    }

    async fn metrics(&self, query: &str) -> (u16, Value) {
        self.call("GET", &format!("/api/v1/tenants/{}/metrics{query}", self.tenant), None).await
    }
}

#[tokio::test]
async fn executions_are_counted_with_durations_and_failing_actions() {
    let ctx = Ctx::new().await;
    let path = format!("/api/v1/tenants/{}/connectors/mock_ops/credentials", ctx.tenant);
    let (status, body) = ctx.call("PUT", &path, Some(json!({"kind": "bearer", "token": "t"}))).await;
    assert_eq!(status, 200, "{body}");
    ctx.flow("good", json!({"id": "s", "kind": "transform", "expr": "1"})).await;
    ctx.flow("bad", json!({"id": "call", "kind": "action", "connector": "mock_ops", "action": "ping", "retry": {"max_attempts": 1}}))
        .await;
    for _ in 0..3 {
        assert_eq!(ctx.run("good").await["status"], "succeeded");
    }
    assert_eq!(ctx.run("bad").await["status"], "failed");

    let (status, m) = ctx.metrics("").await;
    assert_eq!(status, 200, "{m}");
    let totals = &m["totals"];
    assert_eq!((&totals["started"], &totals["succeeded"], &totals["failed"]), (&json!(4), &json!(3), &json!(1)), "{m}");
    assert_eq!(totals["error_rate"], 25.0);
    assert!(totals["duration_ms"]["p99_ms"].as_u64().is_some(), "{m}");
    assert_eq!(totals["step_failures"], json!([{"connector": "mock_ops", "action": "ping", "count": 1}]));
    assert_eq!(m["flows"].as_array().unwrap().len(), 2);
    assert_eq!(m["series"].as_array().unwrap().len(), 1, "one hour: {m}");

    let (_, good) = ctx.metrics("?flow=good&granularity=day").await;
    assert_eq!((&good["totals"]["started"], &good["totals"]["failed"]), (&json!(3), &json!(0)), "{good}");
    let (_, earlier) = ctx.metrics("?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z").await;
    assert_eq!(earlier["totals"]["started"], 0);
    for bad in [
        "?from=10&to=5",
        "?from=0&to=4000000000",
        "?granularity=week",
        "?from=soon",
        "?flow=no%20such",
        "?from=-9223372036854775808&to=9223372036854775807",
        "?to=-9223372036854775808",
    ] {
        assert_eq!(ctx.metrics(bad).await.0, 400, "{bad}");
    }

    // The same executions as CloudWatch records: tenant-level dimensions, the flow per space.
    let records = ctx.captured.0.lock().unwrap().clone();
    let finished: Vec<&MetricRecord> =
        records.iter().filter(|r| r.values.iter().any(|(n, ..)| *n == "ExecutionsFinished")).collect();
    assert_eq!(finished.len(), 4);
    assert!(finished.iter().all(|r| r.dimension_sets == vec![vec!["space", "tenant"], vec!["space", "flow"]]));
    assert!(finished.iter().all(|r| r.dimensions.contains(&("tenant", ctx.tenant.clone()))));
    let failed = finished.iter().filter(|r| r.values.iter().any(|(n, ..)| *n == "ExecutionsFailed")).count();
    assert_eq!(failed, 1);

    // Health: the connection is connected, no poll runs.
    let (status, health) = ctx.call("GET", &format!("/api/v1/tenants/{}/health", ctx.tenant), None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["healthy"], true);
    assert_eq!(health["polls"], json!([]));
    let states: Vec<(Value, Value)> = health["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["connector"].clone(), c["state"].clone()))
        .collect();
    assert_eq!(states, [(json!("mock_ops"), json!("connected"))]);
}
