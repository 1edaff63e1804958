//! How long the console's pages take on the server with 10,000 executions in the store (the
//! embedded backend, a SQLite file in WAL mode): the target is under 50 ms a page.
//!
//! `cargo bench -p switchyard-tests --bench console` runs `BENCH_EXECUTIONS` (default 10000)
//! executions of a 3-step flow for one tenant (1 in 10 failing), then renders each page
//! `BENCH_ROUNDS` (default 50) times through the API function's handler, as the dev server and
//! Lambda call it, with a signed-in session; prints median and p95 per page and writes
//! `target/bench-reports/console.json`. Every answer is checked to be a 200 page.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::domain::access::Role;
use switchyard::domain::execution::TriggerInfo;
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::tenancy::Plan;
use switchyard::engine::runs;
use switchyard::ports::QueueId;
use switchyard::runtime::Platform;
use switchyard::store::{flows, tenants};
use switchyard_local::LocalConfig;

async fn drain(p: &Platform) {
    let config = LocalConfig::default();
    let work = (0..4).map(|_| async {
        loop {
            let n = switchyard_local::consume_runs_once(p, &config, Duration::from_millis(20)).await.unwrap();
            if n == 0 && p.engine.queue.depth(QueueId::Runs).await.unwrap() == 0 {
                return;
            }
        }
    });
    futures::future::join_all(work).await;
}

fn request(method: &str, uri: &str, cookie: Option<&str>, body: &str) -> switchyard::runtime::http::Request {
    let mut builder = http::Request::builder().method(method).uri(uri).header("host", "127.0.0.1:3000");
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    if !body.is_empty() {
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
    }
    builder.body(bytes::Bytes::from(body.to_string())).unwrap()
}

fn main() {
    switchyard::runtime::lambda::run_main(|| async {
        let n: usize = std::env::var("BENCH_EXECUTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
        let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.db").to_str().unwrap().to_string();
        let settings = switchyard_tests::test_settings(switchyard::runtime::Backend::Embedded { path });
        let p = Platform::from_settings(settings).await.expect("platform");
        let t = switchyard_tests::tenant(&p, Plan::Enterprise).await;
        let definition = FlowDefinition::parse(
            &json!({"name": "bench", "trigger": {"type": "manual"}, "steps": [
                {"id": "a", "kind": "transform", "expr": ".trigger.input"},
                {"id": "b", "kind": "transform", "depends_on": ["a"], "expr": "if .steps.a.output.n % 10 == 0 then error(\"every tenth fails\") else . end"},
                {"id": "c", "kind": "transform", "depends_on": ["b"], "expr": "true"}
            ]}),
            p.engine.catalog,
        )
        .unwrap();
        let (flow, _) = flows::create_flow(p.db(), flows::tenant_owner(&t), None, &definition).await.unwrap();
        let started = Instant::now();
        for i in 0..n {
            runs::start_run(&p.engine, &t, &flow, TriggerInfo::manual(), json!({"input": {"n": i}}), None)
                .await
                .unwrap();
        }
        drain(&p).await;
        println!("{n} executions stored in {:.1} s", started.elapsed().as_secs_f64());
        let (_, key) =
            tenants::create_api_key(p.db(), &t.space.id, "bench".into(), Role::Admin, None, None, None).await.unwrap();
        let login = switchyard_api::handle(&p, request("POST", "/console/login", None, &format!("key={key}"))).await;
        assert_eq!(login.status(), 303);
        let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let (page, _) = switchyard::store::executions::list_executions(
            p.db(),
            &t.space.id,
            &t.tenant.id,
            &Default::default(),
            1,
            None,
        )
        .await
        .unwrap();
        let tenant = t.tenant.id.to_string();
        let pages = [
            ("overview", "/console/".to_string()),
            ("executions, one tenant", format!("/console/executions?tenant={tenant}")),
            ("executions, all tenants", "/console/executions".to_string()),
            ("failed executions", format!("/console/executions?tenant={tenant}&status=failed")),
            ("an execution", format!("/console/tenants/{tenant}/executions/{}", page[0].id)),
            ("a tenant", format!("/console/tenants/{tenant}")),
            ("usage, 30 days", format!("/console/usage?tenant={tenant}&range=30d")),
            ("events", format!("/console/events?tenant={tenant}")),
            ("flows", "/console/flows".to_string()),
        ];
        let mut report = Vec::new();
        for (name, uri) in &pages {
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let at = Instant::now();
                let response = switchyard_api::handle(&p, request("GET", uri, Some(&cookie), "")).await;
                times.push(at.elapsed());
                assert_eq!(response.status(), 200, "{name}: {}", String::from_utf8_lossy(response.body()));
            }
            times.sort();
            let median = times[times.len() / 2].as_secs_f64() * 1000.0;
            let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)].as_secs_f64() * 1000.0;
            println!("{name:<26} median {median:6.2} ms   p95 {p95:6.2} ms");
            report
                .push(json!({"page": name, "uri": uri, "median_ms": median, "p95_ms": p95, "under_50_ms": p95 < 50.0}));
        }
        let out = json!({"executions": n, "rounds": rounds, "backend": "embedded (SQLite, WAL)", "pages": report});
        std::fs::create_dir_all("target/bench-reports").unwrap();
        std::fs::write("target/bench-reports/console.json", serde_json::to_string_pretty(&out).unwrap()).unwrap();
    });
}
