//! Benchmark: how long from a bake failure after the blue-green switch until production traffic
//! is back on the old version, next to a rolling release's rollback on the same platform, in the
//! same run. ECS on moto + the ECS controller (blue-green: a deployer-driven pair behind an ALB
//! listener rule), EKS on the fake API server (blue-green: a Service selector switch), both at
//! time scale 1.0 (the behaviour contract's real timings). One engine (`engine::deploy`) drives
//! every case; a CloudWatch alarm (moto) in `health.alarms` is the bake failure.
//!
//! Run: `cargo run --example switch_back` (about 6 minutes). Per case: one healthy release,
//! then `RUNS` releases during whose bake the alarm goes to ALARM. Measured from t0 = the instant
//! `SetAlarmState ALARM` returned, once production reached the new version (the bake had started
//! and the platform itself shows the new version serving), to:
//! - the engine's `RollbackStarted` event (detection: the alarm gate samples every second);
//! - the platform itself showing the old version serving, polled independently every 50 ms:
//!   blue-green = the production listener rule / the Service's selector is on the old colour;
//!   rolling = the running image is the old one and its rollout is complete (ECS: the primary
//!   deployment runs every desired task and no other deployment runs any; Kubernetes: what
//!   `kubectl rollout status` waits for);
//! - the engine's `RollbackFinished` event (the rollback verified healthy).

// A benchmark harness aborts on a broken set-up; `expect` says which step broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, dead_code)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deployer::engine::{self, Ended, Planned, Settings, Strategy};
use deployer::events::{Event, Phase, Sink};
use deployer::model::Reason;
use deployer::platform::Platform;
use deployer::platform::ecs::{EcsPlatform, bluegreen};
use deployer::platform::eks::Eks;
use deployer::release::ServiceRelease;
use deployer::render::ImagePin;
use deployer::render::kustomize::{Kustomize, MANAGED_BY};
use support::ecs_env::{self, CLUSTER, EcsEnv, Options};

const RUNS: usize = 3;
const ALARM: &str = "shop-5xx";
const NS: &str = "shop-dev";
/// The bake is only a cap: the alarm fires as soon as it starts.
const BAKE: Duration = Duration::from_mins(1);
const PROBE_EVERY: Duration = Duration::from_millis(50);
const GIVE_UP: Duration = Duration::from_mins(5);

/// The engine's events, timestamped when they arrive.
#[derive(Default)]
struct Clock {
    bake: Mutex<Option<Instant>>,
    rollback_started: Mutex<Option<Instant>>,
    rollback_finished: Mutex<Option<(Instant, bool)>>,
}

impl Sink for Clock {
    fn emit(&self, e: &Event) {
        let now = Instant::now();
        match e {
            Event::PhaseStarted { phase: Phase::Bake } => {
                self.bake.lock().unwrap().get_or_insert(now);
            }
            Event::RollbackStarted { .. } => {
                self.rollback_started.lock().unwrap().get_or_insert(now);
            }
            Event::RollbackFinished { ok, .. } => {
                self.rollback_finished.lock().unwrap().get_or_insert((now, *ok));
            }
            _ => {}
        }
    }
}

/// What production traffic reaches for `user`, read from the platform (not from deployer).
#[derive(Clone)]
enum Probe {
    /// ECS pair: the target group the production rule (or default action) forwards to.
    EcsListener {
        elb: aws_sdk_elasticloadbalancingv2::Client,
        switch: bluegreen::TrafficSwitch,
        ecs: aws_sdk_ecs::Client,
        /// The blue colour's target group (`shop-user-blue`'s); the other one is green's.
        blue: String,
    },
    /// ECS rolling: the image of the primary deployment, once it alone runs every task.
    EcsService { ecs: aws_sdk_ecs::Client },
    /// EKS blue-green: the colour the Service `user` selects.
    EksSelector { client: kube::Client },
    /// EKS rolling: the image of Deployment `user`, once its rollout is complete.
    EksDeployment { client: kube::Client },
}

