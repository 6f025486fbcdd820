//! Nothing changes until everything is checked (issue 15): the broken-input corpus in
//! `tests/fixtures/broken/` (`cases.yaml`: case → files → command line → exit code → words) runs
//! through the binary against recording stand-ins: the fake Kubernetes API server and moto, each
//! behind `tests/fixtures/broken/recording_proxy.py`, which logs every request. Every case must
//! end with its documented exit code and a message with its words, and **no mutating request**
//! may reach either stand-in: Kubernetes sees only GETs (and server-side dry runs,
//! `dryRun=All`, which change nothing: the plan's diff), AWS only STS and
//! Describe/Get/List/BatchGet reads.
//!
//! Before the corpus one valid release is deployed (directly, not through the proxies), so the
//! cases that would prune (an overlay that renders nothing, an empty service list, a release
//! that deletes more than it keeps) meet live objects: afterwards every one of them still exists.
//! The messages users read are kept in one snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::fake_k8s::FakeK8s;
use crate::support::moto::Moto;
use crate::support::{self, ChildGuard, spawn_listening, venv_bin};

/// One line of `cases.yaml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    case: String,
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for the reader of cases.yaml")]
    note: Option<String>,
    files: bool,
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    exit: i32,
    words: Vec<String>,
}

/// A digest for the prebuilt images (another registry's, given by digest: no registry call).
const DIGEST: &str = "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";

fn corpus() -> PathBuf {
    support::root().join("tests/fixtures/broken")
}

/// One request as the recording proxy saw it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Seen {
    method: String,
    path: String,
    target: String,
    action: String,
}

impl Seen {
    /// The AWS action: the JSON protocol's `X-Amz-Target`, the Query protocol's `Action=`, or
    /// for REST APIs (EKS) the method and path.
    fn aws_action(&self) -> String {
        if let Some((_, a)) = self.target.rsplit_once('.') {
            a.to_owned()
        } else if !self.action.is_empty() {
            self.action.clone()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }

    fn aws_reads_only(&self) -> bool {
        let a = self.aws_action();
        ["AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity", "GetSessionToken"]
            .contains(&a.as_str())
            || ["Describe", "Get", "List", "BatchGet", "GET "].iter().any(|p| a.starts_with(p))
    }

    fn kubernetes_reads_only(&self) -> bool {
        self.method == "GET" || (self.method == "PATCH" && self.path.contains("dryRun=All"))
    }
}

/// `recording_proxy.py` in front of a stand-in.
struct Recorder {
    url: String,
    _guard: ChildGuard,
}

impl Recorder {
    fn start(upstream_port: u16, name: &str) -> Self {
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(corpus().join("recording_proxy.py"))
            .args(["--upstream", &format!("127.0.0.1:{upstream_port}")]);
        let (guard, port) = spawn_listening(cmd, name, Duration::from_secs(20));
        Self { url: format!("http://127.0.0.1:{port}"), _guard: guard }
    }

