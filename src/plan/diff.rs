//! What an apply would change, as the plan shows it: per object created, unchanged or updated
//! with a unified diff of the live object against what applying would make of it, both
//! normalised. Pure: the cluster side (the server-side dry-run that produces "what applying
//! would make") is `platform::eks::diff`.
//!
//! A Secret's values never reach a diff: [`unified`] replaces every `data`/`stringData` value
//! with a marker before rendering, as `kubectl diff` does (`***` when a key is the same on both
//! sides or exists on one side only, `*** (before)` / `*** (after)` when its value changed), so
//! the diff says which keys were added, removed or changed and nothing else. [`Diff`] can only
//! be built here, so the plan text, the Markdown (PR comment, job summary) and the JSON events,
//! which all print a [`Diff`], cannot show a value.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::render::ObjectRef;

/// The change to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum ObjectChange {
    Create { object: ObjectRef },
    Update { object: ObjectRef, diff: Diff },
    Unchanged { object: ObjectRef },
}

/// A unified diff of two objects with every Secret value redacted. Only [`unified`] makes one
/// (there is no `From<String>`), so whatever prints a plan prints redacted text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diff(String);

impl std::ops::Deref for Diff {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Diff {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a Secret value shows as when it is the same on both sides, or on one side only.
pub const REDACTED: &str = "***";
/// What a changed Secret value shows as on the live side.
pub const REDACTED_BEFORE: &str = "*** (before)";
/// What a changed Secret value shows as on the desired side.
pub const REDACTED_AFTER: &str = "*** (after)";

/// A Secret (the kind whose `data`/`stringData` hold credentials). Any API group: a kind of
/// that name elsewhere is as likely to hold secrets, and redacting it too costs nothing.
fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// A Secret's content key by key, as the API server stores it: `data` decoded from base64, then
/// `stringData` over it (the server merges `stringData` into `data` the same way).
fn secret_content(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let raw = v.as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .unwrap_or_else(|_| raw.as_bytes().to_vec());
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(sd) = obj.get("stringData").and_then(Value::as_object) {
        for (k, v) in sd {
            out.insert(k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned).into_bytes());
        }
    }
    out
}

/// Replaces every `data`/`stringData` value of a Secret on either side with a marker (see the
/// module documentation); keys stay, so a diff still names them. Other kinds are left alone.
pub fn redact_secrets(live: &mut Value, desired: &mut Value) {
    if !is_secret(live) && !is_secret(desired) {
        return;
    }
    let (old, new) = (secret_content(live), secret_content(desired));
    let mark = |obj: &mut Value,
                mine: &BTreeMap<String, Vec<u8>>,
                other: &BTreeMap<String, Vec<u8>>,
                changed: &str| {
        let Some(o) = obj.as_object_mut() else { return };
        for field in ["data", "stringData"] {
            match o.get_mut(field) {
                Some(Value::Object(m)) => {
                    for (k, v) in m.iter_mut() {
                        let same = mine.get(k) == other.get(k) || other.get(k).is_none();
                        *v = Value::String(if same { REDACTED } else { changed }.to_owned());
                    }
                }
                // Not a map (malformed, or a future shape): nothing of it may show.
                Some(v) if !v.is_null() => *v = Value::String(REDACTED.to_owned()),
                _ => {}
            }
        }
    };
    mark(live, &old, &new, REDACTED_BEFORE);
    mark(desired, &new, &old, REDACTED_AFTER);
}

/// Fields that say nothing about desired state (bookkeeping, status, controller annotations).
pub fn normalize(mut obj: Value) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"] {
            m.remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    obj
}

fn yaml(v: &Value) -> String {
    // One line per scalar: a folded image reference would split the line a reviewer looks for.
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(v, opts)
        .unwrap_or_else(|_| serde_json::to_string_pretty(v).unwrap_or_default())
}

