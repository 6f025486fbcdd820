//! Amazon ECS as a [`Platform`]: register task definitions, update services, follow each
//! deployment by its id, turn what ECS reports into health verdicts, switch blue/green traffic
//! on the ALB, keep the records (service tags, [`records`]) and the deploy lock (a DynamoDB item,
//! [`lock`]). The release sequence (waves, bake, alarms, HTTP checks, rollback target) is the
//! engine's ([`crate::engine`]).
//!
//! Library API: [`EcsPlatform::new`]`(&SdkConfig, &Config, &Environment)`, then
//! [`crate::engine::deploy`] / [`crate::engine::rollback`] with it; [`bluegreen`] has the ALB
//! listener/rule primitives.
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
//! one failed task fails the release at once, without waiting for the circuit breaker). Service
//! events newer than the watch are passed on as progress. [`crate::health::assess`] decides; the
//! engine adds the CloudWatch alarms and the HTTP checks, the same on both platforms.
//!
//! Release records are tags on the services ([`records`]). Deployer never creates services and
//! never deregisters task definitions, so a definition that runs or is a rollback target cannot
//! disappear (cleanup of old revisions is left to the account's own policy).

pub mod bluegreen;
pub mod classify;
pub mod hook;
pub mod lock;
pub mod records;
pub mod taskdef;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::types::{DesiredStatus, Service, Tag};
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::Value;

use self::classify::{DeploymentView, TaskView};
use super::{Applied, AppliedService, ApplyMode, Platform, PlatformError, Running};
use crate::config::{Config, Environment, Target};
use crate::events::{Event, Phase, Sink};
use crate::health::{self, HealthPolicy, Observation, RolloutState, Sample, Verdict};
use crate::model::{Failure, Reason};
use crate::release::{Release, ReleaseStatus};

/// One deployer service in this ECS environment.
#[derive(Debug, Clone)]
struct EcsService {
    name: String,
    /// ECS service name.
    target: String,
    /// The image repository (with the registry host): records keep the digest only.
    repository: String,
    /// Deployer-driven blue/green: the listener rule that carries production traffic
    /// (`target.ecs.production_rules`); None = the listener's default action.
    production_rule: Option<String>,
}

