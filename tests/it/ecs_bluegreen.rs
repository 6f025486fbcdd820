//! Deployer-driven blue/green on ECS with a preview rule present, on the strict stand-in (every
//! colour's target group attached to the ALB, as real ECS demands): the live colour is read from
//! production traffic only (the named production rule, or the listener's default action), the
//! new version goes to the idle colour with the live colour's task count, the live colour's task
//! definition and desired count never change before the switch, a failing bake switches
//! production back, and a setup where production cannot be told is refused before any change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deployer::config::Target;
use deployer::engine::{Ended, EngineError};
use deployer::model::Reason;
use deployer::platform::PlatformError;
use deployer::platform::ecs::{EcsPlatform, bluegreen};
use deployer::release::ReleaseStatus;

use crate::ecs::{deploy, history, rolled_back};

use crate::support::ecs_env::{ALARM, EcsEnv, Options, Production, image};

fn user_only(n: u8) -> BTreeMap<String, String> {
    BTreeMap::from([("user".to_owned(), image("user", None, n))])
}

/// The production switch of the fixture's pair.
fn production(env: &EcsEnv) -> bluegreen::TrafficSwitch {
    bluegreen::TrafficSwitch {
        listener_arn: env.listener.clone(),
        rule_arn: env.colours.as_ref().unwrap().production.clone(),
    }
}

async fn serves(env: &EcsEnv, sw: &bluegreen::TrafficSwitch) -> String {
    let forward = bluegreen::serving(&env.elb, sw).await.unwrap();
    bluegreen::live_group(&forward).unwrap().to_owned()
}

/// What `-blue` looks like: (task definition, desired count, PRIMARY deployment id).
async fn blue_state(env: &EcsEnv) -> (String, i32, String) {
    let s = env.service("shop-user-blue").await;
    let primary = s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id());
    (
        s.task_definition().unwrap_or_default().to_owned(),
        s.desired_count(),
        primary.unwrap_or_default().to_owned(),
    )
}

