//! The kill matrix: the `deployer` binary is stopped at a point of a release — after the plan,
//! between the waves, during the first wave's watch, during an automatic rollback, while the
//! release is recorded — by `kill -9`, SIGINT (Ctrl-C), SIGTERM, or SIGINT then SIGTERM
//! (GitHub's cancel), on both platforms (EKS on the fake API server, ECS on moto). The point is found from the binary's own event stream (`--output
//! json` on stdout), not from sleeps. After each: `deployer status` says, per service, the
//! release that really runs (checked against the platform) and who holds the lock; one next
//! command (`deploy` or `rollback`) brings every service to one release; no record stays
//! `pending`.
//!
//! The shop's `order` depends on `user`, so a release goes in two waves; `user` starts slowly
//! (`slowstart`), which holds the first wave's watch open: a stop there leaves `order` on the
//! previous release and the others on the new one (or, with SIGTERM, undoes them).

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support;
use crate::support::ecs_env::{EcsEnv, Options, SERVICES};
use crate::support::fake_k8s::FakeK8s;
use crate::support::moto::Moto;

/// One platform with the example shop on it.
enum Stand {
    Eks { fake: Box<FakeK8s>, moto: Box<Moto>, product: tempfile::TempDir, home: tempfile::TempDir },
    Ecs { env: Box<EcsEnv>, home: tempfile::TempDir },
}

/// How the run is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill9,
    Term,
    /// SIGINT alone (Ctrl-C at a terminal).
    Int,
    /// SIGINT, then SIGTERM right after: the second signal abandons the undo.
    IntThenTerm,
}

