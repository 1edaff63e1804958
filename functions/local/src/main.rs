//! `switchyard-local`: the whole platform in one process on 127.0.0.1:3000
//! (`SWITCHYARD_ADDR`), on the embedded backend unless `SWITCHYARD_BACKEND=aws`.

use std::sync::Arc;

use switchyard::runtime::{Backend, lambda};
use switchyard_local::{LocalConfig, demo, serve};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    lambda::run_main(|| async {
        lambda::init_logging();
        let addr = std::env::var("SWITCHYARD_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
        let platform = Arc::new(switchyard_local::build_platform().await?);
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        println!("Switchyard dev server on {base_url} ({})", switchyard_local::describe(&platform));
        if let Backend::Embedded { path } = &platform.settings.backend {
            let state_dir = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new("."));
            let demo = demo::ensure(&platform, &base_url, state_dir).await?;
            println!("{}", demo::instructions(&demo, &base_url));
        }
        serve(platform, listener, LocalConfig::from_env()?, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}
