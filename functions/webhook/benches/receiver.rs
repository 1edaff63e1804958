//! The receiver's CPU path per event: parse, verify the signature, decide the dedup key,
//! normalize, match flows and build the run messages — everything but I/O, which the
//! integration tests count instead (one read, one counter, one send, one write).
//!
//! `cargo bench -p switchyard-webhook --bench receiver` prints criterion's estimate and a
//! percentile pass (p50/p90/p99 over 20,000 events), also written to
//! `target/bench-reports/webhook-receiver.json`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard::domain::connector::Catalog;
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::flow::FlowOwner;
use switchyard::domain::flow::{FlowRecord, FlowStatus};
use switchyard::domain::ids::{FlowId, SpaceId, TenantId};
use switchyard::domain::tenancy::{Plan, Space, Tenant, TenantStatus};
use switchyard::domain::webhook::signature::{SigningSecret, VerifyOptions, sign};
use switchyard::engine::runs::webhook_starts;
use switchyard::runtime::http::Request;
use switchyard::store::tenants::ResolvedTenant;
use switchyard::usecases::webhooks::{Prepared, prepare};
use switchyard_webhook::decode;

const SECRET: &str = "bench-webhook-secret";
const NOW_MS: i64 = 1_795_000_000_000;

struct Fixture {
    tenant: ResolvedTenant,
    secrets: Vec<SigningSecret>,
    flows: Vec<Arc<FlowRecord>>,
    body: Bytes,
    signature: String,
    /// The request path's segments (the receiver splits them before decoding).
    path: Vec<String>,
}

/// A realistic ~4 KB GitHub push.
fn payload() -> Vec<u8> {
    let commits: Vec<Value> = (0..9)
        .map(|i| {
            json!({
                "id": format!("{i:040x}"), "tree_id": format!("{:040x}", i + 100), "distinct": true,
                "message": format!("Commit number {i}: tighten the flux capacitor tolerances"),
                "timestamp": "2026-11-23T18:00:00Z", "url": format!("https://github.com/acme/widgets/commit/{i:040x}"),
                "author": {"name": "Octo Cat", "email": "octocat@github.com", "username": "octocat"},
                "added": [], "removed": [], "modified": ["src/flux.rs"]
            })
        })
        .collect();
    let body = json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": "f".repeat(40),
        "repository": {"id": 1296269, "name": "widgets", "full_name": "acme/widgets", "private": false,
                       "owner": {"login": "acme", "id": 1}, "html_url": "https://github.com/acme/widgets"},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "commits": commits
    });
    serde_json::to_vec(&body).unwrap()
}

fn fixture() -> Fixture {
    let space = SpaceId::parse("bench").unwrap();
    let tenant_id = TenantId::parse("bench-tenant").unwrap();
    let tenant = ResolvedTenant {
        space: Space {
            id: space.clone(),
            name: "Bench".into(),
            plan: Plan::Growth,
            config: Default::default(),
            quotas: Default::default(),
            created_at: 0,
        },
        tenant: Tenant {
            id: tenant_id.clone(),
            space: space.clone(),
            name: "T".into(),
            status: TenantStatus::Active,
            plan: None,
            config: Default::default(),
            quotas: Default::default(),
            created_at: 0,
        },
    };
    // Five flows of the space on GitHub; two match pushes.
    let flows = ["push", "pull_request", "push", "issues", "release"]
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let definition = FlowDefinition::parse(
                &json!({"name": "f", "trigger": {"type": "webhook", "connector": "github", "events": [event]},
                        "steps": [{"id": "s", "kind": "transform", "expr": "."}]}),
                Catalog::builtin(),
            )
            .unwrap();
            Arc::new(FlowRecord {
                id: FlowId::parse(format!("flow-{i}")).unwrap(),
                owner: FlowOwner::Space { space: space.clone() },
                version: 1,
                status: FlowStatus::Active,
                name: "f".into(),
                trigger: definition.trigger.clone(),
                definition: definition.to_value(),
                created_at: 0,
                updated_at: 0,
            })
        })
        .collect();
    let body = Bytes::from(payload());
    let signature = sign::github(SECRET, &body);
    let path = ["webhooks", "bench-tenant", "github"].map(String::from).to_vec();
    Fixture { tenant, secrets: vec![SigningSecret::new(SECRET)], flows, body, signature, path }
}

fn request(f: &Fixture) -> Request {
    http::Request::builder()
        .method("POST")
        .uri("/webhooks/bench-tenant/github")
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("x-hub-signature-256", &f.signature)
        .body(f.body.clone())
        .unwrap()
}

/// Everything the receiver does for one event between the lookups and the writes.
fn cpu_path(f: &Fixture, req: Request) -> usize {
    let spec = Catalog::builtin().find("github").unwrap();
    let options = VerifyOptions::at(NOW_MS / 1000);
    let delivery = decode(req, &f.path).unwrap();
    let Prepared::Event(prepared) = prepare(&f.tenant, spec, None, &f.secrets, &options, delivery, NOW_MS).unwrap()
    else {
        unreachable!("not a challenge")
    };
    let matched: Vec<Arc<FlowRecord>> = f
        .flows
        .iter()
        .filter(|flow| flow.trigger.matches_webhook(&spec.id, &prepared.event.event_type))
        .cloned()
        .collect();
    let input = serde_json::value::to_raw_value(&prepared.event).unwrap();
    let (messages, runs) = webhook_starts(&f.tenant, spec, &prepared.event, &input, &matched, NOW_MS);
    assert_eq!(runs.len(), 2);
    messages.iter().map(|m| m.body.len()).sum::<usize>() + prepared.delivery_key.len()
}

fn percentiles(f: &Fixture) {
    let mut samples: Vec<u128> = Vec::with_capacity(20_000);
    for _ in 0..2_000 {
        std::hint::black_box(cpu_path(f, request(f)));
    }
    for _ in 0..20_000 {
        let req = request(f);
        let start = Instant::now();
        std::hint::black_box(cpu_path(f, req));
        samples.push(start.elapsed().as_nanos());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1000.0;
    let report = json!({
        "benchmark": "webhook receiver CPU path", "payload_bytes": f.body.len(), "events": samples.len(),
        "p50_us": at(0.50), "p90_us": at(0.90), "p99_us": at(0.99), "max_us": at(1.0)
    });
    println!(
        "webhook receiver CPU path, {} B payload: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        f.body.len(),
        at(0.5),
        at(0.9),
        at(0.99)
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-reports");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("webhook-receiver.json"), serde_json::to_string_pretty(&report).unwrap());
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    assert!((3_500..5_000).contains(&f.body.len()), "payload is {} bytes", f.body.len());
    c.bench_function("webhook_cpu_path_4kb", |b| {
        b.iter_batched(|| request(&f), |req| cpu_path(&f, req), BatchSize::SmallInput)
    });
    percentiles(&f);
}

criterion_group!(benches, bench);
criterion_main!(benches);