fn sha(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

impl Stand {
    async fn eks() -> Self {
        let fake = FakeK8s::start(0.2);
        fake.namespace("shop-dev").await;
        let product = tempfile::tempdir().unwrap();
        support::copy_tree(&support::root().join("examples/shop"), product.path());
        std::fs::write(
            product.path().join("environments/dev.yaml"),
            "account_id: \"222222222222\"\nregion: eu-west-1\nrole:\n  arn: arn:aws:iam::222222222222:role/shop-deployer-dev\n\
             target:\n  eks: { context: fake, namespace: shop-dev }\ntimeouts: { rollout: 2m, lock: 1m }\n\
             health: { bake_time: 1s }\n",
        )
        .unwrap();
        Self::Eks {
            fake: Box::new(fake),
            moto: Box::new(Moto::start()),
            product,
            home: tempfile::tempdir().unwrap(),
        }
    }

    async fn ecs() -> Self {
        let env = EcsEnv::start(Options::default()).await;
        Self::Ecs { env: Box::new(env), home: tempfile::tempdir().unwrap() }
    }

    fn env_name(&self) -> &'static str {
        match self {
            Self::Eks { .. } => "dev",
            Self::Ecs { .. } => "test",
        }
    }

    fn id(&self, n: u8) -> String {
        format!("{}.{n}", self.env_name())
    }

    /// The digest of `service` at `version`.
    fn digest(&self, service: &str, version: u8) -> String {
        match self {
            Self::Eks { .. } => format!("sha256:{}", sha(&format!("{service}-{version}"))),
            Self::Ecs { .. } => format!("sha256:{}", format!("{version:02x}").repeat(32)),
        }
    }

    /// `--image` arguments for every service at `version`, `marker` on `user`.
    fn images(&self, version: u8, marker: Option<&str>) -> Vec<String> {
        SERVICES
            .iter()
            .flat_map(|svc| {
                let m = if *svc == "user" {
                    marker.map(|m| format!("{m}/")).unwrap_or_default()
                } else {
                    String::new()
                };
                [
                    "--image".to_owned(),
                    format!("{svc}=registry.local/{m}shop/{svc}@{}", self.digest(svc, version)),
                ]
            })
            .collect()
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("deployer"));
        let home = match self {
            Self::Eks { home, .. } | Self::Ecs { home, .. } => home.path(),
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("DEPLOYER_KUSTOMIZE", support::kubectl())
            .env("NO_COLOR", "1");
        match self {
            Self::Eks { fake, moto, product, .. } => {
                cmd.current_dir(product.path()).env("KUBECONFIG", &fake.kubeconfig);
                for (k, v) in moto.env() {
                    cmd.env(k, v);
                }
            }
            Self::Ecs { env, .. } => {
                cmd.arg("--config").arg(env.product_dir().join("deployer.yaml"));
                for (k, v) in env.moto.env() {
                    cmd.env(k, v);
                }
            }
        }
        cmd.args(["--output", "json", "--env", self.env_name()]).args(args);
        cmd
    }

    /// Runs a command to its end: (exit code, JSON events, stderr).
    async fn run(&self, args: &[&str], extra: Vec<String>) -> (Option<i32>, Vec<Value>, String) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).chain(extra).collect();
        let mut cmd = self.command(&args);
        let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let events =
            String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (o.status.code(), events, String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// Runs a command and stops it with `stop` at the first event `at` matches: (exit code,
    /// whether the point was reached, events, stderr).
    async fn run_and_stop(
        &self,
        args: &[&str],
        extra: Vec<String>,
        at: fn(&Value) -> bool,
        stop: Stop,
    ) -> (Option<i32>, bool, Vec<Value>, String) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).chain(extra).collect();
        let mut cmd = self.command(&args);
        let err_file = tempfile::NamedTempFile::new().unwrap();
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(err_file.reopen().unwrap()));
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut events = Vec::new();
            let mut reached = false;
            for line in out.lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if !reached && at(&v) {
                    reached = true;
                    let pid = child.id().to_string();
                    let signal = |s: &str| {
                        Command::new("kill").args([s, &pid]).status().unwrap();
                    };
                    match stop {
                        Stop::Kill9 => child.kill().unwrap(),
                        Stop::Term => signal("-TERM"),
                        Stop::Int => signal("-INT"),
                        Stop::IntThenTerm => {
                            signal("-INT");
                            signal("-TERM");
                        }
                    }
                }
                events.push(v);
            }
            let status = child.wait().unwrap();
            (status.code(), reached, events, std::fs::read_to_string(err_file.path()).unwrap_or_default())
        })
        .await
        .unwrap()
    }

    /// The digest each service runs, from the platform itself.
    async fn running(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for s in SERVICES {
            let image = match self {
                Self::Eks { fake, .. } => {
                    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                        kube::Api::namespaced(fake.client().await, "shop-dev");
                    let d = api.get(s).await.unwrap();
                    d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap()
                }
                Self::Ecs { env, .. } => {
                    let td = env.service(&format!("shop-{s}")).await.task_definition().unwrap().to_owned();
                    let d = env.ecs.describe_task_definition().task_definition(td).send().await.unwrap();
                    d.task_definition().unwrap().container_definitions()[0].image().unwrap().to_owned()
                }
            };
            out.insert(s.to_owned(), image.rsplit_once('@').map_or(image.as_str(), |(_, d)| d).to_owned());
        }
        out
    }

    /// Which version (of `versions`) each service runs.
    async fn versions(&self, versions: &[u8]) -> BTreeMap<String, u8> {
        let running = self.running().await;
        running
            .iter()
            .map(|(s, d)| {
                let v = versions.iter().find(|v| self.digest(s, **v) == *d);
                (s.clone(), *v.unwrap_or_else(|| panic!("{s} runs {d}, none of {versions:?}")))
            })
            .collect()
    }

    /// `deployer status`: service → release, and the notes (what → state).
    async fn status(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (code, events, err) = self.run(&["status"], Vec::new()).await;
        assert_eq!(code, Some(0), "{err}");
        let tables: Vec<&Value> = events.iter().filter(|e| e["event"] == "table").collect();
        assert_eq!(tables.len(), 2, "{events:?}");
        let rows = |t: &Value, k: usize, v: usize| -> BTreeMap<String, String> {
            t["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r[k].as_str().unwrap().to_owned(), r[v].as_str().unwrap().to_owned()))
                .collect()
        };
        (rows(tables[0], 0, 2), rows(tables[1], 0, 1))
    }

    /// Release id → "returned to" column, from `deployer history`.
    async fn returned_to(&self) -> BTreeMap<String, String> {
        let (code, events, err) = self.run(&["history"], Vec::new()).await;
        assert_eq!(code, Some(0), "{err}");
        let table = events.iter().find(|e| e["event"] == "table").unwrap();
        table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().to_owned(), r[5].as_str().unwrap().to_owned()))
            .collect()
    }

    /// Release id → outcome, from `deployer history`.
    async fn history(&self) -> BTreeMap<String, String> {
        let (code, events, err) = self.run(&["history"], Vec::new()).await;
        assert_eq!(code, Some(0), "{err}");
        let table = events.iter().find(|e| e["event"] == "table").unwrap();
        table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_str().unwrap().to_owned()))
            .collect()
    }

    /// `status` names, per service, the release whose version really runs.
    async fn assert_status_is_true(&self, ids: &[(u8, &str)]) {
        let versions = self.versions(&ids.iter().map(|(v, _)| *v).collect::<Vec<_>>()).await;
        let (releases, notes) = self.status().await;
        for (svc, v) in &versions {
            let id = ids.iter().find(|(n, _)| n == v).unwrap().1;
            assert_eq!(
                releases.get(svc).map(String::as_str),
                Some(id),
                "{svc} runs version {v}: {releases:?}"
            );
        }
        assert!(notes.contains_key("lock"), "{notes:?}");
    }

    async fn assert_nothing_pending(&self) {
        let h = self.history().await;
        assert!(h.values().all(|o| o != "pending"), "{h:?}");
    }
}

