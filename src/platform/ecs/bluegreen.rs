//! Blue/green traffic primitives on an ALB: which target group serves, switch it, switch back.
//!
//! Native ECS blue/green (`deploymentConfiguration.strategy: BLUE_GREEN`, with
//! `alternateTargetGroupArn` and `productionListenerRule`) needs nothing from here: ECS shifts
//! the rule itself and [`super::EcsPlatform`] follows the deployment by id like a rolling one.
//! These primitives are for the deployer-driven variant (two target groups, the listener
//! switched by deployer, switch-back as the rollback) and for inspecting what serves.
//! Which colour is live is read from production traffic only ([`production`]): the listener
//! rule the environment file names (`target.ecs.production_rules`), else the listener's default
//! action. Real ECS refuses a service on a target group no load balancer uses, so the idle
//! colour's group is attached somewhere too, typically by a test/preview rule (a header or path
//! condition); such rules are never the switch and are never modified. A setup where production
//! cannot be told apart is refused before anything changes.
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

/// One place on a load balancer that forwards to a target group of a blue/green pair: a
/// listener's default action or one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSite {
    pub switch: TrafficSwitch,
    /// The rule's priority (None for a default action), for messages.
    pub priority: Option<String>,
    pub forward: Forward,
}

impl ForwardSite {
    fn describe(&self, colours: &Pair<'_>) -> String {
        let to = self
            .forward
            .iter()
            .filter(|(t, _)| colours.colour_of(t).is_some())
            .map(|(t, w)| format!("{} {w}", colours.colour_of(t).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ");
        match (&self.switch.rule_arn, &self.priority) {
            (Some(rule), Some(p)) => format!("rule {rule} (priority {p}) → {to}"),
            (Some(rule), None) => format!("rule {rule} → {to}"),
            (None, _) => format!("default action of listener {} → {to}", self.switch.listener_arn),
        }
    }
}

/// A blue/green pair: (colour name, target group ARN) twice, e.g. the two ECS services.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    pub blue: (&'a str, &'a str),
    pub green: (&'a str, &'a str),
}

impl Pair<'_> {
    fn colour_of(&self, group: &str) -> Option<&str> {
        [self.blue, self.green].into_iter().find(|(_, g)| *g == group).map(|(c, _)| c)
    }

    fn groups(&self) -> [&str; 2] {
        [self.blue.1, self.green.1]
    }
}

/// Where production traffic of a blue/green pair is decided, and which group it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Production {
    pub switch: TrafficSwitch,
    /// The target group that receives production traffic (the live colour's).
    pub live_group: String,
}

/// Every listener default action and listener rule that forwards to one of the pair's target
/// groups, on the load balancers either group is attached to.
pub async fn forwarding_sites(elb: &Client, pair: &Pair<'_>) -> Result<Vec<ForwardSite>, PlatformError> {
    let groups = pair.groups();
    let tgs = elb
        .describe_target_groups()
        .set_target_group_arns(Some(groups.iter().map(|g| (*g).to_owned()).collect()))
        .send()
        .await
        .map_err(|e| PlatformError::api("DescribeTargetGroups", DisplayErrorContext(&e)))?;
    let mut lbs: Vec<String> =
        tgs.target_groups().iter().flat_map(|t| t.load_balancer_arns().to_vec()).collect();
    lbs.sort();
    lbs.dedup();
    let hits = |f: &Forward| f.iter().any(|(t, _)| groups.contains(&t.as_str()));
    let mut sites = Vec::new();
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
                let forward = forward_of(r.actions());
                if r.is_default() != Some(true) && hits(&forward) {
                    sites.push(ForwardSite {
                        switch: TrafficSwitch {
                            listener_arn: listener.to_owned(),
                            rule_arn: r.rule_arn().map(str::to_owned),
                        },
                        priority: r.priority().map(str::to_owned),
                        forward,
                    });
                }
            }
            let forward = forward_of(l.default_actions());
            if hits(&forward) {
                sites.push(ForwardSite {
                    switch: TrafficSwitch { listener_arn: listener.to_owned(), rule_arn: None },
                    priority: None,
                    forward,
                });
            }
        }
    }
    Ok(sites)
}

