//! Flow execution: expressions, templates, planning, step runners and the durable driver.

pub mod actions;
pub mod foreach;
pub mod paging;
pub mod plan;
pub mod run;
pub mod steps;