fn phase_started(e: &Value, phase: &str) -> bool {
    e["event"] == "phase-started" && e["phase"] == phase
}

/// During the first wave's watch (user starts slowly; order, in the second wave, not applied).
fn first_watch(e: &Value) -> bool {
    phase_started(e, "health")
}

fn rollback_started(e: &Value) -> bool {
    e["event"] == "rollback-started"
}

/// Stopped during the first wave's watch of release 2: status tells which services run what,
/// the next deploy (release 3) converges every service, nothing stays pending.
async fn stopped_mid_release(stand: Stand, stop: Stop) {
    let (code, _, err) = stand.run(&["deploy"], stand.images(1, None)).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, reached, events, err) =
        stand.run_and_stop(&["deploy"], stand.images(2, Some("slowstart")), first_watch, stop).await;
    assert!(reached, "the watch never started: {events:?}\n{err}");
    let (one, two) = (stand.id(1), stand.id(2));
    let history = stand.history().await;
    match stop {
        Stop::Kill9 => {
            assert_eq!(code, None, "killed: {err}");
            // Mixed: the first wave runs release 2, `order` (second wave) release 1.
            assert_eq!(stand.versions(&[1, 2]).await["order"], 1);
            stand.assert_status_is_true(&[(1, &one), (2, &two)]).await;
        }
        Stop::Term | Stop::Int => {
            assert_eq!(code, Some(130), "{err}");
            let finished = events.iter().find(|e| e["event"] == "finished").unwrap().to_string();
            assert!(finished.contains("was cancelled and rolled back"), "{finished}");
            assert_eq!(history[&two], "rolled-back", "{history:?}");
            assert_eq!(stand.returned_to().await[&two], format!("→ {one}"));
            assert!(stand.versions(&[1]).await.values().all(|v| *v == 1));
            stand.assert_status_is_true(&[(1, &one)]).await;
            assert_eq!(stand.status().await.1["lock"], "free");
        }
        Stop::IntThenTerm => {
            assert_eq!(code, Some(130), "{err}");
            assert_eq!(history[&two], "interrupted", "{history:?}");
            stand.assert_status_is_true(&[(1, &one), (2, &two)]).await;
            let (_, notes) = stand.status().await;
            assert_eq!(notes["lock"], "free", "{notes:?}");
            assert!(notes["release"].starts_with(&format!("release {two} was interrupted")), "{notes:?}");
            assert!(events.iter().any(|e| e["event"] == "release-finished" && e["outcome"] == "interrupted"));
        }
    }
    // One next deploy converges every service; the stopped release is not pending.
    let (code, _, err) = stand.run(&["deploy"], stand.images(3, None)).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(stand.versions(&[3]).await.values().all(|v| *v == 3));
    stand.assert_status_is_true(&[(3, &stand.id(3))]).await;
    stand.assert_nothing_pending().await;
    if matches!(stop, Stop::Kill9) {
        assert_eq!(stand.history().await[&two], "interrupted");
    }
}

