//! What an apply would change: a server-side dry-run apply of each object compared with the
//! live object, both normalised. Comparing the dry-run result (not the raw manifest) means the
//! API server's own defaulting is on both sides, so only real changes show.

use serde::Serialize;
use serde_json::Value;

use super::EksError;
use futures::StreamExt;

use super::apply::{APPLY_CONCURRENCY, FIELD_MANAGER, Resolver, sort_for_apply};
use crate::render::ObjectRef;
use crate::render::kustomize::object_ref;

/// The change to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum ObjectChange {
    Create { object: ObjectRef },
    Update { object: ObjectRef, diff: String },
    Unchanged { object: ObjectRef },
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

/// A unified diff of two normalised objects (empty when equal).
pub fn unified(live: &Value, desired: &Value, name: &str) -> String {
    let (a, b) = (yaml(&normalize(live.clone())), yaml(&normalize(desired.clone())));
    if a == b {
        return String::new();
    }
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{name}"), &format!("desired/{name}"))
        .to_string()
}

/// Dry-run applies every object and compares it with the live one. Objects are independent
/// (nothing is written), so up to [`APPLY_CONCURRENCY`] are looked at together; the changes come
/// back in apply order, and the first error in that order is the one returned.
pub async fn plan_changes(
    client: &kube::Client,
    objects: &[Value],
    default_ns: &str,
) -> Result<Vec<ObjectChange>, EksError> {
    plan_changes_with(client, &Resolver::default(), objects, default_ns).await
}

/// [`plan_changes`] with a resolver shared by several calls (one discovery per kind in all).
pub async fn plan_changes_with(
    client: &kube::Client,
    resolver: &Resolver,
    objects: &[Value],
    default_ns: &str,
) -> Result<Vec<ObjectChange>, EksError> {
    let mut sorted = objects.to_vec();
    sort_for_apply(&mut sorted);
    let params = kube::api::PatchParams::apply(FIELD_MANAGER).dry_run();
    let mut work = Vec::with_capacity(sorted.len());
    for obj in &sorted {
        let r = object_ref(obj);
        let api = resolver.api(client, &r, default_ns).await?;
        work.push((r, api, obj));
    }
    let params = &params;
    let changes = work.into_iter().map(|(r, api, obj)| async move {
        let err = |e: kube::Error| EksError::Api { action: format!("dry-run {r}"), message: e.to_string() };
        let Some(live) = api.get_opt(&r.name).await.map_err(err)? else {
            return Ok(ObjectChange::Create { object: r });
        };
        let dynamic: kube::api::DynamicObject = serde_json::from_value(obj.clone())
            .map_err(|e| EksError::Api { action: format!("read {r}"), message: e.to_string() })?;
        let would = api.patch(&r.name, params, &kube::api::Patch::Apply(&dynamic)).await.map_err(err)?;
        let (live, would) = (
            serde_json::to_value(&live).unwrap_or_default(),
            serde_json::to_value(&would).unwrap_or_default(),
        );
        let diff = unified(&live, &would, &format!("{}/{}", r.kind, r.name));
        Ok(if diff.is_empty() {
            ObjectChange::Unchanged { object: r }
        } else {
            ObjectChange::Update { object: r, diff }
        })
    });
    futures::stream::iter(changes).buffered(APPLY_CONCURRENCY).collect::<Vec<_>>().await.into_iter().collect()
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
}
