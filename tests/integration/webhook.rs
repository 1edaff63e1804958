//! The webhook receiver: faults injected at each step lose nothing and run nothing twice
//! (embedded and moto), quotas, limits, rotation, unmatched events, large payloads, the calls
//! each accepted event costs, and a load test on the dev server.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::flow::FlowOwner;
use switchyard::domain::ids::{ConnectorId, FlowId, SpaceId, TenantId};
use switchyard::domain::tenancy::Plan;
use switchyard::domain::webhook::signature::sign;
use switchyard::ports::{ManualClock, Query, QueueId, query_all};
use switchyard::runtime::Platform;
use switchyard::store::keys;
use switchyard::store::{connections, flows, tenants as tenancy};
use switchyard_local::{LocalConfig, body_json, request, route};
use switchyard_tests::instrument::{Instruments, Op};
use switchyard_tests::{Kind, drain, instrumented_platform, platform, spawn_app_with, system_clock, unique};

const SECRET: &str = "webhook-test-secret";

struct Tenant {
    space: SpaceId,
    tenant: TenantId,
}

/// A tenant with GitHub set up and a one-step flow on `push`.
async fn github_tenant(p: &Platform, plan: Plan) -> Tenant {
    let space = SpaceId::parse(unique("sp")).unwrap();
    let tenant = TenantId::parse(unique("tn")).unwrap();
    tenancy::create_space(p.db(), space.clone(), "s".into(), plan).await.unwrap();
    tenancy::create_tenant(p.db(), &space, tenant.clone(), "t".into(), None).await.unwrap();
    connections::set_webhook_secret(p.db(), &space, &tenant, &ConnectorId::parse("github").unwrap(), SECRET, 86_400)
        .await
        .unwrap();
    let definition = FlowDefinition::parse(
        &json!({
            "name": "count commits",
            "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
            "steps": [{"id": "count", "kind": "transform", "expr": ".trigger.payload.commits | length"}]
        }),
        p.engine.catalog,
    )
    .unwrap();
    flows::create_flow(
        p.db(),
        FlowOwner::Tenant { space: space.clone(), tenant: tenant.clone() },
        Some(FlowId::parse("count").unwrap()),
        &definition,
    )
    .await
    .unwrap()
    .0;
    Tenant { space, tenant }
}

fn push(delivery: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"ref": "refs/heads/main", "delivery": delivery, "commits": [{"id": "a"}, {"id": "b"}]}))
        .unwrap()
}

/// Deliver a signed GitHub event in-process, as API Gateway would.
async fn deliver(p: &Platform, t: &Tenant, event: &str, delivery: &str, body: &[u8]) -> (u16, Value) {
    let signature = sign::github(SECRET, body);
    let req = request(
        "POST",
        &format!("/webhooks/{}/github", t.tenant),
        &[
            ("content-type", "application/json"),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", &signature),
        ],
        body.to_vec(),
    );
    let response = route(p, req).await;
    (response.status().as_u16(), body_json(&response))
}

async fn executions_of(p: &Platform, t: &Tenant) -> Vec<Value> {
    query_all(
        p.db().store.as_ref(),
        Query::prefix(keys::tenant_pk(&t.space, &t.tenant), keys::EXECUTION_PREFIX),
        100_000,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|i| i.data)
    .collect()
}

