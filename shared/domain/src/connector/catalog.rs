//! The catalog: the connector files compiled into the binaries (and a deployment's private
//! ones), parsed once per container. `Catalog::builtin()` checks the structure of every file at
//! start-up; the test suite compiles every expression too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::check::{Depth, check_spec};
use super::spec::ConnectorSpec;
use crate::ids::ConnectorId;

/// All connectors, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    connectors: BTreeMap<ConnectorId, ConnectorSpec>,
}

/// The catalog files compiled into the binaries.
pub(super) const BUILTIN: &[(&str, &str)] = &[
    ("github", include_str!("../../connectors/github.yaml")),
    ("gmail", include_str!("../../connectors/gmail.yaml")),
    ("google_sheets", include_str!("../../connectors/google_sheets.yaml")),
    ("hubspot", include_str!("../../connectors/hubspot.yaml")),
    ("jira", include_str!("../../connectors/jira.yaml")),
    ("notion", include_str!("../../connectors/notion.yaml")),
    ("salesforce", include_str!("../../connectors/salesforce.yaml")),
    ("shopify", include_str!("../../connectors/shopify.yaml")),
    ("slack", include_str!("../../connectors/slack.yaml")),
    ("stripe", include_str!("../../connectors/stripe.yaml")),
    ("xero", include_str!("../../connectors/xero.yaml")),
    ("zendesk", include_str!("../../connectors/zendesk.yaml")),
    ("standard_webhooks", include_str!("../../connectors/standard_webhooks.yaml")),
    ("custom_webhooks", include_str!("../../connectors/custom_webhooks.yaml")),
];

/// The connector id no catalog file may take: the platform's MCP tools are named after it.
pub const RESERVED_ID: &str = "switchyard";

impl Catalog {
    /// The built-in catalog, parsed and checked once per process. A broken catalog file is a
    /// build defect caught by the test suite, so this panics rather than limping on.
    /// The compiled-in connectors. At start-up only their structure is checked: compiling
    /// every jq expression of the catalog would add a tenth of a second to each cold start, and
    /// the test suite compiles them all (`Catalog::from_files(BUILTIN)`); expressions compile
    /// when first used.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse(BUILTIN, Depth::Structure).unwrap_or_else(|e| panic!("connector catalog: {e}"))
        })
    }

    /// Parse and fully check catalog files (name, YAML text), expressions included.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Catalog, String> {
        Catalog::parse(files, Depth::Full)
    }

    fn parse(files: &[(&str, &str)], depth: Depth) -> Result<Catalog, String> {
        let mut connectors = BTreeMap::new();
        for (name, text) in files {
            let spec: ConnectorSpec = serde_saphyr::from_str(text).map_err(|e| format!("{name}.yaml: {e}"))?;
            if spec.id.as_str() != *name {
                return Err(format!("{name}.yaml declares id {:?}", spec.id.as_str()));
            }
            // The platform's own MCP tools are `switchyard_*`.
            if spec.id.as_str() == RESERVED_ID {
                return Err(format!("{name}.yaml: the connector id {RESERVED_ID} is reserved for the platform"));
            }
            check_spec(&spec, depth).map_err(|e| format!("{name}.yaml: {e}"))?;
            connectors.insert(spec.id.clone(), spec);
        }
        let catalog = Catalog { connectors };
        catalog.check_tool_names()?;
        Ok(catalog)
    }

    /// MCP names each action `{connector}_{action}`; two actions must not share a name
    /// (`a_b` + `c` and `a` + `b_c`), or one would hide the other.
    fn check_tool_names(&self) -> Result<(), String> {
        let mut seen = std::collections::HashMap::new();
        for spec in self.connectors.values() {
            for action in &spec.actions {
                let name = format!("{}_{}", spec.id, action.id);
                if let Some(other) = seen.insert(name.clone(), format!("{}.{}", spec.id, action.id)) {
                    return Err(format!("actions {other} and {}.{} share the tool name {name}", spec.id, action.id));
                }
            }
        }
        Ok(())
    }

    /// The built-in catalog plus every `*.yaml` connector file of `dir` (private connectors of
    /// a self-hosted deployment). An extra file may not replace a built-in connector.
    pub fn with_extra_dir(dir: &std::path::Path) -> Result<Catalog, String> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((name, text));
        }
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        let extra = Catalog::from_files(&refs)?;
        let mut catalog = Catalog::builtin().clone();
        for (id, spec) in extra.connectors {
            if catalog.connectors.contains_key(&id) {
                return Err(format!("{id}.yaml would replace the built-in connector {id}"));
            }
            catalog.connectors.insert(id, spec);
        }
        catalog.check_tool_names()?;
        Ok(catalog)
    }

    pub fn get(&self, id: &ConnectorId) -> Option<&ConnectorSpec> {
        self.connectors.get(id)
    }

    /// Look up by an unparsed id (from a URL).
    pub fn find(&self, id: &str) -> Option<&ConnectorSpec> {
        ConnectorId::parse(id).ok().and_then(|id| self.connectors.get(&id))
    }

    pub fn all(&self) -> impl Iterator<Item = &ConnectorSpec> {
        self.connectors.values()
    }
}
