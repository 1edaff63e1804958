//! The canonical data model (CDM): the entities connector payloads are mapped to.

/// Canonical entities, by the name used in flows and catalog mappings.
pub const ENTITIES: &[&str] = &[
    "contact",
    "product",
    "order",
    "invoice",
    "inventory_level",
    "fulfillment",
];
