#!/usr/bin/env python3
"""moto server plus an in-process controller that makes moto's ECS roll out like real ECS.

Why this exists: moto 5.2 accepts ECS services but never runs them. A service gets one
PRIMARY deployment that stays IN_PROGRESS forever, update_service creates no deployment,
the deployment configuration (circuit breaker, alarms, BLUE_GREEN, bake time) is ignored,
no task is ever started, events stay empty and list_tasks ignores serviceName. deployer
follows ECS deployments by id, detects failures and rolls back, so its tests need an ECS
that actually moves. This module runs moto in-process (ThreadedMotoServer) and mutates
its backends from a controller thread, following the behaviour contract of
/work/shared/TESTBED.md and the ECS section of /work/shared/CONTRACTS.md.

Usage:
    python tests/fakes/moto_ecs.py --port 0 [--time-scale 1.0] [--host 127.0.0.1]

It prints exactly one line, ``LISTENING <port>``, on stdout once the server accepts
requests, logs to stderr and exits 0 on SIGTERM/SIGINT. Every other AWS service (STS,
ECR, ELBv2, CloudWatch, EKS, ...) is plain moto on the same port.

Behaviour per task-definition image (a marker anywhere in any container's image):
    (none)     RUNNING and HEALTHY within ~1 s; the deployment completes.
    crashloop  RUNNING, then STOPPED (EssentialContainerExited, exit code 1); failedTasks
               grows; the circuit breaker fails the deployment and may roll back.
    imagepull  STOPPED (TaskFailedToStart, "CannotPullContainerError: ...").
    notready   RUNNING but UNHEALTHY forever; ALB targets unhealthy.
    slowstart  HEALTHY (and ALB target healthy) only 20 s after RUNNING.
All delays are multiplied by --time-scale.

RunTask tasks (release hooks) run once: the essential container's `sh -c` command override is
read minimally (echo → its awslogs stream in moto's CloudWatch Logs, sleep, exit N), then the
task is STOPPED (EssentialContainerExited, the exit code); StopTask stops it (UserInitiated,
exit 143). See README-moto-ecs.md.

Locking: moto's werkzeug server handles requests on several threads and the controller
mutates the same objects. One re-entrant lock serialises every ECS and ELBv2 request
(including response serialisation) with the controller's ticks, so a client never sees
a half-applied step. DynamoDB requests are serialised by a lock of their own, so that
conditional writes are atomic as on AWS (the deploy lock relies on it).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import string
import sys
import threading
import time
import types
import uuid
from typing import Any

log = logging.getLogger("moto_ecs")

LOCK = threading.RLock()
DYNAMODB_LOCK = threading.Lock()

# Markers in image references, in precedence order when several containers disagree:
# a task whose image cannot be pulled never gets far enough to crash, and so on.
MARKERS = ("imagepull", "crashloop", "notready", "slowstart")

LIVE = "RUNNING"  # desiredStatus of a task the scheduler still wants


class Timing:
    """All controller delays in seconds, already multiplied by --time-scale."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.tick = max(0.1 * scale, 0.02)
        self.provision = 0.25 * scale  # PROVISIONING -> PENDING
        self.start = 0.6 * scale  # PENDING -> RUNNING (measured from launch)
        self.healthy = 0.35 * scale  # RUNNING -> HEALTHY (so ~1 s from launch)
        self.crash = 1.5 * scale  # crashloop: time RUNNING before the container exits
        self.pull_fail = 1.5 * scale  # imagepull: launch -> STOPPED
        self.slowstart = 20.0 * scale  # slowstart: RUNNING -> HEALTHY
        self.relaunch = 0.5 * scale  # scheduler back-off before replacing a failed task
        self.drain = 0.6 * scale  # DEACTIVATING (ALB deregistration delay) -> STOPPED
        self.target_initial = 0.3 * scale  # ALB "initial" health checks for a new target
        self.stopped_retention = 3600.0 * scale  # real ECS shows stopped tasks ~1 h
        # A FAILED deployment stays in deployments[] at least this long (real rollbacks
        # take minutes; compressed timings would otherwise hide it from pollers).
        self.failed_linger = 5.0 * scale
        self.minute = 60.0 * scale  # bakeTimeInMinutes unit


T = Timing(1.0)


def utcnow():
    # moto keeps naive UTC datetimes internally; use the same so timestamps compare.
    from moto.core.utils import utcnow as moto_utcnow

    return moto_utcnow()


def new_deployment_id() -> str:
    # Real ids are "ecs-svc/" followed by 19 decimal digits.
    return f"ecs-svc/{random.randint(10**18, 10**19 - 1)}"


def short_token(n: int = 21) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(random.choice(alphabet) for _ in range(n))


def behaviour_of(task_definition: Any) -> str:
    images = [str(c.get("image") or "") for c in task_definition.container_definitions]
    for marker in MARKERS:
        if any(marker in image for image in images):
            return marker
    return "healthy"


def cb_threshold(cb: dict[str, Any], desired: int) -> int:
    """Circuit-breaker failure threshold (CONTRACTS.md section 6).

    BOUNDED_PERCENT (default, value 50): value% of desired, clamped to [3, 200];
    UNBOUNDED_PERCENT: no clamp; COUNT: the value itself. Fractions round up.
    """
    tc = cb.get("thresholdConfiguration") or {}
    kind = tc.get("type") or "BOUNDED_PERCENT"
    value = tc.get("value")
    if kind == "COUNT":
        return max(int(value if value is not None else 3), 1)
    pct = float(value if value is not None else 50)
    raw = math.ceil(desired * pct / 100.0)
    if kind == "UNBOUNDED_PERCENT":
        return max(raw, 1)
    return min(max(raw, 3), 200)


# --------------------------------------------------------------------------------------
# Simulated tasks
# --------------------------------------------------------------------------------------


class SimContainer:
    """A Container in describe_tasks; attribute names follow the botocore shape
    (moto's serializer maps camelCase members to snake_case attributes)."""

    def __init__(self, task_arn: str, cdef: dict[str, Any]) -> None:
        self.container_arn = (
            task_arn.replace(":task/", ":container/") + "/" + str(uuid.uuid4())
        )
        self.task_arn = task_arn
        self.name = cdef.get("name")
        self.image = cdef.get("image")
        self.last_status = "PENDING"
        self.exit_code = None
        self.reason = None
        self.health_status = "UNKNOWN"
        self.network_interfaces: list[dict[str, Any]] = []
        self.network_bindings: list[dict[str, Any]] = []
        self.cpu = str(cdef.get("cpu", 0))
        self.memory = str(cdef["memory"]) if cdef.get("memory") else None
        self.runtime_id = None
        self.essential = cdef.get("essential", True)


def _task_class():
    """Subclass moto's Task so describe_tasks/list_tasks treat our tasks as native.

    moto's Task is a ManagedState that advances RUNNING -> ... -> STOPPED on every
    describe; the controller owns the lifecycle, so the state is a plain attribute here.
    """
    from moto.ecs.models import Task

    class ControllerTask(Task):
        # moto's model metaclass derives the service name from the module path.
        __module__ = "moto.ecs.controller"

        @property
        def status(self):  # type: ignore[override]
            return self._status

        @status.setter
        def status(self, value):  # type: ignore[override]
            self._status = value

        def advance(self) -> None:  # describe_tasks calls this; we drive time ourselves
            pass

    return ControllerTask


