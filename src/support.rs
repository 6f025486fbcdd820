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

/// The one retry policy for a call that may fail transiently (a 5xx, a 429, a dropped
/// connection): exponential backoff from `first`, doubling up to `max`, at most `retries`
/// retries after the first attempt. Call sites say what is worth retrying (`when`) and may
/// let the server set the wait (`adjust`, for `Retry-After`). Watches and polls are not
/// retries: they run to deadlines of their own.
pub fn retry_policy(first: Duration, max: Duration, retries: usize) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_max_times(retries)
}

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

/// A duration as people read it: whole seconds (`5m 29s`), or milliseconds below a second.
/// Deadlines computed from an `Instant` carry nanoseconds nobody asked to see.
pub fn human(d: std::time::Duration) -> String {
    let rounded = if d < std::time::Duration::from_secs(1) {
        std::time::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    } else {
        std::time::Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
    };
    humantime::format_duration(rounded).to_string()
}

/// What every HTTP client of deployer's says it is (`User-Agent`): API servers' audit logs,
/// registries and webhooks name the tool that called them.
pub const USER_AGENT: &str = concat!("deployer/", env!("CARGO_PKG_VERSION"));

/// A plain HTTP client that names itself (HTTP checks, the OIDC token request).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().user_agent(USER_AGENT).build().unwrap_or_default()
}

/// A Kubernetes client for `config` that names itself in the API server's audit log.
pub fn kube_client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    tracing::debug!(cluster = %config.cluster_url, namespace = %config.default_namespace, "Kubernetes client");
    config.headers.push((reqwest::header::USER_AGENT, reqwest::header::HeaderValue::from_static(USER_AGENT)));
    kube::Client::try_from(config)
}
