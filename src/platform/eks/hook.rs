//! Release hooks on EKS: one-off tasks (migrations, post-deploy tests) run once per release as
//! a fresh Kubernetes Job with the release's pinned image.
//!
//! The Job's pod is the pod template the release rendered for the service (its Deployment or
//! StatefulSet whose container runs the pinned image), narrowed to what runs to completion: only
//! that container (a sidecar never exits, so the Job would never complete), the hook's command,
//! no probes, `restartPolicy: Never`. Everything the service needs to reach its database stays:
//! service account, env/envFrom, volumes, image pull secrets, scheduling. Pod labels that a
//! Service selects are dropped, so the hook pod never receives the service's traffic.
//!
//! A Job's pod template is immutable, so every release gets its own Job
//! (`<service>-<hook>-<sequence>`), never a patch of an earlier one; deployer deletes all but the
//! newest [`KEEP`] Jobs of a hook, and `ttlSecondsAfterFinished` removes forgotten ones.
//! `backoffLimit: 0`: a migration runs once; re-running a half-applied one is the user's call.
//!
//! The Job and its pods are watched (no polling): the Job's `Complete`/`Failed` conditions
//! decide, and the pod's states fail it fast (image pull, OOM, unschedulable, a non-zero exit)
//! instead of at `activeDeadlineSeconds`. A failure carries the failed container's exit code and
//! the last lines of its log. A Job failed fast on its pod (an image that cannot be pulled) is
//! left to its `activeDeadlineSeconds`, with its pod and events there to be looked at.
//!
//! A pre-deploy hook runs before the release is applied, so the release's ConfigMaps and Secrets
//! that the pod refers to and that do not exist yet (kustomize's generated, content-hashed names)
//! are created first; existing ones are never changed (see `ensure_config`).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::time::Instant;

use super::Eks;
use super::apply::FIELD_MANAGER;
use super::assess;
use crate::events::{Event, Phase, Sink};
use crate::model::{Failure, Hook, Reason};
use crate::platform::PlatformError;
use crate::release::{Release, ServiceRelease};
use crate::render::hook::{SEQUENCE_ANNOTATION, Target, hook_labels, job, job_name};

/// How long after `hook.timeout` deployer gives up itself, should the Job controller be slow to
/// write `DeadlineExceeded`.
const GRACE: Duration = Duration::from_secs(15);
/// Log lines of a failed hook in its failure.
const TAIL_LINES: i64 = 20;

/// Hook Jobs of one service's hook kept after a run (the newest ones, this run's included).
pub const KEEP: usize = 3;

/// The Job that runs `hook` for `release` ([`crate::render::hook::job`]).
pub fn build_job(platform: &Eks, release: &Release, hook: &Hook) -> Result<Value, PlatformError> {
    job(&target(platform), release, hook).map_err(|e| PlatformError::setup(e.message, e.hint))
}

fn target(platform: &Eks) -> Target<'_> {
    Target { product: &platform.product, environment: &platform.environment, namespace: &platform.namespace }
}

fn api_error(action: String, e: &kube::Error) -> PlatformError {
    super::EksError::Api { action, message: e.to_string() }.into()
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The ConfigMaps and Secrets of the release that the hook pod refers to.
fn referenced(pod_spec: &Value) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    let mut add = |kind: &'static str, v: &Value| {
        if let Some(n) = v.as_str() {
            out.insert((kind, n.to_owned()));
        }
    };
    let containers =
        ["initContainers", "containers"].iter().filter_map(|k| pod_spec[*k].as_array()).flatten();
    for c in containers {
        for e in c["envFrom"].as_array().into_iter().flatten() {
            add("ConfigMap", &e["configMapRef"]["name"]);
            add("Secret", &e["secretRef"]["name"]);
        }
        for e in c["env"].as_array().into_iter().flatten() {
            add("ConfigMap", &e["valueFrom"]["configMapKeyRef"]["name"]);
            add("Secret", &e["valueFrom"]["secretKeyRef"]["name"]);
        }
    }
    for v in pod_spec["volumes"].as_array().into_iter().flatten() {
        add("ConfigMap", &v["configMap"]["name"]);
        add("Secret", &v["secret"]["secretName"]);
        for s in v["projected"]["sources"].as_array().into_iter().flatten() {
            add("ConfigMap", &s["configMap"]["name"]);
            add("Secret", &s["secret"]["name"]);
        }
    }
    out
}

