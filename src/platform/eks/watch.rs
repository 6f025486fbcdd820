//! Watching a release's workloads until they are healthy (and stay so through the bake time) or
//! fail. Watches, never polls: every Deployment, ReplicaSet and Pod change is pushed by the API
//! server and re-assessed at once, so a crash loop is reported within moments of the pod status
//! that shows it, not at the progress deadline.
//!
//! The timeout bounds the whole watch; a zero timeout (`timeouts.rollout: 0s`) sets no overall
//! bound, and each workload fails instead once its verdict has not changed for its own progress
//! deadline plus a margin (see `Stores::stall_limit`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use super::assess::{self, Failure, Verdict};
use crate::events::{Event, Phase, Sink};

/// A workload to watch, and the service it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub service: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// How long a running pod of this rollout may stay un-Ready (`ready_within`).
    pub ready_within: Option<Duration>,
}

/// Whether `kind` is a workload deployer watches.
pub fn is_workload(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

/// How the watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchOutcome {
    Healthy,
    Failed { service: String, failure: Box<Failure> },
}

struct Stores {
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    statefulsets: Store<StatefulSet>,
    daemonsets: Store<DaemonSet>,
}

fn owned_by<'a, K: kube::Resource>(items: &'a [std::sync::Arc<K>], uid: &str) -> Vec<&'a K> {
    items
        .iter()
        .filter(|o| o.meta().owner_references.iter().flatten().any(|r| r.uid == uid))
        .map(AsRef::as_ref)
        .collect()
}

/// The progress deadline Kubernetes gives a Deployment that sets none; also the bound for
/// StatefulSets and DaemonSets, which have no progress deadline, under a zero rollout timeout.
const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_mins(10);

impl Stores {
    /// Under a zero rollout timeout, how long a workload may go without any change of its
    /// verdict before it fails: its `progressDeadlineSeconds` (Deployments; 600 s otherwise) plus
    /// a tenth and 5 s, so that the controller's own `ProgressDeadlineExceeded` normally comes
    /// first. The bound still ends a rollout whose deadline condition never names it (a re-used
    /// ReplicaSet that never gets ready keeps the previous rollout's condition).
    fn stall_limit(&self, w: &Workload) -> Duration {
        let own = (w.kind == "Deployment")
            .then(|| self.deployments.get(&ObjectRef::new(&w.name).within(&w.namespace)))
            .flatten()
            .and_then(|d| d.spec.as_ref().and_then(|s| s.progress_deadline_seconds))
            // i32::MAX is Kubernetes' "no deadline".
            .filter(|s| *s > 0 && *s < i32::MAX)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        let deadline = own.unwrap_or(DEFAULT_PROGRESS_DEADLINE);
        deadline + deadline / 10 + Duration::from_secs(5)
    }

    /// The pods of `w`'s current rollout (a Deployment's new ReplicaSet; a StatefulSet's or
    /// DaemonSet's own pods).
    fn rollout_pods(&self, w: &Workload) -> Vec<std::sync::Arc<Pod>> {
        let pods = self.pods.state();
        let owner = match w.kind.as_str() {
            "Deployment" => {
                let Some(dep) = self.deployments.get(&ObjectRef::new(&w.name).within(&w.namespace)) else {
                    return Vec::new();
                };
                let uid = dep.metadata.uid.clone().unwrap_or_default();
                let revision = dep.metadata.annotations.as_ref().and_then(|a| a.get(assess::REVISION));
                let rss = self.replicasets.state();
                owned_by(&rss, &uid)
                    .into_iter()
                    .find(|rs| {
                        revision.is_some()
                            && rs.metadata.annotations.as_ref().and_then(|a| a.get(assess::REVISION))
                                == revision
                    })
                    .and_then(|rs| rs.metadata.uid.clone())
            }
            "StatefulSet" => self
                .statefulsets
                .get(&ObjectRef::new(&w.name).within(&w.namespace))
                .and_then(|s| s.metadata.uid.clone()),
            "DaemonSet" => self
                .daemonsets
                .get(&ObjectRef::new(&w.name).within(&w.namespace))
                .and_then(|d| d.metadata.uid.clone()),
            _ => None,
        };
        let Some(owner) = owner else { return Vec::new() };
        pods.iter()
            .filter(|p| p.metadata.owner_references.iter().flatten().any(|r| r.uid == owner))
            .cloned()
            .collect()
    }

