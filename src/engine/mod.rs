//! The one release engine, for every platform.
//!
//! Everything that is not platform-specific happens here, once: release ids (`<env>.<n>`),
//! the lock (acquire, renewal, stale takeover, release), the pending record, `depends_on`
//! waves, one rollout deadline, the blue-green sequence (smoke checks, switch, keep the old side
//! for `scale_down_delay`), the bake (the platform's own health signals plus CloudWatch alarms
//! and HTTP checks, with one tolerance), the choice of rollback target (the recorded last
//! known-good release, never "revision − 1"), every phase event, and the outcome that maps to
//! the exit code. A [`Platform`] only does what differs: apply, watch, switch, record.
//!
//! Shape borrowed from helm's `pkg/action` (one action runs against a small client interface)
//! and kube-rs `runtime::wait` (conditions are pure, waiting is separate).

pub mod cancel;
pub mod gates;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use self::cancel::Cancel;
use crate::config::HttpCheck;
use crate::events::{Event, Phase, Sink};
use crate::model::{Failure, Hook, HookStage, Reason};
use crate::platform::{Applied, ApplyMode, Platform, PlatformError};
use crate::release::{self, Release, ReleaseStatus};

/// How a release is rolled out.
#[derive(Debug, Clone)]
pub enum Strategy {
    Rolling,
    /// The new version goes to the side that receives no production traffic; traffic moves once
    /// it is healthy and the smoke checks pass; the old side is kept for `scale_down_delay`.
    BlueGreen {
        scale_down_delay: Duration,
        smoke_checks: Vec<HttpCheck>,
    },
}

impl Strategy {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Rolling => "rolling",
            Self::BlueGreen { .. } => "blue-green",
        }
    }
}

/// What the engine needs to know about the run and the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub product: String,
    pub environment: String,
    /// Identity written into the lock (`host/pid/…`).
    pub holder: String,
    pub actor: Option<String>,
    pub confirmation: Option<String>,
    pub git_sha: Option<String>,
    /// How long to wait for a live lock holder (`timeouts.lock`).
    pub lock_wait: Duration,
    /// One deadline for the whole rollout, however many waves share it (`timeouts.rollout`).
    pub rollout_timeout: Duration,
    /// `health.bake_time`.
    pub bake: Duration,
    pub strategy: Strategy,
    pub gates: gates::Gates,
    /// Take fields over from other server-side-apply managers (EKS).
    pub force_conflicts: bool,
    /// SIGINT/SIGTERM: stop starting work, undo what is in flight (bounded), record, unlock.
    pub cancel: Cancel,
    /// Every service's release hooks (all stages); a release runs those of its services.
    pub hooks: Vec<Hook>,
    /// Service → how long a new pod or task may run un-Ready (`ready_within`).
    pub ready_within: BTreeMap<String, Duration>,
}

/// What a release deploys: service → what it runs, and the order they go in.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub services: BTreeMap<String, release::ServiceRelease>,
    /// Service → services of this release that must run healthy before it is applied.
    pub depends_on: BTreeMap<String, Vec<String>>,
}

/// How a release ended when it did not end in an error of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Succeeded(Release),
    /// Failed, and every service runs the last known-good release `to` again.
    RolledBack {
        release: Release,
        to: String,
        failure: Failure,
    },
    /// A pre-deploy hook failed: nothing of the release was applied, so nothing was rolled
    /// back; every service runs what it ran before.
    HookFailed {
        release: Release,
        failure: Failure,
    },
    /// Failed, and returning to the last known-good release failed (or there was none).
    RollbackFailed {
        release: Release,
        failure: Failure,
        why: String,
    },
    /// Cancelled (SIGINT/SIGTERM) before it ended. `to`: every service runs that release again
    /// (the release is recorded `rolled-back`); None: the release is recorded `interrupted` and
    /// services may run a mix (`deployer status` says which).
    Interrupted {
        release: Release,
        to: Option<String>,
    },
}

impl Ended {
    /// The release this run recorded.
    pub const fn release(&self) -> &Release {
        match self {
            Self::Succeeded(r)
            | Self::RolledBack { release: r, .. }
            | Self::RollbackFailed { release: r, .. }
            | Self::HookFailed { release: r, .. }
            | Self::Interrupted { release: r, .. } => r,
        }
    }
}

/// Errors that stop the engine before a release could end normally.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("release `{0}` is not recorded in this environment")]
    UnknownRelease(String, Vec<String>),
    #[error("release `{0}` {1} and is not a safe rollback target")]
    UnsafeTarget(String, &'static str, Vec<String>),
    #[error("no earlier release that succeeded to roll back to")]
    NothingToRollBackTo,
    #[error("the deploy lock was taken by another run while this one was changing the environment")]
    LockLost,
}

impl EngineError {
    pub fn hint(&self) -> String {
        match self {
            Self::Platform(e) => e.hint(),
            Self::UnknownRelease(_, ok) | Self::UnsafeTarget(_, _, ok) => {
                if ok.is_empty() {
                    "no release of this environment has succeeded yet; `deployer history` lists them".into()
                } else {
                    format!("releases that succeeded: {}", ok.join(", "))
                }
            }
            Self::NothingToRollBackTo => {
                "`deployer history` lists the recorded releases; pass `--to <release>`".into()
            }
            Self::LockLost => {
                "another run took over this environment; check `deployer status` before retrying".into()
            }
        }
    }
}

impl crate::error::Diagnostic for EngineError {
    fn exit_code(&self) -> crate::error::ExitCode {
        match self {
            Self::Platform(p) => crate::error::Diagnostic::exit_code(p),
            Self::UnknownRelease(..) | Self::UnsafeTarget(..) | Self::NothingToRollBackTo => {
                crate::error::ExitCode::Config
            }
            // Another run changed the environment under this one: what runs is not known-good.
            Self::LockLost => crate::error::ExitCode::RollbackFailed,
        }
    }

    fn hint(&self) -> String {
        Self::hint(self)
    }

