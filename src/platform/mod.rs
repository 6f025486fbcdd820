//! Platforms: where services run, behind one small trait. ECS implements [`Platform`]; EKS
//! ([`eks`]) has its own deploy flow (blue-green by colour, Lease lock, records in Secrets) that
//! predates the trait and is not yet expressed through it.
//!
//! A [`Platform`] can [`observe`](Platform::observe) what runs and what was released,
//! [`apply`](Platform::apply) a [`ReleasePlan`] (start the rollout and return handles to follow),
//! [`watch`](Platform::watch) those handles until a [`Verdict`], and [`record`](Platform::record)
//! the outcome. Four methods, no more: helm's ten-method `kube.Interface` is the warning. Health
//! decisions are not in the platform at all: it turns API answers into samples and
//! [`crate::health::assess`] decides.
//!
//! [`deploy`] is the generic deploy → watch → record → automatic rollback sequence (in
//! `depends_on` waves); a rollback
//! is just another [`ReleasePlan`] whose services point at recorded known-good revisions
//! ([`Desired::Revision`]), never at "revision − 1".
//!
//! Library API for the integrator:
//! - [`ecs::EcsPlatform::new`]`(&SdkConfig, &Config, &Environment)`, then
//!   [`ecs::EcsPlatform::release_plan`] and [`deploy`]`(&platform, &plan, &policy, &sink)`;
//! - [`ecs::rollback`], [`ecs::history`], [`ecs::status`] for `deployer rollback|history|status`.
//!
//! Errors convert into [`crate::Error`] with their exit code: rolled back 5, rollback failed 6.

pub mod ecs;
pub mod eks;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::Serialize;

use crate::events::{Event, Phase, Sink};
use crate::health::{Failure, HealthPolicy, RolloutState, Verdict};

/// A release id: `<UTC time>-<suffix>`, e.g. `20261123T070512Z-1a2b3c4`. Sorts by time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ReleaseId(pub String);

impl ReleaseId {
    /// A new id at `now`; `suffix` is usually the short git sha. Characters outside
    /// `[A-Za-z0-9-]` are dropped so the id fits in tag keys and label values.
    pub fn new(now: time::OffsetDateTime, suffix: &str) -> Self {
        let t = now.to_offset(time::UtcOffset::UTC);
        let clean: String =
            suffix.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(12).collect();
        Self(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            if clean.is_empty() { "release" } else { &clean }
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one service should run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum Desired {
    /// A rendered spec (ECS: the task-definition JSON; EKS: the objects).
    Spec(serde_json::Value),
    /// An existing revision (ECS: a task-definition ARN): rollbacks use recorded ones.
    Revision(String),
}

/// One service of a release.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRelease {
    /// The deployer service name.
    pub service: String,
    /// The image, pinned by digest.
    pub image: String,
    pub desired: Desired,
    /// Services of the same release that must be healthy before this one is applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// What a release changes.
#[derive(Debug, Clone, Serialize)]
pub struct ReleasePlan {
    pub id: ReleaseId,
    /// Who released (GitHub actor or local user), recorded in the history.
    pub actor: String,
    pub services: Vec<ServiceRelease>,
}

/// What `apply` started for one service.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedService {
    pub service: String,
    /// The platform's name for it (ECS service name).
    pub target: String,
    pub image: String,
    /// The revision now desired (ECS task-definition ARN).
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
}

/// Deployer-driven blue/green: `target` is the idle colour being deployed; once it is healthy
/// the switch moves production traffic from `from_group` to `to_group`, and after the bake the
/// other colour (`other`) is scaled down. A rollback is the same move in reverse.
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
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub release: ReleaseId,
    pub services: Vec<AppliedService>,
}

/// The outcome of a release, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Healthy after the bake: its revisions are the new known-good.
    Succeeded,
    /// Failed health and was rolled back to the known-good release.
    RolledBack,
    /// Failed, and the rollback failed too: manual action needed.
    RollbackFailed,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled-back",
            Self::RollbackFailed => "rollback-failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(Self::Succeeded),
            "rolled-back" => Some(Self::RolledBack),
            "rollback-failed" => Some(Self::RollbackFailed),
            _ => None,
        }
    }
}

