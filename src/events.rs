//! The one event stream every phase writes to.
//!
//! Renderers (terminal, plain CI log, GitHub log groups and summary, JSON lines) and notifiers
//! only ever see [`Event`]s, so what a person reads, what a machine parses and what GitHub or
//! Slack show cannot disagree. The JSON form is versioned by [`SCHEMA_VERSION`]: one object per
//! line, `{"v":1,"ts":"…","event":"<kebab-case name>",…fields}`; every event and field is
//! documented in `docs/events.md` (keep that table in step with this file).
//!
//! Compatibility rule: adding an event or an optional field is not a version bump (consumers
//! must ignore what they do not know); renaming, removing or changing the type of a field is.
//!
//! A deploy emits, in order: `started`, `phase-started`/`phase-finished` around each phase,
//! `planned`, `release-started`, per service `image-pushed` and `scan-summary`,
//! `service-progress` while rolling out, `health-verdict`, optionally `rollback-started` /
//! `rollback-finished`, then `release-finished` and finally `finished`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{ExitCode, Problem};
use crate::plan::Plan;

/// Version of the JSON-lines event format (`--output json`); bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A phase of a command, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Config,
    Observe,
    Plan,
    Identity,
    Build,
    Push,
    Scan,
    Render,
    Lock,
    /// Release hooks (migrations before the apply, tests after it, pre-rollback tasks).
    Hooks,
    Apply,
    Health,
    Bake,
    Record,
    Rollback,
    Report,
}

impl Phase {
    pub const fn title(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Observe => "observe",
            Self::Plan => "plan",
            Self::Identity => "identity",
            Self::Build => "build",
            Self::Push => "push",
            Self::Scan => "scan gate",
            Self::Render => "render",
            Self::Lock => "lock",
            Self::Hooks => "hooks",
            Self::Apply => "apply",
            Self::Health => "health",
            Self::Bake => "bake",
            Self::Record => "record",
            Self::Rollback => "rollback",
            Self::Report => "report",
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A command began.
    Started { command: String, product: Option<String>, environment: Option<String> },
    /// A phase began.
    PhaseStarted { phase: Phase },
    /// A phase ended.
    PhaseFinished { phase: Phase, ok: bool, elapsed_ms: u64 },
    /// A fact about one service's progress.
    Service { service: String, phase: Phase, message: String },
    /// Something could not be looked at; the plan says so instead of guessing.
    Unobserved { what: String, reason: String },
    /// A non-fatal problem (e.g. a notifier failed).
    Warning { message: String },
    /// The computed plan.
    Planned { plan: Box<Plan> },
    /// Configuration checked.
    Validated { product: String, environments: Vec<String>, services: usize },
    /// A release began: the identity of what is being deployed, and where.
    ReleaseStarted {
        /// Unique id of this release (recorded in the environment; rollback targets name it).
        release_id: String,
        product: String,
        environment: String,
        git_sha: String,
        /// Services in deploy order.
        services: Vec<String>,
        /// `rolling` or `blue-green`.
        #[serde(skip_serializing_if = "Option::is_none")]
        strategy: Option<String>,
    },
    /// A service's image is in the registry, addressed by digest from here on.
    ImagePushed {
        service: String,
        /// Repository without tag or digest, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web`.
        repository: String,
        /// `sha256:…`.
        digest: String,
    },
    /// The scan gate's verdict for one service's image.
    ScanSummary(Box<ScanSummary>),
    /// Progress of one service inside a phase (rollout counts, blue-green steps).
    ServiceProgress {
        service: String,
        phase: Phase,
        /// Replicas / tasks running the new version.
        #[serde(skip_serializing_if = "Option::is_none")]
        ready: Option<u32>,
        /// Replicas / tasks wanted.
        #[serde(skip_serializing_if = "Option::is_none")]
        desired: Option<u32>,
        message: String,
    },
    /// The health verdict for one service after rollout (and bake).
    HealthVerdict { service: String, verdict: Verdict },
    /// A release hook started or ended.
    Hook {
        service: String,
        /// The hook's name (`migrate`).
        hook: String,
        stage: crate::model::HookStage,
        status: HookStatus,
        /// Set once it ended.
        #[serde(skip_serializing_if = "Option::is_none")]
        elapsed_ms: Option<u64>,
        /// Why it failed, with its last log lines.
        #[serde(skip_serializing_if = "Option::is_none")]
        failure: Option<Box<HealthFailure>>,
    },
    /// Automatic (or requested) rollback began.
    RollbackStarted {
        /// The release rolled back to (the last known-good); `None` when there is none.
        #[serde(skip_serializing_if = "Option::is_none")]
        to_release: Option<String>,
        /// Why: usually the failed health verdict.
        reason: String,
        /// Service → digest being restored.
        digests: BTreeMap<String, String>,
    },
    /// Rollback ended.
    RollbackFinished {
        #[serde(skip_serializing_if = "Option::is_none")]
        to_release: Option<String>,
        ok: bool,
        /// Service → digest now running (for a failed rollback: what was restored before it stopped).
        digests: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A release ended: its outcome, where it runs, and how long each phase took.
    ReleaseFinished {
        release_id: String,
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        environment_url: Option<String>,
        /// Phase timings relative to the release start, in pipeline order.
        timings: Vec<PhaseTiming>,
    },
    /// A table of results (`status`, `history`).
    Table { title: String, columns: Vec<String>, rows: Vec<Vec<String>> },
    /// The command ended.
    Finished {
        result: &'static str,
        exit_code: u8,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        problems: Vec<Problem>,
    },
}

/// The scan gate's result for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanSummary {
    pub service: String,
    pub digest: String,
    /// Findings per severity as ECR reports them (`CRITICAL`, `HIGH`, `MEDIUM`, `LOW`,
    /// `INFORMATIONAL`, `UNDEFINED`), after ignores.
    pub counts: BTreeMap<String, u32>,
    /// True when the gate let the image through.
    pub passed: bool,
    /// Findings over the limits (these refused the image).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<Finding>,
    /// Findings not counted because an unexpired ignore entry covers them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredFinding>,
    /// Ignore entries past their `expires` date: their findings count again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expired_ignores: Vec<IgnoredFinding>,
    /// Set when the scan did not complete (timeout, unsupported image) and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One vulnerability finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `CVE-…` / `GHSA-…`.
    pub id: String,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
}

/// A finding covered (or no longer covered) by a configured ignore entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredFinding {
    pub id: String,
    pub reason: String,
    /// `YYYY-MM-DD`.
    pub expires: String,
}

