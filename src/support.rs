//! Helpers every layer may use, that know nothing of deployer's own types: the process
//! environment as an injectable function ([`VarFn`]), programs on PATH, `git`, and which image
//! builder this machine has. Kept here so no layer imports a higher one for a helper (the
//! `observe` ↔ `image::build` circle this used to be).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Reads an environment variable. Injected (the binary passes `std::env::var`), so production
/// code has no test branches and tests set variables without touching the process.
pub type VarFn<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// A program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Runs git in `root` (the product directory; empty = current) and returns its trimmed output.
/// `git -C root ARGS…`, trimmed; None when git fails or prints nothing.
pub async fn git(root: &Path, args: &[&str]) -> Option<String> {
    let dir = if root.as_os_str().is_empty() { Path::new(".") } else { root };
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `DEPLOYER_BUILDER=docker|buildah` selects; otherwise docker buildx when a daemon answers,
/// else buildah.
pub async fn detect_builder(var: VarFn<'_>) -> Result<String, String> {
    match var("DEPLOYER_BUILDER").as_deref() {
        Some("buildah") => return find("buildah").map(|_| "buildah".to_owned()),
        Some("docker") => return find("docker").map(|_| "docker buildx".to_owned()),
        Some(other) if !other.is_empty() => {
            return Err(format!("DEPLOYER_BUILDER=`{other}` is not `docker` or `buildah`"));
        }
        _ => {}
    }
    if which("docker").is_some() && docker_daemon_answers().await {
        return Ok("docker buildx".to_owned());
    }
    find("buildah")
        .map(|_| "buildah".to_owned())
        .map_err(|_| "no Docker daemon and no buildah on PATH".to_owned())
}

fn find(name: &str) -> Result<std::path::PathBuf, String> {
    which(name).ok_or_else(|| format!("`{name}` is not on PATH"))
}

async fn docker_daemon_answers() -> bool {
    let probe = tokio::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Ok(s)) if s.success())
}

/// The current time as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
