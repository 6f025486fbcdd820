//! Test support: locating the test bed, running the binary, and owning child processes.
//!
//! A stand-in that is missing is a test failure, never a skip: `.ci/setup` installs them all,
//! and a run without them would report green while testing nothing.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

pub mod ecr_bridge;
pub mod ecs_env;
pub mod fake_k8s;
pub mod moto;
pub mod oidc;
pub mod registry;
use std::time::Duration;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test-bed virtualenv (`DEPLOYER_VENV` or `.venv` in the repository).
pub fn venv() -> PathBuf {
    std::env::var_os("DEPLOYER_VENV").map_or_else(|| root().join(".venv"), PathBuf::from)
}

/// A tool the tests need; panics with the fix when it is missing.
pub fn require(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "test bed incomplete: {} is missing; run `bash .ci/setup` (CI={})",
        path.display(),
        std::env::var("CI").unwrap_or_default()
    );
    path.to_path_buf()
}

/// A program from the venv's bin directory.
pub fn venv_bin(name: &str) -> PathBuf {
    require(&venv().join("bin").join(name))
}

/// A program on PATH (Debian packages such as docker-registry, buildah, skopeo).
pub fn system_bin(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()));
    match found {
        Some(p) => p,
        None => panic!("test bed incomplete: `{name}` is not on PATH; run `bash .ci/setup`"),
    }
}

/// The pinned kubectl (with kustomize v5.8.1) from the venv.
pub fn kubectl() -> PathBuf {
    venv_bin("kubectl")
}

/// The deployer binary with a clean environment: no AWS or GitHub variables leak in from the
/// machine, kustomize is the pinned one, and HOME has no AWS files.
pub fn deployer(home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("deployer").expect("deployer binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DEPLOYER_KUSTOMIZE", kubectl())
        .env("NO_COLOR", "1");
    cmd
}

/// A child process killed (with its process group) when dropped.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd`, waits for a stdout line `LISTENING <port>` and returns the guard and the port.
/// Stdout after that line and stderr go to the test's output, so failures show the server log.
pub fn spawn_listening(mut cmd: Command, name: &str, timeout: Duration) -> (ChildGuard, u16) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(port) = line.trim().strip_prefix("LISTENING ") {
                        let _ = tx.send(port.parse::<u16>().ok());
                    }
                }
            }
        }
    });
    let guard = ChildGuard { child, name: name.to_owned() };
    match rx.recv_timeout(timeout) {
        Ok(Some(port)) => (guard, port),
        _ => panic!("{name} did not report `LISTENING <port>` within {timeout:?}"),
    }
}

/// A free TCP port on loopback (for servers that cannot pick their own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

/// Copies a directory tree (fixtures are copied before tests modify them).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
