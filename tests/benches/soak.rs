//! The no-loss promise at scale, by hand (README, "Performance"):
//!
//! ```sh
//! cargo bench -p switchyard-tests --bench soak            # 10,000 events, 10 % faults
//! SOAK_EVENTS=2000 SOAK_FAULT_RATE=0.2 cargo bench -p switchyard-tests --bench soak
//! ```
//!
//! A dev server runs in a child process on an embedded database file, with every store, queue
//! and secrets call failing at `SOAK_FAULT_RATE` (half before the call, half as a lost reply
//! after it). This process seeds a tenant and a flow (transform → HTTP POST to a local sink
//! that records each call's idempotency key → transform), then sends `SOAK_EVENTS` signed
//! GitHub webhooks, each retried as a provider retries (on a 5xx, a 429 or no answer) until it
//! is accepted. Half-way it kills the server with SIGKILL and starts it again on the same file.
//! It then waits for every accepted delivery's execution to finish and reports:
//! - accepted deliveries, executions finished, messages in the DLQ;
//! - lost: accepted, with no execution and nothing in the DLQ (must be 0);
//! - duplicated: a delivery with more than one execution (must be 0);
//! - side effects applied twice: a sink key (one per execution and step) that an
//!   idempotency-honouring receiver would have applied more than once (must be 0), and how
//!   often a call was re-sent with the same key after a fault or the crash (harmless).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::adapters::embedded::{
    Database, EmbeddedEventBus, EmbeddedQueue, EmbeddedSecrets, EmbeddedStore, QueuePolicy,
};
use switchyard::domain::webhook::signature::sign;
use switchyard::ports::{QueueId, SystemClock};
use switchyard::runtime::{Platform, Settings};
use switchyard_tests::instrument::{InstrumentedQueue, InstrumentedSecrets, InstrumentedStore, Instruments};

const SECRET: &str = "soak-webhook-secret";
const SPACE: &str = "soak";
const TENANT: &str = "soak-tenant";

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    switchyard::runtime::lambda::run_main(|| async {
        if std::env::var_os("SOAK_CHILD").is_some() {
            child().await;
        } else {
            parent().await;
        }
    })
}

/// The server under test: the dev server on a database file, its ports failing at random.
async fn child() {
    let db_path = std::env::var("SOAK_DB").expect("SOAK_DB");
    let addr = std::env::var("SOAK_ADDR").expect("SOAK_ADDR");
    let rate: f64 = env_number("SOAK_FAULT_RATE", 0.1);
    let db = Database::open(&db_path).expect("database");
    let clock: Arc<dyn switchyard::ports::Clock> = Arc::new(SystemClock);
    let instruments = Arc::new(Instruments::default());
    let store =
        Arc::new(InstrumentedStore(Arc::new(EmbeddedStore::new(db.clone(), clock.clone())), instruments.clone()));
    let queue = Arc::new(InstrumentedQueue(
        Arc::new(
            EmbeddedQueue::new(db.clone(), clock.clone()).with_policy(QueueId::Runs, QueuePolicy { max_receives: 5 }),
        ),
        instruments.clone(),
    ));
    let secrets =
        Arc::new(InstrumentedSecrets(Arc::new(EmbeddedSecrets::new(db.clone(), clock.clone())), instruments.clone()));
    let bus = Arc::new(EmbeddedEventBus::new(db.clone(), clock.clone()));
    let mut settings = Settings::for_embedded(&db_path);
    settings.outbound =
        switchyard::adapters::outbound::ssrf::AddressPolicy::from_allow_list("127.0.0.0/8").expect("allow-list");
    settings.retry_base_secs = 1;
    let mut platform = Platform::assemble(store, queue, secrets, bus, clock, settings).expect("platform");
    platform.database = Some(db);
    // Faults start once the server is up: the seeding goes through the API and retries too.
    instruments.fail_randomly(rate);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let config = switchyard_local::LocalConfig {
        consumers: 4,
        visibility: Duration::from_secs(20),
        tick: Duration::from_secs(3600),
        ..Default::default()
    };
    let _ = switchyard_local::serve(Arc::new(platform), listener, config, std::future::pending()).await;
}

struct Server {
    child: std::process::Child,
}

fn start_server(db: &str, addr: &str, rate: f64) -> Server {
    let child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("SOAK_CHILD", "1")
        .env("SOAK_DB", db)
        .env("SOAK_ADDR", addr)
        .env("SOAK_FAULT_RATE", rate.to_string())
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the server");
    Server { child }
}

