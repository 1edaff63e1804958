//! The flow engine: DAG shapes, skipped branches, foreach, delays (SQS and scheduler timers),
//! retries on a fake clock, the configuration cascade, cancellation, crash and redelivery
//! without re-running completed steps, schedules, re-runs, poison messages and DLQ replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::domain::execution::{ExecutionStatus, TriggerInfo};
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::ids::{ExecutionId, FlowId};
use switchyard::domain::tenancy::Plan;
use switchyard::engine::runs;
use switchyard::ports::{ManualClock, Query, QueueId, query_all};
use switchyard::runtime::Platform;
use switchyard::store::executions;
use switchyard::store::flows::{self, FlowRecord};
use switchyard::store::keys;
use switchyard::store::tenants::ResolvedTenant;
use switchyard::usecases::executions::RerunFrom;
use switchyard_tests::instrument::{Instruments, Op};
use switchyard_tests::{
    Kind, drain, drain_visible, instrumented_platform, platform, platform_with, system_clock, tenant,
};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

async fn flow(p: &Platform, t: &ResolvedTenant, definition: Value) -> FlowRecord {
    let definition = FlowDefinition::parse(&definition, p.engine.catalog).unwrap_or_else(|e| panic!("{e}"));
    flows::create_flow(p.db(), flows::tenant_owner(t), None, &definition).await.unwrap().0
}

async fn start(p: &Platform, t: &ResolvedTenant, f: &FlowRecord, input: Value) -> ExecutionId {
    runs::start_run(&p.engine, t, f, TriggerInfo::manual(), input, None).await.unwrap()
}

async fn execution(p: &Platform, t: &ResolvedTenant, id: &ExecutionId) -> switchyard::domain::execution::Execution {
    executions::get_execution(p.db(), &t.space.id, &t.tenant.id, id).await.unwrap().expect("execution exists").execution
}

async fn steps(
    p: &Platform,
    t: &ResolvedTenant,
    id: &ExecutionId,
) -> std::collections::HashMap<String, switchyard::domain::execution::StepRecord> {
    executions::get_steps(p.db(), &t.space.id, &t.tenant.id, id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.to_string(), r))
        .collect()
}

/// Answers `{"n": <calls so far>}` after `delay`; counts calls per path.
#[derive(Clone, Default)]
struct Counter {
    calls: Arc<AtomicUsize>,
    delay: Duration,
}

impl Respond for Counter {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_delay(self.delay).set_body_json(json!({"n": n}))
    }
}

/// Fails with `status` for the first `failures` calls, then succeeds.
#[derive(Clone)]
struct Flaky {
    calls: Arc<AtomicUsize>,
    failures: usize,
    status: u16,
}

impl Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            ResponseTemplate::new(self.status).set_body_string("temporarily unavailable")
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "attempt": n + 1}))
        }
    }
}

async fn mount(server: &MockServer, route: &str, responder: impl Respond + 'static) {
    Mock::given(path(route)).respond_with(responder).mount(server).await;
}

#[tokio::test]
async fn diamond_and_fan_in_wait_for_every_parent() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let server = MockServer::start().await;
    let (b, c) = (
        Counter { delay: Duration::from_millis(300), ..Default::default() },
        Counter { delay: Duration::from_millis(300), ..Default::default() },
    );
    mount(&server, "/b", b.clone()).await;
    mount(&server, "/c", c.clone()).await;
    let f = flow(&p, &t, json!({
        "name": "diamond", "trigger": {"type": "manual"},
        "steps": [
            {"id": "a", "kind": "transform", "expr": ".trigger.input.x"},
            {"id": "b", "kind": "http", "depends_on": ["a"], "method": "POST", "url": format!("{}/b", server.uri()), "body": {"x": "${{ .steps.a.output }}"}},
            {"id": "c", "kind": "http", "depends_on": ["a"], "method": "POST", "url": format!("{}/c", server.uri())},
            {"id": "fan_out_1", "kind": "transform", "depends_on": ["a"], "expr": "1"},
            {"id": "d", "kind": "transform", "depends_on": ["b", "c", "fan_out_1"],
             "expr": "[.steps.a.output, .steps.b.output.status, .steps.c.output.status, .steps.fan_out_1.output]"}
        ]
    })).await;
    let id = start(&p, &t, &f, json!({"input": {"x": 42}})).await;
    let started = std::time::Instant::now();
    drain(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    let s = steps(&p, &t, &id).await;
    assert_eq!(s["d"].output, Some(json!([42, 200, 200, 1])));
    // b and c ran in the same round, concurrently: well under the sum of their latencies.
    assert!(s["b"].started_at.abs_diff(s["c"].started_at) < 200, "b and c started together");
    assert!(s["d"].started_at >= s["b"].finished_at && s["d"].started_at >= s["c"].finished_at, "d waited for both");
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert_eq!(
        e.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["a", "b", "c", "fan_out_1", "d"],
        "summary in definition order"
    );
}