/// A service's health verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    Failed(Box<HealthFailure>),
}

/// Where a release hook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStatus {
    Running,
    Succeeded,
    Failed,
    /// Stopped by a cancelled release.
    Stopped,
}

/// Why a service was judged unhealthy: the first failing thing, named precisely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthFailure {
    /// `Deployment/web`, `ECS service shop-web`.
    pub workload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Short machine-ish reason: `CrashLoopBackOff`, `ImagePullBackOff`, `ProgressDeadlineExceeded`,
    /// `EssentialContainerExited`, `HttpCheckFailed`, `AlarmInAlarm`.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// Human detail (last log line, exit code, HTTP status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last lines the failing container wrote (hooks), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything healthy; the release is recorded as known-good.
    Succeeded,
    /// A service failed and the previous release was restored.
    FailedRolledBack,
    /// A service failed and restoring the previous release failed too: manual action needed.
    RollbackFailed,
    /// The scan gate (or approval) refused: nothing was changed.
    RefusedByGate,
    /// Stopped before changing anything for another reason (auth, lock, internal).
    Failed,
    /// Cancelled (SIGINT/SIGTERM) before it ended; recorded `interrupted` (or `rolled-back`
    /// when the undo finished).
    Interrupted,
}

impl Outcome {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::FailedRolledBack => "failed-rolled-back",
            Self::RollbackFailed => "rollback-failed",
            Self::RefusedByGate => "refused-by-gate",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// When a phase ran, relative to the release start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub start_ms: u64,
    pub elapsed_ms: u64,
    pub ok: bool,
}

impl Event {
    pub fn finished(code: ExitCode, problems: Vec<Problem>) -> Self {
        Self::Finished { result: code.name(), exit_code: code.code(), problems }
    }
}

/// Receives events. Implemented by renderers and notifiers.
pub trait Sink: Send + Sync {
    fn emit(&self, event: &Event);
}

impl<T: Sink + ?Sized> Sink for Arc<T> {
    fn emit(&self, event: &Event) {
        (**self).emit(event);
    }
}

/// Fans one event out to several sinks, in order.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
}

impl Fanout {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Self { sinks }
    }
}

impl Sink for Fanout {
    fn emit(&self, event: &Event) {
        for s in &self.sinks {
            s.emit(event);
        }
    }
}

/// Keeps every event (tests, and the end-of-run summary).
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Sink for Recorder {
    fn emit(&self, event: &Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}
