//! Benchmark: how long after the first task of a crash-looping deployment stops does a
//! verdict arrive? deployer's ECS watcher against the ECS `ServicesStable` waiter (boto3's
//! `services_stable`, default 15 s × 40: the waiter definition amazon-ecs-deploy-task-definition
//! uses through the JS SDK's `waitUntilServicesStable` with a 15 s delay), both against the same
//! moto + ECS controller at time scale 1.0 (the behaviour contract's real-ECS timings), in the
//! same run.
//!
//! Run: `cargo run --example ecs_detect` (about 2 minutes). Prints a Markdown table for
//! BENCHMARKS.md. The start of each measurement is the `stoppedAt` that ECS (moto) reports for
//! the first stopped task of the new deployment; the end is when the tool returns its answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, dead_code)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::DesiredStatus;
use deployer::events::Recorder;
use deployer::model::Reason;
use deployer::platform::ecs::EcsPlatform;
use deployer::platform::{ApplyMode, Platform};
use support::ecs_env::{CLUSTER, EcsEnv, Options, image};

const RUNS: usize = 3;

/// `stoppedAt` of the first stopped task started by deployment `handle`.
async fn first_stop(env: &EcsEnv, ecs_name: &str, handle: &str) -> Option<SystemTime> {
    let arns = env
        .ecs
        .list_tasks()
        .cluster(CLUSTER)
        .service_name(ecs_name)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return None;
    }
    let out = env.ecs.describe_tasks().cluster(CLUSTER).set_tasks(Some(arns)).send().await.unwrap();
    out.tasks()
        .iter()
        .filter(|t| t.started_by() == Some(handle))
        .filter_map(|t| t.stopped_at().and_then(|d| SystemTime::try_from(*d).ok()))
        .min()
}

fn secs(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64())
}

