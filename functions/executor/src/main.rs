//! Lambda entrypoint of the executor (SQS event source with ReportBatchItemFailures).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use switchyard::engine::run::Budget;
use switchyard::runtime::{Platform, lambda};

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_main(|| async {
        lambda::init_logging();
        let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
        lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
            let budget = Budget::until(lambda::deadline(event.context.deadline));
            Ok::<_, lambda_runtime::Error>(switchyard_executor::handle(platform, event.payload, budget).await)
        }))
        .await
    })
}
