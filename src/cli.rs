//! Command-line interface (clap derive). Parsing only: [`crate::run`] does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// From a commit to running, verified production on AWS.
///
/// deployer builds your services' images, pushes them by digest, holds them at a scan gate,
/// renders each environment's Kustomize overlays (or ECS task definitions) with the digests
/// pinned, deploys them rolling or blue-green, watches their health and rolls back to the last
/// known-good release when they fail. It reports to GitHub and Slack as it goes.
#[derive(Debug, Parser)]
#[command(name = "deployer", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The product file.
    #[arg(long, global = true, default_value = "deployer.yaml", value_name = "PATH")]
    pub config: PathBuf,
    /// Environment to act on (a file in the environments directory, e.g. `dev`).
    #[arg(long, short = 'e', global = true, value_name = "ENV")]
    pub env: Option<String>,
    /// Output format. Default: `github` when GITHUB_ACTIONS=true, else `human`.
    #[arg(long, global = true, value_enum)]
    pub output: Option<OutputFormat>,
    /// More detail (repeat for even more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors and the final result.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable text (live progress on a terminal).
    Human,
    /// One JSON event per line (versioned; see README).
    Json,
    /// GitHub Actions: log groups, annotations, job summary and step outputs.
    Github,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, push, gate, apply and verify a release; roll back automatically on failure.
    Deploy(DeployArgs),
    /// Show what `deploy` would do, without changing anything.
    Plan(PlanArgs),
    /// Return an environment to its last known-good release (or a chosen one).
    Rollback(RollbackArgs),
    /// Show what runs in an environment and whether it drifted from its release record.
    Status,
    /// List an environment's releases with outcome and actor.
    History(HistoryArgs),
    /// Copy the exact image digests verified in one environment into another.
    Promote(PromoteArgs),
    /// Check deployer.yaml and the environment files (all of them, or `--env`).
    Validate(ValidateArgs),
}

/// Image selection shared by deploy and plan.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Use a prebuilt image for a service instead of building it: `SERVICE=REF` (tag or digest).
    #[arg(long = "image", value_name = "SERVICE=REF")]
    pub images: Vec<String>,
    /// Limit the release to these services (default: all).
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub images: ImageArgs,
    /// Confirm a deploy to an approval-gated environment from a terminal (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Take over field ownership held by other server-side-apply managers.
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub images: ImageArgs,
    /// Also write the plan as Markdown (for a pull-request comment) to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Release id to return to (default: the last known-good release).
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Confirm a rollback of an approval-gated environment from a terminal.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many releases to list.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Environment whose verified digests are promoted.
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// Environment that receives them.
    #[arg(long, value_name = "ENV")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also write the JSON Schemas of both files into this directory.
    #[arg(long, value_name = "DIR")]
    pub write_schema: Option<PathBuf>,
}
