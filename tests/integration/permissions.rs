//! The whole role × operation matrix, through the real HTTP API: every authenticated operation
//! of the OpenAPI document, called by every role, allowed or refused (403) as
//! `docs/permissions.md` says. The document is generated from what the API answered and
//! compared with the committed one, so a change of who may do what shows up as a diff to
//! review (`UPDATE_PERMISSIONS_DOC=1` rewrites it). Two observations check each other: the
//! permission a refusal names must be one the role lacks in `GET /roles`, and every role that
//! holds it must be allowed. Each call also checks the audit log: a write leaves exactly one
//! record with its request id and outcome, an allowed read none, a refusal one `denied`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::oidc::{MockIssuer, SigningKey};
use switchyard_tests::{ADMIN_KEY, Kind, Reply, TestApp, platform_with, spawn_app, system_clock, unique};

/// The built-in roles, then a custom role with no permission at all, held by a member who
/// logs in with an OIDC token: every operation refuses it and names what it needs.
const ROLES: [&str; 8] = ["platform_admin", "owner", "admin", "developer", "operator", "viewer", "tenant", "nothing"];
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/permissions.md");

struct Operation {
    id: String,
    method: String,
    template: String,
}

fn operations() -> Vec<Operation> {
    let doc = switchyard_api::openapi_document();
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(id) = op.get("operationId").and_then(Value::as_str) else { continue };
            // Public operations (no 401 documented) need no permission.
            if op["responses"].get("401").is_none() {
                continue;
            }
            ops.push(Operation { id: id.into(), method: method.to_uppercase(), template: template.clone() });
        }
    }
    ops
}

struct World {
    app: TestApp,
    space: String,
    tenant: String,
    execution: String,
    keys: BTreeMap<&'static str, String>,
    /// The bearer token of the member whose role is `nothing`.
    token: String,
    _issuer: MockIssuer,
}