/// Creates the release's ConfigMaps and Secrets the hook pod needs that do not exist yet: a
/// pre-deploy hook runs before the release is applied, and kustomize's generated names (with a
/// content hash) are new in every release that changes them. Existing ones are left as they
/// are: changing one would change what the running release reads, before the release is applied.
async fn ensure_config(platform: &Eks, service: &ServiceRelease, job: &Value) -> Result<(), PlatformError> {
    let ns = platform.namespace.as_str();
    for (kind, name) in referenced(&job["spec"]["template"]["spec"]) {
        let Some(obj) = service
            .manifests
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str() == Some(&name))
        else {
            continue;
        };
        let params = PatchParams::apply(FIELD_MANAGER);
        let result = if kind == "ConfigMap" {
            let api: Api<ConfigMap> = Api::namespaced(platform.client.clone(), ns);
            match api.get_opt(&name).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => api.patch(&name, &params, &Patch::Apply(obj)).await.map(|_| ()),
                Err(e) => Err(e),
            }
        } else {
            let api: Api<Secret> = Api::namespaced(platform.client.clone(), ns);
            match api.get_opt(&name).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => api.patch(&name, &params, &Patch::Apply(obj)).await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        result.map_err(|e| api_error(format!("create {kind} {ns}/{name} for the hook"), &e))?;
    }
    Ok(())
}

/// Creates the Job; a Job of the same name (the same release run again) is deleted first.
async fn create(api: &Api<Job>, job: &Value, name: &str) -> Result<Job, PlatformError> {
    let job: Job = serde_json::from_value(job.clone())
        .map_err(|e| PlatformError::api(format!("build Job {name}"), e))?;
    let params = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
    for _ in 0..60 {
        match api.create(&params, &job).await {
            Ok(created) => return Ok(created),
            Err(e) if is_status(&e, 409) => {
                // A Job's template cannot be updated: replace the old Job. Background: the
                // Job object goes at once, its pods after it.
                match api.delete(name, &background()).await {
                    Ok(_) => {}
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => return Err(api_error(format!("delete Job {name}"), &e)),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(api_error(format!("create Job {name}"), &e)),
        }
    }
    Err(PlatformError::api(
        format!("create Job {name}"),
        "a Job of that name is still being deleted after 30 s",
    ))
}

fn background() -> DeleteParams {
    DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() }
}

/// Deletes all but the newest [`KEEP`] Jobs of this hook (by release sequence, then creation).
async fn prune_old(api: &Api<Job>, platform: &Eks, hook: &Hook, events: &dyn Sink) {
    let selector = hook_labels(&target(platform), hook)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        events.emit(&Event::Warning {
            message: format!("{}: could not list its earlier Jobs to clean them up", hook.title()),
        });
        return;
    };
    let mut jobs: Vec<&Job> = list.items.iter().filter(|j| j.metadata.deletion_timestamp.is_none()).collect();
    jobs.sort_by_key(|j| {
        let seq = j
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SEQUENCE_ANNOTATION))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        (seq, j.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    let old = jobs.len().saturating_sub(KEEP);
    for j in jobs.into_iter().take(old) {
        let name = j.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &background()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => events.emit(&Event::Warning {
                message: format!("{}: could not delete its earlier Job {name}: {e}", hook.title()),
            }),
        }
    }
}

/// How a hook Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Running {
        detail: String,
    },
    Succeeded,
    Failed {
        reason: Reason,
        detail: String,
        /// The pod that failed (for its log).
        pod: Option<String>,
    },
}

fn job_condition<'a>(job: &'a Job, ty: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == ty && c.status == "True")
}

/// The terminated state of a pod's container that ended unsuccessfully: `exit N (Reason)`.
fn failed_exit(pod: &Pod) -> Option<(Reason, String)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|cs| {
        let t = cs.state.as_ref()?.terminated.as_ref()?;
        (t.exit_code != 0).then(|| {
            let reason = t.reason.as_deref().unwrap_or("Error");
            let r = if reason == "OOMKilled" { Reason::OutOfMemory } else { Reason::HookFailed };
            (r, format!("exit {} ({reason})", t.exit_code))
        })
    })
}