    /// Every request since the last call, then forgets them.
    async fn take(&self) -> Vec<Seen> {
        let client = reqwest::Client::new();
        let seen: Vec<Seen> =
            client.get(format!("{}/__recording", self.url)).send().await.unwrap().json().await.unwrap();
        client.post(format!("{}/__recording/reset", self.url)).send().await.unwrap();
        seen
    }
}

struct Stand {
    fake: FakeK8s,
    moto: Moto,
    kube: Recorder,
    aws: Recorder,
    /// A kubeconfig whose server is the Kubernetes recorder.
    recorded_kubeconfig: PathBuf,
    home: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Stand {
    async fn start() -> Self {
        let fake = FakeK8s::start(0.2);
        fake.namespace("shop-dev").await;
        let moto = Moto::start();
        let kube = Recorder::start(fake.port, "kubernetes recorder");
        let aws = Recorder::start(moto.port, "aws recorder");
        let dir = tempfile::tempdir().unwrap();
        let recorded_kubeconfig = dir.path().join("kubeconfig");
        let text = std::fs::read_to_string(&fake.kubeconfig).unwrap();
        let direct = format!("http://127.0.0.1:{}", fake.port);
        assert!(text.contains(&direct), "{text}");
        std::fs::write(&recorded_kubeconfig, text.replace(&direct, &kube.url)).unwrap();
        Self { fake, moto, kube, aws, recorded_kubeconfig, home: tempfile::tempdir().unwrap(), _dir: dir }
    }

    /// Runs the binary in `product` (blocking, off the async runtime so the stand-ins serve),
    /// through the recorders unless `direct`.
    async fn run(
        &self,
        product: &Path,
        args: &[String],
        env: &BTreeMap<String, String>,
        direct: bool,
    ) -> Output {
        let mut cmd = support::deployer(self.home.path());
        cmd.current_dir(product).args(args);
        let kubeconfig = if direct { self.fake.kubeconfig.clone() } else { self.recorded_kubeconfig.clone() };
        cmd.env("KUBECONFIG", kubeconfig);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        if !direct {
            cmd.env("AWS_ENDPOINT_URL", &self.aws.url);
        }
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd.timeout(Duration::from_mins(3));
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }

    /// The objects deployer owns in the environment's namespace, as `Kind/name`.
    async fn owned_objects(&self) -> Vec<String> {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::{ConfigMap, Service};
        use kube::api::{Api, ListParams};
        let client = self.fake.client().await;
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=deployer");
        let mut out = Vec::new();
        for d in Api::<Deployment>::namespaced(client.clone(), "shop-dev").list(&lp).await.unwrap() {
            out.push(format!("Deployment/{}", d.metadata.name.unwrap_or_default()));
        }
        for s in Api::<Service>::namespaced(client.clone(), "shop-dev").list(&lp).await.unwrap() {
            out.push(format!("Service/{}", s.metadata.name.unwrap_or_default()));
        }
        for c in Api::<ConfigMap>::namespaced(client, "shop-dev").list(&lp).await.unwrap() {
            out.push(format!("ConfigMap/{}", c.metadata.name.unwrap_or_default()));
        }
        out.sort();
        out
    }
}

fn images() -> Vec<String> {
    ["api", "web"]
        .iter()
        .flat_map(|s| ["--image".to_owned(), format!("{s}=registry.local/shop/{s}@{DIGEST}")])
        .collect()
}

/// A fresh copy of the valid product with the case's files over it.
fn product_for(case: &Entry) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&corpus().join("base"), dir.path());
    if case.files {
        let files = corpus().join("cases").join(&case.case);
        assert!(files.is_dir(), "case `{}` has `files: true` but no {}", case.case, files.display());
        support::copy_tree(&files, dir.path());
    }
    dir
}

/// What a user reads of a run: the problems, hints and warnings, without timings.
fn messages(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines()
        .map(str::trim_end)
        .filter(|l| {
            let t = l.trim_start();
            ["error", "hint", "warning"].iter().any(|w| t.starts_with(w))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_inputs_are_refused_before_any_change() {
    let cases: Vec<Entry> =
        serde_saphyr::from_str(&std::fs::read_to_string(corpus().join("cases.yaml")).unwrap()).unwrap();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let stand = Stand::start().await;

    // One good release, so that a case that would prune meets live objects.
    let good = tempfile::tempdir().unwrap();
    support::copy_tree(&corpus().join("base"), good.path());
    let mut args: Vec<String> = ["deploy", "--env", "dev", "--yes"].map(str::to_owned).to_vec();
    args.extend(images());
    let out = stand.run(good.path(), &args, &BTreeMap::new(), true).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the valid product deploys:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let before = stand.owned_objects().await;
    assert_eq!(
        before,
        ["ConfigMap/api-config", "Deployment/api", "Deployment/web", "Service/api", "Service/web"],
        "what the good release deployed"
    );
    stand.kube.take().await;
    stand.aws.take().await;

    let mut failures = Vec::new();
    let mut shown = String::new();
    for case in &cases {
        let product = product_for(case);
        let args: Vec<String> =
            case.args.iter().flat_map(|a| if a == "$IMAGES" { images() } else { vec![a.clone()] }).collect();
        let out = stand.run(product.path(), &args, &case.env, false).await;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let name = &case.case;
        if out.status.code() != Some(case.exit) {
            failures.push(format!("{name}: exit {:?}, expected {}\n{text}", out.status.code(), case.exit));
        }
        for w in &case.words {
            if !text.contains(w.as_str()) {
                failures.push(format!("{name}: no `{w}` in the output\n{text}"));
            }
        }
        for seen in stand.kube.take().await {
            if !seen.kubernetes_reads_only() {
                failures.push(format!("{name}: Kubernetes got {} {}", seen.method, seen.path));
            }
        }
        for seen in stand.aws.take().await {
            if !seen.aws_reads_only() {
                failures.push(format!("{name}: AWS got {}", seen.aws_action()));
            }
        }
        let tmp = product.path().display().to_string();
        let code = out.status.code().map_or_else(|| "none".to_owned(), |c| c.to_string());
        let _ = writeln!(shown, "── {name} (exit {code})\n{}", messages(&out).replace(&tmp, "<product>"));
    }
    assert!(failures.is_empty(), "{} problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
    assert_eq!(stand.owned_objects().await, before, "a broken input deleted or added objects");
    insta::with_settings!({filters => vec![(r"/tmp/[^\s:`)']+", "<tmp>")]}, {
        insta::assert_snapshot!("broken-inputs-messages", shown);
    });
}
