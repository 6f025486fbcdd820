//! The shapes of `deployer.yaml` (the product) and `environments/<env>.yaml` (a place to deploy).
//!
//! Every struct denies unknown keys: a typo must never silently turn a setting off. The same
//! types generate the JSON Schema (`schema/*.schema.json`) that editors use.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{
    AccountId, Date, HookName, HumanDuration, Loc, Region, RepositoryName, RoleArn, ServiceName,
};

/// `deployer.yaml`: the product, its services and the defaults every environment starts from.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductFile {
    /// Product name; used in release ids, lock names and notifications.
    pub product: Loc<ServiceName>,
    /// The shared container registry (one ECR registry serves every environment).
    pub registry: RegistryConfig,
    /// Directory of the environment files, relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments_dir: Option<String>,
    /// The services of the product.
    pub services: Vec<ServiceConfig>,
    /// Settings every environment inherits; an environment file overrides them key by key.
    #[serde(default)]
    pub defaults: Settings,
}

/// The shared registry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// AWS account that owns the ECR registry.
    pub account_id: AccountId,
    /// Region of the ECR registry.
    pub region: Region,
    /// Override of the registry host that serves `/v2/` (an ECR-compatible mirror, or a local
    /// registry in tests). Default: `<account>.dkr.ecr.<region>.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// One service of the product.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Service name (lowercase, `-`): Kubernetes object and ECS service names derive from it.
    pub name: Loc<ServiceName>,
    /// Repository inside the registry, e.g. `shop/user`.
    pub repository: RepositoryName,
    /// How to build the image. Absent: the image is prebuilt and given with `--image name=REF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildConfig>,
    /// Kustomize overlay root for EKS environments; `{env}` is replaced by the environment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Loc<String>>,
    /// ECS task-definition template for ECS environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsServiceConfig>,
    /// Services that must be healthy before this one is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Loc<ServiceName>>,
    /// How long a new pod or task of this service may run without becoming Ready (healthy)
    /// before the release fails; overrides the environment's `health.ready_within`. Set it
    /// above the slowest warm-up you accept: readiness failures while warming up are normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_within: Option<HumanDuration>,
    /// One-off tasks run with this service's image of the release (migrations before it,
    /// tests after it). See docs/hooks.md.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

/// A service's release hooks, by when they run. Each runs once per release, in the order
/// written, with the image the release pins for the service (a Kubernetes Job on EKS, an ECS
/// `RunTask` on ECS).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before anything of the release is applied (schema migrations). A failure stops the
    /// release with nothing changed (exit 8). Not re-run by a rollback: keep migrations
    /// backward compatible (expand/contract).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deploy: Vec<HookConfig>,
    /// Once every service of the release runs healthy (and, blue-green, serves production):
    /// tests against the new version. A failure rolls the release back (exit 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deploy: Vec<HookConfig>,
    /// Before a rollback (automatic or `deployer rollback`) applies the earlier release, with
    /// the image of the release being left (it knows what it migrated). A failure stops the
    /// rollback (exit 6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_rollback: Vec<HookConfig>,
}

impl Hooks {
    pub const fn is_empty(&self) -> bool {
        self.pre_deploy.is_empty() && self.post_deploy.is_empty() && self.pre_rollback.is_empty()
    }

    /// Every hook with its stage, in the order each stage runs them.
    pub fn all(&self) -> impl Iterator<Item = (crate::model::HookStage, &HookConfig)> {
        use crate::model::HookStage;
        self.pre_deploy
            .iter()
            .map(|h| (HookStage::PreDeploy, h))
            .chain(self.post_deploy.iter().map(|h| (HookStage::PostDeploy, h)))
            .chain(self.pre_rollback.iter().map(|h| (HookStage::PreRollback, h)))
    }
}

/// One release hook.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Name, part of the Kubernetes Job's name (`<service>-<name>-<n>`): lowercase letters,
    /// digits and `-`, at most 30 characters.
    pub name: Loc<HookName>,
    /// The command, in place of the image's entrypoint and command, e.g. `["./migrate", "up"]`
    /// or `["sh", "-c", "…"]`.
    pub command: Vec<String>,
    /// How long it may run before it is stopped and fails. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

impl HookConfig {
    /// What a hook may run for unless its `timeout` says otherwise.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_mins(10);
}

/// Image build settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Build context directory, relative to `deployer.yaml`.
    pub context: Loc<String>,
    /// Dockerfile path relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Build arguments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Multi-stage target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Target platform, e.g. `linux/amd64`.
    #[serde(default = "default_platform")]
    pub platform: String,
}

fn default_dockerfile() -> String {
    "Dockerfile".to_owned()
}

fn default_platform() -> String {
    "linux/amd64".to_owned()
}

/// ECS settings of a service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsServiceConfig {
    /// Task-definition template (JSON) with `${image}`, `${env}`, `${region}`, `${account_id}`,
    /// `${log_group}` placeholders.
    pub task_definition: Loc<String>,
}

/// `environments/<env>.yaml`: a place to deploy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    /// The AWS account this environment runs in; checked with `GetCallerIdentity` before any change.
    pub account_id: Loc<AccountId>,
    /// The environment's region.
    pub region: Region,
    /// The role to assume (through GitHub OIDC in Actions, or from the local AWS profile chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleConfig>,
    /// Where the services run.
    pub target: Target,
    /// Deployment strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Time limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Health checks that decide success or rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Image scan gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanPolicy>,
    /// Manual-approval requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Where progress is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
}