async fn world() -> World {
    let issuer = MockIssuer::start().await;
    let signing = SigningKey::ec("ec-1");
    issuer.publish(&[&signing]);
    let url = issuer.url.clone();
    let p = platform_with(Kind::Embedded, system_clock(), 5, move |s| {
        s.oidc.issuers = vec![url];
        s.oidc.clients = vec!["console".into()];
    })
    .await;
    let app = spawn_app(p).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let admin = app.seed_tenant(&space, &tenant).await;
    let flow = json!({"id": "f", "name": "f", "trigger": {"type": "manual"},
                      "steps": [{"id": "s", "kind": "transform", "expr": "1"}]});
    let r = app.api(&admin, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow.clone())).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(app.api(&admin, &space, "POST", "/api/v1/workflows", Some(flow)).await.status, 201);
    let r =
        app.api(&admin, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows/f/run"), Some(json!({}))).await;
    let execution = r.body["execution_id"].as_str().expect("execution").to_string();
    app.wait_execution(&admin, &space, &tenant, &execution, Duration::from_secs(30)).await;
    let mut keys = BTreeMap::new();
    keys.insert("platform_admin", ADMIN_KEY.to_string());
    for role in &ROLES[1..7] {
        let mut body = json!({"name": role, "role": role});
        if *role == "tenant" {
            body["tenant"] = json!(tenant);
        }
        let r = app.api(ADMIN_KEY, &space, "POST", "/api/v1/api-keys", Some(body)).await;
        assert_eq!(r.status, 201, "{r:?}");
        keys.insert(*role, r.body["key"].as_str().expect("key").to_string());
    }
    let r = app.api(ADMIN_KEY, &space, "PUT", "/api/v1/roles/nothing", Some(json!({"permissions": []}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r =
        app.api(ADMIN_KEY, &space, "PUT", "/api/v1/members/nemo@example.com", Some(json!({"role": "nothing"}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let now = chrono::Utc::now().timestamp();
    let token = signing.sign(&json!({"iss": issuer.url, "sub": "nemo", "azp": "console", "exp": now + 3600,
                                     "email": "nemo@example.com", "email_verified": true}));
    World { app, space, tenant, execution, keys, token, _issuer: issuer }
}

impl World {
    /// A concrete path for an operation: existing resources where they matter, ones that do
    /// not exist where an allowed call would destroy what later calls use.
    fn path(&self, op: &Operation) -> String {
        let tenant = if op.id == "deleteTenant" { "gone" } else { self.tenant.as_str() };
        op.template
            .replace("{space}", &self.space)
            .replace("{tenant}", tenant)
            .replace("{connector}", "slack")
            .replace("{flow}", if op.method == "DELETE" { "gone" } else { "f" })
            .replace("{execution}", &self.execution)
            .replace("{key}", "key_01JZZZZZZZZZZZZZZZZZZZZZZZ")
            .replace("{member}", "nobody@example.com")
            .replace("{role}", "viewer")
            .replace("{action}", "post_message")
    }

    async fn call(&self, role: &str, op: &Operation) -> Reply {
        let body = (op.method != "GET" && op.method != "DELETE").then(|| b"{}".to_vec());
        let credential = match self.keys.get(role) {
            Some(key) => ("x-fastn-api-key", key.clone()),
            None => ("authorization", format!("Bearer {}", self.token)),
        };
        let headers = [
            (credential.0, credential.1.as_str()),
            ("x-fastn-space-id", &self.space),
            ("content-type", "application/json"),
        ];
        self.app.send(&op.method, &self.path(op), &headers, body).await
    }

    async fn audit_records_of(&self, request_id: &str) -> Vec<Value> {
        let r = self.app.api(ADMIN_KEY, &self.space, "GET", "/api/v1/audit?limit=20", None).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["items"].as_array().expect("items").iter().filter(|r| r["request_id"] == request_id).cloned().collect()
    }
}

/// The permission a 403 names (`… does not have the permission workflows.create`).
fn named_permission(r: &Reply) -> Option<String> {
    let message = r.body["error"]["message"].as_str()?;
    message.split("the permission ").nth(1).map(|p| p.trim().to_string())
}

#[tokio::test]
async fn every_role_and_operation_is_allowed_or_refused_as_documented_and_audited() {
    let w = world().await;
    // What each role holds, as the API states it.
    let r = w.app.api(ADMIN_KEY, &w.space, "GET", "/api/v1/roles", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut holds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for role in r.body["items"].as_array().expect("roles") {
        let permissions = role["permissions"].as_array().expect("permissions");
        holds.insert(
            role["name"].as_str().unwrap().into(),
            permissions.iter().map(|p| p.as_str().unwrap().into()).collect(),
        );
    }
    let all: Vec<String> = {
        let doc = switchyard_api::openapi_document();
        doc["components"]["schemas"]["Permission"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().into())
            .collect()
    };
    holds.insert("platform_admin".into(), all.clone());
    holds.insert("nothing".into(), Vec::new());

    let ops = operations();
    assert!(ops.len() >= 55, "every operation of the document: {}", ops.len());
    let mut rows = Vec::new();
    let mut checked: BTreeMap<String, bool> = all.iter().map(|p| (p.clone(), false)).collect();
    for op in &ops {
        let mut cells = Vec::new();
        let mut permission: Option<String> = None;
        for role in ROLES {
            let r = w.call(role, op).await;
            let cell = format!("{} {} as {role}", op.method, w.path(op));
            assert!(r.status != 401 && r.status < 500, "{cell}: {r:?}");
            assert!(r.body.is_null() || r.status < 400 || r.body["error"]["message"].is_string(), "{cell}: {r:?}");
            let allowed = r.status != 403;
            if !allowed {
                let named =
                    named_permission(&r).unwrap_or_else(|| panic!("{cell}: a refusal names the permission: {r:?}"));
                assert!(!holds[role].contains(&named), "{cell}: refused for {named}, which the role holds");
                if let Some(p) = &permission {
                    assert_eq!(p, &named, "{cell}: one permission per operation");
                }
                permission = Some(named);
            }
            // The audit log: one record per write and per refusal, none per allowed read.
            let request_id =
                r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id").to_string();
            let records = w.audit_records_of(&request_id).await;
            let expected = usize::from(op.method != "GET" || !allowed);
            assert_eq!(records.len(), expected, "{cell}: audit records {records:?}");
            if let Some(record) = records.first() {
                let outcome = if !allowed {
                    "denied"
                } else if r.status < 300 {
                    "succeeded"
                } else {
                    "failed"
                };
                assert_eq!(record["outcome"], outcome, "{cell}: {record}");
                assert_eq!(record["status"], r.status, "{cell}: {record}");
                let kind = match role {
                    "platform_admin" => "platform_admin",
                    "nothing" => "member",
                    _ => "key",
                };
                assert_eq!(record["actor_kind"], kind, "{cell}");
            }
            cells.push(allowed);
        }
        // Every role holding the permission a refusal named was allowed.
        if let Some(p) = &permission {
            for (role, allowed) in ROLES.iter().zip(&cells) {
                assert_eq!(*allowed, holds[*role].contains(p), "{} as {role}: {p}", op.id);
            }
            checked.insert(p.clone(), true);
        } else {
            assert!(cells.iter().all(|a| *a), "{}: allowed for all", op.id);
        }
        rows.push((op, permission, cells));
    }
    // Every permission is checked by some operation of the API, or by MCP's.
    let by_mcp = ["tools.read", "tools.execute", "quotas.read"];
    for (permission, seen) in &checked {
        assert!(*seen || by_mcp.contains(&permission.as_str()), "{permission} is checked by no API operation");
    }

    let doc = render(&holds, &all, &rows);
    if std::env::var_os("UPDATE_PERMISSIONS_DOC").is_some() {
        std::fs::write(DOC, &doc).expect("write docs/permissions.md");
    }
    let committed = std::fs::read_to_string(DOC).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/permissions.md differs from what the API does; review and regenerate it with \
         UPDATE_PERMISSIONS_DOC=1 cargo test -p switchyard-tests --test integration permissions\n{doc}"
    );
}

fn render(
    holds: &BTreeMap<String, Vec<String>>,
    all: &[String],
    rows: &[(&Operation, Option<String>, Vec<bool>)],
) -> String {
    let mark = |yes: bool| if yes { "✓" } else { "·" };
    let mut out = String::from(
        "# Permissions\n\n\
         Generated by `tests/integration/permissions.rs` from what the API answers: every operation of \
         `openapi.yaml` called with a key of every role (✓ allowed, · refused with 403). Do not edit; \
         after a change, regenerate with `UPDATE_PERMISSIONS_DOC=1 cargo test -p switchyard-tests --test \
         integration permissions` and review the diff. The `nothing` column is a custom role with no \
         permission at all, held by a member signed in with OIDC: it shows the permission each \
         operation checks.\n\n\
         Members (people signed in with OIDC) hold the same roles, or a custom role of the space \
         (`PUT /api/v1/roles/{role}`: any set of these permissions but `spaces.create` and \
         `spaces.update`). `tenant` is the end user's role: its keys act for one tenant only. \
         `tools.read` opens an MCP session and lists tools, `tools.execute` calls them; \
         `quotas.read` is checked by MCP's usage tool.\n\n## Roles\n\n",
    );
    out.push_str(&format!("| permission | {} |\n|---|{}\n", ROLES.join(" | "), "---|".repeat(ROLES.len())));
    for permission in all {
        let cells: Vec<&str> = ROLES.iter().map(|r| mark(holds[*r].contains(permission))).collect();
        out.push_str(&format!("| `{permission}` | {} |\n", cells.join(" | ")));
    }
    out.push_str("\n## Operations\n\n");
    out.push_str(&format!(
        "| operation | permission | {} |\n|---|---|{}\n",
        ROLES.join(" | "),
        "---|".repeat(ROLES.len())
    ));
    for (op, permission, cells) in rows {
        let cells: Vec<&str> = cells.iter().map(|a| mark(*a)).collect();
        let permission = permission.as_deref().map_or("(any caller)".to_string(), |p| format!("`{p}`"));
        out.push_str(&format!(
            "| `{}` `{} {}` | {permission} | {} |\n",
            op.id,
            op.method,
            op.template,
            cells.join(" | ")
        ));
    }
    out
}
