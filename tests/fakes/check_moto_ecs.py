#!/usr/bin/env python3
"""Check that tests/fakes/moto_ecs.py makes moto's ECS behave like real ECS.

Starts the launcher as a subprocess (--port 0 --time-scale 0.2) and drives it with boto3
the way deployer drives real ECS: services_stable waiter, describe_services deployments
followed by id, describe_tasks of stopped tasks, ALB target health, service events,
ListServiceDeployments/DescribeServiceDeployments. Prints one line per check and
"N passed, M failed" at the end; exits non-zero if anything failed.

Usage: .venv/bin/python tests/fakes/check_moto_ecs.py [--time-scale 0.2] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable

import boto3
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "eu-west-1"
REPO = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/user"
IMAGES = {
    "good": f"{REPO}@sha256:{'a' * 64}",
    "good2": f"{REPO}@sha256:{'b' * 64}",
    "crashloop": f"{REPO}:crashloop",
    "imagepull": f"{REPO}:imagepull",
    "notready": f"{REPO}:notready",
    "slowstart": f"{REPO}:slowstart",
}
DEPLOYMENT_ID = re.compile(r"^ecs-svc/\d{19}$")


class Checker:
    def __init__(self, verbose: bool) -> None:
        self.passed = 0
        self.failed = 0
        self.verbose = verbose
        self.lock = threading.Lock()

    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        with self.lock:
            if ok:
                self.passed += 1
                print(f"PASS {name}" + (f"  [{detail}]" if detail and self.verbose else ""), flush=True)
            else:
                self.failed += 1
                print(f"FAIL {name}  [{detail}]", flush=True)
        return ok


def wait_until(fn: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll fn until it returns something truthy; returns that value or None."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def start_launcher(scale: float, log_file) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "moto_ecs.py"), "--port", "0", "--time-scale", str(scale)],
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    line_box: list[str] = []
    reader = threading.Thread(target=lambda: line_box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    line = line_box[0] if line_box else ""
    m = re.fullmatch(r"LISTENING (\d+)\n", line)
    if not m:
        proc.kill()
        raise SystemExit(f"launcher did not print LISTENING <port>: {line!r}")
    return proc, int(m.group(1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    scale = args.time_scale
    c = Checker(args.verbose)
    t_start = time.monotonic()

    log_file = tempfile.NamedTemporaryFile("w+", prefix="moto_ecs-", suffix=".log", delete=False)
    proc, port = start_launcher(scale, log_file)
    c.check("launcher prints 'LISTENING <port>'", port > 0, port)
    try:
        run_checks(c, port, scale)
    except Exception as exc:  # an unexpected API error is a failed check, not a crash
        import traceback

        traceback.print_exc()
        c.check("no unexpected exception", False, repr(exc))
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
        c.check("launcher exits cleanly on SIGTERM", rc == 0, rc)
        if c.failed:
            log_file.seek(0)
            print("---- launcher stderr (last 40 lines) ----")
            print("".join(log_file.readlines()[-40:]))
        log_file.close()
        os.unlink(log_file.name)
    print(f"elapsed {time.monotonic() - t_start:.1f} s")
    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


def run_checks(c: Checker, port: int, scale: float) -> None:
    endpoint = f"http://127.0.0.1:{port}"
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    ecs = boto3.client("ecs", **kw)
    ec2 = boto3.client("ec2", **kw)
    elbv2 = boto3.client("elbv2", **kw)
    cw = boto3.client("cloudwatch", **kw)

    # ---- network, cluster, load balancer, task definitions -------------------------
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    # moto places awsvpc tasks only in a VPC with DNS hostnames (TESTBED.md).
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    sg = ec2.create_security_group(GroupName="svc", Description="svc", VpcId=vpc)["GroupId"]
    network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg], "assignPublicIp": "DISABLED"}}
    lb_arn = elbv2.create_load_balancer(Name="shop", Subnets=subnets, SecurityGroups=[sg], Type="application")[
        "LoadBalancers"][0]["LoadBalancerArn"]

    def target_group(name: str) -> str:
        return elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")[
            "TargetGroups"][0]["TargetGroupArn"]

    tg_user = target_group("user")
    tg_notready = target_group("user-notready")
    tg_slow = target_group("user-slow")
    tg_blue, tg_green = target_group("user-blue"), target_group("user-green")
    listener = elbv2.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80, DefaultActions=[
        {"Type": "forward", "TargetGroupArn": tg_user}])["Listeners"][0]["ListenerArn"]
    bg_rule = elbv2.create_rule(ListenerArn=listener, Priority=10, Conditions=[
        {"Field": "path-pattern", "Values": ["/bg/*"]}], Actions=[
        {"Type": "forward", "TargetGroupArn": tg_blue}])["Rules"][0]["RuleArn"]
    # Every group a service uses must be attached to the ALB (real ECS refuses others):
    # green through a test rule (header), the others through path rules.
    bg_test_rule = elbv2.create_rule(ListenerArn=listener, Priority=5, Conditions=[
        {"Field": "path-pattern", "Values": ["/bg/*"]},
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "x-deployer-preview",
                                                      "Values": ["true"]}}], Actions=[
        {"Type": "forward", "TargetGroupArn": tg_green}])["Rules"][0]["RuleArn"]
    for prio, (path, tg) in enumerate((("/notready/*", tg_notready), ("/slow/*", tg_slow)), start=20):
        elbv2.create_rule(ListenerArn=listener, Priority=prio, Conditions=[
            {"Field": "path-pattern", "Values": [path]}], Actions=[
            {"Type": "forward", "TargetGroupArn": tg}])

    ecs.create_cluster(clusterName="shop")
    tds: dict[str, str] = {}
    for kind, image in IMAGES.items():
        tds[kind] = ecs.register_task_definition(
            family="user", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "user", "image": image, "essential": True,
                                   "portMappings": [{"containerPort": 8080}]}],
        )["taskDefinition"]["taskDefinitionArn"]

    def create(name: str, td: str, desired: int, cb: dict | None = None, tg: str | None = None,
               **extra: Any) -> dict:
        params: dict[str, Any] = dict(cluster="shop", serviceName=name, taskDefinition=tds[td],
                                      desiredCount=desired, launchType="FARGATE", networkConfiguration=network)
        if cb is not None:
            params["deploymentConfiguration"] = {"deploymentCircuitBreaker": cb}
        if tg:
            params["loadBalancers"] = [{"targetGroupArn": tg, "containerName": "user", "containerPort": 8080}]
        params.update(extra)
        return ecs.create_service(**params)["service"]

    def describe(name: str) -> dict:
        return ecs.describe_services(cluster="shop", services=[name])["services"][0]

    def dep_by_id(name: str, dep_id: str) -> dict | None:
        return next((d for d in describe(name)["deployments"] if d["id"] == dep_id), None)

    def tasks_of(name: str, status: str = "RUNNING", started_by: str | None = None) -> list[dict]:
        kw2: dict[str, Any] = dict(cluster="shop", serviceName=name, desiredStatus=status)
        if started_by:
            kw2["startedBy"] = started_by
        arns = ecs.list_tasks(**kw2)["taskArns"]
        return ecs.describe_tasks(cluster="shop", tasks=arns)["tasks"] if arns else []

    def task_ip(task: dict) -> str | None:
        for att in task.get("attachments", []):
            for d in att.get("details", []):
                if d["name"] == "privateIPv4Address":
                    return d["value"]
        return None

    def target_health(tg: str) -> dict[str, dict]:
        out = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"] for d in out}

    def stable_waiter(name: str) -> tuple[bool, str]:
        try:
            ecs.get_waiter("services_stable").wait(cluster="shop", services=[name],
                                                   WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            return True, "stable"
        except botocore.exceptions.WaiterError as exc:
            return False, str(exc)

    # ---- what real ECS and ELB refuse ------------------------------------------------
    run_refusal_checks(c, ecs, ec2, elbv2, vpc, listener, network, tds)

    # ---- standalone tasks (RunTask): commands, exit codes, StopTask, awslogs ----------
    run_task_checks(c, ecs, boto3.client("logs", **kw), network, scale)

    # ---- create everything up front so the slow scenarios overlap -------------------
    cb_on = {"enable": True, "rollback": True}
    created = create("user", "good", 2, cb=cb_on, tg=tg_user)
    first_dep = created["deployments"][0]
    c.check("create_service returns one PRIMARY IN_PROGRESS deployment with an ecs-svc/<19 digits> id",
            len(created["deployments"]) == 1 and first_dep["status"] == "PRIMARY"
            and first_dep["rolloutState"] == "IN_PROGRESS" and bool(DEPLOYMENT_ID.match(first_dep["id"])),
            first_dep)
    c.check("deploymentConfiguration.deploymentCircuitBreaker is kept",
            created["deploymentConfiguration"].get("deploymentCircuitBreaker") == cb_on,
            created["deploymentConfiguration"])
    create("user-nocb", "good", 2)
    create("user-pull", "imagepull", 1)
    create("user-notready", "notready", 1, tg=tg_notready)
    t_slow_created = time.monotonic()
    create("user-slow", "slowstart", 1, tg=tg_slow)
    create("user-bg", "good", 2, tg=tg_blue,
           loadBalancers=[{"targetGroupArn": tg_blue, "containerName": "user", "containerPort": 8080,
                           "advancedConfiguration": {"alternateTargetGroupArn": tg_green,
                                                     "productionListenerRule": bg_rule,
                                                     "testListenerRule": bg_test_rule,
                                                     "roleArn": "arn:aws:iam::123456789012:role/ecs-bg"}}],
           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1,
                                    "deploymentCircuitBreaker": cb_on})
    cw.put_metric_alarm(AlarmName="user-5xx", MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold")
    create("user-alarm", "good", 1, deploymentConfiguration={
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "alarms": {"alarmNames": ["user-5xx"], "enable": True, "rollback": True}})
    create("user-stop", "good", 1)

    # ---- healthy rollout -------------------------------------------------------------
    ok, why = stable_waiter("user")
    c.check("services_stable waiter succeeds for a healthy service", ok, why)
    # As on real ECS the waiter only needs one deployment and running == desired; the
    # rollout reaches COMPLETED once the tasks are also healthy, a moment later.
    wait_until(lambda: describe("user")["deployments"][0]["rolloutState"] == "COMPLETED", 5)
    svc = describe("user")
    deps = svc["deployments"]
    c.check("healthy: one PRIMARY deployment, COMPLETED, running=2",
            len(deps) == 1 and deps[0]["status"] == "PRIMARY" and deps[0]["rolloutState"] == "COMPLETED"
            and deps[0]["id"] == first_dep["id"] and svc["runningCount"] == 2 and deps[0]["runningCount"] == 2
            and deps[0]["rolloutStateReason"] == f"ECS deployment {first_dep['id']} completed.",
            deps)
    running = tasks_of("user")
    c.check("healthy tasks: RUNNING, HEALTHY, startedBy = deployment id, group service:user, ENI IP",
            len(running) == 2 and all(t["lastStatus"] == "RUNNING" and t["healthStatus"] == "HEALTHY"
                                      and t["startedBy"] == first_dep["id"] and t["group"] == "service:user"
                                      and task_ip(t) for t in running),
            [(t["lastStatus"], t["healthStatus"], t.get("startedBy"), task_ip(t)) for t in running])
    health = target_health(tg_user)
    c.check("ALB: the two task IPs are registered and healthy",
            set(health) == {task_ip(t) for t in running} and all(h["State"] == "healthy" for h in health.values()),
            health)

    for name in ("user-nocb", "user-bg", "user-alarm", "user-stop"):
        ok, why = stable_waiter(name)
        c.check(f"{name}: stable before its update", ok, why)

    # Start the long-running updates first, so they overlap with the checks below.
    bg_update = ecs.update_service(cluster="shop", service="user-bg", taskDefinition=tds["good2"])["service"]
    t_bg_update = time.monotonic()
    nocb_update = ecs.update_service(cluster="shop", service="user-nocb", taskDefinition=tds["crashloop"])["service"]

    # ---- BLUE_GREEN with bake time (finished at the end) ----------------------------
    # Green is healthy after ~1 s x scale; the bake (1 min x scale) keeps blue running.
    bg_dep = bg_update["deployments"][0]
    wait_until(lambda: all(h["State"] == "healthy" for h in target_health(tg_green).values())
               and len(target_health(tg_green)) == 2, 10)
    svc = describe("user-bg")
    during = {d["id"]: d for d in svc["deployments"]}
    c.check("blue/green: during the bake both deployments run (green PRIMARY IN_PROGRESS, blue ACTIVE running 2)",
            time.monotonic() - t_bg_update < 60 * scale and len(during) == 2
            and during.get(bg_dep["id"], {}).get("rolloutState") == "IN_PROGRESS"
            and all(d["runningCount"] == 2 for d in during.values()),
            [(d["id"], d["status"], d["rolloutState"], d["runningCount"]) for d in svc["deployments"]])
    green_health = target_health(tg_green)
    rule = elbv2.describe_rules(RuleArns=[bg_rule])["Rules"][0]
    weights = {t["TargetGroupArn"]: t.get("Weight") for t in rule["Actions"][0].get("ForwardConfig", {}).get(
        "TargetGroups", [])}
    c.check("blue/green: green tasks healthy in the alternate target group, production rule shifted to green",
            len(green_health) == 2 and all(h["State"] == "healthy" for h in green_health.values())
            and weights.get(tg_green) == 100, (green_health, weights))

    # ---- crashloop with circuit breaker + rollback -------------------------------------
    upd = ecs.update_service(cluster="shop", service="user", taskDefinition=tds["crashloop"])["service"]
    new_dep = upd["deployments"][0]
    c.check("update_service: a NEW PRIMARY deployment (IN_PROGRESS), the old one ACTIVE",
            new_dep["id"] != first_dep["id"] and bool(DEPLOYMENT_ID.match(new_dep["id"]))
            and new_dep["status"] == "PRIMARY" and new_dep["rolloutState"] == "IN_PROGRESS"
            and new_dep["taskDefinition"] == tds["crashloop"]
            and [d["status"] for d in upd["deployments"]] == ["PRIMARY", "ACTIVE"],
            [(d["id"], d["status"], d["rolloutState"]) for d in upd["deployments"]])
    seen_failed_in_progress = 0
    failed_dep = None
    deadline = time.monotonic() + 30 * scale + 5
    while time.monotonic() < deadline:
        d = dep_by_id("user", new_dep["id"])
        if d and d["rolloutState"] == "IN_PROGRESS":
            seen_failed_in_progress = max(seen_failed_in_progress, d["failedTasks"])
        if d and d["rolloutState"] == "FAILED":
            failed_dep = d
            break
        time.sleep(0.05)
    c.check("crashloop: failedTasks grows while the deployment is IN_PROGRESS", seen_failed_in_progress > 0,
            seen_failed_in_progress)
    c.check("crashloop: followed by id, rolloutState FAILED by the circuit breaker (threshold 3)",
            failed_dep is not None and failed_dep["failedTasks"] >= 3
            and failed_dep["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start.",
            failed_dep)
    stopped = tasks_of("user", "STOPPED", started_by=new_dep["id"])
    c.check("crashloop: stopped tasks show stopCode EssentialContainerExited, the reason and exit code 1",
            len(stopped) >= 3 and all(
                t["lastStatus"] == "STOPPED" and t.get("stopCode") == "EssentialContainerExited"
                and t.get("stoppedReason") == "Essential container in task exited"
                and t["containers"][0].get("exitCode") == 1 for t in stopped),
            [(t.get("stopCode"), t.get("stoppedReason"), t["containers"][0].get("exitCode")) for t in stopped[:2]])
    ok, why = stable_waiter("user")
    svc = describe("user")
    primary = svc["deployments"][0]
    c.check("rollback: a new PRIMARY deployment with the first task definition completes",
            primary["id"] not in (first_dep["id"], new_dep["id"]) and primary["rolloutState"] == "COMPLETED"
            and primary["taskDefinition"] == tds["good"] and len(svc["deployments"]) == 1,
            [(d["id"], d["status"], d["rolloutState"], d["taskDefinition"]) for d in svc["deployments"]])
    c.check("rollback: the service's taskDefinition is the first one again", svc["taskDefinition"] == tds["good"],
            svc["taskDefinition"])
    c.check("services_stable ALSO ends 'stable' after a failed deployment rolled back "
            "(the waiter ignores rolloutState: check the PRIMARY taskDefinition)", ok, why)
    messages = [e["message"] for e in svc["events"]]
    times = [e["createdAt"] for e in svc["events"]]
    c.check("events: non-empty, newest first, ≤100",
            0 < len(times) <= 100 and all(a >= b for a, b in zip(times, times[1:])), len(times))
    expected_events = [
        f"(service user) (deployment {new_dep['id']}) deployment failed: tasks failed to start.",
        f"(service user) rolling back to deployment {first_dep['id']}.",
        f"(service user) (deployment {primary['id']}) deployment completed.",
        "(service user) has reached a steady state.",
    ]
    c.check("events: deployment failed / rolling back / completed / steady state",
            all(m in messages for m in expected_events)
            and any(m.startswith("(service user) has started 2 tasks: (task ") for m in messages)
            and any(m.startswith("(service user) has stopped 2 running tasks: (task ") for m in messages)
            and messages[0] == "(service user) has reached a steady state.",
            messages[:8])
    running = tasks_of("user")
    health = wait_until(lambda: (lambda h: h if set(h) == {task_ip(t) for t in running} else None)(
        target_health(tg_user)), 5)
    c.check("ALB after rollback: only the new tasks' IPs, all healthy (old ones deregistered)",
            bool(health) and all(h["State"] == "healthy" for h in health.values()) and len(health) == 2, health)
    sds = ecs.list_service_deployments(cluster="shop", service="user")["serviceDeployments"]
    c.check("ListServiceDeployments: newest first, ROLLBACK_SUCCESSFUL then SUCCESSFUL",
            [s["status"] for s in sds] == ["ROLLBACK_SUCCESSFUL", "SUCCESSFUL"],
            [(s["status"], s.get("statusReason")) for s in sds])
    full = ecs.describe_service_deployments(serviceDeploymentArns=[sds[0]["serviceDeploymentArn"]])
    sd = full["serviceDeployments"][0] if full["serviceDeployments"] else {}
    cbs = sd.get("deploymentCircuitBreaker", {})
    c.check("DescribeServiceDeployments: circuit breaker TRIGGERED with failureCount/threshold, rollback info",
            cbs.get("status") == "TRIGGERED" and cbs.get("threshold") == 3 and cbs.get("failureCount", 0) >= 3
            and sd.get("rollback", {}).get("serviceRevisionArn", "").endswith(first_dep["id"].split("/")[1])
            and sd.get("targetServiceRevision", {}).get("arn", "").endswith(new_dep["id"].split("/")[1]),
            {k: sd.get(k) for k in ("status", "deploymentCircuitBreaker", "rollback")})
    only_ok = ecs.list_service_deployments(cluster="shop", service="user", status=["SUCCESSFUL"])["serviceDeployments"]
    missing = ecs.describe_service_deployments(serviceDeploymentArns=[
        "arn:aws:ecs:eu-west-1:123456789012:service-deployment/shop/user/nope"])
    c.check("ListServiceDeployments status filter; DescribeServiceDeployments reports unknown ARNs as failures",
            len(only_ok) == 1 and missing["failures"] and missing["failures"][0]["reason"] == "MISSING",
            (len(only_ok), missing["failures"]))

    # ---- crashloop without circuit breaker: fails forever, never FAILED --------------
    nocb_dep = nocb_update["deployments"][0]
    grown = wait_until(lambda: (lambda d: d if d and d["failedTasks"] >= 6 else None)(
        dep_by_id("user-nocb", nocb_dep["id"])), 30 * scale + 5)
    svc = describe("user-nocb")
    c.check("no circuit breaker: crashloop stays IN_PROGRESS while failedTasks grows past the threshold",
            grown is not None and grown["rolloutState"] == "IN_PROGRESS"
            and svc["deployments"][0]["id"] == nocb_dep["id"] and svc["deployments"][0]["rolloutState"] == "IN_PROGRESS",
            grown)
    c.check("no circuit breaker: the old deployment keeps serving (2 deployments, old running 2)",
            len(svc["deployments"]) == 2 and svc["deployments"][1]["runningCount"] == 2, svc["deployments"])

    # ---- imagepull ---------------------------------------------------------------------
    pulled = wait_until(lambda: tasks_of("user-pull", "STOPPED"), 10)
    t = pulled[0] if pulled else {}
    c.check("imagepull: task STOPPED, stopCode TaskFailedToStart, stoppedReason CannotPullContainerError: ...",
            t.get("lastStatus") == "STOPPED" and t.get("stopCode") == "TaskFailedToStart"
            and t.get("stoppedReason", "").startswith("CannotPullContainerError: ")
            and IMAGES["imagepull"] in t.get("stoppedReason", ""),
            t.get("stoppedReason"))

    # ---- notready ----------------------------------------------------------------------
    def notready_state():
        ts = tasks_of("user-notready")
        if ts and ts[0]["lastStatus"] == "RUNNING" and ts[0]["healthStatus"] == "UNHEALTHY":
            h = target_health(tg_notready).get(task_ip(ts[0]))
            if h and h["State"] == "unhealthy":
                return ts[0], h
        return None

    nr = wait_until(notready_state, 10)
    svc = describe("user-notready")
    c.check("notready: task RUNNING with healthStatus UNHEALTHY", nr is not None, svc["deployments"])
    c.check("notready: ALB target unhealthy (Target.FailedHealthChecks)",
            nr is not None and nr[1].get("Reason") == "Target.FailedHealthChecks", nr and nr[1])
    c.check("notready: running 1 but the deployment stays IN_PROGRESS",
            svc["runningCount"] == 1 and svc["deployments"][0]["rolloutState"] == "IN_PROGRESS", svc["deployments"])

    # ---- list_tasks(serviceName) -------------------------------------------------------
    arns_nr = ecs.list_tasks(cluster="shop", serviceName="user-notready")["taskArns"]
    arns_user = ecs.list_tasks(cluster="shop", serviceName="user")["taskArns"]
    arns_all = ecs.list_tasks(cluster="shop")["taskArns"]
    described = ecs.describe_tasks(cluster="shop", tasks=arns_nr)["tasks"]
    c.check("list_tasks(serviceName=...) lists only that service's tasks",
            len(arns_nr) == 1 and len(arns_user) == 2 and not set(arns_nr) & set(arns_user)
            and len(arns_all) > 3 and all(t["group"] == "service:user-notready" for t in described),
            (len(arns_nr), len(arns_user), len(arns_all)))
    try:
        ecs.list_tasks(cluster="shop", serviceName="no-such-service")
        c.check("list_tasks(serviceName=<unknown>) raises ServiceNotFoundException", False, "no error")
    except botocore.exceptions.ClientError as exc:
        c.check("list_tasks(serviceName=<unknown>) raises ServiceNotFoundException",
                exc.response["Error"]["Code"] == "ServiceNotFoundException", exc.response["Error"])

    # ---- slowstart -------------------------------------------------------------------
    def slow_task():
        ts = tasks_of("user-slow")
        return ts[0] if ts and ts[0]["lastStatus"] == "RUNNING" else None

    st = wait_until(slow_task, 10)
    early_ok = st is not None and st["healthStatus"] != "HEALTHY"
    early_target = target_health(tg_slow).get(task_ip(st) if st else "", {})
    c.check("slowstart: RUNNING but not yet HEALTHY; ALB target 'initial'",
            early_ok and early_target.get("State") == "initial", (st and st["healthStatus"], early_target))
    healthy = wait_until(lambda: (lambda ts: ts if ts and ts[0]["healthStatus"] == "HEALTHY" else None)(
        tasks_of("user-slow")), 20 * scale + 10)
    took = time.monotonic() - t_slow_created
    c.check(f"slowstart: HEALTHY only after 20 s x scale ({20 * scale:.0f} s; took {took:.1f} s)",
            healthy is not None and took >= 20 * scale, took)
    svc = describe("user-slow")
    c.check("slowstart: target healthy and the deployment COMPLETED afterwards",
            wait_until(lambda: describe("user-slow")["deployments"][0]["rolloutState"] == "COMPLETED", 3)
            and target_health(tg_slow).get(task_ip(healthy[0]) if healthy else "", {}).get("State") == "healthy",
            svc["deployments"])

    # ---- deployment alarms -------------------------------------------------------------
    alarm_upd = ecs.update_service(cluster="shop", service="user-alarm", taskDefinition=tds["slowstart"])["service"]
    alarm_dep = alarm_upd["deployments"][0]
    cw.set_alarm_state(AlarmName="user-5xx", StateValue="ALARM", StateReason="test")
    failed = wait_until(lambda: (lambda d: d if d and d["rolloutState"] == "FAILED" else None)(
        dep_by_id("user-alarm", alarm_dep["id"])), 10)
    cw.set_alarm_state(AlarmName="user-5xx", StateValue="OK", StateReason="test")
    ok, why = stable_waiter("user-alarm")
    c.check("alarms: an alarm in ALARM fails the deployment and ECS rolls back to the previous task definition",
            failed is not None and ok and describe("user-alarm")["taskDefinition"] == tds["good"],
            (failed, why))

    # ---- StopServiceDeployment (ROLLBACK) ----------------------------------------------
    ecs.update_service(cluster="shop", service="user-stop", taskDefinition=tds["slowstart"])
    sd_arn = ecs.list_service_deployments(cluster="shop", service="user-stop")["serviceDeployments"][0][
        "serviceDeploymentArn"]
    ecs.stop_service_deployment(serviceDeploymentArn=sd_arn, stopType="ROLLBACK")
    ok, why = stable_waiter("user-stop")
    sd = ecs.describe_service_deployments(serviceDeploymentArns=[sd_arn])["serviceDeployments"][0]
    c.check("StopServiceDeployment(ROLLBACK): rolls back, status ROLLBACK_SUCCESSFUL",
            ok and sd["status"] == "ROLLBACK_SUCCESSFUL" and describe("user-stop")["taskDefinition"] == tds["good"],
            sd["status"])

    # ---- ECR scan findings injection (moto's own endpoint) ----------------------------
    body = json.dumps({"region": REGION, "results": [{
        "imageScanFindings": {"findings": [], "findingSeverityCounts": {}},
        "imageScanStatus": {"status": "COMPLETE", "description": "injected"},
        "registryId": "123456789012", "repositoryName": "shop/user",
        "imageId": {"imageTag": "v1"}}]}).encode()
    req = urllib.request.Request(f"{endpoint}/moto-api/static/ecr/scan-finding-results", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        c.check("ECR scan-findings injection endpoint is reachable", 200 <= resp.status < 300, resp.status)

    # ---- BLUE_GREEN: completion after the bake ------------------------------------------
    done = wait_until(lambda: (lambda s: s if len(s["deployments"]) == 1 and s["deployments"][0][
        "rolloutState"] == "COMPLETED" else None)(describe("user-bg")), 60 * scale + 10, 0.25)
    took = time.monotonic() - t_bg_update
    c.check(f"blue/green: COMPLETED only after bakeTimeInMinutes (1 min x scale; took {took:.1f} s), blue drained",
            done is not None and done["deployments"][0]["id"] == bg_dep["id"] and took >= 60 * scale
            and not target_health(tg_blue), took)

    check_dynamodb_conditional_writes(c, kw)


def check_dynamodb_conditional_writes(c: Checker, kw: dict) -> None:
    """DynamoDB conditional writes are atomic per item (the ECS deploy lock relies on it): of
    racers updating on the same `version = :seen`, exactly one wins and the others get
    ConditionalCheckFailedException. Plain moto 5.2 let two win in about 5% of such rounds."""
    ddb = boto3.client("dynamodb", **kw)
    ddb.create_table(TableName="check-locks", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}])
    racers, rounds = 8, 200
    clients = [boto3.client("dynamodb", **kw) for _ in range(racers)]
    ddb.put_item(TableName="check-locks", Item={"lock_id": {"S": "k"}, "version": {"N": "0"}})
    bad, other_errors = [], []
    for r in range(rounds):
        barrier, wins = threading.Barrier(racers), []

        def race(i: int, r: int = r, barrier: threading.Barrier = barrier, wins: list = wins) -> None:
            barrier.wait()
            try:
                clients[i].update_item(
                    TableName="check-locks", Key={"lock_id": {"S": "k"}},
                    UpdateExpression="SET #v = :next, #h = :me", ConditionExpression="#v = :seen",
                    ExpressionAttributeNames={"#v": "version", "#h": "holder"},
                    ExpressionAttributeValues={":next": {"N": str(r + 1)}, ":seen": {"N": str(r)},
                                               ":me": {"S": str(i)}})
                wins.append(i)
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    other_errors.append(e.response["Error"]["Code"])

        threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(wins) != 1:
            bad.append((r, len(wins)))
    c.check(f"DynamoDB: {racers} racing conditional updates x {rounds} rounds: exactly one winner each",
            not bad and not other_errors, (bad[:5], other_errors[:5]))
    try:
        ddb.put_item(TableName="check-locks", Item={"lock_id": {"S": "k"}},
                     ConditionExpression="attribute_not_exists(lock_id)")
        refused = None
    except botocore.exceptions.ClientError as e:
        refused = e.response["Error"]["Code"]
    c.check("DynamoDB: attribute_not_exists on an existing item is refused (ConditionalCheckFailedException)",
            refused == "ConditionalCheckFailedException", refused)


def run_task_checks(c: Checker, ecs, logs, network: dict, scale: float) -> None:
    """RunTask runs the task's command once (a release hook): `sh -c` scripts with echo, sleep
    and exit; STOPPED with the real stop codes; echoed lines in CloudWatch Logs under the
    awslogs stream name; StopTask; what real ECS and awslogs refuse."""
    logs.create_log_group(logGroupName="/ecs/hooks")

    def td(image: str, group: str = "/ecs/hooks") -> str:
        return ecs.register_task_definition(
            family="hook", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "user", "image": image, "essential": True, "logConfiguration": {
                "logDriver": "awslogs", "options": {"awslogs-group": group, "awslogs-region": REGION,
                                                    "awslogs-stream-prefix": "hook"}}}],
        )["taskDefinition"]["taskDefinitionArn"]

    def run(task_definition: str, command: list[str] | None, started_by: str = "deployer/test_1") -> dict:
        overrides = {"containerOverrides": [{"name": "user", "command": command}]} if command else {}
        out = ecs.run_task(cluster="shop", taskDefinition=task_definition, launchType="FARGATE",
                           networkConfiguration=network, startedBy=started_by, group="deployer-hook:user-migrate",
                           overrides=overrides)
        return out["tasks"][0]

    def stopped(task: dict, timeout: float = 20.0) -> dict:
        def once():
            t = ecs.describe_tasks(cluster="shop", tasks=[task["taskArn"]])["tasks"][0]
            return t if t["lastStatus"] == "STOPPED" else None
        return wait_until(once, timeout * max(scale, 0.2) / 0.2) or {}

    good = td(IMAGES["good"])
    failing = run(good, ["sh", "-c", "echo migrating\necho table users: failed; exit 3"])
    quick = run(good, ["./migrate", "up"])
    sleeper = run(good, ["sh", "-c", "echo start && sleep 600"])
    pull = run(td(IMAGES["imagepull"]), ["sh", "-c", "exit 0"])
    nogroup = run(td(IMAGES["good"], group="/ecs/missing"), ["sh", "-c", "echo hi"])
    c.check("RunTask: the task is PROVISIONING with startedBy, group and the command override",
            failing["lastStatus"] == "PROVISIONING" and failing["startedBy"] == "deployer/test_1"
            and failing["group"] == "deployer-hook:user-migrate"
            and failing["overrides"]["containerOverrides"][0]["command"][0] == "sh", failing)

    t = stopped(failing)
    cont = (t.get("containers") or [{}])[0]
    c.check("RunTask `exit 3`: STOPPED, EssentialContainerExited, 'Essential container in task exited', exitCode 3",
            t.get("stopCode") == "EssentialContainerExited"
            and t.get("stoppedReason") == "Essential container in task exited"
            and t.get("desiredStatus") == "STOPPED" and cont.get("exitCode") == 3
            and all(k in t for k in ("stoppingAt", "stoppedAt", "executionStoppedAt", "startedAt")), t)
    stream = f"hook/user/{failing['taskArn'].split('/')[-1]}"
    try:
        events = logs.get_log_events(logGroupName="/ecs/hooks", logStreamName=stream, startFromHead=False,
                                     limit=20)["events"]
    except botocore.exceptions.ClientError as exc:
        events = [{"message": repr(exc)}]
    c.check("RunTask: echoed lines are in CloudWatch Logs, stream <prefix>/<container>/<task id>",
            [e["message"] for e in events] == ["migrating", "table users: failed"], events)
    t = stopped(quick)
    c.check("RunTask of a non-shell command: exits 0 and the task STOPPED",
            t.get("stopCode") == "EssentialContainerExited" and t["containers"][0].get("exitCode") == 0, t)

    # startedBy must be ListTasks' only filter (API reference); RUNNING is the default.
    listed = ecs.list_tasks(cluster="shop", startedBy="deployer/test_1")["taskArns"]
    c.check("ListTasks(startedBy) finds the running RunTask task", sleeper["taskArn"] in listed, listed)
    ecs.stop_task(cluster="shop", task=sleeper["taskArn"], reason="deployer: hook timed out after 1s")
    t = ecs.describe_tasks(cluster="shop", tasks=[sleeper["taskArn"]])["tasks"][0]
    c.check("StopTask: desiredStatus STOPPED at once", t["desiredStatus"] == "STOPPED", t)
    t = stopped(sleeper)
    c.check("StopTask: STOPPED, stopCode UserInitiated, stoppedReason = the reason, exitCode 143 (SIGTERM)",
            t.get("stopCode") == "UserInitiated" and t.get("stoppedReason") == "deployer: hook timed out after 1s"
            and t["containers"][0].get("exitCode") == 143, t)

    t = stopped(pull)
    c.check("RunTask imagepull: STOPPED, TaskFailedToStart, CannotPullContainerError, no exit code",
            t.get("stopCode") == "TaskFailedToStart"
            and str(t.get("stoppedReason", "")).startswith("CannotPullContainerError: pull image manifest")
            and t["containers"][0].get("exitCode") is None, t)
    t = stopped(nogroup)
    c.check("RunTask with awslogs to a missing log group: TaskFailedToStart, ResourceInitializationError",
            t.get("stopCode") == "TaskFailedToStart"
            and "The specified log group does not exist" in str(t.get("stoppedReason"))
            and str(t.get("stoppedReason")).startswith("ResourceInitializationError: failed to validate logger args"),
            t)
    err = client_error(lambda: run(good, ["true"], started_by="x" * 129))
    c.check("RunTask with startedBy longer than 128: InvalidParameterException",
            err.get("Code") == "InvalidParameterException" and err.get("Message") == "startedBy longer than 128.",
            err)


def client_error(fn: Callable[[], Any]) -> dict:
    """The error of a call that must fail ({} if it succeeded)."""
    try:
        fn()
    except botocore.exceptions.ClientError as exc:
        return exc.response["Error"]
    return {}


def run_refusal_checks(c: Checker, ecs, ec2, elbv2, vpc: str, listener: str, network: dict,
                       tds: dict[str, str]) -> None:
    """What the real services refuse (TESTBED.md), with their exact error codes and texts."""
    lonely = elbv2.create_target_group(Name="lonely", Protocol="HTTP", Port=8080, VpcId=vpc,
                                       TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    idle = elbv2.create_target_group(Name="idle-weight-0", Protocol="HTTP", Port=8080, VpcId=vpc,
                                     TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    base: dict[str, Any] = dict(cluster="shop", taskDefinition=tds["good"], desiredCount=0,
                                launchType="FARGATE", networkConfiguration=network)

    def lbs(tg: str) -> list[dict]:
        return [{"targetGroupArn": tg, "containerName": "user", "containerPort": 8080}]

    unattached = (f"The target group with targetGroupArn {lonely} does not have an associated "
                  "load balancer.")
    err = client_error(lambda: ecs.create_service(serviceName="refused-tg", loadBalancers=lbs(lonely), **base))
    c.check("CreateService with a target group no load balancer uses: InvalidParameterException",
            err.get("Code") == "InvalidParameterException" and err.get("Message") == unattached, err)
    c.check("... and no service was created",
            not [s for s in ecs.describe_services(cluster="shop", services=["refused-tg"])["services"]
                 if s.get("status") == "ACTIVE"])

    ecs.create_service(serviceName="plain", **base)
    err = client_error(lambda: ecs.update_service(cluster="shop", service="plain", loadBalancers=lbs(lonely)))
    c.check("UpdateService with a target group no load balancer uses: InvalidParameterException",
            err.get("Code") == "InvalidParameterException" and err.get("Message") == unattached, err)

    # A group in a forward action at weight 0 is associated (and health-checked).
    main = elbv2.create_target_group(Name="weighted-main", Protocol="HTTP", Port=8080, VpcId=vpc,
                                     TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    rule = elbv2.create_rule(ListenerArn=listener, Priority=90, Conditions=[
        {"Field": "path-pattern", "Values": ["/weighted/*"]}], Actions=[{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": main, "Weight": 100},
                             {"TargetGroupArn": idle, "Weight": 0}]}}])["Rules"][0]["RuleArn"]
    err = client_error(lambda: ecs.create_service(serviceName="weight-0", loadBalancers=lbs(idle), **base))
    c.check("CreateService on a group forwarded to at weight 0 succeeds (it is associated)", err == {}, err)

    awsvpc = "Network Configuration must be provided when networkMode 'awsvpc' is specified."
    no_net = {k: v for k, v in base.items() if k != "networkConfiguration"}
    err = client_error(lambda: ecs.create_service(serviceName="refused-net", **no_net))
    c.check("CreateService of an awsvpc task definition without networkConfiguration: InvalidParameterException",
            err.get("Code") == "InvalidParameterException" and err.get("Message") == awsvpc, err)
    bridge = ecs.register_task_definition(
        family="bridge", networkMode="bridge", containerDefinitions=[
            {"name": "user", "image": IMAGES["good"], "essential": True, "memory": 128}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="shop", serviceName="bridge", taskDefinition=bridge, desiredCount=0,
                       launchType="EC2")
    err = client_error(lambda: ecs.update_service(cluster="shop", service="bridge", taskDefinition=tds["good"]))
    c.check("UpdateService to an awsvpc task definition without networkConfiguration: InvalidParameterException",
            err.get("Code") == "InvalidParameterException" and err.get("Message") == awsvpc, err)
    err = client_error(lambda: ecs.update_service(cluster="shop", service="bridge", taskDefinition=tds["good"],
                                                  networkConfiguration=network))
    c.check("... and with networkConfiguration it is accepted", err == {}, err)
    err = client_error(lambda: ecs.run_task(cluster="shop", taskDefinition=tds["good"], launchType="FARGATE"))
    c.check("RunTask of an awsvpc task definition without networkConfiguration: InvalidParameterException",
            err.get("Code") == "InvalidParameterException" and err.get("Message") == awsvpc, err)
    for name in ("plain", "weight-0", "bridge"):
        ecs.delete_service(cluster="shop", service=name, force=True)

    elbv2.register_targets(TargetGroupArn=lonely, Targets=[{"Id": "10.20.1.50", "Port": 8080}])
    health = elbv2.describe_target_health(TargetGroupArn=lonely)["TargetHealthDescriptions"]
    h = health[0]["TargetHealth"] if health else {}
    c.check("DescribeTargetHealth of a group no listener or rule uses: unused / Target.NotInUse",
            h.get("State") == "unused" and h.get("Reason") == "Target.NotInUse"
            and h.get("Description") == "Target group is not configured to receive traffic from the load balancer",
            h)
    elbv2.modify_rule(RuleArn=rule, Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": idle, "Weight": 100}, {"TargetGroupArn": lonely, "Weight": 0}]}}])
    health = elbv2.describe_target_health(TargetGroupArn=lonely)["TargetHealthDescriptions"]
    h = health[0]["TargetHealth"] if health else {}
    c.check("... once a rule forwards to it (weight 0), its targets are health-checked",
            h.get("State") == "healthy", h)
    elbv2.delete_rule(RuleArn=rule)


if __name__ == "__main__":
    sys.exit(main())
