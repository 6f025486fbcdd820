//! Platforms: where services run (EKS, ECS), behind one small trait that the one release
//! engine ([`crate::engine`]) drives. A platform does only what differs between them:
//! [`prepare`](Platform::prepare) a release (EKS: blue-green colours), [`apply`](Platform::apply)
//! services (EKS: server-side apply; ECS: task definitions and `UpdateService`),
//! [`watch`](Platform::watch) them (EKS: watches; ECS: polling deployments and tasks),
//! [`switch`](Platform::switch) production traffic (EKS: Service selectors; ECS: the ALB
//! listener), [`finish`](Platform::finish) a release (EKS: prune; ECS: scale the old colour
//! down), and keep the [`lock`](Platform::lock) and the [`record`](Platform::record)s.
//! Everything else (ids, waves, deadlines, bake, alarms, HTTP checks, rollback target, events,
//! exit codes) is the engine's. [`Any`] is the closed set, dispatched by enum.

pub mod ecs;
pub mod eks;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::events::Sink;
use crate::model::{Failure, Hook};
use crate::release::Release;

/// How [`Platform::apply`] applies.
#[derive(Debug, Clone)]
pub enum ApplyMode {
    /// A new release: rolling in place, or to the idle side (blue-green).
    Rollout { force_conflicts: bool },
    /// Back to a recorded release (`from` is what runs now, for prune): our own earlier state.
    Restore { from: Option<Box<Release>> },
}

/// What `apply` started for one service.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedService {
    pub service: String,
    /// The platform's name for it (ECS service name; EKS: empty).
    pub target: String,
    pub image: String,
    /// The revision now desired (ECS task-definition ARN; EKS: none, the objects are the record).
    pub revision: String,
    /// The revision that ran before (ECS task-definition ARN).
    pub previous: Option<String>,
    /// What to follow (ECS deployment id).
    pub handle: String,
    /// False when the service already ran exactly this (nothing was started).
    pub changed: bool,
    /// Deployer-driven blue/green: traffic to move once `target` is healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// EKS: the objects applied (the workloads among them are watched).
    #[serde(skip)]
    pub objects: Vec<serde_json::Value>,
    /// EKS blue-green: the objects that move traffic (Services selecting the new colour).
    #[serde(skip)]
    pub after_switch: Vec<serde_json::Value>,
}

/// Deployer-driven blue/green on ECS: `target` is the idle colour being deployed; the switch
/// moves production traffic from `from_group` to `to_group`; `other` is the colour serving now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// ALB listener ARN.
    pub listener: String,
    /// Listener rule ARN; None = the listener's default action.
    pub rule: Option<String>,
    pub from_group: String,
    pub to_group: String,
    /// The colour serving now (ECS service name).
    pub other: String,
}

/// What `apply` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    pub services: Vec<AppliedService>,
    /// Service → how long a new pod or task may run un-Ready before [`Platform::watch`] fails
    /// it (`ready_within`; set by the engine, absent = no bound of its own).
    #[serde(skip)]
    pub ready_within: BTreeMap<String, Duration>,
}

/// What runs now for one service (`deployer status`).
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// The images (or ECS task definitions) that run, one per workload.
    pub live: Vec<String>,
}

/// Who holds an environment's deploy lock (`deployer status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub holder: String,
    /// False once the holder stopped renewing it (a run that died): the next run takes it over.
    pub live: bool,
}

/// The deploy lock of an environment, whichever primitive holds it.
pub enum Lock {
    /// A Kubernetes Lease.
    Lease(eks::lock::Lock),
    /// An item in a DynamoDB table (ECS), written only by conditional updates.
    Table(ecs::lock::Lock),
}

impl Lock {
    /// The holder this run took a stale lock over from.
    pub fn took_over_from(&self) -> Option<&str> {
        match self {
            Self::Lease(l) => l.took_over_from.as_deref(),
            Self::Table(l) => l.took_over_from.as_deref(),
        }
    }

    /// True when another run took the lock (this one must stop changing things).
    pub fn lost(&self) -> bool {
        match self {
            Self::Lease(l) => l.lost(),
            Self::Table(l) => l.lost(),
        }
    }

    /// Stops renewing and releases the lock if it is still ours.
    pub async fn release(self) {
        match self {
            Self::Lease(l) => l.release().await,
            Self::Table(l) => l.release().await,
        }
    }
}

