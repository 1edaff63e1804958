//! Lambda entrypoint of the scheduler (EventBridge schedule).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use switchyard::runtime::{Platform, lambda};

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_main(|| async {
        lambda::init_logging();
        let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
        lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent>| async move {
            switchyard_scheduler::handle(platform, event.payload).await.map_err(lambda_runtime::Error::from)
        }))
        .await
    })
}