    fn file(&self) -> Option<&std::path::Path> {
        match self {
            Self::Platform(p) => crate::error::Diagnostic::file(p),
            _ => None,
        }
    }
}

impl From<Ended> for Result<Release, crate::error::Error> {
    fn from(e: Ended) -> Self {
        match e {
            Ended::Succeeded(r) => Ok(r),
            Ended::RolledBack { release, to, failure } => Err(crate::error::Error::RolledBack {
                message: format!("release {} failed and was rolled back to {to}: {failure}", release.id),
                hint: "every service runs the previous release again; fix the failure above and deploy again"
                    .to_owned(),
            }),
            Ended::HookFailed { release, failure } => Err(crate::error::Error::HookFailed {
                message: format!("release {} stopped before anything was applied: {failure}", release.id),
                hint: "every service still runs what it ran; the hook's last log lines are above: fix the hook \
                       (or what it migrates) and deploy again"
                    .to_owned(),
            }),
            Ended::RollbackFailed { release, failure, why } => Err(crate::error::Error::RollbackFailed {
                message: format!("release {} failed ({failure}) and the rollback failed: {why}", release.id),
                hint: "manual action needed: check `deployer status`, then `deployer rollback --env ENV --to RELEASE`"
                    .to_owned(),
            }),
            Ended::Interrupted { release, to: Some(to) } => Err(crate::error::Error::Cancelled {
                message: format!("release {} was cancelled and rolled back: every service runs {to} again", release.id),
                hint: "nothing is left half-done; deploy again when ready".to_owned(),
            }),
            Ended::Interrupted { release, to: None } => Err(crate::error::Error::Cancelled {
                message: format!(
                    "release {} was cancelled before it ended and is recorded as interrupted",
                    release.id
                ),
                hint: "`deployer status` shows which release each service runs; the next `deployer deploy` \
                       or `deployer rollback` brings every service to one release"
                    .to_owned(),
            }),
        }
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A phase with its start and finish events.
struct PhaseTimer<'a> {
    events: &'a dyn Sink,
    phase: Phase,
    start: Instant,
}

impl<'a> PhaseTimer<'a> {
    fn start(events: &'a dyn Sink, phase: Phase) -> Self {
        events.emit(&Event::PhaseStarted { phase });
        Self { events, phase, start: Instant::now() }
    }

    fn finish(self, ok: bool) {
        self.events.emit(&Event::PhaseFinished { phase: self.phase, ok, elapsed_ms: elapsed_ms(self.start) });
    }
}

fn now() -> String {
    crate::support::now_rfc3339()
}

fn service_note(events: &dyn Sink, phase: Phase, message: String) {
    events.emit(&Event::Service { service: String::new(), phase, message });
}

/// Service → digest of a release (for reports).
pub fn digests_of(rel: &Release) -> BTreeMap<String, String> {
    rel.services
        .iter()
        .map(|(s, r)| (s.clone(), crate::model::PinnedImage::digest_or_reference(&r.image)))
        .collect()
}

/// The services of `planned` in `depends_on` waves (dependencies outside the release already
/// run and do not wait; a cycle, refused by validation anyway, ends up in one last wave).
pub fn waves(services: &[&str], depends_on: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let index: BTreeMap<&str, usize> = services.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut placed = vec![false; services.len()];
    let mut out: Vec<Vec<String>> = Vec::new();
    while placed.iter().any(|p| !p) {
        let deps = |i: usize| depends_on.get(services[i]).map_or(&[][..], Vec::as_slice);
        let wave: Vec<usize> = (0..services.len())
            .filter(|&i| !placed[i])
            .filter(|&i| deps(i).iter().all(|d| index.get(d.as_str()).is_none_or(|&j| placed[j])))
            .collect();
        let wave = if wave.is_empty() { (0..services.len()).filter(|&i| !placed[i]).collect() } else { wave };
        for &i in &wave {
            placed[i] = true;
        }
        out.push(wave.into_iter().map(|i| services[i].to_owned()).collect());
    }
    out
}

/// The rollout deadline: `timeouts.rollout` from now; `0s` means no overall limit (as
/// `kubectl rollout status --timeout=0`): each workload's own progress deadline still applies.
fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    const UNLIMITED: Duration = Duration::from_hours(24 * 365);
    tokio::time::Instant::now() + if timeout.is_zero() { UNLIMITED } else { timeout }
}

/// Deploys a release and ends on a healthy environment: this release, or the last known-good
/// (or, when cancelled, as far as the bounded undo got: see [`Ended::Interrupted`]).
pub async fn deploy<P: Platform>(
    platform: &P,
    settings: &Settings,
    planned: Planned,
    events: &dyn Sink,
) -> Result<Ended, EngineError> {
    let lock = acquire(platform, settings, events).await?;
    let result = async {
        settle_orphans(platform, events).await?;
        Box::pin(deploy_locked(platform, settings, planned, &lock, events)).await
    }
    .await;
    lock.release().await;
    result
}

async fn acquire<P: Platform>(
    platform: &P,
    settings: &Settings,
    events: &dyn Sink,
) -> Result<crate::platform::Lock, EngineError> {
    let t = PhaseTimer::start(events, Phase::Lock);
    let lock = platform.lock(&settings.holder, settings.lock_wait).await;
    t.finish(lock.is_ok());
    let lock = lock?;
    if let Some(prev) = lock.took_over_from() {
        events.emit(&Event::Warning {
            message: format!(
                "took over the deploy lock from `{prev}`, which stopped renewing it (a run that died?)"
            ),
        });
    }
    Ok(lock)
}

/// With the lock held, no other run is writing records: a record still `pending` belongs to a
/// run that is gone (killed, its lock taken over or expired). It is marked `interrupted`, so no
/// record stays pending and the rollback target skips it.
async fn settle_orphans<P: Platform>(platform: &P, events: &dyn Sink) -> Result<(), EngineError> {
    for mut r in platform.history().await?.into_iter().filter(|r| r.status == ReleaseStatus::Pending) {
        let who = r.holder.as_deref().map(|h| format!(" (run `{h}`)")).unwrap_or_default();
        r.status = ReleaseStatus::Interrupted;
        r.failure.get_or_insert_with(|| format!("its run{who} stopped before the release ended"));
        platform.record(&r).await?;
        events.emit(&Event::Warning {
            message: format!(
                "release {} was interrupted: its run{who} stopped before it ended; recorded as interrupted",
                r.id
            ),
        });
    }
    Ok(())
}

