//! Release hooks on ECS: one-off tasks run once per release with the release's image.
//!
//! A hook is a `RunTask` of the release's own task definition for the service (registered here
//! if the release has not registered it yet, found again by [`EcsPlatform::ensure_registered`]
//! so that the apply that follows reuses that revision), with `command` overriding the
//! container that runs the service's pinned image, on the service's network configuration,
//! launch type or capacity provider strategy and platform version (read from the ECS service
//! itself, the live colour for a blue/green pair). Tasks carry `startedBy = deployer/<release>`
//! and `group = deployer-hook:<service>-<hook>`, which is how [`stop`] finds them again.
//!
//! ECS has no watch API: the task is polled with DescribeTasks every [`EcsPlatform::poll`]
//! until it is STOPPED. The hook container's exit code decides (0: success); a task that never
//! ran is judged by its `stopCode`/`stoppedReason` (image pull, out of memory, …). At
//! `hook.timeout` the task is stopped (StopTask, `UserInitiated`) and the hook fails. A failed
//! hook's last log lines are read from CloudWatch Logs when the container logs with `awslogs`
//! (stream `<awslogs-stream-prefix>/<container>/<task id>`, the driver's documented naming).

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ContainerOverride, Service, Task, TaskOverride};
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::Value;

use super::{EcsPlatform, TaskFilter, taskdef};
use crate::events::{Event, Phase, Sink};
use crate::model::{Failure, Hook, HookStage, Reason};
use crate::platform::PlatformError;
use crate::release::Release;
use crate::support::human;

/// ECS's limit on `startedBy` (RunTask API reference: up to 128 letters, digits, `-`, `/`, `_`).
const STARTED_BY_MAX: usize = 128;
/// How many log lines a failure carries.
const LOG_TAIL: i32 = 20;
/// How long a stopped hook task may take to reach STOPPED (ECS sends SIGKILL 30 s after
/// SIGTERM by default): the failure is reported then even if it has not.
const STOP_WAIT: Duration = Duration::from_secs(45);
/// API errors in a row tolerated while following a task (throttling must not fail a hook).
const MAX_API_ERRORS: u32 = 5;

/// `startedBy` of every task of `release`'s hooks: `deployer/<release id>` in the characters
/// ECS accepts (`prod.17` → `deployer/prod_17`).
pub fn started_by(release: &Release) -> String {
    let id: String = release
        .id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_') { c } else { '_' })
        .collect();
    let mut s = format!("deployer/{id}");
    s.truncate(STARTED_BY_MAX);
    s
}

/// `group` of the tasks of one hook: `deployer-hook:<service>-<hook>`.
pub fn group(hook: &Hook) -> String {
    format!("deployer-hook:{}-{}", hook.service, hook.name)
}

/// What a hook runs: the task definition, its container and where that container logs.
#[derive(Debug, Clone)]
struct Plan {
    revision: String,
    container: String,
    logs: Option<LogStreamOf>,
}

/// The awslogs settings of the hook container.
#[derive(Debug, Clone)]
struct LogStreamOf {
    group: String,
    region: Option<String>,
    prefix: String,
}

/// Runs `hook` to completion (see [`crate::platform::Platform::run_hook`]).
pub async fn run(
    platform: &EcsPlatform,
    release: &Release,
    hook: &Hook,
    events: &dyn Sink,
) -> Result<Option<Failure>, PlatformError> {
    Box::pin(run_impl(platform, release, hook, events)).await.map_err(|e| e.in_file(&platform.env_file))
}

