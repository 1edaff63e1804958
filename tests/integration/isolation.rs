//! Tenant isolation over the API: two spaces, three tenants, space keys and tenant keys; every
//! attempt to read or change another tenant's (or another space's) flows, executions,
//! connectors, credentials, configuration or keys is refused, with the same answer as for
//! something that does not exist.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::{ADMIN_KEY, Kind, Reply, TestApp, platform, spawn_app, system_clock, unique};

struct World {
    app: TestApp,
    s1: String,
    s2: String,
    a: String,
    b: String,
    c: String,
    k1: String,
    k2: String,
    ta: String,
}

async fn call(app: &TestApp, key: &str, space: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    app.api(key, space, method, path, body).await
}

async fn world() -> World {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (s1, s2) = (unique("sp"), unique("sp"));
    let (a, b, c) = (unique("tn"), unique("tn"), unique("tn"));
    let k1 = app.seed_tenant(&s1, &a).await;
    let k2 = app.seed_tenant(&s2, &c).await;
    let r = call(&app, &k1, &s1, "POST", "/api/v1/tenants", Some(json!({"id": b, "name": "b"}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = call(&app, &k1, &s1, "POST", "/api/v1/api-keys", Some(json!({"name": "a", "role": "tenant", "tenant": a})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let ta = r.body["key"].as_str().unwrap().to_string();
    World { app, s1, s2, a, b, c, k1, k2, ta }
}

/// A one-step flow for `tenant` (created with the space's key), run once with `key`; returns
/// the execution id.
async fn run_flow(w: &World, key: &str, space: &str, tenant: &str) -> String {
    let admin = if space == w.s1 { &w.k1 } else { &w.k2 };
    let flow = json!({"id": "own", "name": "own", "trigger": {"type": "manual"},
                      "steps": [{"id": "s", "kind": "transform", "expr": ".execution.tenant"}]});
    let r = call(&w.app, admin, space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r =
        call(&w.app, key, space, "POST", &format!("/api/v1/tenants/{tenant}/workflows/own/run"), Some(json!({}))).await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.body["execution_id"].as_str().unwrap().to_string();
    let done = w.app.wait_execution(key, space, tenant, &id, Duration::from_secs(30)).await;
    assert_eq!(done["step_details"][0]["output"], tenant, "{done}");
    id
}

#[tokio::test]
async fn no_key_reaches_another_tenants_or_spaces_data() {
    let w = world().await;
    let (s1, s2, a, b, c) = (&w.s1, &w.s2, &w.a, &w.b, &w.c);
    let ea = run_flow(&w, &w.ta, s1, a).await;
    let eb = run_flow(&w, &w.k1, s1, b).await;
    let ec = run_flow(&w, &w.k2, s2, c).await;
    let r = call(&w.app, &w.ta, s1, "PUT", &format!("/api/v1/tenants/{a}/connectors/stripe"), Some(json!({}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(
        &w.app,
        &w.ta,
        s1,
        "PUT",
        &format!("/api/v1/tenants/{a}/connectors/stripe/credentials"),
        Some(json!({"kind": "bearer", "token": "sk_test_secret_of_a"})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Tenant A's key, aimed at tenant B of the same space: 404, as for a tenant that does not exist.
    let refused_for_a: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/tenants/{b}"), None),
        ("GET", format!("/api/v1/tenants/{b}/executions"), None),
        ("GET", format!("/api/v1/tenants/{b}/executions/{eb}"), None),
        ("POST", format!("/api/v1/tenants/{b}/executions/{eb}/cancel"), None),
        ("POST", format!("/api/v1/tenants/{b}/executions/{eb}/rerun"), Some(json!({"from": "start"}))),
        ("GET", format!("/api/v1/tenants/{b}/workflows"), None),
        (
            "POST",
            format!("/api/v1/tenants/{b}/workflows"),
            Some(
                json!({"name": "x", "trigger": {"type": "manual"}, "steps": [{"id": "s", "kind": "transform", "expr": "1"}]}),
            ),
        ),
        ("POST", format!("/api/v1/tenants/{b}/workflows/own/run"), Some(json!({}))),
        ("GET", format!("/api/v1/tenants/{b}/connectors"), None),
        ("PUT", format!("/api/v1/tenants/{b}/connectors/stripe"), Some(json!({}))),
        (
            "PUT",
            format!("/api/v1/tenants/{b}/connectors/stripe/credentials"),
            Some(json!({"kind": "bearer", "token": "x"})),
        ),
        ("PUT", format!("/api/v1/tenants/{b}/connectors/github/webhook-secret"), Some(json!({"secret": "x"}))),
        ("GET", format!("/api/v1/tenants/{b}/config"), None),
        ("GET", format!("/api/v1/tenants/{b}/events"), None),
        // B's execution under A's path is not A's.
        ("GET", format!("/api/v1/tenants/{a}/executions/{eb}"), None),
        // Tenant C of the other space.
        ("GET", format!("/api/v1/tenants/{c}/executions/{ec}"), None),
    ];
    // Refused (404, or 403 where the role may not do it to anyone), exactly as when the tenant
    // or execution does not exist: the answer tells nothing about other tenants.
    let ghost = unique("tn");
    for (method, path, body) in &refused_for_a {
        let r = call(&w.app, &w.ta, s1, method, path, body.clone()).await;
        assert!(matches!(r.status, 403 | 404), "{method} {path}: {r:?}");
        let probe = path
            .replace(b.as_str(), &ghost)
            .replace(c.as_str(), &ghost)
            .replace(&eb, "ex_01KZ0000000000000000000009")
            .replace(&ec, "ex_01KZ0000000000000000000009");
        let same = call(&w.app, &w.ta, s1, method, &probe, body.clone()).await;
        assert_eq!(r.status, same.status, "{method} {path} answers like {probe}: {r:?} / {same:?}");
    }
    // What a tenant key may not do at all.
    for (method, path, body) in [
        ("POST", "/api/v1/api-keys", Some(json!({"name": "x", "role": "admin"}))),
        ("GET", "/api/v1/api-keys", None),
        ("POST", "/api/v1/tenants", Some(json!({"id": unique("tn"), "name": "x"}))),
        ("GET", "/api/v1/dlq", None),
        ("PUT", "/api/v1/config", Some(json!({"vars": {}}))),
        ("PATCH", &*format!("/api/v1/tenants/{a}"), Some(json!({"status": "suspended"}))),
    ] {
        let r = call(&w.app, &w.ta, s1, method, path, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
    }
    // Naming B in the tenant header does not widen A's key.
    let r = w
        .app
        .send(
            "GET",
            &format!("/api/v1/tenants/{a}/executions"),
            &[("x-fastn-api-key", &w.ta), ("x-fastn-space-tenantid", b)],
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    // A sees itself only.
    let r = call(&w.app, &w.ta, s1, "GET", "/api/v1/tenants", None).await;
    let ids: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str()], "{r:?}");
    let r = call(&w.app, &w.ta, s1, "GET", &format!("/api/v1/tenants/{a}/executions"), None).await;
    let ids: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [ea.as_str()], "{r:?}");

    // The other space's key: not valid for space 1 (401), and space 1's tenants do not exist in
    // space 2 (404).
    let r = call(&w.app, &w.k2, s1, "GET", &format!("/api/v1/tenants/{a}"), None).await;
    assert_eq!(r.status, 401, "{r:?}");
    for path in [
        format!("/api/v1/tenants/{a}"),
        format!("/api/v1/tenants/{a}/executions/{ea}"),
        format!("/api/v1/tenants/{b}/connectors"),
    ] {
        let r = call(&w.app, &w.k2, s2, "GET", &path, None).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    let r = call(&w.app, &w.k1, s1, "GET", &format!("/api/v1/tenants/{c}/executions"), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    // Space keys list their own space's tenants only.
    let r = call(&w.app, &w.k2, s2, "GET", "/api/v1/tenants", None).await;
    let ids: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [c.as_str()], "{r:?}");
    // Tenant ids are claimed deployment-wide: space 2 cannot take A's.
    let r = call(&w.app, &w.k2, s2, "POST", "/api/v1/tenants", Some(json!({"id": a, "name": "impostor"}))).await;
    assert_eq!(r.status, 409, "{r:?}");
    // A space's admin key is not the platform's.
    let r = call(&w.app, &w.k1, s1, "GET", &format!("/api/v1/spaces/{s2}"), None).await;
    assert!(matches!(r.status, 403 | 404), "{r:?}");
    let r = call(&w.app, ADMIN_KEY, s2, "GET", &format!("/api/v1/tenants/{c}"), None).await;
    assert_eq!(r.status, 200, "the platform admin names the space it acts on: {r:?}");

    // Nothing of A's credentials shows anywhere, to anyone.
    for (key, space, path) in [
        (&w.ta, s1, format!("/api/v1/tenants/{a}/connectors")),
        (&w.ta, s1, format!("/api/v1/tenants/{a}/connectors/stripe")),
        (&w.k1, s1, format!("/api/v1/tenants/{a}/connectors")),
    ] {
        let r = call(&w.app, key, space, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.body.to_string().contains("sk_test_secret_of_a"), "{path}: {r:?}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_naming_the_methods_the_resource_has() {
    let w = world().await;
    // Trailing slashes and percent-encoded segments address the same resource as routing sees it.
    for path in
        [format!("/api/v1/tenants/{}", w.a), format!("/api/v1/tenants/{}/", w.a), format!("/api/v1/%74enants/{}", w.a)]
    {
        let r = call(&w.app, &w.k1, &w.s1, "PUT", &path, Some(json!({}))).await;
        assert_eq!(r.status, 405, "{path}: {r:?}");
        assert_eq!(
            r.headers.get("allow").and_then(|a| a.to_str().ok()),
            Some("GET, HEAD, DELETE, PATCH"),
            "{path}: {r:?}"
        );
    }
}
