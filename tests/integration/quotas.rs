//! Quotas as users meet them, over the API on the embedded backend: every dimension admits
//! exactly its limit under N parallel requests, every enforcement mode does what it says
//! (refuse, warn once, defer to the next window and then run, meter overage), overrides say
//! where a limit came from, usage has its history, and the configuration cascade names the
//! level of every value. The counters' atomicity on DynamoDB is in `contract_store`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::adapters::embedded::EmbeddedEventBus;
use switchyard::domain::quota::Dimension;
use switchyard::ports::ManualClock;
use switchyard::runtime::Platform;
use switchyard::usecases::quotas as usage;
use switchyard_tests::{ADMIN_KEY, Kind, Reply, TestApp, platform_with, spawn_app, unique};

struct Ctx {
    app: TestApp,
    clock: ManualClock,
    key: String,
    space: String,
    tenant: String,
}

/// A day (UTC) in milliseconds.
const DAY_MS: i64 = 86_400_000;

impl Ctx {
    /// A platform on a manual clock set a few seconds into a UTC day (so no window turns
    /// during a test), a Starter space, a tenant, an admin key of the space.
    async fn new() -> Ctx {
        Ctx::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut switchyard::runtime::Settings)) -> Ctx {
        let now = chrono::Utc::now().timestamp_millis();
        let clock = ManualClock::at(now - now.rem_euclid(DAY_MS) + 10_000);
        let p = platform_with(Kind::Embedded, Arc::new(clock.clone()), 5, tweak).await;
        let app = spawn_app(p).await;
        let (space, tenant) = (unique("sp"), unique("tn"));
        let r =
            app.api(ADMIN_KEY, &space, "POST", "/api/v1/spaces", Some(json!({"id": space, "plan": "starter"}))).await;
        assert_eq!(r.status, 201, "{r:?}");
        let r = app.api(ADMIN_KEY, &space, "POST", "/api/v1/tenants", Some(json!({"id": tenant}))).await;
        assert_eq!(r.status, 201, "{r:?}");
        let r =
            app.api(ADMIN_KEY, &space, "POST", "/api/v1/api-keys", Some(json!({"name": "t", "role": "admin"}))).await;
        assert_eq!(r.status, 201, "{r:?}");
        let key = r.body["key"].as_str().unwrap().to_string();
        Ctx { app, clock, key, space, tenant }
    }

    fn p(&self) -> &Platform {
        &self.app.platform
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.app.api(&self.key, &self.space, method, path, body).await
    }

    /// Set quota overrides as the operator (the admin key is not counted as an API call).
    async fn tenant_quotas(&self, overrides: Value) {
        let path = format!("/api/v1/tenants/{}/quotas", self.tenant);
        let r = self.app.api(ADMIN_KEY, &self.space, "PUT", &path, Some(overrides)).await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    async fn space_quotas(&self, overrides: Value) {
        let r = self.app.api(ADMIN_KEY, &self.space, "PUT", "/api/v1/quotas", Some(overrides)).await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    async fn manual_flow(&self, id: &str) {
        let flow = json!({"id": id, "name": id, "trigger": {"type": "manual"},
                          "steps": [{"id": "s", "kind": "transform", "expr": ".trigger"}]});
        let r = self.call("POST", &format!("/api/v1/tenants/{}/workflows", self.tenant), Some(flow)).await;
        assert_eq!(r.status, 201, "{r:?}");
    }

    async fn run(&self, flow: &str) -> Reply {
        let path = format!("/api/v1/tenants/{}/workflows/{flow}/run", self.tenant);
        self.call("POST", &path, Some(json!({"input": {"n": 1}}))).await
    }

    /// Waiting and reading usage as the operator, whose calls the API-call quota does not count
    /// (the manual clock never turns the minute by itself).
    async fn wait(&self, id: &str) -> Value {
        self.app.wait_execution(ADMIN_KEY, &self.space, &self.tenant, id, Duration::from_secs(30)).await
    }

    async fn usage(&self) -> Value {
        let path = format!("/api/v1/tenants/{}/usage", self.tenant);
        let r = self.app.api(ADMIN_KEY, &self.space, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    async fn dimension(&self, name: &str) -> Value {
        let usage = self.usage().await;
        usage["dimensions"].as_array().unwrap().iter().find(|d| d["dimension"] == name).cloned().unwrap()
    }

    /// The platform events of a type published so far.
    fn events(&self, detail_type: &str) -> Vec<Value> {
        let db = self.p().database.clone().expect("embedded");
        let bus = EmbeddedEventBus::new(db, Arc::new(self.clock.clone()));
        bus.published_since(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.detail_type == detail_type)
            .map(|(_, e)| e.detail)
            .collect()
    }
}

fn warning(r: &Reply) -> Vec<String> {
    r.headers.get_all("switchyard-quota-warning").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// Send `n` copies of a request at once; the statuses, sorted.
async fn parallel<F, Fut>(n: usize, request: F) -> Vec<u16>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let replies = futures::future::join_all((0..n).map(request)).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn hard_block_refuses_past_the_limit_with_retry_after_and_counts_every_run_source() {
    let ctx = Ctx::new().await;
    ctx.manual_flow("f").await;
    ctx.tenant_quotas(json!({"events_per_day": {"limit": 3}})).await;
    let first = ctx.run("f").await;
    assert_eq!(first.status, 202, "{first:?}");
    let id = first.body["execution_id"].as_str().unwrap().to_string();
    ctx.wait(&id).await;
    // A rerun is an event too.
    let path = format!("/api/v1/tenants/{}/executions/{id}/rerun", ctx.tenant);
    assert_eq!(ctx.call("POST", &path, Some(json!({"from": "start"}))).await.status, 202);
    assert_eq!(ctx.run("f").await.status, 202);
    let over = ctx.run("f").await;
    assert_eq!((over.status, over.body["error"]["code"].as_str()), (429, Some("rate_limited")), "{over:?}");
    let retry: i64 = over.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&retry), "until midnight UTC: {retry}");
    let rerun = ctx.call("POST", &path, Some(json!({"from": "start"}))).await;
    assert_eq!(rerun.status, 429, "reruns are refused too: {rerun:?}");
    let events = ctx.dimension("events_per_day").await;
    assert_eq!(
        (&events["limit"], &events["used"], &events["percent_used"], &events["limit_source"], &events["mode_source"]),
        (&json!(3), &json!(3), &json!(100.0), &json!("tenant"), &json!("plan"))
    );
    // The next day the quota is back, and yesterday is history.
    ctx.clock.advance(Duration::from_millis(DAY_MS as u64));
    assert_eq!(ctx.run("f").await.status, 202);
    let events = ctx.dimension("events_per_day").await;
    assert_eq!(events["used"], 1);
    assert_eq!(
        events["history"].as_array().unwrap().iter().map(|d| d["count"].clone()).collect::<Vec<_>>(),
        [json!(3), json!(1)]
    );
}

#[tokio::test]
async fn soft_warning_proceeds_with_a_header_and_one_event_per_window() {
    let ctx = Ctx::new().await;
    ctx.manual_flow("f").await;
    ctx.space_quotas(json!({"events_per_day": {"limit": 1, "mode": "soft_warning"}})).await;
    let first = ctx.run("f").await;
    assert_eq!((first.status, warning(&first)), (202, vec![]));
    for used in 2..=3 {
        let r = ctx.run("f").await;
        assert_eq!(r.status, 202, "{r:?}");
        assert_eq!(warning(&r), [format!("events_per_day; used={used}; limit=1; mode=soft_warning")]);
        ctx.wait(r.body["execution_id"].as_str().unwrap()).await;
    }
    let events = ctx.events("quota.warning");
    assert_eq!(events.len(), 1, "once per window: {events:?}");
    assert_eq!(
        (&events[0]["tenant"], &events[0]["dimension"], &events[0]["used"]),
        (&json!(ctx.tenant), &json!("events_per_day"), &json!(2))
    );
    let d = ctx.dimension("events_per_day").await;
    assert_eq!(
        (&d["used"], &d["mode"], &d["limit_source"], &d["mode_source"]),
        (&json!(3), &json!("soft_warning"), &json!("space"), &json!("space"))
    );
}

#[tokio::test]
async fn overage_proceeds_and_meters_what_is_over_per_tenant_per_day() {
    let ctx = Ctx::new().await;
    ctx.manual_flow("f").await;
    ctx.tenant_quotas(json!({"events_per_day": {"limit": 2, "mode": "overage"}})).await;
    for _ in 0..5 {
        assert_eq!(ctx.run("f").await.status, 202);
    }
    let r = ctx.call("GET", "/api/v1/usage/overage", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let today = chrono::DateTime::from_timestamp_millis(ctx.p().now_ms()).unwrap().format("%Y-%m-%d").to_string();
    assert_eq!(
        r.body["items"],
        json!([{"tenant": ctx.tenant, "day": today, "dimension": "events_per_day", "over": 3}])
    );
    let r = ctx.call("GET", "/api/v1/usage/overage?from=2020-01-01&to=2020-01-31", None).await;
    assert_eq!(r.body["items"], json!([]));
    assert_eq!(ctx.call("GET", "/api/v1/usage/overage?from=2020-02-01&to=2020-01-01", None).await.status, 400);
    assert_eq!(ctx.call("GET", "/api/v1/usage/overage?from=yesterday", None).await.status, 400);
    assert_eq!(ctx.events("quota.overage").len(), 1);
}

#[tokio::test]
async fn queue_for_later_defers_runs_to_the_next_window_and_then_runs_them() {
    let ctx = Ctx::new().await;
    ctx.manual_flow("f").await;
    ctx.tenant_quotas(json!({"events_per_day": {"limit": 1, "mode": "queue_for_later"}})).await;
    assert_eq!(ctx.run("f").await.status, 202);
    let later = ctx.run("f").await;
    assert_eq!((later.status, &later.body["status"]), (202, &json!("queued")), "{later:?}");
    let midnight = ctx.p().now_ms() - ctx.p().now_ms().rem_euclid(DAY_MS) + DAY_MS;
    assert_eq!(later.body["queued_until"], midnight);
    let id = later.body["execution_id"].as_str().unwrap().to_string();
    let r = ctx.call("GET", &format!("/api/v1/tenants/{}/executions/{id}", ctx.tenant), None).await;
    assert_eq!(
        (r.status, &r.body["status"], &r.body["queued_until"]),
        (200, &json!("queued"), &json!(midnight)),
        "{r:?}"
    );
    assert_eq!(ctx.usage().await["deferred"], json!([{"execution_id": id, "flow_id": "f", "runs_at": midnight}]));
    // Tomorrow's window is full with it: a third run goes to the day after.
    let third = ctx.run("f").await;
    assert_eq!(third.body["queued_until"], midnight + DAY_MS, "{third:?}");

    // Midnight: the scheduler's tick releases the deferred start, and it runs.
    ctx.clock.advance(Duration::from_millis((midnight - ctx.p().now_ms() + 1_000) as u64));
    let summary = switchyard::usecases::schedules::tick(&ctx.p().engine).await.unwrap();
    assert_eq!(summary.timers, 1, "{summary:?}");
    let done = ctx.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(ctx.dimension("events_per_day").await["used"], 1, "it counted in its own window");
    assert_eq!(ctx.run("f").await.body["queued_until"], midnight + 2 * DAY_MS);
}

#[tokio::test]
async fn parallel_runs_admit_exactly_the_events_left() {
    let ctx = Ctx::new().await;
    ctx.manual_flow("f").await;
    ctx.tenant_quotas(json!({"events_per_day": {"limit": 5}})).await;
    let statuses = parallel(12, |_| ctx.run("f")).await;
    assert_eq!((count(&statuses, 202), count(&statuses, 429)), (5, 7), "{statuses:?}");
}

#[tokio::test]
async fn flows_are_a_gauge_taken_with_the_write_and_given_back_on_delete() {
    let ctx = Ctx::new().await;
    ctx.tenant_quotas(json!({"flows_per_tenant": {"limit": 4}})).await;
    let flows = format!("/api/v1/tenants/{}/workflows", ctx.tenant);
    let statuses = parallel(12, |i| {
        let flow = json!({"id": format!("f{i}"), "name": "f", "trigger": {"type": "manual"},
                          "steps": [{"id": "s", "kind": "transform", "expr": "."}]});
        ctx.call("POST", &flows, Some(flow))
    })
    .await;
    assert_eq!((count(&statuses, 201), count(&statuses, 403)), (4, 8), "{statuses:?}");
    let r = ctx.call("GET", &flows, None).await;
    let ids: Vec<String> =
        r.body["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4, "nothing half done: {ids:?}");
    let refused = ctx
        .call("POST", &flows, Some(json!({"id": "late", "name": "f", "trigger": {"type": "manual"}, "steps": [{"id": "s", "kind": "transform", "expr": "."}]})))
        .await;
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (403, Some("quota_exceeded")), "{refused:?}");
    assert_eq!(ctx.call("DELETE", &format!("{flows}/{}", ids[0]), None).await.status, 204);
    let again = ctx
        .call("POST", &flows, Some(json!({"id": "late", "name": "f", "trigger": {"type": "manual"}, "steps": [{"id": "s", "kind": "transform", "expr": "."}]})))
        .await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(ctx.dimension("flows_per_tenant").await["used"], 4);
}

#[tokio::test]
async fn space_wide_flows_are_capped_by_the_space_plan() {
    let ctx = Ctx::new().await;
    ctx.space_quotas(json!({"flows_per_tenant": {"limit": 2}})).await;
    let statuses = parallel(6, |i| {
        let flow = json!({"id": format!("s{i}"), "name": "s", "trigger": {"type": "manual"},
                          "steps": [{"id": "s", "kind": "transform", "expr": "."}]});
        ctx.call("POST", "/api/v1/workflows", Some(flow))
    })
    .await;
    assert_eq!((count(&statuses, 201), count(&statuses, 403)), (2, 4), "{statuses:?}");
    let r = ctx.call("GET", "/api/v1/usage", None).await;
    let own = r.body["space_counters"].as_array().unwrap();
    let flows = own.iter().find(|d| d["dimension"] == "flows_per_tenant").unwrap();
    assert_eq!((&flows["used"], &flows["limit"]), (&json!(2), &json!(2)), "{r:?}");
    assert_eq!(r.body["tenants"][0]["tenant"], json!(ctx.tenant));
}

const CONNECTORS: [&str; 6] = ["github", "gmail", "google_sheets", "hubspot", "notion", "slack"];

#[tokio::test]
async fn enabling_connectors_admits_exactly_the_plans_connectors() {
    let ctx = Ctx::new().await;
    ctx.tenant_quotas(json!({"connectors_per_tenant": {"limit": 2}})).await;
    let statuses = parallel(CONNECTORS.len(), |i| {
        let path = format!("/api/v1/tenants/{}/connectors/{}", ctx.tenant, CONNECTORS[i]);
        let ctx = &ctx;
        async move { ctx.call("PUT", &path, Some(json!({"enabled": true}))).await }
    })
    .await;
    assert_eq!((count(&statuses, 200), count(&statuses, 403)), (2, 4), "{statuses:?}");
    let r = ctx.call("GET", &format!("/api/v1/tenants/{}/connectors", ctx.tenant), None).await;
    let enabled = r.body["items"].as_array().unwrap().iter().filter(|c| c["enabled"] == true).count();
    assert_eq!(enabled, 2, "{r:?}");
    assert_eq!(ctx.dimension("connectors_per_tenant").await["used"], 2);
}

#[tokio::test]
async fn connecting_admits_exactly_the_plans_active_integrations_and_leaves_no_credentials_behind() {
    let ctx = Ctx::new().await;
    ctx.tenant_quotas(json!({"active_integrations": {"limit": 2}, "connectors_per_tenant": {"limit": "unlimited"}}))
        .await;
    let statuses = parallel(CONNECTORS.len(), |i| {
        let path = format!("/api/v1/tenants/{}/connectors/{}/credentials", ctx.tenant, CONNECTORS[i]);
        let ctx = &ctx;
        async move { ctx.call("PUT", &path, Some(json!({"kind": "bearer", "token": "tok"}))).await }
    })
    .await;
    assert_eq!((count(&statuses, 200), count(&statuses, 403)), (2, 4), "{statuses:?}");
    let r = ctx.call("GET", &format!("/api/v1/tenants/{}/credentials", ctx.tenant), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let connected = r.body["items"].as_array().unwrap().iter().filter(|c| c["connected"] == true).count();
    assert_eq!(connected, 2, "refused connections keep no credentials: {r:?}");
    assert_eq!(ctx.dimension("active_integrations").await["used"], 2);
    // Disconnecting gives them back.
    for c in CONNECTORS {
        let path = format!("/api/v1/tenants/{}/connectors/{c}/credentials", ctx.tenant);
        let r = ctx.call("DELETE", &path, None).await;
        assert!(r.status < 300, "{r:?}");
    }
    assert_eq!(ctx.dimension("active_integrations").await["used"], 0);
}

#[tokio::test]
async fn api_calls_per_minute_admit_exactly_the_limit_and_reset_with_the_minute() {
    let ctx = Ctx::new().await;
    ctx.tenant_quotas(json!({"api_calls_per_minute": {"limit": 6}})).await;
    let path = format!("/api/v1/tenants/{}/executions", ctx.tenant);
    let statuses = parallel(15, |_| ctx.call("GET", &path, None)).await;
    assert_eq!((count(&statuses, 200), count(&statuses, 429)), (6, 9), "{statuses:?}");
    ctx.clock.advance(Duration::from_secs(60));
    assert_eq!(ctx.call("GET", &path, None).await.status, 200);
    // Calls naming no tenant count on the space's own budget, the operator's key on none.
    ctx.space_quotas(json!({"api_calls_per_minute": {"limit": 2}})).await;
    let statuses = parallel(5, |_| ctx.call("GET", "/api/v1/tenants", None)).await;
    assert_eq!((count(&statuses, 200), count(&statuses, 429)), (2, 3), "{statuses:?}");
    let r = ctx.app.api(ADMIN_KEY, &ctx.space, "GET", "/api/v1/tenants", None).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn agent_sessions_admit_exactly_the_days_handshakes() {
    let ctx = Ctx::new().await;
    ctx.tenant_quotas(json!({"agent_sessions_per_day": {"limit": 3}})).await;
    let r = ctx
        .app
        .api(
            ADMIN_KEY,
            &ctx.space,
            "POST",
            "/api/v1/api-keys",
            Some(json!({"name": "agent", "role": "tenant", "tenant": ctx.tenant})),
        )
        .await;
    let key = r.body["key"].as_str().unwrap().to_string();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}});
    let ctx = &ctx;
    let statuses = parallel(8, |_| {
        let key = key.clone();
        let body = init.to_string().into_bytes();
        async move {
            let headers = [
                ("x-fastn-api-key", key.as_str()),
                ("x-fastn-space-id", ctx.space.as_str()),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ];
            ctx.app.send("POST", "/mcp", &headers, Some(body)).await
        }
    })
    .await;
    assert_eq!((count(&statuses, 200), count(&statuses, 429)), (3, 5), "{statuses:?}");
    assert_eq!(ctx.dimension("agent_sessions_per_day").await["used"], 3);
}

#[tokio::test]
async fn llm_tokens_are_taken_atomically_and_settled_by_what_a_call_used() {
    let ctx = Ctx::new().await;
    ctx.tenant_quotas(json!({"llm_tokens_per_day": {"limit": 1000}})).await;
    let tenant = switchyard::store::tenants::resolve_tenant(
        ctx.p().db(),
        &switchyard::domain::ids::TenantId::parse(ctx.tenant.as_str()).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let engine = &ctx.p().engine;
    let takes =
        futures::future::join_all((0..12).map(|_| usage::admit(engine, &tenant, Dimension::LlmTokensPerDay, 100)))
            .await;
    let admitted = takes.iter().filter(|t| t.is_ok()).count();
    assert_eq!(admitted, 10);
    assert!(takes.iter().any(|t| matches!(t, Err(switchyard::usecases::Error::Limited { .. }))));
    // A call estimated at 100 that used 40 gives 60 back; one that used more is never refused.
    usage::settle_llm_tokens(engine, &tenant, 100, 40).await.unwrap();
    assert_eq!(ctx.dimension("llm_tokens_per_day").await["used"], 940);
    usage::settle_llm_tokens(engine, &tenant, 0, 500).await.unwrap();
    assert_eq!(ctx.dimension("llm_tokens_per_day").await["used"], 1440);
}

#[tokio::test]
async fn storage_is_counted_as_runs_write_and_checked_when_new_work_arrives() {
    let ctx = Ctx::new().await;
    ctx.manual_flow("f").await;
    let r = ctx.run("f").await;
    ctx.wait(r.body["execution_id"].as_str().unwrap()).await;
    let stored = ctx.dimension("storage_mb").await;
    let bytes = stored["used"].as_u64().unwrap();
    assert!(bytes > 200, "the execution and its step: {stored}");
    assert_eq!((&stored["unit"], &stored["limit"]), (&json!("bytes"), &json!(100 * 1024 * 1024)));
    // Soft: runs go ahead with a warning; hard: new runs are refused, running work is not.
    ctx.tenant_quotas(json!({"storage_mb": {"limit": 0, "mode": "soft_warning"}})).await;
    let warned = ctx.run("f").await;
    assert_eq!(warned.status, 202);
    assert!(warning(&warned)[0].starts_with("storage_mb; used="), "{warned:?}");
    ctx.tenant_quotas(json!({"storage_mb": {"limit": 0}})).await;
    let refused = ctx.run("f").await;
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (403, Some("quota_exceeded")), "{refused:?}");
    ctx.wait(warned.body["execution_id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn overrides_are_validated() {
    let ctx = Ctx::new().await;
    for bad in [
        json!({"flows_per_tenant": {"mode": "queue_for_later"}}),
        json!({"colours": {"limit": 1}}),
        json!({"events_per_day": {"limit": -1}}),
        json!({"events_per_day": {"limit": "lots"}}),
        json!({"events_per_day": {"limit": 1, "colour": "red"}}),
        json!([]),
    ] {
        let r = ctx.app.api(ADMIN_KEY, &ctx.space, "PUT", "/api/v1/quotas", Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert!(r.body["error"]["message"].is_string());
    }
    let r = ctx.call("GET", "/api/v1/quotas", None).await;
    assert_eq!(r.body, json!({"quotas": {}}), "nothing was stored");
    // A developer may read quotas but not set them.
    let r = ctx
        .app
        .api(ADMIN_KEY, &ctx.space, "POST", "/api/v1/api-keys", Some(json!({"name": "d", "role": "developer"})))
        .await;
    let dev = r.body["key"].as_str().unwrap().to_string();
    let r = ctx.app.api(&dev, &ctx.space, "PUT", "/api/v1/quotas", Some(json!({}))).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn the_effective_configuration_names_the_level_of_every_value() {
    let platform_level = json!({"retry": {"max_attempts": 4}, "step_timeout_ms": 20000});
    let ctx = Ctx::with(|s| s.platform_config = platform_level.as_object().unwrap().clone()).await;
    let r = ctx.call("PUT", "/api/v1/config", Some(json!({"retry": {"max_attempts": 5}}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = ctx
        .call("PUT", &format!("/api/v1/tenants/{}/config", ctx.tenant), Some(json!({"vars": {"channel": "#acme"}})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = ctx
        .call(
            "PUT",
            &format!("/api/v1/tenants/{}/connectors/slack", ctx.tenant),
            Some(json!({"config": {"step_timeout_ms": 9000}})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let flow = json!({"id": "critical", "name": "critical", "trigger": {"type": "manual"}, "config": {"retry": {"max_attempts": 7}},
                      "steps": [{"id": "s", "kind": "transform", "expr": "."}]});
    assert_eq!(ctx.call("POST", &format!("/api/v1/tenants/{}/workflows", ctx.tenant), Some(flow)).await.status, 201);

    let path = format!("/api/v1/tenants/{}/config/effective?flow=critical&connector=slack", ctx.tenant);
    let r = ctx.call("GET", &path, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let key = |name: &str| r.body["keys"].as_array().unwrap().iter().find(|k| k["key"] == name).cloned().unwrap();
    assert_eq!(
        key("retry.max_attempts"),
        json!({"key": "retry.max_attempts", "value": 7, "source": "flow", "levels": {"platform": 4, "space": 5, "flow": 7}})
    );
    assert_eq!(
        (key("step_timeout_ms")["value"].clone(), key("step_timeout_ms")["source"].clone()),
        (json!(9000), json!("integration"))
    );
    assert_eq!(key("retry.initial_delay_ms")["source"], "platform", "a built-in default under the deployment's level");
    assert_eq!(
        (key("vars.channel")["value"].clone(), key("vars.channel")["source"].clone()),
        (json!("#acme"), json!("tenant"))
    );
    assert_eq!(r.body["effective"]["retry"]["max_attempts"], 7);
    // Without flow and connector: the tenant's view; unknown ones are 404s.
    let r = ctx.call("GET", &format!("/api/v1/tenants/{}/config/effective", ctx.tenant), None).await;
    assert_eq!(r.body["effective"]["retry"]["max_attempts"], 5);
    let r = ctx.call("GET", &format!("/api/v1/tenants/{}/config/effective?flow=nope", ctx.tenant), None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_deployment_sets_plan_limits_and_modes() {
    let table = switchyard::domain::quota::PlanTable::parse(
        r#"{"starter": {"events_per_day": {"limit": 1, "mode": "soft_warning"}}}"#,
    )
    .unwrap();
    let ctx = Ctx::with(|s| s.plan_quotas = table).await;
    ctx.manual_flow("f").await;
    assert_eq!(ctx.run("f").await.status, 202);
    let r = ctx.run("f").await;
    assert_eq!((r.status, warning(&r).len()), (202, 1));
    let d = ctx.dimension("events_per_day").await;
    assert_eq!((&d["limit"], &d["mode"], &d["limit_source"]), (&json!(1), &json!("soft_warning"), &json!("plan")));
}
