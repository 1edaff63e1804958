//! The webhook-to-flow pipeline end to end, over loopback HTTP: signed GitHub pushes into the
//! dev server (embedded backend, a SQLite file in WAL mode, 4 executor consumers, as
//! `cargo run --release -p switchyard-local` runs), each verified, deduplicated, queued and run
//! as a two-step flow (a jq summary and a jq check), every execution persisted with its steps.
//!
//! `cargo bench -p switchyard-tests --bench pipeline` writes `target/bench-reports/pipeline.json`:
//! - ingest: webhooks answered 202 per second, and the p50/p99 of that answer;
//! - end to end: events whose flow finished per second (first request to last execution),
//!   and the p50/p99 from sending the webhook to the flow's end (the execution's `finished_at`).
//!
//! With `BENCH_TARGET_URL` it instead loads another webhook endpoint with the same requests and
//! the same concurrency, timing each response (for an n8n workflow that answers when it has
//! run, that is its end-to-end latency): `scripts/bench-vs-n8n` uses this.
//! `BENCH_EVENTS` (default 10000) and `BENCH_CONCURRENCY` (default 64) size a closed-loop run
//! (that many requests in flight, as fast as answers come); with `BENCH_RATE` (events per
//! second) the run is open-loop instead: requests leave at that fixed rate, whatever the answers,
//! which measures latency below saturation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard::adapters::embedded::{Database, EmbeddedEventBus, EmbeddedQueue, EmbeddedSecrets, EmbeddedStore};
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::ids::{ConnectorId, FlowId};
use switchyard::domain::tenancy::Plan;
use switchyard::domain::webhook::signature::sign;
use switchyard::ports::{Clock, Query, QueueId, SystemClock, query_all};
use switchyard::runtime::Platform;
use switchyard::store::keys;
use switchyard::store::{connections, flows};
use switchyard_local::LocalConfig;

const SECRET: &str = "bench-webhook-secret";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A GitHub push of about 1.5 KB.
fn push(delivery: &str) -> Vec<u8> {
    let commits: Vec<Value> = (0..3)
        .map(|i| {
            json!({"id": format!("{i:040x}"), "message": format!("Commit {i} of {delivery}"),
                        "author": {"name": "Octo Cat", "email": "octocat@github.com"}, "modified": ["src/lib.rs"]})
        })
        .collect();
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "after": "f".repeat(40),
        "repository": {"id": 1296269, "full_name": "acme/widgets"}, "pusher": {"name": "octocat"},
        "commits": commits
    }))
    .unwrap()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(|a, b| a.total_cmp(b));
    json!({"p50_ms": percentile(&samples, 0.50), "p90_ms": percentile(&samples, 0.90),
           "p99_ms": percentile(&samples, 0.99), "max_ms": percentile(&samples, 1.0)})
}

/// How requests are sent.
#[derive(Clone, Copy)]
enum Load {
    /// This many in flight.
    Closed(usize),
    /// This many per second, open loop.
    Rate(f64),
}

impl Load {
    fn describe(self) -> Value {
        match self {
            Load::Closed(n) => json!({"mode": "closed loop", "in_flight": n}),
            Load::Rate(r) => json!({"mode": "open loop", "events_per_second": r}),
        }
    }
}

/// Send `deliveries`; per delivery: (id, sent at epoch ms, answered after ms, status).
async fn load(
    client: &reqwest::Client,
    url: &str,
    deliveries: &[String],
    how: Load,
    signed: bool,
) -> Vec<(String, i64, f64, u16)> {
    let send = |delivery: String| {
        let (client, url) = (client.clone(), url.to_string());
        send_one(client, url, delivery, signed)
    };
    match how {
        Load::Closed(concurrency) => {
            futures::stream::iter(deliveries.iter().cloned()).map(send).buffer_unordered(concurrency).collect().await
        }
        Load::Rate(rate) => {
            let start = tokio::time::Instant::now();
            let mut running = Vec::with_capacity(deliveries.len());
            for (i, delivery) in deliveries.iter().enumerate() {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
                running.push(tokio::spawn(send(delivery.clone())));
            }
            let mut out = Vec::with_capacity(running.len());
            for r in running {
                out.push(r.await.expect("request task"));
            }
            out
        }
    }
}

