//! The ports over real dependencies: AWS (`aws`), the embedded SQLite file (`embedded`), the
//! outbound HTTP client behind the SSRF guard, and the in-process cache in front of secrets.

#[cfg(feature = "aws")]
pub mod aws;
pub mod cached_secrets;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod oidc;
pub mod outbound;
