//! The demo a fresh dev server sets up: a space, a tenant, an API key, GitHub enabled with a
//! webhook secret, and a flow that summarizes pushes and posts the summary to an echo endpoint.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchyard::domain::access::Role;
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::flow::FlowOwner;
use switchyard::domain::ids::{ConnectorId, FlowId, SpaceId, TenantId};
use switchyard::domain::tenancy::Plan;
use switchyard::domain::webhook::signature::sign;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, json as json_response};
use switchyard::store::{connections, flows, tenants};

pub const SPACE: &str = "demo";
pub const TENANT: &str = "acme";
pub const FLOW: &str = "demo-push-summary";
/// The demo's webhook secret: a development value, like the demo itself.
pub const WEBHOOK_SECRET: &str = "demo-webhook-secret-change-me";
/// A local endpoint that answers with what it received, standing in for a third party.
pub const ECHO_PATH: &str = "/_local/echo";

/// The fixtures the sample events in `events/` assume: space `sample`, tenant `sample-tenant`
/// with the GitHub webhook secret `sample-webhook-secret`, and its flow `sample-flow`.
pub async fn ensure_samples(p: &Platform) -> Result<(), AppError> {
    let space = id(SpaceId::parse("sample"))?;
    if tenants::get_space(p.db(), &space).await?.is_some() {
        return Ok(());
    }
    let tenant = id(TenantId::parse("sample-tenant"))?;
    tenants::create_space(p.db(), space.clone(), "Sample".into(), Plan::Growth).await?;
    tenants::create_tenant(p.db(), &space, tenant.clone(), "Sample tenant".into(), None).await?;
    let rotation = p.settings.webhook.rotation_window_secs;
    let github = id(ConnectorId::parse("github"))?;
    connections::set_webhook_secret(p.db(), &space, &tenant, &github, "sample-webhook-secret", rotation).await?;
    let definition = json!({
        "name": "Sample", "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
        "steps": [{"id": "count", "kind": "transform", "expr": ".trigger.payload.commits | length"}]
    });
    let definition =
        FlowDefinition::parse(&definition, p.engine.catalog).map_err(|e| AppError::bad_request(e.to_string()))?;
    flows::create_flow(
        p.db(),
        FlowOwner::Tenant { space, tenant },
        Some(id(FlowId::parse("sample-flow"))?),
        &definition,
    )
    .await?;
    Ok(())
}

/// What the banner needs.
#[derive(Debug, Clone)]
pub struct Demo {
    pub api_key: String,
    pub payload_file: PathBuf,
    pub signature: String,
    pub delivery_id: String,
}

fn id<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, AppError> {
    r.map_err(|e| AppError::bad_request(e.to_string()))
}

/// The demo flow, calling the echo endpoint of the server at `base_url`.
pub fn flow_definition(base_url: &str) -> Value {
    json!({
        "name": "Summarize GitHub pushes",
        "description": "Turns a GitHub push into a short summary and posts it to the local echo endpoint.",
        "trigger": {"type": "webhook", "connector": "github", "events": ["push"]},
        "steps": [
            {"id": "summary", "kind": "transform", "expr":
                "{repository: .trigger.payload.repository.full_name, pusher: .trigger.payload.pusher.name, branch: (.trigger.payload.ref | sub(\"refs/heads/\"; \"\")), commits: [.trigger.payload.commits[] | {id: .id[0:7], message}]}"},
            {"id": "notify", "kind": "http", "depends_on": ["summary"], "method": "POST",
             "url": format!("{base_url}{ECHO_PATH}"), "body": "${{ .steps.summary.output }}"},
            {"id": "result", "kind": "transform", "depends_on": ["notify"],
             "expr": "{delivered: (.steps.notify.output.status == 200), commits: (.steps.summary.output.commits | length)}"}
        ]
    })
}

/// A GitHub push delivery, as GitHub would send it (trimmed).
pub fn push_payload() -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "76ae82c7b1a177c8d03f9e96e0adf2466113728f",
        "repository": {"id": 1296269, "name": "hello-world", "full_name": "acme/hello-world", "private": false},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "commits": [
            {"id": "76ae82c7b1a177c8d03f9e96e0adf2466113728f", "message": "Fix the flux capacitor", "author": {"name": "Octo Cat"}},
            {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Update README", "author": {"name": "Octo Cat"}}
        ]
    })
}

