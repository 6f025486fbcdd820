//! Amazon ECS: register task definitions, update services, follow each deployment by its id,
//! turn what ECS reports into health samples, switch blue/green traffic, record releases, roll
//! back.
//!
//! Library API:
//! - [`EcsPlatform::new`]`(&SdkConfig, &Config, &Environment)` → implements
//!   [`Platform`]; [`EcsPlatform::release_plan`]`(id, actor, images)` renders
//!   the task definitions for images pinned by digest; then
//!   [`super::deploy`]`(&platform, &plan, &policy, &sink)` runs apply → watch → record → automatic
//!   rollback (errors map to exit 5 rolled back / 6 rollback failed).
//! - [`rollback`]`(&platform, to: Option<&ReleaseId>, actor, &policy, &sink)`: manual rollback to a
//!   recorded release (None: the newest succeeded release that differs from what runs).
//! - [`history`]`(&platform)`, [`status`]`(&platform)`: the release records and what runs, read-only.
//! - [`bluegreen`]: ALB listener/rule switch and switch-back primitives.
//!
//! Rolling (and ECS-native BLUE_GREEN): `UpdateService` with the new task definition creates a
//! new PRIMARY deployment; its id is the handle. The deployment configuration (circuit breaker,
//! alarms, strategy, bake time) is left as the service has it, so native blue/green is ECS's
//! own and is followed by id like a rolling update (COMPLETED only after ECS's bake).
//!
//! Deployer-driven blue/green (`strategy: blue-green` and two ECS services `<name>-blue` and
//! `<name>-green`, each on its own ALB target group): the live colour is the one production
//! traffic goes to, read from the production listener rule named in `target.ecs.production_rules`
//! or else the listener's default action (test/preview rules are never the switch; a doubtful
//! setup is refused before any change, see [`bluegreen::production`]). The idle colour gets the
//! new task definition and the live colour's desired count; once its deployment is COMPLETED and
//! its tasks are healthy (and its targets, where ELB health-checks the group), the production
//! rule is switched to it; the other
//! colour keeps running through the bake (instant switch-back) and is scaled to 0 when the bake
//! passed. A rollback is the same move back to the kept colour, without new tasks. Services
//! without both colours deploy as one service (rolling or native blue/green).
//!
//! Watching: ECS has no watch API, so every [`EcsPlatform::poll`] (1 s by default; a failure is
//! seen at most one interval plus one round of API calls after ECS reports it) the watcher reads
//! `deployments[]` (the state of OUR deployment, see [`classify`]: a deployment ECS failed or
//! rolled back is never success, even once the service is "stable" again), the service's
//! stopped tasks started by our deployment (`stopCode`, `stoppedReason`, container exit codes:
//! one failed task fails the release at once, without waiting for the circuit breaker), the
//! named CloudWatch alarms, and, once every rollout is complete, the HTTP checks. Service events
//! are passed on as progress. [`crate::health::assess`] decides.
//!
//! Release records are tags on the services ([`records`]). Deployer never creates services and
//! never deregisters task definitions, so a definition that runs or is a rollback target cannot
//! disappear (cleanup of old revisions is left to the account's own policy).

pub mod bluegreen;
pub mod classify;
pub mod records;
pub mod taskdef;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::types::{DesiredStatus, Service, Tag};
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::Value;

use self::classify::{DeploymentView, TaskView};
use super::{
    Applied, AppliedService, Desired, LiveService, LiveState, Outcome, Platform, PlatformError, ReleaseId,
    ReleasePlan, ServiceRelease,
};
use crate::config::{Config, Environment, Target};
use crate::events::{Event, Phase, Sink};
use crate::health::{self, HealthPolicy, Observation, RolloutState, Sample, Verdict};

/// One deployer service in this ECS environment.
#[derive(Debug, Clone)]
struct EcsService {
    name: String,
    /// ECS service name.
    target: String,
    template: Option<std::path::PathBuf>,
    depends_on: Vec<String>,
    /// Deployer-driven blue/green: the listener rule that carries production traffic
    /// (`target.ecs.production_rules`); None = the listener's default action.
    production_rule: Option<String>,
}

/// ECS as a [`Platform`].
#[derive(Debug, Clone)]
pub struct EcsPlatform {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    cw: aws_sdk_cloudwatch::Client,
    http: reqwest::Client,
    cluster: String,
    services: Vec<EcsService>,
    vars: BTreeMap<&'static str, String>,
    poll: Duration,
    /// `strategy: blue-green`: services with `-blue`/`-green` colours are switched by deployer.
    blue_green: bool,
    /// The environment file, named in setup errors.
    env_file: std::path::PathBuf,
}

/// A deployer-driven blue/green pair as found in ECS and on the ALB.
#[derive(Debug, Clone)]
struct Colours {
    live: Service,
    idle: Service,
    live_group: String,
    idle_group: String,
    switch: bluegreen::TrafficSwitch,
}

