//! Lambda entrypoint of the poller (EventBridge schedule).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use switchyard::{lambda, platform::Platform};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
    lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent>| async move {
        switchyard_poller::handle(platform, event.payload).await.map_err(lambda_runtime::Error::from)
    }))
    .await
}
