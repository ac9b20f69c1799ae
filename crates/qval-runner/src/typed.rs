//! [`Typed`]: something an experiment file chooses by type, with its own parameters.

use serde::{Deserialize, Serialize};

/// Something chosen by type with its own parameters: an environment, a collector, a
/// reference policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Typed {
    /// The registered type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's parameters.
    #[serde(flatten)]
    pub params: toml::Table,
}

impl Typed {
    /// A type with no parameters.
    pub fn named(kind: &str) -> Self {
        Typed {
            kind: kind.into(),
            params: toml::Table::new(),
        }
    }
}
