//! Blue/green traffic primitives on an ALB: which target group serves, switch it, switch back.
//!
//! Native ECS blue/green (`deploymentConfiguration.strategy: BLUE_GREEN`, with
//! `alternateTargetGroupArn` and `productionListenerRule`) needs nothing from here: ECS shifts
//! the rule itself and [`super::EcsPlatform`] follows the deployment by id like a rolling one.
//! These primitives are for the deployer-driven variant (two target groups, the listener
//! switched by deployer, switch-back as the rollback) and for inspecting what serves.
//! The deployer-driven variant uses two ECS services per deployer service, `<name>-blue` and
//! `<name>-green`, each on its own target group (see [`super::EcsPlatform`]). Two services
//! rather than task sets: task sets need the EXTERNAL deployment controller, which gives up
//! ECS's own deployments, circuit breaker and events; two ordinary services keep all of it,
//! and each colour's rollout is followed by deployment id like any other.
//! A switch always forwards 100 % to one group; [`switch_to`] returns the previous forward
//! configuration so that [`restore`] puts back exactly what was there.

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::platform::PlatformError;

/// Where production traffic is decided: a listener's default action, or one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSwitch {
    pub listener_arn: String,
    /// A listener rule; None = the listener's default action.
    pub rule_arn: Option<String>,
}

/// (target group ARN, weight) pairs of a forward action.
pub type Forward = Vec<(String, i32)>;

fn forward_of(actions: &[Action]) -> Forward {
    let Some(a) = actions.iter().find(|a| a.r#type() == Some(&ActionTypeEnum::Forward)) else {
        return Vec::new();
    };
    match a.forward_config() {
        Some(fc) if !fc.target_groups().is_empty() => fc
            .target_groups()
            .iter()
            .filter_map(|t| Some((t.target_group_arn()?.to_owned(), t.weight().unwrap_or(1))))
            .collect(),
        _ => a.target_group_arn().map(|t| vec![(t.to_owned(), 1)]).unwrap_or_default(),
    }
}

/// The forward configuration that serves traffic now.
pub async fn serving(elb: &Client, sw: &TrafficSwitch) -> Result<Forward, PlatformError> {
    let err = |op: &str, e: &dyn std::fmt::Display| PlatformError::api(op, e);
    if let Some(rule) = &sw.rule_arn {
        let out = elb
            .describe_rules()
            .rule_arns(rule)
            .send()
            .await
            .map_err(|e| err("DescribeRules", &DisplayErrorContext(&e)))?;
        Ok(out.rules().first().map(|r| forward_of(r.actions())).unwrap_or_default())
    } else {
        let out = elb
            .describe_listeners()
            .listener_arns(&sw.listener_arn)
            .send()
            .await
            .map_err(|e| err("DescribeListeners", &DisplayErrorContext(&e)))?;
        Ok(out.listeners().first().map(|l| forward_of(l.default_actions())).unwrap_or_default())
    }
}

/// The target group that gets (most of) the traffic.
pub fn live_group(forward: &Forward) -> Option<&str> {
    forward.iter().filter(|(_, w)| *w > 0).max_by_key(|(_, w)| *w).map(|(t, _)| t.as_str())
}

fn action(forward: &Forward) -> Action {
    let groups: Vec<TargetGroupTuple> = forward
        .iter()
        .map(|(t, w)| TargetGroupTuple::builder().target_group_arn(t).weight(*w).build())
        .collect();
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(ForwardActionConfig::builder().set_target_groups(Some(groups)).build())
        .build()
}

async fn set(elb: &Client, sw: &TrafficSwitch, forward: &Forward) -> Result<(), PlatformError> {
    let a = action(forward);
    if let Some(rule) = &sw.rule_arn {
        elb.modify_rule()
            .rule_arn(rule)
            .actions(a)
            .send()
            .await
            .map_err(|e| PlatformError::api("ModifyRule", DisplayErrorContext(&e)))?;
    } else {
        elb.modify_listener()
            .listener_arn(&sw.listener_arn)
            .default_actions(a)
            .send()
            .await
            .map_err(|e| PlatformError::api("ModifyListener", DisplayErrorContext(&e)))?;
    }
    Ok(())
}

