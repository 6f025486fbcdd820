//! The GitHub Action as a job runs it: action/install.sh against a local HTTP "release" server
//! (the binary is checked against action/SHA256SUMS committed in the action ref, never against
//! the release's own files; a wrong checksum, a missing asset or a branch ref fails closed and
//! runs nothing; a cached version needs no server), and action/run.sh with every input, asserting
//! its effect: the exact argv each input becomes, `args` with spaces, quotes and globs reaching
//! deployer verbatim, `role-arn` replacing the environment's role (moto + the fake OIDC
//! endpoint), and the step outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support;
use crate::support::moto::Moto;
use crate::support::oidc::FakeOidc;

const REPO: &str = "example-org/deployer";
const VERSION: &str = "v0.1.0";
const ASSET: &str = "deployer-x86_64-unknown-linux-musl";

/// A release server: `python -m http.server` over a directory laid out like GitHub's
/// `/<owner>/<repo>/releases/download/<tag>/<asset>`.
struct ReleaseServer {
    root: tempfile::TempDir,
    port: u16,
    _guard: support::ChildGuard,
}

impl ReleaseServer {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let mut cmd = Command::new(support::venv_bin("python"));
        cmd.args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().unwrap();
        support::wait_for_port(port, Duration::from_secs(20));
        Self { root, port, _guard: support::ChildGuard { child, name: "release server".into() } }
    }

    fn dir(&self) -> PathBuf {
        let d = self.root.path().join(REPO).join("releases/download").join(VERSION);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Publishes `binary` as the asset, with a release `SHA256SUMS` that matches it (which the
    /// action must not consult).
    fn publish(&self, binary: &Path) {
        let bytes = std::fs::read(binary).unwrap();
        std::fs::write(self.dir().join(ASSET), &bytes).unwrap();
        std::fs::write(self.dir().join("SHA256SUMS"), format!("{}  {ASSET}\n", sha256(&bytes))).unwrap();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An action ref (what `github.action_path` points at): this repository's action/ scripts and
/// VERSION, with `sums` as the committed action/SHA256SUMS.
fn action_ref(sums: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("action")).unwrap();
    for f in ["VERSION", "install.sh", "run.sh"] {
        std::fs::copy(support::root().join("action").join(f), dir.path().join("action").join(f)).unwrap();
    }
    std::fs::write(dir.path().join("action/SHA256SUMS"), sums).unwrap();
    dir
}

/// The action ref a release tag would be: SHA256SUMS pins this test's deployer binary.
fn released_ref() -> tempfile::TempDir {
    let sum = sha256(&std::fs::read(deployer_binary()).unwrap());
    action_ref(&format!("{sum}  {ASSET}\n{}  deployer-aarch64-unknown-linux-musl\n", "1".repeat(64)))
}

/// A runner's step environment.
struct Runner {
    tmp: tempfile::TempDir,
}

impl Runner {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["cache", "temp"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        Self { tmp }
    }

    fn output_file(&self) -> PathBuf {
        self.tmp.path().join("github_output")
    }

    fn install(&self, action: &Path, server_url: &str, arch: &str) -> Output {
        Command::new("bash")
            .arg(action.join("action/install.sh"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("ACTION_PATH", action)
            .env("ACTION_REPOSITORY", REPO)
            .env("GITHUB_SERVER_URL", server_url)
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", arch)
            .env("RUNNER_TOOL_CACHE", self.tmp.path().join("cache"))
            .env("RUNNER_TEMP", self.tmp.path().join("temp"))
            .env("GITHUB_OUTPUT", self.output_file())
            .output()
            .unwrap()
    }

    fn installed_path(&self) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.output_file()).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("path=")).map(PathBuf::from)
    }

    fn cached_binary(&self) -> PathBuf {
        self.tmp.path().join("cache/deployer").join(VERSION).join("x86_64-unknown-linux-musl/deployer")
    }
}

fn deployer_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deployer"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn verified_download_runs_the_binary_and_is_cached() {
    let server = ReleaseServer::start();
    server.publish(&deployer_binary());
    let action = released_ref();
    let runner = Runner::new();
    let out = runner.install(action.path(), &server.url(), "X64");
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("downloaded and verified against action/SHA256SUMS"), "{}", stdout(&out));
    let path = runner.installed_path().expect("path output");
    assert_eq!(path, runner.cached_binary());

    let run = Command::new("bash")
        .arg(action.path().join("action/run.sh"))
        .env("DEPLOYER_BIN", &path)
        .env("INPUT_COMMAND", "--version")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(stdout(&run).trim(), format!("deployer {}", env!("CARGO_PKG_VERSION")));

    // The version the action installs is the crate's (release.yml checks it equals the tag).
    let pinned = std::fs::read_to_string(support::root().join("action/VERSION")).unwrap();
    assert_eq!(pinned.trim(), format!("v{}", env!("CARGO_PKG_VERSION")));

    // Cached: a second install needs no server at all.
    drop(server);
    std::fs::remove_file(runner.output_file()).unwrap();
    let again = runner.install(action.path(), "http://127.0.0.1:9", "X64");
    assert!(again.status.success(), "{}", stdout(&again));
    assert!(stdout(&again).contains("from the tool cache"));
    assert_eq!(runner.installed_path(), Some(path.clone()));

    // A cached binary that is not the pinned one is not run: it is fetched again (and here, with
    // no server, the install fails closed).
    std::fs::write(&path, b"#!/bin/sh\necho tampered\n").unwrap();
    std::fs::remove_file(runner.output_file()).unwrap();
    let tampered = runner.install(action.path(), "http://127.0.0.1:9", "X64");
    assert_eq!(tampered.status.code(), Some(1), "{}", stdout(&tampered));
    assert!(
        stdout(&tampered).contains("::error title=deployer install::cannot download"),
        "{}",
        stdout(&tampered)
    );
    assert_eq!(runner.installed_path(), None);
}

