//! Pure health verdicts for Kubernetes workloads: (workload, its pods) → verdict.
//!
//! Shaped like argo-rollouts' `assessMetricStatus` and kube-rs' `runtime::wait` conditions:
//! plain functions over API objects, tested with fixtures. A rollout is healthy only when the
//! controller has observed the current generation and every replica is updated, ready and
//! available with no old replicas left; it fails fast on pod states that never heal by waiting
//! (crash loops, image pulls, OOM kills, bad container config, unschedulable pods) instead of
//! waiting for the progress deadline.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

/// Container waiting reasons that mean "this will not become ready by waiting".
pub const FATAL_WAITING: [&str; 7] = [
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Why a workload failed, with the details a person needs to act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// `Deployment/user`.
    pub workload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Machine-readable reason (`CrashLoopBackOff`, `ProgressDeadlineExceeded`, `Timeout`, …).
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<i32>,
    /// Recent Events of the pod or workload (filled in by the watcher).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.workload.is_empty() {
            parts.push(self.workload.clone());
        }
        if let Some(p) = &self.pod {
            parts.push(format!("pod {p}"));
        }
        if let Some(c) = &self.container {
            parts.push(format!("container {c}"));
        }
        if parts.is_empty() {
            write!(f, "{}", self.reason)?;
        } else {
            write!(f, "{}: {}", parts.join(" "), self.reason)?;
        }
        if let Some(n) = self.restart_count {
            write!(f, " (restarts: {n})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The verdict for one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    Progressing { detail: String },
    Failed { failure: Box<Failure> },
}

/// A fatal state of one pod, if any.
pub fn pod_failure(workload: &str, pod: &Pod) -> Option<Failure> {
    let name = pod.metadata.name.clone();
    let status = pod.status.as_ref()?;
    let fail = |container: Option<String>, reason: &str, message: String, restarts: Option<i32>| Failure {
        workload: workload.to_owned(),
        pod: name.clone(),
        container,
        reason: reason.to_owned(),
        message,
        restart_count: restarts,
        events: Vec::new(),
    };
    let statuses =
        status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for cs in statuses {
        let restarts = Some(cs.restart_count);
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING.contains(&reason) {
                return Some(fail(
                    Some(cs.name.clone()),
                    reason,
                    w.message.clone().unwrap_or_default(),
                    restarts,
                ));
            }
        }
        if let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.reason.as_deref() == Some("OOMKilled")
        {
            return Some(fail(
                Some(cs.name.clone()),
                "OOMKilled",
                format!("exit code {}", t.exit_code),
                restarts,
            ));
        }
    }
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable") {
            return Some(fail(None, "Unschedulable", c.message.clone().unwrap_or_default(), None));
        }
    }
    None
}

/// The verdict for a Deployment, given the pods of its newest ReplicaSet.
pub fn assess_deployment(dep: &Deployment, new_pods: &[&Pod]) -> Verdict {
    let name = format!("Deployment/{}", dep.metadata.name.as_deref().unwrap_or_default());
    let generation = dep.metadata.generation.unwrap_or(0);
    let Some(status) = dep.status.as_ref() else {
        return Verdict::Progressing { detail: "no status yet".into() };
    };
    // Until the controller has observed this generation, its revision annotation (and so "the
    // newest ReplicaSet") may still be the previous one: right after a rollback that is the
    // failed release's ReplicaSet, whose crash-looping pods say nothing about this spec.
    if status.observed_generation.unwrap_or(0) < generation {
        return Verdict::Progressing {
            detail: format!("waiting for the controller to observe generation {generation}"),
        };
    }
    for pod in new_pods {
        if let Some(f) = pod_failure(&name, pod) {
            return Verdict::Failed { failure: Box::new(f) };
        }
    }
    if let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing")
        && c.status == "False"
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Verdict::Failed {
            failure: Box::new(Failure {
                workload: name,
                pod: None,
                container: None,
                reason: "ProgressDeadlineExceeded".into(),
                message: c.message.clone().unwrap_or_default(),
                restart_count: None,
                events: Vec::new(),
            }),
        };
    }
    if status.observed_generation.unwrap_or(0) < generation {
        return Verdict::Progressing {
            detail: format!("waiting for the controller to observe generation {generation}"),
        };
    }
    let want = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    // Zero counts are omitted by the API server, so a missing field means 0.
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated >= want && ready >= want && available >= want && total == updated {
        Verdict::Healthy
    } else {
        Verdict::Progressing {
            detail: format!(
                "{updated}/{want} updated, {ready} ready, {available} available, {} old",
                (total - updated).max(0)
            ),
        }
    }
}

/// The verdict for a StatefulSet (RollingUpdate), given its pods.
pub fn assess_statefulset(sts: &StatefulSet, pods: &[&Pod]) -> Verdict {
    let name = format!("StatefulSet/{}", sts.metadata.name.as_deref().unwrap_or_default());
    for pod in pods {
        if let Some(f) = pod_failure(&name, pod) {
            return Verdict::Failed { failure: Box::new(f) };
        }
    }
    let Some(status) = sts.status.as_ref() else {
        return Verdict::Progressing { detail: "no status yet".into() };
    };
    if status.observed_generation.unwrap_or(0) < sts.metadata.generation.unwrap_or(0) {
        return Verdict::Progressing { detail: "waiting for the controller".into() };
    }
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let revisions_match =
        status.update_revision.is_some() && status.update_revision == status.current_revision;
    if ready >= want && updated >= want && revisions_match {
        Verdict::Healthy
    } else {
        Verdict::Progressing { detail: format!("{updated}/{want} updated, {ready} ready") }
    }
}

