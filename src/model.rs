//! The ground floor: the words every layer shares, and nothing else of ours.
//!
//! - [`PinnedImage`]: an image addressed by digest (`repository@sha256:…`), parsed and printed
//!   here only, so no other module splits `"repo@digest"` strings by hand.
//! - [`Reason`] and [`Failure`]: why a release failed, in the same words on every platform
//!   (a Kubernetes `CrashLoopBackOff` and an ECS task whose essential container exited are both
//!   a crash loop to the person reading the report).
//!
//! Release ids and records live in [`crate::release`] (one format, `<environment>.<n>`, on
//! both platforms).

use std::fmt;

use serde::Serialize;

/// An image pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PinnedImage {
    /// Registry host and path, without tag or digest.
    pub repository: String,
    /// `sha256:…`.
    pub digest: String,
}

impl PinnedImage {
    /// Parses `repository@sha256:…` (a tag before the `@` is dropped, as the digest decides).
    pub fn parse(reference: &str) -> Option<Self> {
        let (repo, digest) = reference.rsplit_once('@')?;
        if !digest.starts_with("sha256:") || repo.is_empty() {
            return None;
        }
        // `host:port/repo:tag` → drop the tag only when the colon is after the last slash.
        let repository = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        Some(Self { repository: repository.to_owned(), digest: digest.to_owned() })
    }

    /// The digest of `reference` when it is pinned, else `reference` itself (for reports).
    pub fn digest_or_reference(reference: &str) -> String {
        Self::parse(reference).map_or_else(|| reference.to_owned(), |p| p.digest)
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repository, self.digest)
    }
}

/// Why a release failed, in words that mean the same on EKS and ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A container keeps exiting (Kubernetes `CrashLoopBackOff`; ECS essential container exited).
    CrashLoop,
    /// The image cannot be pulled.
    ImagePull,
    /// A container was killed for using too much memory.
    OutOfMemory,
    /// No node or capacity can take the new pods/tasks.
    Unschedulable,
    /// The new version did not become ready before its deadline.
    Deadline,
    /// The platform marked the rollout failed.
    RolloutFailed,
    /// The platform failed the rollout and rolled back by itself (ECS circuit breaker).
    RolledBackByPlatform,
    /// A CloudWatch alarm went to ALARM.
    Alarm,
    /// An HTTP check failed during the bake.
    HttpCheck,
    /// A smoke check failed before the blue-green switch.
    SmokeCheck,
    /// The platform refused a change (e.g. a server-side apply conflict).
    ApplyFailed,
    /// A release hook (a migration, a post-deploy test) exited non-zero or was stopped.
    HookFailed,
}

