//! Connector credentials end to end against a local mock provider (token endpoint and API):
//! OAuth authorization code with PKCE, refresh ahead of expiry, refresh-token rotation, retry
//! after a 401, permanent refusal; client credentials, API keys in a header or the query, basic
//! and bearer. Then 50 parallel executions needing one refresh, and a scan of every log line
//! and response for the secret values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;
use switchyard::domain::connector::Catalog;
use switchyard::domain::ids::{ConnectorId, SpaceId, TenantId};
use switchyard::ports::{OutgoingMessage, QueueId, Secrets};
use switchyard::runtime::Platform;
use switchyard::store::connections;
use switchyard::store::credentials::{self, Credentials};
use switchyard_tests::{Kind, TestApp, platform, spawn_app, system_clock, unique};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLIENT_SECRET: &str = "oauth-client-secret-Zq81x";
const CC_SECRET: &str = "cc-secret-Ht62p";
const API_KEY: &str = "api-key-secret-Mv55w";
const PASSWORD: &str = "basic-password-secret-Lk20d";
const BEARER: &str = "bearer-token-secret-Ab77y";

fn access(n: usize) -> String {
    format!("access-token-secret-{n}-Qw3")
}
fn refresh_token(n: usize) -> String {
    format!("refresh-token-secret-{n}-Er4")
}

/// The provider's token endpoint: every grant it serves, and how many refreshes it saw.
#[derive(Clone, Default)]
struct TokenEndpoint {
    refreshes: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<(HashMap<String, String>, Option<String>)>>>,
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        let basic = request.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        self.requests.lock().unwrap().push((form.clone(), basic));
        let bad =
            || ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant", "error_description": "nope"}));
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") if form.get("code").map(String::as_str) == Some("good-code") => {
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": access(1), "refresh_token": refresh_token(1), "expires_in": 3600, "token_type": "bearer"
                }))
            }
            Some("refresh_token") => {
                let given = form.get("refresh_token").cloned().unwrap_or_default();
                let Some(n) = given.strip_prefix("refresh-token-secret-").and_then(|r| r.split('-').next()).and_then(|n| n.parse::<usize>().ok()) else {
                    return bad();
                };
                self.refreshes.fetch_add(1, Ordering::SeqCst);
                // Every refresh rotates the refresh token; a spent one is refused (a provider
                // that detects reuse). The delay widens the window for racing refreshers.
                ResponseTemplate::new(200)
                    .set_delay(Duration::from_millis(150))
                    .set_body_json(json!({"access_token": access(n + 1), "refresh_token": refresh_token(n + 1), "expires_in": 3600, "token_type": "bearer"}))
            }
            Some("client_credentials") if form.get("client_id").map(String::as_str) == Some("cc-id") && form.get("client_secret").map(String::as_str) == Some(CC_SECRET) => {
                ResponseTemplate::new(200).set_body_json(json!({"access_token": "cc-access-secret-Po09", "expires_in": 3600, "token_type": "Bearer"}))
            }
            _ => bad(),
        }
    }
}

/// What the mock API echoes for a credential it received: a SHA-256 fingerprint.
fn fp(value: &str) -> String {
    format!("fp:{}", &hex::encode(sha2::Sha256::digest(value.as_bytes()))[..16])
}

/// The provider's API: answers with fingerprints of the credentials it received; a revoked
/// token gets 401.
struct Api;

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |n: &str| request.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        if header("authorization").as_deref() == Some("Bearer revoked-access-secret-Ui1") {
            return ResponseTemplate::new(401).set_body_json(json!({"message": "token revoked"}));
        }
        // Fingerprints, not the credentials: then no response anywhere may contain a secret.
        ResponseTemplate::new(200).set_body_json(json!({
            "authorization": header("authorization").map(|v| fp(&v)), "x_api_key": header("x-api-key").map(|v| fp(&v)),
            "api_key_param": query.get("api_key").map(|v| fp(v)), "idempotency_key": header("idempotency-key"),
        }))
    }
}

/// Mock connectors, one per auth kind, all pointing at the mock provider.
fn mock_catalog(base: &str) -> &'static Catalog {
    let action = r#"
actions:
  - id: whoami
    title: Who am I
    description: Echo the credentials the provider received.
    method: GET
    path: /api/me
    input_schema: {type: object}
    hints: {read_only: true, idempotent: true}
  - id: create
    title: Create
    description: A write that takes an idempotency key.
    method: POST
    path: /api/me
    body: {name: "${{ .input.name }}"}
    input_schema: {type: object, required: [name], properties: {name: {type: string}}}
    idempotency_header: Idempotency-Key
