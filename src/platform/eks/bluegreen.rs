//! Blue-green on Kubernetes, as pure transformations of a rendered release.
//!
//! Each Deployment `<name>` becomes `<name>-blue` or `<name>-green` (the colour added to its
//! selector and pod labels: selectors are immutable, so a colour is a separate Deployment), and
//! each Service that selects a Deployment's pods selects one colour. The flow (in `mod.rs`)
//! applies the idle colour, waits for it, runs smoke checks, switches the Services' selectors,
//! bakes, and keeps the previous colour for `scale_down_delay` so switching back is a selector
//! change that takes seconds, not new pods.

use serde_json::{Map, Value};

/// Label that carries the colour (defined with the other labels deployer writes).
pub use crate::render::kustomize::COLOR_LABEL;

/// The two colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Green => "green",
        }
    }

    pub const fn other(self) -> Self {
        match self {
            Self::Blue => Self::Green,
            Self::Green => Self::Blue,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "blue" => Some(Self::Blue),
            "green" => Some(Self::Green),
            _ => None,
        }
    }
}

/// The colour the Services of an applied release select, if it was a blue-green release.
pub fn live_color(objects: &[Value]) -> Option<Color> {
    objects.iter().filter(|o| o["kind"] == "Service").find_map(|o| {
        o.pointer(&format!("/spec/selector/{}", COLOR_LABEL.replace('/', "~1")))?
            .as_str()
            .and_then(Color::parse)
    })
}

fn labels_subset(selector: &Map<String, Value>, labels: &Map<String, Value>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| k == COLOR_LABEL || labels.get(k) == Some(v))
}

/// The release's objects for `color`: Deployments renamed and labelled, and Services that select
/// a Deployment's pods pointed at `service_color` (the live colour before the switch, `color`
/// after it).
pub fn colorize(objects: &[Value], color: Color, service_color: Color) -> Vec<Value> {
    let pod_labels: Vec<Map<String, Value>> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter_map(|o| o.pointer("/spec/template/metadata/labels")?.as_object().cloned())
        .collect();
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            match o["kind"].as_str() {
                Some("Deployment") => {
                    if let Some(name) = o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned)
                    {
                        o["metadata"]["name"] = Value::String(format!("{name}-{}", color.as_str()));
                    }
                    for path in ["/spec/selector/matchLabels", "/spec/template/metadata/labels"] {
                        if let Some(m) = o.pointer_mut(path).and_then(Value::as_object_mut) {
                            m.insert(COLOR_LABEL.into(), Value::String(color.as_str().into()));
                        }
                    }
                }
                Some("Service") => {
                    let selects_ours = o
                        .pointer("/spec/selector")
                        .and_then(Value::as_object)
                        .is_some_and(|sel| pod_labels.iter().any(|l| labels_subset(sel, l)));
                    if selects_ours
                        && let Some(sel) = o.pointer_mut("/spec/selector").and_then(Value::as_object_mut)
                    {
                        sel.insert(COLOR_LABEL.into(), Value::String(service_color.as_str().into()));
                    }
                }
                _ => {}
            }
            o
        })
        .collect()
}

/// The previous release's coloured Deployments whose other colour `current` now runs, as they
/// are to be kept: scaled to 0. After a blue-green release the old colour stays as an object
/// (the next release updates it in place, and its ReplicaSets stay for a quick way back),
/// where a prune would delete it; a Deployment whose service left the product has no sibling
/// and is pruned as usual.
pub fn superseded_colours(previous: &[Value], current: &[Value]) -> Vec<Value> {
    let deployment_names: std::collections::BTreeSet<&str> = current
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter_map(|o| o.pointer("/metadata/name")?.as_str())
        .collect();
    let label = format!("/spec/template/metadata/labels/{}", COLOR_LABEL.replace('/', "~1"));
    previous
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter(|o| {
            let Some(color) = o.pointer(&label).and_then(Value::as_str).and_then(Color::parse) else {
                return false;
            };
            let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            name.strip_suffix(&format!("-{}", color.as_str())).is_some_and(|base| {
                deployment_names.contains(format!("{base}-{}", color.other().as_str()).as_str())
            })
        })
        .map(|o| {
            let mut o = o.clone();
            o["spec"]["replicas"] = Value::from(0);
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs() -> Vec<Value> {
        vec![
            serde_json::json!({"kind":"Service","metadata":{"name":"web"},"spec":{"selector":{"app":"web"}}}),
            serde_json::json!({"kind":"Service","metadata":{"name":"other"},"spec":{"selector":{"app":"db"}}}),
            serde_json::json!({"kind":"Deployment","metadata":{"name":"web"},"spec":{
                "selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web","tier":"fe"}}}}}),
            serde_json::json!({"kind":"ConfigMap","metadata":{"name":"web-config"}}),
        ]
    }

    #[test]
    fn colours_workloads_and_their_services_only() {
        let out = colorize(&objs(), Color::Green, Color::Blue);
        assert_eq!(out[0]["spec"]["selector"], serde_json::json!({"app":"web", COLOR_LABEL:"blue"}));
        assert_eq!(
            out[1]["spec"]["selector"],
            serde_json::json!({"app":"db"}),
            "a Service of other pods is untouched"
        );
        assert_eq!(out[2]["metadata"]["name"], "web-green");
        assert_eq!(out[2]["spec"]["selector"]["matchLabels"][COLOR_LABEL], "green");
        assert_eq!(out[2]["spec"]["template"]["metadata"]["labels"][COLOR_LABEL], "green");
        assert_eq!(out[3], objs()[3]);
        assert_eq!(live_color(&out), Some(Color::Blue));
        assert_eq!(live_color(&objs()), None);
        // Re-colouring an already coloured Service replaces the colour.
        assert_eq!(live_color(&colorize(&out, Color::Green, Color::Green)), Some(Color::Green));
    }

    #[test]
    fn the_old_colour_is_kept_at_zero_and_a_removed_service_is_not() {
        let blue = colorize(&objs(), Color::Blue, Color::Blue);
        let green = colorize(&objs(), Color::Green, Color::Green);
        let kept = superseded_colours(&blue, &green);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["metadata"]["name"], "web-blue");
        assert_eq!(kept[0]["spec"]["replicas"], 0);
        // The service left the product: nothing of it is kept.
        assert!(superseded_colours(&blue, &[]).is_empty());
        // Rolling objects (no colour) are never kept.
        assert!(superseded_colours(&objs(), &green).is_empty());
    }
}
