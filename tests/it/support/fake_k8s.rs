//! The project's fake Kubernetes API server (tests/fakes/fake_k8s.py) with a kubeconfig.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{ChildGuard, root, spawn_listening, venv_bin};

pub struct FakeK8s {
    pub port: u16,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    _guard: ChildGuard,
}

impl FakeK8s {
    /// Starts the fake with every controller/kubelet delay multiplied by `scale`.
    pub fn start(scale: f64) -> Self {
        Self::start_with(scale, &[])
    }

    /// As `start`, with more of the fake's flags (e.g. `--stale-status-hold`).
    pub fn start_with(scale: f64, flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(root().join("tests/fakes/fake_k8s.py"))
            .args(["--port", "0", "--time-scale", &scale.to_string()])
            .args(flags)
            .arg("--kubeconfig")
            .arg(&kubeconfig);
        let (guard, port) = spawn_listening(cmd, "fake kube-apiserver", Duration::from_secs(30));
        Self { port, kubeconfig, _dir: dir, _guard: guard }
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Creates a namespace (clusters come with the environment's namespaces pre-created).
    pub async fn namespace(&self, name: &str) {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(self.client().await);
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        api.create(&kube::api::PostParams::default(), &ns).await.unwrap();
    }
}
