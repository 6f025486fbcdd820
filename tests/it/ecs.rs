//! ECS deploys against moto + the ECS controller (tests/fakes/moto_ecs.py): rolling deploys
//! followed by deployment id, fail-fast on crashing tasks, ECS's own circuit-breaker rollback
//! reported as a failure, alarms during the bake, release records and manual rollback, the ALB
//! listener switch and switch-back, and task definitions that are never deregistered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deployer::engine::{self, Ended, EngineError};
use deployer::events::{Event, Recorder};
use deployer::model::Reason;
use deployer::platform::Platform;
use deployer::platform::ecs::{EcsPlatform, bluegreen};
use deployer::release::{Release, ReleaseStatus};

use crate::support::ecs_env::{self, ALARM, CLUSTER, EcsEnv, Options, SERVICES, image, images};

fn platform(env: &EcsEnv) -> EcsPlatform {
    EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap()
}

fn id(n: u32) -> String {
    format!("test.{n}")
}

/// What one service's apply did, as deployer reported it ("updating TARGET to REVISION
/// (deployment HANDLE)" / "TARGET already runs REVISION").
#[derive(Debug, Clone)]
pub struct Applied {
    pub service: String,
    pub target: String,
    pub revision: String,
    pub handle: String,
    pub changed: bool,
}

/// A deploy's outcome and what it applied (for rollbacks: what the rollback applied too).
pub struct Report {
    pub ended: Ended,
    pub applied: Vec<Applied>,
}

fn applied_of(events: &[Event]) -> Vec<Applied> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Service { service, message, .. } => {
                if let Some(rest) = message.strip_prefix("updating ") {
                    let (target, rest) = rest.split_once(" to ")?;
                    let (revision, rest) = rest.split_once(" (deployment ")?;
                    Some(Applied {
                        service: service.clone(),
                        target: target.to_owned(),
                        revision: revision.to_owned(),
                        handle: rest.trim_end_matches(')').to_owned(),
                        changed: true,
                    })
                } else {
                    let (target, revision) = message.split_once(" already runs ")?;
                    Some(Applied {
                        service: service.clone(),
                        target: target.to_owned(),
                        revision: revision.trim_end_matches(": nothing to roll out").to_owned(),
                        handle: String::new(),
                        changed: false,
                    })
                }
            }
            _ => None,
        })
        .collect()
}

/// Deploys `imgs` (service → image pinned by digest) through the engine, with the environment's
/// settings, as `deployer deploy` does.
pub async fn deploy(
    env: &EcsEnv,
    p: &EcsPlatform,
    imgs: &BTreeMap<String, String>,
) -> Result<Report, EngineError> {
    let inputs = deployer::plan::Inputs {
        images: imgs.clone(),
        services: imgs.keys().cloned().collect(),
        ..Default::default()
    };
    let mut inputs = inputs;
    inputs.pinned =
        imgs.keys().filter_map(|s| Some((s.clone(), deployer::plan::prebuilt_digest(&inputs, s)?))).collect();
    let planned = deployer::pipeline::planned(&env.config, &env.env, &inputs, &|_| None).await.unwrap();
    let settings = settings(env);
    let rec = Recorder::default();
    let ended = engine::deploy(p, &settings, planned, &rec).await?;
    Ok(Report { applied: applied_of(&rec.events()), ended })
}

/// [`deploy`] with changed settings; also returns what was said.
pub async fn deploy_with(
    env: &EcsEnv,
    p: &EcsPlatform,
    imgs: &BTreeMap<String, String>,
    change: impl FnOnce(&mut engine::Settings),
) -> (Result<Report, EngineError>, Vec<Event>) {
    let mut inputs = deployer::plan::Inputs {
        images: imgs.clone(),
        services: imgs.keys().cloned().collect(),
        pinned: BTreeMap::new(),
        ..Default::default()
    };
    inputs.pinned =
        imgs.keys().filter_map(|s| Some((s.clone(), deployer::plan::prebuilt_digest(&inputs, s)?))).collect();
    let planned = deployer::pipeline::planned(&env.config, &env.env, &inputs, &|_| None).await.unwrap();
    let mut settings = settings(env);
    change(&mut settings);
    let rec = Recorder::default();
    let ended = engine::deploy(p, &settings, planned, &rec).await;
    let events = rec.events();
    (ended.map(|ended| Report { applied: applied_of(&events), ended }), events)
}

