//! The smallest HTTP Lambda in Rust (lambda_http answering "hello"): the baseline that
//! `scripts/bench-cold-start` compares the functions' cold starts with.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(|_req: lambda_http::Request| async {
        Ok::<_, std::convert::Infallible>(lambda_http::Response::new(lambda_http::Body::from("hello")))
    }))
    .await
}