/// The verdict on a hook Job, given its pods (pure).
pub fn verdict(job: &Job, pods: &[&Pod]) -> Verdict {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    // The newest pod first: it is the one that decides and whose log explains.
    let mut pods: Vec<&Pod> = pods.to_vec();
    pods.sort_by_key(|p| std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)));
    let pod_name = |p: &Pod| p.metadata.name.clone();
    if job_condition(job, "Complete").is_some() {
        return Verdict::Succeeded;
    }
    if let Some(c) = job_condition(job, "Failed") {
        let cond_reason = c.reason.as_deref().unwrap_or_default();
        let text = format!("{cond_reason}: {}", c.message.as_deref().unwrap_or_default());
        let exited = pods.iter().find_map(|p| failed_exit(p).map(|e| (*p, e)));
        return match exited {
            Some((p, (reason, exit))) => {
                Verdict::Failed { reason, detail: format!("{exit}; {text}"), pod: pod_name(p) }
            }
            None => Verdict::Failed {
                reason: if cond_reason == "DeadlineExceeded" { Reason::Deadline } else { Reason::HookFailed },
                detail: text,
                pod: pods.first().and_then(|p| pod_name(p)),
            },
        };
    }
    // Fail fast on the pods: with backoffLimit 0 a failed pod is the Job's end, and an image
    // that cannot be pulled or a pod that cannot be scheduled never heals by waiting.
    for p in &pods {
        if let Some((reason, exit)) = failed_exit(p) {
            return Verdict::Failed { reason, detail: exit, pod: pod_name(p) };
        }
        if let Some(f) = assess::pod_failure(&format!("Job/{name}"), p) {
            let reason = match Reason::from_kubernetes(&f.reason) {
                Reason::RolloutFailed => Reason::HookFailed,
                r => r,
            };
            let detail =
                if f.message.is_empty() { f.reason.clone() } else { format!("{}: {}", f.reason, f.message) };
            return Verdict::Failed { reason, detail, pod: pod_name(p) };
        }
    }
    let phase = pods
        .first()
        .and_then(|p| p.status.as_ref()?.phase.clone())
        .map_or_else(|| "no pod yet".to_owned(), |ph| format!("pod {ph}"));
    Verdict::Running { detail: phase }
}

/// Runs `hook` to completion (see [`crate::platform::Platform::run_hook`]).
pub async fn run(
    platform: &Eks,
    release: &Release,
    hook: &Hook,
    events: &dyn Sink,
) -> Result<Option<Failure>, PlatformError> {
    let job = build_job(platform, release, hook)?;
    let name = job["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if let Some(service) = release.services.get(&hook.service) {
        ensure_config(platform, service, &job).await?;
    }
    let api: Api<Job> = Api::namespaced(platform.client.clone(), &platform.namespace);
    let created = create(&api, &job, &name).await?;
    let started = Instant::now();
    say(events, hook, format!("hook {}: Job {name} created", hook.name));
    prune_old(&api, platform, hook, events).await;
    let uid = created.metadata.uid.clone().unwrap_or_default();
    let outcome = follow(platform, &name, &uid, hook, started, events).await;
    let (reason, detail, pod) = match outcome {
        Verdict::Succeeded => {
            say(
                events,
                hook,
                format!(
                    "hook {}: Job {name} completed in {}",
                    hook.name,
                    crate::support::human(started.elapsed())
                ),
            );
            return Ok(None);
        }
        Verdict::Failed { reason, detail, pod } => (reason, detail, pod),
        Verdict::Running { detail } => (
            Reason::Deadline,
            format!("not finished after {} ({detail})", crate::support::human(hook.timeout)),
            None,
        ),
    };
    let container = job["spec"]["template"]["spec"]["containers"][0]["name"].as_str().unwrap_or_default();
    let logs = match &pod {
        Some(p) => tail(platform, p, container).await,
        None => Vec::new(),
    };
    let subject = pod.as_ref().map_or_else(|| format!("Job/{name}"), |p| format!("Job/{name} pod {p}"));
    say(events, hook, format!("hook {}: Job {name} failed: {detail}", hook.name));
    Ok(Some(Failure { logs, ..Failure::new(Some(&hook.service), reason, subject, detail) }))
}

/// A progress line of `hook` (the phase that runs hooks is the engine's; the platform's lines
/// are about applying).
fn say(events: &dyn Sink, hook: &Hook, message: String) {
    events.emit(&Event::Service { service: hook.service.clone(), phase: Phase::Hooks, message });
}

