//! An ECR stand-in that is one registry: docker-registry (TLS + htpasswd with ECR's `AWS` /
//! `<account>-auth-token` login) behind tests/fakes/ecr_bridge.py, which serves the same TLS
//! certificate and registers every pushed manifest in moto's ECR control plane with its real
//! digest. deployer reaches it as a product would: `registry.endpoint` in deployer.yaml, the CA
//! through `DEPLOYER_REGISTRY_CA`, credentials from ECR's GetAuthorizationToken.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::moto::{Moto, REGION};
use super::registry::{Mode, TestRegistry};
use super::{ChildGuard, root, spawn_listening, venv_bin};

/// moto's default account: static test credentials and roles assumed in it land here.
pub const ACCOUNT: &str = "123456789012";

pub struct EcrRegistry {
    /// The docker-registry behind the bridge (read back from it with `skopeo_raw`).
    pub upstream: TestRegistry,
    /// `127.0.0.1:PORT` of the bridge: the host in every image reference.
    pub host: String,
    /// `https://127.0.0.1:PORT`, what `registry.endpoint` says.
    pub endpoint: String,
    /// The CA of the bridge's (and the registry's) certificate.
    pub ca: PathBuf,
    _guard: ChildGuard,
}

impl EcrRegistry {
    /// The registry of ECR account `account` (its repositories and scans live in `moto`).
    pub fn start(moto: &Moto, account: &str) -> Self {
        Self::start_with(moto, account, "MUTABLE")
    }

    pub fn start_with(moto: &Moto, account: &str, tag_mutability: &str) -> Self {
        let upstream = TestRegistry::start_with(Mode::TlsBasic, "AWS", &format!("{account}-auth-token"));
        let ca = upstream.ca.clone().expect("TLS registry has a CA");
        let d = upstream.dir.path();
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(root().join("tests/fakes/ecr_bridge.py"))
            .args(["--upstream", &upstream.host])
            .arg("--upstream-ca")
            .arg(&ca)
            .arg("--cert")
            .arg(d.join("server.crt"))
            .arg("--key")
            .arg(d.join("server.key"))
            .args(["--moto", &moto.url, "--region", REGION, "--account", account])
            .args(["--tag-mutability", tag_mutability]);
        let (guard, port) = spawn_listening(cmd, "ecr bridge", Duration::from_mins(1));
        let host = format!("127.0.0.1:{port}");
        Self { endpoint: format!("https://{host}"), host, ca, upstream, _guard: guard }
    }

    /// The manifest digest docker-registry serves for `repository:tag`, read by skopeo.
    pub fn digest_of(&self, reference: &str) -> String {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(self.upstream.skopeo_raw(reference))))
    }

    /// Sets `registry.endpoint` (and the registry's account) in a product's deployer.yaml.
    pub fn configure(&self, deployer_yaml: &std::path::Path, account: &str) {
        let yaml = std::fs::read_to_string(deployer_yaml).unwrap();
        let yaml = yaml.replacen(
            "  account_id: \"111111111111\"   # the shared ECR account\n  region: eu-west-1\n",
            &format!("  account_id: \"{account}\"\n  region: {REGION}\n  endpoint: {}\n", self.endpoint),
            1,
        );
        assert!(yaml.contains(&self.endpoint), "deployer.yaml has no registry block to configure");
        std::fs::write(deployer_yaml, yaml).unwrap();
    }
}
