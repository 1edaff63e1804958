//! The store's items: keys of the single-table design (and the repositories over them).

pub mod keys;
