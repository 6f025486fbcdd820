//! Pure readings of ECS API answers: which state our deployment is in (followed by its id,
//! never by "the service looks stable"), and whether a stopped task is a failure of the new
//! version.
//!
//! The peers' worst bug is reporting success after ECS already rolled back (the
//! `ServicesStable` waiter ignores `rolloutState`: after a circuit-breaker rollback the service
//! is "stable" on the OLD task definition). Here a deployment that is FAILED, superseded, or
//! gone while another task definition is PRIMARY is never success.

use crate::health::RolloutState;

/// The fields of one `deployments[]` entry that matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentView {
    pub id: String,
    /// PRIMARY | ACTIVE | INACTIVE.
    pub status: String,
    /// IN_PROGRESS | COMPLETED | FAILED (absent on very old services).
    pub rollout_state: Option<String>,
    pub reason: Option<String>,
    pub task_definition: String,
    pub running: u32,
    pub desired: u32,
    pub failed: u32,
}

fn rolling_back(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.to_ascii_lowercase().contains("rolling back"))
}

/// The state of deployment `ours` among `deployments` (newest first, as ECS lists them).
/// `previous` is the task definition the service ran before our update; `events` are the
/// service's event messages (newest first). Once ECS finished its own rollback, our FAILED
/// deployment is no longer listed: a PRIMARY on the previous task definition, or an event
/// saying our deployment failed, still makes it a failure.
pub fn rollout_state(
    deployments: &[DeploymentView],
    ours: &str,
    previous: Option<&str>,
    events: &[&str],
) -> RolloutState {
    let primary = deployments.iter().find(|d| d.status == "PRIMARY");
    let mine = deployments.iter().find(|d| d.id == ours);
    let other_primary = primary.filter(|p| p.id != ours);
    match mine {
        Some(d) if d.rollout_state.as_deref() == Some("FAILED") => {
            let reason = d.reason.clone().unwrap_or_else(|| "deployment failed".to_owned());
            match other_primary {
                Some(p) => RolloutState::RolledBackByPlatform { reason, to: p.task_definition.clone() },
                None => RolloutState::Failed { reason },
            }
        }
        Some(d) if other_primary.is_none() => match d.rollout_state.as_deref() {
            Some("COMPLETED") => RolloutState::Complete,
            // No rolloutState: fall back to the old definition of done.
            None if deployments.len() == 1 && d.running == d.desired => RolloutState::Complete,
            _ => RolloutState::InProgress { running: d.running, desired: d.desired, failed_tasks: d.failed },
        },
        _ => match other_primary {
            Some(p)
                if rolling_back(p.reason.as_deref())
                    || previous.is_some_and(|prev| same_revision(prev, &p.task_definition))
                    || failed_event(events, ours).is_some() =>
            {
                RolloutState::RolledBackByPlatform {
                    reason: failed_event(events, ours)
                        .map(str::to_owned)
                        .or_else(|| p.reason.clone().filter(|r| rolling_back(Some(r))))
                        .unwrap_or_else(|| {
                            format!(
                                "deployment {ours} is gone and ECS runs the previous task definition again"
                            )
                        }),
                    to: p.task_definition.clone(),
                }
            }
            Some(p) => RolloutState::Failed {
                reason: format!(
                    "deployment {ours} was replaced by deployment {} ({}): someone else updated the service",
                    p.id, p.task_definition
                ),
            },
            None => RolloutState::Failed { reason: format!("deployment {ours} is no longer listed by ECS") },
        },
    }
}

fn same_revision(a: &str, b: &str) -> bool {
    super::taskdef::family_revision(a) == super::taskdef::family_revision(b)
}

/// The service event that says deployment `ours` failed.
fn failed_event<'a>(events: &[&'a str], ours: &str) -> Option<&'a str> {
    events.iter().copied().find(|m| m.contains(ours) && m.to_ascii_lowercase().contains("failed"))
}

/// The fields of a stopped task that matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskView {
    pub id: String,
    pub started_by: Option<String>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// (name, exit code, reason).
    pub containers: Vec<(String, Option<i32>, Option<String>)>,
}

