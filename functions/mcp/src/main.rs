//! Lambda entrypoint of the MCP endpoint (API Gateway HTTP API, `POST /mcp`).

use switchyard::runtime::{Platform, lambda};

fn main() -> Result<(), lambda_http::Error> {
    lambda::run_main(|| async {
        lambda::init_logging();
        let platform: &'static Platform = Box::leak(Box::new(Platform::from_env().await?));
        lambda::serve_http(|req| switchyard_mcp::handle(platform, req)).await
    })
}
