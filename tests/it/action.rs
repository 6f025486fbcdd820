//! The GitHub Action's install path (action/install.sh + action/run.sh) against a local HTTP
//! "release" server: a verified binary runs; a wrong checksum or a missing asset fails closed
//! and runs nothing; a cached version needs no server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support;

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

    /// Publishes `binary` as the asset, with `SHA256SUMS` listing `checksum` (or the true one).
    fn publish(&self, binary: &Path, checksum: Option<&str>) {
        let bytes = std::fs::read(binary).unwrap();
        std::fs::write(self.dir().join(ASSET), &bytes).unwrap();
        let sum = checksum.map_or_else(|| hex::encode(Sha256::digest(&bytes)), str::to_owned);
        std::fs::write(self.dir().join("SHA256SUMS"), format!("{sum}  {ASSET}\n")).unwrap();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
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

    fn install(&self, server_url: &str, arch: &str) -> Output {
        Command::new("bash")
            .arg(support::root().join("action/install.sh"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("INPUT_VERSION", "")
            .env("ACTION_PATH", support::root())
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

#[test]
fn verified_download_runs_the_binary_and_is_cached() {
    let server = ReleaseServer::start();
    server.publish(&deployer_binary(), None);
    let runner = Runner::new();
    let out = runner.install(&server.url(), "X64");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("downloaded and verified"), "{stdout}");
    let path = runner.installed_path().expect("path output");
    assert_eq!(path, runner.cached_binary());

    let run = Command::new("bash")
        .arg(support::root().join("action/run.sh"))
        .env("DEPLOYER_BIN", &path)
        .env("INPUT_COMMAND", "--version")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        format!("deployer {}", env!("CARGO_PKG_VERSION"))
    );

    // The version the action installs by default is the crate's (release.yml checks the tag).
    let pinned = std::fs::read_to_string(support::root().join("action/VERSION")).unwrap();
    assert_eq!(pinned.trim(), format!("v{}", env!("CARGO_PKG_VERSION")));

    // Cached: a second install needs no server at all.
    drop(server);
    std::fs::remove_file(runner.output_file()).unwrap();
    let again = runner.install("http://127.0.0.1:9", "X64");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stdout));
    assert!(String::from_utf8_lossy(&again.stdout).contains("from the tool cache"));
    assert_eq!(runner.installed_path(), Some(path));
}

#[test]
fn wrong_checksum_fails_closed_and_installs_nothing() {
    let server = ReleaseServer::start();
    server.publish(&deployer_binary(), Some(&"0".repeat(64)));
    let runner = Runner::new();
    let out = runner.install(&server.url(), "X64");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "::error title=deployer install::checksum mismatch for {ASSET} {VERSION}: expected {}",
            "0".repeat(64)
        )),
        "{stdout}"
    );
    assert!(stdout.contains("refusing to run it"), "{stdout}");
    assert!(!runner.cached_binary().exists(), "an unverified binary was installed");
    assert_eq!(runner.installed_path(), None);
}

#[test]
fn missing_asset_or_checksum_entry_fails_with_a_clear_message() {
    let server = ReleaseServer::start();
    server.publish(&deployer_binary(), None);
    let runner = Runner::new();
    // No aarch64 asset was published.
    let out = runner.install(&server.url(), "ARM64");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("::error title=deployer install::cannot download"), "{stdout}");
    assert!(stdout.contains("deployer-aarch64-unknown-linux-musl"), "{stdout}");
    assert!(stdout.contains("404"), "{stdout}");

    // The asset exists but SHA256SUMS does not list it.
    std::fs::write(server.dir().join("SHA256SUMS"), "abc  something-else\n").unwrap();
    let out = Runner::new().install(&server.url(), "X64");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("SHA256SUMS of {VERSION} lists no {ASSET}")), "{stdout}");

    // An unsupported runner is refused before any download.
    let out = Runner::new().install(&server.url(), "ARM");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no deployer build for Linux/ARM"));
}