impl Reason {
    /// The words users read.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CrashLoop => "crash loop",
            Self::ImagePull => "image pull failed",
            Self::OutOfMemory => "out of memory",
            Self::Unschedulable => "unschedulable",
            Self::Deadline => "not ready before the deadline",
            Self::RolloutFailed => "rollout failed",
            Self::RolledBackByPlatform => "rolled back by the platform",
            Self::Alarm => "alarm",
            Self::HttpCheck => "http check failed",
            Self::SmokeCheck => "smoke check failed",
            Self::ApplyFailed => "apply failed",
            Self::HookFailed => "hook failed",
        }
    }

    /// The reason for a Kubernetes waiting/terminated/condition reason.
    pub fn from_kubernetes(reason: &str) -> Self {
        match reason {
            "CrashLoopBackOff" | "Error" | "RunContainerError" | "CreateContainerError" => Self::CrashLoop,
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => Self::ImagePull,
            "OOMKilled" => Self::OutOfMemory,
            "Unschedulable" | "FailedScheduling" => Self::Unschedulable,
            "ProgressDeadlineExceeded" | "Timeout" => Self::Deadline,
            "CheckFailed" => Self::HttpCheck,
            _ => Self::RolloutFailed,
        }
    }

    /// The reason for an ECS stopped task's `stoppedReason` (and its containers' reasons).
    pub fn from_ecs_task(stopped: &str) -> Self {
        let lower = stopped.to_ascii_lowercase();
        if lower.contains("cannotpullcontainer") || lower.contains("pull image") {
            Self::ImagePull
        } else if lower.contains("outofmemory") || lower.contains("oom") {
            Self::OutOfMemory
        } else if lower.contains("health check") {
            Self::Deadline
        } else {
            Self::CrashLoop
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a release failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The deployer service (None: the release as a whole, e.g. an alarm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub reason: Reason,
    /// What failed, precisely: `Deployment/user pod user-5d… container user`, `task 5c3b`,
    /// `alarm shop-prod-5xx`, `GET https://…`.
    pub subject: String,
    /// What was seen: the platform's own words (exit code, message, HTTP status).
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// The last lines the failing container wrote (a hook's log tail), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

impl Failure {
    pub fn new(
        service: Option<&str>,
        reason: Reason,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            service: service.filter(|s| !s.is_empty()).map(str::to_owned),
            reason,
            subject: subject.into(),
            detail: detail.into(),
            restart_count: None,
            logs: Vec::new(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.service {
            write!(f, "service `{s}`: ")?;
        }
        write!(f, "{}", self.reason)?;
        if !self.subject.is_empty() {
            write!(f, " ({})", self.subject)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_images_parse_and_print_once() {
        let p = PinnedImage::parse("127.0.0.1:5000/shop/user:1.2@sha256:abc").unwrap();
        assert_eq!(p.repository, "127.0.0.1:5000/shop/user");
        assert_eq!(p.digest, "sha256:abc");
        assert_eq!(p.to_string(), "127.0.0.1:5000/shop/user@sha256:abc");
        assert_eq!(
            PinnedImage::parse("host:5000/shop/user@sha256:1").unwrap().repository,
            "host:5000/shop/user"
        );
        assert!(PinnedImage::parse("shop/user:1.2").is_none());
        assert!(PinnedImage::parse("shop/user@md5:1").is_none());
        assert_eq!(PinnedImage::digest_or_reference("shop/user:1"), "shop/user:1");
    }

    #[test]
    fn both_platforms_say_the_same_words() {
        assert_eq!(Reason::from_kubernetes("CrashLoopBackOff"), Reason::CrashLoop);
        assert_eq!(Reason::from_ecs_task("Essential container in task exited"), Reason::CrashLoop);
        assert_eq!(Reason::from_kubernetes("ImagePullBackOff"), Reason::ImagePull);
        assert_eq!(Reason::from_ecs_task("CannotPullContainerError: pull image manifest"), Reason::ImagePull);
        assert_eq!(Reason::from_kubernetes("ProgressDeadlineExceeded"), Reason::Deadline);
        let f = Failure::new(Some("user"), Reason::CrashLoop, "task 5c3b", "exit code 1");
        assert_eq!(f.to_string(), "service `user`: crash loop (task 5c3b): exit code 1");
    }
}

/// When a release hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStage {
    /// Before anything of the release is applied (migrations): its failure stops the release
    /// with nothing changed.
    PreDeploy,
    /// Once every service runs the release healthy (tests against it): its failure rolls the
    /// release back.
    PostDeploy,
    /// Before a rollback applies the earlier release (opt-in: pre-deploy hooks do not re-run).
    PreRollback,
}

impl HookStage {
    /// The words users read (`pre-deploy`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PreDeploy => "pre-deploy",
            Self::PostDeploy => "post-deploy",
            Self::PreRollback => "pre-rollback",
        }
    }
}

impl fmt::Display for HookStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A one-off task of a service, run once per release with the image the release pins for that
/// service: a Kubernetes Job (EKS) or an ECS `RunTask` (ECS) with `command` in place of the
/// container's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// The deployer service whose image and settings (env, secrets, network) it runs with.
    pub service: String,
    /// `migrate`: a Kubernetes name part (DNS-1123 label).
    pub name: String,
    pub stage: HookStage,
    /// Replaces the container's entrypoint and command (`["./migrate", "up"]`).
    pub command: Vec<String>,
    /// How long it may run, from its start; then it is stopped and fails.
    #[serde(with = "crate::model::seconds")]
    pub timeout: std::time::Duration,
}

impl Hook {
    /// `pre-deploy hook `migrate` of `order``: how reports name it.
    pub fn title(&self) -> String {
        format!("{} hook `{}` of `{}`", self.stage, self.name, self.service)
    }
}

/// Durations as whole seconds in JSON.
pub mod seconds {
    /// Serialises a duration as its whole seconds.
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}