/// Fail each step of the receiver once; the provider's retry must go through, and the event
/// must run exactly once.
async fn faults_lose_nothing(kind: Kind) {
    let instruments = Arc::new(Instruments::default());
    let p = instrumented_platform(kind, system_clock(), 5, |_| {}, Some(instruments.clone())).await;
    // (step, op, key prefix, lost reply, first answer, messages enqueued in all)
    let cases = [
        ("tenant lookup", Op::Get, "TREF", false, 503, 1),
        ("connector settings", Op::Get, "CONN#", false, 503, 1),
        ("webhook secret read", Op::SecretGet, "", false, 503, 1),
        ("dedup lookup", Op::Get, "WH#", false, 503, 1),
        ("quota counter", Op::AddCounter, "Q#events_per_day", false, 503, 1),
        ("flow lookup", Op::Query, "FLOW#", false, 503, 1),
        ("queue write", Op::Send, "runs", false, 503, 1),
        // The messages were queued but the receiver never heard: it answers 503, the retry
        // queues them again, and the executor's run claim drops the second copy.
        ("queue write, reply lost", Op::Send, "runs", true, 503, 2),
        // The record failed after the runs were queued: accepted; a retry queues again, and the
        // run claim drops the copy.
        ("delivery record", Op::Put, "WH#", false, 202, 2),
        // The record was written but the receiver never heard: the retry is a duplicate.
        ("delivery record, reply lost", Op::Put, "WH#", true, 202, 1),
        // The log entry failed after the record: accepted, the retry is a duplicate; the entry is
        // missing (docs/cost.md), the run is not.
        ("event log entry", Op::Put, "EV#", false, 202, 1),
    ];
    for (step, op, prefix, lost_reply, first, enqueued) in cases {
        let t = github_tenant(&p, Plan::Growth).await;
        // A cold container: every lookup reaches the store and the secrets.
        p.db().caches.clear();
        p.secrets.clear();
        instruments.reset_counts();
        if lost_reply {
            instruments.fail_after(op, prefix, 1);
        } else {
            instruments.fail(op, prefix, 1);
        }
        let body = push(step);
        let (status, reply) = deliver(&p, &t, "push", step, &body).await;
        assert_eq!(status, first, "{step}: first delivery: {reply}");
        if status == 503 {
            assert_eq!(reply["error"]["code"], "unavailable", "{step}");
        }
        // The provider retries (after a 503; and sometimes after a 202 anyway).
        let (status, reply) = deliver(&p, &t, "push", step, &body).await;
        let recorded = (prefix == "WH#" && op == Op::Put && lost_reply) || prefix == "EV#";
        assert_eq!(status, if recorded { 200 } else { 202 }, "{step}: retry: {reply}");
        let (status, reply) = deliver(&p, &t, "push", step, &body).await;
        assert_eq!((status, reply["status"].as_str()), (200, Some("duplicate")), "{step}: third delivery");
        drain(&p).await;
        let executions = executions_of(&p, &t).await;
        assert_eq!(executions.len(), 1, "{step}: exactly one run: {executions:?}");
        assert_eq!(executions[0]["status"], "succeeded", "{step}");
        let sends = instruments.count(Op::Send) - u64::from(op == Op::Send && !lost_reply);
        assert_eq!(sends, enqueued, "{step}: messages enqueued");
        assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0, "{step}: nothing left behind");
        // The event log holds the delivery once, a lost reply included; only a failed log write
        // leaves it out (docs: `store::events::record`).
        let (log, _) = switchyard::store::events::list(p.db(), &t.space, &t.tenant, 10, None).await.unwrap();
        assert_eq!(log.len(), usize::from(prefix != "EV#"), "{step}: log entries {log:?}");
    }
}

#[tokio::test]
async fn faults_at_each_step_lose_nothing_and_run_once_embedded() {
    faults_lose_nothing(Kind::Embedded).await;
}

#[tokio::test]
async fn faults_at_each_step_lose_nothing_and_run_once_aws() {
    faults_lose_nothing(Kind::Aws).await;
}

