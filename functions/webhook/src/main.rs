//! Lambda entrypoint of the webhook receiver (API Gateway HTTP API).

use switchyard::runtime::{Platform, lambda};

fn main() -> Result<(), lambda_http::Error> {
    lambda::run_main(|| async {
        lambda::init_logging();
        // Built once per container; lives as long as the process.
        let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
        lambda::serve_http(|req| switchyard_webhook::handle(platform, req)).await
    })
}