/// ECS as a [`Platform`].
#[derive(Debug, Clone)]
pub struct EcsPlatform {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    /// CloudWatch Logs: the log tail of a failed hook ([`hook`]).
    logs: aws_sdk_cloudwatchlogs::Client,
    /// The DynamoDB table of the deploy lock (`target.ecs.lock_table`).
    lock_table: String,
    cluster: String,
    services: Vec<EcsService>,
    product: String,
    environment: String,
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
                repository: format!("{}/{}", config.registry_host(), s.repository),
                production_rule: target.production_rules.get(s.name.as_str()).cloned(),
            })
            .collect();
        Ok(Self {
            ecs: aws_sdk_ecs::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            lock_table: lock::table_name(target).to_owned(),
            cluster: target.cluster.clone(),
            services,
            product: product.to_owned(),
            environment: env.name.clone(),
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
        s: &Item,
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
                objects: Vec::new(),
                after_switch: Vec::new(),
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
                objects: Vec::new(),
                after_switch: Vec::new(),
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
            objects: Vec::new(),
            after_switch: Vec::new(),
        })
    }

    /// The task definition to run for `doc`: `current` when it is the same (normalised), else
    /// the family's latest revision when that is the same (registered for this release already,
    /// e.g. by its pre-deploy hook, [`hook`]), else a newly registered revision. One release
    /// registers one revision per service, however many steps ask for it.
    async fn ensure_registered(&self, doc: &Value, current: Option<&str>) -> Result<String, PlatformError> {
        if let Some(arn) = current {
            let live = taskdef::describe(&self.ecs, arn).await?;
            if taskdef::same(doc, &live) {
                return Ok(arn.to_owned());
            }
        }
        if let Some(family) = doc.get("family").and_then(Value::as_str) {
            // DescribeTaskDefinition of a family is its latest ACTIVE revision; a family never
            // registered is an error here, and registering below is the answer to it.
            if let Ok(latest) = taskdef::describe(&self.ecs, family).await
                && taskdef::same(doc, &latest)
                && let Some(arn) = latest.get("taskDefinitionArn").and_then(Value::as_str)
            {
                return Ok(arn.to_owned());
            }
        }
        taskdef::register(&self.ecs, doc).await
    }

    /// The ECS service a hook of deployer service `name` takes its settings from (network,
    /// launch type, platform version): the service, or the live colour of a blue/green pair.
    async fn hook_service(&self, name: &str) -> Result<Service, PlatformError> {
        let svc = self.services.iter().find(|s| s.name == name).ok_or_else(|| {
            PlatformError::setup(format!("unknown service `{name}`"), "check the hook's service name")
        })?;
        if let Some(c) = self.colours(svc).await? {
            return Ok(c.live);
        }
        let found = self.describe(&[svc.target.as_str()]).await?;
        self.service_or_err(&found, &svc.target).cloned()
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
        // UNKNOWN is what ECS reports for a task without a container health check.
        let healthy_tasks = self
            .running_tasks(target, handle)
            .await?
            .iter()
            .filter(|t| t.health_status().is_none_or(|h| h.as_str() != "UNHEALTHY"))
            .count();
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

    /// The RUNNING tasks of `target` that deployment `handle` started.
    async fn running_tasks(
        &self,
        target: &str,
        handle: &str,
    ) -> Result<Vec<aws_sdk_ecs::types::Task>, PlatformError> {
        let arns =
            self.task_arns(TaskFilter::Service { name: target, status: DesiredStatus::Running }).await?;
        let mut tasks = self.describe_tasks(&arns).await?;
        tasks.retain(|t| t.started_by() == Some(handle) && t.last_status() == Some("RUNNING"));
        Ok(tasks)
    }

    /// Every task ARN ListTasks gives for `filter`, all pages.
    pub(crate) async fn task_arns(&self, filter: TaskFilter<'_>) -> Result<Vec<String>, PlatformError> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let request = self.ecs.list_tasks().cluster(&self.cluster).set_next_token(token);
            let request = match &filter {
                TaskFilter::Service { name, status } => {
                    request.service_name(*name).desired_status(status.clone())
                }
                TaskFilter::StartedBy(by) => request.started_by(*by),
            };
            let out =
                request.send().await.map_err(|e| PlatformError::api("ListTasks", DisplayErrorContext(&e)))?;
            arns.extend(out.task_arns().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    /// The tasks `arns` name, as DescribeTasks reports them (100 a call, its limit).
    pub(crate) async fn describe_tasks(
        &self,
        arns: &[String],
    ) -> Result<Vec<aws_sdk_ecs::types::Task>, PlatformError> {
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| PlatformError::api("DescribeTasks", DisplayErrorContext(&e)))?;
            tasks.extend(out.tasks().iter().cloned());
        }
        Ok(tasks)
    }

    /// The tasks of deployment `handle` of `target` that run but are not healthy, with why: the
    /// container health check's verdict (`UNHEALTHY`), else, behind a load balancer, the task's
    /// target in the service's target groups and ELB's reason code. A task without a container
    /// health check and without a load balancer has nothing that could say "not ready".
    async fn unready_tasks(
        &self,
        svc: &Service,
        target: &str,
        handle: &str,
    ) -> Result<Vec<(String, String)>, PlatformError> {
        let tasks = self.running_tasks(target, handle).await?;
        // Target id (the task's IP, awsvpc) → (state, reason code, description), every group.
        let mut targets: BTreeMap<String, (String, String, String)> = BTreeMap::new();
        for group in svc.load_balancers().iter().filter_map(|l| l.target_group_arn()) {
            let out = self
                .elb
                .describe_target_health()
                .target_group_arn(group)
                .send()
                .await
                .map_err(|e| PlatformError::api("DescribeTargetHealth", DisplayErrorContext(&e)))?;
            for d in out.target_health_descriptions() {
                let (Some(t), Some(h)) = (d.target(), d.target_health()) else { continue };
                let key = format!("{}:{}", t.id().unwrap_or_default(), t.port().unwrap_or_default());
                targets.insert(
                    key,
                    (
                        h.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                        h.reason().map(|r| r.as_str().to_owned()).unwrap_or_default(),
                        h.description().unwrap_or_default().to_owned(),
                    ),
                );
            }
        }
        let mut out = Vec::new();
        for t in tasks {
            let id = t.task_arn().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
            let ip = t
                .attachments()
                .iter()
                .flat_map(aws_sdk_ecs::types::Attachment::details)
                .find(|d| d.name() == Some("privateIPv4Address"))
                .and_then(|d| d.value())
                .unwrap_or_default()
                .to_owned();
            let mut why = Vec::new();
            let health = t.health_status().map(|h| h.as_str().to_owned()).unwrap_or_default();
            if health == "UNHEALTHY" {
                why.push("container health check: UNHEALTHY".to_owned());
            }
            let theirs: Vec<(&String, &(String, String, String))> =
                targets.iter().filter(|(k, _)| !ip.is_empty() && k.starts_with(&format!("{ip}:"))).collect();
            // A group no listener routes to (the idle blue/green colour) reports `unused`: ELB
            // does not health-check it, so it says nothing about the task.
            let judged: Vec<_> = theirs.iter().filter(|(_, (state, _, _))| state != "unused").collect();
            let target_ready = judged.iter().any(|(_, (state, _, _))| state == "healthy");
            for (k, (state, reason, description)) in &judged {
                if state != "healthy" {
                    why.push(format!("target {k} {state} ({reason}: {description})"));
                }
            }
            let unjudged = judged.is_empty() && (!theirs.is_empty() || svc.load_balancers().is_empty());
            let ready = health == "HEALTHY" || (health != "UNHEALTHY" && (target_ready || unjudged));
            if !ready {
                if why.is_empty() {
                    why.push("not registered healthy with its load balancer yet".to_owned());
                }
                out.push((id, why.join("; ")));
            }
        }
        Ok(out)
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
        let mut arns =
            self.task_arns(TaskFilter::Service { name: target, status: DesiredStatus::Stopped }).await?;
        arns.retain(|a| !seen.contains(a));
        let mut views = Vec::new();
        for t in &self.describe_tasks(&arns).await? {
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
        Ok(views)
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

/// One service to apply: what it should run.
#[derive(Debug, Clone)]
struct Item {
    service: String,
    image: String,
    desired: Desired,
}

/// What one service should run.
#[derive(Debug, Clone)]
enum Desired {
    /// A rendered task definition (registered unless the service already runs the same).
    Spec(Value),
    /// A recorded task definition (`family:revision` or ARN): rollbacks use these.
    Revision(String),
}

// The SDK's futures are large: each trait method boxes its body so callers' futures stay small.
impl Platform for EcsPlatform {
    async fn history(&self) -> Result<Vec<Release>, PlatformError> {
        Box::pin(self.history_impl()).await.map_err(|e| e.in_file(&self.env_file))
    }

    async fn running(&self) -> Result<BTreeMap<String, Running>, PlatformError> {
        let mut out = BTreeMap::new();
        for svc in &self.services {
            let live = if let Some(c) = self.colours(svc).await? {
                Some(c.live)
            } else {
                let found = self.describe(&[svc.target.as_str()]).await?;
                found.get(&svc.target).filter(|s| s.status() == Some("ACTIVE")).cloned()
            };
            if let Some(s) = live {
                let td = s.task_definition().map_or("(none)", taskdef::family_revision).to_owned();
                out.insert(svc.name.clone(), Running { live: vec![td] });
            }
        }
        Ok(out)
    }

    async fn lock_holder(&self) -> Result<Option<super::LockHolder>, PlatformError> {
        let key = lock::lock_key(&self.product, &self.environment);
        match lock::holder(&self.dynamodb, &self.lock_table, &key).await {
            Ok(h) => Ok(h.map(|(holder, live)| super::LockHolder { holder, live })),
            Err(e) => Err(PlatformError::Api {
                operation: "read the deploy lock".into(),
                hint: e.hint(),
                message: e.to_string(),
            }),
        }
    }

    async fn lock(&self, holder: &str, wait: Duration) -> Result<super::Lock, PlatformError> {
        let key = lock::lock_key(&self.product, &self.environment);
        match lock::Lock::acquire(&self.dynamodb, &self.lock_table, &key, holder, wait).await {
            Ok(l) => Ok(super::Lock::Table(l)),
            Err(e) => {
                let hint = e.hint();
                Err(match e {
                    lock::LockError::Held { key, holder, .. } => {
                        PlatformError::LockHeld { lock: key, holder }
                    }
                    lock::LockError::TableMissing { .. } => PlatformError::Setup {
                        message: e.to_string(),
                        hint,
                        file: Some(self.env_file.clone()),
                    },
                    lock::LockError::Denied { .. } => PlatformError::Denied { message: e.to_string(), hint },
                    other => PlatformError::Api {
                        operation: "the deploy lock".into(),
                        message: other.to_string(),
                        hint,
                    },
                })
            }
        }
    }

    async fn record(&self, release: &Release) -> Result<(), PlatformError> {
        Box::pin(self.record_impl(release)).await.map_err(|e| e.in_file(&self.env_file))
    }

    async fn prepare(
        &self,
        release: &mut Release,
        _previous: Option<&Release>,
        _blue_green: bool,
        _events: &dyn Sink,
    ) -> Result<(), PlatformError> {
        // Every service exists, and every blue/green pair's live colour can be told from
        // production traffic, before anything is recorded or changed. The colours themselves
        // are read again at apply time: what serves production then.
        let targets: Vec<&str> = self
            .services
            .iter()
            .filter(|s| release.services.contains_key(&s.name))
            .map(|s| s.target.as_str())
            .collect();
        let found = self.describe(&targets).await?;
        for svc in self.services.iter().filter(|s| release.services.contains_key(&s.name)) {
            if self.colours(svc).await.map_err(|e| e.in_file(&self.env_file))?.is_none() {
                self.service_or_err(&found, &svc.target).map_err(|e| e.in_file(&self.env_file))?;
            }
        }
        Ok(())
    }

    async fn apply(
        &self,
        release: &Release,
        services: &[String],
        mode: ApplyMode,
        events: &dyn Sink,
    ) -> Result<Applied, PlatformError> {
        let mut items = Vec::new();
        for name in services {
            let Some(s) = release.services.get(name) else { continue };
            let desired = match (&mode, &s.spec, &s.revision) {
                (ApplyMode::Rollout { .. }, Some(spec), _) => Desired::Spec(spec.clone()),
                (_, _, Some(rev)) => Desired::Revision(rev.clone()),
                // Carried over from an earlier release and never recorded with a revision: it
                // runs what it runs.
                _ => continue,
            };
            items.push(Item { service: name.clone(), image: s.image.clone(), desired });
        }
        let applied = Box::pin(self.apply_impl(&items)).await.map_err(|e| e.in_file(&self.env_file))?;
        for a in &applied.services {
            let message = if a.changed {
                format!("updating {} to {} (deployment {})", a.target, a.revision, a.handle)
            } else {
                format!("{} already runs {}: nothing to roll out", a.target, a.revision)
            };
            events.emit(&Event::Service { service: a.service.clone(), phase: Phase::Apply, message });
        }
        Ok(applied)
    }

    async fn watch(
        &self,
        applied: &Applied,
        deadline: tokio::time::Instant,
        hold: Duration,
        events: &dyn Sink,
    ) -> Result<Option<Failure>, PlatformError> {
        let policy = HealthPolicy {
            rollout_timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
            bake_time: hold,
            alarms: Vec::new(),
            http: Vec::new(),
            http_failure_limit: 0,
        };
        let verdict = Box::pin(self.watch_impl(applied, &policy, events))
            .await
            .map_err(|e| e.in_file(&self.env_file))?;
        Ok(verdict.failures().first().map(failure_of))
    }

    async fn switch(&self, applied: &Applied, forward: bool, events: &dyn Sink) -> Result<(), PlatformError> {
        for a in &applied.services {
            let Some(t) = &a.traffic else { continue };
            if forward && a.changed {
                self.wait_ready(a, t).await?;
            }
            let sw = bluegreen::TrafficSwitch { listener_arn: t.listener.clone(), rule_arn: t.rule.clone() };
            let (to, serving) = if forward { (&t.to_group, &a.target) } else { (&t.from_group, &t.other) };
            bluegreen::switch_to(&self.elb, &sw, to).await?;
            events.emit(&Event::Service {
                service: a.service.clone(),
                phase: Phase::Apply,
                message: format!("production traffic switched to {serving} ({to})"),
            });
        }
        Ok(())
    }

    async fn finish(
        &self,
        applied: &Applied,
        _release: &Release,
        _previous: Option<&Release>,
        events: &dyn Sink,
    ) -> Result<(), PlatformError> {
        // The release passed its bake and the scale-down delay: the old colour is no longer
        // needed for a switch-back. It is scaled to 0 and kept (its task definition stays).
        for a in &applied.services {
            if let Some(t) = &a.traffic {
                self.scale(&t.other, 0).await?;
                events.emit(&Event::Service {
                    service: a.service.clone(),
                    phase: Phase::Record,
                    message: format!("{} scaled down to 0 (kept for the next release)", t.other),
                });
            }
        }
        Ok(())
    }

    async fn run_hook(
        &self,
        release: &Release,
        hook: &crate::model::Hook,
        events: &dyn Sink,
    ) -> Result<Option<Failure>, PlatformError> {
        hook::run(self, release, hook, events).await
    }

    async fn stop_hook(&self, release: &Release, hook: &crate::model::Hook) -> Result<(), PlatformError> {
        hook::stop(self, release, hook).await
    }
}

impl EcsPlatform {
    /// Before production traffic moves: the new colour's tasks run healthy and its target group
    /// has no unhealthy target ([`EcsPlatform::colour_ready`]), waited for up to
    /// [`READY_WAIT`] (ELB registration takes a few health-check intervals).
    async fn wait_ready(&self, a: &AppliedService, t: &super::Traffic) -> Result<(), PlatformError> {
        let start = Instant::now();
        loop {
            let found = self.describe(&[a.target.as_str()]).await?;
            let desired = u32::try_from(self.service_or_err(&found, &a.target)?.desired_count()).unwrap_or(0);
            if self.colour_ready(&a.target, &a.handle, &t.to_group, desired).await? {
                return Ok(());
            }
            if start.elapsed() > READY_WAIT {
                return Err(PlatformError::setup(
                    format!(
                        "{} ({}) did not become ready for traffic in {}s",
                        a.target,
                        t.to_group,
                        READY_WAIT.as_secs()
                    ),
                    "check the target group's health check (path, port, matcher) against the service",
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// How long a new colour may take to be ready for production traffic after its rollout completed.
const READY_WAIT: Duration = Duration::from_mins(2);

/// The engine's failure for a verdict's failure.
fn failure_of(f: &health::Failure) -> Failure {
    let reason = match f.cause {
        health::Cause::UnitFailed => Reason::from_ecs_task(&f.reason),
        health::Cause::RolloutFailed => Reason::RolloutFailed,
        health::Cause::RolledBackByPlatform => Reason::RolledBackByPlatform,
        health::Cause::Alarm => Reason::Alarm,
        health::Cause::Http => Reason::HttpCheck,
        health::Cause::Timeout => Reason::Deadline,
    };
    let (subject, detail) = match f.reason.split_once(" stopped: ") {
        Some((unit, why)) => (unit.to_owned(), why.to_owned()),
        None => (String::new(), f.reason.clone()),
    };
    Failure::new(f.service.as_deref(), reason, subject, detail)
}

impl EcsPlatform {
    async fn history_impl(&self) -> Result<Vec<Release>, PlatformError> {
        let mut entries = Vec::new();
        for svc in &self.services {
            let holders: Vec<Service> = if let Some(c) = self.colours(svc).await? {
                vec![c.live, c.idle]
            } else {
                let found = self.describe(&[svc.target.as_str()]).await?;
                found.get(&svc.target).filter(|s| s.status() == Some("ACTIVE")).cloned().into_iter().collect()
            };
            // Blue/green: records are on both colours; the same entry is read once.
            let mut seen = BTreeSet::new();
            for h in &holders {
                for (k, v) in self.tags(h.service_arn().unwrap_or_default()).await? {
                    if let Some((id, e)) = records::decode(&k, &v)
                        && seen.insert(id.clone())
                    {
                        entries.push((svc.name.clone(), id, e));
                    }
                }
            }
        }
        let repo = |service: &str| {
            self.services.iter().find(|s| s.name == service).map(|s| s.repository.clone()).unwrap_or_default()
        };
        Ok(records::merge(&self.product, &self.environment, entries, &repo))
    }

    async fn apply_impl(&self, items: &[Item]) -> Result<Applied, PlatformError> {
        let mut wanted = Vec::new();
        for s in items {
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
                    Desired::Spec(doc) => self.ensure_registered(doc, c.live.task_definition()).await?,
                };
                applied.push(self.apply_colours(s, c, revision).await?);
                continue;
            }
            let svc = self.service_or_err(&found, target)?;
            let current = svc.task_definition().map(str::to_owned);
            let revision = match &s.desired {
                Desired::Revision(r) => r.clone(),
                Desired::Spec(doc) => self.ensure_registered(doc, current.as_deref()).await?,
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
                objects: Vec::new(),
                after_switch: Vec::new(),
            });
        }
        Ok(Applied { services: applied, ..Applied::default() })
    }

    /// The lifecycle stage of the service's deployment in progress (native blue/green), from
    /// ListServiceDeployments + DescribeServiceDeployments; None once none is in progress.
    async fn lifecycle_stage(&self, target: &str) -> Result<Option<String>, PlatformError> {
        use aws_sdk_ecs::types::ServiceDeploymentStatus as S;
        let listed = self
            .ecs
            .list_service_deployments()
            .cluster(&self.cluster)
            .service(target)
            .set_status(Some(vec![S::Pending, S::InProgress, S::RollbackRequested, S::RollbackInProgress]))
            .send()
            .await
            .map_err(|e| PlatformError::api("ListServiceDeployments", DisplayErrorContext(e)))?;
        let Some(latest) = listed
            .service_deployments()
            .iter()
            .max_by_key(|d| d.created_at().map(|t| (t.secs(), t.subsec_nanos())))
            .and_then(|d| d.service_deployment_arn())
        else {
            return Ok(None);
        };
        let described = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(latest)
            .send()
            .await
            .map_err(|e| PlatformError::api("DescribeServiceDeployments", DisplayErrorContext(e)))?;
        Ok(described
            .service_deployments()
            .first()
            .and_then(|d| d.lifecycle_stage())
            .map(|s| s.as_str().to_owned()))
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
        let mut st = WatchState { start: Instant::now(), since: SystemTime::now(), ..WatchState::default() };
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
        let mut in_platform_bake = false;
        for a in &applied.services {
            let svc = self.service_or_err(&found, &a.target)?;
            if a.changed && is_native_blue_green(svc) {
                let stage = self.lifecycle_stage(&a.target).await?;
                in_platform_bake |= matches!(stage.as_deref(), Some("BAKE_TIME" | "CLEAN_UP"));
                if let Some(stage) = stage
                    && st.stages.get(&a.service) != Some(&stage)
                {
                    events.emit(&Event::Service {
                        service: a.service.clone(),
                        phase: Phase::Health,
                        message: format!("ecs blue/green: {}", stage_words(&stage)),
                    });
                    st.stages.insert(a.service.clone(), stage);
                }
            }
            let messages: Vec<&str> = svc.events().iter().filter_map(|e| e.message()).collect();
            let state =
                classify::rollout_state(&deployment_views(svc), &a.handle, a.previous.as_deref(), &messages);
            // Only events of this deployment are progress: older ones belong to earlier
            // deployments. A deployment we started is dated by ECS's own clock (ours may lag
            // it, which replayed the previous deployment's "completed"); else the watch's start.
            let started = svc
                .deployments()
                .iter()
                .find(|d| a.changed && d.id() == Some(a.handle.as_str()))
                .and_then(|d| d.created_at())
                .and_then(|t| SystemTime::try_from(*t).ok())
                .unwrap_or(st.since);
            for e in svc.events() {
                let fresh =
                    e.created_at().and_then(|t| SystemTime::try_from(*t).ok()).is_some_and(|t| t >= started);
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
            if a.changed
                && let Some(bound) = applied.ready_within.get(&a.service)
            {
                let now = Instant::now();
                let unready = self.unready_tasks(svc, &a.target, &a.handle).await?;
                let since = st.unready_since.entry(a.service.clone()).or_default();
                since.retain(|id, _| unready.iter().any(|(u, _)| u == id));
                for (id, why) in unready {
                    let first = *since.entry(id.clone()).or_insert(now);
                    samples.push(Sample::Unready {
                        service: a.service.clone(),
                        unit: format!("task {id}"),
                        unready_for: now.duration_since(first),
                        bound: *bound,
                        why,
                    });
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
        if health::rollouts_complete(&samples) && st.complete_at.is_none() {
            st.complete_at = Some(Instant::now());
        }
        let now = Instant::now();
        if in_platform_bake && let Some(last) = st.last_poll {
            st.platform_bake += now - last;
        }
        st.last_poll = Some(now);
        Ok(health::assess(
            policy,
            &Observation {
                elapsed: st.start.elapsed().saturating_sub(st.platform_bake),
                since_complete: st.complete_at.map(|t| t.elapsed()),
                samples: &samples,
            },
        ))
    }

    async fn record_impl(&self, release: &Release) -> Result<(), PlatformError> {
        let mut holders: Vec<(&str, String)> = Vec::new();
        for name in release.services.keys() {
            let Some(svc) = self.services.iter().find(|e| &e.name == name) else { continue };
            let target = svc.target.as_str();
            // Blue/green: both colours carry the records, so either one found later has them.
            match self.colours(svc).await? {
                Some(c) => {
                    for s in [c.live, c.idle] {
                        holders.push((name.as_str(), s.service_name().unwrap_or_default().to_owned()));
                    }
                }
                None => holders.push((name.as_str(), target.to_owned())),
            }
        }
        let targets: Vec<&str> = holders.iter().map(|(_, t)| t.as_str()).collect();
        let found = self.describe(&targets).await?;
        for (name, holder) in &holders {
            let s = &release.services[*name];
            let svc = self.service_or_err(&found, holder)?;
            let arn = svc.service_arn().unwrap_or_default();
            let entry = records::Entry {
                status: release.status,
                at: release.started_at.clone(),
                actor: release.actor.clone().unwrap_or_else(|| "unknown".into()),
                revision: s.revision.as_deref().map(|r| taskdef::family_revision(r).to_owned()),
                digest: crate::model::PinnedImage::parse(&s.image).map(|p| p.digest),
                git_sha: release.git_sha.clone(),
                returned_to: release.rolled_back_to.clone(),
            };
            let (key, value) = records::encode(&release.id, &entry);
            let mut tags = vec![Tag::builder().key(key).value(value).build()];
            if release.status == ReleaseStatus::Succeeded
                && let Some(rev) = &s.revision
            {
                tags.push(Tag::builder().key(records::KNOWN_GOOD).value(rev).build());
                tags.push(Tag::builder().key(records::KNOWN_GOOD_RELEASE).value(&release.id).build());
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

/// What ListTasks is asked for (ECS refuses `startedBy` together with other filters).
#[derive(Debug, Clone)]
pub(crate) enum TaskFilter<'a> {
    Service { name: &'a str, status: DesiredStatus },
    StartedBy(&'a str),
}

/// What the watcher remembers between polls.
#[derive(Debug)]
struct WatchState {
    start: Instant,
    /// Service events older than this were there before the watch.
    since: SystemTime,
    /// When every rollout was first seen complete (the hold starts).
    complete_at: Option<Instant>,
    seen_tasks: HashMap<String, BTreeSet<String>>,
    failed_units: Vec<Sample>,
    seen_events: BTreeSet<String>,
    last_progress: HashMap<String, String>,
    /// Native ECS blue/green: the lifecycle stage last reported per service.
    stages: HashMap<String, String>,
    /// Service → task id → when this watch first saw the task running but not healthy
    /// (`ready_within`; our own clock).
    unready_since: HashMap<String, BTreeMap<String, Instant>>,
    /// Time spent in ECS's own bake (native blue/green `BAKE_TIME`, then `CLEAN_UP`): not
    /// counted against deployer's rollout timeout, which is about getting healthy, not about
    /// how long the service asks ECS to keep the old revision.
    platform_bake: Duration,
    last_poll: Option<Instant>,
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
            last_progress: HashMap::new(),
            stages: HashMap::new(),
            unready_since: HashMap::new(),
            platform_bake: Duration::ZERO,
            last_poll: None,
        }
    }
}

/// The service deploys with ECS's own blue/green (`deploymentConfiguration.strategy`).
fn is_native_blue_green(svc: &Service) -> bool {
    svc.deployment_configuration()
        .and_then(|c| c.strategy())
        .is_some_and(|s| *s == aws_sdk_ecs::types::DeploymentStrategy::BlueGreen)
}

/// A lifecycle stage as progress users read (the ECS name kept, so the console matches).
fn stage_words(stage: &str) -> String {
    let what = match stage {
        "RECONCILE_SERVICE" => "reconciling the service",
        "PRE_SCALE_UP" | "SCALE_UP" | "POST_SCALE_UP" => "starting the new revision",
        "TEST_TRAFFIC_SHIFT" | "POST_TEST_TRAFFIC_SHIFT" => "test traffic on the new revision",
        "PRODUCTION_TRAFFIC_SHIFT" | "POST_PRODUCTION_TRAFFIC_SHIFT" => {
            "production traffic moving to the new revision"
        }
        "BAKE_TIME" => "ECS bake (the old revision kept; not counted against timeouts.rollout)",
        "CLEAN_UP" => "cleaning up the old revision",
        _ => "",
    };
    if what.is_empty() { stage.to_owned() } else { format!("{stage}: {what}") }
}