/// The verdict for a DaemonSet, given its pods.
pub fn assess_daemonset(ds: &DaemonSet, pods: &[&Pod]) -> Verdict {
    let name = format!("DaemonSet/{}", ds.metadata.name.as_deref().unwrap_or_default());
    for pod in pods {
        if let Some(f) = pod_failure(&name, pod) {
            return Verdict::Failed { failure: Box::new(f) };
        }
    }
    let Some(s) = ds.status.as_ref() else { return Verdict::Progressing { detail: "no status yet".into() } };
    if s.observed_generation.unwrap_or(0) < ds.metadata.generation.unwrap_or(0) {
        return Verdict::Progressing { detail: "waiting for the controller".into() };
    }
    let want = s.desired_number_scheduled;
    if s.updated_number_scheduled.unwrap_or(0) >= want
        && s.number_available.unwrap_or(0) >= want
        && s.number_ready >= want
    {
        Verdict::Healthy
    } else {
        Verdict::Progressing { detail: format!("{}/{want} ready", s.number_ready) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(json: serde_json::Value) -> Deployment {
        serde_json::from_value(json).unwrap()
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn base_dep(gen_: i64, observed: i64, status: serde_json::Value) -> Deployment {
        let mut s = status;
        s["observedGeneration"] = observed.into();
        dep(
            serde_json::json!({"metadata":{"name":"web","generation":gen_},"spec":{"replicas":3,"selector":{},"template":{}},"status":s}),
        )
    }

    #[test]
    fn healthy_only_when_everything_caught_up() {
        let full =
            serde_json::json!({"replicas":3,"updatedReplicas":3,"readyReplicas":3,"availableReplicas":3});
        assert_eq!(assess_deployment(&base_dep(2, 2, full.clone()), &[]), Verdict::Healthy);
        // The controller has not seen the new spec yet: the old counts say nothing.
        assert!(matches!(assess_deployment(&base_dep(3, 2, full), &[]), Verdict::Progressing { .. }));
        // Old replicas still around (surge): not done.
        let surge =
            serde_json::json!({"replicas":4,"updatedReplicas":3,"readyReplicas":4,"availableReplicas":4});
        assert!(matches!(assess_deployment(&base_dep(2, 2, surge), &[]), Verdict::Progressing { .. }));
        // Zero counts are omitted by the API server.
        assert!(matches!(
            assess_deployment(&base_dep(2, 2, serde_json::json!({"replicas":1})), &[]),
            Verdict::Progressing { .. }
        ));
    }

    #[test]
    fn crash_loop_fails_fast_with_details() {
        let d = base_dep(
            2,
            2,
            serde_json::json!({"replicas":4,"updatedReplicas":1,"readyReplicas":3,"availableReplicas":3}),
        );
        let p = pod(serde_json::json!({"metadata":{"name":"web-abc-x1"},"status":{"containerStatuses":[{
            "name":"web","image":"i","imageID":"","ready":false,"restartCount":2,
            "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 20s restarting failed container"}},
            "lastState":{"terminated":{"exitCode":1,"reason":"Error"}}}]}}));
        let Verdict::Failed { failure } = assess_deployment(&d, &[&p]) else { panic!("not failed") };
        assert_eq!(failure.reason, "CrashLoopBackOff");
        assert_eq!(failure.pod.as_deref(), Some("web-abc-x1"));
        assert_eq!(failure.container.as_deref(), Some("web"));
        assert_eq!(failure.restart_count, Some(2));
        assert_eq!(
            failure.to_string(),
            "Deployment/web pod web-abc-x1 container web: CrashLoopBackOff (restarts: 2): back-off 20s restarting failed container"
        );
    }

    #[test]
    fn pods_of_a_stale_revision_do_not_decide() {
        // Just after a rollback is applied: generation 3 not yet observed, and the pods passed in
        // (the "newest" ReplicaSet by the old annotation) crash-loop. Not a failure of this spec.
        let d = base_dep(3, 2, serde_json::json!({"replicas":2,"updatedReplicas":1}));
        let p = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":3,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}));
        assert!(matches!(assess_deployment(&d, &[&p]), Verdict::Progressing { .. }));
    }

    #[test]
    fn other_fatal_pod_states() {
        let d = base_dep(2, 2, serde_json::json!({"replicas":1}));
        let pull = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ImagePullBackOff"}}}]}}));
        let oom = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":1,"state":{"running":{}},
            "lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}}));
        let unsched = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"conditions":[{
            "type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/1 nodes are available: 1 Insufficient cpu."}]}}));
        for (p, reason) in [(pull, "ImagePullBackOff"), (oom, "OOMKilled"), (unsched, "Unschedulable")] {
            let Verdict::Failed { failure } = assess_deployment(&d, &[&p]) else { panic!("{reason}") };
            assert_eq!(failure.reason, reason);
        }
        // A merely not-ready pod is progressing, not failed (the rollout timeout decides).
        let notready = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":0,"state":{"running":{}}}]}}));
        assert!(matches!(assess_deployment(&d, &[&notready]), Verdict::Progressing { .. }));
    }

    #[test]
    fn progress_deadline_fails() {
        let d = base_dep(
            2,
            2,
            serde_json::json!({"replicas":4,"updatedReplicas":1,"conditions":[
            {"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded","message":"ReplicaSet \"web-5d\" has timed out progressing."}]}),
        );
        let Verdict::Failed { failure } = assess_deployment(&d, &[]) else { panic!() };
        assert_eq!(failure.reason, "ProgressDeadlineExceeded");
    }
}