#[tokio::test]
async fn accepted_events_cost_one_read_one_counter_one_send_two_writes() {
    let instruments = Arc::new(Instruments::default());
    let p = instrumented_platform(Kind::Embedded, system_clock(), 5, |_| {}, Some(instruments.clone())).await;
    let t = github_tenant(&p, Plan::Growth).await;
    p.db().caches.clear();
    p.secrets.clear();
    instruments.reset_counts();
    let (status, _) = deliver(&p, &t, "push", "cold", &push("cold")).await;
    assert_eq!(status, 202);
    assert_eq!(instruments.count(Op::SecretGet), 1, "one secret read on a cold container");
    instruments.reset_counts();
    for i in 0..10 {
        let (status, _) = deliver(&p, &t, "push", &format!("warm-{i}"), &push(&format!("warm-{i}"))).await;
        assert_eq!(status, 202);
    }
    assert_eq!(instruments.count(Op::SecretGet), 0, "secrets come from the container cache");
    assert_eq!(instruments.count(Op::Get), 10, "one delivery lookup per event");
    assert_eq!(instruments.count(Op::AddCounter), 10, "one quota counter update per event");
    assert_eq!(instruments.count(Op::Send), 10, "one queue call per event");
    assert_eq!(instruments.count(Op::Transact), 0, "no transaction");
    assert_eq!(instruments.count(Op::Put), 20, "the dedup record (conditional) and the log entry");
    assert_eq!(instruments.count(Op::Query), 0, "flows come from the container cache");
}

/// What the executor writes per execution (docs/cost.md): the run claim and the execution (two
/// conditional writes, no transaction), one checkpoint per step, the final write, one storage
/// counter update and one metrics rollup write, and nothing else.
#[tokio::test]
async fn a_finished_execution_costs_one_storage_update_and_one_rollup_write() {
    let instruments = Arc::new(Instruments::default());
    let p = instrumented_platform(Kind::Embedded, system_clock(), 5, |_| {}, Some(instruments.clone())).await;
    let t = github_tenant(&p, Plan::Growth).await;
    let (status, _) = deliver(&p, &t, "push", "cold", &push("cold")).await;
    assert_eq!(status, 202);
    drain(&p).await;
    for i in 0..10 {
        let (status, _) = deliver(&p, &t, "push", &format!("warm-{i}"), &push(&format!("warm-{i}"))).await;
        assert_eq!(status, 202);
    }
    instruments.reset_counts();
    drain(&p).await;
    let counts: Vec<(Op, u64)> = [Op::Get, Op::Put, Op::Transact, Op::AddCounter, Op::AddFields, Op::Query]
        .map(|op| (op, instruments.count(op)))
        .to_vec();
    eprintln!("executor store calls for 10 executions: {counts:?}");
    assert_eq!(instruments.count(Op::AddCounter), 10, "one storage counter update per execution");
    assert_eq!(instruments.count(Op::AddFields), 10, "one metrics rollup write per execution");
    assert_eq!(instruments.count(Op::Transact), 0, "no transaction");
    assert_eq!(instruments.count(Op::Put), 40, "the claim, the execution, one checkpoint (one step), the final write");
}

/// Without `platform_events` a space publishes nothing (no PutEvents to pay for); with a list,
/// only those types.
#[tokio::test]
async fn platform_events_are_published_only_for_spaces_that_consume_them() {
    let p = switchyard_tests::platform_with(Kind::Embedded, system_clock(), 5, |s| {
        s.platform_config.remove("platform_events");
    })
    .await;
    let t = github_tenant(&p, Plan::Growth).await;
    let published = || {
        let bus = switchyard::adapters::embedded::EmbeddedEventBus::new(p.database.clone().unwrap(), system_clock());
        bus.published_since(0, 1000).unwrap().into_iter().map(|(_, e)| e.detail_type).collect::<Vec<_>>()
    };
    assert_eq!(deliver(&p, &t, "push", "quiet", &push("quiet")).await.0, 202);
    drain(&p).await;
    assert_eq!(executions_of(&p, &t).await.len(), 1);
    assert!(published().is_empty(), "no consumer, no event: {:?}", published());
    // The space asks for failures only: a success publishes nothing, a failure its event.
    let config = json!({"platform_events": ["execution.failed"]});
    tenancy::set_space_config(p.db(), &t.space, config.as_object().unwrap().clone()).await.unwrap();
    p.db().caches.clear();
    assert_eq!(deliver(&p, &t, "push", "ok", &push("ok")).await.0, 202);
    drain(&p).await;
    assert!(published().is_empty(), "{:?}", published());
    let failing = FlowDefinition::parse(
        &json!({"name": "fails", "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
                "steps": [{"id": "boom", "kind": "transform", "expr": "error(\"no\")"}]}),
        p.engine.catalog,
    )
    .unwrap();
    let owner = FlowOwner::Tenant { space: t.space.clone(), tenant: t.tenant.clone() };
    flows::create_flow(p.db(), owner, None, &failing).await.unwrap();
    p.db().caches.clear();
    assert_eq!(deliver(&p, &t, "push", "mixed", &push("mixed")).await.0, 202);
    drain(&p).await;
    assert_eq!(published(), ["execution.failed"]);
}

