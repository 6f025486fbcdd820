//! The Kubernetes Job a release hook runs as on EKS, rendered from what the release rendered for
//! its service: pure (objects in, a Job out), so `deploy` creates exactly what `deployer render`
//! shows. The platform (`platform::eks::hook`) creates and follows it.
//!
//! The Job's pod is the pod template the release rendered for the service (its Deployment or
//! StatefulSet whose container runs the pinned image), narrowed to what runs to completion: only
//! that container (a sidecar never exits, so the Job would never complete), the hook's command,
//! no probes, `restartPolicy: Never`. Everything the service needs to reach its database stays:
//! service account, env/envFrom, volumes, image pull secrets, scheduling. Pod labels that a
//! Service selects are dropped, so the hook pod never receives the service's traffic.
//! `backoffLimit: 0`: a migration runs once; re-running a half-applied one is the user's call.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::kustomize::{COLOR_LABEL, ENV_LABEL, MANAGED_BY, PRODUCT_LABEL, SERVICE_LABEL};
use crate::model::Hook;
use crate::release::{Release, ServiceRelease};

/// The label naming the hook a Job runs.
pub const HOOK_LABEL: &str = "deployer.dev/hook";
/// The label naming the release a hook Job belongs to.
pub const RELEASE_LABEL: &str = "deployer.dev/release";
/// The release sequence of a hook Job (orders a hook's Jobs created within one second).
pub const SEQUENCE_ANNOTATION: &str = "deployer.dev/release-sequence";
/// Kubernetes removes a finished hook Job after a week even if deployer never runs again.
const TTL_AFTER_FINISHED: i64 = 7 * 24 * 3600;

/// Where a hook Job goes: the product and environment it is labelled with, and its namespace.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub product: &'a str,
    pub environment: &'a str,
    pub namespace: &'a str,
}

/// Why a hook has no Job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    pub message: String,
    pub hint: String,
}

/// The Job name of `hook` in the release with `sequence`: `<service>-<hook>-<sequence>`, at most
/// 63 characters (the Job controller copies it into a label value), else shortened with a hash.
pub fn job_name(service: &str, hook: &str, sequence: u64) -> String {
    use sha2::Digest as _;
    let full = format!("{service}-{hook}-{sequence}");
    if full.len() <= 63 {
        return full;
    }
    let hash = hex::encode(sha2::Sha256::digest(full.as_bytes()));
    let keep = full.get(..54).unwrap_or(&full).trim_end_matches(['-', '.']);
    format!("{keep}-{}", hash.get(..8).unwrap_or_default())
}

/// A label value for `s` (`[A-Za-z0-9._-]`, alphanumeric at both ends, at most 63 characters).
pub fn label_value(s: &str) -> String {
    let v: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    let v = v.get(..63).unwrap_or(&v);
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

/// The workload whose pod template a hook of `service` runs with: the first Deployment or
/// StatefulSet (by name) with a container running the service's pinned image. A blue-green
/// release has been coloured by then (`Platform::prepare`): its manifests are the colour being
/// deployed, so the first match is of the release's colour.
fn workload(service: &ServiceRelease) -> Option<(&Value, usize)> {
    let mut candidates: Vec<&Value> = service
        .manifests
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .collect();
    candidates.sort_by_key(|o| o["metadata"]["name"].as_str().unwrap_or_default().to_owned());
    candidates.into_iter().find_map(|o| {
        let containers = o.pointer("/spec/template/spec/containers")?.as_array()?;
        let i = containers.iter().position(|c| c["image"].as_str() == Some(service.image.as_str()))?;
        Some((o, i))
    })
}

/// Label keys the release's Services select pods by: the hook pod must not carry them.
fn selected_keys(objects: &[Value]) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter_map(|o| o.pointer("/spec/selector")?.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.insert(COLOR_LABEL.to_owned());
    keys
}

/// What identifies one hook's Jobs (the selector deployer's cleanup lists them by).
pub fn hook_labels(target: &Target<'_>, hook: &Hook) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (PRODUCT_LABEL.to_owned(), label_value(target.product)),
        (ENV_LABEL.to_owned(), label_value(target.environment)),
        (SERVICE_LABEL.to_owned(), label_value(&hook.service)),
        (HOOK_LABEL.to_owned(), label_value(&hook.name)),
    ])
}

