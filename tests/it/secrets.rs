//! Secrets never printed (issue 15): a product whose overlay carries Kubernetes Secrets (one
//! written with `data`, one with `stringData`; between two releases one value of each changes
//! and one stays) is deployed, planned and deployed again through the binary against the fake
//! Kubernetes API server, moto, the fake OIDC endpoint and fake GitHub/Slack servers. Every
//! place deployer writes to or sends — stdout, stderr, the job summary, the step outputs, the
//! `--markdown` plan (the PR comment), the JSON events, every GitHub and Slack request body — is
//! searched for every Secret value and every credential it was given or obtained, in full, by
//! its first 8 characters and base64-encoded: none may appear. The keys whose values changed
//! must be named, and every credential must be announced with `::add-mask::` in every command.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support;
use crate::support::fake_k8s::FakeK8s;
use crate::support::moto::Moto;
use crate::support::oidc::FakeOidc;

/// Every value the fixture's Secrets hold, in either release.
const SECRET_VALUES: [&str; 6] = [
    "Zq8f3LmN0pR2x7Vt-first",
    "Hk4w9TsX7cB1m2Qa-second",
    "u5Nc0rTj6WeY3pLd-unchanged",
    "Pm7Rx2Kq9Ld4Vb6N-first",
    "Jt3Wy8Fs1Hc5Gz0X-second",
    "Qe4Ua9Io2Ol7Ik3M-unchanged",
];

const GITHUB_TOKEN: &str = "ghs_Gh7TokenVault0123456789abcdefXYZ";
const REGISTRY_PASSWORD: &str = "RegPw-8s7D6f5G4h3J2k1L";
const KUBE_TOKEN: &str = "kube-bearer-Xc9Vb8Nm7Lk6Jh5G";
const SLACK_BOT_TOKEN: &str = "xoxb-5555-Sl4ckB0tT0kenVault";
const AWS_SECRET: &str = "AwsSecretKey-Qw1Er2Ty3Ui4Op5As";
const SHA: &str = "2f6b1c0ffee0ddba11ab1eb0a710ad5ca1ab1e00";

fn digest(tag: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(tag.as_bytes())))
}

fn image_args() -> Vec<String> {
    vec!["--image".into(), format!("api=registry.local/vault/api@{}", digest("api-1"))]
}

/// The secret part of the Slack webhook URL (its first 8 characters are `http://1`, which
/// every local URL starts with, so the path is searched for in its three forms instead).
const WEBHOOK_SECRET: &str = "W3bh00kS3cretVault0123";

/// A secret in the forms searched for: in full, its first 8 characters, base64-encoded.
fn forms(secret: &str) -> Vec<String> {
    let mut f = vec![secret.to_owned(), base64::engine::general_purpose::STANDARD.encode(secret)];
    if !secret.starts_with("http") {
        f.push(secret.chars().take(8).collect());
    }
    f
}

/// The environment file: the fake cluster, with GitHub reporting and Slack (`slack` is the
/// `notifications.slack` flow map).
fn env_yaml(slack: &str) -> String {
    format!(
        "account_id: \"222222222222\"\nregion: eu-west-1\nrole:\n  arn: arn:aws:iam::222222222222:role/vault-deployer-dev\n\
         target:\n  eks: {{ context: fake, namespace: vault-dev }}\ntimeouts: {{ rollout: 2m, lock: 1m }}\n\
         health: {{ bake_time: 1s }}\nnotifications:\n  github: {{ deployments: true, pr_comment: true }}\n  slack: {slack}\n"
    )
}

struct Stand {
    _fake: FakeK8s,
    moto: Moto,
    oidc: FakeOidc,
    github: MockServer,
    slack: MockServer,
    product: tempfile::TempDir,
    home: tempfile::TempDir,
    /// The runner's files: job summary, step outputs, the `--markdown` plan, the event.
    runner: tempfile::TempDir,
    /// The kubeconfig (it holds the token, so it is not searched).
    kubeconfig: PathBuf,
    _kube_dir: tempfile::TempDir,
    webhook: String,
}

