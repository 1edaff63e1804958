//! Lambda entrypoint of the control plane API (API Gateway HTTP API).

use switchyard::runtime::{Platform, lambda};

fn main() -> Result<(), lambda_http::Error> {
    lambda::run_main(|| async {
        lambda::init_logging();
        let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
        lambda::serve_http(|req| switchyard_api::handle(platform, req)).await
    })
}
