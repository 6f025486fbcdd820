//! Configuration: loading, strict validation and the resolved model the rest of deployer uses.
//!
//! Two kinds of file: `deployer.yaml` describes the product (services, registry, shared
//! defaults) and `environments/<env>.yaml` describes one place to deploy. Loading is strict:
//! unknown keys, wrong types and invalid values are errors that name the file, line and column
//! with a suggestion. Values are checked while parsing (see [`values`]); cross-field rules
//! (duplicate services, missing overlays, ARN accounts) are checked afterwards with the
//! positions kept by [`values::Loc`].

pub mod schema;
pub mod types;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use types::*;
use values::{AccountId, HumanDuration, Loc, Region, RoleArn};

/// A configuration problem, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file at fault (as the user named it, relative when possible).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// Lowercase description of what is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl ConfigError {
    fn at(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: (line > 0).then_some(line),
            column: (column > 0).then_some(column),
            message: message.into(),
            hint: None,
        }
    }

    fn file(file: &Path, message: impl Into<String>) -> Self {
        Self::at(file, 0, 0, message)
    }

    fn loc<T>(file: &Path, loc: &Loc<T>, message: impl Into<String>) -> Self {
        Self::at(file, loc.line, loc.column, message)
    }

    #[must_use]
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:column`, as editors and GitHub annotations expect.
    pub fn position(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file.display()),
            (Some(l), None) => format!("{}:{l}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position(), self.message)
    }
}

/// Several configuration problems found in one pass (`deployer validate` shows them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} configuration error(s)", .0.len())]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// The loaded product file and where it lives.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of `deployer.yaml` as given.
    pub path: PathBuf,
    /// Directory paths in the file are relative to.
    pub root: PathBuf,
    /// Directory of the environment files.
    pub environments_dir: PathBuf,
    pub product: ProductFile,
}

/// One environment with the product defaults applied: what a deploy actually uses.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    #[serde(skip)]
    pub file: PathBuf,
    pub account_id: AccountId,
    pub region: Region,
    pub role: Option<ResolvedRole>,
    pub target: Target,
    pub strategy: ResolvedStrategy,
    pub timeouts: ResolvedTimeouts,
    pub health: Health,
    pub scan: ResolvedScan,
    pub approval: Option<Approval>,
    pub notifications: Notifications,
}

impl Environment {
    /// The environment as a read-only command sees it: `role.plan_arn`, when set, replaces the
    /// deploy role (assumed directly: no chain, no session tags), so a pull request's `plan` or
    /// `promote`'s source never holds credentials that can change the environment.
    #[must_use]
    pub fn for_reading(mut self) -> Self {
        if let Some(role) = &mut self.role
            && let Some(plan) = role.plan_arn.clone()
        {
            role.arn = plan;
            role.chain = None;
            role.session_tags.clear();
            // A role's maximum session defaults to 1 h; a plan is short.
            role.session_duration = role.session_duration.min(Duration::from_hours(1));
        }
        self
    }
}

/// The role settings with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedRole {
    pub arn: RoleArn,
    pub chain: Option<RoleArn>,
    #[serde(with = "secs")]
    pub session_duration: Duration,
    pub session_tags: BTreeMap<String, String>,
    pub audience: String,
    /// `role.plan_arn`: the read-only role (see [`Environment::for_reading`]).
    pub plan_arn: Option<RoleArn>,
}

/// The strategy with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedStrategy {
    pub kind: StrategyKind,
    #[serde(with = "secs")]
    pub scale_down_delay: Duration,
    pub smoke_checks: Vec<HttpCheck>,
}

/// Time limits with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedTimeouts {
    #[serde(with = "secs")]
    pub rollout: Duration,
    #[serde(with = "secs")]
    pub scan: Duration,
    #[serde(with = "secs")]
    pub lock: Duration,
}

/// The scan gate with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedScan {
    pub max: SeverityLimits,
    pub ignore: Vec<ScanIgnore>,
    pub on_timeout: OnTimeout,
}

mod secs {
    //! Durations serialise as whole seconds in JSON output.
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Config {
    /// Reads and checks `deployer.yaml` (not yet any environment).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let product: ProductFile = parse_file(path)?;
        // An empty root (config in the current directory) keeps messages free of `./` noise.
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let environments_dir = root.join(product.environments_dir.as_deref().unwrap_or("environments"));
        let config = Self { path: path.to_path_buf(), root, environments_dir, product };
        let errors = config.check_product();
        if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
    }

    /// Environment names found in the environments directory, sorted.
    pub fn environment_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.environments_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let p = e.path();
                let ext = p.extension()?.to_str()?;
                (ext == "yaml" || ext == "yml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Path of an environment's file (`.yaml`, or `.yml` when only that exists).
    pub fn environment_path(&self, name: &str) -> PathBuf {
        let yaml = self.environments_dir.join(format!("{name}.yaml"));
        let yml = self.environments_dir.join(format!("{name}.yml"));
        if !yaml.exists() && yml.exists() { yml } else { yaml }
    }

    /// Loads one environment, applies the product defaults and checks it against the product.
    pub fn environment(&self, name: &str) -> Result<Environment, ConfigErrors> {
        let path = self.environment_path(name);
        let mut early = Vec::new();
        if let Err(why) = values::dns1123_label(name) {
            // The name becomes a label value, part of the Lease and release-record names.
            early.push(ConfigError::file(&path, format!("environment name `{name}` {why}")).hint(
                "rename the environment file: lowercase letters, digits and `-`, e.g. `dev` or `eu-prod`",
            ));
        } else {
            let lease = format!("deployer-{}-{name}", self.product.product.as_str());
            if let Err(why) = values::dns1123_subdomain(&lease) {
                early.push(
                    ConfigError::file(&path, format!("the deploy lock's Lease name `{lease}` {why}"))
                        .hint("shorten the product or environment name"),
                );
            }
        }
        let (yaml, yml) = (
            self.environments_dir.join(format!("{name}.yaml")),
            self.environments_dir.join(format!("{name}.yml")),
        );
        if yaml.is_file() && yml.is_file() {
            early.push(
                ConfigError::file(
                    &yml,
                    format!("environment `{name}` has two files: {} and {}", yaml.display(), yml.display()),
                )
                .hint("keep one of them; deployer will not guess which one is meant"),
            );
        }
        if !early.is_empty() {
            // The file is still read, so its own problems are reported in the same run.
            if path.exists() {
                match parse_file::<EnvironmentFile>(&path) {
                    Ok(f) => early.extend(self.check_environment(name, &path, &f)),
                    Err(e) => early.push(e),
                }
            }
            return Err(ConfigErrors(early));
        }
        if !path.exists() {
            let known = self.environment_names();
            let mut err = ConfigError::file(&self.environments_dir, format!("unknown environment `{name}`"));
            err = match did_you_mean(name, known.iter().map(String::as_str)) {
                Some(s) => {
                    err.hint(format!("did you mean `--env {s}`? known environments: {}", known.join(", ")))
                }
                None if known.is_empty() => err.hint(format!(
                    "create {} (copy environments/dev.yaml from the deployer repository)",
                    path.display()
                )),
                None => err.hint(format!("known environments: {}", known.join(", "))),
            };
            return Err(err.into());
        }
        let file: EnvironmentFile = parse_file(&path)?;
        let errors = self.check_environment(name, &path, &file);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(self.resolve(name, path, file))
    }

    /// The product directory for messages.
    pub fn root_display(&self) -> String {
        if self.root.as_os_str().is_empty() {
            "the directory of the product file".to_owned()
        } else {
            self.root.display().to_string()
        }
    }

    /// The service by name.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.product.services.iter().find(|s| s.name.as_str() == name)
    }

    /// The overlay directory of a service in an environment (`{env}` substituted).
    pub fn overlay_dir(&self, service: &ServiceConfig, env: &str) -> Option<PathBuf> {
        service.kustomize.as_ref().map(|k| self.root.join(k.value.replace("{env}", env)))
    }

    /// The registry host serving `/v2/` for the shared registry.
    pub fn registry_host(&self) -> String {
        let r = &self.product.registry;
        // Image references carry the host only: a scheme in `endpoint` says how to talk to it.
        r.endpoint.as_deref().map_or_else(
            || format!("{}.dkr.ecr.{}.amazonaws.com", r.account_id, r.region),
            |e| {
                e.trim()
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_owned()
            },
        )
    }

    fn check_product(&self) -> Vec<ConfigError> {
        let path = &self.path;
        let mut errors = Vec::new();
        if self.product.services.is_empty() {
            let line = key_line(path, "services");
            errors.push(
                ConfigError::at(path, line, 1, "`services` is empty: there is nothing to deploy").hint(
                    "list at least one service; deployer never records (or prunes for) an empty release",
                ),
            );
        }
        let mut seen: BTreeMap<&str, &Loc<values::ServiceName>> = BTreeMap::new();
        for svc in &self.product.services {
            if let Some(first) = seen.insert(svc.name.as_str(), &svc.name) {
                errors.push(
                    ConfigError::loc(
                        path,
                        &svc.name,
                        format!("duplicate service name `{}`", svc.name.as_str()),
                    )
                    .hint(format!(
                        "the first `{}` is at line {}; give each service a unique name",
                        svc.name.as_str(),
                        first.line
                    )),
                );
            }
            if svc.kustomize.is_none() && svc.ecs.is_none() {
                errors.push(
                    ConfigError::loc(
                        path,
                        &svc.name,
                        format!("service `{}` has no deploy source", svc.name.as_str()),
                    )
                    .hint("add `kustomize: <overlay dir>` (EKS) or `ecs: {task_definition: <file>}` (ECS)"),
                );
            }
            if let Some(build) = &svc.build {
                let ctx = self.root.join(&build.context.value);
                if !ctx.is_dir() {
                    errors.push(
                        ConfigError::loc(
                            path,
                            &build.context,
                            format!("build context `{}` does not exist", build.context.value),
                        )
                        .hint(format!("paths are relative to {}", self.root_display())),
                    );
                } else if !ctx.join(&build.dockerfile).is_file() {
                    errors.push(
                        ConfigError::loc(
                            path,
                            &build.context,
                            format!("no `{}` in build context `{}`", build.dockerfile, build.context.value),
                        )
                        .hint("set `dockerfile:` to the file's path inside the context"),
                    );
                }
            }
            if let Some(ecs) = &svc.ecs
                && !self.root.join(&ecs.task_definition.value).is_file()
            {
                errors.push(
                    ConfigError::loc(
                        path,
                        &ecs.task_definition,
                        format!("task-definition template `{}` does not exist", ecs.task_definition.value),
                    )
                    .hint(format!("paths are relative to {}", self.root_display())),
                );
            }
        }
        let names: BTreeSet<&str> = self.product.services.iter().map(|s| s.name.as_str()).collect();
        for svc in &self.product.services {
            for dep in &svc.depends_on {
                if !names.contains(dep.as_str()) {
                    let mut e = ConfigError::loc(
                        path,
                        dep,
                        format!(
                            "service `{}` depends on unknown service `{}`",
                            svc.name.as_str(),
                            dep.as_str()
                        ),
                    );
                    let known = names.iter().copied().collect::<Vec<_>>().join(", ");
                    e = e.hint(match did_you_mean(dep.as_str(), names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? services: {known}"),
                        None => format!("services: {known}"),
                    });
                    errors.push(e);
                }
            }
        }
        for svc in &self.product.services {
            if let Some(t) = svc.ready_within.as_ref().filter(|t| t.0.is_zero()) {
                errors.push(
                    ConfigError::at(path, svc.name.line, svc.name.column, format!(
                        "service `{}` has `ready_within: {t}`: no pod or task is Ready the instant it starts",
                        svc.name.as_str()
                    ))
                    .hint("give the slowest warm-up you accept, e.g. `ready_within: 2m`, or omit it"),
                );
            }
            let mut seen = BTreeSet::new();
            for (stage, hook) in svc.hooks.all() {
                let name = hook.name.as_str();
                if !seen.insert(name) {
                    errors.push(
                        ConfigError::loc(
                            path,
                            &hook.name,
                            format!("service `{}` has two hooks named `{name}`", svc.name.as_str()),
                        )
                        .hint("give each hook of a service its own name (it names the Job or task that runs it)"),
                    );
                }
                if hook.command.iter().all(|a| a.trim().is_empty()) {
                    errors.push(
                        ConfigError::loc(
                            path,
                            &hook.name,
                            format!("{stage} hook `{name}` of `{}` has no command", svc.name.as_str()),
                        )
                        .hint("set `command:`, e.g. `[\"./migrate\", \"up\"]` or `[\"sh\", \"-c\", \"…\"]`"),
                    );
                }
                if hook.timeout.is_some_and(|t| t.0.is_zero()) {
                    errors.push(
                        ConfigError::loc(
                            path,
                            &hook.name,
                            format!(
                                "{stage} hook `{name}` of `{}` has `timeout: 0s`: it could never finish",
                                svc.name.as_str()
                            ),
                        )
                        .hint("omit `timeout` (10m) or give the longest the hook may run, e.g. `15m`"),
                    );
                }
            }
        }
        if errors.is_empty()
            && let Some(cycle) = dependency_cycle(&self.product.services)
        {
            {
                let svc = self.product.services.iter().find(|s| s.name.as_str() == cycle[0]);
                let line = svc.map_or(0, |s| s.name.line);
                errors.push(
                    ConfigError::at(path, line, 1, format!("dependency cycle: {}", cycle.join(" → ")))
                        .hint("remove one `depends_on` entry of the cycle"),
                );
            }
        }
        if let Err(e) = self.product.defaults.check(path) {
            errors.extend(e);
        }
        errors
    }

    fn check_environment(&self, name: &str, path: &Path, file: &EnvironmentFile) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(role) = &file.role {
            let deploy_role = role.chain.as_ref().unwrap_or(&role.arn);
            if deploy_role.account_id() != file.account_id.as_str() {
                errors.push(
                    ConfigError::loc(path, deploy_role, format!(
                        "role `{}` is in account {}, but this environment's account_id is {}",
                        deploy_role.value, deploy_role.account_id(), file.account_id.value
                    ))
                    .hint("deployer refuses to change an account other than `account_id`; fix the ARN or the account id (use `chain:` for a cross-account role)"),
                );
            }
            if let Some(plan) = &role.plan_arn
                && plan.account_id() != file.account_id.as_str()
            {
                errors.push(
                    ConfigError::loc(path, plan, format!(
                        "plan role `{}` is in account {}, but this environment's account_id is {}",
                        plan.value, plan.account_id(), file.account_id.value
                    ))
                    .hint("`role.plan_arn` is assumed directly (no chain): create the read-only role in the environment's account"),
                );
            }
            if let Some(d) = role.session_duration {
                let max = if role.chain.is_some() { 3600 } else { 43_200 };
                if d.0.as_secs() < 900 || d.0.as_secs() > max {
                    errors.push(
                        ConfigError::loc(path, &role.arn, format!("session_duration {d} is out of range"))
                            .hint(if max == 3600 {
                                "a chained role session lasts 15m to 1h (AWS limit); deployer refreshes it"
                            } else {
                                "use 15m to 12h"
                            }),
                    );
                }
            }
        }
        match &file.target {
            Target::Eks(eks) => {
                // Checked after parsing (not while): a flow mapping missing its `}` folds the
                // next line into the value, and the syntax error is the one to report then.
                if let Err(why) = values::dns1123_label(&eks.namespace) {
                    let (line, column) = value_position(path, "namespace");
                    errors.push(
                        ConfigError::at(
                            path,
                            line,
                            column,
                            format!("invalid namespace `{}`, which {why}", eks.namespace),
                        )
                        .hint("expected a Kubernetes namespace name such as `shop-dev`"),
                    );
                }
                if eks.cluster.is_none() && eks.context.is_none() {
                    errors.push(
                        ConfigError::file(path, "target.eks needs `cluster` or `context`")
                            .hint("set `cluster: <EKS cluster name>` or `context: <kubeconfig context>`"),
                    );
                }
                for svc in &self.product.services {
                    match &svc.kustomize {
                        None => errors.push(
                            ConfigError::loc(&self.path, &svc.name, format!("service `{}` has no `kustomize` overlay, but environment `{name}` targets EKS", svc.name.as_str()))
                                .hint("add `kustomize: <overlay dir>` to the service"),
                        ),
                        Some(k) => {
                            let dir = self.root.join(k.value.replace("{env}", name));
                            if !dir.join("kustomization.yaml").is_file() && !dir.join("kustomization.yml").is_file() && !dir.join("Kustomization").is_file() {
                                errors.push(
                                    ConfigError::loc(&self.path, k, format!("overlay `{}` for environment `{name}` has no kustomization.yaml", dir.display()))
                                        .hint("create the overlay, or fix the `kustomize:` path (`{env}` is replaced by the environment name)"),
                                );
                            }
                        }
                    }
                }
            }
            Target::Ecs(ecs) => {
                for svc in &self.product.services {
                    if svc.ecs.is_none() {
                        errors.push(
                            ConfigError::loc(&self.path, &svc.name, format!("service `{}` has no `ecs.task_definition`, but environment `{name}` targets ECS", svc.name.as_str()))
                                .hint("add `ecs: {task_definition: <template.json>}` to the service"),
                        );
                    }
                }
                let keys = ecs.services.keys().map(|k| ("services", k));
                for (field, key) in keys.chain(ecs.production_rules.keys().map(|k| ("production_rules", k))) {
                    if self.service(key).is_none() {
                        let mut e = ConfigError::file(
                            path,
                            format!("target.ecs.{field} names unknown service `{key}`"),
                        );
                        if let Some(s) =
                            did_you_mean(key, self.product.services.iter().map(|s| s.name.as_str()))
                        {
                            e = e.hint(format!("did you mean `{s}`?"));
                        }
                        errors.push(e);
                    }
                }
                for (key, rule) in &ecs.production_rules {
                    if !rule.starts_with("arn:") || !rule.contains(":listener-rule/") {
                        errors.push(
                            ConfigError::file(
                                path,
                                format!("target.ecs.production_rules.{key}: `{rule}` is not a listener rule ARN"),
                            )
                            .hint("give the rule's ARN (`aws elbv2 describe-rules --listener-arn …`), `arn:aws:elasticloadbalancing:…:listener-rule/…`"),
                        );
                    }
                }
            }
        }
        let settings = Settings {
            strategy: file.strategy.clone(),
            timeouts: file.timeouts.clone(),
            health: file.health.clone(),
            scan: file.scan.clone(),
            approval: file.approval.clone(),
            notifications: file.notifications.clone(),
        };
        if let Err(e) = settings.check(path) {
            errors.extend(e);
        }
        errors
    }

    fn resolve(&self, name: &str, path: PathBuf, file: EnvironmentFile) -> Environment {
        let d = &self.product.defaults;
        let strategy = file.strategy.or_else(|| d.strategy.clone());
        let timeouts = merge_timeouts(d.timeouts.as_ref(), file.timeouts.as_ref());
        let health = merge_health(d.health.as_ref(), file.health.as_ref());
        let scan = merge_scan(d.scan.as_ref(), file.scan.as_ref());
        let notifications = merge_notifications(d.notifications.as_ref(), file.notifications.as_ref());
        Environment {
            name: name.to_owned(),
            file: path,
            account_id: file.account_id.value,
            region: file.region,
            role: file.role.map(|r| ResolvedRole {
                session_duration: r.session_duration.map_or(Duration::from_hours(1), |d| d.0),
                arn: r.arn.value,
                chain: r.chain.map(|c| c.value),
                session_tags: r.session_tags,
                audience: r.audience.unwrap_or_else(|| "sts.amazonaws.com".to_owned()),
                plan_arn: r.plan_arn.map(|p| p.value),
            }),
            target: file.target,
            strategy: ResolvedStrategy {
                kind: strategy.as_ref().map_or(StrategyKind::Rolling, |s| s.kind),
                scale_down_delay: strategy
                    .as_ref()
                    .and_then(|s| s.scale_down_delay)
                    .map_or(Duration::from_mins(5), |d| d.0),
                smoke_checks: strategy.map(|s| s.smoke_checks).unwrap_or_default(),
            },
            timeouts,
            health,
            scan,
            approval: file.approval.or_else(|| d.approval.clone()),
            notifications,
        }
    }

    /// What an environment allows but probably does not mean (an unknown region, a `0s` that
    /// means "no limit"): every command shows these as warnings, none refuses.
    pub fn warnings(&self, env: &Environment) -> Vec<String> {
        let mut w = Vec::new();
        let unknown = |what: &str, r: &Region| {
            format!(
                "{what} `{r}` is not a region deployer knows; if AWS added it recently this is fine, otherwise check the spelling"
            )
        };
        if !env.region.is_known() {
            w.push(format!("{}: {}", env.file.display(), unknown("region", &env.region)));
        }
        if !self.product.registry.region.is_known() {
            w.push(format!(
                "{}: {}",
                self.path.display(),
                unknown("registry.region", &self.product.registry.region)
            ));
        }
        if env.timeouts.rollout.is_zero() {
            w.push(format!(
                "{}: timeouts.rollout is 0s: no overall rollout limit (each workload's own progress deadline still applies)",
                env.file.display()
            ));
        }
        if env.timeouts.scan.is_zero() {
            w.push(format!(
                "{}: timeouts.scan is 0s: deployer does not wait for scan results, so scan.on_timeout decides every unfinished scan",
                env.file.display()
            ));
        }
        if env.timeouts.lock.is_zero() {
            w.push(format!(
                "{}: timeouts.lock is 0s: a deploy fails at once when another one holds the lock",
                env.file.display()
            ));
        }
        w
    }
}

