//! Pure health verdicts for Kubernetes workloads: (workload, its pods) → verdict.
//!
//! Shaped like argo-rollouts' `assessMetricStatus` and kube-rs' `runtime::wait` conditions:
//! plain functions over API objects, tested with fixtures. A rollout is healthy only when the
//! controller has observed the current generation and every replica is updated, ready and
//! available with no old replicas left; it fails fast on pod states that never heal by waiting
//! (crash loops, image pulls, OOM kills, bad container config, unschedulable pods) instead of
//! waiting for the progress deadline.
//!
//! Only what belongs to *this* rollout decides. `observedGeneration == generation` does not prove
//! that a status describes the new spec: after a rollback to an existing ReplicaSet the real
//! deployment controller's first status for the new generation can still carry the previous
//! rollout's `Progressing=False/ProgressDeadlineExceeded`, copied unchanged (shared
//! k8s-recordings, scenario 12). So a condition counts only if it names the ReplicaSet of the
//! current revision or was written after this apply (a later second than the apply's entry in
//! `managedFields`, both on the API server's clock), and a pod only if it runs the current
//! revision (its ReplicaSet's for Deployments, `updateRevision` for StatefulSets, the template
//! generation for DaemonSets).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::apply::FIELD_MANAGER;

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

/// The Deployment's revision annotation, which its current ReplicaSet carries too.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The template generation a DaemonSet's API server keeps (apps/v1 has no field for it).
pub const DS_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";
/// The DaemonSet controller's label on every pod: the template generation it was created from.
pub const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";
/// The StatefulSet (and DaemonSet) controller's label on every pod: its revision.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// When deployer's last server-side apply changed this object, on the API server's clock (the
/// `time` of deployer's `Apply` entry in `managedFields`; whole seconds). `None` when deployer
/// never applied it.
pub fn applied_at(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref().unwrap_or_default().is_empty()
        })
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
}

/// Whether a workload condition belongs to the rollout of the current spec: its message names
/// the current revision's ReplicaSet (the controller names the new ReplicaSet in every
/// Progressing message it writes), or it was written in a later second than the apply. The same
/// second proves nothing either way (condition times are whole seconds), and the controller's
/// own clock is compared with the apply's time on the same API server, never with deployer's.
pub fn condition_is_current(
    message: Option<&str>,
    last_update: Option<&Time>,
    current_replica_set: Option<&str>,
    applied: Option<Timestamp>,
) -> bool {
    let names_current =
        current_replica_set.is_some_and(|rs| message.is_some_and(|m| m.contains(&format!("\"{rs}\""))));
    let written_after_apply = matches!((last_update, applied), (Some(t), Some(a)) if t.0 > a);
    names_current || written_after_apply
}

/// The verdict for a Deployment, given the ReplicaSet of its current revision (the one whose
/// revision annotation equals the Deployment's, once the watch has seen it) and that
/// ReplicaSet's pods.
pub fn assess_deployment(dep: &Deployment, new_rs: Option<&ReplicaSet>, new_pods: &[&Pod]) -> Verdict {
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
    // A ReplicaSet of another revision (the watch has not seen the bump yet) says nothing.
    let revision = dep.metadata.annotations.as_ref().and_then(|a| a.get(REVISION));
    let new_rs = new_rs.filter(|rs| {
        revision.is_some() && rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)) == revision
    });
    if new_rs.is_some() {
        for pod in new_pods {
            if let Some(f) = pod_failure(&name, pod) {
                return Verdict::Failed { failure: Box::new(f) };
            }
        }
    }
    let rs_name = new_rs.and_then(|rs| rs.metadata.name.as_deref());
    let applied = applied_at(&dep.metadata);
    let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing");
    let mut stale = None;
    if let Some(c) = progressing
        && c.status == "False"
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        if condition_is_current(c.message.as_deref(), c.last_update_time.as_ref(), rs_name, applied) {
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
        // The previous rollout's verdict, copied into this generation's first status: the next
        // status replaces it (recording 12). Not a verdict on this spec.
        stale = Some(c);
    }
    let want = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    // Zero counts are omitted by the API server, so a missing field means 0.
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    // With a stale deadline condition still shown, the controller has not finished this
    // generation's status yet (its next write replaces the condition): not healthy yet.
    if stale.is_none() && updated >= want && ready >= want && available >= want && total == updated {
        Verdict::Healthy
    } else {
        let mut detail = format!(
            "{updated}/{want} updated, {ready} ready, {available} available, {} old",
            (total - updated).max(0)
        );
        if stale.is_some() {
            detail.push_str(" (an earlier rollout's ProgressDeadlineExceeded is still shown)");
        }
        Verdict::Progressing { detail }
    }
}

