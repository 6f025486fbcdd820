//! ECS task definitions rendered from a JSON template.
//!
//! Placeholders are substituted inside JSON string values after parsing, never in the raw
//! text, so a value containing quotes cannot corrupt the document.

use std::collections::BTreeMap;

use serde_json::Value;

use super::RenderError;

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["image", "env", "region", "account_id", "log_group"];

/// Renders `template` (JSON text) with `vars`; unknown placeholders are errors.
pub fn render_task_definition(
    template: &str,
    vars: &BTreeMap<&str, String>,
    service: &str,
) -> Result<Value, RenderError> {
    let err = |message: String| RenderError::TaskDefinition { service: service.into(), message };
    let mut doc: Value = serde_json::from_str(template).map_err(|e| err(format!("invalid JSON: {e}")))?;
    substitute(&mut doc, vars).map_err(err)?;
    if doc.get("family").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(err("`family` is missing".into()));
    }
    let containers = doc.get("containerDefinitions").and_then(Value::as_array).map_or(0, Vec::len);
    if containers == 0 {
        return Err(err("`containerDefinitions` is empty".into()));
    }
    Ok(doc)
}

/// The exact bytes of the `RegisterTaskDefinition` request for a rendered definition: what
/// `deploy` sends and what `deployer render` prints (one compact JSON document).
pub fn request_body(doc: &Value) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(doc)
}

fn substitute(v: &mut Value, vars: &BTreeMap<&str, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or_else(|| format!("unclosed placeholder in `{s}`"))?;
                let name = &after[..end];
                let value = vars.get(name).ok_or_else(|| {
                    format!("unknown placeholder `${{{name}}}`; known: {}", PLACEHOLDERS.join(", "))
                })?;
                out.push_str(value);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| substitute(x, vars))?,
        Value::Object(m) => m.values_mut().try_for_each(|x| substitute(x, vars))?,
        _ => {}
    }
    Ok(())
}

/// Container images in a rendered task definition.
pub fn images_of(taskdef: &Value) -> Vec<String> {
    taskdef
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("image")?.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_inside_strings_only() {
        let vars = BTreeMap::from([("image", "r/x@sha256:1".to_owned()), ("env", "dev\"q".to_owned())]);
        let v = render_task_definition(
            r#"{"family":"f-${env}","containerDefinitions":[{"image":"${image}"}]}"#,
            &vars,
            "x",
        )
        .unwrap();
        assert_eq!(v["family"], "f-dev\"q");
        assert_eq!(images_of(&v), vec!["r/x@sha256:1"]);
        assert!(
            render_task_definition(r#"{"family":"${nope}","containerDefinitions":[{}]}"#, &vars, "x")
                .is_err()
        );
    }
}