class SimTask:
    """Controller-side state of one task; `task` is the moto object clients see."""

    def __init__(self, ctl: "ServiceCtl", dep: "Dep", now: float) -> None:
        self.ctl = ctl
        self.dep = dep
        self.behaviour = dep.behaviour
        svc = ctl.service
        backend = ctl.backend
        cluster = backend.clusters[svc.cluster_name]
        td = dep.td_obj
        # A stand-in task definition keeps moto's Task constructor from creating an ENI
        # itself (it would require a valid subnet); we attach one below, or fake it.
        shim = types.SimpleNamespace(
            arn=td.arn, network_mode="bridge", container_definitions=td.container_definitions
        )
        cls = ctl.controller.task_cls
        task = cls(
            cluster=cluster,
            task_definition=shim,
            container_instance_arn=None,
            resource_requirements=None,
            backend=backend,
            group=f"service:{svc.name}",
            launch_type=svc.launch_type or "",
            started_by=dep.id,
            tags=[],
            platform_version=dep.d.get("platformVersion"),
        )
        # Real task ids are 32 hex characters; moto uses a dashed uuid.
        task.id = uuid.uuid4().hex
        task.last_status = "PROVISIONING"
        task.desired_status = LIVE
        task.health_status = "UNKNOWN"
        task.stop_code = None
        task.stopped_reason = None
        task.created_at = utcnow()
        task.started_at = None
        task.stopping_at = None
        task.stopped_at = None
        task.execution_stopped_at = None
        task.pull_started_at = None
        task.pull_stopped_at = None
        task.connectivity = "CONNECTED"
        task.connectivity_at = task.created_at
        task.cpu = td.cpu
        task.memory = td.memory
        task.version = 1
        task.enable_execute_command = bool(getattr(svc, "enable_execute_command", False))
        task.platform_family = dep.d.get("platformFamily")
        task.availability_zone = f"{svc.region_name}a"
        task.containers = [SimContainer(task.task_arn, c) for c in td.container_definitions]
        task.attachments = []
        self.task = task
        self.ip = ""
        self.eni_id = None
        self._attach_network(td)
        if task.attachments:
            for c in task.containers:
                c.network_interfaces = [
                    {"attachmentId": task.attachments[0]["id"], "privateIpv4Address": self.ip}
                ]
        self.phase = "PROVISIONING"
        self.t_launch = now
        self.t_running: float | None = None
        self.t_stop_due: float | None = None
        self.t_stopped: float | None = None
        self.healthy = False
        self.failed = False
        self.registered: dict[str, int] = {}  # target group arn -> port
        self.t_registered: dict[str, float] = {}
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task

    # -- networking --------------------------------------------------------------------
    def _attach_network(self, td: Any) -> None:
        """Give the task an ENI like Fargate/awsvpc does; its IP is what the ALB sees.

        With awsvpc and a valid service networkConfiguration, a real moto ENI is created
        in the subnet's CIDR. Otherwise (bridge mode, no subnets) the IP is synthetic
        so that ALB registration still has something to register.
        """
        from moto.ec2 import ec2_backends
        from moto.ec2.utils import random_private_ip

        svc = self.ctl.service
        net = (getattr(svc, "network_configuration", None) or {}).get("awsvpcConfiguration") or {}
        subnets = net.get("subnets") or []
        used = self.ctl.controller.used_ips
        detail_subnet = None
        if td.network_mode == "awsvpc" and subnets:
            try:
                ec2 = ec2_backends[self.ctl.backend.account_id][svc.region_name]
                subnet_id = subnets[len(self.ctl.all_tasks()) % len(subnets)]
                subnet = ec2.get_subnet(subnet_id)
                ip = ""
                for _ in range(50):
                    ip = random_private_ip(subnet.cidr_block)
                    if ip not in used and not ip.endswith((".0", ".1", ".2", ".3", ".255")):
                        break
                eni = ec2.create_network_interface(
                    subnet=subnet_id,
                    private_ip_address=ip,
                    group_ids=net.get("securityGroups") or [],
                    description=f"arn:aws:ecs:{svc.region_name}:attachment/{uuid.uuid4()}",
                )
                eni.status = "in-use"
                self.eni_id = eni.id
                self.ip = eni.private_ip_address
                # moto's ENI has no private_dns_name; build the EC2-style name.
                dns = f"ip-{self.ip.replace('.', '-')}.{svc.region_name}.compute.internal"
                self.task.availability_zone = subnet.availability_zone
                self.task.attachments.append(
                    {
                        "id": str(uuid.uuid4()),
                        "type": "ElasticNetworkInterface",
                        "status": "PRECREATED",
                        "details": [
                            {"name": "subnetId", "value": subnet_id},
                            {"name": "networkInterfaceId", "value": eni.id},
                            {"name": "macAddress", "value": eni.mac_address},
                            {"name": "privateDnsName", "value": dns},
                            {"name": "privateIPv4Address", "value": eni.private_ip_address},
                        ],
                    }
                )
            except Exception as exc:  # invalid subnet etc.: fall back to a synthetic IP
                log.warning("ENI creation failed (%s); using a synthetic IP", exc)
                self._release_network()
                self.ip = ""
                self.task.attachments = []
                detail_subnet = subnets[0]
        if not self.ip:
            while True:
                ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(4, 254)}"
                if ip not in used:
                    break
            self.ip = ip
            if td.network_mode == "awsvpc":
                details = [{"name": "privateIPv4Address", "value": ip}]
                if detail_subnet:
                    details.insert(0, {"name": "subnetId", "value": detail_subnet})
                self.task.attachments.append(
                    {"id": str(uuid.uuid4()), "type": "ElasticNetworkInterface",
                     "status": "PRECREATED", "details": details}
                )
        used.add(self.ip)

    def forget(self) -> None:
        """Drop a long-stopped task from moto (backend and moto's instance tracker)."""
        task = self.task
        self.ctl.backend.tasks.get(self.ctl.service.cluster_name, {}).pop(task.task_arn, None)
        try:
            type(task).instances_tracked.remove(task)
        except (AttributeError, ValueError):
            pass

    def _release_network(self) -> None:
        from moto.ec2 import ec2_backends

        self.ctl.controller.used_ips.discard(self.ip)
        for a in self.task.attachments:
            a["status"] = "DELETED"
        if self.eni_id:
            try:
                ec2 = ec2_backends[self.ctl.backend.account_id][self.ctl.service.region_name]
                ec2.delete_network_interface(self.eni_id)
            except Exception:  # already gone (e.g. moto reset): nothing to clean
                pass
            self.eni_id = None

    # -- state -------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.task.desired_status == LIVE

    @property
    def running(self) -> bool:
        return self.phase == "RUNNING"

    @property
    def pending(self) -> bool:
        return self.phase in ("PROVISIONING", "PENDING")

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.task.last_status = phase
        self.task.version += 1

    def advance(self, now: float) -> str | None:
        """Move the task along its lifecycle; returns "failed" when it just failed,
        "healthy" when it just became healthy, else None."""
        task = self.task
        if self.phase == "PROVISIONING" and now >= self.t_launch + T.provision:
            self._set_phase("PENDING")
            task.pull_started_at = utcnow()
            for a in task.attachments:
                a["status"] = "ATTACHED"
        if self.phase == "PENDING":
            if self.behaviour == "imagepull":
                if now >= self.t_launch + T.pull_fail:
                    images = [c.image for c in task.containers]
                    ref = next((i for i in images if "imagepull" in i), images[0])
                    msg = (
                        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                        f"failed to resolve ref {ref}: {ref}: not found"
                    )
                    for c in task.containers:
                        c.last_status = "STOPPED"
                        c.reason = msg if c.image == ref else None
                    self._stop_now("TaskFailedToStart", msg, failed=True)
                    return "failed"
            elif now >= self.t_launch + T.start:
                self._set_phase("RUNNING")
                self.t_running = now
                task.pull_stopped_at = utcnow()
                task.started_at = utcnow()
                for c in task.containers:
                    c.last_status = "RUNNING"
                    c.runtime_id = f"{task.id}-{random.randint(10**9, 10**10 - 1)}"
                    c.health_status = "UNKNOWN"
        if self.phase == "RUNNING":
            assert self.t_running is not None
            if self.behaviour == "crashloop" and now >= self.t_running + T.crash:
                crashed = next((c for c in task.containers if "crashloop" in (c.image or "")),
                               task.containers[0])
                for c in task.containers:
                    c.last_status = "STOPPED"
                    c.exit_code = 1 if c is crashed else 0
                    c.reason = None
                self._stop_now("EssentialContainerExited", "Essential container in task exited",
                               failed=True)
                return "failed"
            if not self.healthy:
                if self.behaviour == "healthy" and now >= self.t_running + T.healthy:
                    return self._become_healthy()
                if self.behaviour == "slowstart" and now >= self.t_running + T.slowstart:
                    return self._become_healthy()
                if self.behaviour == "notready" and now >= self.t_running + T.healthy:
                    if task.health_status != "UNHEALTHY":
                        task.health_status = "UNHEALTHY"
                        for c in task.containers:
                            c.health_status = "UNHEALTHY"
                        task.version += 1
        if self.phase in ("DEACTIVATING", "STOPPING") and self.t_stop_due is not None:
            if now >= self.t_stop_due:
                for c in task.containers:
                    c.last_status = "STOPPED"
                    if c.exit_code is None:
                        c.exit_code = 0  # stopped by SIGTERM and exited cleanly
                self._finish_stop(now)
        return None

    def _become_healthy(self) -> str:
        self.healthy = True
        self.task.health_status = "HEALTHY"
        for c in self.task.containers:
            c.health_status = "HEALTHY"
        self.task.version += 1
        return "healthy"

    def _stop_now(self, code: str, reason: str, failed: bool) -> None:
        task = self.task
        self.failed = failed
        task.desired_status = "STOPPED"
        task.stop_code = code
        task.stopped_reason = reason
        task.stopping_at = utcnow()
        task.execution_stopped_at = task.stopping_at
        if task.health_status == "HEALTHY":
            task.health_status = "UNKNOWN"
        self._finish_stop(time.monotonic())

    def _finish_stop(self, now: float) -> None:
        self._set_phase("STOPPED")
        self.task.stopped_at = utcnow()
        if self.task.stopping_at is None:
            self.task.stopping_at = self.task.stopped_at
        self.t_stopped = now
        self.healthy = False
        self.ctl.alb_deregister_all(self)
        self._release_network()

    def scheduler_stop(self, reason: str, now: float) -> None:
        """Scheduler-initiated stop (drain of an old deployment, scale-in, delete)."""
        task = self.task
        if not self.live:
            return
        task.desired_status = "STOPPED"
        task.stop_code = "ServiceSchedulerInitiated"
        task.stopped_reason = reason
        task.stopping_at = utcnow()
        if self.pending:
            for c in task.containers:
                c.last_status = "STOPPED"
            self._finish_stop(now)
            return
        # Running tasks first leave the load balancer (DEACTIVATING) then stop.
        self._set_phase("DEACTIVATING")
        self.healthy = False
        self.t_stop_due = now + T.drain


