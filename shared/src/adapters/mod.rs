//! The ports over real dependencies: AWS (`aws`), the embedded SQLite file (`embedded`), the
//! outbound HTTP client behind the SSRF guard, the in-process cache in front of secrets, and
//! metrics as CloudWatch Embedded Metric Format lines.

#[cfg(feature = "aws")]
pub mod aws;
pub mod cached_secrets;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod emf;
pub mod oidc;
pub mod outbound;