#[tokio::test]
async fn deliveries_are_metrics_by_tenant_and_refusals_without_a_tenant() {
    let mut p = platform(Kind::Embedded, system_clock()).await;
    let captured = Arc::new(switchyard_tests::CapturedMetrics::default());
    p.engine.metrics = captured.clone();
    let t = github_tenant(&p, Plan::Growth).await;
    assert_eq!(deliver(&p, &t, "push", "m1", &push("m1")).await.0, 202);
    assert_eq!(deliver(&p, &t, "push", "m1", &push("m1")).await.0, 200);
    let forged = request(
        "POST",
        &format!("/webhooks/{}/github", t.tenant),
        &[("x-github-event", "push"), ("x-github-delivery", "m2"), ("x-hub-signature-256", "sha256=00")],
        push("m2"),
    );
    assert_eq!(route(&p, forged).await.status(), 401);
    let records = captured.0.lock().unwrap().clone();
    let seen: Vec<(&str, Vec<Vec<&str>>, usize)> =
        records.iter().map(|r| (r.values[0].0, r.dimension_sets.clone(), r.dimensions.len())).collect();
    assert_eq!(
        seen,
        [
            ("WebhooksAccepted", vec![vec!["tenant"]], 1),
            ("WebhooksDuplicate", vec![vec!["tenant"]], 1),
            ("WebhooksRefused", vec![vec![]], 0),
        ]
    );
    assert!(records.iter().all(|r| r.values.iter().any(|(n, ..)| *n == "WebhookLatency")));
}