/// Sends all traffic to `target_group`; returns what served before (for [`restore`]).
pub async fn switch_to(
    elb: &Client,
    sw: &TrafficSwitch,
    target_group: &str,
) -> Result<Forward, PlatformError> {
    let before = serving(elb, sw).await?;
    let mut next: Forward = vec![(target_group.to_owned(), 100)];
    // Keep the other groups in the action at weight 0: the switch-back is one call.
    for (t, _) in &before {
        if t != target_group {
            next.push((t.clone(), 0));
        }
    }
    set(elb, sw, &next).await?;
    Ok(before)
}

/// Finds where production traffic to any of `groups` is decided: a (non-default) listener rule
/// forwarding to one of them, else a listener whose default action does, on the load balancers
/// the first group is attached to.
pub async fn find_switch(elb: &Client, groups: &[&str]) -> Result<Option<TrafficSwitch>, PlatformError> {
    let Some(first) = groups.first() else { return Ok(None) };
    let tgs = elb
        .describe_target_groups()
        .target_group_arns(*first)
        .send()
        .await
        .map_err(|e| PlatformError::api("DescribeTargetGroups", DisplayErrorContext(&e)))?;
    let lbs: Vec<String> = tgs.target_groups().iter().flat_map(|t| t.load_balancer_arns().to_vec()).collect();
    let hits = |f: &Forward| f.iter().any(|(t, _)| groups.contains(&t.as_str()));
    for lb in lbs {
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(&lb)
            .send()
            .await
            .map_err(|e| PlatformError::api("DescribeListeners", DisplayErrorContext(&e)))?;
        for l in listeners.listeners() {
            let Some(listener) = l.listener_arn() else { continue };
            let rules = elb
                .describe_rules()
                .listener_arn(listener)
                .send()
                .await
                .map_err(|e| PlatformError::api("DescribeRules", DisplayErrorContext(&e)))?;
            for r in rules.rules() {
                if r.is_default() != Some(true) && hits(&forward_of(r.actions())) {
                    return Ok(Some(TrafficSwitch {
                        listener_arn: listener.to_owned(),
                        rule_arn: r.rule_arn().map(str::to_owned),
                    }));
                }
            }
            if hits(&forward_of(l.default_actions())) {
                return Ok(Some(TrafficSwitch { listener_arn: listener.to_owned(), rule_arn: None }));
            }
        }
    }
    Ok(None)
}

/// Puts back a forward configuration returned by [`switch_to`].
pub async fn restore(elb: &Client, sw: &TrafficSwitch, previous: &Forward) -> Result<(), PlatformError> {
    set(elb, sw, previous).await
}

/// Waits until `target_group` has at least `min_healthy` healthy targets and none unhealthy;
/// Err(reason) on timeout.
pub async fn wait_healthy(
    elb: &Client,
    target_group: &str,
    min_healthy: usize,
    timeout: Duration,
    poll: Duration,
) -> Result<(), PlatformError> {
    let start = Instant::now();
    loop {
        let out = elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| PlatformError::api("DescribeTargetHealth", DisplayErrorContext(&e)))?;
        let states: Vec<String> = out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target_health()?.state().map(|s| s.as_str().to_owned()))
            .collect();
        let healthy = states.iter().filter(|s| *s == "healthy").count();
        if healthy >= min_healthy && !states.iter().any(|s| s == "unhealthy") {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(PlatformError::setup(
                format!(
                    "target group {target_group}: {healthy} of {min_healthy} targets healthy after {} ({})",
                    humantime::format_duration(timeout),
                    states.join(", ")
                ),
                "look at the target group's health check settings and the new tasks' logs",
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_group_is_the_heaviest_nonzero() {
        let f = vec![("blue".to_owned(), 0), ("green".to_owned(), 100)];
        assert_eq!(live_group(&f), Some("green"));
        assert_eq!(live_group(&vec![("blue".to_owned(), 1)]), Some("blue"));
        assert_eq!(live_group(&Vec::new()), None);
    }

    #[test]
    fn forward_of_plain_target_group_action() {
        let a = Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn("tg").build();
        assert_eq!(forward_of(&[a]), vec![("tg".to_owned(), 1)]);
        let f = vec![("a".to_owned(), 100), ("b".to_owned(), 0)];
        assert_eq!(forward_of(&[action(&f)]), f);
    }
}