impl Probe {
    /// `Some(what serves)` when one version alone serves production; `None` mid-rollout.
    async fn serving(&self) -> Option<String> {
        match self {
            Self::EcsListener { elb, switch, .. } => {
                let forward = bluegreen::serving(elb, switch).await.unwrap();
                bluegreen::live_group(&forward).map(str::to_owned)
            }
            Self::EcsService { ecs } => {
                let out =
                    ecs.describe_services().cluster(CLUSTER).services("shop-user").send().await.unwrap();
                let svc = &out.services()[0];
                let deps = svc.deployments();
                let primary = deps.iter().find(|d| d.status() == Some("PRIMARY"))?;
                let complete = primary.running_count() == primary.desired_count()
                    && deps.iter().filter(|d| d.status() != Some("PRIMARY")).all(|d| d.running_count() == 0);
                if !complete {
                    return None;
                }
                let td = ecs
                    .describe_task_definition()
                    .task_definition(primary.task_definition()?)
                    .send()
                    .await
                    .unwrap();
                td.task_definition()?.container_definitions()[0].image().map(str::to_owned)
            }
            Self::EksSelector { client } => {
                let api: kube::Api<k8s_openapi::api::core::v1::Service> =
                    kube::Api::namespaced(client.clone(), NS);
                let svc = api.get_opt("user").await.unwrap()?;
                svc.spec?.selector?.get("deployer.dev/color").cloned()
            }
            Self::EksDeployment { client } => {
                let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                    kube::Api::namespaced(client.clone(), NS);
                let d = api.get_opt("user").await.unwrap()?;
                let want = d.spec.as_ref()?.replicas.unwrap_or(1);
                let st = d.status.as_ref()?;
                let complete = st.observed_generation >= d.metadata.generation
                    && st.updated_replicas.unwrap_or(0) == want
                    && st.replicas.unwrap_or(0) == want
                    && st.available_replicas.unwrap_or(0) == want;
                if !complete {
                    return None;
                }
                d.spec?.template.spec?.containers.first()?.image.clone()
            }
        }
    }

    /// Blue-green: tasks / ready pods the colour `old` (as `serving` names it) runs now.
    async fn ready_on(&self, old: &str) -> Option<i32> {
        match self {
            Self::EcsListener { ecs, blue, .. } => {
                let name = if old == blue { "shop-user-blue" } else { "shop-user-green" };
                let out = ecs.describe_services().cluster(CLUSTER).services(name).send().await.unwrap();
                Some(out.services()[0].running_count())
            }
            Self::EksSelector { client } => {
                let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                    kube::Api::namespaced(client.clone(), NS);
                let d = api.get_opt(&format!("user-{old}")).await.unwrap()?;
                Some(d.status?.ready_replicas.unwrap_or(0))
            }
            Self::EcsService { .. } | Self::EksDeployment { .. } => None,
        }
    }