#[tokio::test]
async fn quota_exhausted_answers_429_and_queues_nothing() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = github_tenant(&p, Plan::Starter).await;
    let owner = switchyard::store::quotas::Owner::Tenant(&t.space, &t.tenant);
    let counter = switchyard::store::quotas::window_key(
        owner,
        switchyard::domain::quota::Dimension::EventsPerDay,
        switchyard::domain::quota::Window::Day,
        p.now_ms(),
    );
    p.db().store.add_counter(&counter, 1000, None, None).await.unwrap();
    let (status, reply) = deliver(&p, &t, "push", "over", &push("over")).await;
    assert_eq!((status, reply["error"]["code"].as_str()), (429, Some("rate_limited")), "{reply}");
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0);
    // Nothing was recorded: once the quota allows it, the provider's retry goes through.
    p.db().store.add_counter(&counter, -1, None, None).await.unwrap();
    let (status, _) = deliver(&p, &t, "push", "over", &push("over")).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn queue_for_later_defers_a_deliverys_runs_until_the_next_day_with_room() {
    let now = chrono::Utc::now().timestamp_millis();
    let clock = ManualClock::at(now - now.rem_euclid(86_400_000) + 10_000);
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let t = github_tenant(&p, Plan::Starter).await;
    let overrides = serde_json::from_value(json!({"events_per_day": {"limit": 1, "mode": "queue_for_later"}})).unwrap();
    tenancy::set_tenant_quotas(p.db(), &t.space, &t.tenant, overrides).await.unwrap();
    let (status, _) = deliver(&p, &t, "push", "first", &push("first")).await;
    assert_eq!(status, 202);
    drain(&p).await;
    let (status, reply) = deliver(&p, &t, "push", "second", &push("second")).await;
    let midnight = p.now_ms() - p.now_ms().rem_euclid(86_400_000) + 86_400_000;
    assert_eq!(
        (status, &reply["status"], &reply["queued_until"]),
        (202, &json!("queued"), &json!(midnight)),
        "{reply}"
    );
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0, "nothing runs today");
    let id = switchyard::domain::ids::ExecutionId::parse(reply["runs"][0]["execution_id"].as_str().unwrap()).unwrap();
    let deferred = switchyard::store::schedules::get_deferred(p.db(), &t.space, &t.tenant, &id).await.unwrap().unwrap();
    assert_eq!((deferred.runs_at, deferred.execution.status.as_str()), (midnight, "queued"));
    // A provider's retry of the same delivery is still a duplicate.
    assert_eq!(deliver(&p, &t, "push", "second", &push("second")).await.0, 200);

    clock.advance(Duration::from_millis((midnight - p.now_ms() + 1_000) as u64));
    assert_eq!(switchyard::usecases::schedules::tick(&p.engine).await.unwrap().timers, 1);
    drain(&p).await;
    let execution =
        switchyard::store::executions::get_execution(p.db(), &t.space, &t.tenant, &id).await.unwrap().unwrap();
    assert_eq!(execution.execution.status.as_str(), "succeeded");
    assert_eq!(execution.execution.trigger.event_id.as_deref(), Some("second"));
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let p =
        switchyard_tests::platform_with(Kind::Embedded, system_clock(), 5, |s| s.webhook.max_body_bytes = 2048).await;
    let t = github_tenant(&p, Plan::Growth).await;
    let big = serde_json::to_vec(&json!({"commits": [], "padding": "x".repeat(3000)})).unwrap();
    let (status, reply) = deliver(&p, &t, "push", "big", &big).await;
    assert_eq!((status, reply["error"]["code"].as_str()), (413, Some("payload_too_large")));
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0);
}

#[tokio::test]
async fn other_methods_get_405_allowing_post() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = github_tenant(&p, Plan::Growth).await;
    for method in ["GET", "PUT", "DELETE"] {
        let response = route(&p, request(method, &format!("/webhooks/{}/github", t.tenant), &[], Vec::new())).await;
        assert_eq!(response.status().as_u16(), 405, "{method}");
        assert_eq!(response.headers().get("allow").and_then(|a| a.to_str().ok()), Some("POST"), "{method}");
        assert_eq!(body_json(&response)["error"]["code"], "method_not_allowed");
    }
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0);
}

#[tokio::test]
async fn rotated_secrets_keep_verifying_during_the_window() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let p = platform(Kind::Embedded, Arc::new(clock.clone())).await;
    let t = github_tenant(&p, Plan::Growth).await;
    let github = ConnectorId::parse("github").unwrap();
    connections::set_webhook_secret(p.db(), &t.space, &t.tenant, &github, "the-new-secret", 86_400).await.unwrap();
    let body = push("rot");
    let old = sign::github(SECRET, &body);
    let new = sign::github("the-new-secret", &body);
    let send = |signature: String, delivery: &'static str| {
        let p = p.clone();
        let tenant = t.tenant.to_string();
        let body = body.clone();
        async move {
            let req = request(
                "POST",
                &format!("/webhooks/{tenant}/github"),
                &[("x-github-event", "push"), ("x-github-delivery", delivery), ("x-hub-signature-256", &signature)],
                body,
            );
            route(&p, req).await.status().as_u16()
        }
    };
    assert_eq!(send(old.clone(), "r1").await, 202, "the previous secret verifies during the window");
    assert_eq!(send(new.clone(), "r2").await, 202, "the new secret verifies");
    clock.advance(Duration::from_secs(86_400 + 1));
    assert_eq!(send(old, "r3").await, 401, "the previous secret stops after the window");
    assert_eq!(send(new, "r4").await, 202);
}

