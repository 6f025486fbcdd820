//! EKS (any Kubernetes): server-side apply, watch-based health, release records, the deploy lock,
//! and automatic and manual rollback to the last known-good release.
//!
//! Library API:
//! - [`Eks::connect`] (a kubeconfig context) or [`Eks::new`] (a ready `kube::Client`);
//! - [`Eks::deploy`]: lock → record pending → apply (SSA, dependency order) → watch + bake →
//!   prune → record succeeded; on failure, automatic rollback of every service to the last
//!   known-good record, watched, then recorded;
//! - [`Eks::rollback`] (to the last known-good or a named release), [`Eks::history`].

pub mod apply;
pub mod assess;
pub mod bluegreen;
pub mod diff;
pub mod lock;
pub mod records;
pub mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::events::{Event, Phase, Sink};
use crate::release::{self, Release, ReleaseStatus};
use crate::render::ObjectRef;
use crate::render::kustomize::object_ref;
use apply::Resolver;
use assess::Failure;
use lock::Lock;
use watch::{WatchOutcome, Workload};

/// Errors of the EKS platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EksError {
    #[error("cannot connect to the cluster: {0}")]
    Connect(String),
    #[error("kubernetes api error while trying to {action}: {message}")]
    Api { action: String, message: String },
    #[error("server-side apply conflict on {object}: {message}")]
    Conflict { object: String, message: String, fields: String },
    #[error("release record {name} is unreadable: {message}")]
    Record { name: String, message: String },
    #[error("the deploy lock {lease} is held by `{holder}`")]
    LockHeld { lease: String, holder: String },
    #[error("release `{0}` not found")]
    UnknownRelease(String),
    #[error("no earlier release to roll back to")]
    NothingToRollBackTo,
    #[error("the deploy lock was taken by another run while this one was changing the cluster")]
    LockLost,
}

impl EksError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Connect(_) => {
                "check KUBECONFIG / the environment's `target.eks.context` or `cluster`".into()
            }
            Self::Api { .. } => {
                "check the deploy role's Kubernetes RBAC and that the namespace exists".into()
            }
            Self::Conflict { fields, .. } => format!(
                "another field manager owns {fields}; stop that manager changing it, or rerun with --force-conflicts to take the fields over"
            ),
            Self::Record { .. } => {
                "the Secret was edited by hand or written by a newer deployer; remove it or upgrade deployer"
                    .into()
            }
            Self::LockHeld { .. } => {
                "another deploy of this environment is running; wait for it (timeouts.lock) or stop it".into()
            }
            Self::UnknownRelease(_) => "list releases with `deployer history --env ENV`".into(),
            Self::NothingToRollBackTo => "no release of this environment has succeeded yet".into(),
            Self::LockLost => {
                "another run took over this environment; check `deployer status` before retrying".into()
            }
        }
    }
}

/// What a deploy asks for.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// Service → (pinned image, rendered objects).
    pub services: BTreeMap<String, (String, Vec<Value>)>,
    /// Service → services of this release that must roll out healthy before it is applied.
    pub depends_on: BTreeMap<String, Vec<String>>,
    pub git_sha: Option<String>,
    pub actor: Option<String>,
    pub confirmation: Option<String>,
    pub force_conflicts: bool,
    pub rollout_timeout: Duration,
    pub bake: Duration,
    pub lock_wait: Duration,
    /// Identity written into the Lease (`host/pid/…`).
    pub holder: String,
    /// Blue-green instead of rolling: how long the previous colour is kept after the switch.
    pub blue_green: Option<Duration>,
    /// Checked once against the new colour before the switch (blue-green).
    pub smoke_checks: Vec<crate::config::HttpCheck>,
    /// Checked every second during the bake time.
    pub http_checks: Vec<crate::config::HttpCheck>,
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployOutcome {
    /// Healthy through the bake time.
    Succeeded { release: Release },
    /// Failed; every service was returned to `to` (the last known-good release) and is healthy.
    RolledBack { release: Release, to: String, service: String, failure: Box<Failure> },
    /// Failed, and no rollback could restore health (or there was nothing to return to).
    RollbackFailed { release: Release, service: String, failure: Box<Failure>, rollback_error: String },
}