/// The settings an environment file shares with `defaults:` in `deployer.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
}

/// The IAM role to deploy with.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Role assumed with the GitHub OIDC token (`AssumeRoleWithWebIdentity`).
    pub arn: Loc<RoleArn>,
    /// Optional second role assumed from the first (`AssumeRole`), e.g. cross-account.
    /// AWS caps a chained session at one hour; deployer refreshes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Loc<RoleArn>>,
    /// Requested session length (900 s to 12 h; chained roles at most 1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<HumanDuration>,
    /// Session tags for the chained `AssumeRole` (web-identity sessions cannot carry tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_tags: BTreeMap<String, String>,
    /// OIDC audience. Default `sts.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Read-only role for `plan` (e.g. in pull requests) and for the source environment of
    /// `promote`: assumed instead of `arn` (no `chain`, no session tags); must be in `account_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_arn: Option<Loc<RoleArn>>,
}

/// Where the services run.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Amazon EKS (or any Kubernetes reachable through a kubeconfig context).
    Eks(EksTarget),
    /// Amazon ECS services.
    Ecs(EcsTarget),
}

/// An EKS cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EksTarget {
    /// EKS cluster name: endpoint and CA come from `eks:DescribeCluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A kubeconfig context to use instead of the EKS API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace for release records, the deploy lock and every namespaced object the overlays
    /// render (a DNS-1123 label).
    pub namespace: String,
}

/// An ECS cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsTarget {
    /// ECS cluster name or ARN.
    pub cluster: String,
    /// ECS service name per deployer service. Default: `<product>-<service>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, String>,
    /// Log group substituted into task definitions. Default `/ecs/<product>-<env>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    /// DynamoDB table holding the deploy lock (partition key `lock_id`, string). Default `deployer-locks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_table: Option<String>,
    /// Deployer-driven blue-green: the ALB listener rule (ARN) that carries production traffic,
    /// per deployer service. It alone decides which colour is live and is the one switched;
    /// other rules (test/preview) are never touched. Default: the listener's default action.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub production_rules: BTreeMap<String, String>,
}

/// Rollout strategy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// `rolling` or `blue-green`.
    #[serde(rename = "type")]
    pub kind: StrategyKind,
    /// Blue-green: how long the previous colour is kept (for an instant switch-back) before it is scaled down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<HumanDuration>,
    /// Blue-green: checks against the preview before the switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke_checks: Vec<HttpCheck>,
}

/// Rollout strategy kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    Rolling,
    BlueGreen,
}

/// Time limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Longest a rollout may take before it counts as failed. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<HumanDuration>,
    /// Longest to wait for an image scan. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<HumanDuration>,
    /// Longest to wait for the environment lock. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<HumanDuration>,
}

/// Health checks that decide success or rollback.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Keep watching this long after the rollout succeeded; any failure in it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_time: Option<HumanDuration>,
    /// CloudWatch alarm names; any in ALARM during rollout or bake rolls back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    /// HTTP checks during the bake time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpCheck>,
    /// How long a new pod or task may run without becoming Ready (healthy) before the release
    /// fails, with the readiness probe's or health check's last word. Default: no bound of its
    /// own (the workload's progress deadline, ECS's health-check grace period and
    /// `timeouts.rollout` decide). A service's own `ready_within` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_within: Option<HumanDuration>,
}

/// An HTTP check.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// URL to request (GET): absolute, `http` or `https`.
    #[serde(deserialize_with = "super::values::http_url")]
    pub url: String,
    /// Expected status. Default 200.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Request timeout. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

const fn default_status() -> u16 {
    200
}

/// The image scan gate.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanPolicy {
    /// Most findings allowed per severity; a severity not listed is not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<SeverityLimits>,
    /// Findings to ignore, each with a reason and an expiry date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<ScanIgnore>,
    /// What to do when the scan does not finish in time. Default `fail` (fail closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
}

/// Finding limits by severity.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SeverityLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<u32>,
}

/// One ignored finding.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanIgnore {
    /// The vulnerability id, e.g. `CVE-2024-1234`.
    pub id: String,
    /// Why it is acceptable (shown in reports).
    pub reason: String,
    /// After this date the finding counts again (and is reported as expired).
    pub expires: Date,
}

/// Scan-timeout behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    Fail,
    Pass,
}

/// Manual approval.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// When true, deploys need the GitHub environment's approval (OIDC `environment` claim) or,
    /// from a terminal, an explicit confirmation.
    pub required: bool,
    /// The GitHub environment whose reviewers approve (e.g. `production`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_environment: Option<String>,
}

/// Notification targets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubNotify>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackNotify>,
}

/// GitHub reporting.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubNotify {
    /// Create GitHub Deployments and statuses. Default true.
    #[serde(default = "yes")]
    pub deployments: bool,
    /// Keep one sticky comment on the pull request. Default true.
    #[serde(default = "yes")]
    pub pr_comment: bool,
    /// The environment's URL shown on the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
}

const fn yes() -> bool {
    true
}

/// Slack reporting: a webhook (one message per event) or a bot token (one message updated in place).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackNotify {
    /// Name of the environment variable holding an incoming-webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url_env: Option<String>,
    /// Name of the environment variable holding a bot token (`xoxb-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Channel id for the bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}