impl Stand {
    async fn start() -> Self {
        let fake = FakeK8s::start(0.2);
        fake.namespace("vault-dev").await;
        // The fake accepts any bearer token: this one is distinctive, so a leak is found.
        let kube_dir = tempfile::tempdir().unwrap();
        let kubeconfig = kube_dir.path().join("kubeconfig");
        let text = std::fs::read_to_string(&fake.kubeconfig).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|l| match l.split_once("token: ") {
                Some((indent, _)) if indent.trim().is_empty() => format!("{indent}token: {KUBE_TOKEN}"),
                _ => l.to_owned(),
            })
            .collect();
        assert!(text.iter().any(|l| l.ends_with(KUBE_TOKEN)), "{text:?}");
        std::fs::write(&kubeconfig, text.join("\n")).unwrap();

        let product = tempfile::tempdir().unwrap();
        support::copy_tree(&support::root().join("tests/fixtures/secrets"), product.path());
        let oidc =
            FakeOidc::start("sts.amazonaws.com", support::oidc::github_claims("sts.amazonaws.com", None))
                .await;
        let github = MockServer::start().await;
        for (verb, route, status, body) in [
            ("POST", "^/repos/acme/shop/deployments$", 201, serde_json::json!({"id": 101})),
            ("POST", r"^/repos/acme/shop/deployments/\d+/statuses$", 201, serde_json::json!({"id": 1})),
            ("GET", "^/repos/acme/shop/deployments$", 200, serde_json::json!([])),
            ("GET", "^/repos/acme/shop/issues/7/comments$", 200, serde_json::json!([])),
            ("POST", "^/repos/acme/shop/issues/7/comments$", 201, serde_json::json!({"id": 555})),
            ("PATCH", r"^/repos/acme/shop/issues/comments/\d+$", 200, serde_json::json!({"id": 555})),
        ] {
            Mock::given(method(verb))
                .and(path_regex(route))
                .respond_with(ResponseTemplate::new(status).set_body_json(body))
                .mount(&github)
                .await;
        }
        let slack = MockServer::start().await;
        for route in ["/chat.postMessage", "/chat.update"] {
            Mock::given(method("POST"))
                .and(path(route))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"ok": true, "channel": "C0VAULT", "ts": "1763881920.000100"}),
                ))
                .mount(&slack)
                .await;
        }
        Mock::given(method("POST"))
            .and(path_regex("^/services/"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        let webhook = format!("{}/services/T0VAULT/B0VAULT/{WEBHOOK_SECRET}", slack.uri());
        let runner = tempfile::tempdir().unwrap();
        std::fs::write(
            runner.path().join("event.json"),
            r#"{"number": 7, "pull_request": {"number": 7, "head": {"sha": "2f6b1c0f"}}}"#,
        )
        .unwrap();
        Self {
            _fake: fake,
            moto: Moto::start(),
            oidc,
            github,
            slack,
            product,
            home: tempfile::tempdir().unwrap(),
            runner,
            kubeconfig,
            _kube_dir: kube_dir,
            webhook,
        }
    }

    fn set_slack(&self, slack: &str) {
        std::fs::write(self.product.path().join("environments/dev.yaml"), env_yaml(slack)).unwrap();
    }

    /// The second release's Secrets: one value of each changes, the other stays.
    fn change_secrets(&self) {
        let overlay = self.product.path().join("services/api/k8s/overlays/dev");
        for f in ["secret-db.yaml", "secret-keys.yaml"] {
            std::fs::copy(self.product.path().join("changed").join(f), overlay.join(f)).unwrap();
        }
    }

    /// A pull-request job in GitHub Actions: OIDC only (no static keys), every credential set.
    fn actions_env(&self) -> Vec<(String, String)> {
        let request = self.oidc.request();
        let r = self.runner.path();
        [
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("CI", "true".to_owned()),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", request.url.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request.bearer.clone()),
            ("GITHUB_API_URL", self.github.uri()),
            ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
            ("GITHUB_REPOSITORY", "acme/shop".to_owned()),
            ("GITHUB_SHA", SHA.to_owned()),
            ("GITHUB_RUN_ID", "4242".to_owned()),
            ("GITHUB_RUN_ATTEMPT", "1".to_owned()),
            ("GITHUB_EVENT_NAME", "pull_request".to_owned()),
            ("GITHUB_EVENT_PATH", r.join("event.json").display().to_string()),
            ("GITHUB_ACTOR", "octocat".to_owned()),
            ("GITHUB_TOKEN", GITHUB_TOKEN.to_owned()),
            ("GITHUB_STEP_SUMMARY", r.join("summary.md").display().to_string()),
            ("GITHUB_OUTPUT", r.join("output").display().to_string()),
            ("RUNNER_TEMP", r.display().to_string()),
            ("SLACK_WEBHOOK_URL", self.webhook.clone()),
            ("SLACK_BOT_TOKEN", SLACK_BOT_TOKEN.to_owned()),
            ("SLACK_API_URL", self.slack.uri()),
            ("DEPLOYER_REGISTRY_USERNAME", "vault-ci".to_owned()),
            ("DEPLOYER_REGISTRY_PASSWORD", REGISTRY_PASSWORD.to_owned()),
            ("AWS_ACCESS_KEY_ID", String::new()),
            ("AWS_SECRET_ACCESS_KEY", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A terminal outside Actions: static AWS keys (moto takes any secret), the registry password.
    fn local_env() -> Vec<(String, String)> {
        [
            ("GITHUB_SHA", SHA),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            ("DEPLOYER_REGISTRY_USERNAME", "vault-ci"),
            ("DEPLOYER_REGISTRY_PASSWORD", REGISTRY_PASSWORD),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Runs the binary (blocking, off the async runtime so the fakes keep serving).
    async fn run(&self, args: &[&str], env: Vec<(String, String)>) -> Output {
        let mut cmd = support::deployer(self.home.path());
        cmd.current_dir(self.product.path()).env("KUBECONFIG", &self.kubeconfig).args(args);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }
}

/// What one run showed, with the `::add-mask::` commands taken out (they are the one place a
/// secret is meant to be written: to the runner, which then hides it).
struct Shown {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    masks: Vec<String>,
    /// stdout as written, mask commands included.
    raw: String,
}

fn shown(o: &Output) -> Shown {
    let out = String::from_utf8_lossy(&o.stdout);
    let masks = out.lines().filter_map(|l| l.strip_prefix("::add-mask::")).map(str::to_owned).collect();
    Shown {
        code: o.status.code(),
        stdout: out.lines().filter(|l| !l.starts_with("::add-mask::")).collect::<Vec<_>>().join("\n"),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        masks,
        raw: out.into_owned(),
    }
}

impl Shown {
    fn assert_code(&self, code: i32, what: &str) {
        assert_eq!(self.code, Some(code), "{what}\n{}\n{}", self.stdout, self.stderr);
    }

    /// In Actions: every credential in `must` was announced, and those in the process
    /// environment before any other output line.
    fn assert_masked_first(&self, must: &[&str], what: &str) {
        let out = &self.raw;
        for secret in must {
            let line = format!("::add-mask::{secret}");
            let at = out.lines().position(|l| l == line);
            assert!(at.is_some(), "{what}: not masked: {secret}\n{out}");
        }
        let first_other = out.lines().position(|l| !l.starts_with("::add-mask::")).unwrap_or(usize::MAX);
        for secret in [GITHUB_TOKEN, REGISTRY_PASSWORD, support::oidc::REQUEST_TOKEN] {
            let line = format!("::add-mask::{secret}");
            let at = out.lines().position(|l| l == line).unwrap_or(usize::MAX);
            assert!(at < first_other, "{what}: {secret} masked only after other output\n{out}");
        }
    }
}

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_text(&p));
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push((p.display().to_string(), t));
        }
    }
    out
}

async fn bodies(server: &MockServer, name: &str) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (format!("{name} {} {}", r.method, r.url.path()), String::from_utf8_lossy(&r.body).into_owned())
        })
        .collect()
}