#[tokio::test]
async fn untaken_branches_are_skipped_and_joins_still_run() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let f = flow(&p, &t, json!({
        "name": "branches", "trigger": {"type": "manual"},
        "steps": [
            {"id": "big", "kind": "condition", "expr": ".trigger.input.amount > 100", "then": ["approve"], "else": ["auto"]},
            {"id": "approve", "kind": "transform", "expr": "\"needs approval\""},
            {"id": "notify_approver", "kind": "transform", "depends_on": ["approve"], "expr": "\"sent\""},
            {"id": "auto", "kind": "transform", "expr": "\"auto-approved\""},
            {"id": "done", "kind": "transform", "depends_on": ["approve", "auto"], "expr": "[.steps.approve.output, .steps.auto.output]"}
        ]
    })).await;
    let small = start(&p, &t, &f, json!({"input": {"amount": 5}})).await;
    let large = start(&p, &t, &f, json!({"input": {"amount": 500}})).await;
    drain(&p).await;
    let s = steps(&p, &t, &small).await;
    let status = |s: &std::collections::HashMap<String, switchyard::domain::execution::StepRecord>, id: &str| {
        format!("{:?}", s[id].status)
    };
    assert_eq!(
        (status(&s, "approve"), status(&s, "notify_approver"), status(&s, "auto")),
        ("Skipped".into(), "Skipped".into(), "Succeeded".into())
    );
    assert_eq!(s["done"].output, Some(json!([null, "auto-approved"])));
    let s = steps(&p, &t, &large).await;
    assert_eq!(
        (status(&s, "approve"), status(&s, "notify_approver"), status(&s, "auto")),
        ("Succeeded".into(), "Succeeded".into(), "Skipped".into())
    );
    assert_eq!(execution(&p, &t, &large).await.status, ExecutionStatus::Succeeded);
}

/// Fails item 3 once with a 503; everything else answers its item back.
struct PerItem {
    calls: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Respond for PerItem {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let item: u64 =
            request.url.query_pairs().find(|(k, _)| k == "item").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut calls = self.calls.lock().unwrap();
        calls.push(item);
        if item == 3 && calls.iter().filter(|i| **i == 3).count() == 1 {
            return ResponseTemplate::new(503);
        }
        ResponseTemplate::new(200).set_delay(Duration::from_millis(100)).set_body_json(json!({"item": item}))
    }
}

#[tokio::test]
async fn foreach_runs_items_concurrently_and_retries_only_failed_items() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let t = tenant(&p, Plan::Growth).await;
    let server = MockServer::start().await;
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    mount(&server, "/item", PerItem { calls: calls.clone() }).await;
    let f = flow(&p, &t, json!({
        "name": "each", "trigger": {"type": "manual"},
        "steps": [
            {"id": "each", "kind": "foreach", "items": ".trigger.input.items", "concurrency": 5,
             "retry": {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 1000},
             "steps": [
                {"id": "fetch", "kind": "http", "url": format!("{}/item", server.uri()), "query": {"item": "${{ .item }}"}},
                {"id": "shape", "kind": "transform", "depends_on": ["fetch"], "expr": "{index: .index, got: .steps.fetch.output.body.item}"}
             ]},
            {"id": "total", "kind": "transform", "depends_on": ["each"], "expr": ".steps.each.output | map(.got) | add"}
        ]
    })).await;
    let id = start(&p, &t, &f, json!({"input": {"items": (0..10).collect::<Vec<_>>()}})).await;
    let wall = std::time::Instant::now();
    drain_visible(&p).await;
    assert!(
        wall.elapsed() < Duration::from_millis(1500),
        "10 items of 100 ms at concurrency 5 took {:?}",
        wall.elapsed()
    );
    let s = steps(&p, &t, &id).await;
    assert_eq!(format!("{:?}", s["each"].status), "Retrying");
    assert!(s["each"].output.as_ref().unwrap()["partial"].as_object().unwrap().len() == 9, "nine items kept");
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Waiting);
    clock.advance(Duration::from_millis(1001));
    drain_visible(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    let s = steps(&p, &t, &id).await;
    assert_eq!(s["total"].output, Some(json!(45)));
    assert_eq!(s["each"].output.as_ref().unwrap()[3], json!({"index": 3, "got": 3}));
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 11, "ten items plus one retry of item 3: {calls:?}");
    assert_eq!(calls.iter().filter(|i| **i == 3).count(), 2);
}