/// One service's part of a recorded release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedService {
    /// The revision (ECS task-definition ARN) the release deployed.
    pub revision: String,
    /// The image digest (`sha256:…`), when known.
    pub digest: Option<String>,
}

/// One entry of an environment's release history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRecord {
    pub id: ReleaseId,
    /// RFC 3339 UTC.
    pub at: String,
    pub actor: String,
    pub outcome: Outcome,
    pub services: BTreeMap<String, RecordedService>,
}

/// What runs now for one service.
#[derive(Debug, Clone, Serialize)]
pub struct LiveService {
    /// The platform's name (ECS service).
    pub target: String,
    /// The current revision (ECS task-definition ARN).
    pub revision: Option<String>,
    /// The last known-good revision recorded for it.
    pub known_good: Option<String>,
    /// The newest rollout's state.
    pub rollout: Option<RolloutState>,
    pub running: u32,
    pub desired: u32,
}

/// What runs, and what was released.
#[derive(Debug, Clone, Serialize)]
pub struct LiveState {
    pub services: BTreeMap<String, LiveService>,
    /// Newest first.
    pub releases: Vec<ReleaseRecord>,
}

/// A platform.
pub trait Platform: Sync {
    /// Reads what runs and the release records. Read-only.
    fn observe(&self) -> impl Future<Output = Result<LiveState, PlatformError>> + Send;
    /// Starts the rollout of `plan`; returns what to follow.
    fn apply(&self, plan: &ReleasePlan) -> impl Future<Output = Result<Applied, PlatformError>> + Send;
    /// Follows `applied` until the policy gives a verdict (healthy after the bake, or failed).
    fn watch(
        &self,
        applied: &Applied,
        policy: &HealthPolicy,
        events: &dyn Sink,
    ) -> impl Future<Output = Result<Verdict, PlatformError>> + Send;
    /// Records the outcome in the history; `Succeeded` makes the revisions known-good.
    fn record(
        &self,
        plan: &ReleasePlan,
        applied: &Applied,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// How a deploy ended when it did not fail outright.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub applied: Applied,
    pub verdict: Verdict,
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
    /// The release failed its health checks and was rolled back to the known-good release.
    #[error("release {release} failed and was rolled back: {}", join(.failures))]
    RolledBack { release: ReleaseId, failures: Vec<Failure>, restored: Vec<String> },
    /// The release failed and the rollback did not restore the known-good release.
    #[error("release {release} failed{} and its rollback failed too: {reason}", parens(.failures))]
    RollbackFailed { release: ReleaseId, reason: String, failures: Vec<Failure> },
}

fn parens(f: &[Failure]) -> String {
    if f.is_empty() { String::new() } else { format!(" ({})", join(f)) }
}

fn join(f: &[Failure]) -> String {
    f.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
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
            Self::Api { hint, .. } | Self::Setup { hint, .. } => hint.clone(),
            Self::RolledBack { restored, .. } => format!(
                "the known-good release runs again ({}); fix the cause above and deploy again",
                restored.join(", ")
            ),
            Self::RollbackFailed { .. } => {
                "the environment may run a broken version: check `deployer status`, \
                then `deployer rollback --to <release>` or fix the services by hand"
                    .to_owned()
            }
        }
    }
}

impl From<PlatformError> for crate::Error {
    fn from(e: PlatformError) -> Self {
        let hint = e.hint();
        let message = e.to_string();
        match e {
            PlatformError::RolledBack { .. } => Self::RolledBack { message, hint },
            PlatformError::RollbackFailed { .. } => Self::RollbackFailed { message, hint },
            PlatformError::Setup { file, .. } => Self::Config(
                crate::config::ConfigError {
                    file: file.unwrap_or_else(|| std::path::PathBuf::from("environment")),
                    line: None,
                    column: None,
                    message,
                    hint: Some(hint),
                }
                .into(),
            ),
            PlatformError::Api { .. } => Self::Internal { message, hint },
        }
    }
}