    fn verdict(&self, w: &Workload) -> Verdict {
        let pods = self.pods.state();
        match w.kind.as_str() {
            "Deployment" => {
                let Some(dep) = self.deployments.get(&ObjectRef::new(&w.name).within(&w.namespace)) else {
                    return Verdict::Progressing { detail: "not observed yet".into() };
                };
                let uid = dep.metadata.uid.clone().unwrap_or_default();
                let revision = dep.metadata.annotations.as_ref().and_then(|a| a.get(assess::REVISION));
                let rss = self.replicasets.state();
                // The ReplicaSet of the current revision carries the Deployment's revision; only
                // its pods decide, and only a condition naming it (or newer than the apply).
                let new_rs = owned_by(&rss, &uid).into_iter().find(|rs| {
                    revision.is_some()
                        && rs.metadata.annotations.as_ref().and_then(|a| a.get(assess::REVISION)) == revision
                });
                let new_pods = new_rs
                    .map(|rs| owned_by(&pods, rs.metadata.uid.as_deref().unwrap_or_default()))
                    .unwrap_or_default();
                assess::assess_deployment(&dep, new_rs, &new_pods)
            }
            "StatefulSet" => match self.statefulsets.get(&ObjectRef::new(&w.name).within(&w.namespace)) {
                Some(s) => assess::assess_statefulset(
                    &s,
                    &owned_by(&pods, s.metadata.uid.as_deref().unwrap_or_default()),
                ),
                None => Verdict::Progressing { detail: "not observed yet".into() },
            },
            "DaemonSet" => match self.daemonsets.get(&ObjectRef::new(&w.name).within(&w.namespace)) {
                Some(d) => assess::assess_daemonset(
                    &d,
                    &owned_by(&pods, d.metadata.uid.as_deref().unwrap_or_default()),
                ),
                None => Verdict::Progressing { detail: "not observed yet".into() },
            },
            _ => Verdict::Healthy,
        }
    }
}

