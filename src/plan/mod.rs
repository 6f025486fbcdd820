//! The plan: a pure function from (configuration, observations, inputs) to what a deploy would do.
//!
//! `deployer plan` and `deployer deploy` compute the same [`Plan`]; `plan` renders it and stops,
//! `deploy` goes on to apply it. Nothing here performs I/O, so every rule is a fixture test.

pub mod diff;
pub mod render;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Config, Environment, StrategyKind, Target};
use crate::render::{ImagePin, ObjectRef, RenderError};

/// What was observed before planning. Every field says what could not be seen and why.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The commit being deployed.
    pub git_sha: Option<String>,
    /// The image builder that would run (`buildah`, `docker buildx`), or why none can.
    pub builder: Option<Result<String, String>>,
    /// The kustomize that renders, or why none is available.
    pub kustomize: Option<Result<String, String>>,
    /// Per service: the rendered objects / task definition, or why rendering failed.
    pub renders: BTreeMap<String, Result<Rendered, RenderError>>,
    /// Per service: what runs now, or why it could not be looked at.
    pub live: BTreeMap<String, Live>,
    /// Whole parts that could not be observed (`live state`, `registry`, …) and why.
    pub unobserved: Vec<Unobserved>,
    /// Per service: what applying would change, object by object (EKS dry-run diff).
    pub changes: BTreeMap<String, Vec<diff::ObjectChange>>,
    /// Objects of the running release that the new one no longer has ([`prune_list`]).
    pub prune: Vec<ObjectRef>,
    /// How many objects the new release holds (rendered, plus the services it carries over).
    pub kept: usize,
    /// Per service that rendered: the objects / task definition in full, exactly what a deploy
    /// applies (the plan and the release share one render).
    pub rendered: BTreeMap<String, crate::render::RenderedService>,
}

/// A rendered service.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rendered {
    /// Kubernetes objects from the overlay.
    Kubernetes { objects: Vec<ObjectRef> },
    /// An ECS task definition.
    Ecs { family: String, images: Vec<String> },
}

/// What runs now for a service.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Live {
    /// Nothing of this service exists yet.
    Absent,
    /// It runs this image.
    Running { image: String, release: Option<String> },
}

/// Something that could not be observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unobserved {
    pub what: String,
    pub reason: String,
}

/// Inputs from the command line.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `--image service=REF` overrides (prebuilt images).
    pub images: BTreeMap<String, String>,
    /// `--service` filter; empty = all.
    pub services: Vec<String>,
    /// Images already resolved to digests (known in deploy after push/resolve; empty in a plan).
    pub pinned: BTreeMap<String, Pinned>,
    /// Services `deploy` rendered before asking for credentials (its preflight), each with the
    /// pin it was rendered with: reused while the pin is the same, so a deploy of prebuilt
    /// digests still renders each service once.
    pub rendered: BTreeMap<String, (ImagePin, crate::render::RenderedService)>,
}

impl Inputs {
    /// Whether the command works on service `name` (`--service` given and naming it, or none).
    pub fn selects(&self, name: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|n| n == name)
    }
}

/// An image resolved to a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Repository without tag or digest, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/user`.
    pub repository: String,
    /// `sha256:…`.
    pub digest: String,
}

/// The pin of one service: its resolved image, or the registry repository it will be pushed to.
pub fn pin_for(config: &Config, svc: &crate::config::ServiceConfig, inputs: &Inputs) -> ImagePin {
    let name = svc.repository.as_str().to_owned();
    if let Some(p) =
        inputs.pinned.get(svc.name.as_str()).cloned().or_else(|| prebuilt_digest(inputs, svc.name.as_str()))
    {
        return ImagePin { name, new_name: p.repository, digest: Some(p.digest) };
    }
    ImagePin { new_name: format!("{}/{name}", config.registry_host()), name, digest: None }
}

/// A `--image` given by digest is already pinned (`repo[:tag]@sha256:…`).
pub fn prebuilt_digest(inputs: &Inputs, service: &str) -> Option<Pinned> {
    let reference = inputs.images.get(service)?;
    let (repository, digest) = reference.split_once('@').filter(|(_, d)| d.starts_with("sha256:"))?;
    // A tag before the digest is informational only.
    let repository = match repository.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repository,
    };
    Some(Pinned { repository: repository.to_owned(), digest: digest.to_owned() })
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub product: String,
    pub environment: String,
    pub account_id: String,
    pub region: String,
    pub target: String,
    pub strategy: StrategyKind,
    pub registry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    pub services: Vec<ServicePlan>,
    pub gates: Gates,
    pub unobserved: Vec<Unobserved>,
    /// Objects the release would delete (they left the overlays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<ObjectRef>,
    /// The release deletes more objects than it creates or keeps: `deploy` needs
    /// `--allow-prune` in a non-interactive run ([`needs_allow_prune`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prune_needs_allow: bool,
}