/// Runs `work`, or stops at the first cancellation (None).
async fn until_stopped<T>(cancel: &Cancel, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = work => Some(v),
        () = cancel.stopped() => None,
    }
}

/// Runs `work` (an undo or a rollback, which moves towards a known state) to its end; once a
/// stop is asked for it gets [`cancel::UNDO_BOUND`] more, and a second stop ends it at once (None).
async fn bounded<T>(cancel: &Cancel, work: impl Future<Output = T>) -> Option<T> {
    tokio::pin!(work);
    tokio::select! {
        v = &mut work => return Some(v),
        () = cancel.stopped() => {}
    }
    tokio::select! {
        v = &mut work => Some(v),
        () = cancel.abort() => None,
        () = tokio::time::sleep(cancel::UNDO_BOUND) => None,
    }
}

async fn deploy_locked<P: Platform>(
    platform: &P,
    settings: &Settings,
    planned: Planned,
    lock: &crate::platform::Lock,
    events: &dyn Sink,
) -> Result<Ended, EngineError> {
    let history = platform.history().await?;
    let sequence = release::next_sequence(&history);
    let previous = release::last_known_good(&history, None).cloned();
    let released: Vec<String> = planned.services.keys().cloned().collect();
    let mut rel = Release {
        git_sha: settings.git_sha.clone(),
        actor: settings.actor.clone(),
        confirmation: settings.confirmation.clone(),
        started_at: now(),
        holder: Some(settings.holder.clone()),
        services: planned.services,
        ..Release::pending(&settings.product, &settings.environment, sequence)
    };
    let blue_green = matches!(settings.strategy, Strategy::BlueGreen { .. });
    platform.prepare(&mut rel, previous.as_ref(), blue_green, events).await?;
    // A release of some services (`--service`) leaves the others as the last good release had
    // them: the record carries them over, so it describes everything that runs, and nothing
    // the release did not mention is pruned or rolled back.
    if let Some(p) = &previous {
        for (name, s) in &p.services {
            rel.services.entry(name.clone()).or_insert_with(|| s.carried());
        }
    }
    platform.record(&rel).await?;
    events.emit(&Event::ReleaseStarted {
        release_id: rel.id.clone(),
        product: settings.product.clone(),
        environment: settings.environment.clone(),
        git_sha: rel.git_sha.clone().unwrap_or_default(),
        services: released.clone(),
        strategy: Some(settings.strategy.name().to_owned()),
    });
    match run_hooks(platform, settings, &rel, HookStage::PreDeploy, &released, events).await {
        Ok(()) => {}
        Err(Halt::Cancelled) => {
            return cancelled(platform, settings, previous.as_ref(), rel, &Progress::default(), events).await;
        }
        Err(Halt::Failed(failure)) => {
            // Nothing was applied: the environment runs the previous release, as a rolled-back
            // release leaves it (so `rollback` and `status` read it right), and the record says why.
            rel.failure = Some(format!("{failure}; nothing was applied"));
            rel.status = ReleaseStatus::RolledBack;
            rel.rolled_back_to = previous.as_ref().map(|p| p.id.clone());
            rel.finished_at = Some(now());
            platform.record(&rel).await?;
            return Ok(Ended::HookFailed { release: rel, failure });
        }
    }
    let mut progress = Progress::default();
    let result =
        roll_out(platform, settings, &mut rel, &released, &planned.depends_on, lock, &mut progress, events)
            .await;
    match result {
        Ok(()) => {
            for service in &released {
                events.emit(&Event::HealthVerdict {
                    service: service.clone(),
                    verdict: crate::events::Verdict::Healthy,
                });
            }
            let t = PhaseTimer::start(events, Phase::Record);
            let finished = platform.finish(&progress.applied, &rel, previous.as_ref(), events).await;
            rel.status = ReleaseStatus::Succeeded;
            rel.finished_at = Some(now());
            let recorded = match finished {
                Ok(()) => platform.record(&rel).await,
                Err(e) => Err(e),
            };
            t.finish(recorded.is_ok());
            recorded?;
            Ok(Ended::Succeeded(rel))
        }
        Err(Halt::Cancelled) => {
            cancelled(platform, settings, previous.as_ref(), rel, &progress, events).await
        }
        Err(Halt::Failed(failure)) if lock.lost() => {
            // Another run owns the environment now and may be applying its own release: undoing
            // ours would interleave with it. Stop, say so, and leave the environment to it.
            rel.failure = Some(failure.to_string());
            rel.status = ReleaseStatus::Failed;
            rel.finished_at = Some(now());
            platform.record(&rel).await?;
            Err(EngineError::LockLost)
        }
        Err(Halt::Failed(failure)) => {
            rel.failure = Some(failure.to_string());
            events.emit(&Event::HealthVerdict {
                service: failure.service.clone().unwrap_or_default(),
                verdict: crate::events::Verdict::Failed(Box::new(report_failure(&failure))),
            });
            let back = bounded(
                &settings.cancel,
                return_to(platform, settings, previous.as_ref(), &rel, &progress, events),
            )
            .await;
            rel.finished_at = Some(now());
            match back {
                Some(Ok(to)) => {
                    rel.status = ReleaseStatus::RolledBack;
                    rel.rolled_back_to = previous.as_ref().map(|p| p.id.clone());
                    platform.record(&rel).await?;
                    Ok(Ended::RolledBack { release: rel, to, failure })
                }
                Some(Err(why)) => {
                    rel.status = ReleaseStatus::Failed;
                    platform.record(&rel).await?;
                    Ok(Ended::RollbackFailed { release: rel, failure, why })
                }
                None => {
                    rel.status = ReleaseStatus::Interrupted;
                    rel.failure = Some(format!("{failure}; cancelled while rolling back"));
                    platform.record(&rel).await?;
                    Ok(Ended::Interrupted { release: rel, to: None })
                }
            }
        }
    }
}

