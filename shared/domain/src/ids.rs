//! Identifiers. Each is parsed once at the edge (parse, don't validate) and is then known to be
//! safe inside a store key (no `#`), a URL path segment and a log line.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
    pub rule: &'static str,
}

fn check(
    kind: &'static str,
    value: &str,
    max: usize,
    allowed: fn(char) -> bool,
    rule: &'static str,
) -> Result<(), InvalidId> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && value.chars().all(allowed);
    if ok {
        Ok(())
    } else {
        // Cap what we echo back: the value came from a request.
        let shown: String = value.chars().take(80).collect();
        Err(InvalidId { kind, value: shown, rule })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $allowed:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                check($kind, &value, $max, $allowed, $rule)?;
                Ok($name(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }
    };
}

fn slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn lower_slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')
}

fn generated_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

id_type!(
    /// A space (one SaaS company's project), chosen at creation.
    SpaceId, "space id", 64, slug_char, "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
);
id_type!(
    /// A tenant (one customer of the space), chosen by the space, usually its own customer id.
    /// Unique across the deployment so webhook URLs need no space.
    TenantId, "tenant id", 64, slug_char, "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
);
id_type!(
    /// A connector of the catalog (`shopify`, `google_sheets`...).
    ConnectorId, "connector id", 48, lower_slug_char, "1-48 lower-case letters, digits, '-' or '_'"
);
id_type!(
    /// A step within a flow.
    StepId, "step id", 64, slug_char, "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
);
id_type!(
    /// A flow, generated (`flw_…`) or chosen at creation.
    FlowId, "flow id", 64, slug_char, "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
);
id_type!(
    /// An alert rule of a space, chosen by the space.
    AlertId, "alert id", 64, slug_char, "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
);
id_type!(
    /// An execution: `ex_` and a ULID, so executions sort by start time.
    ExecutionId, "execution id", 40, generated_char, "an id as returned by the API (ex_…)"
);
id_type!(
    /// An API key's public id (`key_…`); the key itself is only ever shown once.
    ApiKeyId, "api key id", 40, generated_char, "an id as returned by the API (key_…)"
);

/// A new ULID whose time part comes from `now_ms` (so fake clocks give ordered ids too).
pub fn ulid_at(now_ms: i64) -> ulid::Ulid {
    ulid::Ulid::from_parts(now_ms.max(0) as u64, rand::random::<u128>())
}

impl ExecutionId {
    pub fn generate(now_ms: i64) -> Self {
        ExecutionId(format!("ex_{}", ulid_at(now_ms)))
    }
    /// When the execution was created, from the ULID's time part.
    pub fn created_at_ms(&self) -> Option<i64> {
        let ulid = self.0.strip_prefix("ex_")?;
        ulid::Ulid::from_string(ulid).ok().map(|u| u.timestamp_ms() as i64)
    }
}

impl FlowId {
    pub fn generate(now_ms: i64) -> Self {
        FlowId(format!("flw_{}", ulid_at(now_ms)))
    }
}

impl ApiKeyId {
    pub fn generate(now_ms: i64) -> Self {
        ApiKeyId(format!("key_{}", ulid_at(now_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_key_delimiters_and_oddities() {
        for bad in ["", "a#b", "a/b", " a", "-a", "a b", "é", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["acme", "ACME-01", "cust_42", "a.b"] {
            assert!(TenantId::parse(good).is_ok(), "{good:?} should be accepted");
        }
        assert!(ConnectorId::parse("Shopify").is_err());
        assert!(ConnectorId::parse("google_sheets").is_ok());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        assert!(serde_json::from_str::<SpaceId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<SpaceId>("\"no#pe\"").is_err());
    }

    #[test]
    fn execution_ids_sort_by_time_and_carry_it() {
        let a = ExecutionId::generate(1_000);
        let b = ExecutionId::generate(2_000);
        assert!(a < b);
        assert_eq!(b.created_at_ms(), Some(2_000));
        assert!(ExecutionId::parse(a.as_str()).is_ok());
    }
}