/// The plan that puts every service of `applied` back on its known-good revision: the one
/// recorded in `live` (the last release that passed its health checks), else the revision that
/// ran just before `applied` (what the service ran when we found it). Services with neither
/// (first deploy) cannot be rolled back and are returned separately.
pub fn rollback_plan(
    release: &ReleaseId,
    actor: &str,
    applied: &Applied,
    live: &LiveState,
) -> (ReleasePlan, Vec<String>) {
    let mut services = Vec::new();
    let mut impossible = Vec::new();
    for a in &applied.services {
        let known_good = live.services.get(&a.service).and_then(|l| l.known_good.clone());
        match known_good.or_else(|| a.previous.clone()) {
            Some(rev) => {
                let image = live
                    .releases
                    .iter()
                    .find_map(|r| {
                        r.services
                            .get(&a.service)
                            .filter(|s| s.revision == rev)
                            .and_then(|s| s.digest.clone())
                    })
                    .unwrap_or_default();
                // A rollback restores everything at once: the fastest way back.
                services.push(ServiceRelease {
                    service: a.service.clone(),
                    image,
                    desired: Desired::Revision(rev),
                    depends_on: Vec::new(),
                });
            }
            None => impossible.push(a.service.clone()),
        }
    }
    (ReleasePlan { id: release.clone(), actor: actor.to_owned(), services }, impossible)
}

/// Deploys `plan`: apply, watch with `policy`, record; on a failed verdict roll every service
/// back to its known-good revision (watched like a deploy) and return
/// [`PlatformError::RolledBack`] (exit 5) or [`PlatformError::RollbackFailed`] (exit 6).
///
/// Services are applied in waves by `depends_on` ([`waves`]): a wave starts once the previous
/// one rolled out healthy (no bake in between); the bake and HTTP checks then cover the whole
/// release. A failure in any wave rolls back everything applied so far; later waves are never
/// started.
pub async fn deploy<P: Platform>(
    platform: &P,
    plan: &ReleasePlan,
    policy: &HealthPolicy,
    events: &dyn Sink,
) -> Result<DeployReport, PlatformError> {
    // Known-good revisions are read before anything changes.
    let before = platform.observe().await?;
    events.emit(&Event::PhaseStarted { phase: Phase::Apply });
    let waves = waves(&plan.services);
    let mut applied = Applied { release: plan.id.clone(), services: Vec::new() };
    let mut early: Option<Verdict> = None;
    for (i, wave) in waves.iter().enumerate() {
        let sub = ReleasePlan {
            id: plan.id.clone(),
            actor: plan.actor.clone(),
            services: wave.iter().map(|&k| plan.services[k].clone()).collect(),
        };
        let done = match platform.apply(&sub).await {
            Ok(done) => done,
            // Nothing changed yet: a plain error. Later waves: what was applied is rolled back.
            Err(e) if applied.services.is_empty() => return Err(e),
            Err(e) => {
                early = Some(failed(format!("could not apply {}: {e}", names(&sub))));
                break;
            }
        };
        for a in &done.services {
            let message = if a.changed {
                format!("updating {} to {} (deployment {})", a.target, a.revision, a.handle)
            } else {
                format!("{} already runs {}: nothing to roll out", a.target, a.revision)
            };
            events.emit(&Event::Service { service: a.service.clone(), phase: Phase::Apply, message });
        }
        applied.services.extend(done.services.iter().cloned());
        if i + 1 < waves.len() {
            // Dependencies must be healthy before their dependents start; the bake and the
            // HTTP checks come once, after the last wave.
            let v = platform
                .watch(&done, &policy.between_waves(), events)
                .await
                .unwrap_or_else(|e| failed(format!("could not watch the rollout: {e}")));
            if !v.is_healthy() {
                early = Some(v);
                break;
            }
        }
    }
    events.emit(&Event::PhaseStarted { phase: Phase::Health });
    let verdict = match early {
        Some(v) => v,
        None => platform
            .watch(&applied, policy, events)
            .await
            .unwrap_or_else(|e| failed(format!("could not watch the rollout: {e}"))),
    };
    if verdict.is_healthy() {
        events.emit(&Event::PhaseStarted { phase: Phase::Record });
        platform.record(plan, &applied, Outcome::Succeeded).await?;
        return Ok(DeployReport { applied, verdict });
    }
    let failures = verdict.failures().to_vec();
    for f in &failures {
        events.emit(&Event::Service {
            service: f.service.clone().unwrap_or_default(),
            phase: Phase::Health,
            message: format!("failed: {}", f.reason),
        });
    }
    events.emit(&Event::PhaseStarted { phase: Phase::Rollback });
    let (back, impossible) = rollback_plan(&plan.id, &plan.actor, &applied, &before);
    let outcome = restore(platform, &back, policy, events).await;
    match (outcome, impossible.is_empty()) {
        (Ok(restored), true) => {
            platform.record(plan, &applied, Outcome::RolledBack).await?;
            Err(PlatformError::RolledBack { release: plan.id.clone(), failures, restored })
        }
        (Ok(_), false) => {
            platform.record(plan, &applied, Outcome::RollbackFailed).await?;
            Err(PlatformError::RollbackFailed {
                release: plan.id.clone(),
                reason: format!(
                    "no known-good revision to return to for {} (first deploy)",
                    impossible.join(", ")
                ),
                failures,
            })
        }
        (Err(reason), _) => {
            platform.record(plan, &applied, Outcome::RollbackFailed).await?;
            Err(PlatformError::RollbackFailed { release: plan.id.clone(), reason, failures })
        }
    }
}

