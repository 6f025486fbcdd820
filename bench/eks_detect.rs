//! Failure-detection latency on EKS, against the fake API server at real time scale (1.0):
//! from the first failing pod status (seen by an independent watch) to the start of deployer's
//! rollback, next to what waiting for the progress deadline costs (`kubectl rollout status`,
//! helm `--wait`). Run: `cargo run --example eks_detect` (after `bash .ci/setup`).

// A benchmark harness aborts on a broken set-up; `expect` says which step broke.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deployer::engine::{self, Ended, Planned, Settings, Strategy};
use deployer::events::{Event, Phase, Sink};
use deployer::platform::eks::Eks;
use deployer::release::ServiceRelease;
use deployer::render::ImagePin;
use deployer::render::kustomize::{Kustomize, MANAGED_BY};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};

const RUNS: usize = 5;

/// Stops the fake server however the bench ends (a panic included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct RollbackClock(Mutex<Option<Instant>>);
impl Sink for RollbackClock {
    fn emit(&self, e: &Event) {
        if matches!(e, Event::PhaseStarted { phase: Phase::Rollback })
            && let Ok(mut t) = self.0.lock()
        {
            t.get_or_insert_with(Instant::now);
        }
    }
}

fn start_fake(root: &std::path::Path, kubeconfig: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/fakes/fake_k8s.py"))
        .args(["--port", "0", "--time-scale", "1.0", "--kubeconfig"])
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the fake (run `bash .ci/setup` first)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("LISTENING line");
    assert!(line.starts_with("LISTENING"), "{line}");
    child
}

async fn release(
    root: &std::path::Path,
    version: &str,
    crash: bool,
) -> BTreeMap<String, (String, Vec<serde_json::Value>)> {
    let kz = Kustomize::locate(Some(&root.join(".venv/bin/kubectl"))).expect("kubectl");
    let mut out = BTreeMap::new();
    for svc in ["user", "order"] {
        let repo = if crash && svc == "user" {
            "registry.local/crashloop/shop/user".to_owned()
        } else {
            format!("registry.local/shop/{svc}")
        };
        let pin = ImagePin {
            name: format!("shop/{svc}"),
            new_name: repo,
            digest: Some(format!("sha256:{version:0>64}")),
        };
        let overlay = root.join(format!("examples/shop/services/{svc}/k8s/overlays/dev"));
        let objs =
            kz.render(&overlay, std::slice::from_ref(&pin), &[MANAGED_BY], svc, "dev").await.expect("render");
        out.insert(svc.to_owned(), (pin.reference(), objs));
    }
    out
}

fn request(services: BTreeMap<String, (String, Vec<serde_json::Value>)>) -> (Settings, Planned) {
    let settings = Settings {
        product: "shop".into(),
        environment: "dev".into(),
        holder: "bench".into(),
        actor: None,
        confirmation: None,
        git_sha: None,
        lock_wait: Duration::from_secs(30),
        rollout_timeout: Duration::from_mins(10),
        bake: Duration::ZERO,
        strategy: Strategy::Rolling,
        gates: engine::gates::Gates::none(),
        force_conflicts: false,
        cancel: deployer::engine::cancel::Cancel::default(),
        hooks: Vec::new(),
        ready_within: std::collections::BTreeMap::new(),
    };
    let services =
        services.into_iter().map(|(s, (image, objs))| (s, ServiceRelease::new(image, objs, None))).collect();
    (settings, Planned { services, depends_on: BTreeMap::new() })
}

#[tokio::main]
async fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    let fake = KillOnDrop(start_fake(&root, &kubeconfig));
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config"),
    )
    .expect("client");
    let nss: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    nss.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata":{"name":"shop-dev"}})).expect("ns"),
    )
    .await
    .expect("create ns");
    let eks = Eks::new(client.clone(), "shop-dev", "shop", "dev");

    let mut latencies = Vec::new();
    for run in 0..RUNS {
        let good = request(release(&root, &format!("{}", 2 * run + 1), false).await);
        let ok = engine::deploy(&eks, &good.0, good.1, &deployer::events::Fanout::default())
            .await
            .expect("deploy");
        assert!(matches!(ok, Ended::Succeeded(_)));
        // An independent observer: the instant a pod first reports a failing container state.
        let first_fail: Arc<Mutex<Option<Instant>>> = Arc::default();
        let ff = first_fail.clone();
        let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "shop-dev");
        let observer = tokio::spawn(async move {
            let mut s = watcher(pods, watcher::Config::default()).applied_objects().boxed();
            while let Some(Ok(p)) = s.next().await {
                let failing = p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).any(|c| {
                    c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
                });
                if failing && let Ok(mut t) = ff.lock() {
                    t.get_or_insert_with(Instant::now);
                }
            }
        });
        let clock = RollbackClock(Mutex::new(None));
        let bad = request(release(&root, &format!("{}", 2 * run + 2), true).await);
        let outcome = engine::deploy(&eks, &bad.0, bad.1, &clock).await.expect("deploy");
        observer.abort();
        assert!(matches!(outcome, Ended::RolledBack { .. }), "{outcome:?}");
        let (Some(fail), Some(rb)) = (*first_fail.lock().expect("lock"), *clock.0.lock().expect("lock"))
        else {
            panic!("missing timestamps")
        };
        let ms = rb.saturating_duration_since(fail).as_secs_f64() * 1000.0;
        println!("run {}: first CrashLoopBackOff status → rollback start: {ms:.0} ms", run + 1);
        latencies.push(ms);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "deployer: median {:.0} ms, max {:.0} ms over {RUNS} runs",
        latencies[RUNS / 2],
        latencies[RUNS - 1]
    );

    // The peer: `kubectl rollout status` on the same fake waits for the progress deadline.
    // 30 s here to keep the bench short; the Kubernetes default is 600 s and the example's 120 s.
    let deploy = serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"peer","namespace":"shop-dev"},
        "spec":{"replicas":1,"progressDeadlineSeconds":30,"selector":{"matchLabels":{"app":"peer"}},
        "template":{"metadata":{"labels":{"app":"peer"}},"spec":{"containers":[{"name":"c","image":"registry.local/peer:1"}]}}}});
    let file = dir.path().join("peer.json");
    std::fs::write(&file, deploy.to_string()).expect("write");
    let kubectl = root.join(".venv/bin/kubectl");
    let k = |args: &[&str]| {
        Command::new(&kubectl).env("KUBECONFIG", &kubeconfig).args(args).output().expect("kubectl")
    };
    k(&["apply", "--server-side", "-f", file.to_str().expect("path")]);
    k(&["-n", "shop-dev", "rollout", "status", "deploy/peer", "--timeout=60s"]);
    k(&["-n", "shop-dev", "set", "image", "deploy/peer", "c=registry.local/crashloop/peer:2"]);
    let start = Instant::now();
    let out = k(&["-n", "shop-dev", "rollout", "status", "deploy/peer", "--timeout=300s"]);
    println!(
        "kubectl rollout status (progressDeadlineSeconds 30): exit {:?} after {:.1} s: {}",
        out.status.code(),
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    drop(fake);
}