async fn send_one(client: reqwest::Client, url: String, delivery: String, signed: bool) -> (String, i64, f64, u16) {
    let body = push(&delivery);
    let mut request = client
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", &delivery);
    if signed {
        request = request.header("x-hub-signature-256", sign::github(SECRET, &body));
    }
    let sent_at = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let status = match request.body(body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
        Err(_) => 0,
    };
    (delivery, sent_at, started.elapsed().as_secs_f64() * 1000.0, status)
}

fn write_report(name: &str, report: &Value) {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-reports");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(name), serde_json::to_string_pretty(report).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(report).unwrap());
}

fn main() {
    // The functions' runtime: threads with the stack expression evaluation wants.
    switchyard::runtime::lambda::run_main(|| async {
        let events = env_number("BENCH_EVENTS", 10_000);
        let concurrency = env_number("BENCH_CONCURRENCY", 64);
        let how = match std::env::var("BENCH_RATE").ok().and_then(|r| r.parse::<f64>().ok()) {
            Some(rate) if rate > 0.0 => Load::Rate(rate),
            _ => Load::Closed(concurrency),
        };
        let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(concurrency).build().unwrap();
        let deliveries: Vec<String> = (0..events).map(|i| format!("bench-{i}")).collect();

        if let Ok(url) = std::env::var("BENCH_TARGET_URL") {
            let warm: Vec<String> = (0..200).map(|i| format!("warm-{i}")).collect();
            load(&client, &url, &warm, Load::Closed(concurrency), false).await;
            let started = Instant::now();
            let results = load(&client, &url, &deliveries, how, false).await;
            let elapsed = started.elapsed().as_secs_f64();
            let ok = results.iter().filter(|r| (200..300).contains(&r.3)).count();
            let report = json!({
                "target": url, "events": events, "load": how.describe(), "succeeded": ok, "seconds": elapsed,
                "events_per_second": ok as f64 / elapsed,
                "latency": summary(results.iter().map(|r| r.2).collect()),
            });
            write_report(&std::env::var("BENCH_REPORT").unwrap_or_else(|_| "pipeline-target.json".into()), &report);
            return;
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let db = Database::open(path.to_str().unwrap()).expect("database");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut settings = switchyard_tests::test_settings(switchyard::runtime::Backend::Embedded {
            path: path.display().to_string(),
        });
        settings.retry_base_secs = 5;
        let mut p = Platform::assemble(
            Arc::new(EmbeddedStore::new(db.clone(), clock.clone())),
            Arc::new(EmbeddedQueue::new(db.clone(), clock.clone())),
            Arc::new(EmbeddedSecrets::new(db.clone(), clock.clone())),
            Arc::new(EmbeddedEventBus::new(db.clone(), clock.clone())),
            clock,
            settings,
        )
        .expect("platform");
        p.database = Some(db);
        let t = switchyard_tests::tenant(&p, Plan::Enterprise).await;
        connections::set_webhook_secret(
            p.db(),
            &t.space.id,
            &t.tenant.id,
            &ConnectorId::parse("github").unwrap(),
            SECRET,
            86_400,
        )
        .await
        .unwrap();
        let definition = FlowDefinition::parse(
        &json!({"name": "push summary", "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
                "steps": [
                    {"id": "summary", "kind": "transform",
                     "expr": "{repo: .trigger.payload.repository.full_name, by: .trigger.payload.pusher.name, commits: (.trigger.payload.commits | length)}"},
                    {"id": "check", "kind": "transform", "depends_on": ["summary"], "expr": ".steps.summary.output.commits > 0"}
                ]}),
        p.engine.catalog,
    )
    .unwrap();
        flows::create_flow(p.db(), flows::tenant_owner(&t), Some(FlowId::parse("summary").unwrap()), &definition)
            .await
            .unwrap()
            .0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let platform = Arc::new(p);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // As the dev server runs (SWITCHYARD_LOCAL_CONSUMERS applies), without schedule ticks.
        let config =
            LocalConfig { tick: Duration::from_secs(3600), ..LocalConfig::from_env().expect("local settings") };
        let consumers = config.consumers;
        let server = tokio::spawn(switchyard_local::serve(platform.clone(), listener, config, async {
            let _ = stopped.await;
        }));
        let url = format!("{base}/webhooks/{}/github", t.tenant.id);
        let pk = keys::tenant_pk(&t.space.id, &t.tenant.id);
        // Waiting costs one cheap count per 10 ms (reading every execution while the executor works
        // would slow it down); the executions are read once, at the end.
        let finished = |p: Arc<Platform>, pk: String, n: usize| async move {
            loop {
                if p.engine.queue.depth(QueueId::Runs).await.unwrap() == 0 {
                    let all =
                        query_all(p.db().store.as_ref(), Query::prefix(pk.clone(), keys::EXECUTION_PREFIX), n + 1_000)
                            .await
                            .unwrap();
                    if all.iter().filter(|i| i.data["status"] == "succeeded").count() >= n {
                        return all;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };

        // Warm-up (caches, connections, SQLite pages), then the measured run.
        let warm: Vec<String> = (0..500).map(|i| format!("warm-{i}")).collect();
        load(&client, &url, &warm, Load::Closed(concurrency), true).await;
        finished(platform.clone(), pk.clone(), warm.len()).await;
        let started = Instant::now();
        let results = load(&client, &url, &deliveries, how, true).await;
        let ingest_seconds = started.elapsed().as_secs_f64();
        let all = finished(platform.clone(), pk.clone(), warm.len() + events).await;
        let end_to_end_seconds = started.elapsed().as_secs_f64();
        let _ = stop.send(());
        let _ = server.await;

        let accepted = results.iter().filter(|r| r.3 == 202).count();
        assert_eq!(accepted, events, "every webhook accepted");
        let sent: HashMap<&str, i64> = results.iter().map(|r| (r.0.as_str(), r.1)).collect();
        // Per event: sent → run queued (the execution id's time, taken by the receiver) → flow
        // finished.
        let timings: Vec<(f64, f64)> = all
            .iter()
            .filter_map(|i| {
                let event = i.data["trigger"]["event_id"].as_str()?;
                let finished_at = i.data["finished_at"].as_i64()?;
                let queued_at = i.data["created_at"].as_i64()?;
                sent.get(event).map(|s| ((finished_at - s) as f64, (finished_at - queued_at) as f64))
            })
            .collect();
        if let Ok(path) = std::env::var("BENCH_DUMP") {
            // Per event, for looking at the run over time: sent, queued and finished (epoch ms).
            let rows: Vec<Value> = all
                .iter()
                .filter_map(|i| {
                    let event = i.data["trigger"]["event_id"].as_str()?;
                    Some(json!([sent.get(event)?, i.data["created_at"], i.data["finished_at"]]))
                })
                .collect();
            std::fs::write(path, serde_json::to_string(&rows).unwrap()).unwrap();
        }
        let e2e: Vec<f64> = timings.iter().map(|t| t.0).collect();
        let queued_to_finished: Vec<f64> = timings.iter().map(|t| t.1).collect();
        assert_eq!(e2e.len(), events, "one execution per event");
        let report = json!({
            "pipeline": "signed GitHub push -> verify, dedup, queue (SQLite WAL) -> 2-step flow, persisted",
            "events": events, "load": how.describe(), "consumers": consumers,
            "ingest": {"seconds": ingest_seconds, "accepted_per_second": events as f64 / ingest_seconds,
                       "answer": summary(results.iter().map(|r| r.2).collect())},
            "end_to_end": {"seconds": end_to_end_seconds, "events_per_second": events as f64 / end_to_end_seconds,
                           "webhook_to_flow_finished": summary(e2e),
                           "queued_to_flow_finished": summary(queued_to_finished)},
        });
        write_report(&std::env::var("BENCH_REPORT").unwrap_or_else(|_| "pipeline.json".into()), &report);
    })
}
