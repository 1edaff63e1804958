//! The canonical data model (CDM): the entities connector payloads are mapped to, so a flow can
//! move an order from Shopify to Xero without knowing either's shape.
//!
//! Conventions (every mapping in `shared/domain/connectors/` follows them):
//! - `id` is the record's id in the source system, as a string; `source` names the connector.
//! - Money amounts are decimal numbers in major units (12.5 = 12.50), with an ISO 4217
//!   `currency`; mappings from providers that count in minor units (Stripe) divide.
//! - Times are RFC 3339 strings in UTC; dates without a time are `YYYY-MM-DD`.
//! - Unknown values are `null` (absent from the JSON), never empty strings.
//!
//! The JSON Schemas (`cdm.schema.json`, served by the API) describe the same shapes; a test
//! checks that every mapping's output on real provider payloads validates against them.

use serde::{Deserialize, Serialize};

/// Canonical entities, by the name used in flows and catalog mappings.
pub const ENTITIES: &[&str] = &["contact", "product", "order", "invoice", "inventory_level", "fulfillment"];

/// The JSON Schemas of the entities (`$defs` by entity name).
pub const SCHEMA: &str = include_str!("cdm.schema.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 where the source gives it, else as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Who an order or invoice is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PartyRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub id: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductVariant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_quantity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub source: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// active, draft or archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<ProductVariant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub description: String,
    pub quantity: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// open, closed or cancelled.
    pub status: String,
    /// pending, paid, partially_paid, refunded, partially_refunded, voided, unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<String>,
    /// unfulfilled, partial, fulfilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<PartyRef>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtotal: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<f64>,
    pub total: f64,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    pub id: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// draft, open, paid, void or uncollectible.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<PartyRef>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtotal: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<f64>,
    pub total: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_paid: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryLevel {
    pub source: String,
    /// The inventory item (or SKU) the level is for.
    pub item_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    pub available: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentLine {
    pub id: String,
    pub quantity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fulfillment {
    pub id: String,
    pub source: String,
    pub order_id: String,
    /// pending, open, success, cancelled, error or failure (Shopify's vocabulary, the richest).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub line_items: Vec<FulfillmentLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// Check a mapped value by deserializing it into its entity type: the mapping produced exactly
/// the canonical shape (no unknown fields, required fields present, right types).
pub fn check(entity: &str, value: &serde_json::Value) -> Result<(), String> {
    fn parse<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<(), String> {
        T::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
    }
    match entity {
        "contact" => parse::<Contact>(value),
        "product" => parse::<Product>(value),
        "order" => parse::<Order>(value),
        "invoice" => parse::<Invoice>(value),
        "inventory_level" => parse::<InventoryLevel>(value),
        "fulfillment" => parse::<Fulfillment>(value),
        other => Err(format!("unknown entity {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;
    use crate::connector::Catalog;
    use crate::expr::Expr;

    /// Equal as JSON, numbers compared by value (jq yields 15.0 where a document says 15).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn mappings_turn_provider_payloads_into_canonical_entities() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("connectors/fixtures");
        let document: Value = serde_json::from_str(SCHEMA).unwrap();
        let schemas: std::collections::HashMap<String, jsonschema::Validator> = ENTITIES
            .iter()
            .map(|entity| {
                let mut schema = document.clone();
                schema["$ref"] = Value::String(format!("#/$defs/{entity}"));
                (entity.to_string(), jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{entity}: {e}")))
            })
            .collect();
        assert!(!schemas["contact"].is_valid(&serde_json::json!({"surprise": 1})), "the schemas are not vacuous");
        let mut covered = Vec::new();
        for connector_dir in std::fs::read_dir(&root).unwrap() {
            let connector_dir = connector_dir.unwrap().path();
            let connector = connector_dir.file_name().unwrap().to_string_lossy().into_owned();
            let spec = Catalog::builtin()
                .find(&connector)
                .unwrap_or_else(|| panic!("fixtures for unknown connector {connector}"));
            for file in std::fs::read_dir(&connector_dir).unwrap() {
                let file = file.unwrap().path();
                let entity = file.file_stem().unwrap().to_string_lossy().into_owned();
                let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
                assert!(
                    fixture["source_url"].as_str().is_some_and(|u| u.starts_with("https://")),
                    "{connector}/{entity}: cite the docs"
                );
                let mapping =
                    spec.cdm_mapping(&entity).unwrap_or_else(|| panic!("{connector} has no {entity} mapping"));
                let output = Expr::compile(&mapping.expr).unwrap().eval(&fixture["input"]).unwrap();
                check(&entity, &output)
                    .unwrap_or_else(|e| panic!("{connector}/{entity}: not a canonical {entity}: {e}\n{output:#}"));
                // And against the published JSON Schema, so the document and the types agree.
                let problems: Vec<String> =
                    schemas[&entity].iter_errors(&output).map(|e| format!("{}: {e}", e.instance_path())).collect();
                assert!(
                    problems.is_empty(),
                    "{connector}/{entity}: the JSON Schema refuses it: {problems:?}\n{output:#}"
                );
                assert!(
                    same(&output, &fixture["expected"]),
                    "{connector}/{entity}:\n got {output:#}\nwant {:#}",
                    fixture["expected"]
                );
                assert_eq!(output["source"], connector.as_str(), "{connector}/{entity}: source names the connector");
                covered.push(format!("{connector}/{entity}"));
            }
        }
        for spec in Catalog::builtin().all() {
            for mapping in &spec.cdm {
                let name = format!("{}/{}", spec.id, mapping.entity);
                assert!(covered.contains(&name), "mapping {name} has no fixture");
            }
        }
        for required in ["shopify/order", "hubspot/contact", "stripe/invoice", "xero/invoice", "salesforce/contact"] {
            assert!(covered.contains(&required.to_string()), "{required}");
        }
    }

    #[test]
    fn the_schema_document_names_every_entity() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        for entity in ENTITIES {
            assert!(schema["$defs"][entity].is_object(), "{entity}");
        }
    }
}