#[test]
fn the_release_cannot_vouch_for_its_own_binary() {
    // The release serves another binary, with a release SHA256SUMS that matches it: the action
    // ref's committed checksum is what counts, so it is refused.
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), b"#!/bin/sh\necho not deployer\n").unwrap();
    let server = ReleaseServer::start();
    server.publish(other.path());
    let action = released_ref();
    let runner = Runner::new();
    let out = runner.install(action.path(), &server.url(), "X64");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let pinned = sha256(&std::fs::read(deployer_binary()).unwrap());
    assert!(
        text.contains(&format!(
            "::error title=deployer install::checksum mismatch for {ASSET} {VERSION}: action/SHA256SUMS pins {pinned}, the release serves {}; refusing to run it",
            sha256(&std::fs::read(other.path()).unwrap())
        )),
        "{text}"
    );
    assert!(!runner.cached_binary().exists(), "an unverified binary was installed");
    assert_eq!(runner.installed_path(), None);
}

#[test]
fn a_ref_without_committed_checksums_fails_closed_before_any_download() {
    // This repository's own action/SHA256SUMS (a branch): no binary is pinned, nothing is fetched.
    let text = std::fs::read_to_string(support::root().join("action/SHA256SUMS")).unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (sum, file) = line.split_once("  ").unwrap_or_else(|| panic!("not sha256sum format: {line}"));
        assert!(sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        assert!(file.starts_with("deployer-") && file.ends_with("-unknown-linux-musl"), "{line}");
    }
    let branch = action_ref(&text);
    let out = Runner::new().install(branch.path(), "http://127.0.0.1:9", "X64");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "::error title=deployer install::action/SHA256SUMS at this action ref lists no {ASSET} for {VERSION}; use a released ref of the action (e.g. `uses: {REPO}@{VERSION}` or @v0)"
        )),
        "{text}"
    );
}

#[test]
fn missing_asset_or_unsupported_runner_fails_with_a_clear_message() {
    let server = ReleaseServer::start();
    server.publish(&deployer_binary());
    let action = released_ref();
    // Pinned, but no aarch64 asset was published.
    let out = Runner::new().install(action.path(), &server.url(), "ARM64");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("::error title=deployer install::cannot download"), "{text}");
    assert!(text.contains("deployer-aarch64-unknown-linux-musl"), "{text}");
    assert!(text.contains("404"), "{text}");

    // An unsupported runner is refused before any download.
    let out = Runner::new().install(action.path(), &server.url(), "ARM");
    assert!(stdout(&out).contains("no deployer build for Linux/ARM"));
}

