//! Build each service into an OCI layout directory, concurrently with a bound.
//!
//! Builders: `buildah bud` (vfs storage, chroot isolation: works without a daemon, as root in CI
//! containers) or `docker buildx build` when a Docker daemon answers (selection as in
//! [`crate::support::detect_builder`]). Both export an OCI layout (`buildah push NAME oci:DIR`,
//! buildx `--output type=oci,tar=false`), which [`super::push`] sends natively.
//!
//! Builds are reproducible: timestamps are pinned to the epoch (`--timestamp 0`, buildx
//! `SOURCE_DATE_EPOCH=0` + `rewrite-timestamp`), so the same commit gives the same digest and a
//! re-push uploads nothing. `org.opencontainers.image.revision` / `.source` come from git.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::{StreamExt as _, TryStreamExt as _};

use super::{Error, layout};
use crate::config::Config;
use crate::support::{VarFn, git};

/// The tool that builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    /// `storage`: a containers-storage root of our own (`--root`/`--runroot`), or `None` for
    /// buildah's default (keeps its layer cache between runs).
    Buildah {
        storage: Option<PathBuf>,
    },
    DockerBuildx,
}

impl Builder {
    /// `DEPLOYER_BUILDER=docker|buildah`, else docker buildx when a daemon answers, else buildah.
    pub async fn detect(var: VarFn<'_>) -> Result<Self, Error> {
        match crate::support::detect_builder(var).await {
            Ok(name) if name.starts_with("docker") => Ok(Self::DockerBuildx),
            Ok(_) => Ok(Self::Buildah { storage: None }),
            Err(reason) => Err(Error::NoBuilder { tool: "an image builder".into(), reason }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Buildah { .. } => "buildah",
            Self::DockerBuildx => "docker buildx",
        }
    }
}

/// One service to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub service: String,
    pub context: PathBuf,
    /// Relative to the context.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: String,
    pub labels: BTreeMap<String, String>,
}

/// A built image: its OCI layout and manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Built {
    pub service: String,
    pub layout: PathBuf,
    pub digest: super::Digest,
}

/// Build requests for the services that have a `build:` section (all of them when `only` is
/// empty), with the VCS labels added.
pub fn requests(config: &Config, only: &[String], labels: &BTreeMap<String, String>) -> Vec<BuildRequest> {
    config
        .product
        .services
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name.as_str()))
        .filter_map(|s| {
            let b = s.build.as_ref()?;
            Some(BuildRequest {
                service: s.name.as_str().to_owned(),
                context: config.root.join(&b.context.value),
                dockerfile: b.dockerfile.clone(),
                args: b.args.clone(),
                target: b.target.clone(),
                platform: b.platform.clone(),
                labels: labels.clone(),
            })
        })
        .collect()
}

/// `org.opencontainers.image.revision` (`GITHUB_SHA` or `git rev-parse HEAD`) and `.source`
/// (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY` or the `origin` remote).
pub async fn vcs_labels(root: &Path, var: VarFn<'_>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let revision = match var("GITHUB_SHA").filter(|s| !s.is_empty()) {
        Some(s) => Some(s),
        None => git(root, &["rev-parse", "HEAD"]).await,
    };
    if let Some(r) = revision {
        labels.insert("org.opencontainers.image.revision".to_owned(), r);
    }
    let source = match (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY")) {
        (Some(server), Some(repo)) if !repo.is_empty() => {
            Some(format!("{}/{repo}", server.trim_end_matches('/')))
        }
        _ => git(root, &["remote", "get-url", "origin"]).await,
    };
    if let Some(s) = source {
        labels.insert("org.opencontainers.image.source".to_owned(), s);
    }
    labels
}