"#;
    let connector = |id: &str, auth: String| {
        format!(
            "id: {id}\nname: {id}\ndescription: mock\ndocs_url: https://example.com\nbase_url: {base}\nauth:\n{auth}\n{action}"
        )
    };
    let files: Vec<(String, String)> = vec![
        (
            "mock_oauth".into(),
            connector(
                "mock_oauth",
                format!(
                    "  kind: oauth2\n  authorize_url: {base}/oauth/authorize\n  token_url: {base}/oauth/token\n  scopes: [read, write]\n  pkce: true"
                ),
            ),
        ),
        (
            "mock_basic_client".into(),
            connector(
                "mock_basic_client",
                format!(
                    "  kind: oauth2\n  authorize_url: {base}/oauth/authorize\n  token_url: {base}/oauth/token\n  client_auth: basic\n  header: X-Access-Token\n  prefix: ''"
                ),
            ),
        ),
        (
            "mock_cc".into(),
            connector("mock_cc", format!("  kind: client_credentials\n  token_url: {base}/oauth/token")),
        ),
        (
            "mock_key_header".into(),
            connector("mock_key_header", "  kind: api_key\n  in: header\n  name: X-Api-Key".into()),
        ),
        ("mock_key_query".into(), connector("mock_key_query", "  kind: api_key\n  in: query\n  name: api_key".into())),
        ("mock_basic".into(), connector("mock_basic", "  kind: basic".into())),
        ("mock_bearer".into(), connector("mock_bearer", "  kind: bearer".into())),
        (
            "mock_limited".into(),
            connector("mock_limited", "  kind: bearer\nrate_limit: {requests: 2, per_seconds: 2}".into()),
        ),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Box::leak(Box::new(Catalog::from_files(&refs).expect("mock catalog")))
}

async fn provider() -> (MockServer, TokenEndpoint) {
    let server = MockServer::start().await;
    let tokens = TokenEndpoint::default();
    Mock::given(method("POST")).and(path("/oauth/token")).respond_with(tokens.clone()).mount(&server).await;
    Mock::given(path("/api/me")).respond_with(Api).mount(&server).await;
    (server, tokens)
}

struct Ctx {
    app: TestApp,
    space: String,
    tenant: String,
    key: String,
    seen: Mutex<Vec<String>>,
}