async fn run_impl(
    p: &EcsPlatform,
    release: &Release,
    hook: &Hook,
    events: &dyn Sink,
) -> Result<Option<Failure>, PlatformError> {
    let say = |message: String| {
        events.emit(&Event::Service { service: hook.service.clone(), phase: phase_of(hook.stage), message });
    };
    let service = p.hook_service(&hook.service).await?;
    let plan = plan(p, release, hook, &service).await?;
    let mut run = p
        .ecs
        .run_task()
        .cluster(&p.cluster)
        .task_definition(&plan.revision)
        .overrides(
            TaskOverride::builder()
                .container_overrides(
                    ContainerOverride::builder()
                        .name(&plan.container)
                        .set_command(Some(hook.command.clone()))
                        .build(),
                )
                .build(),
        )
        .started_by(started_by(release))
        .group(group(hook))
        .set_network_configuration(service.network_configuration().cloned())
        .set_platform_version(service.platform_version().map(str::to_owned));
    // The service's capacity provider strategy, else its launch type (ECS refuses both at once).
    if service.capacity_provider_strategy().is_empty() {
        run = run.set_launch_type(service.launch_type().cloned());
    } else {
        run = run.set_capacity_provider_strategy(Some(service.capacity_provider_strategy().to_vec()));
    }
    let out = run
        .send()
        .await
        .map_err(|e| PlatformError::api(format!("RunTask for {}", hook.title()), DisplayErrorContext(&e)))?;
    let Some(arn) = out.tasks().first().and_then(Task::task_arn).map(str::to_owned) else {
        let words: Vec<String> = out
            .failures()
            .iter()
            .map(|f| {
                let mut s = f.reason().unwrap_or("no reason given").to_owned();
                if let Some(d) = f.detail() {
                    s = format!("{s} ({d})");
                }
                s
            })
            .collect();
        return Err(PlatformError::Api {
            operation: format!("RunTask for {}", hook.title()),
            message: format!("ECS started no task: {}", words.join("; ")),
            hint: "check the cluster's capacity (capacity providers, Fargate quotas) and the service's network configuration".into(),
        });
    };
    let id = short_id(&arn);
    let start = Instant::now();
    say(format!("hook {}: task {id} started ({})", hook.name, plan.revision_words()));
    let deadline = start + hook.timeout;
    let mut errors = 0;
    let mut last_status = String::new();
    let task = loop {
        match describe(p, &arn).await {
            Ok(Some(t)) => {
                errors = 0;
                let status = t.last_status().unwrap_or_default().to_owned();
                if status == "STOPPED" {
                    break t;
                }
                if status != last_status {
                    say(format!("hook {}: task {id} {}", hook.name, status.to_ascii_lowercase()));
                    last_status = status;
                }
            }
            Ok(None) if errors < MAX_API_ERRORS => errors += 1,
            Ok(None) => {
                return Err(PlatformError::api(
                    "DescribeTasks",
                    format!("task {arn} of {} is gone (MISSING)", hook.title()),
                ));
            }
            Err(e) if errors < MAX_API_ERRORS => {
                errors += 1;
                events
                    .emit(&Event::Warning { message: format!("following {}: {e} (retrying)", hook.title()) });
            }
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return timed_out(p, hook, &plan, &arn, events).await;
        }
        tokio::time::sleep(p.poll).await;
    };
    let elapsed = start.elapsed();
    let failure = verdict(hook, &plan.container, &task);
    match &failure {
        None => say(format!("hook {}: task {id} exited 0 after {}", hook.name, human(elapsed))),
        Some(f) => {
            say(format!("hook {}: task {id} failed after {}: {}", hook.name, human(elapsed), f.detail));
        }
    }
    let Some(mut failure) = failure else { return Ok(None) };
    failure.logs = log_tail(p, &plan, &arn, events).await;
    Ok(Some(failure))
}

impl Plan {
    fn revision_words(&self) -> &str {
        taskdef::family_revision(&self.revision)
    }
}

/// The task definition the hook runs (registered now if the release's is not yet), and the
/// container whose command it overrides.
async fn plan(
    p: &EcsPlatform,
    release: &Release,
    hook: &Hook,
    service: &Service,
) -> Result<Plan, PlatformError> {
    let Some(s) = release.services.get(&hook.service) else {
        return Err(PlatformError::setup(
            format!("{} cannot run: the release has no service `{}`", hook.title(), hook.service),
            "a hook belongs to one of the release's services",
        ));
    };
    let (revision, doc) = match (&s.spec, &s.revision) {
        (Some(spec), _) => (p.ensure_registered(spec, service.task_definition()).await?, spec.clone()),
        (None, Some(rev)) => (rev.clone(), taskdef::describe(&p.ecs, rev).await?),
        (None, None) => match service.task_definition() {
            // Carried over and never recorded with a revision: it runs what the service runs.
            Some(td) => (td.to_owned(), taskdef::describe(&p.ecs, td).await?),
            None => {
                return Err(PlatformError::setup(
                    format!(
                        "{} cannot run: no task definition is known for `{}`",
                        hook.title(),
                        hook.service
                    ),
                    "deploy the service once before giving it hooks",
                ));
            }
        },
    };
    let (container, logs) = hook_container(&doc, &s.image).ok_or_else(|| {
        PlatformError::setup(
            format!("{} cannot run: task definition {revision} has no essential container", hook.title()),
            "the task definition needs a container that runs the service's image",
        )
    })?;
    Ok(Plan { revision, container, logs })
}