impl EcsPlatform {
    /// The platform of an ECS environment. Clients are built from `sdk` (the identity step's
    /// credentials and endpoint).
    pub fn new(
        sdk: &aws_types::SdkConfig,
        config: &Config,
        env: &Environment,
    ) -> Result<Self, PlatformError> {
        let Target::Ecs(target) = &env.target else {
            return Err(PlatformError::setup(
                format!("environment `{}` does not target ECS", env.name),
                "use the EKS platform for `target: eks` environments",
            ));
        };
        let product = config.product.product.as_str();
        let services = config
            .product
            .services
            .iter()
            .map(|s| EcsService {
                name: s.name.as_str().to_owned(),
                target: crate::plan::ecs_service_name(config, env, s.name.as_str()),
                template: s.ecs.as_ref().map(|e| config.root.join(&e.task_definition.value)),
                depends_on: s.depends_on.iter().map(|d| d.as_str().to_owned()).collect(),
                production_rule: target.production_rules.get(s.name.as_str()).cloned(),
            })
            .collect();
        let vars = BTreeMap::from([
            ("env", env.name.clone()),
            ("region", env.region.as_str().to_owned()),
            ("account_id", env.account_id.as_str().to_owned()),
            ("log_group", target.log_group.clone().unwrap_or_else(|| format!("/ecs/{product}-{}", env.name))),
        ]);
        Ok(Self {
            ecs: aws_sdk_ecs::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            cw: aws_sdk_cloudwatch::Client::new(sdk),
            http: reqwest::Client::new(),
            cluster: target.cluster.clone(),
            services,
            vars,
            poll: Duration::from_secs(1),
            blue_green: env.strategy.kind == crate::config::StrategyKind::BlueGreen,
            env_file: env.file.clone(),
        })
    }

    /// Changes the poll interval (default 1 s).
    #[must_use]
    pub const fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The poll interval.
    pub const fn poll(&self) -> Duration {
        self.poll
    }

    /// The ELBv2 client (for [`bluegreen`]).
    pub const fn elb(&self) -> &aws_sdk_elasticloadbalancingv2::Client {
        &self.elb
    }

    /// The ECS service name of a deployer service.
    pub fn target_of(&self, service: &str) -> Option<&str> {
        self.services.iter().find(|s| s.name == service).map(|s| s.target.as_str())
    }

    /// Renders the task definitions of a release. `images` maps service → image reference
    /// pinned by digest (`…@sha256:…`); services not listed are not part of the release.
    pub fn release_plan(
        &self,
        id: ReleaseId,
        actor: &str,
        images: &BTreeMap<String, String>,
    ) -> Result<ReleasePlan, PlatformError> {
        self.render_release(id, actor, images).map_err(|e| e.in_file(&self.env_file))
    }

