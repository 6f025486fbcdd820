//! The executors of `deploy`, `rollback`, `status` and `history`: identity → approval guard →
//! images → render → platform → report. Every step reports through the one event stream;
//! failures map to the documented exit codes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, ConfigError, Environment, StrategyKind, Target};
use crate::engine::{self, Planned, Settings, Strategy};
use crate::error::Error;
use crate::events::{Event, Outcome, Phase, PhaseTiming, Sink};
use crate::identity::guard::{self, Action, Invocation, Prompt};
use crate::identity::{self, AwsSession, Masker};
use crate::model::PinnedImage;
use crate::observe::{self, RenderedService, VarFn};
use crate::plan::{self, Inputs, Pinned};
use crate::platform::{self, Platform};
use crate::release::{Release, ReleaseStatus, ServiceRelease};
use crate::render::RenderError;

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
    /// SIGINT/SIGTERM, for the engine.
    pub cancel: engine::cancel::Cancel,
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
    let selected: Vec<_> =
        cx.config.product.services.iter().filter(|s| inputs.selects(s.name.as_str())).collect();
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
            let client = crate::support::kube_client(access.config.clone()).map_err(|e| {
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
    s.cancel = flags.cancel.clone();
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
        cancel: engine::cancel::Cancel::default(),
        hooks: hooks_of(config),
        ready_within: config
            .product
            .services
            .iter()
            .filter_map(|s| {
                let bound = s.ready_within.or(env.health.ready_within)?;
                Some((s.name.as_str().to_owned(), bound.0))
            })
            .collect(),
    }
}