/// The objects a release deletes: those of the previous release (`previous`) that the next one
/// (`next`, every service it holds) no longer has. Objects without a namespace are in
/// `default_ns` (where deployer applies them). The plan lists exactly these, and the platform
/// deletes exactly these (those deployer owns).
pub fn prune_list(previous: &[ObjectRef], next: &[ObjectRef], default_ns: &str) -> Vec<ObjectRef> {
    let ns = |o: &ObjectRef| o.namespace.clone().unwrap_or_else(|| default_ns.to_owned());
    let same = |a: &ObjectRef, b: &ObjectRef| a.kind == b.kind && a.name == b.name && ns(a) == ns(b);
    let mut out: Vec<ObjectRef> = Vec::new();
    for p in previous {
        if !next.iter().any(|n| same(p, n)) && !out.iter().any(|o| same(o, p)) {
            out.push(p.clone());
        }
    }
    out
}

/// Whether deleting `prune` objects while `kept` remain is a release that needs an explicit
/// `--allow-prune`: one that removes more than it creates or keeps looks like an overlay that
/// lost its resources, not like a change someone meant.
pub const fn needs_allow_prune(prune: usize, kept: usize) -> bool {
    prune > 0 && prune > kept
}

/// One service's part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub build: BuildPlan,
    pub image: ImagePin,
    pub render: RenderPlan,
    pub change: Change,
    /// Object by object, when live state was observed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<diff::ObjectChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The release hooks that run with this service's image, in the order they run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<PlannedHook>,
}

/// A release hook as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedHook {
    pub name: String,
    pub stage: crate::model::HookStage,
    pub command: Vec<String>,
    /// `10m`.
    pub timeout: String,
}

impl PlannedHook {
    /// `pre-deploy `migrate`: ./migrate up (timeout 10m)`.
    pub fn line(&self) -> String {
        format!("{} `{}`: {} (timeout {})", self.stage, self.name, self.command.join(" "), self.timeout)
    }
}

/// The hooks of `svc`, as the plan lists them.
pub fn hooks_of(svc: &crate::config::ServiceConfig) -> Vec<PlannedHook> {
    svc.hooks
        .all()
        .map(|(stage, h)| PlannedHook {
            name: h.name.as_str().to_owned(),
            stage,
            command: h.command.clone(),
            timeout: crate::support::human(
                h.timeout.map_or(crate::config::HookConfig::DEFAULT_TIMEOUT, |t| t.0),
            ),
        })
        .collect()
}

/// How the image comes to be.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BuildPlan {
    /// Build from source, then push by digest.
    Build { context: String, dockerfile: String, builder: String },
    /// Use the given prebuilt reference (resolved to a digest and verified to exist).
    Prebuilt { reference: String },
    /// No build settings and no `--image`: deploy cannot proceed for this service.
    Missing { reason: String },
}

/// What rendering produced.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RenderPlan {
    Kubernetes { overlay: String, objects: Vec<ObjectRef> },
    Ecs { template: String, family: String, ecs_service: String },
    Failed { error: String },
}

/// What changes in the environment.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// Nothing of this service runs yet.
    FirstDeploy,
    /// It runs `from`; it will run the new image.
    Update { from: String },
    /// Live state was not observed; the reason is in `unobserved`.
    Unknown,
}

/// The checks a deploy must pass.
#[derive(Debug, Clone, Serialize)]
pub struct Gates {
    pub scan: String,
    pub approval: Option<String>,
    pub health: String,
    pub rollback: String,
}

