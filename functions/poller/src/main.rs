//! Lambda entrypoint of the poller: the EventBridge tick and batches from the polls queue.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use switchyard::runtime::{Platform, lambda};

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_main(|| async {
        lambda::init_logging();
        let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
        lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
            switchyard_poller::handle_event(platform, event.payload).await.map_err(lambda_runtime::Error::from)
        }))
        .await
    })
}