# --------------------------------------------------------------------------------------
# Standalone tasks (RunTask): one-off tasks such as release hooks
# --------------------------------------------------------------------------------------

# What awslogs reports when the log group is missing and `awslogs-create-group` is not set
# (the task never starts; the agent's words as ECS shows them in stoppedReason).
MISSING_LOG_GROUP = (
    "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 "
    "times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log "
    "group does not exist. : exit status 1"
)


def parse_script(command: list[str] | None) -> list[tuple[str, Any]] | None:
    """The steps of a command override: `sh -c SCRIPT` (or /bin/sh, bash) is read line by line
    (and by `;`/`&&`): `echo TEXT` → ("echo", TEXT), `sleep N` → ("sleep", N), `exit N` →
    ("exit", N); anything else is a no-op. Another command is one short step that exits 0.
    None: no override (the image's own command, which serves until stopped)."""
    if not command:
        return None
    shells = ("sh", "/bin/sh", "bash", "/bin/bash")
    if len(command) >= 3 and command[0] in shells and command[1] == "-c":
        steps: list[tuple[str, Any]] = []
        for raw in command[2].replace("&&", "\n").replace(";", "\n").splitlines():
            words = raw.strip().split(None, 1)
            if not words:
                continue
            verb, rest = words[0], (words[1] if len(words) > 1 else "")
            if verb == "echo":
                steps.append(("echo", rest.strip().strip("'\"")))
            elif verb == "sleep":
                steps.append(("sleep", float(rest or 0)))
            elif verb == "exit":
                steps.append(("exit", int(rest or 0)))
                break
        return steps
    return [("sleep", 0.5)]


class StandaloneTask:
    """A task started by RunTask: no service, no replacement; it runs its essential
    container's command (see parse_script) once and stops, as ECS runs one-off tasks."""

    def __init__(self, backend: Any, cluster: Any, td: Any, params: dict[str, Any], now: float) -> None:
        self.backend = backend
        self.td = td
        overrides = params.get("overrides") or {}
        by_name = {o.get("name"): o for o in overrides.get("containerOverrides") or []}
        cps = params.get("capacityProviderStrategy") or []
        cls = CONTROLLER.task_cls if CONTROLLER else _task_class()
        shim = types.SimpleNamespace(arn=td.arn, network_mode="bridge",
                                     container_definitions=td.container_definitions)
        task = cls(
            cluster=cluster,
            task_definition=shim,
            container_instance_arn=None,
            resource_requirements=None,
            backend=backend,
            group=params.get("group") or f"family:{td.family}",
            launch_type=params.get("launchType") or "",
            overrides=overrides,
            started_by=params.get("startedBy") or "",
            tags=params.get("tags") or [],
            platform_version=params.get("platformVersion"),
            capacity_provider_name=cps[0]["capacityProvider"] if cps else None,
        )
        task.id = uuid.uuid4().hex
        task.last_status = "PROVISIONING"
        task.desired_status = LIVE
        task.health_status = "UNKNOWN"
        task.stop_code = None
        task.stopped_reason = None
        task.created_at = utcnow()
        for attr in ("started_at", "stopping_at", "stopped_at", "execution_stopped_at",
                     "pull_started_at", "pull_stopped_at"):
            setattr(task, attr, None)
        task.connectivity = "CONNECTED"
        task.connectivity_at = task.created_at
        task.cpu = td.cpu
        task.memory = td.memory
        task.version = 1
        task.availability_zone = f"{backend.region_name}a"
        task.containers = [SimContainer(task.task_arn, c) for c in td.container_definitions]
        task.attachments = []
        net = (params.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        if td.network_mode == "awsvpc":
            # A synthetic ENI attachment: hook tasks are not registered in target groups.
            ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(4, 254)}"
            details = [{"name": "privateIPv4Address", "value": ip}]
            if net.get("subnets"):
                details.insert(0, {"name": "subnetId", "value": net["subnets"][0]})
            task.attachments.append({"id": str(uuid.uuid4()), "type": "ElasticNetworkInterface",
                                     "status": "PRECREATED", "details": details})
        self.task = task
        # The container that runs: the essential one with a command override, else the first
        # essential one; the others idle beside it and stop with the task.
        self.main = next((c for c in task.containers if c.essential and c.name in by_name
                          and by_name[c.name].get("command")),
                         next((c for c in task.containers if c.essential), task.containers[0]))
        self.steps = parse_script((by_name.get(self.main.name) or {}).get("command"))
        cdef = next(c for c in td.container_definitions if c.get("name") == self.main.name)
        self.log_config = cdef.get("logConfiguration") or {}
        self.behaviour = behaviour_of(td)
        self.phase = "PROVISIONING"
        self.t_launch = now
        self.t_running = now
        self.t_next: float | None = None  # when the current step (a sleep) ends
        self.t_stop_due: float | None = None
        self.t_stopped: float | None = None
        self.step_index = 0
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task

    # -- awslogs -----------------------------------------------------------------------
    def _log_group(self) -> Any:
        """The task's CloudWatch Logs group, or None (no awslogs). Raises LookupError when
        the group does not exist and awslogs may not create it."""
        if self.log_config.get("logDriver") != "awslogs":
            return None
        from moto.logs.models import logs_backends

        opts = self.log_config.get("options") or {}
        region = opts.get("awslogs-region") or self.backend.region_name
        logs = logs_backends[self.backend.account_id][region]
        name = opts.get("awslogs-group") or ""
        if name not in logs.groups:
            if str(opts.get("awslogs-create-group", "")).lower() != "true":
                raise LookupError(name)
            logs.create_log_group(name, {})
        return logs.groups[name]

    def _stream(self) -> str:
        # The documented awslogs naming: <awslogs-stream-prefix>/<container name>/<task id>.
        prefix = (self.log_config.get("options") or {}).get("awslogs-stream-prefix")
        return f"{prefix}/{self.main.name}/{self.task.id}" if prefix else self.task.id

    def _log(self, line: str) -> None:
        group = self._log_group()
        if group is None:
            return
        stream = self._stream()
        if stream not in group.streams:
            group.create_log_stream(stream)
        group.put_log_events(stream, [{"timestamp": int(time.time() * 1000), "message": line}])

    # -- lifecycle -----------------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.task.last_status = phase
        self.task.version += 1

    def _stopped(self, code: str, reason: str, now: float) -> None:
        task = self.task
        task.desired_status = "STOPPED"
        task.stop_code = code
        task.stopped_reason = reason
        if task.stopping_at is None:
            task.stopping_at = utcnow()
        task.execution_stopped_at = utcnow()
        for c in task.containers:
            c.last_status = "STOPPED"
        self._set_phase("STOPPED")
        task.stopped_at = utcnow()
        self.t_stopped = now
        for a in task.attachments:
            a["status"] = "DELETED"

    def _exit(self, code: int, now: float) -> None:
        for c in self.task.containers:
            if c.exit_code is None and c.last_status == "RUNNING":
                # The main container's own code; the others get SIGTERM when the task stops.
                c.exit_code = code if c is self.main else 143
        self._stopped("EssentialContainerExited", "Essential container in task exited", now)

    def user_stop(self, reason: str | None, now: float) -> None:
        """StopTask: SIGTERM to the containers (they exit 143); STOPPED shortly after."""
        task = self.task
        if task.desired_status == "STOPPED":
            return
        task.desired_status = "STOPPED"
        task.stop_code = "UserInitiated"
        task.stopped_reason = reason or "Task stopped by user"
        task.stopping_at = utcnow()
        if self.phase in ("PROVISIONING", "PENDING"):
            self._stopped("UserInitiated", task.stopped_reason, now)
            return
        self._set_phase("DEACTIVATING")
        self.t_stop_due = now + T.drain

    def advance(self, now: float) -> None:
        task = self.task
        if self.phase == "STOPPED":
            return
        if self.phase == "DEACTIVATING":
            if self.t_stop_due is not None and now >= self.t_stop_due:
                for c in task.containers:
                    if c.exit_code is None and c.last_status == "RUNNING":
                        c.exit_code = 143  # SIGTERM
                self._stopped("UserInitiated", task.stopped_reason, now)
            return
        if self.phase == "PROVISIONING" and now >= self.t_launch + T.provision:
            self._set_phase("PENDING")
            task.pull_started_at = utcnow()
            for a in task.attachments:
                a["status"] = "ATTACHED"
        if self.phase == "PENDING":
            if self.behaviour == "imagepull":
                if now >= self.t_launch + T.pull_fail:
                    ref = next((c.image for c in task.containers if "imagepull" in (c.image or "")),
                               task.containers[0].image)
                    msg = (
                        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                        f"failed to resolve ref {ref}: {ref}: not found"
                    )
                    for c in task.containers:
                        c.reason = msg if c.image == ref else None
                    self._stopped("TaskFailedToStart", msg, now)
                return
            if now < self.t_launch + T.start:
                return
            try:
                self._log_group()
            except LookupError:
                self._stopped("TaskFailedToStart", MISSING_LOG_GROUP, now)
                return
            self._set_phase("RUNNING")
            task.pull_stopped_at = utcnow()
            task.started_at = utcnow()
            for c in task.containers:
                c.last_status = "RUNNING"
                c.runtime_id = f"{task.id}-{random.randint(10**9, 10**10 - 1)}"
            self.t_running = now
            self.t_next = now
        if self.phase != "RUNNING":
            return
        if self.behaviour == "crashloop":
            if now >= self.t_running + T.crash:
                self._exit(1, now)
            return
        if self.steps is None:
            return  # the image's own command: it serves until stopped
        while self.t_next is not None and now >= self.t_next:
            if self.step_index >= len(self.steps):
                self._exit(0, now)
                return
            verb, arg = self.steps[self.step_index]
            self.step_index += 1
            if verb == "echo":
                self._log(str(arg))
            elif verb == "sleep":
                self.t_next += float(arg) * T.scale
            elif verb == "exit":
                self._exit(int(arg), now)
                return

    def forget(self) -> None:
        self.backend.tasks.get(self.task.cluster_name, {}).pop(self.task.task_arn, None)
        try:
            type(self.task).instances_tracked.remove(self.task)
        except (AttributeError, ValueError):
            pass