/// Watches the Job and its pods until a verdict, or `hook.timeout` + [`GRACE`] from `started`.
async fn follow(
    platform: &Eks,
    name: &str,
    uid: &str,
    hook: &Hook,
    started: Instant,
    events: &dyn Sink,
) -> Verdict {
    let ns = &platform.namespace;
    let jobs: Api<Job> = Api::namespaced(platform.client.clone(), ns);
    let jobs_now = jobs.clone();
    let pods: Api<Pod> = Api::namespaced(platform.client.clone(), ns);
    let pods_now = pods.clone();
    let (job_store, jw) = reflector::store::<Job>();
    let (pod_store, pw): (Store<Pod>, _) = reflector::store();
    let job_cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    // The controller-uid label names this Job's pods only, not those of an earlier Job of the
    // same name (a re-run release).
    let pod_selector = format!("batch.kubernetes.io/controller-uid={uid}");
    let pod_cfg = watcher::Config::default().labels(&pod_selector);
    let mut changes = stream::select_all(vec![
        reflector::reflector(jw, watcher(jobs, job_cfg)).default_backoff().map(|_| ()).boxed(),
        reflector::reflector(pw, watcher(pods, pod_cfg)).default_backoff().map(|_| ()).boxed(),
    ]);
    let deadline = started + hook.timeout + GRACE;
    let mut last = String::new();
    let mut seen = false;
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.next()).await;
        let job = job_store.state().into_iter().find(|j| j.metadata.uid.as_deref() == Some(uid));
        // Until the watch has listed it, the Job may also be gone already (deleted right after
        // its creation): ask for it.
        if job.is_none() && !seen {
            match jobs_now.get_opt(name).await {
                Ok(Some(j)) if j.metadata.uid.as_deref() == Some(uid) => {}
                Ok(_) => seen = true,
                Err(_) => {}
            }
        }
        let verdict = match &job {
            Some(job) => {
                seen = true;
                let pods = pod_store.state();
                let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
                verdict(job, &pods)
            }
            // Deleted under it (`stop_hook`, a person, the TTL controller): it will not finish.
            None if seen => Verdict::Failed {
                reason: Reason::HookFailed,
                detail: "its Job was deleted before it finished".into(),
                pod: None,
            },
            None => Verdict::Running { detail: "Job not observed yet".into() },
        };
        // The Job's watch can run ahead of its pods' (the controller writes `Failed` moments
        // after the kubelet wrote the exit code): the verdict is taken on the pods as they are
        // now, so the failure names the exit code and the pod whose log explains it.
        let verdict = match (&verdict, &job) {
            (Verdict::Failed { .. }, Some(job)) => {
                match pods_now.list(&ListParams::default().labels(&pod_selector)).await {
                    Ok(list) => self::verdict(job, &list.items.iter().collect::<Vec<_>>()),
                    Err(_) => verdict,
                }
            }
            _ => verdict,
        };
        match verdict {
            Verdict::Running { detail } => {
                if detail != last {
                    say(events, hook, format!("hook {}: Job {name}: {detail}", hook.name));
                    last.clone_from(&detail);
                }
                if Instant::now() >= deadline {
                    return Verdict::Running { detail };
                }
            }
            done => return done,
        }
    }
}

/// The last log lines of a pod's container (none when it wrote none or never started).
async fn tail(platform: &Eks, pod: &str, container: &str) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(platform.client.clone(), &platform.namespace);
    let params = LogParams {
        container: Some(container.to_owned()),
        tail_lines: Some(TAIL_LINES),
        ..LogParams::default()
    };
    api.logs(pod, &params).await.map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
}

/// Stops what [`run`] started (see [`crate::platform::Platform::stop_hook`]): deletes the
/// release's Job of `hook` and, through the garbage collector, its pods.
pub async fn stop(platform: &Eks, release: &Release, hook: &Hook) -> Result<(), PlatformError> {
    let name = job_name(&hook.service, &hook.name, release.sequence);
    let api: Api<Job> = Api::namespaced(platform.client.clone(), &platform.namespace);
    match api.delete(&name, &background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api_error(format!("delete Job {name}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: &Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "j-abcde"}, "status": status})).unwrap()
    }

    fn job(status: &Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).unwrap()
    }

    #[test]
    fn verdicts_follow_the_job_and_fail_fast_on_its_pod() {
        let running = job(&json!({"active": 1}));
        assert!(matches!(verdict(&running, &[]), Verdict::Running { .. }));
        let exited = pod(&json!({"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}));
        let Verdict::Failed { reason, detail, pod: p } = verdict(&running, &[&exited]) else { panic!() };
        assert_eq!(
            (reason, detail.as_str(), p.as_deref()),
            (Reason::HookFailed, "exit 3 (Error)", Some("j-abcde"))
        );
        let pull = pod(&json!({"phase": "Pending", "containerStatuses": [{"name": "c", "image": "i",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}));
        assert!(matches!(verdict(&running, &[&pull]), Verdict::Failed { reason: Reason::ImagePull, .. }));
        let done = job(&json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}));
        assert_eq!(verdict(&done, &[]), Verdict::Succeeded);
        let late = job(&json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
            "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}));
        let Verdict::Failed { reason, detail, .. } = verdict(&late, &[]) else { panic!() };
        assert_eq!(reason, Reason::Deadline);
        assert_eq!(detail, "DeadlineExceeded: Job was active longer than specified deadline");
    }
}