#[tokio::test]
async fn retries_back_off_on_the_clock_and_honour_the_config_cascade() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let t = tenant(&p, Plan::Growth).await;
    let server = MockServer::start().await;
    let flaky = Flaky { calls: Arc::new(AtomicUsize::new(0)), failures: 2, status: 503 };
    mount(&server, "/flaky", flaky.clone()).await;
    let f = flow(
        &p,
        &t,
        json!({
            "name": "retry", "trigger": {"type": "manual"},
            "config": {"retry": {"max_attempts": 4, "initial_delay_ms": 2000, "max_delay_ms": 2000}},
            "steps": [{"id": "call", "kind": "http", "url": format!("{}/flaky", server.uri())}]
        }),
    )
    .await;
    let id = start(&p, &t, &f, json!({})).await;
    drain_visible(&p).await;
    let s = steps(&p, &t, &id).await;
    assert_eq!((format!("{:?}", s["call"].status), s["call"].attempt), ("Retrying".into(), 1));
    let resume_at = s["call"].resume_at.unwrap();
    assert!(resume_at - s["call"].finished_at <= 2000, "full jitter stays under the cap");
    // Not due yet: nothing happens.
    drain_visible(&p).await;
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    // SQS delays are whole seconds: the resume message shows up within a second after it.
    clock.set(resume_at + 1000);
    drain_visible(&p).await;
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_millis(3001));
    drain_visible(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(steps(&p, &t, &id).await["call"].attempt, 3);
    assert!(e.transitions.iter().any(|t| t.status == ExecutionStatus::Waiting), "waited between attempts");

    // Tenant config says one attempt: a 503 fails at once (the flow sets nothing).
    let strict = tenant(&p, Plan::Growth).await;
    switchyard::store::tenants::set_tenant_config(
        p.db(),
        &strict.space.id,
        &strict.tenant.id,
        json!({"retry": {"max_attempts": 1}}).as_object().unwrap().clone(),
    )
    .await
    .unwrap();
    let strict = switchyard::store::tenants::resolve_tenant(p.db(), &strict.tenant.id).await.unwrap().unwrap();
    let failing = Flaky { calls: Arc::new(AtomicUsize::new(0)), failures: 10, status: 503 };
    mount(&server, "/down", failing.clone()).await;
    let f = flow(
        &p,
        &strict,
        json!({"name": "strict", "trigger": {"type": "manual"},
        "steps": [{"id": "call", "kind": "http", "url": format!("{}/down", server.uri())}]}),
    )
    .await;
    let id = start(&p, &strict, &f, json!({})).await;
    drain_visible(&p).await;
    let e = execution(&p, &strict, &id).await;
    assert_eq!(e.status, ExecutionStatus::Failed);
    assert_eq!(failing.calls.load(Ordering::SeqCst), 1);
    assert!(e.error.unwrap().message.contains("503"));

    // A 404 is never retried.
    let missing = Flaky { calls: Arc::new(AtomicUsize::new(0)), failures: 10, status: 404 };
    mount(&server, "/missing", missing.clone()).await;
    let f = flow(&p, &t, json!({"name": "404", "trigger": {"type": "manual"},
        "steps": [{"id": "call", "kind": "http", "url": format!("{}/missing", server.uri()), "retry": {"max_attempts": 5}}]})).await;
    let id = start(&p, &t, &f, json!({})).await;
    drain_visible(&p).await;
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Failed);
    assert_eq!(missing.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn delays_wait_on_sqs_or_on_scheduler_timers() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let t = tenant(&p, Plan::Growth).await;
    let f = flow(
        &p,
        &t,
        json!({
            "name": "delays", "trigger": {"type": "manual"},
            "steps": [
                {"id": "short", "kind": "delay", "seconds": 30},
                {"id": "long", "kind": "delay", "depends_on": ["short"], "seconds": 7200},
                {"id": "after", "kind": "transform", "depends_on": ["long"], "expr": "\"done\""}
            ]
        }),
    )
    .await;
    let id = start(&p, &t, &f, json!({})).await;
    drain_visible(&p).await;
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Waiting);
    clock.advance(Duration::from_secs(31));
    drain_visible(&p).await;
    // The long delay is a timer: no message waits in the queue for two hours.
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Waiting);
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0);
    let tick = || switchyard_scheduler::handle(&p, switchyard_local::scheduled_event("tick"));
    assert_eq!(tick().await.unwrap().timers, 0, "not due yet");
    clock.advance(Duration::from_secs(7200 - 30));
    assert_eq!(tick().await.unwrap().timers, 1);
    clock.advance(Duration::from_secs(31));
    drain_visible(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    assert_eq!(steps(&p, &t, &id).await["after"].output, Some(json!("done")));
}