#[tokio::test]
async fn events_matching_no_flow_are_recorded() {
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = github_tenant(&p, Plan::Growth).await;
    let (status, reply) = deliver(&p, &t, "issues", "unmatched-1", &push("unmatched-1")).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["runs"], json!([]));
    assert_eq!(p.engine.queue.depth(QueueId::Runs).await.unwrap(), 0);
    let logged = query_all(
        p.db().store.as_ref(),
        Query::prefix(keys::tenant_pk(&t.space, &t.tenant), keys::RECEIVED_EVENT_PREFIX),
        10,
    )
    .await
    .unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].data["event_type"], "issues");
    assert_eq!(logged[0].data["delivery_id"], "unmatched-1");
    assert_eq!(logged[0].data["flows"], json!([]));
    assert!(logged[0].data.get("payload").is_none(), "metadata only");
    let (status, _) = deliver(&p, &t, "issues", "unmatched-1", &push("unmatched-1")).await;
    assert_eq!(status, 200, "deduplicated like any other");
}

/// A 900 KB event travels as a blob and the flow sees all of it.
async fn large_payloads_run(kind: Kind) {
    let p = platform(kind, system_clock()).await;
    let t = github_tenant(&p, Plan::Growth).await;
    let commits: Vec<Value> =
        (0..3000).map(|i| json!({"id": format!("{i:040}"), "message": "m".repeat(250)})).collect();
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "commits": commits})).unwrap();
    assert!(body.len() > 800 * 1024 && body.len() < 1024 * 1024, "{}", body.len());
    let (status, reply) = deliver(&p, &t, "push", "large", &body).await;
    assert_eq!(status, 202, "{reply}");
    drain(&p).await;
    let executions = executions_of(&p, &t).await;
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0]["status"], "succeeded", "{}", executions[0]);
    assert!(executions[0]["input"].get("$blob").is_some(), "stored as a reference");
    let steps = switchyard::store::executions::get_steps(
        p.db(),
        &t.space,
        &t.tenant,
        &switchyard::domain::ids::ExecutionId::parse(executions[0]["id"].as_str().unwrap()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(steps[0].output, Some(json!(3000)), "the flow saw every commit");
}

#[tokio::test]
async fn large_payloads_run_embedded() {
    large_payloads_run(Kind::Embedded).await;
}

#[tokio::test]
async fn large_payloads_run_aws() {
    large_payloads_run(Kind::Aws).await;
}

/// 20,000 signed webhooks, 10 % of them redeliveries, 64 connections at once, against the dev
/// server: exactly one run per unique event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_twenty_thousand_webhooks_run_each_event_once() {
    const TOTAL: usize = 20_000;
    const CONCURRENCY: usize = 64;
    let p = platform(Kind::Embedded, system_clock()).await;
    let t = github_tenant(&p, Plan::Enterprise).await;
    let app =
        spawn_app_with(p, LocalConfig { consumers: 4, tick: Duration::from_secs(3600), ..LocalConfig::default() })
            .await;
    // Every tenth delivery repeats an earlier one.
    let deliveries: Vec<String> =
        (0..TOTAL).map(|i| if i % 10 == 9 { format!("evt-{}", i - 5) } else { format!("evt-{i}") }).collect();
    let unique_count = deliveries.iter().collect::<std::collections::HashSet<_>>().len();
    assert_eq!(unique_count, 18_000);
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let url = format!("{}/webhooks/{}/github", app.base, t.tenant);
    let started = std::time::Instant::now();
    // A keep-alive connection the server closes as idle (its header timeout) just as the client
    // reuses it loses the request before any answer: HTTP/1.1's known race. Senders retry such a
    // delivery, as GitHub does, and dedup makes the retry safe; so does this client, once, and
    // such retries must stay rare.
    let retried = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<u16> = futures::stream::iter(deliveries.iter().cloned())
        .map(|delivery| {
            let (client, url, retried) = (client.clone(), url.clone(), &retried);
            async move {
                let body = push(&delivery);
                let signature = sign::github(SECRET, &body);
                let send = || {
                    client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-github-event", "push")
                        .header("x-github-delivery", &delivery)
                        .header("x-hub-signature-256", &signature)
                        .body(body.clone())
                        .send()
                };
                let response = match send().await {
                    Ok(response) => response,
                    Err(e) if e.is_request() && !e.is_timeout() => {
                        retried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        send().await.expect("the dev server answers the retry")
                    }
                    Err(e) => panic!("the dev server answers: {e:?}"),
                };
                response.status().as_u16()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let retried = retried.load(std::sync::atomic::Ordering::SeqCst);
    assert!(retried <= TOTAL / 1000, "{retried} requests lost their connection before an answer");
    let accepted = results.iter().filter(|s| **s == 202).count();
    let duplicates = results.iter().filter(|s| **s == 200).count();
    assert_eq!(
        accepted + duplicates,
        TOTAL,
        "every request answered 202 or 200: {:?}",
        results.iter().filter(|s| **s >= 300).count()
    );
    eprintln!("load: {TOTAL} webhooks in {elapsed:?}, {accepted} accepted, {duplicates} duplicates, {retried} retried");
    let platform = app.platform.clone();
    switchyard_tests::eventually("every run finished", Duration::from_secs(600), || {
        let platform = platform.clone();
        async move { platform.engine.queue.depth(QueueId::Runs).await.unwrap() == 0 }
    })
    .await;
    drop(app);
    let executions = executions_of(&platform, &t).await;
    let mut by_event: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for e in &executions {
        assert_eq!(e["status"], "succeeded");
        *by_event.entry(e["trigger"]["event_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(by_event.len(), unique_count, "every unique event ran");
    assert!(by_event.values().all(|n| *n == 1), "no event ran twice");
}

/// Every answer leaves one log line with the tenant, connector, delivery id, outcome and
/// latency, errors after verification included.
#[tokio::test]
async fn log_lines_carry_tenant_connector_delivery_outcome_and_latency() {
    let logs = switchyard_tests::captured_logs();
    let instruments = Arc::new(Instruments::default());
    let p = instrumented_platform(Kind::Embedded, system_clock(), 5, |_| {}, Some(instruments.clone())).await;
    let t = github_tenant(&p, Plan::Growth).await;
    let (accepted, unavailable) = (unique("log-accepted"), unique("log-unavailable"));
    assert_eq!(deliver(&p, &t, "push", &accepted, &push(&accepted)).await.0, 202);
    assert_eq!(deliver(&p, &t, "push", &accepted, &push(&accepted)).await.0, 200);
    instruments.fail(Op::Send, "runs", 1);
    assert_eq!(deliver(&p, &t, "push", &unavailable, &push(&unavailable)).await.0, 503);
    let req = request(
        "POST",
        &format!("/webhooks/{}/github", t.tenant),
        &[("content-type", "application/json"), ("x-github-delivery", "forged"), ("x-hub-signature-256", "sha256=00")],
        b"{}".to_vec(),
    );
    assert_eq!(route(&p, req).await.status().as_u16(), 401);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = |needle: &str, outcome: &str| {
        text.lines()
            .find(|l| l.contains(needle) && l.contains(&format!("outcome=\"{outcome}\"")))
            .unwrap_or_else(|| panic!("no {outcome} line for {needle}"))
            .to_string()
    };
    for (needle, outcome) in
        [(accepted.as_str(), "accepted"), (accepted.as_str(), "duplicate"), (unavailable.as_str(), "unavailable")]
    {
        let l = line(needle, outcome);
        assert!(l.contains(&format!("tenant={}", t.tenant)) && l.contains("connector=github"), "{l}");
        assert!(l.contains("latency_us="), "{l}");
    }
    let rejected = line(&format!("tenant={}", t.tenant), "unauthorized");
    assert!(rejected.contains("latency_us=") && !rejected.contains(SECRET), "{rejected}");
}