/// Watches `workloads` until all are healthy and stay healthy for `bake`, or one fails, or
/// `timeout` passes first (a failure naming what was still progressing).
pub async fn watch(
    client: &kube::Client,
    workloads: &[Workload],
    timeout: Duration,
    bake: Duration,
    events: &dyn Sink,
) -> WatchOutcome {
    if workloads.is_empty() {
        return WatchOutcome::Healthy;
    }
    let namespaces: Vec<String> = {
        let mut n: Vec<String> = workloads.iter().map(|w| w.namespace.clone()).collect();
        n.sort();
        n.dedup();
        n
    };
    // One set of stores; watchers per namespace write into them.
    let (deployments, dw) = reflector::store();
    let (replicasets, rw) = reflector::store();
    let (pods, pw) = reflector::store();
    let (statefulsets, sw) = reflector::store();
    let (daemonsets, aw) = reflector::store();
    let stores = Stores { deployments, replicasets, pods, statefulsets, daemonsets };
    // A namespace-scoped watch per kind; with several namespaces, the cluster-wide watch is used
    // (one connection per kind either way).
    let ns = (namespaces.len() == 1).then(|| namespaces[0].clone());
    let cfg = watcher::Config::default();
    macro_rules! api {
        ($k:ty) => {
            match &ns {
                Some(n) => Api::<$k>::namespaced(client.clone(), n),
                None => Api::<$k>::all(client.clone()),
            }
        };
    }
    // Only the kinds these workloads need: a product of Deployments does not pay for
    // StatefulSet and DaemonSet lists and watch connections (a store never fed stays empty,
    // which no verdict of these workloads reads).
    let has = |kind: &str| workloads.iter().any(|w| w.kind == kind);
    let mut streams =
        vec![reflector::reflector(pw, watcher(api!(Pod), cfg.clone())).default_backoff().map(|_| ()).boxed()];
    if has("Deployment") {
        streams.push(
            reflector::reflector(dw, watcher(api!(Deployment), cfg.clone()))
                .default_backoff()
                .map(|_| ())
                .boxed(),
        );
        streams.push(
            reflector::reflector(rw, watcher(api!(ReplicaSet), cfg.clone()))
                .default_backoff()
                .map(|_| ())
                .boxed(),
        );
    }
    if has("StatefulSet") {
        streams.push(
            reflector::reflector(sw, watcher(api!(StatefulSet), cfg.clone()))
                .default_backoff()
                .map(|_| ())
                .boxed(),
        );
    }
    if has("DaemonSet") {
        streams.push(
            reflector::reflector(aw, watcher(api!(DaemonSet), cfg)).default_backoff().map(|_| ()).boxed(),
        );
    }
    let mut changes = stream::select_all(streams);
    let start = Instant::now();
    // A zero timeout is no overall deadline: each workload is bounded by its own progress
    // deadline instead (see `stall_limit`), as `kubectl rollout status --timeout=0` waits on the
    // controller's verdict. Never "already expired", which failed every deploy and its rollback.
    let deadline = (!timeout.is_zero()).then(|| start + timeout);
    let mut healthy_since: Option<Instant> = None;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    // When each workload's verdict last changed: progress, for the zero-timeout bound.
    let mut changed_at: BTreeMap<String, Instant> = BTreeMap::new();
    // Pod uid → when this watch first saw it running but not Ready (for `ready_within`; our own
    // clock, so a skewed cluster clock cannot fail a pod early).
    let mut unready_since: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        // Re-assess after every change, and at least once a second for the clocks.
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.next()).await;
        let mut all_healthy = true;
        let mut progressing = Vec::new();
        let mut stalled: Option<(&Workload, Duration, String)> = None;
        for w in workloads {
            let key = format!("{}/{}", w.kind, w.name);
            match stores.verdict(w) {
                Verdict::Failed { mut failure } => {
                    failure.events =
                        recent_events(client, &w.namespace, failure.pod.as_deref().unwrap_or(&w.name)).await;
                    return WatchOutcome::Failed { service: w.service.clone(), failure };
                }
                Verdict::Progressing { detail } => {
                    all_healthy = false;
                    if let Some(bound) = w.ready_within
                        && let Some(failure) =
                            unready_too_long(&stores.rollout_pods(w), w, bound, &mut unready_since)
                    {
                        let mut failure = Box::new(failure);
                        failure.events =
                            recent_events(client, &w.namespace, failure.pod.as_deref().unwrap_or(&w.name))
                                .await;
                        return WatchOutcome::Failed { service: w.service.clone(), failure };
                    }
                    if last.get(&key) != Some(&detail) {
                        events.emit(&Event::Service {
                            service: w.service.clone(),
                            phase: Phase::Health,
                            message: format!("{key}: {detail}"),
                        });
                        last.insert(key.clone(), detail.clone());
                        changed_at.insert(key.clone(), Instant::now());
                    }
                    if deadline.is_none() && stalled.is_none() {
                        let limit = stores.stall_limit(w);
                        if changed_at.get(&key).is_some_and(|at| at.elapsed() >= limit) {
                            stalled = Some((w, limit, format!("{key}: {detail}")));
                        }
                    }
                    progressing.push(format!("{key}: {detail}"));
                }
                Verdict::Healthy => {
                    if last.get(&key).map(String::as_str) != Some("healthy") {
                        events.emit(&Event::Service {
                            service: w.service.clone(),
                            phase: Phase::Health,
                            message: format!("{key}: healthy"),
                        });
                        last.insert(key.clone(), "healthy".into());
                        changed_at.insert(key, Instant::now());
                    }
                }
            }
        }
        let now = Instant::now();
        match (all_healthy, healthy_since) {
            (true, None) => {
                healthy_since = Some(now);
                if !bake.is_zero() {
                    events.emit(&Event::PhaseStarted { phase: Phase::Bake });
                }
            }
            (false, Some(_)) if healthy_since.is_some() => {
                // Healthy, then not: during bake a regression is only a failure if it turns fatal
                // (handled above) or outlasts the rollout deadline; keep watching.
                healthy_since = None;
            }
            _ => {}
        }
        if let Some(since) = healthy_since
            && now.duration_since(since) >= bake
        {
            if !bake.is_zero() {
                let elapsed_ms = u64::try_from(bake.as_millis()).unwrap_or(u64::MAX);
                events.emit(&Event::PhaseFinished { phase: Phase::Bake, ok: true, elapsed_ms });
            }
            return WatchOutcome::Healthy;
        }
        if healthy_since.is_none()
            && let Some((w, limit, detail)) = stalled
        {
            return WatchOutcome::Failed {
                service: w.service.clone(),
                failure: Box::new(Failure {
                    workload: format!("{}/{}", w.kind, w.name),
                    pod: None,
                    container: None,
                    reason: "Timeout".into(),
                    message: format!(
                        "no progress for {} (timeouts.rollout is 0s: each workload is bounded by its progress deadline): {detail}",
                        crate::support::human(limit)
                    ),
                    restart_count: None,
                    events: Vec::new(),
                }),
            };
        }
        if healthy_since.is_none() && deadline.is_some_and(|d| now >= d) {
            let w = workloads
                .iter()
                .find(|w| progressing.iter().any(|p| p.starts_with(&format!("{}/{}", w.kind, w.name))));
            let service = w.map_or_else(String::new, |w| w.service.clone());
            return WatchOutcome::Failed {
                service,
                failure: Box::new(Failure {
                    workload: w.map_or_else(String::new, |w| format!("{}/{}", w.kind, w.name)),
                    pod: None,
                    container: None,
                    reason: "Timeout".into(),
                    message: format!(
                        "not healthy after {}: {}",
                        crate::support::human(timeout),
                        progressing.join("; ")
                    ),
                    restart_count: None,
                    events: Vec::new(),
                }),
            };
        }
    }
}

