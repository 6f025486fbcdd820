//! EKS (any Kubernetes) as a [`Platform`]: server-side apply in dependency order, watch-based
//! health ([`watch`], verdicts in [`assess`]), release records in Secrets ([`records`]), the
//! Lease lock ([`lock`]), blue-green by colour ([`bluegreen`]: Services switch selectors), and
//! prune of what a release left behind. The release sequence itself is the engine's
//! ([`crate::engine`]).
//!
//! Library API: [`Eks::connect`] (a kubeconfig context) or [`Eks::new`] (a ready
//! `kube::Client`), then [`crate::engine::deploy`] / [`crate::engine::rollback`] with it.

pub mod apply;
pub mod assess;
pub mod bluegreen;
pub mod diff;
pub mod hook;
pub mod lock;
pub mod records;
pub mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::events::{Event, Phase, Sink};
use crate::model::{Failure, Reason};
use crate::platform::{Applied, AppliedService, ApplyMode, Platform, PlatformError, Running};
use crate::release::Release;
use crate::render::ObjectRef;
use crate::render::kustomize::object_ref;
use apply::Resolver;
use watch::{WatchOutcome, Workload};

/// Errors of the EKS platform's parts (records, lock, apply); the platform turns them into
/// [`PlatformError`]s.
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

impl From<EksError> for PlatformError {
    fn from(e: EksError) -> Self {
        let hint = e.hint();
        match e {
            EksError::LockHeld { lease, holder } => Self::LockHeld { lock: lease, holder },
            EksError::Connect(message) => Self::Connect { what: "the cluster".into(), message },
            EksError::UnknownRelease(_) | EksError::NothingToRollBackTo => {
                Self::Setup { message: e.to_string(), hint, file: None }
            }
            EksError::Api { action, message } => Self::Api { operation: action, message, hint },
            other => Self::Api { operation: "kubernetes".into(), message: other.to_string(), hint },
        }
    }
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
        let client = crate::support::kube_client(config).map_err(|e| EksError::Connect(e.to_string()))?;
        Ok(Self::new(client, namespace, product, environment))
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn records(&self) -> records::Records {
        records::Records::new(&self.client, &self.namespace, &self.product, &self.environment)
    }

    fn lease_name(&self) -> String {
        format!("deployer-{}-{}", self.product, self.environment)
    }

    async fn apply_objects(&self, objects: &[Value], force: bool) -> Result<(), EksError> {
        let mut resolver = Resolver::default();
        apply::apply_all(&self.client, &mut resolver, objects, &self.namespace, force).await.map(|_| ())
    }

    async fn prune(
        &self,
        previous: &[ObjectRef],
        current: &[ObjectRef],
        events: &dyn Sink,
    ) -> Result<(), EksError> {
        let mut resolver = Resolver::default();
        let (gone, kept) =
            apply::prune(&self.client, &mut resolver, previous, current, &self.namespace, &self.environment)
                .await?;
        for g in gone {
            events.emit(&Event::Service {
                service: String::new(),
                phase: Phase::Apply,
                message: format!("pruned {g}"),
            });
        }
        for k in kept {
            events.emit(&Event::Warning {
                message: format!(
                    "kept {k}: it left the overlays, but its live object no longer carries deployer's labels (app.kubernetes.io/managed-by=deployer), so it is not deployer's to delete"
                ),
            });
        }
        Ok(())
    }

    fn workloads(&self, applied: &Applied) -> Vec<Workload> {
        applied
            .services
            .iter()
            .flat_map(|a| {
                a.objects.iter().map(object_ref).filter(|r| watch::is_workload(&r.kind)).map(|r| Workload {
                    service: a.service.clone(),
                    kind: r.kind,
                    namespace: r.namespace.unwrap_or_else(|| self.namespace.clone()),
                    name: r.name,
                    ready_within: applied.ready_within.get(&a.service).copied(),
                })
            })
            .collect()
    }
}

