//! The synthetic event engine against a mock provider without webhooks: ticks claim due polls,
//! poll jobs page through the resource (cursor and Link header pagination), the first poll is a
//! baseline, later ones start one run per created, updated and deleted record, a lost snapshot
//! write re-finds the same changes without running them twice, a record changing back and forth
//! runs every time, a lost snapshot becomes a new baseline, a looping cursor fails the poll, the
//! interval adapts, and tenants that have not connected the app are not polled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::domain::connector::Catalog;
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::ids::{ConnectorId, FlowId};
use switchyard::domain::tenancy::Plan;
use switchyard::ports::{ManualClock, QueueId};
use switchyard::runtime::Platform;
use switchyard::store::credentials::{self, Credentials};
use switchyard::store::polls::{self, PollJob};
use switchyard::store::tenants::ResolvedTenant;
use switchyard::store::{connections, executions, flows};
use switchyard_local::{LocalConfig, consume_polls_once, scheduled_event};
use switchyard_tests::instrument::{Instruments, Op};
use switchyard_tests::{Kind, drain_visible, instrumented_platform, tenant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The provider's records, served two per page with a cursor, or by Link headers; with the
/// third field set, every page after the first answers 429.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<Value>>>, Arc<Mutex<String>>, Arc<std::sync::atomic::AtomicBool>);

impl Records {
    fn set(&self, records: Vec<Value>) {
        *self.0.lock().unwrap() = records;
    }
}

impl Respond for Records {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer poll-token") {
            return ResponseTemplate::new(401);
        }
        let records = self.0.lock().unwrap().clone();
        let query: std::collections::HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        if request.url.path() == "/items" && query.get("list").map(String::as_str) != Some("main") {
            return ResponseTemplate::new(400).set_body_json(json!({"error": "which list?"}));
        }
        let from: usize = query.get("cursor").or(query.get("from")).and_then(|c| c.parse().ok()).unwrap_or(0);
        if from > 0 && self.2.load(std::sync::atomic::Ordering::SeqCst) {
            return ResponseTemplate::new(429).insert_header("retry-after", "60");
        }
        let page: Vec<Value> = records.iter().skip(from).take(2).cloned().collect();
        let next = (from + 2 < records.len()).then_some(from + 2);
        let mut response =
            ResponseTemplate::new(200).set_body_json(json!({"items": page, "next": next.map(|n| n.to_string())}));
        if let Some(n) = next {
            let base = self.1.lock().unwrap().clone();
            let target = if query.contains_key("evil") { "http://127.0.0.2:9".to_string() } else { base };
            response = response.insert_header("link", format!("<{target}/linked/items?from={n}>; rel=\"next\""));
        }
        response
    }
}

fn catalog(base: &str) -> &'static Catalog {
    let yaml = format!(
        r#"id: mock_crm
name: Mock CRM
description: A CRM without webhooks.
docs_url: https://example.com/crm
base_url: {base}
auth: {{kind: bearer}}
actions:
  - id: list_items
    title: List items
    description: Two items per page, with a cursor.
    method: GET
    path: /items
    query: {{list: "${{{{ .input.list }}}}"}}
    input_schema: {{type: object, required: [list], properties: {{list: {{type: string}}}}}}
    hints: {{read_only: true}}
  - id: list_linked
    title: List items (Link header)
    description: Pages by Link headers.
    method: GET
    path: /linked/items
    input_schema: {{type: object}}
    hints: {{read_only: true}}
  - id: list_elsewhere
    title: List items (Link header to another host)
    description: Its next page is on another origin.
    method: GET
    path: /linked/items
    query: {{evil: "1"}}
    input_schema: {{type: object}}
    hints: {{read_only: true}}
resources:
  - id: items
    list_action: list_items
    records: .items
    id_path: .id
    pagination: {{style: cursor, cursor_path: .body.next, param: cursor}}
  - id: linked
    list_action: list_linked
    records: .items
    id_path: .id
    pagination: {{style: link_header}}
  - id: elsewhere
    list_action: list_elsewhere
    records: .items
    id_path: .id
    pagination: {{style: link_header}}
  - id: looping
    list_action: list_linked
    records: .items
    id_path: .id
    pagination: {{style: cursor, cursor_path: '"0"', param: cursor}}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mock_crm.yaml"), yaml).unwrap();
    Box::leak(Box::new(Catalog::with_extra_dir(dir.path()).unwrap()))
}

