//! What every handler gets: the ports, the catalog and the settings, built once per container.
//!
//! The backend is chosen from the environment: inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set)
//! it is always AWS; elsewhere it is the embedded SQLite file unless `SWITCHYARD_BACKEND=aws`.

pub mod auth;
pub mod blobs;
pub mod connections;
pub mod credentials;
pub mod dlq;
pub mod error;
pub mod executions;
pub mod flows;
pub mod http;
pub mod lease;
pub mod polls;
pub mod quotas;
pub mod ratelimit;
pub mod runs;
pub mod schedules;
pub mod tenancy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::aws::{DynamoStore, EventBridgeBus, QueueUrls, SecretsManagerSecrets, SqsQueue};
use crate::domain::connector::Catalog;
use crate::embedded::{Database, EmbeddedEventBus, EmbeddedQueue, EmbeddedSecrets, EmbeddedStore};
use crate::outbound::OutboundClient;
use crate::outbound::ssrf::AddressPolicy;
use crate::ports::{Clock, EventBus, Http, Queue, QueueId, Secrets, Store, SystemClock};
use crate::secrets_cache::CachedSecrets;

/// The development admin key used outside AWS when `SWITCHYARD_ADMIN_KEY` is unset.
/// It is printed in the dev server's banner and refused inside Lambda.
pub const DEV_ADMIN_KEY: &str = "swy_dev_admin_key_for_local_use_only";

/// Which adapters the ports use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded { path: String },
    Aws,
}

/// Webhook receiver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub tolerance_secs: i64,
    pub max_body_bytes: usize,
    pub dedup_ttl_secs: i64,
    /// How long a replaced webhook secret keeps verifying after a rotation.
    pub rotation_window_secs: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            tolerance_secs: 300,
            max_body_bytes: 1024 * 1024,
            dedup_ttl_secs: 86_400,
            rotation_window_secs: 86_400,
        }
    }
}

/// Where the admin key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    /// Given directly (local runs and tests).
    Value(String),
    /// The id of a Secrets Manager secret holding it (the SAM template creates one).
    Secret(String),
    /// No admin key: spaces cannot be created over the API.
    None,
}

impl std::fmt::Debug for AdminKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminKeySource::Value(_) => f.write_str("Value(redacted)"),
            AdminKeySource::Secret(id) => write!(f, "Secret({id})"),
            AdminKeySource::None => f.write_str("None"),
        }
    }
}

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: Backend,
    pub in_lambda: bool,
    pub table: String,
    pub queue_urls: QueueUrls,
    pub event_bus: String,
    pub secret_prefix: String,
    pub kms_key_id: Option<String>,
    pub admin_key: AdminKeySource,
    pub outbound: AddressPolicy,
    pub secrets_cache_ttl: Duration,
    pub webhook: WebhookSettings,
    /// Base URL the platform is reachable at (OAuth callbacks, printed URLs).
    pub public_url: Option<String>,
    /// First delay before a failed run message is retried; doubles per receive.
    pub retry_base_secs: u64,
    /// A directory of extra connector files (private connectors).
    pub catalog_dir: Option<String>,
    /// Browser origins allowed to call `/mcp` (requests with any other `Origin` get 403).
    pub mcp_allowed_origins: Vec<String>,
    /// Origins an OAuth connect may send the tenant back to (`return_to`); none when empty.
    pub oauth_return_origins: Vec<String>,
}

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// A comma-separated list of origins (`https://app.example.com`), without trailing slashes.
fn origins(value: Option<String>) -> Vec<String> {
    value
        .map(|v| v.split(',').map(|o| o.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect())
        .unwrap_or_default()
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError(format!("{name}={v:?} is not a number"))),
    }
}

