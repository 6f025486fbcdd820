//! The executors of `deploy`, `rollback`, `status` and `history`: identity → approval guard →
//! images → render → platform → report. Every step reports through the one event stream;
//! failures map to the documented exit codes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, Environment, StrategyKind, Target};
use crate::error::Error;
use crate::events::{Event, Outcome, Phase, PhaseTiming, Sink};
use crate::identity::guard::{self, Action, Invocation, Prompt};
use crate::identity::{self, AwsSession, Masker};
use crate::observe::{self, RenderedService, VarFn};
use crate::plan::{Inputs, Pinned};
use crate::platform::eks::{DeployOutcome, DeployRequest, Eks, EksError};
use crate::release::Release;

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

/// Closes phases that are only started: the platform layer announces each phase as it enters
/// it (apply → health → bake → record, or → rollback), one after the other, so a new start
/// finishes the open one: `ok` unless the new one is the rollback. [`Sequential::finish`]
/// closes the last. Without finish events the phases would be missing from the timeline.
pub struct Sequential<'a> {
    inner: &'a dyn Sink,
    open: Mutex<Option<(Phase, Instant)>>,
}

impl<'a> Sequential<'a> {
    pub fn new(inner: &'a dyn Sink) -> Self {
        Self { inner, open: Mutex::new(None) }
    }

    fn close(&self, ok: bool) {
        let open = self.open.lock().ok().and_then(|mut o| o.take());
        if let Some((phase, start)) = open {
            let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.inner.emit(&Event::PhaseFinished { phase, ok, elapsed_ms });
        }
    }

    /// Finishes the phase still open.
    pub fn finish(&self, ok: bool) {
        self.close(ok);
    }
}

