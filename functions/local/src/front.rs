//! The dev server's front door: what API Gateway does before a function sees a request.
//!
//! Limits, as a reverse proxy has them (API Gateway's own are similar; see `Limits`): a cap on
//! open connections (more wait in the listen backlog), request headers within a timeout (which
//! also closes keep-alive connections idle that long), the body within another, and at most
//! `MAX_REQUEST_BYTES` of it. A body that is cut off or badly framed (a chunk size that is not
//! hex) is a 400; one over the limit a 413; one too slow a 408.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use switchyard::runtime::Platform;
use switchyard::runtime::http::json as json_response;
use tokio::sync::Semaphore;

/// API Gateway's HTTP API payload limit.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// The front door's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and an idle keep-alive connection to
    /// start its next request).
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct Door {
    platform: Arc<Platform>,
    limits: Limits,
}

/// The HTTP front door.
pub fn router(platform: Arc<Platform>, limits: Limits) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(Door { platform, limits })
}

fn refusal(status: u16, code: &str, message: &str) -> switchyard::runtime::http::Response {
    json_response(status, &json!({"error": {"code": code, "message": message}}))
}

async fn dispatch(State(door): State<Door>, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        refusal(413, "payload_too_large", "request body over 10 MiB")
    } else {
        let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
        match tokio::time::timeout(door.limits.body_read_timeout, http_body_util::BodyExt::collect(limited)).await {
            Ok(Ok(collected)) => {
                crate::route(&door.platform, http::Request::from_parts(parts, collected.to_bytes())).await
            }
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                refusal(413, "payload_too_large", "request body over 10 MiB")
            }
            Ok(Err(_)) => refusal(400, "bad_request", "the request body is malformed or incomplete"),
            Err(_) => refusal(408, "request_timeout", "the request body did not arrive in time"),
        }
    };
    response.map(axum::body::Body::from)
}

/// Accept connections until `shutdown` resolves, then finish the requests in flight.
pub async fn serve(
    platform: Arc<Platform>,
    listener: tokio::net::TcpListener,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(platform, limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A client that shuts its side down after sending still gets its answer (as from nginx).
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true).half_close(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // Stop accepting; let the requests in flight finish (for at most as long as a body read).
    let _ = tokio::time::timeout(limits.body_read_timeout, graceful.shutdown()).await;
    Ok(())
}
