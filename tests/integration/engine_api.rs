//! The flow engine as users drive it over the API: YAML flows, precise validation errors,
//! version pinning, execution filters and pages, cancel and re-run, DLQ listing and replay by
//! time window, platform events, stable idempotency keys across retries, foreach concurrency,
//! continuations when an invocation runs out of time, and the tenant's config in templates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::adapters::embedded::EmbeddedEventBus;
use switchyard::domain::execution::{ExecutionStatus, FlowRef, TriggerInfo};
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::ids::{ExecutionId, FlowId, TenantId};
use switchyard::domain::tenancy::Plan;
use switchyard::engine::runs;
use switchyard::ports::QueueId;
use switchyard::runtime::Platform;
use switchyard::store::{executions, flows, tenants as tenancy};
use switchyard_tests::{Kind, TestApp, platform, platform_with, spawn_app, system_clock, tenant, unique};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

struct Api {
    app: TestApp,
    key: String,
    space: String,
    tenant: String,
}

impl Api {
    async fn new(p: Platform) -> Api {
        let app = spawn_app(p).await;
        let (space, tenant) = (unique("sp"), unique("tn"));
        let key = app.seed_tenant(&space, &tenant).await;
        Api { app, key, space, tenant }
    }
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.app.api(&self.key, &self.space, method, path, body).await;
        (r.status, r.body)
    }
    fn flows(&self) -> String {
        format!("/api/v1/tenants/{}/workflows", self.tenant)
    }
    async fn create(&self, flow: Value) -> String {
        let (status, body) = self.call("POST", &self.flows(), Some(flow)).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }
    async fn run(&self, flow: &str, input: Value) -> String {
        let (status, body) =
            self.call("POST", &format!("{}/{flow}/run", self.flows()), Some(json!({"input": input}))).await;
        assert_eq!(status, 202, "{body}");
        body["execution_id"].as_str().unwrap().to_string()
    }
    async fn wait(&self, id: &str) -> Value {
        self.app.wait_execution(&self.key, &self.space, &self.tenant, id, Duration::from_secs(30)).await
    }
    async fn wait_status(&self, id: &str, status: &str) -> Value {
        let path = format!("/api/v1/tenants/{}/executions/{id}", self.tenant);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.call("GET", &path, None).await;
            if body["status"] == status {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} never became {status}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    /// The ids on one page of the tenant's executions, and the next cursor.
    async fn list(&self, query: &str) -> (Vec<String>, Value) {
        let (status, body) =
            self.call("GET", &format!("/api/v1/tenants/{}/executions{query}", self.tenant), None).await;
        assert_eq!(status, 200, "{body}");
        let ids = body["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
        (ids, body["next_cursor"].clone())
    }
    fn events(&self) -> Vec<(String, Value)> {
        let db = self.app.platform.database.clone().expect("embedded");
        EmbeddedEventBus::new(db, system_clock())
            .published_since(0, 10_000)
            .unwrap()
            .into_iter()
            .map(|(_, e)| (e.detail_type, e.detail))
            .collect()
    }
}

fn output<'a>(execution: &'a Value, step: &str) -> &'a Value {
    let steps = execution["step_details"].as_array().expect("step details");
    &steps.iter().find(|s| s["id"] == step).unwrap_or_else(|| panic!("no step {step}: {execution}"))["output"]
}

