//! Semantic checks of what a release would apply, before anything reads the cluster or changes
//! it: the rendered objects of every selected service (none empty, each object owned by one
//! service, every namespaced object in the environment's namespace, every name a Kubernetes
//! name, each service's image used by at least one container), and the preflight that renders
//! them without credentials so `deploy` refuses a broken release before STS, the lock or any
//! apply. Every problem is collected (like a compiler), each naming the overlay and a fix.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::config::values::dns1123_subdomain;
use crate::config::{Config, ConfigError, Environment, Target};
use crate::observe::{self, RenderedService, VarFn};
use crate::plan::{self, Inputs};
use crate::render::RenderError;

/// Kinds that have no namespace (the common built-in ones; a custom resource's scope is only
/// known to the cluster, so an unknown kind with a namespace is judged like a namespaced one).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PersistentVolume",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "Node",
];

/// Whether objects of `kind` live in a namespace.
pub fn is_namespaced(kind: &str) -> bool {
    !CLUSTER_SCOPED.contains(&kind)
}

/// The problems of the rendered services (all of them, in service order).
pub fn rendered(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    rendered: &BTreeMap<String, RenderedService>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let namespace = match &env.target {
        Target::Eks(t) => Some(t.namespace.as_str()),
        Target::Ecs(_) => None,
    };
    // (group, kind, namespace, name) → the service that rendered it first.
    let mut owners: BTreeMap<(String, String, String, String), &str> = BTreeMap::new();
    for svc in &config.product.services {
        let name = svc.name.as_str();
        let Some(r) = rendered.get(name) else { continue };
        let file = source_file(config, env, name);
        let err = |message: String, hint: &str| ConfigError {
            file: file.clone(),
            line: None,
            column: None,
            message,
            hint: Some(hint.to_owned()),
        };
        let pin = plan::pin_for(config, svc, inputs);
        let images = match r {
            RenderedService::Kubernetes(objects) => {
                if objects.is_empty() {
                    errors.push(err(
                        format!("the overlay of service `{name}` renders no objects"),
                        "deployer refuses to deploy a service with nothing in it (that would delete everything it ran); add the service's resources to the overlay, or remove the service from deployer.yaml",
                    ));
                    continue;
                }
                let default_ns = namespace.unwrap_or("default");
                for obj in objects {
                    let kind = obj["kind"].as_str().unwrap_or_default();
                    let group =
                        obj["apiVersion"].as_str().and_then(|a| a.split_once('/')).map_or("", |(g, _)| g);
                    let obj_name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    let ns = obj["metadata"]["namespace"].as_str();
                    if let Err(why) = dns1123_subdomain(obj_name) {
                        errors.push(err(
                            format!("service `{name}` renders {kind} `{obj_name}` whose name {why}"),
                            "Kubernetes refuses the name; fix `metadata.name` (or the overlay's namePrefix/nameSuffix)",
                        ));
                    }
                    if is_namespaced(kind)
                        && let Some(ns) = ns
                        && ns != default_ns
                    {
                        errors.push(err(
                            format!(
                                "service `{name}` renders {kind}/{obj_name} into namespace `{ns}`, but environment `{}` deploys to `{default_ns}`",
                                env.name
                            ),
                            "remove `namespace:` from the overlay (deployer applies into the environment's namespace) or set it to `target.eks.namespace`",
                        ));
                    }
                    let key = (
                        group.to_owned(),
                        kind.to_owned(),
                        if is_namespaced(kind) { ns.unwrap_or(default_ns).to_owned() } else { String::new() },
                        obj_name.to_owned(),
                    );
                    if let Some(first) = owners.insert(key, name)
                        && first != name
                    {
                        errors.push(err(
                            format!("{kind}/{obj_name} is rendered by both `{first}` and `{name}`"),
                            "each object belongs to one service (the later apply would silently win, and a prune of one service would delete the other's); rename one or move it to one overlay",
                        ));
                    }
                }
                objects.iter().flat_map(container_images).collect::<Vec<_>>()
            }
            RenderedService::Ecs(td) => crate::render::ecs::images_of(td),
        };
        let uses = |image: &str| {
            image
                .strip_prefix(&pin.new_name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['@', ':']))
        };
        if !images.iter().any(|i| uses(i)) {
            let seen = if images.is_empty() { "no container at all".to_owned() } else { images.join(", ") };
            errors.push(ConfigError {
                file: file.clone(),
                line: None,
                column: None,
                message: format!(
                    "service `{name}` pins nothing: no container uses its repository `{}` (found: {seen})",
                    svc.repository
                ),
                hint: Some(format!(
                    "set a container's image to `{}` in the {} (deployer pins that name to the release's digest), or fix `repository:` in deployer.yaml",
                    svc.repository,
                    if matches!(r, RenderedService::Ecs(_)) { "task definition (`${image}`)" } else { "overlay" }
                )),
            });
        }
    }
    errors
}

