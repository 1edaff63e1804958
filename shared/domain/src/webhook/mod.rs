//! The webhook pipeline's pure parts: signature schemes, delivery ids, normalization.

pub mod envelope;
pub mod signature;
