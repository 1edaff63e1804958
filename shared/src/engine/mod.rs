//! Flow execution: expressions, templates, planning and step runners.

pub mod expr;
pub mod template;