/// Every container image of an object (pod templates of workloads, job templates of CronJobs,
/// bare Pods), init containers included.
fn container_images(obj: &Value) -> Vec<String> {
    let specs = [
        &obj["spec"]["template"]["spec"],
        &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        &obj["spec"],
    ];
    specs
        .iter()
        .flat_map(|s| ["containers", "initContainers"].map(|k| &s[k]))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// The file a service's rendered problems point at: its overlay or task-definition template.
fn source_file(config: &Config, env: &Environment, service: &str) -> PathBuf {
    let Some(svc) = config.service(service) else { return config.path.clone() };
    match &env.target {
        Target::Eks(_) => config.overlay_dir(svc, &env.name),
        Target::Ecs(_) => svc.ecs.as_ref().map(|t| config.root.join(&t.task_definition.value)),
    }
    .unwrap_or_else(|| config.path.clone())
}

/// A render failure as a configuration problem naming the overlay or template.
pub fn render_failure(config: &Config, env: &Environment, service: &str, e: &RenderError) -> ConfigError {
    let file = match e {
        RenderError::NotFound(_) => config.path.clone(),
        _ => source_file(config, env, service),
    };
    ConfigError { file, line: None, column: None, message: e.to_string(), hint: Some(e.hint()) }
}

/// What [`preflight`] rendered, each service with the pin it was rendered with (see
/// [`Inputs::rendered`]).
pub type Prerendered = BTreeMap<String, (crate::render::ImagePin, RenderedService)>;

/// Renders every selected service without credentials (images pinned as far as the command line
/// pins them) and checks the result: what `deploy` runs before it asks STS for anything, so a
/// release that would be refused never takes the lock, and a configuration error is not hidden
/// behind an auth one. Returns the problems and what rendered.
pub async fn preflight(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    var: VarFn<'_>,
) -> (Vec<ConfigError>, Prerendered) {
    let mut errors = Vec::new();
    for svc in config.product.services.iter().filter(|s| inputs.selects(s.name.as_str())) {
        let name = svc.name.as_str();
        if svc.build.is_none() && !inputs.images.contains_key(name) {
            errors.push(ConfigError {
                file: config.path.clone(),
                line: Some(svc.name.line).filter(|l| *l > 0),
                column: Some(svc.name.column).filter(|c| *c > 0),
                message: format!("service `{name}` has no `build:` and no `--image {name}=REF` was given"),
                hint: Some(format!("pass the prebuilt image: `--image {name}=REPOSITORY@sha256:…`")),
            });
        }
    }
    let (_, renders) = observe::render_services(config, env, inputs, var).await;
    let mut ok = BTreeMap::new();
    for (service, r) in renders {
        match r {
            Ok(x) => {
                ok.insert(service, x);
            }
            Err(e) => errors.push(render_failure(config, env, &service, &e)),
        }
    }
    // A missing kustomize fails every service the same way: said once.
    errors.dedup();
    errors.extend(rendered(config, env, inputs, &ok));
    let pins = ok
        .into_iter()
        .filter_map(|(name, r)| {
            Some((name.clone(), (plan::pin_for(config, config.service(&name)?, inputs), r)))
        })
        .collect();
    (errors, pins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product(dir: &std::path::Path) -> Config {
        std::fs::write(
            dir.join("deployer.yaml"),
            "product: shop\nregistry: {account_id: \"111111111111\", region: eu-west-1}\nservices:\n  - {name: api, repository: shop/api, kustomize: o/api}\n  - {name: web, repository: shop/web, kustomize: o/web}\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("environments")).unwrap();
        for s in ["api", "web"] {
            std::fs::create_dir_all(dir.join("o").join(s)).unwrap();
            std::fs::write(dir.join("o").join(s).join("kustomization.yaml"), "resources: []\n").unwrap();
        }
        std::fs::write(
            dir.join("environments/dev.yaml"),
            "account_id: \"222222222222\"\nregion: eu-west-1\ntarget:\n  eks: {context: fake, namespace: shop-dev}\n",
        )
        .unwrap();
        Config::load(&dir.join("deployer.yaml")).unwrap()
    }

    fn deployment(name: &str, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop-dev"},
               "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}})
    }

    fn check(objects: [(&str, Vec<Value>); 2]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let config = product(dir.path());
        let env = config.environment("dev").unwrap();
        let services: BTreeMap<String, RenderedService> =
            objects.into_iter().map(|(s, o)| (s.to_owned(), RenderedService::Kubernetes(o))).collect();
        rendered(&config, &env, &Inputs::default(), &services).into_iter().map(|e| e.message).collect()
    }

    const API: &str = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api";
    const WEB: &str = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/web:1";

    #[test]
    fn a_good_release_has_no_problems() {
        assert_eq!(
            check([("api", vec![deployment("api", API)]), ("web", vec![deployment("web", WEB)])]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_problem_is_reported_together() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "other"}});
        let problems = check([
            ("api", vec![deployment("api", "nginx"), cm.clone()]),
            (
                "web",
                vec![deployment("web", WEB), {
                    cm["metadata"]["namespace"] = json!("other");
                    cm
                }],
            ),
        ]);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("into namespace `other`"), "{problems:#?}");
        assert!(problems[1].contains("service `api` pins nothing"), "{problems:#?}");
        assert!(
            problems[3].contains("ConfigMap/shared is rendered by both `api` and `web`"),
            "{problems:#?}"
        );
    }

    #[test]
    fn an_empty_service_is_refused() {
        let problems = check([("api", vec![]), ("web", vec![deployment("web", WEB)])]);
        assert_eq!(problems, ["the overlay of service `api` renders no objects"]);
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace_to_check() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-dev"}});
        assert_eq!(
            check([("api", vec![deployment("api", API), ns]), ("web", vec![deployment("web", WEB)])]),
            Vec::<String>::new()
        );
    }

    /// ECS: a task definition whose containers never name the service's repository pins nothing
    /// (the `${image}` placeholder was dropped for a fixed image).
    #[test]
    fn an_ecs_task_definition_that_never_uses_the_repository_pins_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("deployer.yaml"),
            "product: shop\nregistry: {account_id: \"111111111111\", region: eu-west-1}\nservices:\n  - {name: api, repository: shop/api, ecs: {task_definition: td.json}}\n  - {name: web, repository: shop/web, ecs: {task_definition: td.json}}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("td.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("environments")).unwrap();
        std::fs::write(
            dir.path().join("environments/ecs.yaml"),
            "account_id: \"222222222222\"\nregion: eu-west-1\ntarget:\n  ecs: {cluster: shop}\n",
        )
        .unwrap();
        let config = Config::load(&dir.path().join("deployer.yaml")).unwrap();
        let env = config.environment("ecs").unwrap();
        let td = |image: &str| {
            RenderedService::Ecs(json!({"family": "shop-api", "containerDefinitions": [
                {"name": "app", "image": image, "essential": true},
                {"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2", "essential": false}
            ]}))
        };
        let services: BTreeMap<String, RenderedService> =
            [("api".to_owned(), td("nginx:1.27")), ("web".to_owned(), td(WEB))].into_iter().collect();
        let problems: Vec<String> =
            rendered(&config, &env, &Inputs::default(), &services).into_iter().map(|e| e.message).collect();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("service `api` pins nothing"), "{problems:#?}");
        assert!(problems[0].contains("nginx:1.27"), "{problems:#?}");
    }
}