/// A release cancelled mid-way: nothing applied yet → recorded `interrupted` (the environment
/// is untouched); else the environment goes back to the last known-good release within
/// [`cancel::UNDO_BOUND`] (recorded `rolled-back`), unless a second signal or the bound ends the
/// undo (recorded `interrupted`).
async fn cancelled<P: Platform>(
    platform: &P,
    settings: &Settings,
    previous: Option<&Release>,
    mut rel: Release,
    progress: &Progress,
    events: &dyn Sink,
) -> Result<Ended, EngineError> {
    rel.finished_at = Some(now());
    let untouched = progress.applied.services.is_empty() && !progress.switched;
    if untouched {
        rel.status = ReleaseStatus::Interrupted;
        rel.failure = Some("cancelled before any service was changed".into());
        platform.record(&rel).await?;
        return Ok(Ended::Interrupted { release: rel, to: None });
    }
    rel.failure = Some("cancelled (SIGINT/SIGTERM)".into());
    let back = if settings.cancel.aborted() {
        None
    } else {
        tokio::select! {
            b = return_to(platform, settings, previous, &rel, progress, events) => Some(b),
            () = settings.cancel.abort() => None,
            () = tokio::time::sleep(cancel::UNDO_BOUND) => None,
        }
    };
    match back {
        Some(Ok(to)) => {
            rel.status = ReleaseStatus::RolledBack;
            rel.rolled_back_to = previous.map(|p| p.id.clone());
            platform.record(&rel).await?;
            Ok(Ended::Interrupted { release: rel, to: Some(to) })
        }
        Some(Err(why)) => {
            rel.status = ReleaseStatus::Interrupted;
            rel.failure = Some(format!("cancelled; undoing it failed: {why}"));
            platform.record(&rel).await?;
            Ok(Ended::Interrupted { release: rel, to: None })
        }
        None => {
            rel.status = ReleaseStatus::Interrupted;
            rel.failure =
                Some("cancelled; the undo was stopped by a second signal (or took too long)".into());
            platform.record(&rel).await?;
            Ok(Ended::Interrupted { release: rel, to: None })
        }
    }
}

/// Why a rollout stopped.
#[derive(Debug)]
enum Halt {
    Failed(Failure),
    Cancelled,
}