/// One environment on one cluster.
pub struct Eks {
    client: kube::Client,
    namespace: String,
    product: String,
    environment: String,
}

impl Eks {
    pub fn new(client: kube::Client, namespace: &str, product: &str, environment: &str) -> Self {
        Self { client, namespace: namespace.into(), product: product.into(), environment: environment.into() }
    }

    /// Connects through the kubeconfig (`KUBECONFIG` or `~/.kube/config`), optionally a context.
    pub async fn connect(
        context: Option<&str>,
        namespace: &str,
        product: &str,
        environment: &str,
    ) -> Result<Self, EksError> {
        let options =
            kube::config::KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
        let config =
            kube::Config::from_kubeconfig(&options).await.map_err(|e| EksError::Connect(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| EksError::Connect(e.to_string()))?;
        Ok(Self::new(client, namespace, product, environment))
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn records(&self) -> records::Records {
        records::Records::new(&self.client, &self.namespace, &self.product, &self.environment)
    }

    fn lease_name(&self) -> String {
        format!("deployer-{}-{}", self.product, self.environment)
    }

    /// The release history, oldest first.
    pub async fn history(&self) -> Result<Vec<Release>, EksError> {
        self.records().list().await
    }

    async fn lock(&self, holder: &str, wait: Duration, events: &dyn Sink) -> Result<Lock, EksError> {
        let lock = timed(
            events,
            Phase::Lock,
            Lock::acquire(&self.client, &self.namespace, &self.lease_name(), holder, wait),
            Result::is_ok,
        )
        .await?;
        if let Some(prev) = &lock.took_over_from {
            events.emit(&Event::Warning {
                message: format!(
                    "took over the deploy lock from `{prev}`, which stopped renewing it (a run that died?)"
                ),
            });
        }
        Ok(lock)
    }

    /// Deploys a release and ends on a healthy one: this release, or the last known-good.
    pub async fn deploy(&self, req: &DeployRequest, events: &dyn Sink) -> Result<DeployOutcome, EksError> {
        let lock = self.lock(&req.holder, req.lock_wait, events).await?;
        let result = self.deploy_locked(req, &lock, events).await;
        lock.release().await;
        result
    }

    async fn deploy_locked(
        &self,
        req: &DeployRequest,
        lock: &Lock,
        events: &dyn Sink,
    ) -> Result<DeployOutcome, EksError> {
        let records = self.records();
        let history = records.list().await?;
        let sequence = release::next_sequence(&history);
        let mut rel = Release {
            id: Release::make_id(&self.environment, sequence),
            sequence,
            product: self.product.clone(),
            environment: self.environment.clone(),
            status: ReleaseStatus::Pending,
            git_sha: req.git_sha.clone(),
            actor: req.actor.clone(),
            confirmation: req.confirmation.clone(),
            started_at: crate::report::now_rfc3339(),
            finished_at: None,
            failure: None,
            rolled_back_to: None,
            services: req
                .services
                .iter()
                .map(|(s, (image, objs))| {
                    (s.clone(), release::ServiceRelease { image: image.clone(), manifests: objs.clone() })
                })
                .collect(),
        };
        let target = release::last_known_good(&history, None).cloned();
        // Blue-green: the new release goes to the idle colour, Services still on the live one.
        let (stage1, colors) = if req.blue_green.is_none() {
            (None, None)
        } else {
            {
                let live_objects: Vec<Value> = target
                    .iter()
                    .flat_map(|t| t.services.values())
                    .flat_map(|s| s.manifests.clone())
                    .collect();
                let live = bluegreen::live_color(&live_objects);
                let idle = live.map_or(bluegreen::Color::Blue, bluegreen::Color::other);
                let before: BTreeMap<String, Vec<Value>> = rel
                    .services
                    .iter()
                    .map(|(name, s)| {
                        (name.clone(), bluegreen::colorize(&s.manifests, idle, live.unwrap_or(idle)))
                    })
                    .collect();
                for s in rel.services.values_mut() {
                    s.manifests = bluegreen::colorize(&s.manifests, idle, idle);
                }
                events.emit(&Event::Service {
                    service: String::new(),
                    phase: Phase::Apply,
                    message: format!(
                        "blue-green: deploying {} (live: {})",
                        idle.as_str(),
                        live.map_or("none", bluegreen::Color::as_str)
                    ),
                });
                (Some(before), Some((live, idle)))
            }
        };
        let final_objects: Vec<Value> =
            rel.services.values().flat_map(|s| s.manifests.iter().cloned()).collect();
        let first = stage1.unwrap_or_else(|| {
            rel.services.iter().map(|(name, s)| (name.clone(), s.manifests.clone())).collect()
        });
        let released: Vec<String> = rel.services.keys().cloned().collect();
        // A release of some services (`--service`) leaves the others as the last good release
        // had them: the record carries them over, so it describes everything that runs and
        // the prune after it does not delete what this release did not mention.
        if let Some(t) = &target {
            for (name, s) in &t.services {
                rel.services.entry(name.clone()).or_insert_with(|| s.clone());
            }
        }
        records.save(&rel).await?;
        events.emit(&Event::ReleaseStarted {
            release_id: rel.id.clone(),
            product: self.product.clone(),
            environment: self.environment.clone(),
            git_sha: rel.git_sha.clone().unwrap_or_default(),
            services: released,
            strategy: Some(if req.blue_green.is_some() { "blue-green" } else { "rolling" }.to_owned()),
        });
        let outcome = self.roll_out(&rel, &first, &final_objects, colors, req, lock, events).await;
        let (service, failure) = match outcome {
            Ok(WatchOutcome::Healthy) => {
                for service in first.keys() {
                    events.emit(&Event::HealthVerdict {
                        service: service.clone(),
                        verdict: crate::events::Verdict::Healthy,
                    });
                }
                // After the bake (and, blue-green, the scale-down delay): what left goes.
                let previous = target.as_ref().map(all_refs).unwrap_or_default();
                self.prune(&previous, &all_refs(&rel), events).await?;
                rel.status = ReleaseStatus::Succeeded;
                rel.finished_at = Some(crate::report::now_rfc3339());
                records.save(&rel).await?;
                let mut h = records.list().await?;
                h.retain(|r| r.id != rel.id);
                h.push(rel.clone());
                records.trim(&h).await?;
                return Ok(DeployOutcome::Succeeded { release: rel });
            }
            Ok(WatchOutcome::Failed { service, failure }) => (service, failure),
            // An apply error (e.g. a conflict) is a failure after a partial apply: roll back too.
            Err(e) => (
                String::new(),
                Box::new(Failure {
                    workload: String::new(),
                    pod: None,
                    container: None,
                    reason: "ApplyFailed".into(),
                    message: format!("{e} ({})", e.hint()),
                    restart_count: None,
                    events: Vec::new(),
                }),
            ),
        };
        rel.failure = Some(failure.to_string());
        events.emit(&Event::HealthVerdict { service: service.clone(), verdict: verdict_of(&failure) });
        let rollback = match &target {
            None => Err(EksError::NothingToRollBackTo),
            Some(t) => self.return_to(t, &rel, req, events).await,
        };
        rel.finished_at = Some(crate::report::now_rfc3339());
        match rollback {
            Ok(()) => {
                let to = target.map(|t| t.id).unwrap_or_default();
                rel.status = ReleaseStatus::RolledBack;
                rel.rolled_back_to = Some(to.clone());
                records.save(&rel).await?;
                Ok(DeployOutcome::RolledBack { release: rel, to, service, failure })
            }
            Err(e) => {
                rel.status = ReleaseStatus::Failed;
                records.save(&rel).await?;
                Ok(DeployOutcome::RollbackFailed {
                    release: rel,
                    service,
                    failure,
                    rollback_error: format!("{e}; {}", e.hint()),
                })
            }
        }
    }

    /// Applies and verifies a release: rollout (in `depends_on` waves) → (blue-green: smoke
    /// checks, switch) → bake → (blue-green: hold the previous colour for the scale-down delay).
    #[allow(clippy::too_many_arguments)]
    async fn roll_out(
        &self,
        rel: &Release,
        first: &BTreeMap<String, Vec<Value>>,
        last: &[Value],
        colors: Option<(Option<bluegreen::Color>, bluegreen::Color)>,
        req: &DeployRequest,
        lock: &Lock,
        events: &dyn Sink,
    ) -> Result<WatchOutcome, EksError> {
        // One deadline for the whole rollout, however many waves share it.
        let deadline = tokio::time::Instant::now() + req.rollout_timeout;
        let waves = rollout_waves(first, &req.depends_on);
        for (i, wave) in waves.iter().enumerate() {
            if waves.len() > 1 {
                events.emit(&Event::Service {
                    service: String::new(),
                    phase: Phase::Apply,
                    message: format!("wave {}/{}: {}", i + 1, waves.len(), wave.join(", ")),
                });
            }
            let objects: Vec<Value> = wave.iter().flat_map(|s| first[s.as_str()].iter().cloned()).collect();
            self.apply(&objects, req.force_conflicts, events).await?;
            if lock.lost() {
                return Err(EksError::LockLost);
            }
            // A later wave starts only once this one runs healthy: what depends on it is never
            // applied next to a broken dependency.
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let rollout = self.watch_services(rel, Some(wave), remaining, Duration::ZERO, events).await;
            if rollout != WatchOutcome::Healthy {
                return Ok(rollout);
            }
        }
        let http = reqwest::Client::new();
        if let Some((live, idle)) = colors {
            if let Err(message) = crate::checks::all_pass(&http, &req.smoke_checks).await {
                return Ok(check_failed("smoke check", message));
            }
            // The switch: Services now select the new colour.
            self.apply(last, req.force_conflicts, events).await?;
            events.emit(&Event::Service {
                service: String::new(),
                phase: Phase::Apply,
                message: format!(
                    "blue-green: switched traffic to {} (from {})",
                    idle.as_str(),
                    live.map_or("none", bluegreen::Color::as_str)
                ),
            });
        }
        let bake = self.verify(rel, req.bake, &req.http_checks, &http, events).await;
        if bake != WatchOutcome::Healthy {
            return Ok(bake);
        }
        if let (Some(delay), Some(_)) = (req.blue_green, colors)
            && !delay.is_zero()
        {
            events.emit(&Event::Service {
                service: String::new(),
                phase: Phase::Bake,
                message: format!(
                    "blue-green: keeping the previous colour for {} (switching back is instant until then)",
                    humantime::format_duration(delay)
                ),
            });
            return Ok(self.verify(rel, delay, &req.http_checks, &http, events).await);
        }
        Ok(WatchOutcome::Healthy)
    }

    /// Keeps watching the workloads and the HTTP checks for `duration`.
    async fn verify(
        &self,
        rel: &Release,
        duration: Duration,
        checks: &[crate::config::HttpCheck],
        http: &reqwest::Client,
        events: &dyn Sink,
    ) -> WatchOutcome {
        if duration.is_zero() {
            return WatchOutcome::Healthy;
        }
        let watch = self.watch_release(rel, duration + Duration::from_secs(30), duration, events);
        let probes = crate::checks::keep_passing(http, checks, duration);
        tokio::pin!(watch, probes);
        // Both must hold for the whole duration; either failing ends it at once.
        tokio::select! {
            w = &mut watch => match w {
                WatchOutcome::Healthy => match probes.await {
                    Ok(()) => WatchOutcome::Healthy,
                    Err(message) => check_failed("http check", message),
                },
                failed @ WatchOutcome::Failed { .. } => failed,
            },
            p = &mut probes => match p {
                Ok(()) => watch.await,
                Err(message) => check_failed("http check", message),
            },
        }
    }

    /// Applies `target`'s objects, prunes what `from` added, and watches until healthy.
    async fn return_to(
        &self,
        target: &Release,
        from: &Release,
        req: &DeployRequest,
        events: &dyn Sink,
    ) -> Result<(), EksError> {
        let start = std::time::Instant::now();
        events.emit(&Event::PhaseStarted { phase: Phase::Rollback });
        events.emit(&Event::RollbackStarted {
            to_release: Some(target.id.clone()),
            reason: from.failure.clone().unwrap_or_else(|| format!("rollback from {} requested", from.id)),
            digests: digests_of(target),
        });
        let objects: Vec<Value> =
            target.services.values().flat_map(|s| s.manifests.iter().cloned()).collect();
        // Our own earlier state: take fields back from whoever holds them now.
        self.apply(&objects, true, events).await?;
        self.prune(&all_refs(from), &all_refs(target), events).await?;
        let outcome = self.watch_release(target, req.rollout_timeout, Duration::ZERO, events).await;
        let ok = outcome == WatchOutcome::Healthy;
        events.emit(&Event::PhaseFinished { phase: Phase::Rollback, ok, elapsed_ms: elapsed_ms(start) });
        events.emit(&Event::RollbackFinished {
            to_release: Some(target.id.clone()),
            ok,
            digests: digests_of(target),
            message: match &outcome {
                WatchOutcome::Healthy => None,
                WatchOutcome::Failed { failure, .. } => Some(failure.to_string()),
            },
        });
        match outcome {
            WatchOutcome::Healthy => Ok(()),
            WatchOutcome::Failed { failure, .. } => Err(EksError::Api {
                action: format!("roll back to {}", target.id),
                message: failure.to_string(),
            }),
        }
    }

    /// Manual rollback to `to` (default: the last known-good release before the newest one).
    /// Recorded as a new release with the target's contents, so it becomes the known-good one.
    pub async fn rollback(
        &self,
        to: Option<&str>,
        req: &DeployRequest,
        events: &dyn Sink,
    ) -> Result<Release, EksError> {
        let lock = self.lock(&req.holder, req.lock_wait, events).await?;
        let result = async {
            let records = self.records();
            let history = records.list().await?;
            let current = history.iter().rev().find(|r| r.status == ReleaseStatus::Succeeded).cloned();
            let target = match to {
                Some(id) => history
                    .iter()
                    .find(|r| r.id == id)
                    .cloned()
                    .ok_or_else(|| EksError::UnknownRelease(id.into()))?,
                None => release::last_known_good(&history, current.as_ref().map(|c| c.id.as_str()))
                    .cloned()
                    .ok_or(EksError::NothingToRollBackTo)?,
            };
            let sequence = release::next_sequence(&history);
            let mut rel = Release {
                id: Release::make_id(&self.environment, sequence),
                sequence,
                status: ReleaseStatus::Pending,
                actor: req.actor.clone(),
                confirmation: req.confirmation.clone(),
                started_at: crate::report::now_rfc3339(),
                finished_at: None,
                failure: None,
                rolled_back_to: Some(target.id.clone()),
                ..target.clone()
            };
            records.save(&rel).await?;
            let from = current.unwrap_or_else(|| target.clone());
            let result = self.return_to(&target, &from, req, events).await;
            rel.finished_at = Some(crate::report::now_rfc3339());
            rel.status = if result.is_ok() { ReleaseStatus::Succeeded } else { ReleaseStatus::Failed };
            if let Err(e) = &result {
                rel.failure = Some(e.to_string());
            }
            records.save(&rel).await?;
            result.map(|()| rel)
        }
        .await;
        lock.release().await;
        result
    }

    async fn apply(&self, objects: &[Value], force: bool, events: &dyn Sink) -> Result<(), EksError> {
        let mut resolver = Resolver::default();
        let apply = apply::apply_all(&self.client, &mut resolver, objects, &self.namespace, force);
        timed(events, Phase::Apply, apply, Result::is_ok).await.map(|_| ())
    }

    async fn prune(
        &self,
        previous: &[ObjectRef],
        current: &[ObjectRef],
        events: &dyn Sink,
    ) -> Result<(), EksError> {
        let mut resolver = Resolver::default();
        let gone = apply::prune(&self.client, &mut resolver, previous, current, &self.namespace).await?;
        for g in gone {
            events.emit(&Event::Service {
                service: String::new(),
                phase: Phase::Apply,
                message: format!("pruned {g}"),
            });
        }
        Ok(())
    }

    async fn watch_release(
        &self,
        rel: &Release,
        timeout: Duration,
        bake: Duration,
        events: &dyn Sink,
    ) -> WatchOutcome {
        self.watch_services(rel, None, timeout, bake, events).await
    }

    /// Watches the workloads of `only` (every service when `None`) of `rel`.
    async fn watch_services(
        &self,
        rel: &Release,
        only: Option<&[String]>,
        timeout: Duration,
        bake: Duration,
        events: &dyn Sink,
    ) -> WatchOutcome {
        events.emit(&Event::PhaseStarted { phase: Phase::Health });
        let workloads: Vec<Workload> = rel
            .services
            .iter()
            .filter(|(svc, _)| only.is_none_or(|o| o.contains(svc)))
            .flat_map(|(svc, s)| {
                s.manifests.iter().map(object_ref).filter(|r| watch::is_workload(&r.kind)).map(|r| Workload {
                    service: svc.clone(),
                    kind: r.kind,
                    namespace: r.namespace.unwrap_or_else(|| self.namespace.clone()),
                    name: r.name,
                })
            })
            .collect();
        let start = std::time::Instant::now();
        let outcome = watch::watch(&self.client, &workloads, timeout, bake, events).await;
        events.emit(&Event::PhaseFinished {
            phase: Phase::Health,
            ok: outcome == WatchOutcome::Healthy,
            elapsed_ms: elapsed_ms(start),
        });
        outcome
    }
}

/// Runs `fut` as a phase with start/finish events and its real duration.
async fn timed<T, F: Future<Output = T>>(
    events: &dyn Sink,
    phase: Phase,
    fut: F,
    ok: impl Fn(&T) -> bool,
) -> T {
    let start = std::time::Instant::now();
    events.emit(&Event::PhaseStarted { phase });
    let r = fut.await;
    events.emit(&Event::PhaseFinished { phase, ok: ok(&r), elapsed_ms: elapsed_ms(start) });
    r
}

fn elapsed_ms(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Service → digest of a release (for reports).
pub fn digests_of(rel: &Release) -> BTreeMap<String, String> {
    rel.services
        .iter()
        .map(|(s, r)| {
            (s.clone(), r.image.rsplit_once('@').map_or_else(|| r.image.clone(), |(_, d)| d.to_owned()))
        })
        .collect()
}

/// The report form of a failure.
pub fn verdict_of(f: &Failure) -> crate::events::Verdict {
    crate::events::Verdict::Failed(Box::new(crate::events::HealthFailure {
        workload: f.workload.clone(),
        pod: f.pod.clone(),
        container: f.container.clone(),
        reason: f.reason.clone(),
        restart_count: f.restart_count.and_then(|n| u32::try_from(n).ok()),
        message: (!f.message.is_empty()).then(|| f.message.clone()),
    }))
}

fn check_failed(what: &str, message: String) -> WatchOutcome {
    WatchOutcome::Failed {
        service: String::new(),
        failure: Box::new(Failure {
            workload: what.to_owned(),
            pod: None,
            container: None,
            reason: "CheckFailed".into(),
            message,
            restart_count: None,
            events: Vec::new(),
        }),
    }
}

/// The services of a release in `depends_on` waves (names; dependencies outside the release
/// already run and do not wait).
fn rollout_waves(
    services: &BTreeMap<String, Vec<Value>>,
    depends_on: &BTreeMap<String, Vec<String>>,
) -> Vec<Vec<String>> {
    let names: Vec<&String> = services.keys().collect();
    let items: Vec<(&str, &[String])> = names
        .iter()
        .map(|n| (n.as_str(), depends_on.get(n.as_str()).map_or(&[][..], Vec::as_slice)))
        .collect();
    crate::platform::dependency_waves(&items)
        .into_iter()
        .map(|w| w.into_iter().map(|i| names[i].clone()).collect())
        .collect()
}

fn all_refs(rel: &Release) -> Vec<ObjectRef> {
    rel.services.values().flat_map(|s| s.manifests.iter().map(object_ref)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_follow_depends_on_inside_the_release_only() {
        let services: BTreeMap<String, Vec<Value>> =
            ["order", "payment", "user"].iter().map(|s| ((*s).to_owned(), Vec::new())).collect();
        let deps: BTreeMap<String, Vec<String>> = [
            ("order".to_owned(), vec!["user".to_owned()]),
            // Not in this release: it already runs, nothing waits for it.
            ("payment".to_owned(), vec!["analytics".to_owned()]),
        ]
        .into_iter()
        .collect();
        assert_eq!(rollout_waves(&services, &deps), vec![vec!["payment", "user"], vec!["order"]]);
        assert_eq!(rollout_waves(&services, &BTreeMap::new()), vec![vec!["order", "payment", "user"]]);
    }
}
