//! Adapters over AWS: DynamoDB (`Store`), SQS (`Queue`), Secrets Manager (`Secrets`),
//! EventBridge (`EventBus`).
//!
//! Clients are built once per container from the standard AWS configuration chain, which also
//! honours `AWS_ENDPOINT_URL` (the tests point it at a moto server on 127.0.0.1).

mod dynamodb;
mod eventbridge;
pub mod provision;
mod secretsmanager;
mod sqs;

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use dynamodb::DynamoStore;
pub use eventbridge::EventBridgeBus;
pub use secretsmanager::{AdminKeySecret, SecretsManagerSecrets, read_secret_string};
pub use sqs::SqsQueue;

use crate::ports::PortError;

/// Load the shared SDK configuration (region, credentials, endpoint) from the environment.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(25))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts).load().await
}

/// Map an SDK failure to a port error. Codes that mean "this request can never succeed" become
/// `Rejected`; everything else (throttling, 5xx, timeouts, dispatch failures) is `Unavailable`
/// so callers retry or answer 503.
pub(crate) fn classify<E, R>(operation: &str, error: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("Unknown");
            let message = err.message().unwrap_or("");
            match code {
                "ValidationException"
                | "InvalidParameterValue"
                | "InvalidParameterException"
                | "InvalidRequestException"
                | "MessageTooLong"
                | "InvalidMessageContents"
                | "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
                | "BatchEntryIdsNotDistinct"
                | "TooManyEntriesInBatchRequest"
                | "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
                | "ItemCollectionSizeLimitExceededException" => {
                    let detail = format!("{operation}: {code}: {message}");
                    match code {
                        "MessageTooLong" | "ItemCollectionSizeLimitExceededException" => PortError::too_large(detail),
                        _ => PortError::invalid(detail),
                    }
                }
                _ => PortError::Unavailable(format!("{operation}: {code}: {message}")),
            }
        }
        SdkError::ConstructionFailure(_) => PortError::invalid(format!("{operation}: request could not be built")),
        SdkError::TimeoutError(_) => PortError::Unavailable(format!("{operation}: timed out")),
        SdkError::DispatchFailure(_) => PortError::Unavailable(format!("{operation}: could not reach the service")),
        SdkError::ResponseError(_) => PortError::Unavailable(format!("{operation}: unreadable response")),
        _ => PortError::Unavailable(format!("{operation}: {error}")),
    }
}

/// The service error code of an SDK failure, if it is one.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Backoff between retries of partially failed batch calls.
pub(crate) async fn batch_backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt.min(5)))).await;
}