    fn render_release(
        &self,
        id: ReleaseId,
        actor: &str,
        images: &BTreeMap<String, String>,
    ) -> Result<ReleasePlan, PlatformError> {
        let mut services = Vec::new();
        for (name, image) in images {
            let svc = self.services.iter().find(|s| &s.name == name).ok_or_else(|| {
                PlatformError::setup(
                    format!("unknown service `{name}`"),
                    format!(
                        "known services: {}",
                        self.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            if !image.contains("@sha256:") {
                return Err(PlatformError::setup(
                    format!("image `{image}` for `{name}` is not pinned by digest"),
                    "deploy images by digest (`repo@sha256:…`) so every task runs exactly what was tested",
                ));
            }
            let template = svc.template.as_ref().ok_or_else(|| {
                PlatformError::setup(
                    format!("service `{name}` has no ECS task-definition template"),
                    "add `ecs: {task_definition: <file>}` to the service in deployer.yaml",
                )
            })?;
            let text = std::fs::read_to_string(template).map_err(|e| {
                PlatformError::setup(
                    format!("cannot read {}: {e}", template.display()),
                    "check the `ecs.task_definition` path",
                )
            })?;
            let mut vars = self.vars.clone();
            vars.insert("image", image.clone());
            let doc = crate::render::ecs::render_task_definition(&text, &vars, name)
                .map_err(|e| PlatformError::setup(e.to_string(), "fix the task-definition template"))?;
            let depends_on = svc.depends_on.iter().filter(|d| images.contains_key(*d)).cloned().collect();
            services.push(ServiceRelease {
                service: name.clone(),
                image: image.clone(),
                desired: Desired::Spec(doc),
                depends_on,
            });
        }
        Ok(ReleasePlan { id, actor: actor.to_owned(), services })
    }

    async fn describe(&self, targets: &[&str]) -> Result<HashMap<String, Service>, PlatformError> {
        let mut out = HashMap::new();
        for chunk in targets.chunks(10) {
            let resp = self
                .ecs
                .describe_services()
                .cluster(&self.cluster)
                .set_services(Some(chunk.iter().map(|s| (*s).to_owned()).collect()))
                .send()
                .await
                .map_err(|e| PlatformError::api("DescribeServices", DisplayErrorContext(&e)))?;
            for s in resp.services() {
                if let Some(name) = s.service_name() {
                    out.insert(name.to_owned(), s.clone());
                }
            }
        }
        Ok(out)
    }

    fn service_or_err<'a>(
        &self,
        found: &'a HashMap<String, Service>,
        target: &str,
    ) -> Result<&'a Service, PlatformError> {
        found.get(target).filter(|s| s.status() == Some("ACTIVE")).ok_or_else(|| {
            PlatformError::setup(
                format!("ECS service `{target}` does not exist (or is not ACTIVE) in cluster `{}`", self.cluster),
                "create the service (with its load balancer and deployment configuration) first: \
                 deployer updates services, it does not create them; or set `target.ecs.services` in the environment file",
            )
        })
    }

    /// The blue/green pair of `svc` (`<target>-blue` and `<target>-green`, both ACTIVE, each
    /// with a target group), when the environment asks for blue-green. The live colour is the
    /// one production traffic goes to: the service's production rule, or the listener's default
    /// action ([`bluegreen::production`]; a setup where that is in doubt is refused here, before
    /// anything changes). None: the service deploys as one ECS service (rolling, or ECS's
    /// native BLUE_GREEN, which ECS switches itself).
    async fn colours(&self, svc: &EcsService) -> Result<Option<Colours>, PlatformError> {
        if !self.blue_green {
            return Ok(None);
        }
        let target = svc.target.as_str();
        let (blue_name, green_name) = (format!("{target}-blue"), format!("{target}-green"));
        let found = self.describe(&[blue_name.as_str(), green_name.as_str()]).await?;
        let active = |n: &str| found.get(n).filter(|s| s.status() == Some("ACTIVE")).cloned();
        let (Some(blue), Some(green)) = (active(&blue_name), active(&green_name)) else {
            return Ok(None);
        };
        let group =
            |s: &Service| s.load_balancers().first().and_then(|l| l.target_group_arn()).map(str::to_owned);
        let (Some(blue_group), Some(green_group)) = (group(&blue), group(&green)) else {
            return Err(PlatformError::setup(
                format!("blue/green services of `{target}` need a load balancer target group each"),
                "attach `-blue` and `-green` to their own ALB target groups",
            ));
        };
        let pair = bluegreen::Pair {
            blue: (blue_name.as_str(), blue_group.as_str()),
            green: (green_name.as_str(), green_group.as_str()),
        };
        let sites = bluegreen::forwarding_sites(&self.elb, &pair).await?;
        let production = bluegreen::production(&sites, &pair, svc.production_rule.as_deref(), &svc.name)?;
        let switch = production.switch;
        let green_live = production.live_group == green_group;
        Ok(Some(if green_live {
            Colours { live: green, idle: blue, live_group: green_group, idle_group: blue_group, switch }
        } else {
            Colours { live: blue, idle: green, live_group: blue_group, idle_group: green_group, switch }
        }))
    }

    /// Deploys `revision` to the idle colour (or, if the live colour runs it already, only
    /// scales the idle one down).
    async fn apply_colours(
        &self,
        s: &ServiceRelease,
        c: Colours,
        revision: String,
    ) -> Result<AppliedService, PlatformError> {
        let name = |svc: &Service| svc.service_name().unwrap_or_default().to_owned();
        let live_td = c.live.task_definition().map(str::to_owned);
        let same = |a: Option<&str>| {
            a.is_some_and(|a| taskdef::family_revision(a) == taskdef::family_revision(&revision))
        };
        if same(live_td.as_deref()) {
            if c.idle.desired_count() > 0 {
                self.scale(&name(&c.idle), 0).await?;
            }
            return Ok(AppliedService {
                service: s.service.clone(),
                target: name(&c.live),
                image: s.image.clone(),
                revision: live_td.clone().unwrap_or(revision),
                previous: live_td,
                handle: primary_id(&c.live).unwrap_or_default(),
                changed: false,
                traffic: None,
            });
        }
        let desired = c.live.desired_count().max(1);
        let traffic = Some(super::Traffic {
            listener: c.switch.listener_arn.clone(),
            rule: c.switch.rule_arn.clone(),
            from_group: c.live_group.clone(),
            to_group: c.idle_group.clone(),
            other: name(&c.live),
        });
        // The idle colour still runs this revision (kept through the bake of the release being
        // rolled back): switching back needs no new tasks.
        if same(c.idle.task_definition())
            && c.idle.running_count() >= desired
            && c.idle.desired_count() >= desired
        {
            return Ok(AppliedService {
                service: s.service.clone(),
                target: name(&c.idle),
                image: s.image.clone(),
                revision: c.idle.task_definition().unwrap_or_default().to_owned(),
                previous: live_td,
                handle: primary_id(&c.idle).unwrap_or_default(),
                changed: false,
                traffic,
            });
        }
        let target = name(&c.idle);
        let out = self
            .ecs
            .update_service()
            .cluster(&self.cluster)
            .service(&target)
            .task_definition(&revision)
            .desired_count(desired)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|e| PlatformError::api(format!("UpdateService {target}"), DisplayErrorContext(&e)))?;
        let updated =
            out.service().ok_or_else(|| PlatformError::api("UpdateService", "no service in the response"))?;
        let handle = primary_id(updated).ok_or_else(|| {
            PlatformError::api("UpdateService", "the service has no PRIMARY deployment after the update")
        })?;
        Ok(AppliedService {
            service: s.service.clone(),
            target,
            image: s.image.clone(),
            revision: updated.task_definition().map_or(revision, str::to_owned),
            previous: live_td,
            handle,
            changed: true,
            traffic,
        })
    }

    /// The task definition to run for `doc`: `current` when it is the same (normalised), else a
    /// newly registered revision.
    async fn revision_for(&self, doc: &Value, current: Option<&str>) -> Result<String, PlatformError> {
        if let Some(arn) = current {
            let live = taskdef::describe(&self.ecs, arn).await?;
            if taskdef::same(doc, &live) {
                return Ok(arn.to_owned());
            }
        }
        taskdef::register(&self.ecs, doc).await
    }

    async fn scale(&self, target: &str, desired: i32) -> Result<(), PlatformError> {
        self.ecs
            .update_service()
            .cluster(&self.cluster)
            .service(target)
            .desired_count(desired)
            .send()
            .await
            .map_err(|e| PlatformError::api(format!("UpdateService {target}"), DisplayErrorContext(&e)))?;
        Ok(())
    }

    /// For a blue/green service whose new colour completed: true once `desired` of its tasks
    /// (started by deployment `handle`) are RUNNING and not UNHEALTHY, and its target group has
    /// no unhealthy target and, if ELB health-checks the group, `desired` healthy ones. A group
    /// that only production would route to reports its targets `unused` (`Target.NotInUse`)
    /// until the switch: those are judged by the tasks alone, never waited on.
    async fn colour_ready(
        &self,
        target: &str,
        handle: &str,
        group: &str,
        desired: u32,
    ) -> Result<bool, PlatformError> {
        let out = self
            .ecs
            .list_tasks()
            .cluster(&self.cluster)
            .service_name(target)
            .desired_status(DesiredStatus::Running)
            .send()
            .await
            .map_err(|e| PlatformError::api("ListTasks", DisplayErrorContext(&e)))?;
        let mut healthy_tasks = 0_usize;
        for chunk in out.task_arns().chunks(100) {
            let tasks = self
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| PlatformError::api("DescribeTasks", DisplayErrorContext(&e)))?;
            // UNKNOWN is what ECS reports for a task without a container health check.
            healthy_tasks += tasks
                .tasks()
                .iter()
                .filter(|t| {
                    t.started_by() == Some(handle)
                        && t.last_status() == Some("RUNNING")
                        && t.health_status().is_none_or(|h| h.as_str() != "UNHEALTHY")
                })
                .count();
        }
        if healthy_tasks < desired as usize {
            return Ok(false);
        }
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(group)
            .send()
            .await
            .map_err(|e| PlatformError::api("DescribeTargetHealth", DisplayErrorContext(&e)))?;
        let states: Vec<&str> = out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                d.target_health()?
                    .state()
                    .map(aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum::as_str)
            })
            .collect();
        Ok(bluegreen::group_ready(&states, desired as usize))
    }

    async fn tags(&self, arn: &str) -> Result<Vec<(String, String)>, PlatformError> {
        let out = self
            .ecs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| PlatformError::api("ListTagsForResource", DisplayErrorContext(&e)))?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect())
    }

    /// Stopped tasks of `target` not yet in `seen`, started by deployment `handle`.
    async fn new_stopped_tasks(
        &self,
        target: &str,
        handle: &str,
        seen: &mut BTreeSet<String>,
    ) -> Result<Vec<TaskView>, PlatformError> {
        // serviceName + desiredStatus, then startedBy from the task itself: ListTasks refuses
        // startedBy combined with other filters.
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .ecs
                .list_tasks()
                .cluster(&self.cluster)
                .service_name(target)
                .desired_status(DesiredStatus::Stopped)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| PlatformError::api("ListTasks", DisplayErrorContext(&e)))?;
            arns.extend(out.task_arns().iter().filter(|a| !seen.contains(*a)).cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut views = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| PlatformError::api("DescribeTasks", DisplayErrorContext(&e)))?;
            for t in out.tasks() {
                // Only tasks that really stopped are final; STOPPING ones are read next time.
                if t.last_status() != Some("STOPPED") {
                    continue;
                }
                let arn = t.task_arn().unwrap_or_default().to_owned();
                seen.insert(arn.clone());
                if t.started_by() != Some(handle) {
                    continue;
                }
                views.push(TaskView {
                    id: arn.rsplit('/').next().unwrap_or_default().to_owned(),
                    started_by: t.started_by().map(str::to_owned),
                    stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
                    stopped_reason: t.stopped_reason().map(str::to_owned),
                    containers: t
                        .containers()
                        .iter()
                        .map(|c| {
                            (
                                c.name().unwrap_or_default().to_owned(),
                                c.exit_code(),
                                c.reason().map(str::to_owned),
                            )
                        })
                        .collect(),
                });
            }
        }
        Ok(views)
    }

    async fn alarm_samples(&self, names: &[String]) -> Result<Vec<Sample>, PlatformError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .cw
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| PlatformError::api("DescribeAlarms", DisplayErrorContext(&e)))?;
        let mut found: HashMap<String, Sample> = HashMap::new();
        for a in out.metric_alarms() {
            let name = a.alarm_name().unwrap_or_default().to_owned();
            let in_alarm = a.state_value().is_some_and(|s| s.as_str() == "ALARM");
            let reason = a.state_reason().unwrap_or_default().to_owned();
            found.insert(name.clone(), Sample::Alarm { name, in_alarm, reason });
        }
        for a in out.composite_alarms() {
            let name = a.alarm_name().unwrap_or_default().to_owned();
            let in_alarm = a.state_value().is_some_and(|s| s.as_str() == "ALARM");
            let reason = a.state_reason().unwrap_or_default().to_owned();
            found.insert(name.clone(), Sample::Alarm { name, in_alarm, reason });
        }
        // A named alarm that does not exist would silently turn the check off: it fails.
        Ok(names
            .iter()
            .map(|n| {
                found.remove(n).unwrap_or_else(|| Sample::Alarm {
                    name: n.clone(),
                    in_alarm: true,
                    reason: "no such alarm in this account and region (fix `health.alarms`)".to_owned(),
                })
            })
            .collect())
    }

    async fn http_sample(&self, check: &crate::config::HttpCheck, failures: &mut u32) -> Sample {
        // The verdict names the URL already; keep only what the check saw.
        let prefix = format!("GET {} ", check.url);
        let last = crate::checks::http_check(&self.http, check)
            .await
            .err()
            .map(|m| m.strip_prefix(&prefix).map_or_else(|| m.clone(), str::to_owned));
        match last {
            None => {
                *failures = 0;
                Sample::Http { url: check.url.clone(), consecutive_failures: 0, last: "ok".to_owned() }
            }
            Some(why) => {
                *failures += 1;
                Sample::Http { url: check.url.clone(), consecutive_failures: *failures, last: why }
            }
        }
    }
}

