//! Release hooks on ECS against moto + the ECS controller (tests/fakes/moto_ecs.py runs RunTask
//! tasks: `sh -c` scripts with echo/sleep/exit, awslogs into moto's CloudWatch Logs):
//! `EcsPlatform::run_hook` runs the release's task definition with the hook's command, the exit
//! code decides, a failure carries its log tail, a hook past its timeout is stopped, a
//! pre-deploy hook and the apply after it register one revision, and `stop_hook` stops it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{DesiredStatus, Task};
use deployer::events::{Event, Recorder};
use deployer::model::{Hook, HookStage, Reason};
use deployer::platform::ecs::EcsPlatform;
use deployer::platform::{ApplyMode, Platform};
use deployer::release::Release;

use crate::support::ecs_env::{CLUSTER, EcsEnv, LOG_GROUP, Options, image};

fn platform(env: &EcsEnv) -> EcsPlatform {
    EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap().with_poll_interval(Duration::from_millis(200))
}

/// The ECS environment (with its log group, which awslogs needs).
async fn env() -> EcsEnv {
    Box::pin(EcsEnv::start(Options::default())).await
}

/// Release `test.<n>` of `order` on `image` (rendered as `deployer deploy` renders it).
async fn release(env: &EcsEnv, n: u64, image: &str) -> Release {
    let imgs = BTreeMap::from([("order".to_owned(), image.to_owned())]);
    let mut inputs = deployer::plan::Inputs {
        images: imgs.clone(),
        services: imgs.keys().cloned().collect(),
        ..Default::default()
    };
    inputs.pinned =
        imgs.keys().filter_map(|s| Some((s.clone(), deployer::plan::prebuilt_digest(&inputs, s)?))).collect();
    let planned = deployer::pipeline::planned(&env.config, &env.env, &inputs, &|_| None).await.unwrap();
    let mut r = Release::pending("shop", "test", n);
    r.services = planned.services;
    assert!(r.services["order"].spec.is_some(), "order has a rendered task definition");
    r
}

fn hook(name: &str, script: &str, timeout: Duration) -> Hook {
    Hook {
        service: "order".into(),
        name: name.into(),
        stage: HookStage::PreDeploy,
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout,
    }
}

/// Every task of the cluster in `group` (any status), as ECS describes them.
async fn tasks_in_group(env: &EcsEnv, group: &str) -> Vec<Task> {
    let mut out = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let arns = env
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .desired_status(status)
            .send()
            .await
            .unwrap()
            .task_arns()
            .to_vec();
        if arns.is_empty() {
            continue;
        }
        let described = env.ecs.describe_tasks().cluster(CLUSTER).set_tasks(Some(arns)).send().await.unwrap();
        out.extend(described.tasks().iter().filter(|t| t.group() == Some(group)).cloned());
    }
    out
}

