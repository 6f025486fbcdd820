//! [`RunState`]: what a run looks like so far, folded from the event stream.
//!
//! Notifiers and the job summary render this state, never the events themselves, so a GitHub
//! comment, a Slack message and the summary are three views of one value. The fold is pure:
//! `RunState::default()` + the same events = the same state (fixture-tested below).

use std::collections::BTreeMap;

use crate::error::Problem;
use crate::events::{Event, HealthFailure, Outcome, Phase, PhaseTiming, ScanSummary, Verdict};
use crate::plan::{Change, Plan};

/// The run as seen so far.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub command: Option<String>,
    pub product: Option<String>,
    pub environment: Option<String>,
    pub release_id: Option<String>,
    pub git_sha: Option<String>,
    pub strategy: Option<String>,
    /// Services in deploy order (from the plan or the release start).
    pub services: Vec<ServiceState>,
    /// Finished phases with offsets from the start of the run.
    pub phases: Vec<PhaseTiming>,
    /// The phase running now.
    pub current_phase: Option<Phase>,
    /// The phase that started last (kept after it finishes; notifiers key progress on it).
    pub last_phase: Option<Phase>,
    pub rollback: Option<RollbackState>,
    /// Release hooks in the order they started.
    pub hooks: Vec<HookRun>,
    pub outcome: Option<Outcome>,
    pub environment_url: Option<String>,
    /// Set by the final `finished` event.
    pub result: Option<RunResult>,
    pub warnings: Vec<String>,
    /// Bumped by every event that changes what a notifier would show.
    pub revision: u64,
    clock_ms: u64,
}

/// One release hook's run.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    pub service: String,
    pub hook: String,
    pub stage: crate::model::HookStage,
    pub status: crate::events::HookStatus,
    pub elapsed_ms: Option<u64>,
    pub failure: Option<HealthFailure>,
}

impl HookRun {
    /// The run a `hook` event describes.
    pub fn of(event: &Event) -> Option<Self> {
        let Event::Hook { service, hook, stage, status, elapsed_ms, failure } = event else { return None };
        Some(Self {
            service: service.clone(),
            hook: hook.clone(),
            stage: *stage,
            status: *status,
            elapsed_ms: *elapsed_ms,
            failure: failure.as_deref().cloned(),
        })
    }
}

/// One service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceState {
    pub name: String,
    /// What the plan said changes (`first deploy`, `update from …`).
    pub change: Option<String>,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub scan: Option<ScanSummary>,
    pub progress: Option<Progress>,
    pub health: Option<Verdict>,
}

/// The latest progress report of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub ready: Option<u32>,
    pub desired: Option<u32>,
    pub message: String,
}

/// Rollback, once started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackState {
    pub to_release: Option<String>,
    pub reason: String,
    pub digests: BTreeMap<String, String>,
    /// `None` while running; `Some(ok)` once finished.
    pub ok: Option<bool>,
    pub message: Option<String>,
}

/// How the command ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub result: String,
    pub exit_code: u8,
    pub problems: Vec<Problem>,
}

/// Where a release stands, as GitHub Deployment statuses and headlines see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No release yet (config, observe, plan).
    NotStarted,
    /// Release started; nothing changed in the environment yet (build, push, scan, render, lock).
    Queued,
    /// Changing the environment (apply, health, bake, record).
    InProgress,
    /// Restoring the previous release.
    RollingBack,
    /// Over.
    Done(Outcome),
}