fn deployment_views(s: &Service) -> Vec<DeploymentView> {
    s.deployments()
        .iter()
        .map(|d| DeploymentView {
            id: d.id().unwrap_or_default().to_owned(),
            status: d.status().unwrap_or_default().to_owned(),
            rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
            reason: d.rollout_state_reason().map(str::to_owned),
            task_definition: d.task_definition().unwrap_or_default().to_owned(),
            running: u32::try_from(d.running_count()).unwrap_or(0),
            desired: u32::try_from(d.desired_count()).unwrap_or(0),
            failed: u32::try_from(d.failed_tasks()).unwrap_or(0),
        })
        .collect()
}

fn primary_id(s: &Service) -> Option<String> {
    s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id()).map(str::to_owned)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

// The SDK's futures are large: each trait method boxes its body so callers' futures stay small.
impl Platform for EcsPlatform {
    async fn observe(&self) -> Result<LiveState, PlatformError> {
        Box::pin(self.observe_impl()).await.map_err(|e| e.in_file(&self.env_file))
    }

    async fn apply(&self, plan: &ReleasePlan) -> Result<Applied, PlatformError> {
        Box::pin(self.apply_impl(plan)).await.map_err(|e| e.in_file(&self.env_file))
    }

    async fn watch(
        &self,
        applied: &Applied,
        policy: &HealthPolicy,
        events: &dyn Sink,
    ) -> Result<Verdict, PlatformError> {
        Box::pin(self.watch_impl(applied, policy, events)).await.map_err(|e| e.in_file(&self.env_file))
    }

