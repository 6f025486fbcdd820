//! moto server with the ECS controller (`tests/fakes/moto_ecs.py`): one endpoint for STS, ECR,
//! ECS, EKS, ELBv2 and CloudWatch, with ECS rollouts that progress like real ECS.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{ChildGuard, root, spawn_listening, venv_bin};

/// A running moto; stopped when dropped.
pub struct Moto {
    pub port: u16,
    pub url: String,
    /// The process, and where moto's request recorder writes (off unless a test starts it)
    /// instead of the current directory. Boxed: `Moto` lives inside large test futures.
    _guard: Box<(ChildGuard, tempfile::TempDir)>,
}

/// The region every test uses.
pub const REGION: &str = "eu-west-1";

impl Moto {
    /// Starts moto with the controller at time scale 0.2 (rollouts five times faster than the
    /// behaviour contract's real times).
    pub fn start() -> Self {
        Self::start_scaled(0.2)
    }

    pub fn start_scaled(scale: f64) -> Self {
        let recording = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.env("MOTO_RECORDER_FILEPATH", recording.path().join("requests.jsonl"));
        cmd.arg(root().join("tests/fakes/moto_ecs.py")).args([
            "--port",
            "0",
            "--time-scale",
            &scale.to_string(),
            "--log-level",
            "WARNING",
        ]);
        let (guard, port) = spawn_listening(cmd, "moto", Duration::from_mins(1));
        Self { port, url: format!("http://127.0.0.1:{port}"), _guard: Box::new((guard, recording)) }
    }

    /// Environment variables that point the real AWS SDK (in deployer) at this moto, with static
    /// test credentials and no instance-metadata lookups.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An SDK config for test-side setup (creating clusters, injecting findings, …).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await
    }

    /// The requests moto received since `control("/moto-api/recorder/start-recording", …)`, one
    /// JSON object each (`method`, `url`, `headers`, `body`, `body_encoded`).
    pub fn recording(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/moto-api/recorder/download-recording", self.url);
        let out = std::process::Command::new(venv_bin("python"))
            .args(["-c", "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())", &url])
            .output()
            .expect("python");
        assert!(out.status.success(), "moto recording: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a recorded request"))
            .collect()
    }

    /// POSTs JSON to one of moto's control endpoints (e.g. `/moto-api/static/ecr/scan-finding-results`).
    pub fn control(&self, path: &str, body: &serde_json::Value) {
        let url = format!("{}{path}", self.url);
        let status = std::process::Command::new(venv_bin("python"))
            .args([
                "-c",
                "import sys,urllib.request;r=urllib.request.Request(sys.argv[1],data=sys.argv[2].encode(),headers={'Content-Type':'application/json'},method='POST');print(urllib.request.urlopen(r).status)",
                &url,
                &body.to_string(),
            ])
            .output()
            .expect("python");
        assert!(status.status.success(), "moto control {path}: {}", String::from_utf8_lossy(&status.stderr));
    }
}

/// Runs a Python check script from tests/fakes and asserts it passed (the fakes' own conformance).
pub fn run_fake_check(script: &Path, args: &[&str]) -> String {
    let out = Command::new(venv_bin("python")).arg(script).args(args).output().expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