/// The container a hook runs in, in task definition `doc`: the one running the service's
/// pinned `image` (sidecars such as log routers may come first), else the first essential one;
/// and where it logs (awslogs only).
fn hook_container(doc: &Value, image: &str) -> Option<(String, Option<LogStreamOf>)> {
    let chosen = crate::render::hook::ecs_container(doc, image)?;
    let name = chosen.get("name").and_then(Value::as_str)?.to_owned();
    let logs = chosen
        .get("logConfiguration")
        .filter(|l| l.get("logDriver").and_then(Value::as_str) == Some("awslogs"))
        .and_then(|l| l.get("options"))
        .and_then(|o| {
            let opt = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(LogStreamOf {
                group: opt("awslogs-group")?,
                region: opt("awslogs-region"),
                // Without a prefix the stream is named by the container's id, which the API
                // does not report: no tail then.
                prefix: opt("awslogs-stream-prefix")?,
            })
        });
    Some((name, logs))
}

/// The hook's task, or None when ECS reports it MISSING.
async fn describe(p: &EcsPlatform, arn: &str) -> Result<Option<Task>, PlatformError> {
    let out = p
        .ecs
        .describe_tasks()
        .cluster(&p.cluster)
        .tasks(arn)
        .send()
        .await
        .map_err(|e| PlatformError::api("DescribeTasks", DisplayErrorContext(&e)))?;
    Ok(out.tasks().first().cloned())
}

/// Past `hook.timeout`: stop the task, wait (a bounded time) for it to stop, and fail.
async fn timed_out(
    p: &EcsPlatform,
    hook: &Hook,
    plan: &Plan,
    arn: &str,
    events: &dyn Sink,
) -> Result<Option<Failure>, PlatformError> {
    let after = human(hook.timeout);
    stop_task(p, arn, &format!("deployer: hook timed out after {after}")).await?;
    let id = short_id(arn);
    let stop_start = Instant::now();
    let mut stopped = false;
    while stop_start.elapsed() < STOP_WAIT {
        if describe(p, arn).await.ok().flatten().is_some_and(|t| t.last_status() == Some("STOPPED")) {
            stopped = true;
            break;
        }
        tokio::time::sleep(p.poll).await;
    }
    events.emit(&Event::Service {
        service: hook.service.clone(),
        phase: phase_of(hook.stage),
        message: format!("hook {}: task {id} timed out after {after} and was stopped", hook.name),
    });
    let detail = if stopped {
        format!("timed out after {after} (task stopped)")
    } else {
        format!(
            "timed out after {after} (StopTask sent; the task had not stopped {}s later)",
            STOP_WAIT.as_secs()
        )
    };
    let mut failure = Failure::new(Some(&hook.service), Reason::HookFailed, format!("task {id}"), detail);
    failure.logs = log_tail(p, plan, arn, events).await;
    Ok(Some(failure))
}

async fn stop_task(p: &EcsPlatform, arn: &str, reason: &str) -> Result<(), PlatformError> {
    p.ecs
        .stop_task()
        .cluster(&p.cluster)
        .task(arn)
        .reason(reason)
        .send()
        .await
        .map_err(|e| PlatformError::api(format!("StopTask {arn}"), DisplayErrorContext(&e)))?;
    Ok(())
}

