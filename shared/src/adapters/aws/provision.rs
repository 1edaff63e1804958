//! Create the resources the SAM template creates (table with TTL, queues with their DLQs and
//! redrive policies, event bus) in an AWS emulator: for tests and for running the dev server
//! with `SWITCHYARD_BACKEND=aws` against moto. Real deployments use `infra/template.yaml`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::{classify, error_code};
use crate::ports::QueueUrls;
use crate::ports::{PortError, QueueId};

/// Names of the resources to create.
#[derive(Debug, Clone)]
pub struct ResourceNames {
    pub table: String,
    pub queue_prefix: String,
    pub event_bus: String,
}

/// Queue attributes matching the template: maxReceiveCount and visibility timeout.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub max_receives: u32,
    pub visibility_secs: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings { max_receives: 5, visibility_secs: 720 }
    }
}

/// Create everything (idempotently) and return the queue URLs.
pub async fn provision(
    sdk: &aws_config::SdkConfig,
    names: &ResourceNames,
    queues: QueueSettings,
) -> Result<QueueUrls, PortError> {
    create_table(&aws_sdk_dynamodb::Client::new(sdk), &names.table).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut urls = HashMap::new();
    for (main, dlq) in [(QueueId::Runs, QueueId::RunsDlq), (QueueId::Polls, QueueId::PollsDlq)] {
        let dlq_url = create_queue(&sqs, &format!("{}-{}", names.queue_prefix, dlq.name()), HashMap::new()).await?;
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| PortError::Unavailable("DLQ without an ARN".into()))?;
        let redrive =
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queues.max_receives}).to_string();
        let attributes = HashMap::from([
            (QueueAttributeName::RedrivePolicy, redrive),
            (QueueAttributeName::VisibilityTimeout, queues.visibility_secs.to_string()),
        ]);
        let main_url = create_queue(&sqs, &format!("{}-{}", names.queue_prefix, main.name()), attributes).await?;
        urls.insert(main, main_url);
        urls.insert(dlq, dlq_url);
    }
    let events = aws_sdk_eventbridge::Client::new(sdk);
    match events.create_event_bus().name(&names.event_bus).send().await {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("ResourceAlreadyExistsException") => {}
        Err(e) => return Err(classify("CreateEventBus", e)),
    }
    Ok(QueueUrls(urls))
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, PortError> {
    let out = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| classify("CreateQueue", e))?;
    out.queue_url.ok_or_else(|| PortError::Unavailable("CreateQueue returned no URL".into()))
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), PortError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| PortError::invalid(e.to_string()))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| PortError::invalid(e.to_string()))
    };
    let created = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(classify("CreateTable", e)),
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("ttl")
        .build()
        .map_err(|e| PortError::invalid(e.to_string()))?;
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| classify("UpdateTimeToLive", e))?;
    Ok(())
}