/// Builds every request, at most `concurrency` at once; layouts land in `out_dir/<service>`.
/// Results are in request order. The first failure is returned at once; builds still running
/// are stopped (their processes are killed when dropped).
pub async fn build_all(
    builder: &Builder,
    requests: Vec<BuildRequest>,
    out_dir: &Path,
    concurrency: usize,
) -> Result<Vec<Built>, Error> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(format!("creating {}", out_dir.display()), e))?;
    futures::stream::iter(requests)
        .map(|r| build_one(builder, r, out_dir))
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Builds one service.
pub async fn build_one(builder: &Builder, req: BuildRequest, out_dir: &Path) -> Result<Built, Error> {
    let dest = out_dir.join(&req.service);
    if dest.exists() {
        // `oci:DIR` adds to an existing index.json; a stale image there would be pushed instead.
        std::fs::remove_dir_all(&dest).map_err(|e| Error::io(format!("removing {}", dest.display()), e))?;
    }
    match builder {
        Builder::Buildah { storage } => buildah(&req, storage.as_deref(), &dest).await?,
        Builder::DockerBuildx => buildx(&req, &dest).await?,
    }
    let image = layout::read(&dest)?;
    Ok(Built { service: req.service, layout: dest, digest: image.top.digest })
}

fn common_args(req: &BuildRequest) -> Vec<String> {
    let mut a = vec![
        "--platform".to_owned(),
        req.platform.clone(),
        "-f".to_owned(),
        req.context.join(&req.dockerfile).display().to_string(),
    ];
    for (k, v) in &req.args {
        a.push("--build-arg".into());
        a.push(format!("{k}={v}"));
    }
    if let Some(t) = &req.target {
        a.push("--target".into());
        a.push(t.clone());
    }
    for (k, v) in &req.labels {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    }
    a
}

async fn buildah(req: &BuildRequest, storage: Option<&Path>, dest: &Path) -> Result<(), Error> {
    let mut global: Vec<String> = Vec::new();
    if let Some(root) = storage {
        global.extend(["--root".into(), root.join("root").display().to_string()]);
        global.extend(["--runroot".into(), root.join("run").display().to_string()]);
    }
    global.extend(["--storage-driver".into(), "vfs".into()]);
    // A name of our own per build: concurrent deploys may share the storage.
    let name =
        format!("localhost/deployer-build/{}:{}-{}", req.service, std::process::id(), rand::random::<u32>());
    let mut bud = global.clone();
    bud.extend([
        "bud".into(),
        "--isolation".into(),
        "chroot".into(),
        "--timestamp".into(),
        "0".into(),
        "--layers=false".into(),
    ]);
    bud.extend(common_args(req));
    bud.extend(["-t".into(), name.clone(), req.context.display().to_string()]);
    run(&req.service, "buildah", &bud).await?;
    let mut push = global.clone();
    push.extend(["push".into(), "--quiet".into(), name.clone(), format!("oci:{}", dest.display())]);
    let pushed = run(&req.service, "buildah", &push).await;
    let mut rmi = global;
    rmi.extend(["rmi".into(), name]);
    // Removing the local copy is hygiene; its failure must not fail the build.
    let _ = run(&req.service, "buildah", &rmi).await;
    pushed
}

async fn buildx(req: &BuildRequest, dest: &Path) -> Result<(), Error> {
    let mut args: Vec<String> = vec!["buildx".into(), "build".into()];
    args.extend(common_args(req));
    args.extend([
        "--build-arg".into(),
        "SOURCE_DATE_EPOCH=0".into(),
        "--output".into(),
        format!("type=oci,dest={},tar=false,rewrite-timestamp=true", dest.display()),
        req.context.display().to_string(),
    ]);
    run(&req.service, "docker", &args).await
}

async fn run(service: &str, program: &str, args: &[String]) -> Result<(), Error> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .env("SOURCE_DATE_EPOCH", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::NoBuilder { tool: program.to_owned(), reason: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    Err(Error::Build {
        service: service.to_owned(),
        code: out.status.code().map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        log_tail: format!("$ {program} {}\n{tail}", args.join(" ")),
    })
}