struct Ctx {
    p: Platform,
    clock: ManualClock,
    instruments: Arc<Instruments>,
    server: MockServer,
    records: Records,
}

async fn setup() -> Ctx {
    let server = MockServer::start().await;
    let records = Records::default();
    *records.1.lock().unwrap() = server.uri();
    Mock::given(method("GET")).and(path("/items")).respond_with(records.clone()).mount(&server).await;
    Mock::given(method("GET")).and(path("/linked/items")).respond_with(records.clone()).mount(&server).await;
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let instruments = Arc::new(Instruments::default());
    let mut p =
        instrumented_platform(Kind::Embedded, Arc::new(clock.clone()), 5, |_| {}, Some(instruments.clone())).await;
    p.engine.catalog = catalog(&server.uri());
    Ctx { p, clock, instruments, server, records }
}

impl Ctx {
    /// Connect the tenant to the mock CRM and add a flow on `resource`.
    async fn wire(&self, t: &ResolvedTenant, resource: &str, connect: bool) {
        let connector = ConnectorId::parse("mock_crm").unwrap();
        connections::update_settings(self.p.db(), &t.space.id, &t.tenant.id, &connector, |s| s.enabled = true)
            .await
            .unwrap();
        if connect {
            let token = Credentials::Bearer { token: "poll-token".into() };
            credentials::store(self.p.db(), &t.space.id, &t.tenant.id, &connector, &token).await.unwrap();
        }
        let mut trigger =
            json!({"type": "poll", "connector": "mock_crm", "resource": resource, "interval_seconds": 120});
        if resource == "items" {
            trigger["input"] = json!({"list": "main"});
        }
        let definition = FlowDefinition::parse(
            &json!({"name": "changes", "trigger": trigger,
                    "steps": [{"id": "seen", "kind": "transform", "expr": "{change: .trigger.change, id: .trigger.record_id, name: .trigger.payload.name, type: .trigger.event_type}"}]}),
            self.p.engine.catalog,
        )
        .unwrap();
        let id = FlowId::parse(format!("on-{resource}")).unwrap();
        flows::create_flow(self.p.db(), flows::tenant_owner(t), Some(id), &definition).await.unwrap().0;
    }

    async fn tick(&self) -> switchyard_poller::TickSummary {
        switchyard_poller::handle(&self.p, scheduled_event("poller")).await.unwrap()
    }

    /// Run every queued poll job, then every run they started; returns the polls consumed.
    async fn work(&self) -> usize {
        let config = LocalConfig::default();
        let mut n = 0;
        loop {
            let got = consume_polls_once(&self.p, &config, Duration::from_millis(20)).await.unwrap();
            if got == 0 {
                break;
            }
            n += got;
        }
        drain_visible(&self.p).await;
        n
    }

    /// (change, id, name) of every execution of the tenant, sorted.
    async fn changes(&self, t: &ResolvedTenant) -> Vec<(String, String, Value)> {
        let (list, _) =
            executions::list_executions(self.p.db(), &t.space.id, &t.tenant.id, &Default::default(), 200, None)
                .await
                .unwrap();
        let mut out = Vec::new();
        for e in list {
            assert_eq!(e.status.as_str(), "succeeded", "{e:?}");
            let steps = executions::get_steps(self.p.db(), &t.space.id, &t.tenant.id, &e.id).await.unwrap();
            let o = steps[0].output.clone().unwrap();
            out.push((
                o["change"].as_str().unwrap().to_string(),
                o["id"].as_str().unwrap().to_string(),
                o["name"].clone(),
            ));
        }
        out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        out
    }