/// Success (None) or why the stopped hook task failed.
fn verdict(hook: &Hook, container: &str, task: &Task) -> Option<Failure> {
    let id = short_id(task.task_arn().unwrap_or_default());
    let c = task.containers().iter().find(|c| c.name() == Some(container));
    let exit = c.and_then(aws_sdk_ecs::types::Container::exit_code);
    let container_reason = c.and_then(|c| c.reason()).filter(|r| !r.is_empty());
    let stopped_reason = task.stopped_reason().unwrap_or_default();
    let failure = |reason, detail: String| {
        Some(Failure::new(Some(&hook.service), reason, format!("task {id}"), detail))
    };
    match exit {
        Some(0) => None,
        Some(n) => {
            let mut detail = format!("exit {n}");
            if let Some(r) = container_reason {
                detail = format!("{detail} ({r})");
            }
            // The container was killed for memory: say so, not just "exit 137".
            let reason = match container_reason.map(Reason::from_ecs_task) {
                Some(Reason::OutOfMemory) => Reason::OutOfMemory,
                _ => Reason::HookFailed,
            };
            failure(reason, detail)
        }
        None => {
            // It never ran (or was stopped before it exited): ECS's own words say why.
            let words = container_reason.unwrap_or(stopped_reason);
            let reason = match Reason::from_ecs_task(words) {
                r @ (Reason::ImagePull | Reason::OutOfMemory) => r,
                _ => Reason::HookFailed,
            };
            let code = task.stop_code().map(|c| c.as_str().to_owned()).unwrap_or_default();
            let detail = match (code.is_empty(), words.is_empty()) {
                (false, false) => format!("{code}: {words}"),
                (true, false) => words.to_owned(),
                (false, true) => code,
                (true, true) => "stopped without an exit code".to_owned(),
            };
            failure(reason, detail)
        }
    }
}

/// The last lines the hook container wrote (oldest first), when it logs with awslogs. A tail
/// that cannot be read is a warning, not a failure of the hook's verdict.
async fn log_tail(p: &EcsPlatform, plan: &Plan, arn: &str, events: &dyn Sink) -> Vec<String> {
    let Some(l) = &plan.logs else { return Vec::new() };
    let stream = format!("{}/{}/{}", l.prefix, plan.container, arn.rsplit('/').next().unwrap_or_default());
    let client = match &l.region {
        Some(r) if p.logs.config().region().is_none_or(|own| own.as_ref() != r) => {
            aws_sdk_cloudwatchlogs::Client::from_conf(
                p.logs
                    .config()
                    .to_builder()
                    .region(aws_sdk_cloudwatchlogs::config::Region::new(r.clone()))
                    .build(),
            )
        }
        _ => p.logs.clone(),
    };
    match client
        .get_log_events()
        .log_group_name(&l.group)
        .log_stream_name(&stream)
        .start_from_head(false)
        .limit(LOG_TAIL)
        .send()
        .await
    {
        Ok(out) => out.events().iter().filter_map(|e| e.message().map(str::to_owned)).collect(),
        Err(e) => {
            events.emit(&Event::Warning {
                message: format!(
                    "the log tail of task {} ({} {stream}) cannot be read: {}",
                    short_id(arn),
                    l.group,
                    DisplayErrorContext(&e)
                ),
            });
            Vec::new()
        }
    }
}

/// Stops what [`run`] started (see [`crate::platform::Platform::stop_hook`]): every task of
/// `release` in the hook's group that has not stopped.
pub async fn stop(platform: &EcsPlatform, release: &Release, hook: &Hook) -> Result<(), PlatformError> {
    let p = platform;
    // startedBy must be ListTasks' only filter (API reference); the default desiredStatus,
    // RUNNING, lists exactly the tasks not yet asked to stop.
    let arns = p.task_arns(TaskFilter::StartedBy(&started_by(release))).await?;
    let group = group(hook);
    for t in &p.describe_tasks(&arns).await? {
        if t.group() != Some(group.as_str()) || t.last_status() == Some("STOPPED") {
            continue;
        }
        let arn = t.task_arn().unwrap_or_default();
        stop_task(p, arn, &format!("deployer: {} stopped (release {} cancelled)", hook.title(), release.id))
            .await?;
    }
    Ok(())
}