/// Why a stopped task counts as a failure of the version it ran; None for ordinary stops
/// (scale-in, replaced by a newer deployment, user request, spot interruption).
pub fn task_failure(t: &TaskView) -> Option<String> {
    let reason = t.stopped_reason.clone().unwrap_or_default();
    let code = t.stop_code.as_deref().unwrap_or_default();
    let lower = reason.to_ascii_lowercase();
    let failed = match code {
        "EssentialContainerExited" | "TaskFailedToStart" => true,
        // The scheduler also stops tasks that fail health checks: a failure of this version.
        "ServiceSchedulerInitiated" => lower.contains("health check"),
        "UserInitiated" | "SpotInterruption" | "TerminationNotice" => false,
        _ => lower.starts_with("cannotpullcontainer") || lower.contains("resourceinitializationerror"),
    };
    if !failed {
        return None;
    }
    let details: Vec<String> = t
        .containers
        .iter()
        .filter_map(|(name, exit, why)| match (exit, why) {
            (Some(code), Some(w)) if *code != 0 => Some(format!("{name}: exit code {code}, {w}")),
            (Some(code), None) if *code != 0 => Some(format!("{name}: exit code {code}")),
            (_, Some(w)) if !reason.contains(w.as_str()) => Some(format!("{name}: {w}")),
            _ => None,
        })
        .collect();
    let head = if reason.is_empty() { code.to_owned() } else { reason };
    Some(if details.is_empty() { head } else { format!("{head} ({})", details.join("; ")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(id: &str, status: &str, state: &str, td: &str) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            rollout_state: Some(state.into()),
            reason: None,
            task_definition: td.into(),
            running: 1,
            desired: 2,
            failed: 0,
        }
    }

    #[test]
    fn follows_our_deployment_by_id() {
        let deps = [dep("new", "PRIMARY", "IN_PROGRESS", "td:2"), dep("old", "ACTIVE", "COMPLETED", "td:1")];
        assert_eq!(
            rollout_state(&deps, "new", None, &[]),
            RolloutState::InProgress { running: 1, desired: 2, failed_tasks: 0 }
        );
        let done = [dep("new", "PRIMARY", "COMPLETED", "td:2")];
        assert_eq!(rollout_state(&done, "new", None, &[]), RolloutState::Complete);
    }

    #[test]
    fn circuit_breaker_rollback_is_not_success() {
        let mut back = dep("back", "PRIMARY", "IN_PROGRESS", "td:1");
        back.reason = Some("ECS deployment circuit breaker: rolling back to deploymentId old.".into());
        let mut failed = dep("new", "ACTIVE", "FAILED", "td:2");
        failed.reason = Some("ECS deployment circuit breaker: tasks failed to start.".into());
        assert_eq!(
            rollout_state(&[back.clone(), failed], "new", Some("td:1"), &[]),
            RolloutState::RolledBackByPlatform {
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                to: "td:1".into()
            }
        );
        // Later our FAILED deployment is gone and the rollback COMPLETED: still not success,
        // whether the previous task definition or the service events tell.
        back.rollout_state = Some("COMPLETED".into());
        back.reason = Some("ECS deployment back completed.".into());
        assert!(matches!(
            rollout_state(
                std::slice::from_ref(&back),
                "new",
                Some("arn:aws:ecs:r:1:task-definition/td:1"),
                &[]
            ),
            RolloutState::RolledBackByPlatform { .. }
        ));
        let msg = "(service user) (deployment new) deployment failed: tasks failed to start.";
        assert_eq!(
            rollout_state(
                std::slice::from_ref(&back),
                "new",
                Some("td:0"),
                &["(service user) has reached a steady state.", msg]
            ),
            RolloutState::RolledBackByPlatform { reason: msg.into(), to: "td:1".into() }
        );
    }

    #[test]
    fn failed_without_rollback_and_superseded() {
        let mut f = dep("new", "PRIMARY", "FAILED", "td:2");
        f.reason = Some("alarm".into());
        assert_eq!(rollout_state(&[f], "new", None, &[]), RolloutState::Failed { reason: "alarm".into() });
        let deps =
            [dep("other", "PRIMARY", "IN_PROGRESS", "td:3"), dep("new", "ACTIVE", "IN_PROGRESS", "td:2")];
        assert!(
            matches!(rollout_state(&deps, "new", Some("td:1"), &[]), RolloutState::Failed { reason } if reason.contains("someone else"))
        );
        assert!(matches!(rollout_state(&[], "new", None, &[]), RolloutState::Failed { .. }));
    }

    #[test]
    fn stopped_tasks() {
        let crash = TaskView {
            id: "t1".into(),
            started_by: Some("ecs-svc/1".into()),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![("user".into(), Some(1), None)],
        };
        assert_eq!(task_failure(&crash).unwrap(), "Essential container in task exited (user: exit code 1)");
        let pull = TaskView {
            stop_code: Some("TaskFailedToStart".into()),
            stopped_reason: Some("CannotPullContainerError: pull image manifest has been retried".into()),
            containers: vec![(
                "user".into(),
                None,
                Some("CannotPullContainerError: pull image manifest has been retried".into()),
            )],
            ..TaskView::default()
        };
        assert_eq!(
            task_failure(&pull).unwrap(),
            "CannotPullContainerError: pull image manifest has been retried"
        );
        let scaled = TaskView {
            stop_code: Some("ServiceSchedulerInitiated".into()),
            stopped_reason: Some("Scaling activity initiated by (deployment ecs-svc/2)".into()),
            ..TaskView::default()
        };
        assert_eq!(task_failure(&scaled), None);
        let elb = TaskView {
            stop_code: Some("ServiceSchedulerInitiated".into()),
            stopped_reason: Some("Task failed ELB health checks in (target-group arn:…)".into()),
            ..TaskView::default()
        };
        assert!(task_failure(&elb).is_some());
    }
}
