//! Benchmark: how soon a pod or task that runs but never becomes Ready is reported, with a
//! `ready_within` bound of 15 s, next to what the platform's own bound costs without one (EKS:
//! the Deployment's `progressDeadlineSeconds`, 120 s in the example overlay; ECS: nothing of its
//! own for a task that keeps running UNHEALTHY, so `timeouts.rollout`, 120 s here); and that a
//! slow starter Ready at 20 s under a 30 s bound succeeds. Both platforms, at time scale 1.0
//! (the behaviour contract's real timings): EKS on the fake API server, ECS on moto + its
//! controller. One engine (`engine::deploy`) drives every case.
//!
//! Run: `cargo run --example never_ready` (about 6 minutes). Measured: from the engine's first
//! `apply` phase start of the release to its `rollback` phase start (failed cases), or to the
//! release's end (the slow starter).

// A benchmark harness aborts on a broken set-up; `expect` says which step broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, dead_code)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deployer::engine::{self, Ended, Planned, Settings};
use deployer::events::{Event, Phase, Sink};
use deployer::platform::Platform;
use deployer::platform::ecs::EcsPlatform;
use deployer::platform::eks::Eks;
use deployer::release::ServiceRelease;
use deployer::render::ImagePin;
use deployer::render::kustomize::{Kustomize, MANAGED_BY};
use support::ecs_env::{self, EcsEnv, Options};

const NS: &str = "shop-dev";
const BOUND: Duration = Duration::from_secs(15);
const SLOW_BOUND: Duration = Duration::from_secs(30);
const NO_BOUND_TIMEOUT: Duration = Duration::from_mins(2);

/// When the release's apply started and its rollback started.
#[derive(Default)]
struct Clock {
    apply: Mutex<Option<Instant>>,
    rollback: Mutex<Option<Instant>>,
}

impl Sink for Clock {
    fn emit(&self, e: &Event) {
        let slot = match e {
            Event::PhaseStarted { phase: Phase::Apply } => &self.apply,
            Event::PhaseStarted { phase: Phase::Rollback } => &self.rollback,
            _ => return,
        };
        slot.lock().unwrap().get_or_insert_with(Instant::now);
    }
}

/// One case: the seconds from apply to the verdict, and how the release ended.
async fn run<P: Platform>(platform: &P, settings: &Settings, planned: Planned) -> (f64, String) {
    let clock = Clock::default();
    let ended = engine::deploy(platform, settings, planned, &clock).await.unwrap();
    let end = Instant::now();
    let apply = clock.apply.lock().unwrap().unwrap();
    let until = clock.rollback.lock().unwrap().unwrap_or(end);
    let how = match &ended {
        Ended::Succeeded(_) => "succeeded".to_owned(),
        Ended::RolledBack { failure, .. } => format!("rolled back: {failure}"),
        other => format!("{other:?}"),
    };
    (until.duration_since(apply).as_secs_f64(), how)
}

/// `user`'s dev overlay with its image pinned to version `n` (a marker directory makes the fake
/// kubelet's behaviour: `notready`, `slowstart`).
async fn eks_release(n: usize, marker: Option<&str>) -> Planned {
    use sha2::Digest as _;
    let kz = Kustomize::locate(Some(&support::kubectl())).unwrap();
    let dir = marker.map(|m| format!("{m}/")).unwrap_or_default();
    let pin = ImagePin {
        name: "shop/user".into(),
        new_name: format!("registry.local/{dir}shop/user"),
        digest: Some(format!("sha256:{}", hex::encode(sha2::Sha256::digest(format!("user-{n}").as_bytes())))),
    };
    let overlay = support::root().join("examples/shop/services/user/k8s/overlays/dev");
    let objects =
        kz.render(&overlay, std::slice::from_ref(&pin), &[MANAGED_BY], "user", "dev").await.unwrap();
    Planned {
        services: BTreeMap::from([("user".to_owned(), ServiceRelease::new(pin.reference(), objects, None))]),
        depends_on: BTreeMap::new(),
    }
}

async fn ecs_release(env: &EcsEnv, n: u8, marker: Option<&str>) -> Planned {
    let images = BTreeMap::from([("user".to_owned(), ecs_env::image("user", marker, n))]);
    let mut inputs = deployer::plan::Inputs {
        images: images.clone(),
        services: vec!["user".into()],
        pinned: BTreeMap::new(),
        ..Default::default()
    };
    inputs.pinned.insert("user".into(), deployer::plan::prebuilt_digest(&inputs, "user").unwrap());
    let mut p = deployer::pipeline::planned(&env.config, &env.env, &inputs, &|_| None).await.unwrap();
    p.depends_on.clear();
    p
}

fn bound(settings: &Settings, within: Option<Duration>) -> Settings {
    let mut s = settings.clone();
    s.ready_within = within.map(|d| BTreeMap::from([("user".to_owned(), d)])).unwrap_or_default();
    s
}

fn row(platform: &str, case: &str, (secs, how): &(f64, String)) {
    println!("| {platform} | {case} | {secs:.1} s | {how} |");
}

#[tokio::main]
async fn main() {
    println!("| platform | case | apply → verdict | outcome |\n|---|---|---|---|");

    let fake = support::fake_k8s::FakeK8s::start(1.0);
    fake.namespace(NS).await;
    let eks = Eks::new(fake.client().await, NS, "shop", "dev");
    let shop = deployer::config::Config::load(&support::root().join("examples/shop/deployer.yaml")).unwrap();
    let mut settings =
        deployer::pipeline::settings_for(&shop, &shop.environment("dev").unwrap(), None, Some("bench"));
    settings.rollout_timeout = Duration::from_mins(10);
    settings.bake = Duration::ZERO;
    settings.hooks.clear();
    settings.lock_wait = Duration::from_secs(30);
    assert!(matches!(run(&eks, &settings, eks_release(1, None).await).await.1.as_str(), "succeeded"));
    row(
        "EKS",
        "never Ready, ready_within 15s",
        &run(&eks, &bound(&settings, Some(BOUND)), eks_release(2, Some("notready")).await).await,
    );
    row(
        "EKS",
        "never Ready, no bound (progressDeadlineSeconds 120)",
        &run(&eks, &bound(&settings, None), eks_release(3, Some("notready")).await).await,
    );
    row(
        "EKS",
        "Ready at 20 s, ready_within 30s",
        &run(&eks, &bound(&settings, Some(SLOW_BOUND)), eks_release(4, Some("slowstart")).await).await,
    );
    drop(fake);

    let env = EcsEnv::start(Options { scale: 1.0, ..Options::default() }).await;
    let ecs = EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
    let mut settings = deployer::pipeline::settings_for(&env.config, &env.env, Some(&env.sdk), Some("bench"));
    settings.bake = Duration::ZERO;
    settings.rollout_timeout = NO_BOUND_TIMEOUT;
    assert!(matches!(run(&ecs, &settings, ecs_release(&env, 1, None).await).await.1.as_str(), "succeeded"));
    row(
        "ECS",
        "never healthy, ready_within 15s",
        &run(&ecs, &bound(&settings, Some(BOUND)), ecs_release(&env, 2, Some("notready")).await).await,
    );
    row(
        "ECS",
        "never healthy, no bound (timeouts.rollout 120s)",
        &run(&ecs, &bound(&settings, None), ecs_release(&env, 3, Some("notready")).await).await,
    );
    row(
        "ECS",
        "healthy at 20 s, ready_within 30s",
        &run(&ecs, &bound(&settings, Some(SLOW_BOUND)), ecs_release(&env, 4, Some("slowstart")).await).await,
    );
}