/// The first pod of `w` that has been running un-Ready for `bound` (as this watch saw it),
/// as a failure naming the pod and the Ready condition's words; the caller adds its Events (the
/// readiness probe's `Unhealthy` messages). Pods that became Ready, or went, are forgotten.
fn unready_too_long(
    pods: &[std::sync::Arc<Pod>],
    w: &Workload,
    bound: Duration,
    since: &mut BTreeMap<String, Instant>,
) -> Option<Failure> {
    let now = Instant::now();
    let mut unready = Vec::new();
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match assess::running_unready(pod) {
            Some(u) => unready.push(u),
            None => {
                since.remove(&uid);
            }
        }
    }
    unready.into_iter().find_map(|(uid, name, why)| {
        let first = *since.entry(uid).or_insert(now);
        (now.duration_since(first) >= bound).then(|| Failure {
            workload: format!("{}/{}", w.kind, w.name),
            pod: Some(name),
            container: None,
            reason: "Timeout".into(),
            message: format!(
                "running but not Ready for {} (ready_within: {}): {why}",
                crate::support::human(now.duration_since(first)),
                crate::support::human(bound)
            ),
            restart_count: None,
            events: Vec::new(),
        })
    })
}

/// The last few Events about an object, newest last, as `Reason: message`.
async fn recent_events(client: &kube::Client, namespace: &str, name: &str) -> Vec<String> {
    let api: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = api.list(&ListParams::default().fields(&format!("involvedObject.name={name}"))).await
    else {
        return Vec::new();
    };
    let mut items = list.items;
    items.sort_by_key(|e| {
        e.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    });
    items
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect()
}
