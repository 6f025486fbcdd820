//! The executors of `deploy`, `rollback`, `status` and `history`: identity → approval guard →
//! images → render → platform → report. Every step reports through the one event stream;
//! failures map to the documented exit codes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, ConfigError, Environment, StrategyKind, Target};
use crate::engine::{self, Ended, Planned, Settings, Strategy};
use crate::error::Error;
use crate::events::{Event, Outcome, Phase, PhaseTiming, Sink};
use crate::identity::guard::{self, Action, Invocation, Prompt};
use crate::identity::{self, AwsSession, Masker};
use crate::observe::{self, RenderedService, VarFn};
use crate::plan::{self, Inputs, Pinned};
use crate::platform::{self, Platform};
use crate::release::{Release, ServiceRelease};

/// What every executor needs.
pub struct Context<'a> {
    pub config: &'a Config,
    pub env: &'a Environment,
    pub var: VarFn<'a>,
    pub events: &'a dyn Sink,
    /// Secrets to mask (in Actions its lines reach stdout before anything else is printed).
    pub masker: Arc<Masker>,
}

/// Flags of `deploy` / `rollback`.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub yes: bool,
    pub force_conflicts: bool,
    /// `--allow-prune`: a release may delete more objects than it creates or keeps.
    pub allow_prune: bool,
}

/// Records phase times relative to the release start (for the summary's timeline) and forwards.
pub struct Timeline<'a> {
    inner: &'a dyn Sink,
    start: Instant,
    open: Mutex<BTreeMap<String, u64>>,
    done: Mutex<Vec<PhaseTiming>>,
}

