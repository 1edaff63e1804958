//! The MCP gateway over real HTTP on the dev server: every protocol rule of the endpoint,
//! per-tenant tools (two tenants, a mock provider that records whose token each call carried),
//! key allow-lists, tool calls recorded as executions, and the official Python MCP SDK driving it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::domain::connector::Catalog;
use switchyard::domain::ids::{ConnectorId, SpaceId, TenantId};
use switchyard::domain::tenancy::Plan;
use switchyard::ports::{Clock, ManualClock};
use switchyard::store::connections;
use switchyard::store::credentials::{self, Credentials};
use switchyard_tests::{ADMIN_KEY, Kind, Reply, TestApp, platform_with, spawn_app, system_clock, unique};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Two private connectors served by the mock provider, added to the built-in catalog through
/// the same extra-directory mechanism a deployment uses (`SWITCHYARD_CATALOG_DIR`).
fn catalog(base: &str) -> &'static Catalog {
    let dir = tempfile::tempdir().expect("tempdir");
    let crm = format!(
        r#"id: acme_crm
name: Acme CRM
description: A mock CRM.
docs_url: https://example.com/crm
base_url: {base}/crm
auth: {{kind: bearer}}
actions:
  - id: get_contact
    title: Get a contact
    description: Read one contact by id.
    method: GET
    path: /contacts/{{id}}
    input_schema: {{type: object, required: [id], properties: {{id: {{type: string}}}}, additionalProperties: false}}
    output_schema: {{type: object, properties: {{id: {{type: string}}, email: {{type: string}}}}, required: [id]}}
    hints: {{read_only: true, idempotent: true}}
  - id: create_contact
    title: Create a contact
    description: Create a contact.
    method: POST
    path: /contacts
    body: {{email: "${{{{ .input.email }}}}"}}
    input_schema: {{type: object, required: [email], properties: {{email: {{type: string}}}}}}
    idempotency_header: Idempotency-Key
  - id: delete_contact
    title: Delete a contact
    description: Delete a contact for good.
    method: DELETE
    path: /contacts/{{id}}
    input_schema: {{type: object, required: [id], properties: {{id: {{type: string}}}}}}
    hints: {{destructive: true, idempotent: true}}
"#
    );
    let billing = format!(
        r#"id: acme_billing
name: Acme Billing
description: A mock billing API.
docs_url: https://example.com/billing
base_url: {base}/billing
auth: {{kind: bearer}}
actions:
  - id: list_invoices
    title: List invoices
    description: All invoices.
    method: GET
    path: /invoices
    input_schema: {{type: object}}
    hints: {{read_only: true}}
"#
    );
    std::fs::write(dir.path().join("acme_crm.yaml"), crm).expect("write");
    std::fs::write(dir.path().join("acme_billing.yaml"), billing).expect("write");
    std::fs::write(dir.path().join("README.txt"), "not a connector").expect("write");
    let catalog = Catalog::with_extra_dir(dir.path()).expect("extra catalog");
    Box::leak(Box::new(catalog))
}