impl Settings {
    /// Read every setting; errors name the variable.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let in_lambda = env("AWS_LAMBDA_FUNCTION_NAME").is_some();
        // An explicit choice wins (`cargo lambda watch` emulates Lambda on a laptop); without
        // one, Lambda means AWS and anywhere else means the embedded file.
        let backend = match env("SWITCHYARD_BACKEND").as_deref() {
            Some("aws") => Backend::Aws,
            Some("embedded") => Backend::Embedded {
                path: env("SWITCHYARD_DB").unwrap_or_else(|| crate::embedded::DEFAULT_DB_PATH.into()),
            },
            Some(other) => {
                return Err(ConfigError(format!("SWITCHYARD_BACKEND={other:?}: expected `aws` or `embedded`")));
            }
            None if in_lambda => Backend::Aws,
            None => Backend::Embedded {
                path: env("SWITCHYARD_DB").unwrap_or_else(|| crate::embedded::DEFAULT_DB_PATH.into()),
            },
        };
        let mut urls = HashMap::new();
        for (queue, var) in [
            (QueueId::Runs, "SWITCHYARD_RUNS_QUEUE_URL"),
            (QueueId::RunsDlq, "SWITCHYARD_RUNS_DLQ_URL"),
            (QueueId::Polls, "SWITCHYARD_POLLS_QUEUE_URL"),
            (QueueId::PollsDlq, "SWITCHYARD_POLLS_DLQ_URL"),
        ] {
            if let Some(url) = env(var) {
                urls.insert(queue, url);
            }
        }
        let admin_key = match (env("SWITCHYARD_ADMIN_KEY"), env("SWITCHYARD_ADMIN_KEY_SECRET")) {
            (_, Some(secret_id)) => AdminKeySource::Secret(secret_id),
            (Some(key), None) if key.len() >= 16 => AdminKeySource::Value(key),
            (Some(_), None) => {
                return Err(ConfigError("SWITCHYARD_ADMIN_KEY must be at least 16 characters".into()));
            }
            // The development key only ever exists with the embedded backend, which no AWS
            // deployment uses.
            (None, None) if matches!(backend, Backend::Embedded { .. }) => {
                AdminKeySource::Value(DEV_ADMIN_KEY.to_string())
            }
            (None, None) => AdminKeySource::None,
        };
        let outbound = AddressPolicy::from_allow_list(&env("SWITCHYARD_OUTBOUND_ALLOW").unwrap_or_default())
            .map_err(|e| ConfigError(format!("SWITCHYARD_OUTBOUND_ALLOW: {e}")))?;
        let settings = Settings {
            backend,
            in_lambda,
            table: env("SWITCHYARD_TABLE").unwrap_or_else(|| "switchyard".into()),
            queue_urls: QueueUrls(urls),
            event_bus: env("SWITCHYARD_EVENT_BUS").unwrap_or_else(|| "switchyard".into()),
            secret_prefix: env("SWITCHYARD_SECRET_PREFIX").unwrap_or_else(|| "switchyard".into()),
            kms_key_id: env("SWITCHYARD_KMS_KEY_ID"),
            admin_key,
            outbound,
            secrets_cache_ttl: Duration::from_secs(env_number("SWITCHYARD_SECRETS_CACHE_SECONDS", 60)?),
            webhook: WebhookSettings {
                tolerance_secs: env_number("SWITCHYARD_WEBHOOK_TOLERANCE_SECONDS", 300)?,
                max_body_bytes: env_number("SWITCHYARD_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)?,
                dedup_ttl_secs: env_number("SWITCHYARD_WEBHOOK_DEDUP_SECONDS", 86_400)?,
                rotation_window_secs: env_number("SWITCHYARD_WEBHOOK_ROTATION_SECONDS", 86_400)?,
            },
            public_url: env("SWITCHYARD_PUBLIC_URL"),
            retry_base_secs: env_number("SWITCHYARD_RETRY_BASE_SECONDS", 5)?,
            catalog_dir: env("SWITCHYARD_CATALOG_DIR"),
            mcp_allowed_origins: origins(env("SWITCHYARD_MCP_ALLOWED_ORIGINS")),
            oauth_return_origins: origins(env("SWITCHYARD_OAUTH_RETURN_ORIGINS")),
        };
        let provisioning = env("SWITCHYARD_AWS_CREATE_RESOURCES").as_deref() == Some("1");
        if settings.backend == Backend::Aws && !provisioning {
            for queue in [QueueId::Runs, QueueId::RunsDlq] {
                settings.queue_urls.url(queue).map_err(|e| ConfigError(e.to_string()))?;
            }
        }
        Ok(settings)
    }

    /// Settings for tests and embedded tools: embedded backend, no environment read.
    pub fn for_embedded(path: &str) -> Settings {
        Settings {
            backend: Backend::Embedded { path: path.to_string() },
            in_lambda: false,
            table: "switchyard".into(),
            queue_urls: QueueUrls::default(),
            event_bus: "switchyard".into(),
            secret_prefix: "switchyard".into(),
            kms_key_id: None,
            admin_key: AdminKeySource::Value(DEV_ADMIN_KEY.into()),
            outbound: AddressPolicy::default(),
            secrets_cache_ttl: Duration::from_secs(60),
            webhook: WebhookSettings::default(),
            public_url: None,
            retry_base_secs: 5,
            catalog_dir: None,
            mcp_allowed_origins: Vec::new(),
            oauth_return_origins: Vec::new(),
        }
    }
}

/// The ports, the catalog and the settings: everything a handler needs.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<CachedSecrets>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub http: Arc<dyn Http>,
    pub catalog: &'static Catalog,
    pub settings: Arc<Settings>,
    pub caches: Arc<caches::Caches>,
    /// The embedded database, when that is the backend (the dev server sweeps it).
    pub database: Option<Arc<Database>>,
    /// Secrets Manager, on AWS, for the admin key secret.
    pub secrets_manager: Option<aws_sdk_secretsmanager::Client>,
}

pub mod caches {
    //! Short-lived per-container caches of hot, rarely changing reads.

    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// A small TTL map. Entries past `ttl` are refetched; a full map starts over.
    pub struct TtlCache<K, V> {
        ttl: Duration,
        max: usize,
        entries: Mutex<HashMap<K, (Instant, V)>>,
    }

    impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
        pub fn new(ttl: Duration, max: usize) -> Self {
            TtlCache { ttl, max, entries: Mutex::new(HashMap::new()) }
        }
        pub fn get(&self, key: &K) -> Option<V> {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
        }
        pub fn put(&self, key: K, value: V) {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= self.max {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
        pub fn remove(&self, key: &K) {
            self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        }
        pub fn clear(&self) {
            self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// The caches a container keeps. Writers in this container invalidate what they change;
    /// other containers see changes within the TTL.
    pub struct Caches {
        pub tenants: TtlCache<String, Option<super::tenancy::ResolvedTenant>>,
        pub api_keys: TtlCache<String, Option<crate::domain::access::ApiKeyRecord>>,
        pub triggers: TtlCache<(String, String), std::sync::Arc<Vec<std::sync::Arc<super::flows::FlowRecord>>>>,
        pub connector_settings: TtlCache<(String, String), Option<super::connections::ConnectorSettings>>,
        pub admin_key: TtlCache<(), Option<String>>,
    }

    impl Caches {
        pub fn new(ttl: Duration) -> Self {
            Caches {
                tenants: TtlCache::new(ttl, 10_000),
                api_keys: TtlCache::new(ttl, 10_000),
                triggers: TtlCache::new(ttl, 10_000),
                connector_settings: TtlCache::new(ttl, 10_000),
                admin_key: TtlCache::new(Duration::from_secs(300), 1),
            }
        }
        pub fn clear(&self) {
            self.tenants.clear();
            self.api_keys.clear();
            self.triggers.clear();
            self.connector_settings.clear();
            self.admin_key.clear();
        }
    }
}

/// How long per-container caches of tenants, keys and triggers live.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

impl Platform {
    /// Build the platform the environment asks for.
    pub async fn from_env() -> Result<Platform, ConfigError> {
        Platform::from_settings(Settings::from_env()?).await
    }

    /// Build the platform for given settings, with the real clock.
    pub async fn from_settings(settings: Settings) -> Result<Platform, ConfigError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        match settings.backend.clone() {
            Backend::Embedded { path } => {
                let db = Database::open(&path).map_err(|e| ConfigError(format!("database {path}: {e}")))?;
                Platform::embedded(db, clock, settings)
            }
            Backend::Aws => {
                let sdk = crate::aws::load_sdk_config().await;
                Platform::aws(&sdk, clock, settings)
            }
        }
    }

    /// The embedded backend over `db`.
    pub fn embedded(db: Arc<Database>, clock: Arc<dyn Clock>, settings: Settings) -> Result<Platform, ConfigError> {
        let store = Arc::new(EmbeddedStore::new(db.clone(), clock.clone()));
        let queue = Arc::new(EmbeddedQueue::new(db.clone(), clock.clone()));
        let secrets: Arc<dyn Secrets> = Arc::new(EmbeddedSecrets::new(db.clone(), clock.clone()));
        let bus = Arc::new(EmbeddedEventBus::new(db.clone(), clock.clone()));
        let mut platform = Platform::assemble(store, queue, secrets, bus, clock, settings)?;
        platform.database = Some(db);
        Ok(platform)
    }

    /// The AWS backend, from an SDK configuration.
    pub fn aws(
        sdk: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Platform, ConfigError> {
        let store =
            Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table.clone(), clock.clone()));
        let queue = Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), settings.queue_urls.clone()));
        let secrets_manager = aws_sdk_secretsmanager::Client::new(sdk);
        let secrets: Arc<dyn Secrets> = Arc::new(SecretsManagerSecrets::new(
            secrets_manager.clone(),
            settings.secret_prefix.clone(),
            settings.kms_key_id.clone(),
        ));
        let bus = Arc::new(EventBridgeBus::new(aws_sdk_eventbridge::Client::new(sdk), settings.event_bus.clone()));
        let mut platform = Platform::assemble(store, queue, secrets, bus, clock, settings)?;
        platform.secrets_manager = Some(secrets_manager);
        Ok(platform)
    }

    /// Assemble from any adapters (tests inject failing ones here).
    pub fn assemble(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        secrets: Arc<dyn Secrets>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Platform, ConfigError> {
        let http = Arc::new(OutboundClient::new(settings.outbound.clone()).map_err(ConfigError)?);
        let catalog: &'static Catalog = match &settings.catalog_dir {
            // Built once per process; kept for its lifetime like the built-in one.
            Some(dir) => Box::leak(Box::new(
                Catalog::with_extra_dir(std::path::Path::new(dir))
                    .map_err(|e| ConfigError(format!("SWITCHYARD_CATALOG_DIR: {e}")))?,
            )),
            None => Catalog::builtin(),
        };
        Ok(Platform {
            store,
            queue,
            secrets: Arc::new(CachedSecrets::new(secrets, settings.secrets_cache_ttl)),
            bus,
            clock,
            http,
            catalog,
            settings: Arc::new(settings),
            caches: Arc::new(caches::Caches::new(CACHE_TTL)),
            database: None,
            secrets_manager: None,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
