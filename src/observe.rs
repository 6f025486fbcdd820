//! Observe: the read-only look at the world that a plan is computed from.
//!
//! Every observation either succeeds or records what could not be seen and why, so the plan
//! says plainly "live state: no AWS credentials" instead of guessing or failing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Config, Environment, Target};
use crate::identity;
use crate::plan::{Inputs, Live, Observed, Rendered, Unobserved};
use crate::render::kustomize::{self, Kustomize};
use crate::render::{RenderError, ecs};

/// The process environment, injectable for tests.
pub use crate::support::VarFn;

/// Gathers everything the plan needs that can be read without credentials, plus live state
/// when credentials exist.
pub async fn observe(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    var: VarFn<'_>,
    session: Option<Result<&crate::identity::AwsSession, String>>,
) -> Observed {
    let mut obs = Observed { git_sha: git_sha(&config.root, var).await, ..Observed::default() };
    if config
        .product
        .services
        .iter()
        .any(|s| s.build.is_some() && !inputs.images.contains_key(s.name.as_str()))
    {
        obs.builder = Some(crate::support::detect_builder(var).await);
    }
    let (kustomize, renders) = render_services(config, env, inputs, var).await;
    obs.kustomize = kustomize;
    match session {
        None => obs.unobserved.push(Unobserved {
            what: "live state".into(),
            reason: format!("no AWS credentials ({})", identity::NO_CREDENTIALS_HINT),
        }),
        Some(Err(reason)) => obs.unobserved.push(Unobserved { what: "live state".into(), reason }),
        Some(Ok(session)) => match &env.target {
            Target::Eks(target) => {
                if let Err(reason) = live_eks(config, env, target, session, &renders, &mut obs).await {
                    obs.unobserved.push(Unobserved { what: "live state".into(), reason });
                }
            }
            Target::Ecs(_) => {
                if let Err(reason) = live_ecs(config, env, session, &renders, &mut obs).await {
                    obs.unobserved.push(Unobserved { what: "live state".into(), reason });
                }
            }
        },
    }
    for (name, r) in renders {
        obs.renders.insert(name.clone(), r.as_ref().map(summarize).map_err(Clone::clone));
        if let Ok(rendered) = r {
            // Kept whole: what the plan shows is what the release applies (rendered once).
            obs.rendered.insert(name, rendered);
        }
    }
    obs
}

/// Live ECS state for the plan: each rendered task definition against the one its service
/// runs now (normalised the way registration compares them).
async fn live_ecs(
    config: &Config,
    env: &Environment,
    session: &crate::identity::AwsSession,
    renders: &BTreeMap<String, Result<RenderedService, RenderError>>,
    obs: &mut Observed,
) -> Result<(), String> {
    use crate::platform::Platform as _;
    use crate::platform::ecs::{self, taskdef};
    use crate::platform::eks::diff::{self, ObjectChange};
    let platform =
        ecs::EcsPlatform::new(&session.config, config, env).map_err(|e| format!("{e}; {}", e.hint()))?;
    let running = platform.running().await.map_err(|e| format!("{e}; {}", e.hint()))?;
    let history = platform.history().await.map_err(|e| format!("{e}; {}", e.hint()))?;
    let client = aws_sdk_ecs::Client::new(&session.config);
    for (svc, r) in renders {
        let Ok(RenderedService::Ecs(td)) = r else { continue };
        let family = td.get("family").and_then(|f| f.as_str()).unwrap_or_default().to_owned();
        let object = crate::render::ObjectRef {
            api_version: "ecs".into(),
            kind: "TaskDefinition".into(),
            namespace: None,
            name: family.clone(),
        };
        let Some(arn) = running.get(svc).and_then(|l| l.live.first().cloned()) else {
            obs.live.insert(svc.clone(), Live::Absent);
            obs.changes.insert(svc.clone(), vec![ObjectChange::Create { object }]);
            continue;
        };
        let current = taskdef::describe(&client, &arn).await.map_err(|e| format!("{e}; {}", e.hint()))?;
        let image = ecs_image(&current);
        let change = if taskdef::same(td, &current) {
            ObjectChange::Unchanged { object }
        } else {
            let name = format!("TaskDefinition/{family}");
            ObjectChange::Update {
                object,
                diff: diff::unified(&taskdef::normalise(&current), &taskdef::normalise(td), &name),
            }
        };
        let release = crate::release::last_known_good(&history, None).map(|r| r.id.clone());
        obs.live.insert(svc.clone(), Live::Running { image, release });
        obs.changes.insert(svc.clone(), vec![change]);
    }
    Ok(())
}