/// The mock provider: contacts echo the bearer token they were called with; contact `boom`
/// fails with a 404 from the provider whose body echoes the token too (as careless APIs do).
async fn provider() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/contacts/boom"))
        .respond_with(|req: &wiremock::Request| {
            let token = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            ResponseTemplate::new(404).set_body_json(json!({"message": "no such contact", "you_sent": token}))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/crm/contacts/[^/]+$"))
        .respond_with(|req: &wiremock::Request| {
            let id = req.url.path().rsplit('/').next().unwrap_or_default().to_string();
            let token = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": id, "email": format!("{id}@example.com"), "seen_token": token}))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/billing/invoices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "in_1"}])))
        .mount(&server)
        .await;
    server
}

struct Ctx {
    app: TestApp,
    space: String,
    admin: String,
    server: MockServer,
}

async fn setup(tweak: impl FnOnce(&mut switchyard::runtime::Settings)) -> Ctx {
    setup_at(system_clock(), tweak).await
}

async fn setup_at(clock: Arc<dyn Clock>, tweak: impl FnOnce(&mut switchyard::runtime::Settings)) -> Ctx {
    let server = provider().await;
    let mut p = platform_with(Kind::Embedded, clock, 5, tweak).await;
    p.engine.catalog = catalog(&server.uri());
    let app = spawn_app(p).await;
    let space = unique("sp");
    // Enterprise: the tests connect more connectors than a Starter tenant may (the quota test
    // moves its space to Starter).
    let body = json!({"id": space, "name": space, "plan": "enterprise"});
    let r = app.api(ADMIN_KEY, &space, "POST", "/api/v1/spaces", Some(body)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r =
        app.api(ADMIN_KEY, &space, "POST", "/api/v1/api-keys", Some(json!({"name": "admin", "role": "admin"}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let admin = r.body["key"].as_str().expect("key").to_string();
    Ctx { app, space, admin, server }
}

impl Ctx {
    /// A tenant with the given connectors enabled and connected with bearer `token-{tenant}`.
    async fn tenant(&self, connectors: &[&str]) -> String {
        let tenant = unique("tn");
        let r = self
            .app
            .api(&self.admin, &self.space, "POST", "/api/v1/tenants", Some(json!({"id": tenant, "name": tenant})))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        for c in connectors {
            let r = self
                .app
                .api(
                    &self.admin,
                    &self.space,
                    "PUT",
                    &format!("/api/v1/tenants/{tenant}/connectors/{c}"),
                    Some(json!({"enabled": true})),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            let r = self
                .app
                .api(
                    &self.admin,
                    &self.space,
                    "PUT",
                    &format!("/api/v1/tenants/{tenant}/connectors/{c}/credentials"),
                    Some(json!({"kind": "bearer", "token": format!("token-{tenant}")})),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
        }
        tenant
    }

    /// A tenant-bound key, optionally narrowed to some tools.
    async fn tenant_key(&self, tenant: &str, tools: Option<&[&str]>) -> String {
        let mut body = json!({"name": "agent", "role": "tenant", "tenant": tenant});
        if let Some(tools) = tools {
            body["tools"] = json!(tools);
        }
        let r = self.app.api(&self.admin, &self.space, "POST", "/api/v1/api-keys", Some(body)).await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body["key"].as_str().expect("key").to_string()
    }

    async fn post(&self, key: &str, extra: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut headers = vec![
            ("x-fastn-api-key", key),
            ("x-fastn-space-id", self.space.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        headers.extend_from_slice(extra);
        self.app.send("POST", "/mcp", &headers, Some(body.to_vec())).await
    }

    async fn rpc(&self, key: &str, method: &str, params: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        self.post(key, &[("mcp-protocol-version", "2025-06-18")], body.to_string().as_bytes()).await
    }

    /// Every tool name over all pages.
    async fn tool_names(&self, key: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let params = if cursor.is_null() { json!({}) } else { json!({"cursor": cursor}) };
            let r = self.rpc(key, "tools/list", params).await;
            assert_eq!(r.status, 200, "{r:?}");
            let tools = r.body["result"]["tools"].as_array().expect("tools");
            names.extend(tools.iter().map(|t| t["name"].as_str().expect("name").to_string()));
            cursor = r.body["result"]["nextCursor"].clone();
            if cursor.is_null() {
                return names;
            }
        }
    }

    async fn call_tool(&self, key: &str, name: &str, arguments: Value) -> Reply {
        self.rpc(key, "tools/call", json!({"name": name, "arguments": arguments})).await
    }
}

fn error_code(r: &Reply) -> Option<i64> {
    r.body["error"]["code"].as_i64()
}

#[tokio::test]
async fn protocol_rules_over_raw_http() {
    let ctx = setup(|s| s.mcp_allowed_origins = vec!["https://app.example.com".into()]).await;
    let tenant = ctx.tenant(&["acme_crm"]).await;
    let key = ctx.tenant_key(&tenant, None).await;

    // initialize: each supported version is echoed; anything else gets the latest offered.
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let r = ctx.post(&key, &[], body.to_string().as_bytes()).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["id"], 1);
        assert_eq!(r.body["result"]["protocolVersion"], version);
        assert_eq!(r.body["result"]["capabilities"]["tools"], json!({"listChanged": false}));
        assert_eq!(r.body["result"]["serverInfo"]["name"], "switchyard");
        assert!(r.headers.get("mcp-session-id").is_none(), "stateless: no session id");
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    }
    for asked in ["2024-11-05", "2099-01-01", ""] {
        let body = json!({"jsonrpc": "2.0", "id": "s", "method": "initialize", "params": {"protocolVersion": asked}});
        let r = ctx.post(&key, &[], body.to_string().as_bytes()).await;
        assert_eq!((r.status, r.body["result"]["protocolVersion"].as_str()), (200, Some("2025-11-25")), "{r:?}");
        assert_eq!(r.body["id"], "s");
    }

    // Notifications and client responses: 202 with no body.
    for body in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}),
        json!({"jsonrpc": "2.0", "id": 9, "result": {}}),
    ] {
        let r = ctx.post(&key, &[], body.to_string().as_bytes()).await;
        assert_eq!((r.status, &r.body), (202, &Value::Null), "{body}");
    }

    let r = ctx.rpc(&key, "ping", json!({})).await;
    assert_eq!((r.status, &r.body["result"]), (200, &json!({})), "{r:?}");

    // Methods this server does not know, such as a newer client's discovery probe.
    for m in ["server/discover", "resources/list", "prompts/list", "no/such"] {
        let r = ctx.rpc(&key, m, json!({})).await;
        assert_eq!((r.status, error_code(&r)), (200, Some(-32601)), "{m}: {r:?}");
        assert_eq!(r.body["id"], 7);
    }

    // Malformed JSON, invalid requests.
    for body in [&b"{not json"[..], b"", b"\xff\xfe", br#"{"jsonrpc": "2.0", "id": 1, "method": "ping""#] {
        let r = ctx.post(&key, &[], body).await;
        assert_eq!((r.status, error_code(&r)), (400, Some(-32700)), "{r:?}");
        assert_eq!(r.body["id"], Value::Null);
    }
    for body in [
        json!([]),
        json!("ping"),
        json!({"id": 1, "method": "ping"}),
        json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 1}),
        json!({"jsonrpc": "2.0", "id": true, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": 5}),
    ] {
        let r = ctx.post(&key, &[], body.to_string().as_bytes()).await;
        assert_eq!((r.status, error_code(&r)), (400, Some(-32600)), "{body}: {r:?}");
    }

    // Unknown tools and bad params.
    let r = ctx.call_tool(&key, "nobody_nothing", json!({})).await;
    assert_eq!((r.status, error_code(&r)), (200, Some(-32602)), "{r:?}");
    let r = ctx.call_tool(&key, "acme_crm_get_contact", json!({"id": 5})).await;
    assert_eq!((r.status, error_code(&r)), (200, Some(-32602)), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("/id"), "{r:?}");
    let r = ctx.call_tool(&key, "acme_crm_get_contact", json!({})).await;
    assert_eq!(error_code(&r), Some(-32602), "missing required id: {r:?}");
    let r = ctx.rpc(&key, "tools/call", json!({"arguments": {}})).await;
    assert_eq!(error_code(&r), Some(-32602), "no name: {r:?}");
    let r = ctx.rpc(&key, "tools/call", json!({"name": "acme_crm_get_contact", "arguments": [1]})).await;
    assert_eq!(error_code(&r), Some(-32602), "arguments not an object: {r:?}");
    let r = ctx.rpc(&key, "tools/list", json!({"cursor": "bm90LWEtY3Vyc29y"})).await;
    assert_eq!(error_code(&r), Some(-32602), "bad cursor: {r:?}");
    let r = ctx.post(&key, &[], br#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}"#).await;
    assert_eq!(error_code(&r), Some(-32602), "params not an object: {r:?}");

    // The protocol version header: supported ones pass, anything else is 400.
    for good in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let r = ctx.post(&key, &[("mcp-protocol-version", good)], br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
        assert_eq!(r.status, 200, "{good}: {r:?}");
    }
    for bad in ["2024-13-01", "latest", "2026-07-28"] {
        let r = ctx.post(&key, &[("mcp-protocol-version", bad)], br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
        assert_eq!((r.status, error_code(&r)), (400, Some(-32600)), "{bad}: {r:?}");
        assert!(r.body["error"]["data"]["supported"].as_array().is_some_and(|s| s.len() == 3), "{r:?}");
    }

    // Origin: absent or allowed passes; any other is 403.
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let r = ctx.post(&key, &[("origin", "https://app.example.com")], ping).await;
    assert_eq!(r.status, 200, "{r:?}");
    for origin in ["https://evil.example.com", "http://app.example.com", "null"] {
        let r = ctx.post(&key, &[("origin", origin)], ping).await;
        assert_eq!(r.status, 403, "{origin}: {r:?}");
    }

    // GET and DELETE: no stream, no sessions.
    for m in ["GET", "DELETE"] {
        let r = ctx.app.send(m, "/mcp", &[("x-fastn-api-key", &key), ("accept", "text/event-stream")], None).await;
        assert_eq!(r.status, 405, "{m}: {r:?}");
        assert!(r.headers.get("allow").is_some_and(|a| a.to_str().unwrap().contains("POST")), "{r:?}");
    }

    // Authentication: none, wrong, and a space key without a tenant.
    let r = ctx.app.send("POST", "/mcp", &[("content-type", "application/json")], Some(ping.to_vec())).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = ctx.post("swy_not-a-key", &[], ping).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = ctx.post(&ctx.admin, &[], ping).await;
    assert_eq!(r.status, 400, "a space key must name the tenant: {r:?}");
    let r = ctx.post(&ctx.admin, &[("x-fastn-space-tenantid", &tenant)], ping).await;
    assert_eq!(r.status, 200, "a space key with the tenant header: {r:?}");
    let bearer = format!("Bearer {key}");
    let r = ctx
        .app
        .send("POST", "/mcp", &[("authorization", &bearer), ("content-type", "application/json")], Some(ping.to_vec()))
        .await;
    assert_eq!(r.status, 200, "a bearer key: {r:?}");

    // Oversized bodies are refused before parsing.
    let big = vec![b' '; 1024 * 1024 + 1];
    let r = ctx.post(&key, &[], &big).await;
    assert_eq!(r.status, 413, "{r:?}");

    // Batches (2025-03-26) are answered together; notifications in them get no answer.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "no/such"}
    ]);
    let r = ctx.post(&key, &[], batch.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let answers = r.body.as_array().expect("array");
    assert_eq!(answers.len(), 2, "{r:?}");
    assert_eq!((answers[0]["id"].clone(), answers[1]["error"]["code"].clone()), (json!(1), json!(-32601)));
    // ... but not under later versions, not beyond the limit, and never with `initialize`.
    for version in ["2025-06-18", "2025-11-25"] {
        let r = ctx.post(&key, &[("mcp-protocol-version", version)], batch.to_string().as_bytes()).await;
        assert_eq!((r.status, error_code(&r)), (400, Some(-32600)), "{version}: {r:?}");
    }
    let many: Vec<Value> = (0..21).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"})).collect();
    let r = ctx.post(&key, &[], Value::Array(many).to_string().as_bytes()).await;
    assert_eq!((r.status, error_code(&r)), (400, Some(-32600)), "{r:?}");
    let with_init = json!([{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}},
                           {"jsonrpc": "2.0", "id": 2, "method": "ping"}]);
    let r = ctx.post(&key, &[], with_init.to_string().as_bytes()).await;
    let answers = r.body.as_array().expect("array");
    assert_eq!(
        (answers[0]["error"]["code"].clone(), answers[1]["result"].clone()),
        (json!(-32600), json!({})),
        "{r:?}"
    );

    // From 2025-11-25, arguments that miss the schema are a tool error the model can read.
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "acme_crm_get_contact", "arguments": {"id": 5}}});
    let r = ctx.post(&key, &[("mcp-protocol-version", "2025-11-25")], body.to_string().as_bytes()).await;
    assert_eq!((r.status, &r.body["result"]["isError"]), (200, &json!(true)), "{r:?}");
    assert!(r.body["result"]["content"][0]["text"].as_str().unwrap().contains("/id"), "{r:?}");

    // A suspended tenant's key no longer reaches its tools.
    let r = ctx
        .app
        .api(
            &ctx.admin,
            &ctx.space,
            "PATCH",
            &format!("/api/v1/tenants/{tenant}"),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = ctx.post(&key, &[], ping).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn tools_are_per_tenant_and_calls_use_that_tenants_credentials() {
    let ctx = setup(|_| {}).await;
    let a = ctx.tenant(&["acme_crm"]).await;
    let b = ctx.tenant(&["acme_crm", "acme_billing"]).await;
    let key_a = ctx.tenant_key(&a, None).await;
    let key_b = ctx.tenant_key(&b, None).await;

    // A sees the platform tools and its one connector; B also sees billing.
    let platform_tools = [
        "switchyard_get_execution",
        "switchyard_list_connectors",
        "switchyard_list_flows",
        "switchyard_run_flow",
        "switchyard_usage",
    ];
    let crm = ["acme_crm_create_contact", "acme_crm_delete_contact", "acme_crm_get_contact"];
    let names_a: HashSet<String> = ctx.tool_names(&key_a).await.into_iter().collect();
    let expected_a: HashSet<String> = platform_tools.iter().chain(&crm).map(|s| s.to_string()).collect();
    assert_eq!(names_a, expected_a);
    let names_b: HashSet<String> = ctx.tool_names(&key_b).await.into_iter().collect();
    assert!(names_b.contains("acme_billing_list_invoices") && names_b.is_superset(&expected_a), "{names_b:?}");

    // Annotations and schemas come from the catalog.
    let r = ctx.rpc(&key_a, "tools/list", json!({})).await;
    let tools = r.body["result"]["tools"].as_array().unwrap();
    let tool = |n: &str| tools.iter().find(|t| t["name"] == n).cloned().unwrap();
    let get = tool("acme_crm_get_contact");
    assert_eq!(get["annotations"]["readOnlyHint"], true);
    assert_eq!(get["annotations"]["destructiveHint"], false);
    assert_eq!(get["inputSchema"]["required"], json!(["id"]));
    assert_eq!(get["outputSchema"]["type"], "object");
    assert_eq!(get["description"], "Read one contact by id.");
    let delete = tool("acme_crm_delete_contact");
    assert_eq!(
        (delete["annotations"]["destructiveHint"].clone(), delete["annotations"]["idempotentHint"].clone()),
        (json!(true), json!(true))
    );

    // A cannot call B's billing tool: it is not one of A's tools.
    let r = ctx.call_tool(&key_a, "acme_billing_list_invoices", json!({})).await;
    assert_eq!(error_code(&r), Some(-32602), "{r:?}");
    assert_eq!(
        ctx.server.received_requests().await.unwrap().iter().filter(|r| r.url.path().starts_with("/billing")).count(),
        0
    );
    // Nor act for B with its key, whatever the header says.
    let r =
        ctx.post(&key_a, &[("x-fastn-space-tenantid", &b)], br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    assert_eq!(r.status, 404, "{r:?}");

    // Each tenant's call carries its own token only.
    let r = ctx.call_tool(&key_a, "acme_crm_get_contact", json!({"id": "from-a"})).await;
    assert_eq!((r.status, r.body["result"]["isError"].as_bool()), (200, Some(false)), "{r:?}");
    let structured = &r.body["result"]["structuredContent"];
    assert_eq!(structured["id"], "from-a");
    assert_eq!(structured["seen_token"], format!("Bearer token-{a}"));
    let text: Value = serde_json::from_str(r.body["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&text, structured, "the text block carries the same result");
    let r = ctx.call_tool(&key_b, "acme_crm_get_contact", json!({"id": "from-b"})).await;
    assert_eq!(r.body["result"]["structuredContent"]["seen_token"], format!("Bearer token-{b}"), "{r:?}");
    let r = ctx.call_tool(&key_b, "acme_billing_list_invoices", json!({})).await;
    assert_eq!(r.body["result"]["isError"], false, "{r:?}");
    assert!(r.body["result"].get("structuredContent").is_none(), "no output schema, no structuredContent: {r:?}");
    for request in ctx.server.received_requests().await.unwrap() {
        let token = request.headers.get("authorization").unwrap().to_str().unwrap().to_string();
        let caller = if request.url.path().ends_with("from-a") { &a } else { &b };
        assert_eq!(token, format!("Bearer token-{caller}"), "{}", request.url);
    }

    // A failing provider call is a tool result with isError, not a protocol error.
    let r = ctx.call_tool(&key_a, "acme_crm_get_contact", json!({"id": "boom"})).await;
    assert_eq!((r.status, r.body["result"]["isError"].as_bool()), (200, Some(true)), "{r:?}");
    let message = r.body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(message.contains("404"), "{message}");
    assert!(!message.contains(&format!("token-{a}")), "no credential in the error: {message}");
    assert!(message.contains("[redacted]"), "the provider's echo of it is redacted: {message}");

    // A disconnected connector's tools disappear.
    let r = ctx
        .app
        .api(
            &ctx.admin,
            &ctx.space,
            "DELETE",
            &format!("/api/v1/tenants/{b}/connectors/acme_billing/credentials"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!ctx.tool_names(&key_b).await.contains(&"acme_billing_list_invoices".to_string()));

    // Every call is an execution of the calling tenant, visible over the API.
    let r = ctx.app.api(&ctx.admin, &ctx.space, "GET", &format!("/api/v1/tenants/{a}/executions?limit=50"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "A's two tool calls (the unknown tool never ran): {r:?}");
    let statuses: HashSet<&str> = items.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, HashSet::from(["succeeded", "failed"]));
    assert!(items.iter().all(|e| e["trigger"]["kind"] == "mcp"), "{r:?}");
    let id = items.iter().find(|e| e["status"] == "succeeded").unwrap()["id"].as_str().unwrap().to_string();
    let r = ctx.app.api(&ctx.admin, &ctx.space, "GET", &format!("/api/v1/tenants/{a}/executions/{id}"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["step_details"][0]["input"], json!({"id": "from-a"}), "{r:?}");
    assert_eq!(r.body["step_details"][0]["output"]["id"], "from-a", "{r:?}");
    let r = ctx.app.api(&ctx.admin, &ctx.space, "GET", &format!("/api/v1/tenants/{b}/executions/{id}"), None).await;
    assert_eq!(r.status, 404, "not visible as B's: {r:?}");
    // A recorded call ran no flow: re-running it is refused, whatever flows the tenant has.
    let rerun = format!("/api/v1/tenants/{a}/executions/{id}/rerun");
    let r = ctx.app.api(&ctx.admin, &ctx.space, "POST", &rerun, Some(json!({"from": "start"}))).await;
    assert_eq!(r.status, 409, "{r:?}");

    // The platform tools answer for the caller's tenant.
    let r = ctx.call_tool(&key_a, "switchyard_get_execution", json!({"execution_id": id})).await;
    assert_eq!(r.body["result"]["structuredContent"]["status"], "succeeded", "{r:?}");
    let r = ctx.call_tool(&key_b, "switchyard_get_execution", json!({"execution_id": id})).await;
    assert_eq!(r.body["result"]["isError"], true, "B cannot read A's execution: {r:?}");
    let r = ctx.call_tool(&key_a, "switchyard_list_connectors", json!({})).await;
    let connectors = r.body["result"]["structuredContent"]["connectors"].as_array().unwrap();
    assert_eq!(connectors.len(), 1, "{r:?}");
    assert_eq!((connectors[0]["id"].clone(), connectors[0]["connected"].clone()), (json!("acme_crm"), json!(true)));
    let r = ctx.call_tool(&key_a, "switchyard_usage", json!({})).await;
    let usage = &r.body["result"]["structuredContent"];
    assert_eq!(usage["tenant"], json!(a), "{r:?}");
    assert_eq!(usage["dimensions"].as_array().map(Vec::len), Some(8), "{r:?}");
}

#[tokio::test]
async fn a_keys_tool_allow_list_narrows_what_it_sees_and_calls() {
    let ctx = setup(|_| {}).await;
    let tenant = ctx.tenant(&["acme_crm"]).await;
    let key = ctx.tenant_key(&tenant, Some(&["acme_crm_get_contact", "switchyard_list_flows"])).await;
    let mut names = ctx.tool_names(&key).await;
    names.sort();
    assert_eq!(names, ["acme_crm_get_contact", "switchyard_list_flows"]);
    let r = ctx.call_tool(&key, "acme_crm_delete_contact", json!({"id": "x"})).await;
    assert_eq!(error_code(&r), Some(-32602), "{r:?}");
    assert!(ctx.server.received_requests().await.unwrap().is_empty(), "nothing reached the provider");
    let r = ctx.call_tool(&key, "acme_crm_get_contact", json!({"id": "ok"})).await;
    assert_eq!(r.body["result"]["isError"], false, "{r:?}");
}

#[tokio::test]
async fn a_flow_runs_through_the_platform_tools() {
    let ctx = setup(|_| {}).await;
    let tenant = ctx.tenant(&[]).await;
    let key = ctx.tenant_key(&tenant, None).await;
    let flow = json!({"name": "echo", "trigger": {"type": "manual"},
        "steps": [{"id": "double", "kind": "transform", "expr": ".trigger.input.n * 2"}]});
    let r =
        ctx.app.api(&ctx.admin, &ctx.space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let flow_id = r.body["id"].as_str().unwrap().to_string();
    let r = ctx.call_tool(&key, "switchyard_list_flows", json!({})).await;
    assert_eq!(r.body["result"]["structuredContent"]["flows"][0]["id"], flow_id.as_str(), "{r:?}");
    let r = ctx.call_tool(&key, "switchyard_run_flow", json!({"flow_id": flow_id, "input": {"n": 21}})).await;
    assert_eq!(r.body["result"]["isError"], false, "{r:?}");
    let execution = r.body["result"]["structuredContent"]["execution_id"].as_str().unwrap().to_string();
    let done = ctx.app.wait_execution(&ctx.admin, &ctx.space, &tenant, &execution, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["step_details"][0]["output"], 42, "{done}");
    // A state-changing platform tool is audited like the API's run, reads are not.
    let r = ctx.app.api(&ctx.admin, &ctx.space, "GET", "/api/v1/audit?action=flow.run", None).await;
    let records = r.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 1, "{r:?}");
    assert_eq!(records[0]["resource"], format!("tenants/{tenant}/workflows/{flow_id}"), "{r:?}");
    assert_eq!(records[0]["actor_kind"], "key", "{r:?}");
    let r = ctx.call_tool(&key, "switchyard_run_flow", json!({"flow_id": "no-such-flow"})).await;
    assert_eq!(r.body["result"]["isError"], true, "{r:?}");
}

/// The Python interpreter of the suite's venv (`scripts/test` sets it).
fn python() -> String {
    std::env::var("SWITCHYARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SWITCHYARD_TEST_PYTHON is not set: run the suite with ./scripts/test, which installs the MCP SDK")
    })
}

#[tokio::test]
async fn official_python_sdk_lists_every_page_and_calls_tools() {
    let ctx = setup(|_| {}).await;
    let tenant = ctx.tenant(&["acme_crm", "stripe"]).await;
    // Enough real connectors for more than one page of tools (OAuth ones connected directly).
    let (space, tenant_id) = (SpaceId::parse(ctx.space.clone()).unwrap(), TenantId::parse(tenant.clone()).unwrap());
    let p = &ctx.app.platform;
    let oauth = ["github", "gmail", "hubspot", "notion", "slack"];
    for c in oauth {
        let id = ConnectorId::parse(c).unwrap();
        connections::update_settings(p.db(), &space, &tenant_id, &id, |s| s.enabled = true).await.unwrap();
        let token = Credentials::Oauth2 {
            access_token: format!("oauth-{c}"),
            refresh_token: None,
            expires_at: None,
            scope: None,
        };
        credentials::store(p.db(), &space, &tenant_id, &id, &token).await.unwrap();
    }
    let actions: usize =
        ["acme_crm", "stripe"].iter().chain(&oauth).map(|c| p.engine.catalog.find(c).unwrap().actions.len()).sum();
    let expected = actions + 5;
    assert!(expected > 50, "more than one page of tools");
    let key = ctx.tenant_key(&tenant, None).await;

    let calls = json!([
        ["acme_crm_get_contact", {"id": "sdk"}],
        ["switchyard_list_connectors", {}],
        ["acme_crm_get_contact", {"id": "boom"}],
    ]);
    let out = tokio::process::Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/mcp/sdk_client.py"))
        .env("SWITCHYARD_MCP_URL", format!("{}/mcp", ctx.app.base))
        .env("SWITCHYARD_MCP_KEY", &key)
        .env("SWITCHYARD_MCP_SPACE", &ctx.space)
        .env("SWITCHYARD_MCP_TENANT", &tenant)
        .env("SWITCHYARD_MCP_CALLS", calls.to_string())
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("SDK run within 2 minutes")
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK client failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    assert_eq!(seen["server_name"], "switchyard");
    assert_eq!(seen["ping"], json!({}));
    let tools = seen["tools"].as_array().unwrap();
    assert!(seen["pages"].as_u64().unwrap() >= 2, "{seen}");
    let names: HashSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!((names.len(), tools.len()), (expected, expected), "every tool once, across pages");
    assert!(names.contains("slack_post_message") && names.contains("switchyard_run_flow"), "{names:?}");
    let get = tools.iter().find(|t| t["name"] == "acme_crm_get_contact").unwrap();
    assert_eq!((get["has_output_schema"].clone(), get["read_only"].clone()), (json!(true), json!(true)));

    // The generated tool: the SDK validated structuredContent against the outputSchema.
    let calls = seen["calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], false, "{seen}");
    assert_eq!(calls[0]["structured"]["id"], "sdk");
    assert_eq!(calls[0]["structured"]["seen_token"], format!("Bearer token-{tenant}"));
    // The platform tool.
    assert_eq!(calls[1]["is_error"], false, "{seen}");
    let connectors = calls[1]["structured"]["connectors"].as_array().unwrap();
    assert_eq!(connectors.len(), 7, "{seen}");
    assert!(connectors.iter().all(|c| c["connected"] == true), "{seen}");
    // A provider failure arrives as an error result.
    assert_eq!(calls[2]["is_error"], true, "{seen}");
    let received = ctx.server.received_requests().await.unwrap();
    assert!(received.iter().any(|r| r.url.path() == "/crm/contacts/sdk"), "the mock provider was called");
}

#[tokio::test]
async fn plan_quotas_limit_tool_calls_per_minute_and_sessions_per_day() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let ctx = setup_at(Arc::new(clock.clone()), |_| {}).await;
    let path = format!("/api/v1/spaces/{}", ctx.space);
    let r = ctx.app.api(ADMIN_KEY, &ctx.space, "PATCH", &path, Some(json!({"plan": "starter"}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let tenant = ctx.tenant(&["acme_crm"]).await;
    let key = ctx.tenant_key(&tenant, None).await;
    let starter = Plan::Starter.quotas();

    // Tool calls: the Starter plan's 60 per minute (REST calls naming the tenant, as setting it
    // up did, count too), then an error result saying when to retry, without calling the
    // provider; the next minute they run again.
    let usage = ctx.app.api(ADMIN_KEY, &ctx.space, "GET", &format!("/api/v1/tenants/{tenant}/usage"), None).await;
    let dimensions = usage.body["dimensions"].as_array().cloned().unwrap_or_default();
    let calls = dimensions.iter().find(|d| d["dimension"] == "api_calls_per_minute").cloned().unwrap_or_default();
    let already = calls["used"].as_u64().unwrap_or(0);
    assert!(already > 0, "the set-up's REST calls were counted: {usage:?}");
    for i in already..starter.api_calls_per_minute.unwrap() {
        let r = ctx.call_tool(&key, "switchyard_list_flows", json!({})).await;
        assert_eq!(r.body["result"]["isError"], false, "call {i}: {r:?}");
    }
    let before = ctx.server.received_requests().await.unwrap().len();
    let r = ctx.call_tool(&key, "acme_crm_get_contact", json!({"id": "over"})).await;
    assert_eq!((r.status, &r.body["result"]["isError"]), (200, &json!(true)), "{r:?}");
    let text = r.body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("per-minute api_calls_per_minute quota of 60") && text.contains("retry in"), "{text}");
    assert_eq!(ctx.server.received_requests().await.unwrap().len(), before, "the over-quota call never ran");
    clock.advance(Duration::from_secs(60));
    let r = ctx.call_tool(&key, "acme_crm_get_contact", json!({"id": "next-minute"})).await;
    assert_eq!(r.body["result"]["isError"], false, "{r:?}");
    let r = ctx.call_tool(&key, "switchyard_usage", json!({})).await;
    let dimensions = r.body["result"]["structuredContent"]["dimensions"].as_array().cloned().unwrap_or_default();
    let calls = dimensions.iter().find(|d| d["dimension"] == "api_calls_per_minute").cloned().unwrap_or_default();
    assert_eq!((calls["used"].clone(), calls["limit"].clone()), (json!(2), json!(60)), "{r:?}");

    // Sessions: each initialize is one of the day's 10; the 11th is 429 with Retry-After.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}});
    // A refused handshake opens no session.
    let bad = json!({"jsonrpc": "1.0", "id": 1, "method": "initialize"});
    for _ in 0..3 {
        assert_eq!(ctx.post(&key, &[], bad.to_string().as_bytes()).await.status, 400);
    }
    for i in 0..starter.agent_sessions_per_day.unwrap() {
        let r = ctx.post(&key, &[], init.to_string().as_bytes()).await;
        assert_eq!(r.status, 200, "session {i}: {r:?}");
    }
    let r = ctx.post(&key, &[], init.to_string().as_bytes()).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (429, Some("rate_limited")), "{r:?}");
    assert!(r.headers.get("retry-after").is_some(), "{r:?}");
    // Other requests of existing sessions go on.
    let r = ctx.rpc(&key, "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    clock.advance(Duration::from_secs(86_400));
    let r = ctx.post(&key, &[], init.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "a new day: {r:?}");
}