    fn provider_calls(&self) -> impl std::future::Future<Output = usize> + '_ {
        async { self.server.received_requests().await.unwrap().len() }
    }
}

/// The tenant's poll of a mock CRM resource (with the input `Ctx::wire` gives its flow).
fn job(t: &ResolvedTenant, resource: &str) -> PollJob {
    let input = if resource == "items" { json!({"list": "main"}) } else { json!({}) };
    PollJob {
        space: t.space.id.clone(),
        tenant: t.tenant.id.clone(),
        connector: ConnectorId::parse("mock_crm").unwrap(),
        resource: resource.into(),
        input: input.as_object().unwrap().clone(),
    }
}

fn item(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "updated": "2026-12-01"})
}

#[tokio::test]
async fn polls_turn_record_changes_into_one_run_each() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&t, "items", true).await;
    ctx.records.set(vec![item("1", "Ada"), item("2", "Bob"), item("3", "Cy"), item("4", "Di"), item("5", "Ed")]);

    // First tick: the poll is due, claimed, queued; the job takes a baseline and runs nothing.
    let summary = ctx.tick().await;
    assert_eq!((summary.polls, summary.enqueued), (1, 1));
    assert_eq!(ctx.tick().await.enqueued, 0, "claimed: a second tick does not queue it again");
    assert_eq!(ctx.work().await, 1);
    assert_eq!(ctx.provider_calls().await, 3, "five records, two per page");
    assert!(ctx.changes(&t).await.is_empty(), "the baseline emits nothing");
    let items = job(&t, "items");
    let (state, _) = polls::get_state(ctx.p.db(), &items).await.unwrap();
    assert_eq!((state.records, state.interval_secs), (5, 240), "no change: the interval doubles");

    // Not due yet.
    ctx.clock.advance(Duration::from_secs(200));
    assert_eq!(ctx.tick().await.enqueued, 0);

    // Changes at the provider: 2 renamed, 3 gone, 6 new; 1, 4, 5 untouched.
    ctx.records.set(vec![item("1", "Ada"), item("2", "Bobby"), item("4", "Di"), item("5", "Ed"), item("6", "Flo")]);
    ctx.clock.advance(Duration::from_secs(41));
    assert_eq!(ctx.tick().await.enqueued, 1);
    ctx.work().await;
    let expected = vec![
        ("updated".to_string(), "2".to_string(), json!("Bobby")),
        ("deleted".to_string(), "3".to_string(), Value::Null),
        ("created".to_string(), "6".to_string(), json!("Flo")),
    ];
    assert_eq!(ctx.changes(&t).await, expected);
    let (state, _) = polls::get_state(ctx.p.db(), &items).await.unwrap();
    assert_eq!((state.records, state.last_changes, state.interval_secs), (5, 3, 120), "changes: the interval halves");

    // The snapshot write is lost after the runs were queued: the job is retried, finds the
    // same changes, and nothing runs twice.
    ctx.records.set(vec![item("1", "Ada"), item("2", "Bobby"), item("4", "Dina"), item("5", "Ed"), item("6", "Flo")]);
    ctx.clock.advance(Duration::from_secs(121));
    assert_eq!(ctx.tick().await.enqueued, 1);
    ctx.instruments.fail(Op::Put, "POLL#", 1);
    ctx.work().await;
    assert_eq!(ctx.p.engine.queue.depth(QueueId::Polls).await.unwrap(), 1, "the failed job waits for redelivery");
    ctx.clock.advance(Duration::from_secs(721));
    assert_eq!(ctx.work().await, 1);
    let changes = ctx.changes(&t).await;
    assert_eq!(changes.len(), 4, "one more run, once: {changes:?}");
    assert!(changes.contains(&("updated".to_string(), "4".to_string(), json!("Dina"))));

    // Nothing changed: the poll runs, no run starts.
    ctx.clock.advance(Duration::from_secs(3600));
    assert_eq!(ctx.tick().await.enqueued, 1);
    ctx.work().await;
    assert_eq!(ctx.changes(&t).await.len(), 4);
}