impl Ctx {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.app.api(&self.key, &self.space, method, path, body).await;
        self.seen.lock().unwrap().push(r.body.to_string());
        (r.status, r.body)
    }
    async fn action(&self, connector: &str, action: &str, input: Value) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/api/v1/tenants/{}/connectors/{connector}/actions/{action}", self.tenant),
            Some(json!({"input": input})),
        )
        .await
    }
    async fn enable(&self, connector: &str) {
        let (status, body) = self
            .call(
                "PUT",
                &format!("/api/v1/tenants/{}/connectors/{connector}", self.tenant),
                Some(json!({"enabled": true})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    fn platform(&self) -> &Platform {
        &self.app.platform
    }
    fn ids(&self) -> (SpaceId, TenantId) {
        (SpaceId::parse(self.space.clone()).unwrap(), TenantId::parse(self.tenant.clone()).unwrap())
    }
}

async fn setup(base: &str) -> Ctx {
    let mut p = platform(Kind::Embedded, system_clock()).await;
    p.engine.catalog = mock_catalog(base);
    let app = spawn_app(p).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    Ctx { app, space, tenant, key, seen: Mutex::new(Vec::new()) }
}

#[tokio::test]
async fn every_auth_kind_works_end_to_end_and_no_secret_leaks() {
    let logs = switchyard_tests::captured_logs();
    let (server, tokens) = provider().await;
    let ctx = setup(&server.uri()).await;
    let t = ctx.tenant.clone();

    // --- OAuth 2.0 authorization code with PKCE ------------------------------------------------
    ctx.enable("mock_oauth").await;
    let (status, body) = ctx.call("POST", &format!("/api/v1/tenants/{t}/connectors/mock_oauth/connect"), None).await;
    assert_eq!(status, 400, "no OAuth app yet: {body}");
    let (status, body) = ctx
        .call(
            "PUT",
            "/api/v1/connectors/mock_oauth/oauth-app",
            Some(json!({"client_id": "client-1", "client_secret": CLIENT_SECRET})),
        )
        .await;
    assert_eq!((status, body["client_secret_set"].as_bool()), (200, Some(true)), "{body}");
    let (status, start) =
        ctx.call("POST", &format!("/api/v1/tenants/{t}/connectors/mock_oauth/connect"), Some(json!({}))).await;
    assert_eq!(status, 200, "{start}");
    let authorize = url::Url::parse(start["authorize_url"].as_str().unwrap()).unwrap();
    assert!(authorize.as_str().starts_with(&format!("{}/oauth/authorize", server.uri())));
    let q: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "client-1");
    assert_eq!(q["scope"], "read write");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/api/v1/oauth/callback", ctx.app.base));
    let state = q["state"].clone();
    assert_eq!(state, start["state"].as_str().unwrap());
    // A forged or tampered state is refused.
    let forged =
        ctx.app.send("GET", &format!("/api/v1/oauth/callback?code=good-code&state={}x", state), &[], None).await;
    assert_eq!((forged.status, forged.body["error"]["code"].as_str()), (400, Some("invalid_state")));
    // The provider sends the tenant back.
    let callback =
        ctx.app.send("GET", &format!("/api/v1/oauth/callback?code=good-code&state={state}"), &[], None).await;
    ctx.seen.lock().unwrap().push(callback.body.to_string());
    assert_eq!((callback.status, callback.body["status"].as_str()), (200, Some("connected")), "{:?}", callback.body);
    let (form, _) = tokens.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["client_secret"], CLIENT_SECRET, "client_secret in the body by default");
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(form["code_verifier"].as_bytes()));
    assert_eq!(challenge, q["code_challenge"], "the verifier matches the challenge (PKCE)");
    // A state works once.
    let replay = ctx.app.send("GET", &format!("/api/v1/oauth/callback?code=good-code&state={state}"), &[], None).await;
    assert_eq!(replay.status, 400);
    let (_, connector) = ctx.call("GET", &format!("/api/v1/tenants/{t}/connectors/mock_oauth"), None).await;
    assert_eq!(connector["credentials"]["connected"], true);
    assert_eq!(connector["credentials"]["kind"], "oauth2");
    let (status, out) = ctx.action("mock_oauth", "whoami", json!({})).await;
    assert_eq!(
        (status, out["output"]["authorization"].as_str()),
        (200, Some(&*fp(&format!("Bearer {}", access(1))))),
        "{out}"
    );

    // Refresh ahead of expiry, with rotation persisted.
    let (space, tenant) = ctx.ids();
    let oauth = ConnectorId::parse("mock_oauth").unwrap();
    let expiring = Credentials::Oauth2 {
        access_token: access(1),
        refresh_token: Some(refresh_token(1)),
        expires_at: Some(chrono::Utc::now().timestamp_millis() + 30_000),
        scope: None,
    };
    credentials::store(ctx.platform().db(), &space, &tenant, &oauth, &expiring).await.unwrap();
    let (status, out) = ctx.action("mock_oauth", "whoami", json!({})).await;
    assert_eq!(
        (status, out["output"]["authorization"].as_str()),
        (200, Some(&*fp(&format!("Bearer {}", access(2))))),
        "refreshed before use: {out}"
    );
    let stored = ctx.platform().secrets.get_fresh(&connections::owner(&space, &tenant)).await.unwrap().unwrap();
    assert_eq!(
        stored.0["connectors"]["mock_oauth"]["credentials"]["refresh_token"],
        refresh_token(2),
        "rotated refresh token persisted"
    );

    // A 401 forces one refresh and a retry.
    let revoked = Credentials::Oauth2 {
        access_token: "revoked-access-secret-Ui1".into(),
        refresh_token: Some(refresh_token(2)),
        expires_at: None,
        scope: None,
    };
    credentials::store(ctx.platform().db(), &space, &tenant, &oauth, &revoked).await.unwrap();
    let (status, out) = ctx.action("mock_oauth", "whoami", json!({})).await;
    assert_eq!(
        (status, out["output"]["authorization"].as_str()),
        (200, Some(&*fp(&format!("Bearer {}", access(3))))),
        "{out}"
    );

    // A refresh refused for good marks the connection and tells the platform.
    let dead = Credentials::Oauth2 {
        access_token: access(9),
        refresh_token: Some("not-a-valid-refresh".into()),
        expires_at: Some(0),
        scope: None,
    };
    credentials::store(ctx.platform().db(), &space, &tenant, &oauth, &dead).await.unwrap();
    let (status, out) = ctx.action("mock_oauth", "whoami", json!({})).await;
    assert_eq!((status, out["error"]["code"].as_str()), (400, Some("not_connected")), "{out}");
    let (_, connector) = ctx.call("GET", &format!("/api/v1/tenants/{t}/connectors/mock_oauth"), None).await;
    assert_eq!(connector["credentials"]["needs_reauthorization"], true);
    let bus =
        switchyard::adapters::embedded::EmbeddedEventBus::new(ctx.platform().database.clone().unwrap(), system_clock());
    let events = bus.published_since(0, 100).unwrap();
    assert!(
        events
            .iter()
            .any(|(_, e)| e.detail_type == "connection.reauthorization_required"
                && e.detail["connector"] == "mock_oauth")
    );

    // Token endpoint client authentication with HTTP Basic, token in a custom header.
    ctx.enable("mock_basic_client").await;
    ctx.call(
        "PUT",
        "/api/v1/connectors/mock_basic_client/oauth-app",
        Some(json!({"client_id": "client 2", "client_secret": CLIENT_SECRET})),
    )
    .await;
    let basic_client = ConnectorId::parse("mock_basic_client").unwrap();
    let old = Credentials::Oauth2 {
        access_token: access(20),
        refresh_token: Some(refresh_token(20)),
        expires_at: Some(0),
        scope: None,
    };
    credentials::store(ctx.platform().db(), &space, &tenant, &basic_client, &old).await.unwrap();
    let (status, _) = ctx.action("mock_basic_client", "whoami", json!({})).await;
    assert_eq!(status, 200);
    let (form, basic) = tokens.requests.lock().unwrap().last().cloned().unwrap();
    assert!(!form.contains_key("client_secret"), "not in the body with client_auth: basic");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("client+2:{CLIENT_SECRET}"));
    assert_eq!(basic.as_deref(), Some(&*format!("Basic {expected}")));
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.last().unwrap().headers.get("x-access-token").unwrap().to_str().unwrap(), access(21));

    // --- Client credentials -------------------------------------------------------------------
    ctx.enable("mock_cc").await;
    let (status, body) = ctx
        .call(
            "PUT",
            &format!("/api/v1/tenants/{t}/connectors/mock_cc/credentials"),
            Some(json!({"kind": "client_credentials", "client_id": "cc-id", "client_secret": CC_SECRET})),
        )
        .await;
    assert_eq!((status, body["credentials"]["kind"].as_str()), (200, Some("client_credentials")), "{body}");
    let (status, out) = ctx.action("mock_cc", "whoami", json!({})).await;
    assert_eq!(
        (status, out["output"]["authorization"].as_str()),
        (200, Some(&*fp("Bearer cc-access-secret-Po09"))),
        "{out}"
    );

    // --- API key (header and query), basic, bearer --------------------------------------------
    for (connector, credentials, field, expected) in [
        ("mock_key_header", json!({"kind": "api_key", "key": API_KEY}), "x_api_key", API_KEY.to_string()),
        ("mock_key_query", json!({"kind": "api_key", "key": API_KEY}), "api_key_param", API_KEY.to_string()),
        (
            "mock_basic",
            json!({"kind": "basic", "username": "ada", "password": PASSWORD}),
            "authorization",
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ada:{PASSWORD}"))),
        ),
        ("mock_bearer", json!({"kind": "bearer", "token": BEARER}), "authorization", format!("Bearer {BEARER}")),
    ] {
        ctx.enable(connector).await;
        let (status, body) = ctx
            .call("PUT", &format!("/api/v1/tenants/{t}/connectors/{connector}/credentials"), Some(credentials))
            .await;
        assert_eq!(status, 200, "{connector}: {body}");
        let (status, out) = ctx.action(connector, "whoami", json!({})).await;
        assert_eq!((status, out["output"][field].as_str()), (200, Some(&*fp(&expected))), "{connector}: {out}");
    }
    // Wrong kind for the connector.
    let (status, _) = ctx
        .call(
            "PUT",
            &format!("/api/v1/tenants/{t}/connectors/mock_basic/credentials"),
            Some(json!({"kind": "bearer", "token": BEARER})),
        )
        .await;
    assert_eq!(status, 400);
    // Bad input never reaches the provider.
    let before = server.received_requests().await.unwrap().len();
    let (status, out) = ctx.action("mock_bearer", "create", json!({"name": 5})).await;
    assert_eq!((status, out["error"]["code"].as_str()), (400, Some("invalid_input")), "{out}");
    assert_eq!(server.received_requests().await.unwrap().len(), before);

    // --- A flow using an action step and an authenticated http step ----------------------------
    let flow = json!({
        "id": "auth-flow", "name": "auth", "trigger": {"type": "manual"},
        "steps": [
            {"id": "via_action", "kind": "action", "connector": "mock_bearer", "action": "create", "input": {"name": "ada"}},
            {"id": "via_http", "kind": "http", "url": format!("{}/api/me", server.uri()), "auth": "mock_key_header"}
        ]
    });
    let (status, body) = ctx.call("POST", &format!("/api/v1/tenants/{t}/workflows"), Some(flow)).await;
    assert_eq!(status, 201, "{body}");
    let execution = run_manual(&ctx, "auth-flow").await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let steps = &execution["step_details"];
    assert_eq!(steps[0]["output"]["authorization"], fp(&format!("Bearer {BEARER}")));
    assert!(
        steps[0]["output"]["idempotency_key"].as_str().is_some_and(|k| k.starts_with("swy-")),
        "action steps send idempotency keys"
    );
    assert_eq!(steps[1]["output"]["body"]["x_api_key"], fp(API_KEY));

    // An authenticated http step cannot send the tenant's credentials to another origin.
    let elsewhere = MockServer::start().await;
    let flow = json!({
        "id": "exfil-flow", "name": "exfil", "trigger": {"type": "manual"},
        "steps": [{"id": "steal", "kind": "http", "url": format!("{}/collect", elsewhere.uri()), "auth": "mock_key_header"}]
    });
    let (status, body) = ctx.call("POST", &format!("/api/v1/tenants/{t}/workflows"), Some(flow)).await;
    assert_eq!(status, 201, "{body}");
    let execution = run_manual(&ctx, "exfil-flow").await;
    assert_eq!(execution["status"], "failed", "{execution}");
    let error = execution["step_details"][0]["error"]["message"].as_str().unwrap_or_default();
    assert!(error.contains("only sent to"), "{execution}");
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "nothing reached the other origin");

    // --- Disconnect ---------------------------------------------------------------------------
    let (status, body) =
        ctx.call("DELETE", &format!("/api/v1/tenants/{t}/connectors/mock_bearer/credentials"), None).await;
    assert_eq!((status, body["credentials"]["connected"].as_bool()), (200, Some(false)));
    let (status, out) = ctx.action("mock_bearer", "whoami", json!({})).await;
    assert_eq!((status, out["error"]["code"].as_str()), (400, Some("not_connected")), "{out}");

    // --- Nothing secret in any response or log line --------------------------------------------
    let (_, list) = ctx.call("GET", &format!("/api/v1/tenants/{t}/connectors"), None).await;
    assert!(list["items"].as_array().unwrap().len() >= 7);
    let (_, app) = ctx.call("GET", "/api/v1/connectors/mock_oauth/oauth-app", None).await;
    assert_eq!(app["client_id"], "client-1");
    let responses = ctx.seen.lock().unwrap().join("\n");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("connector connected"), "logs were captured");
    let mut secrets = vec![
        CLIENT_SECRET.to_string(),
        CC_SECRET.into(),
        "cc-access-secret-Po09".into(),
        PASSWORD.into(),
        API_KEY.into(),
        BEARER.into(),
        "revoked-access-secret-Ui1".into(),
        // HTTP Basic carries them base64-encoded.
        base64::engine::general_purpose::STANDARD.encode(format!("ada:{PASSWORD}")),
        base64::engine::general_purpose::STANDARD.encode(format!("client+2:{CLIENT_SECRET}")),
    ];
    secrets.extend((1..=25).flat_map(|n| [access(n), refresh_token(n)]));
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a log line contains the secret {secret}");
        assert!(!responses.contains(secret.as_str()), "an API response contains the secret {secret}");
    }
}