fn settings(env: &EcsEnv) -> engine::Settings {
    let mut s = deployer::pipeline::settings_for(&env.config, &env.env, Some(&env.sdk), Some("octocat"));
    s.lock_wait = Duration::from_secs(5);
    s
}

pub fn rolled_back(r: &Report) -> &deployer::model::Failure {
    match &r.ended {
        Ended::RolledBack { failure, .. } => failure,
        other => panic!("expected a rolled-back release, got {other:?}"),
    }
}

pub async fn history(p: &EcsPlatform) -> Vec<Release> {
    let mut h = p.history().await.unwrap();
    h.reverse();
    h
}

/// The `family:revision` a service runs (ECS answers with the ARN, or with what it was given).
async fn task_definition_of(env: &EcsEnv, service: &str) -> String {
    revision(env.service(&format!("shop-{service}")).await.task_definition().unwrap())
}

fn revision(td: &str) -> String {
    td.rsplit('/').next().unwrap_or(td).to_owned()
}

/// Every task definition a service runs, is known-good for, or that the history names is ACTIVE.
async fn assert_nothing_in_use_deregistered(env: &EcsEnv, p: &EcsPlatform) {
    let mut in_use = BTreeSet::new();
    for s in SERVICES {
        // Blue/green services are a pair of colours; the others one ECS service.
        for target in [format!("shop-{s}"), format!("shop-{s}-blue"), format!("shop-{s}-green")] {
            let found = env.ecs.describe_services().cluster(CLUSTER).services(&target).send().await.unwrap();
            let Some(svc) = found.services().first() else { continue };
            in_use.extend(svc.task_definition().map(str::to_owned));
            in_use.extend(env.tags(&target).await.get("deployer:known-good").cloned());
        }
    }
    for r in p.history().await.unwrap() {
        in_use.extend(r.services.values().filter_map(|s| s.revision.clone()));
    }
    in_use.extend(env.initial.values().cloned());
    assert!(!in_use.is_empty());
    for td in in_use {
        assert_eq!(env.task_definition_status(&td).await, "ACTIVE", "{td} was deregistered");
    }
}

fn applied<'a>(r: &'a Report, service: &str) -> &'a Applied {
    r.applied
        .iter()
        .find(|a| a.service == service)
        .unwrap_or_else(|| panic!("{service} not applied: {:?}", r.applied))
}