/// Create the demo on first start; on later starts reuse it. The API key is kept in
/// `state_dir/demo-api-key` (it is shown once by the API and cannot be read back).
pub async fn ensure(p: &Platform, base_url: &str, state_dir: &Path) -> Result<Demo, AppError> {
    let space = id(SpaceId::parse(SPACE))?;
    let tenant = id(TenantId::parse(TENANT))?;
    let github = id(ConnectorId::parse("github"))?;
    let key_file = state_dir.join("demo-api-key");
    if tenants::get_space(p.db(), &space).await?.is_none() {
        tenants::create_space(p.db(), space.clone(), "Demo".into(), Plan::Growth).await?;
        tenants::create_tenant(p.db(), &space, tenant.clone(), "Acme Corp".into(), None).await?;
        let rotation = p.settings.webhook.rotation_window_secs;
        connections::set_webhook_secret(p.db(), &space, &tenant, &github, WEBHOOK_SECRET, rotation).await?;
        let definition = FlowDefinition::parse(&flow_definition(base_url), p.engine.catalog)
            .map_err(|e| AppError::bad_request(e.to_string()))?;
        flows::create_flow(
            p.db(),
            FlowOwner::Space { space: space.clone() },
            Some(id(FlowId::parse(FLOW))?),
            &definition,
        )
        .await?;
        // A playground: tools that fire thousands of requests a minute (the OpenAPI fuzzing in
        // the test suite) must not run into the plan's API-call quota. A space override, the
        // same any operator can set with `PUT /api/v1/quotas`.
        let unlimited = serde_json::from_value(json!({"api_calls_per_minute": {"limit": "unlimited"}}))
            .map_err(|e| AppError::bad_request(e.to_string()))?;
        tenants::set_space_quotas(p.db(), &space, unlimited).await?;
    }
    let api_key = match std::fs::read_to_string(&key_file).ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty())
    {
        Some(key) if tenants::find_api_key(p.db(), &key).await?.is_some() => key,
        _ => {
            let (_, key) =
                tenants::create_api_key(p.db(), &space, "demo".into(), Role::Admin, None, None, None).await?;
            write_private(&key_file, &key)?;
            key
        }
    };
    ensure_samples(p).await?;
    let body = serde_json::to_vec_pretty(&push_payload()).unwrap_or_default();
    let payload_file = state_dir.join("demo-github-push.json");
    std::fs::write(&payload_file, &body)
        .map_err(|e| AppError::Unavailable { detail: format!("write {}: {e}", payload_file.display()) })?;
    Ok(Demo {
        api_key,
        signature: sign::github(WEBHOOK_SECRET, &body),
        payload_file,
        delivery_id: format!("demo-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")),
    })
}

fn write_private(path: &Path, content: &str) -> Result<(), AppError> {
    let fail = |e: std::io::Error| AppError::Unavailable { detail: format!("write {}: {e}", path.display()) };
    std::fs::write(path, content).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    Ok(())
}

/// The copy-paste commands printed at start-up.
pub fn instructions(demo: &Demo, base_url: &str) -> String {
    format!(
        r#"
Demo ready: space `{SPACE}`, tenant `{TENANT}`, flow `{FLOW}` (GitHub push -> summary -> HTTP call).

1. Send a signed GitHub push webhook:

curl -i -X POST {base_url}/webhooks/{TENANT}/github \
  -H 'content-type: application/json' \
  -H 'X-GitHub-Event: push' \
  -H 'X-GitHub-Delivery: {delivery}' \
  -H 'X-Hub-Signature-256: {signature}' \
  --data-binary @{payload}

2. Read the resulting execution (status and steps):

curl -s {base_url}/api/v1/tenants/{TENANT}/executions?limit=1 \
  -H 'x-fastn-api-key: {key}' -H 'x-fastn-space-id: {SPACE}'

Sending the same delivery again answers 200 "duplicate" and runs nothing.

3. Watch it in the console: open {base_url}/console/ and sign in with the key above.
"#,
        delivery = demo.delivery_id,
        signature = demo.signature,
        payload = demo.payload_file.display(),
        key = demo.api_key,
    )
}

/// `POST /_local/echo`: answers with what it received.
pub fn echo(req: &Request) -> Response {
    let body: Value = serde_json::from_slice(req.body())
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(req.body()).into_owned()));
    json_response(200, &json!({"method": req.method().as_str(), "received": body}))
}