    async fn record(
        &self,
        plan: &ReleasePlan,
        applied: &Applied,
        outcome: Outcome,
    ) -> Result<(), PlatformError> {
        Box::pin(self.record_impl(plan, applied, outcome)).await.map_err(|e| e.in_file(&self.env_file))
    }
}

impl EcsPlatform {
    async fn observe_impl(&self) -> Result<LiveState, PlatformError> {
        let targets: Vec<&str> = self.services.iter().map(|s| s.target.as_str()).collect();
        let found = self.describe(&targets).await?;
        let mut services = BTreeMap::new();
        let mut entries = Vec::new();
        for svc in &self.services {
            // Blue/green: the live colour is what runs; records are on both colours.
            let (live, holders) = match self.colours(svc).await? {
                Some(c) => (c.live.clone(), vec![c.live, c.idle]),
                None => match found.get(&svc.target).filter(|s| s.status() == Some("ACTIVE")) {
                    Some(s) => (s.clone(), vec![s.clone()]),
                    None => continue,
                },
            };
            let s = &live;
            let mut known_good: Option<(String, String)> = None;
            for h in &holders {
                let tags = self.tags(h.service_arn().unwrap_or_default()).await?;
                let get = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                if let Some(kg) = get(records::KNOWN_GOOD) {
                    let release = get(records::KNOWN_GOOD_RELEASE).unwrap_or_default();
                    if known_good.as_ref().is_none_or(|(r, _)| *r < release) {
                        known_good = Some((release, kg));
                    }
                }
                for (k, v) in &tags {
                    if let Some((id, e)) = records::decode(k, v) {
                        entries.push((svc.name.clone(), id, e));
                    }
                }
            }
            let known_good = known_good.map(|(_, kg)| kg);
            let rollout = primary_id(s).map(|p| classify::rollout_state(&deployment_views(s), &p, None, &[]));
            services.insert(
                svc.name.clone(),
                LiveService {
                    target: s.service_name().unwrap_or(&svc.target).to_owned(),
                    revision: s.task_definition().map(str::to_owned),
                    known_good,
                    rollout,
                    running: u32::try_from(s.running_count()).unwrap_or(0),
                    desired: u32::try_from(s.desired_count()).unwrap_or(0),
                },
            );
        }
        Ok(LiveState { services, releases: records::merge(entries) })
    }

