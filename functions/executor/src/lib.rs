//! The executor: consumes batches from the runs queue and drives each execution
//! (`usecases::runs::run_batch` over `engine::run`, whose module doc states the protocol).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use switchyard::engine::run::Budget;
use switchyard::runtime::Platform;
use switchyard::runtime::lambda::{batch_messages, batch_response};
use switchyard::usecases::runs;

/// Process one SQS batch within `budget`; the response lists the messages to redeliver.
pub async fn handle(p: &Platform, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let failed = runs::run_batch(&p.engine, p.settings.retry_base_secs, batch_messages(event), budget).await;
    batch_response(failed)
}