/// The Job that runs `hook` for `release` (pure: the rendered objects in, the Job out).
pub fn job(target: &Target<'_>, release: &Release, hook: &Hook) -> Result<Value, HookError> {
    let service = release.services.get(&hook.service).ok_or_else(|| HookError {
        message: format!(
            "{} cannot run: release {} has no service `{}`",
            hook.title(),
            release.id,
            hook.service
        ),
        hint: "name a service of this product in the hook".into(),
    })?;
    let (workload, index) = workload(service).ok_or_else(|| {
        HookError {
            message: format!(
                "{} cannot run: no Deployment or StatefulSet of `{}` runs its image {}",
                hook.title(),
                hook.service,
                service.image
            ),
            hint: "the service's overlay must render a Deployment or StatefulSet whose container uses the service's image"
                .into(),
        }
    })?;
    let template = &workload["spec"]["template"];
    let mut spec = template["spec"].as_object().cloned().unwrap_or_default();
    let mut container = template["spec"]["containers"][index].as_object().cloned().unwrap_or_default();
    container.insert("command".into(), json!(hook.command));
    for key in ["args", "readinessProbe", "livenessProbe", "startupProbe"] {
        container.remove(key);
    }
    spec.insert("containers".into(), Value::Array(vec![Value::Object(container)]));
    // Init containers run to completion before it (a wait-for-database); a sidecar declared as
    // a restartable init container never would.
    if let Some(Value::Array(inits)) = spec.get_mut("initContainers") {
        inits.retain(|c| c["restartPolicy"] != "Always");
    }
    spec.insert("restartPolicy".into(), json!("Never"));

    let name = job_name(&hook.service, &hook.name, release.sequence);
    let mut labels = hook_labels(target, hook);
    labels.insert(RELEASE_LABEL.to_owned(), label_value(&release.id));
    let selected = selected_keys(&service.manifests);
    let mut pod_labels: Map<String, Value> = template["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter().filter(|(k, _)| !selected.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .unwrap_or_default();
    pod_labels.extend(labels.iter().map(|(k, v)| (k.clone(), json!(v))));
    let mut pod_metadata = json!({ "labels": pod_labels });
    if let Some(a) = template["metadata"].get("annotations") {
        pod_metadata["annotations"] = a.clone();
    }
    let deadline = i64::try_from(hook.timeout.as_secs()).unwrap_or(i64::MAX).max(1);
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": target.namespace,
            "labels": labels,
            "annotations": {
                SEQUENCE_ANNOTATION: release.sequence.to_string(),
                "deployer.dev/hook-stage": hook.stage.as_str(),
            },
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            "template": { "metadata": pod_metadata, "spec": spec },
        },
    }))
}

/// The container an ECS hook runs in, in task definition `doc`: the one running the service's
/// pinned `image` (sidecars such as log routers may come first), else the first essential one.
pub fn ecs_container<'a>(doc: &'a Value, image: &str) -> Option<&'a Value> {
    let containers = doc.get("containerDefinitions").and_then(Value::as_array)?;
    let pinned = crate::model::PinnedImage::parse(image);
    let same_image = |c: &Value| {
        let theirs = c.get("image").and_then(Value::as_str).unwrap_or_default();
        theirs == image || (pinned.is_some() && crate::model::PinnedImage::parse(theirs) == pinned)
    };
    // ECS reports `essential: true` when the definition left it out.
    let essential = |c: &Value| c.get("essential").and_then(Value::as_bool).unwrap_or(true);
    containers.iter().find(|c| same_image(c)).or_else(|| containers.iter().find(|c| essential(c)))
}

/// What `deployer render` shows of an ECS hook: the part of its `RunTask` request that the
/// release decides (the service's network and launch settings are read from the live service
/// at run time). `family` names the task definition the release registers.
pub fn ecs_run_task(spec: &Value, image: &str, hook: &Hook) -> Result<Value, HookError> {
    let container = ecs_container(spec, image).and_then(|c| c["name"].as_str()).ok_or_else(|| HookError {
        message: format!("{} cannot run: its task definition has no essential container", hook.title()),
        hint: "the task definition needs a container that runs the service's image".into(),
    })?;
    Ok(json!({
        "hook": { "service": hook.service, "name": hook.name, "stage": hook.stage, "timeoutSeconds": hook.timeout.as_secs() },
        "runTask": {
            "taskDefinition": spec["family"],
            "overrides": { "containerOverrides": [{ "name": container, "command": hook.command }] },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_fit_a_label_value() {
        assert_eq!(job_name("order", "migrate", 23), "order-migrate-23");
        let long = job_name(&"s".repeat(40), &"h".repeat(30), 123_456);
        assert!(long.len() <= 63, "{long}");
        assert_ne!(long, job_name(&"s".repeat(40), &"h".repeat(30), 123_457));
        assert!(long.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()));
        assert_eq!(label_value("dev.17"), "dev.17");
        assert_eq!(label_value("a/b"), "a-b");
    }
}
