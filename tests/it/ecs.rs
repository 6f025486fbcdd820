//! ECS deploys against moto + the ECS controller (tests/fakes/moto_ecs.py): rolling deploys
//! followed by deployment id, fail-fast on crashing tasks, ECS's own circuit-breaker rollback
//! reported as a failure, alarms during the bake, release records and manual rollback, the ALB
//! listener switch and switch-back, and task definitions that are never deregistered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deployer::events::Recorder;
use deployer::health::{Cause, HealthPolicy};
use deployer::platform::ecs::{self, EcsPlatform, bluegreen};
use deployer::platform::{self, Outcome, PlatformError, ReleaseId};

use crate::support::ecs_env::{self, ALARM, CLUSTER, EcsEnv, Options, SERVICES, image, images};

fn platform(env: &EcsEnv) -> EcsPlatform {
    EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap()
}

fn id(n: u32) -> ReleaseId {
    ReleaseId(format!("20261123T0{n}0000Z-r{n}"))
}

async fn deploy(
    env: &EcsEnv,
    p: &EcsPlatform,
    release: &ReleaseId,
    imgs: &BTreeMap<String, String>,
) -> Result<platform::DeployReport, PlatformError> {
    let plan = p.release_plan(release.clone(), "octocat", imgs).unwrap();
    let policy = HealthPolicy::from_environment(&env.env);
    platform::deploy(p, &plan, &policy, &Recorder::default()).await
}

async fn task_definition_of(env: &EcsEnv, service: &str) -> String {
    env.service(&format!("shop-{service}")).await.task_definition().unwrap().to_owned()
}

/// Every task definition a service runs, is known-good for, or that the history names is ACTIVE.
async fn assert_nothing_in_use_deregistered(env: &EcsEnv, p: &EcsPlatform) {
    let live = ecs::status(p).await.unwrap();
    let mut in_use = BTreeSet::new();
    for s in live.services.values() {
        in_use.extend(s.revision.clone());
        in_use.extend(s.known_good.clone());
    }
    for r in &live.releases {
        in_use.extend(r.services.values().map(|s| s.revision.clone()));
    }
    in_use.extend(env.initial.values().cloned());
    assert!(!in_use.is_empty());
    for td in in_use {
        assert_eq!(env.task_definition_status(&td).await, "ACTIVE", "{td} was deregistered");
    }
}