/// The verdict for a StatefulSet (RollingUpdate), given its pods. Only pods of the update
/// revision can fail it: after a rollback, a crash-looping pod of the abandoned revision is the
/// controller's to replace, not a verdict on this spec.
pub fn assess_statefulset(sts: &StatefulSet, pods: &[&Pod]) -> Verdict {
    let name = format!("StatefulSet/{}", sts.metadata.name.as_deref().unwrap_or_default());
    let Some(status) = sts.status.as_ref() else {
        return Verdict::Progressing { detail: "no status yet".into() };
    };
    if status.observed_generation.unwrap_or(0) < sts.metadata.generation.unwrap_or(0) {
        return Verdict::Progressing { detail: "waiting for the controller".into() };
    }
    let update_revision = status.update_revision.as_deref();
    for pod in pods {
        if update_revision.is_some()
            && label(pod, CONTROLLER_REVISION_HASH) == update_revision
            && let Some(f) = pod_failure(&name, pod)
        {
            return Verdict::Failed { failure: Box::new(f) };
        }
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

/// The verdict for a DaemonSet, given its pods. Only pods of the current template generation
/// can fail it (the `pod-template-generation` label against the API server's
/// `deprecated.daemonset.template.generation` annotation); without that annotation every pod
/// counts.
pub fn assess_daemonset(ds: &DaemonSet, pods: &[&Pod]) -> Verdict {
    let name = format!("DaemonSet/{}", ds.metadata.name.as_deref().unwrap_or_default());
    let Some(s) = ds.status.as_ref() else { return Verdict::Progressing { detail: "no status yet".into() } };
    if s.observed_generation.unwrap_or(0) < ds.metadata.generation.unwrap_or(0) {
        return Verdict::Progressing { detail: "waiting for the controller".into() };
    }
    let template_generation =
        ds.metadata.annotations.as_ref().and_then(|a| a.get(DS_TEMPLATE_GENERATION)).map(String::as_str);
    for pod in pods {
        let current = template_generation.is_none_or(|g| label(pod, POD_TEMPLATE_GENERATION) == Some(g));
        if current && let Some(f) = pod_failure(&name, pod) {
            return Verdict::Failed { failure: Box::new(f) };
        }
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

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

/// A pod whose containers run but which is not Ready: `(uid, name, why)`, `why` being the
/// Ready condition's own words (`containers with unready status: [web]`). Pods not running yet
/// (scheduling, pulling) are not counted: those states have their own fast verdicts.
pub fn running_unready(pod: &Pod) -> Option<(String, String, String)> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let running = status
        .container_statuses
        .iter()
        .flatten()
        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready");
    if !running || ready.is_some_and(|c| c.status == "True") {
        return None;
    }
    let why = ready.and_then(|c| c.message.clone()).unwrap_or_else(|| "not Ready".into());
    Some((pod.metadata.uid.clone()?, pod.metadata.name.clone()?, why))
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
        dep(serde_json::json!({
            "metadata":{"name":"web","generation":gen_,"annotations":{REVISION:"2"}},
            "spec":{"replicas":3,"selector":{},"template":{}},"status":s}))
    }

    /// The ReplicaSet of revision 2 (the current one of `base_dep`).
    fn rs2() -> ReplicaSet {
        serde_json::from_value(serde_json::json!({"metadata":{"name":"web-5d","annotations":{REVISION:"2"}}}))
            .unwrap()
    }

    #[test]
    fn healthy_only_when_everything_caught_up() {
        let full =
            serde_json::json!({"replicas":3,"updatedReplicas":3,"readyReplicas":3,"availableReplicas":3});
        assert_eq!(assess_deployment(&base_dep(2, 2, full.clone()), Some(&rs2()), &[]), Verdict::Healthy);
        // The controller has not seen the new spec yet: the old counts say nothing.
        assert!(matches!(
            assess_deployment(&base_dep(3, 2, full), Some(&rs2()), &[]),
            Verdict::Progressing { .. }
        ));
        // Old replicas still around (surge): not done.
        let surge =
            serde_json::json!({"replicas":4,"updatedReplicas":3,"readyReplicas":4,"availableReplicas":4});
        assert!(matches!(
            assess_deployment(&base_dep(2, 2, surge), Some(&rs2()), &[]),
            Verdict::Progressing { .. }
        ));
        // Zero counts are omitted by the API server.
        assert!(matches!(
            assess_deployment(&base_dep(2, 2, serde_json::json!({"replicas":1})), Some(&rs2()), &[]),
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
        let Verdict::Failed { failure } = assess_deployment(&d, Some(&rs2()), &[&p]) else {
            panic!("not failed")
        };
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
        assert!(matches!(assess_deployment(&d, Some(&rs2()), &[&p]), Verdict::Progressing { .. }));
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
            let Verdict::Failed { failure } = assess_deployment(&d, Some(&rs2()), &[&p]) else {
                panic!("{reason}")
            };
            assert_eq!(failure.reason, reason);
        }
        // A merely not-ready pod is progressing, not failed (the rollout timeout decides).
        let notready = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":0,"state":{"running":{}}}]}}));
        assert!(matches!(assess_deployment(&d, Some(&rs2()), &[&notready]), Verdict::Progressing { .. }));
    }

    #[test]
    fn progress_deadline_fails() {
        let d = base_dep(
            2,
            2,
            serde_json::json!({"replicas":4,"updatedReplicas":1,"conditions":[
            {"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded","message":"ReplicaSet \"web-5d\" has timed out progressing."}]}),
        );
        let Verdict::Failed { failure } = assess_deployment(&d, Some(&rs2()), &[]) else { panic!() };
        assert_eq!(failure.reason, "ProgressDeadlineExceeded");
    }

    /// Replays a recorded watch sequence (shared k8s-recordings, scenario 12) through a store
    /// like the watcher's and assesses the Deployment at each of its events: (rv, verdict).
    /// `withhold` drops the ReplicaSet events of those resourceVersions (a lagging RS watch).
    fn replay(fixture: &str, withhold: &[&str]) -> Vec<(String, Verdict)> {
        let doc: serde_json::Value = serde_json::from_str(fixture).unwrap();
        let mut rss: std::collections::BTreeMap<String, ReplicaSet> = std::collections::BTreeMap::new();
        let mut pods: std::collections::BTreeMap<String, Pod> = std::collections::BTreeMap::new();
        let mut out = Vec::new();
        for e in doc["events"].as_array().unwrap() {
            let o = &e["object"];
            let name = o["metadata"]["name"].as_str().unwrap().to_owned();
            let rv = o["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
            let deleted = e["type"] == "DELETED";
            match o["kind"].as_str().unwrap() {
                "ReplicaSet" if !withhold.contains(&rv.as_str()) => {
                    rss.insert(name, serde_json::from_value(o.clone()).unwrap());
                }
                "Pod" if deleted => {
                    pods.remove(&name);
                }
                "Pod" => {
                    pods.insert(name, serde_json::from_value(o.clone()).unwrap());
                }
                "Deployment" => {
                    let d: Deployment = serde_json::from_value(o.clone()).unwrap();
                    let revision = d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION));
                    let new_rs = rss.values().find(|rs| {
                        rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)) == revision
                    });
                    let uid = new_rs.and_then(|rs| rs.metadata.uid.clone()).unwrap_or_default();
                    let new_pods: Vec<&Pod> = pods
                        .values()
                        .filter(|p| p.metadata.owner_references.iter().flatten().any(|r| r.uid == uid))
                        .collect();
                    out.push((rv, assess_deployment(&d, new_rs, &new_pods)));
                }
                _ => {}
            }
        }
        out
    }

    const WEB_ONE_2: &str = include_str!("../../../tests/fixtures/k8s-recording-12/web-one-2.json");
    const WEB_4: &str = include_str!("../../../tests/fixtures/k8s-recording-12/web-4.json");

    fn at<'a>(verdicts: &'a [(String, Verdict)], rv: &str) -> &'a Verdict {
        &verdicts.iter().find(|(r, _)| r == rv).unwrap_or_else(|| panic!("no Deployment event {rv}")).1
    }

    #[test]
    fn recording_12_one_replica_the_stale_deadline_of_the_rollback_is_not_a_failure() {
        let v = replay(WEB_ONE_2, &[]);
        // Step 2: the notready release really times out; the condition names its own RS.
        let Verdict::Failed { failure } = at(&v, "29617") else { panic!("{v:#?}") };
        assert_eq!(failure.reason, "ProgressDeadlineExceeded");
        assert_eq!(failure.message, "ReplicaSet \"web-one-2-66fb887559\" has timed out progressing.");
        // Step 3, the rollback: the apply and the revision bump (observedGeneration still 2), then
        // the first status of generation 3 with the previous rollout's condition copied unchanged.
        for rv in ["29619", "29621"] {
            assert!(
                matches!(at(&v, rv), Verdict::Progressing { detail } if detail.contains("generation 3")),
                "{rv}: {v:#?}"
            );
        }
        let Verdict::Progressing { detail } = at(&v, "29625") else { panic!("{v:#?}") };
        assert!(detail.contains("an earlier rollout's ProgressDeadlineExceeded"), "{detail}");
        // Then NewReplicaSetAvailable, naming the re-used RS: the rollback succeeded.
        assert_eq!(at(&v, "29631"), &Verdict::Healthy);
        // Nothing after the rollback apply was a failure.
        let after: Vec<_> = v.iter().skip_while(|(rv, _)| rv != "29619").collect();
        assert!(after.iter().all(|(_, v)| !matches!(v, Verdict::Failed { .. })), "{after:#?}");
    }

    #[test]
    fn recording_12_the_stale_deadline_is_no_failure_while_the_replicaset_watch_lags() {
        // The re-used RS's revision bump (29620) not seen yet: the current revision's RS is
        // unknown, and the condition (older than the apply) does not count either.
        let v = replay(WEB_ONE_2, &["29620"]);
        assert!(matches!(at(&v, "29625"), Verdict::Progressing { .. }), "{v:#?}");
        assert_eq!(at(&v, "29631"), &Verdict::Healthy);
    }

    #[test]
    fn recording_12_two_replicas_progress_then_available() {
        let v = replay(WEB_4, &[]);
        let Verdict::Failed { failure } = at(&v, "19297") else { panic!("{v:#?}") };
        assert_eq!(failure.reason, "ProgressDeadlineExceeded");
        assert!(matches!(at(&v, "19705"), Verdict::Progressing { .. }), "{v:#?}");
        // True/ReplicaSetUpdated with 3 replicas, 2 updated: progressing.
        assert!(
            matches!(at(&v, "19744"), Verdict::Progressing { detail } if detail.ends_with("1 old")),
            "{v:#?}"
        );
        assert_eq!(at(&v, "19819"), &Verdict::Healthy);
    }

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn a_condition_belongs_to_the_rollout_by_its_replicaset_or_by_a_later_second() {
        let msg = Some("ReplicaSet \"web-one-2-66fb887559\" has timed out progressing.");
        let applied = Some(time("2026-12-07T17:22:04Z").0);
        // Recording 12: names the previous RS, written before the apply.
        assert!(!condition_is_current(
            msg,
            Some(&time("2026-12-07T17:22:02Z")),
            Some("web-one-2-74dfd45d4b"),
            applied
        ));
        // Names the current revision's RS: whatever its time.
        assert!(condition_is_current(
            msg,
            Some(&time("2026-12-07T17:22:02Z")),
            Some("web-one-2-66fb887559"),
            applied
        ));
        // A prefix of another RS's name is not that RS.
        assert!(!condition_is_current(msg, None, Some("web-one-2-66fb88755"), applied));
        // Written in a later second than the apply: this rollout's, even before the RS is seen.
        assert!(condition_is_current(msg, Some(&time("2026-12-07T17:22:05Z")), None, applied));
        // The same second proves nothing (a fast rollback lands in the deadline's second).
        assert!(!condition_is_current(msg, Some(&time("2026-12-07T17:22:04Z")), None, applied));
        // No apply of deployer's on record: only the RS name can tell.
        assert!(!condition_is_current(msg, Some(&time("2026-12-07T17:22:05Z")), None, None));
    }

    #[test]
    fn applied_at_is_deployers_last_apply_on_the_main_resource() {
        let d = replay_object(WEB_ONE_2, "29625");
        assert_eq!(applied_at(&d.metadata), Some(time("2026-12-07T17:22:04Z").0));
        // The controller's status writes are not an apply.
        let mut other = d.metadata.clone();
        other.managed_fields.as_mut().unwrap().retain(|m| m.manager.as_deref() != Some(FIELD_MANAGER));
        assert_eq!(applied_at(&other), None);
    }

    fn replay_object(fixture: &str, rv: &str) -> Deployment {
        let doc: serde_json::Value = serde_json::from_str(fixture).unwrap();
        let o = doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["object"]["metadata"]["resourceVersion"] == rv);
        serde_json::from_value(o.unwrap()["object"].clone()).unwrap()
    }

    #[test]
    fn a_genuine_deadline_fails_even_before_the_replicaset_is_seen_if_newer_than_the_apply() {
        // A Deployment message without an RS (the controller had no new RS, e.g. Recreate
        // waiting for old pods), written seconds after deployer's apply.
        let mut d = base_dep(
            2,
            2,
            serde_json::json!({"replicas":3,"updatedReplicas":0,"conditions":[
            {"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded",
             "lastUpdateTime":"2026-12-07T17:32:10Z","lastTransitionTime":"2026-12-07T17:32:10Z",
             "message":"Deployment \"web\" has timed out progressing."}]}),
        );
        d.metadata.managed_fields = Some(vec![
            serde_json::from_value(serde_json::json!({
            "manager":"deployer","operation":"Apply","apiVersion":"apps/v1","time":"2026-12-07T17:22:04Z",
            "fieldsType":"FieldsV1","fieldsV1":{}}))
            .unwrap(),
        ]);
        assert!(matches!(assess_deployment(&d, None, &[]), Verdict::Failed { .. }));
        // The same condition from before the apply is the previous rollout's.
        d.metadata.managed_fields.as_mut().unwrap()[0].time = Some(time("2026-12-07T17:40:00Z"));
        assert!(matches!(assess_deployment(&d, None, &[]), Verdict::Progressing { .. }));
    }

    #[test]
    fn pods_of_a_replicaset_of_another_revision_do_not_decide() {
        let d = base_dep(2, 2, serde_json::json!({"replicas":2,"updatedReplicas":1}));
        let crash = pod(serde_json::json!({"metadata":{"name":"p"},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":3,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}));
        let rs1: ReplicaSet = serde_json::from_value(
            serde_json::json!({"metadata":{"name":"web-1a","annotations":{REVISION:"1"}}}),
        )
        .unwrap();
        assert!(matches!(assess_deployment(&d, Some(&rs1), &[&crash]), Verdict::Progressing { .. }));
        assert!(matches!(assess_deployment(&d, Some(&rs2()), &[&crash]), Verdict::Failed { .. }));
    }

    fn sts(status: &serde_json::Value) -> StatefulSet {
        serde_json::from_value(serde_json::json!({"metadata":{"name":"db","generation":3},
            "spec":{"replicas":2,"selector":{},"serviceName":"db","template":{}},"status":status}))
        .unwrap()
    }

    fn crashing_pod(labels: &serde_json::Value) -> Pod {
        pod(serde_json::json!({"metadata":{"name":"x-1","labels":labels},"status":{"containerStatuses":[{
            "name":"c","image":"i","imageID":"","ready":false,"restartCount":4,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}))
    }

    #[test]
    fn statefulset_pods_of_the_abandoned_revision_do_not_fail_the_rollback() {
        let old = crashing_pod(&serde_json::json!({CONTROLLER_REVISION_HASH:"db-bad"}));
        let new = crashing_pod(&serde_json::json!({CONTROLLER_REVISION_HASH:"db-good"}));
        let status = serde_json::json!({"observedGeneration":3,"replicas":2,"readyReplicas":1,
            "currentRevision":"db-bad","updateRevision":"db-good","updatedReplicas":1});
        assert!(matches!(assess_statefulset(&sts(&status), &[&old]), Verdict::Progressing { .. }));
        assert!(matches!(assess_statefulset(&sts(&status), &[&new]), Verdict::Failed { .. }));
        // Before the controller observed the rollback, no pod decides.
        let unobserved = serde_json::json!({"observedGeneration":2,"replicas":2,"updateRevision":"db-bad"});
        let bad = crashing_pod(&serde_json::json!({CONTROLLER_REVISION_HASH:"db-bad"}));
        assert!(matches!(assess_statefulset(&sts(&unobserved), &[&bad]), Verdict::Progressing { .. }));
    }

    #[test]
    fn daemonset_pods_of_an_earlier_template_generation_do_not_decide() {
        let ds = |annotations: serde_json::Value| -> DaemonSet {
            serde_json::from_value(
                serde_json::json!({"metadata":{"name":"agent","generation":4,"annotations":annotations},
                "spec":{"selector":{},"template":{}},
                "status":{"observedGeneration":4,"currentNumberScheduled":1,"desiredNumberScheduled":1,
                          "numberMisscheduled":0,"numberReady":0}}),
            )
            .unwrap()
        };
        let old = crashing_pod(&serde_json::json!({POD_TEMPLATE_GENERATION:"2"}));
        let new = crashing_pod(&serde_json::json!({POD_TEMPLATE_GENERATION:"3"}));
        let current = ds(serde_json::json!({DS_TEMPLATE_GENERATION:"3"}));
        assert!(matches!(assess_daemonset(&current, &[&old]), Verdict::Progressing { .. }));
        assert!(matches!(assess_daemonset(&current, &[&new]), Verdict::Failed { .. }));
        // Without the API server's annotation every pod counts (fail fast as before).
        assert!(matches!(assess_daemonset(&ds(serde_json::json!({})), &[&old]), Verdict::Failed { .. }));
    }

    #[test]
    fn a_running_pod_that_is_not_ready_is_counted_with_its_reason() {
        let p = |phase: &str, ready: &str, running: bool| {
            let state = if running {
                serde_json::json!({"running": {"startedAt": "2026-12-08T00:00:00Z"}})
            } else {
                serde_json::json!({"waiting": {"reason": "ContainerCreating"}})
            };
            pod(serde_json::json!({"metadata": {"name": "web-1", "uid": "u1"}, "status": {"phase": phase,
                "conditions": [{"type": "Ready", "status": ready, "reason": "ContainersNotReady", "message": "containers with unready status: [web]"}],
                "containerStatuses": [{"name": "web", "ready": ready == "True", "restartCount": 0, "image": "x", "imageID": "", "state": state}]}}))
        };
        assert_eq!(
            running_unready(&p("Running", "False", true)),
            Some(("u1".into(), "web-1".into(), "containers with unready status: [web]".into()))
        );
        assert_eq!(running_unready(&p("Running", "True", true)), None, "ready");
        assert_eq!(running_unready(&p("Pending", "False", false)), None, "not running yet");
    }
}