fn said(rec: &Recorder) -> Vec<String> {
    rec.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Service { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_exits_0_succeeds_with_the_release_image_and_the_service_network() {
    let env = env().await;
    let p = platform(&env);
    let r = release(&env, 1, &image("order", None, 2)).await;
    let hk = hook("migrate", "echo migrating\nsleep 1\necho done", Duration::from_secs(30));
    let rec = Recorder::default();
    let out = p.run_hook(&r, &hk, &rec).await.unwrap();
    assert_eq!(out, None, "{:?}", said(&rec));
    let tasks = tasks_in_group(&env, "deployer-hook:order-migrate").await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let t = &tasks[0];
    assert_eq!(t.started_by(), Some("deployer/test_1"));
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.containers()[0].exit_code(), Some(0));
    assert_eq!(
        t.containers()[0].image(),
        Some(image("order", None, 2).as_str()),
        "the release's pinned image"
    );
    let command = t.overrides().unwrap().container_overrides()[0].command().to_vec();
    assert_eq!(command, hk.command);
    // The service's awsvpc network: the task has its ENI in one of the service's subnets.
    let subnet = t.attachments()[0].details().iter().find(|d| d.name() == Some("subnetId")).unwrap().value();
    assert!(env.subnets.iter().any(|s| Some(s.as_str()) == subnet), "{subnet:?}");
    let messages = said(&rec);
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("hook migrate: task ") && m.contains(" started (shop-order-test:"))
    );
    assert!(messages.iter().any(|m| m.contains(" exited 0 after ")), "{messages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_exits_3_fails_with_its_log_tail_from_cloudwatch_logs() {
    let env = env().await;
    let p = platform(&env);
    let r = release(&env, 1, &image("order", None, 2)).await;
    let hk = hook(
        "migrate",
        "echo applying 0042_orders\necho ERROR: relation orders exists; exit 3",
        Duration::from_secs(30),
    );
    let rec = Recorder::default();
    let failure = p.run_hook(&r, &hk, &rec).await.unwrap().expect("the hook failed");
    assert_eq!(failure.reason, Reason::HookFailed);
    assert_eq!(failure.service.as_deref(), Some("order"));
    assert_eq!(failure.detail, "exit 3");
    assert!(
        failure.subject.starts_with("task ") && failure.subject.len() == "task ".len() + 8,
        "{}",
        failure.subject
    );
    assert_eq!(failure.logs, ["applying 0042_orders", "ERROR: relation orders exists"]);
    assert!(
        said(&rec).iter().any(|m| m.contains("failed after") && m.ends_with(": exit 3")),
        "{:?}",
        said(&rec)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_whose_image_cannot_be_pulled_is_an_image_pull_failure() {
    let env = env().await;
    let p = platform(&env);
    let r = release(&env, 1, &image("order", Some("imagepull"), 2)).await;
    let hk = hook("migrate", "exit 0", Duration::from_secs(30));
    let failure = p.run_hook(&r, &hk, &Recorder::default()).await.unwrap().expect("the hook failed");
    assert_eq!(failure.reason, Reason::ImagePull, "{failure}");
    assert!(failure.detail.starts_with("TaskFailedToStart: CannotPullContainerError"), "{}", failure.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_without_its_log_group_fails_with_ecs_words() {
    // awslogs without `awslogs-create-group` needs the group: the task never starts.
    let env = env().await;
    aws_sdk_cloudwatchlogs::Client::new(&env.sdk)
        .delete_log_group()
        .log_group_name(LOG_GROUP)
        .send()
        .await
        .unwrap();
    let p = platform(&env);
    let r = release(&env, 1, &image("order", None, 2)).await;
    let hk = hook("migrate", "echo hi", Duration::from_secs(30));
    let failure = p.run_hook(&r, &hk, &Recorder::default()).await.unwrap().expect("the hook failed");
    assert_eq!(failure.reason, Reason::HookFailed);
    assert!(
        failure.detail.starts_with("TaskFailedToStart: ResourceInitializationError")
            && failure.detail.contains("The specified log group does not exist"),
        "{}",
        failure.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_past_its_timeout_is_stopped_and_fails() {
    let env = env().await;
    let p = platform(&env);
    let r = release(&env, 1, &image("order", None, 2)).await;
    let hk = hook("migrate", "echo waiting for the lock\nsleep 600", Duration::from_secs(2));
    let rec = Recorder::default();
    let started = Instant::now();
    let failure = p.run_hook(&r, &hk, &rec).await.unwrap().expect("the hook failed");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(failure.reason, Reason::HookFailed);
    assert_eq!(failure.detail, "timed out after 2s (task stopped)");
    assert_eq!(failure.logs, ["waiting for the lock"]);
    let tasks = tasks_in_group(&env, "deployer-hook:order-migrate").await;
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.stop_code().map(aws_sdk_ecs::types::TaskStopCode::as_str), Some("UserInitiated"));
    assert_eq!(t.stopped_reason(), Some("deployer: hook timed out after 2s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_deploy_hook_and_the_apply_after_it_register_one_revision() {
    let env = env().await;
    let p = platform(&env);
    let family = "shop-order-test";
    let revisions = || async {
        env.ecs
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .to_vec()
    };
    let before = revisions().await;
    let r = release(&env, 1, &image("order", None, 2)).await;
    let rec = Recorder::default();
    assert_eq!(
        p.run_hook(&r, &hook("migrate", "echo ok", Duration::from_secs(30)), &rec).await.unwrap(),
        None
    );
    let after_hook = revisions().await;
    assert_eq!(after_hook.len(), before.len() + 1, "the hook registered the release's task definition");
    let applied = p
        .apply(&r, &["order".to_owned()], ApplyMode::Rollout { force_conflicts: false }, &rec)
        .await
        .unwrap();
    let after_apply = revisions().await;
    assert_eq!(after_apply, after_hook, "apply registered no second revision");
    let new = after_hook.iter().find(|a| !before.contains(a)).unwrap();
    assert_eq!(&applied.services[0].revision, new, "apply rolls out the revision the hook ran");
    let hook_task = &tasks_in_group(&env, "deployer-hook:order-migrate").await[0];
    assert_eq!(hook_task.task_definition_arn(), Some(new.as_str()));
    assert!(applied.services[0].changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_hook_stops_a_running_hook_task() {
    let env = env().await;
    let p = platform(&env);
    let r = release(&env, 1, &image("order", None, 2)).await;
    let hk = hook("seed", "echo seeding\nsleep 600", Duration::from_mins(5));
    let rec = Arc::new(Recorder::default());
    let running = {
        let (p, r, hk, rec) = (p.clone(), r.clone(), hk.clone(), Arc::clone(&rec));
        tokio::spawn(async move { p.run_hook(&r, &hk, &*rec).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = tasks_in_group(&env, "deployer-hook:order-seed").await;
        if tasks.iter().any(|t| t.last_status() == Some("RUNNING")) {
            break;
        }
        assert!(Instant::now() < deadline, "the hook task never ran: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.stop_hook(&r, &hk).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), running).await.unwrap().unwrap().unwrap();
    let failure = outcome.expect("a stopped hook is a failed hook");
    assert_eq!(failure.reason, Reason::HookFailed);
    assert_eq!(failure.detail, "exit 143");
    let t = &tasks_in_group(&env, "deployer-hook:order-seed").await[0];
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.stop_code().map(aws_sdk_ecs::types::TaskStopCode::as_str), Some("UserInitiated"));
    assert!(t.stopped_reason().unwrap().contains("release test.1 cancelled"), "{:?}", t.stopped_reason());
    // Stopping again finds nothing left to stop.
    p.stop_hook(&r, &hk).await.unwrap();
}