#[tokio::test]
async fn flows_in_yaml_precise_errors_and_version_pinning() {
    let api = Api::new(platform(Kind::Embedded, system_clock()).await).await;

    // YAML is accepted.
    let yaml = "id: from-yaml\nname: From YAML\ntrigger: {type: manual}\nsteps:\n  - id: hello\n    kind: transform\n    expr: '\"hello \" + .trigger.input.name'\n";
    let r = api
        .app
        .send(
            "POST",
            &api.flows(),
            &[("x-fastn-api-key", &api.key), ("x-fastn-space-id", &api.space), ("content-type", "application/yaml")],
            Some(yaml.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(
        (r.status, r.body["id"].as_str(), r.body["version"].as_u64()),
        (201, Some("from-yaml"), Some(1)),
        "{r:?}"
    );
    let id = api.run("from-yaml", json!({"name": "ada"})).await;
    assert_eq!(output(&api.wait(&id).await, "hello"), "hello ada");
    let r = api
        .app
        .send(
            "POST",
            &api.flows(),
            &[("x-fastn-api-key", &api.key), ("x-fastn-space-id", &api.space), ("content-type", "application/yaml")],
            Some(b"name: [unclosed".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    // Invalid flows: 400 naming the step and the field.
    let base = |steps: Value| json!({"name": "bad", "trigger": {"type": "manual"}, "steps": steps});
    for (flow, step, field) in [
        (base(json!([{"id": "a", "kind": "teleport"}])), "a", "kind"),
        (base(json!([{"id": "a", "kind": "transform", "expr": ".x |"}])), "a", "expr"),
        (base(json!([{"id": "a", "kind": "transform", "expr": "1", "depends_on": ["ghost"]}])), "a", "depends_on"),
        (
            base(json!([{"id": "a", "kind": "transform", "expr": "1", "depends_on": ["b"]},
                        {"id": "b", "kind": "transform", "expr": "1", "depends_on": ["a"]}])),
            "a",
            "depends_on",
        ),
        (
            base(json!([{"id": "a", "kind": "action", "connector": "slack", "action": "teleport", "input": {}}])),
            "a",
            "action",
        ),
        (
            base(
                json!([{"id": "a", "kind": "transform", "expr": ".steps.b.output"}, {"id": "b", "kind": "transform", "expr": "1"}]),
            ),
            "a",
            "expr",
        ),
    ] {
        let (status, body) = api.call("POST", &api.flows(), Some(flow.clone())).await;
        assert_eq!(status, 400, "{flow}: {body}");
        assert_eq!(body["error"]["code"], "invalid_flow", "{body}");
        assert_eq!(
            (body["error"]["details"]["step"].as_str(), body["error"]["details"]["field"].as_str()),
            (Some(step), Some(field)),
            "{flow}: {body}"
        );
    }
    let (status, body) = api
        .call(
            "POST",
            &api.flows(),
            Some(base(
                json!([{"id": "a", "kind": "transform", "expr": "1"}, {"id": "a", "kind": "transform", "expr": "2"}]),
            )),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_flow")), "duplicate ids: {body}");

    // An execution keeps the version it started with; a re-run from the start takes the current one.
    let pinned = api
        .create(json!({"id": "pinned", "name": "v1", "trigger": {"type": "manual"}, "steps": [
            {"id": "wait", "kind": "delay", "seconds": 2},
            {"id": "which", "kind": "transform", "depends_on": ["wait"], "expr": "\"v1\""}]}))
        .await;
    let first = api.run(&pinned, json!({})).await;
    api.wait_status(&first, "waiting").await;
    let (status, body) = api
        .call(
            "PUT",
            &format!("{}/{pinned}", api.flows()),
            Some(json!({"name": "v2", "trigger": {"type": "manual"}, "steps": [
            {"id": "wait", "kind": "delay", "seconds": 2},
            {"id": "which", "kind": "transform", "depends_on": ["wait"], "expr": "\"v2\""}]})),
        )
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    let done = api.wait(&first).await;
    assert_eq!((done["status"].as_str(), done["flow"]["version"].as_u64()), (Some("succeeded"), Some(1)), "{done}");
    assert_eq!(output(&done, "which"), "v1", "the version it started with");
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/executions/{first}/rerun", api.tenant),
            Some(json!({"from": "start"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let again = api.wait(body["execution_id"].as_str().unwrap()).await;
    assert_eq!((again["flow"]["version"].as_u64(), output(&again, "which").as_str()), (Some(2), Some("v2")), "{again}");
}

/// Fails with 503 twice, then succeeds; records every Idempotency-Key it received.
#[derive(Clone, Default)]
struct FlakyRecorder {
    keys: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Respond for FlakyRecorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let key = request.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let mut keys = self.keys.lock().unwrap();
        keys.push(key);
        if keys.len() <= 2 {
            ResponseTemplate::new(503)
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"ok": true}))
        }
    }
}

#[tokio::test]
async fn executions_filter_page_cancel_rerun_and_publish_events() {
    let api = Api::new(platform(Kind::Embedded, system_clock()).await).await;
    let server = MockServer::start().await;
    let flaky = FlakyRecorder::default();
    Mock::given(path("/flaky")).respond_with(flaky.clone()).mount(&server).await;
    Mock::given(path("/missing")).respond_with(ResponseTemplate::new(404)).mount(&server).await;
    let t = api.tenant.clone();

    let ok = api
        .create(json!({"name": "ok", "trigger": {"type": "manual"}, "config": {"retry": {"initial_delay_ms": 100, "max_delay_ms": 200}},
            "steps": [{"id": "post", "kind": "http", "method": "POST", "url": format!("{}/flaky", server.uri()), "body": {"n": 1}}]}))
        .await;
    let broken = api
        .create(json!({"name": "broken", "trigger": {"type": "manual"},
            "steps": [{"id": "get", "kind": "http", "url": format!("{}/missing", server.uri())}]}))
        .await;
    let before = chrono::Utc::now().timestamp_millis();
    let a = api.run(&ok, json!({})).await;
    let done = api.wait(&a).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["step_details"][0]["attempt"], 3, "{done}");
    let keys = flaky.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(keys[0].starts_with("swy-") && keys.iter().all(|k| *k == keys[0]), "one key for every attempt: {keys:?}");
    let b = api.run(&broken, json!({})).await;
    assert_eq!(api.wait(&b).await["status"], "failed");
    let c = api.run(&broken, json!({})).await;
    assert_eq!(api.wait(&c).await["status"], "failed");

    assert_eq!(api.list(&format!("?flow={ok}")).await.0, vec![a.clone()]);
    let mut failed = api.list("?status=failed").await.0;
    failed.sort();
    let mut expected = vec![b.clone(), c.clone()];
    expected.sort();
    assert_eq!(failed, expected);
    assert_eq!(api.list(&format!("?flow={broken}&status=succeeded")).await.0, Vec::<String>::new());
    let (page1, cursor) = api.list("?limit=2").await;
    assert_eq!(page1.len(), 2);
    let cursor = cursor.as_str().expect("a next page").to_string();
    let (page2, end) = api.list(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(page2.len(), 1, "three executions in all");
    assert!(end.is_null());
    assert!(!page1.contains(&page2[0]));
    assert_eq!(api.list(&format!("?since={}", before - 60_000)).await.0.len(), 3);
    assert_eq!(api.list(&format!("?until={}", before - 60_000)).await.0.len(), 0);
    let later =
        chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis() + 60_000).unwrap().to_rfc3339();
    assert_eq!(api.list(&format!("?since={}", later.replace('+', "%2B"))).await.0.len(), 0, "RFC 3339 works too");
    for bad in ["?status=sleeping", "?since=yesterday", "?limit=0", "?cursor=garbage", "?flow=Not%20An%20Id"] {
        let (status, body) = api.call("GET", &format!("/api/v1/tenants/{t}/executions{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Re-run from the failed step; the body is checked.
    let rerun = format!("/api/v1/tenants/{t}/executions/{b}/rerun");
    let (status, body) = api.call("POST", &rerun, Some(json!({"from": "failed"}))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["rerun_of"], b.as_str());
    let again = api.wait(body["execution_id"].as_str().unwrap()).await;
    assert_eq!(
        (again["status"].as_str(), again["trigger"]["kind"].as_str()),
        (Some("failed"), Some("rerun")),
        "{again}"
    );
    let (status, _) = api.call("POST", &rerun, Some(json!({"from": "middle"}))).await;
    assert_eq!(status, 400);
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/v1/tenants/{t}/executions/ex_01KZ0000000000000000000009/rerun"),
            Some(json!({"from": "start"})),
        )
        .await;
    assert_eq!(status, 404);

    // Cancel a waiting execution over the API.
    let sleepy = api
        .create(json!({"name": "sleepy", "trigger": {"type": "manual"},
            "steps": [{"id": "nap", "kind": "delay", "seconds": 600}, {"id": "after", "kind": "transform", "depends_on": ["nap"], "expr": "1"}]}))
        .await;
    let d = api.run(&sleepy, json!({})).await;
    api.wait_status(&d, "waiting").await;
    let cancel = format!("/api/v1/tenants/{t}/executions/{d}/cancel");
    let (status, body) = api.call("POST", &cancel, None).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("cancelled")), "{body}");
    let (status, body) = api.call("POST", &cancel, None).await;
    assert_eq!(status, 409, "already final: {body}");
    let (_, detail) = api.call("GET", &format!("/api/v1/tenants/{t}/executions/{d}"), None).await;
    let transitions: Vec<&str> =
        detail["transitions"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(transitions, ["queued", "running", "waiting", "cancelled"], "{detail}");

    // One platform event per finished execution, with its outcome.
    let events = api.events();
    let outcome = |id: &str| -> Vec<String> {
        events.iter().filter(|(_, d)| d["execution_id"] == id).map(|(t, _)| t.clone()).collect()
    };
    assert_eq!(outcome(&a), ["execution.succeeded"]);
    assert_eq!(outcome(&b), ["execution.failed"]);
    assert_eq!(outcome(&d), ["execution.cancelled"]);
    let (_, detail) = events.iter().find(|(_, d)| d["execution_id"] == b.as_str()).unwrap();
    assert_eq!(detail["error"]["step"], "get", "{detail}");
    assert_eq!(detail["tenant"], t.as_str());
}

#[tokio::test]
async fn the_dlq_is_listed_and_replayed_by_time_window_over_the_api() {
    let p = platform_with(Kind::Embedded, system_clock(), 1, |_| {}).await;
    let api = Api::new(p).await;
    let p = api.app.platform.clone();
    let resolved =
        tenancy::resolve_tenant(p.db(), &TenantId::parse(api.tenant.clone()).unwrap()).await.unwrap().unwrap();
    // Runs of a flow version that does not exist: poison until the flow is created.
    let poison = |flow: &'static str| {
        let p = p.clone();
        let resolved = resolved.clone();
        async move {
            let flow_ref =
                FlowRef { owner: flows::tenant_owner(&resolved), id: FlowId::parse(flow).unwrap(), version: 1 };
            runs::start_pinned(
                &p.engine,
                &resolved,
                flow_ref,
                TriggerInfo::manual(),
                json!({}),
                None,
                ExecutionId::generate(p.now_ms()),
            )
            .await
            .unwrap()
        }
    };
    let early = poison("early").await;
    let dead = |n: u64| {
        let p = p.clone();
        async move {
            switchyard_tests::eventually("dead-lettered", Duration::from_secs(20), || {
                let p = p.clone();
                async move { p.engine.queue.depth(QueueId::RunsDlq).await.unwrap() == n }
            })
            .await
        }
    };
    dead(1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = poison("late").await;
    dead(2).await;

    let (status, body) = api.call("GET", "/api/v1/dlq", None).await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> =
        body["items"].as_array().unwrap().iter().map(|l| l["execution_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [early.as_str(), late.as_str()], "oldest first");
    assert_eq!(body["items"][0]["tenant"], api.tenant.as_str());
    assert_eq!(p.engine.queue.depth(QueueId::RunsDlq).await.unwrap(), 2, "listing leaves them in place");
    // Another space's key sees none of them.
    let other = unique("sp");
    let other_key = api.app.seed_tenant(&other, &unique("tn")).await;
    let r = api.app.api(&other_key, &other, "GET", "/api/v1/dlq", None).await;
    assert_eq!(r.body["items"], json!([]), "{r:?}");
    let r = api.app.api(&other_key, &other, "POST", "/api/v1/dlq/replay", Some(json!({}))).await;
    assert_eq!((r.body["replayed"].as_u64(), r.body["skipped"].as_u64()), (Some(0), Some(2)), "{r:?}");

    // Fix the late one's cause and replay only what arrived after `between`.
    let definition = FlowDefinition::parse(
        &json!({"name": "late", "trigger": {"type": "manual"}, "steps": [{"id": "s", "kind": "transform", "expr": "\"fixed\""}]}),
        p.engine.catalog,
    )
    .unwrap();
    flows::create_flow(p.db(), flows::tenant_owner(&resolved), Some(FlowId::parse("late").unwrap()), &definition)
        .await
        .unwrap()
        .0;
    let (status, body) = api.call("POST", "/api/v1/dlq/replay", Some(json!({"since": between}))).await;
    assert_eq!((status, body["replayed"].as_u64(), body["skipped"].as_u64()), (200, Some(1), Some(1)), "{body}");
    let done = api.wait(late.as_str()).await;
    assert_eq!(output(&done, "s"), "fixed");
    let (_, body) = api.call("GET", "/api/v1/dlq", None).await;
    let listed: Vec<&str> =
        body["items"].as_array().unwrap().iter().map(|l| l["execution_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [early.as_str()]);
    for bad in [json!({"since": "last tuesday"}), json!({"queue": "nope"}), json!({"colour": 1})] {
        let (status, body) = api.call("POST", "/api/v1/dlq/replay", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// An endpoint that holds each request 150 ms and records the most it held at once.
async fn concurrency_probe() -> (String, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (a, b) = (in_flight.clone(), most.clone());
    let app = axum::Router::new().fallback(move || {
        let (in_flight, most) = (a.clone(), b.clone());
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            ([("content-type", "application/json")], "{\"ok\":true}")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/item", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, most)
}

async fn create(p: &Platform, t: &tenancy::ResolvedTenant, definition: Value) -> flows::FlowRecord {
    let definition = FlowDefinition::parse(&definition, p.engine.catalog).unwrap_or_else(|e| panic!("{e}"));
    flows::create_flow(p.db(), flows::tenant_owner(t), None, &definition).await.unwrap().0
}

#[tokio::test]
async fn foreach_never_exceeds_its_concurrency() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let (url, most) = concurrency_probe().await;
    let f = create(
        &p,
        &t,
        json!({"name": "fan", "trigger": {"type": "manual"}, "steps": [
        {"id": "each", "kind": "foreach", "items": "[range(9)]", "concurrency": 3,
         "steps": [{"id": "call", "kind": "http", "url": url}]}]}),
    )
    .await;
    let id = runs::start_run(&p.engine, &t, &f, TriggerInfo::manual(), json!({}), None).await.unwrap();
    switchyard_tests::drain(&p).await;
    let e = executions::get_execution(p.db(), &t.space.id, &t.tenant.id, &id).await.unwrap().unwrap().execution;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    assert_eq!(most.load(Ordering::SeqCst), 3, "exactly the limit at once, never more");
}

#[tokio::test]
async fn an_invocation_out_of_time_hands_over_to_a_continuation() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let steps: Vec<Value> = (0..3)
        .map(|i| {
            let mut s = json!({"id": format!("s{i}"), "kind": "transform", "expr": format!("{i}"), "timeout_ms": 100});
            if i > 0 {
                s["depends_on"] = json!([format!("s{}", i - 1)]);
            }
            s
        })
        .collect();
    let f = create(&p, &t, json!({"name": "long", "trigger": {"type": "manual"}, "steps": steps})).await;
    let id = runs::start_run(&p.engine, &t, &f, TriggerInfo::manual(), json!({}), None).await.unwrap();
    // An invocation with just over the engine's safety margin (5 s) left: one round, then a
    // checkpoint and a continuation message.
    let tight = switchyard_local::LocalConfig { budget: Duration::from_millis(5_050), ..Default::default() };
    assert_eq!(switchyard_local::consume_runs_once(&p, &tight, Duration::from_millis(500)).await.unwrap(), 1);
    let e = executions::get_execution(p.db(), &t.space.id, &t.tenant.id, &id).await.unwrap().unwrap().execution;
    assert_eq!(e.steps.len(), 1, "one step ran: {e:?}");
    assert!(!e.status.is_terminal(), "{e:?}");
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 1, "a continuation is queued");
    switchyard_tests::drain(&p).await;
    let e = executions::get_execution(p.db(), &t.space.id, &t.tenant.id, &id).await.unwrap().unwrap().execution;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    assert_eq!(e.steps.len(), 3);
    assert!(e.invocations >= 2, "{e:?}");
}

#[tokio::test]
async fn templates_read_the_tenants_config_and_variables() {
    let api = Api::new(platform(Kind::Embedded, system_clock()).await).await;
    let t = api.tenant.clone();
    let (status, body) =
        api.call("PUT", "/api/v1/config", Some(json!({"vars": {"channel": "#space-default", "team": "core"}}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            "PUT",
            &format!("/api/v1/tenants/{t}/config"),
            Some(json!({"vars": {"channel": "#acme-ops"}, "retry": {"max_attempts": 7}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        api.call("PUT", &format!("/api/v1/tenants/{t}/config"), Some(json!({"vars": "not an object"}))).await;
    assert_eq!(status, 400);
    let definition = json!({"id": "vars", "name": "vars", "trigger": {"type": "manual"}, "vars": {"channel": "#flow-default", "greeting": "hi"},
        "steps": [{"id": "say", "kind": "transform",
                   "expr": "{channel: .vars.channel, greeting: .vars.greeting, team: .vars.team, attempts: .config.retry.max_attempts}"}]});
    let flow = api.create(definition.clone()).await;
    let done = api.wait(&api.run(&flow, json!({})).await).await;
    assert_eq!(
        output(&done, "say"),
        &json!({"channel": "#acme-ops", "greeting": "hi", "team": "core", "attempts": 7}),
        "{done}"
    );
    // A second tenant of the space sees the space's values, then the flow's defaults.
    let other = unique("tn");
    let r =
        api.app.api(&api.key, &api.space, "POST", "/api/v1/tenants", Some(json!({"id": other, "name": "other"}))).await;
    assert_eq!(r.status, 201);
    let r = api
        .app
        .api(&api.key, &api.space, "POST", &format!("/api/v1/tenants/{other}/workflows"), Some(definition))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = api
        .app
        .api(&api.key, &api.space, "POST", &format!("/api/v1/tenants/{other}/workflows/vars/run"), Some(json!({})))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.body["execution_id"].as_str().unwrap().to_string();
    let done = api.app.wait_execution(&api.key, &api.space, &other, &id, Duration::from_secs(30)).await;
    assert_eq!(
        output(&done, "say"),
        &json!({"channel": "#space-default", "greeting": "hi", "team": "core", "attempts": 3}),
        "{done}"
    );
}