#[tokio::test]
async fn link_header_pages_are_followed_on_the_connectors_origin_only() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&t, "linked", true).await;
    ctx.wire(&t, "elsewhere", true).await;
    ctx.records.set((1..=5).map(|i| item(&i.to_string(), "x")).collect());
    assert_eq!(ctx.tick().await.enqueued, 2);
    ctx.work().await;
    let linked = job(&t, "linked");
    let (state, _) = polls::get_state(ctx.p.db(), &linked).await.unwrap();
    assert_eq!((state.records, state.last_error.as_deref()), (5, None), "three pages by Link header");
    let elsewhere = job(&t, "elsewhere");
    let (state, _) = polls::get_state(ctx.p.db(), &elsewhere).await.unwrap();
    assert!(state.last_error.as_deref().is_some_and(|e| e.contains("another origin")), "{state:?}");
    assert_eq!((state.failures, state.snapshot.is_none()), (1, true), "no baseline from a failed poll");
    // Created records on the Link-paged resource are found by the next poll.
    ctx.records.set((1..=6).map(|i| item(&i.to_string(), "x")).collect());
    ctx.clock.advance(Duration::from_secs(3600));
    assert_eq!(ctx.tick().await.enqueued, 2);
    ctx.work().await;
    let changes = ctx.changes(&t).await;
    assert_eq!(changes, [("created".to_string(), "6".to_string(), json!("x"))]);
}

#[tokio::test]
async fn a_poll_input_is_checked_against_the_list_action() {
    let ctx = setup().await;
    let bad = json!({"name": "bad", "trigger": {"type": "poll", "connector": "mock_crm", "resource": "items", "input": {"list": 7}},
                     "steps": [{"id": "s", "kind": "transform", "expr": "1"}]});
    let e = FlowDefinition::parse(&bad, ctx.p.engine.catalog).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("trigger.input"), "{e}");
    let missing = json!({"name": "bad", "trigger": {"type": "poll", "connector": "mock_crm", "resource": "items"},
                         "steps": [{"id": "s", "kind": "transform", "expr": "1"}]});
    assert!(FlowDefinition::parse(&missing, ctx.p.engine.catalog).is_err(), "list is required");
}

#[tokio::test]
async fn tenants_without_the_app_connected_are_not_polled() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&t, "items", false).await;
    // A second tenant (of another space) that did connect it.
    let other = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&other, "items", true).await;
    let summary = ctx.tick().await;
    assert_eq!((summary.polls, summary.enqueued), (2, 1), "only the connected tenant");
    ctx.work().await;
    assert!(
        ctx.server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.headers.get("authorization").unwrap() == "Bearer poll-token")
    );
    // Pausing the flow drops it from the index.
    let id = FlowId::parse("on-items").unwrap();
    flows::set_flow_status(ctx.p.db(), &flows::tenant_owner(&other), &id, flows::FlowStatus::Paused).await.unwrap();
    ctx.clock.advance(Duration::from_secs(3600));
    assert_eq!(ctx.tick().await.polls, 1, "the paused flow's tenant is no longer polled");
}

