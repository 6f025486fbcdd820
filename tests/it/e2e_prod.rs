//! The prod path as the workflows run it, in GitHub Actions mode: a dev release, `promote`, the
//! approval-guarded prod deploy of exactly those digests (the job's OIDC `environment` claim),
//! then a prod release that fails its bake check, is rolled back on every service, and is
//! reported so to GitHub (Deployment status `failure`) and Slack.

use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support;
use crate::support::fake_k8s::FakeK8s;
use crate::support::moto::Moto;

const SERVICES: [&str; 4] = ["user", "order", "payment", "notification"];

fn digest(tag: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(tag.as_bytes())))
}

fn dev_images(version: &str) -> Vec<String> {
    SERVICES
        .iter()
        .flat_map(|s| {
            [
                "--image".to_owned(),
                format!("{s}=registry.local/shop/{s}@{}", digest(&format!("{s}-{version}"))),
            ]
        })
        .collect()
}

struct Prod {
    fake: FakeK8s,
    moto: Moto,
    product: tempfile::TempDir,
    home: tempfile::TempDir,
    github: MockServer,
    slack: MockServer,
    health: MockServer,
}

async fn setup() -> Prod {
    let fake = FakeK8s::start(0.2);
    fake.namespace("shop-dev").await;
    fake.namespace("shop").await;
    let product = tempfile::tempdir().unwrap();
    support::copy_tree(&support::root().join("examples/shop"), product.path());
    let health = MockServer::start().await;
    let slack = MockServer::start().await;
    let github = MockServer::start().await;
    let role = "role:\n  arn: arn:aws:iam::222222222222:role/shop-deployer\n";
    std::fs::write(
        product.path().join("environments/dev.yaml"),
        format!("account_id: \"222222222222\"\nregion: eu-west-1\n{role}target:\n  eks: {{ context: fake, namespace: shop-dev }}\nhealth: {{ bake_time: 1s }}\n"),
    )
    .unwrap();
    std::fs::write(
        product.path().join("environments/prod.yaml"),
        format!(
            "account_id: \"222222222222\"\nregion: eu-west-1\n{role}target:\n  eks: {{ context: fake, namespace: shop }}\n\
             health:\n  bake_time: 2s\n  http: [{{ url: \"{}/healthz\" }}]\nscan: {{ max: {{ critical: 0, high: 0 }} }}\n\
             approval: {{ required: true, github_environment: production }}\n\
             notifications:\n  github: {{ deployments: true, pr_comment: true, environment_url: \"https://shop.example.com\" }}\n  slack: {{ webhook_url_env: SLACK_WEBHOOK_URL }}\n",
            health.uri()
        ),
    )
    .unwrap();
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/deployments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 41})))
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/repos/acme/shop/deployments/41/statuses$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    Prod { fake, moto: Moto::start(), product, home: tempfile::tempdir().unwrap(), github, slack, health }
}