impl Settings {
    /// Rules inside the shared settings block (used for `defaults:` and environment files).
    fn check(&self, path: &Path) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if let Some(a) = &self.approval
            && a.required
            && a.github_environment.as_deref().is_none_or(str::is_empty)
        {
            errors.push(
                ConfigError::file(path, "approval.required is true but approval.github_environment is not set")
                    .hint("name the GitHub environment whose reviewers approve, e.g. `github_environment: production`"),
            );
        }
        if self.health.as_ref().and_then(|h| h.ready_within).is_some_and(|t| t.0.is_zero()) {
            errors.push(
                ConfigError::file(path, "health.ready_within is 0s: no pod or task is Ready the instant it starts")
                    .hint("give the slowest warm-up you accept, e.g. `ready_within: 2m`, or omit it (no bound of its own)"),
            );
        }
        let checks = self.health.iter().flat_map(|h| h.http.iter().map(|c| ("health.http", c)));
        let smoke =
            self.strategy.iter().flat_map(|s| s.smoke_checks.iter().map(|c| ("strategy.smoke_checks", c)));
        for (field, check) in checks.chain(smoke) {
            if check.timeout.is_some_and(|t| t.0.is_zero()) {
                errors.push(
                    ConfigError::file(
                        path,
                        format!("{field}: the check of {} has timeout 0s: it could never pass", check.url),
                    )
                    .hint("give the request time to answer, e.g. `timeout: 5s` (the default)"),
                );
            }
            if !(100..=599).contains(&check.expect_status) {
                errors.push(
                    ConfigError::file(
                        path,
                        format!(
                            "{field}: expect_status {} of {} is not an HTTP status",
                            check.expect_status, check.url
                        ),
                    )
                    .hint("use a status between 100 and 599, e.g. `expect_status: 200`"),
                );
            }
        }
        if let Some(slack) = self.notifications.as_ref().and_then(|n| n.slack.as_ref()) {
            match (&slack.webhook_url_env, &slack.token_env, &slack.channel) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                (None, Some(_), None) => errors.push(
                    ConfigError::file(path, "notifications.slack.token_env needs `channel`")
                        .hint("set `channel: C0123456789` (the channel id the bot posts to)"),
                ),
                _ => errors.push(
                    ConfigError::file(
                        path,
                        "notifications.slack needs either `webhook_url_env` or `token_env` + `channel`",
                    )
                    .hint("a webhook cannot update its message in place; a bot token can"),
                ),
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

fn merge_timeouts(d: Option<&Timeouts>, e: Option<&Timeouts>) -> ResolvedTimeouts {
    let pick = |f: fn(&Timeouts) -> Option<HumanDuration>, default: u64| {
        e.and_then(f).or_else(|| d.and_then(f)).map_or(Duration::from_secs(default), |x| x.0)
    };
    ResolvedTimeouts {
        rollout: pick(|t| t.rollout, 600),
        scan: pick(|t| t.scan, 600),
        lock: pick(|t| t.lock, 300),
    }
}

fn merge_health(d: Option<&Health>, e: Option<&Health>) -> Health {
    let d = d.cloned().unwrap_or_default();
    let Some(e) = e else { return d };
    Health {
        bake_time: e.bake_time.or(d.bake_time),
        alarms: if e.alarms.is_empty() { d.alarms } else { e.alarms.clone() },
        http: if e.http.is_empty() { d.http } else { e.http.clone() },
        ready_within: e.ready_within.or(d.ready_within),
    }
}

fn merge_scan(d: Option<&ScanPolicy>, e: Option<&ScanPolicy>) -> ResolvedScan {
    let d = d.cloned().unwrap_or_default();
    let e = e.cloned().unwrap_or_default();
    let dm = d.max.unwrap_or_default();
    let em = e.max.unwrap_or_default();
    ResolvedScan {
        max: SeverityLimits {
            critical: em.critical.or(dm.critical),
            high: em.high.or(dm.high),
            medium: em.medium.or(dm.medium),
            low: em.low.or(dm.low),
        },
        // Ignore lists add up: a product-wide exception applies to every environment.
        ignore: d.ignore.into_iter().chain(e.ignore).collect(),
        on_timeout: e.on_timeout.or(d.on_timeout).unwrap_or(OnTimeout::Fail),
    }
}

fn merge_notifications(d: Option<&Notifications>, e: Option<&Notifications>) -> Notifications {
    let d = d.cloned().unwrap_or_default();
    let Some(e) = e else { return d };
    Notifications { github: e.github.clone().or(d.github), slack: e.slack.clone().or(d.slack) }
}

/// The first dependency cycle, as a path of service names ending where it began.
fn dependency_cycle(services: &[ServiceConfig]) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(name.to_owned());
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        stack.push(name);
        for dep in deps.get(name).into_iter().flatten() {
            if let Some(c) = visit(dep, deps, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(name);
        None
    }
    let deps: BTreeMap<&str, Vec<&str>> = services
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.iter().map(|d| d.as_str()).collect()))
        .collect();
    let mut done = BTreeSet::new();
    services.iter().find_map(|s| visit(s.name.as_str(), &deps, &mut Vec::new(), &mut done))
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Jaro-Winkler favours shared prefixes (`servces` → `services`); the edit distance with
    // transpositions catches short swapped names (`dve` → `dev`) that Jaro-Winkler scores low.
    let max_edits = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            let jw = strsim::jaro_winkler(word, c);
            let close = jw > 0.8 || strsim::damerau_levenshtein(word, c) <= max_edits;
            close.then_some((jw, c))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The 1-based line where a top-level `key:` starts (0 when not found), for errors about a value
/// that keeps no position of its own (an empty list).
fn key_line(path: &Path, key: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let prefix = format!("{key}:");
    text.lines().position(|l| l.starts_with(&prefix)).map_or(0, |i| u64::try_from(i + 1).unwrap_or(0))
}

/// The 1-based line and column of the first `key:`'s value anywhere in the file ((0, 0) when not
/// found), for values checked after parsing.
fn value_position(path: &Path, key: &str) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(path) else { return (0, 0) };
    let needle = format!("{key}:");
    for (i, line) in text.lines().enumerate() {
        if let Some(at) = line.find(&needle) {
            let rest = &line[at + needle.len()..];
            let col = at + needle.len() + (rest.len() - rest.trim_start().len()) + 1;
            return (u64::try_from(i + 1).unwrap_or(0), u64::try_from(col).unwrap_or(0));
        }
    }
    (0, 0)
}