    async fn apply_impl(&self, plan: &ReleasePlan) -> Result<Applied, PlatformError> {
        let mut wanted = Vec::new();
        for s in &plan.services {
            let svc = self.services.iter().find(|e| e.name == s.service).ok_or_else(|| {
                PlatformError::setup(
                    format!("unknown service `{}`", s.service),
                    "check the release's service names",
                )
            })?;
            wanted.push((s, svc));
        }
        let targets: Vec<&str> = wanted.iter().map(|(_, e)| e.target.as_str()).collect();
        let found = self.describe(&targets).await?;
        let mut colours = HashMap::new();
        // Check every service before changing any: a missing one must not leave half a release,
        // and a blue/green pair whose live colour is in doubt is refused here.
        for (_, svc) in &wanted {
            match self.colours(svc).await? {
                Some(c) => {
                    colours.insert(svc.target.clone(), c);
                }
                None => {
                    self.service_or_err(&found, &svc.target)?;
                }
            }
        }
        let mut applied = Vec::new();
        for (s, e) in wanted {
            let target = e.target.as_str();
            if let Some(c) = colours.remove(target) {
                let revision = match &s.desired {
                    Desired::Revision(r) => r.clone(),
                    Desired::Spec(doc) => self.revision_for(doc, c.live.task_definition()).await?,
                };
                applied.push(self.apply_colours(s, c, revision).await?);
                continue;
            }
            let svc = self.service_or_err(&found, target)?;
            let current = svc.task_definition().map(str::to_owned);
            let revision = match &s.desired {
                Desired::Revision(r) => r.clone(),
                Desired::Spec(doc) => self.revision_for(doc, current.as_deref()).await?,
            };
            let unchanged = current
                .as_deref()
                .is_some_and(|c| taskdef::family_revision(c) == taskdef::family_revision(&revision));
            let (handle, revision) = if unchanged {
                // Nothing to start: follow what ECS is doing (COMPLETED, or the deployment still
                // rolling out, e.g. ECS's own rollback).
                (primary_id(svc).unwrap_or_default(), current.clone().unwrap_or(revision))
            } else {
                // Only the task definition changes: the deployment configuration (circuit
                // breaker, alarms, strategy) stays as the service has it.
                let out = self
                    .ecs
                    .update_service()
                    .cluster(&self.cluster)
                    .service(target)
                    .task_definition(&revision)
                    .send()
                    .await
                    .map_err(|e| {
                        PlatformError::api(format!("UpdateService {target}"), DisplayErrorContext(&e))
                    })?;
                let updated = out
                    .service()
                    .ok_or_else(|| PlatformError::api("UpdateService", "no service in the response"))?;
                let id = primary_id(updated).ok_or_else(|| {
                    PlatformError::api(
                        "UpdateService",
                        "the service has no PRIMARY deployment after the update",
                    )
                })?;
                let td = updated
                    .deployments()
                    .iter()
                    .find(|d| d.id() == Some(id.as_str()))
                    .and_then(|d| d.task_definition())
                    .map_or(revision, str::to_owned);
                (id, td)
            };
            applied.push(AppliedService {
                service: s.service.clone(),
                target: target.to_owned(),
                image: s.image.clone(),
                revision,
                previous: current,
                handle,
                changed: !unchanged,
                traffic: None,
            });
        }
        Ok(Applied { release: plan.id.clone(), services: applied })
    }