/// A unified diff of two normalised objects (empty when equal), Secret values redacted.
pub fn unified(live: &Value, desired: &Value, name: &str) -> Diff {
    let (mut live, mut desired) = (normalize(live.clone()), normalize(desired.clone()));
    redact_secrets(&mut live, &mut desired);
    let (a, b) = (yaml(&live), yaml(&desired));
    if a == b {
        return Diff::default();
    }
    Diff(
        similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("live/{name}"), &format!("desired/{name}"))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_is_not_a_change() {
        let live = serde_json::json!({"metadata":{"name":"a","resourceVersion":"5","generation":3,"managedFields":[{}],
            "annotations":{"deployment.kubernetes.io/revision":"3"}},"spec":{"replicas":2},"status":{"replicas":2}});
        let same = serde_json::json!({"metadata":{"name":"a","resourceVersion":"9"},"spec":{"replicas":2}});
        assert_eq!(unified(&live, &same, "Deployment/a"), "");
        let more = serde_json::json!({"metadata":{"name":"a"},"spec":{"replicas":3}});
        let d = unified(&live, &more, "Deployment/a");
        assert!(d.contains("-  replicas: 2") && d.contains("+  replicas: 3"), "{d}");
        assert!(d.starts_with("--- live/Deployment/a\n+++ desired/Deployment/a\n"), "{d}");
    }

    fn secret(data: &Value, string_data: Option<Value>) -> Value {
        let mut s = serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s",
            "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"pw\":\"hunter2-old\"}}"}},
            "type":"Opaque","data":data});
        if let Some(sd) = string_data {
            s["stringData"] = sd;
        }
        s
    }

    #[test]
    fn secret_values_never_show_only_the_keys_that_changed() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let live = secret(
            &serde_json::json!({"pw": b64("hunter2-old"), "same": b64("unchanged-value"), "gone": b64("removed-value")}),
            None,
        );
        let desired = secret(
            &serde_json::json!({"pw": b64("hunter2-new"), "same": b64("unchanged-value")}),
            Some(serde_json::json!({"added": "added-value"})),
        );
        let d = unified(&live, &desired, "Secret/s");
        for value in ["hunter2-old", "hunter2-new", "unchanged-value", "removed-value", "added-value"] {
            for form in [value.to_owned(), value[..8].to_owned(), b64(value)] {
                assert!(!d.contains(&form), "{form} leaked:\n{d}");
            }
        }
        let changed: Vec<&str> = d
            .lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .collect();
        assert!(
            changed.iter().any(|l| l.starts_with('-') && l.contains("pw:") && l.contains(REDACTED_BEFORE)),
            "{d}"
        );
        assert!(
            changed.iter().any(|l| l.starts_with('+') && l.contains("pw:") && l.contains(REDACTED_AFTER)),
            "{d}"
        );
        assert!(changed.iter().any(|l| l.starts_with('-') && l.contains("gone:")), "{d}");
        assert!(changed.iter().any(|l| l.starts_with('+') && l.contains("added:")), "{d}");
        assert!(!changed.iter().any(|l| l.contains("same:")), "an unchanged key is not a change:\n{d}");

        // Equal values, whatever their encoding: no change at all.
        let same = secret(&serde_json::json!({"k": b64("v1-secret")}), None);
        let as_string_data = secret(&serde_json::json!({}), Some(serde_json::json!({"k": "v1-secret"})));
        assert!(unified(&same, &same, "Secret/s").is_empty());
        let d = unified(&same, &as_string_data, "Secret/s");
        assert!(!d.contains("v1-secret") && !d.contains(&b64("v1-secret")), "{d}");
        // Other kinds keep their values.
        let cm = |v: &str| serde_json::json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":v}});
        assert!(unified(&cm("a"), &cm("b"), "ConfigMap/c").contains("+  k: b"));
    }

    #[test]
    fn a_secret_with_data_that_is_not_a_map_shows_nothing_of_it() {
        let mut live = serde_json::json!({"kind":"Secret","data":"c2VjcmV0LXN0cmluZw=="});
        let mut desired = serde_json::json!({"kind":"Secret","stringData":["secret-string"]});
        redact_secrets(&mut live, &mut desired);
        assert_eq!(live["data"], REDACTED);
        assert_eq!(desired["stringData"], REDACTED);
    }
}
