//! The `deployer` binary end to end on EKS, as users run it: the fake Kubernetes API server
//! (kubeconfig context), moto for STS, and in Actions mode the fake OIDC endpoint and fake
//! GitHub/Slack servers. Deploy, automatic rollback, history, status and manual rollback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support;
use crate::support::fake_k8s::FakeK8s;
use crate::support::moto::Moto;

const SERVICES: [&str; 4] = ["user", "order", "payment", "notification"];

fn digest(tag: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(tag.as_bytes())))
}

/// The example product with a `local` environment on the fake cluster.
fn product(extra_env_yaml: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    support::copy_tree(&support::root().join("examples/shop"), tmp.path());
    std::fs::write(
        tmp.path().join("environments/dev.yaml"),
        format!(
            "account_id: \"222222222222\"\nregion: eu-west-1\nrole:\n  arn: arn:aws:iam::222222222222:role/shop-deployer-dev\n\
             target:\n  eks: {{ context: fake, namespace: shop-dev }}\ntimeouts: {{ rollout: 2m, lock: 1m }}\n\
             health: {{ bake_time: 1s }}\n{extra_env_yaml}"
        ),
    )
    .unwrap();
    tmp
}

/// `--image` arguments pinning every service to `version` (optionally with a behaviour marker).
fn images(version: &str, markers: &[(&str, &str)]) -> Vec<String> {
    SERVICES
        .iter()
        .flat_map(|svc| {
            let marker = markers.iter().find(|(s, _)| s == svc).map(|(_, m)| format!("{m}/"));
            let reference = format!(
                "registry.local/{}shop/{svc}@{}",
                marker.unwrap_or_default(),
                digest(&format!("{svc}-{version}"))
            );
            ["--image".to_owned(), format!("{svc}={reference}")]
        })
        .collect()
}

