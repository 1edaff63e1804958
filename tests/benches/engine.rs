//! The executor's throughput and overhead on the embedded backend (a SQLite file in WAL mode).
//!
//! `cargo bench -p switchyard-tests --bench engine` runs three measurements and writes
//! `target/bench-reports/engine.json`:
//! 1. the representative flow of the issue — transform, condition, http to a local mock,
//!    foreach over 10 items, cdm — for N executions with 4 consumers (as the dev server runs):
//!    executions per second, and store and queue calls per execution;
//! 2. the engine's cost per step: flows of 1 and of 11 sequential transform steps, one
//!    consumer; the difference per added step is what a step costs the engine (planning, the
//!    context, the jq evaluation and its checkpoint write), with the per-execution costs (queue,
//!    start, finish) cancelled out;
//! 3. the same without I/O cost: an in-memory database, so what is left is CPU.
//!
//! N is `BENCH_EXECUTIONS` (default 2000). Every execution is checked to have succeeded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::adapters::embedded::{Database, EmbeddedEventBus, EmbeddedQueue, EmbeddedSecrets, EmbeddedStore};
use switchyard::domain::execution::TriggerInfo;
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::tenancy::Plan;
use switchyard::engine::runs;
use switchyard::ports::{Clock, Query, QueueId, SystemClock, query_all};
use switchyard::runtime::Platform;
use switchyard::store::flows;
use switchyard::store::keys;
use switchyard::store::tenants::ResolvedTenant;
use switchyard_local::LocalConfig;
use switchyard_tests::instrument::{InstrumentedQueue, InstrumentedSecrets, InstrumentedStore, Instruments, Op};

fn platform(path: &str, instruments: Arc<Instruments>) -> Platform {
    let db = if path == ":memory:" { Database::in_memory() } else { Database::open(path).expect("database") };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut settings = switchyard_tests::test_settings(switchyard::runtime::Backend::Embedded { path: path.into() });
    settings.outbound = switchyard::adapters::outbound::ssrf::AddressPolicy::from_allow_list("127.0.0.1/32").unwrap();
    let store =
        Arc::new(InstrumentedStore(Arc::new(EmbeddedStore::new(db.clone(), clock.clone())), instruments.clone()));
    let queue =
        Arc::new(InstrumentedQueue(Arc::new(EmbeddedQueue::new(db.clone(), clock.clone())), instruments.clone()));
    let secrets = Arc::new(InstrumentedSecrets(Arc::new(EmbeddedSecrets::new(db.clone(), clock.clone())), instruments));
    let bus = Arc::new(EmbeddedEventBus::new(db.clone(), clock.clone()));
    let mut p = Platform::assemble(store, queue, secrets, bus, clock, settings).expect("platform");
    p.database = Some(db);
    p
}

async fn drain(p: &Platform, consumers: usize) {
    let config = LocalConfig::default();
    let work = (0..consumers).map(|_| async {
        loop {
            let n = switchyard_local::consume_runs_once(p, &config, Duration::from_millis(20)).await.unwrap();
            if n == 0 && p.engine.queue.depth(QueueId::Runs).await.unwrap() == 0 {
                return;
            }
        }
    });
    futures::future::join_all(work).await;
}

async fn setup(p: &Platform, definition: Value) -> (ResolvedTenant, flows::FlowRecord) {
    let t = switchyard_tests::tenant(p, Plan::Enterprise).await;
    let definition = FlowDefinition::parse(&definition, p.engine.catalog).unwrap_or_else(|e| panic!("{e}"));
    let (flow, _) = flows::create_flow(p.db(), flows::tenant_owner(&t), None, &definition).await.unwrap();
    (t, flow)
}

/// Start `n` runs, then time draining them with `consumers`; checks every one succeeded.
async fn measure(
    p: &Platform,
    instruments: &Instruments,
    t: &ResolvedTenant,
    flow: &flows::FlowRecord,
    n: usize,
    input: &Value,
    consumers: usize,
) -> Duration {
    for _ in 0..n {
        runs::start_run(&p.engine, t, flow, TriggerInfo::manual(), input.clone(), None).await.unwrap();
    }
    instruments.reset_counts();
    let started = Instant::now();
    drain(p, consumers).await;
    let elapsed = started.elapsed();
    let all = query_all(
        p.db().store.as_ref(),
        Query::prefix(keys::tenant_pk(&t.space.id, &t.tenant.id), keys::EXECUTION_PREFIX),
        n + 1,
    )
    .await
    .unwrap();
    let succeeded = all.iter().filter(|i| i.data["status"] == "succeeded").count();
    assert_eq!((all.len(), succeeded), (n, n), "every execution ran and succeeded");
    elapsed
}