#[tokio::test]
async fn healthy_rolling_deploy_of_four_services_is_recorded_as_known_good() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let report = deploy(&env, &p, &id(1), &images(2)).await.unwrap();
    assert!(report.verdict.is_healthy());
    assert_eq!(report.applied.services.len(), 4);
    for a in &report.applied.services {
        assert!(a.changed, "{a:?}");
        assert_eq!(a.previous.as_deref(), Some(env.initial[&a.service].as_str()));
        assert_eq!(task_definition_of(&env, &a.service).await, a.revision);
        let tags = env.tags(&a.target).await;
        assert_eq!(tags["deployer:known-good"], a.revision);
        assert_eq!(tags["deployer:known-good-release"], "20261123T010000Z-r1");
        // The rendered template went through verbatim, pinned by digest.
        let td = env.ecs.describe_task_definition().task_definition(&a.revision).send().await.unwrap();
        let td = td.task_definition().unwrap();
        assert_eq!(td.container_definitions()[0].image(), Some(image(&a.service, None, 2).as_str()));
        assert_eq!(td.family(), Some(format!("shop-{}-test", a.service).as_str()));
    }
    // `order` depends on `user`: its deployment started only after user's completed.
    let handle = |s: &str| report.applied.services.iter().find(|a| a.service == s).unwrap().handle.clone();
    let deployment = |svc: aws_sdk_ecs::types::Service, id: String| {
        svc.deployments().iter().find(|d| d.id() == Some(id.as_str())).unwrap().clone()
    };
    let user = deployment(env.service("shop-user").await, handle("user"));
    let order = deployment(env.service("shop-order").await, handle("order"));
    assert!(order.created_at().unwrap() >= user.updated_at().unwrap(), "{user:?} {order:?}");
    let history = ecs::history(&p).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, Outcome::Succeeded);
    assert_eq!(history[0].actor, "octocat");
    assert_eq!(history[0].services.len(), 4);
    assert_eq!(history[0].services["order"].digest.as_deref(), Some(&*format!("sha256:{}", "02".repeat(32))));

    // The same images again: nothing registered, nothing rolled out.
    let before = env.ecs.list_task_definitions().family_prefix("shop-user-test").send().await.unwrap();
    let again = deploy(&env, &p, &id(2), &images(2)).await.unwrap();
    assert!(again.applied.services.iter().all(|a| !a.changed), "{:?}", again.applied);
    let after = env.ecs.list_task_definitions().family_prefix("shop-user-test").send().await.unwrap();
    assert_eq!(before.task_definition_arns(), after.task_definition_arns());
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn crashloop_fails_fast_and_rolls_back_to_the_known_good_task_definition() {
    // No circuit breaker: only deployer's own fail-fast can notice.
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let good = deploy(&env, &p, &id(1), &images(2)).await.unwrap();
    let good_user = good.applied.services.iter().find(|a| a.service == "user").unwrap().revision.clone();
    let good_order = good.applied.services.iter().find(|a| a.service == "order").unwrap().handle.clone();

    let mut bad = images(3);
    bad.insert("user".into(), image("user", Some("crashloop"), 3));
    let err = deploy(&env, &p, &id(2), &bad).await.unwrap_err();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    let unit =
        failures.iter().find(|f| f.cause == Cause::UnitFailed).unwrap_or_else(|| panic!("{failures:?}"));
    assert_eq!(unit.service.as_deref(), Some("user"));
    assert!(unit.reason.contains("Essential container in task exited"), "{unit:?}");
    assert!(unit.reason.contains("exit code 1"), "{unit:?}");
    assert_eq!(deployer::Error::from(err).exit_code(), deployer::ExitCode::RolledBack);

    // Every service of the release is back on the recorded known-good revision (not "−1").
    assert_eq!(task_definition_of(&env, "user").await, good_user);
    for a in &good.applied.services {
        assert_eq!(task_definition_of(&env, &a.service).await, a.revision, "{}", a.service);
        let s = env.service(&a.target).await;
        assert_eq!(s.deployments().len(), 1, "{:?}", s.deployments());
    }
    // `order` depends on the failed `user`: it was never touched.
    let order = env.service("shop-order").await;
    assert_eq!(order.deployments().len(), 1);
    assert_eq!(order.deployments()[0].id(), Some(good_order.as_str()));
    let history = ecs::history(&p).await.unwrap();
    assert_eq!(history[0].id.as_str(), "20261123T020000Z-r2");
    assert_eq!(history[0].outcome, Outcome::RolledBack);
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
    let good = deploy(&env, &p, &id(1), &images(2)).await.unwrap();
    let good_user = good.applied.services.iter().find(|a| a.service == "user").unwrap().revision.clone();

    let mut bad = BTreeMap::new();
    bad.insert("user".to_owned(), image("user", Some("crashloop"), 3));
    let err = deploy(&env, &p, &id(2), &bad).await.unwrap_err();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    let by_ecs = failures
        .iter()
        .find(|f| f.cause == Cause::RolledBackByPlatform)
        .unwrap_or_else(|| panic!("ECS's rollback not reported: {failures:?}"));
    assert!(by_ecs.reason.contains("failed"), "{by_ecs:?}");
    assert!(by_ecs.reason.contains(&good_user), "{by_ecs:?}");
    assert_eq!(task_definition_of(&env, "user").await, good_user);
    assert_eq!(ecs::history(&p).await.unwrap()[0].outcome, Outcome::RolledBack);
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
    bad.insert("order".to_owned(), image("order", Some("imagepull"), 3));
    let err = deploy(&env, &p, &id(1), &bad).await.unwrap_err();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    assert_eq!(failures[0].cause, Cause::UnitFailed, "{failures:?}");
    assert!(failures[0].reason.contains("CannotPullContainerError"), "{failures:?}");
    assert_eq!(task_definition_of(&env, "order").await, env.initial["order"]);
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
    let err = deploy(&env, &p, &id(1), &one).await.unwrap_err();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    assert_eq!(failures[0].cause, Cause::Http, "{failures:?}");
    assert!(
        failures[0].reason.contains("failed 3 times in a row: returned 503, expected 200"),
        "{failures:?}"
    );
    assert_eq!(task_definition_of(&env, "payment").await, env.initial["payment"]);
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
    let err = deploy(&env, &p, &id(1), &one).await.unwrap_err();
    watcher.await.unwrap();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    assert_eq!(failures[0].cause, Cause::Alarm, "{failures:?}");
    assert!(failures[0].reason.contains(ALARM));
    // No release was recorded as known-good yet: back to what ran before.
    assert_eq!(task_definition_of(&env, "payment").await, env.initial["payment"]);
    assert!(!env.tags("shop-payment").await.contains_key("deployer:known-good"));
    assert_nothing_in_use_deregistered(&env, &p).await;
}