/// The diff lines (`-`/`+`, not the `---`/`+++` headers) of the plan text that mention `key`.
fn changed_lines<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+')) && !l.starts_with("---") && !l.starts_with("+++")
        })
        .filter(|l| l.contains(&format!("{key}:")))
        .collect()
}

/// The keys whose values changed are named (both sides), the unchanged ones are not changes.
fn assert_keys_reported(text: &str, what: &str) {
    for key in ["DB_PASSWORD", "API_KEY"] {
        let lines = changed_lines(text, key);
        assert!(
            lines.iter().any(|l| l.starts_with('-')) && lines.iter().any(|l| l.starts_with('+')),
            "{what}: the change of {key} is not reported:\n{text}"
        );
    }
    for key in ["DB_USER", "SIGNING_SALT"] {
        assert!(changed_lines(text, key).is_empty(), "{what}: unchanged {key} shown as a change:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_and_credentials_appear_nowhere() {
    let stand = Stand::start().await;
    let mut places: Vec<(String, String)> = Vec::new();
    let mut masks: Vec<String> = Vec::new();
    let mut record = |what: &str, s: &Shown| {
        places.push((format!("{what}: stdout"), s.stdout.clone()));
        places.push((format!("{what}: stderr"), s.stderr.clone()));
        masks.extend(s.masks.iter().cloned());
    };
    let env_masks = [GITHUB_TOKEN, REGISTRY_PASSWORD, support::oidc::REQUEST_TOKEN, KUBE_TOKEN];

    // Release 1 from a pull-request job (Slack by webhook): every object is new.
    stand.set_slack("{ webhook_url_env: SLACK_WEBHOOK_URL }");
    let deploy: Vec<String> =
        ["deploy", "--env", "dev"].map(str::to_owned).into_iter().chain(image_args()).collect();
    let deploy: Vec<&str> = deploy.iter().map(String::as_str).collect();
    let o = stand.run(&deploy, stand.actions_env()).await;
    let s = shown(&o);
    s.assert_code(0, "first deploy");
    s.assert_masked_first(&[&env_masks[..], &[stand.webhook.as_str()]].concat(), "first deploy");
    assert!(stand.oidc.issued() >= 1, "the OIDC token was not requested");
    record("first deploy", &s);

    // The Secrets change: one value of each, the other stays.
    stand.change_secrets();

    // The plan a pull request gets: job log, job summary and the Markdown for the PR comment.
    let md = stand.runner.path().join("plan.md");
    let plan: Vec<String> = ["plan", "--env", "dev", "--markdown", md.to_str().unwrap()]
        .map(str::to_owned)
        .into_iter()
        .chain(image_args())
        .collect();
    let plan: Vec<&str> = plan.iter().map(String::as_str).collect();
    let o = stand.run(&plan, stand.actions_env()).await;
    let s = shown(&o);
    s.assert_code(0, "plan in actions");
    s.assert_masked_first(&env_masks, "plan in actions");
    assert_keys_reported(&s.stdout, "plan in actions (log)");
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.contains("- update `Secret/api-db (vault-dev)`"), "{markdown}");
    assert!(markdown.contains("- update `Secret/api-keys (vault-dev)`"), "{markdown}");
    assert_keys_reported(&markdown, "plan markdown");
    let summary = std::fs::read_to_string(stand.runner.path().join("summary.md")).unwrap();
    assert_keys_reported(&summary, "plan job summary");
    record("plan in actions", &s);

    // The same plan at a terminal (static AWS keys), as text, then as JSON events.
    let images = image_args();
    let local: Vec<&str> = plan[..3].iter().copied().chain(images.iter().map(String::as_str)).collect();
    let o = stand.run(&local, Stand::local_env()).await;
    let s = shown(&o);
    s.assert_code(0, "plan at a terminal");
    assert!(s.masks.is_empty(), "no mask commands outside Actions: {:?}", s.masks);
    assert!(s.stdout.contains("~ update Secret/api-db (vault-dev)"), "{}", s.stdout);
    assert!(s.stdout.contains("~ update Secret/api-keys (vault-dev)"), "{}", s.stdout);
    assert!(s.stdout.contains("= unchanged Deployment/api (vault-dev)"), "{}", s.stdout);
    assert_keys_reported(&s.stdout, "plan at a terminal");
    let from = s.stdout.find("Plan for").expect("a plan");
    insta::assert_snapshot!("secrets-plan-redacted", &s.stdout[from..]);
    record("plan at a terminal", &s);

    let json: Vec<&str> = local.iter().copied().chain(["--output", "json"]).collect();
    let o = stand.run(&json, Stand::local_env()).await;
    let s = shown(&o);
    s.assert_code(0, "plan as json");
    let planned: serde_json::Value = s
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "planned")
        .expect("a planned event");
    let objects = planned["plan"]["services"][0]["objects"].as_array().unwrap();
    let db = objects.iter().find(|o| o["object"]["name"] == "api-db").unwrap();
    assert_eq!(db["change"], "update", "{db}");
    assert_keys_reported(&objects.iter().filter_map(|o| o["diff"].as_str()).collect::<String>(), "json diff");
    record("plan as json", &s);

    // Release 2 (Slack by bot token): its job summary carries the plan with the Secret diffs.
    stand.set_slack("{ token_env: SLACK_BOT_TOKEN, channel: C0VAULT }");
    let o = stand.run(&deploy, stand.actions_env()).await;
    let s = shown(&o);
    s.assert_code(0, "second deploy");
    s.assert_masked_first(&[&env_masks[..], &[SLACK_BOT_TOKEN]].concat(), "second deploy");
    let summary = std::fs::read_to_string(stand.runner.path().join("summary.md")).unwrap();
    assert_keys_reported(&summary, "deploy job summary");
    record("second deploy", &s);

    // The read-only commands announce the credentials they read too.
    for cmd in ["status", "history"] {
        let o = stand.run(&[cmd, "--env", "dev"], stand.actions_env()).await;
        let s = shown(&o);
        s.assert_code(0, cmd);
        s.assert_masked_first(&env_masks, cmd);
        record(cmd, &s);
    }

    // Diagnostics at their most talkative (`RUST_LOG=trace`: the Kubernetes client and the AWS
    // SDK log requests) go through the same masker.
    for (args, what) in
        [(&["-vv", "status", "--env", "dev"][..], "status -vv"), (&plan[..], "plan with RUST_LOG=trace")]
    {
        let mut env = stand.actions_env();
        env.push(("RUST_LOG".into(), "trace".into()));
        let o = stand.run(args, env).await;
        let s = shown(&o);
        s.assert_code(0, what);
        assert!(
            s.stderr.contains(" TRACE ") && s.stderr.contains(" DEBUG "),
            "{what}: no diagnostics\n{}",
            s.stderr
        );
        record(what, &s);
    }

    // Everything written and sent.
    places.extend(files_text(stand.runner.path()));
    places.extend(files_text(stand.home.path()));
    places.extend(
        files_text(stand.product.path())
            .into_iter()
            .filter(|(p, _)| !p.contains("/services/") && !p.contains("/changed/")),
    );
    let github = bodies(&stand.github, "github").await;
    let slack = bodies(&stand.slack, "slack").await;
    assert!(
        github.iter().any(|(r, _)| r.contains("/issues/7/comments")),
        "no PR comment was sent: {github:?}"
    );
    assert!(slack.iter().any(|(r, _)| r.contains("/services/")), "no Slack webhook message: {slack:?}");
    assert!(slack.iter().any(|(r, _)| r.contains("chat.postMessage")), "no Slack bot message: {slack:?}");
    places.extend(github);
    places.extend(slack);
    assert!(
        places.iter().any(|(p, t)| p.ends_with("output") && t.contains("result=success")),
        "no step outputs"
    );

    // Every Secret value, every credential given, every one obtained (JWT, STS keys: the masks).
    let mut secrets: Vec<String> = SECRET_VALUES.iter().map(|s| (*s).to_owned()).collect();
    secrets.extend(
        [
            GITHUB_TOKEN,
            REGISTRY_PASSWORD,
            KUBE_TOKEN,
            SLACK_BOT_TOKEN,
            AWS_SECRET,
            support::oidc::REQUEST_TOKEN,
        ]
        .map(str::to_owned),
    );
    secrets.push(stand.webhook.clone());
    secrets.push(WEBHOOK_SECRET.to_owned());
    secrets.extend(masks.iter().cloned());
    assert!(
        masks.iter().any(|m| m.matches('.').count() == 2 && m.len() > 100),
        "the OIDC JWT was not masked"
    );
    secrets.sort();
    secrets.dedup();
    let mut leaks = Vec::new();
    for secret in &secrets {
        for form in forms(secret) {
            for (place, text) in &places {
                if text.contains(&form) {
                    let at = text.find(&form).unwrap_or_default();
                    let around: String = text[at.saturating_sub(60)..].chars().take(140).collect();
                    leaks.push(format!("{form:?} (of a secret) in {place}: …{around}…"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