fn ecs_image(taskdef: &serde_json::Value) -> String {
    ecs::images_of(taskdef).into_iter().next().unwrap_or_else(|| "unknown".to_owned())
}

/// Live EKS state for the plan: a server-side dry-run diff per object, what runs (from the
/// last known-good release record), and what the new release would prune.
async fn live_eks(
    config: &Config,
    env: &Environment,
    target: &crate::config::EksTarget,
    session: &crate::identity::AwsSession,
    renders: &BTreeMap<String, Result<RenderedService, RenderError>>,
    obs: &mut Observed,
) -> Result<(), String> {
    use crate::platform::eks::{Eks, diff};
    let access = identity::eks::kube_config(target, session).await.map_err(|e| e.to_string())?;
    let client = crate::support::kube_client(access.config.clone()).map_err(|e| e.to_string())?;
    let eks = Eks::new(client.clone(), &target.namespace, config.product.product.as_str(), &env.name);
    let history = crate::platform::Platform::history(&eks).await.map_err(|e| format!("{e}; {}", e.hint()))?;
    let current = crate::release::last_known_good(&history, None);
    let mut rendered_refs = Vec::new();
    // One dry-run diff per service, concurrently, discovering each kind once between them.
    let resolver = crate::platform::eks::apply::Resolver::default();
    let diffs = futures::future::join_all(renders.iter().filter_map(|(svc, r)| {
        let Ok(RenderedService::Kubernetes(objects)) = r else { return None };
        let (client, resolver) = (&client, &resolver);
        Some(async move {
            (svc, objects, diff::plan_changes_with(client, resolver, objects, &target.namespace).await)
        })
    }))
    .await;
    for (svc, objects, changes) in diffs {
        rendered_refs.extend(objects.iter().map(kustomize::object_ref));
        let changes = changes.map_err(|e| format!("{e}; {}", e.hint()))?;
        let all_new = changes.iter().all(|c| matches!(c, diff::ObjectChange::Create { .. }));
        let live = match current.and_then(|c| c.services.get(svc).map(|s| (c, s))) {
            Some((rel, s)) => Live::Running { image: s.image.clone(), release: Some(rel.id.clone()) },
            None if all_new => Live::Absent,
            None => Live::Running { image: "unknown (not deployed by deployer)".into(), release: None },
        };
        obs.live.insert(svc.clone(), live);
        obs.changes.insert(svc.clone(), changes);
    }
    if let Some(current) = current {
        // The new release holds the rendered services and carries the others over unchanged
        // (as the engine records it): only what leaves it is pruned, the set `finish` deletes.
        let mut next = rendered_refs;
        for (svc, s) in &current.services {
            if !renders.contains_key(svc) {
                next.extend(s.manifests.iter().map(kustomize::object_ref));
            }
        }
        let previous: Vec<_> =
            current.services.values().flat_map(|s| s.manifests.iter().map(kustomize::object_ref)).collect();
        obs.prune = crate::plan::prune_list(&previous, &next, &target.namespace);
        obs.kept = next.len();
    }
    Ok(())
}

pub use crate::render::RenderedService;