#[tokio::test]
async fn cancelling_stops_parked_and_running_executions() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let t = tenant(&p, Plan::Growth).await;
    let parked = flow(&p, &t, json!({"name": "parked", "trigger": {"type": "manual"},
        "steps": [{"id": "wait", "kind": "delay", "seconds": 60}, {"id": "after", "kind": "transform", "depends_on": ["wait"], "expr": "1"}]})).await;
    let id = start(&p, &t, &parked, json!({})).await;
    drain_visible(&p).await;
    let cancelled = switchyard::usecases::executions::cancel(&p.engine, &t.space.id, &t.tenant.id, &id).await.unwrap();
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    clock.advance(Duration::from_secs(61));
    drain_visible(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Cancelled);
    assert!(!steps(&p, &t, &id).await.contains_key("after"), "nothing ran after the cancel");
    assert!(
        switchyard::usecases::executions::cancel(&p.engine, &t.space.id, &t.tenant.id, &id).await.is_err(),
        "already final"
    );

    // Running: the step in flight finishes, the next one never starts.
    let real = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&real, Plan::Growth).await;
    let server = MockServer::start().await;
    mount(&server, "/slow", Counter { delay: Duration::from_millis(800), ..Default::default() }).await;
    let running = flow(
        &real,
        &t,
        json!({"name": "running", "trigger": {"type": "manual"},
        "steps": [{"id": "slow", "kind": "http", "url": format!("{}/slow", server.uri())},
                  {"id": "next", "kind": "transform", "depends_on": ["slow"], "expr": "1"}]}),
    )
    .await;
    let id = start(&real, &t, &running, json!({})).await;
    let worker = {
        let real = real.clone();
        tokio::spawn(async move { drain(&real).await })
    };
    switchyard_tests::eventually("the execution is running", Duration::from_secs(5), || {
        let real = real.clone();
        let t = t.clone();
        let id = id.clone();
        async move { executions::get_execution(real.db(), &t.space.id, &t.tenant.id, &id).await.unwrap().is_some() }
    })
    .await;
    switchyard::usecases::executions::cancel(&real.engine, &t.space.id, &t.tenant.id, &id).await.unwrap();
    worker.await.unwrap();
    let e = execution(&real, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Cancelled, "{e:?}");
    let s = steps(&real, &t, &id).await;
    assert!(s.contains_key("slow") && !s.contains_key("next"));
}