impl Prod {
    /// Runs the binary; `actions` = (OIDC request URL, token) for a job in a GitHub environment.
    async fn run(
        &self,
        args: Vec<String>,
        actions: Option<(&str, &str)>,
        output: Option<&std::path::Path>,
    ) -> std::process::Output {
        let mut cmd = support::deployer(self.home.path());
        cmd.current_dir(self.product.path()).env("KUBECONFIG", &self.fake.kubeconfig).args(&args);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        if let Some((url, token)) = actions {
            cmd.env("GITHUB_ACTIONS", "true")
                .env("ACTIONS_ID_TOKEN_REQUEST_URL", url)
                .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", token)
                .env("AWS_ACCESS_KEY_ID", "")
                .env("AWS_SECRET_ACCESS_KEY", "")
                .env("GITHUB_API_URL", self.github.uri())
                .env("GITHUB_REPOSITORY", "acme/shop")
                .env("GITHUB_SHA", "2f6b1c0ffee0ddba11ab1eb0a710ad5ca1ab1e00")
                .env("GITHUB_RUN_ID", "4242")
                .env("GITHUB_EVENT_NAME", "push")
                .env("GITHUB_TOKEN", "ghs_token")
                .env("SLACK_WEBHOOK_URL", format!("{}/services/T/B/x", self.slack.uri()));
        }
        if let Some(o) = output {
            cmd.env("GITHUB_OUTPUT", o);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }
}

fn a(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `promote` then a prod deploy with the promoted images, as the release workflow does.
async fn release_to_prod(p: &Prod, oidc: (&str, &str)) -> std::process::Output {
    let output = p.home.path().join(format!("promote-{}", rand_suffix()));
    let o = p.run(a(&["promote", "--from", "dev", "--to", "prod"]), Some(oidc), Some(&output)).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let text = std::fs::read_to_string(&output).unwrap();
    let images: Vec<String> =
        text.lines().filter(|l| l.contains('=') && l.contains("@sha256:")).map(str::to_owned).collect();
    assert_eq!(images.len(), 4, "{text}");
    let args: Vec<String> = a(&["deploy", "--env", "prod"])
        .into_iter()
        .chain(images.iter().flat_map(|i| ["--image".to_owned(), i.clone()]))
        .collect();
    p.run(args, Some(oidc), None).await
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

async fn prod_images(client: &kube::Client) -> Vec<String> {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "shop");
    let mut out = Vec::new();
    for s in SERVICES {
        let d = api.get(s).await.unwrap();
        out.push(d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_promote_guarded_prod_then_a_failing_prod_release_is_rolled_back_and_reported() {
    let p = setup().await;
    Mock::given(path("/healthz"))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(1000)
        .mount(&p.health)
        .await;
    let prod_job = support::oidc::FakeOidc::start(
        "sts.amazonaws.com",
        support::oidc::github_claims("sts.amazonaws.com", Some("production")),
    )
    .await;
    let branch_job = support::oidc::FakeOidc::start(
        "sts.amazonaws.com",
        support::oidc::github_claims("sts.amazonaws.com", None),
    )
    .await;
    let prod_req = prod_job.request();
    let prod_oidc = (prod_req.url.as_str(), prod_req.bearer.as_str());

    // dev release 1 (from a terminal), then prod.1 = exactly those digests.
    assert_eq!(
        p.run([a(&["deploy", "--env", "dev"]), dev_images("1")].concat(), None, None).await.status.code(),
        Some(0)
    );
    let o = release_to_prod(&p, prod_oidc).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v1: Vec<String> =
        SERVICES.iter().map(|s| format!("registry.local/shop/{s}@{}", digest(&format!("{s}-1")))).collect();
    assert_eq!(prod_images(&p.fake.client().await).await, v1);

    // A job outside the production environment cannot deploy prod, whatever it passes.
    let req = branch_job.request();
    let o = p
        .run([a(&["deploy", "--env", "prod"]), dev_images("1")].concat(), Some((&req.url, &req.bearer)), None)
        .await;
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("production"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // dev release 2 is fine in dev; in prod its bake check fails: rolled back, reported.
    assert_eq!(
        p.run([a(&["deploy", "--env", "dev"]), dev_images("2")].concat(), None, None).await.status.code(),
        Some(0)
    );
    p.health.reset().await;
    Mock::given(path("/healthz")).respond_with(ResponseTemplate::new(503)).mount(&p.health).await;
    p.slack.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&p.slack)
        .await;
    let before = p.github.received_requests().await.unwrap().len();
    let o = release_to_prod(&p, prod_oidc).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("rolled back to prod.1"), "{out}");
    // Every service of prod is on release 1 again.
    assert_eq!(prod_images(&p.fake.client().await).await, v1);
    // GitHub: the new Deployment ends `failure`; Slack heard about the rollback.
    let statuses: Vec<serde_json::Value> = p.github.received_requests().await.unwrap()[before..]
        .iter()
        .filter(|r| r.url.path().ends_with("/statuses"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(statuses.last().unwrap()["state"], "failure", "{statuses:#?}");
    let slack: Vec<String> = p
        .slack
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(slack.iter().any(|b| b.to_lowercase().contains("rolled back")), "{slack:#?}");
}