impl From<Failure> for Halt {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

/// The report form of a failure (job summary, PR comment, Slack).
pub fn report_failure(f: &Failure) -> crate::events::HealthFailure {
    crate::events::HealthFailure {
        workload: if f.subject.is_empty() {
            f.service.clone().unwrap_or_default()
        } else {
            f.subject.clone()
        },
        pod: None,
        container: None,
        reason: f.reason.as_str().to_owned(),
        restart_count: f.restart_count,
        message: (!f.detail.is_empty()).then(|| f.detail.clone()),
        logs: f.logs.clone(),
    }
}

/// Runs the `stage` hooks of `services`, one after another in configuration order; the first
/// failure stops them. A cancelled run stops the hook in flight (bounded) and says so.
async fn run_hooks<P: Platform>(
    platform: &P,
    settings: &Settings,
    rel: &Release,
    stage: HookStage,
    services: &[String],
    events: &dyn Sink,
) -> Result<(), Halt> {
    let hooks: Vec<&Hook> =
        settings.hooks.iter().filter(|h| h.stage == stage && services.contains(&h.service)).collect();
    if hooks.is_empty() {
        return Ok(());
    }
    let t = PhaseTimer::start(events, Phase::Hooks);
    let result = async {
        for hook in hooks {
            if settings.cancel.requested() {
                return Err(Halt::Cancelled);
            }
            run_hook(platform, settings, rel, hook, events).await?;
        }
        Ok(())
    }
    .await;
    t.finish(result.is_ok());
    result
}

/// One hook: started, followed to its end, reported with its failure and log tail.
async fn run_hook<P: Platform>(
    platform: &P,
    settings: &Settings,
    rel: &Release,
    hook: &Hook,
    events: &dyn Sink,
) -> Result<(), Halt> {
    let said = |status, elapsed_ms, failure: Option<&Failure>| {
        events.emit(&Event::Hook {
            service: hook.service.clone(),
            hook: hook.name.clone(),
            stage: hook.stage,
            status,
            elapsed_ms,
            failure: failure.map(|f| Box::new(report_failure(f))),
        });
    };
    said(crate::events::HookStatus::Running, None, None);
    let start = Instant::now();
    let ran = until_stopped(&settings.cancel, platform.run_hook(rel, hook, events)).await;
    let elapsed = Some(elapsed_ms(start));
    let failure = match ran {
        None => {
            // Nothing may keep running behind a cancelled release (a migration half-way is
            // the user's to judge, not ours to leave running unwatched).
            if let Some(Err(e)) = bounded(&settings.cancel, platform.stop_hook(rel, hook)).await {
                events.emit(&Event::Warning { message: format!("could not stop {}: {e}", hook.title()) });
            }
            said(crate::events::HookStatus::Stopped, elapsed, None);
            return Err(Halt::Cancelled);
        }
        Some(Ok(None)) => {
            said(crate::events::HookStatus::Succeeded, elapsed, None);
            return Ok(());
        }
        Some(Ok(Some(f))) => f,
        Some(Err(e)) => {
            Failure::new(None, Reason::HookFailed, "", format!("could not run it: {e} ({})", e.hint()))
        }
    };
    // The report names the hook first; the platform's subject (Job/pod, task) follows.
    let subject = if failure.subject.is_empty() {
        format!("{} hook `{}`", hook.stage, hook.name)
    } else {
        format!("{} hook `{}`, {}", hook.stage, hook.name, failure.subject)
    };
    let failure = Failure { service: Some(hook.service.clone()), subject, ..failure };
    said(crate::events::HookStatus::Failed, elapsed, Some(&failure));
    Err(Halt::Failed(failure))
}

/// What the rollout has done so far (what a rollback must undo).
#[derive(Debug, Default)]
struct Progress {
    applied: Applied,
    /// Blue-green: production traffic was moved to the new side.
    switched: bool,
}

/// Applies and verifies a release: waves → (blue-green: smoke checks, switch) → bake →
/// (blue-green: keep the previous side for the scale-down delay).
#[allow(clippy::too_many_arguments)]
async fn roll_out<P: Platform>(
    platform: &P,
    settings: &Settings,
    rel: &mut Release,
    released: &[String],
    depends_on: &BTreeMap<String, Vec<String>>,
    lock: &crate::platform::Lock,
    progress: &mut Progress,
    events: &dyn Sink,
) -> Result<(), Halt> {
    let deadline = deadline_after(settings.rollout_timeout);
    let names: Vec<&str> = released.iter().map(String::as_str).collect();
    let waves = waves(&names, depends_on);
    let cancel = &settings.cancel;
    for (i, wave) in waves.iter().enumerate() {
        if cancel.requested() {
            return Err(Halt::Cancelled);
        }
        if waves.len() > 1 {
            service_note(
                events,
                Phase::Apply,
                format!("wave {}/{}: {}", i + 1, waves.len(), wave.join(", ")),
            );
        }
        let t = PhaseTimer::start(events, Phase::Apply);
        let applied = platform
            .apply(rel, wave, ApplyMode::Rollout { force_conflicts: settings.force_conflicts }, events)
            .await;
        t.finish(applied.is_ok());
        let applied = applied
            .map_err(|e| Failure::new(None, Reason::ApplyFailed, "", format!("{e} ({})", e.hint())))?;
        // ECS registers task definitions while applying: the record names the revisions
        // (written at once, so a run killed from here on leaves a record that says what it
        // started).
        let mut named = false;
        for a in applied.services.iter().filter(|a| !a.revision.is_empty()) {
            if let Some(s) = rel.services.get_mut(&a.service) {
                s.revision = Some(a.revision.clone());
                named = true;
            }
        }
        progress.applied.services.extend(applied.services.iter().cloned());
        if named && let Err(e) = platform.record(rel).await {
            events.emit(&Event::Warning { message: format!("could not update the pending record: {e}") });
        }
        if lock.lost() {
            return Err(
                Failure::new(None, Reason::RolloutFailed, "", EngineError::LockLost.to_string()).into()
            );
        }
        // A later wave starts only once this one runs healthy: what depends on it is never
        // applied next to a broken dependency.
        let t = PhaseTimer::start(events, Phase::Health);
        let verdict = until_stopped(
            cancel,
            watch(platform, settings, &applied, deadline, Duration::ZERO, false, events),
        )
        .await;
        t.finish(matches!(verdict, Some(Ok(()))));
        verdict.ok_or(Halt::Cancelled)??;
    }
    if let Strategy::BlueGreen { smoke_checks, .. } = &settings.strategy {
        if cancel.requested() {
            return Err(Halt::Cancelled);
        }
        if let Err(detail) = crate::checks::all_pass(&settings.gates.http, smoke_checks).await {
            return Err(Failure::new(None, Reason::SmokeCheck, "", detail).into());
        }
        platform
            .switch(&progress.applied, true, events)
            .await
            .map_err(|e| Failure::new(None, Reason::ApplyFailed, "traffic switch", e.to_string()))?;
        progress.switched = true;
    }
    run_hooks(platform, settings, rel, HookStage::PostDeploy, released, events).await?;
    if !settings.bake.is_zero() {
        let t = PhaseTimer::start(events, Phase::Bake);
        let verdict = until_stopped(
            cancel,
            watch(platform, settings, &progress.applied, deadline, settings.bake, true, events),
        )
        .await;
        t.finish(matches!(verdict, Some(Ok(()))));
        verdict.ok_or(Halt::Cancelled)??;
    }
    if let Strategy::BlueGreen { scale_down_delay, .. } = &settings.strategy
        && !scale_down_delay.is_zero()
    {
        service_note(
            events,
            Phase::Bake,
            format!(
                "blue-green: keeping the previous side for {} (switching back is instant until then)",
                crate::support::human(*scale_down_delay)
            ),
        );
        until_stopped(
            cancel,
            watch(platform, settings, &progress.applied, deadline, *scale_down_delay, true, events),
        )
        .await
        .ok_or(Halt::Cancelled)??;
    }
    Ok(())
}

/// Watches `applied` until it runs healthy (before `deadline`) and stays so for `hold`; during a
/// hold with `gated`, the CloudWatch alarms and HTTP checks run beside the platform's signals,
/// and the first failure of any ends it.
async fn watch<P: Platform>(
    platform: &P,
    settings: &Settings,
    applied: &Applied,
    deadline: tokio::time::Instant,
    hold: Duration,
    gated: bool,
    events: &dyn Sink,
) -> Result<(), Failure> {
    // The bounds travel with what is watched, so every watch (rollout, bake, rollback) has them.
    let bounded_applied;
    let applied = if settings.ready_within.is_empty() {
        applied
    } else {
        bounded_applied = Applied { ready_within: settings.ready_within.clone(), ..applied.clone() };
        &bounded_applied
    };
    let platform_watch = async {
        match platform.watch(applied, deadline, hold, events).await {
            Ok(None) => Ok(()),
            Ok(Some(f)) => Err(f),
            Err(e) => Err(Failure::new(
                None,
                Reason::RolloutFailed,
                "",
                format!("could not watch the rollout: {e}"),
            )),
        }
    };
    // Alarms gate the whole rollout (a release that trips one before its bake is not healthy
    // either); HTTP checks only once the new version serves (during holds).
    let gates = settings.gates.hold(if gated { hold } else { Duration::ZERO }, gated, events);
    tokio::pin!(platform_watch, gates);
    tokio::select! {
        w = &mut platform_watch => match w {
            Ok(()) => gates.await,
            Err(f) => Err(f),
        },
        g = &mut gates => match g {
            Ok(()) => platform_watch.await,
            Err(f) => Err(f),
        },
    }
}

/// Returns the environment to the last known-good release after `failed` failed; Ok(its id).
async fn return_to<P: Platform>(
    platform: &P,
    settings: &Settings,
    target: Option<&Release>,
    failed: &Release,
    progress: &Progress,
    events: &dyn Sink,
) -> Result<String, String> {
    // A cancelled release is undone without hooks: the undo is bounded, a task is not.
    let hooks = (!settings.cancel.requested()).then_some(failed);
    let t = PhaseTimer::start(events, Phase::Rollback);
    events.emit(&Event::RollbackStarted {
        to_release: target.map(|t| t.id.clone()),
        reason: failed.failure.clone().unwrap_or_default(),
        digests: target.map(digests_of).unwrap_or_default(),
    });
    let result = restore(platform, settings, target, Some(failed), hooks, progress, events).await;
    t.finish(result.is_ok());
    events.emit(&Event::RollbackFinished {
        to_release: target.map(|t| t.id.clone()),
        ok: result.is_ok(),
        digests: target.map(digests_of).unwrap_or_default(),
        message: result.as_ref().err().cloned(),
    });
    result
}

/// Puts `target` back: a blue-green release that moved traffic switches it back (the old side
/// still runs at full size); everything else is re-applied from the record and watched
/// (no bake: alarms may report the bad version's damage for minutes). With `leaving`, the
/// pre-rollback hooks of the services that change run first, with `leaving`'s images (the
/// release being left knows what it migrated); a failing one stops the rollback.
async fn restore<P: Platform>(
    platform: &P,
    settings: &Settings,
    target: Option<&Release>,
    from: Option<&Release>,
    leaving: Option<&Release>,
    progress: &Progress,
    events: &dyn Sink,
) -> Result<String, String> {
    if let (Some(leaving), Some(target)) = (leaving, target) {
        let changing: Vec<String> = leaving
            .services
            .iter()
            .filter(|(name, s)| target.services.get(*name).is_none_or(|t| t.image != s.image))
            .map(|(name, _)| name.clone())
            .collect();
        match run_hooks(platform, settings, leaving, HookStage::PreRollback, &changing, events).await {
            Ok(()) => {}
            Err(Halt::Failed(f)) => return Err(format!("{f}; the rollback did not start")),
            Err(Halt::Cancelled) => return Err("cancelled during a pre-rollback hook".into()),
        }
    }
    if progress.switched {
        platform
            .switch(&progress.applied, false, events)
            .await
            .map_err(|e| format!("switching traffic back failed: {e}"))?;
    }
    // No release recorded yet: what ran before this one (ECS services exist before deployer
    // deploys to them) is the only thing to return to.
    let before;
    let (target, label) = if let Some(t) = target {
        (t, t.id.clone())
    } else {
        before = ran_before(&progress.applied, settings);
        if before.services.is_empty() {
            return Err("no earlier release succeeded in this environment, so there is nothing to return to (first deploy)".into());
        }
        (&before, "what ran before".to_owned())
    };
    let services: Vec<String> = target.services.keys().cloned().collect();
    let applied = platform
        .apply(target, &services, ApplyMode::Restore { from: from.cloned().map(Box::new) }, events)
        .await
        .map_err(|e| format!("{e} ({})", e.hint()))?;
    for a in applied.services.iter().filter(|a| a.changed && !a.revision.is_empty()) {
        events.emit(&Event::Service {
            service: a.service.clone(),
            phase: Phase::Rollback,
            message: format!("rolling back to {label} ({})", a.revision),
        });
    }
    let deadline = deadline_after(settings.rollout_timeout);
    let why = match platform.watch(&applied, deadline, Duration::ZERO, events).await {
        Ok(None) => return Ok(label),
        Ok(Some(f)) => format!("{label} did not become healthy again: {f}"),
        Err(e) => format!("could not watch the rollback: {e}"),
    };
    // The platform may have moved the last step itself (ECS's circuit breaker or alarm
    // rollback of our restore deployment lands on the same revision): what counts is what
    // runs, and that it runs healthy — followed once more where it stands (an unchanged ECS
    // service is followed through its current deployment, e.g. ECS's own rollback).
    if lands_on(platform, target).await
        && let Ok(again) = platform.apply(target, &services, ApplyMode::Restore { from: None }, events).await
        && let Ok(None) = platform.watch(&again, deadline, Duration::ZERO, events).await
    {
        service_note(
            events,
            Phase::Rollback,
            format!("every service runs {label} again (the platform finished the rollback: {why})"),
        );
        return Ok(label);
    }
    Err(why)
}

/// What the record says a service runs, as [`Platform::running`] reports it: the revision
/// (ECS task definition `family:revision`) or else the image.
pub fn recorded_as(s: &release::ServiceRelease) -> String {
    s.revision.as_deref().map_or_else(|| s.image.clone(), |r| r.rsplit('/').next().unwrap_or(r).to_owned())
}

/// True when every service of `target` runs exactly what `target` recorded.
async fn lands_on<P: Platform>(platform: &P, target: &Release) -> bool {
    let Ok(running) = platform.running().await else { return false };
    target.services.iter().all(|(name, s)| {
        let want = recorded_as(s);
        running.get(name).is_some_and(|r| !r.live.is_empty() && r.live.iter().all(|l| *l == want))
    })
}

/// A release made of the revisions that ran before `applied` (where the platform knows them).
fn ran_before(applied: &Applied, settings: &Settings) -> Release {
    let services = applied
        .services
        .iter()
        .filter_map(|a| {
            let previous = a.previous.clone()?;
            let s = release::ServiceRelease::new(String::new(), Vec::new(), None);
            Some((a.service.clone(), release::ServiceRelease { revision: Some(previous), ..s }))
        })
        .collect();
    Release {
        status: ReleaseStatus::Succeeded,
        services,
        ..Release::pending(&settings.product, &settings.environment, 0)
    }
}

/// Manual rollback to `to`, by default to the last release that ran healthy (see
/// [`rollback_target`]). Recorded as a release of its own with the target's contents, so it
/// becomes the known-good one; the known-good release it leaves is marked `rolled-back`, so a
/// second rollback goes further back, never forward.
pub async fn rollback<P: Platform>(
    platform: &P,
    settings: &Settings,
    to: Option<&str>,
    events: &dyn Sink,
) -> Result<Ended, EngineError> {
    // The target is checked before the lock: a typo must not wait for (or take) the lock.
    let history = platform.history().await?;
    rollback_target(&history, to)?;
    let lock = acquire(platform, settings, events).await?;
    let result = Box::pin(async {
        settle_orphans(platform, events).await?;
        let history = platform.history().await?;
        let target = rollback_target(&history, to)?.clone();
        let leaving: Vec<Release> = leaves(&history, &target).into_iter().cloned().collect();
        let sequence = release::next_sequence(&history);
        let mut rel = Release {
            id: Release::make_id(&settings.environment, sequence),
            sequence,
            status: ReleaseStatus::Pending,
            actor: settings.actor.clone(),
            confirmation: settings.confirmation.clone(),
            started_at: now(),
            finished_at: None,
            failure: None,
            rolled_back_to: Some(target.id.clone()),
            holder: Some(settings.holder.clone()),
            ..target.clone()
        };
        platform.record(&rel).await?;
        let t = PhaseTimer::start(events, Phase::Rollback);
        events.emit(&Event::RollbackStarted {
            to_release: Some(target.id.clone()),
            reason: format!("rollback to {} requested", target.id),
            digests: digests_of(&target),
        });
        let runs = what_runs(&history);
        // A rollback moves towards a known state: a first signal lets it finish (bounded).
        let result = bounded(
            &settings.cancel,
            restore(
                platform,
                settings,
                Some(&target),
                runs.as_ref(),
                release::last_known_good(&history, None),
                &Progress::default(),
                events,
            ),
        )
        .await;
        t.finish(matches!(result, Some(Ok(_))));
        events.emit(&Event::RollbackFinished {
            to_release: Some(target.id.clone()),
            ok: matches!(result, Some(Ok(_))),
            digests: digests_of(&target),
            message: match &result {
                Some(Ok(_)) => None,
                Some(Err(why)) => Some(why.clone()),
                None => Some("cancelled".into()),
            },
        });
        rel.finished_at = Some(now());
        match result {
            Some(Ok(_)) => {
                rel.status = ReleaseStatus::Succeeded;
                platform.record(&rel).await?;
                for mut left in leaving {
                    left.status = ReleaseStatus::RolledBack;
                    left.rolled_back_to = Some(target.id.clone());
                    platform.record(&left).await?;
                }
                Ok(Ended::Succeeded(rel))
            }
            Some(Err(why)) => {
                rel.status = ReleaseStatus::Failed;
                rel.failure = Some(why.clone());
                platform.record(&rel).await?;
                let failure = Failure::new(None, Reason::RolloutFailed, "", why.clone());
                Ok(Ended::RollbackFailed { release: rel, failure, why })
            }
            None => {
                rel.status = ReleaseStatus::Interrupted;
                rel.failure = Some("cancelled before the rollback ended".into());
                platform.record(&rel).await?;
                Ok(Ended::Interrupted { release: rel, to: None })
            }
        }
    })
    .await;
    lock.release().await;
    result
}

/// The known-good releases a rollback to `target` leaves behind (no longer known-good once it
/// succeeded): the release that runs and, for a rollback release, the one whose contents it
/// runs — when they are newer than `target`.
fn leaves<'a>(history: &'a [Release], target: &Release) -> Vec<&'a Release> {
    let Some(good) = release::last_known_good(history, None) else { return Vec::new() };
    let origin = release::origin(history, good);
    if origin.sequence <= target.sequence || good.id == target.id {
        return Vec::new();
    }
    let mut out = vec![good];
    if origin.id != good.id && origin.status == ReleaseStatus::Succeeded {
        out.push(origin);
    }
    out
}