impl Sink for Sequential<'_> {
    fn emit(&self, event: &Event) {
        match event {
            Event::PhaseStarted { phase } => {
                let same = self.open.lock().ok().and_then(|o| o.map(|(p, _)| p)) == Some(*phase);
                if same {
                    return;
                }
                self.close(*phase != Phase::Rollback);
                if let Ok(mut o) = self.open.lock() {
                    *o = Some((*phase, Instant::now()));
                }
            }
            Event::PhaseFinished { phase, .. } => {
                if let Ok(mut o) = self.open.lock()
                    && o.is_some_and(|(p, _)| p == *phase)
                {
                    *o = None;
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

impl From<EksError> for Error {
    fn from(e: EksError) -> Self {
        let hint = e.hint();
        match e {
            EksError::LockHeld { .. } => Self::LockHeld { message: e.to_string(), hint },
            EksError::Connect(_) => Self::Auth { message: e.to_string(), hint },
            EksError::UnknownRelease(_) | EksError::NothingToRollBackTo => {
                Self::RollbackFailed { message: e.to_string(), hint }
            }
            _ => Self::Internal { message: e.to_string(), hint },
        }
    }
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

async fn eks_platform(
    cx: &Context<'_>,
    session: &AwsSession,
) -> Result<(Eks, identity::eks::KubeAccess), Error> {
    let Target::Eks(target) = &cx.env.target else {
        return Err(Error::Internal {
            message: format!(
                "environment `{}` targets ECS, which this build cannot deploy to yet",
                cx.env.name
            ),
            hint: "use an EKS environment, or `deployer plan` to preview ECS".to_owned(),
        });
    };
    let access = identity::eks::kube_config(target, session).await?;
    let client =
        kube::Client::try_from(access.config.clone()).map_err(|e| EksError::Connect(e.to_string()))?;
    Ok((Eks::new(client, &target.namespace, cx.config.product.product.as_str(), &cx.env.name), access))
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

fn request(
    cx: &Context<'_>,
    services: BTreeMap<String, (String, Vec<serde_json::Value>)>,
    flags: &Flags,
    git_sha: Option<String>,
    confirmation: String,
) -> DeployRequest {
    let env = cx.env;
    let depends_on = cx
        .config
        .product
        .services
        .iter()
        .map(|s| (s.name.as_str().to_owned(), s.depends_on.iter().map(|d| d.as_str().to_owned()).collect()))
        .collect();
    DeployRequest {
        services,
        depends_on,
        git_sha,
        actor: actor(cx.var),
        confirmation: Some(confirmation),
        force_conflicts: flags.force_conflicts,
        rollout_timeout: env.timeouts.rollout,
        bake: env.health.bake_time.map(|d| d.0).unwrap_or_default(),
        lock_wait: env.timeouts.lock,
        holder: holder(cx.var),
        blue_green: (env.strategy.kind == StrategyKind::BlueGreen).then_some(env.strategy.scale_down_delay),
        smoke_checks: env.strategy.smoke_checks.clone(),
        http_checks: env.health.http.clone(),
    }
}

fn environment_url(cx: &Context<'_>) -> Option<String> {
    cx.env.notifications.github.as_ref().and_then(|g| g.environment_url.clone())
}

/// `deployer deploy`.
pub async fn deploy(
    cx: &Context<'_>,
    session: &AwsSession,
    mut inputs: Inputs,
    flags: &Flags,
    git_sha: Option<String>,
    prompt: &mut dyn Prompt,
) -> Result<(), Error> {
    let timeline = Timeline::new(cx.events);
    let tcx =
        Context { config: cx.config, env: cx.env, var: cx.var, events: &timeline, masker: cx.masker.clone() };
    let result = Box::pin(deploy_inner(&tcx, session, &mut inputs, flags, git_sha, prompt)).await;
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
    git_sha: Option<String>,
    prompt: &mut dyn Prompt,
) -> Result<String, (Error, Option<String>)> {
    let confirmation = confirm(cx, session, Action::Deploy, flags.yes, prompt).map_err(|e| (e, None))?;
    inputs.pinned =
        Box::pin(resolve_images(cx, session, inputs, git_sha.as_deref())).await.map_err(|e| (e, None))?;
    Box::pin(phase(cx.events, Phase::Scan, scan_gate(cx, session, &inputs.pinned)))
        .await
        .map_err(|e| (e, None))?;
    let rendered = phase(cx.events, Phase::Render, async {
        let (_, renders) = observe::render_services(cx.config, cx.env, inputs, cx.var).await;
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for (svc, r) in renders {
            match r {
                Ok(RenderedService::Kubernetes(objs)) => {
                    let image = inputs
                        .pinned
                        .get(&svc)
                        .map(|p| format!("{}@{}", p.repository, p.digest))
                        .unwrap_or_default();
                    out.insert(svc, (image, objs));
                }
                Ok(RenderedService::Ecs(_)) => {}
                Err(e) => errors.push(crate::config::ConfigError {
                    file: cx.config.path.clone(),
                    line: None,
                    column: None,
                    message: e.to_string(),
                    hint: Some(e.hint()),
                }),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(Error::Config(crate::config::ConfigErrors(errors))) }
    })
    .await
    .map_err(|e| (e, None))?;
    if matches!(cx.env.target, Target::Ecs(_)) {
        return Box::pin(deploy_ecs(cx, session, inputs, git_sha)).await;
    }
    let (eks, _access) = eks_platform(cx, session).await.map_err(|e| (e, None))?;
    let req = request(cx, rendered, flags, git_sha, confirmation);
    let outcome = eks.deploy(&req, cx.events).await.map_err(|e| (e.into(), None))?;
    match outcome {
        DeployOutcome::Succeeded { release } => Ok(release.id),
        DeployOutcome::RolledBack { release, to, service, failure } => Err((
            Error::RolledBack {
                message: format!("release {} failed and was rolled back to {to}: {}{failure}", release.id, if service.is_empty() { String::new() } else { format!("service `{service}`: ") }),
                hint: "every service runs the previous release again; fix the failure above and deploy again".to_owned(),
            },
            Some(release.id),
        )),
        DeployOutcome::RollbackFailed { release, service, failure, rollback_error } => Err((
            Error::RollbackFailed {
                message: format!("release {} failed ({}{failure}) and the rollback failed: {rollback_error}", release.id, if service.is_empty() { String::new() } else { format!("service `{service}`: ") }),
                hint: "manual action needed: inspect the cluster, then `deployer rollback --env ENV --to RELEASE`".to_owned(),
            },
            Some(release.id),
        )),
    }
}

/// The ECS half of `deploy`: the platform renders the task definitions from the pinned images,
/// applies them in `depends_on` waves, follows each deployment by id and rolls back.
async fn deploy_ecs(
    cx: &Context<'_>,
    session: &AwsSession,
    inputs: &Inputs,
    git_sha: Option<String>,
) -> Result<String, (Error, Option<String>)> {
    use crate::platform::{self, ReleaseId, ecs::EcsPlatform};
    let ecs = EcsPlatform::new(&session.config, cx.config, cx.env).map_err(|e| (e.into(), None))?;
    let sha7: String = git_sha.as_deref().unwrap_or("release").chars().take(7).collect();
    let id = ReleaseId::new(time::OffsetDateTime::now_utc(), &sha7);
    let images: BTreeMap<String, String> =
        inputs.pinned.iter().map(|(s, p)| (s.clone(), format!("{}@{}", p.repository, p.digest))).collect();
    let actor = actor(cx.var).unwrap_or_else(|| "unknown".to_owned());
    let plan = ecs.release_plan(id.clone(), &actor, &images).map_err(|e| (e.into(), None))?;
    cx.events.emit(&Event::ReleaseStarted {
        release_id: id.to_string(),
        product: cx.config.product.product.as_str().to_owned(),
        environment: cx.env.name.clone(),
        git_sha: git_sha.unwrap_or_default(),
        services: images.keys().cloned().collect(),
        strategy: Some(
            if cx.env.strategy.kind == StrategyKind::BlueGreen { "blue-green" } else { "rolling" }.to_owned(),
        ),
    });
    let policy = crate::health::HealthPolicy::from_environment(cx.env);
    let phases = Sequential::new(cx.events);
    let result = Box::pin(platform::deploy(&ecs, &plan, &policy, &phases)).await;
    phases.finish(result.is_ok());
    match result {
        Ok(_) => {
            for service in images.keys() {
                cx.events.emit(&Event::HealthVerdict {
                    service: service.clone(),
                    verdict: crate::events::Verdict::Healthy,
                });
            }
            Ok(id.to_string())
        }
        Err(e) => {
            if let platform::PlatformError::RolledBack { failures, .. }
            | platform::PlatformError::RollbackFailed { failures, .. } = &e
            {
                for f in failures {
                    cx.events.emit(&Event::HealthVerdict {
                        service: f.service.clone().unwrap_or_default(),
                        verdict: crate::events::Verdict::Failed(Box::new(crate::events::HealthFailure {
                            workload: format!(
                                "ECS service of {}",
                                f.service.as_deref().unwrap_or("the release")
                            ),
                            pod: None,
                            container: None,
                            reason: format!("{:?}", f.cause),
                            restart_count: None,
                            message: Some(f.reason.clone()),
                        })),
                    });
                }
            }
            Err((e.into(), Some(id.to_string())))
        }
    }
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
    if matches!(cx.env.target, Target::Ecs(_)) {
        let ecs = crate::platform::ecs::EcsPlatform::new(&session.config, cx.config, cx.env)?;
        let to = to.map(|t| crate::platform::ReleaseId(t.to_owned()));
        let policy = crate::health::HealthPolicy::from_environment(cx.env);
        let actor = actor(cx.var).unwrap_or_else(|| "unknown".to_owned());
        let report = crate::platform::ecs::rollback(&ecs, to.as_ref(), &actor, &policy, cx.events).await?;
        cx.events.emit(&Event::Service {
            service: String::new(),
            phase: Phase::Rollback,
            message: format!("{} now runs release {}", cx.env.name, report.to),
        });
        return Ok(None);
    }
    let (eks, _access) = eks_platform(cx, &session).await?;
    let req = request(cx, BTreeMap::new(), flags, None, confirmation);
    let rel = eks.rollback(to, &req, cx.events).await?;
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
    if matches!(cx.env.target, Target::Ecs(_)) {
        let ecs = crate::platform::ecs::EcsPlatform::new(&session.config, cx.config, cx.env)?;
        let mut rows: Vec<HistoryRow> = crate::platform::ecs::history(&ecs)
            .await?
            .into_iter()
            .map(|r| HistoryRow {
                id: r.id.to_string(),
                outcome: r.outcome.as_str().to_owned(),
                started: r.at,
                actor: r.actor,
                commit: String::new(),
                returned_to: String::new(),
            })
            .collect();
        rows.sort_by(|a, b| b.id.cmp(&a.id));
        return Ok(rows);
    }
    let (eks, _access) = eks_platform(cx, &session).await?;
    Ok(eks
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
    if matches!(cx.env.target, Target::Ecs(_)) {
        let ecs = crate::platform::ecs::EcsPlatform::new(&session.config, cx.config, cx.env)?;
        let live = crate::platform::ecs::status(&ecs).await?;
        let newest_ok = live.releases.iter().find(|r| r.outcome == crate::platform::Outcome::Succeeded);
        return Ok(live
            .services
            .iter()
            .map(|(svc, l)| {
                let recorded = l.known_good.clone().unwrap_or_default();
                let running = l.revision.clone().unwrap_or_else(|| "(none)".to_owned());
                ServiceStatus {
                    service: svc.clone(),
                    release: newest_ok.map(|r| r.id.to_string()).unwrap_or_default(),
                    since: newest_ok.map(|r| r.at.clone()).unwrap_or_default(),
                    drifted: !recorded.is_empty() && recorded != running,
                    recorded,
                    live: vec![running],
                }
            })
            .collect());
    }
    let (eks, _access) = eks_platform(cx, &session).await?;
    let history = eks.history().await?;
    let Some(current) = history.iter().rev().find(|r| r.status == crate::release::ReleaseStatus::Succeeded)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (svc, rel) in &current.services {
        let mut live = Vec::new();
        for obj in rel.manifests.iter().filter(|o| o["kind"] == "Deployment") {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or(&eks_namespace(cx)).to_owned();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                kube::Api::namespaced(eks.client().clone(), &ns);
            let image = api
                .get_opt(name)
                .await
                .map_err(|e| Error::internal(format!("read Deployment {ns}/{name}: {e}")))?
                .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone());
            live.push(image.unwrap_or_else(|| "(missing)".to_owned()));
        }
        let drifted = live.iter().any(|i| i != &rel.image);
        out.push(ServiceStatus {
            service: svc.clone(),
            release: current.id.clone(),
            since: current.finished_at.clone().unwrap_or_else(|| current.started_at.clone()),
            recorded: rel.image.clone(),
            live,
            drifted,
        });
    }
    Ok(out)
}

fn eks_namespace(cx: &Context<'_>) -> String {
    match &cx.env.target {
        Target::Eks(e) => e.namespace.clone(),
        Target::Ecs(_) => String::new(),
    }
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
    let host = from.config.registry_host();
    let mut pinned = BTreeMap::new();
    match &from.env.target {
        Target::Ecs(_) => {
            let ecs = crate::platform::ecs::EcsPlatform::new(&source.config, from.config, from.env)?;
            let live = crate::platform::ecs::status(&ecs).await?;
            let good = live
                .releases
                .iter()
                .find(|r| r.outcome == crate::platform::Outcome::Succeeded)
                .ok_or_else(|| nothing_to_promote(from))?;
            for (svc, rec) in &good.services {
                let Some(digest) = rec.digest.clone() else { continue };
                let repository =
                    from.config.service(svc).map(|s| format!("{host}/{}", s.repository)).unwrap_or_default();
                pinned.insert(svc.clone(), Pinned { repository, digest });
            }
        }
        Target::Eks(_) => {
            let (eks, _access) = eks_platform(from, &source).await?;
            let history = eks.history().await?;
            let good =
                crate::release::last_known_good(&history, None).ok_or_else(|| nothing_to_promote(from))?;
            for (svc, s) in &good.services {
                if let Some((repository, digest)) = s.image.split_once('@') {
                    pinned.insert(
                        svc.clone(),
                        Pinned { repository: repository.to_owned(), digest: digest.to_owned() },
                    );
                }
            }
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
    Error::ScanGate {
        message: format!("environment `{}` has no succeeded release to promote", from.env.name),
        hint: format!(
            "deploy to `{}` first; only a release that passed its gate and health checks is promoted",
            from.env.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl Sink for Record {
        fn emit(&self, event: &Event) {
            let line = match event {
                Event::PhaseStarted { phase } => format!("start {}", phase.title()),
                Event::PhaseFinished { phase, ok, .. } => format!("finish {} {ok}", phase.title()),
                _ => "other".to_owned(),
            };
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn a_started_phase_is_finished_by_the_next_and_the_last_by_finish() {
        let rec = Record::default();
        let seq = Sequential::new(&rec);
        for p in [Phase::Apply, Phase::Health, Phase::Bake, Phase::Bake, Phase::Rollback] {
            seq.emit(&Event::PhaseStarted { phase: p });
        }
        seq.emit(&Event::PhaseFinished { phase: Phase::Rollback, ok: true, elapsed_ms: 1 });
        seq.finish(false);
        let got = rec.0.lock().unwrap().clone();
        let title = |p: Phase| p.title().to_owned();
        let want = vec![
            format!("start {}", title(Phase::Apply)),
            format!("finish {} true", title(Phase::Apply)),
            format!("start {}", title(Phase::Health)),
            format!("finish {} true", title(Phase::Health)),
            format!("start {}", title(Phase::Bake)),
            format!("finish {} false", title(Phase::Bake)),
            format!("start {}", title(Phase::Rollback)),
            format!("finish {} true", title(Phase::Rollback)),
        ];
        assert_eq!(got, want);
    }
}