/// Decides where production traffic of `pair` is switched and which colour is live, from what
/// forwards to the pair (`sites`, see [`forwarding_sites`]). Production is `named_rule` (the
/// environment file's `target.ecs.production_rules`) or, without one, the one listener default
/// action that forwards to the pair. Any other rule (a test/preview rule, e.g. a header
/// condition on the idle colour) is never the switch. Anything that leaves the live colour in
/// doubt is refused, naming every rule found: deploying onto the wrong colour would replace
/// the tasks that serve production.
pub fn production(
    sites: &[ForwardSite],
    pair: &Pair<'_>,
    named_rule: Option<&str>,
    service: &str,
) -> Result<Production, PlatformError> {
    let found = || {
        if sites.is_empty() {
            "nothing forwards to them".to_owned()
        } else {
            format!("found: {}", sites.iter().map(|s| s.describe(pair)).collect::<Vec<_>>().join("; "))
        }
    };
    let colours = format!("{}/{}", pair.blue.0, pair.green.0);
    let name_it = format!(
        "name the rule that carries production traffic in the environment file \
         (`target.ecs.production_rules: {{ {service}: <listener rule ARN> }}`); test/preview rules are never switched"
    );
    let site = if let Some(rule) = named_rule {
        sites.iter().find(|s| s.switch.rule_arn.as_deref() == Some(rule)).ok_or_else(|| {
            PlatformError::setup(
                format!(
                    "the production rule of `{service}` ({rule}) does not forward to the target group of {colours}; {}",
                    found()
                ),
                "point `target.ecs.production_rules` at the rule that forwards production traffic to the live colour",
            )
        })?
    } else {
        let defaults: Vec<&ForwardSite> = sites.iter().filter(|s| s.switch.rule_arn.is_none()).collect();
        match defaults.as_slice() {
            [one] => *one,
            [] => {
                return Err(PlatformError::setup(
                    format!(
                        "cannot tell which colour of `{service}` is live: no production rule is named and no \
                         listener's default action forwards to {colours}; {}",
                        found()
                    ),
                    name_it,
                ));
            }
            _ => {
                return Err(PlatformError::setup(
                    format!(
                        "cannot tell which colour of `{service}` is live: several listeners' default actions \
                         forward to {colours}; {}",
                        found()
                    ),
                    name_it,
                ));
            }
        }
    };
    let live: Vec<&(String, i32)> =
        site.forward.iter().filter(|(t, w)| *w > 0 && pair.colour_of(t).is_some()).collect();
    match live.as_slice() {
        [(group, _)] => Ok(Production { switch: site.switch.clone(), live_group: group.clone() }),
        [] => Err(PlatformError::setup(
            format!(
                "cannot tell which colour of `{service}` is live: production ({}) sends no traffic to {colours}",
                site.describe(pair)
            ),
            "forward production traffic (weight > 0) to exactly one colour, then deploy",
        )),
        _ => Err(PlatformError::setup(
            format!(
                "cannot tell which colour of `{service}` is live: production ({}) splits traffic between both colours",
                site.describe(pair)
            ),
            "send all production traffic to one colour (weight 100, the other 0), then deploy",
        )),
    }
}