struct Stand {
    fake: FakeK8s,
    moto: Moto,
    product: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Stand {
    async fn start(extra_env_yaml: &str) -> Self {
        let fake = FakeK8s::start(0.2);
        fake.namespace("shop-dev").await;
        Self {
            fake,
            moto: Moto::start(),
            product: product(extra_env_yaml),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the binary (blocking, off the async runtime so the fakes keep serving).
    async fn run(&self, args: Vec<String>, env: Vec<(String, String)>) -> Output {
        let mut cmd = support::deployer(self.home.path());
        cmd.current_dir(self.product.path()).env("KUBECONFIG", &self.fake.kubeconfig).args(&args);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn args(cmd: &[&str], extra: Vec<String>) -> Vec<String> {
    cmd.iter().map(|s| (*s).to_owned()).chain(extra).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_fail_roll_back_history_status_and_manual_rollback_through_the_cli() {
    let stand = Stand::start("").await;
    let deploy =
        |version: &str, markers: &[(&str, &str)]| args(&["deploy", "--env", "dev"], images(version, markers));

    let o = stand.run(deploy("1", &[]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("Plan for shop → dev"), "{out}");

    // A crash-looping user service: detected, every service back on release 1, exit code 5.
    let o = stand.run(deploy("2", &[("user", "crashloop")]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}\n{err}");
    assert!(
        err.contains("error: release dev.2 failed and was rolled back to dev.1: service `user`: crash loop (Deployment/user pod user-"),
        "{err}"
    );

    let o = stand.run(args(&["history", "--env", "dev"], vec![]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let rows: Vec<Vec<&str>> = out.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..2], ["dev.2", "rolled-back"], "{out}");
    assert_eq!(rows[0][rows[0].len() - 2..], ["→", "dev.1"], "{out}");
    assert_eq!(rows[1][..2], ["dev.1", "succeeded"], "{out}");

    let o = stand.run(args(&["status", "--env", "dev"], vec![]), vec![]).await;
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    for svc in SERVICES {
        let d = digest(&format!("{svc}-1"));
        assert!(
            out.lines().any(|l| l.starts_with(svc) && l.contains(&d[..19]) && l.ends_with("in sync")),
            "{svc}: {out}"
        );
    }

    // Release 3, then a manual rollback: back to release 1, the last known-good before it.
    assert_eq!(stand.run(deploy("3", &[]), vec![]).await.status.code(), Some(0));
    let o = stand.run(args(&["rollback", "--env", "dev"], vec![]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let o = stand.run(args(&["status", "--env", "dev"], vec![]), vec![]).await;
    let (out, _) = text(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with("user") && l.contains(&digest("user-1")[..19]) && l.contains("dev.4")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_deadline_failure_rolls_back_with_exit_5_under_a_zero_rollout_timeout() {
    // Recording 12 through the CLI: never-ready user pods and a 20 s (x 0.2) progress deadline;
    // the rollback re-uses release 1's ReplicaSets and the controller's first status of the new
    // generation still says ProgressDeadlineExceeded (the fake's default, as the real one did).
    // `timeouts.rollout: 0s` is no overall deadline: the progress deadline decides.
    let stand = Stand::start("").await;
    let env = stand.product.path().join("environments/dev.yaml");
    let yaml = std::fs::read_to_string(&env).unwrap().replace("rollout: 2m", "rollout: 0s");
    std::fs::write(&env, yaml).unwrap();
    for svc in SERVICES {
        let base = stand.product.path().join(format!("services/{svc}/k8s/base/deployment.yaml"));
        let yaml = std::fs::read_to_string(&base).unwrap();
        assert!(yaml.contains("progressDeadlineSeconds: 120"), "{yaml}");
        std::fs::write(&base, yaml.replace("progressDeadlineSeconds: 120", "progressDeadlineSeconds: 20"))
            .unwrap();
    }
    let deploy =
        |version: &str, markers: &[(&str, &str)]| args(&["deploy", "--env", "dev"], images(version, markers));
    let o = stand.run(deploy("1", &[]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");

    let o = stand.run(deploy("2", &[("user", "notready")]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}\n{err}");
    assert!(err.contains("release dev.2 failed and was rolled back to dev.1"), "{err}");
    // The same words on both platforms, and the controller's own message.
    assert!(err.contains("not ready before the deadline"), "{err}");
    assert!(err.contains("has timed out progressing"), "{err}");
    let o = stand.run(args(&["history", "--env", "dev"], vec![]), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let rows: Vec<Vec<&str>> = out.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..2], ["dev.2", "rolled-back"], "{out}");
    assert_eq!(rows[0][rows[0].len() - 2..], ["→", "dev.1"], "{out}");
    let o = stand.run(args(&["status", "--env", "dev"], vec![]), vec![]).await;
    let (out, _) = text(&o);
    let user = digest("user-1");
    assert!(
        out.lines().any(|l| l.starts_with("user") && l.contains(&user[..19]) && l.ends_with("in sync")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_gated_environment_needs_confirmation_from_a_terminal() {
    let stand = Stand::start("approval: { required: true, github_environment: production }\n").await;
    let o = stand.run(args(&["deploy", "--env", "dev"], images("1", &[])), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(err.contains("--yes"), "{err}");
    let o = stand.run(args(&["deploy", "--env", "dev", "--yes"], images("1", &[])), vec![]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_at_a_terminal_is_asked_and_their_answer_counts() {
    let stand = Stand::start("approval: { required: true, github_environment: production }\n").await;
    // A real terminal (util-linux `script` gives the binary a pseudo-terminal as stdin, stdout
    // and stderr); the answer is typed into it.
    let run = |answer: &'static str, version: &str| {
        let script = support::system_bin("script");
        let line = format!(
            "stty cols 120 rows 40; {} deploy --env dev {}",
            assert_cmd::cargo::cargo_bin("deployer").display(),
            images(version, &[]).join(" ")
        );
        let log = stand.home.path().join(format!("typescript-{version}"));
        let mut cmd = std::process::Command::new(script);
        cmd.args(["-q", "-e", "-c", &line])
            .arg(&log)
            .current_dir(stand.product.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", stand.home.path())
            .env("TERM", "xterm-256color")
            .env("DEPLOYER_KUSTOMIZE", support::kubectl())
            .env("KUBECONFIG", &stand.fake.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        for (k, v) in stand.moto.env() {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
            let status = child.wait().unwrap();
            (status.code(), std::fs::read_to_string(&log).unwrap())
        })
    };
    let question = "environment `dev` requires approval. deploy `dev` now? type `yes` or the environment name to confirm:";
    let (code, seen) = run("no\n", "1").await.unwrap();
    assert!(seen.contains(question), "the question was not shown: {seen}");
    assert_eq!(code, Some(3), "{seen}");
    let (code, seen) = run("yes\n", "2").await.unwrap();
    assert!(seen.contains(question), "{seen}");
    assert_eq!(code, Some(0), "{seen}");
    let history = stand.run(args(&["history", "--env", "dev"], vec![]), vec![]).await;
    let out = text(&history).0;
    assert!(out.lines().nth(2).is_some_and(|l| l.starts_with("dev.1") && l.contains("succeeded")), "{out}");
}

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_text(&p));
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push((p, t));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_actions_no_secret_appears_anywhere() {
    let stand = Stand::start(
        "notifications:\n  github: { deployments: true, pr_comment: true, environment_url: \"https://dev.shop.example.com\" }\n  slack: { webhook_url_env: SLACK_WEBHOOK_URL }\n",
    )
    .await;
    let oidc = support::oidc::FakeOidc::start(
        "sts.amazonaws.com",
        support::oidc::github_claims("sts.amazonaws.com", None),
    )
    .await;
    let github = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/repos/acme/shop/deployments"))
        .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 7})))
        .mount(&github)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/repos/acme/shop/deployments/7/statuses"))
        .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&github)
        .await;
    let slack = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;

    let runner = tempfile::tempdir().unwrap();
    let summary = runner.path().join("summary.md");
    let output = runner.path().join("output");
    let github_token = "ghs_SecretGithubToken0123456789abcdef";
    let webhook = format!("{}/services/T0000/B0000/SecretWebhookPart0123456789", slack.uri());
    let request = oidc.request();
    let env: Vec<(String, String)> = [
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("CI", "true".to_owned()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request.url.clone()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request.bearer.clone()),
        ("GITHUB_API_URL", github.uri()),
        ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
        ("GITHUB_REPOSITORY", "acme/shop".to_owned()),
        ("GITHUB_SHA", "2f6b1c0ffee0ddba11ab1eb0a710ad5ca1ab1e00".to_owned()),
        ("GITHUB_RUN_ID", "4242".to_owned()),
        ("GITHUB_RUN_ATTEMPT", "1".to_owned()),
        ("GITHUB_EVENT_NAME", "push".to_owned()),
        ("GITHUB_ACTOR", "octocat".to_owned()),
        ("GITHUB_TOKEN", github_token.to_owned()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("GITHUB_OUTPUT", output.display().to_string()),
        ("SLACK_WEBHOOK_URL", webhook.clone()),
        ("RUNNER_TEMP", runner.path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // No static AWS keys in Actions: the OIDC token is the only way in.
    let mut cmd_env = env.clone();
    cmd_env.push(("AWS_ACCESS_KEY_ID".into(), String::new()));
    cmd_env.push(("AWS_SECRET_ACCESS_KEY".into(), String::new()));
    let o = stand.run(args(&["deploy", "--env", "dev"], images("1", &[])), cmd_env).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(oidc.issued() >= 1, "the OIDC token was not requested");

    // What was announced for masking, and what must have been.
    let masked: Vec<String> =
        out.lines().filter_map(|l| l.strip_prefix("::add-mask::")).map(str::to_owned).collect();
    for must in [github_token, webhook.as_str(), request.bearer.as_str()] {
        assert!(masked.iter().any(|m| m == must), "not masked: {must}\n{out}");
    }
    assert!(
        masked.iter().any(|m| m.matches('.').count() == 2 && m.len() > 100),
        "the OIDC JWT was not masked"
    );
    assert!(masked.len() >= 6, "expected the JWT and the STS credentials masked too: {masked:?}");
    // No secret anywhere: stdout (outside the mask commands), stderr, the summary, the outputs,
    // and every file deployer may have written under the runner's temp and home.
    let first_mask = out.lines().position(|l| l.starts_with("::add-mask::")).unwrap();
    let rest: Vec<&str> = out.lines().filter(|l| !l.starts_with("::add-mask::")).collect();
    let mut places: Vec<(String, String)> =
        vec![("stdout".into(), rest.join("\n")), ("stderr".into(), err.clone())];
    places.extend(files_text(runner.path()).into_iter().map(|(p, t)| (p.display().to_string(), t)));
    places.extend(files_text(stand.home.path()).into_iter().map(|(p, t)| (p.display().to_string(), t)));
    assert!(places.iter().any(|(p, t)| p.ends_with("summary.md") && !t.is_empty()), "no job summary written");
    for secret in &masked {
        for (place, t) in &places {
            assert!(!t.contains(secret.as_str()), "secret leaked into {place}");
        }
    }
    // Masks come first: nothing but masks and the first group precede them.
    assert!(
        out.lines().take(first_mask).all(|l| l.starts_with("::group::")
            || l.is_empty()
            || l.starts_with("✓")
            || l.starts_with("::endgroup::")),
        "{out}"
    );
    let outputs: BTreeMap<String, String> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    assert_eq!(outputs.get("result").map(String::as_str), Some("success"));
    assert_eq!(outputs.get("release-id").map(String::as_str), Some("dev.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_live_diff_of_each_object() {
    let stand = Stand::start("").await;
    // Before anything runs: every object is a create, the change is a first deploy.
    let o = stand.run(args(&["plan", "--env", "dev"], images("1", &[])), vec![]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("apply:  first deploy\n          + create ConfigMap/user-config-6tc6d4c9hd (shop-dev)"),
        "{out}"
    );
    assert_eq!(
        stand.run(args(&["deploy", "--env", "dev"], images("1", &[])), vec![]).await.status.code(),
        Some(0)
    );

    // Release 2 changes only the images: the plan shows exactly that, object by object.
    let md = stand.product.path().join("plan.md");
    let o = stand
        .run(args(&["plan", "--env", "dev", "--markdown", md.to_str().unwrap()], images("2", &[])), vec![])
        .await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let user_old = format!("registry.local/shop/user@{}", digest("user-1"));
    let user_new = format!("registry.local/shop/user@{}", digest("user-2"));
    assert!(out.contains(&format!("apply:  update from {user_old}")), "{out}");
    assert!(out.contains("= unchanged ConfigMap/user-config-6tc6d4c9hd (shop-dev)"), "{out}");
    assert!(out.contains("= unchanged Service/user (shop-dev)"), "{out}");
    assert!(out.contains("~ update Deployment/user (shop-dev)"), "{out}");
    assert!(out.contains(&format!("-        image: {user_old}")), "{out}");
    assert!(out.contains(&format!("+        image: {user_new}")), "{out}");
    // Only the image line changes in the whole diff (defaulted fields are on both sides).
    // Diff lines are the ones indented under "~ update".
    let changed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("              "))
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+')) && !l.starts_with("---") && !l.starts_with("+++")
        })
        .collect();
    assert_eq!(changed.len(), 8, "{changed:#?}");
    assert!(changed.iter().all(|l| l.contains("image: registry.local/shop/")), "{changed:#?}");
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(
        markdown.contains("- update `Deployment/user (shop-dev)`\n\n```diff\n--- live/Deployment/user"),
        "{markdown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_passes_on_exactly_the_digests_dev_verified() {
    let stand = Stand::start("").await;
    // prod: the same fake cluster here, its own namespace and a stricter gate.
    std::fs::write(
        stand.product.path().join("environments/prod.yaml"),
        "account_id: \"222222222222\"\nregion: eu-west-1\nrole:\n  arn: arn:aws:iam::222222222222:role/shop-deployer-dev\n\
         target:\n  eks: { context: fake, namespace: shop }\nscan: { max: { critical: 0, high: 0 } }\n",
    )
    .unwrap();
    let promote = || args(&["promote", "--from", "dev", "--to", "prod"], vec![]);
    let o = stand.run(promote(), vec![]).await;
    let (out, err) = text(&o);
    // Nothing to promote is a usage error (2), not a scan-gate refusal (4): nothing was scanned.
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("environment `dev` has no succeeded release to promote"), "{err}");

    assert_eq!(
        stand.run(args(&["deploy", "--env", "dev"], images("7", &[])), vec![]).await.status.code(),
        Some(0)
    );
    let output = stand.home.path().join("github_output");
    let o = stand.run(promote(), vec![("GITHUB_OUTPUT".into(), output.display().to_string())]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let expected: Vec<String> = SERVICES
        .iter()
        .map(|s| format!("{s}=registry.local/shop/{s}@{}", digest(&format!("{s}-7"))))
        .collect();
    for line in &expected {
        assert!(out.contains(line.as_str()), "{line} missing in {out}");
    }
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.starts_with("images<<ghadelimiter_"), "{written}");
    let mut sorted = expected.clone();
    sorted.sort();
    for line in sorted {
        assert!(written.contains(&format!("{line}\n")), "{written}");
    }
}

/// The plan is the contract: a deploy renders each service once (the plan's render is what the
/// engine applies), however kustomize processes are batched; the shop renders in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_renders_each_service_once() {
    let stand = Stand::start("").await;
    let log = stand.home.path().join("kustomize.log");
    // Named kubectl*, so deployer runs it as `kubectl kustomize`.
    let wrapper = stand.home.path().join("kubectl-counting");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# one line per kustomize process, with the overlays it was asked to build\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            support::kubectl().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = stand
        .run(
            args(&["deploy", "--env", "dev"], images("1", &[])),
            vec![("DEPLOYER_KUSTOMIZE".into(), wrapper.display().to_string())],
        )
        .await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let renders: Vec<&str> = calls.lines().filter(|l| l.contains("kustomize")).collect();
    assert_eq!(renders.len(), 1, "one kustomize process for the whole deploy: {calls}");
}

/// The example's `order` migration through the binary: release 1 runs it before anything is
/// applied; a failing migration in release 2 stops the release with exit 8, nothing applied, its
/// log tail on stderr (human output) and, in the GitHub output, in an error annotation and the
/// job summary's Hooks section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_hook_stops_the_release_with_its_log_tail_in_stderr_and_the_summary() {
    let stand = Stand::start("").await;
    let o = stand.run(args(&["deploy", "--env", "dev"], images("1", &[])), Vec::new()).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("[order] pre-deploy hook `migrate` of `order` succeeded"), "{err}");

    let config = stand.product.path().join("deployer.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    let failing = r#"command: ["sh", "-c", "echo applying 0042_orders_index; echo 'ERROR: relation orders does not exist'; exit 3"]"#;
    assert!(yaml.contains(r#"command: ["/srv/order/migrate", "up"]"#));
    std::fs::write(&config, yaml.replace(r#"command: ["/srv/order/migrate", "up"]"#, failing)).unwrap();

    let o = stand.run(args(&["deploy", "--env", "dev"], images("2", &[])), Vec::new()).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(8), "{out}\n{err}");
    assert!(err.contains("pre-deploy hook `migrate` of `order` failed"), "{err}");
    assert!(err.contains("exit 3"), "{err}");
    assert!(err.contains("    | ERROR: relation orders does not exist"), "the log tail on stderr:\n{err}");
    assert!(err.contains("stopped before anything was applied"), "{err}");
    // Nothing of release 2 was applied: every service still runs release 1.
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(stand.fake.client().await, "shop-dev");
    for svc in SERVICES {
        let d = api.get(svc).await.unwrap();
        let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
        assert!(image.ends_with(&digest(&format!("{svc}-1"))), "{svc} runs {image}");
    }

    let runner = tempfile::tempdir().unwrap();
    let summary = runner.path().join("summary.md");
    let o = stand
        .run(
            args(&["deploy", "--env", "dev", "--output", "github"], images("3", &[])),
            vec![("GITHUB_STEP_SUMMARY".into(), summary.display().to_string())],
        )
        .await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(8), "{out}\n{err}");
    assert!(out.contains("::error title=pre-deploy hook migrate of order failed::"), "{out}");
    assert!(out.contains("ERROR: relation orders does not exist"), "{out}");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("#### Hooks"), "{summary}");
    assert!(summary.contains("| `migrate` | `order` | pre-deploy | ❌"), "{summary}");
    assert!(
        summary.contains("ERROR: relation orders does not exist"),
        "the log tail in the summary:\n{summary}"
    );
}
