//! JSON Schema for editors, generated from the configuration types.
//!
//! The committed copies in `schema/` are checked by a test so they never drift from the code.

use schemars::schema_for;

use super::{EnvironmentFile, ProductFile};

/// Schema of `deployer.yaml`, pretty-printed with a trailing newline.
pub fn product_schema() -> String {
    pretty(&serde_json::to_value(schema_for!(ProductFile)).unwrap_or_default())
}

/// Schema of `environments/<env>.yaml`, pretty-printed with a trailing newline.
pub fn environment_schema() -> String {
    pretty(&serde_json::to_value(schema_for!(EnvironmentFile)).unwrap_or_default())
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