impl RunState {
    /// Folds a whole stream.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut s = Self::default();
        for e in events {
            s.apply(e);
        }
        s
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &Event) {
        let before = self.revision;
        self.revision += 1;
        match event {
            Event::Started { command, product, environment } => {
                self.command = Some(command.clone());
                set_if_some(&mut self.product, product.as_ref());
                set_if_some(&mut self.environment, environment.as_ref());
            }
            Event::PhaseStarted { phase } => {
                self.current_phase = Some(*phase);
                self.last_phase = Some(*phase);
            }
            Event::PhaseFinished { phase, ok, elapsed_ms } => {
                self.phases.push(PhaseTiming {
                    phase: *phase,
                    start_ms: self.clock_ms,
                    elapsed_ms: *elapsed_ms,
                    ok: *ok,
                });
                self.clock_ms += elapsed_ms;
                if self.current_phase == Some(*phase) {
                    self.current_phase = None;
                }
            }
            Event::Planned { plan } => self.apply_plan(plan),
            Event::ReleaseStarted { release_id, product, environment, git_sha, services, strategy } => {
                self.release_id = Some(release_id.clone());
                self.product = Some(product.clone());
                self.environment = Some(environment.clone());
                self.git_sha = Some(git_sha.clone());
                set_if_some(&mut self.strategy, strategy.as_ref());
                for name in services {
                    self.service(name);
                }
            }
            Event::ImagePushed { service, repository, digest } => {
                let s = self.service(service);
                s.repository = Some(repository.clone());
                s.digest = Some(digest.clone());
            }
            Event::ScanSummary(scan) => {
                let s = self.service(&scan.service);
                if s.digest.is_none() {
                    s.digest = Some(scan.digest.clone());
                }
                s.scan = Some((**scan).clone());
            }
            Event::ServiceProgress { service, phase, ready, desired, message } => {
                self.service(service).progress = Some(Progress {
                    phase: *phase,
                    ready: *ready,
                    desired: *desired,
                    message: message.clone(),
                });
            }
            Event::HealthVerdict { service, verdict } => self.service(service).health = Some(verdict.clone()),
            Event::Hook { .. } => {
                let Some(run) = HookRun::of(event) else { return };
                match self
                    .hooks
                    .iter_mut()
                    .find(|h| h.service == run.service && h.hook == run.hook && h.stage == run.stage)
                {
                    Some(h) => *h = run,
                    None => self.hooks.push(run),
                }
            }
            Event::RollbackStarted { to_release, reason, digests } => {
                self.rollback = Some(RollbackState {
                    to_release: to_release.clone(),
                    reason: reason.clone(),
                    digests: digests.clone(),
                    ok: None,
                    message: None,
                });
            }
            Event::RollbackFinished { to_release, ok, digests, message } => {
                let r = self.rollback.get_or_insert_with(RollbackState::default);
                r.to_release.clone_from(to_release);
                r.digests.clone_from(digests);
                r.ok = Some(*ok);
                r.message.clone_from(message);
            }
            Event::ReleaseFinished { release_id, outcome, environment_url, timings } => {
                self.release_id = Some(release_id.clone());
                self.outcome = Some(*outcome);
                set_if_some(&mut self.environment_url, environment_url.as_ref());
                if !timings.is_empty() {
                    self.phases.clone_from(timings);
                }
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
            Event::Finished { result, exit_code, problems } => {
                self.current_phase = None;
                // A deploy the scan gate refused ends before any release exists: no
                // `release-finished` carries that outcome, the exit code does.
                if self.outcome.is_none()
                    && self.command.as_deref() == Some("deploy")
                    && *exit_code == crate::error::ExitCode::ScanGate.code()
                {
                    self.outcome = Some(Outcome::RefusedByGate);
                }
                self.result = Some(RunResult {
                    result: (*result).to_owned(),
                    exit_code: *exit_code,
                    problems: problems.clone(),
                });
            }
            Event::Service { .. }
            | Event::Unobserved { .. }
            | Event::Validated { .. }
            | Event::Table { .. } => {
                self.revision = before;
            }
        }
    }

    fn apply_plan(&mut self, plan: &Plan) {
        self.product = Some(plan.product.clone());
        self.environment = Some(plan.environment.clone());
        set_if_some(&mut self.git_sha, plan.git_sha.as_ref());
        let strategy = serde_json::to_value(plan.strategy).ok().and_then(|v| v.as_str().map(str::to_owned));
        set_if_some(&mut self.strategy, strategy.as_ref());
        for sp in &plan.services {
            let s = self.service(&sp.name);
            s.change = Some(match &sp.change {
                Change::FirstDeploy => "first deploy".to_owned(),
                Change::Update { from } => format!("update from `{}`", short_image(from)),
                Change::Unknown => "live state not observed".to_owned(),
            });
        }
    }

    fn service(&mut self, name: &str) -> &mut ServiceState {
        let i = self.services.iter().position(|s| s.name == name).unwrap_or_else(|| {
            self.services.push(ServiceState { name: name.to_owned(), ..ServiceState::default() });
            self.services.len() - 1
        });
        &mut self.services[i]
    }

    /// Where the release stands.
    pub fn stage(&self) -> Stage {
        if let Some(o) = self.outcome {
            return Stage::Done(o);
        }
        if self.result.is_some() {
            // The command ended without a release outcome: it stopped on an error.
            return Stage::Done(Outcome::Failed);
        }
        if self.rollback.is_some() || self.current_phase == Some(Phase::Rollback) {
            // Until the release outcome arrives, a finished rollback is still the rollback stage.
            return Stage::RollingBack;
        }
        if self.release_id.is_none() {
            return Stage::NotStarted;
        }
        let changing = |p: Phase| {
            matches!(p, Phase::Apply | Phase::Health | Phase::Bake | Phase::Record | Phase::Rollback)
        };
        if self.current_phase.is_some_and(changing) || self.phases.iter().any(|t| changing(t.phase)) {
            Stage::InProgress
        } else {
            Stage::Queued
        }
    }

    /// Total run time so far (sum of finished phases, or the last timing's end).
    pub fn elapsed_ms(&self) -> u64 {
        self.phases.iter().map(|t| t.start_ms + t.elapsed_ms).max().unwrap_or(0)
    }

    /// Service → digest for every pushed image (the `digests` step output).
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.services.iter().filter_map(|s| Some((s.name.clone(), s.digest.clone()?))).collect()
    }

    /// The first failed health verdict, the one that decided the rollback.
    pub fn first_failure(&self) -> Option<(&str, &crate::events::HealthFailure)> {
        self.services.iter().find_map(|s| match &s.health {
            Some(Verdict::Failed(f)) => Some((s.name.as_str(), &**f)),
            _ => None,
        })
    }

    /// True when a rollback restored the previous release.
    pub fn rolled_back(&self) -> bool {
        self.rollback.as_ref().is_some_and(|r| r.ok == Some(true))
    }
}