#[tokio::test]
async fn healthy_rolling_deploy_of_four_services_is_recorded_as_known_good() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let before: BTreeMap<String, String> =
        env.initial.iter().map(|(s, td)| (s.clone(), td.clone())).collect();
    let report = deploy(&env, &p, &images(2)).await.unwrap();
    assert!(matches!(report.ended, Ended::Succeeded(_)), "{:?}", report.ended);
    assert_eq!(report.applied.len(), 4);
    for a in &report.applied {
        assert!(a.changed, "{a:?}");
        assert_ne!(a.revision, before[&a.service]);
        assert_eq!(task_definition_of(&env, &a.service).await, revision(&a.revision));
        let tags = env.tags(&a.target).await;
        assert_eq!(tags["deployer:known-good"], a.revision);
        assert_eq!(tags["deployer:known-good-release"], "test.1");
        // The rendered template went through verbatim, pinned by digest.
        let td = env.ecs.describe_task_definition().task_definition(&a.revision).send().await.unwrap();
        let td = td.task_definition().unwrap();
        assert_eq!(td.container_definitions()[0].image(), Some(image(&a.service, None, 2).as_str()));
        assert_eq!(td.family(), Some(format!("shop-{}-test", a.service).as_str()));
    }
    // `order` depends on `user`: its deployment started only after user's completed.
    let deployment = |svc: aws_sdk_ecs::types::Service, id: String| {
        svc.deployments().iter().find(|d| d.id() == Some(id.as_str())).unwrap().clone()
    };
    let user = deployment(env.service("shop-user").await, applied(&report, "user").handle.clone());
    let order = deployment(env.service("shop-order").await, applied(&report, "order").handle.clone());
    assert!(order.created_at().unwrap() >= user.updated_at().unwrap(), "{user:?} {order:?}");
    let history = history(&p).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, ReleaseStatus::Succeeded);
    assert_eq!(history[0].actor.as_deref(), Some("octocat"));
    assert_eq!(history[0].services.len(), 4);
    assert!(history[0].services["order"].image.ends_with(&*format!("@sha256:{}", "02".repeat(32))));

    // The same images again: nothing registered, nothing rolled out.
    let before = env.ecs.list_task_definitions().family_prefix("shop-user-test").send().await.unwrap();
    let again = deploy(&env, &p, &images(2)).await.unwrap();
    assert!(again.applied.iter().all(|a| !a.changed), "{:?}", again.applied);
    let after = env.ecs.list_task_definitions().family_prefix("shop-user-test").send().await.unwrap();
    assert_eq!(before.task_definition_arns(), after.task_definition_arns());
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn crashloop_fails_fast_and_rolls_back_to_the_known_good_task_definition() {
    // No circuit breaker: only deployer's own fail-fast can notice.
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let good = deploy(&env, &p, &images(2)).await.unwrap();
    let good_user = applied(&good, "user").revision.clone();
    let good_order = applied(&good, "order").handle.clone();

    let mut bad = images(3);
    bad.insert("user".into(), image("user", Some("crashloop"), 3));
    let report = deploy(&env, &p, &bad).await.unwrap();
    let failure = rolled_back(&report);
    assert_eq!(failure.service.as_deref(), Some("user"));
    assert_eq!(failure.reason, Reason::CrashLoop, "{failure}");
    assert!(failure.detail.contains("Essential container in task exited"), "{failure}");
    assert!(failure.detail.contains("exit code 1"), "{failure}");
    let err = Result::<Release, deployer::Error>::from(report.ended.clone()).unwrap_err();
    assert_eq!(err.exit_code(), deployer::ExitCode::RolledBack);

    // Every service of the release is back on the recorded known-good revision (not "−1").
    assert_eq!(task_definition_of(&env, "user").await, revision(&good_user));
    for a in &good.applied {
        assert_eq!(task_definition_of(&env, &a.service).await, revision(&a.revision), "{}", a.service);
        let s = env.service(&a.target).await;
        assert_eq!(s.deployments().len(), 1, "{:?}", s.deployments());
    }
    // `order` depends on the failed `user`: it was never touched.
    let order = env.service("shop-order").await;
    assert_eq!(order.deployments().len(), 1);
    assert_eq!(order.deployments()[0].id(), Some(good_order.as_str()));
    let history = history(&p).await;
    assert_eq!(history[0].id, id(2));
    assert_eq!(history[0].status, ReleaseStatus::RolledBack);
    assert_eq!(history[0].rolled_back_to.as_deref(), Some("test.1"));
    // The failed release did not become known-good.
    assert_eq!(env.tags("shop-user").await["deployer:known-good"], good_user);
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn ecs_circuit_breaker_rollback_is_reported_as_a_failure() {
    let env = EcsEnv::start(Options { circuit_breaker: Some((true, true)), ..Options::default() }).await;
    // A slow poll lets ECS's circuit breaker trip and roll back before deployer looks again:
    // the case where the peers report success because the service is "stable" again.
    let p = platform(&env).with_poll_interval(Duration::from_secs(3));
    let good = deploy(&env, &p, &images(2)).await.unwrap();
    let good_user = applied(&good, "user").revision.clone();

    let mut bad = BTreeMap::new();
    bad.insert("user".to_owned(), image("user", Some("crashloop"), 3));
    let report = deploy(&env, &p, &bad).await.unwrap();
    let failure = rolled_back(&report);
    assert_eq!(failure.reason, Reason::RolledBackByPlatform, "ECS's rollback not reported: {failure}");
    assert!(failure.detail.contains("failed"), "{failure}");
    assert!(failure.detail.contains(&good_user), "{failure}");
    assert_eq!(task_definition_of(&env, "user").await, revision(&good_user));
    assert_eq!(history(&p).await[0].status, ReleaseStatus::RolledBack);
    // Deployer changed task definitions only: the circuit breaker is configured as before.
    let svc = env.service("shop-user").await;
    let cb = svc.deployment_configuration().unwrap().deployment_circuit_breaker().unwrap();
    assert!(cb.enable() && cb.rollback(), "{cb:?}");
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn image_pull_failure_fails_fast() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let mut bad = BTreeMap::new();
    bad.insert("payment".to_owned(), image("payment", Some("imagepull"), 3));
    let report = deploy(&env, &p, &bad).await.unwrap();
    let failure = rolled_back(&report);
    assert_eq!(failure.reason, Reason::ImagePull, "{failure}");
    assert!(failure.detail.contains("CannotPullContainerError"), "{failure}");
    // No release recorded yet: back to what ran before.
    assert_eq!(task_definition_of(&env, "payment").await, revision(&env.initial["payment"]));
}

#[tokio::test]
async fn failing_http_check_during_the_bake_rolls_back() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let env = EcsEnv::start(Options {
        health: format!("{{ bake_time: 60s, http: [{{ url: \"{}/healthz\" }}] }}", server.uri()),
        ..Options::default()
    })
    .await;
    let p = platform(&env).with_poll_interval(Duration::from_millis(300));
    let mut one = BTreeMap::new();
    one.insert("payment".to_owned(), image("payment", None, 2));
    let report = deploy(&env, &p, &one).await.unwrap();
    let failure = rolled_back(&report);
    assert_eq!(failure.reason, Reason::HttpCheck, "{failure}");
    assert!(failure.detail.contains("returned 503, expected 200 (3 times in a row)"), "{failure}");
    assert_eq!(task_definition_of(&env, "payment").await, revision(&env.initial["payment"]));
    // The check ran only once the rollout was complete: exactly the three failing samples.
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_alarm_in_alarm_during_the_bake_rolls_back() {
    let env = EcsEnv::start(Options {
        health: format!("{{ bake_time: 60s, alarms: [{ALARM}] }}"),
        ..Options::default()
    })
    .await;
    env.alarm(ALARM).await;
    let p = platform(&env);
    // Fire the alarm once the rollout completed, i.e. during the bake.
    let watcher = {
        let ecs = env.ecs.clone();
        let cw = env.cw.clone();
        tokio::spawn(async move {
            loop {
                let s =
                    ecs.describe_services().cluster(CLUSTER).services("shop-payment").send().await.unwrap();
                let deps = s.services()[0].deployments();
                let fresh = deps.len() == 1
                    && deps[0].rollout_state().map(aws_sdk_ecs::types::DeploymentRolloutState::as_str)
                        == Some("COMPLETED")
                    && deps[0].task_definition().is_some_and(|t| !t.ends_with(":1"));
                if fresh {
                    cw.set_alarm_state()
                        .alarm_name(ALARM)
                        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                        .state_reason("5xx during bake")
                        .send()
                        .await
                        .unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut one = BTreeMap::new();
    one.insert("payment".to_owned(), image("payment", None, 2));
    let report = deploy(&env, &p, &one).await.unwrap();
    watcher.await.unwrap();
    let failure = rolled_back(&report);
    assert_eq!(failure.reason, Reason::Alarm, "{failure}");
    assert!(failure.subject.contains(ALARM), "{failure}");
    // No release was recorded as known-good yet: back to what ran before.
    assert_eq!(task_definition_of(&env, "payment").await, revision(&env.initial["payment"]));
    assert!(!env.tags("shop-payment").await.contains_key("deployer:known-good"));
    assert_nothing_in_use_deregistered(&env, &p).await;
}

async fn rollback(p: &EcsPlatform, env: &EcsEnv, to: Option<&str>) -> Result<Report, EngineError> {
    let mut s = settings(env);
    s.actor = Some("ops".into());
    let rec = Recorder::default();
    let ended = engine::rollback(p, &s, to, &rec).await?;
    Ok(Report { applied: applied_of(&rec.events()), ended })
}

#[tokio::test]
async fn manual_rollback_to_an_older_release_and_back() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let r1 = deploy(&env, &p, &images(2)).await.unwrap();
    let r2 = deploy(&env, &p, &images(3)).await.unwrap();
    let rev = |r: &Report, s: &str| revision(&applied(r, s).revision);

    let report = rollback(&p, &env, Some(&id(1))).await.unwrap();
    let Ended::Succeeded(rel) = &report.ended else { panic!("{:?}", report.ended) };
    assert_eq!(rel.rolled_back_to.as_deref(), Some("test.1"));
    for s in SERVICES {
        assert_eq!(task_definition_of(&env, s).await, rev(&r1, s), "{s}");
        assert_eq!(revision(&env.tags(&format!("shop-{s}")).await["deployer:known-good"]), rev(&r1, s));
    }
    let h = history(&p).await;
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].actor.as_deref(), Some("ops"));
    assert_eq!(h[0].status, ReleaseStatus::Succeeded);
    assert_eq!(h[0].rolled_back_to.as_deref(), Some("test.1"));

    // The release rolled back from is no longer known-good: a rollback without a target goes
    // further back from test.1 (nothing is older), never forward to test.2.
    assert_eq!(h.iter().find(|r| r.id == id(2)).map(|r| r.status), Some(ReleaseStatus::RolledBack));
    let Err(nothing) = rollback(&p, &env, None).await else { panic!("rolled forward") };
    assert!(matches!(nothing, EngineError::NothingToRollBackTo), "{nothing}");
    assert_eq!(deployer::Error::from(nothing).exit_code(), deployer::ExitCode::Config);
    for s in SERVICES {
        assert_eq!(task_definition_of(&env, s).await, rev(&r1, s), "{s}");
    }
    let _ = r2;

    let Err(unknown) = rollback(&p, &env, Some("nope")).await else {
        panic!("an unknown release was accepted")
    };
    assert!(unknown.to_string().contains("release `nope` is not recorded"), "{unknown}");
    let unknown = deployer::Error::from(unknown);
    assert_eq!(unknown.exit_code(), deployer::ExitCode::Config);
    let shown = unknown.problems()[0].to_string();
    assert!(shown.contains("hint: releases that succeeded: test.1, test.3"), "{shown}");
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn listener_switches_to_the_green_target_group_and_back() {
    let env = EcsEnv::start(Options::default()).await;
    let green = ecs_env::new_target_group(&env, "shop-test-user-green").await;
    let blue = env.target_groups["user"].clone();
    let sw = bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: None };
    let elb = platform(&env).elb().clone();

    let before = bluegreen::serving(&elb, &sw).await.unwrap();
    assert_eq!(bluegreen::live_group(&before), Some(blue.as_str()));
    // Blue's targets are the user service's healthy tasks.
    bluegreen::wait_healthy(&elb, &blue, 2, Duration::from_secs(10), Duration::from_millis(200))
        .await
        .unwrap();

    let previous = bluegreen::switch_to(&elb, &sw, &green).await.unwrap();
    assert_eq!(previous, before);
    let now = bluegreen::serving(&elb, &sw).await.unwrap();
    assert_eq!(bluegreen::live_group(&now), Some(green.as_str()));
    assert!(now.contains(&(blue.clone(), 0)), "{now:?}");

    bluegreen::restore(&elb, &sw, &previous).await.unwrap();
    let back = bluegreen::serving(&elb, &sw).await.unwrap();
    assert_eq!(bluegreen::live_group(&back), Some(blue.as_str()));

    // Green has no targets: waiting for it times out with a message that says so.
    let err =
        bluegreen::wait_healthy(&elb, &green, 1, Duration::from_millis(300), Duration::from_millis(100))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("0 of 1 targets healthy"), "{err}");
}

#[tokio::test]
async fn native_blue_green_is_followed_by_deployment_id_through_the_bake() {
    let env = EcsEnv::start(Options { blue_green: Some("user"), ..Options::default() }).await;
    let (green, rule) = env.blue_green.clone().unwrap();
    let p = platform(&env);
    let mut one = BTreeMap::new();
    one.insert("user".to_owned(), image("user", None, 2));
    let report = deploy(&env, &p, &one).await.unwrap();
    assert!(matches!(report.ended, Ended::Succeeded(_)), "{:?}", report.ended);
    let a = applied(&report, "user");
    // Returned only once ECS finished ITS bake: our deployment is the only one, COMPLETED.
    let s = env.service("shop-user").await;
    assert_eq!(s.deployments().len(), 1, "{:?}", s.deployments());
    assert_eq!(s.deployments()[0].id(), Some(a.handle.as_str()));
    assert_eq!(
        s.deployments()[0].rollout_state().map(aws_sdk_ecs::types::DeploymentRolloutState::as_str),
        Some("COMPLETED")
    );
    // ECS shifted production traffic to green.
    let sw = bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: Some(rule) };
    let serving = bluegreen::serving(p.elb(), &sw).await.unwrap();
    assert_eq!(bluegreen::live_group(&serving), Some(green.as_str()), "{serving:?}");
    assert_eq!(env.tags("shop-user").await["deployer:known-good"], a.revision);
}

/// ECS's own bake (1 min x 0.2 = 12 s here) is longer than deployer's rollout timeout (8 s):
/// the bake is ECS keeping the old revision, not the new one failing to get healthy, so it is
/// not counted; each lifecycle stage is progress users see.
#[tokio::test]
async fn native_blue_green_bake_does_not_count_against_the_rollout_timeout() {
    let env = EcsEnv::start(Options { blue_green: Some("user"), ..Options::default() }).await;
    let p = platform(&env);
    let one = BTreeMap::from([("user".to_owned(), image("user", None, 2))]);
    let (report, events) = deploy_with(&env, &p, &one, |s| s.rollout_timeout = Duration::from_secs(8)).await;
    let report = report.unwrap();
    assert!(matches!(report.ended, Ended::Succeeded(_)), "{:?}", report.ended);
    let stages: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service { message, .. } => message.strip_prefix("ecs blue/green: "),
            _ => None,
        })
        .collect();
    assert!(stages.iter().any(|s| s.starts_with("BAKE_TIME")), "{stages:?}");
}