#[tokio::test]
async fn changes_back_and_forth_each_run_and_a_lost_snapshot_is_a_new_baseline() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&t, "items", true).await;
    ctx.wire(&t, "looping", true).await;
    let items = job(&t, "items");
    let mut names = vec!["Ada", "Bob", "Ada", "Bob"].into_iter();
    ctx.records.set(vec![item("1", names.next().unwrap())]);
    assert_eq!(ctx.tick().await.enqueued, 2);
    ctx.work().await;
    for name in names {
        ctx.records.set(vec![item("1", name)]);
        ctx.clock.advance(Duration::from_secs(3600));
        ctx.tick().await;
        ctx.work().await;
    }
    let changes = ctx.changes(&t).await;
    let names: Vec<&Value> = changes.iter().map(|c| &c.2).collect();
    assert_eq!(names.len(), 3, "A→B→A→B is three updates, each run once: {changes:?}");
    assert_eq!(names.iter().filter(|n| **n == "Ada").count(), 1);

    // The looping resource's cursor never ends: the poll fails instead of reading 100 pages.
    let looping = job(&t, "looping");
    let (state, _) = polls::get_state(ctx.p.db(), &looping).await.unwrap();
    assert!(state.last_error.as_deref().is_some_and(|e| e.contains("again")), "{state:?}");

    // The snapshot's blob is gone (expired): the next poll takes a new baseline instead of
    // failing, and runs nothing.
    let (mut state, version) = polls::get_state(ctx.p.db(), &items).await.unwrap();
    state.snapshot = Some(json!({"$blob": {"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "size": 10, "chunks": 1}}));
    state.next_due = 0;
    assert!(polls::put_state(ctx.p.db(), &items, &state, version).await.unwrap());
    ctx.records.set(vec![item("1", "Cy"), item("2", "Di")]);
    ctx.tick().await;
    ctx.work().await;
    assert_eq!(ctx.changes(&t).await.len(), 3, "a baseline starts no run");
    let (state, _) = polls::get_state(ctx.p.db(), &items).await.unwrap();
    assert_eq!((state.records, state.last_error.as_deref()), (2, None), "{state:?}");
    assert!(state.snapshot.as_ref().is_some_and(|s| s.get("$blob").is_none()), "a new inline snapshot");
    // And the poll after it diffs against that baseline.
    ctx.records.set(vec![item("1", "Cy"), item("2", "Dina")]);
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.tick().await;
    ctx.work().await;
    assert_eq!(ctx.changes(&t).await.len(), 4);
}

#[tokio::test]
async fn a_rate_limit_mid_walk_keeps_the_pages_read() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&t, "items", true).await;
    ctx.records.set((1..=5).map(|i| item(&i.to_string(), "x")).collect());
    ctx.records.2.store(true, std::sync::atomic::Ordering::SeqCst);
    ctx.tick().await;
    ctx.work().await;
    // The first page is the baseline so far: not a failed poll, and no deletion judged.
    let (state, _) = polls::get_state(ctx.p.db(), &job(&t, "items")).await.unwrap();
    assert_eq!((state.records, state.failures, state.last_error.as_deref()), (2, 0, None), "{state:?}");
    // Once the provider lets it through, the records past the first page are not in that
    // partial baseline: they count as created (a known limit of a truncated first poll).
    ctx.records.2.store(false, std::sync::atomic::Ordering::SeqCst);
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.tick().await;
    ctx.work().await;
    let (state, _) = polls::get_state(ctx.p.db(), &job(&t, "items")).await.unwrap();
    assert_eq!(state.records, 5, "{state:?}");
    assert_eq!(ctx.changes(&t).await.len(), 3, "{state:?}");
}

#[tokio::test]
async fn a_poll_past_the_daily_quota_emits_what_fits_and_the_rest_the_next_day() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Starter).await;
    let overrides = serde_json::from_value(json!({"events_per_day": {"limit": 3}})).unwrap();
    switchyard::store::tenants::set_tenant_quotas(ctx.p.db(), &t.space.id, &t.tenant.id, overrides).await.unwrap();
    ctx.wire(&t, "items", true).await;
    ctx.records.set(vec![item("1", "Ada")]);
    assert_eq!(ctx.tick().await.enqueued, 1);
    ctx.work().await;

    // Five new records and room for three: the first three in listing order run now.
    ctx.records.set([item("1", "Ada")].into_iter().chain((2..=6).map(|i| item(&i.to_string(), "x"))).collect());
    ctx.clock.advance(Duration::from_secs(241));
    assert_eq!(ctx.tick().await.enqueued, 1);
    ctx.work().await;
    let ids = |changes: Vec<(String, String, Value)>| changes.into_iter().map(|(_, id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(ctx.changes(&t).await), ["2", "3", "4"]);
    let (state, _) = polls::get_state(ctx.p.db(), &job(&t, "items")).await.unwrap();
    assert!(state.last_error.as_deref().unwrap_or("").contains("3 of 5 changes emitted"), "{state:?}");

    // Later the same day: no room, nothing runs, nothing is lost.
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.tick().await;
    ctx.work().await;
    assert_eq!(ctx.changes(&t).await.len(), 3);

    // The next day the other two run, and none of the first three again.
    ctx.clock.advance(Duration::from_secs(86_400));
    ctx.tick().await;
    ctx.work().await;
    assert_eq!(ids(ctx.changes(&t).await), ["2", "3", "4", "5", "6"]);
    let (state, _) = polls::get_state(ctx.p.db(), &job(&t, "items")).await.unwrap();
    assert_eq!((state.last_error, state.records), (None, 6));
}