/// Whether a colour's target group lets the switch go ahead, from its targets' states: no
/// target unhealthy, and `desired` healthy ones, unless ELB does not health-check the group
/// (every target `unused` / `Target.NotInUse`: no listener or rule routes to it yet). Then the
/// colour is judged by its tasks' health alone; waiting for `healthy` would never end.
pub fn group_ready(states: &[&str], desired: usize) -> bool {
    if states.contains(&"unhealthy") {
        return false;
    }
    let unused = !states.is_empty() && states.iter().all(|s| *s == "unused");
    unused || states.iter().filter(|s| **s == "healthy").count() >= desired
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

    const PAIR: Pair<'static> =
        Pair { blue: ("shop-user-blue", "tg-blue"), green: ("shop-user-green", "tg-green") };

    fn site(rule: Option<&str>, forward: &[(&str, i32)]) -> ForwardSite {
        ForwardSite {
            switch: TrafficSwitch { listener_arn: "listener".into(), rule_arn: rule.map(str::to_owned) },
            priority: rule.map(|_| "10".to_owned()),
            forward: forward.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect(),
        }
    }

    fn refusal(sites: &[ForwardSite], named: Option<&str>) -> String {
        match production(sites, &PAIR, named, "user") {
            Err(PlatformError::Setup { message, hint, .. }) => format!("{message} | hint: {hint}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_named_production_rule_decides_and_a_preview_rule_is_never_the_switch() {
        // The preview rule comes first (as ELB lists rules by priority) and forwards to green.
        let sites = [site(Some("preview"), &[("tg-green", 1)]), site(Some("prod"), &[("tg-blue", 1)])];
        let p = production(&sites, &PAIR, Some("prod"), "user").unwrap();
        assert_eq!(p.switch.rule_arn.as_deref(), Some("prod"));
        assert_eq!(p.live_group, "tg-blue");
        // After a switch the rule keeps blue at weight 0: green is live.
        let sites = [
            site(Some("preview"), &[("tg-green", 1)]),
            site(Some("prod"), &[("tg-green", 100), ("tg-blue", 0)]),
        ];
        assert_eq!(production(&sites, &PAIR, Some("prod"), "user").unwrap().live_group, "tg-green");
    }

    #[test]
    fn without_a_named_rule_the_listener_default_action_decides() {
        let sites = [site(Some("preview"), &[("tg-green", 1)]), site(None, &[("tg-blue", 1)])];
        let p = production(&sites, &PAIR, None, "user").unwrap();
        assert_eq!(p.switch, TrafficSwitch { listener_arn: "listener".into(), rule_arn: None });
        assert_eq!(p.live_group, "tg-blue");
    }

    #[test]
    fn rules_alone_without_a_named_one_are_refused_naming_each_rule() {
        let sites = [site(Some("rule-a"), &[("tg-green", 1)]), site(Some("rule-b"), &[("tg-blue", 1)])];
        let why = refusal(&sites, None);
        assert!(why.starts_with("cannot tell which colour of `user` is live"), "{why}");
        assert!(why.contains("rule rule-a (priority 10) → shop-user-green 1"), "{why}");
        assert!(why.contains("rule rule-b (priority 10) → shop-user-blue 1"), "{why}");
        assert!(why.contains("target.ecs.production_rules: { user: <listener rule ARN> }"), "{why}");
        assert!(refusal(&[], None).contains("nothing forwards to them"));
    }

    #[test]
    fn doubtful_production_is_refused() {
        // Two listeners (say HTTP and HTTPS) both default to the pair.
        let two = [site(None, &[("tg-blue", 1)]), site(None, &[("tg-blue", 1)])];
        assert!(refusal(&two, None).contains("several listeners' default actions"));
        // The named rule does not forward to the pair (or does not exist).
        let sites = [site(Some("preview"), &[("tg-green", 1)])];
        let why = refusal(&sites, Some("prod"));
        assert!(why.contains("production rule of `user` (prod) does not forward"), "{why}");
        assert!(why.contains("found: rule preview"), "{why}");
        // Split traffic, or none to either colour.
        let split = [site(Some("prod"), &[("tg-blue", 50), ("tg-green", 50)])];
        assert!(refusal(&split, Some("prod")).contains("splits traffic between both colours"));
        let none = [site(Some("prod"), &[("tg-blue", 0), ("other", 100)])];
        assert!(refusal(&none, Some("prod")).contains("sends no traffic to"));
    }

    #[test]
    fn a_group_is_ready_when_healthy_or_not_health_checked() {
        assert!(group_ready(&["healthy", "healthy"], 2));
        assert!(!group_ready(&["healthy", "initial"], 2));
        assert!(!group_ready(&["healthy", "healthy", "unhealthy"], 2));
        assert!(!group_ready(&[], 1));
        // Target.NotInUse: ELB checks nothing, the tasks' health decides.
        assert!(group_ready(&["unused", "unused"], 2));
        assert!(group_ready(&["healthy", "healthy", "draining"], 2));
    }

    #[test]
    fn forward_of_plain_target_group_action() {
        let a = Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn("tg").build();
        assert_eq!(forward_of(&[a]), vec![("tg".to_owned(), 1)]);
        let f = vec![("a".to_owned(), 100), ("b".to_owned(), 0)];
        assert_eq!(forward_of(&[action(&f)]), f);
    }
}