async fn rule_serves(env: &EcsEnv, rule: &str) -> String {
    let sw = bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: Some(rule.to_owned()) };
    let serving = bluegreen::serving(&env.elb, &sw).await.unwrap();
    bluegreen::live_group(&serving).unwrap().to_owned()
}

#[tokio::test]
async fn deployer_blue_green_switches_once_green_is_healthy_then_scales_blue_down() {
    let env = EcsEnv::start(Options { colours: Some("user"), ..Options::default() }).await;
    let c = env.colours.clone().unwrap();
    let (blue_group, green_group, rule) = (c.blue, c.green, c.production.unwrap());
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    let p = platform(&env);
    // One release: `user` blue/green by deployer, the other three rolling.
    let report = deploy(&env, &p, &images(2)).await.unwrap();
    assert!(matches!(report.ended, Ended::Succeeded(_)), "{:?}", report.ended);
    let user = applied(&report, "user");
    assert_eq!(user.target, "shop-user-green");
    assert_eq!(rule_serves(&env, &rule).await, green_group);
    assert_eq!(env.service("shop-user-green").await.task_definition(), Some(user.revision.as_str()));
    assert_eq!(env.service("shop-user-blue").await.desired_count(), 0);
    // Records on both colours; the next deploy goes to blue.
    assert_eq!(env.tags("shop-user-blue").await["deployer:known-good"], user.revision);
    assert_eq!(env.tags("shop-user-green").await["deployer:known-good"], user.revision);
    let next = deploy(&env, &p, &images(3)).await.unwrap();
    let user = applied(&next, "user");
    assert_eq!(user.target, "shop-user-blue");
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    assert_eq!(env.service("shop-user-green").await.desired_count(), 0);
    assert_eq!(
        p.running().await.unwrap()["user"].live,
        [env.service("shop-user-blue").await.task_definition().unwrap().rsplit('/').next().unwrap()]
    );
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn deployer_blue_green_rollback_switches_back_to_the_kept_colour() {
    let env = EcsEnv::start(Options {
        colours: Some("user"),
        health: format!("{{ bake_time: 60s, alarms: [{ALARM}] }}"),
        ..Options::default()
    })
    .await;
    env.alarm(ALARM).await;
    let c = env.colours.clone().unwrap();
    let (blue_group, green_group, rule) = (c.blue, c.green, c.production.unwrap());
    let blue_before = env.service("shop-user-blue").await;
    let blue_deployment = blue_before.deployments()[0].id().unwrap().to_owned();
    let p = platform(&env);
    // Fire the alarm once traffic is on green, i.e. during the bake.
    let trigger = {
        let elb = env.elb.clone();
        let cw = env.cw.clone();
        let sw =
            bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: Some(rule.clone()) };
        let green_group = green_group.clone();
        tokio::spawn(async move {
            loop {
                let serving = bluegreen::serving(&elb, &sw).await.unwrap();
                if bluegreen::live_group(&serving) == Some(green_group.as_str()) {
                    cw.set_alarm_state()
                        .alarm_name(ALARM)
                        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                        .state_reason("5xx after the switch")
                        .send()
                        .await
                        .unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut one = BTreeMap::new();
    one.insert("user".to_owned(), image("user", None, 2));
    let report = deploy(&env, &p, &one).await.unwrap();
    trigger.await.unwrap();
    assert_eq!(rolled_back(&report).reason, Reason::Alarm, "{:?}", report.ended);
    // Switched back to blue, whose tasks were kept: same deployment, no new tasks.
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    let blue = env.service("shop-user-blue").await;
    assert_eq!(blue.deployments().len(), 1);
    assert_eq!(blue.deployments()[0].id(), Some(blue_deployment.as_str()));
    assert_eq!(blue.task_definition(), Some(env.initial["user"].as_str()));
    assert_eq!(env.service("shop-user-green").await.desired_count(), 0);
    assert_eq!(history(&p).await[0].status, ReleaseStatus::RolledBack);
}

#[tokio::test]
async fn deployer_blue_green_crashloop_never_gets_traffic() {
    let env = EcsEnv::start(Options { colours: Some("user"), ..Options::default() }).await;
    let c = env.colours.clone().unwrap();
    let (blue_group, rule) = (c.blue, c.production.unwrap());
    let p = platform(&env);
    let mut one = BTreeMap::new();
    one.insert("user".to_owned(), image("user", Some("crashloop"), 2));
    let report = deploy(&env, &p, &one).await.unwrap();
    assert_eq!(rolled_back(&report).reason, Reason::CrashLoop, "{:?}", report.ended);
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    assert_eq!(env.service("shop-user-green").await.desired_count(), 0);
    assert_eq!(env.service("shop-user-blue").await.task_definition(), Some(env.initial["user"].as_str()));
}

#[tokio::test]
async fn a_rollback_that_does_not_become_healthy_is_exit_6() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let good = deploy(&env, &p, &images(2)).await.unwrap();
    assert!(matches!(good.ended, Ended::Succeeded(_)));
    // The recorded known-good revision no longer works (say, a secret it reads was deleted):
    // emulated by pointing the record of test.1 at a crash-looping task definition.
    let broken = env.register_plain("user", &image("user", Some("crashloop"), 7)).await;
    let family_revision = broken.rsplit('/').next().unwrap().to_owned();
    let arn = env.service("shop-user").await.service_arn().unwrap().to_owned();
    let tags = env.tags("shop-user").await;
    let record = tags["deployer:release:test.1"].clone();
    let mut parts: Vec<&str> = record.split(' ').collect();
    parts[3] = &family_revision;
    env.ecs
        .tag_resource()
        .resource_arn(arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder().key("deployer:release:test.1").value(parts.join(" ")).build(),
        )
        .send()
        .await
        .unwrap();
    let mut bad = BTreeMap::new();
    bad.insert("user".to_owned(), image("user", Some("imagepull"), 3));
    let report = deploy(&env, &p, &bad).await.unwrap();
    let Ended::RollbackFailed { failure, why, .. } = &report.ended else { panic!("{:?}", report.ended) };
    assert_eq!(failure.reason, Reason::ImagePull, "{failure}");
    assert!(why.contains("Essential container in task exited"), "{why}");
    let err = Result::<Release, deployer::Error>::from(report.ended.clone()).unwrap_err();
    assert_eq!(err.exit_code(), deployer::ExitCode::RollbackFailed);
    assert_eq!(history(&p).await[0].status, ReleaseStatus::Failed);
}