/// Renders every selected service for the environment: kustomize overlays (EKS, in one kustomize
/// process when they all render)
/// or task-definition templates (ECS), with each service's image pinned by [`crate::plan::pin_for`].
pub async fn render_services(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    var: VarFn<'_>,
) -> (Option<Result<String, String>>, BTreeMap<String, Result<RenderedService, RenderError>>) {
    let selected: Vec<_> =
        config.product.services.iter().filter(|s| inputs.selects(s.name.as_str())).collect();
    let mut out = BTreeMap::new();
    match &env.target {
        Target::Eks(_) => {
            let explicit = var("DEPLOYER_KUSTOMIZE").map(std::path::PathBuf::from);
            let kz = match Kustomize::locate(explicit.as_deref()) {
                Ok(k) => k,
                Err(e) => {
                    for s in selected {
                        out.insert(s.name.as_str().to_owned(), Err(e.clone()));
                    }
                    return (Some(Err(e.to_string())), out);
                }
            };
            let mut jobs = Vec::with_capacity(selected.len());
            for svc in selected {
                let name = svc.name.as_str().to_owned();
                let Some(overlay) = config.overlay_dir(svc, &env.name) else {
                    let message = format!("service `{name}` has no kustomize overlay");
                    out.insert(
                        name.clone(),
                        Err(RenderError::Kustomize { service: name, env: env.name.clone(), message }),
                    );
                    continue;
                };
                let labels = [
                    kustomize::MANAGED_BY,
                    (kustomize::PRODUCT_LABEL, config.product.product.as_str()),
                    (kustomize::ENV_LABEL, env.name.as_str()),
                    (kustomize::SERVICE_LABEL, svc.name.as_str()),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
                let pin = crate::plan::pin_for(config, svc, inputs);
                // Rendered by the preflight with this very pin: the same objects, not a second
                // kustomize run.
                if let Some((was, rendered)) = inputs.rendered.get(&name)
                    && *was == pin
                {
                    out.insert(name, Ok(rendered.clone()));
                    continue;
                }
                jobs.push(kustomize::RenderJob { service: name, overlay, images: vec![pin], labels });
            }
            // One kustomize process for every service (falling back to one each on any error).
            let results = kz.render_all(&jobs, &env.name).await;
            for (job, result) in jobs.into_iter().zip(results) {
                out.insert(job.service, result.map(RenderedService::Kubernetes));
            }
            (Some(Ok(kz.describe())), out)
        }
        Target::Ecs(ecs_target) => {
            for svc in selected {
                let name = svc.name.as_str().to_owned();
                let Some(ecs_cfg) = &svc.ecs else {
                    let message = "no `ecs.task_definition` template".to_owned();
                    out.insert(name.clone(), Err(RenderError::TaskDefinition { service: name, message }));
                    continue;
                };
                let image = crate::plan::pin_for(config, svc, inputs).reference();
                let vars = BTreeMap::from([
                    ("image", image),
                    ("env", env.name.clone()),
                    ("region", env.region.as_str().to_owned()),
                    ("account_id", env.account_id.as_str().to_owned()),
                    (
                        "log_group",
                        ecs_target.log_group.clone().unwrap_or_else(|| {
                            format!("/ecs/{}-{}", config.product.product.as_str(), env.name)
                        }),
                    ),
                ]);
                let result = std::fs::read_to_string(config.root.join(&ecs_cfg.task_definition.value))
                    .map_err(|e| RenderError::TaskDefinition {
                        service: name.clone(),
                        message: format!("cannot read {}: {e}", ecs_cfg.task_definition.value),
                    })
                    .and_then(|text| ecs::render_task_definition(&text, &vars, &name))
                    .map(RenderedService::Ecs);
                out.insert(name, result);
            }
            (None, out)
        }
    }
}

/// What a plan shows of a rendered service.
fn summarize(rendered: &RenderedService) -> Rendered {
    match rendered {
        RenderedService::Kubernetes(objs) => {
            Rendered::Kubernetes { objects: objs.iter().map(kustomize::object_ref).collect() }
        }
        RenderedService::Ecs(td) => Rendered::Ecs {
            family: td.get("family").and_then(|f| f.as_str()).unwrap_or_default().to_owned(),
            images: ecs::images_of(td),
        },
    }
}

/// The commit: `GITHUB_SHA` in Actions, else `git rev-parse HEAD` in the product directory.
pub async fn git_sha(root: &Path, var: VarFn<'_>) -> Option<String> {
    if let Some(sha) = var("GITHUB_SHA").filter(|s| !s.is_empty()) {
        return Some(sha);
    }
    crate::support::git(root, &["rev-parse", "HEAD"]).await
}
