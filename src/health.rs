//! Health verdicts: a pure function from (policy, observations) to Healthy | Progressing | Failed.
//!
//! The shape follows argo-rollouts' `assessMetricStatus`: platforms (ECS, EKS) turn their API
//! answers into [`Sample`]s, and [`assess`] alone decides. Nothing here performs I/O, so every
//! rule is a fixture test below, and ECS and EKS cannot disagree on what "healthy" means.
//!
//! Rules, in order:
//! 1. any terminal failure wins at once: a task/pod of the new version failed for good
//!    ([`Sample::UnitFailed`], fail fast, without waiting for a circuit breaker), a rollout the
//!    platform marked failed or rolled back itself, a named alarm in ALARM, an HTTP check that
//!    failed more than [`HealthPolicy::http_failure_limit`] times in a row;
//! 2. rollouts not complete: Failed once `timeouts.rollout` has passed, else Progressing;
//! 3. all complete: Progressing until `health.bake_time` has passed since completion, then Healthy.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Environment, HttpCheck};

/// What decides success, from the environment's `health:` and `timeouts:`.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Longest a rollout may take before it counts as failed (`timeouts.rollout`).
    pub rollout_timeout: Duration,
    /// Keep watching this long after every rollout completed (`health.bake_time`).
    pub bake_time: Duration,
    /// CloudWatch alarms; any in ALARM during rollout or bake fails the release.
    pub alarms: Vec<String>,
    /// HTTP checks sampled during the bake.
    pub http: Vec<HttpCheck>,
    /// Consecutive failed HTTP samples tolerated (one blip is not a failed release).
    pub http_failure_limit: u32,
}

impl HealthPolicy {
    /// The policy an environment asks for.
    pub fn from_environment(env: &Environment) -> Self {
        Self {
            rollout_timeout: env.timeouts.rollout,
            bake_time: env.health.bake_time.map_or(Duration::ZERO, |d| d.0),
            alarms: env.health.alarms.clone(),
            http: env.health.http.clone(),
            http_failure_limit: 2,
        }
    }

    /// Watching a wave whose dependents come next: its rollout must complete without failures
    /// or alarms; the bake and the HTTP checks come once, after the last wave.
    pub fn between_waves(&self) -> Self {
        Self { bake_time: Duration::ZERO, http: Vec::new(), ..self.clone() }
    }

    /// Watching a rollback: done when the known-good version runs again. No bake, no alarms and
    /// no HTTP checks: they may still report the bad version's damage for minutes, and waiting
    /// for them would only delay restoring service.
    pub fn for_rollback(&self) -> Self {
        Self {
            rollout_timeout: self.rollout_timeout,
            bake_time: Duration::ZERO,
            alarms: Vec::new(),
            http: Vec::new(),
            http_failure_limit: self.http_failure_limit,
        }
    }
}

/// Where one service's rollout stands, as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RolloutState {
    /// Still rolling out.
    InProgress { running: u32, desired: u32, failed_tasks: u32 },
    /// Every new unit runs and is healthy; the old ones are gone.
    Complete,
    /// The platform marked the rollout failed (and did not roll back).
    Failed { reason: String },
    /// The platform failed the rollout and rolled back by itself (ECS circuit breaker or
    /// deployment alarms). Still a failed release: reporting it as success is the classic bug.
    RolledBackByPlatform { reason: String, to: String },
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Sample {
    /// A service's rollout.
    Rollout { service: String, state: RolloutState },
    /// A task or pod of the new version failed for good (essential container exited, image
    /// pull failed, load balancer health checks failed).
    UnitFailed { service: String, unit: String, reason: String },
    /// A task or pod of the new version that runs but is not Ready (healthy), for how long
    /// (as the watcher saw it), against the service's `ready_within` bound.
    Unready { service: String, unit: String, unready_for: Duration, bound: Duration, why: String },
    /// A CloudWatch alarm.
    Alarm { name: String, in_alarm: bool, reason: String },
    /// An HTTP check and how many times in a row it failed (0 = last sample passed).
    Http { url: String, consecutive_failures: u32, last: String },
}