# --------------------------------------------------------------------------------------
# Deployments and service deployments
# --------------------------------------------------------------------------------------


class Dep:
    """One entry of describe_services' deployments[]; `d` is the dict moto serialises."""

    def __init__(self, ctl: "ServiceCtl", td_obj: Any, rollback_of: "Dep | None") -> None:
        svc = ctl.service
        now = utcnow()
        self.ctl = ctl
        self.id = new_deployment_id()
        self.td_obj = td_obj
        self.behaviour = behaviour_of(td_obj)
        self.tasks: list[SimTask] = []
        self.failed = 0
        self.state = "IN_PROGRESS"
        self.rollback_of = rollback_of
        self.next_launch_at = 0.0
        self.bake_until: float | None = None
        self.failed_at: float | None = None  # monotonic time of rolloutState FAILED
        self.unstable_event_sent = False
        self.targets: dict[int, str] = {}  # loadBalancers index -> target group for this dep
        launch_type = svc.launch_type
        self.d: dict[str, Any] = {
            "id": self.id,
            "status": "PRIMARY",
            "taskDefinition": td_obj.arn,
            "desiredCount": svc.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "launchType": launch_type,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {self.id} in progress.",
        }
        if launch_type == "FARGATE":
            self.d["platformVersion"] = svc.platform_version or "LATEST"
            self.d["platformFamily"] = "Linux"
        if getattr(svc, "capacity_provider_strategy", None):
            self.d["capacityProviderStrategy"] = svc.capacity_provider_strategy
        if getattr(svc, "network_configuration", None):
            self.d["networkConfiguration"] = svc.network_configuration
        self.rollback_target_id: str | None = None
        # Service revision: the ecs-svc number doubles as the revision id.
        rev_id = self.id.split("/")[-1]
        self.revision_arn = (
            f"arn:aws:ecs:{svc.region_name}:{ctl.backend.account_id}:service-revision/"
            f"{svc.cluster_name}/{svc.name}/{rev_id}"
        )
        self.revision_created = now
        self.sd: SvcDeployment | None = None

    def set(self, key: str, value: Any) -> None:
        if self.d.get(key) != value:
            self.d[key] = value
            self.d["updatedAt"] = utcnow()

    def live_tasks(self) -> list[SimTask]:
        return [t for t in self.tasks if t.live]


class SvcDeployment:
    """A ListServiceDeployments/DescribeServiceDeployments record (CONTRACTS.md §6)."""

    def __init__(self, ctl: "ServiceCtl", dep: Dep, sources: list[Dep]) -> None:
        svc = ctl.service
        now = utcnow()
        self.ctl = ctl
        self.dep = dep  # the deployment being rolled out
        self.rollback_dep: Dep | None = None
        self.arn = (
            f"arn:aws:ecs:{svc.region_name}:{ctl.backend.account_id}:service-deployment/"
            f"{svc.cluster_name}/{svc.name}/{short_token()}"
        )
        self.sources = [(s.revision_arn, s) for s in sources]
        self.created_at = now
        self.started_at = now
        self.updated_at = now
        self.finished_at = None
        self.stopped_at = None
        self.status = "IN_PROGRESS"
        self.status_reason: str | None = None
        self.lifecycle_stage = "SCALE_UP"
        self.rollback: dict[str, Any] | None = None
        cfg = ctl.deployment_configuration()
        self.deployment_configuration = cfg
        cb = cfg.get("deploymentCircuitBreaker") or {}
        self.cb_status = "MONITORING" if cb.get("enable") else "DISABLED"
        alarms = cfg.get("alarms") or {}
        self.alarm_status = "MONITORING" if alarms.get("enable") else "DISABLED"
        self.alarm_names = list(alarms.get("alarmNames") or [])
        self.triggered_alarms: list[str] = []

    def touch(self) -> None:
        self.updated_at = utcnow()

    def finish(self, status: str, reason: str | None = None, stopped: bool = False) -> None:
        self.status = status
        if reason:
            self.status_reason = reason
        now = utcnow()
        if stopped:
            self.stopped_at = now
        else:
            self.finished_at = now
        self.lifecycle_stage = None
        if self.cb_status == "MONITORING":
            self.cb_status = "MONITORING_COMPLETE"
        if self.alarm_status == "MONITORING":
            self.alarm_status = "MONITORING_COMPLETE"
        self.touch()

    @property
    def in_progress(self) -> bool:
        return self.status in ("PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")

    def _rev_summary(self, arn: str, dep: Dep) -> dict[str, Any]:
        return {
            "arn": arn,
            "requestedTaskCount": dep.d["desiredCount"],
            "runningTaskCount": dep.d["runningCount"],
            "pendingTaskCount": dep.d["pendingCount"],
        }

    def brief(self) -> dict[str, Any]:
        svc = self.ctl.service
        out = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": svc.arn,
            "clusterArn": svc.cluster_arn,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "targetServiceRevisionArn": self.dep.revision_arn,
            "status": self.status,
        }
        if self.finished_at:
            out["finishedAt"] = self.finished_at
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out

    def full(self) -> dict[str, Any]:
        out = self.brief()
        out.pop("targetServiceRevisionArn")
        out["updatedAt"] = self.updated_at
        if self.stopped_at:
            out["stoppedAt"] = self.stopped_at
        out["sourceServiceRevisions"] = [self._rev_summary(a, d) for a, d in self.sources]
        out["targetServiceRevision"] = self._rev_summary(self.dep.revision_arn, self.dep)
        if self.lifecycle_stage:
            out["lifecycleStage"] = self.lifecycle_stage
        out["deploymentConfiguration"] = self.deployment_configuration
        if self.rollback:
            out["rollback"] = self.rollback
        cb = self.deployment_configuration.get("deploymentCircuitBreaker") or {}
        out["deploymentCircuitBreaker"] = {
            "status": self.cb_status,
            "failureCount": self.dep.failed,
            "threshold": cb_threshold(cb, self.dep.d["desiredCount"]),
        }
        out["alarms"] = {"status": self.alarm_status, "alarmNames": self.alarm_names,
                         "triggeredAlarmNames": self.triggered_alarms}
        return out


DEFAULT_DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def with_defaults(cfg: dict[str, Any] | None) -> dict[str, Any]:
    # describe_services on real ECS always shows the effective configuration.
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_DEPLOYMENT_CONFIGURATION.items()}
    for k, v in (cfg or {}).items():
        if v is not None:
            out[k] = v
    out.setdefault("strategy", "ROLLING")
    return out


# --------------------------------------------------------------------------------------
# Per-service controller
# --------------------------------------------------------------------------------------


