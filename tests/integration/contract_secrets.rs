//! The `Secrets` contract, run against the embedded secrets and Secrets Manager (moto), plus
//! the per-container cache in front of them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard::adapters::aws::SecretsManagerSecrets;
use switchyard::adapters::cached_secrets::CachedSecrets;
use switchyard::adapters::embedded::{Database, EmbeddedSecrets};
use switchyard::ports::{SecretDocument, SecretOwner, Secrets, SystemClock};
use switchyard_tests::{aws_sdk, unique};

fn doc(v: serde_json::Value) -> SecretDocument {
    match v {
        serde_json::Value::Object(m) => SecretDocument(m),
        _ => unreachable!(),
    }
}

async fn contract(secrets: Arc<dyn Secrets>) {
    let a = SecretOwner { space: "s1".into(), tenant: "a".into() };
    let b = SecretOwner { space: "s1".into(), tenant: "b".into() };
    assert_eq!(secrets.get(&a).await.unwrap(), None);
    secrets.put(&a, &doc(json!({"connectors": {"github": {"webhook": {"current": "one"}}}}))).await.unwrap();
    secrets.put(&b, &doc(json!({"k": "b"}))).await.unwrap();
    assert_eq!(secrets.get(&a).await.unwrap().unwrap().0["connectors"]["github"]["webhook"]["current"], "one");
    secrets.put(&a, &doc(json!({"v": 2}))).await.unwrap();
    assert_eq!(secrets.get(&a).await.unwrap(), Some(doc(json!({"v": 2}))));
    assert_eq!(secrets.get(&b).await.unwrap(), Some(doc(json!({"k": "b"}))), "tenants are separate documents");
    secrets.delete(&a).await.unwrap();
    assert_eq!(secrets.get(&a).await.unwrap(), None);
    secrets.delete(&a).await.unwrap();
    // writing again after a delete works
    secrets.put(&a, &doc(json!({"v": 3}))).await.unwrap();
    assert_eq!(secrets.get(&a).await.unwrap(), Some(doc(json!({"v": 3}))));
    // Debug never shows the content
    let shown = format!("{:?}", secrets.get(&a).await.unwrap());
    assert!(!shown.contains("v\"") && shown.contains("redacted"), "{shown}");
}

#[tokio::test]
async fn secrets_contract_embedded() {
    contract(Arc::new(EmbeddedSecrets::new(Database::in_memory(), Arc::new(SystemClock)))).await;
}

#[tokio::test]
async fn secrets_contract_secrets_manager() {
    let sdk = aws_sdk().await;
    contract(Arc::new(SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::new(&sdk), unique("sy"), None))).await;
}

#[tokio::test]
async fn secrets_manager_names_one_secret_per_tenant() {
    let sdk = aws_sdk().await;
    let prefix = unique("sy");
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let secrets = SecretsManagerSecrets::new(client.clone(), prefix.clone(), None);
    let owner = SecretOwner { space: "space1".into(), tenant: "tenant1".into() };
    secrets.put(&owner, &doc(json!({"x": 1}))).await.unwrap();
    let raw = client.get_secret_value().secret_id(format!("{prefix}/space1/tenant1")).send().await.unwrap();
    assert_eq!(raw.secret_string.as_deref(), Some(r#"{"x":1}"#));
    let tags = client
        .describe_secret()
        .secret_id(format!("{prefix}/space1/tenant1"))
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert!(tags.iter().any(|t| t.key() == Some("switchyard:tenant") && t.value() == Some("tenant1")));
}

/// Counts reads, to show the cache reads once per tenant per TTL.
struct Counting(Arc<dyn Secrets>, std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl Secrets for Counting {
    async fn get(&self, o: &SecretOwner) -> switchyard::ports::PortResult<Option<SecretDocument>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.get(o).await
    }
    async fn put(&self, o: &SecretOwner, d: &SecretDocument) -> switchyard::ports::PortResult<()> {
        self.0.put(o, d).await
    }
    async fn delete(&self, o: &SecretOwner) -> switchyard::ports::PortResult<()> {
        self.0.delete(o).await
    }
}

#[tokio::test]
async fn cache_reads_once_per_ttl_and_sees_its_own_writes() {
    let inner = Arc::new(Counting(
        Arc::new(EmbeddedSecrets::new(Database::in_memory(), Arc::new(SystemClock))),
        Default::default(),
    ));
    let cache = CachedSecrets::new(inner.clone(), Duration::from_millis(300));
    let a = SecretOwner { space: "s".into(), tenant: "a".into() };
    for _ in 0..10 {
        assert_eq!(cache.get(&a).await.unwrap(), None);
    }
    assert_eq!(inner.1.load(std::sync::atomic::Ordering::SeqCst), 1, "absence is cached too");
    cache.put(&a, &doc(json!({"v": 1}))).await.unwrap();
    assert_eq!(cache.get(&a).await.unwrap(), Some(doc(json!({"v": 1}))));
    assert_eq!(inner.1.load(std::sync::atomic::Ordering::SeqCst), 1, "own write served from the cache");
    tokio::time::sleep(Duration::from_millis(350)).await;
    cache.get(&a).await.unwrap();
    assert_eq!(inner.1.load(std::sync::atomic::Ordering::SeqCst), 2, "re-read after the TTL");
}