/// Polls the live colour (`-blue`) while a deploy runs. Every change to it while production
/// still points at it is recorded (`until_switch`), or every change at all (`always`).
struct LiveWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl LiveWatch {
    async fn start(env: &EcsEnv, always: bool) -> Self {
        let before = blue_state(env).await;
        let stop = Arc::new(AtomicBool::new(false));
        let (ecs, elb, sw) = (env.ecs.clone(), env.elb.clone(), production(env));
        let blue_group = env.colours.as_ref().unwrap().blue.clone();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let on_blue = |elb: aws_sdk_elasticloadbalancingv2::Client, sw: bluegreen::TrafficSwitch| {
                let blue_group = blue_group.clone();
                async move {
                    let f = bluegreen::serving(&elb, &sw).await.unwrap();
                    bluegreen::live_group(&f) == Some(blue_group.as_str())
                }
            };
            while !flag.load(Ordering::SeqCst) {
                let live_before = on_blue(elb.clone(), sw.clone()).await;
                let s = ecs
                    .describe_services()
                    .cluster(crate::support::ecs_env::CLUSTER)
                    .services("shop-user-blue")
                    .send()
                    .await
                    .unwrap()
                    .services()[0]
                    .clone();
                let primary =
                    s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id());
                let now = (
                    s.task_definition().unwrap_or_default().to_owned(),
                    s.desired_count(),
                    primary.unwrap_or_default().to_owned(),
                );
                // Still live after the read: the change happened before any switch.
                let live = live_before && on_blue(elb.clone(), sw.clone()).await;
                if now != before && (always || live) {
                    seen.push(format!(
                        "blue changed to {now:?} (was {before:?}); production on blue: {live}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        });
        Self { stop, task }
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

#[tokio::test]
async fn with_a_preview_rule_only_the_idle_colour_is_updated_then_production_switches() {
    let env = EcsEnv::start(Options { colours: Some("user"), ..Options::default() }).await;
    let c = env.colours.clone().unwrap();
    let sw = production(&env);
    let preview =
        bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: Some(c.preview.clone()) };
    assert_eq!(serves(&env, &sw).await, c.blue);
    assert_eq!(serves(&env, &preview).await, c.green);
    let p = EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();

    let watch = LiveWatch::start(&env, false).await;
    let report = deploy(&env, &p, &user_only(2)).await.unwrap();
    let changes = watch.finish().await;
    assert!(changes.is_empty(), "the live colour changed before the switch: {changes:?}");

    assert!(matches!(report.ended, Ended::Succeeded(_)), "{:?}", report.ended);
    let user = &report.applied[0];
    assert_eq!(user.target, "shop-user-green", "{user:?}");
    // The idle colour got the new version at the live colour's size (2, not its own 0).
    let green = env.service("shop-user-green").await;
    assert_eq!(green.task_definition(), Some(user.revision.as_str()));
    assert_eq!(green.desired_count(), 2);
    assert_eq!(green.running_count(), 2);
    // Production moved; the preview rule is untouched (still green only).
    assert_eq!(serves(&env, &sw).await, c.green);
    let preview_now = bluegreen::serving(&env.elb, &preview).await.unwrap();
    assert_eq!(preview_now, vec![(c.green.clone(), 1)], "the preview rule was rewritten");
    // After the bake the old colour is scaled down, kept as an object with its task definition.
    let (blue_td, blue_desired, _) = blue_state(&env).await;
    assert_eq!(blue_td, env.initial["user"]);
    assert_eq!(blue_desired, 0);

    // The next release goes to blue (now idle, attached at weight 0 in the production rule).
    let watch = LiveWatch::start(&env, false).await;
    let next = deploy(&env, &p, &user_only(3)).await.unwrap();
    watch.finish().await;
    assert_eq!(next.applied[0].target, "shop-user-blue");
    assert_eq!(serves(&env, &sw).await, c.blue);
    assert_eq!(env.service("shop-user-blue").await.desired_count(), 2);
}

#[tokio::test]
async fn a_failing_bake_switches_production_back_and_the_live_colour_never_changes() {
    // Production through the listener's default action (nothing named), a preview rule on green.
    let env = EcsEnv::start(Options {
        colours: Some("user"),
        production: Production::DefaultAction,
        health: format!("{{ bake_time: 60s, alarms: [{ALARM}] }}"),
        ..Options::default()
    })
    .await;
    env.alarm(ALARM).await;
    let c = env.colours.clone().unwrap();
    let sw = production(&env);
    assert!(sw.rule_arn.is_none());
    assert_eq!(serves(&env, &sw).await, c.blue);
    let p = EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
    // The alarm fires once production is on green, i.e. during the bake.
    let trigger = {
        let (elb, cw, sw, green) = (env.elb.clone(), env.cw.clone(), sw.clone(), c.green.clone());
        tokio::spawn(async move {
            loop {
                let f = bluegreen::serving(&elb, &sw).await.unwrap();
                if bluegreen::live_group(&f) == Some(green.as_str()) {
                    cw.set_alarm_state()
                        .alarm_name(ALARM)
                        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                        .state_reason("5xx after the switch")
                        .send()
                        .await
                        .unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let watch = LiveWatch::start(&env, true).await;
    let report = deploy(&env, &p, &user_only(2)).await.unwrap();
    let changes = watch.finish().await;
    trigger.await.unwrap();
    assert_eq!(rolled_back(&report).reason, Reason::Alarm, "{:?}", report.ended);
    assert_eq!(history(&p).await[0].status, ReleaseStatus::RolledBack);
    // Production is back on blue, which never changed: same task definition, size, deployment.
    assert!(changes.is_empty(), "the live colour changed: {changes:?}");
    assert_eq!(serves(&env, &sw).await, c.blue);
    let (blue_td, blue_desired, _) = blue_state(&env).await;
    assert_eq!((blue_td.as_str(), blue_desired), (env.initial["user"].as_str(), 2));
    assert_eq!(env.service("shop-user-green").await.desired_count(), 0);
    let preview = bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: Some(c.preview) };
    assert_eq!(serves(&env, &preview).await, c.green, "the preview rule is never the switch");
}

#[tokio::test]
async fn a_pair_whose_production_rule_is_not_named_is_refused_before_any_change() {
    // A production path rule and a preview rule, neither named, and no default action to the
    // pair: which one carries production cannot be told.
    let env = EcsEnv::start(Options { colours: Some("user"), ..Options::default() }).await;
    let c = env.colours.clone().unwrap();
    let mut unnamed = env.env.clone();
    let Target::Ecs(t) = &mut unnamed.target else { panic!("an ECS environment") };
    t.production_rules.clear();
    let p = EcsPlatform::new(&env.sdk, &env.config, &unnamed).unwrap();
    let blue_before = blue_state(&env).await;
    let green_before = env.service("shop-user-green").await;
    let families = || async {
        env.ecs
            .list_task_definitions()
            .family_prefix("shop-user-test")
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .len()
    };
    let tds_before = families().await;

    let Err(EngineError::Platform(err)) = deploy(&env, &p, &user_only(2)).await else {
        panic!("expected a setup refusal")
    };
    let PlatformError::Setup { message, hint, .. } = &err else {
        panic!("expected a setup refusal, got {err:?}")
    };
    assert!(message.contains("cannot tell which colour of `user` is live"), "{message}");
    assert!(message.contains(&format!("rule {}", c.production.as_deref().unwrap())), "{message}");
    assert!(message.contains(&format!("rule {}", c.preview)), "{message}");
    assert!(hint.contains("target.ecs.production_rules"), "{hint}");
    assert_eq!(deployer::Error::from(err).exit_code(), deployer::ExitCode::Config);

    // Nothing changed: both colours, both rules, no task definition registered.
    assert_eq!(blue_state(&env).await, blue_before);
    let green = env.service("shop-user-green").await;
    assert_eq!(
        (green.task_definition(), green.desired_count(), green.deployments().len()),
        (green_before.task_definition(), 0, green_before.deployments().len())
    );
    assert_eq!(serves(&env, &production(&env)).await, c.blue);
    let preview =
        bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: Some(c.preview.clone()) };
    assert_eq!(serves(&env, &preview).await, c.green);
    assert_eq!(families().await, tds_before);
}