/// What the watcher saw at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Time since the rollout started.
    pub elapsed: Duration,
    /// Time since every rollout was first seen complete (None while rolling out).
    pub since_complete: Option<Duration>,
    pub samples: &'a [Sample],
}

/// Why a release failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    UnitFailed,
    RolloutFailed,
    RolledBackByPlatform,
    Alarm,
    Http,
    Timeout,
}

/// One reason for a failed verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub cause: Cause,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.service {
            Some(s) => write!(f, "{s}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    Progressing { waiting_for: String },
    Failed { failures: Vec<Failure> },
}

impl Verdict {
    pub const fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }

    /// The failures (empty unless failed).
    pub fn failures(&self) -> &[Failure] {
        match self {
            Self::Failed { failures } => failures,
            _ => &[],
        }
    }
}

/// True when there is at least one rollout and all are complete.
pub fn rollouts_complete(samples: &[Sample]) -> bool {
    let mut any = false;
    for s in samples {
        if let Sample::Rollout { state, .. } = s {
            any = true;
            if *state != RolloutState::Complete {
                return false;
            }
        }
    }
    any
}

/// Decides. Pure: the same observation always gives the same verdict.
pub fn assess(policy: &HealthPolicy, obs: &Observation<'_>) -> Verdict {
    let mut failures = Vec::new();
    let mut waiting = Vec::new();
    for s in obs.samples {
        match s {
            Sample::UnitFailed { service, unit, reason } => failures.push(Failure {
                service: Some(service.clone()),
                cause: Cause::UnitFailed,
                reason: format!("{unit} stopped: {reason}"),
            }),
            Sample::Rollout { service, state } => match state {
                RolloutState::Failed { reason } => failures.push(Failure {
                    service: Some(service.clone()),
                    cause: Cause::RolloutFailed,
                    reason: reason.clone(),
                }),
                RolloutState::RolledBackByPlatform { reason, to } => failures.push(Failure {
                    service: Some(service.clone()),
                    cause: Cause::RolledBackByPlatform,
                    reason: format!("{reason} (the platform rolled back to {to})"),
                }),
                RolloutState::InProgress { running, desired, failed_tasks } => {
                    let failed =
                        if *failed_tasks > 0 { format!(", {failed_tasks} failed") } else { String::new() };
                    waiting.push((service.clone(), format!("{running}/{desired} running{failed}")));
                }
                RolloutState::Complete => {}
            },
            Sample::Alarm { name, in_alarm: true, reason } => failures.push(Failure {
                service: None,
                cause: Cause::Alarm,
                reason: format!("alarm `{name}` is in ALARM: {reason}"),
            }),
            Sample::Http { url, consecutive_failures, last }
                if *consecutive_failures > policy.http_failure_limit =>
            {
                failures.push(Failure {
                    service: None,
                    cause: Cause::Http,
                    reason: format!("GET {url} failed {consecutive_failures} times in a row: {last}"),
                });
            }
            Sample::Unready { service, unit, unready_for, bound, why } if unready_for >= bound => {
                failures.push(Failure {
                    service: Some(service.clone()),
                    cause: Cause::Timeout,
                    reason: format!(
                        "{unit} running but not healthy for {} (ready_within: {}): {why}",
                        crate::support::human(*unready_for),
                        crate::support::human(*bound)
                    ),
                });
            }
            Sample::Alarm { .. } | Sample::Http { .. } | Sample::Unready { .. } => {}
        }
    }
    if !failures.is_empty() {
        return Verdict::Failed { failures };
    }
    if !rollouts_complete(obs.samples) {
        let described = |w: &[(String, String)]| {
            w.iter().map(|(s, what)| format!("{s} {what}")).collect::<Vec<_>>().join(", ")
        };
        if obs.elapsed >= policy.rollout_timeout {
            let after = crate::support::human(policy.rollout_timeout);
            // One failure per service still not done: the report names which one never got
            // ready, the same words as on Kubernetes.
            let failures = if waiting.is_empty() {
                vec![Failure {
                    service: None,
                    cause: Cause::Timeout,
                    reason: format!("rollout not complete after {after} (nothing reported)"),
                }]
            } else {
                waiting
                    .iter()
                    .map(|(service, what)| Failure {
                        service: Some(service.clone()),
                        cause: Cause::Timeout,
                        reason: format!("rollout not complete after {after} ({what})"),
                    })
                    .collect()
            };
            return Verdict::Failed { failures };
        }
        return Verdict::Progressing {
            waiting_for: if waiting.is_empty() {
                "first observation".to_owned()
            } else {
                described(&waiting)
            },
        };
    }
    let baked = obs.since_complete.unwrap_or(Duration::ZERO);
    if baked < policy.bake_time {
        let left = Duration::from_secs(policy.bake_time.saturating_sub(baked).as_secs());
        return Verdict::Progressing {
            waiting_for: format!("bake time, {} left", crate::support::human(left)),
        };
    }
    Verdict::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            rollout_timeout: Duration::from_mins(10),
            bake_time: Duration::from_secs(30),
            alarms: vec!["5xx".into()],
            http: Vec::new(),
            http_failure_limit: 2,
        }
    }

    fn rollout(service: &str, state: RolloutState) -> Sample {
        Sample::Rollout { service: service.into(), state }
    }

    fn at(secs: u64, since_complete: Option<u64>, samples: &[Sample]) -> Verdict {
        assess(
            &policy(),
            &Observation {
                elapsed: Duration::from_secs(secs),
                since_complete: since_complete.map(Duration::from_secs),
                samples,
            },
        )
    }

    const IN_PROGRESS: RolloutState = RolloutState::InProgress { running: 1, desired: 2, failed_tasks: 0 };

    #[test]
    fn progressing_while_rolling_out_then_baking_then_healthy() {
        let rolling = [rollout("user", IN_PROGRESS), rollout("order", RolloutState::Complete)];
        assert_eq!(at(5, None, &rolling), Verdict::Progressing { waiting_for: "user 1/2 running".into() });
        let done = [rollout("user", RolloutState::Complete), rollout("order", RolloutState::Complete)];
        assert_eq!(at(6, Some(0), &done), Verdict::Progressing { waiting_for: "bake time, 30s left".into() });
        assert_eq!(
            at(30, Some(29), &done),
            Verdict::Progressing { waiting_for: "bake time, 1s left".into() }
        );
        assert_eq!(at(36, Some(30), &done), Verdict::Healthy);
    }

    #[test]
    fn no_samples_is_never_healthy() {
        assert!(matches!(at(1, Some(100), &[]), Verdict::Progressing { .. }));
        assert!(matches!(at(601, None, &[]), Verdict::Failed { .. }));
    }

    #[test]
    fn a_failed_unit_fails_at_once_even_while_rolling_out() {
        let s = [
            rollout("user", RolloutState::InProgress { running: 0, desired: 2, failed_tasks: 1 }),
            Sample::UnitFailed {
                service: "user".into(),
                unit: "task 1a2b".into(),
                reason: "Essential container in task exited (user: exit code 1)".into(),
            },
        ];
        let v = at(1, None, &s);
        assert_eq!(v.failures().len(), 1);
        assert_eq!(v.failures()[0].cause, Cause::UnitFailed);
        assert_eq!(
            v.failures()[0].to_string(),
            "user: task 1a2b stopped: Essential container in task exited (user: exit code 1)"
        );
    }

    #[test]
    fn a_platform_rollback_is_a_failure_not_a_success() {
        // ECS rolled back by itself: the service is "stable" again, but our release failed.
        let s = [rollout(
            "user",
            RolloutState::RolledBackByPlatform {
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                to: "user:3".into(),
            },
        )];
        let v = at(40, Some(10), &s);
        assert_eq!(v.failures()[0].cause, Cause::RolledBackByPlatform);
        assert!(v.failures()[0].reason.contains("rolled back to user:3"));
    }

    #[test]
    fn alarm_in_alarm_fails_during_rollout_and_bake() {
        let alarm = Sample::Alarm { name: "5xx".into(), in_alarm: true, reason: "threshold crossed".into() };
        assert_eq!(
            at(1, None, &[rollout("user", IN_PROGRESS), alarm.clone()]).failures()[0].cause,
            Cause::Alarm
        );
        assert_eq!(
            at(9, Some(5), &[rollout("user", RolloutState::Complete), alarm]).failures()[0].cause,
            Cause::Alarm
        );
        let ok = Sample::Alarm { name: "5xx".into(), in_alarm: false, reason: String::new() };
        assert_eq!(at(99, Some(40), &[rollout("user", RolloutState::Complete), ok]), Verdict::Healthy);
    }

    #[test]
    fn http_failures_tolerated_up_to_the_limit() {
        let http =
            |n| Sample::Http { url: "http://x/healthz".into(), consecutive_failures: n, last: "503".into() };
        let done = rollout("user", RolloutState::Complete);
        assert!(matches!(at(10, Some(5), &[done.clone(), http(2)]), Verdict::Progressing { .. }));
        let v = at(10, Some(5), &[done, http(3)]);
        assert_eq!(v.failures()[0].reason, "GET http://x/healthz failed 3 times in a row: 503");
    }

    #[test]
    fn timeout_applies_to_the_rollout_not_the_bake() {
        let v = at(600, None, &[rollout("user", IN_PROGRESS)]);
        assert_eq!(v.failures()[0].cause, Cause::Timeout);
        assert_eq!(v.failures()[0].reason, "rollout not complete after 10m (1/2 running)");
        assert_eq!(v.failures()[0].service.as_deref(), Some("user"));
        assert_eq!(at(900, Some(300), &[rollout("user", RolloutState::Complete)]), Verdict::Healthy);
    }

    #[test]
    fn platform_failure_without_rollback() {
        let s = [rollout("user", RolloutState::Failed { reason: "tasks failed to start".into() })];
        assert_eq!(at(3, None, &s).failures()[0].cause, Cause::RolloutFailed);
    }

    #[test]
    fn rollback_policy_drops_bake_alarms_and_http() {
        let p = policy().for_rollback();
        assert_eq!(p.bake_time, Duration::ZERO);
        assert!(p.alarms.is_empty());
        assert_eq!(p.rollout_timeout, Duration::from_mins(10));
    }

    #[test]
    fn a_unit_unready_past_its_bound_fails_and_one_within_it_waits() {
        let unready = |secs: u64| Sample::Unready {
            service: "web".into(),
            unit: "task 5c3b".into(),
            unready_for: Duration::from_secs(secs),
            bound: Duration::from_secs(15),
            why: "container health UNHEALTHY; target 10.0.1.5:8080 unhealthy (Target.FailedHealthChecks)"
                .into(),
        };
        let progressing =
            rollout("web", RolloutState::InProgress { running: 1, desired: 1, failed_tasks: 0 });
        assert!(matches!(at(20, None, &[progressing.clone(), unready(14)]), Verdict::Progressing { .. }));
        let Verdict::Failed { failures } = at(20, None, &[progressing, unready(15)]) else {
            panic!("not failed")
        };
        assert_eq!(failures[0].cause, Cause::Timeout);
        assert_eq!(failures[0].service.as_deref(), Some("web"));
        assert!(
            failures[0].reason.starts_with(
                "task 5c3b running but not healthy for 15s (ready_within: 15s): container health UNHEALTHY"
            ),
            "{}",
            failures[0].reason
        );
    }
}
