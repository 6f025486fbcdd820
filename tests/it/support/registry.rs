//! Debian `docker-registry` (CNCF distribution 2.8) on a free loopback port with filesystem
//! storage in a temp dir, in three modes: plain HTTP, TLS + htpasswd, and token auth (with
//! tests/fakes/registry_token_server.py). Plus the counting / fault-injecting proxy
//! (tests/fakes/fault_proxy.py) and `skopeo inspect --raw` for independent read-back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use deployer::image::{Credentials, Endpoint, Registry, RegistryOptions};

use super::{ChildGuard, free_port, root, spawn_listening, system_bin, venv_bin, wait_for_port};

/// How the registry is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    TlsBasic,
    Token,
}

pub const USER: &str = "deployer";
pub const PASSWORD: &str = "s3cret-test-password";

/// A running registry; stopped (and its storage removed) when dropped.
pub struct TestRegistry {
    pub mode: Mode,
    pub port: u16,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// What `registry.endpoint` would say: `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The CA that signed the TLS certificate.
    pub ca: Option<PathBuf>,
    pub user: String,
    pub password: String,
    pub dir: tempfile::TempDir,
    _guards: Vec<ChildGuard>,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new(system_bin("openssl")).args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for `IP:127.0.0.1` signed by it (rustls refuses a CA
/// certificate used as a server certificate, so the two are separate).
fn make_tls(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=deployer test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        dir,
    );
}

impl TestRegistry {
    pub fn start(mode: Mode) -> Self {
        Self::start_with(mode, USER, PASSWORD)
    }

    /// Starts a registry whose one user is `user`/`password` (ECR tests use moto's `AWS` token).
    pub fn start_with(mode: Mode, user: &str, password: &str) -> Self {
        let bin = system_bin("docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let port = free_port();
        let mut guards = Vec::new();
        let mut http_tls = String::new();
        let mut auth = String::new();
        let mut ca = None;
        if mode != Mode::Plain {
            make_tls(d);
            http_tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                d.join("server.crt").display(),
                d.join("server.key").display()
            );
            ca = Some(d.join("ca.crt"));
        }
        match mode {
            Mode::Plain => {}
            Mode::TlsBasic => {
                let out = Command::new(system_bin("htpasswd"))
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd");
                assert!(out.status.success());
                std::fs::write(d.join("htpasswd"), &out.stdout).unwrap();
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: deployer-test\n    path: {}\n",
                    d.join("htpasswd").display()
                );
            }
            Mode::Token => {
                openssl(
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-keyout",
                        "token.key",
                        "-out",
                        "token.crt",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=deployer test token signer",
                    ],
                    d,
                );
                let mut cmd = Command::new(venv_bin("python"));
                cmd.arg(root().join("tests/fakes/registry_token_server.py"))
                    .arg("--key")
                    .arg(d.join("token.key"))
                    .arg("--cert")
                    .arg(d.join("token.crt"))
                    .args(["--user", user, "--password", password]);
                let (guard, token_port) =
                    spawn_listening(cmd, "registry token server", Duration::from_secs(30));
                guards.push(guard);
                auth = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: deployer-test-registry\n    issuer: deployer-test-token-issuer\n    rootcertbundle: {}\n",
                    d.join("token.crt").display()
                );
            }
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: deployer-test-secret\n{http_tls}{auth}",
            d.join("data").display()
        );
        std::fs::write(d.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(d.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        guards.push(ChildGuard { child, name: "docker-registry".into() });
        wait_for_port(port, Duration::from_secs(30));
        let host = format!("127.0.0.1:{port}");
        let scheme = if mode == Mode::Plain { "http" } else { "https" };
        Self {
            mode,
            port,
            endpoint: format!("{scheme}://{host}"),
            host,
            ca,
            user: user.to_owned(),
            password: password.to_owned(),
            dir,
            _guards: guards,
        }
    }

    pub fn credentials(&self) -> Credentials {
        match self.mode {
            Mode::Plain => Credentials::Anonymous,
            _ => Credentials::Basic { username: self.user.clone(), password: self.password.clone() },
        }
    }

    /// Options as deployer builds them from its environment: the CA through
    /// `DEPLOYER_REGISTRY_CA`, the documented seam.
    pub fn options(&self) -> RegistryOptions {
        let ca = self.ca.as_ref().map(|p| p.display().to_string());
        RegistryOptions::from_env(&|k| if k == "DEPLOYER_REGISTRY_CA" { ca.clone() } else { None })
    }

    pub fn client(&self) -> Registry {
        Registry::connect(Endpoint::parse(&self.endpoint).unwrap(), self.credentials(), self.options())
            .unwrap()
    }

    /// The registry's log so far (shown when a test fails).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `skopeo inspect --raw docker://HOST/REPO@DIGEST|:TAG`: the manifest bytes as stored,
    /// read by an independent client.
    pub fn skopeo_raw(&self, reference: &str) -> Vec<u8> {
        let mut cmd = Command::new(system_bin("skopeo"));
        cmd.args(["inspect", "--raw"]);
        if let Some(ca) = &self.ca {
            // skopeo reads *.crt from a directory as trusted CAs.
            let certs = self.dir.path().join("skopeo-certs");
            std::fs::create_dir_all(&certs).unwrap();
            std::fs::copy(ca, certs.join("ca.crt")).unwrap();
            cmd.arg("--cert-dir").arg(&certs);
        } else {
            cmd.arg("--tls-verify=false");
        }
        if self.mode != Mode::Plain {
            cmd.arg("--creds").arg(format!("{}:{}", self.user, self.password));
        }
        cmd.arg(format!("docker://{}/{reference}", self.host));
        let out = cmd.output().expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {reference}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }
}

/// The fault proxy in front of a plain registry.
pub struct FaultProxy {
    pub port: u16,
    pub endpoint: String,
    _guard: ChildGuard,
}

impl FaultProxy {
    pub fn start(upstream: &TestRegistry) -> Self {
        assert_eq!(upstream.mode, Mode::Plain, "the proxy speaks plain HTTP upstream");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(root().join("tests/fakes/fault_proxy.py")).args(["--upstream", &upstream.host]);
        let (guard, port) = spawn_listening(cmd, "fault proxy", Duration::from_secs(30));
        Self { port, endpoint: format!("http://127.0.0.1:{port}"), _guard: guard }
    }

    fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let out = Command::new(venv_bin("python"))
            .args([
                "-c",
                "import sys,urllib.request;r=urllib.request.Request(sys.argv[1],data=(sys.argv[3].encode() if sys.argv[2]=='POST' else None),method=sys.argv[2]);print(urllib.request.urlopen(r).read().decode())",
                &format!("{}{path}", self.endpoint),
                method,
                body,
            ])
            .output()
            .expect("python");
        assert!(out.status.success(), "proxy control {path}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn add_faults(&self, rules: &serde_json::Value) {
        self.call("POST", "/__proxy/faults", &rules.to_string());
    }

    pub fn stats(&self) -> serde_json::Value {
        self.call("GET", "/__proxy/stats", "")
    }

    pub fn reset(&self) {
        self.call("POST", "/__proxy/reset", "");
    }

    pub fn client(&self, options: RegistryOptions) -> Registry {
        Registry::connect(Endpoint::parse(&self.endpoint).unwrap(), Credentials::Anonymous, options).unwrap()
    }
}
