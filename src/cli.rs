//! Command-line interface (clap derive). Parsing only: [`crate::run`] does the work.
//!
//! Every command's `--help` ends with examples; `deployer --help` ends with the exit codes (the
//! same table as README.md, checked against [`crate::error::ExitCode`] by a test), because scripts and
//! the Action's `result` output branch on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The end of `deployer --help`: getting started, and the exit codes scripts branch on.
pub const AFTER_HELP: &str = "\
Examples:
  deployer --config examples/shop/deployer.yaml plan --env dev
  deployer --config examples/shop/deployer.yaml render --env dev
  deployer deploy --env dev
  deployer promote --from dev --to prod && deployer deploy --env prod
  deployer completions bash > ~/.local/share/bash-completion/completions/deployer

Exit codes:
  0  success
  1  internal error (a bug, or an unexpected answer from a cloud API)
  2  usage or configuration error (the message names file:line:column and the fix)
  3  authentication / identity error (no credentials, STS refused, wrong account)
  4  the scan gate refused an image
  5  the deploy failed its health checks and was rolled back
  6  the rollback failed: manual action needed
  7  the environment's lock is held by a live deploy

Getting started: docs/getting-started.md; errors and their fixes: docs/troubleshooting.md";

/// From a commit to running, verified production on AWS.
///
/// deployer builds your services' images, pushes them by digest, holds them at a scan gate,
/// renders each environment's Kustomize overlays (or ECS task definitions) with the digests
/// pinned, deploys them rolling or blue-green, watches their health and rolls back to the last
/// known-good release when they fail. It reports to GitHub and Slack as it goes.
#[derive(Debug, Parser)]
#[command(name = "deployer", version, propagate_version = true, max_term_width = 100, after_help = AFTER_HELP)]
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
    /// Assume this role instead of the environment's `role.arn` (`role.plan_arn` for `plan`);
    /// a `role.chain` still follows. The Action's `role-arn` input.
    #[arg(long, global = true, env = "DEPLOYER_ROLE_ARN", value_name = "ARN", hide_env_values = true)]
    pub role_arn: Option<String>,
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
    #[command(after_help = "\
Examples:
  deployer deploy --env dev
  deployer deploy --env dev --service user --service order
  deployer deploy --env prod --image user=<registry>/shop/user@sha256:<digest>
  deployer deploy --env prod --yes        # approval-gated environment, from a script")]
    Deploy(DeployArgs),
    /// Show what `deploy` would do, without changing anything.
    #[command(after_help = "\
Examples:
  deployer plan --env dev                          # offline without AWS credentials
  deployer plan --env prod --markdown plan-prod.md # also as a pull-request comment
  deployer plan --env dev --output json | jq 'select(.event == \"planned\")'")]
    Plan(PlanArgs),
    /// Print exactly what `deploy` would apply: the objects (EKS) or task definitions (ECS).
    ///
    /// The same render as `deploy`, offline: EKS as one YAML stream, ECS as one task definition
    /// per line, byte for byte the `RegisterTaskDefinition` request. Images are pinned by digest
    /// (`--image SERVICE=REPOSITORY@sha256:…`); an image not built yet is shown as
    /// `REPOSITORY@<digest after push>`, with a warning. Secret values are redacted unless
    /// `--show-secrets`. Nothing but the rendered documents goes to stdout.
    #[command(after_help = "\
Examples:
  deployer render --env dev                          # images not built yet: pending pins shown
  deployer render --env prod --image user=<registry>/shop/user@sha256:<digest>
  deployer render --env prod --service user -o rendered/   # one file per service
  deployer render --env dev | kubectl diff -f -")]
    Render(RenderArgs),
    /// Return an environment to its last known-good release (or a chosen one).
    #[command(after_help = "\
Examples:
  deployer rollback --env dev
  deployer history --env prod && deployer rollback --env prod --to shop-prod-20261123-0712-9f2c4e1")]
    Rollback(RollbackArgs),
    /// Show what runs in an environment and whether it drifted from its release record.
    #[command(after_help = "\
Examples:
  deployer status --env prod
  deployer status --env prod --output json")]
    Status,
    /// List an environment's releases with outcome and actor.
    #[command(after_help = "\
Examples:
  deployer history --env prod
  deployer history --env prod --limit 5")]
    History(HistoryArgs),
    /// Copy the exact image digests verified in one environment into another.
    #[command(after_help = "\