/// Computes the plan. Pure: same inputs, same plan.
pub fn plan(config: &Config, env: &Environment, observed: &Observed, inputs: &Inputs) -> Plan {
    let registry = config.registry_host();
    let builder = match &observed.builder {
        Some(Ok(b)) => b.clone(),
        Some(Err(why)) => format!("none ({why})"),
        None => "not checked".to_owned(),
    };
    let services = config
        .product
        .services
        .iter()
        .filter(|s| inputs.selects(s.name.as_str()))
        .map(|svc| {
            let name = svc.name.as_str().to_owned();
            let build = match (inputs.images.get(&name), &svc.build) {
                (Some(reference), _) => BuildPlan::Prebuilt { reference: reference.clone() },
                (None, Some(b)) => BuildPlan::Build {
                    context: b.context.value.clone(),
                    dockerfile: b.dockerfile.clone(),
                    builder: builder.clone(),
                },
                (None, None) => BuildPlan::Missing {
                    reason: format!("no `build:` for `{name}`; pass `--image {name}=REF`"),
                },
            };
            let image = pin_for(config, svc, inputs);
            let render = match observed.renders.get(&name) {
                Some(Ok(Rendered::Kubernetes { objects })) => RenderPlan::Kubernetes {
                    overlay: svc
                        .kustomize
                        .as_ref()
                        .map(|k| k.value.replace("{env}", &env.name))
                        .unwrap_or_default(),
                    objects: objects.clone(),
                },
                Some(Ok(Rendered::Ecs { family, .. })) => RenderPlan::Ecs {
                    template: svc.ecs.as_ref().map(|e| e.task_definition.value.clone()).unwrap_or_default(),
                    family: family.clone(),
                    ecs_service: ecs_service_name(config, env, &name),
                },
                Some(Err(e)) => RenderPlan::Failed { error: e.to_string() },
                None => RenderPlan::Failed { error: "not rendered".to_owned() },
            };
            let change = match observed.live.get(&name) {
                Some(Live::Absent) => Change::FirstDeploy,
                Some(Live::Running { image, .. }) => Change::Update { from: image.clone() },
                None => Change::Unknown,
            };
            let objects = observed.changes.get(&name).cloned().unwrap_or_default();
            ServicePlan {
                name,
                build,
                image,
                render,
                change,
                objects,
                depends_on: svc.depends_on.iter().map(|d| d.as_str().to_owned()).collect(),
                hooks: hooks_of(svc),
            }
        })
        .collect();
    Plan {
        product: config.product.product.as_str().to_owned(),
        environment: env.name.clone(),
        account_id: env.account_id.as_str().to_owned(),
        region: env.region.as_str().to_owned(),
        target: target_summary(&env.target),
        strategy: env.strategy.kind,
        registry,
        git_sha: observed.git_sha.clone(),
        services,
        gates: gates(env),
        unobserved: observed.unobserved.clone(),
        prune: observed.prune.clone(),
        prune_needs_allow: needs_allow_prune(observed.prune.len(), observed.kept),
    }
}

/// The ECS service name of a deployer service in an environment.
pub fn ecs_service_name(config: &Config, env: &Environment, service: &str) -> String {
    match &env.target {
        Target::Ecs(ecs) => ecs
            .services
            .get(service)
            .cloned()
            .unwrap_or_else(|| format!("{}-{service}", config.product.product.as_str())),
        Target::Eks(_) => service.to_owned(),
    }
}

fn target_summary(target: &Target) -> String {
    match target {
        Target::Eks(e) => match (&e.cluster, &e.context) {
            (_, Some(ctx)) => format!("eks context `{ctx}` (namespace {})", e.namespace),
            (Some(c), None) => format!("eks cluster `{c}` (namespace {})", e.namespace),
            (None, None) => format!("eks (namespace {})", e.namespace),
        },
        Target::Ecs(e) => format!("ecs cluster `{}`", e.cluster),
    }
}

fn gates(env: &Environment) -> Gates {
    let m = &env.scan.max;
    let limits: Vec<String> =
        [("critical", m.critical), ("high", m.high), ("medium", m.medium), ("low", m.low)]
            .iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n} ≤ {v}")))
            .collect();
    let scan = if limits.is_empty() {
        "findings reported, none block".to_owned()
    } else {
        let ignores = if env.scan.ignore.is_empty() {
            String::new()
        } else {
            format!(", {} ignored", env.scan.ignore.len())
        };
        format!("{}{ignores}; on timeout: {:?}", limits.join(", "), env.scan.on_timeout).to_lowercase()
    };
    let approval = env.approval.as_ref().filter(|a| a.required).map(|a| {
        format!("required: GitHub environment `{}`", a.github_environment.as_deref().unwrap_or("?"))
    });
    let mut health = vec![format!("rollout within {}", humantime::format_duration(env.timeouts.rollout))];
    if let Some(b) = env.health.bake_time {
        health.push(format!("bake {b}"));
    }
    if !env.health.alarms.is_empty() {
        health.push(format!("alarms: {}", env.health.alarms.join(", ")));
    }
    if !env.health.http.is_empty() {
        health.push(format!("{} http check(s)", env.health.http.len()));
    }
    Gates {
        scan,
        approval,
        health: health.join("; "),
        rollback: "automatic, to the last known-good release".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: ns.map(str::to_owned),
            name: name.into(),
        }
    }

    #[test]
    fn prune_is_what_left_the_release_with_namespaces_defaulted() {
        let previous = [
            obj("Service", None, "api"),
            obj("ConfigMap", Some("dev"), "cfg"),
            obj("Service", Some("dev"), "web"),
        ];
        let next = [obj("Service", Some("dev"), "api"), obj("ConfigMap", None, "cfg")];
        assert_eq!(prune_list(&previous, &next, "dev"), [obj("Service", Some("dev"), "web")]);
        assert_eq!(prune_list(&previous, &next, "other"), previous);
    }

    #[test]
    fn deleting_more_than_is_kept_needs_allowing() {
        assert!(!needs_allow_prune(0, 0));
        assert!(!needs_allow_prune(2, 2));
        assert!(needs_allow_prune(3, 2));
        assert!(needs_allow_prune(1, 0));
    }
}