#[tokio::test]
async fn manual_rollback_to_an_older_release_and_back() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    let r1 = deploy(&env, &p, &id(1), &images(2)).await.unwrap();
    let r2 = deploy(&env, &p, &id(2), &images(3)).await.unwrap();
    let rev = |r: &platform::DeployReport, s: &str| {
        r.applied.services.iter().find(|a| a.service == s).unwrap().revision.clone()
    };
    let policy = HealthPolicy::from_environment(&env.env);

    let report = ecs::rollback(&p, Some(&id(1)), "ops", &policy, &Recorder::default()).await.unwrap();
    assert_eq!(report.to, id(1));
    for s in SERVICES {
        assert_eq!(task_definition_of(&env, s).await, rev(&r1, s), "{s}");
        assert_eq!(env.tags(&format!("shop-{s}")).await["deployer:known-good"], rev(&r1, s));
    }
    let history = ecs::history(&p).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].actor, "ops");
    assert_eq!(history[0].outcome, Outcome::Succeeded);

    // Without a target: the newest succeeded release that differs from what runs (r2).
    let report = ecs::rollback(&p, None, "ops", &policy, &Recorder::default()).await.unwrap();
    assert_eq!(report.to, id(2));
    for s in SERVICES {
        assert_eq!(task_definition_of(&env, s).await, rev(&r2, s), "{s}");
    }

    let unknown = ecs::rollback(&p, Some(&ReleaseId("nope".into())), "ops", &policy, &Recorder::default())
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("no release `nope`"), "{unknown}");
    let unknown = deployer::Error::from(unknown);
    assert_eq!(unknown.exit_code(), deployer::ExitCode::Config);
    let shown = unknown.problems()[0].to_string();
    assert!(shown.contains("environments/test.yaml: no release `nope` is recorded"), "{shown}");
    assert!(shown.contains("hint: recorded releases that succeeded: 2026"), "{shown}");
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
    let report = deploy(&env, &p, &id(1), &one).await.unwrap();
    let a = &report.applied.services[0];
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
    let report = deploy(&env, &p, &id(1), &images(2)).await.unwrap();
    let user = report.applied.services.iter().find(|a| a.service == "user").unwrap();
    assert_eq!(user.target, "shop-user-green");
    let traffic = user.traffic.as_ref().unwrap();
    assert_eq!(
        (traffic.from_group.as_str(), traffic.to_group.as_str()),
        (blue_group.as_str(), green_group.as_str())
    );
    assert_eq!(rule_serves(&env, &rule).await, green_group);
    assert_eq!(env.service("shop-user-green").await.task_definition(), Some(user.revision.as_str()));
    assert_eq!(env.service("shop-user-blue").await.desired_count(), 0);
    // Records on both colours; the next deploy goes to blue.
    assert_eq!(env.tags("shop-user-blue").await["deployer:known-good"], user.revision);
    assert_eq!(env.tags("shop-user-green").await["deployer:known-good"], user.revision);
    let next = deploy(&env, &p, &id(2), &images(3)).await.unwrap();
    let user = next.applied.services.iter().find(|a| a.service == "user").unwrap();
    assert_eq!(user.target, "shop-user-blue");
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    assert_eq!(ecs::status(&p).await.unwrap().services["user"].target, "shop-user-blue");
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
    let err = deploy(&env, &p, &id(1), &one).await.unwrap_err();
    trigger.await.unwrap();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    assert_eq!(failures[0].cause, Cause::Alarm, "{failures:?}");
    // Switched back to blue, whose tasks were kept: same deployment, no new tasks.
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    let blue = env.service("shop-user-blue").await;
    assert_eq!(blue.deployments().len(), 1);
    assert_eq!(blue.deployments()[0].id(), Some(blue_deployment.as_str()));
    assert_eq!(blue.task_definition(), Some(env.initial["user"].as_str()));
    assert_eq!(env.service("shop-user-green").await.desired_count(), 0);
    assert_eq!(ecs::history(&p).await.unwrap()[0].outcome, Outcome::RolledBack);
}