/// Reads a YAML file into `T`, turning parse errors into positioned [`ConfigError`]s.
fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::file(path, format!("cannot read: {}", e.to_string().to_lowercase()))
            .hint("pass the product file with `--config PATH` (default ./deployer.yaml)")
    })?;
    parse_str(path, &text)
}

/// Parses YAML text into `T`; `path` names the source in errors.
pub fn parse_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_saphyr::from_str::<T>(text).map_err(|e| yaml_error(path, &e))
}

fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> ConfigError {
    use serde_saphyr::Error as E;
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    let plain = err.without_snippet();
    let (message, hint) = match plain {
        E::SerdeUnknownField { field, expected, .. } => {
            let hint = match did_you_mean(field, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? valid keys here: {}", expected.join(", ")),
                None => format!("valid keys here: {}", expected.join(", ")),
            };
            (format!("unknown key `{field}`"), Some(hint))
        }
        E::SerdeUnknownVariant { variant, expected, .. } => {
            let hint = match did_you_mean(variant, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? expected one of: {}", expected.join(", ")),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            (format!("unknown value `{variant}`"), Some(hint))
        }
        E::SerdeMissingField { field, .. } => (
            format!("missing required key `{field}`"),
            Some(format!("add `{field}:` here (see the JSON Schema in schema/)")),
        ),
        other => {
            let text = other.render_with_formatter(&serde_saphyr::UserMessageFormatter);
            let first = text.lines().next().unwrap_or("invalid YAML").trim().to_owned();
            let first = strip_position_suffix(&first);
            if let Some((what, expected)) = first.split_once(": expected ") {
                // Our own value checks say "invalid X `v`: expected …": the second half is the fix.
                (lowercase_first(what), Some(format!("expected {expected}")))
            } else if first.contains("invalid type") || first.starts_with("expected ") {
                (
                    lowercase_first(&first),
                    Some("this key takes another kind of value; see the configuration reference in README.md or the JSON Schema".to_owned()),
                )
            } else if let Some(rest) = first.strip_prefix("duplicate mapping key ") {
                let key = rest.split(" is not").next().unwrap_or(rest);
                (
                    format!("duplicate key {key}"),
                    Some(format!("keep one {key} and merge the settings into it")),
                )
            } else {
                (
                    lowercase_first(&first),
                    Some("fix the YAML syntax at this position (indentation, `:` after keys, closing brackets and quotes)".to_owned()),
                )
            }
        }
    };
    let mut e = ConfigError::at(path, line, column, message);
    e.hint = hint;
    e
}

/// The formatter appends " at line L, column C" in some messages; the position is shown once, in front.
fn strip_position_suffix(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(did_you_mean("servces", ["product", "services", "registry"]), Some("services"));
        assert_eq!(did_you_mean("zzz", ["product", "services"]), None);
    }

    #[test]
    fn unknown_key_names_position_and_suggestion() {
        let err = parse_str::<Timeouts>(Path::new("e.yaml"), "rollout: 10m\nscna: 5m\n").unwrap_err();
        assert_eq!(err.position(), "e.yaml:2:1");
        assert_eq!(err.message, "unknown key `scna`");
        assert!(err.hint.unwrap().starts_with("did you mean `scan`?"));
    }

    #[test]
    fn bad_value_points_at_value() {
        let err = parse_str::<Timeouts>(Path::new("e.yaml"), "rollout: 10x\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("invalid duration `10x`"), "{}", err.message);
    }

    #[test]
    fn cycle_detection() {
        let yaml = "product: p\nregistry: {account_id: \"123456789012\", region: eu-west-1}\nservices:\n  - {name: a, repository: p/a, kustomize: x, depends_on: [b]}\n  - {name: b, repository: p/b, kustomize: x, depends_on: [a]}\n";
        let p: ProductFile = parse_str(Path::new("d.yaml"), yaml).unwrap();
        assert_eq!(dependency_cycle(&p.services), Some(vec!["a".into(), "b".into(), "a".into()]));
    }
}