#[tokio::test]
async fn a_failing_poll_turns_unhealthy_once_then_recovers_and_says_so() {
    let ctx = setup().await;
    let t = tenant(&ctx.p, Plan::Growth).await;
    ctx.wire(&t, "items", true).await;
    ctx.records.set(vec![item("1", "Ada")]);
    ctx.tick().await;
    ctx.work().await;
    let connector = ConnectorId::parse("mock_crm").unwrap();
    let wrong = Credentials::Bearer { token: "revoked".into() };
    credentials::store(ctx.p.db(), &t.space.id, &t.tenant.id, &connector, &wrong).await.unwrap();
    for _ in 0..4 {
        ctx.clock.advance(Duration::from_secs(86_400));
        assert_eq!(ctx.tick().await.enqueued, 1);
        ctx.work().await;
    }
    let events = |kind: &str| {
        let bus = switchyard::adapters::embedded::EmbeddedEventBus::new(
            ctx.p.database.clone().unwrap(),
            Arc::new(ctx.clock.clone()),
        );
        bus.published_since(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.detail_type == kind)
            .map(|(_, e)| e.detail)
            .collect::<Vec<_>>()
    };
    assert_eq!(events("poll.unhealthy").len(), 1, "once, at the third failure");
    assert_eq!(events("connection.failing")[0]["connector"], "mock_crm");
    let health = switchyard::usecases::observability::tenant_health(&ctx.p.engine, &t).await.unwrap();
    let poll = &health["polls"][0];
    assert_eq!(
        (&poll["healthy"], &poll["failures"], &poll["resource"]),
        (&json!(false), &json!(4), &json!("items")),
        "{health}"
    );
    assert!(poll["last_error"].is_string() && poll["last_success_at"].is_i64(), "{health}");
    assert_eq!((&health["healthy"], &health["connections"][0]["state"]), (&json!(false), &json!("failing")));

    let right = Credentials::Bearer { token: "poll-token".into() };
    credentials::store(ctx.p.db(), &t.space.id, &t.tenant.id, &connector, &right).await.unwrap();
    ctx.clock.advance(Duration::from_secs(86_400));
    ctx.tick().await;
    ctx.work().await;
    assert_eq!(events("poll.recovered").len(), 1);
    let health = switchyard::usecases::observability::tenant_health(&ctx.p.engine, &t).await.unwrap();
    assert_eq!((&health["healthy"], &health["polls"][0]["failures"]), (&json!(true), &json!(0)), "{health}");
}