impl Platform for Eks {
    async fn history(&self) -> Result<Vec<Release>, PlatformError> {
        Ok(self.records().list().await?)
    }

    async fn running(&self) -> Result<BTreeMap<String, Running>, PlatformError> {
        let history = self.records().list().await?;
        let mut out = BTreeMap::new();
        let Some(current) = crate::release::last_known_good(&history, None) else { return Ok(out) };
        for (svc, rel) in &current.services {
            let mut live = Vec::new();
            for obj in rel.manifests.iter().filter(|o| o["kind"] == "Deployment") {
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or(&self.namespace).to_owned();
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                    kube::Api::namespaced(self.client.clone(), &ns);
                let image = api
                    .get_opt(name)
                    .await
                    .map_err(|e| PlatformError::api(format!("read Deployment {ns}/{name}"), e))?
                    .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone());
                live.push(image.unwrap_or_else(|| "(missing)".to_owned()));
            }
            out.insert(svc.clone(), Running { live });
        }
        Ok(out)
    }

    async fn lock_holder(&self) -> Result<Option<crate::platform::LockHolder>, PlatformError> {
        let held = lock::holder(&self.client, &self.namespace, &self.lease_name()).await?;
        Ok(held.map(|(holder, live)| crate::platform::LockHolder { holder, live }))
    }

    async fn lock(&self, holder: &str, wait: Duration) -> Result<crate::platform::Lock, PlatformError> {
        let lock =
            lock::Lock::acquire(&self.client, &self.namespace, &self.lease_name(), holder, wait).await?;
        Ok(crate::platform::Lock::Lease(lock))
    }

    async fn record(&self, release: &Release) -> Result<(), PlatformError> {
        let records = self.records();
        records.save(release).await?;
        if release.status != crate::release::ReleaseStatus::Pending {
            let mut h = records.list().await?;
            h.retain(|r| r.id != release.id);
            h.push(release.clone());
            records.trim(&h).await?;
        }
        Ok(())
    }

    async fn prepare(
        &self,
        release: &mut Release,
        previous: Option<&Release>,
        blue_green: bool,
        events: &dyn Sink,
    ) -> Result<(), PlatformError> {
        if !blue_green {
            return Ok(());
        }
        // The new release goes to the idle colour; until the switch the Services select the live one.
        let live_objects: Vec<Value> =
            previous.iter().flat_map(|t| t.services.values()).flat_map(|s| s.manifests.clone()).collect();
        let live = bluegreen::live_color(&live_objects);
        let idle = live.map_or(bluegreen::Color::Blue, bluegreen::Color::other);
        for s in release.services.values_mut() {
            s.stage = Some(bluegreen::colorize(&s.manifests, idle, live.unwrap_or(idle)));
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
        Ok(())
    }

    async fn apply(
        &self,
        release: &Release,
        services: &[String],
        mode: ApplyMode,
        events: &dyn Sink,
    ) -> Result<Applied, PlatformError> {
        let mut applied = Applied::default();
        let mut objects = Vec::new();
        for name in services {
            let Some(s) = release.services.get(name) else { continue };
            let objs = match &mode {
                ApplyMode::Rollout { .. } => s.stage.clone().unwrap_or_else(|| s.manifests.clone()),
                ApplyMode::Restore { .. } => s.manifests.clone(),
            };
            objects.extend(objs.iter().cloned());
            applied.services.push(AppliedService {
                service: name.clone(),
                target: String::new(),
                image: s.image.clone(),
                // Kubernetes has no revision of ours to record: the objects are the record.
                revision: String::new(),
                previous: None,
                handle: String::new(),
                changed: true,
                traffic: None,
                after_switch: if s.stage.is_some() { s.manifests.clone() } else { Vec::new() },
                objects: objs,
            });
        }
        match mode {
            ApplyMode::Rollout { force_conflicts } => self.apply_objects(&objects, force_conflicts).await?,
            ApplyMode::Restore { from } => {
                // Our own earlier state: take fields back from whoever holds them now, and
                // remove what the release being left added.
                self.apply_objects(&objects, true).await?;
                if let Some(from) = from {
                    self.prune(&all_refs(&from), &all_refs(release), events).await?;
                }
            }
        }
        Ok(applied)
    }

    async fn watch(
        &self,
        applied: &Applied,
        deadline: tokio::time::Instant,
        hold: Duration,
        events: &dyn Sink,
    ) -> Result<Option<Failure>, PlatformError> {
        // A hold is not bounded by the rollout deadline: the workloads already ran healthy.
        let timeout = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(hold + Duration::from_secs(30));
        let outcome = watch::watch(&self.client, &self.workloads(applied), timeout, hold, events).await;
        Ok(match outcome {
            WatchOutcome::Healthy => None,
            WatchOutcome::Failed { service, failure } => Some(failure_of(&service, &failure)),
        })
    }

    async fn switch(&self, applied: &Applied, forward: bool, events: &dyn Sink) -> Result<(), PlatformError> {
        if !forward {
            // Switching back is the restore of the last good release's objects (their Services
            // select the old colour, which still runs at full size).
            return Ok(());
        }
        let objects: Vec<Value> =
            applied.services.iter().flat_map(|a| a.after_switch.iter().cloned()).collect();
        self.apply_objects(&objects, false).await?;
        if let Some(new) = bluegreen::live_color(&objects) {
            events.emit(&Event::Service {
                service: String::new(),
                phase: Phase::Apply,
                message: format!(
                    "blue-green: switched traffic to {} (from {})",
                    new.as_str(),
                    new.other().as_str()
                ),
            });
        }
        Ok(())
    }

    async fn finish(
        &self,
        _applied: &Applied,
        release: &Release,
        previous: Option<&Release>,
        events: &dyn Sink,
    ) -> Result<(), PlatformError> {
        let mut keep = all_refs(release);
        if let Some(prev) = previous {
            let objects = |r: &Release| -> Vec<Value> {
                r.services.values().flat_map(|s| s.manifests.iter().cloned()).collect()
            };
            let idle = bluegreen::superseded_colours(&objects(prev), &objects(release));
            if !idle.is_empty() {
                self.apply_objects(&idle, false).await?;
                for o in &idle {
                    let r = object_ref(o);
                    events.emit(&Event::Service {
                        service: String::new(),
                        phase: Phase::Record,
                        message: format!(
                            "blue-green: {}/{} scaled to 0 (kept for the next release)",
                            r.kind, r.name
                        ),
                    });
                    keep.push(r);
                }
            }
        }
        let previous = previous.map(all_refs).unwrap_or_default();
        self.prune(&previous, &keep, events).await?;
        Ok(())
    }

    async fn run_hook(
        &self,
        release: &Release,
        hook: &crate::model::Hook,
        events: &dyn Sink,
    ) -> Result<Option<Failure>, PlatformError> {
        hook::run(self, release, hook, events).await
    }

    async fn stop_hook(&self, release: &Release, hook: &crate::model::Hook) -> Result<(), PlatformError> {
        hook::stop(self, release, hook).await
    }
}

/// The engine's failure for a watch failure.
fn failure_of(service: &str, f: &assess::Failure) -> Failure {
    let mut subject = vec![f.workload.clone()];
    if let Some(p) = &f.pod {
        subject.push(format!("pod {p}"));
    }
    if let Some(c) = &f.container {
        subject.push(format!("container {c}"));
    }
    let mut detail = f.message.clone();
    if !f.events.is_empty() {
        detail = format!("{detail} ({})", f.events.join("; "));
    }
    Failure {
        restart_count: f.restart_count.and_then(|n| u32::try_from(n).ok()),
        ..Failure::new(Some(service), Reason::from_kubernetes(&f.reason), subject.join(" "), detail)
    }
}

fn all_refs(rel: &Release) -> Vec<ObjectRef> {
    rel.services.values().flat_map(|s| s.manifests.iter().map(object_ref)).collect()
}
