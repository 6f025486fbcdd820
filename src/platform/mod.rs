//! Platforms deployer deploys to. EKS (any Kubernetes) lives in [`eks`].
pub mod eks;