fn failed(reason: String) -> Verdict {
    Verdict::Failed {
        failures: vec![Failure { service: None, cause: crate::health::Cause::RolloutFailed, reason }],
    }
}

fn names(plan: &ReleasePlan) -> String {
    plan.services.iter().map(|s| s.service.as_str()).collect::<Vec<_>>().join(", ")
}

/// Splits a release into waves by `depends_on` (only dependencies inside the release count:
/// others already run). Each wave holds indices into `services`, in their order; a cycle
/// (refused by config validation anyway) ends up in one last wave instead of looping.
pub fn waves(services: &[ServiceRelease]) -> Vec<Vec<usize>> {
    let items: Vec<(&str, &[String])> =
        services.iter().map(|s| (s.service.as_str(), s.depends_on.as_slice())).collect();
    dependency_waves(&items)
}

/// [`waves`] over `(name, depends_on)` pairs, shared by every platform.
pub fn dependency_waves(items: &[(&str, &[String])]) -> Vec<Vec<usize>> {
    let names: BTreeMap<&str, usize> = items.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
    let mut placed = vec![false; items.len()];
    let mut out: Vec<Vec<usize>> = Vec::new();
    while placed.iter().any(|p| !p) {
        let wave: Vec<usize> = (0..items.len())
            .filter(|&i| !placed[i])
            .filter(|&i| items[i].1.iter().all(|d| names.get(d.as_str()).is_none_or(|&j| placed[j])))
            .collect();
        let wave = if wave.is_empty() { (0..items.len()).filter(|&i| !placed[i]).collect() } else { wave };
        for &i in &wave {
            placed[i] = true;
        }
        out.push(wave);
    }
    out
}