/// Stopped while an automatic rollback (user crash-loops) runs: status tells the truth and one
/// `rollback` brings every service to release 1, the last that ran healthy.
async fn stopped_during_rollback(stand: Stand, stop: Stop) {
    let (code, _, err) = stand.run(&["deploy"], stand.images(1, None)).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, reached, events, err) =
        stand.run_and_stop(&["deploy"], stand.images(2, Some("crashloop")), rollback_started, stop).await;
    assert!(reached, "no rollback started: {events:?}\n{err}");
    let (one, two) = (stand.id(1), stand.id(2));
    match stop {
        Stop::Kill9 => assert_eq!(code, None),
        // A first signal lets the rollback (towards a known state) finish: exit 5 as usual.
        Stop::Term | Stop::Int => assert!(matches!(code, Some(5 | 130)), "{code:?} {err}"),
        // Abandoned (130, `interrupted`), unless the rollback had already ended (5, `rolled-back`):
        // ECS restores a revision in one call, sometimes before the signals arrive.
        Stop::IntThenTerm => {
            let recorded = stand.history().await[&two].clone();
            match code {
                Some(130) => assert_eq!(recorded, "interrupted"),
                Some(5) => assert_eq!(recorded, "rolled-back"),
                other => panic!("{other:?}: {err}"),
            }
        }
    }
    stand.assert_status_is_true(&[(1, &one), (2, &two)]).await;
    let (code, _, err) = stand.run(&["rollback"], Vec::new()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(stand.versions(&[1]).await.values().all(|v| *v == 1));
    stand.assert_nothing_pending().await;
}

/// After the plan (before the lock and any change).
fn after_plan(e: &Value) -> bool {
    e["event"] == "planned"
}

/// Between the waves: the first wave (user, payment, notification) runs healthy, the second
/// (order, after user) is about to be applied.
fn between_waves(e: &Value) -> bool {
    e["event"] == "service" && e["message"].as_str().is_some_and(|m| m.starts_with("wave 2/"))
}

/// While the succeeded release is being recorded (prune / scale-down, then the record).
fn during_record(e: &Value) -> bool {
    phase_started(e, "record")
}

/// Stopped at `at` during release 2: whatever ran then, `status` names the release each service
/// really runs, one next deploy (release 3) converges every service, and no record stays
/// `pending`. A signal ends with 130 (or 0 when the release had nothing left to undo: stopped
/// while recording a release that already ran healthy).
async fn stopped_at(stand: Stand, at: fn(&Value) -> bool, stop: Stop) {
    let (code, _, err) = stand.run(&["deploy"], stand.images(1, None)).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, reached, events, err) =
        stand.run_and_stop(&["deploy"], stand.images(2, Some("slowstart")), at, stop).await;
    assert!(reached, "the point was never reached: {events:?}\n{err}");
    match stop {
        Stop::Kill9 => assert_eq!(code, None, "killed: {err}"),
        Stop::Term | Stop::Int | Stop::IntThenTerm => {
            assert!(matches!(code, Some(0 | 130)), "{code:?}: {err}");
        }
    }
    let (one, two) = (stand.id(1), stand.id(2));
    stand.assert_status_is_true(&[(1, &one), (2, &two)]).await;
    let (code, events, err) = stand.run(&["deploy"], stand.images(3, None)).await;
    assert_eq!(code, Some(0), "{err}");
    // Its id: release 2 has none when it was stopped before the lock (nothing was recorded).
    let three = events
        .iter()
        .find(|e| e["event"] == "release-started")
        .and_then(|e| e["release_id"].as_str())
        .expect("a release-started event")
        .to_owned();
    assert!(stand.versions(&[3]).await.values().all(|v| *v == 3));
    stand.assert_status_is_true(&[(3, &three)]).await;
    stand.assert_nothing_pending().await;
}

macro_rules! both {
    ($($name:ident: $case:ident($($arg:expr),*);)*) => {
        mod eks {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $case(Stand::eks().await, $($arg),*).await;
                }
            )*
        }
        mod ecs {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $case(Stand::ecs().await, $($arg),*).await;
                }
            )*
        }
    };
}

both! {
    kill_9_mid_release: stopped_mid_release(Stop::Kill9);
    sigterm_mid_release_undoes_it: stopped_mid_release(Stop::Term);
    sigint_then_sigterm_mid_release_is_interrupted: stopped_mid_release(Stop::IntThenTerm);
    kill_9_during_rollback: stopped_during_rollback(Stop::Kill9);
    sigint_then_sigterm_during_rollback: stopped_during_rollback(Stop::IntThenTerm);
    sigint_mid_release_undoes_it: stopped_mid_release(Stop::Int);
    kill_9_after_the_plan: stopped_at(after_plan, Stop::Kill9);
    sigint_after_the_plan: stopped_at(after_plan, Stop::Int);
    kill_9_between_waves: stopped_at(between_waves, Stop::Kill9);
    sigint_between_waves: stopped_at(between_waves, Stop::Int);
    kill_9_while_recording: stopped_at(during_record, Stop::Kill9);
    sigint_while_recording: stopped_at(during_record, Stop::Int);
}