/// A minimal HTTP endpoint on 127.0.0.1 answering `{"ok": true}` (the third party).
async fn mock_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { ([("content-type", "application/json")], "{\"ok\":true}") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

fn per(count: u64, n: usize) -> f64 {
    count as f64 / n as f64
}

fn chain(steps: usize) -> Value {
    let steps: Vec<Value> = (0..steps)
        .map(|i| {
            if i == 0 {
                json!({"id": "s0", "kind": "transform", "expr": ".trigger.input"})
            } else {
                json!({"id": format!("s{i}"), "kind": "transform", "depends_on": [format!("s{}", i - 1)],
                       "expr": format!(".steps.s{}.output + 1", i - 1)})
            }
        })
        .collect();
    json!({"name": "chain", "trigger": {"type": "manual"}, "steps": steps})
}

/// Microseconds per added step: (T(11 steps) − T(1 step)) / 10 per execution, one consumer.
async fn per_step_cost(db_path: impl Fn(&str) -> String, n: usize) -> (f64, f64, f64) {
    let mut times = Vec::new();
    for steps in [1usize, 11] {
        let instruments = Arc::new(Instruments::default());
        let p = platform(&db_path(&format!("chain{steps}")), instruments.clone());
        let (t, flow) = setup(&p, chain(steps)).await;
        let elapsed = measure(&p, &instruments, &t, &flow, n, &json!({"input": 1}), 1).await;
        times.push(elapsed.as_micros() as f64 / n as f64);
    }
    ((times[1] - times[0]) / 10.0, times[0], times[1])
}

fn main() {
    // The functions' runtime: threads with the stack expression evaluation wants.
    switchyard::runtime::lambda::run_main(|| async {
        let n: usize = std::env::var("BENCH_EXECUTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(format!("{name}.db")).to_str().unwrap().to_string();
        let url = mock_endpoint().await;
        let order =
            serde_json::from_str::<Value>(include_str!("../../shared/domain/connectors/fixtures/shopify/order.json"))
                .unwrap()["input"]
                .clone();

        // 1. The representative flow.
        let instruments = Arc::new(Instruments::default());
        let p = platform(&file("representative"), instruments.clone());
        let (t, flow) = setup(
        &p,
        json!({
            "name": "representative", "trigger": {"type": "manual"},
            "steps": [
                {"id": "shape", "kind": "transform", "expr": "{total: .trigger.input.order.total_price | tonumber, items: [range(10)]}"},
                {"id": "big", "kind": "condition", "depends_on": ["shape"], "expr": ".steps.shape.output.total > 10", "then": ["notify"]},
                {"id": "notify", "kind": "http", "method": "POST", "url": url, "body": {"total": "${{ .steps.shape.output.total }}"}},
                {"id": "each", "kind": "foreach", "depends_on": ["shape"], "items": ".steps.shape.output.items", "concurrency": 10,
                 "steps": [{"id": "double", "kind": "transform", "expr": ".item * 2"}]},
                {"id": "canonical", "kind": "cdm", "depends_on": ["notify", "each"], "connector": "shopify", "entity": "order", "input": "${{ .trigger.input.order }}"}
            ]
        }),
    )
    .await;
        let elapsed = measure(&p, &instruments, &t, &flow, n, &json!({"input": {"order": order}}), 4).await;
        let writes = instruments.count(Op::Put) + instruments.count(Op::Transact) + instruments.count(Op::Delete);
        let reads = instruments.count(Op::Get) + instruments.count(Op::Query);
        let queue_calls = instruments.count(Op::Send) + instruments.count(Op::Receive);
        let representative = json!({
            "flow": "transform, condition, http (local mock), foreach x10, cdm",
            "executions": n, "consumers": 4, "seconds": elapsed.as_secs_f64(),
            "executions_per_second": n as f64 / elapsed.as_secs_f64(),
            "store_writes_per_execution": per(writes, n), "store_reads_per_execution": per(reads, n),
            "queue_sends_and_receives_per_execution": per(queue_calls, n),
            "queue_acks_per_execution": per(instruments.count(Op::Ack), n),
            "secret_reads_per_execution": per(instruments.count(Op::SecretGet), n),
            "steps": 5, "write_target": "at most steps + 3 = 8 (the claim, the execution, a checkpoint per step, the final write)",
            "meets_write_target": per(writes, n) <= 8.0,
        });
        println!(
            "representative flow: {n} executions in {:.2} s = {:.0}/s; per execution {:.2} store writes, {:.2} reads, {:.2} queue sends+receives, {:.2} acks",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            per(writes, n),
            per(reads, n),
            per(queue_calls, n),
            per(instruments.count(Op::Ack), n),
        );

        // 2. and 3. What a step costs the engine, on a WAL file and in memory.
        let (file_step, file_1, file_11) = per_step_cost(file, n).await;
        let (memory_step, memory_1, memory_11) = per_step_cost(|_| ":memory:".to_string(), n).await;
        println!(
            "engine cost per step: {file_step:.1} µs with its checkpoint in a WAL file ({file_1:.0} µs for 1 step, {file_11:.0} µs for 11); {memory_step:.1} µs in memory"
        );
        let overhead = json!({
            "method": "(time per execution of an 11-step chain − of a 1-step chain) / 10, one consumer",
            "executions": n,
            "file": {"per_step_us": file_step, "one_step_execution_us": file_1, "eleven_step_execution_us": file_11},
            "memory": {"per_step_us": memory_step, "one_step_execution_us": memory_1, "eleven_step_execution_us": memory_11},
            "target_per_step_us": 100, "meets_target": file_step < 100.0,
        });
        let report = json!({"representative": representative, "per_step": overhead});
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-reports");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("engine.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    })
}
