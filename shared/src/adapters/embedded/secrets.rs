use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::Database;
use crate::ports::{Clock, PortError, PortResult, SecretDocument, SecretOwner, Secrets};

/// `Secrets` over the `secrets` table: one row (one JSON document) per tenant.
///
/// The file is a development store on the developer's own machine and is not encrypted; in AWS
/// the same documents live in Secrets Manager, encrypted with KMS.
pub struct EmbeddedSecrets {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedSecrets {
    pub fn new(db: Arc<Database>, clock: Arc<dyn Clock>) -> Self {
        EmbeddedSecrets { db, clock }
    }
}

#[async_trait]
impl Secrets for EmbeddedSecrets {
    async fn get(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        let text: Option<String> = self.db.transaction(|tx| {
            Ok(tx
                .prepare_cached("SELECT document FROM secrets WHERE space = ?1 AND tenant = ?2")?
                .query_row(params![owner.space, owner.tenant], |row| row.get(0))
                .optional()?)
        })?;
        text.map(|t| match serde_json::from_str(&t) {
            Ok(serde_json::Value::Object(map)) => Ok(SecretDocument(map)),
            _ => Err(PortError::corrupt("stored secret document is not a JSON object")),
        })
        .transpose()
    }

    async fn put(&self, owner: &SecretOwner, document: &SecretDocument) -> PortResult<()> {
        let text = serde_json::Value::Object(document.0.clone()).to_string();
        let now = self.clock.now_ms();
        self.db.transaction(|tx| {
            tx.prepare_cached(
                "INSERT INTO secrets (space, tenant, document, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (space, tenant) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
            )?
            .execute(params![owner.space, owner.tenant, text, now])?;
            Ok(())
        })
    }

    async fn delete(&self, owner: &SecretOwner) -> PortResult<()> {
        self.db.transaction(|tx| {
            tx.prepare_cached("DELETE FROM secrets WHERE space = ?1 AND tenant = ?2")?
                .execute(params![owner.space, owner.tenant])?;
            Ok(())
        })
    }
}