/// Waits until the service runs `td` alone, COMPLETED.
async fn settle(env: &EcsEnv, ecs_name: &str, td: &str) {
    loop {
        let s = env.service(ecs_name).await;
        let d = s.deployments();
        if d.len() == 1
            && d[0].task_definition() == Some(td)
            && d[0].rollout_state().map(aws_sdk_ecs::types::DeploymentRolloutState::as_str)
                == Some("COMPLETED")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// deployer: apply a crashloop image to `user`, watch, return (latency s, verdict summary).
async fn ours(env: &EcsEnv, p: &EcsPlatform, n: u8) -> (f64, String) {
    let mut imgs = BTreeMap::new();
    imgs.insert("user".to_owned(), image("user", Some("crashloop"), 100 + n));
    let mut inputs =
        deployer::plan::Inputs { images: imgs, services: vec!["user".into()], ..Default::default() };
    inputs.pinned.insert("user".into(), deployer::plan::prebuilt_digest(&inputs, "user").unwrap());
    let planned = deployer::pipeline::planned(&env.config, &env.env, &inputs, &|_| None).await.unwrap();
    let release = deployer::release::Release {
        services: planned.services,
        ..deployer::release::Release::pending("shop", &env.env.name, u64::from(n))
    };
    let rec = Recorder::default();
    let applied = p
        .apply(&release, &["user".to_owned()], ApplyMode::Rollout { force_conflicts: false }, &rec)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + env.env.timeouts.rollout;
    let failure = p.watch(&applied, deadline, Duration::ZERO, &rec).await.unwrap();
    let at = SystemTime::now();
    let a = &applied.services[0];
    let stop = first_stop(env, &a.target, &a.handle).await.expect("a stopped task");
    let summary = match &failure {
        Some(f) => format!(
            "failed ({})",
            match f.reason {
                Reason::CrashLoop => "task failed",
                Reason::RolledBackByPlatform => "ECS rolled back",
                Reason::RolloutFailed => "rollout failed",
                _ => "other",
            }
        ),
        None => "healthy".to_owned(),
    };
    (secs(stop, at), summary)
}

/// boto3 `services_stable` with its defaults, after an update to `crash_td`.
fn peer(env: &EcsEnv, crash_td: &str) -> (f64, String, f64) {
    let script = r#"
import boto3, botocore, json, sys, time
ecs = boto3.client("ecs", endpoint_url=sys.argv[1], region_name="eu-west-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
cluster, service, crash = sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.time()
dep = ecs.update_service(cluster=cluster, service=service, taskDefinition=crash)["service"]["deployments"][0]["id"]
try:
    ecs.get_waiter("services_stable").wait(cluster=cluster, services=[service])
    outcome = "stable"
except botocore.exceptions.WaiterError as e:
    outcome = "waiter error"
t1 = time.time()
svc = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"]
tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
stops = [t["stoppedAt"].timestamp() for t in tasks if t.get("startedBy") == dep and t.get("stoppedAt")]
print(json.dumps({"t0": t0, "t1": t1, "first_stop": min(stops) if stops else None, "outcome": outcome,
                  "runs_crash": svc["taskDefinition"] == crash}))
"#;
    let out = std::process::Command::new(support::venv_bin("python"))
        .args(["-c", script, &env.moto.url, CLUSTER, "shop-user", crash_td])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t1 = v["t1"].as_f64().unwrap();
    let stop = v["first_stop"].as_f64().unwrap();
    let verdict = match (v["outcome"].as_str().unwrap(), v["runs_crash"].as_bool().unwrap()) {
        ("stable", false) => "\"stable\" = success (ECS had rolled back)".to_owned(),
        ("stable", true) => "stable on the crashing version".to_owned(),
        (o, _) => o.to_owned(),
    };
    (t1 - stop, verdict, t1 - v["t0"].as_f64().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    // Scenario A: circuit breaker with rollback (the setting the peers' bug reports use).
    let env = EcsEnv::start(Options {
        circuit_breaker: Some((true, true)),
        scale: 1.0,
        health: "{ bake_time: 0s }".into(),
        ..Options::default()
    })
    .await;
    let p = EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
    let good = env.service("shop-user").await.task_definition().unwrap().to_owned();
    let crash_td = env.register_plain("user", &image("user", Some("crashloop"), 99)).await;
    let (mut ours_a, mut peer_a) = (Vec::new(), Vec::new());
    let (mut ours_verdict, mut peer_verdict, mut peer_total) = (String::new(), String::new(), 0.0);
    for n in 0..RUNS {
        let (lat, v) = ours(&env, &p, n as u8).await;
        ours_a.push(lat);
        ours_verdict = v;
        settle(&env, "shop-user", &good).await;
        let (lat, v, total) = peer(&env, &crash_td);
        peer_a.push(lat);
        peer_verdict = v;
        peer_total = total;
        settle(&env, "shop-user", &good).await;
    }
    drop(env);

    // Scenario B: no circuit breaker: ECS retries the crashing tasks forever.
    let env =
        EcsEnv::start(Options { scale: 1.0, health: "{ bake_time: 0s }".into(), ..Options::default() }).await;
    let p = EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
    let good = env.service("shop-user").await.task_definition().unwrap().to_owned();
    let mut ours_b = Vec::new();
    let mut ours_b_verdict = String::new();
    for n in 0..RUNS {
        let (lat, v) = ours(&env, &p, 10 + n as u8).await;
        ours_b.push(lat);
        ours_b_verdict = v;
        env.ecs
            .update_service()
            .cluster(CLUSTER)
            .service("shop-user")
            .task_definition(&good)
            .send()
            .await
            .unwrap();
        settle(&env, "shop-user", &good).await;
    }

    let (oa, pa, ob) = (median(ours_a.clone()), median(peer_a.clone()), median(ours_b.clone()));
    println!(
        "| scenario (moto + ECS controller, time scale 1.0, {RUNS} runs, median) | tool | verdict | first task stopped → verdict |"
    );
    println!("|---|---|---|---|");
    println!(
        "| crashloop, circuit breaker + rollback | deployer (poll {:?}) | {ours_verdict} | {oa:.1} s |",
        p.poll()
    );
    println!(
        "| crashloop, circuit breaker + rollback | ServicesStable waiter (boto3 defaults, 15 s × 40) | {peer_verdict} | {pa:.1} s (update → return {peer_total:.1} s) |"
    );
    println!(
        "| crashloop, no circuit breaker | deployer (poll {:?}) | {ours_b_verdict} | {ob:.1} s |",
        p.poll()
    );
    println!(
        "| crashloop, no circuit breaker | ServicesStable waiter | never stable: WaiterError after 40 × 15 s (computed, not run) | ≈ 600 s |"
    );
    println!();
    println!(
        "ratio (circuit breaker case): waiter / deployer = {:.1}×; raw: deployer {ours_a:.2?}, waiter {peer_a:.2?}, no-CB deployer {ours_b:.2?}",
        pa / oa
    );
}
