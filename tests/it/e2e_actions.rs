//! `examples/shop` to dev as the workflow runs it, in GitHub Actions mode: the job's OIDC token
//! (fake endpoint) for the environment's role on moto, images built by buildah inside
//! `deployer deploy` and pushed by digest to an ECR stand-in that is one registry
//! (docker-registry over TLS with ECR credentials behind tests/fakes/ecr_bridge.py, which
//! registers each manifest in moto's ECR so the scan gate judges exactly what was pushed),
//! real kustomize, the fake Kubernetes API server or the moto ECS controller, and fake GitHub
//! and Slack (bot: one message posted, then updated in place).
//!
//! A refused scan gate changes nothing anywhere: not one object in the cluster namespace, no
//! release record, no lock, no task definition; and nothing is announced as a release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support;
use crate::support::ecr_bridge::{ACCOUNT, EcrRegistry};
use crate::support::moto::{Moto, REGION};
use crate::support::oidc::FakeOidc;

const SERVICES: [&str; 4] = ["user", "order", "payment", "notification"];
const SHA: &str = "2f6b1c0ffee0ddba11ab1eb0a710ad5ca1ab1e00";
const SHA2: &str = "9a3d5e7f00112233445566778899aabbccddeeff";

/// What an environment file adds for Actions: the role the job's token is exchanged for, and
/// GitHub + Slack (bot) reporting.
fn actions_env_yaml() -> String {
    format!(
        "role:\n  arn: arn:aws:iam::{ACCOUNT}:role/shop-deployer-dev\n\
         notifications:\n  github: {{ deployments: true, pr_comment: true, environment_url: \"https://dev.shop.example.com\" }}\n  \
         slack: {{ token_env: SLACK_BOT_TOKEN, channel: \"#deploys\" }}\n"
    )
}