/// Runs action/run.sh with `inputs` (`INPUT_*` as action.yml sets them) and `DEPLOYER_BIN`.
fn run_step(bin: &Path, cwd: &Path, inputs: &[(&str, &str)], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(support::root().join("action/run.sh"))
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("DEPLOYER_BIN", bin);
    for (k, v) in inputs {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A stand-in binary that records its argv (NUL-separated) in `argv`.
fn recorder(dir: &Path) -> PathBuf {
    let bin = dir.join("record-argv");
    std::fs::write(&bin, format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\n", dir.join("argv").display()))
        .unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

fn recorded(dir: &Path) -> Vec<String> {
    let bytes = std::fs::read(dir.join("argv")).unwrap();
    bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect()
}

#[test]
fn every_input_becomes_its_flag_and_nothing_is_expanded() {
    let dir = tempfile::tempdir().unwrap();
    // Files a glob would match: none of them may appear in the argv.
    for f in ["a.md", "b.md", "user"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let bin = recorder(dir.path());
    let out = run_step(
        &bin,
        dir.path(),
        &[
            ("INPUT_COMMAND", "plan"),
            ("INPUT_ENVIRONMENT", "prod"),
            ("INPUT_CONFIG", "my product/deployer.yaml"),
            ("INPUT_SERVICES", "user  order\n*\n"),
            (
                "INPUT_IMAGES",
                "  user=registry.example/shop/user@sha256:abc  \n\norder=registry.example/shop/order:1.2\n",
            ),
            (
                "INPUT_ARGS",
                "--markdown \"plan for *.md\" --note 'it is $HOME $(id)' \\\n  --glob *.md --esc a\\ b",
            ),
            ("INPUT_ROLE_ARN", "arn:aws:iam::333333333333:role/override"),
            ("HOME", "/home/runner"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        recorded(dir.path()),
        [
            "plan",
            "--config",
            "my product/deployer.yaml",
            "--env",
            "prod",
            "--role-arn",
            "arn:aws:iam::333333333333:role/override",
            "--service",
            "user",
            "--service",
            "order",
            "--service",
            "*",
            "--image",
            "user=registry.example/shop/user@sha256:abc",
            "--image",
            "order=registry.example/shop/order:1.2",
            "--markdown",
            "plan for *.md",
            "--note",
            "it is $HOME $(id)",
            "--glob",
            "*.md",
            "--esc",
            "a b",
        ]
    );

    // Empty inputs add nothing; the defaults are `deploy` and `deployer.yaml`.
    let out = run_step(
        &bin,
        dir.path(),
        &[("INPUT_ENVIRONMENT", ""), ("INPUT_SERVICES", ""), ("INPUT_ARGS", ""), ("INPUT_ROLE_ARN", "")],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(recorded(dir.path()), ["deploy", "--config", "deployer.yaml"]);

    // An unclosed quote is an error before deployer runs (exit 2, like a usage error).
    std::fs::remove_file(dir.path().join("argv")).unwrap();
    let out = run_step(&bin, dir.path(), &[("INPUT_ARGS", "--to \"v1")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out)
            .contains("::error title=deployer::cannot split the `args` input: xargs: unmatched double quote"),
        "{}",
        stdout(&out)
    );
    assert!(!dir.path().join("argv").exists(), "deployer ran");
}

/// The real binary through the run step: `args` with spaces and a glob name the file deployer
/// writes, and the step outputs are written.
#[test]
fn args_with_spaces_and_globs_reach_deployer_and_outputs_are_written() {
    support::system_bin("buildah");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("decoy.md"), "untouched").unwrap();
    let output = dir.path().join("github_output");
    let env: Vec<(String, String)> = [
        ("HOME", dir.path().display().to_string()),
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("GITHUB_OUTPUT", output.display().to_string()),
        ("DEPLOYER_KUSTOMIZE", support::kubectl().display().to_string()),
        ("DEPLOYER_BUILDER", "buildah".to_owned()),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = support::root().join("examples/shop/deployer.yaml");
    let config = config.display().to_string();
    let out = run_step(
        &deployer_binary(),
        dir.path(),
        &[
            ("INPUT_COMMAND", "plan"),
            ("INPUT_ENVIRONMENT", "dev"),
            ("INPUT_CONFIG", &config),
            ("INPUT_ARGS", "--markdown 'plan for dev *.md'"),
        ],
        &env,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(dir.path().join("plan for dev *.md")).unwrap();
    assert!(md.contains("dev"), "{md}");
    assert_eq!(std::fs::read_to_string(dir.path().join("decoy.md")).unwrap(), "untouched");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "result=success\n");

    // A bad `role-arn` is refused before anything runs, and `result` says so.
    std::fs::remove_file(&output).unwrap();
    let out = run_step(
        &deployer_binary(),
        dir.path(),
        &[
            ("INPUT_COMMAND", "plan"),
            ("INPUT_ENVIRONMENT", "dev"),
            ("INPUT_CONFIG", &config),
            ("INPUT_ROLE_ARN", "arn:aws:iam::999999999999:role/elsewhere"),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("--role-arn `arn:aws:iam::999999999999:role/elsewhere` is in account 999999999999, but environment `dev` has account_id 222222222222"),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "result=config-error\n");
}

/// The role each run assumed, from the `acting as` line of the identity phase.
fn acting_as(out: &Output) -> String {
    let text = stdout(out);
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|e| e["message"].as_str().and_then(|m| m.strip_prefix("acting as ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no `acting as` event:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// `role-arn` through the run step, with the job's OIDC token (fake endpoint) exchanged on moto:
/// `plan` assumes the environment's read-only `role.plan_arn`, `status` its `role.arn`, and the
/// input replaces either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_arn_input_replaces_the_environments_role() {
    let moto = Moto::start();
    let oidc =
        FakeOidc::start("sts.amazonaws.com", support::oidc::github_claims("sts.amazonaws.com", None)).await;
    let account = support::ecr_bridge::ACCOUNT;
    let product = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(product.path().join("environments")).unwrap();
    std::fs::create_dir_all(product.path().join("web")).unwrap();
    std::fs::write(
        product.path().join("deployer.yaml"),
        format!(
            "product: shop\nregistry: {{ account_id: \"{account}\", region: eu-west-1 }}\n\
             services:\n  - name: web\n    repository: shop/web\n    ecs: {{ task_definition: web/taskdef.json }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        product.path().join("web/taskdef.json"),
        r#"{"family": "shop-web-${env}", "containerDefinitions": [{"name": "web", "image": "${image}", "essential": true, "memory": 128}]}"#,
    )
    .unwrap();
    std::fs::write(
        product.path().join("environments/dev.yaml"),
        format!(
            "account_id: \"{account}\"\nregion: eu-west-1\nrole:\n  arn: arn:aws:iam::{account}:role/shop-deployer-dev\n  \
             plan_arn: arn:aws:iam::{account}:role/shop-planner-dev\ntarget:\n  ecs: {{ cluster: shop-dev }}\n"
        ),
    )
    .unwrap();
    let request = oidc.request();
    let mut env: Vec<(String, String)> = moto.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.extend(
        [
            ("AWS_ACCESS_KEY_ID", String::new()),
            ("AWS_SECRET_ACCESS_KEY", String::new()),
            ("HOME", product.path().display().to_string()),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", request.url.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request.bearer.clone()),
            ("GITHUB_REPOSITORY", "acme/shop".to_owned()),
            ("GITHUB_RUN_ID", "4242".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let image = format!("web=registry.local/shop/web@sha256:{}", "a".repeat(64));
    let step = |command: &'static str, role: &'static str| {
        // Only `plan` takes images (`status` has no `--image`).
        let image = if command == "plan" { image.clone() } else { String::new() };
        let (env, dir) = (env.clone(), product.path().to_path_buf());
        async move {
            tokio::task::spawn_blocking(move || {
                run_step(
                    &deployer_binary(),
                    &dir,
                    &[
                        ("INPUT_COMMAND", command),
                        ("INPUT_ENVIRONMENT", "dev"),
                        ("INPUT_IMAGES", &image),
                        ("INPUT_ARGS", "--output json"),
                        ("INPUT_ROLE_ARN", role),
                    ],
                    &env,
                )
            })
            .await
            .unwrap()
        }
    };
    let role = |name: &str| format!("arn:aws:sts::{account}:assumed-role/{name}/");
    let override_arn = "arn:aws:iam::123456789012:role/override-deployer";
    assert_eq!(override_arn.split(':').nth(4), Some(account));

    let plan = step("plan", "").await;
    assert!(acting_as(&plan).starts_with(&role("shop-planner-dev")), "{}", acting_as(&plan));
    let plan = step("plan", override_arn).await;
    assert!(acting_as(&plan).starts_with(&role("override-deployer")), "{}", acting_as(&plan));
    // `status` changes nothing either, but it is not `plan`: the deploy role, or the input.
    let status = step("status", "").await;
    assert!(acting_as(&status).starts_with(&role("shop-deployer-dev")), "{}", acting_as(&status));
    let status = step("status", override_arn).await;
    assert!(acting_as(&status).starts_with(&role("override-deployer")), "{}", acting_as(&status));
    assert!(oidc.issued() >= 4, "every run exchanged the job's token");
}