/// The process "crashes" after the steps ran but before the final write: the message comes
/// back, and no completed step runs again.
async fn crash_and_redelivery(kind: Kind) {
    let instruments = Arc::new(Instruments::default());
    let p = instrumented_platform(kind, system_clock(), 5, |_| {}, Some(instruments.clone())).await;
    let t = tenant(&p, Plan::Growth).await;
    let server = MockServer::start().await;
    let (one, two) = (Counter::default(), Counter::default());
    mount(&server, "/one", one.clone()).await;
    mount(&server, "/two", two.clone()).await;
    let f = flow(&p, &t, json!({"name": "crash", "trigger": {"type": "manual"},
        "steps": [{"id": "one", "kind": "http", "method": "POST", "url": format!("{}/one", server.uri())},
                  {"id": "two", "kind": "http", "method": "POST", "depends_on": ["one"], "url": format!("{}/two", server.uri())}]})).await;
    let id = start(&p, &t, &f, json!({})).await;
    // The final execution write fails once (the first write of the execution, its creation,
    // goes through); everything before it succeeded.
    instruments.fail_later(Op::Put, "EX#", 1, 1);
    drain(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    assert!(e.invocations >= 1);
    assert_eq!(
        (one.calls.load(Ordering::SeqCst), two.calls.load(Ordering::SeqCst)),
        (1, 1),
        "no completed step ran twice"
    );
    assert_eq!(instruments.count(Op::Receive) >= 2, true, "the message was delivered again");
}

/// Every execution item of the tenant, as stored.
async fn all_executions(p: &Platform, t: &ResolvedTenant) -> Vec<switchyard::ports::Item> {
    let prefix = Query::prefix(keys::tenant_pk(&t.space.id, &t.tenant.id), keys::EXECUTION_PREFIX);
    query_all(p.db().store.as_ref(), prefix, 100).await.unwrap()
}

/// The start's two writes, the claim and the execution, split by failures: a claim whose
/// execution write failed, a second message for the same run arriving meanwhile, a claim
/// whose reply was lost. Each time exactly one execution, its steps run once.
async fn start_split_by_failures(kind: Kind) {
    let instruments = Arc::new(Instruments::default());
    let p = instrumented_platform(kind, system_clock(), 5, |_| {}, Some(instruments.clone())).await;
    let t = tenant(&p, Plan::Growth).await;
    let server = MockServer::start().await;
    let calls = Counter::default();
    mount(&server, "/once", calls.clone()).await;
    let f = flow(
        &p,
        &t,
        json!({"name": "split", "trigger": {"type": "manual"},
        "steps": [{"id": "call", "kind": "http", "method": "POST", "url": format!("{}/once", server.uri())}]}),
    )
    .await;
    // Two messages for one run (the producer sent it twice, with two execution ids); the first
    // one to claim it fails to create its execution.
    for _ in 0..2 {
        runs::start_run(&p.engine, &t, &f, TriggerInfo::manual(), json!({}), Some("same-run")).await.unwrap();
    }
    instruments.fail(Op::Put, "EX#", 1);
    drain(&p).await;
    let all = all_executions(&p, &t).await;
    assert_eq!(all.len(), 1, "one execution for the run: {all:?}");
    assert_eq!(all[0].data["status"], "succeeded", "{all:?}");
    assert_eq!(calls.calls.load(Ordering::SeqCst), 1, "its step ran once");
    // The claim's reply lost: the redelivery finds its own claim and goes on.
    runs::start_run(&p.engine, &t, &f, TriggerInfo::manual(), json!({}), Some("other-run")).await.unwrap();
    instruments.fail_after(Op::Put, "RUN#", 1);
    drain(&p).await;
    let all = all_executions(&p, &t).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|e| e.data["status"] == "succeeded"), "{all:?}");
    assert_eq!(calls.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_start_split_by_failures_runs_once_embedded() {
    start_split_by_failures(Kind::Embedded).await;
}

#[tokio::test]
async fn a_start_split_by_failures_runs_once_aws() {
    start_split_by_failures(Kind::Aws).await;
}

#[tokio::test]
async fn crash_and_redelivery_never_reruns_completed_steps_embedded() {
    crash_and_redelivery(Kind::Embedded).await;
}

#[tokio::test]
async fn crash_and_redelivery_never_reruns_completed_steps_aws() {
    crash_and_redelivery(Kind::Aws).await;
}

#[tokio::test]
async fn reruns_start_over_or_resume_from_the_failed_step() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let server = MockServer::start().await;
    let first = Counter::default();
    let second = Flaky { calls: Arc::new(AtomicUsize::new(0)), failures: 1, status: 400 };
    mount(&server, "/first", first.clone()).await;
    mount(&server, "/second", second.clone()).await;
    let f = flow(&p, &t, json!({"name": "rerun", "trigger": {"type": "manual"},
        "steps": [{"id": "first", "kind": "http", "url": format!("{}/first", server.uri())},
                  {"id": "second", "kind": "http", "depends_on": ["first"], "url": format!("{}/second", server.uri())}]})).await;
    let id = start(&p, &t, &f, json!({"input": {"order": 7}})).await;
    drain(&p).await;
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Failed);
    let again =
        switchyard::usecases::executions::rerun(&p.engine, &t, &id, RerunFrom::Failed).await.unwrap().execution_id;
    drain(&p).await;
    let e = execution(&p, &t, &again).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{e:?}");
    assert_eq!(e.flow.version, 1, "pinned to the version that failed");
    assert_eq!(first.calls.load(Ordering::SeqCst), 1, "the completed step was carried over, not re-run");
    assert_eq!(e.trigger.kind, switchyard::domain::execution::TriggerKind::Rerun);
    assert_eq!(e.input, json!({"input": {"order": 7}}));
    let fresh =
        switchyard::usecases::executions::rerun(&p.engine, &t, &id, RerunFrom::Start).await.unwrap().execution_id;
    drain(&p).await;
    assert_eq!(execution(&p, &t, &fresh).await.status, ExecutionStatus::Succeeded);
    assert_eq!(first.calls.load(Ordering::SeqCst), 2, "from the start: every step runs");
    assert!(
        switchyard::usecases::executions::rerun(&p.engine, &t, &again, RerunFrom::Failed).await.is_err(),
        "a success cannot resume from a failure"
    );
}

