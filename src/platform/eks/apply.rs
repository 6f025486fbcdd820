//! Server-side apply of rendered objects, in dependency order, and pruning of objects a release
//! no longer has.

use std::collections::HashMap;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use super::EksError;
use crate::render::ObjectRef;
use crate::render::kustomize::object_ref;

/// Field manager name for everything deployer applies.
pub const FIELD_MANAGER: &str = "deployer";

/// Apply order: what others depend on first (namespaces, CRDs, identities and RBAC, config,
/// services), workloads after, and anything unknown in between.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => 2,
        "ConfigMap" | "Secret" | "PersistentVolumeClaim" => 3,
        "Service" => 4,
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" | "ReplicaSet" => 6,
        "Ingress" | "HorizontalPodAutoscaler" | "PodDisruptionBudget" => 7,
        _ => 5,
    }
}

/// Server-side applies in flight at once (within one rank). One rank of a product's services
/// (4–6, up to ~15) goes out in one round; the API server's own max-in-flight (400 mutating
/// by default) and EKS's priority and fairness are far above this.
pub const APPLY_CONCURRENCY: usize = 16;

fn rank_of(o: &Value) -> u8 {
    apply_rank(o.get("kind").and_then(Value::as_str).unwrap_or_default())
}

/// Sorts objects for applying (stable within a rank, so kustomize's order is kept).
pub fn sort_for_apply(objects: &mut [Value]) {
    objects.sort_by_key(|o| apply_rank(o.get("kind").and_then(Value::as_str).unwrap_or_default()));
}

/// Resolves API resources once per kind (discovery is the API server's, not a table of ours).
/// Shareable: concurrent users (the plan's per-service diffs) discover each kind once between
/// them, one discovery at a time.
#[derive(Default)]
pub struct Resolver {
    cache: tokio::sync::Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
}

impl Resolver {
    pub async fn api(
        &self,
        client: &kube::Client,
        obj: &ObjectRef,
        default_ns: &str,
    ) -> Result<Api<DynamicObject>, EksError> {
        let key = (obj.api_version.clone(), obj.kind.clone());
        let (ar, caps) = {
            let mut cache = self.cache.lock().await;
            if let Some(found) = cache.get(&key) {
                found.clone()
            } else {
                let (group, version) = match obj.api_version.split_once('/') {
                    Some((g, v)) => (g.to_owned(), v.to_owned()),
                    None => (String::new(), obj.api_version.clone()),
                };
                let gvk = GroupVersionKind::gvk(&group, &version, &obj.kind);
                let found = kube::discovery::pinned_kind(client, &gvk).await.map_err(|e| EksError::Api {
                    action: format!("discover {} {}", obj.api_version, obj.kind),
                    message: e.to_string(),
                })?;
                cache.insert(key, found.clone());
                found
            }
        };
        Ok(match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &ar),
            Scope::Namespaced => {
                Api::namespaced_with(client.clone(), obj.namespace.as_deref().unwrap_or(default_ns), &ar)
            }
        })
    }
}

/// Server-side applies every object (sorted first). `force` takes fields over from other managers.
pub async fn apply_all(
    client: &kube::Client,
    resolver: &mut Resolver,
    objects: &[Value],
    default_ns: &str,
    force: bool,
) -> Result<Vec<ObjectRef>, EksError> {
    let mut sorted = objects.to_vec();
    sort_for_apply(&mut sorted);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if force {
        params = params.force();
    }
    let mut applied = Vec::with_capacity(sorted.len());
    // Ranks go in order (a Deployment needs its ConfigMap); objects of one rank are independent
    // and go out together, so ten services cost about what one does.
    for rank in sorted.chunk_by(|a, b| rank_of(a) == rank_of(b)) {
        let mut calls = Vec::with_capacity(rank.len());
        for obj in rank {
            let r = object_ref(obj);
            let api = resolver.api(client, &r, default_ns).await?;
            let dynamic: DynamicObject = serde_json::from_value(obj.clone())
                .map_err(|e| EksError::Api { action: format!("read {r}"), message: e.to_string() })?;
            let params = &params;
            calls.push(async move {
                api.patch(&r.name, params, &Patch::Apply(&dynamic)).await.map_err(|e| apply_error(&r, &e))?;
                Ok::<_, EksError>(r)
            });
        }
        let results: Vec<Result<ObjectRef, EksError>> =
            futures::stream::iter(calls).buffered(APPLY_CONCURRENCY).collect().await;
        for r in results {
            applied.push(r?);
        }
    }
    Ok(applied)
}

/// A readable error for a failed apply; conflicts name the other manager and the field.
fn apply_error(r: &ObjectRef, e: &kube::Error) -> EksError {
    if let kube::Error::Api(status) = e
        && status.code == 409
    {
        let fields: Vec<String> = status
            .details
            .iter()
            .flat_map(|d| d.causes.iter())
            .map(|c| format!("{} ({})", c.field, c.message))
            .collect();
        return EksError::Conflict {
            object: r.to_string(),
            message: status.message.clone(),
            fields: if fields.is_empty() { status.message.clone() } else { fields.join("; ") },
        };
    }
    EksError::Api { action: format!("apply {r}"), message: e.to_string() }
}

/// Deletes the objects of `previous` that `current` no longer has ([`crate::plan::prune_list`],
/// the set the plan showed), newest-dependency first, but only those deployer owns: the live
/// object must still carry deployer's `managed-by` label (and, when it has one, this
/// environment's label). Anything else (relabelled by hand, adopted by another tool, re-created
/// by someone) is kept and returned as such. Returns (deleted, kept).
pub async fn prune(
    client: &kube::Client,
    resolver: &mut Resolver,
    previous: &[ObjectRef],
    current: &[ObjectRef],
    default_ns: &str,
    environment: &str,
) -> Result<(Vec<ObjectRef>, Vec<ObjectRef>), EksError> {
    use crate::render::kustomize::{ENV_LABEL, MANAGED_BY};
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    // Reverse apply order: workloads before the config and services they use.
    let mut stale = crate::plan::prune_list(previous, current, default_ns);
    stale.sort_by_key(|o| std::cmp::Reverse(apply_rank(&o.kind)));
    for obj in stale {
        let api = resolver.api(client, &obj, default_ns).await?;
        let live = match api.get_opt(&obj.name).await {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(e) => {
                return Err(EksError::Api {
                    action: format!("read {obj} before pruning it"),
                    message: e.to_string(),
                });
            }
        };
        let labels = live.metadata.labels.unwrap_or_default();
        let ours = labels.get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1)
            && labels.get(ENV_LABEL).is_none_or(|e| e == environment);
        if !ours {
            kept.push(obj);
            continue;
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&obj.name, &params).await {
            Ok(_) => gone.push(obj),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(EksError::Api { action: format!("prune {obj}"), message: e.to_string() }),
        }
    }
    Ok((gone, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_first() {
        let mut objs: Vec<Value> =
            ["Deployment", "Service", "ConfigMap", "Namespace", "ServiceAccount", "PodDisruptionBudget"]
                .iter()
                .map(|k| serde_json::json!({"kind": k}))
                .collect();
        sort_for_apply(&mut objs);
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"]
        );
    }
}