/// Run a flow now by sending its start message like the API would, and wait for it.
async fn run_manual(ctx: &Ctx, flow: &str) -> Value {
    let (status, body) = ctx
        .call("POST", &format!("/api/v1/tenants/{}/workflows/{flow}/run", ctx.tenant), Some(json!({"input": {}})))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["execution_id"].as_str().unwrap().to_string();
    let execution = ctx.app.wait_execution(&ctx.key, &ctx.space, &ctx.tenant, &id, Duration::from_secs(30)).await;
    ctx.seen.lock().unwrap().push(execution.to_string());
    execution
}

/// 50 executions that all need a refresh, spread over five "containers" (platforms with their
/// own caches over the same database): one token request reaches the provider, all 50 succeed.
#[tokio::test]
async fn fifty_parallel_executions_share_one_refresh() {
    let (server, tokens) = provider().await;
    let catalog = mock_catalog(&server.uri());
    let mut base = platform(Kind::Embedded, system_clock()).await;
    base.engine.catalog = catalog;
    let space = SpaceId::parse(unique("sp")).unwrap();
    let tenant = TenantId::parse(unique("tn")).unwrap();
    let oauth = ConnectorId::parse("mock_oauth").unwrap();
    switchyard::store::tenants::create_space(
        base.db(),
        space.clone(),
        "s".into(),
        switchyard::domain::tenancy::Plan::Enterprise,
    )
    .await
    .unwrap();
    switchyard::store::tenants::create_tenant(base.db(), &space, tenant.clone(), "t".into(), None).await.unwrap();
    connections::update_settings(base.db(), &space, &tenant, &oauth, |s| s.enabled = true).await.unwrap();
    credentials::set_oauth_app(
        base.db(),
        &space,
        &oauth,
        &credentials::OAuthApp { client_id: "c".into(), client_secret: CLIENT_SECRET.into(), redirect_uri: None },
    )
    .await
    .unwrap();
    let expired = Credentials::Oauth2 {
        access_token: access(100),
        refresh_token: Some(refresh_token(100)),
        expires_at: Some(0),
        scope: None,
    };
    credentials::store(base.db(), &space, &tenant, &oauth, &expired).await.unwrap();
    let definition = switchyard::domain::flow::FlowDefinition::parse(
        &json!({"name": "call", "trigger": {"type": "manual"}, "steps": [{"id": "who", "kind": "action", "connector": "mock_oauth", "action": "whoami"}]}),
        catalog,
    )
    .unwrap();
    let owner = switchyard::domain::flow::FlowOwner::Tenant { space: space.clone(), tenant: tenant.clone() };
    let flow = switchyard::store::flows::create_flow(base.db(), owner, None, &definition).await.unwrap().0;
    // Five containers: same database, separate caches.
    let db = base.database.clone().unwrap();
    let containers: Vec<Platform> = (0..5)
        .map(|_| {
            let mut p = Platform::embedded(db.clone(), system_clock(), base.settings.as_ref().clone()).unwrap();
            p.engine.catalog = catalog;
            p
        })
        .collect();
    let messages: Vec<OutgoingMessage> = (0..50)
        .map(|i| {
            let message = switchyard::domain::execution::RunMessage::Start {
                space: space.clone(),
                tenant: tenant.clone(),
                execution_id: switchyard::domain::ids::ExecutionId::generate(chrono::Utc::now().timestamp_millis()),
                run_key: format!("parallel-{i}"),
                flow: switchyard::domain::execution::FlowRef {
                    owner: flow.owner.clone(),
                    id: flow.id.clone(),
                    version: 1,
                },
                trigger: switchyard::domain::execution::TriggerInfo::manual(),
                input: json!({}),
                enqueued_at: 0,
            };
            OutgoingMessage::new(serde_json::to_string(&message).unwrap())
        })
        .collect();
    base.engine.queue.send(QueueId::Runs, &messages).await.unwrap();
    let config = switchyard_local::LocalConfig::default();
    let runs = containers.iter().map(|p| async {
        let mut total = 0;
        loop {
            let n = switchyard_local::consume_runs_once(p, &config, Duration::from_millis(200)).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    });
    let processed: usize = futures::future::join_all(runs).await.into_iter().sum();
    assert_eq!(processed, 50);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1, "exactly one token request reached the provider");
    let executions =
        switchyard::store::executions::list_executions(base.db(), &space, &tenant, &Default::default(), 100, None)
            .await
            .unwrap()
            .0;
    assert_eq!(executions.len(), 50);
    assert!(executions.iter().all(|e| e.status.as_str() == "succeeded"), "{executions:?}");
    let calls = server.received_requests().await.unwrap();
    let api_calls: Vec<_> = calls.iter().filter(|r| r.url.path() == "/api/me").collect();
    assert_eq!(api_calls.len(), 50);
    assert!(
        api_calls
            .iter()
            .all(|r| r.headers.get("authorization").unwrap().to_str().unwrap() == format!("Bearer {}", access(101)))
    );
}

