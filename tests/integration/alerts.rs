//! Alert rules as a space's admins use them: a rule on a tenant's error rate fires once when
//! failures pass its threshold and resolves once when they are gone, each time a platform
//! event, an alert event and a Standard Webhooks POST whose signature verifies; a webhook that
//! is down is retried and the failure recorded; quota use and DLQ depth fire too; rules are
//! validated.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use switchyard::adapters::embedded::EmbeddedEventBus;
use switchyard::domain::webhook::signature::sign;
use switchyard::ports::{ManualClock, OutgoingMessage, QueueId};
use switchyard_tests::{ADMIN_KEY, Kind, TestApp, platform, spawn_app, unique};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Ctx {
    app: TestApp,
    clock: ManualClock,
    key: String,
    space: String,
    tenant: String,
    hook: MockServer,
    secret: String,
}

impl Ctx {
    async fn new(hook_status: u16) -> Ctx {
        let hook = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(hook_status))
            .mount(&hook)
            .await;
        let now = chrono::Utc::now().timestamp_millis();
        let clock = ManualClock::at(now - now.rem_euclid(3_600_000) + 600_000);
        let app = spawn_app(platform(Kind::Embedded, Arc::new(clock.clone())).await).await;
        let (space, tenant) = (unique("sp"), unique("tn"));
        let key = app.seed_tenant(&space, &tenant).await;
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
        let ctx = Ctx { app, clock, key, space, tenant, hook, secret };
        for (id, expr) in [("good", "1"), ("bad", "error(\"boom\")")] {
            let flow = json!({"id": id, "name": id, "trigger": {"type": "manual"},
                              "steps": [{"id": "s", "kind": "transform", "expr": expr}]});
            let (status, body) =
                ctx.call("POST", &format!("/api/v1/tenants/{}/workflows", ctx.tenant), Some(flow)).await;
            assert_eq!(status, 201, "{body}");
        }
        ctx
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.app.api(&self.key, &self.space, method, path, body).await;
        (r.status, r.body)
    }

    async fn run(&self, flow: &str, times: usize) {
        for _ in 0..times {
            let path = format!("/api/v1/tenants/{}/workflows/{flow}/run", self.tenant);
            let (status, body) = self.call("POST", &path, Some(json!({"input": {}}))).await;
            assert_eq!(status, 202, "{body}");
            let id = body["execution_id"].as_str().unwrap();
            self.app.wait_execution(ADMIN_KEY, &self.space, &self.tenant, id, Duration::from_secs(30)).await;
        }
    }

    async fn tick(&self) -> usize {
        switchyard::usecases::schedules::tick(&self.app.platform.engine).await.unwrap().alerts
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        let bus = EmbeddedEventBus::new(self.app.platform.database.clone().unwrap(), Arc::new(self.clock.clone()));
        bus.published_since(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.detail_type == kind)
            .map(|(_, e)| e.detail)
            .collect()
    }

    async fn alert_events(&self) -> Vec<Value> {
        let (status, body) = self.call("GET", "/api/v1/alerts/events", None).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn an_error_rate_rule_fires_and_resolves_once_with_signed_webhooks() {
    let ctx = Ctx::new(200).await;
    let url = format!("{}/hook", ctx.hook.uri());
    let rule = json!({"name": "acme errors", "metric": "error_rate", "threshold": 20, "tenant": ctx.tenant,
                      "min_executions": 3, "webhook_url": url});
    let (status, body) = ctx.call("PUT", "/api/v1/alerts/errors", Some(rule.clone())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_alert")), "no signing secret yet: {body}");
    let (status, _) = ctx.call("PUT", "/api/v1/alerts/signing-secret", Some(json!({"secret": "whsec_short"}))).await;
    assert_eq!(status, 400);
    let (status, _) = ctx.call("PUT", "/api/v1/alerts/signing-secret", Some(json!({"secret": ctx.secret}))).await;
    assert_eq!(status, 204);
    let (status, body) = ctx.call("PUT", "/api/v1/alerts/errors", Some(rule)).await;
    assert_eq!(status, 201, "{body}");

    // Two good runs: too few to measure.
    ctx.run("good", 2).await;
    assert_eq!(ctx.tick().await, 1);
    assert!(ctx.alert_events().await.is_empty());
    // Two failures of four: 50 % > 20 %, it fires; a second tick does not fire it again.
    ctx.run("bad", 2).await;
    ctx.tick().await;
    ctx.tick().await;
    let events = ctx.alert_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["kind"], &events[0]["value"], &events[0]["delivery"]),
        (&json!("firing"), &json!(50.0), &json!("delivered"))
    );
    assert_eq!(ctx.events("alert.firing").len(), 1);
    let (_, rules) = ctx.call("GET", "/api/v1/alerts", None).await;
    assert_eq!(
        (&rules["items"][0]["id"], &rules["items"][0]["state"]["firing"]),
        (&json!("errors"), &json!(true)),
        "{rules}"
    );

    // The webhook verifies as Standard Webhooks with the space's secret.
    let received = ctx.hook.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    let header = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_string();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp").parse::<i64>().unwrap());
    assert_eq!(header("webhook-signature"), sign::standard(&ctx.secret, &id, timestamp, &r.body));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((&body["type"], &body["data"]["alert"]), (&json!("alert.firing"), &json!("errors")));

    // An hour later, without failures: an empty window measures nothing and keeps the state;
    // four good runs resolve it, once.
    ctx.clock.advance(Duration::from_secs(3_600));
    ctx.tick().await;
    assert_eq!(ctx.alert_events().await.len(), 1);
    ctx.run("good", 4).await;
    ctx.tick().await;
    ctx.tick().await;
    let events = ctx.alert_events().await;
    assert_eq!(events.iter().map(|e| e["kind"].clone()).collect::<Vec<_>>(), [json!("resolved"), json!("firing")]);
    assert_eq!(ctx.events("alert.resolved").len(), 1);
    assert_eq!(ctx.hook.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_webhook_that_is_down_is_retried_and_the_failure_recorded() {
    let ctx = Ctx::new(503).await;
    assert_eq!(ctx.call("PUT", "/api/v1/alerts/signing-secret", Some(json!({"secret": ctx.secret}))).await.0, 204);
    let rule = json!({"name": "errors", "metric": "error_rate", "threshold": 0, "tenant": ctx.tenant,
                      "min_executions": 1, "webhook_url": format!("{}/hook", ctx.hook.uri())});
    assert_eq!(ctx.call("PUT", "/api/v1/alerts/errors", Some(rule)).await.0, 201);
    ctx.run("bad", 1).await;
    ctx.tick().await;
    let events = ctx.alert_events().await;
    assert_eq!((&events[0]["delivery"], &events[0]["attempts"]), (&json!("failed"), &json!(3)), "{events:?}");
    assert_eq!(ctx.hook.received_requests().await.unwrap().len(), 3);
    assert_eq!(ctx.events("alert.firing").len(), 1, "the platform event goes out anyway");
}

#[tokio::test]
async fn quota_use_and_dlq_depth_fire() {
    let ctx = Ctx::new(200).await;
    let path = format!("/api/v1/tenants/{}/quotas", ctx.tenant);
    let r = ctx.app.api(ADMIN_KEY, &ctx.space, "PUT", &path, Some(json!({"events_per_day": {"limit": 4}}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let quota = json!({"name": "events", "metric": "quota_usage", "dimension": "events_per_day", "threshold": 50, "tenant": ctx.tenant});
    assert_eq!(ctx.call("PUT", "/api/v1/alerts/quota", Some(quota)).await.0, 201);
    assert_eq!(
        ctx.call("PUT", "/api/v1/alerts/dlq", Some(json!({"name": "dlq", "metric": "dlq_depth", "threshold": 1})))
            .await
            .0,
        201
    );
    ctx.run("good", 1).await;
    ctx.tick().await;
    assert!(ctx.alert_events().await.is_empty(), "25 % of the quota, an empty DLQ");
    ctx.run("good", 1).await;
    let queue = &ctx.app.platform.engine.queue;
    for n in 0..2 {
        let body =
            json!({"type": "start", "space": ctx.space, "tenant": ctx.tenant, "execution_id": format!("ex_{n}")});
        queue.send(QueueId::RunsDlq, &[OutgoingMessage::new(body.to_string())]).await.unwrap();
    }
    ctx.tick().await;
    let mut fired: Vec<(Value, Value)> =
        ctx.alert_events().await.iter().map(|e| (e["alert"].clone(), e["value"].clone())).collect();
    fired.sort_by_key(|(a, _)| a.to_string());
    assert_eq!(fired, [(json!("dlq"), json!(2.0)), (json!("quota"), json!(50.0))]);
}

#[tokio::test]
async fn rules_are_validated_and_deleted() {
    let ctx = Ctx::new(200).await;
    for (id, rule) in [
        ("e", json!({"name": "x", "metric": "error_rate", "threshold": 1})),
        ("e", json!({"name": "x", "metric": "error_rate", "threshold": 150, "tenant": ctx.tenant})),
        ("e", json!({"name": "x", "metric": "dlq_depth", "threshold": 1, "window_hours": 48})),
        ("e", json!({"name": "x", "metric": "latency", "threshold": 1})),
    ] {
        let (status, body) = ctx.call("PUT", &format!("/api/v1/alerts/{id}"), Some(rule.clone())).await;
        assert_eq!(status, 400, "{rule}: {body}");
    }
    let unknown = json!({"name": "x", "metric": "error_rate", "threshold": 1, "tenant": "nobody"});
    assert_eq!(ctx.call("PUT", "/api/v1/alerts/e", Some(unknown)).await.0, 404);
    assert_eq!(
        ctx.call("PUT", "/api/v1/alerts/d", Some(json!({"name": "d", "metric": "dlq_depth", "threshold": 1}))).await.0,
        201
    );
    assert_eq!(
        ctx.call("PUT", "/api/v1/alerts/d", Some(json!({"name": "d2", "metric": "dlq_depth", "threshold": 2}))).await.0,
        200
    );
    assert_eq!(ctx.call("DELETE", "/api/v1/alerts/d", None).await.0, 204);
    assert_eq!(ctx.call("DELETE", "/api/v1/alerts/d", None).await.0, 404);
    assert_eq!(ctx.tick().await, 0, "a deleted rule is not measured");
    // The literal paths under /alerts/ are not rules: other methods are 405s naming theirs.
    for (method, path, allow) in
        [("PUT", "/api/v1/alerts/events", "GET, HEAD"), ("OPTIONS", "/api/v1/alerts/signing-secret", "PUT")]
    {
        let r = ctx.app.api(&ctx.key, &ctx.space, method, path, Some(json!({}))).await;
        assert_eq!(
            (r.status, r.headers.get("allow").and_then(|v| v.to_str().ok())),
            (405, Some(allow)),
            "{method} {path}: {r:?}"
        );
    }
}