    async fn watch_impl(
        &self,
        applied: &Applied,
        policy: &HealthPolicy,
        events: &dyn Sink,
    ) -> Result<Verdict, PlatformError> {
        // A throttled or failed API call (after the SDK's own retries) must not roll back a
        // healthy release: a few in a row are tolerated and reported as warnings.
        const MAX_API_ERRORS: u32 = 5;
        let mut st = WatchState {
            start: Instant::now(),
            since: SystemTime::now() - Duration::from_secs(10),
            http_failures: vec![0_u32; policy.http.len()],
            ..WatchState::default()
        };
        let mut errors = 0;
        loop {
            match Box::pin(self.poll_once(applied, policy, events, &mut st)).await {
                Ok(Verdict::Progressing { .. }) => errors = 0,
                Ok(verdict) => return Ok(verdict),
                Err(e @ PlatformError::Api { .. }) if errors < MAX_API_ERRORS => {
                    errors += 1;
                    events.emit(&Event::Warning { message: format!("watching the rollout: {e} (retrying)") });
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One round of observations and the verdict on them.
    async fn poll_once(
        &self,
        applied: &Applied,
        policy: &HealthPolicy,
        events: &dyn Sink,
        st: &mut WatchState,
    ) -> Result<Verdict, PlatformError> {
        let targets: Vec<&str> = applied.services.iter().map(|a| a.target.as_str()).collect();
        let found = self.describe(&targets).await?;
        let mut samples = Vec::new();
        for a in &applied.services {
            let svc = self.service_or_err(&found, &a.target)?;
            let messages: Vec<&str> = svc.events().iter().filter_map(|e| e.message()).collect();
            let mut state =
                classify::rollout_state(&deployment_views(svc), &a.handle, a.previous.as_deref(), &messages);
            if let (Some(t), RolloutState::Complete) = (&a.traffic, &state)
                && !st.switched.contains(&a.service)
            {
                // Blue/green: the new colour is complete; traffic moves once its targets
                // are healthy, and only then does the bake start.
                let desired = u32::try_from(svc.desired_count()).unwrap_or(0);
                if self.colour_ready(&a.target, &a.handle, &t.to_group, desired).await? {
                    let sw = bluegreen::TrafficSwitch {
                        listener_arn: t.listener.clone(),
                        rule_arn: t.rule.clone(),
                    };
                    bluegreen::switch_to(&self.elb, &sw, &t.to_group).await?;
                    st.switched.insert(a.service.clone());
                    events.emit(&Event::Service {
                        service: a.service.clone(),
                        phase: Phase::Health,
                        message: format!(
                            "traffic switched to {} ({}); {} kept for the bake",
                            a.target, t.to_group, t.other
                        ),
                    });
                } else {
                    state = RolloutState::InProgress {
                        running: u32::try_from(svc.running_count()).unwrap_or(0),
                        desired,
                        failed_tasks: 0,
                    };
                }
            }
            for e in svc.events() {
                let fresh =
                    e.created_at().and_then(|t| SystemTime::try_from(*t).ok()).is_some_and(|t| t >= st.since);
                if fresh && st.seen_events.insert(e.id().unwrap_or_default().to_owned()) {
                    events.emit(&Event::Service {
                        service: a.service.clone(),
                        phase: Phase::Health,
                        message: format!("ecs: {}", e.message().unwrap_or_default()),
                    });
                }
            }
            if a.changed {
                let seen = st.seen_tasks.entry(a.target.clone()).or_default();
                for t in self.new_stopped_tasks(&a.target, &a.handle, seen).await? {
                    if let Some(reason) = classify::task_failure(&t) {
                        st.failed_units.push(Sample::UnitFailed {
                            service: a.service.clone(),
                            unit: format!("task {}", t.id),
                            reason,
                        });
                    }
                }
            }
            let progress = format!("{state:?}");
            if st.last_progress.get(&a.service) != Some(&progress) {
                events.emit(&Event::Service {
                    service: a.service.clone(),
                    phase: Phase::Health,
                    message: match &state {
                        RolloutState::InProgress { running, desired, failed_tasks } => format!(
                            "deployment {}: {running}/{desired} running, {failed_tasks} failed",
                            a.handle
                        ),
                        RolloutState::Complete => format!("deployment {} completed", a.handle),
                        RolloutState::Failed { reason } => {
                            format!("deployment {} failed: {reason}", a.handle)
                        }
                        RolloutState::RolledBackByPlatform { reason, to } => {
                            format!("deployment {} failed and ECS rolled back to {to}: {reason}", a.handle)
                        }
                    },
                });
                st.last_progress.insert(a.service.clone(), progress);
            }
            samples.push(Sample::Rollout { service: a.service.clone(), state });
        }
        samples.extend(st.failed_units.iter().cloned());
        samples.extend(self.alarm_samples(&policy.alarms).await?);
        if health::rollouts_complete(&samples) {
            if st.complete_at.is_none() {
                st.complete_at = Some(Instant::now());
                if !policy.bake_time.is_zero() {
                    events.emit(&Event::PhaseStarted { phase: Phase::Bake });
                }
            }
            for (check, failures) in policy.http.iter().zip(st.http_failures.iter_mut()) {
                samples.push(self.http_sample(check, failures).await);
            }
        }
        let verdict = health::assess(
            policy,
            &Observation {
                elapsed: st.start.elapsed(),
                since_complete: st.complete_at.map(|t| t.elapsed()),
                samples: &samples,
            },
        );
        if verdict.is_healthy() {
            // The bake passed: the other colour is no longer needed for a switch-back.
            for a in applied.services.iter().filter(|a| st.switched.contains(&a.service)) {
                if let Some(t) = &a.traffic {
                    self.scale(&t.other, 0).await?;
                    events.emit(&Event::Service {
                        service: a.service.clone(),
                        phase: Phase::Health,
                        message: format!("{} scaled down", t.other),
                    });
                }
            }
        }
        Ok(verdict)
    }

    async fn record_impl(
        &self,
        plan: &ReleasePlan,
        applied: &Applied,
        outcome: Outcome,
    ) -> Result<(), PlatformError> {
        let mut targets: Vec<&str> = Vec::new();
        for a in &applied.services {
            targets.push(&a.target);
            if let Some(t) = &a.traffic {
                targets.push(&t.other);
            }
        }
        let found = self.describe(&targets).await?;
        let at = now_rfc3339();
        // Blue/green: both colours carry the records, so either one found later has them.
        let mut holders: Vec<(&AppliedService, &str)> = Vec::new();
        for a in &applied.services {
            holders.push((a, a.target.as_str()));
            if let Some(t) = &a.traffic {
                holders.push((a, t.other.as_str()));
            }
        }
        for (a, holder) in holders {
            let svc = self.service_or_err(&found, holder)?;
            let arn = svc.service_arn().unwrap_or_default();
            let entry = records::Entry {
                outcome,
                at: at.clone(),
                actor: plan.actor.clone(),
                revision: taskdef::family_revision(&a.revision).to_owned(),
                digest: records::digest_of(&a.image),
            };
            let (key, value) = records::encode(&plan.id, &entry);
            let mut tags = vec![Tag::builder().key(key).value(value).build()];
            if outcome == Outcome::Succeeded {
                tags.push(Tag::builder().key(records::KNOWN_GOOD).value(&a.revision).build());
                tags.push(Tag::builder().key(records::KNOWN_GOOD_RELEASE).value(plan.id.as_str()).build());
            }
            self.ecs
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| PlatformError::api("TagResource", DisplayErrorContext(&e)))?;
            let existing = self.tags(arn).await?;
            let old = records::prune(existing.iter().map(|(k, _)| k.as_str()));
            if !old.is_empty() {
                self.ecs
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(old))
                    .send()
                    .await
                    .map_err(|e| PlatformError::api("UntagResource", DisplayErrorContext(&e)))?;
            }
        }
        Ok(())
    }
}

/// What the watcher remembers between polls.
#[derive(Debug)]
struct WatchState {
    start: Instant,
    /// Service events older than this were there before the rollout.
    since: SystemTime,
    /// When every rollout was first seen complete (the bake starts).
    complete_at: Option<Instant>,
    seen_tasks: HashMap<String, BTreeSet<String>>,
    failed_units: Vec<Sample>,
    seen_events: BTreeSet<String>,
    http_failures: Vec<u32>,
    last_progress: HashMap<String, String>,
    /// Blue/green services whose traffic was switched.
    switched: BTreeSet<String>,
}

impl Default for WatchState {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            since: SystemTime::now(),
            complete_at: None,
            seen_tasks: HashMap::new(),
            failed_units: Vec::new(),
            seen_events: BTreeSet::new(),
            http_failures: Vec::new(),
            last_progress: HashMap::new(),
            switched: BTreeSet::new(),
        }
    }
}