    /// Polls until one version alone serves, returning it.
    async fn settled(&self) -> String {
        let end = Instant::now() + GIVE_UP;
        loop {
            if let Some(s) = self.serving().await {
                return s;
            }
            assert!(Instant::now() < end, "production never settled on one version");
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
}

/// One measured run: seconds from t0 (alarm set) to each mark.
struct Run {
    detected: f64,
    platform_back: f64,
    finished: f64,
    /// Blue-green: tasks / ready pods of the old colour when the alarm fired.
    old_ready: Option<i32>,
}

/// One case: a platform, a strategy, and how to build its releases.
struct Case<'a, P: Platform> {
    platform: &'a P,
    settings: Settings,
    probe: Probe,
    cw: aws_sdk_cloudwatch::Client,
}

async fn set_alarm(cw: &aws_sdk_cloudwatch::Client, state: &str) {
    cw.set_alarm_state()
        .alarm_name(ALARM)
        .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
        .state_reason(format!("5xx: {state} (bench)"))
        .send()
        .await
        .unwrap();
}

impl<P: Platform> Case<'_, P> {
    /// A release that becomes healthy but whose bake fails on the alarm; timed.
    async fn failing_bake(&self, planned: Planned) -> Run {
        set_alarm(&self.cw, "OK").await;
        let old = self.probe.settled().await;
        let clock = Arc::new(Clock::default());
        let trigger = {
            let (probe, cw, clock, old) = (self.probe.clone(), self.cw.clone(), clock.clone(), old.clone());
            tokio::spawn(async move {
                let end = Instant::now() + GIVE_UP;
                // Production reaches the new version: the bake started and the platform shows
                // the new version (colour / completed rollout) serving.
                loop {
                    let baking = clock.bake.lock().unwrap().is_some();
                    if baking && probe.serving().await.is_some_and(|s| s != old) {
                        break;
                    }
                    assert!(Instant::now() < end, "production never reached the new version");
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                set_alarm(&cw, "ALARM").await;
                let t0 = Instant::now();
                let old_ready = probe.ready_on(&old).await;
                loop {
                    if probe.serving().await.as_deref() == Some(old.as_str()) {
                        return (t0, Instant::now(), old_ready);
                    }
                    assert!(Instant::now() < end, "production never went back to the old version");
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            })
        };
        let ended = engine::deploy(self.platform, &self.settings, planned, &clock).await.expect("deploy");
        let (t0, back, old_ready) = trigger.await.expect("trigger");
        let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
        assert_eq!(failure.reason, Reason::Alarm, "{failure}");
        let since = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
        let started = clock.rollback_started.lock().unwrap().expect("RollbackStarted");
        let (finished, ok) = clock.rollback_finished.lock().unwrap().expect("RollbackFinished");
        assert!(ok, "the rollback reported failure");
        Run { detected: since(started), platform_back: since(back), finished: since(finished), old_ready }
    }

    async fn healthy(&self, planned: Planned) {
        set_alarm(&self.cw, "OK").await;
        let ended =
            engine::deploy(self.platform, &self.settings, planned, &deployer::events::Fanout::default())
                .await
                .expect("deploy");
        assert!(matches!(ended, Ended::Succeeded(_)), "{ended:?}");
    }
}

fn strategy(blue_green: bool) -> Strategy {
    if blue_green {
        Strategy::BlueGreen { scale_down_delay: Duration::ZERO, smoke_checks: Vec::new() }
    } else {
        Strategy::Rolling
    }
}

fn gate(settings: &mut Settings, cw: &aws_sdk_cloudwatch::Client, blue_green: bool) {
    settings.strategy = strategy(blue_green);
    settings.gates.alarms = vec![ALARM.to_owned()];
    settings.gates.cloudwatch = Some(cw.clone());
    settings.bake = BAKE;
    settings.rollout_timeout = Duration::from_mins(5);
    settings.lock_wait = Duration::from_mins(1);
}

/// `user` at version `n`, as the ECS pipeline plans it.
async fn ecs_release(env: &EcsEnv, n: u8) -> Planned {
    let images = BTreeMap::from([("user".to_owned(), ecs_env::image("user", None, n))]);
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

async fn ecs_case(blue_green: bool) -> Vec<Run> {
    let opts = if blue_green {
        Options { colours: Some("user"), scale: 1.0, ..Options::default() }
    } else {
        Options { scale: 1.0, ..Options::default() }
    };
    let env = EcsEnv::start(opts).await;
    let ecs = EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
    ecs_env::create_alarm(&env.cw, ALARM).await;
    let mut settings = deployer::pipeline::settings_for(&env.config, &env.env, Some(&env.sdk), Some("bench"));
    gate(&mut settings, &env.cw, blue_green);
    let probe = match &env.colours {
        Some(c) if blue_green => Probe::EcsListener {
            elb: env.elb.clone(),
            switch: bluegreen::TrafficSwitch {
                listener_arn: env.listener.clone(),
                rule_arn: c.production.clone(),
            },
            ecs: env.ecs.clone(),
            blue: c.blue.clone(),
        },
        _ => Probe::EcsService { ecs: env.ecs.clone() },
    };
    let case = Case { platform: &ecs, settings, probe, cw: env.cw.clone() };
    case.healthy(ecs_release(&env, 1).await).await;
    let mut runs = Vec::new();
    for n in 0..RUNS {
        runs.push(case.failing_bake(ecs_release(&env, 2 + n as u8).await).await);
    }
    runs
}

/// `user`'s dev overlay rendered with its image pinned to version `n`.
async fn eks_release(n: usize) -> Planned {
    use sha2::Digest as _;
    let kz = Kustomize::locate(Some(&support::kubectl())).unwrap();
    let pin = ImagePin {
        name: "shop/user".into(),
        new_name: "registry.local/shop/user".into(),
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

async fn eks_case(blue_green: bool, cw: &aws_sdk_cloudwatch::Client) -> Vec<Run> {
    let fake = support::fake_k8s::FakeK8s::start(1.0);
    fake.namespace(NS).await;
    let client = fake.client().await;
    let eks = Eks::new(client.clone(), NS, "shop", "dev");
    let mut settings = Settings {
        product: "shop".into(),
        environment: "dev".into(),
        holder: "bench".into(),
        cancel: deployer::engine::cancel::Cancel::default(),
        actor: None,
        confirmation: None,
        git_sha: None,
        lock_wait: Duration::from_secs(30),
        rollout_timeout: Duration::from_mins(5),
        bake: Duration::ZERO,
        strategy: Strategy::Rolling,
        gates: engine::gates::Gates::none(),
        force_conflicts: false,
        hooks: Vec::new(),
        ready_within: std::collections::BTreeMap::new(),
    };
    gate(&mut settings, cw, blue_green);
    let probe = if blue_green { Probe::EksSelector { client } } else { Probe::EksDeployment { client } };
    let case = Case { platform: &eks, settings, probe, cw: cw.clone() };
    case.healthy(eks_release(1).await).await;
    let mut runs = Vec::new();
    for n in 0..RUNS {
        runs.push(case.failing_bake(eks_release(2 + n).await).await);
    }
    drop(fake);
    runs
}

fn stats(v: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn cell(runs: &[Run], f: fn(&Run) -> f64) -> String {
    let (med, min, max) = stats(runs.iter().map(f));
    format!("{med:.2} s ({min:.2}–{max:.2})")
}

fn median(runs: &[Run], f: fn(&Run) -> f64) -> f64 {
    stats(runs.iter().map(f)).0
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    // EKS alarms live in CloudWatch too (moto; its ECS controller is idle here).
    let moto = support::moto::Moto::start();
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    ecs_env::create_alarm(&cw, ALARM).await;

    let mut cases: Vec<(&str, &str, &str, Vec<Run>)> = Vec::new();
    for (blue_green, how) in [
        (true, "ALB production rule → old colour's target group"),
        (false, "re-deploy of the previous task definition"),
    ] {
        let runs = Box::pin(ecs_case(blue_green)).await;
        cases.push(("ECS", strategy(blue_green).name(), how, runs));
    }
    for (blue_green, how) in
        [(true, "Service selector → old colour"), (false, "re-apply of the previous Deployment template")]
    {
        let runs = eks_case(blue_green, &cw).await;
        cases.push(("EKS", strategy(blue_green).name(), how, runs));
    }
    drop(moto);

    for (platform, strat, _, runs) in &cases {
        for (i, r) in runs.iter().enumerate() {
            let kept = r.old_ready.map(|n| format!("; old colour running {n} at t0")).unwrap_or_default();
            println!(
                "{platform} {strat} run {}: rollback started {:.3} s, platform shows old version {:.3} s, RollbackFinished {:.3} s{kept}",
                i + 1,
                r.detected,
                r.platform_back,
                r.finished
            );
        }
    }
    println!();
    println!(
        "| platform | strategy | how production goes back | alarm → rollback starts | rollback start → platform shows the old version serving | alarm → platform shows the old version serving | alarm → `RollbackFinished` |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (platform, strat, how, runs) in &cases {
        println!(
            "| {platform} | {strat} | {how} | {} | {} | {} | {} |",
            cell(runs, |r| r.detected),
            cell(runs, |r| r.platform_back - r.detected),
            cell(runs, |r| r.platform_back),
            cell(runs, |r| r.finished)
        );
    }
    println!();
    for platform in ["ECS", "EKS"] {
        let of = |s: &str| &cases.iter().find(|c| c.0 == platform && c.1 == s).expect("case").3;
        let (bg, rolling) = (of("blue-green"), of("rolling"));
        println!(
            "{platform}: blue-green / rolling (medians): rollback start → old version serving {:.2}, alarm → old version serving {:.2}, alarm → RollbackFinished {:.2}",
            median(bg, |r| r.platform_back - r.detected) / median(rolling, |r| r.platform_back - r.detected),
            median(bg, |r| r.platform_back) / median(rolling, |r| r.platform_back),
            median(bg, |r| r.finished) / median(rolling, |r| r.finished)
        );
    }
    println!("{RUNS} runs per case, medians (min–max); whole bench {:.0} s", started.elapsed().as_secs_f64());
}