/// A request, retried like a provider or a careful client retries (5xx, 429, no answer).
async fn persistent(
    client: &reqwest::Client,
    build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> (u16, Value) {
    for attempt in 0.. {
        if let Ok(response) = build(client).send().await {
            let status = response.status().as_u16();
            if status < 500 && status != 429 {
                let body = serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
                return (status, body);
            }
        }
        tokio::time::sleep(Duration::from_millis((50 * (attempt + 1)).min(1000))).await;
    }
    unreachable!()
}

async fn parent() {
    let events: usize = env_number("SOAK_EVENTS", 10_000);
    let rate: f64 = env_number("SOAK_FAULT_RATE", 0.1);
    let concurrency: usize = env_number("SOAK_CONCURRENCY", 32);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("soak.db").display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");

    // The third party the flow calls: per delivery, every idempotency key it received, with a
    // count of calls.
    let received: Arc<Mutex<HashMap<String, HashMap<String, u32>>>> = Arc::default();
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/sink", sink.local_addr().unwrap());
    let seen = received.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/sink",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let delivery =
                        serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["n"].as_str().map(str::to_string));
                    *seen.lock().unwrap().entry(delivery.unwrap_or_default()).or_default().entry(key).or_default() += 1;
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"ok":true}"#)
                }
            }),
        );
        let _ = axum::serve(sink, app).await;
    });

    let mut server = start_server(&db, &addr, rate);
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
    let admin = switchyard::runtime::DEV_ADMIN_KEY;
    let api = |c: &reqwest::Client, key: &str, method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r =
            c.request(method, format!("{base}{path}")).header("x-fastn-api-key", key).header("x-fastn-space-id", SPACE);
        if let Some(body) = body {
            r = r.header("content-type", "application/json").body(body.to_string());
        }
        r
    };
    let post = reqwest::Method::POST;
    let (status, _) = persistent(&client, |c| {
        api(c, admin, post.clone(), "/api/v1/spaces", Some(json!({"id": SPACE, "name": "Soak", "plan": "enterprise"})))
    })
    .await;
    assert!(status == 201 || status == 409, "space: {status}");
    let (status, _) = persistent(&client, |c| {
        api(c, admin, post.clone(), "/api/v1/tenants", Some(json!({"id": TENANT, "name": "Soak"})))
    })
    .await;
    assert!(status == 201 || status == 409, "tenant: {status}");
    let (status, key) = persistent(&client, |c| {
        api(c, admin, post.clone(), "/api/v1/api-keys", Some(json!({"name": "soak", "role": "admin"})))
    })
    .await;
    assert_eq!(status, 201, "key");
    let key = key["key"].as_str().expect("key").to_string();
    let put = reqwest::Method::PUT;
    let (status, _) = persistent(&client, |c| {
        api(
            c,
            &key,
            put.clone(),
            &format!("/api/v1/tenants/{TENANT}/connectors/github/webhook-secret"),
            Some(json!({"secret": SECRET})),
        )
    })
    .await;
    assert_eq!(status, 200, "secret");
    let flow = json!({
        "id": "soak", "name": "Soak", "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
        "steps": [
            {"id": "shape", "kind": "transform", "expr": "{n: .trigger.payload.n}"},
            {"id": "call", "kind": "http", "depends_on": ["shape"], "method": "POST", "url": sink_url, "body": "${{ .steps.shape.output }}"},
            {"id": "done", "kind": "transform", "depends_on": ["call"], "expr": ".steps.call.output.body.ok"}
        ]
    });
    let (status, _) = persistent(&client, |c| {
        api(c, &key, post.clone(), &format!("/api/v1/tenants/{TENANT}/workflows"), Some(flow.clone()))
    })
    .await;
    assert!(status == 201 || status == 409, "flow: {status}");

    // The deliveries, with the crash half-way.
    let started = Instant::now();
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut crash_done = false;
    let mut next = 0;
    let mut running = tokio::task::JoinSet::new();
    while next < events || !running.is_empty() {
        while next < events && running.len() < concurrency {
            let (client, base, accepted, sent) = (client.clone(), base.clone(), accepted.clone(), sent.clone());
            let delivery = format!("soak-{next:06}");
            next += 1;
            running.spawn(async move {
                let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": delivery})).unwrap();
                let (status, _) = persistent(&client, |c| {
                    c.post(format!("{base}/webhooks/{TENANT}/github"))
                        .header("content-type", "application/json")
                        .header("x-github-event", "push")
                        .header("x-github-delivery", &delivery)
                        .header("x-hub-signature-256", sign::github(SECRET, &body))
                        .body(body.clone())
                })
                .await;
                if status == 202 || status == 200 {
                    accepted.lock().unwrap().insert(delivery);
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        if !crash_done && sent.load(std::sync::atomic::Ordering::SeqCst) >= events / 2 {
            crash_done = true;
            let _ = server.child.kill(); // SIGKILL
            let _ = server.child.wait();
            eprintln!("killed the server with SIGKILL after {} deliveries; restarting", events / 2);
            server = start_server(&db, &addr, rate);
        }
        running.join_next().await;
    }
    let accepted: HashSet<String> = accepted.lock().unwrap().clone();
    let sending = started.elapsed();

    let dlq = EmbeddedQueue::new(Database::open(&db).expect("database"), Arc::new(SystemClock));
    // Wait for every accepted delivery to have a finished execution (or a dead letter).
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut by_delivery, mut dead): (HashMap<String, Vec<(String, String)>>, HashSet<String>);
    loop {
        by_delivery = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/tenants/{TENANT}/executions?limit=200&cursor={c}"),
                None => format!("/api/v1/tenants/{TENANT}/executions?limit=200"),
            };
            let (_, page) = persistent(&client, |c| api(c, &key, reqwest::Method::GET, &path, None)).await;
            for e in page["items"].as_array().cloned().unwrap_or_default() {
                let delivery = e["trigger"]["event_id"].as_str().unwrap_or("").to_string();
                let id = e["id"].as_str().unwrap_or("").to_string();
                by_delivery.entry(delivery).or_default().push((id, e["status"].as_str().unwrap_or("").to_string()));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        // The executions the DLQ holds a message for, read from the database file itself: the
        // API lists at most 200 dead letters, and a 10 % fault rate dead-letters more.
        let letters = switchyard::usecases::dead_letters::list(&dlq, QueueId::RunsDlq, None, 1_000_000)
            .await
            .expect("read the dead-letter queue");
        dead = letters.into_iter().filter_map(|l| l.execution_id).collect();
        let settled = accepted
            .iter()
            .filter(|d| {
                by_delivery.get(*d).is_some_and(|runs| {
                    runs.iter().any(|(id, s)| matches!(s.as_str(), "succeeded" | "failed") || dead.contains(id))
                })
            })
            .count();
        if settled >= accepted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = server.child.kill();
    let _ = server.child.wait();

    let finished = |s: &str| matches!(s, "succeeded" | "failed");
    let runs_of = |d: &String| by_delivery.get(d).map(Vec::as_slice).unwrap_or(&[]);
    let completed = accepted.iter().filter(|d| runs_of(d).iter().any(|(_, s)| finished(s))).count();
    let succeeded = accepted.iter().filter(|d| runs_of(d).iter().any(|(_, s)| s == "succeeded")).count();
    let in_dlq = accepted
        .iter()
        .filter(|d| !runs_of(d).iter().any(|(_, s)| finished(s)) && runs_of(d).iter().any(|(id, _)| dead.contains(id)))
        .count();
    let without_execution = accepted.iter().filter(|d| runs_of(d).is_empty()).count();
    // Accepted, and neither finished nor waiting in the DLQ: gone.
    let lost = accepted.len() - completed - in_dlq;
    let duplicated = by_delivery.values().filter(|runs| runs.len() > 1).count();
    let calls = received.lock().unwrap();
    // Each delivery's call has one idempotency key (execution and step); two keys for one
    // delivery is an effect an idempotency-honouring receiver applies twice.
    let applied_twice = calls.values().filter(|keys| keys.len() > 1).count();
    let resent: u32 = calls.values().flat_map(|keys| keys.values()).map(|n| n - 1).sum();
    let distinct: usize = calls.values().map(HashMap::len).sum();
    println!(
        "soak: {events} deliveries sent in {:.1} s with {:.0} % port faults and a SIGKILL half-way",
        sending.as_secs_f64(),
        rate * 100.0
    );
    println!(
        "| accepted | completed | succeeded | waiting in the DLQ | without an execution | lost | duplicated runs | side effects applied twice | calls re-sent with the same key |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {completed} | {succeeded} | {in_dlq} | {without_execution} | {lost} | {duplicated} | {applied_twice} | {resent} |",
        accepted.len()
    );
    println!(
        "(distinct idempotency keys at the sink: {distinct}; an idempotency-honouring receiver applies each once)"
    );
}