/// The runner around one job: OIDC, GitHub, Slack, the registry and the build storage.
struct Runner {
    oidc: FakeOidc,
    github: MockServer,
    slack: MockServer,
    ecr: EcrRegistry,
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Runner {
    async fn start(moto: &Moto) -> Self {
        let oidc =
            FakeOidc::start("sts.amazonaws.com", support::oidc::github_claims("sts.amazonaws.com", None))
                .await;
        let github = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/shop/deployments"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 7})))
            .mount(&github)
            .await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/shop/deployments/7/statuses"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
            .mount(&github)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
            .mount(&github)
            .await;
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/chat.postMessage"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"ok": true, "channel": "C0DEPLOYS", "ts": "1700000000.000100"}),
            ))
            .mount(&slack)
            .await;
        Mock::given(method("POST"))
            .and(path("/chat.update"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&slack)
            .await;
        let dir = tempfile::tempdir().unwrap();
        // buildah's storage through the standard containers-storage seam: a root of this job's
        // own, as a runner would configure it (the machine's /var/lib/containers stays untouched).
        let storage = dir.path().join("containers");
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                storage.join("root").display(),
                storage.join("run").display()
            ),
        )
        .unwrap();
        Self {
            oidc,
            github,
            slack,
            ecr: EcrRegistry::start(moto, ACCOUNT),
            dir,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn summary(&self) -> PathBuf {
        self.dir.path().join("summary.md")
    }

    fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    /// The job's environment (`GITHUB_SHA` = `sha`); no static AWS keys: OIDC is the way in.
    fn env(&self, moto: &Moto, sha: &str) -> Vec<(String, String)> {
        let request = self.oidc.request();
        let mut env: Vec<(String, String)> = moto.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.extend(
            [
                ("AWS_ACCESS_KEY_ID", String::new()),
                ("AWS_SECRET_ACCESS_KEY", String::new()),
                ("GITHUB_ACTIONS", "true".to_owned()),
                ("CI", "true".to_owned()),
                ("ACTIONS_ID_TOKEN_REQUEST_URL", request.url.clone()),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request.bearer.clone()),
                ("GITHUB_API_URL", self.github.uri()),
                ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
                ("GITHUB_REPOSITORY", "acme/shop".to_owned()),
                ("GITHUB_SHA", sha.to_owned()),
                ("GITHUB_RUN_ID", "4242".to_owned()),
                ("GITHUB_RUN_ATTEMPT", "1".to_owned()),
                ("GITHUB_EVENT_NAME", "push".to_owned()),
                ("GITHUB_ACTOR", "octocat".to_owned()),
                ("GITHUB_TOKEN", "ghs_token".to_owned()),
                ("GITHUB_STEP_SUMMARY", self.summary().display().to_string()),
                ("GITHUB_OUTPUT", self.output().display().to_string()),
                ("RUNNER_TEMP", self.dir.path().display().to_string()),
                ("SLACK_BOT_TOKEN", "xoxb-test-token".to_owned()),
                ("SLACK_API_URL", self.slack.uri()),
                ("DEPLOYER_BUILDER", "buildah".to_owned()),
                ("CONTAINERS_STORAGE_CONF", self.dir.path().join("storage.conf").display().to_string()),
                ("DEPLOYER_REGISTRY_CA", self.ecr.ca.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
        );
        env
    }

    /// `deployer deploy --env ENV` (no `--image`: every service is built) from `product`.
    async fn deploy(
        &self,
        moto: &Moto,
        product: &Path,
        env: &str,
        sha: &str,
        extra: &[(&str, &str)],
    ) -> Output {
        self.run(moto, product, &["deploy", "--env", env], sha, extra).await
    }

    /// `deployer ARGS` as a step of this job.
    async fn run(
        &self,
        moto: &Moto,
        product: &Path,
        args: &[&str],
        sha: &str,
        extra: &[(&str, &str)],
    ) -> Output {
        // Each run starts with fresh step files, as each workflow step does.
        let _ = std::fs::remove_file(self.summary());
        let _ = std::fs::remove_file(self.output());
        let mut cmd = support::deployer(self.home.path());
        cmd.arg("--config").arg(product.join("deployer.yaml")).args(args);
        for (k, v) in self.env(moto, sha) {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }

    /// The image each service was pushed as for commit `sha`: `<bridge>/shop/<svc>@<digest>`,
    /// the digest read back from docker-registry by skopeo.
    fn pushed(&self, sha: &str) -> BTreeMap<String, String> {
        SERVICES
            .iter()
            .map(|s| {
                let digest = self.ecr.digest_of(&format!("shop/{s}:{}", &sha[..12]));
                ((*s).to_owned(), format!("{}/shop/{s}@{digest}", self.ecr.host))
            })
            .collect()
    }

    fn outputs(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.output())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    }

    /// GitHub: (path, JSON body) of every POST, in order.
    async fn github_posts(&self) -> Vec<(String, serde_json::Value)> {
        self.github
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "POST")
            .map(|r| (r.url.path().to_owned(), serde_json::from_slice(&r.body).unwrap_or_default()))
            .collect()
    }

    /// Slack: (API method, JSON body) of every call, in order.
    async fn slack_calls(&self) -> Vec<(String, serde_json::Value)> {
        self.slack
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (r.url.path().trim_start_matches('/').to_owned(), serde_json::from_slice(&r.body).unwrap())
            })
            .collect()
    }

    /// The Deployment statuses posted, in order.
    async fn statuses(&self) -> Vec<String> {
        self.github_posts()
            .await
            .iter()
            .filter(|(p, _)| p.ends_with("/statuses"))
            .map(|(_, b)| b["state"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn text(o: &Output) -> String {
    format!("{}\n--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A copy of examples/shop whose registry is `ecr` (account [`ACCOUNT`]).
fn shop(ecr: &EcrRegistry, dir: &Path) {
    support::copy_tree(&support::root().join("examples/shop"), dir);
    ecr.configure(&dir.join("deployer.yaml"), ACCOUNT);
}

/// A release reported as it ran: one GitHub Deployment for the commit with statuses ending in
/// `final_state`, one Slack message posted and then updated in place to the outcome.
async fn assert_reported(runner: &Runner, sha: &str, environment: &str, final_state: &str, headline: &str) {
    let posts = runner.github_posts().await;
    let created: Vec<&serde_json::Value> =
        posts.iter().filter(|(p, _)| p == "/repos/acme/shop/deployments").map(|(_, b)| b).collect();
    assert_eq!(created.len(), 1, "{posts:#?}");
    assert_eq!(created[0]["ref"], sha);
    assert_eq!(created[0]["environment"], environment);
    assert_eq!(created[0]["auto_merge"], false);
    // The contract's stream: queued (build, push, scan) → in_progress → the outcome.
    assert_eq!(runner.statuses().await, ["queued", "in_progress", final_state]);

    let calls = runner.slack_calls().await;
    assert_eq!(calls.first().map(|c| c.0.as_str()), Some("chat.postMessage"), "{calls:#?}");
    assert_eq!(calls[0].1["channel"], "#deploys");
    let updates: Vec<&serde_json::Value> =
        calls.iter().filter(|(m, _)| m == "chat.update").map(|(_, b)| b).collect();
    // One message, edited in place: every later call is an update of it.
    assert_eq!(updates.len(), calls.len() - 1, "{calls:#?}");
    assert!(!updates.is_empty(), "the message was never updated: {calls:#?}");
    for u in &updates {
        assert_eq!(u["channel"], "C0DEPLOYS");
        assert_eq!(u["ts"], "1700000000.000100");
    }
    let last = updates.last().unwrap();
    assert_eq!(last["text"], headline, "{last}");
}

/// The job summary's per-service table and Mermaid timeline; the step outputs.
fn assert_summary_and_outputs(runner: &Runner, release_id: &str, images: &BTreeMap<String, String>) {
    let summary = std::fs::read_to_string(runner.summary()).unwrap();
    // The plan (written when it is made) comes first; the release's table after it.
    let table = &summary[summary.find("| Service |").unwrap_or_else(|| panic!("{summary}"))..];
    for (svc, image) in images {
        let digest = image.rsplit_once('@').unwrap().1;
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{svc}` |")))
            .unwrap_or_else(|| panic!("{summary}"));
        assert!(row.contains(&digest[..19]) && row.ends_with("| ✅ healthy |"), "{row}");
    }
    // The Mermaid timeline has one finished bar per phase, from build to health.
    let start = summary.find("```mermaid\ngantt\n    dateFormat x\n").unwrap_or_else(|| panic!("{summary}"));
    let gantt = &summary[start..];
    let gantt = &gantt[..gantt[3..].find("```").unwrap() + 3];
    let bars: Vec<&str> = gantt
        .lines()
        .filter(|l| l.contains(" : done, "))
        .map(|l| l.trim().split(" (").next().unwrap())
        .collect();
    // The plan (observe + plan) comes after the push: it is computed on the pushed digests.
    for phase in ["build", "push", "observe", "plan", "scan gate", "apply", "health", "bake"] {
        assert!(bars.contains(&phase), "{phase} not in the timeline: {gantt}");
    }
    assert!(!gantt.contains(" : crit, "), "{gantt}");
    let outputs = runner.outputs();
    assert_eq!(outputs.get("result").map(String::as_str), Some("success"), "{outputs:?}");
    assert_eq!(outputs.get("release-id").map(String::as_str), Some(release_id), "{outputs:?}");
}

/// Every image is registered in moto's ECR under the digest docker-registry has for it.
async fn assert_in_ecr(moto: &Moto, images: &BTreeMap<String, String>) {
    let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    for (svc, image) in images {
        let digest = image.rsplit_once('@').unwrap().1;
        let d = ecr.describe_images().repository_name(format!("shop/{svc}")).send().await.unwrap();
        assert!(
            d.image_details().iter().any(|i| i.image_digest() == Some(digest)),
            "{svc}: {digest} not in ECR: {d:?}"
        );
    }
}

fn inject_critical(moto: &Moto, repository: &str, cve: &str) {
    // An empty imageId binds to the first image of the repository that asks: the one this
    // deploy builds and pushes.
    moto.control(
        "/moto-api/static/ecr/scan-finding-results",
        &serde_json::json!({"region": REGION, "results": [{
            "registryId": ACCOUNT,
            "repositoryName": repository,
            "imageId": {},
            "imageScanStatus": {"status": "COMPLETE", "description": "injected"},
            "imageScanFindings": {
                "findings": [{"name": cve, "severity": "CRITICAL", "uri": format!("https://nvd.nist.gov/vuln/detail/{cve}"),
                              "description": "remote code execution in libexample", "attributes": []}],
                "findingSeverityCounts": {"CRITICAL": 1}
            }
        }]}),
    );
}

// ------------------------------------------------------------------------------------ EKS

struct Eks {
    fake: support::fake_k8s::FakeK8s,
    moto: Moto,
    runner: Runner,
    product: tempfile::TempDir,
}

impl Eks {
    async fn start() -> Self {
        let fake = support::fake_k8s::FakeK8s::start(0.2);
        fake.namespace("shop-dev").await;
        let moto = Moto::start();
        let runner = Runner::start(&moto).await;
        let product = tempfile::tempdir().unwrap();
        shop(&runner.ecr, product.path());
        // The cluster's region is not the registry's: the gate and the ECR login must ask ECR
        // in the registry's region (moto keeps each region's ECR apart, as AWS does).
        std::fs::write(
            product.path().join("environments/dev.yaml"),
            format!(
                "account_id: \"{ACCOUNT}\"\nregion: eu-central-1\ntarget:\n  eks: {{ context: fake, namespace: shop-dev }}\n\
                 health: {{ bake_time: 1s }}\n{}",
                actions_env_yaml()
            ),
        )
        .unwrap();
        Self { fake, moto, runner, product }
    }

    async fn deploy(&self, sha: &str) -> Output {
        let kubeconfig = self.fake.kubeconfig.display().to_string();
        self.runner.deploy(&self.moto, self.product.path(), "dev", sha, &[("KUBECONFIG", &kubeconfig)]).await
    }

    async fn images(&self) -> BTreeMap<String, String> {
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(self.fake.client().await, "shop-dev");
        let mut out = BTreeMap::new();
        for s in SERVICES {
            let d = api.get(s).await.unwrap();
            out.insert(
                s.to_owned(),
                d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap(),
            );
        }
        out
    }

    /// Every object of every listable namespaced kind in `shop-dev`: kind/name → resourceVersion.
    fn objects(&self) -> BTreeMap<String, String> {
        let kubectl = |args: &[&str]| {
            let o = std::process::Command::new(support::kubectl())
                .env("KUBECONFIG", &self.fake.kubeconfig)
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        };
        let kinds: Vec<String> = kubectl(&["api-resources", "--namespaced", "--verbs=list", "-o", "name"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(kinds.iter().any(|k| k == "leases.coordination.k8s.io"), "{kinds:?}");
        let list: serde_json::Value =
            serde_json::from_str(&kubectl(&["get", &kinds.join(","), "-n", "shop-dev", "-o", "json"]))
                .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()),
                    o["metadata"]["resourceVersion"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_shop_to_dev_built_by_buildah_pushed_to_ecr_gated_deployed_and_reported() {
    let eks = Eks::start().await;
    let o = eks.deploy(SHA).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("::group::"), "{out}");

    // What runs is exactly what was built and pushed, pinned by the registry's digest.
    let pushed = eks.runner.pushed(SHA);
    assert_eq!(eks.images().await, pushed);
    for (svc, image) in &pushed {
        assert!(out.contains(&format!("[{svc}] pushed {}", image.rsplit_once('@').unwrap().1)), "{out}");
        // moto's default finding (one HIGH) passes the example's `max: { critical: 0 }`.
        assert!(out.contains(&format!("[{svc}] scan gate passed")), "{out}");
        assert!(out.contains(&format!("[{svc}] healthy")), "{out}");
    }
    assert_in_ecr(&eks.moto, &pushed).await;
    assert_summary_and_outputs(&eks.runner, "dev.1", &pushed);
    assert_reported(&eks.runner, SHA, "dev", "success", "✅ shop deployed to dev").await;
    let success =
        eks.runner.github_posts().await.into_iter().rfind(|(p, _)| p.ends_with("/statuses")).unwrap().1;
    assert_eq!(success["environment_url"], "https://dev.shop.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_a_refused_scan_gate_changes_nothing_anywhere() {
    let eks = Eks::start().await;
    let o = eks.deploy(SHA).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let running = eks.images().await;
    let before = eks.objects();
    assert!(before.keys().any(|k| k == "Deployment/payment"), "{before:#?}");
    assert!(!before.keys().any(|k| k.starts_with("Lease/")), "a lock was left by release 1: {before:#?}");
    let github_before = eks.runner.github_posts().await.len();
    let slack_before = eks.runner.slack_calls().await.len();

    // The next commit changes payment; its new image has a CRITICAL finding.
    std::fs::write(eks.product.path().join("services/payment/static/version.txt"), "2\n").unwrap();
    inject_critical(&eks.moto, "shop/payment", "CVE-2026-4242");
    let o = eks.deploy(SHA2).await;
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(eks.runner.outputs().get("result").map(String::as_str), Some("scan-gate-refused"));
    assert!(out.contains("::error title=scan gate refused payment::"), "{out}");
    // The job summary says what was refused and that nothing changed.
    let summary = std::fs::read_to_string(eks.runner.summary()).unwrap();
    assert!(summary.contains("## ⛔ shop: deploy to dev refused by the gate; nothing changed"), "{summary}");
    assert!(summary.contains("CVE-2026-4242"), "{summary}");
    assert!(
        summary.lines().any(|l| l.starts_with("| `payment` |") && l.contains("| ⛔ 1 critical |")),
        "{summary}"
    );
    // The error names the image, the CVE and how to fix it.
    assert!(
        out.contains("::error title=deployer::scan gate REFUSED for `dev`: shop/payment@sha256:"),
        "{out}{err}"
    );
    assert!(out.contains("CRITICAL  CVE-2026-4242"), "{out}");
    assert!(
        out.contains("hint: fix the blocking findings (upgrade the packages) or add a reviewed entry"),
        "{out}"
    );
    assert!(out.contains("`scan.ignore`"), "{out}");
    for svc in ["user", "order", "notification"] {
        assert!(out.contains(&format!("[{svc}] scan gate passed")), "{out}");
    }

    // Nothing in the namespace changed: not one object, no record, no lock.
    assert_eq!(eks.objects(), before);
    assert_eq!(eks.images().await, running);
    let kubeconfig = eks.fake.kubeconfig.display().to_string();
    let o = eks
        .runner
        .run(
            &eks.moto,
            eks.product.path(),
            &["history", "--env", "dev"],
            SHA2,
            &[("KUBECONFIG", &kubeconfig)],
        )
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let history = String::from_utf8_lossy(&o.stdout);
    assert!(history.contains("dev.1") && !history.contains("dev.2"), "{history}");

    // The gate stops the run before a release exists, so no GitHub Deployment and no Slack
    // message are made for it.
    assert_eq!(eks.runner.github_posts().await.len(), github_before);
    assert_eq!(eks.runner.slack_calls().await.len(), slack_before);
}

// ------------------------------------------------------------------------------------ ECS

async fn ecs_start() -> (support::ecs_env::EcsEnv, Runner) {
    let env = support::ecs_env::EcsEnv::start(support::ecs_env::Options::default()).await;
    let runner = Runner::start(&env.moto).await;
    let dir = env.product_dir();
    runner.ecr.configure(&dir.join("deployer.yaml"), ACCOUNT);
    let file = dir.join("environments/test.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{yaml}{}", actions_env_yaml())).unwrap();
    (env, runner)
}

async fn ecs_images(env: &support::ecs_env::EcsEnv) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in SERVICES {
        let td = env.service(&format!("shop-{s}")).await.task_definition().unwrap().to_owned();
        let d = env.ecs.describe_task_definition().task_definition(td).send().await.unwrap();
        out.insert(
            s.to_owned(),
            d.task_definition().unwrap().container_definitions()[0].image().unwrap().to_owned(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_shop_to_dev_built_by_buildah_pushed_to_ecr_gated_deployed_and_reported() {
    let (env, runner) = Box::pin(ecs_start()).await;
    let o = runner.deploy(&env.moto, &env.product_dir(), "test", SHA, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let pushed = runner.pushed(SHA);
    assert_eq!(ecs_images(&env).await, pushed);
    for svc in SERVICES {
        assert!(out.contains(&format!("[{svc}] scan gate passed")), "{out}");
        assert!(out.contains(&format!("[{svc}] healthy")), "{out}");
    }
    assert_in_ecr(&env.moto, &pushed).await;
    let release_id = runner.outputs().get("release-id").cloned().unwrap_or_default();
    // One release id format on both platforms: `<environment>.<n>`.
    assert_eq!(release_id, "test.1");
    assert_summary_and_outputs(&runner, &release_id, &pushed);
    assert_reported(&runner, SHA, "test", "success", "✅ shop deployed to test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_a_refused_scan_gate_changes_nothing_anywhere() {
    let (env, runner) = Box::pin(ecs_start()).await;
    let services = |env: &support::ecs_env::EcsEnv| {
        let ecs = env.ecs.clone();
        async move {
            let d = ecs
                .describe_services()
                .cluster(support::ecs_env::CLUSTER)
                .set_services(Some(SERVICES.iter().map(|s| format!("shop-{s}")).collect()))
                .send()
                .await
                .unwrap();
            d.services()
                .iter()
                .map(|s| (s.service_name().unwrap().to_owned(), s.task_definition().unwrap().to_owned()))
                .collect::<BTreeMap<_, _>>()
        }
    };
    let families = |env: &support::ecs_env::EcsEnv| {
        let ecs = env.ecs.clone();
        async move { ecs.list_task_definitions().send().await.unwrap().task_definition_arns().to_vec() }
    };
    let before = (services(&env).await, families(&env).await);
    inject_critical(&env.moto, "shop/order", "CVE-2026-0007");
    let o = runner.deploy(&env.moto, &env.product_dir(), "test", SHA, &[]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(runner.outputs().get("result").map(String::as_str), Some("scan-gate-refused"));
    assert!(out.contains("::error title=scan gate refused order::"), "{out}");
    assert!(
        out.contains("::error title=deployer::scan gate REFUSED for `test`: shop/order@sha256:"),
        "{out}"
    );
    assert!(out.contains("CRITICAL  CVE-2026-0007"), "{out}");
    assert!(out.contains("hint: fix the blocking findings"), "{out}");
    // Every service runs its task definition of before; none was registered.
    assert_eq!((services(&env).await, families(&env).await), before);
    assert_eq!(ecs_images(&env).await.values().filter(|i| i.contains(&runner.ecr.host)).count(), 0);
    // No release was recorded.
    let o = runner.run(&env.moto, &env.product_dir(), &["history", "--env", "test"], SHA, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&SHA[..7]), "{}", text(&o));
    assert!(runner.github_posts().await.is_empty());
    assert!(runner.slack_calls().await.is_empty());
}
