//! The composition root and the edges: settings from the environment, the adapters chosen and
//! wired into the contexts the use cases take ([`Platform`]), the Lambda glue, and the HTTP
//! shape with its error responses.
//!
//! A Lambda binary builds with the `aws` feature only; the dev server and the tests build with
//! `aws` and `embedded`.

pub mod error;
pub mod http;
pub mod lambda;
pub mod settings;

use std::sync::Arc;

pub use settings::{AdminKeySource, Backend, ConfigError, ConsoleOidc, DEV_ADMIN_KEY, Settings};

#[cfg(feature = "aws")]
use crate::adapters::aws::{AdminKeySecret, DynamoStore, EventBridgeBus, SecretsManagerSecrets, SqsQueue};
use crate::adapters::cached_secrets::CachedSecrets;
#[cfg(feature = "embedded")]
use crate::adapters::embedded::{Database, EmbeddedEventBus, EmbeddedQueue, EmbeddedSecrets, EmbeddedStore};
use crate::adapters::emf::EmfStdout;
use crate::adapters::oidc::OidcVerifier;
use crate::adapters::outbound::OutboundClient;
use crate::domain::connector::Catalog;
use crate::engine::Engine;
use crate::ports::{
    AdminKey, Clock, EventBus, FixedAdminKey, Http, MetricsSink, NoMetrics, Queue, Secrets, Store, SystemClock,
    TokenVerifier,
};
use crate::store::{Caches, Db, Deployment};
use crate::usecases::auth::AuthContext;

/// Everything the functions need, built once per container: the engine's context (the
/// store, secrets, clock and caches; the queues, the event bus, outbound HTTP and the
/// catalog), where the admin key comes from, and the settings.
#[derive(Clone)]
pub struct Platform {
    pub engine: Engine,
    pub admin_key: Arc<dyn AdminKey>,
    /// Bearer JWTs of the configured OpenID Connect issuers; `None` when none is configured.
    pub tokens: Option<Arc<dyn TokenVerifier>>,
    pub settings: Arc<Settings>,
    /// The secrets cache in front of the secrets store (`engine.db.secrets` is the same one).
    pub secrets: Arc<CachedSecrets>,
    /// The embedded database, when that is the backend (the dev server sweeps it).
    #[cfg(feature = "embedded")]
    pub database: Option<Arc<Database>>,
}

impl Platform {
    /// The repositories' context.
    pub fn db(&self) -> &Db {
        &self.engine.db
    }

    pub fn now_ms(&self) -> i64 {
        self.engine.now_ms()
    }

    /// What authenticating a request needs.
    pub fn auth(&self) -> AuthContext<'_> {
        AuthContext {
            db: self.db(),
            admin_key: self.admin_key.as_ref(),
            tokens: self.tokens.as_deref(),
            audit_retention_secs: self.settings.audit_retention_secs,
        }
    }

    /// Build the platform the environment asks for.
    pub async fn from_env() -> Result<Platform, ConfigError> {
        Platform::from_settings(Settings::from_env()?).await
    }

    /// Build the platform for given settings, with the real clock.
    pub async fn from_settings(settings: Settings) -> Result<Platform, ConfigError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        match settings.backend.clone() {
            #[cfg(feature = "embedded")]
            Backend::Embedded { path } => {
                let db = Database::open(&path).map_err(|e| ConfigError(format!("database {path}: {e}")))?;
                Platform::embedded(db, clock, settings)
            }
            #[cfg(not(feature = "embedded"))]
            Backend::Embedded { .. } => Err(ConfigError(
                "SWITCHYARD_BACKEND=embedded: this binary was built without the embedded backend \
                 (build it with --features embedded)"
                    .into(),
            )),
            #[cfg(feature = "aws")]
            Backend::Aws => {
                let sdk = crate::adapters::aws::load_sdk_config().await;
                Platform::aws(&sdk, clock, settings)
            }
            #[cfg(not(feature = "aws"))]
            Backend::Aws => Err(ConfigError("SWITCHYARD_BACKEND=aws: this binary was built without AWS".into())),
        }
    }

    /// The embedded backend over `db`.
    #[cfg(feature = "embedded")]
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
    #[cfg(feature = "aws")]
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
        let admin_key: Arc<dyn AdminKey> = match &settings.admin_key {
            AdminKeySource::Secret(id) => Arc::new(AdminKeySecret::new(secrets_manager, id.clone())),
            _ => fixed_admin_key(&settings)?,
        };
        Platform::assemble_with(store, queue, secrets, bus, clock, admin_key, settings)
    }

    /// Assemble from any adapters (tests inject failing ones here), with the admin key the
    /// settings give directly.
    pub fn assemble(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        secrets: Arc<dyn Secrets>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Platform, ConfigError> {
        let admin_key = fixed_admin_key(&settings)?;
        Platform::assemble_with(store, queue, secrets, bus, clock, admin_key, settings)
    }

    fn assemble_with(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        secrets: Arc<dyn Secrets>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        admin_key: Arc<dyn AdminKey>,
        settings: Settings,
    ) -> Result<Platform, ConfigError> {
        let http: Arc<dyn Http> = Arc::new(OutboundClient::new(settings.outbound.clone()).map_err(ConfigError)?);
        let catalog: &'static Catalog = match &settings.catalog_dir {
            // Built once per process; kept for its lifetime like the built-in one.
            Some(dir) => Box::leak(Box::new(
                Catalog::with_extra_dir(std::path::Path::new(dir))
                    .map_err(|e| ConfigError(format!("SWITCHYARD_CATALOG_DIR: {e}")))?,
            )),
            None => Catalog::builtin(),
        };
        let cached = Arc::new(CachedSecrets::new(secrets, settings.secrets_cache_ttl));
        let tokens: Option<Arc<dyn TokenVerifier>> = settings.oidc.enabled().then(|| {
            Arc::new(OidcVerifier::new(settings.oidc.clone(), http.clone(), clock.clone())) as Arc<dyn TokenVerifier>
        });
        let metrics: Arc<dyn MetricsSink> = match settings.emf {
            true => Arc::new(EmfStdout::new(clock.clone())),
            false => Arc::new(NoMetrics),
        };
        let deployment = Arc::new(Deployment {
            plans: settings.plan_quotas.clone(),
            platform_config: crate::domain::config::platform_level(&settings.platform_config),
        });
        let db = Db { store, secrets: cached.clone(), clock, caches: Arc::new(Caches::default()), deployment };
        Ok(Platform {
            engine: Engine { db, queue, bus, http, catalog, metrics },
            admin_key,
            tokens,
            settings: Arc::new(settings),
            secrets: cached,
            #[cfg(feature = "embedded")]
            database: None,
        })
    }
}

/// The admin key of settings that give it directly (or give none).
pub fn fixed_admin_key(settings: &Settings) -> Result<Arc<dyn AdminKey>, ConfigError> {
    match &settings.admin_key {
        AdminKeySource::Value(key) => Ok(Arc::new(FixedAdminKey(Some(key.clone())))),
        AdminKeySource::None => Ok(Arc::new(FixedAdminKey(None))),
        AdminKeySource::Secret(_) => Err(ConfigError("SWITCHYARD_ADMIN_KEY_SECRET needs the AWS backend".into())),
    }
}