impl<'a> Timeline<'a> {
    pub fn new(inner: &'a dyn Sink) -> Self {
        Self { inner, start: Instant::now(), open: Mutex::default(), done: Mutex::default() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn timings(&self) -> Vec<PhaseTiming> {
        self.done.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

impl Sink for Timeline<'_> {
    fn emit(&self, event: &Event) {
        match event {
            Event::PhaseStarted { phase } => {
                if let Ok(mut o) = self.open.lock() {
                    o.insert(phase.title().to_owned(), self.now_ms());
                }
            }
            Event::PhaseFinished { phase, ok, .. } => {
                let start_ms = self.open.lock().ok().and_then(|mut o| o.remove(phase.title())).unwrap_or(0);
                let elapsed_ms = self.now_ms().saturating_sub(start_ms);
                if let Ok(mut d) = self.done.lock() {
                    d.push(PhaseTiming { phase: *phase, start_ms, elapsed_ms, ok: *ok });
                }
            }
            _ => {}
        }
        self.inner.emit(event);
    }
}

/// Runs `f` as a phase: start and finish events with the elapsed time.
pub async fn phase<T, F: Future<Output = Result<T, Error>>>(
    events: &dyn Sink,
    phase: Phase,
    f: F,
) -> Result<T, Error> {
    let start = Instant::now();
    events.emit(&Event::PhaseStarted { phase });
    let r = f.await;
    let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    events.emit(&Event::PhaseFinished { phase, ok: r.is_ok(), elapsed_ms });
    r
}

/// Credentials for the environment (the account check included).
pub async fn establish(cx: &Context<'_>) -> Result<AwsSession, Error> {
    // Decide offline first: with no credential source at all the SDK's default chain would end
    // probing the instance-metadata endpoint for seconds (self-hosted EC2 runners opt in to it
    // with AWS_EC2_METADATA_DISABLED=false).
    if identity::detect(&|k| (cx.var)(k)).is_none() {
        return Err(Error::auth("no AWS credentials found", identity::NO_CREDENTIALS_HINT));
    }
    // Boxed: the AWS SDK's futures are large, and every command awaits this one.
    Box::pin(phase(cx.events, Phase::Identity, async {
        let mut opts = identity::Options::from_env(cx.env, &|k| (cx.var)(k)).await;
        opts.masker = cx.masker.clone();
        let session = identity::establish(cx.env, opts).await?;
        cx.events.emit(&Event::Service {
            service: String::new(),
            phase: Phase::Identity,
            message: format!("acting as {} (account {})", session.caller.arn, session.caller.account),
        });
        Ok(session)
    }))
    .await
}

/// The approval guard for an action on the environment.
fn confirm(
    cx: &Context<'_>,
    session: &AwsSession,
    action: Action,
    yes: bool,
    prompt: &mut dyn Prompt,
) -> Result<String, Error> {
    let claim = session.claims.as_ref().and_then(|c| c.environment.as_deref());
    let invocation = Invocation::from_env(&|k| (cx.var)(k), claim, yes, None);
    let c = guard::guard(&cx.env.name, cx.env.approval.as_ref(), action, &invocation, prompt)?;
    Ok(serde_json::to_value(&c).map_or_else(|_| c.by.clone(), |v| v.to_string()))
}

/// Resolves every selected service to an image pinned by digest: prebuilt `--image`
/// references are resolved (tags) and verified in the product's registry, the others are built
/// and pushed by digest (tagged with the commit). A digest in another registry is used as given,
/// with a warning that it was not verified.
pub async fn resolve_images(
    cx: &Context<'_>,
    session: &AwsSession,
    inputs: &Inputs,
    git_sha: Option<&str>,
) -> Result<BTreeMap<String, Pinned>, Error> {
    use crate::image::{self, Reference};
    let selected: Vec<_> = cx
        .config
        .product
        .services
        .iter()
        .filter(|s| inputs.services.is_empty() || inputs.services.iter().any(|n| n == s.name.as_str()))
        .collect();
    let registry =
        std::sync::Arc::new(image::Registry::for_config(cx.config, Some(&session.config), cx.var)?);
    let host = registry.endpoint().host().to_owned();
    let mut pinned = BTreeMap::new();
    let mut to_build = Vec::new();
    for svc in &selected {
        let name = svc.name.as_str();
        match inputs.images.get(name) {
            Some(reference) => {
                let r = Reference::parse(reference)?;
                let ours = r.host.as_deref().is_none_or(|h| h == host);
                let p = if ours {
                    let resolved = image::resolve(&registry, &r).await?;
                    Pinned {
                        repository: format!("{host}/{}", r.repository),
                        digest: resolved.digest.to_string(),
                    }
                } else if let Some(p) = crate::plan::prebuilt_digest(inputs, name) {
                    cx.events.emit(&Event::Warning {
                        message: format!("`{name}` uses {reference} from another registry: pinned by digest, not verified or scanned"),
                    });
                    p
                } else {
                    return Err(Error::Config(crate::config::ConfigErrors(vec![crate::config::ConfigError {
                        file: cx.config.path.clone(),
                        line: None,
                        column: None,
                        message: format!("`--image {name}={reference}` is a tag in another registry ({host} is the product's)"),
                        hint: Some("give that image by digest (`REPOSITORY@sha256:…`), or push it to the product's registry".into()),
                    }])));
                };
                pinned.insert(name.to_owned(), p);
            }
            None if svc.build.is_some() => to_build.push(name.to_owned()),
            None => {
                return Err(Error::Config(crate::config::ConfigErrors(vec![crate::config::ConfigError {
                    file: cx.config.path.clone(),
                    line: None,
                    column: None,
                    message: format!(
                        "service `{name}` has no `build:` and no `--image {name}=REF` was given"
                    ),
                    hint: Some(format!("pass the prebuilt image: `--image {name}=REPOSITORY@sha256:…`")),
                }])));
            }
        }
    }
    if !to_build.is_empty() {
        let builder = image::build::Builder::detect(cx.var).await?;
        let labels = image::build::vcs_labels(&cx.config.root, cx.var).await;
        let requests = image::build::requests(cx.config, &to_build, &labels);
        let out = tempfile::Builder::new()
            .prefix("deployer-build-")
            .tempdir()
            .map_err(|e| Error::internal(format!("cannot create a build directory: {e}")))?;
        let built = phase(cx.events, Phase::Build, async {
            Ok(image::build::build_all(&builder, requests, out.path(), 2).await?)
        })
        .await?;
        let tags: Vec<String> = git_sha.map(|g| g.chars().take(12).collect()).into_iter().collect();
        let pushed = phase(cx.events, Phase::Push, async {
            Ok(image::push::Pusher::new(registry.clone()).push_all(cx.config, &built, &tags).await?)
        })
        .await?;
        for (b, p) in built.iter().zip(pushed) {
            // The repository with its registry host, as for prebuilt images: a bare `shop/user`
            // would be pulled from Docker Hub, and the scan gate only judges the product's host.
            pinned.insert(
                b.service.clone(),
                Pinned { repository: format!("{host}/{}", p.repository), digest: p.digest.to_string() },
            );
        }
    }
    for (name, p) in &pinned {
        cx.events.emit(&Event::ImagePushed {
            service: name.clone(),
            repository: p.repository.clone(),
            digest: p.digest.clone(),
        });
    }
    Ok(pinned)
}

/// The scanner of the product's registry: the images live in the registry's account and region
/// (shared by every environment), not in the environment's, so ECR is asked there.
fn ecr_scanner(config: &Config, sdk: &aws_types::SdkConfig) -> crate::image::scan::EcrScanner {
    let registry = &config.product.registry;
    let ecr = aws_sdk_ecr::config::Builder::from(sdk)
        .region(aws_types::region::Region::new(registry.region.as_str().to_owned()))
        .build();
    crate::image::scan::EcrScanner {
        registry_id: Some(registry.account_id.as_str().to_owned()),
        ..crate::image::scan::EcrScanner::new(aws_sdk_ecr::Client::from_conf(ecr))
    }
}

/// How many images the scan gate waits for at once (ECR's scan APIs are rate-limited per account).
const GATE_CONCURRENCY: usize = 6;

/// The scan gate for every image in the product's registry (by digest); refuses the release
/// (exit 4) before anything changes when one image does not pass.
pub async fn scan_gate(
    cx: &Context<'_>,
    session: &AwsSession,
    pinned: &BTreeMap<String, Pinned>,
) -> Result<(), Error> {
    use crate::image::{Digest, scan};
    use futures::{StreamExt as _, TryStreamExt as _};
    let host = cx.config.registry_host();
    let scanner = ecr_scanner(cx.config, &session.config);
    let jobs: Vec<(&String, &str, Digest)> = pinned
        .iter()
        .filter_map(|(service, p)| {
            let repository = p.repository.strip_prefix(&format!("{host}/"))?;
            Some((service, repository, Digest::parse(&p.digest)?))
        })
        .collect();
    // Scans are waited for together (each may take minutes on ECR); results keep the
    // services' order so the output reads the same every run.
    let scanner = &scanner;
    let outcomes: Vec<_> = futures::stream::iter(jobs)
        .map(|(service, repository, digest)| async move {
            let report = scan::judge(
                scanner,
                &cx.env.scan,
                &cx.env.name,
                repository,
                &digest,
                cx.env.timeouts.scan,
                scan::today(),
            )
            .await?;
            Ok::<_, crate::image::Error>((service, report))
        })
        .buffered(GATE_CONCURRENCY)
        .try_collect()
        .await?;
    let mut refused = Vec::new();
    for (service, report) in outcomes {
        // Every image is judged and reported, so one run shows all that blocks the release.
        cx.events.emit(&Event::ScanSummary(Box::new(report.event(service))));
        refused.extend(report.refusal(&cx.env.scan));
    }
    match refused.first() {
        None => Ok(()),
        Some(first) => Err(Error::ScanGate {
            message: refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
            hint: first.hint(),
        }),
    }
}

/// The environment's platform, connected with the session's credentials. The one place that
/// looks at the target's kind: everything after it goes through [`Platform`] and the engine.
async fn connect(cx: &Context<'_>, session: &AwsSession) -> Result<platform::Any, Error> {
    match &cx.env.target {
        Target::Eks(target) => {
            let access = identity::eks::kube_config(target, session).await?;
            let client = kube::Client::try_from(access.config.clone()).map_err(|e| {
                platform::PlatformError::Connect { what: "the cluster".into(), message: e.to_string() }
            })?;
            Ok(platform::Any::Eks(platform::eks::Eks::new(
                client,
                &target.namespace,
                cx.config.product.product.as_str(),
                &cx.env.name,
            )))
        }
        Target::Ecs(_) => Ok(platform::Any::Ecs(Box::new(platform::ecs::EcsPlatform::new(
            &session.config,
            cx.config,
            cx.env,
        )?))),
    }
}

fn holder(var: VarFn<'_>) -> String {
    let who = match (var("GITHUB_RUN_ID"), var("GITHUB_RUN_ATTEMPT")) {
        (Some(run), attempt) => format!("github-run-{run}-{}", attempt.unwrap_or_else(|| "1".into())),
        (None, _) => var("HOSTNAME").or_else(|| var("USER")).unwrap_or_else(|| "local".into()),
    };
    format!("{who}/{}/{:08x}", std::process::id(), rand::random::<u32>())
}

fn actor(var: VarFn<'_>) -> Option<String> {
    var("GITHUB_ACTOR").or_else(|| var("USER")).filter(|a| !a.is_empty())
}

/// The engine's settings for this environment and run.
pub fn settings(
    cx: &Context<'_>,
    session: Option<&AwsSession>,
    flags: &Flags,
    git_sha: Option<String>,
    confirmation: Option<String>,
) -> Settings {
    let mut s = settings_for(cx.config, cx.env, session.map(|s| &s.config), actor(cx.var).as_deref());
    s.holder = holder(cx.var);
    s.git_sha = git_sha;
    s.confirmation = confirmation;
    s.force_conflicts = flags.force_conflicts;
    s
}

/// The engine's settings an environment file asks for (strategy, deadlines, bake, gates);
/// `sdk` reads the CloudWatch alarms.
pub fn settings_for(
    config: &Config,
    env: &Environment,
    sdk: Option<&aws_types::SdkConfig>,
    actor: Option<&str>,
) -> Settings {
    let strategy = match env.strategy.kind {
        StrategyKind::BlueGreen => Strategy::BlueGreen {
            scale_down_delay: env.strategy.scale_down_delay,
            smoke_checks: env.strategy.smoke_checks.clone(),
        },
        StrategyKind::Rolling => Strategy::Rolling,
    };
    let mut gates = engine::gates::Gates::none();
    gates.alarms.clone_from(&env.health.alarms);
    gates.http_checks.clone_from(&env.health.http);
    gates.cloudwatch = sdk.filter(|_| !env.health.alarms.is_empty()).map(aws_sdk_cloudwatch::Client::new);
    Settings {
        product: config.product.product.as_str().to_owned(),
        environment: env.name.clone(),
        holder: format!("{}/{:08x}", std::process::id(), rand::random::<u32>()),
        actor: actor.map(str::to_owned),
        confirmation: None,
        git_sha: None,
        lock_wait: env.timeouts.lock,
        rollout_timeout: env.timeouts.rollout,
        bake: env.health.bake_time.map(|d| d.0).unwrap_or_default(),
        strategy,
        gates,
        force_conflicts: false,
    }
}

fn environment_url(cx: &Context<'_>) -> Option<String> {
    cx.env.notifications.github.as_ref().and_then(|g| g.environment_url.clone())
}

/// `deployer deploy`: images (build + push, or resolve) → observe and plan against the real
/// pins (shown) → gates (render errors, scan, approval) → the engine applies exactly the
/// services the plan rendered.
pub async fn deploy(
    cx: &Context<'_>,
    session: &AwsSession,
    mut inputs: Inputs,
    flags: &Flags,
    prompt: &mut dyn Prompt,
) -> Result<(), Error> {
    let timeline = Timeline::new(cx.events);
    let tcx =
        Context { config: cx.config, env: cx.env, var: cx.var, events: &timeline, masker: cx.masker.clone() };
    let result = Box::pin(deploy_inner(&tcx, session, &mut inputs, flags, prompt)).await;
    let (outcome, release_id) = match &result {
        Ok(id) => (Outcome::Succeeded, Some(id.clone())),
        Err((e, id)) => (
            match e {
                Error::RolledBack { .. } => Outcome::FailedRolledBack,
                Error::RollbackFailed { .. } => Outcome::RollbackFailed,
                Error::ScanGate { .. } => Outcome::RefusedByGate,
                _ => Outcome::Failed,
            },
            id.clone(),
        ),
    };
    if let Some(release_id) = release_id {
        cx.events.emit(&Event::ReleaseFinished {
            release_id,
            outcome,
            environment_url: environment_url(cx),
            timings: timeline.timings(),
        });
    }
    result.map(|_| ()).map_err(|(e, _)| e)
}

async fn deploy_inner(
    cx: &Context<'_>,
    session: &AwsSession,
    inputs: &mut Inputs,
    flags: &Flags,
    prompt: &mut dyn Prompt,
) -> Result<String, (Error, Option<String>)> {
    let no_id = |e: Error| (e, None);
    let git_sha = observe::git_sha(&cx.config.root, cx.var).await;
    inputs.pinned = Box::pin(resolve_images(cx, session, inputs, git_sha.as_deref())).await.map_err(no_id)?;
    let (the_plan, render_errors, rendered) =
        Box::pin(compute_plan(cx.config, cx.env, inputs, cx.events, cx.var, Some(Ok(session))))
            .await
            .map_err(no_id)?;
    let prune = (the_plan.prune_needs_allow, the_plan.prune.len());
    cx.events.emit(&Event::Planned { plan: Box::new(the_plan) });
    if !render_errors.is_empty() {
        return Err(no_id(crate::config::ConfigErrors(render_errors).into()));
    }
    if prune.0 && !flags.allow_prune {
        allow_prune(cx, prune.1, prompt).map_err(no_id)?;
    }
    Box::pin(phase(cx.events, Phase::Scan, scan_gate(cx, session, &inputs.pinned))).await.map_err(no_id)?;
    let confirmation = confirm(cx, session, Action::Deploy, flags.yes, prompt).map_err(no_id)?;
    let planned = planned_from(cx.config, inputs, rendered).map_err(no_id)?;
    let platform = connect(cx, session).await.map_err(no_id)?;
    let settings = settings(cx, Some(session), flags, git_sha, Some(confirmation));
    let ended = Box::pin(engine::deploy(&platform, &settings, planned, cx.events))
        .await
        .map_err(|e| (e.into(), None))?;
    let id = match &ended {
        Ended::Succeeded(r)
        | Ended::RolledBack { release: r, .. }
        | Ended::RollbackFailed { release: r, .. } => r.id.clone(),
    };
    Result::<Release, Error>::from(ended).map(|r| r.id).map_err(|e| (e, Some(id)))
}

/// A release that deletes more than it creates or keeps goes on only with `--allow-prune` or,
/// at a terminal, when a person types `prune`: it usually means an overlay lost its resources.
fn allow_prune(cx: &Context<'_>, count: usize, prompt: &mut dyn Prompt) -> Result<(), Error> {
    let question = format!(
        "this release deletes {count} object(s) in {}, more than it creates or keeps (see the plan's prune list); type `prune` to go on:",
        cx.env.name
    );
    match prompt.ask(&question) {
        Some(answer) if answer == "prune" => Ok(()),
        answered => Err(Error::Usage {
            message: format!(
                "refused: the release would delete {count} object(s), more than it creates or keeps{}",
                if answered.is_some() { " (not confirmed)" } else { "" }
            ),
            hint: "check that the overlays render what they should (`deployer plan` lists the prune); if the deletions are meant, rerun with --allow-prune".into(),
        }),
    }
}

/// The release the plan rendered: every selected service with its pinned image and its objects
/// or task definition, in `depends_on` order. A selected service that did not render (e.g. no
/// kustomize on PATH) refuses the deploy.
fn planned_from(
    config: &Config,
    inputs: &Inputs,
    mut rendered: BTreeMap<String, RenderedService>,
) -> Result<Planned, Error> {
    let mut services = BTreeMap::new();
    let mut missing = Vec::new();
    for svc in config
        .product
        .services
        .iter()
        .filter(|s| inputs.services.is_empty() || inputs.services.iter().any(|n| n == s.name.as_str()))
    {
        let name = svc.name.as_str();
        let image =
            inputs.pinned.get(name).map(|p| format!("{}@{}", p.repository, p.digest)).unwrap_or_default();
        match rendered.remove(name) {
            Some(RenderedService::Kubernetes(objs)) => {
                services.insert(name.to_owned(), ServiceRelease::new(image, objs, None));
            }
            Some(RenderedService::Ecs(doc)) => {
                services.insert(name.to_owned(), ServiceRelease::new(image, Vec::new(), Some(doc)));
            }
            None => missing.push(name.to_owned()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Config(crate::config::ConfigErrors(vec![ConfigError {
            file: config.path.clone(),
            line: None,
            column: None,
            message: format!("could not render {}", missing.join(", ")),
            hint: Some(
                "see the plan above for why (kustomize not found, a broken overlay or template)".into(),
            ),
        }])));
    }
    Ok(Planned { services, depends_on: depends_on(config) })
}

fn depends_on(config: &Config) -> BTreeMap<String, Vec<String>> {
    config
        .product
        .services
        .iter()
        .map(|s| (s.name.as_str().to_owned(), s.depends_on.iter().map(|d| d.as_str().to_owned()).collect()))
        .collect()
}

/// Observes (renders every selected service once, reads what runs) and computes the pure plan.
/// Returns the plan, the render failures that are the configuration's fault, and the rendered
/// services in full: what `deploy` applies is what the plan showed.
pub async fn compute_plan(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    events: &dyn Sink,
    var: VarFn<'_>,
    session: Option<Result<&crate::identity::AwsSession, String>>,
) -> Result<(plan::Plan, Vec<ConfigError>, BTreeMap<String, RenderedService>), Error> {
    let observed = phase(events, Phase::Observe, async {
        Ok(Box::pin(observe::observe(config, env, inputs, var, session)).await)
    })
    .await?;
    for u in &observed.unobserved {
        events.emit(&Event::Unobserved { what: u.what.clone(), reason: u.reason.clone() });
    }
    let mut render_errors = render_errors(config, env, &observed);
    // The rendered objects themselves (nothing empty, one owner each, the environment's
    // namespace, the service's image used): a release that would be refused is refused here.
    render_errors.extend(crate::validate::rendered(config, env, inputs, &observed.rendered));
    let the_plan =
        phase(events, Phase::Plan, async { Ok(plan::plan(config, env, &observed, inputs)) }).await?;
    Ok((the_plan, render_errors, observed.rendered))
}

/// Render failures, each naming the overlay or template (a missing kustomize names the product
/// file and says how to install one): every one of them refuses the deploy, so `plan` fails too.
pub fn render_errors(config: &Config, env: &Environment, observed: &plan::Observed) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = observed
        .renders
        .iter()
        .filter_map(|(service, r)| {
            let e = r.as_ref().err()?;
            Some(crate::validate::render_failure(config, env, service, e))
        })
        .collect();
    // A missing kustomize fails every service the same way: said once.
    errors.dedup();
    errors
}

/// Renders every selected service once, with its pinned image: what a release applies (for
/// callers that do not need the plan, e.g. benchmarks and tests of the engine).
pub async fn planned(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    var: VarFn<'_>,
) -> Result<Planned, Error> {
    let (_, renders) = observe::render_services(config, env, inputs, var).await;
    let mut rendered = BTreeMap::new();
    let mut errors = Vec::new();
    for (svc, r) in renders {
        match r {
            Ok(x) => {
                rendered.insert(svc, x);
            }
            Err(e) => errors.push(ConfigError {
                file: config.path.clone(),
                line: None,
                column: None,
                message: e.to_string(),
                hint: Some(e.hint()),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Config(crate::config::ConfigErrors(errors)));
    }
    planned_from(config, inputs, rendered)
}

/// `deployer rollback`.
pub async fn rollback(
    cx: &Context<'_>,
    to: Option<&str>,
    flags: &Flags,
    prompt: &mut dyn Prompt,
) -> Result<Option<Release>, Error> {
    let session = establish(cx).await?;
    let confirmation = confirm(cx, &session, Action::Rollback, flags.yes, prompt)?;
    let platform = connect(cx, &session).await?;
    let settings = settings(cx, Some(&session), flags, None, Some(confirmation));
    let ended = Box::pin(engine::rollback(&platform, &settings, to, cx.events)).await?;
    let rel = Result::<Release, Error>::from(ended)?;
    cx.events.emit(&Event::Service {
        service: String::new(),
        phase: Phase::Rollback,
        message: format!(
            "{} now runs release {} (as {})",
            cx.env.name,
            rel.rolled_back_to.as_deref().unwrap_or("?"),
            rel.id
        ),
    });
    Ok(Some(rel))
}

/// One release in `deployer history`, for either platform.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub id: String,
    pub outcome: String,
    pub started: String,
    pub actor: String,
    pub commit: String,
    pub returned_to: String,
}

/// The release history of the environment, newest first.
pub async fn history(cx: &Context<'_>) -> Result<Vec<HistoryRow>, Error> {
    let session = establish(cx).await?;
    let platform = connect(cx, &session).await?;
    Ok(platform
        .history()
        .await?
        .into_iter()
        .rev()
        .map(|r| HistoryRow {
            id: r.id,
            outcome: r.status.as_str().to_owned(),
            started: r.started_at,
            actor: r.actor.unwrap_or_default(),
            commit: r.git_sha.map(|g| g.chars().take(12).collect()).unwrap_or_default(),
            returned_to: r.rolled_back_to.map(|t| format!("→ {t}")).unwrap_or_default(),
        })
        .collect())
}

/// What runs per service, and whether it drifted from the newest succeeded release.
pub async fn status(cx: &Context<'_>) -> Result<Vec<ServiceStatus>, Error> {
    let session = establish(cx).await?;
    let platform = connect(cx, &session).await?;
    let history = platform.history().await?;
    let Some(current) = crate::release::last_known_good(&history, None) else {
        return Ok(Vec::new());
    };
    let running = platform.running().await?;
    let mut out = Vec::new();
    for (svc, rel) in &current.services {
        // What the record says runs: the image (EKS) or the task definition (ECS).
        // (`family:revision`, as ECS's ARN ends).
        let recorded = rel
            .revision
            .as_deref()
            .map_or_else(|| rel.image.clone(), |r| r.rsplit('/').next().unwrap_or(r).to_owned());
        let live = running.get(svc).map(|r| r.live.clone()).unwrap_or_default();
        let drifted = live.is_empty() || live.iter().any(|i| i != &recorded);
        out.push(ServiceStatus {
            service: svc.clone(),
            release: current.id.clone(),
            since: current.finished_at.clone().unwrap_or_else(|| current.started_at.clone()),
            recorded,
            live,
            drifted,
        });
    }
    Ok(out)
}

/// One service in `deployer status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub release: String,
    pub since: String,
    pub recorded: String,
    pub live: Vec<String>,
    pub drifted: bool,
}

/// `deployer promote --from A --to B`: the digests of A's last known-good release (each passed
/// A's scan gate before A deployed it, and A's health checks after), gated again under B's
/// policy. With one shared registry nothing needs copying: B's deploy uses exactly these
/// digests (`--image` lines, or the action's `images` output).
pub async fn promote(from: &Context<'_>, to: &Context<'_>) -> Result<BTreeMap<String, Pinned>, Error> {
    let source = establish(from).await?;
    let platform = connect(from, &source).await?;
    let history = platform.history().await?;
    let good = crate::release::last_known_good(&history, None).ok_or_else(|| nothing_to_promote(from))?;
    let mut pinned = BTreeMap::new();
    for (svc, s) in &good.services {
        if let Some(p) = crate::model::PinnedImage::parse(&s.image) {
            pinned.insert(svc.clone(), Pinned { repository: p.repository, digest: p.digest });
        }
    }
    let target = establish(to).await?;
    Box::pin(phase(to.events, Phase::Scan, scan_gate(to, &target, &pinned))).await?;
    for (svc, p) in &pinned {
        to.events.emit(&Event::ImagePushed {
            service: svc.clone(),
            repository: p.repository.clone(),
            digest: p.digest.clone(),
        });
    }
    Ok(pinned)
}

fn nothing_to_promote(from: &Context<'_>) -> Error {
    Error::Usage {
        message: format!("environment `{}` has no succeeded release to promote", from.env.name),
        hint: format!(
            "deploy to `{}` first; only a release that passed its gate and health checks is promoted",
            from.env.name
        ),
    }
}