Examples:
  deployer promote --from dev --to prod
  # then deploy exactly those digests (the Action passes its `images` output on):
  deployer deploy --env prod --image user=<repository>@sha256:<digest> ...")]
    Promote(PromoteArgs),
    /// Check deployer.yaml and the environment files (all of them, or `--env`).
    #[command(after_help = "\
Examples:
  deployer validate
  deployer validate --env prod
  deployer validate --write-schema schema/")]
    Validate(ValidateArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = "\
Examples:
  deployer completions bash > ~/.local/share/bash-completion/completions/deployer
  deployer completions zsh > \"${fpath[1]}/_deployer\"
  deployer completions fish > ~/.config/fish/completions/deployer.fish")]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout.
    #[command(after_help = "\
Examples:
  deployer man > deployer.1 && man ./deployer.1
  deployer man | gzip > /usr/local/share/man/man1/deployer.1.gz")]
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Allow a release that deletes more objects than it creates or keeps (without it such a
    /// release is refused in a non-interactive run, and asked about at a terminal).
    #[arg(long)]
    pub allow_prune: bool,
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
pub struct RenderArgs {
    #[command(flatten)]
    pub images: ImageArgs,
    /// Write one file per service into this directory (`SERVICE.yaml` / `SERVICE.json`)
    /// instead of one stream on stdout.
    #[arg(long = "out-dir", short = 'o', value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Print the values of Kubernetes Secrets (redacted by default).
    #[arg(long)]
    pub show_secrets: bool,
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

/// Writes what `completions` / `man` print (other commands print nothing here).
pub fn generate(command: &Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    match command {
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut cmd, "deployer", out);
            Ok(())
        }
        Command::Man => man(cmd, out),
        _ => Ok(()),
    }
}

/// The man page: clap_mangen's sections, with the examples and exit codes as their own
/// sections in no-fill mode (as `EXTRA` they would be reflowed into one paragraph).
fn man(cmd: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(cmd);
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    page.render_subcommands_section(out)?;
    for block in AFTER_HELP.split("\n\n") {
        let (title, body) = match block.split_once(":\n") {
            Some(("Examples", body)) => ("EXAMPLES", body),
            Some(("Exit codes", body)) => ("EXIT STATUS", body),
            _ => ("SEE ALSO", block),
        };
        writeln!(out, ".SH \"{title}\"\n.nf")?;
        for line in body.lines() {
            // roff: `\` and `-` are escapes; a leading `.` or `'` would be a request.
            let line = line.replace('\\', "\\e").replace('-', "\\-").replace('\'', "\\(aq");
            let lead = if line.starts_with('.') { "\\&" } else { "" };
            writeln!(out, "{lead}{line}")?;
        }
        writeln!(out, ".fi")?;
    }
    page.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;

    /// The exit-code table in `--help` lists every code with the meaning README.md gives it.
    #[test]
    fn help_lists_every_exit_code() {
        let codes = [
            ExitCode::Success,
            ExitCode::Internal,
            ExitCode::Config,
            ExitCode::Auth,
            ExitCode::ScanGate,
            ExitCode::RolledBack,
            ExitCode::RollbackFailed,
            ExitCode::LockHeld,
        ];
        let table: Vec<&str> = AFTER_HELP
            .lines()
            .skip_while(|l| *l != "Exit codes:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(table.len(), codes.len(), "{table:?}");
        let readme = include_str!("../README.md");
        for (line, code) in table.iter().zip(codes) {
            let (n, meaning) = line.trim().split_once("  ").unwrap();
            assert_eq!(n, code.code().to_string());
            let row = format!("| {n} | ");
            let readme_row = readme.lines().find(|l| l.starts_with(&row)).unwrap();
            let words =
                |s: &str| s.split_whitespace().filter(|w| w.len() > 3).map(str::to_owned).collect::<Vec<_>>();
            // The same meaning in both places (help may say "the scan gate" for "scan gate").
            for w in words(readme_row.trim_start_matches(&row).trim_end_matches(" |")) {
                assert!(
                    meaning.contains(w.trim_matches(|c: char| !c.is_alphanumeric())),
                    "{n}: `{w}` missing in `{meaning}`"
                );
            }
        }
    }
}