/// `return_to` sends the tenant's browser somewhere after consent: only to listed origins.
#[tokio::test]
async fn oauth_return_to_is_limited_to_listed_origins() {
    let (server, _tokens) = provider().await;
    let mut p = switchyard_tests::platform_with(Kind::Embedded, system_clock(), 5, |s| {
        s.oauth_return_origins = vec!["https://app.example.com".into()];
    })
    .await;
    p.engine.catalog = mock_catalog(&server.uri());
    let app = spawn_app(p).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let r =
        app.api(&key, &space, "PUT", &format!("/api/v1/tenants/{tenant}/connectors/mock_oauth"), Some(json!({}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let app_body = json!({"client_id": "client-1", "client_secret": CLIENT_SECRET});
    let r = app.api(&key, &space, "PUT", "/api/v1/connectors/mock_oauth/oauth-app", Some(app_body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let connect = format!("/api/v1/tenants/{tenant}/connectors/mock_oauth/connect");
    for bad in [
        "https://evil.example.com/after",
        "http://app.example.com/after",
        "https://app.example.com.evil.net/",
        "javascript:alert(1)",
    ] {
        let r = app.api(&key, &space, "POST", &connect, Some(json!({"return_to": bad}))).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    let r = app
        .api(&key, &space, "POST", &connect, Some(json!({"return_to": "https://app.example.com/settings?tab=apps"})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let state = r.body["state"].as_str().unwrap().to_string();
    let no_redirects =
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects
        .get(format!("{}/api/v1/oauth/callback?code=good-code&state={state}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        "https://app.example.com/settings?tab=apps&connected=mock_oauth"
    );
}

/// A connection's rate limit holds across concurrent calls: every call goes through, at most
/// `requests` per window, the rest waiting for the next window.
#[tokio::test]
async fn the_connections_rate_limit_spaces_out_concurrent_calls() {
    let (server, _tokens) = provider().await;
    let ctx = setup(&server.uri()).await;
    let t = ctx.tenant.clone();
    ctx.enable("mock_limited").await;
    let (status, body) = ctx
        .call(
            "PUT",
            &format!("/api/v1/tenants/{t}/connectors/mock_limited/credentials"),
            Some(json!({"kind": "bearer", "token": BEARER})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = server.received_requests().await.unwrap().len();
    let started = std::time::Instant::now();
    let calls = (0..6).map(|_| ctx.action("mock_limited", "whoami", json!({})));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|(status, _)| *status == 200), "{results:?}");
    assert!(started.elapsed() >= Duration::from_secs(2), "six calls at two per 2 s window span windows");
    assert_eq!(server.received_requests().await.unwrap().len() - before, 6, "each call reached the provider once");
    // The windows' counters that have not expired yet: never more than two.
    let (space, tenant) = ctx.ids();
    let now = chrono::Utc::now().timestamp();
    for window in (now - 20).div_euclid(2)..=now.div_euclid(2) {
        let key = switchyard::store::keys::quota_counter(&space, &tenant, "rate:mock_limited", &window.to_string());
        let used = ctx.platform().db().store.get(&key).await.unwrap().and_then(|i| i.data.as_i64()).unwrap_or(0);
        assert!(used <= 2, "window {window}: {used} calls");
    }
}

/// An operator's `rate_limit` setting (here at the integration level) bounds a connector that
/// declares no limit of its own.
#[tokio::test]
async fn a_configured_rate_limit_bounds_a_connection() {
    let (server, _tokens) = provider().await;
    let ctx = setup(&server.uri()).await;
    let t = ctx.tenant.clone();
    let path = format!("/api/v1/tenants/{t}/connectors/mock_bearer");
    let config = json!({"enabled": true, "config": {"rate_limit": {"requests": 2, "per_seconds": 3600}}});
    let (status, body) = ctx.call("PUT", &path, Some(config)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        ctx.call("PUT", &format!("{path}/credentials"), Some(json!({"kind": "bearer", "token": BEARER}))).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        assert_eq!(ctx.action("mock_bearer", "whoami", json!({})).await.0, 200);
    }
    let before = server.received_requests().await.unwrap().len();
    let (status, body) = ctx.action("mock_bearer", "whoami", json!({})).await;
    assert_eq!(body["error"]["message"], "rate limit of the connection reached", "{status}: {body}");
    assert_eq!(body["error"]["retryable"], true);
    assert_eq!(server.received_requests().await.unwrap().len(), before, "the third call never left");
    let bad = json!({"config": {"rate_limit": {"requests": 0}}});
    assert_eq!(ctx.call("PUT", &path, Some(bad)).await.0, 400);
}

/// The catalog over the API, and a tenant's connector settings: checked on the way in (they
/// end up in URLs), enable and disable.
#[tokio::test]
async fn the_catalog_and_per_tenant_connector_settings() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (app, key, space) = (&app, &key, &space);
        async move { app.api(key, space, method, &path, body).await }
    };
    let r = call("GET", "/api/v1/connectors".into(), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let catalog = r.body["items"].as_array().unwrap();
    let with_actions = catalog.iter().filter(|c| c["actions"].as_array().is_some_and(|a| a.len() >= 3)).count();
    assert!(with_actions >= 12, "{with_actions} connectors with at least three actions");
    let shopify = catalog.iter().find(|c| c["id"] == "shopify").unwrap();
    assert_eq!((shopify["auth"].as_str(), shopify["webhook"]["scheme"].as_str()), (Some("oauth2"), Some("shopify")));
    assert!(shopify["resources"].as_array().unwrap().iter().any(|r| r == "orders"));
    assert!(!r.body.to_string().contains("token_url"), "auth internals stay out of the catalog view");
    let r = call("GET", "/api/v1/connectors/nope".into(), None).await;
    assert_eq!(r.status, 404);

    let put = |connector: &'static str, body: Value| {
        call("PUT", format!("/api/v1/tenants/{tenant}/connectors/{connector}"), Some(body))
    };
    for bad in [
        json!({"enabled": true}),
        json!({"settings": {"shop": "acme.evil.com/x"}}),
        json!({"settings": {"shop": ""}}),
        json!({"settings": {"shop": 5}}),
        json!({"settings": {"shop": "acme", "region": "eu"}}),
        json!({"settings": {"shop": "acme"}, "surprise": true}),
    ] {
        let r = put("shopify", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    let r = put("shopify", json!({"settings": {"shop": "acme-store"}})).await;
    assert_eq!(
        (r.status, r.body["enabled"].as_bool(), r.body["settings"]["shop"].as_str()),
        (200, Some(true), Some("acme-store")),
        "{r:?}"
    );
    let r = put("github", json!({"hmac": {"header": "X-Sig"}})).await;
    assert_eq!(r.status, 400, "github does not use the generic scheme: {r:?}");
    // Disabled: its actions and webhooks are refused.
    let r = put("shopify", json!({"enabled": false, "settings": {"shop": "acme-store"}})).await;
    assert_eq!(r.body["enabled"], false, "{r:?}");
    let r = call(
        "POST",
        format!("/api/v1/tenants/{tenant}/connectors/shopify/actions/list_orders"),
        Some(json!({"input": {}})),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("not enabled"), "{r:?}");
    let r = app
        .send(
            "POST",
            &format!("/webhooks/{tenant}/shopify"),
            &[("content-type", "application/json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = call("GET", format!("/api/v1/tenants/{tenant}/connectors"), None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{r:?}");
}

/// The token endpoint fails for the first exchange, then works.
#[derive(Clone, Default)]
struct FlakyTokens {
    calls: Arc<AtomicUsize>,
    inner: TokenEndpoint,
}

impl Respond for FlakyTokens {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return ResponseTemplate::new(503).set_body_string("try later");
        }
        self.inner.respond(request)
    }
}

/// When the provider's token endpoint is down, the callback says to retry, and the retry of
/// the same callback URL completes the connection; the state then works no more.
#[tokio::test]
async fn an_oauth_callback_retried_after_a_provider_outage_connects() {
    let server = MockServer::start().await;
    let tokens = FlakyTokens::default();
    Mock::given(method("POST")).and(path("/oauth/token")).respond_with(tokens.clone()).mount(&server).await;
    let ctx = setup(&server.uri()).await;
    let t = ctx.tenant.clone();
    ctx.enable("mock_oauth").await;
    let app_body = json!({"client_id": "client-1", "client_secret": CLIENT_SECRET});
    let (status, _) = ctx.call("PUT", "/api/v1/connectors/mock_oauth/oauth-app", Some(app_body)).await;
    assert_eq!(status, 200);
    let (status, start) =
        ctx.call("POST", &format!("/api/v1/tenants/{t}/connectors/mock_oauth/connect"), Some(json!({}))).await;
    assert_eq!(status, 200, "{start}");
    let state = start["state"].as_str().unwrap().to_string();
    let callback = format!("/api/v1/oauth/callback?code=good-code&state={state}");
    let first = ctx.app.send("GET", &callback, &[], None).await;
    assert_eq!(first.status, 503, "{first:?}");
    assert_eq!(first.headers["retry-after"], "5");
    assert!(first.body["error"]["message"].as_str().unwrap_or("").contains("retry this page"), "{first:?}");
    let second = ctx.app.send("GET", &callback, &[], None).await;
    assert_eq!((second.status, second.body["status"].as_str()), (200, Some("connected")), "{second:?}");
    let third = ctx.app.send("GET", &callback, &[], None).await;
    assert_eq!((third.status, third.body["error"]["code"].as_str()), (400, Some("invalid_state")), "{third:?}");
    assert_eq!(tokens.calls.load(Ordering::SeqCst), 2, "one failed and one successful exchange");
}