#[tokio::test]
async fn schedules_start_one_run_per_occurrence_per_tenant() {
    let minute = 60_000;
    let start_ms = (chrono::Utc::now().timestamp_millis() / minute + 1) * minute + 5_000;
    let clock = ManualClock::at(start_ms);
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let a = tenant(&p, Plan::Growth).await;
    // A second tenant of the same space.
    let b_id = switchyard::domain::ids::TenantId::parse(switchyard_tests::unique("tn")).unwrap();
    switchyard::store::tenants::create_tenant(p.db(), &a.space.id, b_id.clone(), "b".into(), None).await.unwrap();
    let definition = FlowDefinition::parse(
        &json!({"name": "every minute", "trigger": {"type": "schedule", "cron": "* * * * *"},
                "steps": [{"id": "at", "kind": "transform", "expr": ".trigger.scheduled_at"}]}),
        p.engine.catalog,
    )
    .unwrap();
    let space_flow = flows::create_flow(
        p.db(),
        switchyard::domain::flow::FlowOwner::Space { space: a.space.id.clone() },
        None,
        &definition,
    )
    .await
    .unwrap()
    .0;
    let tick = || switchyard_scheduler::handle(&p, switchyard_local::scheduled_event("tick"));
    assert_eq!(tick().await.unwrap().enqueued, 0, "nothing due yet");
    clock.advance(Duration::from_secs(60));
    let summary = tick().await.unwrap();
    assert_eq!((summary.schedules, summary.enqueued), (1, 2), "one run for each tenant");
    assert_eq!(tick().await.unwrap().enqueued, 0, "the same occurrence never runs twice");
    drain_visible(&p).await;
    for tenant in [&a.tenant.id, &b_id] {
        let list =
            executions::list_executions(p.db(), &a.space.id, tenant, &Default::default(), 10, None).await.unwrap().0;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].trigger.kind, switchyard::domain::execution::TriggerKind::Schedule);
        assert_eq!(list[0].status, ExecutionStatus::Succeeded);
    }
    // Paused flows stop running.
    flows::set_flow_status(p.db(), &space_flow.owner, &space_flow.id, flows::FlowStatus::Paused).await.unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(tick().await.unwrap().enqueued, 0);
}