/// Everything that may run now, for prune: the last known-good release plus the objects of the
/// newer releases that did not end healthy (an interrupted release may have created objects).
fn what_runs(history: &[Release]) -> Option<Release> {
    let good = release::last_known_good(history, None);
    let mut runs = good.cloned().or_else(|| history.last().cloned())?;
    let floor = good.map_or(0, |g| g.sequence);
    for r in history.iter().filter(|r| r.sequence > floor) {
        for (name, s) in &r.services {
            runs.services.insert(format!("{name} ({})", r.id), s.clone());
        }
    }
    Some(runs)
}

/// The release a rollback returns to: `to`, which must have succeeded, or else the last release
/// that ran healthy ([`release::rollback_choice`]).
pub fn rollback_target<'a>(history: &'a [Release], to: Option<&str>) -> Result<&'a Release, EngineError> {
    let ok: Vec<String> =
        history.iter().filter(|r| r.status == ReleaseStatus::Succeeded).map(|r| r.id.clone()).collect();
    let Some(id) = to else {
        return release::rollback_choice(history).map(|c| c.target).ok_or(EngineError::NothingToRollBackTo);
    };
    let r = history
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| EngineError::UnknownRelease(id.to_owned(), ok.clone()))?;
    if r.status == ReleaseStatus::Succeeded {
        Ok(r)
    } else {
        Err(EngineError::UnsafeTarget(id.to_owned(), r.status.as_str(), ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_follow_depends_on_inside_the_release_only() {
        let deps: BTreeMap<String, Vec<String>> = [
            ("order".to_owned(), vec!["user".to_owned()]),
            // Not in this release: it already runs, nothing waits for it.
            ("payment".to_owned(), vec!["analytics".to_owned()]),
        ]
        .into_iter()
        .collect();
        assert_eq!(waves(&["order", "payment", "user"], &deps), vec![vec!["payment", "user"], vec!["order"]]);
        assert_eq!(waves(&["order", "payment"], &BTreeMap::new()), vec![vec!["order", "payment"]]);
        let chain: BTreeMap<String, Vec<String>> =
            [("c".to_owned(), vec!["b".to_owned()]), ("b".to_owned(), vec!["a".to_owned()])]
                .into_iter()
                .collect();
        assert_eq!(waves(&["c", "b", "a"], &chain), vec![vec!["a"], vec!["b"], vec!["c"]]);
        let cycle: BTreeMap<String, Vec<String>> =
            [("a".to_owned(), vec!["b".to_owned()]), ("b".to_owned(), vec!["a".to_owned()])]
                .into_iter()
                .collect();
        assert_eq!(waves(&["a", "b", "c"], &cycle), vec![vec!["c"], vec!["a", "b"]]);
        assert!(waves(&[], &BTreeMap::new()).is_empty());
    }

    fn rel(seq: u64, status: ReleaseStatus) -> Release {
        Release { status, ..Release::pending("shop", "dev", seq) }
    }

    #[test]
    fn the_rollback_target_is_the_succeeded_release_before_what_runs() {
        let h = vec![
            rel(1, ReleaseStatus::Succeeded),
            rel(2, ReleaseStatus::Succeeded),
            rel(3, ReleaseStatus::RolledBack),
        ];
        // 3 was rolled back: 2 runs, so the target is 1.
        assert_eq!(rollback_target(&h, None).unwrap().id, "dev.1");
        assert_eq!(rollback_target(&h, Some("dev.2")).unwrap().id, "dev.2");
        assert!(matches!(rollback_target(&h, Some("dev.3")), Err(EngineError::UnsafeTarget(..))));
        assert!(matches!(rollback_target(&h, Some("dev.9")), Err(EngineError::UnknownRelease(..))));
        assert!(matches!(rollback_target(&h[..1], None), Err(EngineError::NothingToRollBackTo)));
    }
}

#[cfg(test)]
mod exit_codes {
    use super::*;
    use crate::error::ExitCode;

    fn failure() -> Failure {
        Failure::new(Some("user"), Reason::CrashLoop, "task 5c3b", "exit code 1")
    }

    /// Every way a deploy or rollback ends maps to one documented exit code, whatever the
    /// platform: the engine and the errors platforms return are the only sources.
    #[test]
    fn every_outcome_and_error_has_its_exit_code() {
        let rel = rel(2, ReleaseStatus::RolledBack);
        let code = |e: crate::error::Error| e.exit_code();
        let ended = |e: Ended| Result::<Release, crate::error::Error>::from(e).err().map(|e| e.exit_code());
        let table: Vec<(&str, Option<ExitCode>)> = vec![
            ("succeeded", ended(Ended::Succeeded(rel.clone()))),
            (
                "rolled back",
                ended(Ended::RolledBack { release: rel.clone(), to: "dev.1".into(), failure: failure() }),
            ),
            (
                "rollback failed",
                ended(Ended::RollbackFailed { release: rel.clone(), failure: failure(), why: "x".into() }),
            ),
            ("pre-deploy hook failed", ended(Ended::HookFailed { release: rel.clone(), failure: failure() })),
            ("unknown --to", Some(code(EngineError::UnknownRelease("dev.9".into(), vec![]).into()))),
            (
                "unsafe --to",
                Some(code(EngineError::UnsafeTarget("dev.3".into(), "rolled-back", vec![]).into())),
            ),
            (
                "cancelled, rolled back",
                ended(Ended::Interrupted { release: rel.clone(), to: Some("dev.1".into()) }),
            ),
            ("cancelled, interrupted", ended(Ended::Interrupted { release: rel.clone(), to: None })),
            ("nothing to roll back to", Some(code(EngineError::NothingToRollBackTo.into()))),
            ("lock lost", Some(code(EngineError::LockLost.into()))),
            (
                "lock held",
                Some(code(
                    PlatformError::LockHeld { lock: "shop/dev".into(), holder: "run-1".into() }.into(),
                )),
            ),
            ("setup", Some(code(PlatformError::setup("no such service", "create it").into()))),
            ("api", Some(code(PlatformError::api("UpdateService", "throttled").into()))),
            (
                "connect",
                Some(code(
                    PlatformError::Connect { what: "the cluster".into(), message: "refused".into() }.into(),
                )),
            ),
            (
                "denied",
                Some(code(PlatformError::Denied { message: "no".into(), hint: "grant".into() }.into())),
            ),
        ];
        let got: Vec<(&str, Option<u8>)> = table.iter().map(|(n, c)| (*n, c.map(ExitCode::code))).collect();
        assert_eq!(
            got,
            vec![
                ("succeeded", None),
                ("rolled back", Some(5)),
                ("rollback failed", Some(6)),
                ("pre-deploy hook failed", Some(8)),
                ("unknown --to", Some(2)),
                ("unsafe --to", Some(2)),
                ("cancelled, rolled back", Some(130)),
                ("cancelled, interrupted", Some(130)),
                ("nothing to roll back to", Some(2)),
                ("lock lost", Some(6)),
                ("lock held", Some(7)),
                ("setup", Some(2)),
                ("api", Some(1)),
                ("connect", Some(3)),
                ("denied", Some(3)),
            ]
        );
    }

    fn rel(seq: u64, status: ReleaseStatus) -> Release {
        Release { status, ..Release::pending("shop", "dev", seq) }
    }

    /// What users read when a release fails, the same words on both platforms.
    #[test]
    fn what_users_read_when_a_release_fails() {
        let rolled = Result::<Release, crate::error::Error>::from(Ended::RolledBack {
            release: rel(2, ReleaseStatus::RolledBack),
            to: "dev.1".into(),
            failure: failure(),
        })
        .unwrap_err();
        let failed = Result::<Release, crate::error::Error>::from(Ended::RollbackFailed {
            release: rel(2, ReleaseStatus::Failed),
            failure: Failure::new(None, Reason::Alarm, "`shop-dev-5xx`", "in ALARM: threshold crossed"),
            why: "dev.1 did not become healthy again".into(),
        })
        .unwrap_err();
        insta::assert_snapshot!(format!("{}\n{}", rolled.problems()[0], failed.problems()[0]));
    }
}