class ServiceCtl:
    """Drives one moto Service: deployments, tasks, counts, events, ALB targets."""

    def __init__(self, controller: "Controller", backend: Any, service: Any) -> None:
        self.controller = controller
        self.backend = backend
        self.service = service
        self.deps: list[Dep] = []
        self.history: list[SvcDeployment] = []
        self.revisions: dict[str, Dep] = {}
        self.last_completed: Dep | None = None
        self.spec: tuple | None = None
        self.steady = False
        self.done = False  # service deleted and fully drained
        self.orphans: list[SimTask] = []  # tasks of deployments already removed
        if not getattr(service, "deployment_configuration", None):
            service.deployment_configuration = with_defaults(None)
        if not getattr(service, "created_at", None):
            service.created_at = utcnow()
        service.events = list(getattr(service, "events", None) or [])
        service._ctl = self

    # -- helpers -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.service.name

    def deployment_configuration(self) -> dict[str, Any]:
        return self.service.deployment_configuration or with_defaults(None)

    def strategy(self) -> str:
        return (self.deployment_configuration().get("strategy") or "ROLLING").upper()

    def all_tasks(self) -> list[SimTask]:
        return [t for d in self.deps for t in d.tasks] + self.orphans

    def event(self, message: str) -> None:
        # Newest first, at most 100, like real ECS.
        self.service.events.insert(
            0, {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message}
        )
        del self.service.events[100:]
        log.info("event: %s", message)

    def current_spec(self) -> tuple:
        svc = self.service
        return (
            svc.task_definition,
            repr(getattr(svc, "network_configuration", None) or {}),
            repr(svc.load_balancers or []),
            svc.launch_type,
            svc.platform_version,
            repr(getattr(svc, "capacity_provider_strategy", None) or []),
        )

    def managed(self) -> bool:
        ctrl = (self.service.deployment_controller or {}).get("type", "ECS")
        return ctrl == "ECS" and bool(self.service.task_definition)

    def resolve_td(self, ref: str) -> Any:
        return self.backend.describe_task_definition(ref)

    # -- deployments -------------------------------------------------------------------
    def sync_spec(self, force: bool = False) -> Dep | None:
        """Start a deployment when what ECS deploys changed (or on forceNewDeployment).

        A desiredCount-only update does not start a deployment on real ECS: the PRIMARY
        deployment's desiredCount follows the service instead.
        """
        if not self.managed():
            return None
        spec = self.current_spec()
        if not force and spec == self.spec and self.deps:
            return None
        self.spec = spec
        td = self.resolve_td(self.service.task_definition)
        return self.start_deployment(td)

    def start_deployment(self, td: Any, rollback_of: Dep | None = None) -> Dep:
        old = list(self.deps)
        dep = Dep(self, td, rollback_of)
        if rollback_of is not None and self.last_completed is not None:
            dep.rollback_target_id = self.last_completed.id
            dep.d["rolloutStateReason"] = (
                "ECS deployment circuit breaker: rolling back to deploymentId "
                f"{self.last_completed.id}."
            )
            # The rollback re-deploys the last good revision.
            dep.revision_arn = self.last_completed.revision_arn
        for prev in old:
            prev.d["status"] = "ACTIVE"
            prev.d["updatedAt"] = utcnow()
            if prev.sd is not None and prev.sd.in_progress and rollback_of is None:
                prev.sd.finish("STOPPED", "Service deployment stopped: a new service deployment started.",
                               stopped=True)
        if rollback_of is not None and rollback_of.sd is not None:
            dep.sd = rollback_of.sd
            dep.sd.rollback_dep = dep
        else:
            dep.sd = SvcDeployment(self, dep, old)
            self.history.append(dep.sd)
        self.revisions.setdefault(dep.revision_arn, dep)
        # BLUE_GREEN with an alternate target group: green tasks go to the group that
        # does not currently serve production traffic.
        for i, lb in enumerate(self.service.load_balancers or []):
            tg = lb.get("targetGroupArn")
            alt = (lb.get("advancedConfiguration") or {}).get("alternateTargetGroupArn")
            live = self.controller.live_tg.get((id(self.service), i), tg)
            if self.strategy() == "BLUE_GREEN" and alt and old:
                dep.targets[i] = alt if live == tg else tg
            else:
                dep.targets[i] = live or tg
        self.deps.insert(0, dep)
        self.publish()
        self.steady = False
        log.info("service %s: new deployment %s (%s) td=%s", self.name, dep.id,
                 "rollback" if rollback_of else "update", td.arn)
        return dep

    def fail(self, dep: Dep, reason: str, event: str, rollback: bool, cause: str) -> None:
        dep.state = "FAILED"
        dep.failed_at = time.monotonic()
        dep.set("rolloutState", "FAILED")
        dep.set("rolloutStateReason", reason)
        self.event(event)
        sd = dep.sd
        target = self.last_completed
        if sd is not None:
            sd.touch()
            if cause == "circuitBreaker":
                sd.cb_status = "TRIGGERED"
            elif cause == "alarm":
                sd.alarm_status = "TRIGGERED"
        if dep.rollback_of is not None:
            # A failed rollback does not roll back again.
            if sd is not None:
                sd.finish("ROLLBACK_FAILED", reason)
            return
        if rollback and target is not None and target is not dep:
            now = time.monotonic()
            if sd is not None:
                sd.status = "ROLLBACK_IN_PROGRESS"
                sd.status_reason = reason
                sd.rollback = {
                    "reason": {"circuitBreaker": "Circuit breaker triggered a rollback.",
                               "alarm": "CloudWatch alarm triggered a rollback.",
                               "user": "Rollback requested by StopServiceDeployment."}[cause],
                    "startedAt": utcnow(),
                    "serviceRevisionArn": target.revision_arn,
                }
            self.event(f"(service {self.name}) rolling back to deployment {target.id}.")
            new = self.start_deployment(target.td_obj, rollback_of=dep)
            self.service.task_definition = target.td_obj.arn
            self.spec = self.current_spec()
            for t in dep.live_tasks():
                t.scheduler_stop(f"Scaling activity initiated by (deployment {new.id})", now)
        elif sd is not None:
            sd.finish("STOPPED", reason, stopped=True)

    def complete(self, dep: Dep) -> None:
        dep.state = "COMPLETED"
        dep.set("rolloutState", "COMPLETED")
        dep.set("rolloutStateReason", f"ECS deployment {dep.id} completed.")
        self.last_completed = dep
        sd = dep.sd
        if sd is not None:
            if dep.rollback_of is not None:
                sd.finish("ROLLBACK_SUCCESSFUL", sd.status_reason)
            elif sd.in_progress:
                sd.finish("SUCCESSFUL")
        self.event(f"(service {self.name}) (deployment {dep.id}) deployment completed.")

    # -- the step ----------------------------------------------------------------------
    def step(self, now: float) -> None:
        svc = self.service
        for dep in self.deps:
            self._advance_tasks(dep, now)
        self._advance_orphans(now)
        if svc.status != "ACTIVE":
            self._step_deleted(now)
            self.publish()
            return
        if not self.deps and not self.managed():
            return
        self.sync_spec()
        if not self.deps:
            return
        primary = self.deps[0]
        desired = int(svc.desired_count or 0)
        primary.set("desiredCount", desired)
        cfg = self.deployment_configuration()
        blue_green = self.strategy() == "BLUE_GREEN"

        # 1. Launch primary tasks (unless the deployment failed: a FAILED deployment
        #    launches nothing), within maximumPercent for rolling updates.
        live_primary = primary.live_tasks()
        total_live = sum(len(d.live_tasks()) for d in self.deps)
        if primary.state != "FAILED" and len(live_primary) < desired and now >= primary.next_launch_at:
            want = desired - len(live_primary)
            if not blue_green:
                cap = math.floor(desired * int(cfg.get("maximumPercent") or 200) / 100)
                want = min(want, max(cap - total_live, 0))
            started = [self._launch(primary, now) for _ in range(want)]
            if started:
                ids = " ".join(f"(task {t.task.id})" for t in started)
                self.event(f"(service {self.name}) has started {len(started)} tasks: {ids}.")
        elif len(live_primary) > desired:
            # Scale in: drop the least useful tasks first.
            extra = sorted(live_primary, key=lambda t: (t.healthy, t.running))[: len(live_primary) - desired]
            self._stop_batch(extra, f"Scaling activity initiated by (deployment {primary.id})", now)

        # 2. Drain older deployments while keeping minimumHealthyPercent healthy.
        old = self.deps[1:]
        if old:
            healthy_total = sum(1 for d in self.deps for t in d.live_tasks() if t.healthy)
            min_healthy = math.ceil(desired * int(cfg.get("minimumHealthyPercent") or 100) / 100)
            allowed = healthy_total - min_healthy
            if blue_green and primary.state != "FAILED":
                # Blue/green: blue keeps serving until green is healthy and the bake
                # time is over; then it is drained at once.
                healthy_primary = sum(1 for t in live_primary if t.healthy)
                if healthy_primary >= desired and primary.bake_until is None:
                    self._shift_traffic(primary)
                    # A rollback restores known-good tasks: no bake time.
                    bake = 0.0 if primary.rollback_of else float(cfg.get("bakeTimeInMinutes") or 0)
                    primary.bake_until = now + bake * T.minute
                    if primary.sd:
                        primary.sd.lifecycle_stage = "BAKE_TIME"
                        primary.sd.touch()
                allowed = 10**9 if primary.bake_until is not None and now >= primary.bake_until else 0
            victims: list[SimTask] = []
            for d in old:
                for t in d.live_tasks():
                    if not t.healthy:
                        victims.append(t)  # unhealthy/pending old tasks serve nobody
            for d in old:
                for t in d.live_tasks():
                    if t.healthy and allowed > 0:
                        victims.append(t)
                        allowed -= 1
            if victims:
                if primary.sd and primary.sd.in_progress:
                    primary.sd.lifecycle_stage = "CLEAN_UP"
                self._stop_batch(victims, f"Scaling activity initiated by (deployment {primary.id})", now)

        # 3. Circuit breaker and deployment alarms.
        if primary.state == "IN_PROGRESS":
            cb = cfg.get("deploymentCircuitBreaker") or {}
            if cb.get("enable") and primary.failed >= cb_threshold(cb, desired):
                self.fail(
                    primary,
                    "ECS deployment circuit breaker: tasks failed to start.",
                    f"(service {self.name}) (deployment {primary.id}) deployment failed: tasks failed to start.",
                    rollback=bool(cb.get("rollback")),
                    cause="circuitBreaker",
                )
                self.publish()
                return
            alarms = cfg.get("alarms") or {}
            # A rollback is not itself rolled back because of the alarm that caused it.
            if alarms.get("enable") and alarms.get("alarmNames") and primary.rollback_of is None:
                firing = self.controller.alarms_in_alarm(svc, alarms["alarmNames"])
                if firing:
                    if primary.sd:
                        primary.sd.triggered_alarms = firing
                    self.fail(
                        primary,
                        f"ECS deployment {primary.id} failed: alarm(s) {', '.join(firing)} in ALARM state.",
                        f"(service {self.name}) (deployment {primary.id}) deployment failed: "
                        f"alarm(s) detected: {', '.join(firing)}.",
                        rollback=bool(alarms.get("rollback")),
                        cause="alarm",
                    )
                    self.publish()
                    return

        # 4. Completion. Old deployments stay listed (ACTIVE, runningCount 0) until the
        #    primary reaches a steady state, and a FAILED one for at least
        #    T.failed_linger, so that a poller following it by id sees it FAILED.
        old = self.deps[1:]
        old_gone = all(t.phase == "STOPPED" for d in old for t in d.tasks) and all(
            d.failed_at is None or now - d.failed_at >= T.failed_linger for d in old
        )
        live_primary = primary.live_tasks()
        healthy_primary = sum(1 for t in live_primary if t.healthy)
        converged = (
            primary.state != "FAILED"
            and old_gone
            and healthy_primary == desired
            and len(live_primary) == desired
            and not any(t.phase == "DEACTIVATING" for t in primary.tasks)
        )
        if converged and blue_green and old and (primary.bake_until is None or now < primary.bake_until):
            converged = False
        if converged:
            for d in old:
                self.deps.remove(d)
                self.orphans.extend(d.tasks)
                if d.sd is not None and d.sd.in_progress and d.sd is not primary.sd:
                    d.sd.finish("STOPPED", "Service deployment stopped: a new service deployment started.",
                                stopped=True)
            if primary.state == "IN_PROGRESS":
                self.complete(primary)
            if not self.steady:
                self.event(f"(service {self.name}) has reached a steady state.")
        self.steady = converged
        self.publish()

    def _launch(self, dep: Dep, now: float) -> SimTask:
        t = SimTask(self, dep, now)
        dep.tasks.append(t)
        return t

    def _stop_batch(self, tasks: list[SimTask], reason: str, now: float) -> None:
        stopped = [t for t in tasks if t.live]
        for t in stopped:
            t.scheduler_stop(reason, now)
        running = [t for t in stopped if t.phase != "STOPPED"]
        if running:
            ids = " ".join(f"(task {t.task.id})" for t in running)
            self.event(f"(service {self.name}) has stopped {len(running)} running tasks: {ids}.")

    def _advance_tasks(self, dep: Dep, now: float) -> None:
        for t in dep.tasks:
            if t.phase == "STOPPED":
                continue
            outcome = t.advance(now)
            if outcome == "failed":
                dep.failed += 1
                dep.next_launch_at = now + T.relaunch
                if dep.failed >= 2 and not dep.unstable_event_sent and dep is self.deps[0]:
                    dep.unstable_event_sent = True
                    self.event(
                        f"(service {self.name}) is unable to consistently start tasks successfully. "
                        "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
                    )
            elif outcome == "healthy":
                cb = self.deployment_configuration().get("deploymentCircuitBreaker") or {}
                if cb.get("resetOnHealthyTask", True):
                    dep.failed = 0  # failedTasks counts consecutive failures
            self.alb_sync(t, dep, now)
        # Forget stopped tasks after the retention time (real ECS: about an hour).
        keep = []
        for t in dep.tasks:
            if t.phase == "STOPPED" and t.t_stopped is not None and now - t.t_stopped > T.stopped_retention:
                t.forget()
            else:
                keep.append(t)
        dep.tasks = keep

    def _advance_orphans(self, now: float) -> None:
        # Tasks of removed deployments stay describable until retention expires.
        keep = []
        for t in self.orphans:
            if t.phase != "STOPPED":
                t.advance(now)
                self.alb_sync(t, t.dep, now)
            if t.phase == "STOPPED" and t.t_stopped is not None and now - t.t_stopped > T.stopped_retention:
                t.forget()
            else:
                keep.append(t)
        self.orphans = keep

    def _step_deleted(self, now: float) -> None:
        """delete_service: stop everything, then the service goes INACTIVE."""
        live = [t for d in self.deps for t in d.live_tasks()]
        if live:
            self._stop_batch(live, "Service deletion", now)
        if all(t.phase == "STOPPED" for d in self.deps for t in d.tasks):
            self.service.status = "INACTIVE"
            for d in self.deps:
                if d.sd is not None and d.sd.in_progress:
                    d.sd.finish("STOPPED", "Service deleted.", stopped=True)
            self.done = True

    def publish(self) -> None:
        """Copy controller state into the moto objects describe_services serialises."""
        svc = self.service
        running = pending = 0
        for i, dep in enumerate(self.deps):
            r = sum(1 for t in dep.tasks if t.running)
            p = sum(1 for t in dep.tasks if t.pending)
            running += r
            pending += p
            dep.set("runningCount", r)
            dep.set("pendingCount", p)
            dep.set("failedTasks", dep.failed)
            if i > 0:
                # Old deployments' desired count shrinks as they are scaled in.
                dep.set("desiredCount", len(dep.live_tasks()))
            if dep.sd is not None and dep.sd.in_progress and dep is self.deps[0]:
                dep.sd.touch()
        svc.running_count = running
        svc.pending_count = pending
        svc.deployments = [d.d for d in self.deps]
        if self.history:
            svc.current_service_deployment = self.history[-1].arn
        revs: dict[str, dict[str, Any]] = {}
        for dep in self.deps:
            r = revs.setdefault(dep.revision_arn, {"arn": dep.revision_arn, "requestedTaskCount": 0,
                                                   "runningTaskCount": 0, "pendingTaskCount": 0})
            r["requestedTaskCount"] += dep.d["desiredCount"]
            r["runningTaskCount"] += dep.d["runningCount"]
            r["pendingTaskCount"] += dep.d["pendingCount"]
        svc.current_service_revisions = list(revs.values())

    # -- load balancer -----------------------------------------------------------------
    def _tg(self, arn: str) -> Any:
        from moto.elbv2.models import elbv2_backends

        acct = dict.get(elbv2_backends, self.backend.account_id)
        if not acct:
            return None
        be = dict.get(acct, self.service.region_name)
        return be.target_groups.get(arn) if be else None

    def alb_sync(self, t: SimTask, dep: Dep, now: float) -> None:
        """Register RUNNING tasks' IPs in the service's target groups, with health
        following the task's behaviour; draining while DEACTIVATING."""
        lbs = self.service.load_balancers or []
        for i, lb in enumerate(lbs):
            arn = dep.targets.get(i) or lb.get("targetGroupArn")
            port = lb.get("containerPort")
            if not arn or port is None:
                continue
            tg = self._tg(arn)
            if tg is None:
                continue
            health = tg.__dict__.setdefault("_ctl_health", {})
            if t.phase == "RUNNING" and arn not in t.registered:
                tg.register([{"Id": t.ip, "Port": int(port)}])
                t.registered[arn] = int(port)
                t.t_registered[arn] = now
            if arn not in t.registered:
                continue
            if t.phase == "DEACTIVATING":
                health[t.ip] = ("draining", "Target.DeregistrationInProgress",
                                "Target deregistration is in progress")
            elif t.healthy:
                health[t.ip] = ("healthy", None, None)
            elif t.behaviour == "notready" and now >= t.t_registered[arn] + T.target_initial:
                health[t.ip] = ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
            elif now >= t.t_registered[arn] + T.target_initial:
                health[t.ip] = ("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
            else:
                health[t.ip] = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")

    def alb_deregister_all(self, t: SimTask) -> None:
        for arn in list(t.registered):
            tg = self._tg(arn)
            if tg is not None:
                tg.__dict__.setdefault("_ctl_health", {}).pop(t.ip, None)
                if t.ip in tg.targets:
                    tg.deregister([{"Id": t.ip}])
            t.registered.pop(arn, None)

    def _shift_traffic(self, dep: Dep) -> None:
        """BLUE_GREEN: point the production listener rule at the green target group."""
        from moto.elbv2.models import elbv2_backends

        for i, lb in enumerate(self.service.load_balancers or []):
            adv = lb.get("advancedConfiguration") or {}
            green = dep.targets.get(i)
            key = (id(self.service), i)
            blue = self.controller.live_tg.get(key, lb.get("targetGroupArn"))
            if not adv.get("alternateTargetGroupArn") or not green or green == blue:
                continue
            self.controller.live_tg[key] = green
            rule = adv.get("productionListenerRule")
            if not rule:
                continue
            try:
                be = elbv2_backends[self.backend.account_id][self.service.region_name]
                be.modify_rule(rule, [], [{
                    "Type": "forward",
                    "ForwardConfig": {"TargetGroups": [
                        {"TargetGroupArn": green, "Weight": 100},
                        {"TargetGroupArn": blue, "Weight": 0},
                    ]},
                }])
            except Exception as exc:
                log.warning("could not shift listener rule %s: %s", rule, exc)


# --------------------------------------------------------------------------------------
# Controller thread
# --------------------------------------------------------------------------------------


class Controller(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="ecs-controller", daemon=True)
        self.stop_event = threading.Event()
        self.task_cls = _task_class()
        self.used_ips: set[str] = set()
        self.live_tg: dict[tuple[int, int], str] = {}
        self.standalone: list[StandaloneTask] = []  # RunTask tasks

    def ctl_for(self, backend: Any, service: Any) -> ServiceCtl:
        ctl = getattr(service, "_ctl", None)
        if ctl is None or ctl.service is not service:
            ctl = ServiceCtl(self, backend, service)
        return ctl

    def run(self) -> None:
        while not self.stop_event.wait(T.tick):
            try:
                self.tick()
            except Exception:  # keep the controller alive; a test will notice the state
                log.exception("controller tick failed")

    def tick(self) -> None:
        from moto.ecs.models import ecs_backends

        now = time.monotonic()
        with LOCK:
            # dict.items: do not let BackendDict lazily create backends for every region.
            for _acct, regions in list(dict.items(ecs_backends)):
                for _region, backend in list(dict.items(regions)):
                    for service in list(backend.services.values()):
                        ctl = self.ctl_for(backend, service)
                        if ctl.done:
                            continue
                        try:
                            ctl.step(now)
                        except Exception:
                            log.exception("service %s: step failed", service.name)
            keep = []
            for t in self.standalone:
                try:
                    t.advance(now)
                except Exception:
                    log.exception("task %s: step failed", t.task.id)
                if t.t_stopped is not None and now - t.t_stopped > T.stopped_retention:
                    t.forget()
                else:
                    keep.append(t)
            self.standalone = keep

    def alarms_in_alarm(self, service: Any, names: list[str]) -> list[str]:
        from moto.cloudwatch.models import cloudwatch_backends

        try:
            be = cloudwatch_backends[service._account_id][service.region_name]
        except Exception:
            return []
        return [n for n in names if n in be.alarms and be.alarms[n].state_value == "ALARM"]


CONTROLLER: Controller | None = None


def groups_in_use(account_id: str, region: str) -> set[str]:
    """Target groups that some listener's default action or listener rule forwards to (any
    weight, 0 included), on any load balancer: what ELB calls "associated"."""
    from moto.elbv2.models import elbv2_backends

    acct = dict.get(elbv2_backends, account_id)
    be = dict.get(acct, region) if acct else None
    if be is None:
        return set()
    used: set[str] = set()
    for lb in be.load_balancers.values():
        for listener in lb.listeners.values():
            actions = list(listener.default_actions)
            for rule in listener.rules.values():
                actions.extend(rule.actions)
            for action in actions:
                if action.type == "forward":
                    used.update(be._get_target_group_arns_from(action_data=action.data))
    return used


# --------------------------------------------------------------------------------------
# Patches of moto's request handlers
# --------------------------------------------------------------------------------------


def install_patches() -> None:
    """Wrap moto's ECS and ELBv2 handlers. Done before the server starts."""
    from moto.core.responses import ActionResult
    from moto.ecs.exceptions import ECSException, InvalidParameterException
    from moto.ecs.responses import EC2ContainerServiceResponse as R
    from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup
    from moto.ec2.responses import EC2Response
    from moto.elbv2.responses import ELBV2Response
    from moto.logs.responses import LogsResponse

    # Serialise each ECS/ELBv2/EC2/Logs request (the controller mutates tasks, target groups,
    # ENIs and hook tasks' log streams), serialisation included, with the controller's ticks.
    for cls in (R, ELBV2Response, EC2Response, LogsResponse):
        orig_call = cls.call_action

        def call_action(self, _orig=orig_call):
            with LOCK:
                return _orig(self)

        cls.call_action = call_action

    # DynamoDB conditional writes are atomic per item on AWS; moto evaluates the condition and
    # then writes without a lock, so two racing requests can both pass (measured: 16 of 300
    # rounds of 8 racers). Serialise DynamoDB requests (its own lock: no controller involved).
    from moto.dynamodb.responses import DynamoHandler

    orig_dynamodb = DynamoHandler.call_action

    def dynamodb_call_action(self, _orig=orig_dynamodb):
        with DYNAMODB_LOCK:
            return _orig(self)

    DynamoHandler.call_action = dynamodb_call_action

    def ctl_of(backend, svc) -> ServiceCtl:
        assert CONTROLLER is not None
        return CONTROLLER.ctl_for(backend, svc)

    # -- What real ECS refuses and moto accepts (TESTBED.md "What the real services
    #    refuse"): checked before moto stores anything, with ECS's own error text. --------
    def refuse_unattached_groups(self, load_balancers) -> None:
        backend = self.ecs_backend
        used = groups_in_use(backend.account_id, backend.region_name)
        for lb in load_balancers or []:
            arn = lb.get("targetGroupArn")
            if arn and arn not in used:
                raise InvalidParameterException(
                    f"The target group with targetGroupArn {arn} does not have an associated load balancer."
                )

    def refuse_awsvpc_without_network(self, task_definition, network_configuration) -> None:
        if not task_definition or network_configuration:
            return
        try:
            td = self.ecs_backend.describe_task_definition(task_definition)
        except ECSException:
            return  # moto reports the unknown task definition itself
        if td.network_mode == "awsvpc":
            raise InvalidParameterException(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified."
            )

    # -- RunTask: standalone tasks that run their command once (moto stores them RUNNING
    #    forever, and places non-Fargate ones only on registered container instances). ---
    def run_task(self):
        backend = self.ecs_backend
        refuse_awsvpc_without_network(self, self._get_param("taskDefinition"),
                                      self._get_param("networkConfiguration"))
        started_by = self._get_param("startedBy")
        if started_by is not None and len(started_by) > 128:
            raise InvalidParameterException("startedBy longer than 128.")
        if self._get_param("launchType") and self._get_param("capacityProviderStrategy"):
            raise InvalidParameterException(
                "Specify either Launch Type or Capacity Provider Strategy, but not both.")
        cluster = backend._get_cluster(self._get_param("cluster", "default"))
        td = backend.describe_task_definition(self._get_param("taskDefinition"))
        params = {k: self._get_param(k) for k in (
            "overrides", "startedBy", "group", "launchType", "platformVersion", "tags",
            "networkConfiguration", "capacityProviderStrategy")}
        assert CONTROLLER is not None
        now = time.monotonic()
        tasks = []
        for _ in range(self._get_int_param("count", 1)):
            t = StandaloneTask(backend, cluster, td, params, now)
            CONTROLLER.standalone.append(t)
            tasks.append(t.task)
        return ActionResult({"tasks": tasks, "failures": []})

    R.run_task = run_task

    # -- StopTask: a standalone task gets SIGTERM and stops (UserInitiated) -------------
    orig_stop_task = R.stop_task

    def stop_task(self):
        assert CONTROLLER is not None
        ref = str(self._get_param("task")).split("/")[-1]
        mine = next((t for t in CONTROLLER.standalone if t.task.id == ref), None)
        if mine is None:
            return orig_stop_task(self)
        mine.user_stop(self._get_param("reason"), time.monotonic())
        return ActionResult({"task": mine.task})

    R.stop_task = stop_task

    # -- CreateService: keep what moto drops and start the first deployment at once ----
    orig_create = R.create_service

    def create_service(self):
        # moto silently replaces an existing service; ECS refuses.
        name = self._get_param("serviceName")
        try:
            existing = self.ecs_backend._get_service(self._get_param("cluster", "default"), name)
        except ECSException:
            existing = None
        if existing is not None and existing.status != "INACTIVE":
            raise InvalidParameterException("Creation of service was not idempotent.")
        refuse_awsvpc_without_network(self, self._get_param("taskDefinition"),
                                      self._get_param("networkConfiguration"))
        refuse_unattached_groups(self, self._get_param("loadBalancers"))
        result = orig_create(self)
        svc = result.result["service"]
        svc.deployment_configuration = with_defaults(self._get_param("deploymentConfiguration"))
        svc.created_at = utcnow()
        for param, attr in (
            ("healthCheckGracePeriodSeconds", "health_check_grace_period_seconds"),
            ("enableExecuteCommand", "enable_execute_command"),
            ("enableECSManagedTags", "enable_ecs_managed_tags"),
            ("placementConstraints", "placement_constraints"),
            ("placementStrategy", "placement_strategy"),
            ("capacityProviderStrategy", "capacity_provider_strategy"),
        ):
            value = self._get_param(param)
            if value is not None:
                setattr(svc, attr, value)
        svc._ctl = None  # a re-created service name gets a fresh controller record
        ctl = ctl_of(self.ecs_backend, svc)
        ctl.deps = []
        svc.deployments = []
        if ctl.managed():
            ctl.sync_spec(force=True)
        return result

    R.create_service = create_service

    # -- UpdateService: create the new deployment synchronously, so the response (and
    #    any describe right after) already shows the new PRIMARY, as on real ECS. ---------
    orig_update = R.update_service

    def update_service(self):
        backend = self.ecs_backend
        cluster = self._get_param("cluster", "default")
        svc = backend._get_service(cluster, str(self._get_param("service")).split("/")[-1])
        ctl = ctl_of(backend, svc)
        # The service as it would be after the update: its task definition and network.
        refuse_awsvpc_without_network(
            self,
            self._get_param("taskDefinition") or svc.task_definition,
            self._get_param("networkConfiguration") or getattr(svc, "network_configuration", None),
        )
        if self._get_param("loadBalancers") is not None:
            refuse_unattached_groups(self, self._get_param("loadBalancers"))
        saved = svc.deployments
        # moto's forceNewDeployment rewrites deployments[0] in place; hide ours from it.
        svc.deployments = []
        try:
            result = orig_update(self)
        finally:
            svc.deployments = saved
        # moto stores "family[:revision]" verbatim; ECS resolves it to the full ARN.
        if svc.task_definition and not str(svc.task_definition).startswith("arn:"):
            svc.task_definition = backend.describe_task_definition(svc.task_definition).arn
        if self._get_param("deploymentConfiguration") is not None:
            svc.deployment_configuration = with_defaults(self._get_param("deploymentConfiguration"))
        if self._get_param("capacityProviderStrategy") is not None:
            svc.capacity_provider_strategy = self._get_param("capacityProviderStrategy")
        ctl.sync_spec(force=bool(self._get_param("forceNewDeployment")))
        ctl.step(time.monotonic())
        return result

    R.update_service = update_service

    # -- DeleteService: DRAINING until the controller has stopped the tasks ------------
    orig_delete = R.delete_service

    def delete_service(self):
        result = orig_delete(self)
        svc = result.result["service"]
        svc.desired_count = 0
        if getattr(svc, "_ctl", None) is not None and any(t.live for t in svc._ctl.all_tasks()):
            svc.status = "DRAINING"
        return result

    R.delete_service = delete_service

    # -- ListTasks: serviceName filter, default desiredStatus RUNNING, pagination ------
    def list_tasks(self):
        backend = self.ecs_backend
        cluster = self._get_param("cluster", "default")
        service_name = self._get_param("serviceName")
        desired = self._get_param("desiredStatus") or "RUNNING"  # the ECS default
        tasks = backend.list_tasks(
            cluster,
            self._get_param("containerInstance"),
            self._get_param("family"),
            self._get_param("startedBy"),
            None,
            desired,
        )
        if service_name:
            name = str(service_name).split("/")[-1]
            backend._get_service(cluster, name)  # ServiceNotFoundException like ECS
            tasks = [t for t in tasks if getattr(t, "group", None) == f"service:{name}"]
        launch_type = self._get_param("launchType")
        if launch_type:
            tasks = [t for t in tasks if t.launch_type == launch_type]
        arns = [t.task_arn for t in tasks]
        start = int(self._get_param("nextToken") or 0)
        size = int(self._get_param("maxResults") or 100)
        out: dict[str, Any] = {"taskArns": arns[start:start + size]}
        if start + size < len(arns):
            out["nextToken"] = str(start + size)
        return ActionResult(out)

    R.list_tasks = list_tasks

    # -- DescribeTasks: report unknown tasks as failures (moto drops them) --------------
    orig_describe_tasks = R.describe_tasks

    def describe_tasks(self):
        result = orig_describe_tasks(self)
        asked = self._get_param("tasks", []) or []
        found = {t.task_arn.split("/")[-1] for t in result.result["tasks"]}
        for ref in asked:
            if str(ref).split("/")[-1] not in found:
                result.result["failures"].append({"arn": ref, "reason": "MISSING"})
        return result

    R.describe_tasks = describe_tasks

    # -- Service deployments: not in moto 5.2 ------------------------------------------
    def all_sds(backend):
        for svc in backend.services.values():
            ctl = getattr(svc, "_ctl", None)
            if ctl is not None:
                yield from ctl.history

    def list_service_deployments(self):
        backend = self.ecs_backend
        cluster = self._get_param("cluster", "default")
        svc = backend._get_service(cluster, str(self._get_param("service")).split("/")[-1])
        ctl = getattr(svc, "_ctl", None)
        sds = list(reversed(ctl.history)) if ctl else []
        statuses = self._get_param("status") or []
        if statuses:
            sds = [s for s in sds if s.status in statuses]
        created = self._get_param("createdAt") or {}
        if created.get("before"):
            sds = [s for s in sds if s.created_at < created["before"]]
        if created.get("after"):
            sds = [s for s in sds if s.created_at > created["after"]]
        start = int(self._get_param("nextToken") or 0)
        size = int(self._get_param("maxResults") or 20)
        out: dict[str, Any] = {"serviceDeployments": [s.brief() for s in sds[start:start + size]]}
        if start + size < len(sds):
            out["nextToken"] = str(start + size)
        return ActionResult(out)

    def describe_service_deployments(self):
        arns = self._get_param("serviceDeploymentArns") or []
        if len(arns) > 20:
            raise InvalidParameterException("You can specify a maximum of 20 ARNs.")
        by_arn = {s.arn: s for s in all_sds(self.ecs_backend)}
        found, failures = [], []
        for arn in arns:
            if arn in by_arn:
                found.append(by_arn[arn].full())
            else:
                failures.append({"arn": arn, "reason": "MISSING"})
        return ActionResult({"serviceDeployments": found, "failures": failures})

    def describe_service_revisions(self):
        arns = self._get_param("serviceRevisionArns") or []
        revs: dict[str, tuple[ServiceCtl, Dep]] = {}
        for svc in self.ecs_backend.services.values():
            ctl = getattr(svc, "_ctl", None)
            if ctl is not None:
                for arn, dep in ctl.revisions.items():
                    revs[arn] = (ctl, dep)
        found, failures = [], []
        for arn in arns:
            if arn not in revs:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            ctl, dep = revs[arn]
            svc = ctl.service
            rev = {
                "serviceRevisionArn": arn,
                "serviceArn": svc.arn,
                "clusterArn": svc.cluster_arn,
                "taskDefinition": dep.td_obj.arn,
                "loadBalancers": svc.load_balancers or [],
                "containerImages": [
                    {"containerName": c.get("name"), "image": c.get("image")}
                    for c in dep.td_obj.container_definitions
                ],
                "createdAt": dep.revision_created,
            }
            for key in ("launchType", "platformVersion", "platformFamily", "networkConfiguration",
                        "capacityProviderStrategy"):
                if dep.d.get(key) is not None:
                    rev[key] = dep.d[key]
            found.append(rev)
        return ActionResult({"serviceRevisions": found, "failures": failures})

    def stop_service_deployment(self):
        arn = self._get_param("serviceDeploymentArn")
        sd = next((s for s in all_sds(self.ecs_backend) if s.arn == arn), None)
        if sd is None:
            raise ECSException("ServiceDeploymentNotFoundException",
                               "The service deployment does not exist.")
        if not sd.in_progress or sd.dep.state != "IN_PROGRESS":
            raise ECSException("ConflictException", "The service deployment is not in progress.")
        ctl = sd.ctl
        stop_type = self._get_param("stopType") or "ROLLBACK"
        sd.status = "ROLLBACK_REQUESTED" if stop_type == "ROLLBACK" else "STOP_REQUESTED"
        ctl.fail(sd.dep, f"ECS deployment {sd.dep.id} stopped by StopServiceDeployment.",
                 f"(service {ctl.name}) (deployment {sd.dep.id}) deployment stopped.",
                 rollback=stop_type == "ROLLBACK", cause="user")
        ctl.publish()
        return ActionResult({"serviceDeploymentArn": arn})

    R.list_service_deployments = list_service_deployments
    R.describe_service_deployments = describe_service_deployments
    R.describe_service_revisions = describe_service_revisions
    R.stop_service_deployment = stop_service_deployment

    # -- ALB target health follows the tasks (moto reports IP targets always healthy) --
    orig_health_for = FakeTargetGroup.health_for

    def health_for(self, target, ec2_backend):
        override = self.__dict__.get("_ctl_health", {}).get(target["Id"])
        registered = self.targets.get(target["Id"])
        if registered and self.arn not in groups_in_use(self.account_id, self.region_name):
            # ELB health-checks only groups that a listener or rule forwards to.
            return FakeHealthStatus(target["Id"], registered["Port"], self.health_check_port,
                                    "unused", "Target.NotInUse",
                                    "Target group is not configured to receive traffic from the load balancer")
        if override and registered:
            state, reason, description = override
            return FakeHealthStatus(target["Id"], registered["Port"], self.health_check_port,
                                    state, reason, description)
        return orig_health_for(self, target, ec2_backend)

    FakeTargetGroup.health_for = health_for


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global T, CONTROLLER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies every controller delay (e.g. 0.2 in tests)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.time_scale <= 0:
        parser.error("--time-scale must be > 0")

    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # werkzeug logs every request at INFO; keep stderr readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    T = Timing(args.time_scale)

    from moto.server import ThreadedMotoServer

    install_patches()
    CONTROLLER = Controller()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    CONTROLLER.start()
    log.info("moto with ECS controller on %s:%d (time scale %s)", host, port, args.time_scale)

    done = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"LISTENING {port}", flush=True)
    while not done.wait(0.5):
        pass
    CONTROLLER.stop_event.set()
    CONTROLLER.join(timeout=5)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