/// Applies a rollback plan and watches it; Ok(restored "service → revision") or Err(reason).
pub async fn restore<P: Platform>(
    platform: &P,
    back: &ReleasePlan,
    policy: &HealthPolicy,
    events: &dyn Sink,
) -> Result<Vec<String>, String> {
    if back.services.is_empty() {
        return Ok(Vec::new());
    }
    let applied = platform.apply(back).await.map_err(|e| e.to_string())?;
    for a in &applied.services {
        events.emit(&Event::Service {
            service: a.service.clone(),
            phase: Phase::Rollback,
            message: format!("rolling {} back to {} (deployment {})", a.target, a.revision, a.handle),
        });
    }
    match platform.watch(&applied, &policy.for_rollback(), events).await {
        Ok(Verdict::Healthy) => {
            Ok(applied.services.iter().map(|a| format!("{} → {}", a.service, a.revision)).collect())
        }
        Ok(v) => Err(format!("the rollback did not become healthy: {}", join(v.failures()))),
        Err(e) => Err(format!("could not watch the rollback: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_sort_by_time_and_fit_tags() {
        let a = ReleaseId::new(time::macros::datetime!(2026-11-23 07:05:12 UTC), "1a2b3c4");
        let b = ReleaseId::new(time::macros::datetime!(2026-11-23 10:00:00 +02:00), "x/y z");
        assert_eq!(a.as_str(), "20261123T070512Z-1a2b3c4");
        assert_eq!(b.as_str(), "20261123T080000Z-xyz");
        assert!(a < b);
    }

    fn applied(prev: Option<&str>) -> Applied {
        Applied {
            release: ReleaseId("r2".into()),
            services: vec![AppliedService {
                service: "user".into(),
                target: "shop-user".into(),
                image: "i@sha256:2".into(),
                revision: "td/user:3".into(),
                previous: prev.map(str::to_owned),
                handle: "ecs-svc/1".into(),
                changed: true,
                traffic: None,
            }],
        }
    }

    fn live(known_good: Option<&str>) -> LiveState {
        LiveState {
            services: BTreeMap::from([(
                "user".to_owned(),
                LiveService {
                    target: "shop-user".into(),
                    revision: Some("td/user:2".into()),
                    known_good: known_good.map(str::to_owned),
                    rollout: None,
                    running: 1,
                    desired: 1,
                },
            )]),
            releases: Vec::new(),
        }
    }

    #[test]
    fn rollback_targets_the_recorded_known_good_not_revision_minus_one() {
        // td/user:2 ran before, but the record says td/user:1 is the last known-good.
        let (plan, impossible) = rollback_plan(
            &ReleaseId("r2".into()),
            "me",
            &applied(Some("td/user:2")),
            &live(Some("td/user:1")),
        );
        assert!(impossible.is_empty());
        assert!(matches!(&plan.services[0].desired, Desired::Revision(r) if r == "td/user:1"));
    }

    #[test]
    fn rollback_falls_back_to_what_ran_before_and_reports_first_deploys() {
        let (plan, _) =
            rollback_plan(&ReleaseId("r2".into()), "me", &applied(Some("td/user:2")), &live(None));
        assert!(matches!(&plan.services[0].desired, Desired::Revision(r) if r == "td/user:2"));
        let (plan, impossible) = rollback_plan(&ReleaseId("r2".into()), "me", &applied(None), &live(None));
        assert!(plan.services.is_empty());
        assert_eq!(impossible, vec!["user"]);
    }

    #[test]
    fn what_users_read_when_a_release_fails() {
        use crate::health::Cause;
        let failures = vec![
            Failure {
                service: Some("user".into()),
                cause: Cause::UnitFailed,
                reason: "task 5c3b stopped: Essential container in task exited (user: exit code 1)".into(),
            },
            Failure {
                service: None,
                cause: Cause::Alarm,
                reason: "alarm `shop-prod-5xx` is in ALARM: threshold crossed".into(),
            },
        ];
        let rolled_back = crate::Error::from(PlatformError::RolledBack {
            release: ReleaseId("20261123T070512Z-1a2b3c4".into()),
            failures: failures.clone(),
            restored: vec!["user → arn:aws:ecs:eu-west-1:1:task-definition/shop-user-prod:41".into()],
        });
        assert_eq!(rolled_back.exit_code(), crate::ExitCode::RolledBack);
        let failed = crate::Error::from(PlatformError::RollbackFailed {
            release: ReleaseId("20261123T070512Z-1a2b3c4".into()),
            reason: "no known-good revision to return to for user (first deploy)".into(),
            failures,
        });
        assert_eq!(failed.exit_code(), crate::ExitCode::RollbackFailed);
        insta::assert_snapshot!(format!("{}\n{}", rolled_back.problems()[0], failed.problems()[0]));
    }

    fn svc(name: &str, deps: &[&str]) -> ServiceRelease {
        ServiceRelease {
            service: name.into(),
            image: String::new(),
            desired: Desired::Revision(String::new()),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn waves_follow_depends_on_inside_the_release() {
        // shop: order depends on user; payment and notification are independent.
        let shop = [svc("user", &[]), svc("order", &["user"]), svc("payment", &[]), svc("notification", &[])];
        assert_eq!(waves(&shop), vec![vec![0, 2, 3], vec![1]]);
        // user is not part of the release: it already runs, order goes at once.
        assert_eq!(waves(&[svc("order", &["user"]), svc("payment", &[])]), vec![vec![0, 1]]);
        let chain = [svc("c", &["b"]), svc("b", &["a"]), svc("a", &[])];
        assert_eq!(waves(&chain), vec![vec![2], vec![1], vec![0]]);
        let cycle = [svc("a", &["b"]), svc("b", &["a"]), svc("c", &[])];
        assert_eq!(waves(&cycle), vec![vec![2], vec![0, 1]]);
        assert!(waves(&[]).is_empty());
    }
}