#[tokio::test]
async fn deployer_blue_green_crashloop_never_gets_traffic() {
    let env = EcsEnv::start(Options { colours: Some("user"), ..Options::default() }).await;
    let c = env.colours.clone().unwrap();
    let (blue_group, rule) = (c.blue, c.production.unwrap());
    let p = platform(&env);
    let mut one = BTreeMap::new();
    one.insert("user".to_owned(), image("user", Some("crashloop"), 2));
    let err = deploy(&env, &p, &id(1), &one).await.unwrap_err();
    let PlatformError::RolledBack { failures, .. } = &err else { panic!("expected RolledBack, got {err:?}") };
    assert_eq!(failures[0].cause, Cause::UnitFailed, "{failures:?}");
    assert_eq!(rule_serves(&env, &rule).await, blue_group);
    assert_eq!(env.service("shop-user-green").await.desired_count(), 0);
    assert_eq!(env.service("shop-user-blue").await.task_definition(), Some(env.initial["user"].as_str()));
}

#[tokio::test]
async fn a_rollback_that_does_not_become_healthy_is_exit_6() {
    let env = EcsEnv::start(Options::default()).await;
    let p = platform(&env);
    // The recorded known-good revision no longer works (say, a secret it reads was deleted):
    // emulated by pointing the record at a crash-looping task definition.
    let broken = env.register_plain("user", &image("user", Some("crashloop"), 7)).await;
    let arn = env.service("shop-user").await.service_arn().unwrap().to_owned();
    env.ecs
        .tag_resource()
        .resource_arn(arn)
        .tags(aws_sdk_ecs::types::Tag::builder().key("deployer:known-good").value(&broken).build())
        .send()
        .await
        .unwrap();
    let mut bad = BTreeMap::new();
    bad.insert("user".to_owned(), image("user", Some("imagepull"), 3));
    let err = deploy(&env, &p, &id(1), &bad).await.unwrap_err();
    let PlatformError::RollbackFailed { reason, failures, .. } = &err else {
        panic!("expected RollbackFailed, got {err:?}")
    };
    assert!(failures[0].reason.contains("CannotPullContainerError"), "{failures:?}");
    assert!(reason.contains("Essential container in task exited"), "{reason}");
    assert_eq!(deployer::Error::from(err).exit_code(), deployer::ExitCode::RollbackFailed);
    assert_eq!(ecs::history(&p).await.unwrap()[0].outcome, Outcome::RollbackFailed);
}