/// The task id users see (the last part of its ARN, first 8 characters as the console shows).
fn short_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or_default().chars().take(8).collect()
}

/// The phase a hook's progress belongs to: every stage runs in the engine's hooks phase.
const fn phase_of(_stage: HookStage) -> Phase {
    Phase::Hooks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Hook {
        Hook {
            service: "order".into(),
            name: "migrate".into(),
            stage: HookStage::PreDeploy,
            command: vec!["./migrate".into()],
            timeout: Duration::from_mins(10),
        }
    }

    #[test]
    fn started_by_is_in_the_characters_ecs_accepts() {
        let r = Release::pending("shop", "prod", 17);
        assert_eq!(started_by(&r), "deployer/prod_17");
        let mut long = r.clone();
        long.id = "x".repeat(300);
        assert_eq!(started_by(&long).len(), STARTED_BY_MAX);
        assert_eq!(group(&hook()), "deployer-hook:order-migrate");
    }

    fn task(exit: Option<i32>, reason: Option<&str>, stop_code: &str, stopped: &str) -> Task {
        Task::builder()
            .task_arn("arn:aws:ecs:eu-west-1:1:task/shop-dev/5c3b0123456789abcdef0123456789ab")
            .last_status("STOPPED")
            .stop_code(aws_sdk_ecs::types::TaskStopCode::from(stop_code))
            .stopped_reason(stopped)
            .containers(
                aws_sdk_ecs::types::Container::builder()
                    .name("order")
                    .set_exit_code(exit)
                    .set_reason(reason.map(str::to_owned))
                    .build(),
            )
            .build()
    }

    #[test]
    fn the_hook_runs_in_the_container_of_the_pinned_image() {
        let image = "r/shop/order@sha256:aa";
        let doc = serde_json::json!({"containerDefinitions": [
            {"name": "log-router", "image": "fluent-bit:3", "essential": true},
            {"name": "order", "image": image, "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/shop-dev", "awslogs-stream-prefix": "order"}}}
        ]});
        let (name, logs) = hook_container(&doc, image).unwrap();
        assert_eq!(name, "order");
        let logs = logs.unwrap();
        assert_eq!(
            (logs.group.as_str(), logs.prefix.as_str(), logs.region),
            ("/ecs/shop-dev", "order", None)
        );
        // Another image (a carried-over service): the first essential container, no awslogs.
        let (name, logs) = hook_container(&doc, "r/shop/order@sha256:bb").unwrap();
        assert_eq!(name, "log-router");
        assert!(logs.is_none());
        assert!(hook_container(&serde_json::json!({}), image).is_none());
    }

    #[test]
    fn the_exit_code_decides_then_ecs_words() {
        let ok = task(Some(0), None, "EssentialContainerExited", "Essential container in task exited");
        assert_eq!(verdict(&hook(), "order", &ok), None);
        let f = verdict(&hook(), "order", &task(Some(3), None, "EssentialContainerExited", "x")).unwrap();
        assert_eq!(
            (f.reason, f.subject.as_str(), f.detail.as_str()),
            (Reason::HookFailed, "task 5c3b0123", "exit 3")
        );
        let oom = task(
            Some(137),
            Some("OutOfMemoryError: Container killed due to memory usage"),
            "EssentialContainerExited",
            "x",
        );
        assert_eq!(verdict(&hook(), "order", &oom).unwrap().reason, Reason::OutOfMemory);
        let pull = "CannotPullContainerError: pull image manifest has been retried 5 time(s)";
        let f = verdict(&hook(), "order", &task(None, Some(pull), "TaskFailedToStart", pull)).unwrap();
        assert_eq!(f.reason, Reason::ImagePull);
        assert!(f.detail.starts_with("TaskFailedToStart: CannotPullContainerError"), "{}", f.detail);
        let logs = "ResourceInitializationError: failed to validate logger args";
        let f = verdict(&hook(), "order", &task(None, None, "TaskFailedToStart", logs)).unwrap();
        assert_eq!(f.reason, Reason::HookFailed);
        assert_eq!(f.detail, format!("TaskFailedToStart: {logs}"));
    }
}
