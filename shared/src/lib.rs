//! Switchyard's shared crate: everything the Lambda functions have in common, over the pure
//! types and rules of [`domain`] (the `switchyard-domain` crate).
//!
//! - [`ports`]: the traits every function talks to the world through, with [`aws`] and
//!   [`embedded`] adapters.
//! - [`store`]: store keys (and repositories).
//! - [`engine`]: planning, step runners and the durable driver.

pub use switchyard_domain as domain;

pub mod aws;
pub mod embedded;
pub mod engine;
pub mod lambda;
pub mod outbound;
pub mod platform;
pub mod ports;
pub mod secrets_cache;
pub mod store;
pub mod store_limits;