fn set_if_some(slot: &mut Option<String>, v: Option<&String>) {
    if let Some(v) = v {
        *slot = Some(v.clone());
    }
}

/// `repo@sha256:0123456789ab…` → `repo@sha256:0123456789ab` (12 hex digits are plenty to read).
pub fn short_image(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((repo, hex)) => {
            let repo = repo.rsplit('/').next().unwrap_or(repo);
            format!("{repo}@{}", short_digest(&format!("sha256:{hex}")))
        }
        None => image.rsplit('/').next().unwrap_or(image).to_owned(),
    }
}

/// `sha256:0123456789abcdef…` → `sha256:0123456789ab`.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
        None => digest[..digest.len().min(19)].to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::HealthFailure;

    fn started() -> Vec<Event> {
        vec![
            Event::Started { command: "deploy".into(), product: None, environment: Some("prod".into()) },
            Event::PhaseStarted { phase: Phase::Build },
            Event::ReleaseStarted {
                release_id: "r42".into(),
                product: "shop".into(),
                environment: "prod".into(),
                git_sha: "abc".into(),
                services: vec!["web".into(), "worker".into()],
                strategy: Some("rolling".into()),
            },
            Event::PhaseFinished { phase: Phase::Build, ok: true, elapsed_ms: 1000 },
            Event::ImagePushed {
                service: "web".into(),
                repository: "r/web".into(),
                digest: "sha256:aa".into(),
            },
        ]
    }

    #[test]
    fn folds_a_release_in_order() {
        let s = RunState::from_events(&started());
        assert_eq!(s.release_id.as_deref(), Some("r42"));
        assert_eq!(s.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["web", "worker"]);
        assert_eq!(s.digests(), BTreeMap::from([("web".to_owned(), "sha256:aa".to_owned())]));
        assert_eq!(s.stage(), Stage::Queued);
        assert_eq!(s.phases, [PhaseTiming { phase: Phase::Build, start_ms: 0, elapsed_ms: 1000, ok: true }]);
    }

    #[test]
    fn phases_get_offsets_and_apply_means_in_progress() {
        let mut events = started();
        events.push(Event::PhaseStarted { phase: Phase::Apply });
        let s = RunState::from_events(&events);
        assert_eq!(s.stage(), Stage::InProgress);
        events.push(Event::PhaseFinished { phase: Phase::Apply, ok: true, elapsed_ms: 500 });
        events.push(Event::PhaseStarted { phase: Phase::Health });
        events.push(Event::PhaseFinished { phase: Phase::Health, ok: true, elapsed_ms: 250 });
        let s = RunState::from_events(&events);
        assert_eq!(s.phases[2].start_ms, 1500);
        assert_eq!(s.elapsed_ms(), 1750);
    }

    #[test]
    fn rollback_stage_and_outcome() {
        let mut events = started();
        events.push(Event::HealthVerdict {
            service: "worker".into(),
            verdict: Verdict::Failed(Box::new(HealthFailure {
                workload: "Deployment/worker".into(),
                pod: Some("worker-1".into()),
                container: Some("app".into()),
                reason: "CrashLoopBackOff".into(),
                restart_count: Some(4),
                message: None,
                logs: Vec::new(),
            })),
        });
        events.push(Event::RollbackStarted {
            to_release: Some("r41".into()),
            reason: "worker failed".into(),
            digests: BTreeMap::new(),
        });
        let s = RunState::from_events(&events);
        assert_eq!(s.stage(), Stage::RollingBack);
        assert_eq!(
            s.first_failure().map(|(n, f)| (n, f.reason.as_str())),
            Some(("worker", "CrashLoopBackOff"))
        );
        events.push(Event::RollbackFinished {
            to_release: Some("r41".into()),
            ok: true,
            digests: BTreeMap::new(),
            message: None,
        });
        events.push(Event::ReleaseFinished {
            release_id: "r42".into(),
            outcome: Outcome::FailedRolledBack,
            environment_url: None,
            timings: vec![],
        });
        let s = RunState::from_events(&events);
        assert!(s.rolled_back());
        assert_eq!(s.stage(), Stage::Done(Outcome::FailedRolledBack));
    }

    #[test]
    fn log_only_events_do_not_bump_the_revision() {
        let mut s = RunState::from_events(&started());
        let r = s.revision;
        s.apply(&Event::Service { service: "web".into(), phase: Phase::Apply, message: "x".into() });
        assert_eq!(s.revision, r);
        s.apply(&Event::Warning { message: "w".into() });
        assert_eq!(s.revision, r + 1);
    }

    #[test]
    fn shortens_digests_for_reading() {
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
        assert_eq!(short_image("123.dkr.ecr/shop/web@sha256:0123456789abcdef"), "web@sha256:0123456789ab");
    }
}
