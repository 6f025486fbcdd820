//! deployer: from a commit to running, verified production on AWS.
//!
//! The pipeline is data flowing one way:
//! configuration ([`config`]) → observe ([`observe`], read-only) → plan ([`plan`], pure) →
//! apply (effects) → events ([`events`]) rendered by [`report`]. `deployer plan` runs the same
//! code as `deployer deploy` and stops before any effect.
//!
//! Module map:
//! - [`cli`]: the command line (clap); [`app`]: runs a parsed command.
//! - [`config`]: `deployer.yaml` + `environments/*.yaml`, strict validation, JSON Schema.
//! - [`identity`]: where AWS credentials come from.
//! - [`image`]: build, push by digest, resolve, scan gate, promotion.
//! - [`render`]: Kustomize overlays and ECS task definitions with pinned digests.
//! - [`plan`]: the plan and its text/Markdown/JSON forms.
//! - [`events`], [`report`]: the one event stream, its renderers and notifiers (GitHub, Slack).
//! - [`platform`]: where services run (EKS, ECS): apply, watch, record, roll back.
//! - [`health`]: pure health verdicts shared by the platforms.
//! - [`error`]: the top-level error and exit codes.
//!
//! The library never prints: the binary hands [`app::Io`] to [`app::run`].

pub mod app;
pub mod checks;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod health;
pub mod identity;
pub mod image;
pub mod model;
pub mod observe;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod release;
pub mod render;
pub mod report;
pub mod support;
pub mod validate;

pub use app::{Io, run};
pub use error::{Error, ExitCode};