/// Every service's hooks, as the engine runs them (the release picks those of its services).
pub fn hooks_of(config: &Config) -> Vec<crate::model::Hook> {
    config
        .product
        .services
        .iter()
        .flat_map(|svc| {
            svc.hooks.all().map(|(stage, h)| crate::model::Hook {
                service: svc.name.as_str().to_owned(),
                name: h.name.as_str().to_owned(),
                stage,
                command: h.command.clone(),
                timeout: h.timeout.map_or(crate::config::HookConfig::DEFAULT_TIMEOUT, |t| t.0),
            })
        })
        .collect()
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
            match e.exit_code() {
                crate::error::ExitCode::RolledBack => Outcome::FailedRolledBack,
                crate::error::ExitCode::RollbackFailed => Outcome::RollbackFailed,
                crate::error::ExitCode::ScanGate => Outcome::RefusedByGate,
                crate::error::ExitCode::Cancelled => Outcome::Interrupted,
                // Includes a pre-deploy hook that stopped it before anything was applied.
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
    // Until the engine starts nothing in the environment changes: a signal just stops (builds
    // are killed with their futures).
    let pinned = before_changes(&flags.cancel, resolve_images(cx, session, inputs, git_sha.as_deref()));
    inputs.pinned = pinned.await.map_err(no_id)?;
    let (the_plan, render_errors, rendered) = before_changes(
        &flags.cancel,
        compute_plan(cx.config, cx.env, inputs, cx.events, cx.var, Some(Ok(session))),
    )
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
    before_changes(&flags.cancel, phase(cx.events, Phase::Scan, scan_gate(cx, session, &inputs.pinned)))
        .await
        .map_err(no_id)?;
    let confirmation = confirm(cx, session, Action::Deploy, flags.yes, prompt).map_err(no_id)?;
    let planned = planned_from(cx.config, inputs, rendered).map_err(no_id)?;
    let platform = connect(cx, session).await.map_err(no_id)?;
    let settings = settings(cx, Some(session), flags, git_sha, Some(confirmation));
    if settings.cancel.requested() {
        return Err(no_id(cancelled_before()));
    }
    let ended = Box::pin(engine::deploy(&platform, &settings, planned, cx.events))
        .await
        .map_err(|e| (e.into(), None))?;
    let id = ended.release().id.clone();
    Result::<Release, Error>::from(ended).map(|r| r.id).map_err(|e| (e, Some(id)))
}

fn cancelled_before() -> Error {
    Error::Cancelled {
        message: "cancelled before the release started: nothing was changed".into(),
        hint: "deploy again when ready".into(),
    }
}

/// Runs a step that changes nothing in the environment, or stops at the first signal.
async fn before_changes<T>(
    cancel: &engine::cancel::Cancel,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::select! {
        r = Box::pin(work) => r,
        () = cancel.stopped() => Err(cancelled_before()),
    }
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
    for svc in config.product.services.iter().filter(|s| inputs.selects(s.name.as_str())) {
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

/// One render failure as a configuration error naming its overlay or template; `None` for a
/// missing kustomize.
fn render_error(config: &Config, env: &Environment, service: &str, e: &RenderError) -> Option<ConfigError> {
    if matches!(e, RenderError::NotFound(_)) {
        return None;
    }
    let svc = config.service(service)?;
    // A template error names the template; a kustomize error the overlay.
    let file = match e {
        RenderError::TaskDefinition { .. } => {
            svc.ecs.as_ref().map(|t| config.root.join(&t.task_definition.value))
        }
        _ => config.overlay_dir(svc, &env.name),
    };
    Some(ConfigError {
        file: file.unwrap_or_else(|| config.path.clone()),
        line: None,
        column: None,
        message: e.to_string(),
        hint: Some(e.hint()),
    })
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

/// What runs per service, which release that is, what an unfinished release left behind, and
/// who holds the lock.
pub async fn status(cx: &Context<'_>) -> Result<EnvStatus, Error> {
    let session = establish(cx).await?;
    let platform = connect(cx, &session).await?;
    let history = platform.history().await?;
    let running = platform.running().await?;
    let lock = platform.lock_holder().await?;
    Ok(env_status(&history, &running, lock.as_ref()))
}

/// `deployer status` from the records, what runs, and the lock (pure).
pub fn env_status(
    history: &[Release],
    running: &BTreeMap<String, platform::Running>,
    lock: Option<&platform::LockHolder>,
) -> EnvStatus {
    let good = crate::release::last_known_good(history, None);
    // Every service a record or the platform knows.
    let mut names: Vec<String> = good.map(|g| g.services.keys().cloned().collect()).unwrap_or_default();
    for r in history.iter().filter(|r| good.is_none_or(|g| r.sequence > g.sequence)) {
        names.extend(r.services.keys().cloned());
    }
    names.extend(running.keys().cloned());
    names.sort();
    names.dedup();
    // The release a service runs: the newest record whose entry for it is exactly what runs.
    let runs = |svc: &str, live: &[String]| -> Option<&Release> {
        history.iter().rev().find(|r| {
            r.services.get(svc).is_some_and(|s| {
                let want = engine::recorded_as(s);
                !live.is_empty() && live.iter().all(|l| *l == want)
            })
        })
    };
    let mut services = Vec::new();
    for svc in &names {
        let live = running.get(svc).map(|r| r.live.clone()).unwrap_or_default();
        let found = runs(svc, &live);
        let expected = good.and_then(|g| g.services.get(svc));
        let entry = found.and_then(|r| r.services.get(svc)).or(expected);
        services.push(ServiceStatus {
            service: svc.clone(),
            release: found.map_or_else(|| "unknown".to_owned(), |r| r.id.clone()),
            since: found
                .map(|r| r.finished_at.clone().unwrap_or_else(|| r.started_at.clone()))
                .unwrap_or_default(),
            digest: entry.map(|s| PinnedImage::digest_or_reference(&s.image)).unwrap_or_default(),
            recorded: expected.map(engine::recorded_as).unwrap_or_default(),
            drifted: expected
                .is_none_or(|e| live.is_empty() || live.iter().any(|l| *l != engine::recorded_as(e))),
            live,
        });
    }
    let mut notes = Vec::new();
    // A release newer than the last known-good that did not end healthy: what it left.
    let holder_live = lock.is_some_and(|l| l.live);
    if let Some(newest) = history.last().filter(|r| good.is_none_or(|g| r.sequence > g.sequence)) {
        let unfinished = match newest.status {
            ReleaseStatus::Interrupted => Some("was interrupted"),
            ReleaseStatus::Pending if holder_live => None,
            ReleaseStatus::Pending => {
                Some("was interrupted (its run is gone; recorded as pending until the next run)")
            }
            ReleaseStatus::Failed => Some("failed and its rollback failed"),
            _ => None,
        };
        if newest.status == ReleaseStatus::Pending && holder_live {
            notes.push(("release".to_owned(), format!("release {} is in progress", newest.id)));
        }
        if let Some(what) = unfinished {
            let (on, off): (Vec<&ServiceStatus>, Vec<&ServiceStatus>) = services
                .iter()
                .filter(|s| newest.services.contains_key(&s.service))
                .partition(|s| s.release == newest.id);
            let mut text = format!("release {} {what}", newest.id);
            if on.is_empty() {
                text.push_str("; no service runs it");
            } else {
                let names: Vec<&str> = on.iter().map(|s| s.service.as_str()).collect();
                let _ = write!(
                    text,
                    "; {} {} it",
                    names.join(", "),
                    if names.len() == 1 { "runs" } else { "run" }
                );
            }
            let mut by_release: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for s in &off {
                by_release.entry(s.release.as_str()).or_default().push(s.service.as_str());
            }
            for (rel, svcs) in by_release {
                let _ = write!(
                    text,
                    ", {} {} {rel}",
                    svcs.join(", "),
                    if svcs.len() == 1 { "runs" } else { "run" }
                );
            }
            notes.push(("release".to_owned(), text));
        }
    }
    if let Some(l) = lock {
        notes.push((
            "lock".to_owned(),
            if l.live {
                format!("held by `{}`", l.holder)
            } else {
                format!("left by `{}`, which stopped renewing it (the next run takes it over)", l.holder)
            },
        ));
    } else {
        notes.push(("lock".to_owned(), "free".to_owned()));
    }
    EnvStatus { services, notes }
}

/// `deployer status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnvStatus {
    pub services: Vec<ServiceStatus>,
    /// (subject, what to know): an unfinished release and what it left mixed, the lock holder.
    pub notes: Vec<(String, String)>,
}

/// One service in `deployer status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceStatus {
    pub service: String,
    /// The release whose record matches what runs (`unknown` when none does).
    pub release: String,
    pub since: String,
    /// The image digest of what runs (from its record).
    pub digest: String,
    /// What the last known-good release recorded (image or ECS `family:revision`).
    pub recorded: String,
    pub live: Vec<String>,
    /// It does not run the last known-good release.
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

/// The digest `deployer render` shows for an image that is not built yet (`deploy` builds and
/// pushes it first, so it never renders one).
pub const PENDING_DIGEST: &str = "<digest after push>";

/// What `deployer render` prints for one service: its file name in `--out-dir` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub service: String,
    /// `SERVICE.yaml` (EKS objects) or `SERVICE.json` (an ECS task definition).
    pub file_name: String,
    pub text: String,
    /// YAML documents (joined by `---` in one stream) rather than one JSON line.
    pub yaml: bool,
}

/// `deployer render`: the release `deploy` would apply, rendered by the same code `deploy` uses
/// ([`observe::render_services`] with [`plan::pin_for`], then `planned_from`), without building,
/// pushing or contacting anything.
///
/// Pins: a `--image` must name a digest (render resolves no tag: that would need the
/// registry); a service to be built is shown with [`PENDING_DIGEST`] and a warning, the way a
/// `helm template` shows values it was not given. A service without `build:` or `--image` is
/// refused, as `deploy` refuses it.
pub async fn render(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    events: &dyn Sink,
    var: VarFn<'_>,
) -> Result<Planned, Error> {
    let inputs = Inputs { pinned: render_pins(config, inputs, events)?, ..inputs.clone() };
    phase(events, Phase::Render, async {
        let (_, renders) = observe::render_services(config, env, &inputs, var).await;
        let mut errors = Vec::new();
        let mut rendered = BTreeMap::new();
        for (service, r) in renders {
            match r {
                Ok(x) => {
                    rendered.insert(service, x);
                }
                // A missing kustomize is no fault of the configuration, but leaves nothing to show.
                Err(e) => {
                    let error = render_error(config, env, &service, &e).unwrap_or_else(|| ConfigError {
                        file: config.path.clone(),
                        line: None,
                        column: None,
                        message: e.to_string(),
                        hint: Some(e.hint()),
                    });
                    // A missing kustomize fails every service alike: say it once.
                    if !errors.contains(&error) {
                        errors.push(error);
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(crate::config::ConfigErrors(errors).into());
        }
        planned_from(config, &inputs, rendered)
    })
    .await
}

/// The pin a prebuilt `--image` given by digest gets once `deploy` resolved it: in the
/// product's registry (`host`, or no host) it becomes `HOST/REPOSITORY@DIGEST`, as
/// [`crate::image::resolve`] answers; another registry's reference is used as given. `None`
/// for a tag (only the registry can say its digest).
pub fn prebuilt_pin(host: &str, r: &crate::image::Reference) -> Option<Pinned> {
    let digest = r.digest.as_ref()?.to_string();
    let repository = match r.host.as_deref() {
        Some(h) if h != host => format!("{h}/{}", r.repository),
        _ => format!("{host}/{}", r.repository),
    };
    Some(Pinned { repository, digest })
}

/// The pins `deploy` knows before it asks for credentials: every `--image` given by digest,
/// as [`prebuilt_pin`] normalises it. Its preflight renders with these, so the render is
/// reused after the images step resolves the same digests (one kustomize run per service).
pub fn known_pins(config: &Config, inputs: &Inputs) -> BTreeMap<String, Pinned> {
    let host = config.registry_host();
    inputs
        .images
        .iter()
        .filter(|(service, _)| inputs.selects(service))
        .filter_map(|(service, reference)| {
            let r = crate::image::Reference::parse(reference).ok()?;
            Some((service.clone(), prebuilt_pin(&host, &r)?))
        })
        .collect()
}

/// The pin of every selected service for `render`, as `deploy` would pin it after its images
/// step: a digest in the product's registry becomes `HOST/REPOSITORY@DIGEST` (as
/// [`resolve_images`] resolves it), one in another registry is used as given.
fn render_pins(
    config: &Config,
    inputs: &Inputs,
    events: &dyn Sink,
) -> Result<BTreeMap<String, Pinned>, Error> {
    let host = config.registry_host();
    let refuse = |message: String, hint: String| {
        Error::Config(crate::config::ConfigErrors(vec![ConfigError {
            file: config.path.clone(),
            line: None,
            column: None,
            message,
            hint: Some(hint),
        }]))
    };
    let mut pinned = BTreeMap::new();
    for svc in config.product.services.iter().filter(|s| inputs.selects(s.name.as_str())) {
        let name = svc.name.as_str();
        let pin = match inputs.images.get(name) {
            Some(reference) => {
                let r = crate::image::Reference::parse(reference)?;
                let Some(pin) = prebuilt_pin(&host, &r) else {
                    return Err(refuse(
                        format!("`--image {name}={reference}` names a tag; render resolves no tags"),
                        format!(
                            "give the digest: `--image {name}=REPOSITORY@sha256:…` (e.g. from `deployer promote` or the deploy's `digests` output)"
                        ),
                    ));
                };
                pin
            }
            None if svc.build.is_some() => {
                let repository = format!("{host}/{}", svc.repository.as_str());
                events.emit(&Event::Warning {
                    message: format!(
                        "`{name}` is not built yet: shown as {repository}@{PENDING_DIGEST}; pass `--image {name}=REPOSITORY@sha256:…` to render its pin"
                    ),
                });
                Pinned { repository, digest: PENDING_DIGEST.to_owned() }
            }
            None => {
                return Err(refuse(
                    format!("service `{name}` has no `build:` and no `--image {name}=REF` was given"),
                    format!("pass the prebuilt image: `--image {name}=REPOSITORY@sha256:…`"),
                ));
            }
        };
        pinned.insert(name.to_owned(), pin);
    }
    Ok(pinned)
}

/// A hook that cannot be rendered, as the configuration problem it is.
fn hook_refused(config: &Config, e: crate::render::hook::HookError) -> Error {
    Error::Config(crate::config::ConfigErrors(vec![ConfigError {
        file: config.path.clone(),
        line: None,
        column: None,
        message: e.message,
        hint: Some(e.hint),
    }]))
}

/// The text `deployer render` prints per service: EKS objects as YAML documents, with the
/// values of Secrets redacted unless `show_secrets`; an ECS task definition as the exact
/// `RegisterTaskDefinition` request body `deploy` sends.
pub fn render_files(
    config: &Config,
    env: &Environment,
    planned: &Planned,
    show_secrets: bool,
) -> Result<Vec<RenderedFile>, Error> {
    let hooks = hooks_of(config);
    // The hooks' Jobs as `deploy` creates them, numbered as release 0: `deploy` names them
    // `<service>-<hook>-<n>` with its release number.
    let shown = Release {
        services: planned.services.clone(),
        ..Release::pending(config.product.product.as_str(), &env.name, 0)
    };
    let mut out = Vec::new();
    for name in engine_order(planned) {
        let Some(svc) = planned.services.get(&name) else { continue };
        let mut hooks_file = None;
        let file = if let Some(spec) = &svc.spec {
            let body = crate::render::ecs::request_body(spec).map_err(|e| {
                Error::internal(format!("cannot serialise the task definition of `{name}`: {e}"))
            })?;
            let text = String::from_utf8(body)
                .map_err(|e| Error::internal(format!("task definition of `{name}` is not UTF-8: {e}")))?;
            // Its hooks, one JSON line each, after the task definition they run (their own file
            // with `-o`: the task definition's file stays the exact request body).
            let mut hook_lines = String::new();
            for hook in hooks.iter().filter(|h| h.service == name) {
                let line = crate::render::hook::ecs_run_task(spec, &svc.image, hook)
                    .map_err(|e| hook_refused(config, e))?;
                hook_lines.push_str(&line.to_string());
                hook_lines.push('\n');
            }
            hooks_file = (!hook_lines.is_empty()).then(|| RenderedFile {
                service: name.clone(),
                file_name: format!("{name}.hooks.jsonl"),
                text: hook_lines,
                yaml: false,
            });
            RenderedFile {
                service: name.clone(),
                file_name: format!("{name}.json"),
                text: text + "\n",
                yaml: false,
            }
        } else {
            let mut objects: Vec<serde_json::Value> = svc
                .manifests
                .iter()
                .map(|o| if show_secrets { o.clone() } else { redact_secret(o) })
                .collect();
            if let Some(namespace) = env.target.kubernetes_namespace() {
                let target = crate::render::hook::Target {
                    product: config.product.product.as_str(),
                    environment: &env.name,
                    namespace,
                };
                for hook in hooks.iter().filter(|h| h.service == name) {
                    objects.push(
                        crate::render::hook::job(&target, &shown, hook)
                            .map_err(|e| hook_refused(config, e))?,
                    );
                }
            }
            let text = serde_saphyr::to_string_multiple(&objects)
                .map_err(|e| Error::internal(format!("cannot write the objects of `{name}` as YAML: {e}")))?;
            RenderedFile { service: name.clone(), file_name: format!("{name}.yaml"), text, yaml: true }
        };
        out.push(file);
        out.extend(hooks_file);
    }
    Ok(out)
}

/// The services in the order `deploy` applies them (`depends_on` waves, names within a wave).
fn engine_order(planned: &Planned) -> Vec<String> {
    let mut done: Vec<String> = Vec::new();
    let mut left: Vec<&String> = planned.services.keys().collect();
    while !left.is_empty() {
        let (ready, rest): (Vec<&String>, Vec<&String>) = left.iter().partition(|s| {
            planned
                .depends_on
                .get(s.as_str())
                .into_iter()
                .flatten()
                .all(|d| done.contains(d) || !planned.services.contains_key(d))
        });
        // A cycle is refused when the configuration loads; never loop on one here.
        let ready = if ready.is_empty() { rest.clone() } else { ready };
        done.extend(ready.iter().map(|s| (*s).clone()));
        left = rest.into_iter().filter(|s| !done.contains(s)).collect();
    }
    done
}

/// A Secret with every value replaced by `<redacted>` (keys kept: what is set stays visible).
fn redact_secret(obj: &serde_json::Value) -> serde_json::Value {
    let mut obj = obj.clone();
    if obj.get("kind").and_then(serde_json::Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(serde_json::Value::as_str) == Some("v1")
    {
        for field in ["data", "stringData"] {
            if let Some(map) = obj.get_mut(field).and_then(serde_json::Value::as_object_mut) {
                for v in map.values_mut() {
                    *v = serde_json::Value::String(REDACTED.to_owned());
                }
            }
        }
    }
    obj
}

/// What a redacted Secret value reads.
pub const REDACTED: &str = "<redacted>";

#[cfg(test)]
mod status_tests {
    use super::*;
    use crate::platform::{LockHolder, Running};

    fn rel(seq: u64, status: ReleaseStatus, services: &[(&str, u8)]) -> Release {
        Release {
            status,
            started_at: format!("2026-12-07T10:{seq:02}:00Z"),
            services: services
                .iter()
                .map(|(s, v)| {
                    ((*s).to_owned(), ServiceRelease::new(format!("reg/{s}@sha256:{v:02}"), vec![], None))
                })
                .collect(),
            ..Release::pending("shop", "dev", seq)
        }
    }

    fn running(v: &[(&str, u8)]) -> BTreeMap<String, Running> {
        v.iter()
            .map(|(s, n)| ((*s).to_owned(), Running { live: vec![format!("reg/{s}@sha256:{n:02}")] }))
            .collect()
    }

    const ALL: [&str; 3] = ["order", "payment", "user"];

    /// dev.23 was interrupted mid-apply: user and payment run it, order still runs dev.22.
    #[test]
    fn status_says_what_an_interrupted_release_left_and_who_holds_the_lock() {
        let on = |v: u8| ALL.iter().map(|s| (*s, v)).collect::<Vec<_>>();
        let history =
            vec![rel(22, ReleaseStatus::Succeeded, &on(22)), rel(23, ReleaseStatus::Interrupted, &on(23))];
        let live = running(&[("order", 22), ("payment", 23), ("user", 23)]);
        let s = env_status(&history, &live, None);
        let per: Vec<(&str, &str, bool)> =
            s.services.iter().map(|x| (x.service.as_str(), x.release.as_str(), x.drifted)).collect();
        assert_eq!(per, [("order", "dev.22", false), ("payment", "dev.23", true), ("user", "dev.23", true)]);
        assert_eq!(s.services[1].digest, "sha256:23");
        assert_eq!(
            s.notes,
            [
                (
                    "release".to_owned(),
                    "release dev.23 was interrupted; payment, user run it, order runs dev.22".to_owned()
                ),
                ("lock".to_owned(), "free".to_owned()),
            ]
        );
        // A pending record whose holder stopped renewing the lock: interrupted, whatever it says.
        let mut history = history;
        history[1].status = ReleaseStatus::Pending;
        let dead = LockHolder { holder: "run-7".into(), live: false };
        let s = env_status(&history, &live, Some(&dead));
        assert!(s.notes[0].1.starts_with("release dev.23 was interrupted (its run is gone"), "{:?}", s.notes);
        assert_eq!(s.notes[1].1, "left by `run-7`, which stopped renewing it (the next run takes it over)");
        // A live holder: in progress.
        let alive = LockHolder { holder: "run-8".into(), live: true };
        let s = env_status(&history, &live, Some(&alive));
        assert_eq!(s.notes[0].1, "release dev.23 is in progress");
        assert_eq!(s.notes[1].1, "held by `run-8`");
    }
}
