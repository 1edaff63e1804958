//! Support for the integration tests: both backends, a running dev server, API helpers.
//!
//! The AWS backend runs against the moto server that `scripts/test` starts on 127.0.0.1 and
//! names in `SWITCHYARD_TEST_AWS_ENDPOINT`. Without it the AWS tests fail (they never skip):
//! run the suite with `./scripts/test`.

pub mod instrument;
pub mod oidc;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::adapters::aws::provision::{QueueSettings, ResourceNames, provision};
use switchyard::adapters::embedded::{
    Database, EmbeddedEventBus, EmbeddedQueue, EmbeddedSecrets, EmbeddedStore, QueuePolicy,
};
use switchyard::adapters::outbound::ssrf::AddressPolicy;
use switchyard::ports::{Clock, EventBus, Queue, QueueId, Secrets, Store, SystemClock};
use switchyard::runtime::{Backend, DEV_ADMIN_KEY, Platform, Settings};
use switchyard_local::LocalConfig;

pub const ADMIN_KEY: &str = DEV_ADMIN_KEY;

/// Which adapters a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Embedded,
    Aws,
}

/// The moto endpoint, or a failure that says how to run the suite.
pub fn aws_endpoint() -> String {
    std::env::var("SWITCHYARD_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("SWITCHYARD_TEST_AWS_ENDPOINT is not set: run the suite with ./scripts/test, which starts moto")
    })
}

/// SDK configuration pointing at moto with test credentials.
pub async fn aws_sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Settings for tests: loopback allowed (mock third parties run on 127.0.0.1), fast retries.
pub fn test_settings(backend: Backend) -> Settings {
    let mut settings = Settings::for_embedded(":memory:");
    settings.backend = backend;
    settings.outbound = AddressPolicy::from_allow_list("127.0.0.0/8,::1").expect("valid allow-list");
    settings.retry_base_secs = 1;
    settings.secrets_cache_ttl = Duration::from_secs(60);
    // A deployment whose bus has consumers: tests read the events the platform publishes
    // (`webhook::platform_events_are_published_only_for_spaces_that_consume_them` unsets it).
    settings.platform_config.insert("platform_events".into(), serde_json::json!("all"));
    settings
}

/// Fresh AWS resources in moto (queues with the given max receive count).
pub async fn aws_resources(max_receives: u32) -> (aws_config::SdkConfig, Settings) {
    let sdk = aws_sdk().await;
    let name = unique("sy");
    let names = ResourceNames { table: name.clone(), queue_prefix: name.clone(), event_bus: name.clone() };
    let urls = provision(&sdk, &names, QueueSettings { max_receives, visibility_secs: 30 })
        .await
        .expect("provision moto resources");
    let mut settings = test_settings(Backend::Aws);
    settings.table = name.clone();
    settings.event_bus = name.clone();
    settings.secret_prefix = name;
    settings.queue_urls = urls;
    (sdk, settings)
}

/// A platform on the given backend with a fresh, empty state.
pub async fn platform(kind: Kind, clock: Arc<dyn Clock>) -> Platform {
    platform_with(kind, clock, 5, |_| {}).await
}

/// A platform with a given max receive count and settings tweaks.
pub async fn platform_with(
    kind: Kind,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    tweak: impl FnOnce(&mut Settings),
) -> Platform {
    instrumented_platform(kind, clock, max_receives, tweak, None).await
}

type Ports = (Arc<dyn Store>, Arc<dyn Queue>, Arc<dyn Secrets>, Arc<dyn EventBus>, Settings, Option<Arc<Database>>);

/// A platform whose store, queue and secrets go through `instruments` (counts and faults).
pub async fn instrumented_platform(
    kind: Kind,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    tweak: impl FnOnce(&mut Settings),
    instruments: Option<Arc<instrument::Instruments>>,
) -> Platform {
    use instrument::{InstrumentedQueue, InstrumentedSecrets, InstrumentedStore};
    let (store, queue, secrets, bus, settings, db): Ports = match kind {
        Kind::Embedded => {
            let db = Database::in_memory();
            let mut settings = test_settings(Backend::Embedded { path: ":memory:".into() });
            tweak(&mut settings);
            (
                Arc::new(EmbeddedStore::new(db.clone(), clock.clone())),
                Arc::new(
                    EmbeddedQueue::new(db.clone(), clock.clone())
                        .with_policy(QueueId::Runs, QueuePolicy { max_receives })
                        .with_policy(QueueId::Polls, QueuePolicy { max_receives }),
                ),
                Arc::new(EmbeddedSecrets::new(db.clone(), clock.clone())),
                Arc::new(EmbeddedEventBus::new(db.clone(), clock.clone())),
                settings,
                Some(db),
            )
        }
        Kind::Aws => {
            let (sdk, mut settings) = aws_resources(max_receives).await;
            tweak(&mut settings);
            (
                Arc::new(switchyard::adapters::aws::DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(&sdk),
                    settings.table.clone(),
                    clock.clone(),
                )),
                Arc::new(switchyard::adapters::aws::SqsQueue::new(
                    aws_sdk_sqs::Client::new(&sdk),
                    settings.queue_urls.clone(),
                )),
                Arc::new(switchyard::adapters::aws::SecretsManagerSecrets::new(
                    aws_sdk_secretsmanager::Client::new(&sdk),
                    settings.secret_prefix.clone(),
                    None,
                )),
                Arc::new(switchyard::adapters::aws::EventBridgeBus::new(
                    aws_sdk_eventbridge::Client::new(&sdk),
                    settings.event_bus.clone(),
                )),
                settings,
                None,
            )
        }
    };
    let (store, queue, secrets): (Arc<dyn Store>, Arc<dyn Queue>, Arc<dyn Secrets>) = match instruments {
        Some(i) => (
            Arc::new(InstrumentedStore(store, i.clone())),
            Arc::new(InstrumentedQueue(queue, i.clone())),
            Arc::new(InstrumentedSecrets(secrets, i)),
        ),
        None => (store, queue, secrets),
    };
    let mut p = Platform::assemble(store, queue, secrets, bus, clock, settings).expect("platform");
    p.database = db;
    p
}