#[tokio::test]
async fn poison_messages_dead_letter_and_replay_once_fixed() {
    let p = platform_with(Kind::Embedded, system_clock(), 2, |_| {}).await;
    let t = tenant(&p, Plan::Growth).await;
    // A run of a flow version that does not exist yet.
    let owner = flows::tenant_owner(&t);
    let flow_ref = switchyard::domain::execution::FlowRef {
        owner: owner.clone(),
        id: FlowId::parse("later").unwrap(),
        version: 1,
    };
    let id = runs::start_pinned(
        &p.engine,
        &t,
        flow_ref,
        TriggerInfo::manual(),
        json!({}),
        None,
        ExecutionId::generate(p.now_ms()),
    )
    .await
    .unwrap();
    switchyard_tests::eventually("dead-lettered", Duration::from_secs(20), || {
        let p = p.clone();
        async move {
            let _ = switchyard_local::consume_runs_once(&p, &Default::default(), Duration::from_millis(100)).await;
            p.engine.queue.depth(QueueId::RunsDlq).await.unwrap() == 1
        }
    })
    .await;
    let letters =
        switchyard::usecases::dead_letters::list(p.engine.queue.as_ref(), QueueId::RunsDlq, Some(&t.space.id), 100)
            .await
            .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].execution_id.as_deref(), Some(id.as_str()));
    let other_space = switchyard::domain::ids::SpaceId::parse("someone-else").unwrap();
    assert!(
        switchyard::usecases::dead_letters::list(p.engine.queue.as_ref(), QueueId::RunsDlq, Some(&other_space), 100)
            .await
            .unwrap()
            .is_empty(),
        "other spaces see nothing"
    );
    // Fix the cause, replay.
    let definition = FlowDefinition::parse(&json!({"name": "later", "trigger": {"type": "manual"}, "steps": [{"id": "s", "kind": "transform", "expr": "1"}]}), p.engine.catalog).unwrap();
    flows::create_flow(p.db(), owner, Some(FlowId::parse("later").unwrap()), &definition).await.unwrap().0;
    let replayed = switchyard::usecases::dead_letters::replay(
        p.engine.queue.as_ref(),
        QueueId::RunsDlq,
        Some(&t.space.id),
        None,
        None,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(replayed.replayed, 1);
    assert_eq!(p.engine.queue.depth(QueueId::RunsDlq).await.unwrap(), 0);
    drain(&p).await;
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn large_step_outputs_are_stored_aside_and_read_back() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let f = flow(
        &p,
        &t,
        json!({"name": "big", "trigger": {"type": "manual"},
        "steps": [{"id": "big", "kind": "transform", "expr": "[range(20000) | {i: ., s: \"padding padding\"}]"},
                  {"id": "count", "kind": "transform", "depends_on": ["big"], "expr": ".steps.big.output | length"}]}),
    )
    .await;
    let id = start(&p, &t, &f, json!({})).await;
    drain(&p).await;
    assert_eq!(execution(&p, &t, &id).await.status, ExecutionStatus::Succeeded);
    let stored = steps(&p, &t, &id).await;
    assert!(stored["big"].output_spilled);
    assert_eq!(stored["count"].output, Some(json!(20000)));
    let e = execution(&p, &t, &id).await;
    let loaded = switchyard::store::executions::load_records(p.db(), &e).await.unwrap();
    let big = loaded.iter().find(|r| r.id.as_str() == "big").unwrap();
    assert_eq!(big.output.as_ref().unwrap().as_array().unwrap().len(), 20000);
}

#[tokio::test]
async fn action_and_cdm_steps_use_the_catalog() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = tenant(&p, Plan::Growth).await;
    let order = serde_json::from_str::<Value>(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/domain/connectors/fixtures/shopify/order.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let f = flow(&p, &t, json!({"name": "cdm", "trigger": {"type": "manual"},
        "steps": [{"id": "canonical", "kind": "cdm", "connector": "shopify", "entity": "order", "input": "${{ .trigger.input.order }}"},
                  {"id": "total", "kind": "transform", "depends_on": ["canonical"], "expr": ".steps.canonical.output.total"}]})).await;
    let id = start(&p, &t, &f, json!({"input": {"order": order["input"]}})).await;
    drain(&p).await;
    let s = steps(&p, &t, &id).await;
    assert_eq!(s["canonical"].output.as_ref().unwrap()["source"], "shopify");
    assert_eq!(s["total"].output, Some(order["expected"]["total"].clone()));
    // An action of a connector the tenant has not enabled fails without calling anyone.
    let f = flow(&p, &t, json!({"name": "action", "trigger": {"type": "manual"},
        "steps": [{"id": "issue", "kind": "action", "connector": "github", "action": "get_repository", "input": {"owner": "a", "repo": "b"}}]})).await;
    let id = start(&p, &t, &f, json!({})).await;
    drain(&p).await;
    let e = execution(&p, &t, &id).await;
    assert_eq!(e.status, ExecutionStatus::Failed);
    assert!(e.error.unwrap().message.contains("not enabled"));
}