/// A platform, as the engine drives it.
pub trait Platform: Sync {
    /// The release records, oldest first. Read-only.
    fn history(&self) -> impl Future<Output = Result<Vec<Release>, PlatformError>> + Send;
    /// What runs per service. Read-only.
    fn running(&self) -> impl Future<Output = Result<BTreeMap<String, Running>, PlatformError>> + Send;
    /// Who holds the environment's deploy lock now, if anyone. Read-only.
    fn lock_holder(&self) -> impl Future<Output = Result<Option<LockHolder>, PlatformError>> + Send;
    /// Takes the environment's deploy lock, waiting up to `wait` for a live holder.
    fn lock(&self, holder: &str, wait: Duration) -> impl Future<Output = Result<Lock, PlatformError>> + Send;
    /// Writes (or overwrites) a release's record.
    fn record(&self, release: &Release) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Fixes what a new release will run before it is recorded (EKS blue-green: the colour).
    fn prepare(
        &self,
        release: &mut Release,
        previous: Option<&Release>,
        blue_green: bool,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Applies `services` of `release`; returns what to follow.
    fn apply(
        &self,
        release: &Release,
        services: &[String],
        mode: ApplyMode,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<Applied, PlatformError>> + Send;
    /// Follows `applied` until it runs healthy (failing at `deadline`) and stays healthy for
    /// `hold`. `Ok(Some(failure))` is a failed release; `Err` is a failure to watch.
    fn watch(
        &self,
        applied: &Applied,
        deadline: tokio::time::Instant,
        hold: Duration,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<Option<Failure>, PlatformError>> + Send;
    /// Blue-green: moves production traffic to the new side (`forward`) or back to the old one.
    fn switch(
        &self,
        applied: &Applied,
        forward: bool,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// After a release succeeded: remove what it left behind (EKS prune; ECS old colour to 0).
    fn finish(
        &self,
        applied: &Applied,
        release: &Release,
        previous: Option<&Release>,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Runs `hook` once, to completion, with the image (and settings) `release` pins for
    /// `hook.service`: a fresh Kubernetes Job per release (EKS), an ECS `RunTask` of the
    /// release's task definition (ECS). Stopped and failed at `hook.timeout`.
    /// `Ok(None)`: it exited 0. `Ok(Some(failure))`: it failed; the failure says why
    /// (`HookFailed` with `exit N`, or what kept it from running: image pull, OOM, deadline),
    /// with its last log lines. `Err`: it could not be started or followed.
    fn run_hook(
        &self,
        release: &Release,
        hook: &Hook,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<Option<Failure>, PlatformError>> + Send;
    /// Stops what `run_hook` started for `hook` of `release`, if it still runs (a cancelled
    /// release: nothing is left running behind it).
    fn stop_hook(
        &self,
        release: &Release,
        hook: &Hook,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// The closed set of platforms, dispatched by enum: the pipeline holds one of these and never
/// branches on the platform.
pub enum Any {
    Eks(eks::Eks),
    Ecs(Box<ecs::EcsPlatform>),
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            Any::Eks($p) => $e,
            Any::Ecs($p) => $e,
        }
    };
}

impl Platform for Any {
    async fn history(&self) -> Result<Vec<Release>, PlatformError> {
        dispatch!(self, p => Box::pin(p.history()).await)
    }
    async fn running(&self) -> Result<BTreeMap<String, Running>, PlatformError> {
        dispatch!(self, p => Box::pin(p.running()).await)
    }
    async fn lock_holder(&self) -> Result<Option<LockHolder>, PlatformError> {
        dispatch!(self, p => Box::pin(p.lock_holder()).await)
    }
    async fn lock(&self, holder: &str, wait: Duration) -> Result<Lock, PlatformError> {
        dispatch!(self, p => Box::pin(p.lock(holder, wait)).await)
    }
    async fn record(&self, release: &Release) -> Result<(), PlatformError> {
        dispatch!(self, p => Box::pin(p.record(release)).await)
    }
    async fn prepare(
        &self,
        release: &mut Release,
        previous: Option<&Release>,
        blue_green: bool,
        events: &dyn Sink,
    ) -> Result<(), PlatformError> {
        dispatch!(self, p => Box::pin(p.prepare(release, previous, blue_green, events)).await)
    }
    async fn apply(
        &self,
        release: &Release,
        services: &[String],
        mode: ApplyMode,
        events: &dyn Sink,
    ) -> Result<Applied, PlatformError> {
        dispatch!(self, p => Box::pin(p.apply(release, services, mode, events)).await)
    }
    async fn watch(
        &self,
        applied: &Applied,
        deadline: tokio::time::Instant,
        hold: Duration,
        events: &dyn Sink,
    ) -> Result<Option<Failure>, PlatformError> {
        dispatch!(self, p => Box::pin(p.watch(applied, deadline, hold, events)).await)
    }
    async fn switch(&self, applied: &Applied, forward: bool, events: &dyn Sink) -> Result<(), PlatformError> {
        dispatch!(self, p => Box::pin(p.switch(applied, forward, events)).await)
    }
    async fn finish(
        &self,
        applied: &Applied,
        release: &Release,
        previous: Option<&Release>,
        events: &dyn Sink,
    ) -> Result<(), PlatformError> {
        dispatch!(self, p => Box::pin(p.finish(applied, release, previous, events)).await)
    }
    async fn run_hook(
        &self,
        release: &Release,
        hook: &Hook,
        events: &dyn Sink,
    ) -> Result<Option<Failure>, PlatformError> {
        dispatch!(self, p => Box::pin(p.run_hook(release, hook, events)).await)
    }
    async fn stop_hook(&self, release: &Release, hook: &Hook) -> Result<(), PlatformError> {
        dispatch!(self, p => Box::pin(p.stop_hook(release, hook)).await)
    }
}

/// Errors of platform operations.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// An API call failed.
    #[error("{operation} failed: {message}")]
    Api { operation: String, message: String, hint: String },
    /// The environment or its resources are not what the configuration says.
    #[error("{message}")]
    Setup {
        message: String,
        hint: String,
        /// The environment file the problem is about (named in the message users read).
        file: Option<std::path::PathBuf>,
    },
    /// Another run holds the environment's deploy lock.
    #[error("the deploy lock {lock} is held by `{holder}`")]
    LockHeld { lock: String, holder: String },
    /// The platform's API cannot be reached with these credentials.
    #[error("cannot connect to {what}: {message}")]
    Connect { what: String, message: String },
    /// The deploy role may not do what the release needs.
    #[error("{message}")]
    Denied { message: String, hint: String },
}

impl PlatformError {
    pub fn api(operation: impl Into<String>, err: impl fmt::Display) -> Self {
        let message = err.to_string();
        let hint = if message.contains("AccessDenied") || message.contains("not authorized") {
            "the deploy role lacks a permission: grant it the ECS/ELB/CloudWatch actions listed in README.md"
        } else {
            "check the cluster and service names in the environment file and that the AWS region is right"
        };
        Self::Api { operation: operation.into(), message, hint: hint.to_owned() }
    }

    pub fn setup(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Setup { message: message.into(), hint: hint.into(), file: None }
    }

    /// Names the environment file a setup problem is about (kept if one is named already).
    #[must_use]
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Self::Setup { message, hint, file } => {
                Self::Setup { message, hint, file: file.or_else(|| Some(path.to_path_buf())) }
            }
            other => other,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            Self::Api { hint, .. } | Self::Setup { hint, .. } | Self::Denied { hint, .. } => hint.clone(),
            Self::LockHeld { .. } => {
                "another deploy or rollback of this environment is running; wait for it (`timeouts.lock`) or stop it".into()
            }
            Self::Connect { .. } => {
                "check KUBECONFIG / the environment's `target.eks.context` or `cluster`, and the deploy role's access".into()
            }
        }
    }
}

impl crate::error::Diagnostic for PlatformError {
    fn exit_code(&self) -> crate::error::ExitCode {
        match self {
            // The environment is not what its file says: fixed in the file, like any config error.
            Self::Setup { .. } => crate::error::ExitCode::Config,
            Self::Api { .. } => crate::error::ExitCode::Internal,
            Self::LockHeld { .. } => crate::error::ExitCode::LockHeld,
            Self::Connect { .. } | Self::Denied { .. } => crate::error::ExitCode::Auth,
        }
    }

    fn hint(&self) -> String {
        Self::hint(self)
    }

    fn file(&self) -> Option<&std::path::Path> {
        match self {
            Self::Setup { file, .. } => Some(file.as_deref().unwrap_or(std::path::Path::new("environment"))),
            _ => None,
        }
    }
}