/// A dev server running in this process on an ephemeral port.
pub struct TestApp {
    pub base: String,
    pub platform: Arc<Platform>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Start the dev server around `platform`.
pub async fn spawn_app(platform: Platform) -> TestApp {
    spawn_app_with(platform, LocalConfig { consumers: 2, tick: Duration::from_secs(3600), ..LocalConfig::default() })
        .await
}

pub async fn spawn_app_with(platform: Platform, config: LocalConfig) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let platform = Arc::new(platform);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchyard_local::serve(platform.clone(), listener, config, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    TestApp { base, platform, client, stop: Some(stop), server: Some(server) }
}

/// A response: status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// Any request; `headers` are added as given.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request reaches the dev server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(if bytes.is_empty() {
            Value::Null
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into())
        });
        Reply { status, body, headers }
    }

    /// A JSON API call with a key and space.
    pub async fn api(&self, key: &str, space: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| serde_json::to_vec(&b).expect("json"));
        self.send(
            method,
            path,
            &[("x-fastn-api-key", key), ("x-fastn-space-id", space), ("content-type", "application/json")],
            body,
        )
        .await
    }

    /// Create a space on the enterprise plan (tests about quotas set plans and overrides themselves,
    /// `integration::quotas`; the others must not measure the Starter plan's limits), a tenant
    /// and an admin key of the space; returns the key.
    pub async fn seed_tenant(&self, space: &str, tenant: &str) -> String {
        let body = json!({"id": space, "name": space, "plan": "enterprise"});
        let r = self.api(ADMIN_KEY, space, "POST", "/api/v1/spaces", Some(body)).await;
        assert!(r.status == 201 || r.status == 409, "create space: {r:?}");
        let r =
            self.api(ADMIN_KEY, space, "POST", "/api/v1/tenants", Some(json!({"id": tenant, "name": tenant}))).await;
        assert_eq!(r.status, 201, "create tenant: {r:?}");
        let r = self
            .api(ADMIN_KEY, space, "POST", "/api/v1/api-keys", Some(json!({"name": "test", "role": "admin"})))
            .await;
        assert_eq!(r.status, 201, "create key: {r:?}");
        r.body["key"].as_str().expect("key in response").to_string()
    }

    /// Poll an execution until it is final (or the timeout passes); returns its detail.
    pub async fn wait_execution(&self, key: &str, space: &str, tenant: &str, id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self.api(key, space, "GET", &format!("/api/v1/tenants/{tenant}/executions/{id}"), None).await;
            let status = r.body["status"].as_str().unwrap_or("");
            if r.status == 200 && matches!(status, "succeeded" | "failed" | "cancelled") {
                return r.body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("execution {id} not final after {timeout:?}: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Everything logged (at debug and above, without colours) by this test binary from the first
/// call on: tests that check log lines (and that no secret is in them) read it.
pub fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || LogCapture(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
    .clone()
}

struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The real clock as a shared trait object.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Wait until `check` holds, polling.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run the executor until the runs queue is empty (what the event source mapping would do),
/// waiting for messages that are hidden or delayed on the real clock. Fails after a minute.
pub async fn drain(p: &Platform) {
    let config = switchyard_local::LocalConfig::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut idle = 0;
    while idle < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the runs queue did not empty within a minute");
        let n = switchyard_local::consume_runs_once(p, &config, Duration::from_millis(100)).await.expect("runs queue");
        idle = if n == 0 && p.engine.queue.depth(QueueId::Runs).await.expect("depth") == 0 { idle + 1 } else { 0 };
    }
}

/// Run the executor until no message is visible: with a fake clock, delayed messages wait for
/// the test to move the clock.
pub async fn drain_visible(p: &Platform) {
    let config = switchyard_local::LocalConfig::default();
    while switchyard_local::consume_runs_once(p, &config, Duration::from_millis(50)).await.expect("runs queue") > 0 {}
}

/// A space and a tenant created directly in the store (no HTTP), on the given plan.
pub async fn tenant(
    p: &Platform,
    plan: switchyard::domain::tenancy::Plan,
) -> switchyard::store::tenants::ResolvedTenant {
    use switchyard::domain::ids::{SpaceId, TenantId};
    use switchyard::store::tenants as tenancy;
    let space = SpaceId::parse(unique("sp")).expect("id");
    let tenant = TenantId::parse(unique("tn")).expect("id");
    tenancy::create_space(p.db(), space.clone(), "space".into(), plan).await.expect("space");
    tenancy::create_tenant(p.db(), &space, tenant.clone(), "tenant".into(), None).await.expect("tenant");
    tenancy::resolve_tenant(p.db(), &tenant).await.expect("resolve").expect("tenant exists")
}

/// A metrics sink that keeps every record, as CloudWatch would receive them.
#[derive(Default)]
pub struct CapturedMetrics(pub std::sync::Mutex<Vec<switchyard::ports::MetricRecord>>);

impl switchyard::ports::MetricsSink for CapturedMetrics {
    fn emit(&self, record: switchyard::ports::MetricRecord) {
        self.0.lock().expect("metrics lock").push(record);
    }
}