/// What a manual rollback did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackReport {
    /// The release rolled back to.
    pub to: ReleaseId,
    /// The rollback itself, recorded as a release.
    pub applied: Applied,
}

/// Rolls the environment back to release `to`, or (None) to the newest succeeded release that
/// differs from what runs now. Services go to the task definitions recorded for that release
/// (never "revision − 1"); the rollback is watched like a deploy (without bake) and recorded as
/// a release of its own, which becomes the known-good one. A rollback that does not become
/// healthy is [`PlatformError::RollbackFailed`] (exit 6).
pub async fn rollback(
    platform: &EcsPlatform,
    to: Option<&ReleaseId>,
    actor: &str,
    policy: &HealthPolicy,
    events: &dyn Sink,
) -> Result<RollbackReport, PlatformError> {
    Box::pin(rollback_impl(platform, to, actor, policy, events))
        .await
        .map_err(|e| e.in_file(&platform.env_file))
}

async fn rollback_impl(
    platform: &EcsPlatform,
    to: Option<&ReleaseId>,
    actor: &str,
    policy: &HealthPolicy,
    events: &dyn Sink,
) -> Result<RollbackReport, PlatformError> {
    let live = platform.observe().await?;
    let succeeded: Vec<&super::ReleaseRecord> =
        live.releases.iter().filter(|r| r.outcome == Outcome::Succeeded).collect();
    let list = || succeeded.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ");
    let target = match to {
        Some(id) => {
            let rec = live.releases.iter().find(|r| &r.id == id).ok_or_else(|| {
                PlatformError::setup(
                    format!("no release `{id}` is recorded"),
                    format!("recorded releases that succeeded: {}", list()),
                )
            })?;
            if rec.outcome != Outcome::Succeeded {
                return Err(PlatformError::setup(
                    format!("release `{id}` {} and is not a safe target", rec.outcome.as_str()),
                    format!("pick a release that succeeded: {}", list()),
                ));
            }
            rec
        }
        None => succeeded
            .iter()
            .copied()
            .find(|r| {
                r.services.iter().any(|(svc, rs)| {
                    live.services.get(svc).and_then(|l| l.revision.as_deref()).map(taskdef::family_revision)
                        != Some(rs.revision.as_str())
                })
            })
            .ok_or_else(|| {
                PlatformError::setup(
                    "no earlier succeeded release to roll back to",
                    "`deployer history` lists the recorded releases; pass `--to <release>`",
                )
            })?,
    };
    let plan = ReleasePlan {
        id: ReleaseId::new(time::OffsetDateTime::now_utc(), "rollback"),
        actor: actor.to_owned(),
        services: target
            .services
            .iter()
            .filter(|(svc, _)| platform.target_of(svc).is_some())
            .map(|(svc, rs)| ServiceRelease {
                service: svc.clone(),
                image: rs.digest.as_ref().map(|d| format!("@{d}")).unwrap_or_default(),
                desired: Desired::Revision(rs.revision.clone()),
                depends_on: Vec::new(),
            })
            .collect(),
    };
    events.emit(&Event::PhaseStarted { phase: Phase::Rollback });
    let applied = platform.apply(&plan).await?;
    for a in &applied.services {
        events.emit(&Event::Service {
            service: a.service.clone(),
            phase: Phase::Rollback,
            message: format!("rolling {} back to {} (release {})", a.target, a.revision, target.id),
        });
    }
    let verdict = platform.watch(&applied, &policy.for_rollback(), events).await;
    match verdict {
        Ok(Verdict::Healthy) => {
            platform.record(&plan, &applied, Outcome::Succeeded).await?;
            Ok(RollbackReport { to: target.id.clone(), applied })
        }
        other => {
            platform.record(&plan, &applied, Outcome::RollbackFailed).await?;
            let (reason, failures) = match other {
                Ok(v) => (
                    v.failures().iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                    v.failures().to_vec(),
                ),
                Err(e) => (e.to_string(), Vec::new()),
            };
            Err(PlatformError::RollbackFailed { release: plan.id, reason, failures })
        }
    }
}

/// The environment's release history, newest first.
pub async fn history(platform: &EcsPlatform) -> Result<Vec<super::ReleaseRecord>, PlatformError> {
    Ok(platform.observe().await?.releases)
}

/// What runs now per service, with the known-good revisions and the history.
pub async fn status(platform: &EcsPlatform) -> Result<LiveState, PlatformError> {
    platform.observe().await
}
