use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;

use super::{classify, error_code};
use crate::ports::{AdminKey, PortError, PortResult, SecretDocument, SecretOwner, Secrets, TtlCache};

/// `Secrets` over Secrets Manager: one secret per tenant, named `{prefix}/{space}/{tenant}`, so
/// IAM can scope a function to `{prefix}/*` and an operator can find a tenant's secret by name.
pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
    kms_key_id: Option<String>,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, prefix: impl Into<String>, kms_key_id: Option<String>) -> Self {
        SecretsManagerSecrets { client, prefix: prefix.into(), kms_key_id }
    }

    fn name(&self, owner: &SecretOwner) -> String {
        format!("{}/{}/{}", self.prefix, owner.space, owner.tenant)
    }

    async fn create(&self, name: &str, owner: &SecretOwner, text: &str) -> Result<(), PortError> {
        let request = self
            .client
            .create_secret()
            .name(name)
            .secret_string(text)
            .description("Switchyard tenant credentials")
            .set_kms_key_id(self.kms_key_id.clone())
            .tags(Tag::builder().key("switchyard:space").value(&owner.space).build())
            .tags(Tag::builder().key("switchyard:tenant").value(&owner.tenant).build());
        match request.send().await {
            Ok(_) => Ok(()),
            // Another writer created it first; the caller overwrites it with PutSecretValue.
            Err(e) if error_code(&e) == Some("ResourceExistsException") => Err(PortError::ConditionFailed),
            // A name deleted a moment ago cannot be reused for a short while: retry later.
            Err(e) if error_code(&e) == Some("InvalidRequestException") => {
                Err(PortError::Unavailable(format!("secret name not reusable yet: {}", classify("CreateSecret", e))))
            }
            Err(e) => Err(classify("CreateSecret", e)),
        }
    }

    async fn put_value(&self, name: &str, text: &str) -> Result<bool, PortError> {
        match self.client.put_secret_value().secret_id(name).secret_string(text).send().await {
            Ok(_) => Ok(true),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(classify("PutSecretValue", e)),
        }
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        match self.client.get_secret_value().secret_id(self.name(owner)).send().await {
            Ok(out) => match out.secret_string.as_deref().map(serde_json::from_str::<serde_json::Value>) {
                Some(Ok(serde_json::Value::Object(map))) => Ok(Some(SecretDocument(map))),
                None => Ok(None),
                // Never echo the content: it is a secret even when malformed.
                Some(_) => Err(PortError::corrupt("tenant secret is not a JSON object")),
            },
            Err(e) if matches!(error_code(&e), Some("ResourceNotFoundException")) => Ok(None),
            // Scheduled for deletion: the tenant has no credentials any more.
            Err(e) if matches!(error_code(&e), Some("InvalidRequestException")) => Ok(None),
            Err(e) => Err(classify("GetSecretValue", e)),
        }
    }

    async fn put(&self, owner: &SecretOwner, document: &SecretDocument) -> PortResult<()> {
        let name = self.name(owner);
        let text = serde_json::Value::Object(document.0.clone()).to_string();
        if self.put_value(&name, &text).await? {
            return Ok(());
        }
        match self.create(&name, owner, &text).await {
            Err(PortError::ConditionFailed) => {
                if self.put_value(&name, &text).await? {
                    Ok(())
                } else {
                    Err(PortError::Unavailable("secret disappeared while being written".into()))
                }
            }
            other => other,
        }
    }

    /// Deleting a tenant's credentials is immediate (no recovery window): a secret "scheduled
    /// for deletion" would still be readable by name and block writing the tenant's next one.
    async fn delete(&self, owner: &SecretOwner) -> PortResult<()> {
        match self.client.delete_secret().secret_id(self.name(owner)).force_delete_without_recovery(true).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(error_code(&e), Some("ResourceNotFoundException" | "InvalidRequestException")) => Ok(()),
            Err(e) => Err(classify("DeleteSecret", e)),
        }
    }
}

/// Read a plain secret string by id (the admin key secret the SAM template creates).
pub async fn read_secret_string(client: &Client, id: &str) -> PortResult<Option<String>> {
    match client.get_secret_value().secret_id(id).send().await {
        Ok(out) => Ok(out.secret_string),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(classify("GetSecretValue", e)),
    }
}

/// The platform admin key kept in a Secrets Manager secret (the SAM template creates one),
/// read once per container per five minutes: a rotated key is honoured within that.
pub struct AdminKeySecret {
    client: Client,
    secret_id: String,
    cached: TtlCache<(), Option<String>>,
}

impl AdminKeySecret {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        AdminKeySecret {
            client,
            secret_id: secret_id.into(),
            cached: TtlCache::new(std::time::Duration::from_secs(300), 1),
        }
    }
}

#[async_trait]
impl AdminKey for AdminKeySecret {
    async fn admin_key(&self) -> PortResult<Option<String>> {
        if let Some(key) = self.cached.get(&()) {
            return Ok(key);
        }
        let key = read_secret_string(&self.client, &self.secret_id).await?;
        self.cached.put((), key.clone());
        Ok(key)
    }
}
